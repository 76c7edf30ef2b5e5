"""SGD with noisy gradients under each learning-rate schedule (seeds, sections 11.4 and 11.11).

f(x) = x₁² + 2x₂² from (−5, −2), with every gradient coordinate perturbed by independent
N(0, σ²) noise, σ = 1. All schedules and all seeds run as one batch: the learning rate is a
function of the step that returns one value per trajectory.

On this quadratic the expected loss is known exactly for any schedule. With λ = (2, 4) and
x_{t+1} = (1 − η_t λ) x_t − η_t σ ξ_t per coordinate, the mean and the variance follow

    m_{t+1} = (1 − η_t λ) m_t,     v_{t+1} = (1 − η_t λ)² v_t + η_t² σ²,

and E f(x_t) = Σ λ/2 (m_t² + v_t). The average over the seeds must agree within six standard
errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import convexkit as ck
from analyses._common import row
from convexkit.plotting import figure, savefig

CURVATURES = np.array([2.0, 4.0])  # f = x1^2 + 2 x2^2 = sum lambda_i x_i^2 / 2
START = (-5.0, -2.0)
SIGMA = 1.0
STEPS = 100
BASE_LR = 0.1


def schedules() -> dict[str, Any]:
    """The schedules compared, all starting from η₀ = 0.1."""
    s = ck.schedules
    return {
        "constant": s.constant(BASE_LR),
        "exponential": s.exponential(BASE_LR, 0.03),
        "polynomial": s.polynomial(BASE_LR, alpha=0.5, beta=0.1),
        "inverse time": s.inverse_time(BASE_LR, 0.1),
        "square root": s.square_root(BASE_LR),
        "factor": s.factor(0.95, stop_factor_lr=0.01, base_lr=BASE_LR),
        "multi-factor": s.multi_factor([30, 60], factor=0.5, base_lr=BASE_LR),
        "cosine": s.cosine(STEPS, base_lr=BASE_LR, final_lr=1e-3),
    }


def expected_loss(rates: np.ndarray) -> np.ndarray:
    """Exact E f(x_t), t = 0 .. len(rates), for learning rates ``rates`` (one per step)."""
    squared_mean = np.asarray(START, dtype=float) ** 2
    variance = np.zeros(2)
    values = [float(CURVATURES @ (squared_mean + variance) / 2)]
    for eta in rates:
        factor = (1 - eta * CURVATURES) ** 2
        squared_mean = factor * squared_mean
        variance = factor * variance + eta**2 * SIGMA**2
        values.append(float(CURVATURES @ (squared_mean + variance) / 2))
    return np.asarray(values)


def run(quick: bool = False, seed: int = 0) -> dict[str, Any]:
    """Every schedule over ``repeats`` seeds, in one batch of trajectories."""
    named = schedules()
    repeats = 200 if quick else 2000
    steps = np.arange(STEPS)
    table = np.stack([np.asarray(named[name](steps), dtype=float) for name in named])

    def batched(t: int) -> np.ndarray:
        return np.repeat(table[:, t], repeats)  # trajectory k follows schedule k // repeats

    problem = ck.Problem("x1**2 + 2*x2**2")
    trace = ck.run(
        problem,
        ck.optim.sgd(batched),
        list(START),
        STEPS,
        noise=SIGMA,
        seed=seed,
        batch=len(named) * repeats,
        record="loss",
    )
    losses = trace.loss.reshape(STEPS + 1, len(named), repeats)
    mean = losses.mean(axis=2)
    error = losses.std(axis=2, ddof=1) / np.sqrt(repeats)
    exact = np.stack([expected_loss(rates) for rates in table])
    summary = []
    for k, name in enumerate(named):
        summary.append(
            row(
                f"SGD (sigma=1) with the {name} schedule: E f(x_T), T={STEPS}, "
                f"mean of {repeats} seeds (6 standard errors)",
                float(exact[k, -1]),
                f"{mean[-1, k]:.5f} ± {error[-1, k]:.5f}",
                bool(abs(mean[-1, k] - exact[k, -1]) <= 6 * error[-1, k]),
            )
        )
    return {
        "names": list(named),
        "rates": table,
        "mean": mean.T,
        "error": error.T,
        "exact": exact,
        "diverged": int(np.sum(trace.diverged)),
        "summary": summary,
    }


def plot(result: dict[str, Any], outdir: str | Path) -> list[Path]:
    """Schedules and the mean loss they give, measured against the exact expectation."""
    fig, axes = figure(2, width=4.4)
    steps = np.arange(STEPS + 1)
    for k, name in enumerate(result["names"]):
        color = f"C{k}"
        axes[0, 0].plot(steps[:-1], result["rates"][k], color=color, label=name)
        axes[0, 1].semilogy(steps, result["mean"][k], color=color, lw=1.2, label=name)
        axes[0, 1].semilogy(steps, result["exact"][k], color=color, lw=0.8, ls="--")
    axes[0, 0].set_title("learning rate η(t)")
    axes[0, 0].set_xlabel("step t")
    axes[0, 0].legend(fontsize=7)
    axes[0, 1].set_title("mean loss over seeds (dashed: exact)")
    axes[0, 1].set_xlabel("step t")
    fig.tight_layout()
    return [savefig(fig, Path(outdir) / "sgd_schedules.png")]
