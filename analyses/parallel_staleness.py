"""Asynchronous updates with stale gradients (the seeds' 异步更新): convergence against the
staleness, with the stability boundary derived from the optimizer's code.

Gradient descent whose gradient was computed tau steps earlier, ``x_{t+1} = x_t - eta
grad f(x_{t-tau})``, on f = lam x^2 / 2 is a linear recursion with the characteristic polynomial
``z^{tau+1} - z^tau + eta lam``. ``ck.stability_region("delayed_gd", tau=tau)`` derives its
region from the update code of ``ck.optim.delayed_gd`` by the Jury / Schur-Cohn conditions, and
:func:`convexkit.theory.stability.delayed_gd_threshold` gives the closed form
``0 < eta lam < 2 sin(pi / (2 (2 tau + 1)))``.

The simulation runs the asynchronous parameter-server simulator (two workers, every gradient
exactly tau steps old) for a grid of (tau, eta lam), all runs in one batch, and measures each
run's growth rate. A second part draws the delays at random (uniform on 0 .. tau_max, per worker
and step) and sweeps the step size over independent repetitions; these Monte Carlo runs can run
on a Dask cluster (``run(client=...)``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import sympy as sp

import convexkit as ck
from analyses._common import row
from convexkit.theory.stability import delayed_gd_threshold

LAM = 1.0
WORKERS = 2
RANDOM_TAU = 4


def _growth_rate(x: np.ndarray) -> np.ndarray:
    """Per-step growth of |x| from the second quarter of the run to the last (maxima over each
    quarter, since complex roots make |x_t| oscillate), shape (runs,)."""
    steps = x.shape[0] - 1
    quarter = steps // 4
    early = np.abs(x[quarter : 2 * quarter]).max(axis=(0, 2))
    late = np.abs(x[3 * quarter :]).max(axis=(0, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = (late / early) ** (1.0 / (2 * quarter))
    # runs that reached the subnormal range have contracted past what the ratio can resolve
    return np.where(late < 1e-200, 0.0, rate)


def _quadratic_grad(x: Any) -> Any:
    return LAM * x


def run(quick: bool = False, seed: int = 0, client: Any = None) -> dict[str, Any]:
    """Simulate fixed and random staleness against the derived stability boundary.

    Parameters
    ----------
    quick : bool
        Fewer delays, grid points, steps and repetitions.
    seed : int
        Seed of the starting points and of the random delays.
    client : distributed.Client or str, optional
        Run the Monte Carlo sweep of random delays on this Dask cluster; the numbers are the
        same as without it.

    Returns
    -------
    dict
        ``taus``, ``eta_lam`` (grid), ``rate`` (tau x eta_lam growth rates), ``derived`` and
        ``closed`` boundaries, the random-delay sweep, ``summary``.
    """
    taus = np.arange(0, 5 if quick else 9)
    points = 40 if quick else 90
    steps = 400 if quick else 1200
    eta_lam = np.linspace(0.02, 2.2, points)
    closed = np.array([float(delayed_gd_threshold(int(t))) for t in taus])
    regions = [ck.stability_region("delayed_gd", tau=int(t)) for t in taus]

    # every (tau, eta lam) pair in one batch: per-run staleness and per-run step sizes
    per_run_tau = np.repeat(taus, points)
    per_run_eta = np.tile(eta_lam, taus.size) / LAM
    start = np.random.default_rng(seed).uniform(0.5, 1.0, size=(per_run_tau.size, 1))
    scheme = ck.parallel.asynchronous(WORKERS, tuple(per_run_tau.tolist()))
    trace = ck.run(
        _quadratic_grad,
        ck.optim.gd(per_run_eta),
        start,
        steps,
        parallel=scheme,
        threshold=1e200,
    )
    rate = _growth_rate(trace.x).reshape(taus.size, points)
    derived_inside = np.array(
        [[bool(region.contains(eta=e / LAM, lam=LAM)) for e in eta_lam] for region in regions]
    )

    # random delays: a sweep over the step size, several repetitions, optionally on a cluster
    random_points = 24 if quick else 60
    repeats = 3 if quick else 8
    random_grid = np.linspace(0.1, 1.2, random_points)
    random_scheme = ck.parallel.asynchronous(WORKERS, RANDOM_TAU, delays="uniform")
    swept = ck.sweep(
        _quadratic_grad,
        ck.optim.gd,
        {"lr": random_grid / LAM},
        [1.0],
        steps,
        repeats=repeats,
        seed=seed,
        chunk_size=random_points * repeats // 4,
        client=client,
        parallel=random_scheme,
        threshold=1e200,
    )
    contracting = np.mean(np.where(swept.diverged, False, swept.rate < 1), axis=1)

    summary = []
    derived = []
    for tau, region in zip(taus.tolist(), regions, strict=True):
        (low, high), *others = region.intervals  # one interval 0 < eta lam < high
        derived.append(float(high))
        gap = abs(sp.N(high - delayed_gd_threshold(tau), 50))
        summary.append(
            row(
                f"tau = {tau}: upper end of the region derived from delayed_gd's code",
                f"2 sin(pi/{2 * (2 * tau + 1)}) = {float(delayed_gd_threshold(tau)):.6f}",
                f"{sp.nsimplify(high) if tau < 2 else high} (difference {float(gap):.0e})",
                bool(gap < 1e-40 and low == 0 and not others),
            )
        )
    margin = np.abs(eta_lam[None, :] / closed[:, None] - 1) > 0.05  # never on the boundary
    simulated_inside = rate < 1
    agree = simulated_inside[margin] == derived_inside[margin]
    summary.append(
        row(
            "simulated runs contracting exactly where the derived region says (5% margin)",
            f"all {int(margin.sum())} grid points",
            f"{int(agree.sum())} of {int(margin.sum())}",
            bool(agree.all()),
        )
    )
    limit = float(delayed_gd_threshold(RANDOM_TAU))
    below = random_grid < 0.95 * limit
    summary.append(
        row(
            f"delays uniform on 0..{RANDOM_TAU}: runs contracting below the fixed-delay "
            f"boundary {limit:.3f}",
            "all (a step stable for the largest delay)",
            f"{contracting[below].mean():.0%} of runs",
            bool(np.all(contracting[below] == 1.0)),
        )
    )
    edge = random_grid[contracting < 0.5]
    summary.append(
        row(
            f"delays uniform on 0..{RANDOM_TAU}: largest eta lam where most runs contract",
            f"beyond the fixed-delay boundary {limit:.3f} (no proof)",
            f"{edge[0] if edge.size else random_grid[-1]:.3f}",
        )
    )
    return {
        "taus": taus,
        "eta_lam": eta_lam,
        "rate": rate,
        "derived_inside": derived_inside,
        "closed": closed,
        "derived": np.asarray(derived),
        "random_grid": random_grid,
        "random_contracting": contracting,
        "random_tau": RANDOM_TAU,
        "summary": summary,
    }


def plot(result: dict[str, Any], outdir: str | Path) -> list[Path]:
    """``parallel_staleness.png``: growth rate over (tau, eta lam) with the derived boundary,
    and the share of contracting runs under random delays."""
    from convexkit.plotting import figure, savefig

    fig, axes = figure(2, width=4.6, height=3.6)
    ax = axes[0][0]
    taus, eta_lam = result["taus"], result["eta_lam"]
    rate = np.clip(np.nan_to_num(result["rate"], nan=2.0, posinf=2.0), 0.8, 1.2)
    image = ax.pcolormesh(eta_lam, taus, rate, cmap="RdBu_r", vmin=0.8, vmax=1.2, shading="nearest")
    fig.colorbar(image, ax=ax, label="growth per step (simulated)")
    # the derived boundary of each row, drawn across the row's height
    edge = np.repeat(result["derived"], 2)
    rows = np.ravel(np.column_stack([taus - 0.5, taus + 0.5]))
    ax.plot(edge, rows, color="k", lw=1.2, label="derived region (Jury)")
    fine = np.linspace(0, taus.max(), 200)
    ax.plot(
        2 * np.sin(np.pi / (2 * (2 * fine + 1))),
        fine,
        "--",
        color="C2",
        lw=1,
        label=r"$2\sin(\pi/(2(2\tau+1)))$",
    )
    ax.set_xlabel(r"$\eta\lambda$")
    ax.set_ylabel(r"staleness $\tau$ (steps)")
    ax.set_title("asynchronous SGD, fixed staleness", fontsize=9)
    ax.legend(fontsize=7, loc="upper right")

    ax = axes[0][1]
    ax.plot(
        result["random_grid"],
        result["random_contracting"],
        "o-",
        ms=3,
        label=f"delays uniform on 0..{result['random_tau']}",
    )
    tau = result["random_tau"]
    ax.axvline(
        float(delayed_gd_threshold(tau)), color="k", lw=1, label=f"boundary for fixed delay {tau}"
    )
    ax.set_xlabel(r"$\eta\lambda$")
    ax.set_ylabel("share of runs that contract")
    ax.set_title("random delays (Monte Carlo)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return [savefig(fig, Path(outdir) / "parallel_staleness.png")]
