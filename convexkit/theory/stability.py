"""Stability regions and rates of linear methods on ``f = λx²/2``, from their update code.

The iteration map of :mod:`convexkit.theory.iteration` gives a characteristic polynomial
``p(z)``; the method converges for every start exactly when every root lies strictly inside
the unit circle (``p`` is *Schur stable*), and its rate is the spectral radius
``ρ = max |root|``. Schur stability is decided by the Jury / Schur–Cohn conditions:

* for ``p(z) = Σ aₖ zᵏ`` of degree n with ``aₙ > 0``: ``p(1) > 0``, ``(−1)ⁿ p(−1) > 0`` and
  ``|a₀| < aₙ``;
* then the Schur–Cohn reduction ``p ↦ (aₙ p − a₀ p*)/z`` (``p*(z) = zⁿ p(1/z)``), whose leading
  coefficient must stay above the magnitude of its constant term at every degree down to 3.

Where the conditions depend on one quantity only (``eta*lam`` for a fixed β, or for delayed
gradients) the region is solved exactly into intervals: its ends are among the real roots of
``p(1)``, ``p(−1)`` and the resultant ``Res_z(p, p*)`` (a root on the unit circle, or a pair
``z``, ``1/z``), and each piece between them is classified by exact Schur–Cohn arithmetic on
rationals.

A region derived on ``λx²/2`` holds for every quadratic whose Hessian eigenvalues ``λ`` all lie
in it (a quadratic decouples along its eigenvectors). It does not in general hold for other
strongly convex functions: see :func:`convexkit.theory.bounds.heavy_ball_counterexample`.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp
from sympy.printing.str import StrPrinter

from ..errors import invalid
from ..optim.base import Optimizer
from .iteration import (
    ETA,
    LAM,
    NAMES,
    SYMBOLS,
    IterationMap,
    Z,
    iteration_map,
    symbolic_optimizer,
)

__all__ = [
    "StabilityRegion",
    "delayed_gd_threshold",
    "jury_conditions",
    "schur_stable",
    "spectral_radius",
    "stability_region",
]

_H = sp.Symbol("h_product", real=True)  # stands for eta*lam while solving


# ---------------------------------------------------------------------------------------------
# exact tests on numbers


def _reverse(poly: sp.Poly) -> sp.Poly:
    return sp.Poly(list(reversed(poly.all_coeffs())), poly.gen, domain=poly.domain)


def _schur_step(poly: sp.Poly) -> sp.Poly:
    """One Schur–Cohn reduction ``(aₙ p − a₀ p*)/z`` (degree drops by one)."""
    lead, const = poly.LC(), poly.nth(0)
    reduced = (poly * lead - _reverse(poly) * const).as_expr()
    return sp.Poly(sp.expand(sp.cancel(sp.expand(reduced) / poly.gen)), poly.gen)


def schur_stable(coefficients: Sequence[Any]) -> bool:
    """Exact test that every root of a real polynomial lies strictly inside the unit circle.

    Parameters
    ----------
    coefficients : sequence of numbers
        Coefficients from the highest power down (leading one non-zero), as integers,
        rationals, or any exact SymPy numbers (algebraic numbers are compared through
        SymPy's exact sign decisions).

    Returns
    -------
    bool
    """
    values = [sp.nsimplify(c) if isinstance(c, float) else sp.sympify(c) for c in coefficients]
    while values and values[0] == 0:
        values.pop(0)
    if not values:
        raise invalid("coefficients", coefficients, "a polynomial that is not identically zero")
    poly = sp.Poly(values, Z)
    while poly.degree() >= 1:
        lead, const = poly.LC(), poly.nth(0)
        if not bool(sp.Abs(const) < sp.Abs(lead)):
            return False
        poly = _schur_step(poly)
    return True


# ---------------------------------------------------------------------------------------------
# symbolic conditions


def jury_conditions(polynomial: sp.Poly) -> list[sp.Basic]:
    """The Jury / Schur–Cohn conditions for Schur stability of ``polynomial`` (monic in ``z``).

    Parameters
    ----------
    polynomial : sympy.Poly
        A polynomial in one generator whose coefficients may hold parameters; its leading
        coefficient must be positive (characteristic polynomials are monic).

    Returns
    -------
    list of SymPy relations
        ``p(1) > 0``, ``(−1)ⁿ p(−1) > 0``, ``|a₀| < aₙ``, then ``|c_k| < l_k`` for the
        Schur–Cohn reductions of degree ``n−1`` down to 3. Their conjunction holds exactly
        where every root lies strictly inside the unit circle (each ``l_k`` is positive once
        the conditions before it hold). Identically true conditions are dropped.
    """
    poly = polynomial
    n = poly.degree()
    if n < 1:
        raise invalid("polynomial", polynomial.as_expr(), "a polynomial of degree >= 1")
    z = poly.gen
    expr = poly.as_expr()
    at_one = sp.factor(expr.subs(z, 1))
    at_minus_one = sp.factor((-1) ** n * expr.subs(z, -1))
    found: list[sp.Basic] = [sp.StrictGreaterThan(at_one, 0), sp.StrictGreaterThan(at_minus_one, 0)]
    if n >= 2:
        found.append(sp.StrictLessThan(sp.Abs(sp.factor(poly.nth(0))), sp.factor(poly.LC())))
    reduced = poly
    for _ in range(n - 1, 2, -1):
        reduced = _schur_step(reduced)
        found.append(sp.StrictLessThan(sp.Abs(sp.factor(reduced.nth(0))), sp.factor(reduced.LC())))
    return [c for c in found if c is not sp.true]


def _solve_for(relation: sp.Basic, partner: sp.Symbol) -> sp.Basic:
    """Rewrite ``E > 0`` as a bound on ``partner*lam`` where ``E`` depends on ``partner`` and
    ``lam`` only through that product, linearly."""
    if not isinstance(relation, sp.StrictGreaterThan) or relation.rhs != 0:
        return relation
    subject = partner * LAM
    variable = _H
    expr = sp.expand(sp.expand(relation.lhs).subs(partner, _H / LAM))
    if LAM in expr.free_symbols:
        return relation
    poly = sp.Poly(expr, variable)
    if poly.degree() != 1:
        return relation
    slope, offset = poly.nth(1), poly.nth(0)
    if slope.is_number:
        bound = sp.expand(-offset / slope)
        if slope == 0:
            return relation
        return subject > bound if slope > 0 else subject < bound
    if sp.expand(-slope).could_extract_minus_sign():
        return sp.StrictGreaterThan(sp.factor(slope) * subject, sp.expand(-offset))
    return sp.StrictLessThan(sp.factor(-slope) * subject, sp.expand(offset))


class _ReadablePrinter(StrPrinter):
    def _print_Abs(self, expr: sp.Abs) -> str:
        return f"|{self._print(expr.args[0])}|"

    def _print_ComplexRootOf(self, expr: sp.CRootOf) -> str:
        return f"{super()._print_ComplexRootOf(expr)} ≈ {float(expr.evalf(15)):.6g}"


def _text(expr: Any) -> str:
    return _ReadablePrinter().doprint(expr)


def _chains(conditions: Sequence[sp.Basic]) -> list[tuple[Any, Any, Any, sp.Basic | None]]:
    """Group bounds on the same expression into ``(lower, subject, upper, other)`` rows."""
    rows: list[list[Any]] = []
    index: dict[Any, int] = {}
    for relation in conditions:
        if isinstance(relation, (sp.StrictGreaterThan, sp.StrictLessThan)) and not (
            relation.lhs.is_number
        ):
            subject = relation.lhs
            side = 0 if isinstance(relation, sp.StrictGreaterThan) else 2
            if subject in index and rows[index[subject]][side] is None:
                rows[index[subject]][side] = relation.rhs
                continue
            index.setdefault(subject, len(rows))
            row = [None, subject, None, None]
            row[side] = relation.rhs
            rows.append(row)
        else:
            rows.append([None, None, None, relation])
    return [tuple(r) for r in rows]


def _latex(expr: Any) -> str:
    return sp.latex(expr, symbol_names={LAM: r"\lambda"})


def _render(conditions: Sequence[sp.Basic], latex: bool = False) -> str:
    show = _latex if latex else _text
    less = r" < " if latex else " < "
    parts = []
    for lower, subject, upper, other in _chains(conditions):
        if other is not None:
            parts.append(show(other))
            continue
        text = show(subject)
        if lower is not None:
            text = show(lower) + less + text
        if upper is not None:
            text = text + less + show(upper)
        parts.append(text)
    if not conditions or list(conditions) == [sp.true]:
        return "always"
    if list(conditions) == [sp.false]:
        return "never"
    return (r",\quad " if latex else ", ").join(parts)


# ---------------------------------------------------------------------------------------------
# one-parameter regions, solved exactly


def _real_roots(expr: sp.Expr, variable: sp.Symbol) -> list[sp.Expr]:
    expr = sp.expand(expr)
    if expr == 0 or variable not in expr.free_symbols:
        return []
    poly = sp.Poly(expr, variable)
    roots: list[sp.Expr] = []
    for factor, _ in poly.factor_list()[1]:
        if factor.degree() >= 1:
            roots.extend(factor.real_roots())
    return roots


def _rational_between(lo: sp.Expr, hi: sp.Expr) -> sp.Rational:
    if lo == -sp.oo:
        return sp.floor(hi) - 1
    if hi == sp.oo:
        return sp.ceiling(lo) + 1
    digits = 30
    while True:
        a, b = sp.Rational(str(sp.N(lo, digits))), sp.Rational(str(sp.N(hi, digits)))
        mid = (a + b) / 2
        if bool(mid > lo) and bool(mid < hi):
            return mid
        digits *= 2


def _stable_intervals(poly: sp.Poly, variable: sp.Symbol) -> list[tuple[sp.Expr, sp.Expr]]:
    """The open set of ``variable`` values where ``poly`` (coefficients polynomial in the
    variable) is Schur stable, as sorted disjoint open intervals with exact ends."""
    expr = poly.as_expr()
    n = poly.degree()
    const = sp.expand(poly.nth(0))
    reverse = sp.Poly(list(reversed(poly.all_coeffs())), Z).as_expr()
    resultant = sp.expand(sp.resultant(expr, reverse, Z)) if n >= 1 else sp.Integer(0)
    # Factors shared with the constant term come from the formal degree of p* (a zero root),
    # not from a root on the unit circle; points where the constant term vanishes are
    # classified directly below.
    if const.free_symbols and resultant != 0:
        shared = sp.gcd(resultant, const)
        while sp.Poly(shared, variable).degree() >= 1:
            resultant = sp.quo(resultant, shared, variable)
            shared = sp.gcd(resultant, const)
    proven_unstable: list[sp.Expr] = []
    for piece in (expr.subs(Z, 1), expr.subs(Z, -1), resultant):
        proven_unstable.extend(_real_roots(piece, variable))
    zero_root = _real_roots(const, variable)
    points = sorted(set(proven_unstable) | set(zero_root), key=lambda r: sp.N(r, 50))
    edges = [-sp.oo, *points, sp.oo]

    def stable_at(value: sp.Expr) -> bool:
        coefficients = [sp.expand(c.subs(variable, value)) for c in poly.all_coeffs()]
        return schur_stable(coefficients)

    pieces = [stable_at(_rational_between(a, b)) for a, b in zip(edges, edges[1:], strict=False)]
    point_ok = []
    for point in points:
        if point in proven_unstable:
            point_ok.append(False)
        elif point.is_Rational:
            point_ok.append(stable_at(point))
        else:
            roots = sp.Poly([sp.N(c.subs(variable, point), 60) for c in poly.all_coeffs()], Z)
            point_ok.append(max(abs(complex(r)) for r in roots.nroots(n=50)) < 1 - 1e-30)
    intervals: list[tuple[sp.Expr, sp.Expr]] = []
    start = None
    for i, ok in enumerate(pieces):
        if not ok:
            continue
        if start is None:
            start = edges[i]
        if i < len(points) and pieces[i + 1] and point_ok[i]:
            continue  # the point between two stable pieces is stable too: one interval
        intervals.append((start, edges[i + 1]))
        start = None
    return intervals


# ---------------------------------------------------------------------------------------------
# spectral radius


def spectral_radius(polynomial: sp.Poly) -> sp.Expr | None:
    """Exact spectral radius ``max |root|`` of a real polynomial of degree 1 or 2 in closed
    form (a ``Piecewise`` over the sign of the discriminant); None for higher degree, where
    :meth:`StabilityRegion.rate_exact` gives it at given parameter values."""
    coefficients = polynomial.all_coeffs()
    lead = coefficients[0]
    monic = [sp.cancel(c / lead) for c in coefficients]
    if len(monic) == 2:
        return sp.Abs(monic[1])
    if len(monic) == 3:
        a1, a0 = monic[1], monic[2]
        discriminant = sp.expand(a1**2 - 4 * a0)
        return sp.Piecewise(
            ((sp.Abs(a1) + sp.sqrt(discriminant)) / 2, discriminant >= 0),
            (sp.sqrt(a0), True),
        )
    return None


def _numeric_radius(coefficients: list[np.ndarray]) -> np.ndarray:
    """Spectral radius for arrays of monic coefficients ``[1, a_{n-1}, …, a_0]``."""
    degree = len(coefficients) - 1
    if degree == 1:
        return np.abs(coefficients[1])
    if degree == 2:
        a1, a0 = coefficients[1], coefficients[2]
        discriminant = a1 * a1 - 4 * a0
        real = (np.abs(a1) + np.sqrt(np.maximum(discriminant, 0))) / 2
        return np.where(discriminant >= 0, real, np.sqrt(np.maximum(a0, 0)))
    shape = np.broadcast_shapes(*(np.shape(c) for c in coefficients))
    companion = np.zeros((*shape, degree, degree))
    for k in range(degree):
        companion[..., 0, k] = -np.broadcast_to(coefficients[k + 1], shape)
    for k in range(1, degree):
        companion[..., k, k - 1] = 1.0
    return np.max(np.abs(np.linalg.eigvals(companion)), axis=-1)


# ---------------------------------------------------------------------------------------------
# the region


@dataclass(frozen=True, eq=False)
class StabilityRegion:
    """Where a linear method converges on ``f = λx²/2``, and how fast.

    Attributes
    ----------
    name : str
        The method's name.
    iteration : IterationMap
        The map derived from the update code (with ``fixed`` values substituted).
    matrix : sympy.Matrix
        The iteration matrix.
    polynomial : sympy.Poly
        Its characteristic polynomial in ``z`` (zero roots removed).
    conditions : tuple of SymPy relations
        Readable inequalities whose conjunction is the region.
    condition : SymPy boolean
        ``And(*conditions)``, in the symbols ``eta``, ``lam``, ``beta``, ...
    parameters : tuple of Symbol
        The free symbols the region depends on; ``contains`` and ``rate`` take them by name.
    variable : SymPy expression or None
        For a one-parameter region (all conditions in one expression such as ``eta*lam``),
        that expression; None otherwise.
    intervals : tuple of (lower, upper) or None
        For a one-parameter region, the exact open intervals of ``variable`` it consists of.
    spectral_radius : SymPy expression or None
        Exact ``max |root|`` as a closed form (degree 1 and 2).
    fixed : dict
        Values substituted before the derivation.
    """

    name: str
    iteration: IterationMap
    matrix: sp.Matrix
    polynomial: sp.Poly
    conditions: tuple[sp.Basic, ...]
    parameters: tuple[sp.Symbol, ...]
    variable: sp.Expr | None
    intervals: tuple[tuple[sp.Expr, sp.Expr], ...] | None
    fixed: dict[str, Any] = field(default_factory=dict)

    @functools.cached_property
    def condition(self) -> sp.Basic:
        """The region as one SymPy boolean: ``And`` of :attr:`conditions`."""
        if self.intervals is not None and len(self.intervals) != 1:
            pieces = [
                sp.And(*_interval_relations(self.variable, lo, hi)) for lo, hi in self.intervals
            ]
            return sp.Or(*pieces) if pieces else sp.false
        return sp.And(*self.conditions)

    @functools.cached_property
    def spectral_radius(self) -> sp.Expr | None:
        """Exact spectral radius in closed form (degree <= 2), else None."""
        return spectral_radius(self.polynomial)

    def _values(self, arrays: dict[str, Any], caller: str) -> dict[sp.Symbol, Any]:
        names = {s.name: s for s in self.parameters}
        unknown = sorted(set(arrays) - set(names))
        if unknown:
            raise invalid(
                unknown[0],
                arrays[unknown[0]],
                f"one of the region's parameters {sorted(names)} (in {caller})",
            )
        missing = sorted(set(names) - set(arrays))
        if missing:
            raise invalid(missing[0], None, f"a value: {caller} needs all of {sorted(names)}")
        return {names[k]: np.asarray(v, dtype=float) for k, v in arrays.items()}

    def contains(self, **arrays: Any) -> np.ndarray:
        """True where the parameters lie strictly inside the region.

        Parameters
        ----------
        **arrays : float or array
            One value or array per parameter (``eta=..., lam=..., beta=...``); they broadcast.

        Returns
        -------
        numpy.ndarray of bool
        """
        values = _broadcast(self._values(arrays, "contains"))
        if self.intervals is not None:
            at = _lambdify(self.variable, self.parameters)(*(values[s] for s in self.parameters))
            at = np.asarray(at, dtype=float)
            inside = np.zeros(np.shape(at), dtype=bool)
            for lo, hi in self.intervals:
                low = -np.inf if lo == -sp.oo else float(lo)
                high = np.inf if hi == sp.oo else float(hi)
                inside |= (at > low) & (at < high)
            return inside
        func = _lambdify(self.condition, self.parameters)
        shape = np.broadcast_shapes(*(np.shape(v) for v in values.values()))
        result = func(*(values[s] for s in self.parameters))
        return np.broadcast_to(np.asarray(result, dtype=bool), shape).copy()

    def roots(self, **arrays: Any) -> np.ndarray:
        """Every eigenvalue of the iteration matrix (zero roots removed), vectorized.

        Parameters
        ----------
        **arrays : float or array
            One value or array per parameter; they broadcast.

        Returns
        -------
        numpy.ndarray of complex, shape (..., degree)
        """
        values = _broadcast(self._values(arrays, "roots"))
        shape = np.broadcast_shapes(*(np.shape(v) for v in values.values()))
        degree = self.polynomial.degree()
        companion = np.zeros((*shape, degree, degree))
        for k, c in enumerate(self._monic()[1:]):
            value = _lambdify(c, self.parameters)(*(values[s] for s in self.parameters))
            companion[..., 0, k] = -np.broadcast_to(np.asarray(value, dtype=float), shape)
        for k in range(1, degree):
            companion[..., k, k - 1] = 1.0
        return np.linalg.eigvals(companion)

    def _monic(self) -> list[sp.Expr]:
        return [sp.cancel(c / self.polynomial.LC()) for c in self.polynomial.all_coeffs()]

    def rate(self, **arrays: Any) -> np.ndarray:
        """Spectral radius of the iteration matrix, vectorized over arrays of parameters.

        Parameters
        ----------
        **arrays : float or array
            One value or array per parameter; they broadcast.

        Returns
        -------
        numpy.ndarray of float
            ``max |root of p|``: below 1 inside the region, the asymptotic factor by which
            the error shrinks per step.
        """
        values = _broadcast(self._values(arrays, "rate"))
        coefficients = self._monic()
        shape = np.broadcast_shapes(*(np.shape(v) for v in values.values()))
        numeric = []
        for c in coefficients:
            value = _lambdify(c, self.parameters)(*(values[s] for s in self.parameters))
            numeric.append(np.broadcast_to(np.asarray(value, dtype=float), shape))
        return _numeric_radius(numeric)

    def rate_exact(self, **values: Any) -> sp.Expr:
        """Exact spectral radius at given (exact or float) parameter values.

        Floats are read as the rationals they print as (0.9 → 9/10). Returns an exact SymPy
        number (an algebraic number where the roots are not rational).
        """
        self._values(values, "rate_exact")
        names = {s.name: s for s in self.parameters}
        subs = {names[k]: _exact(k, v) for k, v in values.items()}
        coefficients = [sp.nsimplify(sp.expand(c.subs(subs))) for c in self.polynomial.all_coeffs()]
        poly = sp.Poly(coefficients, Z)
        closed = spectral_radius(poly)
        if closed is not None:
            return sp.simplify(closed)
        return _exact_radius(poly)

    def describe(self) -> str:
        """The region as one line of readable inequalities."""
        return _render(self.conditions)

    def __repr__(self) -> str:
        fixed = "".join(f", {k}={v}" for k, v in self.fixed.items())
        return (
            f"StabilityRegion({self.name!r}{fixed}) on f = lam*x**2/2\n"
            f"  converges iff    {self.describe()}\n"
            f"  iteration matrix {self.matrix.tolist()}\n"
            f"  char. polynomial {self.polynomial.as_expr()}"
        )

    def _repr_latex_(self) -> str:
        return (
            r"$\text{"
            + self.name
            + r" converges iff } "
            + _render(self.conditions, latex=True)
            + r";\quad p(z) = "
            + _latex(self.polynomial.as_expr())
            + "$"
        )


def _broadcast(values: dict[sp.Symbol, np.ndarray]) -> dict[sp.Symbol, np.ndarray]:
    arrays = np.broadcast_arrays(*values.values())
    return dict(zip(values, arrays, strict=True))


def _exact_radius(poly: sp.Poly) -> sp.Expr:
    """``max |root|`` of a polynomial with rational coefficients, as an exact algebraic number.

    ``ρ²`` is a real root of ``R(w) = Res_z(p(z), zⁿ p(w/z))``, whose roots are the products
    ``z_i z_j`` of roots of ``p`` (``|z|² = z z̄``, and ``z²`` for a real root); the root of
    ``R`` equal to the numerical ``ρ²`` is isolated exactly, so ``ρ = sqrt(CRootOf(...))``.
    """
    z, w = poly.gen, sp.Dummy("w")
    expr = poly.as_expr()
    numeric = np.roots([float(c) for c in poly.all_coeffs()])
    target = float(np.max(np.abs(numeric)) ** 2)
    if target == 0.0:
        return sp.Integer(0)
    mirrored = sp.expand(z ** poly.degree() * expr.subs(z, w / z))
    resultant = sp.Poly(sp.resultant(expr, mirrored, z), w)
    candidates = [root for factor, _ in resultant.factor_list()[1] for root in factor.real_roots()]
    closest = min(candidates, key=lambda root: abs(float(root) - target))
    return sp.sqrt(closest)


def _interval_relations(variable: sp.Expr, lo: sp.Expr, hi: sp.Expr) -> list[sp.Basic]:
    relations = []
    if lo != -sp.oo:
        relations.append(sp.StrictGreaterThan(variable, lo))
    if hi != sp.oo:
        relations.append(sp.StrictLessThan(variable, hi))
    return relations


@functools.lru_cache(maxsize=256)
def _lambdify(expr: sp.Basic, parameters: tuple[sp.Symbol, ...]) -> Any:
    return sp.lambdify(parameters, expr, modules="numpy")


def _exact(name: str, value: Any) -> sp.Expr:
    if isinstance(value, sp.Basic):
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise invalid(name, value, "a real number or a SymPy expression")
    if not math.isfinite(float(value)):
        raise invalid(name, value, "a finite real number")
    if isinstance(value, numbers.Integral):
        return sp.Integer(int(value))
    return sp.Rational(repr(float(value)))


def _product_partner(coefficients: list[sp.Expr]) -> sp.Symbol | None:
    """A symbol ``s`` (``eta`` if possible) that the coefficients contain only as ``s*lam``."""
    free = set().union(*(c.free_symbols for c in coefficients))
    if LAM not in free:
        return None
    for candidate in sorted(free - {LAM}, key=lambda symbol: (symbol != ETA, symbol.name)):
        replaced = [sp.expand(c.subs(candidate, _H / LAM)) for c in coefficients]
        if not any(LAM in c.free_symbols for c in replaced):
            return candidate
    return None


def _one_variable(
    coefficients: list[sp.Expr],
) -> tuple[sp.Expr, sp.Symbol, sp.Symbol | None] | None:
    """``(expression, stand-in symbol, partner)`` if the coefficients depend on one quantity
    only: a single symbol, or a product ``s*lam``."""
    free = set().union(*(c.free_symbols for c in coefficients))
    if len(free) == 1:
        (symbol,) = free
        return symbol, symbol, None
    partner = _product_partner(coefficients)
    if partner is not None and free == {partner, LAM}:
        return partner * LAM, _H, partner
    return None


def _derive(optimizer: Optimizer, name: str, fixed: dict[str, sp.Expr]) -> StabilityRegion:
    derived = iteration_map(optimizer)
    symbols = {s.name: s for s in derived.matrix.free_symbols}
    allowed = sorted(symbols)
    subs = {}
    for key, value in fixed.items():
        if key not in symbols:
            raise invalid(key, value, f"a parameter of {name!r}: one of {allowed}")
        subs[symbols[key]] = value
    matrix = derived.matrix.subs(subs).applyfunc(sp.expand)
    polynomial = sp.Poly(sp.expand(derived.polynomial.as_expr().subs(subs)), Z)
    while polynomial.degree() > 1 and polynomial.nth(0) == 0:
        polynomial = sp.Poly(sp.cancel(polynomial.as_expr() / Z), Z)
    if subs:
        full = sp.Poly(sp.expand(derived.full_polynomial.as_expr().subs(subs)), Z)
        images = tuple(sp.expand(e.subs(subs)) for e in derived.images)
        derived = IterationMap(
            derived.optimizer, derived.variables, images, matrix, full, polynomial
        )
    coefficients = [sp.expand(c) for c in polynomial.all_coeffs()]
    parameters = tuple(sorted(set().union(*(c.free_symbols for c in coefficients)), key=str))
    single = _one_variable(coefficients)
    if single is not None:
        variable, stand_in, partner = single
        local = sp.Poly(
            [
                sp.expand(c.subs(partner, _H / LAM)) if partner is not None else c
                for c in coefficients
            ],
            Z,
        )
        intervals = tuple(_stable_intervals(local, stand_in))
        relations: list[sp.Basic] = []
        for lo, hi in intervals:
            relations.extend(_interval_relations(variable, lo, hi))
        relations = [r for r in relations if r is not sp.true]  # e.g. e > 0 for e positive
        if len(intervals) != 1:
            relations = (
                [sp.Or(*(sp.And(*_interval_relations(variable, lo, hi)) for lo, hi in intervals))]
                if intervals
                else [sp.false]
            )
        return StabilityRegion(
            name,
            derived,
            matrix,
            polynomial,
            tuple(relations),
            parameters,
            variable,
            intervals,
            dict(fixed),
        )
    if not parameters:
        stable = schur_stable(coefficients)
        return StabilityRegion(
            name,
            derived,
            matrix,
            polynomial,
            (sp.true if stable else sp.false,),
            parameters,
            None,
            None,
            dict(fixed),
        )
    conditions = []
    partner = _product_partner(coefficients)
    for relation in jury_conditions(polynomial):
        tidy = _solve_for(relation, partner) if partner is not None else relation
        if tidy is sp.false:
            conditions = [sp.false]
            break
        if tidy is not sp.true:
            conditions.append(tidy)
    return StabilityRegion(
        name, derived, matrix, polynomial, tuple(conditions), parameters, None, None, dict(fixed)
    )


@functools.lru_cache(maxsize=128)
def _named_region(
    name: str, tau: int | None, fixed: tuple[tuple[str, sp.Expr], ...]
) -> StabilityRegion:
    optimizer = symbolic_optimizer(name, tau=tau)
    label = name if tau is None else f"{name}(tau={tau})"
    return _derive(optimizer, label, dict(fixed))


def stability_region(name_or_optimizer: str | Optimizer, **fixed: Any) -> StabilityRegion:
    """The stability region and rate of a linear method on ``f = λx²/2``, derived from its code.

    Parameters
    ----------
    name_or_optimizer : str or Optimizer
        ``"gd"``, ``"momentum"``, ``"nesterov"``, ``"delayed_gd"`` (with ``tau=``) or
        ``"heavy_ball"`` (Polyak's form, ``a = eta``, ``b = beta``); or an Optimizer built
        with SymPy hyperparameters, e.g. ``ck.optim.momentum(sp.Symbol("eta"), 0.5)``.
    **fixed : number or SymPy expression
        Values to substitute before deriving, by symbol name (``beta=0.9``, ``lam=1``);
        floats are read as the rationals they print as. ``tau`` (an int) sets the delay of
        ``"delayed_gd"``.

    Returns
    -------
    StabilityRegion

    Examples
    --------
    >>> import convexkit as ck
    >>> ck.stability_region("momentum").describe()
    '0 < eta*lam < 2*beta + 2, |beta| < 1'
    >>> ck.stability_region("delayed_gd", tau=1).describe()
    '0 < eta*lam < 1'
    """
    tau = fixed.pop("tau", None)
    exact = {key: _exact(key, value) for key, value in fixed.items()}
    if isinstance(name_or_optimizer, Optimizer):
        if tau is not None:
            raise invalid("tau", tau, "no tau for an Optimizer (build it with its delay)")
        return _derive(name_or_optimizer, name_or_optimizer.name, exact)
    if not isinstance(name_or_optimizer, str) or name_or_optimizer not in NAMES:
        raise invalid(
            "name_or_optimizer",
            name_or_optimizer,
            "an Optimizer or one of " + ", ".join(repr(n) for n in NAMES),
        )
    known = {"gd": {"eta", "lam"}, "delayed_gd": {"eta", "lam"}}.get(
        name_or_optimizer, set(SYMBOLS)
    )
    for key, value in exact.items():
        if key not in known:
            raise invalid(
                key, value, f"a parameter of {name_or_optimizer!r}: one of {sorted(known)}"
            )
    return _named_region(name_or_optimizer, tau, tuple(sorted(exact.items())))


def delayed_gd_threshold(tau: int) -> sp.Expr:
    """Closed form of the stability limit of gradient descent with a delay of τ steps.

    ``p(z) = z^{τ+1} − z^τ + h`` (``h = ηλ``) first gets a root on the unit circle, as ``h``
    grows from 0, where ``h = z^τ(1 − z)`` is real and positive for ``z = e^{iω}``:
    ``1 − e^{iω} = −2i sin(ω/2) e^{iω/2}`` gives ``h = 2 sin(ω/2) e^{i((τ+½)ω − π/2)}``, real
    and positive for ``(τ+½)ω = π/2 + 2πk``; the smallest such ω is ``π/(2τ+1)``. Hence
    stable iff ``0 < ηλ < 2 sin(π / (2(2τ+1)))`` (τ = 0: 2; τ = 1: 1; τ = 2: (√5 − 1)/2).

    Parameters
    ----------
    tau : int
        Delay τ >= 0.

    Returns
    -------
    SymPy expression
    """
    if isinstance(tau, bool) or not isinstance(tau, numbers.Integral) or tau < 0:
        raise invalid("tau", tau, "an integer >= 0")
    return 2 * sp.sin(sp.pi / (2 * (2 * int(tau) + 1)))
