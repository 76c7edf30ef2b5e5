"""Float16 emulation on the CPU against float32, and against NumPy's own float16.

Times, side by side in one run (best of several repeats, the variants interleaved so that
machine noise hits all of them alike):

1. ``cast``: rounding 10^6 float32 values to float16 with each engine of
   :func:`convexkit.precision.cast_function`, against one float32 multiply of the same array.
2. ``chain``: one training step of a two-layer ReLU network on a batch of models (matrix
   products, bias, activation, squared loss, the backward pass and an SGD update), written
   once against ``cast`` as the models are: in float32, emulated in float16 (every result
   rounded), emulated in bfloat16, and in NumPy's native float16 arithmetic.
3. ``policy``: the package's own mixed-precision step, ``Policy.gradients`` + ``Policy.apply``
   on ``ck.models.linear_regression`` (loss scaling, inf/NaN checks, unscaling, statistics),
   against the plain float32 step ``loss_and_grad`` + ``optimizer.update``.

It prints the throughput of each variant relative to float32 (float32 time / variant time);
the target for the emulated float16 step is at least 1/3. Nothing is asserted.

Every variant runs on one core: BLAS is limited to one thread (set before NumPy is imported,
unless the caller set ``OPENBLAS_NUM_THREADS`` or NumPy was imported already), as the
rounding kernels are. On a shared machine, BLAS threads spinning against other processes
otherwise make the matrix products' times meaningless.

Run with ``python -m analyses.benchmarks.precision`` (``--quick`` for smaller sizes and fewer
repeats).
"""

from __future__ import annotations

import os
import sys

if "numpy" not in sys.modules:
    for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_variable, "1")

import argparse  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from convexkit import precision as mp  # noqa: E402

TARGET = 1.0 / 3.0


def _identity(x: Any) -> Any:
    return x


def _has_numba() -> bool:
    return mp.cast_function("float16").engine == "numba"


def _best_times(variants: dict[str, Callable[[], Any]], repeats: int, number: int) -> dict:
    """Best time per call of each variant, the variants interleaved in every repeat."""
    for function in variants.values():
        function()  # warm up: caches, numba kernels
    best = {name: float("inf") for name in variants}
    for _ in range(repeats):
        for name, function in variants.items():
            start = time.perf_counter()
            for _ in range(number):
                function()
            best[name] = min(best[name], (time.perf_counter() - start) / number)
    return best


def _mlp_step(params: tuple, X: Any, y: Any, cast: Callable[[Any], Any], lr: float) -> tuple:
    """One SGD step of y_hat = relu(X W1 + b1) W2 + b2, loss mean (y_hat - y)^2 / 2, for a
    batch of models (W1 of shape (B, f, h)); ``cast`` rounds the result of every operation."""
    W1, b1, W2, b2 = params
    n = X.shape[0]
    z1 = cast(cast(np.matmul(X, W1)) + b1)  # (B, n, h)
    a1 = cast(np.maximum(z1, 0))
    out = cast(cast(np.matmul(a1, W2)) + b2)  # (B, n, 1)
    r = cast(out - y)
    seed = cast(r * (1.0 / n))
    gW2 = cast(np.matmul(np.swapaxes(a1, 1, 2), seed))
    gb2 = cast(np.sum(seed, axis=1, keepdims=True))
    da1 = cast(np.matmul(seed, np.swapaxes(W2, 1, 2)))
    dz1 = cast(da1 * (z1 > 0))
    gW1 = cast(np.matmul(X.T, dz1))
    gb1 = cast(np.sum(dz1, axis=1, keepdims=True))
    return tuple(cast(p - cast(lr * g)) for p, g in zip(params, (gW1, gb1, gW2, gb2), strict=True))


def bench_cast(size: int, repeats: int) -> list[tuple[str, float, float]]:
    """(engine, seconds, float32 multiply time / seconds) for rounding ``size`` values."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(size) * np.exp2(rng.uniform(-20, 10, size))).astype(np.float32)
    variants: dict[str, Callable[[], Any]] = {"float32 multiply": lambda: x * x}
    engines = ["numba", "ufunc", "astype"] if _has_numba() else ["ufunc", "astype"]
    for engine in engines:
        cast = mp.cast_function("float16", engine=engine)
        variants[f"float16 round ({engine})"] = lambda cast=cast: cast(x)
    bf16 = mp.cast_function("bfloat16")
    variants[f"bfloat16 round ({bf16.engine})"] = lambda: bf16(x)
    times = _best_times(variants, repeats, 3)
    base = times["float32 multiply"]
    return [(name, t, base / t) for name, t in times.items()]


def bench_chain(
    models: int, n: int, f: int, h: int, repeats: int
) -> list[tuple[str, float, float]]:
    """(variant, seconds per step, float32 time / seconds) for the two-layer network step."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((n, f)).astype(np.float32)
    y = rng.standard_normal((n, 1)).astype(np.float32)
    params = (
        (rng.standard_normal((models, f, h)) / np.sqrt(f)).astype(np.float32),
        np.zeros((models, 1, h), np.float32),
        (rng.standard_normal((models, h, 1)) / np.sqrt(h)).astype(np.float32),
        np.zeros((models, 1, 1), np.float32),
    )
    variants: dict[str, Callable[[], Any]] = {
        "float32": lambda: _mlp_step(params, X, y, _identity, 0.01)
    }
    for precision in ("float16", "bfloat16"):
        cast = mp.cast_function(precision)
        low = tuple(cast(p) for p in params)
        Xl, yl = cast(X), cast(y)
        variants[f"{precision} emulated ({cast.engine})"] = (
            lambda cast=cast, low=low, Xl=Xl, yl=yl: _mlp_step(low, Xl, yl, cast, 0.01)
        )
    if _has_numba():
        cast = mp.cast_function("float16", engine="ufunc")
        variants["float16 emulated (ufunc)"] = lambda: _mlp_step(params, X, y, cast, 0.01)
    times = _best_times(variants, repeats, 1)
    # NumPy's float16 arithmetic is two orders of magnitude slower: a few repeats suffice
    native = tuple(p.astype(np.float16) for p in params)
    Xh, yh = X.astype(np.float16), y.astype(np.float16)
    contrast = {"float16 NumPy native": lambda: _mlp_step(native, Xh, yh, _identity, 0.01)}
    times.update(_best_times(contrast, 2, 1))
    base = times["float32"]
    return [(name, t, base / t) for name, t in times.items()]


def bench_policy(models: int, n: int, f: int, repeats: int) -> list[tuple[str, float, float]]:
    """(variant, seconds per step, float32 time / seconds) for the package's training step."""
    import convexkit as ck

    rng = np.random.default_rng(2)
    X = rng.standard_normal((n, f)).astype(np.float32)
    y = rng.standard_normal(n).astype(np.float32)
    model = ck.models.linear_regression(f)
    optimizer = ck.optim.sgd(0.01)
    params = model.init(list(range(models)), dtype="float32")
    state = optimizer.init(params)

    def plain() -> Any:
        _, grad = model.loss_and_grad(params, X, y)
        return optimizer.update(params, grad, state, 0)

    def policy_step(policy: mp.Policy) -> Callable[[], Any]:
        def step() -> Any:
            _, grad, info = policy.gradients(model, params, X, y)
            return policy.apply(optimizer, params, grad, state, 0, info)

        return step

    variants = {"float32 (no policy)": plain}
    for precision in ("float16", "bfloat16"):
        policy = mp.Policy(precision, 1024.0, True, np, models, reference=False)
        variants[f"{precision} policy, scale 1024"] = policy_step(policy)
    with_stats = mp.Policy("float16", 1024.0, True, np, models, reference=True)
    variants["float16 policy + FP32 reference pass"] = policy_step(with_stats)
    times = _best_times(variants, repeats, 2)
    base = times["float32 (no policy)"]
    return [(name, t, base / t) for name, t in times.items()]


def _print(title: str, rows: list[tuple[str, float, float]], unit: str) -> None:
    print(f"\n{title}")
    print(f"  {'variant':42s} {unit:>12s} {'vs float32':>11s}")
    for name, seconds, ratio in rows:
        print(f"  {name:42s} {seconds * 1e3:12.3f} {ratio:10.2f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m analyses.benchmarks.precision", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    args = parser.parse_args(argv)
    repeats = 10 if args.quick else 25
    size = 10**5 if args.quick else 10**6
    chain = (4, 256, 64, 128) if args.quick else (8, 512, 128, 256)
    policy = (16, 256, 32) if args.quick else (64, 1024, 64)

    print(
        f"float16 emulation on the CPU; throughput relative to float32 (target >= "
        f"{TARGET:.2f} for the emulated step); engine 'auto' picks "
        f"{mp.cast_function('float16').engine!r} here; "
        f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}"
    )
    _print(f"cast: {size:.0e} float32 values", bench_cast(size, repeats), "ms")
    chain_rows = bench_chain(*chain, repeats)
    _print(
        "chain: two-layer ReLU network step, {} models, batch {}, {} -> {} -> 1".format(*chain),
        chain_rows,
        "ms/step",
    )
    policy_rows = bench_policy(*policy, repeats)
    _print(
        "policy: ck.models.linear_regression, {} models, batch {}, {} features".format(*policy),
        policy_rows,
        "ms/step",
    )
    emulated = dict((name, ratio) for name, _, ratio in chain_rows)
    auto = mp.cast_function("float16").engine
    ratio = emulated[f"float16 emulated ({auto})"]
    native = emulated["float16 NumPy native"]
    print(
        f"\nemulated float16 step at {ratio:.2f}x float32 throughput "
        f"({'meets' if ratio >= TARGET else 'misses'} the 1/3 target); NumPy native float16 "
        f"at {native:.3f}x ({ratio / native:.0f}x slower than the emulation)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
