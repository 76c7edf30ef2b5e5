"""Iteration maps derived from the optimizers' own update code.

An optimizer's ``update`` is written once against an array namespace. Handed SymPy symbols
for the scalar quadratic model ``f(x) = λx²/2`` (gradient ``λx``, Hessian ``λ``), with a fresh
symbol standing for each entry of its state, it returns its own one-step map. For a method
that is linear on this model (gradient descent, heavy-ball momentum, Nesterov, delayed
gradients, ...) that map is ``w ← M w`` for the stacked vector ``w = (x, state...)``; ``M``
is the *iteration matrix* and ``det(zI − M)`` its *characteristic polynomial*, whose roots
decide stability and rate (see :mod:`convexkit.theory.stability`).

Symbols: ``eta`` (learning rate η), ``lam`` (curvature λ), ``beta`` (momentum β), all real.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sympy as sp

from ..errors import check_int, invalid
from ..optim.base import Optimizer, check_hyperparameter, hyperparameter

__all__ = [
    "BETA",
    "ETA",
    "LAM",
    "Z",
    "HeavyBallEquivalence",
    "IterationMap",
    "heavy_ball",
    "heavy_ball_equivalence",
    "iteration_map",
    "symbolic_optimizer",
]

ETA = sp.Symbol("eta", real=True)
LAM = sp.Symbol("lam", real=True)
BETA = sp.Symbol("beta", real=True)
Z = sp.Symbol("z")

#: Symbols by the names a user passes as keywords.
SYMBOLS: dict[str, sp.Symbol] = {"eta": ETA, "lam": LAM, "beta": BETA}

#: Linear methods that :func:`symbolic_optimizer` builds by name, with their symbolic
#: hyperparameters (``tau`` is an integer, not a symbol).
NAMES = ("gd", "momentum", "nesterov", "delayed_gd", "heavy_ball")


class _ScalarQuadraticOracle:
    """The oracle of ``f(x) = λx²/2`` on SymPy scalars (for methods that ask for more)."""

    def __init__(self, lam: sp.Expr) -> None:
        self.lam = lam

    def value(self, x: Any) -> sp.Expr:
        return self.lam * x**2 / 2

    def grad(self, x: Any) -> sp.Expr:
        return self.lam * x

    def hess(self, x: Any) -> sp.Expr:
        return self.lam


def heavy_ball(a: Any, b: Any) -> Optimizer:
    """Polyak's heavy-ball method in its original form, ``x⁺ = x − a ∇f(x) + b (x − x_prev)``.

    The state is the previous iterate, initialised to the starting point (``x_prev = x₀``).
    Written against the array namespace like every optimizer, so it runs on arrays of shape
    (B, d) and on symbols.

    Parameters
    ----------
    a : float, array of shape (B,) or SymPy expression
        Step size a >= 0.
    b : float, array of shape (B,) or SymPy expression
        Momentum coefficient b.

    Returns
    -------
    Optimizer
        Named ``"heavy_ball"``, state ``(x_prev,)``.
    """
    check_hyperparameter("a", a, low=0.0)
    check_hyperparameter("b", b)

    def init(x: Any) -> tuple:
        return (x,)

    def update(x: Any, grad: Any, state: tuple, step: int, oracle: Any = None) -> tuple:
        (x_prev,) = state
        step_size = hyperparameter(a, step, x)
        weight = hyperparameter(b, step, x)
        return x - step_size * grad + weight * (x - x_prev), (x,)

    return Optimizer("heavy_ball", init, update, {"a": a, "b": b})


def symbolic_optimizer(name: str, *, tau: int | None = None) -> Optimizer:
    """The optimizer ``name`` built with symbolic hyperparameters ``eta`` and ``beta``.

    Parameters
    ----------
    name : {"gd", "momentum", "nesterov", "delayed_gd", "heavy_ball"}
        The method. ``"heavy_ball"`` is Polyak's form with ``a = eta``, ``b = beta``.
    tau : int, optional
        The delay of ``"delayed_gd"`` (required there, refused elsewhere).

    Returns
    -------
    Optimizer
    """
    from .. import optim

    if name not in NAMES:
        raise invalid("name", name, "one of " + ", ".join(repr(n) for n in NAMES))
    if name == "delayed_gd":
        if tau is None:
            raise invalid("tau", tau, "an integer >= 0: the delay of 'delayed_gd' must be given")
        return optim.delayed_gd(ETA, tau=check_int("tau", tau, minimum=0))
    if tau is not None:
        raise invalid("tau", tau, f"no tau: only 'delayed_gd' has a delay, not {name!r}")
    if name == "gd":
        return optim.gd(ETA)
    if name == "momentum":
        return optim.momentum(ETA, BETA)
    if name == "nesterov":
        return optim.nesterov(ETA, BETA)
    return heavy_ball(ETA, BETA)


@dataclass(frozen=True)
class IterationMap:
    """One step of a linear method on ``f = λx²/2``, derived from its update code.

    Attributes
    ----------
    optimizer : Optimizer
        The method the map was derived from.
    variables : tuple of Symbol
        The stacked iterate ``w = (x, s₁, …)``: the point and one symbol per state entry.
    images : tuple of Expr
        ``w⁺`` as returned by ``update`` (same order as ``variables``).
    matrix : sympy.Matrix
        The iteration matrix ``M = ∂w⁺/∂w``, so that ``w⁺ = M w``.
    full_polynomial : sympy.Poly
        ``det(zI − M)`` in ``z``.
    polynomial : sympy.Poly
        ``full_polynomial`` with its factors of ``z`` removed: the zero eigenvalues of ``M``
        (state entries that are forgotten after a step) decide neither stability nor rate.
    """

    optimizer: Optimizer
    variables: tuple[sp.Symbol, ...]
    images: tuple[sp.Expr, ...]
    matrix: sp.Matrix
    full_polynomial: sp.Poly
    polynomial: sp.Poly

    @property
    def parameters(self) -> tuple[sp.Symbol, ...]:
        """Free symbols of the iteration matrix (hyperparameters and ``lam``), sorted by name."""
        return tuple(sorted(self.matrix.free_symbols, key=lambda s: s.name))

    def __repr__(self) -> str:
        pairs = ", ".join(f"{v}+ = {e}" for v, e in zip(self.variables, self.images, strict=True))
        return (
            f"IterationMap({self.optimizer.name}: {pairs}; char. poly {self.polynomial.as_expr()})"
        )


def _flatten(state: Any) -> list[Any]:
    if isinstance(state, (tuple, list)):
        out: list[Any] = []
        for entry in state:
            out.extend(_flatten(entry))
        return out
    return [state]


def _rebuild(template: Any, values: list[Any]) -> Any:
    """``template``'s (nested) tuple structure filled with ``values`` in order."""
    if isinstance(template, (tuple, list)):
        parts = [_rebuild(entry, values) for entry in template]
        if isinstance(template, list):
            return parts
        if hasattr(template, "_fields"):
            return type(template)(*parts)
        return tuple(parts)
    return values.pop(0)


def _state_names(state: Any, count: int) -> list[str]:
    fields = getattr(state, "_fields", None)
    if fields is not None and len(fields) == count:
        return [f"{name}_t" for name in fields]
    return [f"s{i + 1}_t" for i in range(count)]


def _one_step(optimizer: Optimizer, lam: sp.Expr, step: int) -> tuple[tuple, tuple, Any]:
    x = sp.Symbol("x_t", real=True)
    template = optimizer.init(x)
    leaves = _flatten(template)
    names = _state_names(template, len(leaves))
    symbols = [sp.Symbol(name, real=True) for name in names]
    state = _rebuild(template, list(symbols))
    oracle = _ScalarQuadraticOracle(lam)
    try:
        x_next, state_next = optimizer.update(x, lam * x, state, step, oracle)
    except (TypeError, AttributeError, ValueError) as err:
        raise invalid(
            "optimizer",
            optimizer,
            "an optimizer whose update runs on SymPy scalars (elementwise operations only); "
            f"this one failed with {type(err).__name__}: {err}",
        ) from err
    images = [sp.sympify(x_next), *(sp.sympify(v) for v in _flatten(state_next))]
    if len(images) != 1 + len(symbols):
        raise invalid(
            "optimizer",
            optimizer,
            f"an update that returns a state of the same size as init ({len(symbols)} entries), "
            f"not {len(images) - 1}",
        )
    return (x, *symbols), tuple(sp.expand(e) for e in images), template


def iteration_map(optimizer: Optimizer, *, lam: Any = LAM, step: int = 1000) -> IterationMap:
    """Run ``optimizer``'s update on symbols for ``f = λx²/2`` and return its iteration map.

    Parameters
    ----------
    optimizer : Optimizer
        A method built with symbolic (or numeric) hyperparameters, e.g.
        ``ck.optim.momentum(eta, beta)``.
    lam : SymPy expression or number, default the symbol ``lam``
        The curvature λ of the model.
    step : int, default 1000
        The step index handed to ``update``: a step past any start-up branch (PyTorch's first
        momentum step, for instance). The map must be the same at ``step + 1``.

    Returns
    -------
    IterationMap

    Raises
    ------
    ValueError
        If the update is not linear in ``(x, state)`` on this model (an adaptive method, a
        clipped step), or if it changes with the step (a decaying schedule).
    """
    if not isinstance(optimizer, Optimizer):
        raise invalid("optimizer", optimizer, "a convexkit.optim.Optimizer")
    step = check_int("step", step, minimum=0)
    for key, value in optimizer.hyperparams.items():
        if getattr(value, "ndim", 0) and not isinstance(value, sp.Basic):
            raise invalid(
                "optimizer",
                optimizer,
                f"hyperparameters that are numbers or SymPy expressions; {key} is an array (one "
                "optimizer per batch row): derive the region with symbols and evaluate it there",
            )
    lam = sp.sympify(lam)
    variables, images, _ = _one_step(optimizer, lam, step)
    matrix = sp.Matrix(images).jacobian(sp.Matrix(variables))
    linear_part = matrix * sp.Matrix(variables)
    for image, linear in zip(images, linear_part, strict=True):
        if matrix.free_symbols & set(variables) or sp.simplify(image - sp.expand(linear)) != 0:
            raise invalid(
                "optimizer",
                optimizer,
                "a method that is linear on f = lam*x**2/2 (such as gd, momentum, nesterov, "
                f"delayed_gd); its update gives the non-linear map {image}",
            )
    _, later, _ = _one_step(optimizer, lam, step + 1)
    if any(sp.simplify(a - b) != 0 for a, b in zip(images, later, strict=True)):
        raise invalid(
            "optimizer",
            optimizer,
            "a time-invariant update (constant hyperparameters); its map changes between steps "
            f"{step} and {step + 1}",
        )
    matrix = matrix.applyfunc(sp.expand)
    size = matrix.shape[0]
    determinant = (Z * sp.eye(size) - matrix).det(method="berkowitz")
    full = sp.Poly(sp.expand(determinant), Z)
    reduced = full
    while reduced.degree() > 1 and reduced.nth(0) == 0:
        reduced = sp.Poly(sp.cancel(reduced.as_expr() / Z), Z)
    return IterationMap(optimizer, tuple(variables), images, matrix, full, reduced)


@dataclass(frozen=True)
class HeavyBallEquivalence:
    """The seeds' momentum form against Polyak's heavy-ball form.

    Attributes
    ----------
    momentum_polynomial : sympy.Poly
        Characteristic polynomial of ``v ← βv + g, x ← x − ηv`` (in ``eta``, ``beta``, ``lam``).
    heavy_ball_polynomial : sympy.Poly
        Characteristic polynomial of ``x⁺ = x − a g + b (x − x_prev)`` (in ``a``, ``b``, ``lam``).
    mapping : dict
        The parameters of Polyak's form in terms of the seeds', ``{a: eta, b: beta}``, found by
        matching the two polynomials coefficient by coefficient for every λ.
    """

    momentum_polynomial: sp.Poly
    heavy_ball_polynomial: sp.Poly
    mapping: dict[sp.Symbol, sp.Expr]

    def __repr__(self) -> str:
        shown = ", ".join(f"{k} = {v}" for k, v in self.mapping.items())
        return (
            f"HeavyBallEquivalence(momentum: {self.momentum_polynomial.as_expr()}; "
            f"heavy ball: {self.heavy_ball_polynomial.as_expr()}; {shown})"
        )


def heavy_ball_equivalence() -> HeavyBallEquivalence:
    """Derive the parameter mapping under which the seeds' momentum and Polyak's heavy ball
    have the same characteristic polynomial.

    Both polynomials come from the update code (:func:`iteration_map` of
    ``ck.optim.momentum(eta, beta)`` and of :func:`heavy_ball` with symbols ``a``, ``b``); the
    mapping solves ``coefficients(p_momentum) = coefficients(p_heavy_ball)`` identically in
    ``lam`` for ``a`` and ``b``.

    Returns
    -------
    HeavyBallEquivalence
        With ``mapping == {a: eta, b: beta}``: the forms are the same method. (Eliminating ``v``
        from the seeds' form gives ``x_{t+1} = x_t − η g_t + β (x_t − x_{t−1})`` directly.)
    """
    a, b = sp.symbols("a b", real=True)
    seeds = iteration_map(symbolic_optimizer("momentum")).polynomial
    polyak = iteration_map(heavy_ball(a, b)).polynomial
    difference = sp.Poly(sp.expand(seeds.as_expr() - polyak.as_expr()), Z, LAM)
    solutions = sp.solve(difference.coeffs(), [a, b], dict=True)
    if len(solutions) != 1:
        raise RuntimeError(f"expected one parameter mapping, found {solutions}")
    mapping = {a: solutions[0][a], b: solutions[0][b]}
    polyak = sp.Poly(polyak.as_expr(), Z)
    return HeavyBallEquivalence(seeds, polyak, mapping)
