"""The vectorized runner: many trajectories of an optimizer at once, and sweeps over grids.

:func:`run` advances a batch of B trajectories (batch axis first) with one Python loop over the
steps and none over the runs; :func:`sweep` flattens a hyperparameter grid into that batch
axis and evaluates it in chunks that fit in memory.

Objectives
----------
``run`` accepts

* a :class:`~convexkit.symbolic.problem.Problem` (or its text, or a SymPy expression),
  compiled by :func:`convexkit.codegen.oracle`; ``params=`` gives its parameters, numbers or
  arrays of shape (B,) (one objective per trajectory);
* an oracle: any object with a callable ``.grad`` and optionally ``.value`` and ``.hess``
  (``value(x) -> (B,)``, ``grad(x) -> (B, d)``, ``hess(x) -> (B, d, d)``);
* a gradient function ``grad(x) -> (B, d)``, or ``grad(x, t)`` for online problems where each
  step t has its own f_t. The two are told apart by the number of positional parameters
  without a default (one or two); ``online=True``/``False`` overrides the detection. The same
  rule applies to an oracle's ``grad``, and then its ``value`` and ``hess`` take ``t`` too;
* a :class:`FiniteSum` f = (1/n) sum_i f_i, given by per-example gradients, whose minibatches
  are sampled with or without replacement.

Randomness
----------
Every random number (Gaussian gradient noise, minibatch indices, the permutations of sampling
without replacement) comes from a counter-based generator keyed by ``(seed, trajectory,
step, component)``: a SplitMix64 hash, evaluated for the whole batch at once. Trajectory i of
a batch draws the stream of trajectory ``stream_offset + i`` whatever else is in the batch,
so a batch of B runs equals B single runs with ``stream_offset=i``, and a sweep gives the same
numbers for every chunk size. NumPy and array-api-strict draw identical values (they are
computed on the host and moved); CuPy computes the same hash on the GPU.
"""

from __future__ import annotations

import inspect
import math
import numbers
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import array_api_compat
import numpy as np

from .backend import (
    array_namespace,
    asarray,
    device_of,
    namespace_name,
    resolve_dtype,
    resolve_namespace,
    to_numpy,
)
from .errors import check_choice, check_int, check_real, invalid
from .optim.base import Optimizer

__all__ = ["FiniteSum", "SweepResult", "Trace", "evaluate_chunk", "run", "sweep"]

_RECORD_MODES = ("all", "loss", "final")
_MASK64 = (1 << 64) - 1
# odd 64-bit constants that spread the counter fields before each SplitMix64 round
_K_TRAJECTORY = 0x9E3779B97F4A7C15
_K_COUNTER = 0xD1B54A32D192ED03
_K_COMPONENT = 0x8CB92BA72F3D8DD7
# one independent stream per use, so noise and sampling never share numbers
_PURPOSE_NOISE = 1
_PURPOSE_WITH_REPLACEMENT = 2
_PURPOSE_PERMUTATION = 3


# --------------------------------------------------------------------------- random streams


def _splitmix(hx: Any, h: Any) -> Any:
    # constants as uint64 scalars: CuPy refuses Python ints above the int64 range
    h = h ^ (h >> hx.uint64(30))
    h = h * hx.uint64(0xBF58476D1CE4E5B9)
    h = h ^ (h >> hx.uint64(27))
    h = h * hx.uint64(0x94D049BB133111EB)
    return h ^ (h >> hx.uint64(31))


def _python_splitmix(value: int) -> int:
    value &= _MASK64
    value ^= value >> 30
    value = (value * 0xBF58476D1CE4E5B9) & _MASK64
    value ^= value >> 27
    value = (value * 0x94D049BB133111EB) & _MASK64
    return value ^ (value >> 31)


class _Streams:
    """Uniform and Gaussian numbers keyed by (seed, purpose, trajectory, counter, component).

    ``hx`` is NumPy, or CuPy on a GPU; both wrap uint64 arithmetic modulo 2**64.
    """

    def __init__(self, seed: int, trajectories: Any, hx: Any):
        self.hx = hx
        self.seed = seed
        self.trajectories = hx.reshape(hx.asarray(trajectories, dtype=hx.uint64), (-1, 1))

    def uniform(self, purpose: int, counter: int, count: int) -> Any:
        """Uniform numbers on [0, 1) of shape (B, count), float64, in ``hx``."""
        hx = self.hx
        key = _python_splitmix(self.seed + _python_splitmix(purpose * _K_COUNTER))
        with np.errstate(over="ignore"):
            h = _splitmix(hx, self.trajectories * hx.uint64(_K_TRAJECTORY) + hx.uint64(key))
            h = _splitmix(hx, h + hx.uint64((counter * _K_COUNTER) & _MASK64))
            components = hx.reshape(hx.arange(count, dtype=hx.uint64), (1, -1))
            h = _splitmix(hx, h + components * hx.uint64(_K_COMPONENT))
        return (h >> hx.uint64(11)).astype(hx.float64) * (2.0**-53)

    def normal(self, purpose: int, counter: int, count: int) -> Any:
        """Standard Gaussian numbers of shape (B, count) (Box-Muller), float64, in ``hx``."""
        hx = self.hx
        pairs = (count + 1) // 2
        u = self.uniform(purpose, counter, 2 * pairs)
        radius = hx.sqrt(-2.0 * hx.log(1.0 - u[:, :pairs]))  # 1 - u lies in (0, 1]
        angle = (2.0 * math.pi) * u[:, pairs:]
        # both coordinates of each pair: component 2j is r cos, 2j + 1 is r sin
        both = hx.stack([radius * hx.cos(angle), radius * hx.sin(angle)], axis=2)
        return hx.reshape(both, (both.shape[0], 2 * pairs))[:, :count]


def _host_module(xp: Any) -> Any:
    if array_api_compat.is_cupy_namespace(xp):
        import cupy

        return cupy
    return np


def _resolve_seed(seed: Any) -> int:
    if seed is None:
        return int(np.random.default_rng().integers(0, 2**63))
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, 2**63))
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise invalid("seed", seed, "None, a non-negative integer or a numpy.random.Generator")
    return int(seed) & _MASK64


# --------------------------------------------------------------------------- objectives


class FiniteSum:
    """A finite sum f(x) = (1/n) sum_i f_i(x), given by per-example gradients.

    Passed to :func:`run` it is sampled: each step uses the mean of ``batch_size`` per-example
    gradients, drawn for each trajectory independently. With ``replace=False`` every
    trajectory walks through its own random order of the n examples, a new order each pass;
    consecutive steps take consecutive blocks of that stream of orders, so over any pass of n
    draws every example is used exactly once (when n is not a multiple of ``batch_size``, one
    minibatch straddles two passes). Everything is vectorized: the indices of a step form an
    integer array of shape (B, batch_size).

    It is also an oracle of the whole sum: ``grad``, ``value`` and ``hess`` average over all
    n examples.

    Parameters
    ----------
    grad_i : callable
        ``grad_i(x, idx) -> (B, b, d)``: the gradients of f_idx[k, j] at x[k], for ``x`` of
        shape (B, d) and integer indices ``idx`` of shape (B, b), in x's namespace and device.
    n : int
        Number of examples.
    value_i : callable, optional
        ``value_i(x, idx) -> (B, b)``, per-example losses; gives the loss recorded in traces.
    hess_i : callable, optional
        ``hess_i(x, idx) -> (B, b, d, d)``, per-example Hessians (for Newton-type methods).
    batch_size : int, optional
        Minibatch size b. None uses the full sum at every step (deterministic gradients).
    replace : bool
        Sample with replacement (independent uniform indices) or without (permutations).

    Examples
    --------
    Least squares, f_i(x) = (a_i . x - y_i)^2 / 2, with minibatches of 8:

    >>> import numpy as np
    >>> A, y = np.eye(4)[[0, 1, 2, 3, 0, 1]], np.arange(6.0)
    >>> def grad_i(x, idx):
    ...     rows = A[idx]                                    # (B, b, d)
    ...     r = np.einsum("kbd,kd->kb", rows, x) - y[idx]    # (B, b)
    ...     return r[..., None] * rows
    >>> problem = FiniteSum(grad_i, n=6, batch_size=2, replace=False)
    """

    def __init__(
        self,
        grad_i: Callable[[Any, Any], Any],
        n: int,
        *,
        value_i: Callable[[Any, Any], Any] | None = None,
        hess_i: Callable[[Any, Any], Any] | None = None,
        batch_size: int | None = None,
        replace: bool = True,
    ):
        if not callable(grad_i):
            raise invalid("grad_i", grad_i, "a callable grad_i(x, idx) -> (B, b, d)")
        for name, fn in (("value_i", value_i), ("hess_i", hess_i)):
            if fn is not None and not callable(fn):
                raise invalid(name, fn, "None or a callable of (x, idx)")
        self.n = check_int("n", n, minimum=1)
        if not isinstance(replace, bool):
            raise invalid("replace", replace, "True or False")
        if batch_size is not None:
            batch_size = check_int("batch_size", batch_size, minimum=1)
            if not replace and batch_size > self.n:
                raise invalid(
                    "batch_size",
                    batch_size,
                    f"at most n={self.n} when sampling without replacement",
                )
        self.grad_i = grad_i
        self.value_i = value_i
        self.hess_i = hess_i
        self.batch_size = batch_size
        self.replace = replace
        self.value = None if value_i is None else self._full_value
        self.hess = None if hess_i is None else self._full_hess

    def __repr__(self) -> str:
        sampling = (
            "full sum"
            if self.batch_size is None
            else f"batch_size={self.batch_size}, replace={self.replace}"
        )
        return f"FiniteSum(n={self.n}, {sampling})"

    def _all(self, x: Any) -> Any:
        xp = array_namespace(x)
        idx = xp.reshape(xp.arange(self.n, **_device_kw(device_of(x))), (1, self.n))
        return xp.broadcast_to(idx, (x.shape[0], self.n))

    def grad(self, x: Any) -> Any:
        """Full gradient (1/n) sum_i grad f_i(x), shape (B, d)."""
        return self.minibatch_grad(x, self._all(x))

    def minibatch_grad(self, x: Any, idx: Any) -> Any:
        """Mean of the per-example gradients at indices ``idx`` (B, b), shape (B, d)."""
        xp = array_namespace(x)
        return xp.mean(self.grad_i(x, idx), axis=1)

    def _full_value(self, x: Any) -> Any:
        xp = array_namespace(x)
        return xp.mean(self.value_i(x, self._all(x)), axis=1)

    def _full_hess(self, x: Any) -> Any:
        xp = array_namespace(x)
        return xp.mean(self.hess_i(x, self._all(x)), axis=1)


def _required_positional(fn: Callable) -> int | None:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    count = 0
    for parameter in signature.parameters.values():
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            return None
        if (
            parameter.kind
            in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
            and parameter.default is inspect.Parameter.empty
        ):
            count += 1
    return count


def _is_online(fn: Callable, online: bool | None, name: str) -> bool:
    if online is not None:
        if not isinstance(online, bool):
            raise invalid("online", online, "None, True or False")
        return online
    count = _required_positional(fn)
    if count in (None, 1):
        return False
    if count == 2:
        return True
    raise invalid(
        name, fn, "a function of x, or of (x, t) for online problems (or pass online=True/False)"
    )


def _with_step(fn: Callable | None, online: bool) -> Callable | None:
    if fn is None:
        return None
    if online:
        return fn
    return lambda x, t: fn(x)


class _StepOracle:
    """The exact oracle handed to ``update`` at one step (online functions bound to t)."""

    def __init__(self, objective: _Objective, t: int):
        self.value = None if objective.value is None else (lambda x: objective.value(x, t))
        self.grad = lambda x: objective.grad(x, t)
        self.hess = None if objective.hess is None else (lambda x: objective.hess(x, t))


@dataclass
class _Objective:
    kind: str
    grad: Callable[[Any, int], Any]
    value: Callable[[Any, int], Any] | None
    hess: Callable[[Any, int], Any] | None
    finite_sum: FiniteSum | None = None
    source: Any = None


_PROBLEM_ATTRIBUTES = ("expr", "variables", "params", "gradient", "hessian")


def _is_problem(objective: Any) -> bool:
    """A Problem, or any object codegen compiles like one (or a string, a SymPy expression)."""
    if isinstance(objective, str):
        return True
    if all(hasattr(objective, name) for name in _PROBLEM_ATTRIBUTES):
        return True
    return "sympy" in sys.modules and isinstance(objective, sys.modules["sympy"].Expr)


def _parameter_names(objective: Any) -> set[str]:
    if isinstance(objective, str) or not _is_problem(objective):
        return set()
    symbols = getattr(objective, "params", None)
    if symbols is None:  # a bare SymPy expression: every free symbol is a variable
        return set()
    return {getattr(s, "name", str(s)) for s in symbols}


def _objective(
    objective: Any, xp: Any, dtype: Any, device: Any, params: Any, online: bool | None
) -> _Objective:
    if _is_problem(objective):
        from .codegen import oracle

        if isinstance(objective, str) and params:
            # in text every name is a variable unless said otherwise: params= says otherwise
            from .symbolic.problem import Problem

            objective = Problem(objective, params=list(params))
        built = oracle(objective, xp, params=params, dtype=dtype, device=device)
        return _Objective(
            "problem",
            _with_step(built.grad, False),
            _with_step(getattr(built, "value", None), False),
            _with_step(getattr(built, "hess", None), False),
            source=built,
        )
    if params is not None:
        raise invalid("params", params, "None unless the objective is a Problem")
    if isinstance(objective, FiniteSum):
        return _Objective(
            "finite sum",
            _with_step(objective.grad, False),
            _with_step(objective.value, False),
            _with_step(objective.hess, False),
            finite_sum=objective,
            source=objective,
        )
    grad = getattr(objective, "grad", None)
    if callable(grad):
        is_online = _is_online(grad, online, "objective.grad")
        value = getattr(objective, "value", None)
        hess = getattr(objective, "hess", None)
        return _Objective(
            "online oracle" if is_online else "oracle",
            _with_step(grad, is_online),
            _with_step(value if callable(value) else None, is_online),
            _with_step(hess if callable(hess) else None, is_online),
            source=objective,
        )
    if callable(objective):
        is_online = _is_online(objective, online, "objective")
        return _Objective(
            "online gradient" if is_online else "gradient",
            _with_step(objective, is_online),
            None,
            None,
            source=objective,
        )
    raise invalid(
        "objective",
        objective,
        "a Problem, an oracle (an object with .grad), a FiniteSum, or a gradient function "
        "grad(x) or grad(x, t)",
    )


# --------------------------------------------------------------------------- Trace


@dataclass(repr=False)
class Trace:
    """The trajectories of one :func:`run`.

    Attributes
    ----------
    x : array of shape (len(t), B, d) or None
        Iterates at the recorded steps ``t`` (None for ``record="loss"`` and ``"final"``).
    loss : array of shape (len(t), B) or None
        Objective values at the recorded steps (None without a value function, or for
        ``record="final"``).
    t : numpy.ndarray of int
        The recorded step indices: 0 .. steps for ``record="all"`` and ``"loss"``.
    x_final : array of shape (B, d)
        The last iterate.
    loss_final : array of shape (B,) or None
        The objective at the last iterate.
    diverged : array of shape (B,), bool
        True for trajectories that left the finite region: some coordinate non-finite or
        larger in magnitude than the divergence threshold. Such a trajectory is frozen at its
        first diverged iterate.
    diverged_at : array of shape (B,), int
        The step whose iterate first diverged, -1 where none did.
    steps : int
        Number of steps taken.
    record : str
        ``"all"``, ``"loss"``, ``"final"`` or ``"steps"`` (a list of steps was given).
    info : dict
        How it ran: ``backend``, ``device``, ``dtype``, ``path`` (``"array"``: one array
        operation per step for the whole batch), ``objective``, ``noise``, ``sampling``,
        ``seed``, ``stream_offset``, ``threshold``.
    """

    x: Any
    loss: Any
    t: np.ndarray
    x_final: Any
    loss_final: Any
    diverged: Any
    diverged_at: Any
    steps: int
    record: str
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def batch(self) -> int:
        """Number of trajectories B."""
        return int(self.x_final.shape[0])

    @property
    def dim(self) -> int:
        """Dimension d of the iterates."""
        return int(self.x_final.shape[1])

    def to_numpy(self) -> Trace:
        """A copy with every array moved to NumPy on the host."""

        def host(a: Any) -> Any:
            return None if a is None else to_numpy(a)

        return Trace(
            x=host(self.x),
            loss=host(self.loss),
            t=self.t,
            x_final=host(self.x_final),
            loss_final=host(self.loss_final),
            diverged=host(self.diverged),
            diverged_at=host(self.diverged_at),
            steps=self.steps,
            record=self.record,
            info=dict(self.info),
        )

    def __repr__(self) -> str:
        diverged = to_numpy(self.diverged)
        lines = [
            f"Trace(steps={self.steps}, batch={self.batch}, dim={self.dim}, "
            f"record={self.record!r},",
            f"      backend={self.info.get('backend')!r}, dtype={self.info.get('dtype')!r}, "
            f"path={self.info.get('path')!r}, objective={self.info.get('objective')!r}, "
            f"noise={self.info.get('noise')!r},",
            f"      diverged {int(diverged.sum())}/{diverged.size}",
        ]
        if self.loss_final is not None:
            finite = to_numpy(self.loss_final).astype(np.float64)[~diverged]
            if finite.size:
                lines[-1] += (
                    f", final loss of the others: min {finite.min():.4g}, "
                    f"median {np.median(finite):.4g}, max {finite.max():.4g}"
                )
        return "\n".join(lines) + ")"


# --------------------------------------------------------------------------- run


def _batch_from_hyperparameters(optimizer: Optimizer) -> tuple[int | None, str | None]:
    found: int | None = None
    where: str | None = None
    for name, value in optimizer.hyperparams.items():
        if callable(value) and not hasattr(value, "shape"):
            continue
        shape = getattr(value, "shape", None)
        if shape is None and isinstance(value, (list, tuple)):
            shape = np.shape(value)
        if not shape:
            continue
        size = int(shape[0])
        if size == 1:
            continue
        if found is not None and size != found:
            raise invalid(
                f"optimizer hyperparameter {name}",
                f"<array of length {size}>",
                f"a scalar or an array of length {found}, like {where}",
            )
        found, where = size, name
    return found, where


def _check_optimizer(optimizer: Any) -> Optimizer:
    if not (
        hasattr(optimizer, "init") and hasattr(optimizer, "update") and hasattr(optimizer, "needs")
    ):
        raise invalid(
            "optimizer", optimizer, "an Optimizer (init, update, needs), e.g. ck.optim.gd(0.1)"
        )
    return optimizer


def _check_needs(optimizer: Optimizer, objective: _Objective, raw: Any) -> None:
    allowed = {"value", "grad", "hess"}
    unknown = set(optimizer.needs) - allowed
    if unknown:
        raise invalid(
            "optimizer.needs", set(optimizer.needs), "a subset of {'value', 'grad', 'hess'}"
        )
    for need in ("value", "hess"):
        if need in optimizer.needs and getattr(objective, need) is None:
            hint = "a Problem, an oracle with ." + need + ", or a FiniteSum with " + need + "_i"
            raise invalid(
                "objective",
                raw,
                f"an objective that provides {need!r}, because optimizer "
                f"{optimizer.name!r} needs it: {hint}",
            )


def _device_kw(device: Any) -> dict[str, Any]:
    return {} if device is None else {"device": device}


def _as_points(x0: Any, xp: Any, dtype: Any, device: Any) -> Any:
    allowed = "an array of real numbers of shape (d,) or (B, d), with d >= 1 and B >= 1"
    foreign = hasattr(x0, "shape") and not isinstance(x0, np.ndarray)
    if foreign and array_namespace(x0) is xp:
        points = x0 if x0.dtype == dtype else xp.astype(x0, dtype)
        if device is not None and device_of(points) != device:
            points = points.to_device(device)
    else:
        try:
            host = to_numpy(x0) if foreign else np.asarray(x0)
        except (TypeError, ValueError):
            raise invalid("x0", x0, allowed) from None
        if host.dtype == object or not (
            np.issubdtype(host.dtype, np.integer) or np.issubdtype(host.dtype, np.floating)
        ):
            raise invalid("x0", x0, allowed)
        points = host
    if points.ndim not in (1, 2) or 0 in tuple(points.shape):
        raise invalid("x0", f"<array of shape {tuple(points.shape)}>", allowed)
    if isinstance(points, np.ndarray):
        points = asarray(points.astype(np.float64), xp, dtype=dtype, device=device)
    return points


def _initial_points(
    x0: Any,
    xp: Any,
    dtype: Any,
    device: Any,
    batch: int | None,
    optimizer: Optimizer,
    sigma: Any,
    params: Mapping[str, Any] | None,
) -> Any:
    points = _as_points(x0, xp, dtype, device)
    from_hyper, where = _batch_from_hyperparameters(optimizer)
    sizes = {"batch": batch, f"optimizer hyperparameter {where}": from_hyper}
    if sigma is not None and np.ndim(sigma) == 1:
        sizes["noise"] = int(np.shape(sigma)[0])
    for name, value in (params or {}).items():
        shape = getattr(value, "shape", None) or np.shape(value)
        if len(shape) == 1 and shape[0] != 1:
            sizes[f"params[{str(name)!r}]"] = int(shape[0])
    known = {k: v for k, v in sizes.items() if v is not None}
    if points.ndim == 2:
        rows = int(points.shape[0])
        for name, size in known.items():
            if size not in (1, rows) or (name == "batch" and size != rows):
                raise invalid(name, size, f"{rows}, the number of rows of x0 (shape (B, d))")
        return points
    target = max(known.values(), default=1)
    for name, size in known.items():
        if size not in (1, target) or (name == "batch" and size != target):
            raise invalid(name, size, f"a batch size consistent with the others ({target})")
    return xp.broadcast_to(xp.reshape(points, (1, -1)), (target, int(points.shape[0])))


def _check_record(record: Any, steps: int) -> tuple[str, np.ndarray]:
    if isinstance(record, str):
        if record not in _RECORD_MODES:
            raise invalid(
                "record", record, "'all', 'loss', 'final' or a sorted sequence of step indices"
            )
        if record == "final":
            return record, np.asarray([steps])
        return record, np.arange(steps + 1)
    try:
        chosen = np.asarray(record)
    except (TypeError, ValueError):
        chosen = np.asarray([])
    if (
        chosen.ndim != 1
        or chosen.size == 0
        or not np.issubdtype(chosen.dtype, np.integer)
        or np.any(np.diff(chosen) <= 0)
        or chosen[0] < 0
        or chosen[-1] > steps
    ):
        raise invalid(
            "record",
            record,
            f"'all', 'loss', 'final' or a strictly increasing sequence of steps in 0..{steps}",
        )
    return "steps", chosen.astype(np.int64)


def _check_sigma(noise: Any) -> Any:
    if noise is None:
        return None
    if isinstance(noise, bool):
        raise invalid("noise", noise, "None, a standard deviation >= 0, or an array of them (B,)")
    if isinstance(noise, numbers.Real):
        return check_real("noise", noise, low=0.0)
    try:
        host = to_numpy(noise) if hasattr(noise, "shape") else np.asarray(noise, dtype=np.float64)
        host = host.astype(np.float64)
    except (TypeError, ValueError):
        host = None
    if host is None or host.ndim != 1 or not np.all(np.isfinite(host)) or np.any(host < 0):
        raise invalid("noise", noise, "None, a standard deviation >= 0, or an array of them (B,)")
    return host


def _check_value_shape(values: Any, batch: int, what: str, objective: Any) -> None:
    if tuple(values.shape) != (batch,):
        raise invalid(
            "objective",
            objective,
            f"{what} returning shape ({batch},) for x of shape ({batch}, d); "
            f"got {tuple(values.shape)}",
        )


def run(
    objective: Any,
    optimizer: Optimizer,
    x0: Any,
    steps: int,
    *,
    noise: Any = None,
    seed: Any = None,
    xp: Any = None,
    dtype: Any = None,
    device: Any = None,
    record: str | Sequence[int] = "all",
    batch: int | None = None,
    params: Mapping[str, Any] | None = None,
    online: bool | None = None,
    threshold: float = 1e10,
    stream_offset: int = 0,
    path: str = "auto",
    parallel: Any = None,
) -> Trace:
    """Run ``optimizer`` on ``objective`` for a batch of trajectories at once.

    Parameters
    ----------
    objective : Problem, str, oracle, FiniteSum or callable
        What to minimize (see the module docstring): a Problem (or its text, or a SymPy
        expression), an object with ``.grad`` (and optionally ``.value``, ``.hess``), a
        :class:`FiniteSum`, or a gradient function ``grad(x)`` / ``grad(x, t)``. The loss is
        recorded where a value function exists.
    optimizer : Optimizer
        E.g. ``ck.optim.gd(lr)``; hyperparameters given as arrays of shape (B,) make one
        trajectory per entry. Methods that need ``"value"`` or ``"hess"`` get the exact
        (noise-free, full-sum) oracle in ``update``.
    x0 : array_like of shape (d,) or (B, d)
        Starting points; a single point is shared by all B trajectories.
    steps : int
        Number of steps, >= 0.
    noise : float or array of shape (B,), optional
        Standard deviation of additive Gaussian noise on every gradient coordinate.
    seed : int, numpy.random.Generator or None
        Key of the random streams (noise, minibatches). None draws one; ``trace.info["seed"]``
        records it.
    xp : None, str or namespace
        Array namespace; None takes x0's namespace, else the oracle's, else NumPy.
    dtype : str or dtype, optional
        Floating dtype, float64 by default (``backend.resolve_dtype``).
    device : optional
        Device of the namespace (x0's device by default).
    record : {"all", "loss", "final"} or sequence of int
        ``"all"`` keeps every iterate and loss; ``"loss"`` every loss and the last iterate;
        ``"final"`` only the last; a strictly increasing sequence of steps keeps iterates and
        losses at those steps.
    batch : int, optional
        Number of trajectories when x0 has shape (d,) and no hyperparameter says it (e.g.
        many seeds of one stochastic run).
    params : mapping, optional
        Values of a Problem's parameters (numbers, or arrays of shape (B,) for one objective
        per trajectory), passed to ``codegen.oracle``.
    online : bool, optional
        Whether a gradient function takes the step, ``grad(x, t)``; detected from the
        signature when None.
    threshold : float
        A trajectory diverges when some coordinate is non-finite or exceeds this in magnitude;
        it is then frozen. No overflow warning is emitted along the way. ``inf`` freezes only
        trajectories that become non-finite.
    stream_offset : int
        Trajectory i draws the random stream of trajectory ``stream_offset + i``.
    path : {"auto", "array", "fused"}
        ``"array"`` runs the update code on arrays step by step. ``"fused"`` runs whole
        trajectories in a kernel generated from the same update code (a Problem as objective,
        no noise or minibatches, an optimizer with an elementwise symbolic form; numba on
        NumPy, one GPU thread per trajectory on CuPy); it gives the same iterates as the array
        path. ``"auto"`` takes the fused path where it applies; where it does not, on CuPy,
        each update of the array path runs as one generated elementwise kernel
        (``"fused-update"``). Both CuPy kernels give the array path's iterates bit for bit
        where the update and gradient use only arithmetic, sqrt, abs, sign, max/min and
        branches (transcendental functions agree to rounding). ``trace.info["path"]`` says
        which ran and, for the array path, ``trace.info["fused"]`` why the fused one did not.

    parallel : scheme of :mod:`convexkit.parallel`, optional
        Simulate K data-parallel workers (``ck.parallel.synchronous(4)``, ``asynchronous``,
        ``local_sgd``): the scheme runs the steps on the array path and returns a
        ``ParallelTrace``, a Trace with the bytes each worker sent and a simulated clock.

    Returns
    -------
    Trace

    Examples
    --------
    >>> import numpy as np, convexkit as ck
    >>> trace = ck.run(lambda x: 2 * x, ck.optim.gd(np.array([0.1, 0.4, 1.1])), [1.0], 50)
    >>> trace.diverged.tolist(), trace.x.shape
    ([False, False, False], (51, 3, 1))
    """
    if parallel is not None:
        # ---- hook: data-parallel simulation, run by the scheme (convexkit.parallel.workers)
        delegate = getattr(parallel, "simulate", None)
        if not callable(delegate):
            raise invalid(
                "parallel",
                parallel,
                "None or a scheme of ck.parallel (synchronous, asynchronous, local_sgd)",
            )
        if path == "fused":
            raise invalid("path", path, "'auto' or 'array' with parallel= (workers run on arrays)")
        return delegate(
            objective,
            optimizer,
            x0,
            steps,
            noise=noise,
            seed=seed,
            xp=xp,
            dtype=dtype,
            device=device,
            record=record,
            batch=batch,
            params=params,
            online=online,
            threshold=threshold,
            stream_offset=stream_offset,
        )
        # ---- end of hook
    steps = check_int("steps", steps, minimum=0)
    optimizer = _check_optimizer(optimizer)
    if batch is not None:
        batch = check_int("batch", batch, minimum=1)
    threshold = check_real("threshold", threshold, low=0.0, low_open=True, allow_inf=True)
    stream_offset = check_int("stream_offset", stream_offset, minimum=0)
    mode, recorded = _check_record(record, steps)
    sigma = _check_sigma(noise)
    path = check_choice("path", path, ("auto", "array", "fused"))

    xp, dtype, device = _resolve_arrays(objective, x0, xp, dtype, device)
    threshold = _finite_bound(threshold, dtype)

    problem = _objective(objective, xp, dtype, device, params, online)
    _check_needs(optimizer, problem, objective)
    x = _initial_points(x0, xp, dtype, device, batch, optimizer, sigma, params)
    device = device_of(x) if device is None else device
    rows = int(x.shape[0])

    sampled = problem.finite_sum is not None and problem.finite_sum.batch_size is not None
    fused_reason = "path='array' was asked for"
    if path != "array":
        fused, fused_reason = _run_fused(
            problem,
            optimizer,
            x,
            steps,
            xp,
            mode,
            recorded,
            sigma is not None or sampled,
            params,
            threshold,
        )
        if fused is not None:
            return fused
        if path == "fused":
            raise invalid("path", path, f"'auto' or 'array' here: {fused_reason}")
    step_kernel = None
    if path != "array" and array_api_compat.is_cupy_namespace(xp):
        # on the GPU the update runs as one generated kernel; the gradient stays array code
        from .kernels.cuda import cuda_update

        step_kernel, why = cuda_update(optimizer)
        fused_reason = f"{fused_reason}; update kernel: {why}"

    hx = _host_module(xp)
    seed_value = _resolve_seed(seed) if (sigma is not None or sampled) else None
    streams = (
        None
        if seed_value is None
        else _Streams(seed_value, np.arange(stream_offset, stream_offset + rows), hx)
    )
    sampler = None
    if sampled:
        sampler = _Sampler(problem.finite_sum, streams, rows, xp, device)
    scale = None
    if sigma is not None:
        sigma_array = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (rows,))
        scale = hx.reshape(hx.asarray(sigma_array), (rows, 1))

    def gradient(point: Any, t: int) -> Any:
        if sampler is not None:
            g = problem.finite_sum.minibatch_grad(point, sampler.indices(t))
        else:
            g = problem.grad(point, t)
        if t == 0 and tuple(g.shape) != tuple(point.shape):
            raise invalid(
                "objective",
                objective,
                f"a gradient of shape {tuple(point.shape)} for x of that shape; "
                f"got {tuple(g.shape)}",
            )
        if scale is not None:
            draw = scale * streams.normal(_PURPOSE_NOISE, t, int(point.shape[1]))
            g = g + _to_namespace(draw, xp, dtype, device)
        return _keep_dtype(xp, g, dtype)

    def loss_at(point: Any, t: int) -> Any:
        values = problem.value(point, t)
        _check_value_shape(values, rows, "a value function", objective)
        return _keep_dtype(xp, values, dtype)

    needs_oracle = bool(set(optimizer.needs) - {"grad"})

    def advance(point: Any, state: Any, t: int) -> tuple[Any, Any]:
        if step_kernel is not None:
            return step_kernel.update(point, gradient(point, t), state, t)
        oracle = _StepOracle(problem, t) if needs_oracle else None
        return optimizer.update(point, gradient(point, t), state, t, oracle)

    with np.errstate(all="ignore"):
        state = optimizer.init(x)
    done = _iterate(
        x,
        state,
        steps,
        recorded,
        mode,
        loss_at if problem.value is not None else None,
        advance,
        threshold,
        xp=xp,
        dtype=dtype,
        device=device,
    )
    xs, losses, x, loss_final = done.xs, done.losses, done.x_final, done.loss_final
    diverged, diverged_at = done.diverged, done.diverged_at

    info = {
        "backend": namespace_name(xp),
        "device": None if device is None else str(device),
        "dtype": _dtype_name(dtype),
        "path": "array" if step_kernel is None else "fused-update",
        "fused": fused_reason,
        "objective": problem.kind,
        "noise": "none" if sigma is None else "gaussian",
        "sampling": _sampling_name(problem.finite_sum),
        "seed": seed_value,
        "stream_offset": stream_offset,
        "threshold": threshold,
    }
    return Trace(
        x=xs,
        loss=losses,
        t=recorded,
        x_final=x,
        loss_final=loss_final,
        diverged=diverged,
        diverged_at=diverged_at,
        steps=steps,
        record=mode,
        info=info,
    )


@dataclass
class _Iterates:
    """What :func:`_iterate` records."""

    xs: Any
    losses: Any
    x_final: Any
    loss_final: Any
    diverged: Any
    diverged_at: Any


def _iterate(
    x: Any,
    state: Any,
    steps: int,
    recorded: np.ndarray,
    mode: str,
    loss_at: Callable[[Any, int], Any] | None,
    advance: Callable[[Any, Any, int], tuple[Any, Any]],
    threshold: float,
    *,
    xp: Any,
    dtype: Any,
    device: Any,
    on_freeze: Callable[[Any], None] | None = None,
) -> _Iterates:
    """The step loop every runner shares: record, step, freeze what diverged.

    ``advance(x, state, t) -> (x_next, state_next)`` takes one step of the whole batch. A
    trajectory is frozen at the first iterate with a non-finite coordinate or one beyond
    ``threshold`` (``on_freeze(diverged)`` lets a runner freeze its own per-trajectory state);
    no overflow warning is emitted along the way.
    """
    rows, d = int(x.shape[0]), int(x.shape[1])
    slot = {int(step): k for k, step in enumerate(recorded.tolist())}
    kw = _device_kw(device)
    # preallocated, so that recording never holds two copies of the history
    xs = xp.empty((len(slot), rows, d), dtype=dtype, **kw) if mode in ("all", "steps") else None
    losses = (
        xp.empty((len(slot), rows), dtype=dtype, **kw)
        if loss_at is not None and mode != "final"
        else None
    )
    column = (rows, 1)

    def outside(point: Any) -> Any:
        # NaN propagates through max and fails the comparison, as does inf
        return ~(xp.max(xp.abs(point), axis=1) <= threshold)

    with np.errstate(all="ignore"):
        diverged = outside(x)
        any_diverged = bool(xp.any(diverged))
        diverged_at = xp.where(diverged, 0, xp.full((rows,), -1, dtype=xp.int64, **kw))
        for t in range(steps + 1):
            if t in slot:
                if xs is not None:
                    xs[slot[t], ...] = x
                if losses is not None:
                    losses[slot[t], ...] = loss_at(x, t)
            if t == steps:
                break
            x_next, state = advance(x, state, t)
            x_next = _keep_dtype(xp, x_next, dtype)
            if any_diverged:
                # a diverged trajectory stays where it left the finite region
                x_next = xp.where(xp.reshape(diverged, column), x, x_next)
                if on_freeze is not None:
                    on_freeze(diverged)
            bad = outside(x_next)
            if bool(xp.any(bad & ~diverged)):
                diverged_at = xp.where(bad & ~diverged, t + 1, diverged_at)
                diverged = diverged | bad
                any_diverged = True
            x = x_next
        loss_final = loss_at(x, steps) if loss_at is not None else None
    return _Iterates(xs, losses, x, loss_final, diverged, diverged_at)


def _resolve_arrays(
    objective: Any, x0: Any, xp: Any, dtype: Any, device: Any
) -> tuple[Any, Any, Any]:
    """The namespace (x0's, else the objective's, else NumPy), dtype and device of a run."""
    if xp is None:
        if hasattr(x0, "shape") and not isinstance(x0, np.ndarray):
            xp = array_namespace(x0)
        elif getattr(objective, "xp", None) is not None:
            xp = objective.xp
    xp = resolve_namespace(xp)
    if array_api_compat.is_cupy_namespace(xp):
        import array_api_compat.cupy as compat_cupy

        # the compat namespace adds the standard's keywords (device=) and functions (astype)
        xp = compat_cupy
    dtype = resolve_dtype(dtype, xp)
    if device is None and hasattr(x0, "shape") and not isinstance(x0, np.ndarray):
        device = device_of(x0)
    return xp, dtype, device


def _finite_bound(threshold: float, dtype: Any) -> float:
    """The divergence threshold as a finite bound: ``inf`` ("no bound") becomes the largest
    finite value of ``dtype``, since |x| <= that holds exactly for finite x."""
    return float(np.finfo(_dtype_name(dtype)).max) if math.isinf(threshold) else threshold


def _run_fused(
    problem: _Objective,
    optimizer: Optimizer,
    x: Any,
    steps: int,
    xp: Any,
    mode: str,
    recorded: np.ndarray,
    stochastic: bool,
    params: Mapping[str, Any] | None,
    threshold: float,
) -> tuple[Trace | None, str]:
    """The whole run in a fused kernel (numba on NumPy, CUDA on CuPy), or (None, why not)."""
    on_gpu = array_api_compat.is_cupy_namespace(xp)
    if xp is not np and not on_gpu:
        return None, f"the fused path runs on NumPy or CuPy, not {namespace_name(xp)}"
    if stochastic:
        return None, "noise and minibatches run on the array path"
    if problem.kind != "problem":
        return (
            None,
            "the fused path compiles a Problem's symbolic gradient; this objective has none",
        )
    if on_gpu:
        from .kernels.cuda import cuda_trajectories as trajectories
    else:
        from .kernels.fused import fused_trajectories as trajectories

    symbolic = problem.source.problem
    result, reason = trajectories(
        symbolic,
        optimizer,
        x,
        steps,
        params=params,
        record_steps=recorded,
        keep_x=mode in ("all", "steps"),
        keep_loss=True,
        threshold=threshold,
    )
    if result is None:
        return None, reason
    diverged_at = result["diverged_at"]
    loss = result["loss"]
    info = {
        "backend": namespace_name(xp),
        "device": str(x.device) if on_gpu else None,
        "dtype": _dtype_name(x.dtype),
        "path": "fused",
        "objective": problem.kind,
        "noise": "none",
        "sampling": "none",
        "seed": None,
        "stream_offset": 0,
        "threshold": threshold,
    }
    trace = Trace(
        x=result["xs"],
        loss=None if mode == "final" else loss,
        t=recorded,
        x_final=result["x"],
        loss_final=loss[-1] if recorded[-1] == steps else problem.value(result["x"], steps),
        diverged=diverged_at >= 0,
        diverged_at=diverged_at,
        steps=steps,
        record=mode,
        info=info,
    )
    return trace, "fused"


def _dtype_name(dtype: Any) -> str:
    try:
        return np.dtype(dtype).name
    except TypeError:
        return str(getattr(dtype, "name", dtype)).rsplit(".", 1)[-1]


def _keep_dtype(xp: Any, values: Any, dtype: Any) -> Any:
    # some dtypes (bfloat16 through ml_dtypes) promote with Python floats; iterates keep theirs
    return values if values.dtype == dtype else xp.astype(values, dtype)


def _sampling_name(finite_sum: FiniteSum | None) -> str:
    if finite_sum is None:
        return "none"
    if finite_sum.batch_size is None:
        return "full sum"
    how = "with" if finite_sum.replace else "without"
    return f"minibatch {finite_sum.batch_size} {how} replacement"


def _to_namespace(values: Any, xp: Any, dtype: Any, device: Any) -> Any:
    if xp is np or array_api_compat.is_cupy_namespace(xp):
        return values.astype(dtype, copy=False)
    return asarray(values, xp, dtype=dtype, device=device)


class _Sampler:
    """Minibatch indices (B, b) per step, each trajectory with its own stream."""

    def __init__(self, finite_sum: FiniteSum, streams: _Streams, rows: int, xp: Any, device: Any):
        self.n = finite_sum.n
        self.b = finite_sum.batch_size
        self.replace = finite_sum.replace
        self.streams = streams
        self.xp = xp
        self.device = device
        self.hx = streams.hx
        self._permutations: dict[int, Any] = {}

    def _permutation(self, epoch: int) -> Any:
        if epoch not in self._permutations:
            keys = self.streams.uniform(_PURPOSE_PERMUTATION, epoch, self.n)
            self._permutations = {k: v for k, v in self._permutations.items() if k >= epoch - 1}
            self._permutations[epoch] = self.hx.argsort(keys, axis=1)
        return self._permutations[epoch]

    def indices(self, t: int) -> Any:
        hx = self.hx
        if self.replace:
            u = self.streams.uniform(_PURPOSE_WITH_REPLACEMENT, t, self.b)
            idx = hx.minimum((u * self.n).astype(hx.int64), self.n - 1)
        else:
            positions = t * self.b + np.arange(self.b)
            epochs = positions // self.n
            first, last = int(epochs[0]), int(epochs[-1])
            within = hx.asarray(positions % self.n)
            idx = self._permutation(first)[:, within]
            if last != first:
                later = self._permutation(last)[:, within]
                idx = hx.where(hx.asarray(epochs == last)[None, :], later, idx)
        if self.xp is np or array_api_compat.is_cupy_namespace(self.xp):
            return idx
        return asarray(idx, self.xp, dtype=self.xp.int64, device=self.device)


# --------------------------------------------------------------------------- sweep


@dataclass(repr=False)
class SweepResult:
    """What a :func:`sweep` measured, reshaped to the grid.

    Attributes
    ----------
    grid : dict of str to numpy.ndarray
        Each hyperparameter's value at every grid point, arrays of shape ``shape``.
    shape : tuple of int
        The grid's shape (lengths of the axes for a product grid, plus a trailing axis of
        ``repeats`` when repeats > 1).
    final_loss : numpy.ndarray or None
        Objective at the last iterate (None without a value function).
    final_x : numpy.ndarray
        Last iterates, shape ``shape + (d,)``.
    diverged : numpy.ndarray of bool
        Divergence flags.
    rate : numpy.ndarray
        Empirical per-step contraction factor: ``(|x_T - x_{T-1}| / |x_k - x_{k-1}|) **
        (1 / (T - k))`` with k = max(1, T // 2), the geometric mean over the second half of
        the run (NaN for T < 2, inf for diverged runs).
    steps : int
    info : dict
        The first chunk's ``trace.info``, with ``chunks``, ``chunk_size`` and ``product``.
    """

    grid: dict[str, np.ndarray]
    shape: tuple[int, ...]
    final_loss: np.ndarray | None
    final_x: np.ndarray
    diverged: np.ndarray
    rate: np.ndarray
    steps: int
    info: dict[str, Any] = field(default_factory=dict)

    def best(self) -> dict[str, Any]:
        """Hyperparameters and final loss of the non-diverged point with the smallest loss."""
        if self.final_loss is None:
            raise ValueError(
                "best() compares final losses, and this sweep has none: its objective gives "
                "no values (use a Problem, or an oracle or FiniteSum with values)"
            )
        losses = np.where(self.diverged, np.inf, self.final_loss)
        flat = int(np.argmin(losses))
        index = np.unravel_index(flat, self.shape)
        chosen = {name: values[index].item() for name, values in self.grid.items()}
        chosen["final_loss"] = float(losses[index])
        return chosen

    def __repr__(self) -> str:
        names = ", ".join(self.grid)
        text = (
            f"SweepResult(shape={self.shape}, over=({names}), steps={self.steps}, "
            f"diverged {int(self.diverged.sum())}/{self.diverged.size}, "
            f"chunks={self.info.get('chunks')}"
        )
        if self.final_loss is not None and not self.diverged.all():
            best = self.best()
            shown = ", ".join(f"{k}={v:.4g}" for k, v in best.items() if k != "final_loss")
            text += f", best final loss {best['final_loss']:.4g} at {shown}"
        return text + ")"


def _grid_points(
    grid: Mapping[str, Any], product: bool, repeats: int
) -> tuple[dict[str, np.ndarray], tuple[int, ...]]:
    if not isinstance(grid, Mapping) or not grid:
        raise invalid("grid", grid, "a non-empty dict of hyperparameter name -> 1-D array")
    axes: dict[str, np.ndarray] = {}
    for name, values in grid.items():
        if not isinstance(name, str):
            raise invalid("grid", name, "hyperparameter names as strings")
        array = np.asarray(to_numpy(values) if hasattr(values, "shape") else values)
        if array.ndim != 1 or array.size == 0:
            raise invalid(
                f"grid[{name!r}]", f"<array of shape {array.shape}>", "a non-empty 1-D array"
            )
        axes[name] = array
    if product:
        shape = tuple(a.size for a in axes.values())
        mesh = np.meshgrid(*axes.values(), indexing="ij")
        points = dict(zip(axes, mesh, strict=True))
    else:
        sizes = {a.size for a in axes.values()}
        if len(sizes) != 1:
            raise invalid(
                "grid",
                {k: v.size for k, v in axes.items()},
                "arrays of equal length when product=False",
            )
        shape = (sizes.pop(),)
        points = dict(axes)
    if repeats > 1:
        shape = shape + (repeats,)
        points = {k: np.broadcast_to(v[..., None], shape) for k, v in points.items()}
    return {k: np.ascontiguousarray(v) for k, v in points.items()}, shape


def _rate_window(steps: int) -> tuple[int, int] | None:
    """Steps k < T between which the sweep measures its rate (None for T < 2)."""
    if steps < 2:
        return None
    return max(1, steps // 2), steps


def evaluate_chunk(
    objective: Any,
    optimizer_factory: Callable[..., Optimizer],
    hyperparameters: Mapping[str, np.ndarray],
    x0: Any,
    steps: int,
    offset: int,
    options: Mapping[str, Any],
) -> dict[str, Any]:
    """Run one chunk of a sweep and return its summaries as NumPy arrays.

    A top-level function of picklable arguments, so that chunks can be shipped to other
    processes or machines: the objective (a Problem, a FiniteSum or a top-level function),
    the optimizer factory, the chunk's hyperparameters (name -> array of shape (C,); names
    of the Problem's parameters go to ``params``, the others to the factory), the starting
    point, the number of steps, the chunk's offset in the flattened grid (its trajectories
    draw the random streams ``offset .. offset + C - 1``) and the keyword arguments of
    :func:`run`.

    Returns
    -------
    dict
        ``final_x`` (C, d), ``final_loss`` (C,) or None, ``diverged`` (C,), ``rate`` (C,),
        and ``info``.
    """
    size = len(next(iter(hyperparameters.values())))
    names = _parameter_names(objective)
    settings = dict(options)
    problem_values = {k: v for k, v in hyperparameters.items() if k in names}
    if problem_values:
        settings["params"] = {**(settings.get("params") or {}), **problem_values}
    optimizer = optimizer_factory(**{k: v for k, v in hyperparameters.items() if k not in names})
    window = _rate_window(steps)
    recorded = [steps] if window is None else sorted({window[0] - 1, window[0], steps - 1, steps})
    trace = run(
        objective,
        optimizer,
        x0,
        steps,
        batch=size,
        stream_offset=offset,
        record=recorded,
        **settings,
    ).to_numpy()
    if window is not None:
        k, last = window
        at = {step: trace.x[i].astype(np.float64) for i, step in enumerate(recorded)}
        with np.errstate(all="ignore"):
            early = np.linalg.norm(at[k] - at[k - 1], axis=1)
            late = np.linalg.norm(at[last] - at[last - 1], axis=1)
            rate = (late / early) ** (1.0 / (last - k))
        rate = np.where(early == 0, np.where(late == 0, 0.0, np.inf), rate)
        rate = np.where(trace.diverged, np.inf, rate)
    else:
        rate = np.full(size, np.nan)
    return {
        "final_x": trace.x_final,
        "final_loss": trace.loss_final,
        "diverged": trace.diverged,
        "rate": rate,
        "info": trace.info,
    }


def _itemsize(dtype: Any) -> int:
    try:
        return np.dtype(dtype if dtype is not None else np.float64).itemsize
    except TypeError:
        return 8


def _bytes_per_trajectory(objective: Any, d: int, itemsize: int) -> int:
    per = d * 16  # iterate, gradient, update temporaries, optimizer state
    if isinstance(objective, FiniteSum):
        per += (objective.batch_size or objective.n) * d * 2
    per += d * d * 4  # Hessians and their factorizations, for second-order methods
    return per * itemsize + 256


def _chunks_on_cluster(
    client: Any, objective: Any, optimizer_factory: Callable[..., Optimizer], tasks: list
) -> list[dict[str, Any]]:
    """Evaluate the chunks of a sweep on a Dask cluster, in order (hook of :func:`sweep`).

    The objective and the factory are scattered to the workers once; each task then carries
    only its hyperparameter chunk. ``client`` is a ``distributed.Client`` or an address."""
    owned = None
    if isinstance(client, str):
        try:
            from distributed import Client
        except ImportError:
            raise invalid(
                "client", client, "an address usable with Dask: pip install 'convexkit[dist]'"
            ) from None
        client = owned = Client(client, set_as_default=False)
    elif not all(callable(getattr(client, name, None)) for name in ("submit", "gather")):
        raise invalid("client", client, "None, a distributed.Client or a scheduler address (str)")
    try:
        shared = client.scatter([objective, optimizer_factory], broadcast=True, hash=False)
        futures = [
            client.submit(evaluate_chunk, *shared, chunk, point, steps, start, options, pure=False)
            for chunk, point, steps, start, options in tasks
        ]
        return client.gather(futures)
    finally:
        if owned is not None:
            owned.close()


def sweep(
    objective: Any,
    optimizer_factory: Callable[..., Optimizer],
    grid: Mapping[str, Any],
    x0: Any,
    steps: int,
    *,
    product: bool = True,
    repeats: int = 1,
    chunk_size: int | None = None,
    memory: int = 256 * 2**20,
    progress: bool | None = None,
    seed: Any = None,
    client: Any = None,
    **options: Any,
) -> SweepResult:
    """Evaluate ``optimizer_factory(**hyperparameters)`` at every point of a grid.

    The grid is flattened into the batch axis of :func:`run` and evaluated in chunks. Every
    trajectory draws its own random stream (its index in the flattened grid), so the result
    does not depend on ``chunk_size``.

    Parameters
    ----------
    objective : Problem, oracle, FiniteSum or callable
        As for :func:`run`.
    optimizer_factory : callable
        Builds an optimizer from keyword hyperparameters given as arrays of shape (C,), e.g.
        ``ck.optim.momentum``. Use ``functools.partial`` to fix the others.
    grid : dict of str to 1-D array
        Hyperparameter values. Names of a Problem's parameters (say ``lam`` in
        ``"lam*x**2/2"``) vary the objective instead, through ``params``; the other names
        are passed to ``optimizer_factory``. With ``product=True`` (default) the Cartesian
        product of the arrays, shape
        ``(len(a1), len(a2), ...)``; with ``product=False`` the arrays are aligned (equal
        length n, point i takes entry i of each), shape ``(n,)``.
    x0 : array_like of shape (d,)
        The starting point of every trajectory.
    steps : int
        Steps per trajectory.
    product : bool
        Cartesian product or aligned arrays.
    repeats : int
        Trajectories per grid point (different random streams); adds a trailing axis of this
        length to the result when > 1.
    chunk_size : int, optional
        Trajectories per chunk; by default as many as fit in ``memory`` bytes.
    memory : int
        Memory budget in bytes of one chunk when ``chunk_size`` is None.
    progress : bool, optional
        Show a tqdm bar over chunks. None shows it only when the sweep is long (several
        chunks and more than 10**7 trajectory-steps) and stderr is a terminal.
    seed : int, numpy.random.Generator or None
        Key of the random streams, shared by all chunks.
    client : distributed.Client or str, optional
        Run the chunks on a Dask cluster: a ``distributed.Client`` or a scheduler address
        (``"tcp://10.0.0.5:8786"``; a client is opened and closed for the sweep). The result is
        the same as without it, bit for bit. Needs the ``dist`` extra; see
        ``docs/distributed.md``.
    **options
        Further keyword arguments of :func:`run` (``noise``, ``xp``, ``dtype``, ``device``,
        ``threshold``, ``params``, ``online``).

    Returns
    -------
    SweepResult

    Examples
    --------
    GD on x²/2 contracts by |1 - lr| per step:

    >>> import numpy as np, convexkit as ck
    >>> result = ck.sweep(lambda x: x, ck.optim.gd, {"lr": [0.5, 1.5, 2.5]}, [1.0], 100)
    >>> result.rate.round(6).tolist(), result.diverged.tolist()
    ([0.5, 0.5, inf], [False, False, True])
    """
    steps = check_int("steps", steps, minimum=0)
    repeats = check_int("repeats", repeats, minimum=1)
    if not callable(optimizer_factory):
        raise invalid("optimizer_factory", optimizer_factory, "a callable returning an Optimizer")
    forbidden = {"batch", "stream_offset", "record"} & set(options)
    if forbidden:
        name = sorted(forbidden)[0]
        raise invalid(name, options[name], "no value: sweep sets it for each chunk")
    point = np.asarray(to_numpy(x0) if hasattr(x0, "shape") else x0)
    if point.ndim != 1 or point.size == 0:
        raise invalid("x0", f"<array of shape {point.shape}>", "one starting point of shape (d,)")
    points, shape = _grid_points(grid, product, repeats)
    total = int(np.prod(shape))
    if chunk_size is None:
        memory = check_int("memory", memory, minimum=1)
        per = _bytes_per_trajectory(objective, point.size, _itemsize(options.get("dtype")))
        per *= getattr(options.get("parallel"), "workers", 1)  # hook: K workers per run
        chunk_size = max(1, memory // per)
    chunk_size = min(check_int("chunk_size", chunk_size, minimum=1), total)
    seed_value = _resolve_seed(seed)
    flat = {k: v.reshape(-1) for k, v in points.items()}
    starts = range(0, total, chunk_size)
    if progress is None:
        progress = len(starts) > 1 and total * steps > 10**7 and sys.stderr.isatty()
    if not isinstance(progress, bool):
        raise invalid("progress", progress, "None, True or False")
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, unit="chunk", desc="sweep", file=sys.stderr)

    if client is not None:
        # ---- hook: the chunks run on a Dask cluster (convexkit.parallel.cluster documents it)
        tasks = [
            (
                {k: v[start : min(start + chunk_size, total)] for k, v in flat.items()},
                point,
                steps,
                start,
                dict(options, seed=seed_value),
            )
            for start in range(0, total, chunk_size)
        ]
        pieces = _chunks_on_cluster(client, objective, optimizer_factory, tasks)
        # ---- end of hook
    else:
        pieces = []
        for start in starts:
            stop = min(start + chunk_size, total)
            chunk = {k: v[start:stop] for k, v in flat.items()}
            pieces.append(
                evaluate_chunk(
                    objective,
                    optimizer_factory,
                    chunk,
                    point,
                    steps,
                    start,
                    dict(options, seed=seed_value),
                )
            )
    losses = [p["final_loss"] for p in pieces]
    info = dict(pieces[0]["info"], chunks=len(pieces), chunk_size=chunk_size, product=product)
    return SweepResult(
        grid=points,
        shape=shape,
        final_loss=None if losses[0] is None else np.concatenate(losses).reshape(shape),
        final_x=np.concatenate([p["final_x"] for p in pieces]).reshape(shape + (point.size,)),
        diverged=np.concatenate([p["diverged"] for p in pieces]).reshape(shape),
        rate=np.concatenate([p["rate"] for p in pieces]).reshape(shape),
        steps=steps,
        info=info,
    )
