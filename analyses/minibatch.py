"""Minibatch efficiency (the book's section 11.5): vectorisation, and loss against wall time.

Part 1 computes one matrix product ``A = B C`` four ways, as the book does: element by element
(``A[i, j] = B[i, :] @ C[:, j]``), column by column, at once, and in blocks of 64 columns, and
reports GFLOP/s (``2 n^3`` floating-point operations). All four give the same matrix; the
speed differs by orders of magnitude because each Python-level call has a fixed cost and small
products use the cache and the vector units badly.

Part 2 trains linear regression on the airfoil data with the book's four settings (full batch
with lr 1, batch 1 with lr 0.005, batch 100 with lr 0.4, batch 10 with lr 0.05) and records
the full-data loss against the training wall time (evaluation excluded).

Timings vary from run to run and from machine to machine (and with the BLAS threads that
other processes leave free), so no timing enters the "agrees" column of the summary: timing
rows are reported with ``agrees=None``. The exact checks are the products' agreement, the
operation count, and the number of updates per epoch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import convexkit as ck
from analyses._common import row

TIMING_DEPENDENT = True  # its figures draw measured wall times (GFLOP/s, loss against seconds)

SETTINGS = (  # label, batch size, lr, epochs: the book's four runs
    ("gradient descent (batch 1500, lr 1)", 1500, 1.0, 10),
    ("SGD (batch 1, lr 0.005)", 1, 0.005, 2),
    ("batch 100, lr 0.4", 100, 0.4, 2),
    ("batch 10, lr 0.05", 10, 0.05, 2),
)


def product_methods(block: int = 64) -> dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]]:
    """The four ways of computing ``B @ C``, each returning a new matrix."""

    def elementwise(B: np.ndarray, C: np.ndarray) -> np.ndarray:
        A = np.empty((B.shape[0], C.shape[1]))
        for i in range(B.shape[0]):
            for j in range(C.shape[1]):
                A[i, j] = B[i, :] @ C[:, j]
        return A

    def by_columns(B: np.ndarray, C: np.ndarray) -> np.ndarray:
        A = np.empty((B.shape[0], C.shape[1]))
        for j in range(C.shape[1]):
            A[:, j] = B @ C[:, j]
        return A

    def at_once(B: np.ndarray, C: np.ndarray) -> np.ndarray:
        return B @ C

    def in_blocks(B: np.ndarray, C: np.ndarray) -> np.ndarray:
        A = np.empty((B.shape[0], C.shape[1]))
        for j in range(0, C.shape[1], block):
            A[:, j : j + block] = B @ C[:, j : j + block]
        return A

    return {
        "element by element": elementwise,
        "column by column": by_columns,
        "at once": at_once,
        f"blocks of {block} columns": in_blocks,
    }


def _best_time(function: Callable[[], Any], budget: float) -> float:
    """The fastest of repeated calls, repeating until ``budget`` seconds are spent (at least
    twice)."""
    best = math.inf
    spent = 0.0
    calls = 0
    while calls < 2 or spent < budget:
        start = time.perf_counter()
        function()
        elapsed = time.perf_counter() - start
        best = min(best, elapsed)
        spent += elapsed
        calls += 1
    return best


def run(quick: bool = False, seed: int = 0) -> dict[str, Any]:
    """Time the four matrix products and train the four batch sizes once each.

    Parameters
    ----------
    quick : bool
        Matrices of size 64 instead of 256, shorter timing budgets.
    seed : int
        Seed of the random matrices and of the training runs.

    Returns
    -------
    dict
        ``"products"`` (method, seconds, GFLOP/s, max deviation from ``B @ C``),
        ``"training"`` (label, batch size, seconds and losses at each evaluation) and the
        ``"summary"`` rows.
    """
    n = 64 if quick else 256
    rng = np.random.default_rng(seed)
    B, C = rng.standard_normal((n, n)), rng.standard_normal((n, n))
    reference = B @ C
    flops = 2 * n**3
    products = []
    for name, method in product_methods().items():
        deviation = float(np.max(np.abs(method(B, C) - reference)))
        budget = 0.0 if name == "element by element" else (0.05 if quick else 0.3)
        seconds = _best_time(lambda method=method: method(B, C), budget)
        products.append(
            {
                "method": name,
                "seconds": seconds,
                "gflops": flops / seconds / 1e9,
                "deviation": deviation,
            }
        )

    X, y = ck.data.airfoil()
    model = ck.models.linear_regression(5)
    training = []
    for label, batch_size, lr, epochs in SETTINGS:
        history = ck.train(
            model, ck.optim.sgd(lr), (X, y), batch_size=batch_size, epochs=epochs, seed=seed
        )
        training.append(
            {
                "label": label,
                "batch_size": batch_size,
                "seconds": history.seconds,
                "loss": history.loss[:, 0],
                "epochs": history.epochs,
                "steps": history.steps,
                "n_epochs": epochs,
                "seconds_per_epoch": float(np.mean(history.epoch_seconds)),
            }
        )

    scale = float(np.max(np.abs(reference)))
    summary = [
        row(
            f"{p['method']}: same matrix as B @ C ({n} x {n}), max deviation",
            "0 up to rounding",
            f"{p['deviation']:.2e}",
            p["deviation"] <= 1e-12 * n * scale,
        )
        for p in products
    ]
    summary.append(row(f"floating-point operations of one {n} x {n} product", flops, None, None))
    summary += [
        row(f"GFLOP/s, {p['method']} (timing: not compared)", None, f"{p['gflops']:.3g}", None)
        for p in products
    ]
    for entry in training:
        expected = math.ceil(X.shape[0] / entry["batch_size"])
        summary.append(
            row(
                f"updates per epoch, {entry['label']}",
                expected,
                entry["steps"] // entry["n_epochs"],
                entry["steps"] == expected * entry["n_epochs"],
            )
        )
        summary.append(
            row(
                f"seconds per epoch, {entry['label']} (timing: not compared)",
                None,
                f"{entry['seconds_per_epoch']:.3g}",
                None,
            )
        )
    return {"n": n, "products": products, "training": training, "summary": summary}


def plot(result: dict[str, Any], outdir: str | Path) -> list[Path]:
    """Two figures: GFLOP/s of the four products, and loss against wall time by batch size."""
    from convexkit.plotting import figure, savefig

    outdir = Path(outdir)
    fig, axes = figure(1, width=5.0, height=3.2)
    ax = axes[0][0]
    names = [p["method"] for p in result["products"]]
    ax.barh(names, [p["gflops"] for p in result["products"]])
    ax.set_xscale("log")
    ax.set_xlabel("GFLOP/s (log scale)")
    ax.set_title(f"A = B C, {result['n']} x {result['n']}")
    fig.tight_layout()
    paths = [savefig(fig, outdir / "minibatch_matmul_gflops.png")]

    fig, axes = figure(1, width=5.0, height=3.4)
    ax = axes[0][0]
    for entry in result["training"]:
        seconds = np.maximum(entry["seconds"][1:], 1e-5)  # the log axis cannot show t = 0
        ax.plot(seconds, entry["loss"][1:], marker=".", label=entry["label"])
    ax.set_xscale("log")
    ax.set_ylim(0.235, 0.35)
    ax.set_xlabel("training wall time (s, evaluation excluded)")
    ax.set_ylabel("loss")
    ax.set_title("airfoil linear regression: loss against time")
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(savefig(fig, outdir / "minibatch_loss_vs_time.png"))
    return paths
