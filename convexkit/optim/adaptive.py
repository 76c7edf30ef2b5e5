"""Adaptive methods: AdaGrad, RMSProp, Adadelta, Adam, Yogi and AMSGrad.

Formulas and defaults are the seeds' (Dive into Deep Learning, sections 11.7 to 11.10),
with the step counted from t = 1 in bias corrections (``step + 1`` for the 0-based step
index). Methods that ``torch.optim`` also has take ``convention="torch"``, which reproduces
PyTorch's documented update rule and defaults:

=========  ===========================================  ==========================================
method     ``convention="d2l"`` (default)               ``convention="torch"``
=========  ===========================================  ==========================================
adagrad    ``η g / √(s + ε)``, ε = 1e-6                 ``η̃ g / (√s + ε)``, ε = 1e-10,
                                                        ``η̃ = η / (1 + step · lr_decay)``
rmsprop    ``η g / √(s + ε)``, γ = 0.9, ε = 1e-6        ``η g / (√s + ε)``, γ (alpha) = 0.99,
                                                        ε = 1e-8
adadelta   ε = 1e-5 inside both square roots            ε = 1e-6; same rule
adam       ε = 1e-6 outside the square root             ε = 1e-8; same rule
amsgrad    ε = 1e-6 outside the square root             ε = 1e-8; same rule
=========  ===========================================  ==========================================

Options PyTorch has beyond the seeds (Adagrad's ``lr_decay`` and
``initial_accumulator_value``, RMSprop's ``momentum`` and ``centered``, Adadelta's ``lr``)
are accepted under both conventions. ``weight_decay`` is PyTorch's coupled L2 decay
(``g ← g + λ x``) everywhere.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ..backend import array_namespace
from .base import Optimizer, check_hyperparameter, hyperparameter
from .first_order import _check_convention, _check_lr, _finish, _is_python_zero

__all__ = [
    "AdadeltaState",
    "AdagradState",
    "AdamState",
    "AmsgradState",
    "RMSpropState",
    "adadelta",
    "adagrad",
    "adam",
    "amsgrad",
    "rmsprop",
    "yogi",
]


class AdagradState(NamedTuple):
    """State of :func:`adagrad`: the running sum ``s`` of squared gradients."""

    s: Any


class RMSpropState(NamedTuple):
    """State of :func:`rmsprop`: the leaky average ``s`` of squared gradients, the momentum
    buffer ``buf`` (zero unless ``momentum > 0``) and the leaky average ``mean`` of gradients
    (zero unless ``centered``)."""

    s: Any
    buf: Any
    mean: Any


class AdadeltaState(NamedTuple):
    """State of :func:`adadelta`: leaky averages ``s`` of squared gradients and ``delta`` of
    squared parameter changes."""

    s: Any
    delta: Any


class AdamState(NamedTuple):
    """State of :func:`adam` and :func:`yogi`: first moment ``v`` and second moment ``s``."""

    v: Any
    s: Any


class AmsgradState(NamedTuple):
    """State of :func:`amsgrad`: moments ``v``, ``s`` and the running maximum ``s_max``."""

    v: Any
    s: Any
    s_max: Any


def _default(value: Any, convention: str, d2l: float, torch: float) -> Any:
    if value is not None:
        return value
    return torch if convention == "torch" else d2l


def _zeros(state_type: type) -> Any:
    def init(x):
        xp = array_namespace(x)
        return state_type(*(xp.zeros_like(x) for _ in state_type._fields))

    return init


def _hyper(convention: str, **values: Any) -> dict[str, Any]:
    shown = {k: v for k, v in values.items() if v is not None}
    if convention != "d2l":
        shown["convention"] = convention
    return shown


def adagrad(
    lr: Any,
    eps: Any = None,
    *,
    lr_decay: Any = 0.0,
    initial_accumulator_value: Any = 0.0,
    weight_decay: Any = 0.0,
    convention: str = "d2l",
) -> Optimizer:
    """AdaGrad (seeds, section 11.7)::

        s ← s + g²
        x ← x − η̃ g / √(s + ε)        (d2l, ε = 1e-6)
        x ← x − η̃ g / (√s + ε)        (torch, ε = 1e-10)

    with ``η̃ = η / (1 + step · lr_decay)`` and ``s₀ = initial_accumulator_value``.

    Parameters
    ----------
    lr : float, array of shape (B,), SymPy expression or schedule
        Learning rate η >= 0.
    eps : float, array or SymPy expression, optional
        ε >= 0; None takes the convention's default.
    lr_decay : float, array or SymPy expression, default 0
        PyTorch's ``lr_decay`` >= 0.
    initial_accumulator_value : float, default 0
        Initial value of ``s`` (>= 0).
    weight_decay : float, array or SymPy expression, default 0
        L2 weight decay λ (``g ← g + λ x``).
    convention : {"d2l", "torch"}
        Where ε goes and its default; ``"torch"`` is ``torch.optim.Adagrad``.

    Returns
    -------
    Optimizer
        State :class:`AdagradState` ``(s,)``.
    """
    _check_lr(lr)
    convention = _check_convention(convention)
    eps = check_hyperparameter("eps", _default(eps, convention, 1e-6, 1e-10), low=0.0)
    check_hyperparameter("lr_decay", lr_decay, low=0.0)
    check_hyperparameter("initial_accumulator_value", initial_accumulator_value, low=0.0)
    torch_form = convention == "torch"
    decays = not _is_python_zero(lr_decay)
    initial = initial_accumulator_value

    def init(x):
        xp = array_namespace(x)
        if _is_python_zero(initial):
            return AdagradState(xp.zeros_like(x))
        return AdagradState(xp.zeros_like(x) + hyperparameter(initial, 0, x))

    def update(x, grad, state, step, oracle=None):
        xp = array_namespace(x)
        e = hyperparameter(eps, step, x)
        rate = hyperparameter(lr, step, x)
        if decays:
            rate = rate / (1 + step * hyperparameter(lr_decay, step, x))
        (s,) = state
        s_next = s + grad * grad
        denom = xp.sqrt(s_next) + e if torch_form else xp.sqrt(s_next + e)
        return x - rate * grad / denom, AdagradState(s_next)

    hyper = _hyper(convention, lr=lr, eps=eps)
    if decays:
        hyper["lr_decay"] = lr_decay
    if not _is_python_zero(initial):
        hyper["initial_accumulator_value"] = initial
    return _finish("adagrad", init, update, hyper, weight_decay)


def rmsprop(
    lr: Any,
    gamma: Any = None,
    eps: Any = None,
    *,
    momentum: Any = 0.0,
    centered: bool = False,
    weight_decay: Any = 0.0,
    convention: str = "d2l",
) -> Optimizer:
    """RMSProp (seeds, section 11.8)::

        s ← γ s + (1 − γ) g²
        x ← x − η g / √(s + ε)         (d2l: γ = 0.9, ε = 1e-6)
        x ← x − η g / (√s + ε)         (torch: γ = alpha = 0.99, ε = 1e-8)

    With ``centered``, ``m ← γ m + (1 − γ) g`` and ``s`` is replaced by ``s − m²`` in the
    denominator; with ``momentum`` μ > 0, ``b ← μ b + g / denominator`` and ``x ← x − η b``
    (both as in ``torch.optim.RMSprop``).

    Parameters
    ----------
    lr : float, array of shape (B,), SymPy expression or schedule
        Learning rate η >= 0.
    gamma : float, array or SymPy expression, optional
        Decay γ in [0, 1] (PyTorch's ``alpha``); None takes the convention's default.
    eps : float, array or SymPy expression, optional
        ε >= 0; None takes the convention's default.
    momentum : float, array or SymPy expression, default 0
        Momentum μ in [0, 1].
    centered : bool, default False
        Divide by the estimated standard deviation instead of the root mean square.
    weight_decay : float, array or SymPy expression, default 0
        L2 weight decay λ (``g ← g + λ x``).
    convention : {"d2l", "torch"}
        Where ε goes and the defaults; ``"torch"`` is ``torch.optim.RMSprop``.

    Returns
    -------
    Optimizer
        State :class:`RMSpropState` ``(s, buf, mean)``.
    """
    _check_lr(lr)
    convention = _check_convention(convention)
    gamma = check_hyperparameter("gamma", _default(gamma, convention, 0.9, 0.99), low=0.0, high=1.0)
    eps = check_hyperparameter("eps", _default(eps, convention, 1e-6, 1e-8), low=0.0)
    check_hyperparameter("momentum", momentum, low=0.0, high=1.0)
    if not isinstance(centered, bool):
        raise TypeError(f"centered={centered!r} is not allowed: expected True or False")
    torch_form = convention == "torch"
    heavy = not _is_python_zero(momentum)

    def update(x, grad, state, step, oracle=None):
        xp = array_namespace(x)
        s, buf, mean = state
        g_ = hyperparameter(gamma, step, x)
        e = hyperparameter(eps, step, x)
        s_next = g_ * s + (1 - g_) * grad * grad
        second = s_next
        if centered:
            mean = g_ * mean + (1 - g_) * grad
            second = s_next - mean * mean
        denom = xp.sqrt(second) + e if torch_form else xp.sqrt(second + e)
        direction = grad / denom
        if heavy:
            buf = hyperparameter(momentum, step, x) * buf + direction
            direction = buf
        x_next = x - hyperparameter(lr, step, x) * direction
        return x_next, RMSpropState(s_next, buf, mean)

    hyper = _hyper(convention, lr=lr, gamma=gamma, eps=eps)
    if heavy:
        hyper["momentum"] = momentum
    if centered:
        hyper["centered"] = True
    return _finish("rmsprop", _zeros(RMSpropState), update, hyper, weight_decay)


def adadelta(
    rho: Any = 0.9,
    eps: Any = None,
    *,
    lr: Any = 1.0,
    weight_decay: Any = 0.0,
    convention: str = "d2l",
) -> Optimizer:
    """Adadelta (seeds, section 11.9), free of a learning rate::

        s  ← ρ s + (1 − ρ) g²
        g' ← √(Δ + ε) / √(s + ε) ⊙ g
        x  ← x − η g'                  (η = 1 in the seeds)
        Δ  ← ρ Δ + (1 − ρ) g'²

    Defaults ρ = 0.9 and ε = 1e-5 (d2l) or ε = 1e-6 (torch, ``torch.optim.Adadelta``, whose
    ``lr`` multiplies the change ``g'`` but not the ``Δ`` update, as here).

    Parameters
    ----------
    rho : float, array or SymPy expression, default 0.9
        Decay ρ in [0, 1].
    eps : float, array or SymPy expression, optional
        ε > 0; None takes the convention's default.
    lr : float, array of shape (B,), SymPy expression or schedule, default 1.0
        PyTorch's multiplier η >= 0 of the change.
    weight_decay : float, array or SymPy expression, default 0
        L2 weight decay λ (``g ← g + λ x``).
    convention : {"d2l", "torch"}
        Only the default ε differs.

    Returns
    -------
    Optimizer
        State :class:`AdadeltaState` ``(s, delta)``.
    """
    _check_lr(lr)
    convention = _check_convention(convention)
    check_hyperparameter("rho", rho, low=0.0, high=1.0)
    eps = check_hyperparameter("eps", _default(eps, convention, 1e-5, 1e-6), low=0.0, low_open=True)

    def update(x, grad, state, step, oracle=None):
        xp = array_namespace(x)
        s, delta = state
        r = hyperparameter(rho, step, x)
        e = hyperparameter(eps, step, x)
        s_next = r * s + (1 - r) * grad * grad
        change = xp.sqrt(delta + e) / xp.sqrt(s_next + e) * grad
        x_next = x - hyperparameter(lr, step, x) * change
        return x_next, AdadeltaState(s_next, r * delta + (1 - r) * change * change)

    hyper = _hyper(convention, rho=rho, eps=eps)
    if not (isinstance(lr, (int, float)) and lr == 1):
        hyper["lr"] = lr
    return _finish("adadelta", _zeros(AdadeltaState), update, hyper, weight_decay)


def _check_betas(beta1: Any, beta2: Any) -> None:
    check_hyperparameter("beta1", beta1, low=0.0, high=1.0, high_open=True)
    check_hyperparameter("beta2", beta2, low=0.0, high=1.0, high_open=True)


def adam(
    lr: Any,
    beta1: Any = 0.9,
    beta2: Any = 0.999,
    eps: Any = None,
    *,
    weight_decay: Any = 0.0,
    convention: str = "d2l",
) -> Optimizer:
    """Adam with bias correction (seeds, section 11.10)::

        v ← β₁ v + (1 − β₁) g
        s ← β₂ s + (1 − β₂) g²
        v̂ = v / (1 − β₁ᵗ),  ŝ = s / (1 − β₂ᵗ)       (t = step + 1)
        x ← x − η v̂ / (√ŝ + ε)

    Defaults β₁ = 0.9, β₂ = 0.999, ε = 1e-6 (d2l) or 1e-8 (torch). The rule is PyTorch's
    ``torch.optim.Adam`` in both conventions; ``"torch"`` changes only the default ε.

    Parameters
    ----------
    lr : float, array of shape (B,), SymPy expression or schedule
        Learning rate η >= 0.
    beta1, beta2 : float, array or SymPy expression
        Moment decays in [0, 1).
    eps : float, array or SymPy expression, optional
        ε >= 0, outside the square root; None takes the convention's default.
    weight_decay : float, array or SymPy expression, default 0
        L2 weight decay λ (``g ← g + λ x``, PyTorch's Adam, not AdamW).
    convention : {"d2l", "torch"}
        Default ε.

    Returns
    -------
    Optimizer
        State :class:`AdamState` ``(v, s)``.
    """
    _check_lr(lr)
    convention = _check_convention(convention)
    _check_betas(beta1, beta2)
    eps = check_hyperparameter("eps", _default(eps, convention, 1e-6, 1e-8), low=0.0)

    def update(x, grad, state, step, oracle=None):
        xp = array_namespace(x)
        v, s = state
        b1 = hyperparameter(beta1, step, x)
        b2 = hyperparameter(beta2, step, x)
        v_next = b1 * v + (1 - b1) * grad
        s_next = b2 * s + (1 - b2) * grad * grad
        v_hat = v_next / (1 - b1 ** (step + 1))
        s_hat = s_next / (1 - b2 ** (step + 1))
        x_next = x - hyperparameter(lr, step, x) * v_hat / (
            xp.sqrt(s_hat) + hyperparameter(eps, step, x)
        )
        return x_next, AdamState(v_next, s_next)

    hyper = _hyper(convention, lr=lr, beta1=beta1, beta2=beta2, eps=eps)
    return _finish("adam", _zeros(AdamState), update, hyper, weight_decay)


def yogi(
    lr: Any,
    beta1: Any = 0.9,
    beta2: Any = 0.999,
    eps: Any = 1e-3,
    *,
    weight_decay: Any = 0.0,
) -> Optimizer:
    """Yogi (seeds, section 11.10.3): Adam with an additive second-moment update::

        v ← β₁ v + (1 − β₁) g
        s ← s + (1 − β₂) g² ⊙ sgn(g² − s)
        x ← x − η v̂ / (√ŝ + ε)         (bias-corrected as in :func:`adam`)

    Defaults β₁ = 0.9, β₂ = 0.999, ε = 1e-3. ``s`` changes by at most ``(1 − β₂) g²`` per step,
    so it cannot blow up when gradients are large or sparse. PyTorch has no Yogi.

    Parameters
    ----------
    lr : float, array of shape (B,), SymPy expression or schedule
        Learning rate η >= 0.
    beta1, beta2 : float, array or SymPy expression
        Moment decays in [0, 1).
    eps : float, array or SymPy expression, default 1e-3
        ε >= 0, outside the square root.
    weight_decay : float, array or SymPy expression, default 0
        L2 weight decay λ (``g ← g + λ x``).

    Returns
    -------
    Optimizer
        State :class:`AdamState` ``(v, s)``.
    """
    _check_lr(lr)
    _check_betas(beta1, beta2)
    check_hyperparameter("eps", eps, low=0.0)

    def update(x, grad, state, step, oracle=None):
        xp = array_namespace(x)
        v, s = state
        b1 = hyperparameter(beta1, step, x)
        b2 = hyperparameter(beta2, step, x)
        square = grad * grad
        v_next = b1 * v + (1 - b1) * grad
        s_next = s + (1 - b2) * square * xp.sign(square - s)
        v_hat = v_next / (1 - b1 ** (step + 1))
        s_hat = s_next / (1 - b2 ** (step + 1))
        x_next = x - hyperparameter(lr, step, x) * v_hat / (
            xp.sqrt(s_hat) + hyperparameter(eps, step, x)
        )
        return x_next, AdamState(v_next, s_next)

    return _finish(
        "yogi",
        _zeros(AdamState),
        update,
        {"lr": lr, "beta1": beta1, "beta2": beta2, "eps": eps},
        weight_decay,
    )


def amsgrad(
    lr: Any,
    beta1: Any = 0.9,
    beta2: Any = 0.999,
    eps: Any = None,
    *,
    weight_decay: Any = 0.0,
    convention: str = "d2l",
) -> Optimizer:
    """AMSGrad: Adam whose denominator never decreases::

        v ← β₁ v + (1 − β₁) g
        s ← β₂ s + (1 − β₂) g²
        s_max ← max(s_max, s)
        x ← x − η (v / (1 − β₁ᵗ)) / (√(s_max / (1 − β₂ᵗ)) + ε)      (t = step + 1)

    This is ``torch.optim.Adam(amsgrad=True)``: the maximum is taken over the raw second
    moments and then bias-corrected. Defaults β₁ = 0.9, β₂ = 0.999, ε = 1e-6 (d2l, as the
    seeds' Adam) or 1e-8 (torch).

    Parameters
    ----------
    lr : float, array of shape (B,), SymPy expression or schedule
        Learning rate η >= 0.
    beta1, beta2 : float, array or SymPy expression
        Moment decays in [0, 1).
    eps : float, array or SymPy expression, optional
        ε >= 0, outside the square root; None takes the convention's default.
    weight_decay : float, array or SymPy expression, default 0
        L2 weight decay λ (``g ← g + λ x``).
    convention : {"d2l", "torch"}
        Default ε.

    Returns
    -------
    Optimizer
        State :class:`AmsgradState` ``(v, s, s_max)``.
    """
    _check_lr(lr)
    convention = _check_convention(convention)
    _check_betas(beta1, beta2)
    eps = check_hyperparameter("eps", _default(eps, convention, 1e-6, 1e-8), low=0.0)

    def update(x, grad, state, step, oracle=None):
        xp = array_namespace(x)
        v, s, s_max = state
        b1 = hyperparameter(beta1, step, x)
        b2 = hyperparameter(beta2, step, x)
        v_next = b1 * v + (1 - b1) * grad
        s_next = b2 * s + (1 - b2) * grad * grad
        s_max_next = xp.maximum(s_max, s_next)
        v_hat = v_next / (1 - b1 ** (step + 1))
        s_hat = s_max_next / (1 - b2 ** (step + 1))
        x_next = x - hyperparameter(lr, step, x) * v_hat / (
            xp.sqrt(s_hat) + hyperparameter(eps, step, x)
        )
        return x_next, AmsgradState(v_next, s_next, s_max_next)

    hyper = _hyper(convention, lr=lr, beta1=beta1, beta2=beta2, eps=eps)
    return _finish("amsgrad", _zeros(AmsgradState), update, hyper, weight_decay)
