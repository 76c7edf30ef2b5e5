"""Fused kernels against the plain array path, NumPy copies and (where installed) PyTorch.

Run with ``python -m analyses.benchmarks.fused`` (``--quick`` for small sizes). Every ratio is
measured side by side in one run; each time is the best of several repeats.

1. Sweep: momentum on f = lam x^2 / 2 over an (eta lam, beta) grid for 1000 steps. Reported:
   state updates per second; the time per step against a NumPy copy of the same state arrays
   (x and v); the plain array path and a per-point Python loop for comparison.
2. Adam on a 10^7-parameter vector, float64 and float32: time per step against the time its
   bytes (read x, g, v, s; write x, v, s) take at the NumPy copy bandwidth of the same run.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import sympy as sp

import convexkit as ck
from convexkit.kernels.fused import fused_trajectories, fused_update


def best_time(fn: Callable[[], object], repeats: int) -> float:
    """Best wall time of ``repeats`` calls of ``fn``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


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


def sweep_benchmark(side: int, steps: int, repeats: int) -> dict[str, float]:
    lam = sp.Symbol("lam", positive=True)
    problem = ck.Problem(lam * sp.Symbol("x") ** 2 / 2, params=[lam])
    eta_grid, beta_grid = np.meshgrid(np.linspace(0.01, 4.0, side), np.linspace(0.0, 0.99, side))
    eta, beta = eta_grid.ravel(), beta_grid.ravel()
    batch = eta.size
    optimizer = ck.optim.momentum(eta, beta)
    x0 = np.ones((batch, 1))
    ones = np.ones(batch)

    def fused() -> None:
        fused_trajectories(
            problem,
            optimizer,
            x0,
            steps,
            params={"lam": ones},
            record_steps=[steps],
            keep_x=False,
            keep_loss=False,
        )

    fused()  # compile (or load from the disk cache)
    t_fused = best_time(fused, repeats)

    state = np.ones((2, batch))
    target = np.empty_like(state)
    t_copy = best_time(lambda: np.copyto(target, state), 20)

    plain_steps = max(10, steps // 20)

    def plain() -> None:
        x, st = x0.copy(), optimizer.init(x0)
        with np.errstate(all="ignore"):
            for t in range(plain_steps):
                x, st = optimizer.update(x, x, st, t)

    t_plain = best_time(plain, max(1, repeats // 2)) / plain_steps

    points = min(batch, 2000)
    t_python = best_time(lambda: momentum_python_loop(eta[:points], beta[:points], steps), 1)
    per_step_fused = t_fused / steps
    return {
        "grid": side,
        "steps": steps,
        "updates_per_second": batch * steps / t_fused,
        "step_over_copy": per_step_fused / t_copy,
        "plain_step_over_copy": t_plain / t_copy,
        "python_loop_over_fused": (t_python / points * batch) / t_fused,
        "seconds": t_fused,
    }


def adam_benchmark(n: int, dtype: type, repeats: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, n)).astype(dtype)
    g = rng.standard_normal((1, n)).astype(dtype)
    optimizer = ck.optim.adam(1e-3)
    state = tuple(np.zeros_like(x) for _ in range(2))
    kernel, _ = fused_update(optimizer)
    kernel.step_inplace(x, g, state, 0)
    target = np.empty_like(x)
    t_copy = best_time(lambda: np.copyto(target, x), 20)
    bandwidth = 2 * x.nbytes / t_copy  # read + write of one copy
    adam_bytes = 7 * x.nbytes  # read x, g, v, s; write x, v, s
    t_bytes = adam_bytes / bandwidth
    t_fused = best_time(lambda: kernel.step_inplace(x, g, state, 5), repeats)
    t_plain = best_time(lambda: optimizer.update(x, g, state, 5), max(1, repeats // 2))
    result = {
        "n": n,
        "dtype": np.dtype(dtype).name,
        "copy_GBps": bandwidth / 1e9,
        "fused_over_bytes": t_fused / t_bytes,
        "plain_over_bytes": t_plain / t_bytes,
    }
    try:
        import torch
    except ImportError:
        return result
    tx = torch.from_numpy(x[0].copy()).requires_grad_(False)
    param = torch.nn.Parameter(tx)
    param.grad = torch.from_numpy(g[0].copy())
    for label, options in (("torch_foreach", {"foreach": True}), ("torch_fused", {"fused": True})):
        try:
            opt = torch.optim.Adam([param], lr=1e-3, **options)
            opt.step()
        except (RuntimeError, TypeError):
            continue
        result[f"{label}_over_bytes"] = best_time(opt.step, repeats) / t_bytes
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, no timing claims")
    args = parser.parse_args(argv)
    side, steps, n, repeats = (64, 100, 10**5, 2) if args.quick else (1024, 1000, 10**7, 5)

    sweep = sweep_benchmark(side, steps, repeats)
    print(f"sweep: momentum on lam x^2/2, {side}x{side} grid, {steps} steps")
    print(f"  fused: {sweep['seconds']:.3f} s, {sweep['updates_per_second']:.3g} state updates/s")
    print(
        f"  time per step / copy of (x, v):  fused {sweep['step_over_copy']:.3f}   "
        f"plain array path {sweep['plain_step_over_copy']:.2f}   (target <= 0.2)"
    )
    print(f"  per-point Python loop / fused:  {sweep['python_loop_over_fused']:.0f}x")
    for dtype in (np.float64, np.float32):
        adam = adam_benchmark(n, dtype, repeats)
        shown = "   ".join(
            f"{k.removesuffix('_over_bytes')} {v:.2f}"
            for k, v in adam.items()
            if k.endswith("_over_bytes")
        )
        print(f"adam, {n} parameters, {adam['dtype']}: copy bandwidth {adam['copy_GBps']:.1f} GB/s")
        print(f"  time per step / its bytes at copy bandwidth:  {shown}   (target <= 0.5)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
