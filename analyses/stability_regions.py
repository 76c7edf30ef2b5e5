"""Stability regions derived from the update code, against simulation of the same code.

* Heavy-ball momentum and Nesterov on f = λx²/2: the measured rate of |x_t| over a grid of
  (ηλ, β), simulated as one batch, as a heatmap; the derived boundary (Jury conditions of the
  characteristic polynomial) drawn over it. Inside the region the measured rate is below 1,
  outside above, and it equals the spectral radius.
* Gradient descent with a gradient delayed by τ steps: the derived limit of ηλ for τ = 1..8
  (Schur–Cohn, exact algebraic numbers), the closed form 2 sin(π/(2(2τ+1))), and the limit
  measured by simulating a grid of ηλ around it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import convexkit as ck
from analyses._common import row
from convexkit.plotting import figure, savefig
from convexkit.theory.stability import delayed_gd_threshold

TAUS = tuple(range(1, 9))
MARGIN = 0.05  # points this close (relative) to the derived boundary are not scored


def _grid_rates(name: str, quick: bool) -> dict[str, Any]:
    """Measured and derived rates over a (eta*lam, beta) grid: one batch, one run."""
    region = ck.stability_region(name)
    h_max = 4.4 if name == "momentum" else 2.4
    h = np.linspace(0.01, h_max, 45 if quick else 161)
    beta = np.linspace(0.0, 0.99, 26 if quick else 100)
    hh, bb = np.meshgrid(h, beta)
    factory = getattr(ck.optim, name)
    trace = ck.run(lambda x: x, factory(hh.ravel(), bb.ravel()), [1.0], 150 if quick else 400)
    fit = ck.empirical_rate(trace, full=True)
    measured = fit.rate.reshape(hh.shape)
    # allowance of a finite fit: a double eigenvalue (error ~ t rho^t) biases it this much
    length = np.maximum(fit.stop - fit.start, 2)
    allowance = (0.005 + np.log(fit.stop / np.maximum(fit.start, 1)) / length).reshape(hh.shape)
    radius = region.rate(eta=hh, lam=1.0, beta=bb)
    inside = region.contains(eta=hh, lam=1.0, beta=bb)
    near = np.zeros_like(inside)
    for factor in (1 - MARGIN, 1 + MARGIN):
        near |= region.contains(eta=hh * factor, lam=1.0, beta=bb) != inside
    scored = ~near & (radius < 0.995) | ~near & ~inside
    agree = (measured < 1) == inside
    checked = scored & inside & (radius >= 0.5)  # at least ~40 steps to fit
    off = np.abs(measured / np.where(checked, radius, 1.0) - 1) > allowance
    return {
        "h": h,
        "beta": beta,
        "measured": measured,
        "radius": radius,
        "inside": inside,
        "scored": scored,
        "disagreements": int(np.sum(~agree & scored)),
        "scored_count": int(np.sum(scored)),
        "rate_mismatches": int(np.sum(off & checked)),
        "rate_checked": int(np.sum(checked)),
        "max_rate_error": float(np.max(np.abs(measured - radius)[checked])),
        "condition": region.describe(),
    }


def _delayed(quick: bool) -> dict[str, Any]:
    derived, closed, measured = [], [], []
    points = 41 if quick else 201
    for tau in TAUS:
        region = ck.stability_region("delayed_gd", tau=tau)
        limit = float(region.intervals[0][1])
        h = np.linspace(0.7, 1.3, points) * limit
        trace = ck.run(lambda x: x, ck.optim.delayed_gd(h, tau), [1.0], 600 if quick else 2500)
        rates = ck.empirical_rate(trace)
        below, above = h[rates < 1].max(), h[rates > 1].min()
        derived.append(limit)
        closed.append(float(delayed_gd_threshold(tau)))
        measured.append((below + above) / 2)
    return {
        "tau": np.array(TAUS),
        "derived": np.array(derived),
        "closed_form": np.array(closed),
        "measured": np.array(measured),
        "spacing": 0.6 / (points - 1),
    }


def run(quick: bool = False, seed: int = 0) -> dict[str, Any]:
    """Simulate the grids and the delayed limits; deterministic (no randomness is used)."""
    momentum = _grid_rates("momentum", quick)
    nesterov = _grid_rates("nesterov", quick)
    delayed = _delayed(quick)
    summary = []
    for name, grid in (("momentum", momentum), ("nesterov", nesterov)):
        summary.append(
            row(
                f"{name}: measured rate < 1 exactly inside the derived region "
                f"(grid points >= {MARGIN:.0%} from its boundary)",
                grid["condition"],
                f"{grid['disagreements']} disagreements in {grid['scored_count']} points",
                grid["disagreements"] == 0,
            )
        )
        summary.append(
            row(
                f"{name}: measured rate = spectral radius inside, within the fit's allowance "
                "0.005 + ln(stop/start)/(stop - start) (radius >= 0.5)",
                "spectral radius",
                f"{grid['rate_mismatches']} outside the allowance in {grid['rate_checked']} "
                f"points (max |difference| {grid['max_rate_error']:.3f})",
                grid["rate_mismatches"] == 0,
            )
        )
    relative = np.abs(delayed["measured"] - delayed["derived"]) / delayed["derived"]
    exact = np.abs(delayed["derived"] - delayed["closed_form"])
    summary.append(
        row(
            "delayed GD, tau = 1..8: derived limit of eta*lam = 2 sin(pi/(2(2 tau + 1)))",
            "2 sin(pi/(2(2 tau+1)))",
            f"max |derived - closed form| = {exact.max():.1e}",
            bool(exact.max() < 1e-12),
        )
    )
    summary.append(
        row(
            "delayed GD, tau = 1..8: measured limit / derived limit - 1 (max)",
            0.0,
            float(relative.max()),
            bool(relative.max() <= delayed["spacing"]),
        )
    )
    return {"momentum": momentum, "nesterov": nesterov, "delayed": delayed, "summary": summary}


def _heatmap(ax: Any, grid: dict[str, Any], title: str) -> Any:
    shown = np.clip(grid["measured"], 0.0, 1.5)
    image = ax.pcolormesh(
        grid["h"], grid["beta"], shown, cmap="viridis", vmin=0, vmax=1.5, shading="auto"
    )
    ax.contour(
        grid["h"],
        grid["beta"],
        grid["inside"].astype(float),
        levels=[0.5],
        colors="white",
        linewidths=1.5,
    )
    ax.contour(
        grid["h"],
        grid["beta"],
        grid["measured"],
        levels=[1.0],
        colors="red",
        linewidths=0.8,
        linestyles="--",
    )
    ax.set_xlabel("ηλ")
    ax.set_ylabel("β")
    ax.set_title(title, fontsize=8)
    return image


def plot(result: dict[str, Any], outdir: str | Path) -> list[Path]:
    """Two figures: the two heatmaps with their boundaries, and the delayed-GD limits."""
    outdir = Path(outdir)
    written = []
    fig, axes = figure(2, width=4.6, height=3.6)
    image = _heatmap(
        axes[0, 0], result["momentum"], "momentum: measured rate; white: 0 < ηλ < 2 + 2β"
    )
    _heatmap(axes[0, 1], result["nesterov"], "Nesterov: measured rate; white: derived boundary")
    fig.colorbar(
        image, ax=axes[0, :].tolist(), shrink=0.85, label="measured rate (red dashes: = 1)"
    )
    written.append(savefig(fig, outdir / "stability_regions.png"))

    delayed = result["delayed"]
    fig, axes = figure(1, width=4.6, height=3.4)
    ax = axes[0, 0]
    fine = np.linspace(1, 8, 200)
    ax.plot(
        fine,
        2 * np.sin(np.pi / (2 * (2 * fine + 1))),
        color="0.5",
        lw=1,
        label="2 sin(π/(2(2τ+1)))",
    )
    ax.plot(delayed["tau"], delayed["derived"], "o", color="C0", label="derived (Schur–Cohn)")
    ax.plot(delayed["tau"], delayed["measured"], "x", color="C3", label="measured")
    ax.set_xlabel("delay τ")
    ax.set_ylabel("largest stable ηλ")
    ax.set_yscale("log")
    ax.set_title("gradient descent with a delayed gradient")
    ax.legend()
    fig.tight_layout()
    written.append(savefig(fig, outdir / "stability_delayed_gd.png"))
    return written
