"""Second-order and quasi-Newton methods: Newton's method with the seeds' remedies for
negative curvature, and batched L-BFGS.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ..backend import array_namespace, is_symbolic
from ..errors import check_choice, check_int, invalid
from . import _arrays
from .base import Optimizer, check_hyperparameter, hyperparameter
from .first_order import _check_lr, _finish

__all__ = ["LBFGSState", "lbfgs", "newton"]

HESSIAN_FIXES = (None, "abs", "damping")


def _column(v: Any) -> Any:
    xp = array_namespace(v)
    return xp.reshape(v, tuple(v.shape) + (1,))


def _newton_direction(h: Any, g: Any, fix: str | None, damping: Any, step: int) -> Any:
    """``p`` with ``M p = g`` for ``M`` the (fixed) Hessian; batched over the leading axis."""
    if is_symbolic(g) or is_symbolic(h):
        # The scalar model: the Hessian is a number and each fix acts on it directly.
        if fix == "abs":
            return g / array_namespace(h).abs(h)
        if fix == "damping":
            return g / (h + damping)
        return g / h
    xp = array_namespace(g)
    if fix == "damping":
        eye = _arrays.eye(xp, g.shape[-1], g)
        delta = hyperparameter(damping, step, g)
        if getattr(delta, "ndim", 0) > 0:
            delta = xp.reshape(delta, (g.shape[0], 1, 1))
        h = h + delta * eye
    # M = Q Λ Qᵀ and p = Q Λ⁻¹ Qᵀ g: a singular M gives inf/NaN in its own rows only, where
    # a batched LU solve would fail for the whole batch. "abs" uses |Λ|: curvature made positive.
    eigenvalues, vectors = xp.linalg.eigh(h)
    if fix == "abs":
        eigenvalues = xp.abs(eigenvalues)
    coefficients = xp.sum(vectors * _column(g), axis=-2) / eigenvalues
    return xp.sum(vectors * xp.reshape(coefficients, (g.shape[0], 1, g.shape[1])), axis=-1)


def newton(
    lr: Any = 1.0,
    *,
    hessian_fix: str | None = None,
    damping: Any = 1.0,
    weight_decay: Any = 0.0,
) -> Optimizer:
    """Newton's method, ``x ← x − η M⁻¹ ∇f(x)`` with ``M`` the Hessian or a fixed version.

    The seeds (section 11.3.3) derive ``ε = −H⁻¹∇f`` from the second-order Taylor model and
    warn that on a nonconvex function the Hessian may be negative, so that Newton's step
    climbs towards a maximum. Their remedies are the options here:

    * ``lr`` η < 1: a damped (learning-rate) Newton step;
    * ``hessian_fix="abs"``: ``M = |H| = Q |Λ| Qᵀ`` (absolute values of the eigenvalues of
      ``H = Q Λ Qᵀ``), which always points downhill where ``H`` is nonsingular;
    * ``hessian_fix="damping"``: ``M = H + δ I`` (Levenberg damping), which is positive
      definite, and the step a descent direction, once ``δ > −λ_min(H)``; large δ turns the
      step into gradient descent with learning rate ``η/δ``.

    Parameters
    ----------
    lr : float, array of shape (B,), SymPy expression or schedule, default 1.0
        Step size η >= 0.
    hessian_fix : {None, "abs", "damping"}
        How the Hessian is fixed before solving.
    damping : float, array of shape (B,) or SymPy expression, default 1.0
        δ >= 0 for ``hessian_fix="damping"``.
    weight_decay : float, array or SymPy expression, default 0
        L2 weight decay λ: Newton's method on ``f + (λ/2)‖x‖²`` (Hessian ``H + λ I``).

    Returns
    -------
    Optimizer
        With an empty state and ``needs = {"grad", "hess"}``; the oracle's ``hess(x)`` gives
        (B, d, d). On SymPy symbols (the scalar model) ``hess`` returns an expression.

    Notes
    -----
    A singular ``M`` (an inflection point, or a zero eigenvalue under ``"abs"``) gives
    infinite or NaN steps, which a runner records as divergence.
    """
    _check_lr(lr)
    fix = check_choice("hessian_fix", hessian_fix, HESSIAN_FIXES)
    check_hyperparameter("damping", damping, low=0.0)

    def update(x, grad, state, step, oracle=None):
        if oracle is None or not callable(getattr(oracle, "hess", None)):
            raise invalid("oracle", oracle, "an oracle with hess(x) (newton needs Hessians)")
        direction = _newton_direction(oracle.hess(x), grad, fix, damping, step)
        return x - hyperparameter(lr, step, x) * direction, state

    hyper: dict[str, Any] = {"lr": lr}
    if fix is not None:
        hyper["hessian_fix"] = fix
    if fix == "damping":
        hyper["damping"] = damping
    return _finish(
        "newton", lambda x: (), update, hyper, weight_decay, needs=frozenset({"grad", "hess"})
    )


class LBFGSState(NamedTuple):
    """State of :func:`lbfgs`.

    Attributes
    ----------
    s, y : arrays of shape (B, m, d)
        The last m steps ``x_{k+1} − x_k`` and gradient changes, oldest first; empty slots
        hold zeros.
    rho : array of shape (B, m)
        ``1 / (sᵀy)`` of each pair, zero for an empty slot (which makes it a no-op).
    x_prev, g_prev : arrays of shape (B, d)
        The previous point and gradient.
    started : array of shape (B, 1)
        1 once a previous point exists.
    """

    s: Any
    y: Any
    rho: Any
    x_prev: Any
    g_prev: Any
    started: Any


def _dot(a: Any, b: Any) -> Any:
    xp = array_namespace(a)
    return xp.sum(a * b, axis=-1, keepdims=True)


def lbfgs(
    lr: Any = 1.0, history: int = 10, *, curvature_eps: float = 1e-8, weight_decay: Any = 0.0
) -> Optimizer:
    """Limited-memory BFGS, batched: ``x ← x − η H_k g`` with ``H_k g`` from the two-loop
    recursion over the last ``m = history`` pairs ``(s_i, y_i)``.

    Each step first forms ``s = x − x_prev`` and ``y = g − g_prev`` and stores the pair only
    where the safe curvature condition ``sᵀy > ε ‖s‖ ‖y‖`` holds (and ``sᵀy`` is above the
    square root of the dtype's smallest normal number) (so that the implicit inverse
    Hessian stays positive definite; rejected pairs leave the memory unchanged). The
    recursion starts from ``H⁰ = γ I`` with ``γ = sᵀy / yᵀy`` of the newest pair (1 before any
    pair exists, so the first step is a gradient step). Every trajectory keeps its own
    memory, in arrays of shape (B, m, d); the loops run over the m slots, never over the batch.
    There is no line search: η = 1 is the quasi-Newton step, a smaller η damps it.

    Parameters
    ----------
    lr : float, array of shape (B,) or schedule, default 1.0
        Step size η >= 0.
    history : int, default 10
        Number m >= 1 of stored pairs.
    curvature_eps : float, default 1e-8
        ε >= 0 of the curvature condition.
    weight_decay : float or array, default 0
        L2 weight decay λ (``g ← g + λ x``).

    Returns
    -------
    Optimizer
        State :class:`LBFGSState`. Arrays only (no SymPy form: the map is nonlinear).
    """
    _check_lr(lr)
    m = check_int("history", history, minimum=1)
    check_hyperparameter("curvature_eps", curvature_eps, low=0.0)

    def init(x):
        xp = array_namespace(x)
        if is_symbolic(x):
            raise invalid("x", x, "an array of shape (B, d) (lbfgs has no symbolic form)")
        batch, d = x.shape
        history_zeros = _arrays.zeros(xp, (batch, m, d), x)
        return LBFGSState(
            history_zeros,
            history_zeros,
            _arrays.zeros(xp, (batch, m), x),
            xp.zeros_like(x),
            xp.zeros_like(x),
            _arrays.zeros(xp, (batch, 1), x),
        )

    def update(x, grad, state, step, oracle=None):
        xp = array_namespace(x)
        s_hist, y_hist, rho, x_prev, g_prev, started = state
        s = x - x_prev
        y = grad - g_prev
        sy = _dot(s, y)
        bound = curvature_eps * xp.sqrt(_dot(s, s) * _dot(y, y))
        # An absolute floor keeps 1/(sᵀy) finite once the iterates have converged.
        floor = xp.finfo(x.dtype).smallest_normal ** 0.5
        accept = (started > 0) & (sy > bound) & (sy > floor)
        safe_sy = xp.where(accept, sy, xp.ones_like(sy))
        keep = xp.reshape(accept, (accept.shape[0], 1, 1))
        shifted_s = _arrays.concat(xp, [s_hist[:, 1:, :], xp.expand_dims(s, axis=1)], axis=1)
        shifted_y = _arrays.concat(xp, [y_hist[:, 1:, :], xp.expand_dims(y, axis=1)], axis=1)
        shifted_rho = _arrays.concat(xp, [rho[:, 1:], 1 / safe_sy], axis=1)
        s_hist = xp.where(keep, shifted_s, s_hist)
        y_hist = xp.where(keep, shifted_y, y_hist)
        rho = xp.where(accept, shifted_rho, rho)

        q = grad
        alphas = []
        for i in range(m - 1, -1, -1):
            alpha = rho[:, i : i + 1] * _dot(s_hist[:, i, :], q)
            q = q - alpha * y_hist[:, i, :]
            alphas.append(alpha)
        alphas.reverse()
        newest_yy = _dot(y_hist[:, -1, :], y_hist[:, -1, :])
        has_pair = rho[:, -1:] > 0
        gamma = xp.where(
            has_pair,
            _dot(s_hist[:, -1, :], y_hist[:, -1, :])
            / xp.where(has_pair, newest_yy, xp.ones_like(newest_yy)),
            xp.ones_like(newest_yy),
        )
        r = gamma * q
        for i in range(m):
            beta = rho[:, i : i + 1] * _dot(y_hist[:, i, :], r)
            r = r + s_hist[:, i, :] * (alphas[i] - beta)

        x_next = x - hyperparameter(lr, step, x) * r
        return x_next, LBFGSState(s_hist, y_hist, rho, x, grad, xp.ones_like(started))

    hyper = {"lr": lr, "history": m}
    return _finish("lbfgs", init, update, hyper, weight_decay)
