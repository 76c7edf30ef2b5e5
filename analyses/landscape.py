"""Optimization and deep learning (seeds, section 11.1): what makes a landscape hard.

* Risk against empirical risk: the risk f(x) = x cos(pi x) and a bumpy empirical risk
  g(x) = f(x) + 0.2 cos(5 pi x) have different minimizers; both come from
  :meth:`Problem.critical_points` and are set beside the argmin of a dense grid.
* Local and global minima: f on [-1, 2] has a local minimum, a local maximum and the global
  minimum; their kinds come from the Hessian's sign. The local maximum splits [-1, 2] into two
  basins, so gradient descent from a uniform random start reaches the global minimum with
  probability (2 - x_max) / 3; that is compared with the fraction of a batch of runs.
* Saddle points: x^3 at 0 (one dimension: the second-order test cannot decide, and f is
  neither a minimum nor a maximum there) and x^2 - y^2 at the origin (the Hessian has
  eigenvalues of both signs, measured by finite differences).
* Vanishing gradients: tanh'(4) = 1 - tanh(4)^2, about 0.0013, exact against a finite
  difference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import sympy as sp

from analyses._common import row
from convexkit.plotting import figure, savefig
from convexkit.symbolic.problem import Problem

RISK = "x*cos(pi*x)"
EMPIRICAL_RISK = "x*cos(pi*x) + 0.2*cos(5*pi*x)"
INTERVAL = (-1.0, 2.0)
RISK_WINDOW = (0.5, 1.5)


def _numeric(problem: Problem, which: str = "value"):
    expr = {"value": problem.expr, "grad": problem.gradient()[0]}[which]
    return sp.lambdify(problem.variables, expr, "numpy")


def _risk(quick: bool) -> dict[str, Any]:
    risk, empirical = Problem(RISK), Problem(EMPIRICAL_RISK)
    minima = {}
    for name, problem in (("risk", risk), ("empirical", empirical)):
        points = problem.critical_points(domain=RISK_WINDOW)
        lowest = min((c for c in points if c.kind == "minimum"), key=lambda c: float(c.value))
        minima[name] = (float(lowest.point[0]), float(lowest.value))
    grid = np.linspace(*RISK_WINDOW, 20_001 if quick else 200_001)
    measured = {
        "risk": float(grid[np.argmin(_numeric(risk)(grid))]),
        "empirical": float(grid[np.argmin(_numeric(empirical)(grid))]),
    }
    plot_grid = np.linspace(*RISK_WINDOW, 400)
    return {
        "minima": minima,
        "grid_argmin": measured,
        "grid_step": float(grid[1] - grid[0]),
        "x": plot_grid,
        "f": _numeric(risk)(plot_grid),
        "g": _numeric(empirical)(plot_grid),
    }


def _basins(quick: bool, seed: int) -> dict[str, Any]:
    problem = Problem(RISK)
    points = problem.critical_points(domain=INTERVAL)
    kinds = [(float(c.point[0]), c.kind, float(c.value)) for c in points]
    maxima = [x for x, kind, _ in kinds if kind == "maximum"]
    minima = [(x, v) for x, kind, v in kinds if kind == "minimum"]
    (separator,) = maxima
    best = min(minima, key=lambda m: m[1])[0]
    proven = (INTERVAL[1] - separator) / (INTERVAL[1] - INTERVAL[0])

    runs = 2_000 if quick else 20_000
    rng = np.random.default_rng(seed)
    x = rng.uniform(*INTERVAL, size=runs)
    gradient = _numeric(problem, "grad")
    # step 0.02 < 2 / f''(x) at both minima (about 6.5 and 12.1): no run overshoots its basin
    for _ in range(1_500 if quick else 3_000):
        x = x - 0.02 * gradient(x)
    reached = np.abs(x - best) < 1e-6
    # kinds measured without derivatives: compare f at the point with f a step either side
    value = _numeric(problem)
    measured_kinds = []
    for x0, _, _ in kinds:
        left, centre, right = value(x0 - 1e-4), value(x0), value(x0 + 1e-4)
        if left > centre < right:
            measured_kinds.append("minimum")
        elif left < centre > right:
            measured_kinds.append("maximum")
        else:
            measured_kinds.append("neither")
    grid = np.linspace(*INTERVAL, 600)
    return {
        "critical_points": kinds,
        "measured_kinds": measured_kinds,
        "separator": separator,
        "global_minimizer": best,
        "proven_fraction": proven,
        "measured_fraction": float(reached.mean()),
        "standard_error": float(np.sqrt(proven * (1 - proven) / runs)),
        "runs": runs,
        "x": grid,
        "f": _numeric(problem)(grid),
    }


def _saddles() -> dict[str, Any]:
    cubic = Problem("x**3")
    (at_zero,) = cubic.critical_points()
    h = 1e-3
    f = _numeric(cubic)
    neither = bool(f(-h) < f(0.0) < f(h))

    surface = Problem("x**2 - y**2")
    (origin,) = surface.critical_points()
    value = sp.lambdify(surface.variables, surface.expr, "numpy")
    step = 1e-4
    numeric_hessian = np.empty((2, 2))
    for i in range(2):
        for j in range(2):
            ei, ej = np.eye(2)[i] * step, np.eye(2)[j] * step
            numeric_hessian[i, j] = (
                value(*(ei + ej)) - value(*(ei - ej)) - value(*(ej - ei)) + value(*(-ei - ej))
            ) / (4 * step * step)
    measured_eigenvalues = np.linalg.eigvalsh(numeric_hessian)
    x1 = np.linspace(-2, 2, 200)
    grid = np.linspace(-1, 1, 41)
    xx, yy = np.meshgrid(grid, grid)
    return {
        "cubic_kind": at_zero.kind,
        "cubic_point": float(at_zero.point[0]),
        "cubic_neither": neither,
        "x1": x1,
        "cubic": f(x1),
        "surface_kind": origin.kind,
        "surface_eigenvalues": [float(v) for v in origin.eigenvalues],
        "measured_eigenvalues": measured_eigenvalues.tolist(),
        "xx": xx,
        "yy": yy,
        "zz": value(xx, yy),
    }


def _vanishing() -> dict[str, Any]:
    problem = Problem("tanh(x)")
    exact = float(problem.gradient_at(4)[0])
    h = 1e-5
    measured = float((np.tanh(4 + h) - np.tanh(4 - h)) / (2 * h))
    grid = np.linspace(-4, 4, 400)
    return {
        "exact": exact,
        "measured": measured,
        "expression": str(problem.gradient()[0]),
        "x": grid,
        "f": np.tanh(grid),
    }


def run(quick: bool = False, seed: int = 0) -> dict[str, Any]:
    """Critical points, their kinds and the measurements that confirm them.

    Parameters
    ----------
    quick : bool
        Fewer gradient-descent runs and a coarser grid.
    seed : int
        Seed of the random starting points of gradient descent.

    Returns
    -------
    dict
        ``"risk"``, ``"basins"``, ``"saddles"``, ``"vanishing"`` with the numbers the figures
        show, and ``"summary"``: rows of proven against measured.
    """
    risk = _risk(quick)
    basins = _basins(quick, seed)
    saddles = _saddles()
    vanishing = _vanishing()
    tolerance = 2 * risk["grid_step"]
    summary = [
        row(
            "argmin of the risk x cos(pi x) on [0.5, 1.5]",
            risk["minima"]["risk"][0],
            risk["grid_argmin"]["risk"],
            abs(risk["minima"]["risk"][0] - risk["grid_argmin"]["risk"]) <= tolerance,
        ),
        row(
            "argmin of the empirical risk (+ 0.2 cos(5 pi x)) on [0.5, 1.5]",
            risk["minima"]["empirical"][0],
            risk["grid_argmin"]["empirical"],
            abs(risk["minima"]["empirical"][0] - risk["grid_argmin"]["empirical"]) <= tolerance,
        ),
        row(
            "kinds of the critical points of x cos(pi x) on [-1, 2]",
            ", ".join(f"{kind} at {x:.4f}" for x, kind, _ in basins["critical_points"]),
            ", ".join(basins["measured_kinds"]) + " (f compared a step either side)",
            [kind for _, kind, _ in basins["critical_points"]] == basins["measured_kinds"],
        ),
        row(
            f"fraction of {basins['runs']} GD runs reaching the global minimum",
            basins["proven_fraction"],
            basins["measured_fraction"],
            abs(basins["proven_fraction"] - basins["measured_fraction"])
            <= 6 * basins["standard_error"],
        ),
        row(
            "x^3 at 0: Hessian test / neither min nor max",
            saddles["cubic_kind"],
            "f(-h) < f(0) < f(h)" if saddles["cubic_neither"] else "extremum",
            saddles["cubic_kind"] == "degenerate" and saddles["cubic_neither"],
        ),
        row(
            "x^2 - y^2 at the origin: Hessian eigenvalues",
            f"{saddles['surface_kind']} {saddles['surface_eigenvalues']}",
            [round(v, 6) for v in saddles["measured_eigenvalues"]],
            saddles["surface_kind"] == "saddle"
            and np.allclose(
                saddles["measured_eigenvalues"], saddles["surface_eigenvalues"], atol=1e-5
            ),
        ),
        row(
            "tanh'(4): vanishing gradient",
            vanishing["exact"],
            vanishing["measured"],
            abs(vanishing["exact"] - vanishing["measured"]) <= 1e-8 * vanishing["exact"] + 1e-11,
        ),
    ]
    return {
        "risk": risk,
        "basins": basins,
        "saddles": saddles,
        "vanishing": vanishing,
        "summary": summary,
    }


def plot(result: dict[str, Any], outdir: str | Path) -> list[Path]:
    """The figures of section 11.1, written to ``outdir/landscape_*.png``."""
    outdir = Path(outdir)
    paths = []

    risk = result["risk"]
    fig, axes = figure()
    ax = axes[0, 0]
    ax.plot(risk["x"], risk["f"], label="risk f")
    ax.plot(risk["x"], risk["g"], label="empirical risk g", linestyle="--")
    for name, label, offset in (
        ("risk", "min of risk", (0.05, 0.45)),
        ("empirical", "min of empirical risk", (-0.45, 0.25)),
    ):
        x, v = risk["minima"][name]
        ax.annotate(
            label,
            (x, v),
            xytext=(x + offset[0], v + offset[1]),
            arrowprops={"arrowstyle": "->"},
        )
    ax.set_xlabel("x")
    ax.set_ylabel("risk")
    ax.legend(loc="upper left")
    fig.tight_layout()
    paths.append(savefig(fig, outdir / "landscape_risk.png"))

    basins = result["basins"]
    fig, axes = figure(width=5.0)
    ax = axes[0, 0]
    ax.axvspan(INTERVAL[0], basins["separator"], color="tab:orange", alpha=0.12)
    ax.axvspan(basins["separator"], INTERVAL[1], color="tab:green", alpha=0.12)
    ax.plot(basins["x"], basins["f"], color="tab:blue")
    for x, kind, v in basins["critical_points"]:
        ax.plot([x], [v], "o", color="black")
        ax.annotate(kind, (x, v), xytext=(x, v + 0.35), ha="center")
    ax.set_title(
        f"x cos(pi x): GD reaches the global minimum from "
        f"{basins['measured_fraction']:.3f} of starts "
        f"(basin: {basins['proven_fraction']:.3f})",
        fontsize=8,
    )
    ax.set_xlabel("x")
    ax.set_ylabel("f(x)")
    fig.tight_layout()
    paths.append(savefig(fig, outdir / "landscape_local_global.png"))

    saddles = result["saddles"]
    fig, axes = figure()
    ax = axes[0, 0]
    ax.plot(saddles["x1"], saddles["cubic"])
    ax.plot([saddles["cubic_point"]], [0.0], "o", color="black")
    ax.annotate(
        f"f'(0) = 0, {saddles['cubic_kind']}",
        (0.0, 0.0),
        xytext=(0.2, -4.0),
        arrowprops={"arrowstyle": "->"},
    )
    ax.set_xlabel("x")
    ax.set_ylabel("x^3")
    fig.tight_layout()
    paths.append(savefig(fig, outdir / "landscape_saddle_1d.png"))

    fig, axes = figure(width=5.0, height=4.0, subplot_kw={"projection": "3d"})
    ax = axes[0, 0]
    ax.plot_wireframe(
        saddles["xx"], saddles["yy"], saddles["zz"], rstride=4, cstride=4, linewidth=0.6
    )
    ax.plot([0.0], [0.0], [0.0], "rx", markersize=9)
    ax.set_xticks([-1, 0, 1])
    ax.set_yticks([-1, 0, 1])
    ax.set_zticks([-1, 0, 1])
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(
        f"x^2 - y^2: {saddles['surface_kind']}, eigenvalues {saddles['surface_eigenvalues']}",
        fontsize=8,
    )
    fig.tight_layout()
    paths.append(savefig(fig, outdir / "landscape_saddle_2d.png"))

    vanishing = result["vanishing"]
    fig, axes = figure()
    ax = axes[0, 0]
    ax.plot(vanishing["x"], vanishing["f"])
    ax.annotate(
        f"tanh'(4) = {vanishing['exact']:.4f}",
        (4.0, float(np.tanh(4.0))),
        xytext=(0.5, 0.2),
        arrowprops={"arrowstyle": "->"},
    )
    ax.set_xlabel("x")
    ax.set_ylabel("tanh(x)")
    fig.tight_layout()
    paths.append(savefig(fig, outdir / "landscape_vanishing.png"))
    return paths
