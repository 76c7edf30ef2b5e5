"""Momentum (seeds, section 11.6): the ill-conditioned example, the weights, the scalar analysis.

* f = 0.1 x₁² + 2 x₂² from (−5, −2), curvatures λ = (0.2, 4). Gradient descent at η = 0.4
  crawls along x₁; at η = 0.6 it diverges in x₂ (|1 − ηλ₂| = 1.4). Momentum v ← βv + g,
  x ← x − ηv at η = 0.6 converges with β = 0.5 and with β = 0.25. The problem is diagonal, so
  every coordinate follows the scalar iteration with its own λ; the proven per-coordinate rate
  is the spectral radius of the momentum iteration matrix (``ck.stability_region``), measured
  on each coordinate of the simulated trajectories.
* The weights: after one unit gradient and none afterwards, v_τ = β^τ, the weight momentum
  gives a gradient τ steps old. They sum to the effective sample size 1/(1 − β). Measured
  from the displacements of one batched run with an impulse gradient.
* The scalar analysis on f = λx²/2: gradient descent gives x_t = (1 − ηλ)^t; momentum
  converges iff 0 < ηλ < 2 + 2β (the region derived from the update code), at the spectral
  radius of its iteration matrix. A grid of (ηλ, β) is simulated as one batch and its
  measured rates are compared with the region and the radius.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import convexkit as ck
from analyses._common import row
from convexkit.plotting import figure, savefig

PROBLEM = "0.1*x1**2 + 2*x2**2"
CURVATURES = (0.2, 4.0)  # Hessian diagonal of PROBLEM
X0 = (-5.0, -2.0)
DRAWN_STEPS = 20  # the steps drawn in the 2-D figure, as in the book
RATE_STEPS = 60  # steps simulated for the per-coordinate rates (|x2| < 1e10 at eta = 0.6)
# (eta, beta) of each run; beta = 0 is gradient descent
GD_SETTINGS = ((0.4, 0.0), (0.6, 0.0))
MOMENTUM_SETTINGS = ((0.6, 0.5), (0.6, 0.25))
WEIGHT_BETAS = (0.95, 0.9, 0.6, 0.0)
WEIGHT_STEPS = 1000  # 0.95**1000 < 1e-22: the sum of the weights is complete in float64
SCALAR_LR = 0.1
SCALAR_LAMBDAS = (0.1, 1.0, 10.0, 19.0)
SCALAR_STEPS = 20
SLICE_BETAS = (0.0, 0.25, 0.5, 0.9)
MARGIN = 0.05  # grid points this close (relative, in eta*lam) to the boundary are not scored


def _allowance(fit: Any) -> np.ndarray:
    """Relative allowance of a finite rate fit: a double eigenvalue's factor t biases it."""
    length = np.maximum(fit.stop - fit.start, 2)
    return 0.005 + np.log(fit.stop / np.maximum(fit.start, 1)) / length


def _ill_conditioned(region: Any) -> dict[str, Any]:
    """GD and momentum on 0.1 x1² + 2 x2², each a batch of its settings."""
    problem = ck.Problem(PROBLEM)
    runs = []
    summary = []
    for method, settings in (("gd", GD_SETTINGS), ("momentum", MOMENTUM_SETTINGS)):
        lr = np.array([s[0] for s in settings])
        beta = np.array([s[1] for s in settings])
        optimizer = ck.optim.gd(lr) if method == "gd" else ck.optim.momentum(lr, beta)
        trace = ck.run(problem, optimizer, list(X0), RATE_STEPS, path="array")
        lam = np.asarray(CURVATURES)[None, :]
        proven = region.rate(eta=lr[:, None], lam=lam, beta=beta[:, None])  # (B, 2)
        inside = region.contains(eta=lr[:, None], lam=lam, beta=beta[:, None])
        measured = np.empty_like(proven)
        allowance = np.empty_like(proven)
        for j in range(len(CURVATURES)):
            # the envelope spans half a turn of the slowest complex pair here (period ~28)
            fit = ck.empirical_rate(np.abs(trace.x[:, :, j]), envelope=14, full=True)
            measured[:, j] = fit.rate
            allowance[:, j] = _allowance(fit)
        for i, (eta, b) in enumerate(settings):
            name = f"GD, eta={eta}" if method == "gd" else f"momentum, eta={eta}, beta={b}"
            title = f"GD, η = {eta}" if method == "gd" else f"momentum, η = {eta}, β = {b}"
            runs.append({"label": title, "x": trace.x[: DRAWN_STEPS + 1, i, :]})
            for j, lam_j in enumerate(CURVATURES):
                close = abs(measured[i, j] / proven[i, j] - 1) <= allowance[i, j]
                summary.append(
                    row(
                        f"{name} on {PROBLEM}: rate of x{j + 1} (lambda={lam_j}) = spectral "
                        f"radius; converges: proven {bool(inside[i, j])}, measured "
                        f"{bool(measured[i, j] < 1)}",
                        float(proven[i, j]),
                        float(measured[i, j]),
                        bool(close and (measured[i, j] < 1) == inside[i, j]),
                    )
                )
    return {"runs": runs, "summary": summary}


def _weights() -> dict[str, Any]:
    """Impulse response of momentum: one unit gradient at t = 0, then none; eta = 1."""
    betas = np.asarray(WEIGHT_BETAS)

    def impulse(x: np.ndarray, t: int) -> np.ndarray:
        return np.full_like(x, 1.0 if t == 0 else 0.0)

    trace = ck.run(
        impulse, ck.optim.momentum(1.0, betas), [0.0], WEIGHT_STEPS, online=True, path="array"
    )
    # x_{tau+1} = x_tau - v_{tau+1} and v_{tau+1} = beta**tau: the weight of a tau-old gradient
    weights = -np.diff(trace.x[:, :, 0], axis=0)  # (steps, B)
    tau = np.arange(WEIGHT_STEPS)
    proven = betas[None, :] ** tau[:, None]
    ess_proven = 1 / (1 - betas)
    ess_measured = weights.sum(axis=0)
    deviation = float(np.max(np.abs(weights - proven)))
    summary = [
        row(
            f"momentum weights: v_tau = beta**tau after a unit gradient, max |measured - "
            f"beta**tau| over beta in {WEIGHT_BETAS}, tau < {WEIGHT_STEPS}",
            0.0,
            deviation,
            deviation <= 1e-12,
        )
    ]
    for beta, proven_sum, measured_sum in zip(betas, ess_proven, ess_measured, strict=True):
        summary.append(
            row(
                f"momentum beta={beta}: effective sample size sum_tau beta**tau = 1/(1 - beta)",
                float(proven_sum),
                float(measured_sum),
                bool(abs(measured_sum / proven_sum - 1) <= 1e-12),
            )
        )
    return {
        "betas": betas,
        "weights": weights,
        "ess": ess_proven,
        "ess_measured": ess_measured,
        "summary": summary,
    }


def _scalar_gd() -> dict[str, Any]:
    """GD on lam x²/2 for several lam at once: x_t = (1 - eta lam)^t."""
    lambdas = np.asarray(SCALAR_LAMBDAS)
    problem = ck.Problem("lam*x**2/2", params=["lam"])
    trace = ck.run(
        problem,
        ck.optim.gd(SCALAR_LR),
        [1.0],
        SCALAR_STEPS,
        params={"lam": lambdas},
        path="array",
    )
    x = trace.x[:, :, 0]
    proven = (1 - SCALAR_LR * lambdas)[None, :] ** np.arange(SCALAR_STEPS + 1)[:, None]
    deviation = float(np.max(np.abs(x - proven)))
    summary = [
        row(
            f"GD on lambda x^2/2, eta={SCALAR_LR}, lambda in {SCALAR_LAMBDAS}: max |x_t - "
            f"(1 - eta*lambda)^t|, t <= {SCALAR_STEPS}",
            0.0,
            deviation,
            deviation <= 1e-12,
        )
    ]
    return {"lambdas": lambdas, "x": x, "summary": summary}


def _region(region: Any, quick: bool) -> dict[str, Any]:
    """Measured rate over a grid of (eta*lam, beta), simulated as one batch (lam = 1)."""
    h = np.linspace(0.02, 4.4, 45 if quick else 161)
    beta = np.linspace(0.0, 0.95, 20 if quick else 77)  # contains every SLICE_BETAS
    hh, bb = np.meshgrid(h, beta)
    steps = 150 if quick else 400
    trace = ck.run(
        lambda x: x, ck.optim.momentum(hh.ravel(), bb.ravel()), [1.0], steps, path="array"
    )
    fit = ck.empirical_rate(trace, full=True)
    measured = fit.rate.reshape(hh.shape)
    allowance = _allowance(fit).reshape(hh.shape)
    radius = region.rate(eta=hh, lam=1.0, beta=bb)
    inside = region.contains(eta=hh, lam=1.0, beta=bb)
    book = (hh > 0) & (hh < 2 + 2 * bb)
    near = np.zeros_like(inside)
    for factor in (1 - MARGIN, 1 + MARGIN):
        near |= region.contains(eta=hh * factor, lam=1.0, beta=bb) != inside
    scored = ~near & ((radius < 0.995) | ~inside)
    disagreements = int(np.sum(((measured < 1) != inside) & scored))
    checked = scored & inside & (radius >= 0.5)  # at least ~40 steps above the float floor
    mismatches = int(
        np.sum((np.abs(measured / np.where(checked, radius, 1.0) - 1) > allowance) & checked)
    )
    spacing = float(h[1] - h[0])
    summary = [
        row(
            "momentum region derived from the update code = the book's 0 < eta*lam < 2 + 2 beta "
            f"on the {h.size} x {beta.size} grid (beta in [0, 0.95])",
            "0 < eta*lam < 2 + 2 beta",
            region.describe(),
            bool(np.array_equal(book, inside)),
        ),
        row(
            f"momentum grid: measured rate < 1 exactly inside the region (points >= "
            f"{MARGIN:.0%} from the boundary); disagreements in {int(scored.sum())} points",
            0,
            disagreements,
            disagreements == 0,
        ),
        row(
            "momentum grid: measured rate = spectral radius within the fit's allowance "
            f"(radius >= 0.5); points outside it, of {int(checked.sum())}",
            0,
            mismatches,
            mismatches == 0,
        ),
        row(
            "momentum grid: max |measured rate - spectral radius| over the checked points",
            0.0,
            float(np.max(np.abs(measured - radius)[checked])),
            None,
        ),
    ]
    slices = []
    for value in SLICE_BETAS:
        index = int(np.flatnonzero(np.isclose(beta, value))[0])
        rates = measured[index]
        # the measured limit: between the last grid point that converged and the next one
        last = int(np.flatnonzero(rates < 1).max())
        limit = (h[last] + h[min(last + 1, h.size - 1)]) / 2
        slices.append({"beta": value, "index": index, "limit": limit})
        summary.append(
            row(
                f"momentum beta={value}: largest stable eta*lam (measured to the grid spacing "
                f"{spacing:.3g})",
                2 + 2 * value,
                float(limit),
                bool(abs(limit - (2 + 2 * value)) <= spacing),
            )
        )
    return {
        "h": h,
        "beta": beta,
        "measured": measured,
        "radius": radius,
        "inside": inside,
        "slices": slices,
        "summary": summary,
    }


def run(quick: bool = False, seed: int = 0) -> dict[str, Any]:
    """Run the four studies.

    Parameters
    ----------
    quick : bool
        A coarser (eta*lam, beta) grid and shorter runs for the region.
    seed : int
        Unused: everything here is deterministic.

    Returns
    -------
    dict
        ``"ill_conditioned"``, ``"weights"``, ``"scalar_gd"``, ``"region"`` (each with its
        arrays and rows) and ``"summary"``, every row of the four.
    """
    region = ck.stability_region("momentum")
    parts = {
        "ill_conditioned": _ill_conditioned(region),
        "weights": _weights(),
        "scalar_gd": _scalar_gd(),
        "region": _region(region, quick),
    }
    summary = [r for part in parts.values() for r in part["summary"]]
    return {**parts, "summary": summary}


def _contours(ax: Any) -> None:
    x1, x2 = np.meshgrid(np.linspace(-5.5, 1.5, 200), np.linspace(-3.0, 3.0, 200))
    ax.contour(x1, x2, 0.1 * x1**2 + 2 * x2**2, levels=12, colors="0.6", linewidths=0.7)
    ax.set_xlim(-5.5, 1.5)
    ax.set_ylim(-3.0, 3.0)
    ax.set_xlabel("x₁")
    ax.set_ylabel("x₂")


def plot(result: dict[str, Any], outdir: str | Path) -> list[Path]:
    """Three figures: the 2-D trajectories, the weights, and the scalar analysis.

    Parameters
    ----------
    result : dict
        What :func:`run` returned.
    outdir : str or Path
        Folder of the figures.

    Returns
    -------
    list of Path
        ``momentum_2d.png``, ``momentum_weights.png``, ``momentum_scalar.png``.
    """
    outdir = Path(outdir)
    written = []

    runs = result["ill_conditioned"]["runs"]
    fig, axes = figure(len(runs), width=3.3, height=3.0)
    for ax, entry in zip(axes[0], runs, strict=True):
        _contours(ax)
        path = entry["x"]
        ax.plot(path[:, 0], path[:, 1], "-o", ms=2.5, lw=1, color="C1")
        ax.set_title(entry["label"], fontsize=8)
        end = path[-1]
        if np.max(np.abs(end)) > 3:
            ax.text(
                0.03,
                0.97,
                f"diverges: x after {len(path) - 1} steps = ({end[0]:.3g}, {end[1]:.3g})",
                transform=ax.transAxes,
                va="top",
                fontsize=7,
                color="C3",
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8},
            )
    fig.tight_layout()
    written.append(savefig(fig, outdir / "momentum_2d.png"))

    weights = result["weights"]
    fig, axes = figure(1, width=4.6, height=3.4)
    ax = axes[0, 0]
    shown = 40
    tau = np.arange(shown)
    for k, (beta, ess) in enumerate(zip(weights["betas"], weights["ess"], strict=True)):
        ax.plot(tau, beta**tau, color=f"C{k}", lw=1, label=f"β = {beta:.2f}, 1/(1−β) = {ess:.3g}")
        ax.plot(tau, weights["weights"][:shown, k], "o", ms=2.5, color=f"C{k}")
    ax.set_xlabel("τ (steps ago)")
    ax.set_ylabel("weight of the gradient")
    ax.set_title("momentum weights: βᵗ (lines), measured (dots)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    written.append(savefig(fig, outdir / "momentum_weights.png"))

    scalar = result["scalar_gd"]
    region = result["region"]
    fig, axes = figure(3, width=4.0, height=3.4)
    ax = axes[0, 0]
    steps = np.arange(scalar["x"].shape[0])
    for k, lam in enumerate(scalar["lambdas"]):
        ax.plot(steps, scalar["x"][:, k], "-o", ms=2.5, lw=1, label=f"λ = {lam:g}")
    ax.set_xlabel("step t")
    ax.set_ylabel("x_t")
    ax.set_title(f"GD on λx²/2, η = {SCALAR_LR}: x_t = (1 − ηλ)ᵗ", fontsize=8)
    ax.legend(fontsize=7)

    ax = axes[0, 1]
    image = ax.pcolormesh(
        region["h"],
        region["beta"],
        np.clip(region["measured"], 0.0, 1.5),
        cmap="viridis",
        vmin=0.0,
        vmax=1.5,
        shading="auto",
    )
    ax.plot(2 + 2 * region["beta"], region["beta"], color="white", lw=1.5, label="ηλ = 2 + 2β")
    ax.axvline(2.0, color="white", lw=0.8, ls=":", label="GD: ηλ = 2")
    ax.contour(
        region["h"],
        region["beta"],
        region["measured"],
        levels=[1.0],
        colors="red",
        linewidths=0.8,
        linestyles="--",
    )
    ax.set_xlabel("ηλ")
    ax.set_ylabel("β")
    ax.set_title("measured rate; red dashes: measured = 1", fontsize=8)
    ax.legend(fontsize=7, loc="upper left")
    fig.colorbar(image, ax=ax, shrink=0.85)

    ax = axes[0, 2]
    for k, entry in enumerate(region["slices"]):
        i = entry["index"]
        ax.plot(region["h"], region["radius"][i], color=f"C{k}", lw=1, label=f"β = {entry['beta']}")
        ax.plot(region["h"], region["measured"][i], ".", ms=3, color=f"C{k}")
    ax.axhline(1.0, color="C3", lw=0.8, ls="--")
    ax.set_ylim(0.0, 1.6)
    ax.set_xlabel("ηλ")
    ax.set_ylabel("rate per step")
    ax.set_title("spectral radius (lines), measured (dots)", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    written.append(savefig(fig, outdir / "momentum_scalar.png"))
    return written
