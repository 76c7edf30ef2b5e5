"""Newton's method on a convex and on a nonconvex function (seeds, section 11.3.3).

* f(x) = cosh(cx), c = 0.5, from x₀ = 10: far from the minimum each step moves by
  tanh(cx)/c < 1/c; near it the step is x − tanh(cx)/c = c²x³/3 + O(x⁵), cubic convergence
  (the odd derivative f'''(0) vanishes).
* f(x) = x cos(cx), c = 0.15π: where f'' < 0 Newton's step climbs. From the seeds' start
  x₀ = 10, plain Newton ends on a maximum; the seeds' remedies (a learning rate η = 0.5, the
  absolute value of the Hessian, damping H + δI) are compared there and from 401 starts at
  once. A stationary point x* attracts the iteration x ← x − η f'/M(f'') iff the multiplier
  |1 − η f''(x*)/M(f''(x*))| is below 1: for plain Newton every stationary point attracts,
  maxima included; η = 0.5 gives 1/2 everywhere, so maxima still attract; |H| gives 2 at
  maxima, which repel; damping gives δ/(f''+δ), so a maximum attracts iff f''(x*) < −2δ.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import sympy as sp
from scipy.optimize import brentq

import convexkit as ck
from analyses._common import row
from convexkit.plotting import figure, savefig

C_CONVEX = sp.Rational(1, 2)
C_TRAP = sp.Rational(3, 20) * sp.pi
DAMPING = 1.0
WINDOW = 20.0  # starting points in [-WINDOW, WINDOW]


def _variants() -> dict[str, tuple[Any, Any]]:
    """name -> (optimizer, multiplier |g'(x*)| as a function of f''(x*))."""
    return {
        "plain": (ck.optim.newton(), lambda h: np.zeros_like(h)),
        "lr 0.5": (ck.optim.newton(0.5), lambda h: np.full_like(h, 0.5)),
        "|H|": (ck.optim.newton(hessian_fix="abs"), lambda h: np.abs(1 - h / np.abs(h))),
        f"damping {DAMPING:g}": (
            ck.optim.newton(hessian_fix="damping", damping=DAMPING),
            lambda h: np.abs(DAMPING / (h + DAMPING)),
        ),
    }


def _nonconvex() -> tuple[sp.Expr, Any, Any, Any]:
    x = sp.Symbol("x", real=True)
    f = x * sp.cos(C_TRAP * x)
    funcs = [sp.lambdify(x, e, "numpy") for e in (f, sp.diff(f, x), sp.diff(f, x, 2))]
    return f, funcs[0], funcs[1], funcs[2]


def _stationary_points(fprime: Any, fsecond: Any, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Every root of f' in [-radius, radius] (bracketed on a fine grid) and f'' there."""
    grid = np.linspace(-radius, radius, 20001)
    values = fprime(grid)
    brackets = np.flatnonzero(np.sign(values[:-1]) != np.sign(values[1:]))
    roots = np.array([brentq(fprime, grid[i], grid[i + 1], xtol=1e-15) for i in brackets])
    return roots, fsecond(roots)


def _convex() -> dict[str, Any]:
    x = sp.Symbol("x", real=True)
    c = float(C_CONVEX)
    trace = ck.run(ck.Problem(sp.cosh(C_CONVEX * x)), ck.optim.newton(), [10.0], 10)
    path = trace.x[:, 0, 0]
    steps = np.abs(np.diff(path))
    # the cubic regime: the last step whose result is not yet dominated by rounding
    t = int(np.flatnonzero((np.abs(path[1:]) > 1e-12) & (np.abs(path[:-1]) < 0.1))[-1])
    constant = path[t + 1] / path[t] ** 3
    errors = np.abs(path[t - 1 : t + 2])
    order = np.log(errors[2] / errors[1]) / np.log(errors[1] / errors[0])
    summary = [
        row(
            "Newton on cosh(x/2): far from 0 a step moves by tanh(cx)/c < 1/c",
            1 / c,
            float(steps[:4].max()),
            bool(np.all(steps < 1 / c)),
        ),
        row(
            "Newton on cosh(x/2): x_{t+1} / x_t^3 -> c^2/3 near 0",
            c**2 / 3,
            float(constant),
            bool(abs(constant / (c**2 / 3) - 1) < 1e-3),
        ),
        row(
            "Newton on cosh(x/2): order of convergence (f'''(0) = 0)",
            3,
            float(order),
            bool(abs(order - 3) < 0.1),
        ),
    ]
    return {"x": path, "summary": summary}


def _classify(
    final: np.ndarray, diverged: np.ndarray, fprime: Any, roots: np.ndarray
) -> np.ndarray:
    """Index of the stationary point each trajectory converged to; -1 for the others."""
    with np.errstate(all="ignore"):
        stationary = ~diverged & (np.abs(fprime(final)) < 1e-8)
    nearest = np.argmin(np.abs(final[:, None] - roots[None, :]), axis=1)
    close = np.abs(final - roots[nearest]) < 1e-6
    return np.where(stationary & close, nearest, -1)


def _nonconvex_study(quick: bool) -> dict[str, Any]:
    expr, f, fprime, fsecond = _nonconvex()
    problem = ck.Problem(expr)
    roots, curvature = _stationary_points(fprime, fsecond, 3 * WINDOW)
    # an even count keeps x0 = 0, where f'' = 0 and the Newton system is singular, out
    starts = np.linspace(-WINDOW, WINDOW, 100 if quick else 400)
    summary = []
    paths, finals, limits, multipliers = {}, {}, {}, {}
    for name, (optimizer, multiplier) in _variants().items():
        single = ck.run(problem, optimizer, [10.0], 60)
        paths[name] = single.x[:, 0, 0]
        end = paths[name][-1]
        k = int(np.argmin(np.abs(roots - end)))
        kind = "minimum" if curvature[k] > 0 else "maximum"
        summary.append(
            row(
                f"Newton ({name}) on x cos(0.15 pi x) from x0=10: limit",
                f"{roots[k]:.6f} ({kind}, f''={curvature[k]:.3f})",
                f"{end:.6f}",
                bool(abs(end - roots[k]) < 1e-6),
            )
        )
        many = ck.run(problem, optimizer, starts[:, None], 100, record="final")
        final = many.x_final[:, 0]
        finals[name] = final
        limits[name] = _classify(final, many.diverged, fprime, roots)
        gain = multiplier(curvature)
        multipliers[name] = gain
        attracting = set(np.flatnonzero(gain < 1).tolist())
        maxima = set(np.flatnonzero(curvature < 0).tolist())
        reached = set(limits[name][limits[name] >= 0].tolist())
        summary.append(
            row(
                f"Newton ({name}): stationary points in [-60, 60] that attract "
                f"(|1 - eta f''/M| < 1) vs those reached from {starts.size} starts in [-20, 20]",
                f"{len(attracting & maxima)} of {len(maxima)} maxima, "
                f"{len(attracting - maxima)} of {len(roots) - len(maxima)} minima",
                f"{len(reached & maxima)} maxima, {len(reached - maxima)} minima "
                f"({int(np.sum(limits[name] >= 0))} starts converged)",
                reached <= attracting,
            )
        )
    return {
        "paths": paths,
        "starts": starts,
        "finals": finals,
        "limits": limits,
        "roots": roots,
        "curvature": curvature,
        "summary": summary,
    }


def run(quick: bool = False, seed: int = 0) -> dict[str, Any]:
    """Newton on cosh(cx) and on x cos(cx); ``seed`` is unused (deterministic)."""
    convex = _convex()
    nonconvex = _nonconvex_study(quick)
    return {
        "convex": convex,
        "nonconvex": nonconvex,
        "summary": convex["summary"] + nonconvex["summary"],
    }


def plot(result: dict[str, Any], outdir: str | Path) -> list[Path]:
    """Two figures: the convex case, and the nonconvex one with its remedies and basins."""
    outdir = Path(outdir)
    written = []
    convex = result["convex"]
    fig, axes = figure(2)
    grid = np.linspace(-12, 12, 400)
    ax = axes[0, 0]
    ax.plot(grid, np.cosh(0.5 * grid), color="0.6", lw=1)
    ax.plot(convex["x"], np.cosh(0.5 * convex["x"]), "-o", ms=3, color="C1")
    ax.set_title("Newton on cosh(x/2)")
    ax.set_xlabel("x")
    ax = axes[0, 1]
    ax.semilogy(np.abs(convex["x"]) + 1e-300, "-o", ms=3, color="C1")
    ax.set_ylim(1e-25, 30)
    ax.set_title("|x_t|: linear steps, then cubic")
    ax.set_xlabel("step t")
    fig.tight_layout()
    written.append(savefig(fig, outdir / "newton_convex.png"))

    study = result["nonconvex"]
    _, f, _, _ = _nonconvex()
    names = list(study["paths"])
    fig, axes = figure(len(names), nrows=2, width=3.2)
    grid = np.linspace(-WINDOW - 8, WINDOW + 8, 800)
    maxima = study["roots"][study["curvature"] < 0]
    for j, name in enumerate(names):
        ax = axes[0, j]
        path = study["paths"][name][:12]
        ax.plot(grid, f(grid), color="0.6", lw=1)
        ax.plot(path, f(path), "-o", ms=3, color="C1")
        ax.set_title(f"Newton, {name}")
        ax.set_xlabel("x")
        ax = axes[1, j]
        limits = study["limits"][name]
        ends = study["finals"][name]
        at_max = (limits >= 0) & (study["curvature"][np.maximum(limits, 0)] < 0)
        at_min = (limits >= 0) & ~at_max
        ax.plot(study["starts"][at_min], ends[at_min], ".", ms=3, color="C2", label="minimum")
        ax.plot(study["starts"][at_max], ends[at_max], ".", ms=3, color="C3", label="maximum")
        for m in maxima:
            ax.axhline(m, color="C3", lw=0.4, alpha=0.4)
        ax.set_ylim(-3 * WINDOW, 3 * WINDOW)
        ax.set_xlabel("x₀")
        if j == 0:
            ax.set_ylabel("limit after 100 steps")
            ax.legend(loc="upper left")
    fig.tight_layout()
    written.append(savefig(fig, outdir / "newton_nonconvex.png"))
    return written
