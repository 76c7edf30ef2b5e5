"""Every airfoil experiment of the book's optimization chapter, over many seeds at once.

Linear regression on the standardised NASA airfoil self-noise data (1500 rows, loss
``(y_hat - y)^2 / 2``) trained with the settings of "Dive into Deep Learning", sections 11.5 to
11.10: gradient descent (batch 1500, lr 1, 10 epochs), SGD (batch 1, lr 0.005), minibatches of
100 (lr 0.4) and 10 (lr 0.05); momentum (lr 0.02 with beta 0.5, lr 0.01 and 0.005 with beta
0.9), AdaGrad (lr 0.1), RMSProp (lr 0.01, gamma 0.9), Adadelta (rho 0.9), Adam (lr 0.01) and
Yogi (lr 0.01), each with the book's epsilon, two epochs of minibatches of 10 unless said
otherwise. Every experiment trains all its seeds in one call.

Proven next to measured: the exact least-squares optimum f* (a lower bound on every final
loss); gradient descent's loss after k steps, predicted exactly from the eigendecomposition of
the Hessian H and each seed's initial point; and its stability condition eta * lambda_max(H) < 2,
which the book's lr = 1 violates (lambda_max = 2.098): the error along the top eigenvector grows
by |1 - eta * lambda_max| = 1.098 per step, invisible after 10 epochs, fatal after a hundred.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import convexkit as ck
from analyses._common import row

# label, group, optimizer factory, batch size, epochs
EXPERIMENTS: tuple[tuple[str, str, Any, int, int], ...] = (
    ("GD (batch 1500, lr 1)", "minibatch", lambda: ck.optim.sgd(1.0), 1500, 10),
    ("SGD (batch 1, lr 0.005)", "minibatch", lambda: ck.optim.sgd(0.005), 1, 2),
    ("batch 100, lr 0.4", "minibatch", lambda: ck.optim.sgd(0.4), 100, 2),
    ("batch 10, lr 0.05", "minibatch", lambda: ck.optim.sgd(0.05), 10, 2),
    ("momentum lr 0.02, β 0.5", "momentum", lambda: ck.optim.momentum(0.02, 0.5), 10, 2),
    ("momentum lr 0.01, β 0.9", "momentum", lambda: ck.optim.momentum(0.01, 0.9), 10, 2),
    ("momentum lr 0.005, β 0.9", "momentum", lambda: ck.optim.momentum(0.005, 0.9), 10, 2),
    ("AdaGrad lr 0.1", "adaptive", lambda: ck.optim.adagrad(0.1, eps=1e-6), 10, 2),
    ("RMSProp lr 0.01, γ 0.9", "adaptive", lambda: ck.optim.rmsprop(0.01, 0.9, eps=1e-6), 10, 2),
    ("Adadelta ρ 0.9", "adaptive", lambda: ck.optim.adadelta(0.9, eps=1e-5), 10, 2),
    ("Adam lr 0.01", "adaptive", lambda: ck.optim.adam(0.01, eps=1e-6), 10, 2),
    ("Yogi lr 0.01", "adaptive", lambda: ck.optim.yogi(0.01, eps=1e-3), 10, 2),
)

GROUPS = {
    "minibatch": "11.5: gradient descent, SGD, minibatches",
    "momentum": "11.6: momentum",
    "adaptive": "11.7-11.10: adaptive methods",
}


def least_squares(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """The exact minimiser ``[w, b]`` of ``mean((X w + b - y)^2) / 2``, its value, and the
    Hessian ``H = A^T A / n`` with ``A = [X, 1]``."""
    A = np.hstack([X, np.ones((X.shape[0], 1))])
    theta = np.linalg.lstsq(A, y, rcond=None)[0]
    value = 0.5 * float(np.mean((A @ theta - y) ** 2))
    return theta, value, A.T @ A / X.shape[0]


def gd_prediction(
    theta0: np.ndarray, theta_star: np.ndarray, f_star: float, H: np.ndarray, lr: float, steps: int
) -> np.ndarray:
    """Exact loss of gradient descent after ``steps`` steps from each row of ``theta0``:
    ``f* + e^T H e / 2`` with ``e = (I - lr H)^steps (theta0 - theta*)``."""
    eigenvalues, vectors = np.linalg.eigh(H)
    error = (theta0 - theta_star) @ vectors
    error = error * (1.0 - lr * eigenvalues) ** steps
    return f_star + 0.5 * np.sum(eigenvalues * error**2, axis=1)


def run(quick: bool = False, seed: int = 0) -> dict[str, Any]:
    """Train every experiment over many seeds; compare with the exact optimum and GD theory.

    Parameters
    ----------
    quick : bool
        16 seeds per experiment instead of 100.
    seed : int
        Base of the seeds: experiment runs use seeds ``seed * 1000 + i``.

    Returns
    -------
    dict
        ``"experiments"`` (label, group, epochs, mean and spread of the loss curves, final
        losses), ``"optimum"``, ``"gd"`` (the exact predictions) and ``"summary"`` rows.
    """
    X, y = ck.data.airfoil()
    theta_star, f_star, H = least_squares(X, y)
    lam_max = float(np.linalg.eigvalsh(H)[-1])
    count = 16 if quick else 100
    seeds = [seed * 1000 + i for i in range(count)]
    model = ck.models.linear_regression(5)

    experiments = []
    summary = [
        row("least-squares optimum f* (normal equations)", round(f_star, 8), None, None),
    ]
    for label, group, factory, batch_size, epochs in EXPERIMENTS:
        history = ck.train(
            model, factory(), (X, y), batch_size=batch_size, epochs=epochs, seed=seeds
        )
        final = history.final_loss
        experiments.append(
            {
                "label": label,
                "group": group,
                "batch_size": batch_size,
                "epochs": history.epochs,
                "mean": history.loss.mean(axis=1),
                "low": np.quantile(history.loss, 0.1, axis=1),
                "high": np.quantile(history.loss, 0.9, axis=1),
                "final": final,
                "seconds_per_epoch": float(np.mean(history.epoch_seconds)),
            }
        )
        summary.append(
            row(
                f"final loss, {label}, {epochs} epochs (mean ± std over {count} seeds) vs f*",
                f">= {f_star:.6f}",
                f"{final.mean():.6f} ± {final.std(ddof=1):.6f} (gap {final.mean() - f_star:.2e})",
                bool(np.all(final >= f_star - 1e-12)),
            )
        )

    # gradient descent: exact prediction from the eigendecomposition, and stability
    theta0 = ck.models.linear_regression(5).init(seeds)
    gd = experiments[0]
    predicted = gd_prediction(theta0, theta_star, f_star, H, 1.0, 10)
    long_epochs = 100
    long = ck.train(
        model, ck.optim.sgd(1.0), (X, y), batch_size=1500, epochs=long_epochs, seed=seeds
    )
    predicted_long = gd_prediction(theta0, theta_star, f_star, H, 1.0, long_epochs)
    error = float(np.max(np.abs(gd["final"] - predicted) / predicted))
    error_long = float(np.max(np.abs(long.final_loss - predicted_long) / predicted_long))
    summary += [
        row(
            "GD lr 1, loss after 10 steps: f* + e^T H e / 2, e = (I - H)^10 e0 (mean over seeds)",
            float(predicted.mean()),
            float(gd["final"].mean()),
            error < 1e-9,
        ),
        row(
            "GD stability: eta * lambda_max(H) < 2 needed; the book's lr 1 gives",
            f"{lam_max:.4f} > 2: unstable, error grows x{abs(1 - lam_max):.4f} per step",
            f"loss after {long_epochs} epochs {np.median(long.final_loss):.3g} (median) "
            f"against {np.median(gd['final']):.4f} after 10",
            bool(lam_max > 2 and np.all(long.final_loss > gd["final"])),
        ),
        row(
            f"GD lr 1, loss after {long_epochs} steps (exact prediction, median over seeds)",
            float(np.median(predicted_long)),
            float(np.median(long.final_loss)),
            error_long < 1e-9,
        ),
    ]
    return {
        "experiments": experiments,
        "optimum": {"theta": theta_star, "loss": f_star, "lambda_max": lam_max},
        "gd": {
            "predicted": predicted,
            "predicted_long": predicted_long,
            "measured_long": long.final_loss,
            "long_epochs": long_epochs,
        },
        "seeds": count,
        "summary": summary,
    }


def plot(result: dict[str, Any], outdir: str | Path) -> list[Path]:
    """Loss curves of every optimizer (mean over seeds, 10-90% band) against epochs, with the
    exact optimum f* as a dashed line; one panel per section of the book."""
    from convexkit.plotting import figure, savefig

    f_star = result["optimum"]["loss"]
    fig, axes = figure(len(GROUPS), width=4.2, height=3.4)
    for ax, (group, title) in zip(axes[0], GROUPS.items(), strict=True):
        for experiment in (e for e in result["experiments"] if e["group"] == group):
            line = ax.plot(experiment["epochs"], experiment["mean"], label=experiment["label"])[0]
            ax.fill_between(
                experiment["epochs"],
                experiment["low"],
                experiment["high"],
                color=line.get_color(),
                alpha=0.15,
                linewidth=0,
            )
        ax.axhline(f_star, color="black", linestyle="--", linewidth=0.8, label=f"f* = {f_star:.4f}")
        ax.set_ylim(0.235, 0.35)
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel(f"loss (mean over {result['seeds']} seeds, 10-90% band)")
    fig.tight_layout()
    return [savefig(fig, Path(outdir) / "airfoil_loss_curves.png")]
