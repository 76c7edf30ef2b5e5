"""Rates: the spectral radius derived from the update code against the measured rate.

* Random diagonal quadratics (random spectra and hyperparameters) for gradient descent,
  momentum, Nesterov and delayed gradient descent: the measured rate of ||x_t|| against the
  largest spectral radius over the spectrum, one batch per method.
* The optimal constant tuning for a spectrum in [μ, L] (derived by the equioscillation
  conditions on the characteristic polynomial) against simulation over a range of condition
  numbers: the tuned methods converge at the predicted (κ−1)/(κ+1), (√κ−1)/(√κ+1) and
  1 − 2/√(3κ+1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import convexkit as ck
from analyses._common import row
from convexkit.plotting import figure, savefig

METHODS = ("gd", "momentum", "nesterov", "delayed_gd")
TUNED = ("gd", "momentum", "nesterov")


def _allowance(fit: Any) -> np.ndarray:
    """Relative allowance of a finite fit (a double eigenvalue's factor t), as in ck.compare."""
    length = np.maximum(fit.stop - fit.start, 2)
    return 0.005 + np.log(fit.stop / np.maximum(fit.start, 1)) / length


def _random_quadratics(name: str, rng: np.random.Generator, batch: int, steps: int) -> dict:
    dim = 4
    lam = rng.uniform(0.1, 1.0, (batch, dim))
    top = lam.max(axis=1)
    if name == "gd":
        lr = rng.uniform(0.05, 1.95, batch) / top
        region, optimizer = ck.stability_region("gd"), ck.optim.gd(lr)
        roots = region.roots(eta=lr[:, None], lam=lam)
    elif name == "delayed_gd":
        region = ck.stability_region("delayed_gd", tau=2)
        lr = rng.uniform(0.05, 0.95, batch) * float(region.intervals[0][1]) / top
        optimizer = ck.optim.delayed_gd(lr, 2)
        roots = region.roots(eta=lr[:, None], lam=lam)
    else:
        lr = rng.uniform(0.05, 1.5, batch) / top
        beta = rng.uniform(0.0, 0.9, batch)
        region = ck.stability_region(name)
        optimizer = getattr(ck.optim, name)(lr, beta)
        roots = region.roots(eta=lr[:, None], lam=lam, beta=beta[:, None])
    moduli = np.abs(roots).reshape(batch, -1)
    radius = moduli.max(axis=1)
    others = np.where(moduli < radius[:, None] * (1 - 1e-9), moduli, 0.0).max(axis=1)
    x0 = rng.choice([-1.0, 1.0], (batch, dim)) * rng.uniform(0.5, 1.5, (batch, dim))
    trace = ck.run(lambda x: lam * x, optimizer, x0, steps)
    fit = ck.empirical_rate(trace, full=True)
    # identifiable: the dominant mode stands out, and ~40 steps remain before the float floor
    clear = (others <= 0.9 * radius) & (radius >= 0.5) & (radius < 0.995)
    off = np.abs(fit.rate / radius - 1) > _allowance(fit)
    return {
        "radius": radius,
        "measured": fit.rate,
        "clear": clear,
        "mismatches": int(np.sum(off & clear)),
        "above": int(np.sum((fit.rate > radius * (1 + _allowance(fit))) & (radius < 0.995))),
    }


def _tuned(name: str, quick: bool, rng: np.random.Generator) -> dict:
    kappas = np.geomspace(4.0, 400.0 if quick else 2000.0, 8 if quick else 16)
    dim = 8
    mu = np.ones(kappas.size)
    lam = 1 + (kappas - 1)[:, None] * rng.uniform(0, 1, (kappas.size, dim))
    lam[:, 0], lam[:, 1] = 1.0, kappas
    tuning = ck.optimal_hyperparameters(name, mu, kappas)
    optimizer = getattr(ck.optim, name)(**tuning.hyperparameters)
    x0 = rng.choice([-1.0, 1.0], (kappas.size, dim))
    trace = ck.run(lambda x: lam * x, optimizer, x0, 1500 if quick else 6000)
    fit = ck.empirical_rate(trace, full=True)
    off = np.abs(fit.rate / tuning.rate - 1) > _allowance(fit)
    return {
        "kappa": kappas,
        "predicted": tuning.rate,
        "measured": fit.rate,
        "formula": str(tuning.rate_in_kappa),
        "mismatches": int(np.sum(off)),
    }


def run(quick: bool = False, seed: int = 0) -> dict[str, Any]:
    """Simulate every batch; ``seed`` draws the spectra, hyperparameters and starts."""
    rng = np.random.default_rng(seed)
    batch, steps = (64, 400) if quick else (256, 1200)
    random = {name: _random_quadratics(name, rng, batch, steps) for name in METHODS}
    tuned = {name: _tuned(name, quick, rng) for name in TUNED}
    summary = []
    for name, found in random.items():
        summary.append(
            row(
                f"{name}: measured rate = spectral radius on random quadratics "
                "(identifiable runs, within the fit's allowance)",
                "max |root| of the char. polynomial",
                f"{found['mismatches']} mismatches in {int(found['clear'].sum())} runs",
                found["mismatches"] == 0,
            )
        )
        summary.append(
            row(
                f"{name}: no run decays slower than its spectral radius (beyond the allowance)",
                "measured <= radius (1 + allowance)",
                f"{found['above']} above in {found['radius'].size} runs",
                found["above"] == 0,
            )
        )
    for name, found in tuned.items():
        summary.append(
            row(
                f"{name} with the optimal tuning on spectra in [mu, L]: rate {found['formula']}",
                f"{found['predicted'].min():.4f} .. {found['predicted'].max():.4f}",
                f"{found['mismatches']} of {found['kappa'].size} condition numbers off",
                found["mismatches"] == 0,
            )
        )
    return {"random": random, "tuned": tuned, "summary": summary}


def plot(result: dict[str, Any], outdir: str | Path) -> list[Path]:
    """Two figures: measured rate against spectral radius, and the tuned rates against κ."""
    outdir = Path(outdir)
    written = []
    fig, axes = figure(4, width=3.0, height=3.0)
    for ax, (name, found) in zip(axes[0], result["random"].items(), strict=True):
        ax.plot([0, 1], [0, 1], color="0.5", lw=0.8)
        clear = found["clear"]
        ax.plot(found["radius"][clear], found["measured"][clear], ".", ms=3, color="C0")
        ax.plot(found["radius"][~clear], found["measured"][~clear], ".", ms=3, color="0.7")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("spectral radius (derived)")
        ax.set_title(name.replace("delayed_gd", "delayed GD, τ = 2"))
    axes[0, 0].set_ylabel("measured rate")
    fig.tight_layout()
    written.append(savefig(fig, outdir / "rates_spectral_radius.png"))

    fig, axes = figure(1, width=4.6, height=3.4)
    ax = axes[0, 0]
    for i, (name, found) in enumerate(result["tuned"].items()):
        ax.plot(
            found["kappa"],
            1 - found["predicted"],
            "-",
            color=f"C{i}",
            label=f"{name}: {found['formula']}",
        )
        ax.plot(found["kappa"], 1 - found["measured"], "o", ms=4, color=f"C{i}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("condition number κ = L/μ")
    ax.set_ylabel("1 − rate (lines derived, dots measured)")
    ax.set_title("optimal constant tuning on quadratics")
    ax.legend(fontsize=7)
    fig.tight_layout()
    written.append(savefig(fig, outdir / "rates_optimal_tuning.png"))
    return written
