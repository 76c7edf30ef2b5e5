"""First-order methods: gradient descent, momentum, Nesterov, delayed gradients, diagonal
preconditioning and gradient descent with a bisection line search.

Every update rule is written once against the array namespace of ``x``, so it runs on
NumPy, CuPy, array-api-strict and, for the linear methods (:func:`gd`, :func:`sgd`,
:func:`momentum`, :func:`nesterov`, :func:`delayed_gd`, :func:`preconditioned_gd`), on SymPy
symbols, where it returns its own iteration map::

    >>> import sympy as sp
    >>> x, lam, eta, beta = sp.symbols("x lam eta beta")
    >>> opt = momentum(eta, beta)
    >>> opt.update(x, lam * x, opt.init(x), 0)
    (-eta*lam*x + x, MomentumState(v=lam*x))
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ..backend import array_namespace, asarray, device_of, is_symbolic
from ..errors import check_choice, check_int, invalid
from .base import Optimizer, check_hyperparameter, hyperparameter
from .wrappers import with_weight_decay

__all__ = [
    "MomentumState",
    "delayed_gd",
    "gd",
    "line_search_gd",
    "momentum",
    "nesterov",
    "preconditioned_gd",
    "sgd",
]

CONVENTIONS = ("d2l", "torch")


class MomentumState(NamedTuple):
    """State of :func:`momentum` and :func:`nesterov`: the velocity ``v`` (shape of x)."""

    v: Any


def _is_python_zero(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0


def _check_lr(lr: Any) -> Any:
    return check_hyperparameter("lr", lr, low=0.0, schedule=True)


def _check_convention(convention: str) -> str:
    return check_choice("convention", convention, CONVENTIONS)


def _finish(
    name: str,
    init: Any,
    update: Any,
    hyperparams: dict[str, Any],
    weight_decay: Any,
    needs: frozenset[str] = frozenset({"grad"}),
) -> Optimizer:
    return with_weight_decay(Optimizer(name, init, update, hyperparams, needs), weight_decay)


def _no_state(x: Any) -> tuple:
    return ()


def _plain_step(name: str, lr: Any, weight_decay: Any) -> Optimizer:
    _check_lr(lr)

    def update(x, grad, state, step, oracle=None):
        return x - hyperparameter(lr, step, x) * grad, state

    return _finish(name, _no_state, update, {"lr": lr}, weight_decay)


def gd(lr: Any, *, weight_decay: Any = 0.0) -> Optimizer:
    """Gradient descent: ``x ← x − η ∇f(x)``.

    Parameters
    ----------
    lr : float, array of shape (B,), SymPy expression or schedule
        Learning rate η >= 0; a schedule is a callable of the 0-based step.
    weight_decay : float, array of shape (B,) or SymPy expression, default 0
        L2 weight decay λ: the gradient becomes ``g + λ x`` (see
        :func:`~convexkit.optim.wrappers.with_weight_decay`; identical to PyTorch's SGD).

    Returns
    -------
    Optimizer
        With an empty state.
    """
    return _plain_step("gd", lr, weight_decay)


def sgd(lr: Any, *, weight_decay: Any = 0.0) -> Optimizer:
    """Stochastic gradient descent: ``x ← x − η g`` with ``g`` a stochastic gradient.

    The rule is that of :func:`gd`; the stochasticity (noise, minibatches) belongs to the
    runner that supplies ``g``. Identical to ``torch.optim.SGD(lr=η, weight_decay=λ)``.

    Parameters
    ----------
    lr : float, array of shape (B,), SymPy expression or schedule
        Learning rate η >= 0.
    weight_decay : float, array of shape (B,) or SymPy expression, default 0
        L2 weight decay λ (``g ← g + λ x``).
    """
    return _plain_step("sgd", lr, weight_decay)


def momentum(
    lr: Any,
    beta: Any = 0.9,
    *,
    dampening: Any = 0.0,
    weight_decay: Any = 0.0,
    convention: str = "d2l",
) -> Optimizer:
    """Heavy-ball momentum in the seeds' form (defaults η required, β = 0.9)::

        v ← β v + (1 − dampening) g
        x ← x − η v

    with ``v₀ = 0``. β = 0 gives gradient descent.

    Parameters
    ----------
    lr : float, array of shape (B,), SymPy expression or schedule
        Learning rate η >= 0.
    beta : float, array of shape (B,) or SymPy expression, default 0.9
        Momentum β in [0, 1].
    dampening : float, array or SymPy expression, default 0
        Dampening in [0, 1] of PyTorch's SGD.
    weight_decay : float, array or SymPy expression, default 0
        L2 weight decay λ (``g ← g + λ x``).
    convention : {"d2l", "torch"}
        ``"torch"`` reproduces ``torch.optim.SGD(lr, momentum=β, dampening=d)``, whose first
        step sets ``v ← g`` without dampening; with dampening 0 both conventions coincide.

    Returns
    -------
    Optimizer
        State :class:`MomentumState` ``(v,)``.
    """
    _check_lr(lr)
    check_hyperparameter("beta", beta, low=0.0, high=1.0)
    check_hyperparameter("dampening", dampening, low=0.0, high=1.0)
    torch_first = _check_convention(convention) == "torch"

    def init(x):
        return MomentumState(array_namespace(x).zeros_like(x))

    damped = not _is_python_zero(dampening)

    def update(x, grad, state, step, oracle=None):
        (v,) = state
        fresh = (1 - hyperparameter(dampening, step, x)) * grad if damped else grad
        if torch_first and step == 0:
            v_next = grad
        else:
            v_next = hyperparameter(beta, step, x) * v + fresh
        return x - hyperparameter(lr, step, x) * v_next, MomentumState(v_next)

    hyper = {"lr": lr, "beta": beta}
    if damped:
        hyper["dampening"] = dampening
    if torch_first:
        hyper["convention"] = convention
    return _finish("momentum", init, update, hyper, weight_decay)


def nesterov(lr: Any, beta: Any = 0.9, *, weight_decay: Any = 0.0) -> Optimizer:
    """Nesterov's accelerated gradient, using only the gradient at the current point::

        v ← β v + g(x)
        x ← x − η (g(x) + β v)

    (defaults η required, β = 0.9), which is exactly
    ``torch.optim.SGD(lr=η, momentum=β, nesterov=True)``.

    Notes
    -----
    This is the usual look-ahead form ``u ← β u − η ∇f(y + β u)``, ``y ← y + u`` written in
    the variables ``x = y + β u`` (the look-ahead point) and ``v = −u/η``: substituting gives
    ``x_{t+1} = x_t − η((1 + β) g(x_t) + β² v_t)`` in both forms, so for a constant η the two
    produce the same iterates (the look-ahead form's ``y`` is ``x − β u``). Only ``g(x)`` is
    needed, so a runner hands it the gradient at ``x`` like every other method.

    Parameters
    ----------
    lr : float, array of shape (B,), SymPy expression or schedule
        Learning rate η >= 0.
    beta : float, array of shape (B,) or SymPy expression, default 0.9
        Momentum β in [0, 1].
    weight_decay : float, array or SymPy expression, default 0
        L2 weight decay λ (``g ← g + λ x``).

    Returns
    -------
    Optimizer
        State :class:`MomentumState` ``(v,)``.
    """
    _check_lr(lr)
    check_hyperparameter("beta", beta, low=0.0, high=1.0)

    def init(x):
        return MomentumState(array_namespace(x).zeros_like(x))

    def update(x, grad, state, step, oracle=None):
        (v,) = state
        b = hyperparameter(beta, step, x)
        v_next = b * v + grad
        return x - hyperparameter(lr, step, x) * (grad + b * v_next), MomentumState(v_next)

    return _finish("nesterov", init, update, {"lr": lr, "beta": beta}, weight_decay)


def delayed_gd(lr: Any, tau: int = 1, *, weight_decay: Any = 0.0) -> Optimizer:
    """Gradient descent with a stale gradient: ``x_{t+1} = x_t − η g_{t−τ}``.

    The state holds the last τ gradients, newest first: ``(g_{t−1}, …, g_{t−τ})``. Before
    any gradient exists (t < τ) the delayed gradient is zero, so the first τ steps leave
    ``x`` where it is; this is the zero initial state of the delay line, the same convention
    as a stale worker that has not yet reported. τ = 0 is gradient descent.

    On the scalar model ``g = λx`` the state is τ more coordinates of a linear iteration, so
    the theory layer obtains the companion-matrix map (characteristic polynomial
    ``z^{τ+1} − z^τ + ηλ``).

    Parameters
    ----------
    lr : float, array of shape (B,), SymPy expression or schedule
        Learning rate η >= 0.
    tau : int, default 1
        Delay τ >= 0 in steps.
    weight_decay : float, array or SymPy expression, default 0
        L2 weight decay λ, applied to the fresh gradient before it enters the delay line.

    Returns
    -------
    Optimizer
        State: a tuple of τ arrays shaped like ``x``.
    """
    _check_lr(lr)
    tau = check_int("tau", tau, minimum=0)

    def init(x):
        xp = array_namespace(x)
        return tuple(xp.zeros_like(x) for _ in range(tau))

    def update(x, grad, state, step, oracle=None):
        if tau == 0:
            return x - hyperparameter(lr, step, x) * grad, ()
        stale = state[tau - 1]
        return x - hyperparameter(lr, step, x) * stale, (grad, *state[: tau - 1])

    return _finish("delayed_gd", init, update, {"lr": lr, "tau": tau}, weight_decay)


def _diagonal(diag: Any, x: Any) -> Any:
    """``diag`` ready to multiply ``x``: scalars pass, (d,) broadcasts, (B, d) matches."""
    if isinstance(diag, (int, float)) or is_symbolic(diag) or is_symbolic(x):
        return diag
    xp = array_namespace(x)
    return asarray(diag, xp, dtype=x.dtype, device=device_of(x))


def preconditioned_gd(lr: Any, diag: Any, *, weight_decay: Any = 0.0) -> Optimizer:
    """Gradient descent with a fixed diagonal preconditioner: ``x ← x − η g / D``.

    With ``D = diag(H)`` (Jacobi) an axis-aligned quadratic is solved in one step for η = 1;
    in general it rescales each coordinate so that one learning rate suits all of them, the
    seeds' motivation for preconditioning (section 11.3.3).

    Parameters
    ----------
    lr : float, array of shape (B,), SymPy expression or schedule
        Learning rate η >= 0.
    diag : float, array of shape (d,) or (B, d), or SymPy expression
        The positive diagonal ``D``; shape (d,) is shared by the batch, (B, d) gives each
        trajectory its own.
    weight_decay : float, array or SymPy expression, default 0
        L2 weight decay λ (``g ← g + λ x``).
    """
    _check_lr(lr)
    check_hyperparameter("diag", diag, low=0.0, low_open=True)

    def update(x, grad, state, step, oracle=None):
        return x - hyperparameter(lr, step, x) * grad / _diagonal(diag, x), state

    return _finish("preconditioned_gd", _no_state, update, {"lr": lr, "diag": diag}, weight_decay)


def line_search_gd(max_lr: Any = 1.0, *, rounds: int = 30, weight_decay: Any = 0.0) -> Optimizer:
    """Gradient descent with a bisection line search along the negative gradient.

    Each step minimizes ``φ(η) = f(x − η g)`` over ``η ∈ [0, η_max]`` by interval halving:
    with ``w = hi − lo`` and the points ``lo + w/4``, ``lo + w/2``, ``lo + 3w/4``, keep the
    half interval around the smallest of the three values. After ``rounds`` rounds the
    interval has width ``η_max 2^{−rounds}`` and ``η`` is its midpoint; if ``φ(η) > φ(0)``
    (a non-unimodal φ) the step is rejected (η = 0). Every trajectory searches its own
    interval, all at once: a round costs two batched value evaluations, ``rounds`` is fixed,
    and there is no loop over the batch. The oracle must give ``value``.

    For unimodal φ this finds the exact line minimizer up to the final interval width, as the
    seeds describe (section 11.3.3): fast in steps, costly in function evaluations.

    Parameters
    ----------
    max_lr : float, array of shape (B,) or schedule, default 1.0
        Upper end η_max > 0 of the search interval.
    rounds : int, default 30
        Number of halvings (>= 1).
    weight_decay : float or array, default 0
        L2 weight decay λ: the search minimizes ``f + (λ/2)‖x‖²``.

    Returns
    -------
    Optimizer
        With an empty state and ``needs = {"grad", "value"}``.
    """
    check_hyperparameter("max_lr", max_lr, low=0.0, low_open=True, schedule=True)
    rounds = check_int("rounds", rounds, minimum=1)

    def update(x, grad, state, step, oracle=None):
        if oracle is None or not callable(getattr(oracle, "value", None)):
            raise invalid("oracle", oracle, "an oracle with value(x) (line_search_gd needs values)")
        xp = array_namespace(x)
        top = hyperparameter(max_lr, step, x)

        def phi(eta):
            return xp.reshape(oracle.value(x - eta * grad), (-1, 1))

        lo = xp.zeros_like(x[:, :1])
        hi = lo + top
        mid = (lo + hi) / 2
        f_mid = phi(mid)
        for _ in range(rounds):
            quarter = (hi - lo) / 4
            f_left = phi(mid - quarter)
            f_right = phi(mid + quarter)
            go_left = f_left < f_mid
            go_right = (f_right < f_mid) & ~go_left
            lo_next = xp.where(go_left, lo, xp.where(go_right, mid, mid - quarter))
            hi_next = xp.where(go_left, mid, xp.where(go_right, hi, mid + quarter))
            f_mid = xp.where(go_left, f_left, xp.where(go_right, f_right, f_mid))
            lo, hi = lo_next, hi_next
            mid = (lo + hi) / 2
        eta = xp.where(f_mid <= phi(lo * 0), mid, lo * 0)
        return x - eta * grad, state

    return _finish(
        "line_search_gd",
        _no_state,
        update,
        {"max_lr": max_lr, "rounds": rounds},
        weight_decay,
        needs=frozenset({"grad", "value"}),
    )
