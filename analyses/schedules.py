"""Learning-rate schedules (seeds 11.4.2 and 11.11): every schedule with and without a linear
warmup over the first 10% of steps, and noisy SGD driven by each of them.

``run`` evaluates each schedule on the whole range of steps at once (the closed forms are
vectorized over t) and checks the promises the schedules make: cosine ends at its final
value, the factor schedule stops at its floor, warmup starts at its first value and joins
the schedule, decays never increase. It then runs SGD with additive gradient noise on the
seeds' quadratic f(x) = x₁² + 2x₂² for many seeds at once and compares the final loss of each
decaying schedule with that of the constant rate (seeds 11.4.3: under gradient noise the
learning rate must decay for the iterates to settle).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from analyses._common import row
from convexkit import optim, schedules
from convexkit.plotting import figure, savefig

BASE_LR = 0.1


def _catalogue(steps: int) -> dict[str, schedules.Schedule]:
    return {
        "constant": schedules.constant(BASE_LR),
        "factor": schedules.factor(0.9, 0.01, BASE_LR),
        "multi_factor": schedules.multi_factor([int(0.3 * steps), int(0.6 * steps)], 0.5, BASE_LR),
        "piecewise_constant": schedules.piecewise_constant([steps // 2], [BASE_LR, 0.2 * BASE_LR]),
        "exponential": schedules.exponential(BASE_LR, 3.0 / steps),
        "polynomial": schedules.polynomial(BASE_LR, 0.5, 0.1),
        "inverse_time": schedules.inverse_time(BASE_LR, 0.05),
        "square_root": schedules.square_root(BASE_LR),
        "cosine": schedules.cosine(steps, BASE_LR, 0.001),
    }


def _sgd_losses(
    schedule: schedules.Schedule, steps: int, runs: int, noise: float, seed: int
) -> np.ndarray:
    """Mean loss over ``runs`` SGD trajectories on x₁² + 2x₂² with Gaussian gradient noise."""
    rng = np.random.default_rng(seed)
    curvature = np.array([2.0, 4.0])
    x = np.tile(np.array([[-5.0, -2.0]]), (runs, 1))
    opt = optim.sgd(schedule)
    state = opt.init(x)
    losses = [np.mean(np.sum(0.5 * curvature * x * x, axis=1))]
    for step in range(steps):
        grad = curvature * x + noise * rng.standard_normal(x.shape)
        x, state = opt.update(x, grad, state, step)
        losses.append(np.mean(np.sum(0.5 * curvature * x * x, axis=1)))
    return np.array(losses)


def run(quick: bool = False, seed: int = 0) -> dict[str, Any]:
    """Schedule values with and without warmup, their checks, and noisy SGD per schedule.

    Returns
    -------
    dict
        ``steps`` (array of t), ``plain`` and ``warmed`` (name -> values), ``cosine_warmup``
        (cosine with its own warmup), ``sgd`` and ``sgd_warmed`` (name -> mean loss per
        step), and ``summary`` (rows of proven against measured).
    """
    steps = 200
    runs = 64 if quick else 512
    ramp = steps // 10
    t = np.arange(steps + 1)
    catalogue = _catalogue(steps)
    warmed = {name: schedules.warmup(s, ramp) for name, s in catalogue.items()}
    plain_values = {name: s(t) for name, s in catalogue.items()}
    warmed_values = {name: s(t) for name, s in warmed.items()}
    cosine_warmup = schedules.cosine(steps, BASE_LR, 0.001, warmup_steps=ramp)

    summary = []
    final = catalogue["cosine"](steps)
    summary.append(
        row(
            "cosine: value at t = max_update equals final_lr",
            0.001,
            final,
            bool(np.isclose(final, 0.001, rtol=1e-12)),
        )
    )
    floor = float(np.min(plain_values["factor"]))
    summary.append(
        row(
            "factor: lowest value equals stop_factor_lr",
            0.01,
            floor,
            bool(np.isclose(floor, 0.01, rtol=1e-12)),
        )
    )
    starts = max(float(v[0]) for v in warmed_values.values())
    summary.append(row("warmup: every schedule starts at begin_lr", 0.0, starts, starts == 0.0))
    joins = max(abs(float(warmed_values[n][ramp] - plain_values[n][ramp])) for n in catalogue)
    summary.append(row("warmup: joins the schedule at t = W (max gap)", 0.0, joins, joins == 0.0))
    rises = min(float(np.min(np.diff(v[: ramp + 1]))) for v in warmed_values.values())
    summary.append(
        row("warmup: smallest increment during the ramp (>= 0)", ">= 0", rises, rises >= 0)
    )
    worst_rise = max(float(np.max(np.diff(v))) for v in plain_values.values())
    summary.append(
        row("decays: largest step-to-step increase (<= 0)", "<= 0", worst_rise, worst_rise <= 0)
    )
    scalar_gap = max(
        float(np.max(np.abs(plain_values[n] - np.array([s(int(k)) for k in t]))))
        for n, s in catalogue.items()
    )
    summary.append(
        row("array of t equals scalar calls (max difference)", 0.0, scalar_gap, scalar_gap <= 1e-15)
    )

    noise = 2.0
    sgd = {name: _sgd_losses(s, steps, runs, noise, seed) for name, s in catalogue.items()}
    sgd_warmed = {name: _sgd_losses(s, steps, runs, noise, seed) for name, s in warmed.items()}
    plateau = float(sgd["constant"][-1])
    for name in catalogue:
        if name == "constant":
            continue
        loss = float(sgd[name][-1])
        summary.append(
            row(
                f"noisy SGD, final loss with {name} < with constant lr",
                f"< {plateau:.4g}",
                loss,
                loss < plateau,
            )
        )

    return {
        "steps": t,
        "warmup_steps": ramp,
        "plain": plain_values,
        "warmed": warmed_values,
        "cosine_warmup": cosine_warmup(t),
        "sgd": sgd,
        "sgd_warmed": sgd_warmed,
        "noise": noise,
        "summary": summary,
    }


def plot(result: dict[str, Any], outdir: str | Path) -> list[Path]:
    """``schedules_values.png`` (each schedule, with and without warmup) and
    ``schedules_sgd.png`` (mean loss of noisy SGD per schedule)."""
    outdir = Path(outdir)
    t = result["steps"]
    names = list(result["plain"])
    cols = 3
    rows = -(-len(names) // cols)
    fig, axes = figure(cols, rows, width=3.6, height=2.6)
    for k, name in enumerate(names):
        ax = axes[k // cols][k % cols]
        ax.plot(t, result["plain"][name], label="schedule")
        ax.plot(t, result["warmed"][name], "--", label=f"warmup({result['warmup_steps']})")
        if name == "cosine":
            ax.plot(t, result["cosine_warmup"], ":", label="cosine warmup_steps")
        ax.set_title(name)
        ax.set_xlabel("step t")
        ax.set_ylabel("learning rate")
        ax.legend(fontsize=7)
    for k in range(len(names), rows * cols):
        axes[k // cols][k % cols].set_visible(False)
    fig.tight_layout()
    paths = [savefig(fig, outdir / "schedules_values.png")]

    fig, axes = figure(2, width=5.0, height=3.6)
    for ax, key, title in (
        (axes[0][0], "sgd", "no warmup"),
        (axes[0][1], "sgd_warmed", "with warmup"),
    ):
        for name, losses in result[key].items():
            ax.semilogy(t, losses, label=name)
        ax.set_title(f"SGD on x1² + 2 x2², noise σ = {result['noise']}, {title}")
        ax.set_xlabel("step t")
        ax.set_ylabel("mean loss")
        ax.legend(fontsize=6)
    fig.tight_layout()
    paths.append(savefig(fig, outdir / "schedules_sgd.png"))
    return paths
