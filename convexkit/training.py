"""The minibatch trainer: many runs (seeds, learning rates) trained at once on the batch axis.

``train(model, optimizer, (X, y), batch_size=10, epochs=2, seed=range(64))`` trains 64 copies of
``model``, each from its own initialisation and with its own order of the examples, in one
loop over steps: every array has the runs on its first axis, and no Python loop runs over them.

Sampling. ``"shuffle"`` visits every example once per epoch in a new random order (sampling
without replacement, the book's ``DataLoader(shuffle=True)``); ``"replacement"`` draws every
example of every minibatch independently and uniformly. An epoch has ``ceil(n / batch_size)``
steps either way; the last minibatch is smaller when ``batch_size`` does not divide n.

Randomness. A run's initialisation and example order depend on its own seed only (counter-based
streams, :func:`convexkit.models.counter_bits`), so run i of ``seed=[3, 5]`` is exactly the run of
``seed=3``. With one int seed and hyperparameters given as arrays of shape (B,), all B runs start
from the same point and see the same minibatches: a controlled comparison of the
hyperparameters. Dropout masks come from one generator seeded with all the seeds.

Evaluation. The full-data objective is evaluated before training, after every step that takes
the number of examples seen past a multiple of ``eval_every``, and after the last step. The book
evaluates when that number is a multiple of 200: the two rules agree whenever ``batch_size``
divides ``eval_every`` (the book's batch sizes 1, 10 and 100); full-batch gradient descent on the
1500 airfoil examples is evaluated every epoch here and every second epoch in the book.
Evaluation time is excluded from the recorded wall time.
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import array_api_compat
import numpy as np

from .backend import Random, array_namespace, asarray, resolve_dtype, resolve_namespace, to_numpy
from .errors import check_choice, check_int, invalid
from .models import Model, counter_bits, counter_uniform
from .optim.base import Optimizer

__all__ = ["History", "epoch_order", "train"]

PRECISIONS = (None, "float32", "float16", "bfloat16")
SAMPLING = ("shuffle", "replacement")
_EVAL_ROWS = 8192  # rows of X per evaluation chunk


@dataclass(repr=False)
class History:
    """What :func:`train` recorded.

    Attributes
    ----------
    epochs : numpy.ndarray, shape (n_eval,)
        When each evaluation happened, in epochs (examples seen / n); 0 is before training.
    loss : numpy.ndarray, shape (n_eval, B)
        Full-data objective of every run at each evaluation (L2 penalty included, dropout off).
    seconds : numpy.ndarray, shape (n_eval,)
        Training wall time (all runs together, evaluation excluded) up to each evaluation.
    epoch_seconds : numpy.ndarray, shape (ceil(epochs),)
        Wall time of each epoch (the last one possibly partial), evaluation excluded.
    params : array, shape (B, P)
        Final parameters, in the namespace and on the device of training.
    stats : dict
        Per-step statistics of mixed-precision training (underflow, overflow, skipped steps,
        loss scale; see :mod:`convexkit.precision`); with ``parallel=``, the bytes each worker
        sent per step and the simulated clock (see :class:`convexkit.parallel.ParallelTrace`);
        empty otherwise.
    steps : int
        Number of optimizer steps taken.
    description : str
        Model, optimizer and settings, for the repr.
    """

    epochs: np.ndarray
    loss: np.ndarray
    seconds: np.ndarray
    epoch_seconds: np.ndarray
    params: Any
    stats: dict = field(default_factory=dict)
    steps: int = 0
    description: str = ""

    @property
    def final_loss(self) -> np.ndarray:
        """The objective of every run after training, shape (B,) (``loss[-1]``)."""
        return self.loss[-1]

    @property
    def diverged(self) -> np.ndarray:
        """True for runs whose final objective is not finite, shape (B,)."""
        return ~np.isfinite(self.final_loss)

    @property
    def runs(self) -> int:
        """Number of runs B."""
        return self.loss.shape[1]

    def __repr__(self) -> str:
        with np.errstate(over="ignore", invalid="ignore"):
            return self._describe()

    def _describe(self) -> str:
        final = self.final_loss
        finite = final[np.isfinite(final)]
        if finite.size == 0:
            shown = "every run diverged"
        elif finite.size == 1:
            shown = f"final loss {finite[0]:.6g}"
        else:
            shown = (
                f"final loss {finite.mean():.6g} ± {finite.std(ddof=1):.2g} (mean ± std over "
                f"{finite.size} runs; range {finite.min():.6g} to {finite.max():.6g})"
            )
        if finite.size < final.size:
            shown += f", {final.size - finite.size} diverged"
        per_epoch = float(np.mean(self.epoch_seconds)) if self.epoch_seconds.size else 0.0
        return (
            f"History({self.description}: {self.runs} runs, {self.steps} steps, "
            f"{len(self.epochs)} evaluations;\n  {shown}; {per_epoch:.3g} s per epoch)"
        )


# --------------------------------------------------------------------------------------------
# input checks


def _seed_list(seed: Any) -> list[int] | None:
    """None for one int seed (shared by every run), else the list of seeds."""
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        if seed < 0:
            raise invalid("seed", seed, "a non-negative integer or a sequence of them")
        return None
    values = list(seed) if isinstance(seed, (Sequence, range, np.ndarray)) else None
    if (
        not values
        or isinstance(seed, (str, bytes))
        or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0 for v in values)
    ):
        raise invalid("seed", seed, "a non-negative integer or a non-empty sequence of them")
    return [int(v) for v in values]


def _length(value: Any) -> int | None:
    """The batch length of a hyperparameter given over the runs, None for a scalar.

    Schedules of :mod:`convexkit.schedules` say their batch (``.batch``); other callables are
    not called here and count as scalars.
    """
    if callable(value) and not hasattr(value, "shape"):
        return getattr(value, "batch", None)
    shape = getattr(value, "shape", None)
    if shape is None and isinstance(value, (list, tuple)):
        shape = np.shape(value)
    if shape is None or len(shape) == 0:
        return None
    return int(shape[0])


def _batch_size_of_runs(seeds: list[int] | None, optimizer: Optimizer, model: Model) -> int:
    lengths = {}
    for name, value in optimizer.hyperparams.items():
        found = _length(value)
        if found is not None and found != 1:
            lengths[f"optimizer {name}"] = found
    found = _length(model.l2)
    if found is not None and found != 1:
        lengths["model l2"] = found
    if seeds is not None and len(seeds) != 1:
        lengths["seed"] = len(seeds)
    sizes = set(lengths.values())
    if len(sizes) > 1:
        shown = ", ".join(f"{k}: {v}" for k, v in lengths.items())
        raise invalid("seed", seeds, f"as many runs as every array hyperparameter ({shown})")
    return sizes.pop() if sizes else 1


def _check_data(data: Any, model: Model, xp: Any, dtype: Any, device: Any) -> tuple[Any, Any]:
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise invalid("data", type(data).__name__, "a pair (X, y)")
    X, y = data
    X_shape, y_shape = (
        tuple(getattr(X, "shape", np.shape(X))),
        tuple(getattr(y, "shape", np.shape(y))),
    )
    if len(X_shape) != 2 or X_shape[1] != model.n_features or X_shape[0] < 1:
        raise invalid("data", f"X of shape {X_shape}", f"X of shape (n, {model.n_features})")
    if y_shape != (X_shape[0],):
        raise invalid("data", f"y of shape {y_shape}", f"y of shape ({X_shape[0]},)")
    if model.n_classes is not None:
        labels = to_numpy(y) if hasattr(y, "shape") else np.asarray(y)
        if not np.issubdtype(labels.dtype, np.integer):
            raise invalid("data", f"y of dtype {labels.dtype}", "integer class labels")
        if labels.min() < 0 or labels.max() >= model.n_classes:
            raise invalid(
                "data",
                f"labels from {labels.min()} to {labels.max()}",
                f"labels 0 .. {model.n_classes - 1} for {model!r}",
            )
        y = asarray(labels.astype(np.int64), xp, dtype=xp.int64, device=device)
    else:
        y = asarray(y, xp, dtype=dtype, device=device)
    X = asarray(X, xp, dtype=dtype, device=device)
    return X, y


def _resolve_precision(precision: Any, dtype: Any, xp: Any, loss_scale: Any) -> tuple[Any, bool]:
    """The dtype of the parameters and whether the mixed-precision policy takes the steps.

    Low precision and loss scaling keep float32 master weights; otherwise ``dtype`` rules
    (float64 by default, float32 with ``precision="float32"``).
    """
    if precision not in PRECISIONS:
        raise invalid("precision", precision, "None, 'float32', 'float16' or 'bfloat16'")
    if precision is None and loss_scale is None:
        return resolve_dtype(dtype, xp), False
    wanted = resolve_dtype("float32", xp)
    if dtype is not None and resolve_dtype(dtype, xp) != wanted:
        raise invalid(
            "dtype",
            dtype,
            f"None or 'float32' with precision={precision!r} and loss_scale={loss_scale!r} "
            "(the weights are float32)",
        )
    return wanted, precision in ("float16", "bfloat16") or loss_scale is not None


def _check_loss_scale(loss_scale: Any) -> None:
    if loss_scale is None or (isinstance(loss_scale, str) and loss_scale == "dynamic"):
        return
    if isinstance(loss_scale, numbers.Real) and not isinstance(loss_scale, bool):
        if not (math.isfinite(loss_scale) and loss_scale > 0):
            raise invalid("loss_scale", loss_scale, "a positive finite number")
        return
    if hasattr(loss_scale, "scale") and callable(getattr(loss_scale, "update", None)):
        return
    raise invalid(
        "loss_scale", loss_scale, "None, a positive number, 'dynamic' or a DynamicLossScaler"
    )


def _namespace_of(data: Any) -> Any:
    """The namespace of X in ``data``; NumPy for lists and anything that is not an array."""
    X = data[0] if isinstance(data, (tuple, list)) and data else None
    if X is None or isinstance(X, (list, tuple, np.ndarray)) or not hasattr(X, "shape"):
        return np
    return array_namespace(X)


# --------------------------------------------------------------------------------------------
# schedules per epoch


class _PerEpoch:
    """A schedule of the epoch, called with the step: ``schedule(step // steps_per_epoch)``."""

    def __init__(self, schedule: Callable, steps_per_epoch: int) -> None:
        self.schedule = schedule
        self.steps_per_epoch = steps_per_epoch
        self.__name__ = f"per_epoch({getattr(schedule, '__name__', 'schedule')})"

    def __call__(self, t: Any) -> Any:
        return self.schedule(t // self.steps_per_epoch)


def _per_epoch(optimizer: Optimizer, steps_per_epoch: int) -> Optimizer:
    """The optimizer rebuilt with each schedule evaluated at the epoch instead of the step.

    Only the schedules change: bias corrections and other uses of the step count still see
    the step.
    """
    scheduled = {
        k: v for k, v in optimizer.hyperparams.items() if callable(v) and not hasattr(v, "shape")
    }
    if not scheduled:
        return optimizer
    from . import optim

    factory = getattr(optim, optimizer.name, None)
    settings = {
        **optimizer.hyperparams,
        **{k: _PerEpoch(v, steps_per_epoch) for k, v in scheduled.items()},
    }
    try:
        if factory is None:
            raise TypeError(optimizer.name)
        return factory(**settings)
    except TypeError as err:
        raise invalid(
            "schedule_per",
            "epoch",
            f"'step', or an optimizer built by convexkit.optim.<name>(...) ({optimizer!r} "
            f"cannot be rebuilt with per-epoch schedules: {err})",
        ) from err


# --------------------------------------------------------------------------------------------
# sampling


def epoch_order(seeds: Sequence[int], epoch: int, n: int, sampling: str = "shuffle") -> np.ndarray:
    """The example indices of one epoch for every run, shape (len(seeds), n).

    ``"shuffle"``: a permutation of 0 .. n-1 per run; ``"replacement"``: n independent uniform
    draws per run. Run i's indices depend on ``seeds[i]`` and ``epoch`` only.

    Parameters
    ----------
    seeds : sequence of int
    epoch : int
        0-based epoch (each epoch has its own order).
    n : int
        Number of examples.
    sampling : {"shuffle", "replacement"}

    Returns
    -------
    numpy.ndarray of int64
    """
    check_choice("sampling", sampling, SAMPLING)
    if sampling == "shuffle":
        return np.argsort(counter_bits(seeds, 1 + 2 * epoch, n), axis=1).astype(np.int64)
    draws = np.floor(counter_uniform(seeds, 2 + 2 * epoch, n) * n).astype(np.int64)
    return np.minimum(draws, n - 1)


def _gather(xp: Any, array: Any, order: Any) -> Any:
    """``array`` (n, ...) reordered by ``order`` (runs, n): shape (runs, n, ...)."""
    if xp is np:
        return array[order]
    flat = xp.take(array, xp.reshape(order, (-1,)), axis=0)
    return xp.reshape(flat, tuple(order.shape) + tuple(array.shape[1:]))


def _synchronize(xp: Any) -> None:
    """Wait for queued device work (CuPy), so that wall times are honest."""
    if array_api_compat.is_cupy_namespace(xp):  # pragma: no cover - needs a GPU
        import cupy

        cupy.cuda.get_current_stream().synchronize()


def _full_loss(model: Model, params: Any, X: Any, y: Any) -> np.ndarray:
    """The full-data objective per run on the host, in chunks of rows."""
    n = X.shape[0]
    if n <= _EVAL_ROWS:
        return to_numpy(model.loss(params, X, y)).astype(float)
    penalty = to_numpy(model.penalty(params)).astype(float)
    total = np.zeros(params.shape[0])
    for start in range(0, n, _EVAL_ROWS):
        stop = min(n, start + _EVAL_ROWS)
        chunk = to_numpy(model.loss(params, X[start:stop], y[start:stop])).astype(float)
        total += (chunk - penalty) * (stop - start)
    return total / n + penalty


# --------------------------------------------------------------------------------------------
# mixed precision: the one place where convexkit.precision takes over a step


def _mixed_precision_step(
    policy: Any,
    model: Model,
    optimizer: Optimizer,
    params: Any,
    opt_state: Any,
    Xb: Any,
    yb: Any,
    rng: Any,
    step: int,
) -> tuple[Any, Any]:
    """One step under :class:`convexkit.precision.Policy`: gradients in low precision (with
    loss scaling), then the update of the master weights; the policy records its statistics."""
    _, grad, info = policy.gradients(model, params, Xb, yb, rng)
    params, opt_state, _ = policy.apply(optimizer, params, grad, opt_state, step, info)
    return params, opt_state


# --------------------------------------------------------------------------------------------
# the trainer


def train(
    model: Model,
    optimizer: Optimizer,
    data: tuple[Any, Any],
    *,
    batch_size: int,
    epochs: float,
    seed: int | Sequence[int] = 0,
    sampling: str = "shuffle",
    eval_every: int = 200,
    schedule_per: str = "step",
    init: Any = None,
    xp: Any = None,
    dtype: Any = None,
    device: Any = None,
    precision: str | None = None,
    loss_scale: Any = None,
    master_weights: bool = True,
    parallel: Any = None,
) -> History:
    """Minibatch training of a batch of runs at once.

    Parameters
    ----------
    model : Model
        From :mod:`convexkit.models`.
    optimizer : Optimizer
        From :mod:`convexkit.optim`; hyperparameters given as arrays of shape (B,) train B
        runs with different values at once.
    data : (X, y)
        X of shape (n, f); y of shape (n,) (targets, or int class labels for classifiers).
    batch_size : int
        Examples per minibatch, 1 to n (n is full-batch gradient descent).
    epochs : int or float
        Passes over the data; a fraction trains ``round(epochs * ceil(n / batch_size))`` steps
        in all (at least one), the last epoch stopping early.
    seed : int or sequence of int
        One seed per run (each run gets its own initialisation and example order), or one int
        shared by every run.
    sampling : {"shuffle", "replacement"}
        Without replacement, a new order each epoch; or with replacement.
    eval_every : int
        Evaluate the full-data objective each time this many more examples have been seen.
    schedule_per : {"step", "epoch"}
        Whether learning-rate schedules are functions of the step or of the epoch.
    init : array of shape (P,) or (B, P), optional
        Initial parameters instead of ``model.init`` of the seeds.
    xp, dtype, device : optional
        Namespace (by default that of X), floating dtype (float64 by default) and device.
    precision : {None, "float32", "float16", "bfloat16"}
        Arithmetic of the forward and backward pass. "float16" and "bfloat16" (and any
        ``loss_scale``) hand each step to :class:`convexkit.precision.Policy`, with float32
        master weights.
    loss_scale : None, float, "dynamic" or a loss scaler of convexkit.precision
        Static or dynamic loss scaling of the backward pass (a scaler object is updated in
        place, so its state can be read after training).
    master_weights : bool
        Keep float32 master weights (True) or the weights in the low precision (False).
    parallel : scheme of :mod:`convexkit.parallel`, optional
        Simulate K data-parallel workers: each minibatch is split into K contiguous parts
        (sizes differing by at most one), one per worker, and the scheme (synchronous,
        asynchronous with stale gradients, local SGD; with or without compression) combines
        the workers' gradients. ``History.stats`` then holds the bytes each worker sent per step
        and the simulated clock. Not combined with low precision or loss scaling.

    Returns
    -------
    History

    Raises
    ------
    ValueError
        For arguments out of range, data of the wrong shape, labels out of range, or array
        hyperparameters whose lengths disagree with each other or with the seeds.
    """
    if not isinstance(model, Model):
        raise invalid("model", model, "a model from convexkit.models")
    if not isinstance(optimizer, Optimizer):
        raise invalid("optimizer", optimizer, "an optimizer from convexkit.optim")
    if set(optimizer.needs) - {"grad"}:
        raise invalid(
            "optimizer",
            optimizer,
            f"an optimizer that needs only gradients (this one needs {sorted(optimizer.needs)})",
        )
    if (
        isinstance(epochs, bool)
        or not isinstance(epochs, numbers.Real)
        or not (math.isfinite(epochs) and epochs > 0)
    ):
        raise invalid("epochs", epochs, "a positive number of passes over the data")
    eval_every = check_int("eval_every", eval_every, minimum=1)
    check_choice("sampling", sampling, SAMPLING)
    check_choice("schedule_per", schedule_per, ("step", "epoch"))
    if not isinstance(master_weights, bool):
        raise invalid("master_weights", master_weights, "True or False")
    _check_loss_scale(loss_scale)
    seeds = _seed_list(seed)
    B = _batch_size_of_runs(seeds, optimizer, model)
    namespace = resolve_namespace(xp) if xp is not None else _namespace_of(data)
    param_dtype, mixed = _resolve_precision(precision, dtype, namespace, loss_scale)
    X, y = _check_data(data, model, namespace, param_dtype, device)
    n = X.shape[0]
    batch_size = check_int("batch_size", batch_size, minimum=1)
    if batch_size > n:
        raise invalid("batch_size", batch_size, f"an integer from 1 to n = {n}")

    shared = seeds is None or len(seeds) == 1
    run_seeds = [seed] if seeds is None else seeds
    if init is not None:
        params = asarray(init, namespace, dtype=param_dtype, device=device)
        if params.ndim == 1:
            params = params[None, :]
        if params.ndim != 2 or params.shape[1] != model.n_params or params.shape[0] not in (1, B):
            raise invalid(
                "init",
                f"array of shape {tuple(params.shape)}",
                f"shape ({model.n_params},) or ({B}, {model.n_params})",
            )
    else:
        params = model.init(run_seeds, xp=namespace, dtype=param_dtype, device=device)
    if params.shape[0] != B:  # one starting point shared by every run
        first = asarray(np.zeros(B, dtype=np.int64), namespace, device=device)
        params = namespace.take(params, first, axis=0)

    steps_per_epoch = math.ceil(n / batch_size)
    total_steps = max(1, round(epochs * steps_per_epoch))
    if schedule_per == "epoch":
        optimizer = _per_epoch(optimizer, steps_per_epoch)
    opt_state = optimizer.init(params)
    rng = None
    if model.dropout > 0:
        rng = Random(
            np.random.default_rng([*run_seeds, 0xD50]),
            xp=namespace,
            device=device,
            dtype=param_dtype,
        )
    stepper = None
    if parallel is not None:
        # ---- hook: data-parallel workers (convexkit.parallel.workers) take each step
        if mixed:
            raise invalid(
                "parallel", parallel, "None with precision='float16'/'bfloat16' or loss_scale"
            )
        if not callable(getattr(parallel, "trainer", None)):
            raise invalid("parallel", parallel, "None or a scheme of ck.parallel")
        stepper = parallel.trainer(model, optimizer, run_seeds)
        stepper.check_batch(batch_size)
        # ---- end of hook
    policy = None
    if mixed:
        from . import precision as mixed_precision

        policy = mixed_precision.Policy(precision, loss_scale, master_weights, namespace, B)

    evaluated_epochs = [0.0]
    losses = [_full_loss(model, params, X, y)]
    seconds = [0.0]
    epoch_seconds = []
    trained = 0.0
    seen = 0
    step = 0
    # a run that diverges is recorded (History.diverged), not announced by floating-point warnings
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for epoch in range(math.ceil(total_steps / steps_per_epoch)):
            order = epoch_order(run_seeds, epoch, n, sampling)
            Xe = _gather(namespace, X, asarray(order, namespace, device=device))
            ye = _gather(namespace, y, asarray(order, namespace, device=device))
            if shared:
                Xe, ye = Xe[0], ye[0]
            _synchronize(namespace)
            start = time.perf_counter()
            evaluation = 0.0
            for lo in range(0, n, batch_size):
                if step == total_steps:
                    break
                hi = min(n, lo + batch_size)
                if shared:
                    Xb, yb = Xe[lo:hi, ...], ye[lo:hi, ...]
                else:
                    Xb, yb = Xe[:, lo:hi, ...], ye[:, lo:hi, ...]
                if stepper is not None:  # hook: data-parallel workers
                    params, opt_state = stepper.step(params, opt_state, Xb, yb, step, rng)
                elif policy is None:
                    _, grad = model.loss_and_grad(params, Xb, yb, rng=rng)
                    params, opt_state = optimizer.update(params, grad, opt_state, step)
                else:
                    params, opt_state = _mixed_precision_step(
                        policy, model, optimizer, params, opt_state, Xb, yb, rng, step
                    )
                step += 1
                before, seen = seen, seen + (hi - lo)
                if seen // eval_every > before // eval_every or step == total_steps:
                    _synchronize(namespace)
                    pause = time.perf_counter()
                    losses.append(_full_loss(model, params, X, y))
                    evaluated_epochs.append(seen / n)
                    seconds.append(trained + (pause - start - evaluation))
                    evaluation += time.perf_counter() - pause
            _synchronize(namespace)
            elapsed = time.perf_counter() - start - evaluation
            trained += elapsed
            epoch_seconds.append(elapsed)

    description = (
        f"{model!r} with {optimizer!r}, batch_size={batch_size}, sampling={sampling!r}"
        + (f", precision={precision!r}" if precision else "")
    )
    return History(
        epochs=np.asarray(evaluated_epochs),
        loss=np.vstack(losses),
        seconds=np.asarray(seconds),
        epoch_seconds=np.asarray(epoch_seconds),
        params=params,
        stats=dict(policy.stats) if policy is not None else (stepper.stats() if stepper else {}),
        steps=step,
        description=description,
    )
