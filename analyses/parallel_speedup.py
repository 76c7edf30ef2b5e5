"""Speedup of data-parallel training against the number of workers (the seeds' parameter server,
ring all-reduce, and gradient compression).

Strong scaling: a global minibatch of 256 examples is split over K workers; one worker needs
``COMPUTE`` seconds for all of it. Each step then costs ``COMPUTE / K`` plus the exchange, in
the latency-bandwidth (alpha-beta) model of :mod:`convexkit.parallel.communication`: ring
all-reduce (dense or float16 messages) or all-gather (sparse and quantized messages, which
cannot be summed on the way), or a parameter server that every worker pushes its message to and
pulls the dense parameters from.

Left: a ResNet-50-sized model (25.6 M parameters) on 100 Gbit/s links, with a parameter server
sharded over 8 machines, closed form.
Right: the simulator's clock (``ParallelTrace.seconds``, with a fixed compute time per example)
for a model 10^4 times smaller on a network 10^4 times slower, so that the bandwidth terms keep
their ratio to the compute, against the closed form of the same model; the two must agree to
rounding. The time model uses fixed compute times, so the figure is the same on every machine;
measured timings belong to ``analyses/benchmarks/parallel.py``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

import convexkit as ck
from analyses._common import row

WORKERS = np.array([1, 2, 4, 8, 16, 32, 64])
BATCH = 256
COMPUTE = 0.25  # seconds one worker needs for the whole global batch
D_MODEL = 25_600_000
# 100 Gbit/s links; the parameter server is sharded over 8 machines
NETWORK = ck.parallel.Network(latency=5e-6, bandwidth=12.5e9, servers=8)
SCALE = 1e-4  # the simulated model: d and bandwidth scaled by this factor


def _compressors(d: int) -> dict[str, Any]:
    return {
        "dense float32": None,
        "top-1%": ck.parallel.topk(max(1, d // 100)),
        "QSGD, 15 levels": ck.parallel.qsgd(15),
    }


def _closed_form(
    d: int, network: ck.parallel.Network, workers: np.ndarray
) -> dict[str, np.ndarray]:
    curves = {}
    for topology in ("ring", "parameter_server"):
        for name, compressor in _compressors(d).items():
            curves[f"{topology}, {name}"] = ck.parallel.speedup(
                workers,
                compute_seconds=COMPUTE,
                d=d,
                compressor=compressor,
                topology=topology,
                network=network,
            )
    return curves


def _zeros_grad_i(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Per-example gradients of a model whose gradient is always zero (the clock is what is
    measured here, not the optimization)."""
    return np.zeros(idx.shape + x.shape[1:])


def _simulated(d: int, network: ck.parallel.Network, workers: np.ndarray) -> dict[str, np.ndarray]:
    """COMPUTE / (simulated seconds per step) for K >= 2 workers: the speedup over one
    machine training alone, as :func:`convexkit.parallel.speedup` defines it."""
    data = ck.FiniteSum(_zeros_grad_i, BATCH, batch_size=1)
    curves = {}
    for topology in ("ring", "parameter_server"):
        for name, compressor in _compressors(d).items():
            step_seconds = []
            for k in workers.tolist():  # one simulation per worker count: the shapes differ
                scheme = ck.parallel.synchronous(
                    k,
                    topology=topology,
                    compressor=compressor,
                    batch_sizes=[BATCH // k] * k,
                    network=network,
                    seconds_per_example=COMPUTE / BATCH,
                )
                trace = ck.run(
                    data,
                    ck.optim.sgd(0.1),
                    np.zeros(d),
                    2,
                    seed=0,
                    parallel=scheme,
                    record="final",
                )
                step_seconds.append(trace.seconds[-1] / trace.steps)
            curves[f"{topology}, {name}"] = COMPUTE / np.asarray(step_seconds)
    return curves


def run(quick: bool = False, seed: int = 0) -> dict[str, Any]:
    """Closed-form speedups of the large model, and simulated against closed form for the
    scaled one.

    Parameters
    ----------
    quick : bool
        Workers up to 16 only.
    seed : int
        Unused (nothing random); kept for the common signature.

    Returns
    -------
    dict
        ``workers``, ``large`` (closed-form speedup curves), ``small_simulated`` and
        ``small_closed`` (the scaled model), ``summary``.
    """
    workers = WORKERS[WORKERS <= 16] if quick else WORKERS
    small_d = int(D_MODEL * SCALE)
    small_network = dataclasses.replace(NETWORK, bandwidth=NETWORK.bandwidth * SCALE)
    large = _closed_form(D_MODEL, NETWORK, workers)
    several = workers[workers >= 2]
    simulated = _simulated(small_d, small_network, several)
    closed = _closed_form(small_d, small_network, workers)

    summary = []
    for name in closed:
        deviation = float(np.max(np.abs(simulated[name] / closed[name][workers >= 2] - 1)))
        summary.append(
            row(
                f"simulated clock against the alpha-beta speedup, {name} (max rel. deviation)",
                "0 (same time model)",
                f"{deviation:.1e}",
                deviation < 1e-9,
            )
        )
    largest = int(workers[-1])
    for name, curve in large.items():
        best = int(np.argmax(curve))
        summary.append(
            row(
                f"25.6M parameters, {name}: speedup at K = {largest} (best)",
                "alpha-beta model",
                f"{curve[-1]:.2f} ({curve[best]:.2f} at K = {workers[best]})",
            )
        )
    dense, sparse = large["ring, dense float32"], large["ring, top-1%"]
    ahead = workers[sparse > dense]
    summary.append(
        row(
            "ring: top-1% ahead of dense all-reduce from K =",
            "alpha-beta model",
            str(int(ahead[0])) if ahead.size else "never",
        )
    )
    return {
        "workers": workers,
        "large": large,
        "small_simulated": simulated,
        "simulated_workers": several,
        "small_closed": closed,
        "small_d": int(D_MODEL * SCALE),
        "summary": summary,
    }


def plot(result: dict[str, Any], outdir: str | Path) -> list[Path]:
    """``parallel_speedup.png``: speedup against workers, closed form and simulated."""
    from convexkit.plotting import figure, savefig

    fig, axes = figure(2, width=4.6, height=3.6)
    workers = result["workers"]
    styles = {"dense float32": "-", "top-1%": "--", "QSGD, 15 levels": ":"}
    colors = {"ring": "C0", "parameter_server": "C3"}
    for ax, curves, title in (
        (axes[0][0], result["large"], "25.6M parameters, 100 Gbit/s (closed form)"),
        (
            axes[0][1],
            result["small_closed"],
            f"{result['small_d']} parameters, scaled network: simulated (o)",
        ),
    ):
        ax.plot(workers, workers, color="0.7", lw=0.8, label="ideal")
        for name, curve in curves.items():
            topology, compressor = name.split(", ", 1)
            label = f"{'ring' if topology == 'ring' else 'param. server'}, {compressor}"
            ax.plot(workers, curve, styles[compressor], color=colors[topology], label=label)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log", base=2)
        ax.set_xlabel("workers K")
        ax.set_ylabel("speedup T(1) / T(K)")
        ax.set_title(title, fontsize=8)
    for name, curve in result["small_simulated"].items():
        topology = name.split(", ", 1)[0]
        axes[0][1].plot(
            result["simulated_workers"], curve, "o", ms=3, color=colors[topology], mfc="none"
        )
    axes[0][0].legend(fontsize=6, loc="upper left")
    fig.tight_layout()
    return [savefig(fig, Path(outdir) / "parallel_speedup.png")]
