"""Learning-rate schedules: functions of the step ``t`` (t = 0 is the first step).

Every schedule is a :class:`Schedule`, a callable that

* for a Python int ``t`` returns a float (or, when a parameter is an array of shape (B,),
  a NumPy array of shape (B,): one schedule per trajectory of a batch);
* for an array of ``t`` (any array-API namespace and device) returns the values of the
  closed form on the whole array at once, shape ``t.shape`` (or ``t.shape + (B,)``).

Pass one as ``lr`` to any optimizer: ``ck.optim.sgd(ck.schedules.cosine(1000, 0.1))``.
Formulas follow the seeds (Dive into Deep Learning, sections 11.4.2 and 11.11).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .backend import array_namespace, asarray, device_of
from .errors import check_int, interval_text, invalid

__all__ = [
    "Schedule",
    "constant",
    "cosine",
    "exponential",
    "factor",
    "inverse_time",
    "multi_factor",
    "piecewise_constant",
    "polynomial",
    "square_root",
    "warmup",
]


def _is_step(t: Any) -> bool:
    return isinstance(t, numbers.Integral) and not isinstance(t, bool)


def _param(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> Any:
    """A real scalar (returned as float) or a 1-D array over the batch (as a NumPy array)."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.ndarray, list, tuple)):
        raise invalid(name, value, "a real number or a 1-D array of reals over the batch")
    array = np.asarray(value, dtype=float)
    if array.ndim > 1:
        raise invalid(name, f"array of shape {array.shape}", "a real number or a 1-D array")
    interval = interval_text(low, high, low_open, high_open)
    bad = ~np.isfinite(array)
    if low is not None:
        bad |= (array < low) | ((array == low) if low_open else False)
    if high is not None:
        bad |= (array > high) | ((array == high) if high_open else False)
    if np.any(bad):
        shown = value if array.ndim == 0 else f"array with entry {array[bad].flat[0]!r}"
        raise invalid(name, shown, f"real values in {interval}")
    return float(array) if array.ndim == 0 else array


def _show(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"<array {tuple(value.shape)}>"
    return repr(value)


class Schedule:
    """A learning-rate schedule: ``schedule(t)`` for an int step or an array of steps.

    Parameters
    ----------
    name : str
        Name shown in the repr.
    formula : callable
        ``formula(t, xp, p)`` with ``t`` a floating array, ``xp`` its namespace and ``p`` the
        parameters as arrays or floats that broadcast against ``t``; the closed form.
    params : dict
        Parameters as given (floats or 1-D NumPy arrays over the batch) and ints.
    scalar : callable, optional
        ``scalar(t)`` for an int ``t``, used instead of ``formula`` when given (wrappers of
        arbitrary callables need Python branches for int steps).
    """

    def __init__(
        self,
        name: str,
        formula: Callable[[Any, Any, dict[str, Any]], Any],
        params: dict[str, Any],
        scalar: Callable[[int], Any] | None = None,
    ) -> None:
        self.name = name
        self.params = dict(params)
        self._formula = formula
        self._scalar = scalar
        self.batch = next(
            (v.shape[0] for v in self.params.values() if isinstance(v, np.ndarray)), None
        )
        self.__name__ = repr(self)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={_show(v)}" for k, v in self.params.items())
        return f"schedules.{self.name}({shown})"

    def __call__(self, t: Any) -> Any:
        """The learning rate at step ``t`` (an int >= 0, or an array of steps)."""
        if _is_step(t):
            if t < 0:
                raise invalid("t", t, "a step index >= 0")
            if self._scalar is not None:
                return self._scalar(int(t))
            value = self._evaluate(np.asarray(float(t)), np)
            return float(value) if value.ndim == 0 else value
        if isinstance(t, (float, bool)) or not hasattr(t, "shape"):
            raise invalid("t", t, "an int step >= 0 or an array of steps")
        xp = array_namespace(t)
        return self._evaluate(t, xp)

    def _evaluate(self, t: Any, xp: Any) -> Any:
        device = device_of(t)
        dtype = xp.float64 if t.dtype != getattr(xp, "float32", None) else t.dtype
        t = t.astype(dtype) if xp is np else xp.astype(t, dtype)
        if self.batch is not None:
            t = xp.reshape(t, tuple(t.shape) + (1,))
        params = {
            k: asarray(v, xp, dtype=dtype, device=device) if isinstance(v, np.ndarray) else v
            for k, v in self.params.items()
        }
        return self._formula(t, xp, params) + xp.zeros_like(t)


def constant(lr: Any) -> Schedule:
    """Constant learning rate: ``η(t) = η``.

    Parameters
    ----------
    lr : float or array of shape (B,)
        η >= 0.
    """
    lr = _param("lr", lr, low=0.0)
    return Schedule("constant", lambda t, xp, p: p["lr"], {"lr": lr})


def factor(factor: Any, stop_factor_lr: Any = 1e-7, base_lr: Any = 0.1) -> Schedule:
    """Single-factor decay (seeds 11.11.3.1): ``η_{t+1} = max(η_min, α η_t)``, ``η_0 = base_lr``,
    in closed form ``η(t) = max(η_min, η_0 α^t)``. Nonincreasing.

    d2l's stateful ``FactorScheduler`` multiplies before it returns, so its n-th call
    (n = 1, 2, ...) gives ``η(n)``; here ``t = 0`` gives ``η_0`` itself.

    Parameters
    ----------
    factor : float or array of shape (B,)
        α in (0, 1].
    stop_factor_lr : float or array, default 1e-7
        Floor η_min >= 0.
    base_lr : float or array, default 0.1
        η_0 >= 0.
    """
    params = {
        "factor": _param("factor", factor, low=0.0, high=1.0, low_open=True),
        "stop_factor_lr": _param("stop_factor_lr", stop_factor_lr, low=0.0),
        "base_lr": _param("base_lr", base_lr, low=0.0),
    }

    def formula(t, xp, p):
        decayed = p["base_lr"] * p["factor"] ** t
        return xp.maximum(decayed, xp.zeros_like(decayed) + p["stop_factor_lr"])

    return Schedule("factor", formula, params)


def _sorted_steps(name: str, values: Any) -> tuple[int, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise invalid(name, values, "a sequence of increasing step indices")
    steps = tuple(check_int(f"{name}[{i}]", v, minimum=0) for i, v in enumerate(values))
    if any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
        raise invalid(name, values, "strictly increasing step indices")
    return steps


def _count_passed(t: Any, xp: Any, steps: tuple[int, ...]) -> Any:
    """How many of ``steps`` are <= t, elementwise (a loop over the few steps, not over t)."""
    count = xp.zeros_like(t)
    for s in steps:
        passed = t >= s
        count = count + (passed.astype(t.dtype) if xp is np else xp.astype(passed, t.dtype))
    return count


def multi_factor(milestones: Sequence[int], factor: Any = 0.5, base_lr: Any = 0.1) -> Schedule:
    """Multi-factor (piecewise constant) decay (seeds 11.11.3.2):
    ``η(t) = η_0 α^{#{m in milestones : m <= t}}``, as PyTorch's ``MultiStepLR(milestones,
    gamma=α)``: the rate drops at the milestone step itself. Nonincreasing.

    Parameters
    ----------
    milestones : sequence of int
        Strictly increasing steps >= 0.
    factor : float or array of shape (B,), default 0.5
        α in (0, 1].
    base_lr : float or array, default 0.1
        η_0 >= 0.
    """
    steps = _sorted_steps("milestones", milestones)
    params = {
        "milestones": list(steps),
        "factor": _param("factor", factor, low=0.0, high=1.0, low_open=True),
        "base_lr": _param("base_lr", base_lr, low=0.0),
    }

    def formula(t, xp, p):
        return p["base_lr"] * p["factor"] ** _count_passed(t, xp, steps)

    return Schedule("multi_factor", formula, params)


def piecewise_constant(boundaries: Sequence[int], values: Sequence[float]) -> Schedule:
    """Piecewise constant (seeds 11.4.2): ``η(t) = values[i]`` for
    ``boundaries[i-1] <= t < boundaries[i]`` (with ``boundaries[-1] = 0`` and
    ``boundaries[len] = ∞``).

    Parameters
    ----------
    boundaries : sequence of int
        Strictly increasing steps >= 1 where the value changes.
    values : sequence of float
        ``len(boundaries) + 1`` values >= 0.
    """
    steps = _sorted_steps("boundaries", boundaries)
    if steps and steps[0] < 1:
        raise invalid("boundaries", boundaries, "steps >= 1 (the first piece starts at t = 0)")
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise invalid("values", values, "a sequence of len(boundaries) + 1 numbers")
    if len(values) != len(steps) + 1:
        raise invalid("values", values, f"{len(steps) + 1} numbers (len(boundaries) + 1)")
    levels = tuple(_param(f"values[{i}]", v, low=0.0) for i, v in enumerate(values))
    if any(isinstance(v, np.ndarray) for v in levels):
        raise invalid("values", values, "scalar numbers")

    def formula(t, xp, p):
        out = xp.zeros_like(t) + levels[0]
        for s, v in zip(steps, levels[1:], strict=True):
            out = xp.where(t >= s, xp.zeros_like(t) + v, out)
        return out

    return Schedule(
        "piecewise_constant", formula, {"boundaries": list(steps), "values": list(levels)}
    )


def exponential(base_lr: Any, rate: Any) -> Schedule:
    """Exponential decay (seeds 11.4.2): ``η(t) = η_0 e^{−λ t}``. Nonincreasing.

    Parameters
    ----------
    base_lr : float or array of shape (B,)
        η_0 >= 0.
    rate : float or array
        λ >= 0.
    """
    params = {"base_lr": _param("base_lr", base_lr, low=0.0), "rate": _param("rate", rate, low=0.0)}
    return Schedule("exponential", lambda t, xp, p: p["base_lr"] * xp.exp(-p["rate"] * t), params)


def polynomial(base_lr: Any, alpha: Any = 0.5, beta: Any = 1.0) -> Schedule:
    """Polynomial decay (seeds 11.4.2): ``η(t) = η_0 (β t + 1)^{−α}``, commonly α = 0.5.
    Nonincreasing.

    Parameters
    ----------
    base_lr : float or array of shape (B,)
        η_0 >= 0.
    alpha : float or array, default 0.5
        Exponent α >= 0.
    beta : float or array, default 1.0
        Time scale β >= 0.
    """
    params = {
        "base_lr": _param("base_lr", base_lr, low=0.0),
        "alpha": _param("alpha", alpha, low=0.0),
        "beta": _param("beta", beta, low=0.0),
    }
    return Schedule(
        "polynomial",
        lambda t, xp, p: p["base_lr"] * (p["beta"] * t + 1) ** (-p["alpha"]),
        params,
    )


def inverse_time(base_lr: Any, rate: Any) -> Schedule:
    """Inverse-time decay: ``η(t) = η_0 / (1 + λ t)``, the SGD decay of the seeds' first
    part. Nonincreasing.

    Parameters
    ----------
    base_lr : float or array of shape (B,)
        η_0 >= 0.
    rate : float or array
        λ >= 0.
    """
    params = {"base_lr": _param("base_lr", base_lr, low=0.0), "rate": _param("rate", rate, low=0.0)}
    return Schedule("inverse_time", lambda t, xp, p: p["base_lr"] / (1 + p["rate"] * t), params)


def square_root(base_lr: Any) -> Schedule:
    """Square-root decay (seeds 11.11.2, ``SquareRootScheduler``): ``η(t) = η_0 (t + 1)^{−1/2}``.
    Nonincreasing.

    Parameters
    ----------
    base_lr : float or array of shape (B,)
        η_0 >= 0.
    """
    params = {"base_lr": _param("base_lr", base_lr, low=0.0)}
    return Schedule("square_root", lambda t, xp, p: p["base_lr"] / xp.sqrt(t + 1), params)


def cosine(
    max_update: int,
    base_lr: Any = 0.01,
    final_lr: Any = 0.0,
    warmup_steps: int = 0,
    warmup_begin_lr: Any = 0.0,
) -> Schedule:
    """Cosine decay with optional linear warmup (seeds 11.11.3.3-4, d2l's ``CosineScheduler``).

    With ``W = warmup_steps`` and ``T = max_update``::

        η(t) = b + (η_0 − b) t / W                                    t < W
        η(t) = η_T + (η_0 − η_T) (1 + cos(π (t − W) / (T − W))) / 2   W <= t <= T
        η(t) = η_T                                                    t > T

    with ``b = warmup_begin_lr``, ``η_0 = base_lr``, ``η_T = final_lr``. Nonincreasing after
    the warmup when ``base_lr >= final_lr``.

    Parameters
    ----------
    max_update : int
        T, the step at which ``final_lr`` is reached (> warmup_steps).
    base_lr : float or array of shape (B,), default 0.01
        η_0 >= 0, the peak.
    final_lr : float or array, default 0
        η_T >= 0.
    warmup_steps : int, default 0
        W >= 0.
    warmup_begin_lr : float or array, default 0
        b >= 0.
    """
    total = check_int("max_update", max_update, minimum=1)
    ramp = check_int("warmup_steps", warmup_steps, minimum=0)
    if ramp >= total:
        raise invalid("warmup_steps", warmup_steps, f"fewer steps than max_update={total}")
    params = {
        "max_update": total,
        "base_lr": _param("base_lr", base_lr, low=0.0),
        "final_lr": _param("final_lr", final_lr, low=0.0),
        "warmup_steps": ramp,
        "warmup_begin_lr": _param("warmup_begin_lr", warmup_begin_lr, low=0.0),
    }

    def formula(t, xp, p):
        peak, final = p["base_lr"], p["final_lr"]
        progress = xp.minimum(
            xp.maximum(t - ramp, xp.zeros_like(t)), xp.zeros_like(t) + (total - ramp)
        ) / (total - ramp)
        decayed = final + (peak - final) * (1 + xp.cos(math.pi * progress)) / 2
        if ramp == 0:
            return decayed
        begin = p["warmup_begin_lr"]
        rising = begin + (peak - begin) * t / ramp
        return xp.where(t < ramp, rising + xp.zeros_like(decayed), decayed + xp.zeros_like(rising))

    return Schedule("cosine", formula, params)


def warmup(
    schedule: Callable[[Any], Any], warmup_steps: int, begin_lr: Any = 0.0, *, delay: bool = False
) -> Schedule:
    """Linear warmup in front of any schedule (seeds 11.11.3.4; e.g. the first 10% of steps).

    With ``W = warmup_steps`` and target ``η* = schedule(W)``::

        η(t) = b + (η* − b) t / W     t < W
        η(t) = schedule(t)            t >= W

    so the rate rises linearly from ``b = begin_lr`` and joins the schedule continuously.
    With ``delay=True`` the schedule starts after the warmup instead: the target is
    ``schedule(0)`` and ``η(t) = schedule(t − W)`` for ``t >= W`` (so ``cosine(T, η_0,
    warmup_steps=W)`` equals ``warmup(cosine(T − W, η_0), W, delay=True)``).

    Parameters
    ----------
    schedule : callable
        Any schedule: a :class:`Schedule` or a callable of the step (for arrays of t it must
        accept arrays).
    warmup_steps : int
        W >= 0 (0 returns the schedule's values unchanged).
    begin_lr : float or array of shape (B,), default 0
        b >= 0.
    delay : bool, default False
        Start the schedule's clock at the end of the warmup.
    """
    if not callable(schedule):
        raise invalid("schedule", schedule, "a schedule (a callable of the step)")
    ramp = check_int("warmup_steps", warmup_steps, minimum=0)
    begin = _param("begin_lr", begin_lr, low=0.0)
    anchor = 0 if delay else ramp
    shift = ramp if delay else 0

    def scalar(t: int) -> Any:
        value = begin + (schedule(anchor) - begin) * t / ramp if t < ramp else schedule(t - shift)
        if size is None:
            return value
        return np.zeros(size) + value

    inner_batched = isinstance(schedule, Schedule) and schedule.batch is not None
    batched = inner_batched or isinstance(begin, np.ndarray)
    size = schedule.batch if inner_batched else (begin.shape[0] if batched else None)

    def formula(t, xp, p):
        # The wrapped schedule sees the steps themselves and adds its own batch axis.
        flat = t[..., 0] if batched else t
        later = schedule(xp.maximum(flat - shift, xp.zeros_like(flat)))
        target = schedule(xp.zeros_like(flat) + anchor)
        if batched and not inner_batched:
            later = xp.reshape(later, tuple(later.shape) + (1,))
            target = xp.reshape(target, tuple(target.shape) + (1,))
        rising = p["begin_lr"] + (target - p["begin_lr"]) * t / max(ramp, 1)
        return xp.where(t < ramp, rising + xp.zeros_like(later), later + xp.zeros_like(rising))

    inner = getattr(schedule, "__name__", type(schedule).__name__)
    params = {"schedule": _Named(inner), "warmup_steps": ramp, "begin_lr": begin}
    if delay:
        params["delay"] = True
    result = Schedule("warmup", formula, params, scalar=scalar)
    result.batch = size
    return result


class _Named:
    """Shows a name without quotes in a repr."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text
