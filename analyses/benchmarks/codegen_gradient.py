"""A generated gradient against the same gradient written by hand in NumPy.

For a few representative objectives, times ``ck.oracle(problem).grad`` over 10^6 points and a
hand-written NumPy function computing the same formula, side by side in one run (best of
several repeats, the two interleaved so that machine noise hits both alike), and prints the
ratio generated / hand-written. The target is a ratio of at most 1.5.

Run with ``python -m analyses.benchmarks.codegen_gradient`` (``--quick`` for 10^5 points and
fewer repeats). Prints numbers only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp

from convexkit.codegen import oracle


@dataclass
class Case:
    """One objective: its SymPy form, its hand-written NumPy gradient and its parameters."""

    name: str
    expr: sp.Expr
    variables: tuple[sp.Symbol, ...]
    hand: Callable[..., np.ndarray]
    params: dict[str, float] | None = None
    per_point: tuple[str, ...] = ()


def _problem(case: Case) -> Any:
    from convexkit.symbolic.problem import Problem

    params = tuple(sp.Symbol(name, real=True) for name in (case.params or {}))
    return Problem(case.expr, variables=list(case.variables), params=list(params))


def _rosenbrock() -> Case:
    x1, x2 = sp.symbols("x1 x2", real=True)

    def hand(x: np.ndarray) -> np.ndarray:
        a, b = x[:, 0], x[:, 1]
        inner = b - a * a
        return np.stack([-400.0 * a * inner - 2.0 * (1.0 - a), 200.0 * inner], axis=1)

    return Case("rosenbrock (d=2)", 100 * (x2 - x1**2) ** 2 + (1 - x1) ** 2, (x1, x2), hand)


def _logsumexp(d: int = 10) -> Case:
    xs = sp.symbols(f"x1:{d + 1}", real=True)

    def hand(x: np.ndarray) -> np.ndarray:
        e = np.exp(x)
        return e / e.sum(axis=1, keepdims=True)

    return Case(f"log-sum-exp (d={d})", sp.log(sum(sp.exp(v) for v in xs)), xs, hand)


def _quartic(d: int = 10) -> Case:
    xs = sp.symbols(f"x1:{d + 1}", real=True)
    expr = (
        sum(v**4 for v in xs) / 4
        + sum((a - b) ** 2 for a, b in zip(xs[:-1], xs[1:], strict=True)) / 2
    )

    def hand(x: np.ndarray) -> np.ndarray:
        g = x * x * x
        step = x[:, :-1] - x[:, 1:]
        g[:, :-1] += step
        g[:, 1:] -= step
        return g

    return Case(f"quartic chain (d={d})", expr, xs, hand)


def _logistic_ridge() -> Case:
    w1, w2, lam = sp.symbols("w1 w2 lam", real=True)
    a, b = 1.5, -0.5
    margin = a * w1 + b * w2
    expr = sp.log(1 + sp.exp(-margin)) + lam / 2 * (w1**2 + w2**2)

    def hand(x: np.ndarray, lam: np.ndarray) -> np.ndarray:
        s = -1.0 / (1.0 + np.exp(a * x[:, 0] + b * x[:, 1]))
        return np.stack([a * s + lam * x[:, 0], b * s + lam * x[:, 1]], axis=1)

    return Case(
        "logistic + ridge, lam per point (d=2)", expr, (w1, w2), hand, {"lam": 0.0}, ("lam",)
    )


def _best(function: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(case: Case, points: int, repeats: int, seed: int = 0) -> dict[str, float]:
    """Best times of the generated and the hand-written gradient, and their difference."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((points, len(case.variables)))
    extra: list[np.ndarray] = []
    params = None
    if case.params:
        values = {name: rng.uniform(0.1, 1.0, points) for name in case.per_point}
        params = values
        extra = [values[name] for name in case.per_point]
    generated = oracle(_problem(case), params=params)
    ours = generated.grad(x)  # compiles, and warms the caches
    theirs = case.hand(x, *extra)
    generated_best, hand_best = [], []
    for _ in range(repeats):
        generated_best.append(_best(lambda: generated.grad(x), 1))
        hand_best.append(_best(lambda: case.hand(x, *extra), 1))
    g, h = min(generated_best), min(hand_best)
    return {
        "generated_s": g,
        "hand_s": h,
        "ratio": g / h,
        "max_abs_diff": float(np.max(np.abs(ours - theirs))),
    }


CASES = (_rosenbrock, _logsumexp, _quartic, _logistic_ridge)


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    """Run every case and print one line each; returns the numbers by case name."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10^5 points, 3 repeats")
    parser.add_argument("--points", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    options = parser.parse_args(argv)
    points = options.points or (10**5 if options.quick else 10**6)
    repeats = options.repeats or (3 if options.quick else 9)
    print(f"gradient over {points:,} points, best of {repeats} (float64, NumPy {np.__version__})")
    header = ("objective", "generated ms", "by hand ms", "ratio", "max |diff|")
    print(f"{header[0]:40s} {header[1]:>13s} {header[2]:>11s} {header[3]:>7s} {header[4]:>11s}")
    results = {}
    for make in CASES:
        case = make()
        row = measure(case, points, repeats)
        results[case.name] = row
        print(
            f"{case.name:40s} {row['generated_s'] * 1e3:13.2f} {row['hand_s'] * 1e3:11.2f} "
            f"{row['ratio']:7.2f} {row['max_abs_diff']:11.2e}"
        )
    print("target: ratio <= 1.5 (generated time / hand-written time)")
    return results


if __name__ == "__main__":
    main()
