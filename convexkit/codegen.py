"""SymPy to array code: ``lambdify`` for any array namespace, and batched oracles.

:func:`lambdify` prints a SymPy expression, matrix, array, or a tuple of them into Python
source that calls only functions of the array API standard on a namespace ``xp`` (NumPy,
CuPy, array-api-strict, ...), compiles it, and caches the result per (expression, arguments,
namespace). :func:`oracle` builds on it: value, gradient and Hessian of a problem, evaluated on
a whole batch of points at once.

How expressions become code
---------------------------
* Constant sub-expressions (``pi``, ``sqrt(2)``, ``exp(3)``) are evaluated once, in float64,
  and printed as Python float literals. In arithmetic a Python float is a *weak* scalar in
  NumPy 2 and in the array API standard, so float32 inputs stay float32. Where a constant is
  the argument of a function (``xp.maximum(x, 0)``, a branch of ``xp.where``) it becomes a
  0-d array of the inputs' dtype on their device, made once per call.
* Common sub-expressions are shared through :func:`sympy.cse`, across all outputs of one
  function (value and gradient share their work in :meth:`Oracle.value_and_grad`).
* Integer powers are multiplications (``x**5`` is ``x2 = x*x; x4 = x2*x2; x4*x``); half-integer
  powers use ``xp.sqrt``. Piecewise becomes nested ``xp.where``, Max/Min ``xp.maximum`` and
  ``xp.minimum``, Heaviside a ``xp.where`` with its value at 0 (1/2 unless given).
* DiracDelta (the derivative of Heaviside and sign) evaluates to 0 away from its support and
  to nan on it: a distribution has no value there, and nan makes that visible.
* ``erf`` and ``erfc`` are not in the array API standard. They are computed from W. J. Cody's
  rational Chebyshev approximations (Math. Comp. 23, 1969, 631-638), written with standard
  functions only, so every namespace gives the same numbers (within a few float64 ulps of
  ``scipy.special.erf``). No SciPy call is made, so CuPy and array-api-strict work alike.
* Anything else (gamma, Bessel functions, unevaluated derivatives, complex constants) is
  refused with an error naming the sub-expression.

Layout of the results
---------------------
Inputs broadcast against each other over their batch axes; a scalar output has the batch
shape, an m x n Matrix gives batch + (m, n), a SymPy Array of shape s gives batch + s. Constant
entries are broadcast to the batch shape like every other entry.

On NumPy the generated kernel runs over chunks of a few thousand points, reading each chunk's
vector arguments transposed into contiguous rows and writing rows of a small buffer that is
copied back once: all temporaries stay in cache, which makes a generated gradient over 10^6
points faster than the same formula written with whole-array NumPy operations. Other
namespaces (CuPy, array-api-strict) evaluate the whole batch at once and assign each entry
into a preallocated result (``out[..., k] = entry``), or, where arrays are immutable,
``xp.stack`` the entries.
"""

from __future__ import annotations

import itertools
import keyword
import linecache
import math
import numbers
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import array_api_compat
import numpy as np
import sympy as sp
from sympy.codegen import cfunctions
from sympy.core.relational import Relational
from sympy.functions.elementary.piecewise import ExprCondPair
from sympy.logic.boolalg import And, BooleanFalse, BooleanTrue, Not, Or, Xor
from sympy.printing.pycode import PythonCodePrinter

from .backend import device_of, namespace_name, resolve_dtype, resolve_namespace
from .errors import check_choice, invalid

__all__ = [
    "ArrayPrinter",
    "CompiledFunction",
    "Oracle",
    "cache_info",
    "clear_cache",
    "lambdify",
    "oracle",
]

# -- what can be printed -------------------------------------------------------------------

# SymPy class name -> array API function of one argument
_UNARY: dict[str, str] = {
    "exp": "exp",
    "log": "log",
    "sin": "sin",
    "cos": "cos",
    "tan": "tan",
    "asin": "asin",
    "acos": "acos",
    "atan": "atan",
    "sinh": "sinh",
    "cosh": "cosh",
    "tanh": "tanh",
    "asinh": "asinh",
    "acosh": "acosh",
    "atanh": "atanh",
    "Abs": "abs",
    "sign": "sign",
    "floor": "floor",
    "ceiling": "ceil",
    "log1p": "log1p",
    "expm1": "expm1",
    "log2": "log2",
    "log10": "log10",
    "Sqrt": "sqrt",
}
# f(x) = 1 / g(x)
_RECIPROCAL: dict[str, str] = {
    "sec": "cos",
    "csc": "sin",
    "cot": "tan",
    "sech": "cosh",
    "csch": "sinh",
    "coth": "tanh",
}
# f(x) = g(1 / x), SymPy's conventions for real arguments
_OF_RECIPROCAL: dict[str, str] = {
    "asec": "acos",
    "acsc": "asin",
    "acot": "atan",
    "asech": "acosh",
    "acsch": "asinh",
    "acoth": "atanh",
}
_BINARY: dict[str, str] = {"atan2": "atan2", "hypot": "hypot"}
_SPECIAL = ("Max", "Min", "Heaviside", "DiracDelta", "erf", "erfc", "exp2", "Mod", "Piecewise")

_FUNCTION_CLASSES: dict[str, type] = {}
for _name in (*_UNARY, *_RECIPROCAL, *_OF_RECIPROCAL, *_BINARY, *_SPECIAL):
    _FUNCTION_CLASSES[_name] = getattr(sp, _name, None) or getattr(cfunctions, _name)
_ALLOWED_TYPES = frozenset(_FUNCTION_CLASSES.values()) | {
    sp.Add,
    sp.Mul,
    sp.Pow,
    ExprCondPair,
    And,
    Or,
    Not,
    Xor,
}
_SUPPORTED_TEXT = (
    "an expression built from numbers, symbols, +, -, *, /, ** and "
    + ", ".join(sorted(_FUNCTION_CLASSES))
    + " (with relations, And, Or, Not in Piecewise conditions)"
)

_MAX_CHAIN_POWER = 64  # beyond this, x**n is one pow call rather than a chain of squarings

# Cody's coefficients (netlib specfun, CALERF), IEEE double constants.
_ERF_A = (3.16112374387056560, 113.864154151050156, 377.485237685302021, 3209.37758913846947)
_ERF_A4 = 0.185777706184603153
_ERF_B = (23.6012909523441209, 244.024637934444173, 1282.61652607737228, 2844.23683343917062)
_ERF_C = (
    0.564188496988670089,
    8.88314979438837594,
    66.1191906371416295,
    298.635138197400131,
    881.952221241769090,
    1712.04761263407058,
    2051.07837782607147,
    1230.33935479799725,
)
_ERF_C8 = 2.15311535474403846e-8
_ERF_D = (
    15.7449261107098347,
    117.693950891312499,
    537.181101862009858,
    1621.38957456669019,
    3290.79923573345963,
    4362.61909014324716,
    3439.36767414372164,
    1230.33935480374942,
)
_ERF_P = (
    0.305326634961232344,
    0.360344899949804439,
    0.125781726111229246,
    0.0160837851487422766,
    6.58749161529837803e-4,
)
_ERF_P5 = 0.0163153871373020978
_ERF_Q = (
    2.56852019228982242,
    1.87295284992346047,
    0.527905102951428412,
    0.0605183413124413191,
    0.00233520497626869185,
)


def _horner(var: str, lead: str, coefficients: Sequence[float]) -> str:
    """Source of ((lead*var + c0)*var + c1)*var + ... + c_last."""
    code = lead
    for c in coefficients[:-1]:
        code = f"({code} + {c!r})*{var}"
    return f"({code} + {coefficients[-1]!r})"


def _erf_helpers() -> str:
    small_num = _horner("_s", f"{_ERF_A4!r}*_s", _ERF_A)
    small_den = _horner("_s", "_s", _ERF_B)
    mid_num = _horner("_y", f"{_ERF_C8!r}*_y", _ERF_C)
    mid_den = _horner("_y", "_y", _ERF_D)
    tail_num = _horner("_r", f"{_ERF_P5!r}*_r", _ERF_P)
    tail_den = _horner("_r", "_r", _ERF_Q)
    return f"""
def _erf_small(_x):
    # erf(x) for |x| <= 0.46875; larger |x| are clipped, their result is not used
    _x = xp.maximum(xp.minimum(_x, xp.full_like(_x, 0.5)), xp.full_like(_x, -0.5))
    _s = _x*_x
    return _x*{small_num}/{small_den}


def _erfc_abs(_y):
    # erfc(|x|) for |x| > 0.46875; from 28 on it is 0 even among float64 subnormals
    _y = xp.minimum(_y, xp.full_like(_y, 28.0))
    _mid = {mid_num}/{mid_den}
    _z = xp.maximum(_y, xp.full_like(_y, 4.0))
    _r = 1.0/(_z*_z)
    _tail = (0.56418958354775628695 - _r*{tail_num}/{tail_den})/_z
    _q = xp.where(_y <= 4.0, _mid, _tail)
    # exp(-y*y) split in two factors keeps its relative accuracy
    _t = xp.trunc(_y*16.0)/16.0
    return xp.exp(-_t*_t)*xp.exp(-(_y - _t)*(_y + _t))*_q


def _erf(_x):
    _y = xp.abs(_x)
    _c = _erfc_abs(_y)
    return xp.where(_y <= 0.46875, _erf_small(_x), xp.sign(_x)*((0.5 - _c) + 0.5))


def _erfc(_x):
    _y = xp.abs(_x)
    _c = _erfc_abs(_y)
    _big = xp.where(_x < 0.0, 2.0 - _c, _c)
    return xp.where(_y <= 0.46875, 1.0 - _erf_small(_x), _big)
"""


# -- constants and validation --------------------------------------------------------------


def _float_of(node: sp.Expr) -> float:
    """The real float value of a constant SymPy expression, or an error naming it."""
    if node is sp.nan:
        return math.nan
    if node.has(cfunctions.Sqrt):  # the only printed function that evalf leaves alone
        node = node.replace(cfunctions.Sqrt, sp.sqrt)
    value = node.evalf(20)
    if value in (sp.oo, -sp.oo):
        return float(value)
    if value.is_real is not True or not value.is_number:
        raise invalid(
            "expr sub-expression", node, "real constants (this one is complex or undefined)"
        )
    return float(value)


def _fold_constants(expr: sp.Basic) -> sp.Basic:
    """Replace every maximal constant sub-expression that is not a plain number by a Float."""
    found: dict[sp.Basic, sp.Basic] = {}
    seen: set[sp.Basic] = set()
    stack = [expr]
    while stack:
        node = stack.pop()
        if node in seen or isinstance(node, sp.Number):
            continue
        seen.add(node)
        if isinstance(node, sp.Expr) and not node.free_symbols:
            found[node] = sp.Float(_float_of(node))
            continue
        stack.extend(node.args)
    return expr.xreplace(found) if found else expr


def _check_supported(expr: sp.Basic) -> None:
    seen: set[sp.Basic] = set()
    stack = [expr]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        kind = type(node)
        if kind in _ALLOWED_TYPES or isinstance(
            node, sp.Symbol | sp.Number | Relational | BooleanTrue | BooleanFalse
        ):
            stack.extend(node.args)
            continue
        raise invalid("expr sub-expression", node, _SUPPORTED_TEXT)


# -- the printer ---------------------------------------------------------------------------


def _literal(value: float) -> str:
    if math.isnan(value):
        return "xp.nan"
    if math.isinf(value):
        return "xp.inf" if value > 0 else "(-xp.inf)"
    return repr(float(value))


class ArrayPrinter(PythonCodePrinter):
    """Prints SymPy expressions as calls of array API functions on a namespace ``xp``.

    The printer is stateful: printing one expression may need auxiliary statements (a
    temporary for a power's base, a 0-d constant in the inputs' dtype); they are collected in
    :attr:`pending` and :attr:`constants` for the code generator to place before the statement
    that uses them.

    Parameters
    ----------
    names : Mapping[sympy.Symbol, str]
        The identifier of every symbol that may occur (arguments and temporaries).
    """

    printmethod = "_convexkit_array_code"
    _kf: dict[str, str] = {}
    _kc: dict[str, str] = {}

    def __init__(self, names: Mapping[sp.Symbol, str]):
        super().__init__({"strict": True, "fully_qualified_modules": True})
        self._names = dict(names)
        self.pending: list[str] = []
        self.constants: dict[str, str] = {}
        self.helpers: set[str] = set()
        self._power_memo: dict[tuple[str, int], str] = {}
        self._temporary_of: dict[str, str] = {}
        self._counter = itertools.count()

    # -- bookkeeping
    def take_pending(self) -> list[str]:
        """Return and forget the statements that must precede the last printed code."""
        lines, self.pending = self.pending, []
        return lines

    def _temporary(self, code: str) -> str:
        """A name bound (by a pending statement) to the value of ``code``."""
        name = self._temporary_of.get(code)
        if name is None:
            name = f"_p{next(self._counter)}"
            self.pending.append(f"{name} = {code}")
            self._temporary_of[code] = name
        return name

    def constant(self, value: float) -> str:
        """Name of a 0-d array holding ``value`` in the inputs' dtype, on their device."""
        literal = _literal(value)
        name = self.constants.get(literal)
        if name is None:
            name = f"_c{len(self.constants)}"
            self.constants[literal] = name
        return name

    def _name_of(self, expr: sp.Basic) -> str:
        """An identifier holding ``expr``: its own for symbols, else a new temporary."""
        if isinstance(expr, sp.Symbol):
            return self._print(expr)
        return self._temporary(self._print(expr))

    def _arg(self, expr: sp.Basic) -> str:
        """Code for an argument of an ``xp`` function: numbers become 0-d arrays."""
        if isinstance(expr, sp.Number):
            return self.constant(_float_of(expr))
        return self._print(expr)

    def _print_not_supported(self, expr: Any) -> str:
        raise invalid("expr sub-expression", expr, _SUPPORTED_TEXT)

    # -- atoms
    def _print_Symbol(self, expr: sp.Symbol) -> str:
        try:
            return self._names[expr]
        except KeyError:
            raise invalid("expr symbol", expr, "one of the symbols named in args") from None

    _print_Dummy = _print_Symbol

    def _print_Number(self, expr: sp.Number) -> str:
        return _literal(_float_of(expr))

    _print_Integer = _print_Rational = _print_Float = _print_Half = _print_Number
    _print_Zero = _print_One = _print_NegativeOne = _print_Number
    _print_Infinity = _print_NegativeInfinity = _print_NaN = _print_Number
    _print_NumberSymbol = _print_Number
    _print_ComplexInfinity = _print_not_supported
    _print_ImaginaryUnit = _print_not_supported

    def _print_BooleanTrue(self, expr: Any) -> str:
        return "True"

    def _print_BooleanFalse(self, expr: Any) -> str:
        return "False"

    # -- arithmetic
    def _integer_power(self, base: sp.Basic, n: int) -> str:
        if n == 0:
            return "1.0"
        m = abs(n)
        if m == 1:
            code = self._parenthesized(base)
        elif m > _MAX_CHAIN_POWER:
            code = f"({self._parenthesized(base)}**{m})"
        else:
            code = self._chain(self._name_of(base), m)
        return f"(1.0/{code})" if n < 0 else code

    def _chain(self, b: str, m: int) -> str:
        """Code for b**m (m >= 1) by repeated squaring, sharing the squares of ``b``."""
        if m == 1:
            return b
        square = self._power_memo.get((b, 1))
        if m <= 3 and square is None:
            return "(" + "*".join([b] * m) + ")"
        factors = []
        current, k = b, 0
        while m:
            if m & 1:
                factors.append(current)
            m >>= 1
            if m:
                k += 1
                key = (b, k)
                if key not in self._power_memo:
                    self._power_memo[key] = self._temporary(f"{current}*{current}")
                current = self._power_memo[key]
        return factors[0] if len(factors) == 1 else "(" + "*".join(factors) + ")"

    def _parenthesized(self, expr: sp.Basic) -> str:
        code = self._print(expr)
        if isinstance(expr, sp.Symbol) or (isinstance(expr, sp.Number) and expr >= 0):
            return code
        return f"({code})"

    def _print_Pow(self, expr: sp.Pow, rational: bool = False) -> str:
        base, exponent = expr.args
        if exponent.is_Integer:
            return self._integer_power(base, int(exponent))
        if exponent.is_Rational and exponent.q == 2:
            p = abs(int(exponent.p))
            if p == 1:
                root = f"xp.sqrt({self._print(base)})"
            else:
                # x**(p/2) = x**((p-1)/2) * sqrt(x)
                b = self._name_of(base)
                root = f"({self._chain(b, (p - 1) // 2)}*xp.sqrt({b}))"
            return f"(1.0/{root})" if exponent < 0 else root
        return f"({self._parenthesized(base)}**{self._parenthesized(exponent)})"

    # -- functions
    def _print_table_function(self, expr: sp.Function) -> str:
        name = type(expr).__name__
        if name in _UNARY:
            return f"xp.{_UNARY[name]}({self._arg(expr.args[0])})"
        if name in _RECIPROCAL:
            return f"(1.0/xp.{_RECIPROCAL[name]}({self._arg(expr.args[0])}))"
        if name in _OF_RECIPROCAL:
            return f"xp.{_OF_RECIPROCAL[name]}(1.0/{self._parenthesized(expr.args[0])})"
        if name in _BINARY:
            a, b = (self._arg(arg) for arg in expr.args)
            return f"xp.{_BINARY[name]}({a}, {b})"
        return self._print_not_supported(expr)

    def _fold(self, function: str, args: Iterable[sp.Basic]) -> str:
        codes = [self._arg(a) for a in args]
        code = codes[0]
        for other in codes[1:]:
            code = f"xp.{function}({code}, {other})"
        return code

    def _print_Max(self, expr: sp.Max) -> str:
        return self._fold("maximum", expr.args)

    def _print_Min(self, expr: sp.Min) -> str:
        return self._fold("minimum", expr.args)

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        pairs = list(expr.args)
        if pairs[-1].cond == sp.true:
            code = self._arg(pairs.pop().expr)
        else:
            code = self.constant(math.nan)  # SymPy leaves the value undefined there
        for value, condition in reversed(pairs):
            code = f"xp.where({self._print(condition)}, {self._arg(value)}, {code})"
        return code

    def _print_Heaviside(self, expr: sp.Heaviside) -> str:
        x = self._name_of(expr.args[0])
        at_zero = expr.args[1] if len(expr.args) > 1 else sp.S.Half
        one, zero, middle = self.constant(1.0), self.constant(0.0), self._arg(at_zero)
        return f"xp.where({x} > 0.0, {one}, xp.where({x} < 0.0, {zero}, {middle}))"

    def _print_DiracDelta(self, expr: sp.DiracDelta) -> str:
        x = self._print(expr.args[0])
        return f"xp.where({x} == 0.0, {self.constant(math.nan)}, {self.constant(0.0)})"

    def _print_erf(self, expr: sp.erf) -> str:
        self.helpers.add("erf")
        return f"_erf({self._arg(expr.args[0])})"

    def _print_erfc(self, expr: sp.erfc) -> str:
        self.helpers.add("erf")
        return f"_erfc({self._arg(expr.args[0])})"

    def _print_exp2(self, expr: Any) -> str:
        return f"(2.0**{self._parenthesized(expr.args[0])})"

    def _print_Mod(self, expr: sp.Mod) -> str:
        a, b = (self._parenthesized(arg) for arg in expr.args)
        return f"({a} % {b})"

    # -- logic
    def _print_Relational(self, expr: Relational) -> str:
        lhs, rhs = (
            self._print(side)
            if isinstance(side, sp.Symbol | sp.Number)
            else f"({self._print(side)})"
            for side in (expr.lhs, expr.rhs)
        )
        return f"({lhs} {expr.rel_op} {rhs})"

    def _logical(self, function: str, args: Sequence[sp.Basic]) -> str:
        code = self._print(args[0])
        for other in args[1:]:
            code = f"xp.{function}({code}, {self._print(other)})"
        return code

    def _print_And(self, expr: And) -> str:
        return self._logical("logical_and", expr.args)

    def _print_Or(self, expr: Or) -> str:
        return self._logical("logical_or", expr.args)

    def _print_Xor(self, expr: Xor) -> str:
        return self._logical("logical_xor", expr.args)

    def _print_Not(self, expr: Not) -> str:
        return f"xp.logical_not({self._print(expr.args[0])})"


for _name in (*_UNARY, *_RECIPROCAL, *_OF_RECIPROCAL, *_BINARY):
    setattr(ArrayPrinter, f"_print_{_name}", ArrayPrinter._print_table_function)
# Never fall back on the parent's math.* / plain-Python printing of other functions.
for _name in dir(PythonCodePrinter):
    if _name.startswith("_print_") and _name not in ArrayPrinter.__dict__:
        _kind = _name[len("_print_") :]
        _sympy_class = getattr(sp, _kind, None)
        if isinstance(_sympy_class, type) and issubclass(_sympy_class, sp.Function):
            setattr(ArrayPrinter, _name, ArrayPrinter._print_not_supported)


# -- specifications of arguments and outputs -----------------------------------------------


@dataclass(frozen=True)
class _Arg:
    """One positional argument: a scalar symbol or a vector of symbols on the last axis."""

    label: str
    symbols: tuple[sp.Symbol, ...]
    vector: bool


@dataclass(frozen=True)
class _Output:
    shape: tuple[int, ...]
    entries: tuple[sp.Basic, ...]


def _is_symbol(value: Any) -> bool:
    return isinstance(value, sp.Symbol)


def _parse_args(args: Any) -> tuple[_Arg, ...]:
    allowed = (
        "a SymPy Symbol, or a sequence whose items are Symbols (one array each) or sequences of "
        "Symbols (one array whose last axis holds them)"
    )
    if _is_symbol(args):
        return (_Arg(args.name, (args,), False),)
    if isinstance(args, sp.MatrixBase | sp.NDimArray):
        args = [list(args)]
    if isinstance(args, str | bytes) or not isinstance(args, Iterable):
        raise invalid("args", args, allowed)
    parsed = []
    for i, item in enumerate(args):
        if _is_symbol(item):
            parsed.append(_Arg(item.name, (item,), False))
            continue
        if isinstance(item, sp.MatrixBase | sp.NDimArray):
            item = list(item)
        if isinstance(item, str | bytes) or not isinstance(item, Iterable):
            raise invalid(f"args[{i}]", item, allowed)
        symbols = tuple(item)
        bad = [s for s in symbols if not _is_symbol(s)]
        if bad:
            raise invalid(f"args[{i}]", item, allowed + f"; {bad[0]!r} is not a Symbol")
        parsed.append(_Arg(f"args[{i}]", symbols, True))
    every = [s for a in parsed for s in a.symbols]
    repeated = {s for s in every if every.count(s) > 1}
    if repeated:
        raise invalid("args", args, f"each symbol once; repeated: {sorted(map(str, repeated))}")
    return tuple(parsed)


def _sympify_entry(value: Any, where: str) -> sp.Basic:
    if isinstance(value, str):
        raise invalid(
            where, value, "a SymPy expression (text is not parsed here: use ck.Problem(text))"
        )
    if isinstance(value, sp.Basic):
        entry = value
    elif isinstance(value, numbers.Real):
        entry = sp.Float(float(value)) if isinstance(value, float) else sp.Integer(int(value))
    else:
        raise invalid(where, value, "a SymPy expression, Matrix, Array, or a tuple of them")
    if not isinstance(entry, sp.Expr) or isinstance(entry, sp.MatrixBase):
        raise invalid(where, value, "a real-valued SymPy expression (not a relation or a set)")
    return entry


def _parse_outputs(expr: Any, where: str = "expr") -> tuple[Any, list[_Output]]:
    """The nesting structure of ``expr`` and its flat list of outputs."""
    outputs: list[_Output] = []

    def visit(value: Any, path: str) -> Any:
        if isinstance(value, sp.MatrixBase):
            entries = tuple(_sympify_entry(e, path) for e in value)
            outputs.append(_Output(tuple(value.shape), entries))
            return len(outputs) - 1
        if isinstance(value, sp.NDimArray):
            flat = sp.flatten(value.tolist()) if value.rank() else [value[()]]
            entries = tuple(_sympify_entry(e, path) for e in flat)
            outputs.append(_Output(tuple(value.shape), entries))
            return len(outputs) - 1
        if isinstance(value, tuple | list):
            return tuple(visit(v, f"{path}[{i}]") for i, v in enumerate(value))
        outputs.append(_Output((), (_sympify_entry(value, path),)))
        return len(outputs) - 1

    return visit(expr, where), outputs


def _key_of(value: Any) -> Any:
    """A hashable key for an expression structure (mutable matrices made immutable)."""
    if isinstance(value, sp.MatrixBase):
        return ("matrix", sp.ImmutableMatrix(value))
    if isinstance(value, sp.NDimArray):
        return ("array", sp.ImmutableDenseNDimArray(value))
    if isinstance(value, tuple | list):
        return ("seq", tuple(_key_of(v) for v in value))
    return value


def _args_key(args: Any) -> Any:
    if _is_symbol(args):
        return args
    if isinstance(args, sp.MatrixBase | sp.NDimArray):
        return ("vector", tuple(args))
    if isinstance(args, Iterable) and not isinstance(args, str | bytes):
        return tuple(_args_key(a) if not _is_symbol(a) else a for a in args)
    return args


# -- source generation ---------------------------------------------------------------------


def _identifier(name: str, used: set[str]) -> str | None:
    if name.isidentifier() and not keyword.iskeyword(name) and not name.startswith("_"):
        if name != "xp" and name not in used:
            return name
    return None


def _generate(
    args: tuple[_Arg, ...], outputs: list[_Output], layout: str
) -> tuple[str, tuple[str, ...], list[dict[int, float]]]:
    """Python source of the kernel, the labels of its arguments, and constant entries.

    ``layout`` is "leading" (vector arguments and outputs have their component axis first;
    constant entries are left out of the kernel and returned, per output, by position),
    "trailing" (component axis last, outputs assigned entry by entry) or "stack" (outputs
    built by ``xp.stack``; for namespaces whose arrays cannot be assigned to).
    """
    entries = [_fold_constants(e) for out in outputs for e in out.entries]
    for e in entries:
        _check_supported(e)
    free = set().union(*(e.free_symbols for e in entries)) if entries else set()
    known = {s for a in args for s in a.symbols}
    missing = free - known
    if missing:
        raise invalid(
            "args",
            [list(a.symbols) if a.vector else a.symbols[0] for a in args],
            f"every free symbol of expr; missing {sorted(map(str, missing))}",
        )

    used: set[str] = set()
    names: dict[sp.Symbol, str] = {}
    params: list[str] = []
    unpack: list[str] = []
    for i, arg in enumerate(args):
        if not arg.vector:
            symbol = arg.symbols[0]
            ident = _identifier(symbol.name, used) or f"_a{i}"
            used.add(ident)
            names[symbol] = ident
            params.append(ident)
            continue
        vector = f"_v{i}"
        params.append(vector)
        for j, symbol in enumerate(arg.symbols):
            ident = _identifier(symbol.name, used) or f"_a{i}_{j}"
            used.add(ident)
            names[symbol] = ident
            if symbol in free:
                index = f"{j}" if layout == "leading" else f"..., {j}"
                unpack.append(f"{ident} = {vector}[{index}]")

    replacements, reduced = sp.cse(entries, symbols=sp.numbered_symbols("t", cls=sp.Dummy))
    for k, (temporary, _) in enumerate(replacements):
        names[temporary] = f"_t{k}"
    printer = ArrayPrinter(names)
    body: list[str] = []
    for temporary, value in replacements:
        code = printer._print(value)
        body.extend(printer.take_pending())
        body.append(f"{names[temporary]} = {code}")

    out_names = [f"_o{j}" for j in range(len(outputs))]
    position = 0
    stacked: list[str] = []
    fixed: list[dict[int, float]] = []
    for j, out in enumerate(outputs):
        items = []
        fixed.append({})
        for k in range(len(out.entries)):
            entry = reduced[position]
            position += 1
            if layout == "leading" and isinstance(entry, sp.Number):
                # the chunked driver writes constant entries once, not once per chunk
                fixed[j][k] = _float_of(entry)
                continue
            if layout == "stack":
                if isinstance(entry, sp.Number):
                    literal = _literal(_float_of(entry))
                    items.append(f"xp.full(_shape, {literal}, dtype=_dt, device=_dev)")
                else:
                    items.append(f"xp.broadcast_to({printer._print(entry)}, _shape)")
                    body.extend(printer.take_pending())
                continue
            code = printer._print(entry)
            body.extend(printer.take_pending())
            index = f"{k}" if layout == "leading" else f"..., {k}"
            body.append(f"{out_names[j]}[{index}] = {code}")
        if layout == "stack":
            if items:
                stacked.append("xp.stack([" + ", ".join(items) + "], axis=-1)")
            else:
                stacked.append("xp.empty(_shape + (0,), dtype=_dt, device=_dev)")

    constants = [
        f"{name} = xp.asarray({literal}, dtype=_dt, device=_dev)"
        for literal, name in printer.constants.items()
    ]
    signature = params + ["_dt", "_dev"] + (["_shape"] if layout == "stack" else out_names)
    lines = [f"def _kernel({', '.join(signature)}):"]
    lines += ["    " + line for line in unpack + constants + body]
    if layout == "stack":
        lines.append("    return (" + "".join(s + ", " for s in stacked) + ")")
    else:
        lines.append("    return None")
    helpers = _erf_helpers() if "erf" in printer.helpers else ""
    header = f"# generated by convexkit.codegen (layout: {layout})\n"
    source = header + helpers + "\n\n" + "\n".join(lines) + "\n"
    return source, tuple(a.label for a in args), fixed


# -- compiled functions --------------------------------------------------------------------

_COUNTER = itertools.count()


def _standard_namespace(xp: Any) -> Any:
    """The namespace whose names the generated code calls (array API spellings)."""
    if xp is np:
        return np if hasattr(np, "acos") else array_api_compat.numpy
    if array_api_compat.is_cupy_namespace(xp):
        import array_api_compat.cupy as compat_cupy

        return compat_cupy
    return xp


def _layout_for(xp: Any) -> str:
    if xp is np:
        return "leading"
    probe = xp.empty((1,))
    check = getattr(array_api_compat, "is_writeable_array", None)
    writeable = check(probe) if check is not None else not array_api_compat.is_jax_array(probe)
    return "trailing" if writeable else "stack"


def _shape_text(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def _is_python_scalar(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class CompiledFunction:
    """An array function generated from SymPy; call it with one array per argument.

    Made by :func:`lambdify`, which caches it; build one directly only to choose ``layout``.

    Parameters
    ----------
    expr, args, xp
        As for :func:`lambdify` (``xp`` already resolved to a namespace module).
    layout : {None, "leading", "trailing", "stack"}
        How results are assembled: None picks per namespace ("leading", chunked, for NumPy;
        "trailing", entry-by-entry assignment, for namespaces with writeable arrays; "stack"
        for the others). "leading" needs NumPy.

    Attributes
    ----------
    expr : Any
        The SymPy expression (or structure of them) it evaluates.
    args : Any
        The symbols as given to :func:`lambdify`.
    xp : module
        The namespace it was generated for.
    __source__ : str
        The generated Python source of its kernel.
    """

    def __init__(self, expr: Any, args: Any, xp: Any, *, layout: str | None = None):
        self.expr = expr
        self.args = args
        self.xp = xp
        self._std = _standard_namespace(xp)
        if layout is not None:
            check_choice("layout", layout, ("leading", "trailing", "stack"))
            if layout == "leading" and xp is not np:
                raise invalid("layout", layout, "'trailing' or 'stack' for namespaces but NumPy")
        self._layout = layout or _layout_for(xp)
        self._arg_specs = _parse_args(args)
        self._structure, self._outputs = _parse_outputs(expr)
        source, self._labels, self._fixed = _generate(self._arg_specs, self._outputs, self._layout)
        self.__source__ = source
        filename = f"<convexkit-codegen-{next(_COUNTER)}>"
        # tracebacks show the generated lines; the entry goes when the function does
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        weakref.finalize(self, linecache.cache.pop, filename, None)
        scope: dict[str, Any] = {"xp": self._std, "__builtins__": {}}
        exec(compile(source, filename, "exec"), scope)  # noqa: S102 - source printed from SymPy
        self._kernel: Callable[..., Any] = scope["_kernel"]
        self._sizes = tuple(len(o.entries) for o in self._outputs)
        self._array_type = type(xp.asarray(0.0))
        total = sum(self._sizes) + sum(len(a.symbols) for a in self._arg_specs if a.vector)
        # a chunk's rows of every output and vector input take about 2 MiB in float64
        self._chunk = int(max(1024, min(16384, (1 << 18) // max(1, total))))

    def __repr__(self) -> str:
        symbols = [list(a.symbols) if a.vector else a.symbols[0] for a in self._arg_specs]
        return f"<CompiledFunction {self.expr!s:.60} of {symbols} on {namespace_name(self.xp)}>"

    # -- argument handling shared by both drivers
    def _check_count(self, arrays: tuple[Any, ...]) -> None:
        if len(arrays) != len(self._arg_specs):
            labels = ", ".join(self._labels)
            raise TypeError(
                f"this function takes {len(self._arg_specs)} arrays ({labels}); got {len(arrays)}"
            )

    def _batch_shape(self, arrays: list[Any]) -> tuple[int, ...]:
        shapes = []
        for value, spec in zip(arrays, self._arg_specs, strict=True):
            shape = tuple(value.shape)
            if spec.vector:
                width = len(spec.symbols)
                if len(shape) == 0 or shape[-1] != width:
                    raise invalid(
                        spec.label,
                        f"array of shape {_shape_text(shape)}",
                        f"an array whose last axis has length {width} "
                        f"(one entry per symbol {', '.join(map(str, spec.symbols))})",
                    )
                shape = shape[:-1]
            shapes.append(shape)
        try:
            return tuple(np.broadcast_shapes(*shapes))
        except ValueError:
            described = ", ".join(
                f"{spec.label} of batch shape {_shape_text(s)}"
                for spec, s in zip(self._arg_specs, shapes, strict=True)
            )
            raise invalid(
                "arrays", described, "batch shapes that broadcast against each other"
            ) from None

    def _rebuild(self, results: list[Any]) -> Any:
        def build(node: Any) -> Any:
            return results[node] if isinstance(node, int) else tuple(build(n) for n in node)

        return build(self._structure)

    def __call__(self, *arrays: Any) -> Any:
        self._check_count(arrays)
        if self._layout == "leading":
            return self._call_numpy(arrays)
        return self._call_namespace(arrays)

    # -- NumPy: chunked evaluation in the leading layout
    def _call_numpy(self, arrays: tuple[Any, ...]) -> Any:
        values: list[Any] = []
        floating = []
        for spec, value in zip(self._arg_specs, arrays, strict=True):
            if isinstance(value, np.ndarray):
                value = value if type(value) is np.ndarray else np.asarray(value)
            elif not _is_python_scalar(value):
                if array_api_compat.is_array_api_obj(value) and not isinstance(value, np.generic):
                    raise invalid(
                        spec.label,
                        f"{namespace_name(array_api_compat.array_namespace(value))} array",
                        "a NumPy array or a Python number (this function was generated for numpy)",
                    )
                value = np.asarray(value)
            if isinstance(value, np.ndarray):
                kind = value.dtype.kind
                if kind == "c":
                    raise invalid(spec.label, f"array of dtype {value.dtype}", "real arrays")
                if kind == "f" or value.dtype.name == "bfloat16":
                    floating.append(value.dtype)
            values.append(value)
        dtype = np.result_type(*floating) if floating else np.dtype(np.float64)
        values = [
            np.asarray(v, dtype=dtype) if not isinstance(v, np.ndarray) or v.dtype != dtype else v
            for v in values
        ]
        shape = self._batch_shape(values)
        count = math.prod(shape)
        flat = []
        for spec, value in zip(self._arg_specs, values, strict=True):
            tail = value.shape[-1:] if spec.vector else ()
            batch = value.shape[: value.ndim - len(tail)]
            if math.prod(batch) == 1 and count != 1:
                reduced = value.reshape(tail)
                flat.append((False, spec.vector, reduced.T if spec.vector else reduced))
            elif batch == shape:
                flat.append((True, spec.vector, value.reshape((count,) + tail)))
            else:
                full = np.broadcast_to(value, shape + tail).reshape((count,) + tail)
                flat.append((True, spec.vector, full))
        outs = [np.empty((count, size), dtype=dtype) for size in self._sizes]
        chunk = min(self._chunk, max(count, 1))
        buffers: list[np.ndarray | None] = []
        for out, size, fixed in zip(outs, self._sizes, self._fixed, strict=True):
            if len(fixed) == size:  # nothing varies: fill once
                out[...] = np.array([fixed[k] for k in range(size)], dtype=dtype)
                buffers.append(None)
            elif size > 1:
                # rows of a reused buffer; constant rows are written here once
                buffer = np.empty((size, chunk), dtype=dtype)
                for k, value in fixed.items():
                    buffer[k] = value
                buffers.append(buffer)
            else:
                buffers.append(None)
        kernel = self._kernel
        for start in range(0, count, chunk):
            stop = min(start + chunk, count)
            inputs = []
            for sliced, vector, value in flat:
                if not sliced:
                    inputs.append(value)
                elif vector:
                    inputs.append(np.ascontiguousarray(value[start:stop].T))
                else:
                    inputs.append(value[start:stop])
            targets = [
                out[start:stop].T if buffer is None else buffer[:, : stop - start]
                for out, buffer in zip(outs, buffers, strict=True)
            ]
            kernel(*inputs, dtype, None, *targets)
            for out, buffer, target in zip(outs, buffers, targets, strict=True):
                if buffer is not None:
                    out[start:stop] = target.T
        results = [out.reshape(shape + o.shape) for out, o in zip(outs, self._outputs, strict=True)]
        return self._rebuild(results)

    # -- any other namespace: the whole batch at once
    def _call_namespace(self, arrays: tuple[Any, ...]) -> Any:
        xp = self._std
        values: list[Any] = []
        floating = []
        device = None
        for spec, value in zip(self._arg_specs, arrays, strict=True):
            if not isinstance(value, self._array_type) and not _is_python_scalar(value):
                if isinstance(value, np.ndarray | np.generic | list | tuple):
                    value = self._from_host(value, device)
                else:
                    other = namespace_name(array_api_compat.array_namespace(value))
                    raise invalid(
                        spec.label,
                        f"{other} array",
                        f"an array of {namespace_name(self.xp)} (the namespace this function "
                        "was generated for), a NumPy array or a Python number",
                    )
            if not _is_python_scalar(value):
                if device is None:
                    device = device_of(value)
                if xp.isdtype(value.dtype, "complex floating"):
                    raise invalid(spec.label, f"array of dtype {value.dtype}", "real arrays")
                if xp.isdtype(value.dtype, "real floating"):
                    floating.append(value.dtype)
            values.append(value)
        dtype = xp.result_type(*floating) if floating else resolve_dtype(None, self.xp)
        converted = []
        for value in values:
            if _is_python_scalar(value):
                value = self._scalar(value, dtype, device)
            elif value.dtype != dtype:
                value = xp.astype(value, dtype)
            converted.append(value)
        shape = self._batch_shape(converted)
        if self._layout == "stack":
            results = list(self._kernel(*converted, dtype, device, shape))
        else:
            results = [
                xp.empty(shape + (size,), dtype=dtype, device=device) for size in self._sizes
            ]
            self._kernel(*converted, dtype, device, *results)
        results = [
            xp.reshape(r, shape + o.shape) for r, o in zip(results, self._outputs, strict=True)
        ]
        return self._rebuild(results)

    def _scalar(self, value: float, dtype: Any, device: Any) -> Any:
        if device is None:
            return self._std.asarray(value, dtype=dtype)
        return self._std.asarray(value, dtype=dtype, device=device)

    def _from_host(self, value: Any, device: Any) -> Any:
        host = np.asarray(value)
        if host.dtype.kind not in "fc":
            host = host.astype(np.float64)
        if array_api_compat.is_cupy_namespace(self.xp):
            return self.xp.asarray(host)
        data = host.tolist() if host.ndim else host.item()
        if device is None:
            return self._std.asarray(data, dtype=getattr(self._std, str(host.dtype)))
        return self._std.asarray(data, dtype=getattr(self._std, str(host.dtype)), device=device)


# -- the cache -----------------------------------------------------------------------------

_CACHE: OrderedDict[Any, CompiledFunction] = OrderedDict()
_CACHE_SIZE = 512
_LOCK = threading.Lock()
_STATS = {"hits": 0, "misses": 0}


def clear_cache() -> None:
    """Forget every compiled function (the next :func:`lambdify` call compiles anew)."""
    with _LOCK:
        _CACHE.clear()
        _STATS.update(hits=0, misses=0)


def cache_info() -> dict[str, int]:
    """Hits, misses, current size and capacity of the compiled-function cache."""
    with _LOCK:
        return {**_STATS, "size": len(_CACHE), "capacity": _CACHE_SIZE}


def _compiled(expr: Any, args: Any, xp: Any, layout: str | None = None) -> CompiledFunction:
    key = (_key_of(expr), _args_key(args), namespace_name(xp), layout)
    with _LOCK:
        found = _CACHE.get(key)
        if found is not None:
            _CACHE.move_to_end(key)
            _STATS["hits"] += 1
            return found
    function = CompiledFunction(expr, args, xp, layout=layout)
    with _LOCK:
        _STATS["misses"] += 1
        found = _CACHE.setdefault(key, function)
        _CACHE.move_to_end(key)
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return found


def lambdify(expr: Any, args: Any, xp: Any = None) -> CompiledFunction:
    """Compile a SymPy expression, matrix, array, or a tuple of them into an array function.

    Parameters
    ----------
    expr : sympy.Expr, sympy.Matrix, sympy.Array, number, or a tuple/list of them
        What to evaluate. A scalar gives an array of the batch shape, an m x n Matrix one of
        shape batch + (m, n), an Array of shape s one of shape batch + s, a tuple a tuple.
    args : Symbol or sequence
        The function's positional arguments: a Symbol takes one array; a sequence of Symbols
        (or a column Matrix of them) inside ``args`` takes one array whose last axis holds
        their values, so ``lambdify(f, [(x1, x2), lam])`` is called as ``fn(X, lam)`` with X
        of shape (..., 2). Every free symbol of ``expr`` must appear.
    xp : None, str or module
        Namespace of the arrays: None (NumPy), "cupy", "array_api_strict", or a module.

    Returns
    -------
    CompiledFunction
        Callable on arrays of ``xp`` (NumPy arrays and Python numbers are also accepted; on
        other namespaces NumPy arrays are copied to the first array argument's device).
        The batch shapes of all arguments broadcast. The result has the floating dtype of the
        arguments (float32 stays float32; integers give float64) and their device. Its
        source is ``fn.__source__``. The same (expr, args, namespace) returns the same object.

    Raises
    ------
    ValueError
        For a sub-expression with no array translation, a free symbol missing from ``args``,
        or text instead of an expression.
    """
    namespace = resolve_namespace(xp)
    return _compiled(expr, args, namespace)


# -- oracles -------------------------------------------------------------------------------


def _as_problem(problem: Any) -> Any:
    needed = ("expr", "variables", "params", "gradient", "hessian")
    if all(hasattr(problem, name) for name in needed):
        return problem
    if isinstance(problem, str | sp.Expr):
        from .symbolic.problem import Problem

        return Problem(problem)
    raise invalid(
        "problem",
        problem,
        "a ck.Problem (or an object with expr, variables, params, gradient(), hessian()), "
        "a SymPy expression or a string",
    )


class Oracle:
    """Batched value, gradient and Hessian of a problem on one array namespace.

    Points ``x`` have shape (B, d), giving value (B,), gradient (B, d) and Hessian (B, d, d).
    More generally the leading axes of ``x`` are batch axes: a single point of shape (d,)
    gives a 0-d value, a (d,) gradient and a (d, d) Hessian, and (B1, B2, d) gives
    (B1, B2), ... Parameter arrays broadcast against the batch shape.

    Build it with :func:`oracle`.

    Attributes
    ----------
    problem : Problem
        The problem it evaluates.
    dim : int
        Number of variables d.
    xp : module
        The array namespace.
    dtype : dtype or None
        The dtype points are cast to (None: each call keeps its points' floating dtype).
    device : Any
        Where parameter arrays live and lists are placed (None: the namespace's default).
    params : dict
        The bound parameter values, by symbol.
    """

    def __init__(
        self,
        problem: Any,
        xp: Any = None,
        *,
        params: Mapping[Any, Any] | None = None,
        dtype: Any = None,
        device: Any = None,
    ):
        self.problem = _as_problem(problem)
        self.xp = resolve_namespace(xp)
        self.dtype = None if dtype is None else resolve_dtype(dtype, self.xp)
        self.device = device
        self.variables = tuple(self.problem.variables)
        self.dim = len(self.variables)
        self._symbols = tuple(self.problem.params)
        self._array_type = type(self.xp.asarray(0.0))
        self.params = self._bind(params or {})
        self._args = (self.variables, *self._symbols)
        self._functions: dict[str, CompiledFunction] = {}
        self._converted: dict[Any, tuple[Any, ...]] = {}

    def __repr__(self) -> str:
        bound = ", ".join(f"{s}={_describe(v)}" for s, v in self.params.items())
        return (
            f"Oracle({self.problem.expr}, dim={self.dim}, xp={namespace_name(self.xp)}"
            + (f", params: {bound}" if bound else "")
            + ")"
        )

    def _bind(self, params: Mapping[Any, Any]) -> dict[sp.Symbol, Any]:
        by_name = {s.name: s for s in self._symbols}
        if not isinstance(params, Mapping):
            raise invalid("params", params, "a dict from parameter (symbol or name) to value")
        bound: dict[sp.Symbol, Any] = {}
        for key, value in params.items():
            symbol = by_name.get(key) if isinstance(key, str) else key
            if symbol not in self._symbols:
                raise invalid(
                    "params",
                    {key: value},
                    "values for the problem's parameters "
                    + (", ".join(by_name) if by_name else "(it has none)"),
                )
            bound[symbol] = self._parameter_value(symbol, value)
        missing = [s.name for s in self._symbols if s not in bound]
        if missing:
            raise invalid(
                "params",
                dict(params),
                f"a value for every parameter; missing {missing} "
                f"(e.g. params={{{missing[0]!r}: 0.5}})",
            )
        return {s: bound[s] for s in self._symbols}

    def _parameter_value(self, symbol: sp.Symbol, value: Any) -> Any:
        label = f"params[{symbol.name!r}]"
        if isinstance(value, sp.Basic):
            if not value.is_number:
                raise invalid(label, value, "a number or an array (not a symbolic expression)")
            value = _float_of(value)
        if _is_python_scalar(value) or isinstance(value, np.generic):
            number = float(value)
            if math.isnan(number):
                raise invalid(label, value, "a real number (not nan)")
            return number
        if isinstance(value, self._array_type):
            return value
        if isinstance(value, np.ndarray | list | tuple):
            host = np.asarray(value, dtype=np.float64)
            if self.xp is np:
                return host if self.dtype is None else host.astype(self.dtype)
            target = self.dtype if self.dtype is not None else resolve_dtype(None, self.xp)
            if array_api_compat.is_cupy_namespace(self.xp):
                return self.xp.asarray(host, dtype=target)
            if self.device is None:
                return self.xp.asarray(host.tolist(), dtype=target)
            return self.xp.asarray(host.tolist(), dtype=target, device=self.device)
        raise invalid(label, value, f"a number or an array of {namespace_name(self.xp)}")

    # -- compiled functions, made on first use
    def _function(self, kind: str) -> CompiledFunction:
        found = self._functions.get(kind)
        if found is None:
            if kind == "value":
                expr: Any = self.problem.expr
            elif kind == "grad":
                expr = sp.Array(list(self.problem.gradient()))
            elif kind == "hess":
                expr = sp.ImmutableMatrix(self.problem.hessian())
            else:
                expr = (self.problem.expr, sp.Array(list(self.problem.gradient())))
            found = lambdify(expr, self._args, self.xp)
            self._functions[kind] = found
        return found

    def _point(self, x: Any) -> Any:
        xp = self.xp
        if not isinstance(x, self._array_type):
            if isinstance(x, np.ndarray | np.generic | list | tuple):
                host = np.asarray(x)
                if host.dtype.kind not in "fc":
                    host = host.astype(np.float64)
                if xp is np:
                    x = host
                elif array_api_compat.is_cupy_namespace(xp):
                    x = xp.asarray(host)
                else:
                    dtype = getattr(xp, str(host.dtype))
                    if self.device is None:
                        x = xp.asarray(host.tolist(), dtype=dtype)
                    else:
                        x = xp.asarray(host.tolist(), dtype=dtype, device=self.device)
            else:
                raise invalid(
                    "x",
                    type(x).__name__,
                    f"an array of {namespace_name(xp)} (this oracle's namespace), a NumPy "
                    "array or a list",
                )
        shape = tuple(x.shape)
        if len(shape) == 0 or shape[-1] != self.dim:
            d = self.dim
            raise invalid(
                "x",
                f"array of shape {_shape_text(shape)}",
                f"shape (B, {d}) for a batch of points or ({d},) for one point",
            )
        if self.dtype is not None and x.dtype != self.dtype:
            x = x.astype(self.dtype) if xp is np else _standard_namespace(xp).astype(x, self.dtype)
        return x

    def _param_args(self, x: Any) -> tuple[Any, ...]:
        if not self.params:
            return ()
        key = (x.dtype, device_of(x) if self.xp is not np else None)
        found = self._converted.get(key)
        if found is None:
            std = _standard_namespace(self.xp)
            values = []
            for value in self.params.values():
                if not _is_python_scalar(value):
                    if self.xp is not np and device_of(value) != key[1]:
                        value = array_api_compat.to_device(value, key[1])
                    if value.dtype != x.dtype:
                        value = (
                            value.astype(x.dtype) if self.xp is np else std.astype(value, x.dtype)
                        )
                values.append(value)
            found = tuple(values)
            self._converted[key] = found
        self._check_batch(x, found)
        return found

    def _check_batch(self, x: Any, values: tuple[Any, ...]) -> None:
        shapes = [tuple(x.shape[:-1])]
        for value in values:
            shapes.append(() if _is_python_scalar(value) else tuple(value.shape))
        try:
            np.broadcast_shapes(*shapes)
        except ValueError:
            described = ", ".join(
                f"params[{s.name!r}] of shape {_shape_text(shape)}"
                for s, shape in zip(self._symbols, shapes[1:], strict=True)
                if shape
            )
            raise invalid(
                "params",
                described,
                f"arrays that broadcast against the batch shape {_shape_text(shapes[0])} of x "
                "(one value per point: shape (B,))",
            ) from None

    # -- the oracle itself
    def value(self, x: Any) -> Any:
        """Objective values: (B,) for points (B, d)."""
        x = self._point(x)
        return self._function("value")(x, *self._param_args(x))

    def grad(self, x: Any) -> Any:
        """Gradients: (B, d) for points (B, d)."""
        x = self._point(x)
        return self._function("grad")(x, *self._param_args(x))

    def hess(self, x: Any) -> Any:
        """Hessians: (B, d, d) for points (B, d)."""
        x = self._point(x)
        return self._function("hess")(x, *self._param_args(x))

    def value_and_grad(self, x: Any) -> tuple[Any, Any]:
        """Value and gradient together, sharing their common sub-expressions."""
        x = self._point(x)
        return self._function("value_and_grad")(x, *self._param_args(x))


def _describe(value: Any) -> str:
    if _is_python_scalar(value):
        return repr(value)
    return f"array of shape {_shape_text(tuple(value.shape))}"


def oracle(
    problem: Any,
    xp: Any = None,
    *,
    params: Mapping[Any, Any] | None = None,
    dtype: Any = None,
    device: Any = None,
) -> Oracle:
    """Batched value, gradient and Hessian of ``problem`` on an array namespace.

    Parameters
    ----------
    problem : Problem, sympy.Expr or str
        The objective; an expression or text is made into a ``ck.Problem`` first. Any object
        with ``expr``, ``variables``, ``params``, ``gradient()`` and ``hessian()`` works.
    xp : None, str or module
        The namespace: None (NumPy), "cupy", "array_api_strict", or a module.
    params : dict, optional
        A value for each parameter symbol of the problem, keyed by symbol or by name: a number,
        or an array of shape (B,) with one value per point of the batch (a sweep over lambda,
        say). Arrays broadcast against the batch shape of the points.
    dtype : str or dtype, optional
        Cast points to this dtype before evaluating. None keeps each call's floating dtype
        (float32 points give float32 results); integer points are evaluated in float64.
    device : optional
        Where parameter arrays and points given as lists are placed. Results are always on
        the device of the points.

    Returns
    -------
    Oracle
        With ``value(x) -> (B,)``, ``grad(x) -> (B, d)``, ``hess(x) -> (B, d, d)`` and
        ``value_and_grad(x)``, for ``x`` of shape (B, d); a point of shape (d,) gives
        unbatched results ((), (d,), (d, d)).

    Examples
    --------
    >>> import sympy as sp
    >>> x, y = sp.symbols("x y", real=True)
    >>> class Quadratic:  # any object with these attributes, such as a ck.Problem
    ...     expr, variables, params = x**2 + 3*y**2, (x, y), ()
    ...     def gradient(self): return sp.Matrix([2*x, 6*y])
    ...     def hessian(self): return sp.Matrix([[2, 0], [0, 6]])
    >>> o = oracle(Quadratic())
    >>> o.grad([[1.0, 1.0], [2.0, 0.0]]).tolist()
    [[2.0, 6.0], [4.0, 0.0]]
    """
    return Oracle(problem, xp, params=params, dtype=dtype, device=device)
