"""Gradient compression (the seeds' 梯度压缩: quantization and sparsification) with and without
error feedback: loss against the bytes the workers sent.

Four workers hold shards of a least-squares problem that disagree: at the optimum each worker's
own gradient is far from zero, only their average vanishes. Synchronous data parallelism with
gradient descent at a constant step then behaves as theory says:

* unbiased compressors (QSGD, TernGrad, random-k) add zero-mean noise: the loss falls to a noise
  floor, as SGD's does;
* biased compressors (scaled sign, top-k) without error feedback average to something that
  vanishes away from the optimum: the iterates stop at a wrong point;
* classic error feedback (Seide et al. 2014) keeps what compression dropped; with heterogeneous
  workers it reaches a neighbourhood of the optimum that shrinks with the step;
* EF21 (Richtarik et al. 2021) compresses the change of each worker's gradient estimate and
  converges to the optimum itself, at a linear rate.

Bytes come from each compressor's fixed-width encoding and the topology (ring all-reduce for
dense and float16 messages, all-gather for the others), per worker and step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import convexkit as ck
from analyses._common import row

WORKERS, PER_WORKER, DIM = 4, 25, 20
ROUNDING = 1e-15


def problem(seed: int) -> tuple[ck.FiniteSum, np.ndarray, float, float]:
    """(FiniteSum sharded over the workers, optimum, f*, L) of heterogeneous least squares."""
    rng = np.random.default_rng(seed)
    n = WORKERS * PER_WORKER
    A = rng.normal(size=(n, DIM)) + np.repeat(rng.normal(size=(WORKERS, DIM)), PER_WORKER, axis=0)
    y = rng.normal(size=n) + np.repeat(3 * rng.normal(size=WORKERS), PER_WORKER)

    def grad_i(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
        rows = A[idx]
        return (np.einsum("kbd,kd->kb", rows, x) - y[idx])[..., None] * rows

    def value_i(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return (np.einsum("kbd,kd->kb", A[idx], x) - y[idx]) ** 2 / 2

    optimum = np.linalg.lstsq(A, y, rcond=None)[0]
    best = float(np.mean((A @ optimum - y) ** 2) / 2)
    L = float(np.linalg.eigvalsh(A.T @ A / n).max())
    return ck.FiniteSum(grad_i, n, value_i=value_i), optimum, best, L


def compressors() -> dict[str, ck.parallel.Compressor]:
    """The compressors compared, by label."""
    return {
        "none (float32)": ck.parallel.identity(),
        "bfloat16": ck.parallel.cast("bfloat16"),
        "QSGD, 4 levels": ck.parallel.qsgd(4),
        "TernGrad": ck.parallel.terngrad(),
        "random-2": ck.parallel.randk(2),
        "scaled sign": ck.parallel.sign(),
        "top-2": ck.parallel.topk(2),
    }


FEEDBACK = {"none": False, "classic": True, "EF21": "ef21"}


def run(quick: bool = False, seed: int = 0) -> dict[str, Any]:
    """Train every compressor with each kind of error feedback and record loss and bytes.

    Parameters
    ----------
    quick : bool
        300 steps instead of 2000.
    seed : int
        Seed of the data and of the compressors' random numbers.

    Returns
    -------
    dict
        ``curves``: (compressor, feedback) -> (cumulative bytes, suboptimality) at every
        step; ``final``: the last suboptimality; ``summary``.
    """
    steps = 300 if quick else 2000
    data, optimum, best, L = problem(seed)
    lr = 0.5 / L
    curves: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    final: dict[tuple[str, str], float] = {}
    distance: dict[tuple[str, str], float] = {}
    for name, compressor in compressors().items():  # a handful of schemes, each a batch
        for feedback, flag in FEEDBACK.items():
            if name == "none (float32)" and feedback != "none":
                continue
            scheme = ck.parallel.synchronous(
                WORKERS,
                compressor=None if name == "none (float32)" else compressor,
                error_feedback=flag,
            )
            trace = ck.run(
                data,
                ck.optim.gd(lr),
                np.zeros(DIM),
                steps,
                seed=seed,
                parallel=scheme,
                record="loss",
            )
            # below about 1e-15 f* the difference is rounding, not progress
            gap = np.maximum(trace.loss[:, 0] - best, ROUNDING * best)
            curves[(name, feedback)] = (trace.bytes_total, gap)
            final[(name, feedback)] = float(gap[-1])
            distance[(name, feedback)] = float(np.linalg.norm(trace.x_final[0] - optimum))

    summary = [
        row(
            f"{name}: bits per message of {DIM} values",
            "fixed-width encoding",
            compressor.bits(DIM),
        )
        for name, compressor in compressors().items()
    ]
    reference = final[("none (float32)", "none")]
    for name in ("scaled sign", "top-2"):
        alone, ef21 = distance[(name, "none")], distance[(name, "EF21")]
        summary.append(
            row(
                f"{name} without error feedback: distance to the optimum after {steps} steps",
                "stalls away from it (biased, workers disagree)",
                f"{alone:.3g}",
                bool(alone > 0.05),
            )
        )
        summary.append(
            row(
                f"{name} with EF21: distance to the optimum",
                "converges to it (linear rate)",
                f"{ef21:.1e}",
                bool(ef21 < 1e-6) if not quick else bool(ef21 < 0.1 * alone),
            )
        )
        summary.append(
            row(
                f"{name} with classic error feedback: distance to the optimum",
                "a neighbourhood shrinking with the step",
                f"{distance[(name, 'classic')]:.3g}",
                bool(distance[(name, "classic")] < alone),
            )
        )
    summary.append(
        row(
            "uncompressed gradient descent: final suboptimality / f*",
            "linear convergence",
            f"{reference / best:.1e}",
            bool(reference < 1e-10 * best) if not quick else None,
        )
    )
    blown = [final[("random-2", f)] for f in ("classic", "EF21")]
    summary.append(
        row(
            "random-2 (scaled by d/k) with error feedback: final suboptimality",
            "no guarantee: E|C(v) - v|^2 = (d/k - 1)|v|^2 > |v|^2, not a contraction",
            ", ".join(f"{b:.1e}" for b in blown),
            bool(min(blown) > final[("random-2", "none")]),
        )
    )
    return {"curves": curves, "final": final, "distance": distance, "summary": summary}


def plot(result: dict[str, Any], outdir: str | Path) -> list[Path]:
    """``parallel_compression.png``: suboptimality against bytes sent, one panel per kind of
    error feedback."""
    from convexkit.plotting import figure, savefig

    fig, axes = figure(3, width=3.6, height=3.4, sharey=True)
    names = list(compressors())
    for ax, feedback in zip(axes[0], FEEDBACK, strict=True):
        for index, name in enumerate(names):
            key = (name, feedback)
            if key not in result["curves"]:
                key = (name, "none")  # the uncompressed reference, in every panel
            sent, gap = result["curves"][key]
            style = "-" if index < 5 else "--"
            ax.plot(
                np.maximum(sent[1:], 1.0), gap[1:], style, color=f"C{index}", lw=1.1, label=name
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(1e-15, 1e3)
        ax.set_xlabel("bytes sent by all workers")
        ax.set_title(f"error feedback: {feedback}", fontsize=9)
    axes[0][0].set_ylabel(r"$f(x_t) - f^\star$")
    axes[0][0].legend(fontsize=6, loc="lower left")
    fig.tight_layout()
    return [savefig(fig, Path(outdir) / "parallel_compression.png")]
