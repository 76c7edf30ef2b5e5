"""Gradient descent in one and two dimensions (seeds, section 11.3).

* f(x) = x² with learning rates that are too small (0.05), right (0.2) and too large (1.1):
  on f = λx²/2 each step multiplies x by 1 − ηλ, so GD contracts iff 0 < ηλ < 2. A sweep over
  η measures the factor for every learning rate at once.
* A local-minimum trap: f(x) = x cos(cx), c = 0.15π, η = 2 from x₀ = 10. The first step
  overshoots the nearby minimum and GD settles, oscillating, into a shallower one; near a
  minimum x* the error contracts by |1 − η f''(x*)| per step.
* f(x) = x₁² + 2x₂², η = 0.1 from (−5, −2): each coordinate contracts at its own rate
  |1 − ηλᵢ| with λ = (2, 4).
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

C_TRAP = sp.Rational(3, 20) * sp.pi  # c = 0.15 pi
LEARNING_RATES = (0.05, 0.2, 1.1)
CURVATURE_1D = 2.0  # f = x^2 = (2/2) x^2
CURVATURES_2D = (2.0, 4.0)  # f = x1^2 + 2 x2^2


def _trap_functions() -> tuple[Any, Any, Any]:
    x = sp.Symbol("x", real=True)
    f = x * sp.cos(C_TRAP * x)
    return tuple(sp.lambdify(x, e, "numpy") for e in (f, sp.diff(f, x), sp.diff(f, x, 2)))


def _minimum_near(fprime: Any, fsecond: Any, guess: float) -> float:
    """The stationary point of the trap bracketing ``guess``, found to machine precision."""
    width = 0.5
    while np.sign(fprime(guess - width)) == np.sign(fprime(guess + width)):
        width /= 2
    root = brentq(fprime, guess - width, guess + width, xtol=1e-15)
    if fsecond(root) <= 0:
        raise ArithmeticError(f"the point {root} reached by GD is not a minimum")
    return float(root)


def _one_dimensional(quick: bool) -> dict[str, Any]:
    problem = ck.Problem("x**2")
    rates = np.asarray(LEARNING_RATES)
    trace = ck.run(problem, ck.optim.gd(rates), [10.0], 10)
    ratios = trace.x[1:, :, 0] / trace.x[:-1, :, 0]
    predicted = 1 - rates * CURVATURE_1D

    grid = np.linspace(0.01, 1.19, 30 if quick else 120)
    swept = ck.sweep(problem, ck.optim.gd, {"lr": grid}, [10.0], 20)
    summary = []
    for lr, factor, measured in zip(rates, predicted, ratios.T, strict=True):
        summary.append(
            row(
                f"GD on x^2, eta={lr}: factor 1 - eta*lambda per step",
                float(factor),
                float(np.median(measured)),
                bool(np.all(np.abs(measured - factor) <= 1e-12)),
            )
        )
    theory = np.abs(1 - grid * CURVATURE_1D)
    summary.append(
        row(
            "GD on lambda x^2/2 contracts iff 0 < eta*lambda < 2: max |measured rate - "
            f"|1 - eta*lambda|| over {grid.size} learning rates",
            0.0,
            float(np.max(np.abs(swept.rate - theory))),
            bool(np.max(np.abs(swept.rate - theory)) <= 1e-9)
            and bool(np.array_equal(swept.rate < 1, grid * CURVATURE_1D < 2)),
        )
    )
    return {
        "learning_rates": rates,
        "x": trace.x[:, :, 0],
        "sweep_lr": grid,
        "sweep_rate": swept.rate,
        "sweep_theory": theory,
        "summary": summary,
    }


def _trap(quick: bool) -> dict[str, Any]:
    f, fprime, fsecond = _trap_functions()
    x = sp.Symbol("x", real=True)
    problem = ck.Problem(x * sp.cos(C_TRAP * x))
    lr, steps = 2.0, 200
    trace = ck.run(problem, ck.optim.gd(lr), [10.0], steps)
    path = trace.x[:, 0, 0]
    settled = _minimum_near(fprime, fsecond, float(path[-1]))
    nearby = _minimum_near(fprime, fsecond, 7.3)  # the minimum next to the start
    factor = abs(1 - lr * float(fsecond(settled)))
    errors = np.abs(path - settled)
    window = slice(steps // 2, steps)  # the local, linear regime
    measured = float(np.exp(np.mean(np.log(errors[window][1:] / errors[window][:-1]))))
    summary = [
        row(
            "trap: GD (eta=2) from x0=10 ends in a shallower minimum than the one next to x0",
            f"f({nearby:.4f}) = {f(nearby):.4f}",
            f"f({settled:.4f}) = {f(settled):.4f}",
            bool(f(settled) > f(nearby) and abs(path[-1] - settled) < 1e-3),
        ),
        row(
            "trap: local contraction |1 - eta f''(x*)| of the error",
            factor,
            measured,
            bool(abs(measured - factor) < 1e-3),
        ),
    ]
    return {"x": path, "settled": settled, "nearby": nearby, "summary": summary}


def _two_dimensional() -> dict[str, Any]:
    problem = ck.Problem("x1**2 + 2*x2**2")
    lr = 0.1
    trace = ck.run(problem, ck.optim.gd(lr), [-5.0, -2.0], 20)
    path = trace.x[:, 0, :]
    ratios = path[1:] / path[:-1]
    summary = []
    for j, lam in enumerate(CURVATURES_2D):
        factor = 1 - lr * lam
        summary.append(
            row(
                f"GD on x1^2 + 2 x2^2 (eta=0.1): coordinate x{j + 1} factor 1 - eta*lambda",
                factor,
                float(np.median(ratios[:, j])),
                bool(np.all(np.abs(ratios[:, j] - factor) <= 1e-12)),
            )
        )
    return {"x": path, "loss": trace.loss[:, 0], "summary": summary}


def run(quick: bool = False, seed: int = 0) -> dict[str, Any]:
    """Run the three studies; ``seed`` is unused (everything here is deterministic)."""
    one = _one_dimensional(quick)
    trap = _trap(quick)
    two = _two_dimensional()
    return {
        "one_dimensional": one,
        "trap": trap,
        "two_dimensional": two,
        "summary": one["summary"] + trap["summary"] + two["summary"],
    }


def plot(result: dict[str, Any], outdir: str | Path) -> list[Path]:
    """Three figures: 1-D learning rates with the measured factor, the trap, 2-D contours."""
    outdir = Path(outdir)
    written = []

    one = result["one_dimensional"]
    fig, axes = figure(4, width=3.2)
    grid = np.linspace(-12, 12, 400)
    for ax, lr, path in zip(axes[0], one["learning_rates"], one["x"].T, strict=False):
        ax.plot(grid, grid**2, color="0.6", lw=1)
        ax.plot(path, path**2, "-o", ms=3, color="C1")
        ax.set_title(f"f(x) = x², η = {lr}")
        ax.set_xlabel("x")
    ax = axes[0, 3]
    ax.plot(one["sweep_lr"], one["sweep_theory"], color="0.3", lw=1, label="|1 − ηλ|")
    ax.plot(one["sweep_lr"], one["sweep_rate"], ".", ms=4, color="C0", label="measured")
    ax.axhline(1.0, color="C3", lw=0.8, ls="--")
    ax.set_xlabel("η")
    ax.set_title("factor per step (λ = 2)")
    ax.legend()
    fig.tight_layout()
    written.append(savefig(fig, outdir / "gradient_descent_1d.png"))

    trap = result["trap"]
    f, _, _ = _trap_functions()
    fig, axes = figure(2)
    grid = np.linspace(-13, 13, 600)
    ax = axes[0, 0]
    ax.plot(grid, f(grid), color="0.6", lw=1)
    ax.plot(trap["x"][:12], f(trap["x"][:12]), "-o", ms=3, color="C1", label="GD, η = 2")
    ax.plot([trap["nearby"]], [f(trap["nearby"])], "*", ms=10, color="C2", label="minimum near x₀")
    ax.set_title("f(x) = x cos(0.15πx)")
    ax.set_xlabel("x")
    ax.legend()
    ax = axes[0, 1]
    ax.semilogy(np.abs(trap["x"] - trap["settled"]) + 1e-300, color="C1")
    ax.set_title("|x_t − x*|")
    ax.set_xlabel("step t")
    fig.tight_layout()
    written.append(savefig(fig, outdir / "gradient_descent_trap.png"))

    two = result["two_dimensional"]
    fig, axes = figure(1, width=4.5, height=3.6)
    ax = axes[0, 0]
    x1, x2 = np.meshgrid(np.linspace(-5.5, 1.0, 200), np.linspace(-3.0, 1.0, 200))
    ax.contour(x1, x2, x1**2 + 2 * x2**2, levels=15, colors="0.6", linewidths=0.7)
    ax.plot(two["x"][:, 0], two["x"][:, 1], "-o", ms=3, color="C1")
    ax.set_title("f = x₁² + 2x₂², η = 0.1")
    ax.set_xlabel("x₁")
    ax.set_ylabel("x₂")
    fig.tight_layout()
    written.append(savefig(fig, outdir / "gradient_descent_2d.png"))
    return written
