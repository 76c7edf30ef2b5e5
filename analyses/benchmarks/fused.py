"""Fused kernels against the plain array path, NumPy copies and (where installed) JAX and PyTorch.

Run with ``python -m analyses.benchmarks.fused`` (``--quick`` for small sizes, without peers).
Every ratio is measured side by side in one run: in each of several rounds the reference (a
NumPy copy) and every candidate are timed moments apart, and the median of the rounds' ratios
is printed, so a machine that slows down for a while moves both sides of a ratio.

1. Sweep: momentum on f = lam x^2 / 2 over an (eta lam, beta) grid for 1000 steps, through
   ``ck.run`` (only the final iterate kept). Reported: state updates per second; the time per
   step against a NumPy copy of the same state arrays (x and v); the plain array path, a
   per-point Python loop, JAX (jit, the whole loop) and PyTorch (in place, compiled).
2. Adam on a 10^7-parameter vector, float64 and float32: time per step against the time its
   bytes (read x, g, v, s; write x, v, s) take at the NumPy copy bandwidth of the same run;
   also a pure 4-read/3-write pass (the memory floor of any Adam step), PyTorch's foreach,
   fused and compiled Adam, and JAX's (jit, buffers donated).
3. With CuPy and a GPU: both on the device, as fractions of the device's copy bandwidth.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import sympy as sp

import convexkit as ck
from convexkit.kernels.fused import fused_update, run_in_pieces


def best_time(fn: Callable[[], object], repeats: int) -> float:
    """Best wall time of ``repeats`` calls of ``fn``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def side_by_side(
    reference: Callable[[], object],
    candidates: dict[str, Callable[[], object]],
    rounds: int,
    repeats: int = 1,
) -> tuple[float, dict[str, float], dict[str, float]]:
    """Median over ``rounds`` of each candidate's time / the reference's time, both timed in
    the same round; also the reference's and candidates' best times."""
    ratios: dict[str, list[float]] = {name: [] for name in candidates}
    best: dict[str, float] = dict.fromkeys(candidates, np.inf)
    reference_best = np.inf
    for _ in range(rounds):
        t_reference = best_time(reference, 10)
        reference_best = min(reference_best, t_reference)
        for name, fn in candidates.items():
            t = best_time(fn, repeats)
            best[name] = min(best[name], t)
            ratios[name].append(t / t_reference)
    return reference_best, {k: float(np.median(v)) for k, v in ratios.items()}, best


def momentum_python_loop(eta: np.ndarray, beta: np.ndarray, steps: int) -> list[float]:
    """The per-point Python loop a sweep would otherwise be: one scalar trajectory at a time."""
    finals = []
    for lr, b in zip(eta.tolist(), beta.tolist(), strict=True):
        x, v = 1.0, 0.0
        for _ in range(steps):
            v = b * v + x
            x = x - lr * v
        finals.append(x)
    return finals


def sweep_peers(
    eta: np.ndarray, beta: np.ndarray, steps: int
) -> dict[str, tuple[Callable[[], object], int]]:
    """The same sweep in JAX and PyTorch (where installed): name -> (callable, steps it runs);
    PyTorch, a step per call, runs fewer steps than the whole loop, to keep the run short."""
    peers: dict[str, tuple[Callable[[], object], int]] = {}
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        jax = None
    if jax is not None:
        jax.config.update("jax_enable_x64", True)

        @jax.jit
        def whole_loop(x, v, lr, b):
            def body(_, carry):
                x, v = carry
                v = b * v + x
                return x - lr * v, v

            return jax.lax.fori_loop(0, steps, body, (x, v))

        arrays = [jnp.asarray(a) for a in (np.ones_like(eta), np.zeros_like(eta), eta, beta)]
        peers["JAX jit"] = (lambda: jax.block_until_ready(whole_loop(*arrays)), steps)
    try:
        import torch
    except ImportError:
        return peers
    x, v = torch.ones(eta.size, dtype=torch.float64), torch.zeros(eta.size, dtype=torch.float64)
    lr, b = torch.from_numpy(eta), torch.from_numpy(beta)
    scratch = torch.empty_like(x)
    torch_steps = max(10, steps // 20)

    def in_place() -> None:
        for _ in range(torch_steps):
            v.mul_(b).add_(x)
            torch.mul(lr, v, out=scratch)
            x.sub_(scratch)

    def step(x, v, lr, b):
        v.mul_(b).add_(x)
        x.sub_(lr * v)

    compiled_step = torch.compile(step)

    def compiled() -> None:
        for _ in range(torch_steps):
            compiled_step(x, v, lr, b)

    peers["PyTorch in place"] = (in_place, torch_steps)
    peers["PyTorch compiled"] = (compiled, torch_steps)
    return peers


def sweep_benchmark(side: int, steps: int, rounds: int, peers: bool) -> dict[str, object]:
    lam = sp.Symbol("lam", positive=True)
    problem = ck.Problem(lam * sp.Symbol("x") ** 2 / 2, params=[lam])
    eta_grid, beta_grid = np.meshgrid(np.linspace(0.01, 4.0, side), np.linspace(0.0, 0.99, side))
    eta, beta = eta_grid.ravel(), beta_grid.ravel()
    batch = eta.size
    optimizer = ck.optim.momentum(eta, beta)
    x0 = np.ones((batch, 1))
    params = {"lam": np.ones(batch)}

    def fused(threshold: float) -> Callable[[], object]:
        # the user's call: ck.run over the grid as a batch, only the final iterate kept
        def call() -> object:
            trace = ck.run(
                problem, optimizer, x0, steps, params=params, record="final", threshold=threshold
            )
            assert trace.info["path"] == "fused", trace.info["fused"]
            return trace

        return call

    plain_steps = max(10, steps // 20)

    def plain() -> None:
        x, st = x0.copy(), optimizer.init(x0)
        with np.errstate(all="ignore"):
            for t in range(plain_steps):
                x, st = optimizer.update(x, x, st, t)

    points = min(batch, 2000 if steps > 100 else 200)
    per_run = {
        "fused, threshold inf": (fused(np.inf), steps),
        "fused, threshold 1e10 (default)": (fused(1e10), steps),
        "plain array path": (plain, plain_steps),
        "per-point Python loop": (
            lambda: momentum_python_loop(eta[:points], beta[:points], steps),
            steps * points / batch,
        ),
    }
    if peers:
        per_run |= sweep_peers(eta, beta, steps)
    compile_seconds = {}
    for name, (fn, _) in per_run.items():
        start = time.perf_counter()
        fn()  # compile, or load from the disk cache
        compile_seconds[name] = time.perf_counter() - start
    state = np.ones((2, batch))
    target = np.empty_like(state)
    t_copy, ratios, best = side_by_side(
        lambda: np.copyto(target, state), {k: fn for k, (fn, _) in per_run.items()}, rounds
    )
    # per step of the whole grid
    per_step = {name: ratios[name] / count for name, (_, count) in per_run.items()}
    return {
        "grid": side,
        "steps": steps,
        "per_step_over_copy": per_step,
        "updates_per_second": {
            name: batch * count / best[name] for name, (_, count) in per_run.items()
        },
        "first_call_seconds": compile_seconds,
        "copy_seconds": t_copy,
    }


def _stream_floor() -> Callable[..., None] | None:
    """A pass reading four arrays and writing three, with as little arithmetic as can be:
    what memory allows any Adam step, run on the same threads as the fused kernels."""
    try:
        import numba
    except ImportError:
        return None

    @numba.njit(nogil=True, cache=True)
    def floor(x, g, v, s, lo, hi):
        # views indexed from 0, as in the generated kernels, so that the loop vectorizes
        xv, gv, vv, sv = x[lo:hi], g[lo:hi], v[lo:hi], s[lo:hi]
        for i in range(hi - lo):
            gi = gv[i]
            vv[i] = vv[i] + gi
            sv[i] = sv[i] + gi
            xv[i] = xv[i] + gi

    def run(x: np.ndarray, g: np.ndarray, v: np.ndarray, s: np.ndarray) -> None:
        chunk = 4096
        jobs = -(-x.size // chunk)
        run_in_pieces(lambda a, b: floor(x, g, v, s, a * chunk, min(b * chunk, x.size)), jobs, 16)

    return run


def adam_peers(x: np.ndarray, g: np.ndarray) -> dict[str, Callable[[], object]]:
    """Adam steps of JAX and PyTorch (where installed) on copies of x and g."""
    peers: dict[str, Callable[[], object]] = {}
    lr, beta1, beta2, eps = 1e-3, 0.9, 0.999, 1e-8
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        param = torch.nn.Parameter(torch.from_numpy(x[0].copy()))
        param.grad = torch.from_numpy(g[0].copy())
        for label, options in (("foreach", {"foreach": True}), ("fused", {"fused": True})):
            try:
                opt = torch.optim.Adam([param], lr=lr, **options)
                opt.step()
            except (RuntimeError, TypeError):
                continue
            peers[f"PyTorch {label}"] = opt.step
        tx, tg = torch.from_numpy(x[0].copy()), torch.from_numpy(g[0].copy())
        tm, tv = torch.zeros_like(tx), torch.zeros_like(tx)

        def adam_step(x, g, m, v, c1, c2):
            m.mul_(beta1).add_(g, alpha=1 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            x.sub_(lr * (m / c1) / ((v / c2).sqrt() + eps))

        compiled = torch.compile(adam_step)
        peers["PyTorch compiled"] = lambda: compiled(tx, tg, tm, tv, 1 - beta1**6, 1 - beta2**6)
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return peers
    jax.config.update("jax_enable_x64", True)

    def step(x, g, m, v, t):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        m_hat = m / (1 - beta1 ** (t + 1))
        v_hat = v / (1 - beta2 ** (t + 1))
        return x - lr * m_hat / (jnp.sqrt(v_hat) + eps), m, v

    jitted = jax.jit(step, donate_argnums=(0, 2, 3))
    buffers = [jnp.asarray(x[0]), jnp.zeros_like(jnp.asarray(x[0])), jnp.zeros_like(x[0])]
    jg = jnp.asarray(g[0])

    def jax_step() -> None:
        # donated buffers: XLA writes the new x, m and v in place of the old ones
        buffers[0], buffers[1], buffers[2] = jitted(buffers[0], jg, buffers[1], buffers[2], 5)
        jax.block_until_ready(buffers[0])

    peers["JAX jit"] = jax_step
    return peers


def adam_benchmark(n: int, dtype: type, rounds: int, peers: bool) -> dict[str, object]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, n)).astype(dtype)
    g = rng.standard_normal((1, n)).astype(dtype)
    optimizer = ck.optim.adam(1e-3)
    state = tuple(np.zeros_like(x) for _ in range(2))
    kernel, _ = fused_update(optimizer)
    candidates: dict[str, Callable[[], object]] = {
        "fused": lambda: kernel.step_inplace(x, g, state, 5),
        "plain array path": lambda: optimizer.update(x, g, state, 5),
    }
    floor = _stream_floor()
    if floor is not None:
        scratch = [a[0].copy() for a in (x, g, x, x)]
        candidates["4-read/3-write floor"] = lambda: floor(*scratch)
    if peers:
        candidates |= adam_peers(x, g)
    for fn in candidates.values():
        fn()  # compile, or load from the disk cache
    target = np.empty_like(x)
    t_copy, ratios, _ = side_by_side(lambda: np.copyto(target, x), candidates, rounds, 3)
    # a copy reads and writes the array once; Adam moves seven arrays
    bytes_over_copy = 7 / 2
    return {
        "n": n,
        "dtype": np.dtype(dtype).name,
        "copy_GBps": 2 * x.nbytes / t_copy / 1e9,
        "over_bytes": {name: r / bytes_over_copy for name, r in ratios.items()},
    }


def gpu_benchmark(side: int, steps: int, n: int, rounds: int) -> list[str]:
    """Both benchmarks on CuPy, where a device is present: lines to print."""
    try:
        import cupy
    except ImportError:
        return ["gpu: skipped (CuPy is not installed)"]
    try:
        cupy.cuda.runtime.getDeviceCount()
    except cupy.cuda.runtime.CUDARuntimeError as err:
        return [f"gpu: skipped (no CUDA device: {err})"]
    from convexkit.kernels.cuda import cuda_update

    def device_time(fn: Callable[[], object], repeats: int = 5) -> float:
        cupy.cuda.Device().synchronize()
        return best_time(lambda: (fn(), cupy.cuda.Device().synchronize()), repeats)

    lines = []
    lam = sp.Symbol("lam", positive=True)
    problem = ck.Problem(lam * sp.Symbol("x") ** 2 / 2, params=[lam])
    grid = np.meshgrid(np.linspace(0.01, 4.0, side), np.linspace(0.0, 0.99, side))
    eta, beta = (a.ravel() for a in grid)
    optimizer = ck.optim.momentum(eta, beta)
    x0 = cupy.ones((eta.size, 1))

    def sweep() -> object:
        trace = ck.run(problem, optimizer, x0, steps, params={"lam": 1.0}, record="final")
        assert trace.info["path"] == "fused", trace.info["fused"]
        return trace

    sweep()
    state, target = cupy.ones((2, eta.size)), cupy.empty((2, eta.size))
    t_copy = device_time(lambda: cupy.copyto(target, state), 20)
    t_sweep = device_time(sweep, rounds)
    lines.append(
        f"gpu sweep {side}x{side}, {steps} steps: {eta.size * steps / t_sweep:.3g} updates/s, "
        f"time per step / copy of (x, v) {t_sweep / steps / t_copy:.3f}"
    )
    kernel, _ = cuda_update(ck.optim.adam(1e-3))
    for dtype in (np.float64, np.float32):
        x = cupy.random.standard_normal((1, n)).astype(dtype)
        g = cupy.random.standard_normal((1, n)).astype(dtype)
        moments = (cupy.zeros_like(x), cupy.zeros_like(x))
        kernel.step_inplace(x, g, moments, 0)
        target = cupy.empty_like(x)
        t_copy = device_time(lambda x=x, target=target: cupy.copyto(target, x), 20)
        t_adam = device_time(lambda x=x, g=g, m=moments: kernel.step_inplace(x, g, m, 5), 20)
        bandwidth = 2 * x.nbytes / t_copy
        lines.append(
            f"gpu adam {n} {np.dtype(dtype).name}: copy {bandwidth / 1e9:.0f} GB/s, the kernel "
            f"moves its 7 arrays at {7 * x.nbytes / t_adam / bandwidth:.2f} of that "
            f"(time / its bytes at copy bandwidth {t_adam / (7 * x.nbytes / bandwidth):.2f})"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, no peers, no claims")
    parser.add_argument("--no-peers", action="store_true", help="leave out JAX and PyTorch")
    args = parser.parse_args(argv)
    side, steps, n, rounds = (64, 100, 10**5, 2) if args.quick else (1024, 1000, 10**7, 5)
    peers = not (args.quick or args.no_peers)

    sweep = sweep_benchmark(side, steps, rounds, peers)
    print(f"sweep: momentum on lam x^2/2, {side}x{side} grid, {steps} steps (record='final')")
    print(f"  copy of (x, v): {sweep['copy_seconds'] * 1e3:.3f} ms")
    print("  time per step / copy of (x, v) [median of rounds]   updates/s   first call")
    for name, ratio in sweep["per_step_over_copy"].items():
        print(
            f"    {name:34s} {ratio:8.3f}   {sweep['updates_per_second'][name]:9.3g}   "
            f"{sweep['first_call_seconds'][name]:6.2f} s"
        )
    print("  (target: fused <= 0.2)")
    for dtype in (np.float64, np.float32):
        adam = adam_benchmark(n, dtype, rounds, peers)
        print(f"adam, {n} parameters, {adam['dtype']}: copy bandwidth {adam['copy_GBps']:.1f} GB/s")
        print("  time per step / its bytes at copy bandwidth [median of rounds]")
        for name, ratio in adam["over_bytes"].items():
            print(f"    {name:34s} {ratio:8.2f}")
        print("  (target: fused <= 0.5)")
    if not args.quick:
        for line in gpu_benchmark(side, steps, n, rounds):
            print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
