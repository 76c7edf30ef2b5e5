"""Mixed precision: float16 without loss scaling fails on small gradients, scaling recovers FP32.

The task is a linear regression whose targets are of order 1e-3 and are fitted down to noise
of 3e-6 (a quantity measured in small units), trained by full-batch gradient descent with
``ck.train`` on a batch of models. Its loss is averaged over n examples, so the backward pass
starts from per-example gradients ``r_i / n`` that are n times smaller than the residuals:
near the optimum they fall below 2**-25 and round to zero in float16, the gradient vanishes
and training stalls far above the FP32 loss. Multiplying the loss by a scale (the seeds' 256,
a larger static one, or a dynamic scaler) lifts them back into float16's range, and the run
tracks FP32.

Measured against theory:

* the fractions of gradient entries that round to zero or to subnormals, predicted from the
  FP32 gradients and float16's thresholds (|g s| <= 2**-25, |g s| < 2**-14 - 2**-25), against
  what the float16 backward pass produced: exactly equal on the same gradients, and per step
  on the scaled run; on the unscaled run the underflow happens upstream, in the per-example
  gradients, and the stall is predicted by their threshold instead;
* the smallest static scale that recovers FP32, from the same threshold: ``s >= n 2**-25 /
  sigma`` (sigma the noise, i.e. the residuals at the optimum);
* updates lost to rounding when the weights are kept in float16 (no master weights): an update
  below half a unit in the last place of its weight, predicted against measured, per step.

Figures: gradient histograms against float16's representable range, with and without
scaling; the dynamic scale over training with the skipped steps marked; the loss curves.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

import convexkit as ck
from analyses._common import row
from convexkit import precision as mp
from convexkit.plotting import figure, savefig

F16 = mp.format_info("float16")
SCALE = 2.0**14  # the static scale of the headline comparison
TOLERANCE = 0.05  # "tracks FP32": final loss within 5 %


def _task(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray, float]:
    rng = np.random.default_rng(seed)
    noise = 3e-6
    X = rng.standard_normal((n, d))
    w = rng.standard_normal(d) * 1e-3 / np.sqrt(d)
    y = X @ w + noise * rng.standard_normal(n)
    return X, y, noise


def _fp32_descent(
    model: Any, X: np.ndarray, y: np.ndarray, lr: float, steps: int, seeds: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Parameter gradients and per-example gradients r_i / n along the FP32 gradient-descent
    trajectory, over the steps before the loss comes within a factor 2 of its final value
    (the descent; afterwards the FP32 gradients only shrink towards zero)."""
    X32, y32 = X.astype(np.float32), y.astype(np.float32)
    params = model.init(seeds, dtype="float32")
    optimizer = ck.optim.gd(lr)
    state = optimizer.init(params)
    grads, examples, losses = [], [], []
    for step in range(steps):
        loss, grad = model.loss_and_grad(params, X32, y32)
        grads.append(grad)
        examples.append((model.predict(params, X32) - y32) / X.shape[0])
        losses.append(loss)
        params, state = optimizer.update(params, grad, state, step)
    losses = np.stack(losses)
    descent = np.all(losses > 2 * losses[-1], axis=1)
    return np.stack(grads)[descent], np.stack(examples)[descent]


def run(quick: bool = False, seed: int = 0) -> dict:
    """Train the task in FP32, float16 with and without loss scaling, without master weights
    and in bfloat16; compare each measured quantity with its prediction.

    Returns
    -------
    dict
        ``"summary"`` rows (quantity, predicted, measured, agrees), the loss curves, the
        per-step statistics of each mixed-precision run and the gradients for the histograms.
    """
    start = time.perf_counter()
    n, d = (2048, 16) if quick else (4096, 16)
    epochs = 40 if quick else 60
    models = 2 if quick else 4
    lr = 0.5
    X, y, noise = _task(n, d, seed)
    model = ck.models.linear_regression(d)
    seeds = [seed + k for k in range(models)]
    common = dict(batch_size=n, epochs=epochs, seed=seeds, eval_every=n)

    def train(**options: Any) -> Any:
        return ck.train(model, ck.optim.gd(lr), (X, y), **common, **options)

    fp32 = train(precision="float32")
    fp16 = train(precision="float16")
    static = train(precision="float16", loss_scale=SCALE)
    seeds_run = train(precision="float16", loss_scale=256.0)
    # dynamic scaling from GradScaler's 2**16, the models started at different distances so
    # that the larger initial gradients overflow and the scale backs off, then grows back
    spread = np.array([0.01, 1.0] if quick else [0.01, 100.0, 1.0, 10.0])
    far = spread[:, None] * np.random.default_rng(seed + 1).standard_normal((models, d + 1))
    dynamic_scaler = mp.DynamicLossScaler(init_scale=2.0**16, growth_interval=10)
    dynamic = train(precision="float16", loss_scale=dynamic_scaler, init=far)
    no_master = train(precision="float16", loss_scale=SCALE, master_weights=False)
    bf16 = train(precision="bfloat16")

    # one run over a sweep of static scales: one scale per model, same start
    sweep_scales = 2.0 ** np.arange(0, 21, 2 if quick else 1)
    sweep = ck.train(
        model,
        ck.optim.gd(np.full(sweep_scales.size, lr)),
        (X, y),
        batch_size=n,
        epochs=epochs,
        seed=seed,
        eval_every=n,
        precision="float16",
        loss_scale=mp.StaticLossScaler(sweep_scales),
    )
    reference = float(np.mean(fp32.final_loss))
    ratio_sweep = sweep.final_loss / reference
    recovered = sweep_scales[np.abs(ratio_sweep - 1) < TOLERANCE]
    smallest = float(recovered.min()) if recovered.size else float("nan")
    sweep_skipped = np.asarray(sweep.stats["skipped"]).sum(axis=0)
    predicted_scale = n * F16.zero_threshold / noise

    # The stall of the unscaled run: its float16 gradient is exactly zero, and the largest
    # per-example gradient |r_i| / n sits at the threshold 2**-25, up to the float16 rounding
    # of the residual (bound u (|x.w| + |y_hat| + |y| + |r|), u = 2**-11).
    cast = mp.cast_function("float16")
    params16 = cast(np.asarray(fp16.params, dtype=np.float32))
    X32, y32 = X.astype(np.float32), y.astype(np.float32)
    y_hat = model.predict(params16, X32).astype(np.float64)
    bias = params16[:, -1:].astype(np.float64)
    residual = y_hat - y
    error = 2.0**-11 * (np.abs(y_hat - bias) + np.abs(y_hat) + np.abs(y) + np.abs(residual))
    largest = np.max(np.abs(residual), axis=1) / n
    margin = np.max(error, axis=1) / n
    _, stalled_grad = model.loss_and_grad(params16, cast(X32), cast(y32), cast=cast)
    stalled = bool(np.all(stalled_grad == 0))
    at_threshold = bool(np.all(np.abs(largest - F16.zero_threshold) <= margin))

    # predicted against measured underflow on the same gradients: the FP32 ones of the descent
    grads, per_example = _fp32_descent(model, X, y, lr, epochs, seeds)
    flat = grads.reshape(-1, grads.shape[-1])
    same = []
    for scale in (1.0, 256.0, SCALE):
        predicted = mp.predicted_gradient_fractions(flat, scale, "float16")
        measured = mp.measured_gradient_fractions(cast(flat * np.float32(scale)), "float16")
        same.append(all(np.array_equal(predicted[k], measured[k]) for k in predicted))

    st_static, st_seeds, st_fp16, st_lost = (
        static.stats,
        seeds_run.stats,
        fp16.stats,
        no_master.stats,
    )
    lost_equal = bool(np.array_equal(st_lost["lost"], st_lost["predicted_lost"]))

    def ratio(history: Any) -> float:
        return float(np.mean(history.final_loss) / reference)

    r16, rstatic, rseeds, rdyn = ratio(fp16), ratio(static), ratio(seeds_run), ratio(dynamic)
    summary = [
        row("final loss, float32 (mean over models)", None, reference, None),
        row("final loss ratio float16 unscaled / float32 (fails)", "> 10", r16, r16 > 10),
        row(
            "final loss ratio float16 static scale 2^14 / float32",
            "1 ± 0.05",
            rstatic,
            abs(rstatic - 1) < TOLERANCE,
        ),
        row(
            "final loss ratio float16 scale 256 (the seeds') / float32",
            "1 ± 0.05",
            rseeds,
            abs(rseeds - 1) < TOLERANCE,
        ),
        row(
            "final loss ratio float16 dynamic scale / float32",
            "1 ± 0.05",
            rdyn,
            abs(rdyn - 1) < TOLERANCE,
        ),
        row(
            "dynamic scaler: skipped steps (all models)",
            None,
            int(np.sum(dynamic.stats["skipped"])),
            None,
        ),
        row(
            "smallest static scale within 5 % of float32 (sweep); n 2^-25 / sigma keeps "
            "a one-sigma per-example gradient from rounding to 0",
            predicted_scale,
            smallest,
            None,
        ),
        row(
            "gradient entries to zero / subnormal / inf on the same FP32 gradients (descent, "
            "scales 1, 256, 2^14)",
            "predicted == measured",
            "equal" if all(same) else "differ",
            all(same),
        ),
        row(
            "unscaled run stalls where the largest r_i / n reaches 2^-25 (float16 gradient "
            "all zero; within the float16 rounding of r)",
            F16.zero_threshold,
            float(np.max(largest)),
            stalled and at_threshold,
        ),
        row(
            "gradient entries rounding to 0 per step, unscaled run: parameter-level "
            "prediction vs float16 backward (underflow happens upstream, in r_i / n)",
            float(st_fp16["predicted_zero"].mean()),
            float(st_fp16["zero"].mean()),
            None,
        ),
        row(
            "gradient entries subnormal per step, scale 256: prediction vs float16 backward",
            float(st_seeds["predicted_subnormal"].mean()),
            float(st_seeds["subnormal"].mean()),
            None,
        ),
        row(
            "updates lost to rounding without master weights (fraction, per step)",
            float(st_lost["predicted_lost"].mean()),
            float(st_lost["lost"].mean()),
            lost_equal,
        ),
        row(
            "final loss ratio float16 without master weights / float32",
            None,
            ratio(no_master),
            None,
        ),
        row(
            "final loss ratio bfloat16 unscaled / float32 (range of float32, 8-bit precision)",
            None,
            ratio(bf16),
            None,
        ),
    ]
    histories = {
        "float32": fp32,
        "float16": fp16,
        "float16, scale 2^14": static,
        "float16, scale 256": seeds_run,
        "float16, dynamic scale": dynamic,
        "float16, no master weights": no_master,
        "bfloat16": bf16,
    }
    return {
        "summary": summary,
        "n": n,
        "noise": noise,
        "epochs": {k: h.epochs for k, h in histories.items()},
        "loss": {k: np.asarray(h.loss) for k, h in histories.items()},
        "dynamic_stats": {k: np.asarray(v) for k, v in dynamic.stats.items()},
        "static_stats": {k: np.asarray(v) for k, v in st_static.items()},
        "lost_stats": {k: np.asarray(v) for k, v in st_lost.items()},
        "sweep_scales": sweep_scales,
        "sweep_ratio": np.asarray(ratio_sweep),
        "sweep_skipped": sweep_skipped,
        "parameter_gradients": np.abs(flat).ravel(),
        "example_gradients": np.abs(per_example).ravel(),
        "scale": SCALE,
        "dynamic_init_std": spread,
        "seconds": time.perf_counter() - start,
    }


def _regions(ax: Any) -> None:
    """Shade float16's zero, subnormal, normal and overflow ranges on a log2 axis."""
    z = np.log2(F16.zero_threshold)
    s = np.log2(F16.tiny)
    o = np.log2(F16.max)
    ax.axvspan(-60, z, color="tab:red", alpha=0.12, label="rounds to 0")
    ax.axvspan(z, s, color="tab:orange", alpha=0.12, label="subnormal")
    ax.axvspan(s, o, color="tab:green", alpha=0.08, label="normal")
    ax.axvspan(o, 40, color="tab:purple", alpha=0.12, label="overflow")


def plot(result: dict, outdir: str | Path) -> list[Path]:
    """Three figures: gradient histograms against float16's range (unscaled and scaled), the
    dynamic scale with skipped steps, and the loss curves."""
    outdir = Path(outdir)
    paths = []

    fig, axes = figure(2, 1, width=4.6, height=3.4)
    bins = np.arange(-60, 21, 1.0)
    for ax, shift, title in (
        (axes[0][0], 0.0, "no scaling"),
        (axes[0][1], np.log2(result["scale"]), "scale 2^14"),
    ):
        _regions(ax)
        for values, label, color in (
            (result["example_gradients"], "per-example r_i / n", "k"),
            (result["parameter_gradients"], "parameter gradients", "tab:blue"),
        ):
            positive = values[values > 0]
            ax.hist(
                np.log2(positive) + shift,
                bins=bins,
                histtype="step",
                color=color,
                label=label,
                density=True,
            )
        ax.set_xlim(-60, 20)
        ax.set_xlabel("log2 |gradient x scale|")
        ax.set_title(f"float16, {title}")
    axes[0][0].set_ylabel("density, FP32 descent")
    axes[0][0].legend(fontsize=7, loc="upper left")
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.15, top=0.92, wspace=0.18)
    paths.append(savefig(fig, outdir / "mixed_precision_histograms.png"))

    fig, axes = figure(1, 1, width=5.0, height=3.2)
    ax = axes[0][0]
    stats = result["dynamic_stats"]
    scale, skipped = stats["scale"], stats["skipped"].astype(bool)
    steps = np.arange(scale.shape[0])
    styles = ["-", "--", ":", "-."]
    for model in range(scale.shape[1]):
        std = result["dynamic_init_std"][model]
        ax.step(
            steps,
            np.log2(scale[:, model]),
            where="post",
            ls=styles[model % 4],
            lw=2.2 - 0.4 * model,
            label=f"initial weights ~ {std:g}",
        )
        ax.plot(steps[skipped[:, model]], np.log2(scale[skipped[:, model], model]), "rx")
    ax.plot([], [], "rx", label="skipped step (inf/NaN)")
    ax.axhline(
        np.log2(F16.overflow_threshold),
        color="gray",
        lw=0.8,
        label="65520: the scale itself overflows float16",
    )
    ax.set_xlabel("step")
    ax.set_ylabel("log2 loss scale")
    ax.set_title("dynamic loss scale (growth every 10 clean steps)")
    ax.legend(fontsize=7)
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.15, top=0.91)
    paths.append(savefig(fig, outdir / "mixed_precision_scale.png"))

    fig, axes = figure(2, 1, width=4.6, height=3.4)
    ax = axes[0][0]
    for name, loss in result["loss"].items():
        if name == "float16, dynamic scale":  # its other models start farther away
            curve, name = loss[:, 0], f"{name} (model 0)"
        else:
            curve = loss.mean(axis=1)
        ax.semilogy(result["epochs"][name.split(" (")[0]], curve, label=name)
    ax.set_xlabel("epoch (full-batch GD step)")
    ax.set_ylabel("training loss")
    ax.legend(fontsize=7)
    ax.set_title("float16 without scaling stalls")
    ax = axes[0][1]
    ax.loglog(result["sweep_scales"], result["sweep_ratio"], "o-")
    every = result["sweep_skipped"] == len(result["loss"]["float32"]) - 1
    ax.plot(
        result["sweep_scales"][every],
        result["sweep_ratio"][every],
        "rx",
        label="every step skipped (scale >= 65520 overflows)",
    )
    ax.axvline(
        result["n"] * F16.zero_threshold / result["noise"],
        color="k",
        ls="--",
        label="n 2^-25 / sigma",
    )
    ax.axhline(1.0, color="gray", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("static loss scale")
    ax.set_ylabel("final loss / float32")
    ax.legend(fontsize=7)
    ax.set_title("which scale recovers float32")
    fig.subplots_adjust(left=0.09, right=0.98, bottom=0.15, top=0.91, wspace=0.25)
    paths.append(savefig(fig, outdir / "mixed_precision_loss.png"))
    return paths
