"""Convex sets: membership, Euclidean projection, symbolic conditions, and convexity of unions.

Every set works on a batch of points ``x`` of shape (B, d) in any array namespace (NumPy, CuPy,
array-api-strict, on any of its devices): ``contains(x)`` gives a boolean array of shape (B,),
``project(x)`` the Euclidean projection of every row, of shape (B, d). A single point of shape
(d,) is accepted too and gives a 0-d answer and a (d,) projection. Projections are written with
array-API functions only, so the same code runs on every backend; projected gradient methods
call ``set.project(x)``.

The simple sets have closed-form projections:

- ``Ball(center, radius)``: scale ``x - center`` back to the sphere when it lies outside.
- ``Box(low, high)``: clip every coordinate (bounds may be infinite: ``Box(0, inf, dim=3)`` is
  the non-negative orthant).
- ``HalfSpace(a, b)``: ``{x : a.x <= b}``, move along ``a`` by the violation.
- ``Simplex(dim, total=1)``: ``{x >= 0 : sum(x) = total}`` by the sort-based algorithm: with the
  coordinates sorted in decreasing order, ``u``, the threshold is
  ``theta = max_k (u_1 + ... + u_k - total) / k`` and the projection is ``max(x - theta, 0)``.

``Intersection(*sets)`` projects with Dykstra's alternating projections, which converge to the
Euclidean projection onto the intersection (plain alternating projections only find *some*
point of it). ``Union(*sets)`` is not convex in general: :meth:`Union.is_convex` proves it
convex when one member contains all the others, and otherwise searches for two points of the
union whose convex combination lies outside, checked in exact rational arithmetic.

``condition(variables)`` gives the membership test as a SymPy relation, for the constraint and
KKT machinery; ``constraints(variables)`` gives the same as a tuple of relations.

Numbers given as floats are read as the decimals they print as (``0.1`` is ``1/10``) for the
exact checks and the symbolic conditions; the array code uses the floats themselves.
"""

from __future__ import annotations

import math
import numbers
import random
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import sympy as sp

from ..errors import check_int, check_real, invalid

__all__ = [
    "Ball",
    "Box",
    "ConvexSet",
    "HalfSpace",
    "Intersection",
    "Set",
    "SetConvexity",
    "Simplex",
    "Union",
]

_INF = math.inf
_CHECK_EVERY = 10


# ---------------------------------------------------------------------------------------------
# numbers: every parameter is kept three ways (exact Fraction, SymPy number, float)


def _exact(name: str, value: Any, *, allow_inf: bool = False) -> Fraction | float:
    """An exact rational for a finite real number; +-inf (as a float) where allowed."""
    if isinstance(value, bool):
        raise invalid(name, value, "a real number")
    if isinstance(value, sp.Basic):
        if value in (sp.oo, -sp.oo) and allow_inf:
            return _INF if value == sp.oo else -_INF
        if isinstance(value, sp.Rational):
            return Fraction(int(value.p), int(value.q))
        if value.is_real and value.is_finite:
            return Fraction(repr(float(value)))
        raise invalid(name, value, "a finite real number")
    if isinstance(value, Fraction):
        return value
    if isinstance(value, numbers.Integral):
        return Fraction(int(value))
    if isinstance(value, numbers.Real):
        number = float(value)
        if math.isnan(number):
            raise invalid(name, value, "a real number, not NaN")
        if math.isinf(number):
            if allow_inf:
                return number
            raise invalid(name, value, "a finite real number")
        return Fraction(repr(number))
    raise invalid(name, value, "a real number")


def _vector(name: str, value: Any, *, allow_inf: bool = False) -> tuple[Fraction | float, ...]:
    """A 1-D sequence of exact numbers from a list, tuple, NumPy or array-API array."""
    if isinstance(value, (numbers.Real, sp.Basic)) and not isinstance(value, sp.MatrixBase):
        raise invalid(name, value, "a 1-D sequence of real numbers")
    if isinstance(value, sp.MatrixBase):
        items = list(value)
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        from ..backend import to_numpy

        try:
            array = to_numpy(value)
        except Exception as err:  # noqa: BLE001 - any failure means it is not an array
            raise invalid(name, value, "a 1-D sequence of real numbers") from err
        if array.ndim != 1:
            raise invalid(name, value, f"a 1-D sequence of real numbers, not shape {array.shape}")
        items = array.tolist()
    if not items:
        raise invalid(name, value, "a non-empty 1-D sequence of real numbers")
    out = []
    for i, item in enumerate(items):
        if isinstance(item, (list, tuple)):
            raise invalid(name, value, "a 1-D sequence of real numbers (got a nested sequence)")
        out.append(_exact(f"{name}[{i}]", item, allow_inf=allow_inf))
    return tuple(out)


def _sym(value: Fraction | float) -> sp.Expr:
    if isinstance(value, float):
        return sp.oo if value > 0 else -sp.oo
    return sp.Rational(value.numerator, value.denominator)


def _flt(value: Fraction | float) -> float:
    return float(value)


def _to_fractions(point: Sequence[Any]) -> tuple[Fraction, ...]:
    return tuple(_exact("point", p) for p in point)


def _dot(a: Sequence[Fraction], b: Sequence[Fraction]) -> Fraction:
    return sum((x * y for x, y in zip(a, b, strict=True)), Fraction(0))


def _symbols(variables: Any, dim: int) -> tuple[sp.Symbol, ...]:
    if isinstance(variables, str):
        names = variables.replace(",", " ").split()
        found = tuple(sp.Symbol(n) for n in names)
    else:
        try:
            found = tuple(sp.Symbol(v) if isinstance(v, str) else v for v in variables)
        except TypeError as err:
            raise invalid("variables", variables, f"a sequence of {dim} SymPy symbols") from err
    if len(found) != dim or not all(isinstance(v, sp.Symbol) for v in found):
        raise invalid("variables", variables, f"a sequence of {dim} SymPy symbols (or names)")
    return found


# ---------------------------------------------------------------------------------------------
# array helpers: everything goes through the array namespace of the input


def _namespace(x: Any) -> Any:
    from ..backend import array_namespace

    return array_namespace(x)


def _device(x: Any) -> Any:
    from ..backend import device_of

    return device_of(x)


def _const(values: Any, like: Any, xp: Any) -> Any:
    """A constant (scalar or list of floats) in ``like``'s namespace, dtype and device."""
    from ..backend import asarray

    return asarray(values, xp, dtype=like.dtype, device=_device(like))


def _to_host_float(value: Any) -> float:
    from ..backend import to_numpy

    return float(to_numpy(value))


# ---------------------------------------------------------------------------------------------
# results


@dataclass(frozen=True)
class SetConvexity:
    """Whether a set is convex, why, and a witness when it is not.

    Attributes
    ----------
    convex : bool or None
        True when proved convex, False when a witness shows it is not, None when undecided.
    reason : str
        The argument in words.
    witness : tuple or None
        ``(a, b, t)``: two points of the set (tuples of exact rationals) and a weight ``t`` in
        (0, 1) such that ``t*a + (1-t)*b`` is not in the set.
    point : tuple or None
        That combination ``t*a + (1-t)*b``, outside the set.

    Truth value: ``bool(verdict)`` is True only for a proved convex set, so
    ``if s.is_convex(): ...`` never acts on an undecided case.
    """

    convex: bool | None
    reason: str
    witness: tuple | None = None
    point: tuple | None = None

    def __bool__(self) -> bool:
        return self.convex is True

    def __repr__(self) -> str:
        verdict = {True: "convex", False: "not convex", None: "unknown"}[self.convex]
        text = f"SetConvexity({verdict}: {self.reason}"
        if self.witness is not None:
            a, b, t = self.witness
            text += f"; witness a={_show(a)}, b={_show(b)}, t={t}, point={_show(self.point)}"
        return text + ")"


def _show(point: Sequence[Any] | None) -> str:
    if point is None:
        return "None"
    return "(" + ", ".join(str(p) for p in point) + ")"


# ---------------------------------------------------------------------------------------------
# the sets


class Set:
    """A closed subset of R^d with batched membership and projection (base class)."""

    dim: int

    # -- batched numerics ----------------------------------------------------------------------
    def _prepare(self, x: Any) -> tuple[Any, Any, bool]:
        if isinstance(x, (list, tuple)):
            import numpy as np

            x = np.asarray(x, dtype=float)
        xp = _namespace(x)
        shape = tuple(x.shape)
        if len(shape) not in (1, 2) or shape[-1] != self.dim:
            raise invalid(
                "x",
                f"<array of shape {shape}>",
                f"an array of shape (B, {self.dim}) "
                f"or ({self.dim},) for a set in dimension {self.dim}",
            )
        if not xp.isdtype(x.dtype, "real floating"):
            x = xp.astype(x, xp.float64)
        single = len(shape) == 1
        return xp, (x[None, :] if single else x), single

    def _tol(self, x: Any, xp: Any, tol: float | None) -> float:
        if tol is not None:
            return check_real("tol", tol, low=0.0)
        eps = float(xp.finfo(x.dtype).eps)
        return math.sqrt(eps) * (1.0 + self._scale())

    def _scale(self) -> float:
        return 1.0

    def contains(self, x: Any, tol: float | None = None) -> Any:
        """Membership of every row of ``x``.

        Parameters
        ----------
        x : array of shape (B, d) or (d,)
            Points in any array namespace.
        tol : float, optional
            Points within about ``tol`` (Euclidean distance) of the set count as members. The
            default is sqrt(machine epsilon of x's dtype) times (1 + the set's scale), so that
            projected points count as members in float32 as well as in float64.

        Returns
        -------
        array of bool, shape (B,) (or 0-d for a single point)
        """
        xp, batch, single = self._prepare(x)
        inside = self._contains(batch, xp, self._tol(batch, xp, tol))
        return inside[0] if single else inside

    def project(self, x: Any) -> Any:
        """Euclidean projection of every row of ``x`` onto the set (same shape as ``x``)."""
        xp, batch, single = self._prepare(x)
        out = self._project(batch, xp)
        return out[0, :] if single else out

    def _contains(self, x: Any, xp: Any, tol: float) -> Any:
        raise TypeError(f"{type(self).__name__} does not define membership")

    def _project(self, x: Any, xp: Any) -> Any:
        raise TypeError(f"{type(self).__name__} does not define a projection")

    # -- exact checks ---------------------------------------------------------------------------
    def contains_exact(self, point: Sequence[Any]) -> bool:
        """Membership of one point in exact rational arithmetic (floats read as their decimals)."""
        values = _to_fractions(point)
        if len(values) != self.dim:
            raise invalid("point", point, f"a point with {self.dim} coordinates")
        return self._contains_exact(values)

    def _contains_exact(self, point: tuple[Fraction, ...]) -> bool:
        raise TypeError(f"{type(self).__name__} has no exact membership test")

    def _interior_point(self) -> tuple[Fraction, ...]:
        """A point of the set, as central as cheaply possible (exact)."""
        raise TypeError(f"{type(self).__name__} has no interior point")

    def _sample_points(self, rng: random.Random, count: int) -> list[tuple[Fraction, ...]]:
        """Exact points of the set: extreme points first, then projections of random points."""
        import numpy as np

        center = [float(c) for c in self._interior_point()]
        scale = 1.0 + self._scale()
        draws = np.asarray(
            [[c + 3 * scale * rng.gauss(0.0, 1.0) for c in center] for _ in range(count)]
        )
        projected = self.project(draws).tolist()
        return [p for p in (self._rational_member(q) for q in projected) if p is not None]

    def _rational_member(self, point: Sequence[float]) -> tuple[Fraction, ...] | None:
        """A rational point of the set near ``point`` (pulled towards the interior if needed)."""
        inner = self._interior_point()
        base = tuple(Fraction(repr(float(p))) for p in point)
        for pull in (Fraction(0), Fraction(1, 10**9), Fraction(1, 10**6), Fraction(1, 1000)):
            candidate = tuple(b + pull * (c - b) for b, c in zip(base, inner, strict=True))
            if self._contains_exact(candidate):
                return candidate
        return None

    # -- symbolic -------------------------------------------------------------------------------
    def condition(self, variables: Any) -> sp.Basic:
        """Membership as a SymPy relation in ``variables`` (a sequence of d symbols or names)."""
        return sp.And(*self.constraints(variables))

    def constraints(self, variables: Any) -> tuple[sp.Basic, ...]:
        """Membership as a tuple of SymPy relations whose conjunction defines the set."""
        raise TypeError(f"{type(self).__name__} is not a conjunction of relations")

    def is_convex(self) -> SetConvexity:
        """Whether the set is convex (a :class:`SetConvexity` verdict)."""
        raise TypeError(f"{type(self).__name__} does not know whether it is convex")


class ConvexSet(Set):
    """A closed convex set: projection onto it is unique and non-expansive."""

    def is_convex(self) -> SetConvexity:
        """Always convex: a :class:`SetConvexity` with ``convex=True`` and the reason."""
        return SetConvexity(True, self._why_convex())

    def _why_convex(self) -> str:
        return f"{type(self).__name__} is convex"


class Ball(ConvexSet):
    """The closed Euclidean ball ``{x : ||x - center|| <= radius}``.

    Parameters
    ----------
    center : sequence of d real numbers
        The center.
    radius : real number >= 0
        The radius; 0 gives the single point ``center``.
    """

    def __init__(self, center: Any, radius: Any):
        self._center = _vector("center", center)
        self._radius = _exact("radius", radius)
        if self._radius < 0:
            raise invalid("radius", radius, "a real number >= 0")
        self.dim = len(self._center)

    @property
    def center(self) -> tuple[float, ...]:
        """The center as floats."""
        return tuple(float(c) for c in self._center)

    @property
    def radius(self) -> float:
        """The radius as a float."""
        return float(self._radius)

    def __repr__(self) -> str:
        return f"Ball(center={_show(self._center)}, radius={self._radius})"

    def _why_convex(self) -> str:
        return "a Euclidean ball is convex (the norm is convex and the ball is its sublevel set)"

    def _scale(self) -> float:
        return max(abs(float(c)) for c in self._center) + float(self._radius)

    def _contains(self, x: Any, xp: Any, tol: float) -> Any:
        diff = x - _const(list(self.center), x, xp)
        return xp.sqrt(xp.sum(diff * diff, axis=-1)) <= self.radius + tol

    def _project(self, x: Any, xp: Any) -> Any:
        center = _const(list(self.center), x, xp)
        if self._radius == 0:
            return xp.zeros_like(x) + center
        diff = x - center
        norm = xp.sqrt(xp.sum(diff * diff, axis=-1, keepdims=True))
        radius = _const(self.radius, x, xp)
        # r / max(|d|, r) is 1 inside the ball and r/|d| outside: no branch on values
        return center + diff * (radius / xp.maximum(norm, radius))

    def _contains_exact(self, point: tuple[Fraction, ...]) -> bool:
        diff = [p - c for p, c in zip(point, self._center, strict=True)]
        return _dot(diff, diff) <= self._radius**2

    def _interior_point(self) -> tuple[Fraction, ...]:
        return self._center

    def _sample_points(self, rng: random.Random, count: int) -> list[tuple[Fraction, ...]]:
        points = []
        for i in range(self.dim):
            for sign in (1, -1):
                points.append(
                    tuple(
                        c + (sign * self._radius if j == i else 0)
                        for j, c in enumerate(self._center)
                    )
                )
        return points + super()._sample_points(rng, count)

    def constraints(self, variables: Any) -> tuple[sp.Basic, ...]:
        """``(sum((v - c)**2) <= radius**2,)``."""
        xs = _symbols(variables, self.dim)
        lhs = sp.Add(*[(v - _sym(c)) ** 2 for v, c in zip(xs, self._center, strict=True)])
        return (sp.Le(lhs, _sym(self._radius) ** 2),)


class Box(ConvexSet):
    """The box ``{x : low <= x <= high}`` (bounds may be infinite).

    Parameters
    ----------
    low, high : sequences of d numbers, or scalars with ``dim``
        Lower and upper bounds, ``low <= high`` coordinate by coordinate; ``-inf``/``inf``
        leave a side open (``Box(0, math.inf, dim=3)`` is the non-negative orthant).
    dim : int, optional
        Dimension, needed when both bounds are scalars.
    """

    def __init__(self, low: Any, high: Any, dim: int | None = None):
        if dim is not None:
            dim = check_int("dim", dim, minimum=1)
        low_v = self._bounds("low", low, dim)
        high_v = self._bounds("high", high, dim)
        if len(low_v) == 1 and len(high_v) > 1:
            low_v = low_v * len(high_v)
        if len(high_v) == 1 and len(low_v) > 1:
            high_v = high_v * len(low_v)
        if len(low_v) != len(high_v):
            raise invalid("high", high, f"a vector of the same length as low ({len(low_v)})")
        for i, (lo, hi) in enumerate(zip(low_v, high_v, strict=True)):
            if lo > hi:
                raise invalid(
                    "low",
                    low,
                    f"low <= high coordinate by coordinate; low[{i}]="
                    f"{_sym(lo)} > high[{i}]={_sym(hi)}",
                )
            if lo == _INF or hi == -_INF:
                raise invalid(
                    "low" if lo == _INF else "high",
                    low if lo == _INF else high,
                    "bounds that leave the box non-empty (low < inf, high > -inf)",
                )
        self._low = low_v
        self._high = high_v
        self.dim = len(low_v)

    @staticmethod
    def _bounds(name: str, value: Any, dim: int | None) -> tuple[Fraction | float, ...]:
        if isinstance(value, (numbers.Real, sp.Basic)) and not isinstance(value, sp.MatrixBase):
            scalar = _exact(name, value, allow_inf=True)
            return (scalar,) * (dim or 1)
        vector = _vector(name, value, allow_inf=True)
        if dim is not None and len(vector) != dim:
            raise invalid(name, value, f"a vector of length dim={dim}")
        return vector

    @property
    def low(self) -> tuple[float, ...]:
        """Lower bounds as floats."""
        return tuple(float(v) for v in self._low)

    @property
    def high(self) -> tuple[float, ...]:
        """Upper bounds as floats."""
        return tuple(float(v) for v in self._high)

    def __repr__(self) -> str:
        return (
            f"Box(low={_show([_sym(v) for v in self._low])}, "
            f"high={_show([_sym(v) for v in self._high])})"
        )

    def _why_convex(self) -> str:
        return "a box is an intersection of half-spaces, hence convex"

    def _scale(self) -> float:
        finite = [abs(float(v)) for v in self._low + self._high if not isinstance(v, float)]
        return max(finite, default=0.0)

    def _contains(self, x: Any, xp: Any, tol: float) -> Any:
        low = _const(list(self.low), x, xp)
        high = _const(list(self.high), x, xp)
        return xp.all((x >= low - tol) & (x <= high + tol), axis=-1)

    def _project(self, x: Any, xp: Any) -> Any:
        low = _const(list(self.low), x, xp)
        high = _const(list(self.high), x, xp)
        return xp.minimum(xp.maximum(x, low), high)

    def _contains_exact(self, point: tuple[Fraction, ...]) -> bool:
        return all(lo <= p <= hi for p, lo, hi in zip(point, self._low, self._high, strict=True))

    def _interior_point(self) -> tuple[Fraction, ...]:
        out = []
        for lo, hi in zip(self._low, self._high, strict=True):
            finite_lo, finite_hi = not isinstance(lo, float), not isinstance(hi, float)
            if finite_lo and finite_hi:
                out.append((lo + hi) / 2)
            elif finite_lo:
                out.append(lo + 1)
            elif finite_hi:
                out.append(hi - 1)
            else:
                out.append(Fraction(0))
        return tuple(out)

    def _corner(self, bits: int) -> tuple[Fraction, ...]:
        inner = self._interior_point()
        out = []
        for i, (lo, hi) in enumerate(zip(self._low, self._high, strict=True)):
            bound = hi if (bits >> i) & 1 else lo
            # an infinite side contributes a far point on that side instead of a vertex
            far = inner[i] + (10 if bound == _INF else -10) * (1 + int(self._scale()))
            out.append(far if isinstance(bound, float) else bound)
        return tuple(out)

    def _sample_points(self, rng: random.Random, count: int) -> list[tuple[Fraction, ...]]:
        corners = 2**self.dim
        picks = range(corners) if corners <= 64 else (rng.randrange(corners) for _ in range(64))
        return [self._corner(b) for b in picks] + super()._sample_points(rng, count)

    def constraints(self, variables: Any) -> tuple[sp.Basic, ...]:
        """``low_i <= v_i`` and ``v_i <= high_i`` for every finite bound."""
        xs = _symbols(variables, self.dim)
        out: list[sp.Basic] = []
        for v, lo, hi in zip(xs, self._low, self._high, strict=True):
            if not isinstance(lo, float):
                out.append(sp.Ge(v, _sym(lo)))
            if not isinstance(hi, float):
                out.append(sp.Le(v, _sym(hi)))
        return tuple(out)


class HalfSpace(ConvexSet):
    """The closed half-space ``{x : a.x <= b}``.

    Parameters
    ----------
    a : sequence of d real numbers, not all zero
        The outward normal.
    b : real number
        The offset.
    """

    def __init__(self, a: Any, b: Any):
        self._a = _vector("a", a)
        if all(v == 0 for v in self._a):
            raise invalid("a", a, "a nonzero normal vector")
        self._b = _exact("b", b)
        self.dim = len(self._a)

    @property
    def a(self) -> tuple[float, ...]:
        """The normal as floats."""
        return tuple(float(v) for v in self._a)

    @property
    def b(self) -> float:
        """The offset as a float."""
        return float(self._b)

    def __repr__(self) -> str:
        return f"HalfSpace(a={_show(self._a)}, b={self._b})"

    def _why_convex(self) -> str:
        return "a half-space {x : a.x <= b} is convex (a sublevel set of a linear function)"

    def _scale(self) -> float:
        return abs(float(self._b)) / math.sqrt(float(_dot(self._a, self._a)))

    def _contains(self, x: Any, xp: Any, tol: float) -> Any:
        a = _const(list(self.a), x, xp)
        norm = math.sqrt(float(_dot(self._a, self._a)))
        return (xp.sum(x * a, axis=-1) - self.b) / norm <= tol

    def _project(self, x: Any, xp: Any) -> Any:
        a = _const(list(self.a), x, xp)
        excess = xp.sum(x * a, axis=-1, keepdims=True) - self.b
        excess = xp.maximum(excess, xp.zeros_like(excess))
        return x - excess * (a / float(_dot(self._a, self._a)))

    def _contains_exact(self, point: tuple[Fraction, ...]) -> bool:
        return _dot(self._a, point) <= self._b

    def _interior_point(self) -> tuple[Fraction, ...]:
        # the foot of the perpendicular from 0, moved one unit of a inwards
        shift = self._b / _dot(self._a, self._a) - 1
        return tuple(shift * v for v in self._a)

    def _sample_points(self, rng: random.Random, count: int) -> list[tuple[Fraction, ...]]:
        foot = tuple(self._b / _dot(self._a, self._a) * v for v in self._a)
        points = [foot]
        size = 10 * (1 + int(self._scale()))
        norm2 = _dot(self._a, self._a)
        for i in range(self.dim):
            # e_i minus its component along a: a direction within the boundary plane
            along = tuple(
                Fraction(int(j == i)) - self._a[i] * v / norm2 for j, v in enumerate(self._a)
            )
            if any(along):
                for sign in (size, -size):
                    points.append(tuple(f + sign * d for f, d in zip(foot, along, strict=True)))
        return points + super()._sample_points(rng, count)

    def constraints(self, variables: Any) -> tuple[sp.Basic, ...]:
        """``(a.v <= b,)``."""
        xs = _symbols(variables, self.dim)
        lhs = sp.Add(*[_sym(a) * v for a, v in zip(self._a, xs, strict=True)])
        return (sp.Le(lhs, _sym(self._b)),)


class Simplex(ConvexSet):
    """The scaled probability simplex ``{x : x_i >= 0, x_1 + ... + x_d = total}``.

    Parameters
    ----------
    dim : int >= 1
        Dimension d.
    total : real number > 0
        The common sum (1 for probability vectors).
    """

    def __init__(self, dim: int, total: Any = 1):
        self.dim = check_int("dim", dim, minimum=1)
        self._total = _exact("total", total)
        if self._total <= 0:
            raise invalid("total", total, "a real number > 0")

    @property
    def total(self) -> float:
        """The common sum as a float."""
        return float(self._total)

    def __repr__(self) -> str:
        return f"Simplex(dim={self.dim}, total={self._total})"

    def _why_convex(self) -> str:
        return "the simplex is the intersection of the orthant with a hyperplane, hence convex"

    def _scale(self) -> float:
        return float(self._total)

    def _contains(self, x: Any, xp: Any, tol: float) -> Any:
        total = xp.sum(x, axis=-1)
        on_plane = xp.abs(total - self.total) <= tol * math.sqrt(self.dim)
        return xp.all(x >= -tol, axis=-1) & on_plane

    def _project(self, x: Any, xp: Any) -> Any:
        # sort-based projection; theta = max_k (cumsum_k - total) / k needs no gather
        ordered = -xp.sort(-x, axis=-1)
        cumulative = getattr(xp, "cumulative_sum", None)
        sums = (
            cumulative(ordered, axis=-1) if cumulative is not None else xp.cumsum(ordered, axis=-1)
        )
        counts = xp.arange(1, self.dim + 1, dtype=x.dtype, device=_device(x))
        theta = xp.max((sums - self.total) / counts, axis=-1, keepdims=True)
        shifted = x - theta
        return xp.maximum(shifted, xp.zeros_like(shifted))

    def _contains_exact(self, point: tuple[Fraction, ...]) -> bool:
        return all(p >= 0 for p in point) and sum(point, Fraction(0)) == self._total

    def _interior_point(self) -> tuple[Fraction, ...]:
        return (self._total / self.dim,) * self.dim

    def _sample_points(self, rng: random.Random, count: int) -> list[tuple[Fraction, ...]]:
        vertices = [tuple(self._total * (i == j) for j in range(self.dim)) for i in range(self.dim)]
        return [tuple(Fraction(v) for v in p) for p in vertices] + super()._sample_points(
            rng, count
        )

    def _rational_member(self, point: Sequence[float]) -> tuple[Fraction, ...] | None:
        # floats rarely sum exactly to the total: fix the sum exactly, then clip to the orthant
        base = [max(Fraction(repr(float(p))), Fraction(0)) for p in point]
        mass = sum(base, Fraction(0))
        if mass == 0:
            return self._interior_point()
        return tuple(b * self._total / mass for b in base)

    def constraints(self, variables: Any) -> tuple[sp.Basic, ...]:
        """``v_i >= 0`` for every i, and ``Eq(sum(v), total)``."""
        xs = _symbols(variables, self.dim)
        return tuple(sp.Ge(v, 0) for v in xs) + (sp.Eq(sp.Add(*xs), _sym(self._total)),)


def _check_members(name: str, sets: tuple[Any, ...]) -> int:
    if not sets:
        raise invalid(name, sets, "at least one set")
    for s in sets:
        if not isinstance(s, Set):
            raise invalid(name, s, "convexkit sets (Ball, Box, HalfSpace, Simplex, ...)")
    dims = {s.dim for s in sets}
    if len(dims) != 1:
        raise invalid(name, sets, f"sets of one dimension (got dimensions {sorted(dims)})")
    return dims.pop()


class Intersection(ConvexSet):
    """The intersection of convex sets, projected onto by Dykstra's algorithm.

    Parameters
    ----------
    *sets : ConvexSet
        Convex sets of one dimension (a :class:`Union` is refused: it is not convex).
    tol : float
        Dykstra stops when neither the iterate nor any correction term moves by more than
        ``tol * (1 + scale)`` in a sweep (largest change over the batch; tested every ten
        sweeps).
    max_iter : int
        Cap on the sweeps; reaching it issues a ``RuntimeWarning`` (for an empty intersection
        it always does: the iteration has nowhere to converge).

    Attributes
    ----------
    sweeps : int
        Sweeps used by the most recent projection.

    Notes
    -----
    Dykstra's method keeps one correction term per set; unlike plain alternating projections
    it converges to the Euclidean projection onto the intersection, not only to some point in
    it (Boyle and Dykstra, 1986). Every sweep works on the whole batch at once.
    """

    def __init__(self, *sets: ConvexSet, tol: float = 1e-10, max_iter: int = 10_000):
        self.dim = _check_members("sets", sets)
        for s in sets:
            if not isinstance(s, ConvexSet):
                raise invalid("sets", s, "convex sets (a Union is not convex in general)")
        self.sets = tuple(sets)
        self.tol = check_real("tol", tol, low=0.0, low_open=True)
        self.max_iter = check_int("max_iter", max_iter, minimum=1)
        self.sweeps = 0

    def __repr__(self) -> str:
        return "Intersection(" + ", ".join(repr(s) for s in self.sets) + ")"

    def _why_convex(self) -> str:
        return "an intersection of convex sets is convex"

    def _scale(self) -> float:
        return max(s._scale() for s in self.sets)

    def _contains(self, x: Any, xp: Any, tol: float) -> Any:
        inside = self.sets[0]._contains(x, xp, tol)
        for s in self.sets[1:]:
            inside = inside & s._contains(x, xp, tol)
        return inside

    def _project(self, x: Any, xp: Any) -> Any:
        if len(self.sets) == 1:
            return self.sets[0]._project(x, xp)
        y = x
        corrections = [xp.zeros_like(x) for _ in self.sets]
        threshold = self.tol * (1.0 + self._scale() + _to_host_float(xp.max(xp.abs(x))))
        for sweep in range(1, self.max_iter + 1):
            # convergence is tested every few sweeps: each test syncs with the host
            check = sweep % _CHECK_EVERY == 0 or sweep == self.max_iter
            change = None
            for i, s in enumerate(self.sets):
                shifted = y + corrections[i]
                nxt = s._project(shifted, xp)
                update = shifted - nxt
                if check:
                    moved = xp.maximum(xp.abs(nxt - y), xp.abs(update - corrections[i]))
                    change = moved if change is None else xp.maximum(change, moved)
                corrections[i] = update
                y = nxt
            self.sweeps = sweep
            if check and _to_host_float(xp.max(change)) <= threshold:
                return y
        warnings.warn(
            f"Intersection.project did not converge in max_iter={self.max_iter} sweeps "
            f"(tol={self.tol}); the intersection may be empty or the sets nearly tangent",
            RuntimeWarning,
            stacklevel=3,
        )
        return y

    def _contains_exact(self, point: tuple[Fraction, ...]) -> bool:
        return all(s._contains_exact(point) for s in self.sets)

    def _interior_point(self) -> tuple[Fraction, ...]:
        for s in self.sets:
            candidate = s._interior_point()
            if self._contains_exact(candidate):
                return candidate
        import numpy as np

        start = np.asarray([float(c) for c in self.sets[0]._interior_point()])
        found = self._rational_member_plain(self.project(start).tolist())
        if found is None:
            raise invalid("sets", self.sets, "sets whose intersection is not empty")
        return found

    def _rational_member_plain(self, point: Sequence[float]) -> tuple[Fraction, ...] | None:
        candidate = tuple(Fraction(repr(float(p))) for p in point)
        return candidate if self._contains_exact(candidate) else None

    def _rational_member(self, point: Sequence[float]) -> tuple[Fraction, ...] | None:
        return self._rational_member_plain(point) or super()._rational_member(point)

    def constraints(self, variables: Any) -> tuple[sp.Basic, ...]:
        """The relations of every member, concatenated."""
        return tuple(r for s in self.sets for r in s.constraints(variables))


class Union(Set):
    """The union of sets: membership in any member; projection onto the nearest member.

    The projection onto a union is the nearest of the members' projections (ties go to the
    first member); it exists, but is not unique or non-expansive in general.
    """

    def __init__(self, *sets: Set):
        self.dim = _check_members("sets", sets)
        self.sets = tuple(sets)

    def __repr__(self) -> str:
        return "Union(" + ", ".join(repr(s) for s in self.sets) + ")"

    def _scale(self) -> float:
        return max(s._scale() for s in self.sets)

    def _contains(self, x: Any, xp: Any, tol: float) -> Any:
        inside = self.sets[0]._contains(x, xp, tol)
        for s in self.sets[1:]:
            inside = inside | s._contains(x, xp, tol)
        return inside

    def _project(self, x: Any, xp: Any) -> Any:
        best = self.sets[0]._project(x, xp)
        best_d = xp.sum((best - x) ** 2, axis=-1, keepdims=True)
        for s in self.sets[1:]:
            candidate = s._project(x, xp)
            dist = xp.sum((candidate - x) ** 2, axis=-1, keepdims=True)
            closer = dist < best_d
            best = xp.where(closer, candidate, best)
            best_d = xp.where(closer, dist, best_d)
        return best

    def _contains_exact(self, point: tuple[Fraction, ...]) -> bool:
        return any(s._contains_exact(point) for s in self.sets)

    def _interior_point(self) -> tuple[Fraction, ...]:
        return self.sets[0]._interior_point()

    def _sample_points(self, rng: random.Random, count: int) -> list[tuple[Fraction, ...]]:
        return [p for s in self.sets for p in s._sample_points(rng, count)]

    def condition(self, variables: Any) -> sp.Basic:
        """``Or`` of the members' conditions."""
        return sp.Or(*[s.condition(variables) for s in self.sets])

    def is_convex(self, seed: int = 0, points: int = 24) -> SetConvexity:
        """Prove the union convex, or find two of its points whose combination leaves it.

        Parameters
        ----------
        seed : int
            Seed of the random points tried besides the members' extreme points.
        points : int
            Random points per member.

        Returns
        -------
        SetConvexity
            ``convex=True`` when one member contains all the others (checked exactly with
            support functions); ``convex=False`` with ``witness=(a, b, t)`` when a convex
            combination of two member points lies outside every member (checked in exact
            rational arithmetic); otherwise ``convex=None``.
        """
        seed = check_int("seed", seed)
        points = check_int("points", points, minimum=0)
        for i, big in enumerate(self.sets):
            if all(j == i or _subset(s, big) for j, s in enumerate(self.sets)):
                if len(self.sets) == 1:
                    reason = "a union of one set is that set"
                    return SetConvexity(big.is_convex().convex, reason)
                verdict = big.is_convex()
                if verdict.convex:
                    return SetConvexity(
                        True,
                        f"member {i} ({big!r}) contains every other member, so the union "
                        f"equals it, and {verdict.reason}",
                    )
        rng = random.Random(seed)
        members = [s._sample_points(rng, points) for s in self.sets]
        weights = (Fraction(1, 2), Fraction(1, 3), Fraction(2, 3), Fraction(1, 10), Fraction(9, 10))
        for t in weights:
            for i, first in enumerate(members):
                for j, second in enumerate(members):
                    if j <= i:
                        continue
                    for a in first:
                        for b in second:
                            mix = tuple(t * p + (1 - t) * q for p, q in zip(a, b, strict=True))
                            if not self._contains_exact(mix):
                                return SetConvexity(
                                    False,
                                    f"a={_show(a)} lies in member {i} and b={_show(b)} in "
                                    f"member {j}, but t*a + (1-t)*b with t={t} is "
                                    f"{_show(mix)}, which lies in no member (exact arithmetic)",
                                    witness=(
                                        _sympy_point(a),
                                        _sympy_point(b),
                                        sp.Rational(t.numerator, t.denominator),
                                    ),
                                    point=_sympy_point(mix),
                                )
        return SetConvexity(
            None,
            "no member contains all the others, and no convex combination of the "
            f"{sum(len(m) for m in members)} sampled member points left the union",
        )


def _sympy_point(point: Iterable[Fraction]) -> tuple[sp.Rational, ...]:
    return tuple(sp.Rational(p.numerator, p.denominator) for p in point)


# ---------------------------------------------------------------------------------------------
# exact containment of one set in another, by support functions


def _support_at_most(s: Set, a: tuple[Fraction, ...], b: Fraction) -> bool | None:
    """True when max over s of a.x <= b (exact), False when not, None when not decided."""
    if isinstance(s, Ball):
        slack = b - _dot(a, s._center)
        return slack >= 0 and s._radius**2 * _dot(a, a) <= slack**2
    if isinstance(s, Box):
        total = Fraction(0)
        for ai, lo, hi in zip(a, s._low, s._high, strict=True):
            if ai == 0:
                continue
            bound = hi if ai > 0 else lo
            if isinstance(bound, float):
                return False
            total += ai * bound
        return total <= b
    if isinstance(s, Simplex):
        return s._total * max(a) <= b
    if isinstance(s, HalfSpace):
        # contained only in a half-space with a parallel, same-direction normal
        ratios = {ai / si for ai, si in zip(a, s._a, strict=True) if si != 0}
        parallel = all(ai == 0 for ai, si in zip(a, s._a, strict=True) if si == 0)
        if parallel and len(ratios) == 1:
            ratio = ratios.pop()
            return ratio > 0 and ratio * s._b <= b
        return False
    if isinstance(s, Union):
        verdicts = [_support_at_most(m, a, b) for m in s.sets]
        return (
            True
            if all(v is True for v in verdicts)
            else (False if any(v is False for v in verdicts) else None)
        )
    if isinstance(s, Intersection):
        return True if any(_support_at_most(m, a, b) is True for m in s.sets) else None
    return None


def _subset(inner: Set, outer: Set) -> bool:
    """True only when ``inner`` is proved (exactly) to lie in ``outer``."""
    if isinstance(outer, Intersection):
        return all(_subset(inner, m) for m in outer.sets)
    if isinstance(inner, Union):
        return all(_subset(m, outer) for m in inner.sets)
    if isinstance(inner, Ball) and inner._radius == 0:
        return outer._contains_exact(inner._center)
    if isinstance(outer, HalfSpace):
        return _support_at_most(inner, outer._a, outer._b) is True
    if isinstance(outer, Box):
        for i, (lo, hi) in enumerate(zip(outer._low, outer._high, strict=True)):
            unit = tuple(Fraction(int(j == i)) for j in range(outer.dim))
            if not isinstance(hi, float) and _support_at_most(inner, unit, hi) is not True:
                return False
            if (
                not isinstance(lo, float)
                and _support_at_most(inner, tuple(-u for u in unit), -lo) is not True
            ):
                return False
        return True
    if isinstance(outer, Ball):
        if isinstance(inner, Ball):
            diff = [p - c for p, c in zip(inner._center, outer._center, strict=True)]
            slack = outer._radius - inner._radius
            return slack >= 0 and _dot(diff, diff) <= slack**2
        farthest = _max_sq_distance(inner, outer._center)
        return farthest is not None and farthest <= outer._radius**2
    if isinstance(outer, Simplex):
        return isinstance(inner, Simplex) and inner._total == outer._total
    if isinstance(outer, Union):
        return any(_subset(inner, m) for m in outer.sets)
    return False


def _max_sq_distance(s: Set, center: tuple[Fraction, ...]) -> Fraction | None:
    """Exact max over s of ||x - center||^2 for a bounded box or a simplex, else None."""
    if isinstance(s, Box):
        total = Fraction(0)
        for lo, hi, c in zip(s._low, s._high, center, strict=True):
            if isinstance(lo, float) or isinstance(hi, float):
                return None
            total += max((lo - c) ** 2, (hi - c) ** 2)
        return total
    if isinstance(s, Simplex):
        return max(
            sum(((s._total if j == i else 0) - c) ** 2 for j, c in enumerate(center))
            for i in range(s.dim)
        )
    return None
