"""Adaptive methods on the book's test function (seeds, sections 11.7 to 11.10).

* f = 0.1 x₁² + 2 x₂² from (−5, −2), as the book draws AdaGrad (η = 0.4 and 2) and RMSProp
  (η = 0.4, γ = 0.9): the paths of AdaGrad, RMSProp, Adadelta, Adam, Yogi, AMSGrad and, for
  comparison, Nesterov, each over the contours, and the loss against the step for all of them
  from the same start. Each method runs once, as a batch over its hyperparameters.
* What is exact: the first step of every method is a closed form of the first gradient
  g = (−1, −8) (Adam's bias correction makes it η g/(|g| + ε), so |Δxᵢ| = η on every
  coordinate whatever the size of gᵢ; RMSProp's uncorrected s₁ = (1 − γ) g² makes it
  η/√(1 − γ); Adadelta's is √(ε/(1 − ρ))). On a constant gradient AdaGrad's effective
  learning rate η/√(s_t + ε) = η/√(t g² + ε) decays like t^(−1/2), while RMSProp's tends to
  η/|g|. Nesterov on this quadratic converges at the spectral radius derived from its code.
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
DRAWN_STEPS = 20  # steps drawn over the contours, as in the book
LOSS_STEPS = 100
# name in ck.optim, label, the hyperparameter varied over the batch, its values, fixed ones
METHODS: tuple[tuple[str, str, str, tuple[float, ...], dict[str, float]], ...] = (
    ("adagrad", "AdaGrad", "lr", (0.4, 2.0), {}),
    ("rmsprop", "RMSProp, γ = 0.9", "lr", (0.4, 0.1), {"gamma": 0.9}),
    ("adadelta", "Adadelta", "rho", (0.9, 0.99), {}),
    ("adam", "Adam", "lr", (0.1, 0.4), {}),
    ("yogi", "Yogi", "lr", (0.1, 0.4), {}),
    ("amsgrad", "AMSGrad", "lr", (0.1, 0.4), {}),
    ("nesterov", "Nesterov, β = 0.5", "lr", (0.1, 0.3), {"beta": 0.5}),
)
# the seeds' defaults, which the optimizers use when eps is not given
EPS = {
    "adagrad": 1e-6,
    "rmsprop": 1e-6,
    "adadelta": 1e-5,
    "adam": 1e-6,
    "amsgrad": 1e-6,
    "yogi": 1e-3,
}
CONSTANT_GRADIENT = (3.0, 0.5)  # f = 3 x1 + x2/2
EFFECTIVE_LRS = (0.4, 2.0)
EFFECTIVE_GAMMA = 0.9
SYMBOLS = {"lr": "η", "rho": "ρ", "gamma": "γ", "beta": "β"}


def _first_step(name: str, varied: np.ndarray, fixed: dict[str, float], g: np.ndarray) -> Any:
    """The exact |Δx| of the first step, shape (B, d), from the formulas of the seeds."""
    g = np.abs(g)[None, :]
    v = varied[:, None]
    if name == "adagrad":
        return v * g / np.sqrt(g**2 + EPS[name])
    if name == "rmsprop":
        return v * g / np.sqrt((1 - fixed["gamma"]) * g**2 + EPS[name])
    if name == "adadelta":
        return np.sqrt(EPS[name]) * g / np.sqrt((1 - v) * g**2 + EPS[name])
    if name in ("adam", "amsgrad", "yogi"):  # v̂₁ = g, ŝ₁ = g² (Yogi: s₁ = (1 − β₂) g² too)
        return v * g / (g + EPS[name])
    if name == "nesterov":  # v₁ = g, x₁ = x₀ − η (g + β v₁)
        return v * (1 + fixed["beta"]) * g
    raise ValueError(f"name={name!r} has no first-step formula here")


def _paths(nesterov: Any) -> dict[str, Any]:
    """Every method on PROBLEM from X0, one batch per method over its hyperparameter."""
    problem = ck.Problem(PROBLEM)
    oracle = ck.oracle(problem)
    g0 = np.asarray(oracle.grad(np.asarray([X0])))[0]
    lam = np.asarray(CURVATURES)[None, :]
    runs = []
    summary = []
    first_rows = []
    for name, label, param, values, fixed in METHODS:
        varied = np.asarray(values)
        optimizer = getattr(ck.optim, name)(**{param: varied}, **fixed)
        trace = ck.run(problem, optimizer, list(X0), LOSS_STEPS, path="array")
        runs.append(
            {
                "name": name,
                "label": label,
                "param": param,
                "values": varied,
                "x": trace.x[: DRAWN_STEPS + 1],
                "loss": trace.loss,
            }
        )
        for value, loss in zip(values, trace.loss[-1], strict=True):
            summary.append(
                row(f"{name}, {param}={value}: loss after {LOSS_STEPS} steps", None, float(loss))
            )
        proven = _first_step(name, varied, fixed, g0)
        measured = np.abs(trace.x[1] - trace.x[0])
        deviation = float(np.max(np.abs(measured / proven - 1)))
        first_rows.append(
            row(
                f"{name}: first step |dx_i| from g = ({g0[0]:g}, {g0[1]:g}), largest over "
                f"coordinates and {param} in {values}; agrees: every entry to 1e-12 relative",
                float(proven.max()),
                float(measured.max()),
                deviation <= 1e-12,
            )
        )
        if name == "adam":
            ratio = measured / varied[:, None]
            bound = EPS[name] / np.min(np.abs(g0))
            first_rows.append(
                row(
                    f"adam: first step |dx_i| / lr = 1 for every coordinate (gradients differ "
                    f"{np.max(np.abs(g0)) / np.min(np.abs(g0)):g}-fold), up to eps/|g_i|; "
                    "the entry farthest from 1",
                    1.0,
                    float(ratio.flat[np.argmax(np.abs(ratio - 1))]),
                    bool(np.max(np.abs(ratio - 1)) <= bound * (1 + 1e-9)),
                )
            )
        if name == "nesterov":
            radius = nesterov.rate(eta=varied[:, None], lam=lam, beta=fixed["beta"]).max(axis=1)
            fit = ck.empirical_rate(trace, full=True)
            length = np.maximum(fit.stop - fit.start, 2)
            allowance = 0.005 + np.log(fit.stop / np.maximum(fit.start, 1)) / length
            for value, r, m, a in zip(values, radius, fit.rate, allowance, strict=True):
                first_rows.append(
                    row(
                        f"nesterov, lr={value}, beta={fixed['beta']}: rate of ||x_t|| = largest "
                        "spectral radius over the curvatures (0.2, 4)",
                        float(r),
                        float(m),
                        bool(abs(m / r - 1) <= a),
                    )
                )
    return {"runs": runs, "g0": g0, "summary": first_rows + summary}


def _effective_lr(quick: bool) -> dict[str, Any]:
    """AdaGrad and RMSProp on a constant gradient: |Δx_t| / |g| against t."""
    steps = 1000 if quick else 10000
    g = np.asarray(CONSTANT_GRADIENT)
    problem = ck.Problem(f"{g[0]:g}*x1 + {g[1]:g}*x2")
    t = np.arange(1, steps + 1)[:, None, None]
    lr = np.asarray(EFFECTIVE_LRS)
    gamma = EFFECTIVE_GAMMA
    adagrad = ck.run(problem, ck.optim.adagrad(lr), [0.0, 0.0], steps, path="array")
    rmsprop = ck.run(problem, ck.optim.rmsprop(lr, gamma), [0.0, 0.0], steps, path="array")
    measured_ada = np.abs(np.diff(adagrad.x, axis=0)) / g
    measured_rms = np.abs(np.diff(rmsprop.x, axis=0)) / g
    proven_ada = lr[None, :, None] / np.sqrt(t * g**2 + EPS["adagrad"])
    proven_rms = lr[None, :, None] / np.sqrt((1 - gamma**t) * g**2 + EPS["rmsprop"])
    dev_ada = float(np.max(np.abs(measured_ada / proven_ada - 1)))
    dev_rms = float(np.max(np.abs(measured_rms / proven_rms - 1)))
    tail = slice(steps // 10 - 1, steps)
    logt = np.log(t[tail, 0, 0])

    def slope(values: np.ndarray) -> float:
        """The log-log slope over the tail, of the trajectory and coordinate farthest from
        the median slope."""
        y = np.log(values[tail]).reshape(logt.size, -1)
        fits = np.polyfit(logt, y, 1)[0]
        return float(fits[np.argmax(np.abs(fits - np.median(fits)))])

    slope_ada, slope_rms = slope(measured_ada), slope(measured_rms)
    summary = [
        row(
            f"adagrad, constant g = {CONSTANT_GRADIENT}, lr in {EFFECTIVE_LRS}: effective lr "
            f"|dx_t|/|g| = lr/sqrt(t g^2 + eps), max relative deviation, t <= {steps}",
            0.0,
            dev_ada,
            dev_ada <= 1e-9,
        ),
        row(
            f"adagrad effective lr decays like t^(-1/2): log-log slope over t in "
            f"[{steps // 10}, {steps}]",
            -0.5,
            slope_ada,
            abs(slope_ada + 0.5) <= 1e-3,
        ),
        row(
            f"rmsprop (gamma={gamma}), same gradient: effective lr = lr/sqrt((1 - gamma^t) g^2 "
            "+ eps), max relative deviation",
            0.0,
            dev_rms,
            dev_rms <= 1e-9,
        ),
        row(
            f"rmsprop effective lr does not decay: log-log slope over t in "
            f"[{steps // 10}, {steps}]",
            0.0,
            slope_rms,
            abs(slope_rms) <= 1e-3,
        ),
    ]
    return {
        "t": t[:, 0, 0],
        "g": g,
        "lr": lr,
        "gamma": gamma,
        "adagrad": measured_ada,
        "rmsprop": measured_rms,
        "adagrad_proven": proven_ada,
        "rmsprop_proven": proven_rms,
        "summary": summary,
    }


def run(quick: bool = False, seed: int = 0) -> dict[str, Any]:
    """Run the paths and the constant-gradient study.

    Parameters
    ----------
    quick : bool
        A shorter constant-gradient run (1000 steps instead of 10000).
    seed : int
        Unused: everything here is deterministic.

    Returns
    -------
    dict
        ``"paths"`` (per method: iterates drawn, losses), ``"effective_lr"`` (measured and
        exact effective learning rates) and ``"summary"``.
    """
    paths = _paths(ck.stability_region("nesterov"))
    effective = _effective_lr(quick)
    return {
        "paths": paths,
        "effective_lr": effective,
        "summary": paths["summary"] + effective["summary"],
    }


def _contours(ax: Any) -> None:
    x1, x2 = np.meshgrid(np.linspace(-5.5, 2.0, 200), np.linspace(-3.0, 2.5, 200))
    ax.contour(x1, x2, 0.1 * x1**2 + 2 * x2**2, levels=12, colors="0.6", linewidths=0.7)
    ax.set_xlim(-5.5, 2.0)
    ax.set_ylim(-3.0, 2.5)
    ax.set_xlabel("x₁")
    ax.set_ylabel("x₂")


def _setting(entry: dict[str, Any], value: float) -> str:
    return f"{SYMBOLS[entry['param']]} = {value:g}"


def plot(result: dict[str, Any], outdir: str | Path) -> list[Path]:
    """Two figures: the paths with the loss panel, and the effective learning rates.

    Parameters
    ----------
    result : dict
        What :func:`run` returned.
    outdir : str or Path
        Folder of the figures.

    Returns
    -------
    list of Path
        ``adaptive_paths.png`` and ``adaptive_effective_lr.png``.
    """
    outdir = Path(outdir)
    written = []
    runs = result["paths"]["runs"]
    fig, axes = figure(4, 2, width=3.4, height=3.0)
    flat = axes.ravel()
    styles = ("-", "--", ":")
    for ax, entry in zip(flat, runs, strict=False):
        _contours(ax)
        for k, value in enumerate(entry["values"]):
            path = entry["x"][:, k, :]
            ax.plot(
                path[:, 0],
                path[:, 1],
                "-o",
                ms=2.5,
                lw=1,
                color=f"C{k + 1}",
                label=_setting(entry, value),
            )
        ax.set_title(f"{entry['label']}, {DRAWN_STEPS} steps", fontsize=8)
        ax.legend(fontsize=7, loc="upper right")
    ax = flat[len(runs)]
    steps = np.arange(runs[0]["loss"].shape[0])
    for m, entry in enumerate(runs):
        for k, value in enumerate(entry["values"]):
            ax.semilogy(
                steps,
                np.maximum(entry["loss"][:, k], 1e-30),
                ls=styles[k % len(styles)],
                lw=1,
                color=f"C{m}",
                label=f"{entry['name']}, {_setting(entry, value)}",
            )
    ax.set_ylim(1e-16, 1e3)
    ax.set_xlabel("step t")
    ax.set_title("f(x_t), same start (−5, −2)", fontsize=8)
    ax.legend(fontsize=5, ncol=2, loc="lower left")
    for ax in flat[len(runs) + 1 :]:
        ax.set_visible(False)
    fig.tight_layout()
    written.append(savefig(fig, outdir / "adaptive_paths.png"))

    eff = result["effective_lr"]
    fig, axes = figure(2, width=4.2, height=3.4)
    for ax, name, title in (
        (axes[0, 0], "adagrad", "AdaGrad: η/√(t g² + ε)"),
        (axes[0, 1], "rmsprop", f"RMSProp (γ = {eff['gamma']}): η/√((1 − γᵗ) g² + ε)"),
    ):
        shown = np.unique(np.geomspace(1, eff["t"].size, 40).astype(int)) - 1
        for k, lr in enumerate(eff["lr"]):
            for j, g in enumerate(eff["g"]):
                color = f"C{2 * k + j}"
                ax.loglog(
                    eff["t"],
                    eff[f"{name}_proven"][:, k, j],
                    color=color,
                    lw=1,
                    label=f"η = {lr:g}, g = {g:g}",
                )
                ax.loglog(eff["t"][shown], eff[name][shown, k, j], "o", ms=2.5, color=color)
        ax.set_xlabel("step t")
        ax.set_ylabel("effective learning rate |Δx_t| / |g|")
        ax.set_title(f"{title} (lines), measured (dots)", fontsize=8)
        ax.legend(fontsize=7)
    fig.tight_layout()
    written.append(savefig(fig, outdir / "adaptive_effective_lr.png"))
    return written
