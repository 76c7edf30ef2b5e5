"""Training 64 seeds at once against training one: the cost of the batch axis.

For the book's airfoil settings (linear regression, minibatches of 10 for two epochs, and
batch 1 for SGD) times ``ck.train`` with ``seed=0`` (one run) and with ``seed=range(64)`` (64
runs, each with its own initialisation and its own shuffle), side by side in one run: the two
are interleaved and the best of several repeats is kept, so that machine noise hits both alike.
Prints the wall time of each and the ratio 64 runs / 1 run; the target is a ratio below 5
(64 sequential runs would cost 64). There the work of a step is small and its fixed cost
(Python, dispatch) dominates, which the batch axis shares among the runs.

For contrast, a last case trains an MLP on the digits data, where the arithmetic itself
dominates: 64 runs do 64 times the floating-point work (forward, backward and the full-data
evaluations), so on a CPU the ratio approaches 64 whatever the batching; there the batch axis
pays off on a GPU.

Run with ``python -m analyses.benchmarks.training`` (``--quick`` for fewer repeats). Prints
numbers only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import convexkit as ck


def cases(quick: bool = False) -> list[tuple[str, Callable[[], tuple[Any, Any, Any]], int, float]]:
    """(name, factory of (model, optimizer, data), batch size, epochs) of each case."""

    def airfoil(optimizer: Any) -> Callable[[], tuple[Any, Any, Any]]:
        return lambda: (ck.models.linear_regression(5), optimizer, ck.data.airfoil())

    def digits() -> tuple[Any, Any, Any]:
        return ck.models.mlp([64, 32, 10]), ck.optim.adam(0.01), ck.data.digits()

    return [
        ("airfoil, SGD lr 0.05, batch 10, 2 epochs", airfoil(ck.optim.sgd(0.05)), 10, 2),
        ("airfoil, Adam lr 0.01, batch 10, 2 epochs", airfoil(ck.optim.adam(0.01)), 10, 2),
        ("airfoil, SGD lr 0.005, batch 1, 2 epochs", airfoil(ck.optim.sgd(0.005)), 1, 2),
        (
            f"contrast, compute-bound: digits MLP 64-32-10, Adam, batch 32, {0.5 if quick else 2} "
            "epochs",
            digits,
            32,
            0.5 if quick else 2,
        ),
    ]


def measure(
    factory: Callable[[], tuple[Any, Any, Any]],
    batch_size: int,
    epochs: float,
    runs: int,
    repeats: int,
) -> dict[str, float]:
    """Best wall times of one run and of ``runs`` runs at once, interleaved.

    Returns the total time of ``ck.train`` (evaluations included) and the training time alone
    (``History.epoch_seconds``, evaluation excluded) for both, and their ratios.
    """
    model, optimizer, data = factory()
    best: dict[str, float] = {}
    for _ in range(repeats):
        for label, seed in (("one", 0), ("batch", list(range(runs)))):
            start = time.perf_counter()
            history = ck.train(
                model, optimizer, data, batch_size=batch_size, epochs=epochs, seed=seed
            )
            total = time.perf_counter() - start
            steps = float(np.sum(history.epoch_seconds))
            best[f"{label}_total"] = min(best.get(f"{label}_total", np.inf), total)
            best[f"{label}_steps"] = min(best.get(f"{label}_steps", np.inf), steps)
    best["ratio_total"] = best["batch_total"] / best["one_total"]
    best["ratio_steps"] = best["batch_steps"] / best["one_steps"]
    return best


def main(argv: list[str] | None = None) -> int:
    """Time every case and print the table of times and ratios."""
    parser = argparse.ArgumentParser(
        prog="python -m analyses.benchmarks.training", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="fewer repeats, for a smoke run")
    parser.add_argument("--runs", type=int, default=64, help="runs trained at once (default 64)")
    args = parser.parse_args(argv)
    repeats = 2 if args.quick else 5
    print(f"ck.train: 1 run against {args.runs} runs at once (best of {repeats}, interleaved)")
    header = (
        f"{'case':<72} {'1 run':>9} {f'{args.runs} runs':>9} {'ratio':>7} {'ratio, steps only':>18}"
    )
    print(header)
    print("-" * len(header))
    for name, factory, batch_size, epochs in cases(args.quick):
        result = measure(factory, batch_size, epochs, args.runs, repeats)
        print(
            f"{name:<72} {result['one_total']:>8.3f}s {result['batch_total']:>8.3f}s "
            f"{result['ratio_total']:>6.2f}x {result['ratio_steps']:>17.2f}x"
        )
    print(
        f"target for the airfoil cases: ratio < 5 (running the {args.runs} seeds one after "
        f"another costs {args.runs}x); the compute-bound contrast does {args.runs}x the "
        "arithmetic"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
