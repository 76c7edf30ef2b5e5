"""A small array namespace over SymPy scalars.

Optimizer update rules are written once against an array namespace ``xp``. Given SymPy
symbols instead of arrays, :func:`convexkit.backend.array_namespace` returns this module, so
the same update code yields its exact iteration map. Only elementwise operations are offered:
an update rule that needs more (reductions, reshapes across the batch) is not a linear
iteration on the scalar model and has no symbolic form here.
"""

from __future__ import annotations

from typing import Any

import sympy as sp

__name__ = "convexkit.symbolic.xp"  # noqa: A001 - read by backend.namespace_name

float64 = float32 = float16 = None  # dtypes carry no meaning for exact arithmetic
pi = sp.pi
e = sp.E
inf = sp.oo


def asarray(value: Any, dtype: Any = None, device: Any = None) -> sp.Expr:
    """Return ``value`` as a SymPy expression (dtype and device are ignored)."""
    return sp.sympify(value) if not isinstance(value, sp.Basic) else value


def sqrt(x: Any) -> sp.Expr:
    return sp.sqrt(x)


def abs(x: Any) -> sp.Expr:  # noqa: A001 - namespace API name
    return sp.Abs(x)


def sign(x: Any) -> sp.Expr:
    return sp.sign(x)


def exp(x: Any) -> sp.Expr:
    return sp.exp(x)


def log(x: Any) -> sp.Expr:
    return sp.log(x)


def square(x: Any) -> sp.Expr:
    return x**2


def maximum(a: Any, b: Any) -> sp.Expr:
    return sp.Max(a, b)


def minimum(a: Any, b: Any) -> sp.Expr:
    return sp.Min(a, b)


def where(condition: Any, a: Any, b: Any) -> sp.Expr:
    return sp.Piecewise((a, condition), (b, True))


def zeros_like(x: Any, dtype: Any = None) -> sp.Expr:
    return sp.Integer(0)


def ones_like(x: Any, dtype: Any = None) -> sp.Expr:
    return sp.Integer(1)


def full_like(x: Any, fill_value: Any, dtype: Any = None) -> sp.Expr:
    return sp.sympify(fill_value)


def isfinite(x: Any) -> sp.Expr:
    return sp.true


def astype(x: Any, dtype: Any, copy: bool = True) -> sp.Expr:
    return x
