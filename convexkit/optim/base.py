"""The shape every optimizer shares: a pair of pure functions over a small state tuple.

An :class:`Optimizer` is ``(init, update)``:

* ``init(x) -> state``: ``x`` has shape (B, d), batch axis first; ``state`` is a tuple of
  arrays (or an empty tuple).
* ``update(x, grad, state, step, oracle=None) -> (x_next, state_next)``: one step. ``grad``
  is the (possibly stochastic) gradient at ``x``; ``step`` is the 0-based step index (an int);
  ``oracle`` is needed only by methods that list more than ``"grad"`` in ``needs`` (Newton
  needs ``"hess"``, line searches need ``"value"``). It offers ``value(x) -> (B,)``,
  ``grad(x) -> (B, d)`` and ``hess(x) -> (B, d, d)``.

Update rules use no in-place writes and no Python branches on array values, so that the same
code runs on NumPy, CuPy, array-api-strict and on SymPy symbols (the theory layer derives
each linear method's iteration matrix from it).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np

from ..backend import array_namespace, asarray, device_of, is_symbolic
from ..errors import interval_text, invalid

__all__ = ["Optimizer", "check_hyperparameter", "hyperparameter"]


class Optimizer(NamedTuple):
    """An optimizer as a pair of pure functions.

    Attributes
    ----------
    name : str
        Short name ("momentum", "adam", ...).
    init : callable
        ``init(x) -> state``.
    update : callable
        ``update(x, grad, state, step, oracle=None) -> (x_next, state_next)``.
    hyperparams : Mapping[str, Any]
        The hyperparameters it was built with (scalars, arrays over the batch, schedules).
    needs : frozenset of str
        What the oracle must provide: a subset of {"value", "grad", "hess"}.
    """

    name: str
    init: Callable[[Any], tuple]
    update: Callable[..., tuple[Any, tuple]]
    hyperparams: Mapping[str, Any]
    needs: frozenset[str] = frozenset({"grad"})

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={_short(v)}" for k, v in self.hyperparams.items())
        return f"optim.{self.name}({shown})"


def _short(value: Any) -> str:
    if isinstance(value, np.ndarray) or hasattr(value, "shape"):
        return f"<array {tuple(value.shape)}>"
    if callable(value):
        return getattr(value, "__name__", type(value).__name__)
    return repr(value)


def check_hyperparameter(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    schedule: bool = False,
) -> Any:
    """Validate a hyperparameter: a real scalar, an array of reals, a SymPy expression or,
    where ``schedule`` is True, a callable of the step.

    Scalars and host arrays are checked against the interval; other backends' arrays, SymPy
    expressions and schedules are passed through (a schedule's values are the schedule's
    business). Returns ``value`` unchanged.
    """
    if callable(value) and not hasattr(value, "shape"):
        if schedule:
            return value
        raise invalid(name, value, "a number or an array (schedules are accepted only for lr)")
    if is_symbolic(value):
        return value
    if isinstance(value, bool):
        raise invalid(name, value, "a real number")
    if isinstance(value, numbers.Real) or isinstance(value, (np.ndarray, list, tuple)):
        array = np.asarray(value, dtype=float)
        interval = interval_text(low, high, low_open, high_open)
        bad = ~np.isfinite(array)
        if low is not None:
            bad |= (array < low) | ((array == low) if low_open else False)
        if high is not None:
            bad |= (array > high) | ((array == high) if high_open else False)
        if np.any(bad):
            shown = value if array.ndim == 0 else f"array with entry {array[bad].flat[0]!r}"
            raise invalid(name, shown, f"real values in {interval}")
        return value
    return value


def hyperparameter(value: Any, step: Any, like: Any) -> Any:
    """A hyperparameter's value at ``step``, ready to combine with arrays shaped like ``like``.

    Schedules are evaluated at ``step``; Python scalars and SymPy objects pass through; arrays
    of shape (B,) (or any leading shape) are moved to ``like``'s namespace, device and dtype and
    given trailing unit axes so they broadcast over the batch.
    """
    if callable(value) and not hasattr(value, "shape"):
        value = value(step)
    if isinstance(value, numbers.Number) or is_symbolic(value) or is_symbolic(like):
        return value
    xp = array_namespace(like)
    array = asarray(value, xp, dtype=like.dtype, device=device_of(like))
    if array.ndim == 0:
        return array
    extra = like.ndim - array.ndim
    if extra > 0:
        array = xp.reshape(array, tuple(array.shape) + (1,) * extra)
    return array
