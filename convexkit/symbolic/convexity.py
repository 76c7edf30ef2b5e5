"""Convexity verdicts: exact proofs, exact witnesses of non-convexity, and the constants mu and L.

``convexity(f)`` answers one of ``"strongly convex"``, ``"convex"``, ``"concave"``, ``"affine"``,
``"nonconvex"`` or ``"unknown"``, with the reason in words. A wrong "convex" is the worst answer
it could give, so "convex" is said only with a proof, "nonconvex" only with a witness checked in
exact arithmetic, and "unknown" otherwise.

How a verdict is reached
------------------------
1. **Domain.** The variables range over an open box (all of R^n unless ``domain`` says
   otherwise, or the symbols carry assumptions such as ``positive=True``), intersected with the
   natural domain of f: ``log(u)`` and non-integer powers of ``u`` need ``u > 0``. A condition on
   one variable shrinks the box (``x*log(x)`` is studied on x > 0); an affine condition on several
   variables adds a half-space (the domain stays convex); anything else leaves the domain
   unknown, and then only the composition rules (step 4) may prove convexity.
2. **Constant Hessian** (quadratics). Exact LDL^T elimination in rational arithmetic with
   symmetric pivoting decides positive (semi)definiteness and, when it fails, returns an exact
   direction ``d`` with ``d^T H d < 0``. Leading principal minors are *not* used as a proof:
   ``[[0, 0], [0, -1]]`` has leading minors 0 and 0 and is not positive semidefinite. mu and L
   (smallest eigenvalue and largest absolute eigenvalue) are exact for n <= 2 or a diagonal
   Hessian, and otherwise certified bounds: a float estimate checked by exact elimination of
   ``H - mu I`` and ``L I - H``. A 30-variable quadratic takes well under a second.
3. **Variable Hessian** of a twice differentiable f. One variable: f'' >= 0 is proved by SymPy's
   sign rules on the domain, by interval arithmetic (``sympy.AccumBounds``) over the domain,
   or by exact root isolation when f'' is a rational function. Several variables: every
   principal minor (not only the leading ones) of every diagonal block of the Hessian is
   proved non-negative. mu and L are proved the same way, for ``H - mu I`` and ``L I - H``,
   with candidate values proposed by sampling the Hessian's eigenvalues.
4. **Composition rules** (disciplined convex programming, as in cvxpy): sums and non-negative
   multiples of convex functions, convex non-decreasing functions of convex arguments, and atoms
   such as ``exp``, ``log``, log-sum-exp, ``Abs``, ``Max``, powers, Euclidean norms, ``x*log(x)``
   and ``x**2/y``. These also handle functions with kinks, where the Hessian test does not apply.
   When they fail, the reason names the sub-expression that failed.
5. **Witness search.** Points of the domain are sampled with a fixed seed; where the numeric
   Hessian has a negative eigenvalue, the point and direction are rounded to rationals and
   checked exactly: ``d^T H(p) d < 0``, and Jensen's inequality fails on the chord from
   ``p - h d`` to ``p + h d``. For functions with kinks, random chords are tried directly.
   This scan runs before any proof is attempted (and a chord scan after a composition-rule
   proof), so a wrong symbolic step would show up as a contradiction, not as a wrong "convex".
   Signs of closed-form numbers are decided exactly for rationals and otherwise by evaluation
   to 30 guaranteed digits.

Concave means -f is convex; affine means the Hessian vanishes identically.
"""

from __future__ import annotations

import itertools
import math
import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import sympy as sp

from ..errors import check_int, invalid

__all__ = ["CURVATURES", "ConvexityReport", "convexity"]

CURVATURES = ("strongly convex", "convex", "concave", "affine", "nonconvex", "unknown")

_NONSMOOTH = (
    sp.Abs,
    sp.Max,
    sp.Min,
    sp.Piecewise,
    sp.sign,
    sp.Heaviside,
    sp.floor,
    sp.ceiling,
    sp.frac,
    sp.DiracDelta,
    sp.re,
    sp.im,
    sp.arg,
)
# functions that are infinitely differentiable on the whole real line
_ENTIRE = (sp.exp, sp.sin, sp.cos, sp.sinh, sp.cosh, sp.tanh, sp.atan, sp.erf, sp.erfc)
_MAX_MINOR_BLOCK = 4
_SAMPLES = 240


# =============================================================================================
# the report


@dataclass(frozen=True)
class ConvexityReport:
    """The verdict of :func:`convexity`.

    Attributes
    ----------
    curvature : str
        One of ``"strongly convex"``, ``"convex"``, ``"concave"``, ``"affine"``,
        ``"nonconvex"``, ``"unknown"``.
    reason : str
        Which test proved the verdict, in words a student can follow.
    witness : tuple or None
        A point of the domain (exact rationals) that proves non-convexity: the Hessian has a
        negative eigenvalue there (along ``direction``), or it is the point ``t*x + (1-t)*y`` of
        a chord ``(x, y, t)`` along which Jensen's inequality fails. Also given for concave
        functions that are not affine.
    mu : number or None
        The largest proven lower bound on the smallest Hessian eigenvalue over the domain:
        positive exactly for a strongly convex function (its modulus), 0 for a convex one, and
        negative for a nonconvex quadratic. None where unknown.
    L : number or None
        A proven bound on the largest absolute Hessian eigenvalue over the domain (the
        smoothness constant of the gradient), or None where none was proved.
    direction : tuple or None
        A direction ``d`` with ``d^T H(witness) d < 0`` (exact rationals).
    chord : tuple or None
        ``(x, y, t)`` with ``f(t*x + (1-t)*y) > t*f(x) + (1-t)*f(y)``, checked exactly.
    expr : sympy.Expr or None
        The function studied.
    variables : tuple of sympy.Symbol
        Its variables, in the order of the points above.
    domain : tuple of sympy relations
        The open domain studied (empty: all of R^n).
    method : str
        Short name of the deciding test: ``"exact-ldl"``, ``"second-derivative"``,
        ``"principal-minors"``, ``"dcp"``, ``"witness"`` or ``""``.

    Notes
    -----
    mu and L are exact SymPy numbers where they were computed exactly and floats (rounded in
    the safe direction) where they are certified numerical bounds.
    """

    curvature: str
    reason: str
    witness: tuple | None = None
    mu: Any = None
    L: Any = None
    direction: tuple | None = None
    chord: tuple | None = None
    expr: Any = None
    variables: tuple = ()
    domain: tuple = ()
    method: str = ""

    @property
    def is_convex(self) -> bool:
        """True for a proved convex function (strongly convex, convex or affine)."""
        return self.curvature in ("strongly convex", "convex", "affine")

    @property
    def is_concave(self) -> bool:
        """True for a proved concave function (concave or affine)."""
        return self.curvature in ("concave", "affine")

    def __repr__(self) -> str:
        head = f"ConvexityReport: {self.expr} is {self.curvature}"
        extras = []
        if self.mu is not None:
            extras.append(f"mu = {self.mu}")
        if self.L is not None:
            extras.append(f"L = {self.L}")
        if self.witness is not None:
            extras.append(f"witness = {_fmt_point(self.witness)}")
        if extras:
            head += " (" + ", ".join(extras) + ")"
        if self.domain:
            head += " on " + " & ".join(str(c) for c in self.domain)
        return head + "\n  " + self.reason

    __str__ = __repr__

    def _repr_latex_(self) -> str:
        name = ", ".join(sp.latex(v) for v in self.variables)
        expr = sp.latex(self.expr) if self.expr is not None else ""
        parts = [rf"f({name}) = {expr}", rf"\quad\text{{{self.curvature}}}"]
        extras = []
        if self.mu is not None:
            extras.append(rf"\mu = {sp.latex(self.mu)}")
        if self.L is not None:
            extras.append(rf"L = {sp.latex(self.L)}")
        if self.witness is not None:
            extras.append(r"\text{witness } " + sp.latex(sp.Tuple(*self.witness)))
        if extras:
            parts.append(r"\ (" + r",\ ".join(extras) + ")")
        if self.domain:
            parts.append(r"\ \text{on } " + r" \wedge ".join(sp.latex(c) for c in self.domain))
        return "$" + "".join(parts) + "$"


def _fmt_point(point: Sequence[Any]) -> str:
    return "(" + ", ".join(str(p) for p in point) + ")"


# =============================================================================================
# small exact helpers


def _natural_key(symbol: sp.Symbol) -> tuple:
    parts = re.split(r"(\d+)", symbol.name)
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts)


def _number(name: str, value: Any, container: Any) -> sp.Expr:
    """An exact SymPy number for an interval end (floats read as their decimals)."""
    if value is None:
        return sp.nan
    if isinstance(value, bool):
        raise invalid(name, container, "interval ends that are real numbers or None")
    if isinstance(value, float):
        if math.isnan(value):
            raise invalid(name, container, "interval ends that are real numbers, not NaN")
        if math.isinf(value):
            return sp.oo if value > 0 else -sp.oo
        return sp.Rational(repr(value))
    if isinstance(value, Fraction):
        return sp.Rational(value.numerator, value.denominator)
    try:
        number = sp.sympify(value)
    except (sp.SympifyError, TypeError) as err:
        raise invalid(name, container, "interval ends that are real numbers or None") from err
    if number in (sp.oo, -sp.oo):
        return number
    if not (isinstance(number, sp.Expr) and number.is_number and number.is_real):
        raise invalid(name, container, "interval ends that are real numbers or None")
    if isinstance(number, sp.Float):
        return sp.Rational(repr(float(number)))
    return number


def _sign_number(value: sp.Expr) -> int | None:
    """Exact sign of a closed-form real number: 1, 0, -1, or None if it cannot be decided."""
    value = sp.sympify(value)
    if value.is_Rational:
        return int(bool(value > 0)) - int(bool(value < 0))
    if value.free_symbols or value.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
        return None
    try:
        # strict=True raises unless all 30 digits are correct, so the sign of a nonzero
        # result is certain
        approx = value.evalf(30, strict=True)
    except Exception:  # noqa: BLE001 - PrecisionExhausted and friends: maybe an exact zero
        approx = None
    if approx is not None and approx.is_Number and approx.is_real and approx != 0:
        return 1 if approx > 0 else -1
    # only now ask for an exact zero: the question can be expensive
    return 0 if value.is_zero else None


def _rational(value: float, digits: int = 6) -> sp.Rational:
    return sp.Rational(f"{value:.{digits}g}")


def _to_fraction(value: sp.Expr) -> Fraction | None:
    if value.is_Rational:
        return Fraction(int(value.p), int(value.q))
    return None


def _frac_to_sympy(value: Fraction) -> sp.Rational:
    return sp.Rational(value.numerator, value.denominator)


def _nice_below(value: float, count: int = 4) -> list[sp.Rational]:
    """Short decimals at most ``value``, largest first (candidates for a lower bound)."""
    if not math.isfinite(value):
        return []
    if value == 0:
        return [sp.Integer(0)]
    found: set = set()
    top = math.floor(math.log10(abs(value)))
    for digits in (1, 2, 3, 4):
        step = sp.Integer(10) ** (top - digits + 1)
        exact = sp.Rational(repr(value))
        for candidate in (sp.floor(exact / step) * step, sp.Integer(round(exact / step)) * step):
            if candidate <= exact:
                found.add(candidate)
    return sorted(found, reverse=True)[:count]


def _nice_above(value: float, count: int = 4) -> list[sp.Rational]:
    """Short decimals at least ``value``, smallest first (candidates for an upper bound)."""
    return [-c for c in _nice_below(-value, count)]


# =============================================================================================
# exact and float LDL^T with symmetric pivoting


@dataclass
class _LDL:
    psd: bool
    rank: int
    pivots: list
    direction: list | None  # d with d^T A d < 0 when not psd


def _ldl(matrix: Sequence[Sequence[Any]], tol: Any = 0) -> _LDL:
    """Decide positive semidefiniteness by symmetric elimination, with a certificate.

    Works on Fractions (exact, ``tol=0``) or floats (``tol`` > 0). When the matrix is not
    positive semidefinite, ``direction`` is a vector ``d`` with ``d^T A d < 0`` (exactly, for
    Fractions). Pivots are taken from the diagonal, largest first; a zero diagonal entry with a
    nonzero off-diagonal entry in its row already proves indefiniteness.
    """
    n = len(matrix)
    s = [list(row) for row in matrix]
    active = list(range(n))
    order: list[int] = []
    rows: dict[int, dict[int, Any]] = {}
    pivots: list = []
    zero = 0 * (s[0][0] if n else 0)

    def lift(w: dict[int, Any]) -> list:
        v = {i: w.get(i, zero) for i in active}
        for k in reversed(order):
            row = rows[k]
            v[k] = -sum((row[j] * v[j] for j in row if j != k), zero) / row[k]
        return [v.get(i, zero) for i in range(n)]

    while active:
        worst = min(active, key=lambda i: s[i][i])
        if s[worst][worst] < -tol:
            return _LDL(False, len(pivots), pivots, lift({worst: zero + 1}))
        for i in active:
            if abs(s[i][i]) <= tol:
                for j in active:
                    if j != i and abs(s[i][j]) > tol:
                        # w = t e_i + e_j: w^T S w = 2 t S_ij + S_jj = -1 when S_ii = 0
                        t = -(s[j][j] + 1) / (2 * s[i][j])
                        return _LDL(False, len(pivots), pivots, lift({i: t, j: zero + 1}))
        k = max(active, key=lambda i: s[i][i])
        d = s[k][k]
        if d <= tol:
            break
        active.remove(k)
        rows[k] = {j: s[k][j] for j in active}
        rows[k][k] = d
        order.append(k)
        pivots.append(d)
        for i in active:
            factor = s[i][k] / d
            if factor:
                row_i, row_k = s[i], s[k]
                for j in active:
                    row_i[j] -= factor * row_k[j]
    return _LDL(True, len(pivots), pivots, None)


def _positive_definite(matrix: Sequence[Sequence[Fraction]]) -> bool:
    """Exact test of positive definiteness by Sylvester's criterion (valid for definiteness).

    Fraction-free Bareiss elimination on the matrix scaled to integers: every intermediate
    value is an integer minor, so no gcd is ever taken; the leading principal minors are the
    diagonal entries as they are reached.
    """
    n = len(matrix)
    scale = 1
    for row in matrix:
        for v in row:
            scale = math.lcm(scale, Fraction(v).denominator)
    m = [[int(Fraction(v) * scale) for v in row] for row in matrix]
    previous = 1
    for k in range(n):
        pivot = m[k][k]
        if pivot <= 0:
            return False
        row_k = m[k]
        for i in range(k + 1, n):
            row_i = m[i]
            a = row_i[k]
            for j in range(k + 1, n):
                row_i[j] = (row_i[j] * pivot - a * row_k[j]) // previous
        previous = pivot
    return True


def _quadratic_form(matrix: Sequence[Sequence[Any]], v: Sequence[Any]) -> Any:
    n = len(v)
    return sum(v[i] * matrix[i][j] * v[j] for i in range(n) for j in range(n))


def _shift(matrix: list[list[Fraction]], value: Fraction, sign: int = 1) -> list[list[Fraction]]:
    """``sign * matrix - value * I``."""
    n = len(matrix)
    return [[sign * matrix[i][j] - (value if i == j else 0) for j in range(n)] for i in range(n)]


def _float_eigen_range(matrix: Sequence[Sequence[float]]) -> tuple[float, float]:
    n = len(matrix)
    if n == 1:
        return float(matrix[0][0]), float(matrix[0][0])
    if n == 2:
        a, b, c = float(matrix[0][0]), float(matrix[0][1]), float(matrix[1][1])
        mid, rad = (a + c) / 2, math.hypot((a - c) / 2, b)
        return mid - rad, mid + rad
    # a float estimate only: every bound built on it is certified by exact elimination
    import numpy as np

    values = np.linalg.eigvalsh(np.asarray(matrix, dtype=float))
    return float(values[0]), float(values[-1])


def _leading_minors(matrix: list[list[Fraction]]) -> list[Fraction]:
    n = len(matrix)
    out = []
    for k in range(1, n + 1):
        out.append(_det([row[:k] for row in matrix[:k]]))
    return out


def _det(matrix: list[list[Fraction]]) -> Fraction:
    a = [list(r) for r in matrix]
    n = len(a)
    det = Fraction(1)
    for c in range(n):
        p = next((r for r in range(c, n) if a[r][c] != 0), None)
        if p is None:
            return Fraction(0)
        if p != c:
            a[c], a[p] = a[p], a[c]
            det = -det
        det *= a[c][c]
        for r in range(c + 1, n):
            f = a[r][c] / a[c][c]
            if f:
                for j in range(c, n):
                    a[r][j] -= f * a[c][j]
    return det


# =============================================================================================
# derivatives


def _quadratic_hessian(expr: sp.Expr, variables: Sequence[sp.Symbol]) -> sp.Matrix | None:
    """The Hessian of an expanded polynomial of degree <= 2 with rational coefficients.

    Reads the coefficients term by term (no Poly construction, no differentiation), which keeps
    a 30-variable quadratic fast; anything else returns None.
    """
    index = {v: i for i, v in enumerate(variables)}
    n = len(variables)
    h = [[sp.Integer(0)] * n for _ in range(n)]
    for term in sp.Add.make_args(expr):
        coeff, rest = term.as_coeff_Mul()
        if not coeff.is_Rational:
            return None
        slots: list[int] = []
        for base, power in rest.as_powers_dict().items():
            if base == 1:
                continue
            if base not in index or not (power.is_Integer and power > 0):
                return None
            slots.extend([index[base]] * int(power))
        if len(slots) > 2:
            return None
        if len(slots) == 2:
            i, j = slots
            if i == j:
                h[i][i] += 2 * coeff
            else:
                h[i][j] += coeff
                h[j][i] += coeff
    return sp.Matrix(h)


def _hessian(expr: sp.Expr, variables: Sequence[sp.Symbol]) -> sp.Matrix:
    """The Hessian; a polynomial of degree <= 2 is read straight from its coefficients."""
    variables = tuple(variables)
    n = len(variables)
    quick = _quadratic_hessian(expr, variables)
    if quick is not None:
        return quick
    poly = _polynomial(expr, variables)
    if poly is not None and poly.total_degree() <= 2:
        h = [[sp.Integer(0)] * n for _ in range(n)]
        for monomial, coeff in poly.terms():
            powers = [i for i, k in enumerate(monomial) for _ in range(k)]
            if len(powers) == 2:
                i, j = powers
                if i == j:
                    h[i][i] += 2 * coeff
                else:
                    h[i][j] += coeff
                    h[j][i] += coeff
        return sp.Matrix(h)
    gradient = [sp.diff(expr, v) for v in variables]
    h = [[sp.Integer(0)] * n for _ in range(n)]
    for i in range(n):
        for j in range(i, n):
            h[i][j] = h[j][i] = sp.diff(gradient[i], variables[j])
    return sp.Matrix(h)


def _polynomial(expr: sp.Expr, variables: Sequence[sp.Symbol]) -> sp.Poly | None:
    if not variables:
        return None
    try:
        if not expr.is_polynomial(*variables):
            return None
        return sp.Poly(expr, *variables)
    except (sp.PolynomialError, sp.GeneratorsNeeded, TypeError, ValueError):
        return None


# =============================================================================================
# the context: function, variables, domain, and sign proofs on that domain


class _Context:
    def __init__(self, f: sp.Expr, variables: tuple, params: tuple, box: dict, seed: int):
        self.f = f
        self.vs = variables
        self.params = params
        self.box = dict(box)
        self.halfspaces: list[sp.Expr] = []
        self.conditions: list[sp.Expr] = []  # u > 0 needed, u not affine
        self.notes: list[str] = []
        self.issues: list[str] = []
        self.smooth = True
        self.domain_ok = True
        self.seed = seed
        self._maps: list[dict] | None = None
        self._holds_cache: dict = {}
        self._forms_cache: dict = {}
        self.saw_positive_curvature = False

    # -- domain ----------------------------------------------------------------------------
    def maps(self) -> list[dict]:
        """Substitutions that give each variable its interval through SymPy assumptions.

        A bounded interval (lo, hi) is replaced by a superset, (lo, oo) in one map and
        (-oo, hi) in the other: a sign proved on a superset holds on the interval.
        """
        if self._maps is None:
            low, high = {}, {}
            for v in self.vs:
                lo, hi = self.box[v]
                t = sp.Dummy(f"{v.name}_t", positive=True)
                r = sp.Dummy(f"{v.name}_r", real=True)
                low[v] = lo + t if lo.is_finite else (hi - t if hi.is_finite else r)
                high[v] = hi - t if hi.is_finite else (lo + t if lo.is_finite else r)
            self._maps = [low] if low == high else [low, high]
        return self._maps

    def relations(self) -> tuple:
        out: list = []
        for v in self.vs:
            lo, hi = self.box[v]
            if lo.is_finite:
                out.append(sp.StrictGreaterThan(v, lo))
            if hi.is_finite:
                out.append(sp.StrictLessThan(v, hi))
        out.extend(sp.StrictGreaterThan(u, 0) for u in self.halfspaces + self.conditions)
        return tuple(out)

    def inside(self, point: Sequence[sp.Rational]) -> bool:
        for v, p in zip(self.vs, point, strict=True):
            lo, hi = self.box[v]
            if not (lo < p < hi):
                return False
        subs = dict(zip(self.vs, point, strict=True))
        return all(_sign_number(u.xreplace(subs)) == 1 for u in self.halfspaces + self.conditions)

    def center(self) -> tuple[sp.Rational, ...] | None:
        point = []
        for v in self.vs:
            lo, hi = self.box[v]
            if lo.is_finite and hi.is_finite:
                point.append((lo + hi) / 2)
            elif lo.is_finite:
                point.append(lo + 1)
            elif hi.is_finite:
                point.append(hi - 1)
            else:
                point.append(sp.Integer(0))
        point_t = tuple(sp.nsimplify(p) if not p.is_Rational else p for p in point)
        if all(p.is_Rational for p in point_t) and self.inside(point_t):
            return point_t
        for sample in self.sample(random.Random(self.seed), 64):
            candidate = tuple(_rational(c) for c in sample)
            if self.inside(candidate):
                return candidate
        return None

    def sample(self, rng: random.Random, count: int) -> list[tuple[float, ...]]:
        """Float points of the domain, spread over several scales (fixed by ``rng``)."""
        half = [
            sp.lambdify(self.vs, u, modules=["math"]) for u in self.halfspaces + self.conditions
        ]
        out: list[tuple[float, ...]] = []
        for _ in range(count * 4):
            point = tuple(self._draw(rng, *self.box[v]) for v in self.vs)
            try:
                if all(h(*point) > 0 for h in half):
                    out.append(point)
            except (ValueError, ZeroDivisionError, OverflowError, TypeError):
                continue
            if len(out) >= count:
                break
        return out

    @staticmethod
    def _draw(rng: random.Random, lo: sp.Expr, hi: sp.Expr) -> float:
        if lo.is_finite and hi.is_finite:
            a, b = float(lo), float(hi)
            u = rng.random()
            kind = rng.random()
            if kind < 0.2:
                u = u**4
            elif kind < 0.4:
                u = 1 - u**4
            return min(max(a + (b - a) * u, math.nextafter(a, b)), math.nextafter(b, a))
        if lo.is_finite or hi.is_finite:
            distance = math.exp(rng.uniform(-6.0, 3.0))
            return float(lo) + distance if lo.is_finite else float(hi) - distance
        scale = rng.choice((0.5, 1.0, 3.0, 10.0))
        return rng.gauss(0.0, scale)

    # -- sign proofs -----------------------------------------------------------------------
    def holds(self, expr: sp.Expr, prop: str) -> bool:
        """True when SymPy proves ``expr`` has ``prop`` ('nonnegative', 'positive', ...)."""
        key = (expr, prop)
        if key in self._holds_cache:
            return self._holds_cache[key]
        result = False
        if expr.is_number:
            s = _sign_number(expr)
            result = (
                s is not None
                and {
                    "positive": s > 0,
                    "nonnegative": s >= 0,
                    "negative": s < 0,
                    "nonpositive": s <= 0,
                }[prop]
            )
        else:
            for mapping in self.maps():
                g = expr.xreplace(mapping)
                forms = _forms(g, self._forms_cache)
                if any(getattr(form, "is_" + prop) is True for form in forms):
                    result = True
                    break
        self._holds_cache[key] = result
        return result

    def is_affine(self, expr: sp.Expr) -> bool:
        poly = _polynomial(expr, self.vs)
        return poly is not None and poly.total_degree() <= 1

    def decide_nonneg(self, expr: sp.Expr) -> tuple[bool | None, tuple | None, str]:
        """Decide ``expr >= 0`` on the domain: (True, None, how), (False, point, how) or None."""
        expr = _clean(expr)
        if expr.is_number:
            s = _sign_number(expr)
            if s is None:
                return None, None, f"the sign of {expr} could not be decided"
            if s >= 0:
                return True, None, "it is a non-negative constant"
            return False, self.center(), "it is a negative constant"
        if self.holds(expr, "nonnegative"):
            return True, None, "SymPy's sign rules show it on the domain"
        low = self.interval_lower(expr)
        if low is not None and _sign_number(low) in (0, 1):
            return True, None, f"interval arithmetic over the domain bounds it below by {low}"
        free = expr.free_symbols & set(self.vs)
        if len(free) == 1 and not (expr.free_symbols - free):
            (x,) = free
            verdict = _univariate_sign(expr, x, *self.box[x])
            if verdict is not None:
                ok, value = verdict
                if ok:
                    return True, None, "exact root isolation of its numerator and denominator"
                point = tuple(
                    value if v == x else c for v, c in zip(self.vs, self._anchor(), strict=True)
                )
                return False, point, "exact root isolation finds a negative value"
        return None, None, f"could not decide the sign of {expr}"

    def interval_lower(self, expr: sp.Expr) -> sp.Expr | None:
        """A lower bound of ``expr`` over the box by interval arithmetic (AccumBounds)."""
        free = expr.free_symbols & set(self.vs)
        if expr.free_symbols - free or sp.count_ops(expr) > 300:
            return None
        try:
            value = expr.subs({v: sp.AccumBounds(*self.box[v]) for v in free})
        except Exception:  # noqa: BLE001 - interval arithmetic is not defined for every atom
            return None
        low = value.min if isinstance(value, sp.AccumBounds) else value
        if not (isinstance(low, sp.Expr) and low.is_number and low.is_real):
            return None
        if low.has(sp.AccumBounds, sp.nan, sp.zoo):
            return None
        return low

    def _anchor(self) -> tuple:
        center = self.center()
        return center if center is not None else tuple(sp.Integer(0) for _ in self.vs)


_TRANSFORMS = (sp.factor, sp.cancel, sp.expand)


def _forms(expr: sp.Expr, cache: dict) -> Iterable[sp.Expr]:
    """Equivalent forms of ``expr`` on which SymPy's sign rules may succeed, made lazily."""
    seen = cache.setdefault(expr, [expr])
    yield from list(seen)
    if len(seen) > 1:
        return
    size = sp.count_ops(expr)
    if size > 300:
        return
    candidates: list[Callable[[], sp.Expr]] = [lambda t=t: t(expr) for t in _TRANSFORMS]
    if size <= 40:
        candidates.append(lambda: sp.factor(sp.simplify(expr)))
    for make in candidates:
        try:
            candidate = make()
        except Exception:  # noqa: BLE001 - a failed rewrite is simply not used
            continue
        if candidate not in seen:
            seen.append(candidate)
            yield candidate


_CLEAN_CACHE: dict = {}


def _clean(expr: sp.Expr) -> sp.Expr:
    expr = sp.sympify(expr)
    if expr.is_number or expr.is_zero:
        return expr
    if expr in _CLEAN_CACHE:
        return _CLEAN_CACHE[expr]
    if len(_CLEAN_CACHE) > 4096:
        _CLEAN_CACHE.clear()
    _CLEAN_CACHE[expr] = result = _clean_uncached(expr)
    return result


def _clean_uncached(expr: sp.Expr) -> sp.Expr:
    # cancel is cheap and exact; full simplification is left to the sign prover, which
    # tries it only when the cheap forms fail
    if sp.count_ops(expr) > 600:
        return expr
    try:
        return sp.cancel(expr)
    except Exception:  # noqa: BLE001 - an expression cancel cannot handle is kept as it is
        return expr


def _univariate_sign(
    expr: sp.Expr, x: sp.Symbol, lo: sp.Expr, hi: sp.Expr
) -> tuple[bool, Any] | None:
    """Exact decision of ``expr >= 0`` on the open interval for a rational function of x.

    Returns (True, None), (False, point with expr(point) < 0), or None when it does not apply
    (not a rational function with rational coefficients, a pole inside the interval, ...).
    """
    try:
        num, den = sp.fraction(sp.cancel(sp.together(expr)))
        if not (num.is_polynomial(x) and den.is_polynomial(x)):
            return None
        p_num, p_den = sp.Poly(num, x), sp.Poly(den, x)
        if p_num.get_domain() not in (sp.ZZ, sp.QQ) or p_den.get_domain() not in (sp.ZZ, sp.QQ):
            return None
        if not (lo.is_Rational or lo == -sp.oo) or not (hi.is_Rational or hi == sp.oo):
            return None
        if p_num.is_zero:
            return True, None
        low = None if lo == -sp.oo else lo
        high = None if hi == sp.oo else hi

        def roots_inside(poly: sp.Poly) -> int:
            square_free = sp.Poly(sp.quo(poly, sp.gcd(poly, poly.diff(x))), x)
            if square_free.degree() <= 0:
                return 0
            count = square_free.count_roots(low, high)
            for end in (low, high):
                if end is not None and square_free.eval(end) == 0:
                    count -= 1
            return count

        if roots_inside(p_den):
            return None
        # the sign of expr can change only at real roots of num * den; one exact test point
        # in every gap between them decides the sign on the whole interval
        signs = []
        for t in _test_points(p_num * p_den, x, lo, hi):
            sign = _sign_number(expr.subs(x, t))
            if sign is None or sign == 0:
                return None
            if sign < 0:
                return False, t
            signs.append(sign)
        return (True, None) if signs else None
    except (sp.PolynomialError, ValueError, TypeError, NotImplementedError):
        return None


def _test_points(poly: sp.Poly, x: sp.Symbol, lo: sp.Expr, hi: sp.Expr) -> list[sp.Rational]:
    """Rational points strictly inside (lo, hi), one in every gap between the real roots."""
    kwargs = {}
    if lo.is_finite:
        kwargs["inf"] = lo
    if hi.is_finite:
        kwargs["sup"] = hi
    ends: list[tuple[sp.Rational, sp.Rational]] = []
    if poly.degree() > 0:
        square_free = sp.Poly(sp.quo(poly, sp.gcd(poly, poly.diff(x))), x)
        ends = [
            (sp.Rational(a), sp.Rational(b))
            for (a, b), _ in square_free.intervals(eps=sp.Rational(1, 10**6), **kwargs)
        ]
    ends.sort()
    cuts = [lo] + [e for pair in ends for e in pair] + [hi]
    points = []
    for a, b in zip(cuts[0::2], cuts[1::2], strict=False):
        if a == -sp.oo and b == sp.oo:
            t = sp.Integer(0)
        elif a == -sp.oo:
            t = b - 1
        elif b == sp.oo:
            t = a + 1
        else:
            if not a < b:
                continue
            t = (a + b) / 2
        if lo < t < hi:
            points.append(t)
    return points


# =============================================================================================
# natural domain and smoothness


def _scan(ctx: _Context) -> None:
    """Fill ctx's natural domain (box, half-spaces), smoothness flag and issues."""
    for _ in range(4):
        ctx._maps = None
        ctx._holds_cache = {}
        ctx.halfspaces, ctx.conditions, ctx.notes, ctx.issues = [], [], [], []
        ctx.smooth, ctx.domain_ok = True, True
        changed = False
        for node in sp.preorder_traversal(ctx.f):
            if not (node.free_symbols & set(ctx.vs)):
                continue
            if isinstance(node, _NONSMOOTH):
                ctx.smooth = False
                ctx.issues.append(f"{node} is not twice differentiable everywhere")
            elif isinstance(node, sp.log):
                changed |= _require_positive(ctx, node.args[0], node, defined_at_zero=False)
            elif isinstance(node, sp.Pow):
                base, exponent = node.args
                if exponent.free_symbols & set(ctx.vs):
                    changed |= _require_positive(ctx, base, node, defined_at_zero=False)
                elif exponent.is_Integer:
                    if exponent < 0 and not (
                        ctx.holds(base, "positive") or ctx.holds(base, "negative")
                    ):
                        ctx.domain_ok = False
                        ctx.issues.append(
                            f"{node} is undefined where {base} = 0, which may split the domain"
                        )
                else:
                    positive_power = bool(exponent.is_positive)
                    changed |= _require_positive(ctx, base, node, defined_at_zero=positive_power)
            elif isinstance(node, sp.Function) and not isinstance(node, _ENTIRE):
                ctx.smooth = False
                ctx.domain_ok = False
                ctx.issues.append(f"convexkit does not know where {node} is defined and smooth")
            elif not isinstance(node, (sp.Add, sp.Mul, sp.Symbol, sp.Function)):
                ctx.smooth = False
                ctx.domain_ok = False
                ctx.issues.append(f"{node} is not an arithmetic expression convexkit can analyse")
        if not changed:
            ctx.issues = list(dict.fromkeys(ctx.issues))
            return


def _require_positive(ctx: _Context, u: sp.Expr, node: sp.Expr, defined_at_zero: bool) -> bool:
    """Record that ``u > 0`` is needed; returns True when the box was shrunk."""
    if ctx.holds(u, "positive"):
        return False
    if ctx.holds(u, "nonnegative"):
        ctx.smooth = False
        if defined_at_zero:
            ctx.issues.append(f"{node} is not twice differentiable where {u} = 0")
        else:
            ctx.domain_ok = False
            ctx.issues.append(f"{node} is undefined where {u} = 0, which may split the domain")
        return False
    if ctx.is_affine(u) and not (u.free_symbols - set(ctx.vs)):
        free = sorted(u.free_symbols & set(ctx.vs), key=_natural_key)
        if len(free) == 1:
            (x,) = free
            a = sp.diff(u, x)
            root = sp.solve(u, x)[0]
            lo, hi = ctx.box[x]
            lo, hi = (sp.Max(lo, root), hi) if a > 0 else (lo, sp.Min(hi, root))
            if not lo < hi:
                raise invalid(
                    "domain",
                    {str(x): (ctx.box[x])},
                    f"an interval that meets the natural domain {u} > 0 of {node}",
                )
            ctx.box[x] = (lo, hi)
            return True
        ctx.halfspaces.append(u)
        ctx.notes.append(f"{node} needs {u} > 0, a half-space")
        return False
    ctx.domain_ok = False
    ctx.conditions.append(u)
    ctx.issues.append(f"{node} needs {u} > 0, and that region was not shown to be convex")
    return False


# =============================================================================================
# proofs that a symbolic matrix is positive semidefinite on the domain


@dataclass
class _Proof:
    ok: bool | None
    text: str
    point: tuple | None = None


def _blocks(h: sp.Matrix) -> list[list[int]]:
    n = h.rows
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        for j in range(i + 1, n):
            if not h[i, j].is_zero:
                parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return list(groups.values())


def _prove_psd(ctx: _Context, h: sp.Matrix, label: str = "the Hessian") -> _Proof:
    """Prove ``h`` positive semidefinite on the domain with all principal minors per block."""
    h = h.applyfunc(_clean)
    shown: list[str] = []
    for block in _blocks(h):
        k = len(block)
        if k > _MAX_MINOR_BLOCK:
            proof = _prove_psd_ldl(ctx, h.extract(block, block))
            if not proof.ok:
                return proof
            shown.append(proof.text)
            continue
        for size in range(1, k + 1):
            for subset in itertools.combinations(block, size):
                minor = h.extract(list(subset), list(subset))
                value = minor[0, 0] if size == 1 else _clean(_det_plain(minor))
                ok, point, how = ctx.decide_nonneg(value)
                name = _minor_name(ctx, subset, size, label)
                if ok is False:
                    return _Proof(False, f"{name} = {value} is negative somewhere ({how})", point)
                if ok is None:
                    return _Proof(None, f"could not show {name} = {value} >= 0 ({how})")
                if len(shown) < 3 and not value.is_number:
                    shown.append(f"{name} = {value} >= 0 ({how})")
    if len(ctx.vs) == 1:
        return _Proof(True, shown[0] if shown else f"{label} is a non-negative constant")
    text = f"every principal minor of {label} is >= 0 on the domain"
    if shown:
        text += ": " + "; ".join(shown)
    return _Proof(True, text)


def _det_plain(m: sp.Matrix) -> sp.Expr:
    """Determinant by cofactor expansion, without the simplification ``Matrix.det`` attempts
    at every step (which is slow on exponential entries); the caller cleans the result once."""
    k = m.rows
    if k == 1:
        return m[0, 0]
    if k == 2:
        return m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0]
    return sp.Add(
        *[
            (-1) ** j
            * m[0, j]
            * _det_plain(m.extract(list(range(1, k)), [c for c in range(k) if c != j]))
            for j in range(k)
            if not m[0, j].is_zero
        ]
    )


def _minor_name(ctx: _Context, subset: tuple[int, ...], size: int, label: str) -> str:
    if len(ctx.vs) == 1:
        return label
    names = ", ".join(str(ctx.vs[i]) for i in subset)
    if label == "the Hessian":
        if size == 1:
            return f"d^2f/d{ctx.vs[subset[0]]}^2"
        return f"the principal minor on ({names})"
    return f"the principal minor of {label} on ({names})"


def _prove_psd_ldl(ctx: _Context, h: sp.Matrix) -> _Proof:
    """Symbolic LDL^T: every pivot provably > 0 (the last may be >= 0)."""
    s = h.as_mutable()
    n = s.rows
    for k in range(n):
        pivot = _clean(s[k, k])
        last = k == n - 1
        if not (ctx.holds(pivot, "positive") or (last and ctx.holds(pivot, "nonnegative"))):
            return _Proof(
                None,
                f"a block of size {n} is too large for all principal minors, "
                f"and the LDL pivot {pivot} was not shown positive",
            )
        for i in range(k + 1, n):
            for j in range(k + 1, n):
                s[i, j] = sp.cancel(s[i, j] - s[i, k] * s[k, j] / pivot)
    return _Proof(True, f"a {n} x {n} block has provably positive LDL pivots")


# =============================================================================================
# witnesses


@dataclass
class _Witness:
    point: tuple
    direction: tuple | None
    curvature: Any
    chord: tuple | None
    text: str


def _numeric(ctx: _Context, expr: Any) -> Callable | None:
    if expr.free_symbols - set(ctx.vs):
        return None
    cleaned = expr.replace(sp.DiracDelta, lambda *a: sp.Integer(0))
    if isinstance(cleaned, sp.MatrixBase):
        cleaned = cleaned.tolist()
    try:
        return sp.lambdify(ctx.vs, cleaned, modules=["math"])
    except Exception:  # noqa: BLE001 - an expression lambdify cannot print is not sampled
        return None


def _evaluate(fn: Callable, point: Sequence[float]) -> Any:
    try:
        value = fn(*point)
    except (ValueError, ZeroDivisionError, OverflowError, TypeError):
        return None
    return value


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _exact_value(ctx: _Context, point: Sequence[sp.Rational]) -> sp.Expr | None:
    value = ctx.f.xreplace(dict(zip(ctx.vs, point, strict=True)))
    if value.has(sp.zoo, sp.nan, sp.oo, -sp.oo, sp.I) or value.free_symbols:
        return None
    return value


def _jensen_gap_positive(ctx: _Context, a: tuple, b: tuple, t: sp.Rational) -> tuple | None:
    """Exact check that f(t a + (1-t) b) > t f(a) + (1-t) f(b); returns the middle point."""
    middle = tuple(t * p + (1 - t) * q for p, q in zip(a, b, strict=True))
    if not all(ctx.inside(p) for p in (a, b, middle)):
        return None
    values = [_exact_value(ctx, p) for p in (a, b, middle)]
    if any(v is None for v in values):
        return None
    fa, fb, fm = values
    if _sign_number(fm - t * fa - (1 - t) * fb) == 1:
        return middle
    return None


def _verify_direction(
    ctx: _Context, h: sp.Matrix, point: Sequence[float], direction: Sequence[float]
) -> _Witness | None:
    """Round a numeric (point, direction) to rationals and check the witness exactly.

    Short rationals are tried first, so that the witness is easy to read.
    """
    top = max(abs(c) for c in direction)
    if top == 0:
        return None
    for digits in (3, 6, 12):
        p = tuple(_rational(c, digits) for c in point)
        d = tuple(_rational(c / top, min(digits, 4)) for c in direction)
        if ctx.inside(p) and any(d):
            witness = _verify_exact(ctx, h, p, d)
            if witness is not None:
                return witness
    return None


def _verify_exact(ctx: _Context, h: sp.Matrix, p: tuple, d: tuple) -> _Witness | None:
    hp = h.xreplace(dict(zip(ctx.vs, p, strict=True)))
    q = sp.expand(_quadratic_form([[hp[i, j] for j in range(h.cols)] for i in range(h.rows)], d))
    negative = _sign_number(q) == -1
    if not negative and ctx.smooth and ctx.domain_ok:
        # for a smooth function the witness sought is negative curvature at p; chords that
        # fail elsewhere are left to the chord search
        return None
    chord = None
    scale = max([sp.Integer(1)] + [abs(c) for c in p])
    for step in (
        sp.Rational(1, 10),
        sp.Rational(1, 100),
        sp.Rational(1, 10**3),
        sp.Rational(1, 10**4),
        sp.Rational(1, 10**6),
    ):
        hstep = step * scale
        a = tuple(c - hstep * e for c, e in zip(p, d, strict=True))
        b = tuple(c + hstep * e for c, e in zip(p, d, strict=True))
        if _jensen_gap_positive(ctx, a, b, sp.Rational(1, 2)) is not None:
            chord = (a, b, sp.Rational(1, 2))
            break
    if chord is None and not (negative and ctx.smooth and ctx.domain_ok):
        return None
    text = f"at x = {_fmt_point(p)} the direction d = {_fmt_point(d)} has"
    text += f" d^T H d = {_short(q)} < 0" if negative else " negative numeric curvature"
    if chord is not None:
        a, b, _ = chord
        text += (
            f"; on the chord from {_fmt_point(a)} to {_fmt_point(b)} the midpoint lies "
            "above the chord (Jensen's inequality fails, checked exactly)"
        )
    return _Witness(p, d if negative else None, q if negative else None, chord, text)


def _short(value: sp.Expr) -> str:
    if value.is_Rational and len(str(value)) <= 24:
        return str(value)
    return f"{float(value):.6g}"


def _search_witness(
    ctx: _Context,
    h: sp.Matrix,
    seeds: Iterable[tuple],
    samples: int = _SAMPLES,
    chords: bool = True,
) -> tuple[_Witness | None, str]:
    """Look for a point of negative curvature (or a failing chord), checked exactly."""
    if ctx.params:
        names = ", ".join(str(p) for p in ctx.params)
        return None, f"no witness search: the function depends on the parameters {names}"
    rng = random.Random(ctx.seed)
    candidates: list[tuple[float, tuple, list]] = []
    use_hessian = not h.has(sp.Derivative, sp.Subs)
    h_fn = _numeric(ctx, h) if use_hessian else None
    points = [tuple(float(c) for c in s) for s in seeds] + ctx.sample(rng, samples)
    if h_fn is not None:
        for point in points:
            value = _evaluate(h_fn, point)
            if value is None:
                continue
            try:
                matrix = [[float(value[i][j]) for j in range(h.cols)] for i in range(h.rows)]
            except (TypeError, ValueError):
                continue
            if not all(math.isfinite(v) for row in matrix for v in row):
                continue
            size = max(1.0, max(abs(v) for row in matrix for v in row))
            result = _ldl(matrix, tol=1e-9 * size)
            if not _ldl([[-v for v in row] for row in matrix], tol=1e-9 * size).psd:
                ctx.saw_positive_curvature = True
            if not result.psd:
                v = result.direction
                norm2 = sum(c * c for c in v)
                candidates.append((_quadratic_form(matrix, v) / norm2 / size, point, v))
        candidates.sort(key=lambda c: c[0])
        for _, point, v in candidates[:8]:
            witness = _verify_direction(ctx, h, point, v)
            if witness is not None:
                return witness, ""
    witness = _search_chords(ctx, rng, points) if chords else None
    if witness is not None:
        return witness, ""
    tried = len(points)
    return None, (
        f"no negative curvature or failing chord was found at {tried} sampled points "
        f"(seed {ctx.seed})"
    )


def _search_chords(ctx: _Context, rng: random.Random, points: list[tuple]) -> _Witness | None:
    f_fn = _numeric(ctx, ctx.f)
    if f_fn is None or len(points) < 2:
        return None
    values = [(_evaluate(f_fn, p), p) for p in points]
    values = [(v, p) for v, p in values if _finite(v)]
    tried = 0
    for _ in range(4 * len(values)):
        if tried > 60:
            break
        (fa, a), (fb, b) = rng.sample(values, 2)
        for t in (0.5, 0.25, 0.75):
            m = tuple(t * x + (1 - t) * y for x, y in zip(a, b, strict=True))
            fm = _evaluate(f_fn, m)
            if not _finite(fm):
                continue
            gap = fm - t * fa - (1 - t) * fb
            if gap > 1e-9 * (1 + abs(fa) + abs(fb)):
                tried += 1
                ra = tuple(_rational(c) for c in a)
                rb = tuple(_rational(c) for c in b)
                rt = sp.Rational(str(t))
                middle = _jensen_gap_positive(ctx, ra, rb, rt)
                if middle is not None:
                    text = (
                        f"Jensen's inequality fails: with x = {_fmt_point(ra)}, "
                        f"y = {_fmt_point(rb)} and t = {rt}, f(t x + (1-t) y) > "
                        "t f(x) + (1-t) f(y) (checked exactly)"
                    )
                    return _Witness(middle, None, None, (ra, rb, rt), text)
    return None


# =============================================================================================
# disciplined convex programming (composition rules)


@dataclass
class _Curv:
    kind: str  # "constant", "affine", "convex", "concave", "unknown"
    why: str = ""


_FLIP = {
    "convex": "concave",
    "concave": "convex",
    "affine": "affine",
    "constant": "constant",
    "unknown": "unknown",
}


def _dcp(ctx: _Context, e: sp.Expr) -> _Curv:
    vs = set(ctx.vs)
    if not (e.free_symbols & vs):
        return _Curv("constant")
    if isinstance(e, sp.Symbol):
        return _Curv("affine")
    if ctx.is_affine(e):
        return _Curv("affine")
    if isinstance(e, sp.Add):
        parts = [(_dcp(ctx, a), a) for a in e.args]
        for c, _ in parts:
            if c.kind == "unknown":
                return c
        kinds = {c.kind for c, _ in parts} - {"constant", "affine"}
        if not kinds:
            return _Curv("affine")
        if len(kinds) == 1:
            return _Curv(kinds.pop())
        concave = [a for c, a in parts if c.kind == "concave"]
        convex = [a for c, a in parts if c.kind == "convex"]
        return _Curv(
            "unknown",
            f"the sum mixes the convex term {convex[0]} with the concave term {concave[0]}",
        )
    if isinstance(e, sp.Mul):
        return _dcp_mul(ctx, e)
    if isinstance(e, sp.Pow):
        return _dcp_pow(ctx, e)
    if isinstance(e, sp.exp):
        return _compose(ctx, e, "convex", "increasing", e.args[0])
    if isinstance(e, sp.log):
        lse = _log_sum_exp(ctx, e.args[0])
        if lse is not None:
            return lse
        return _compose(ctx, e, "concave", "increasing", e.args[0])
    if isinstance(e, (sp.Abs, sp.cosh)):
        u = e.args[0]
        mono = _even_monotonicity(ctx, u)
        return _compose(ctx, e, "convex", mono, u)
    if isinstance(e, (sp.Max, sp.Min)):
        want = "convex" if isinstance(e, sp.Max) else "concave"
        for a in e.args:
            c = _dcp(ctx, a)
            if c.kind not in ("constant", "affine", want):
                return _Curv(
                    "unknown", c.why or f"{e} needs every argument {want}, but {a} is {c.kind}"
                )
        return _Curv(want)
    name = type(e).__name__
    return _Curv(
        "unknown",
        f"{e}: no composition rule for {name} (it is neither convex nor "
        "concave on all of its domain)",
    )


def _even_monotonicity(ctx: _Context, u: sp.Expr) -> str | None:
    if ctx.holds(u, "nonnegative"):
        return "increasing"
    if ctx.holds(u, "nonpositive"):
        return "decreasing"
    return None


def _compose(ctx: _Context, e: sp.Expr, curvature: str, mono: str | None, u: sp.Expr) -> _Curv:
    inner = _dcp(ctx, u)
    if inner.kind == "unknown":
        return inner
    if inner.kind in ("constant", "affine"):
        return _Curv(curvature)
    good = {
        ("convex", "increasing"): "convex",
        ("convex", "decreasing"): "concave",
        ("concave", "increasing"): "concave",
        ("concave", "decreasing"): "convex",
    }
    if mono is not None and good.get((curvature, mono)) == inner.kind:
        return _Curv(curvature)
    rule = f"{curvature} and {mono}" if mono else f"{curvature} but not monotone"
    return _Curv(
        "unknown",
        f"{e}: the outer function is {rule}, and its argument {u} is "
        f"{inner.kind}, which no composition rule covers",
    )


def _dcp_mul(ctx: _Context, e: sp.Mul) -> _Curv:
    vs = set(ctx.vs)
    const = [a for a in e.args if not (a.free_symbols & vs)]
    rest = [a for a in e.args if a.free_symbols & vs]
    c = sp.Mul(*const)
    if len(rest) == 1:
        inner = _dcp(ctx, rest[0])
        if inner.kind in ("constant", "affine", "unknown"):
            return inner
        if ctx.holds(c, "nonnegative"):
            return inner
        if ctx.holds(c, "nonpositive"):
            return _Curv(_FLIP[inner.kind])
        return _Curv("unknown", f"{e}: the sign of the factor {c} is not known")
    body = sp.Mul(*rest)
    entropy = _entropy(ctx, rest)
    if entropy is not None:
        return _scale(ctx, c, entropy, e)
    over = _quad_over_lin(ctx, rest)
    if over is not None:
        return _scale(ctx, c, over, e)
    return _Curv("unknown", f"{body}: a product of non-constant factors has no composition rule")


def _scale(ctx: _Context, c: sp.Expr, inner: _Curv, e: sp.Expr) -> _Curv:
    if ctx.holds(c, "nonnegative"):
        return inner
    if ctx.holds(c, "nonpositive"):
        return _Curv(_FLIP[inner.kind])
    return _Curv("unknown", f"{e}: the sign of the factor {c} is not known")


def _entropy(ctx: _Context, factors: list) -> _Curv | None:
    # u*log(u) is convex for affine u (on u > 0)
    if len(factors) != 2:
        return None
    for u, lg in (factors, factors[::-1]):
        if isinstance(lg, sp.log) and sp.simplify(lg.args[0] - u) == 0 and ctx.is_affine(u):
            return _Curv("convex")
    return None


def _quad_over_lin(ctx: _Context, factors: list) -> _Curv | None:
    # u**2 / v is convex for affine u and concave v > 0
    if len(factors) != 2:
        return None
    for num, den in (factors, factors[::-1]):
        if (
            isinstance(num, sp.Pow)
            and num.exp == 2
            and ctx.is_affine(num.base)
            and isinstance(den, sp.Pow)
            and den.exp == -1
            and ctx.holds(den.base, "positive")
            and _dcp(ctx, den.base).kind in ("affine", "concave", "constant")
        ):
            return _Curv("convex")
    return None


def _log_sum_exp(ctx: _Context, u: sp.Expr) -> _Curv | None:
    # log(sum_i c_i exp(u_i) + c_0) with c_i > 0, c_0 >= 0 is convex for convex u_i
    if not isinstance(u, sp.Add):
        return None
    has_exp = False
    for term in u.args:
        if not (term.free_symbols & set(ctx.vs)):
            if not ctx.holds(term, "nonnegative"):
                return None
            continue
        coeff, rest = term.as_independent(*ctx.vs, as_Add=False)
        if not isinstance(rest, sp.exp) or not ctx.holds(coeff, "positive"):
            return None
        inner = _dcp(ctx, rest.args[0])
        if inner.kind not in ("affine", "convex", "constant"):
            return _Curv(
                "unknown", f"log-sum-exp needs convex exponents, but {rest.args[0]} is {inner.kind}"
            )
        has_exp = True
    return _Curv("convex") if has_exp else None


def _dcp_pow(ctx: _Context, e: sp.Pow) -> _Curv:
    u, p = e.base, e.exp
    vs = set(ctx.vs)
    if p.free_symbols & vs:
        if u.is_number and ctx.holds(u, "positive"):
            mono = "increasing" if ctx.holds(u - 1, "nonnegative") else "decreasing"
            return _compose(ctx, e, "convex", mono, p)
        return _Curv(
            "unknown",
            f"{e}: a variable exponent over a base that is not a positive "
            "constant has no composition rule",
        )
    if not p.is_number or not p.is_real:
        return _Curv("unknown", f"{e}: the exponent {p} is not a known real number")
    if p == sp.Rational(1, 2) and _sum_of_squares(ctx, u):
        return _Curv("convex")
    if p.is_Integer and p > 0 and p % 2 == 0:
        return _compose(ctx, e, "convex", _even_monotonicity(ctx, u), u)
    if p >= 1:
        if ctx.holds(u, "nonnegative"):
            return _compose(ctx, e, "convex", "increasing", u)
        if p.is_Integer and ctx.holds(u, "nonpositive"):
            return _compose(ctx, e, "concave", "increasing", u)
        return _Curv(
            "unknown", f"{e}: the power {p} is convex only where {u} >= 0, which was not shown"
        )
    if p > 0:
        return _compose(ctx, e, "concave", "increasing", u)
    if p.is_Integer:
        if ctx.holds(u, "positive"):
            return _compose(ctx, e, "convex", "decreasing", u)
        if ctx.holds(u, "negative"):
            if p % 2 == 0:
                return _compose(ctx, e, "convex", "increasing", u)
            return _compose(ctx, e, "concave", "decreasing", u)
        return _Curv("unknown", f"{e}: a negative power needs its base {u} to keep one sign")
    return _compose(ctx, e, "convex", "decreasing", u)


def _sum_of_squares(ctx: _Context, u: sp.Expr) -> bool:
    """``u = c0 + sum_i c_i a_i**(2 m_i)`` with a_i affine, m_i >= 1, c_i >= 0, c0 >= 0.

    Then ``sqrt(u)`` is the Euclidean norm of (sqrt(c0), sqrt(c_i) |a_i|**m_i), a norm (convex,
    non-decreasing on the orthant) of convex non-negative functions, hence convex.
    """
    terms = u.args if isinstance(u, sp.Add) else (u,)
    found = False
    for term in terms:
        coeff, rest = term.as_independent(*ctx.vs, as_Add=False)
        if not ctx.holds(coeff, "nonnegative"):
            return False
        if rest == 1:
            continue
        if not (
            isinstance(rest, sp.Pow)
            and rest.exp.is_Integer
            and rest.exp >= 2
            and rest.exp % 2 == 0
            and ctx.is_affine(rest.base)
        ):
            return False
        found = True
    return found


# =============================================================================================
# mu and L


def _eigen_bounds_constant(h: list[list[Fraction]]) -> tuple[Any, Any, bool]:
    """(lower bound on lambda_min, upper bound on lambda_max, exact?) for a rational matrix."""
    n = len(h)
    if all(h[i][j] == 0 for i in range(n) for j in range(n) if i != j):
        diag = [h[i][i] for i in range(n)]
        return _frac_to_sympy(min(diag)), _frac_to_sympy(max(diag)), True
    if n == 2:
        a, b, c = (_frac_to_sympy(v) for v in (h[0][0], h[0][1], h[1][1]))
        mid, rad = (a + c) / 2, sp.sqrt(((a - c) / 2) ** 2 + b**2)
        return mid - rad, mid + rad, True
    floats = [[float(v) for v in row] for row in h]
    low, high = _float_eigen_range(floats)
    size = max(abs(v) for row in floats for v in row)
    (low_bound, low_exact), (high_bound, high_exact) = (
        _certify(h, low, size, lower=True),
        _certify(h, high, size, lower=False),
    )
    return low_bound, high_bound, low_exact and high_exact


def _certify(
    h: list[list[Fraction]], estimate: float, size: float, lower: bool
) -> tuple[Any, bool]:
    """A bound on lambda_min (lower) or lambda_max (upper), checked by exact elimination.

    First a short rational next to the float estimate: if ``H - c I`` (or ``c I - H``) is
    positive semidefinite and singular, c is the eigenvalue itself, exactly. Otherwise the
    estimate is moved outwards by a small slack until ``H - c I`` is positive definite, and c
    is returned as a float rounded outwards.
    """
    sign = 1 if lower else -1
    slack = 1e-9 * max(1.0, size)
    short = Fraction(estimate).limit_denominator(1000)
    if abs(float(short) - estimate) <= slack:
        result = _ldl(_shift(h, sign * short, sign))
        if result.psd:
            return _frac_to_sympy(short), result.rank < len(h)
    for _ in range(40):
        target = estimate - sign * slack
        bound = Fraction(target).limit_denominator(10**9)
        if _positive_definite(_shift(h, sign * bound, sign)):
            value = float(bound)
            return math.nextafter(value, -math.inf if lower else math.inf), False
        slack *= 4
    return None, False


def _eigen_samples(h_fn: Callable | None, points: list, n: int) -> tuple[list, list]:
    """Sampled (lambda_min, lambda_max) with float error allowances folded in.

    A float eigenvalue is accurate to about 1e-12 of the largest entry, so lambda_min is
    reported that much high and lambda_max that much low: ill-conditioned samples then do not
    suggest spurious small bounds.
    """
    lows: list[float] = []
    highs: list[float] = []
    if h_fn is None:
        return lows, highs
    for point in points:
        value = _evaluate(h_fn, point)
        if value is None:
            continue
        try:
            matrix = [[float(value[i][j]) for j in range(n)] for i in range(n)]
        except (TypeError, ValueError):
            continue
        if all(math.isfinite(v) for row in matrix for v in row):
            lo, hi = _float_eigen_range(matrix)
            slack = 1e-12 * n * max(abs(v) for row in matrix for v in row)
            lows.append(lo + slack)
            highs.append(hi - slack)
    return lows, highs


def _push(ctx: _Context, point: tuple[float, ...]) -> tuple[float, ...]:
    out = []
    for v, p in zip(ctx.vs, point, strict=True):
        lo, hi = ctx.box[v]
        if lo.is_finite and hi.is_finite:
            a, b = float(lo), float(hi)
            out.append(a + (p - a) / 10 if p - a < b - p else b - (b - p) / 10)
        elif lo.is_finite:
            a = float(lo)
            out.append(a + (p - a) * 10 if p - a > 1 else a + (p - a) / 10)
        elif hi.is_finite:
            b = float(hi)
            out.append(b - (b - p) * 10 if b - p > 1 else b - (b - p) / 10)
        else:
            out.append(p * 10)
    return tuple(out)


def _numerically_zero(ctx: _Context, h: sp.Matrix) -> bool:
    """Whether the Hessian vanishes at a few sample points (then it is worth simplifying)."""
    if ctx.params:
        return False
    h_fn = _numeric(ctx, h)
    points = ctx.sample(random.Random(ctx.seed + 3), 8)
    if h_fn is None or not points:
        return False
    for point in points:
        value = _evaluate(h_fn, point)
        if value is None:
            return False
        try:
            if any(abs(float(v)) > 1e-12 for row in value for v in row):
                return False
        except (TypeError, ValueError):
            return False
    return True


def _bounds_symbolic(ctx: _Context, h: sp.Matrix, known_low: Any, known_high: Any) -> tuple:
    """Proven (lower bound on lambda_min, upper bound on lambda_max) for a variable Hessian."""
    n = h.rows
    if not (h.free_symbols & set(ctx.vs)) and n <= 2:
        # constant (irrational or parametric) entries: closed-form eigenvalues
        if n == 1:
            return h[0, 0], h[0, 0]
        a, b, c = h[0, 0], h[0, 1], h[1, 1]
        mid, rad = (a + c) / 2, sp.sqrt(((a - c) / 2) ** 2 + b**2)
        return mid - rad, mid + rad
    samples = ctx.sample(random.Random(ctx.seed + 1), 120)
    h_fn = _numeric(ctx, h)
    lows, highs = _eigen_samples(h_fn, samples, n)
    # the same points pushed ten times further out (and ten times closer to finite ends):
    # a curvature that keeps growing there has no bound worth trying to prove
    far_lows, far_highs = _eigen_samples(h_fn, [_push(ctx, p) for p in samples], n)
    low_candidates: list[sp.Expr] = []
    high_candidates: list[sp.Expr] = []
    if lows and far_lows and min(far_lows) < min(lows) - 0.1 * abs(min(lows)) - 1e-12:
        lows = []
    if highs and far_highs and max(far_highs) > max(highs) + 0.1 * abs(max(highs)) + 1e-12:
        highs = []
    # float noise in the sampled eigenvalues: allow candidates a hair beyond them
    if lows and not (known_low == 0 and min(lows) <= 1e-9):
        low_candidates += _nice_below(min(lows) + 1e-9 * (1 + abs(min(lows))), 2)
    if highs and not (known_high == 0 and max(highs) >= -1e-9):
        high_candidates += _nice_above(max(highs) - 1e-9 * (1 + abs(max(highs))), 2)
    identity = sp.eye(n)
    low = known_low
    for m in low_candidates[:4]:
        if known_low is not None and _sign_number(m - known_low) != 1:
            continue
        if _prove_psd(ctx, h - m * identity, f"H - {m} I").ok:
            low = m
            break
    high = known_high
    for m in high_candidates[:4]:
        if known_high is not None and _sign_number(known_high - m) != 1:
            continue
        if _prove_psd(ctx, m * identity - h, f"{m} I - H").ok:
            high = m
            break
    return low, high


def _abs_bound(low: Any, high: Any) -> Any:
    if low is None or high is None:
        return None
    values = [sp.sympify(high), -sp.sympify(low)]
    if all(v.is_number for v in values):
        if any(isinstance(v, sp.Float) for v in values):
            return max(float(v) for v in values)
        return sp.Max(*values)
    return None


# =============================================================================================
# the entry point


def _normalise(obj: Any, variables: Any) -> tuple[sp.Expr, tuple, tuple]:
    if isinstance(obj, str):
        from .problem import Problem

        obj = Problem(obj)
    if hasattr(obj, "hessian") and hasattr(obj, "expr"):
        expr = sp.sympify(obj.expr)
        found = tuple(obj.variables)
    elif isinstance(obj, (sp.Basic, int, float, Fraction)) and not isinstance(obj, bool):
        expr = sp.sympify(obj)
        found = (
            tuple(sorted(expr.free_symbols, key=_natural_key)) if isinstance(expr, sp.Expr) else ()
        )
    else:
        raise invalid("problem_or_expr", obj, "a Problem, a SymPy expression or a string")
    if not isinstance(expr, sp.Expr) or isinstance(expr, sp.MatrixBase):
        raise invalid("problem_or_expr", obj, "a scalar expression (not a matrix or relation)")
    if isinstance(expr, sp.Float) or expr.has(sp.Float):
        expr = sp.nsimplify(expr, rational=True)
    if variables is not None:
        names = variables.replace(",", " ").split() if isinstance(variables, str) else variables
        by_name = {s.name: s for s in expr.free_symbols}
        chosen = []
        for v in names:
            symbol = by_name.get(v, sp.Symbol(v)) if isinstance(v, str) else v
            if not isinstance(symbol, sp.Symbol):
                raise invalid("variables", variables, "SymPy symbols or their names")
            chosen.append(symbol)
        found = tuple(chosen)
    params = tuple(sorted(expr.free_symbols - set(found), key=_natural_key))
    return expr, found, params


def _parse_domain(domain: Any, variables: tuple) -> dict:
    box: dict = {}
    for v in variables:
        lo, hi = -sp.oo, sp.oo
        if v.is_positive or v.is_nonnegative:
            lo = sp.Integer(0)
        if v.is_negative or v.is_nonpositive:
            hi = sp.Integer(0)
        box[v] = (lo, hi)
    if domain is None:
        return box
    given: dict = {}
    if hasattr(domain, "low") and hasattr(domain, "high") and hasattr(domain, "dim"):
        if domain.dim != len(variables):
            raise invalid(
                "domain",
                domain,
                f"a Box of dimension {len(variables)} (one interval "
                f"per variable {', '.join(map(str, variables))})",
            )
        for v, lo, hi in zip(variables, domain.low, domain.high, strict=True):
            given[v] = (lo, hi)
    elif isinstance(domain, dict):
        by_name = {v.name: v for v in variables}
        for key, value in domain.items():
            v = by_name.get(key) if isinstance(key, str) else key
            if v not in box:
                raise invalid(
                    "domain",
                    domain,
                    "keys that are variables of the function: " + ", ".join(map(str, variables)),
                )
            if isinstance(value, sp.Interval):
                given[v] = (value.start, value.end)
            elif isinstance(value, (tuple, list)) and len(value) == 2:
                given[v] = tuple(value)
            else:
                raise invalid(f"domain[{key!r}]", value, "a pair (low, high) or a sympy.Interval")
    else:
        raise invalid("domain", domain, "None, a dict of intervals per variable, or a sets.Box")
    for v, (lo, hi) in given.items():
        lo_n = _number(f"domain[{v}]", lo, (lo, hi))
        hi_n = _number(f"domain[{v}]", hi, (lo, hi))
        lo_n = -sp.oo if lo_n is sp.nan else lo_n
        hi_n = sp.oo if hi_n is sp.nan else hi_n
        if not lo_n < hi_n:
            raise invalid(f"domain[{v}]", (lo, hi), "an interval with low < high")
        old_lo, old_hi = box[v]
        box[v] = (sp.Max(old_lo, lo_n), sp.Min(old_hi, hi_n))
        if not box[v][0] < box[v][1]:
            raise invalid(
                f"domain[{v}]",
                (lo, hi),
                f"an interval that meets the range {v} allows by its assumptions",
            )
    return box


def _realify(expr: sp.Expr, symbols: tuple) -> tuple[sp.Expr, dict, dict]:
    forward, backward = {}, {}
    for s in symbols:
        if s.is_real:
            continue
        real = sp.Symbol(s.name, real=True)
        if real in expr.free_symbols:
            real = sp.Dummy(s.name, real=True)
        forward[s], backward[real] = real, s
    return expr.xreplace(forward), forward, backward


def convexity(
    problem_or_expr: Any,
    domain: Any = None,
    *,
    variables: Any = None,
    seed: int = 0,
) -> ConvexityReport:
    """Decide whether a function is convex, with a proof, a witness, or an honest "unknown".

    Parameters
    ----------
    problem_or_expr : Problem, sympy.Expr or str
        The function. A string is parsed safely by :class:`convexkit.Problem`; a Problem (or
        any object with ``expr``, ``variables`` and ``hessian``) gives its own variables.
    domain : None, dict or sets.Box, optional
        Where to study f. None: all of R^n, shrunk to the natural domain of f (``x > 0`` for
        ``log(x)``) and to the assumptions of the symbols (``positive=True``). A dict maps
        variables (symbols or names) to intervals ``(low, high)``, where ``None`` or ``inf``
        leaves a side open, or to a ``sympy.Interval``. A :class:`convexkit.sets.Box` gives one
        interval per variable, in order. Intervals are taken as open: for a function
        continuous up to the boundary, convexity on the open box and on its closure agree.
    variables : sequence of symbols or names, optional
        Variables of a bare expression (default: its free symbols in natural order, x2 before
        x10). Other free symbols are parameters: they are treated as unknown constants.
    seed : int
        Seed of the witness search and of the sampling that proposes mu and L.

    Returns
    -------
    ConvexityReport
        ``.curvature``, ``.reason``, ``.witness``, ``.mu``, ``.L`` and more.

    Examples
    --------
    >>> import sympy as sp
    >>> x, y = sp.symbols("x y")
    >>> convexity(x**2 + x*y + y**2).curvature
    'strongly convex'
    >>> convexity(sp.sin(x)).curvature
    'nonconvex'
    """
    seed = check_int("seed", seed)
    expr, vs, params = _normalise(problem_or_expr, variables)
    box = _parse_domain(domain, vs)
    quick = None if params or not vs else _quadratic_hessian(expr, vs)
    if quick is not None:
        # an expanded quadratic needs neither real assumptions nor a domain scan
        f, forward, backward = expr, {}, {}
    else:
        f, forward, backward = _realify(expr, vs + params)
    rvs = tuple(forward.get(v, v) for v in vs)
    rparams = tuple(forward.get(p, p) for p in params)
    rbox = {forward.get(v, v): b for v, b in box.items()}
    ctx = _Context(f, rvs, rparams, rbox, seed)

    def back(value: Any) -> Any:
        return value.xreplace(backward) if isinstance(value, sp.Basic) else value

    def report(curvature: str, reason: str, method: str, **fields: Any) -> ConvexityReport:
        for key in ("mu", "L"):
            if key in fields:
                fields[key] = back(fields[key])
        return ConvexityReport(
            curvature=curvature,
            reason=reason,
            expr=expr,
            variables=vs,
            domain=tuple(back(r) for r in ctx.relations()),
            method=method,
            **fields,
        )

    if not vs:
        return report(
            "affine",
            "f does not depend on any variable: a constant is affine",
            "",
            mu=sp.Integer(0),
            L=sp.Integer(0),
        )
    if quick is not None:
        return _constant_case(ctx, quick, report, _domain_words(ctx))
    _scan(ctx)
    where = _domain_words(ctx)
    h = _hessian(f, rvs)
    constant = not (h.free_symbols & set(rvs))
    rational = constant and all(v.is_Rational for v in h)
    if ctx.smooth and ctx.domain_ok and rational:
        return _constant_case(ctx, h, report, where)
    return _general_case(ctx, h, report, where)


def _domain_words(ctx: _Context) -> str:
    parts = [str(r) for r in ctx.relations()]
    space = "R" if len(ctx.vs) == 1 else f"R^{len(ctx.vs)}"
    text = " on " + (" and ".join(parts) if parts else "all of " + space)
    if ctx.notes:
        text += " (" + "; ".join(ctx.notes) + ")"
    return text


def _matrix_text(h: list[list[Fraction]]) -> str:
    return "[" + ", ".join("[" + ", ".join(str(v) for v in row) + "]" for row in h) + "]"


def _constant_case(ctx: _Context, h_sym: sp.Matrix, report: Callable, where: str) -> Any:
    n = h_sym.rows
    h = [[_to_fraction(h_sym[i, j]) for j in range(n)] for i in range(n)]
    shown = f"H = {_matrix_text(h)}" if n <= 4 else f"the {n} x {n} Hessian"
    if all(v == 0 for row in h for v in row):
        return report(
            "affine",
            f"The Hessian vanishes identically{where}: f is affine, hence "
            "both convex and concave (mu = 0, L = 0).",
            "exact-ldl",
            mu=sp.Integer(0),
            L=sp.Integer(0),
        )
    up = _ldl(h)
    down = _LDL(False, 0, [], None) if up.psd else _ldl(_shift(h, Fraction(0), -1))
    low, high, exact = _eigen_bounds_constant(h)
    kind = "exact" if exact else "certified numerically (exact LDL of H - mu I and L I - H)"
    lipschitz = _abs_bound(low, high)
    pivots = ", ".join(str(p) for p in up.pivots) if n <= 6 else "not shown"
    if up.psd:
        if up.rank == n:
            reason = (
                f"The Hessian is constant, {shown}. Exact LDL^T elimination gives {n} "
                f"pivots ({pivots}), all positive, so H is positive definite everywhere: "
                f"f is strongly convex{where}, with mu = lambda_min(H) and "
                f"L = lambda_max(H) ({kind})."
            )
            return report("strongly convex", reason, "exact-ldl", mu=low, L=high)
        reason = (
            f"The Hessian is constant, {shown}. Exact LDL^T elimination gives "
            f"{up.rank} positive pivot{'s' if up.rank != 1 else ''} ({pivots}) and leaves a "
            f"zero block of size {n - up.rank}, so H is "
            f"positive semidefinite but singular: f is convex{where}, not strongly "
            f"(mu = 0; L = lambda_max(H), {kind})."
        )
        return report("convex", reason, "exact-ldl", mu=sp.Integer(0), L=high)
    witness = _quadratic_witness(ctx, h, up.direction)
    trap = ""
    if n <= 8:
        minors = _leading_minors(h)
        if all(m >= 0 for m in minors):
            trap = (
                " Note that the leading principal minors "
                f"({', '.join(str(m) for m in minors)}) are all >= 0: that test alone "
                "does not prove semidefiniteness."
            )
    lead = (
        f"The Hessian is constant, {shown}. Exact LDL^T elimination finds the direction "
        f"d = {_fmt_point(witness.direction)} with d^T H d = {witness.curvature} < 0, so "
        "f curves downwards along d everywhere."
    )
    fields = dict(
        witness=witness.point, direction=witness.direction, chord=witness.chord, mu=low, L=lipschitz
    )
    if down.psd:
        reason = (
            f"{lead} Elimination of -H gives only non-negative pivots, so H is negative "
            f"semidefinite: f is concave{where} (mu = lambda_min(H), {kind}).{trap}"
        )
        return report("concave", reason, "exact-ldl", **fields)
    reason = (
        f"{lead} It is not concave either (-H is not positive semidefinite): f is "
        f"nonconvex{where}.{trap} {witness.text}"
    )
    return report("nonconvex", reason, "exact-ldl", **fields)


def _quadratic_witness(ctx: _Context, h: list[list[Fraction]], direction: list) -> _Witness:
    """Witness point and exact chord for a function with a constant Hessian."""
    scale = max(abs(c) for c in direction)
    d = [c / scale for c in direction]
    curvature = _quadratic_form(h, d)
    point = ctx.center()
    if point is None:
        point = tuple(sp.Integer(0) for _ in ctx.vs)
    step = sp.Integer(1)
    for v, p, di in zip(ctx.vs, point, d, strict=True):
        lo, hi = ctx.box[v]
        if di != 0:
            room = min(p - lo, hi - p) / abs(_frac_to_sympy(di))
            step = sp.Min(step, room / 2)
    step = sp.nsimplify(step)
    ds = tuple(_frac_to_sympy(c) for c in d)
    a = tuple(p - step * c for p, c in zip(point, ds, strict=True))
    b = tuple(p + step * c for p, c in zip(point, ds, strict=True))
    # for a quadratic, f(p) - (f(p - s d) + f(p + s d))/2 = -s^2 d^T H d / 2 exactly
    gap = -(step**2) * _frac_to_sympy(curvature) / 2
    text = (
        f"Witness: at x = {_fmt_point(point)}, the chord from {_fmt_point(a)} to "
        f"{_fmt_point(b)} passes below the midpoint value by {gap} (Jensen's inequality "
        "fails)."
    )
    return _Witness(point, ds, _frac_to_sympy(curvature), (a, b, sp.Rational(1, 2)), text)


def _general_case(ctx: _Context, h: sp.Matrix, report: Callable, where: str) -> Any:
    n = len(ctx.vs)
    notes: list[str] = []
    hessian_ok = ctx.smooth and ctx.domain_ok
    if hessian_ok:
        h = h.applyfunc(_clean)
    label = "f''" if n == 1 else "the Hessian"
    method = "second-derivative" if n == 1 else "principal-minors"
    if hessian_ok and not h.is_zero_matrix and _numerically_zero(ctx, h):
        h = h.applyfunc(sp.simplify)
    if hessian_ok and h.is_zero_matrix:
        return report(
            "affine",
            f"The Hessian vanishes identically{where}: f is affine.",
            "second-derivative",
            mu=sp.Integer(0),
            L=sp.Integer(0),
        )
    # a cheap numeric scan first: an exact witness settles "not convex" at once, and every
    # proof below is cross-checked by it
    witness, why_not = _search_witness(ctx, h, [], chords=False)
    dcp: _Curv | None = None
    if witness is None:
        seeds: list[tuple] = []
        if hessian_ok:
            proof = _prove_psd(ctx, h, label)
            if proof.ok:
                return _convex_by_hessian(ctx, h, proof, report, where, method)
            if proof.ok is False and proof.point is not None:
                seeds.append(proof.point)
            notes.append(f"second-order test: {proof.text}")
        else:
            notes.append("second-order test not applicable: " + "; ".join(ctx.issues))
        dcp = _dcp(ctx, ctx.f)
        if dcp.kind in ("convex", "affine", "constant"):
            return _dcp_report(ctx, h, dcp, report, where, "convex", None)
        witness, why_not = _search_witness(ctx, h, seeds)
    if hessian_ok and not ctx.saw_positive_curvature:
        concave = _prove_psd(ctx, -h, "-f''" if n == 1 else "-H")
        if concave.ok:
            low, high = _bounds_symbolic(ctx, h, None, sp.Integer(0))
            text = f"f is twice differentiable{where}, and {concave.text}: f is concave."
            fields: dict = {"mu": low, "L": _abs_bound(low, high)}
            if witness is not None:
                text += " " + witness.text[0].upper() + witness.text[1:] + "."
                fields.update(
                    witness=witness.point, direction=witness.direction, chord=witness.chord
                )
            return report("concave", text, method, **fields)
    dcp = dcp or _dcp(ctx, ctx.f)
    if dcp.kind == "concave":
        return _dcp_report(ctx, h, dcp, report, where, "concave", witness)
    if witness is not None:
        first = (
            f"{label} is not positive semidefinite everywhere"
            if hessian_ok
            else "the second-order test does not apply (" + "; ".join(ctx.issues) + ")"
        )
        text = f"f is nonconvex{where}: {first}; {witness.text}."
        return report(
            "nonconvex",
            text,
            "witness",
            witness=witness.point,
            direction=witness.direction,
            chord=witness.chord,
        )
    notes.append(f"composition rules: {dcp.why}")
    notes.append(f"witness search: {why_not}")
    return report(
        "unknown", "Neither a proof nor a witness was found. " + "; ".join(notes) + ".", ""
    )


def _convex_by_hessian(
    ctx: _Context, h: sp.Matrix, proof: _Proof, report: Callable, where: str, method: str
) -> Any:
    n = len(ctx.vs)
    low, high = _bounds_symbolic(ctx, h, sp.Integer(0), None)
    strongly = low is not None and ctx.holds(sp.sympify(low), "positive")
    text = (
        f"{'f' if n == 1 else 'The function'} is twice differentiable{where}, and "
        f"{proof.text}. So f is convex"
    )
    if strongly:
        text += (
            f"; moreover f'' - {low} >= 0 too"
            if n == 1
            else f"; moreover H - {low} I is positive semidefinite too"
        )
        text += f", so f is strongly convex with mu = {low}"
    else:
        text += ", with no proven positive lower bound on the curvature (mu = 0)"
    text += (
        f"; L = {high} bounds the curvature."
        if high is not None
        else "; no bound L on the curvature was proven."
    )
    return report("strongly convex" if strongly else "convex", text, method, mu=low, L=high)


def _contradiction(ctx: _Context, witness: _Witness, proof: _Proof, report: Callable) -> Any:
    text = (
        f"A symbolic step claimed that {proof.text}, but an exact check contradicts it: "
        f"{witness.text}. The exact witness wins: f is nonconvex."
    )
    return report(
        "nonconvex",
        text,
        "witness",
        witness=witness.point,
        direction=witness.direction,
        chord=witness.chord,
    )


def _dcp_report(
    ctx: _Context,
    h: sp.Matrix,
    dcp: _Curv,
    report: Callable,
    where: str,
    side: str,
    witness: _Witness | None,
) -> Any:
    rng = random.Random(ctx.seed + 2)
    if witness is None:
        witness = _search_chords(ctx, rng, ctx.sample(rng, _SAMPLES // 2))
    if witness is not None and side == "convex":
        return _contradiction(
            ctx, witness, _Proof(True, f"f is {side} by composition rules"), report
        )
    atoms = sorted(
        {
            "power" if isinstance(node, sp.Pow) else type(node).__name__
            for node in sp.preorder_traversal(ctx.f)
            if isinstance(node, (sp.exp, sp.log, sp.Abs, sp.Max, sp.Min, sp.Pow, sp.cosh))
        }
    )
    built = f"from the atoms {', '.join(atoms)} " if atoms else ""
    text = (
        f"The composition rules of disciplined convex programming show f is {side}{where}: "
        f"it is built {built}by sums, non-negative scaling and composition rules that keep "
        f"it {side} (convex non-decreasing of convex, convex of affine, ...)."
    )
    fields: dict = {}
    if side == "convex":
        text += " No positive lower bound on the curvature was proven (mu = 0)."
        fields["mu"] = sp.Integer(0)
    elif witness is not None:
        text += " " + witness.text[0].upper() + witness.text[1:] + "."
        fields.update(witness=witness.point, direction=witness.direction, chord=witness.chord)
    curvature = "affine" if dcp.kind in ("affine", "constant") else side
    return report(curvature, text, "dcp", **fields)
