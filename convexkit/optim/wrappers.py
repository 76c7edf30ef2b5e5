"""Wrappers that change what any optimizer sees or where its iterates may go.

* :func:`with_weight_decay` adds L2 weight decay, ``f(x) + (λ/2)‖x‖²``, to any optimizer. Every
  factory in :mod:`convexkit.optim` takes ``weight_decay=`` and applies this wrapper, so
  ``adam(0.1, weight_decay=1e-2)`` and ``with_weight_decay(adam(0.1), 1e-2)`` are the same.
* :func:`projected` keeps the iterates in a convex set: ``x ← P(x)`` after every step.
"""

from __future__ import annotations

import numbers
from typing import Any, Protocol

from ..backend import array_namespace
from . import _arrays
from .base import Optimizer, check_hyperparameter, hyperparameter

__all__ = ["projected", "with_weight_decay"]


class ConvexSet(Protocol):
    """Anything with a batched Euclidean projection ``project(x)`` for ``x`` of shape (B, d)."""

    def project(self, x: Any) -> Any: ...


class _DecayedOracle:
    """An oracle for ``f(x) + (λ/2)‖x‖²`` built from an oracle for ``f``."""

    def __init__(self, oracle: Any, decay: Any, step: int) -> None:
        self._oracle = oracle
        self._decay = decay
        self._step = step

    def value(self, x: Any) -> Any:
        xp = array_namespace(x)
        decay = hyperparameter(self._decay, self._step, x)
        if getattr(decay, "ndim", 0) > 0:
            decay = decay[..., 0]
        return self._oracle.value(x) + 0.5 * decay * xp.sum(x * x, axis=-1)

    def grad(self, x: Any) -> Any:
        return self._oracle.grad(x) + hyperparameter(self._decay, self._step, x) * x

    def hess(self, x: Any) -> Any:
        xp = array_namespace(x)
        h = self._oracle.hess(x)
        eye = _arrays.eye(xp, x.shape[-1], x)
        decay = hyperparameter(self._decay, self._step, x)
        if getattr(decay, "ndim", 0) > 0:
            decay = xp.reshape(decay, (decay.shape[0], 1, 1))
        return h + decay * eye


def _is_zero(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and value == 0


def with_weight_decay(optimizer: Optimizer, weight_decay: Any) -> Optimizer:
    """Add L2 weight decay (coupled, as an L2 penalty on the objective) to ``optimizer``.

    The optimizer then minimizes ``f(x) + (λ/2)‖x‖²``: the gradient it is handed becomes
    ``g + λ x``, and an oracle it asks for values or Hessians is wrapped the same way
    (``f + (λ/2)‖x‖²`` and ``H + λ I``), so Newton's method and the line search see the
    penalized objective too. This is PyTorch's ``weight_decay`` for SGD, Adagrad, RMSprop,
    Adadelta and Adam (``grad = grad + weight_decay * param`` before anything else), not
    AdamW's decoupled decay.

    Parameters
    ----------
    optimizer : Optimizer
        Any optimizer.
    weight_decay : float, array of shape (B,) or SymPy expression
        λ >= 0. A Python zero returns ``optimizer`` unchanged.

    Returns
    -------
    Optimizer
        Same name and state; ``hyperparams`` gains ``weight_decay``.
    """
    check_hyperparameter("weight_decay", weight_decay, low=0.0)
    if _is_zero(weight_decay):
        return optimizer
    inner = optimizer.update

    def update(x, grad, state, step, oracle=None):
        decayed = grad + hyperparameter(weight_decay, step, x) * x
        wrapped = None if oracle is None else _DecayedOracle(oracle, weight_decay, step)
        return inner(x, decayed, state, step, wrapped)

    return optimizer._replace(
        update=update, hyperparams={**optimizer.hyperparams, "weight_decay": weight_decay}
    )


def projected(optimizer: Optimizer, convex_set: ConvexSet) -> Optimizer:
    """Projected version of ``optimizer``: after each update, ``x ← P_C(x)``.

    Parameters
    ----------
    optimizer : Optimizer
        Any optimizer.
    convex_set : object with ``project(x)``
        A convex set whose ``project`` maps points of shape (B, d) to their Euclidean
        projections, such as the sets of :mod:`convexkit.symbolic.sets`.

    Returns
    -------
    Optimizer
        Named ``"projected_<name>"``, with the same state; ``hyperparams`` gains ``set``.

    Notes
    -----
    The optimizer's state (momentum, second moments) is kept as the inner method computed
    it; only the iterate is projected. For gradient descent this is the classical projected
    gradient method ``x ← P_C(x − η ∇f(x))``.
    """
    if not callable(getattr(convex_set, "project", None)):
        raise TypeError(
            f"convex_set={convex_set!r} is not allowed: expected an object with a project(x) method"
        )
    inner = optimizer.update

    def update(x, grad, state, step, oracle=None):
        x_next, state_next = inner(x, grad, state, step, oracle)
        return convex_set.project(x_next), state_next

    return optimizer._replace(
        name=f"projected_{optimizer.name}",
        update=update,
        hyperparams={**optimizer.hyperparams, "set": convex_set},
    )
