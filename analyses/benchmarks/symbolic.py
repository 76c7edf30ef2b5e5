"""Hessian plus convexity report of a 30-variable quadratic (target: under 2 s).

Builds random quadratics f(x) = x^T A x / 2 + b^T x in 30 variables with integer entries
(positive definite, positive semidefinite of rank 27, and indefinite), then times
``Problem(f).hessian()`` followed by ``convexity(problem)``, and ``convexity(f)`` on the bare
expression, best of several repeats. The report includes exact LDL^T elimination and certified
bounds mu and L.

Run with ``python -m analyses.benchmarks.symbolic`` (``--quick`` for fewer repeats). Prints
numbers only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import sympy as sp

from convexkit.symbolic.convexity import convexity

TARGET_S = 2.0


def quadratic(kind: str, n: int = 30, seed: int = 0) -> sp.Expr:
    """A random n-variable quadratic whose Hessian is of the given ``kind``."""
    rng = np.random.default_rng(seed)
    b = rng.integers(-3, 4, size=(n, n))
    if kind == "definite":
        a = b.T @ b + np.eye(n, dtype=np.int64)
    elif kind == "semidefinite":
        a = b[: n - 3].T @ b[: n - 3]
    else:
        a = b.T @ b
        a[n // 2, n // 2] -= 4 * n * n
    xs = sp.symbols(f"x1:{n + 1}", real=True)
    terms = [sp.Rational(int(a[i, j]), 2) * xs[i] * xs[j] for i in range(n) for j in range(n)]
    terms += [int(c) * v for c, v in zip(rng.integers(-3, 4, size=n), xs, strict=True)]
    return sp.Add(*terms)


def best_time(work: Callable[[], object], repeats: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = work()
        best = min(best, time.perf_counter() - start)
    return best, result


def with_problem(expr: sp.Expr) -> object:
    from convexkit.symbolic.problem import Problem

    problem = Problem(expr)
    problem.hessian()
    return convexity(problem)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m analyses.benchmarks.symbolic", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random matrices")
    args = parser.parse_args(argv)
    repeats = 2 if args.quick else 5
    print(f"Hessian + convexity report, 30 variables (target < {TARGET_S:g} s), best of {repeats}")
    print(f"{'Hessian kind':<14}{'problem+report':>16}{'report only':>14}  verdict (mu, L)")
    for kind in ("definite", "semidefinite", "indefinite"):
        expr = quadratic(kind, seed=args.seed)
        full, report = best_time(lambda e=expr: with_problem(e), repeats)
        bare, _ = best_time(lambda e=expr: convexity(e), repeats)
        mu = f"{float(report.mu):.6g}"
        lip = f"{float(report.L):.6g}"
        flag = "" if full < TARGET_S else "  (over target)"
        print(f"{kind:<14}{full:>14.3f} s{bare:>12.3f} s  {report.curvature} ({mu}, {lip}){flag}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
