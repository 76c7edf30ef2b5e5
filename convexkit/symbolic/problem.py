"""Objectives as SymPy objects: variables, parameters, constraints, derivatives, critical points.

:class:`Problem` is the object every other layer starts from. It holds an expression, the
variables it is minimized over, parameters that stay symbolic (``a`` in ``a*x**2``), and
constraints kept in the canonical forms ``g(x) <= 0`` and ``h(x) == 0``. Its derivatives are
exact and cached; its critical points come with their kind from the signs of the Hessian's
eigenvalues.

Every symbol of a problem is real: text is parsed into ``Symbol(name, real=True)``, and the
symbols of a SymPy expression that carry no ``real`` assumption are replaced by real symbols of
the same name (``p.symbol("x")`` finds them). Points may be given with names or with either
kind of symbol.
"""

from __future__ import annotations

import keyword
import math
import numbers
import re
import signal
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from fractions import Fraction
from typing import Any, NamedTuple

import mpmath
import sympy as sp
from sympy.core.relational import Equality, GreaterThan, LessThan, Relational

from convexkit.errors import ConvexkitError, check_int, invalid
from convexkit.symbolic.parsing import CONSTANTS, FUNCTIONS, parse_expression, parse_relation

__all__ = [
    "KINDS",
    "CriticalPoint",
    "Problem",
    "SolutionList",
    "SolveError",
    "natural_key",
]

KINDS = ("minimum", "maximum", "saddle", "degenerate")
"""The kinds of critical point, from the signs of the Hessian's eigenvalues."""

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class SolveError(ConvexkitError):
    """Raised where SymPy cannot solve a system (or not within the time allowed).

    The message says which system, why, and what to try (a bounded ``domain`` for a numeric
    search, a longer ``timeout``).
    """


class CriticalPoint(NamedTuple):
    """A stationary point of a problem.

    Attributes
    ----------
    point : tuple of sympy.Expr
        Coordinates, in the order of ``Problem.variables``. Exact where SymPy solved exactly,
        ``sympy.Float`` where found numerically. A point of a curve of critical points has the
        curve's free variables in it.
    kind : str
        ``"minimum"`` (all eigenvalues of the Hessian positive), ``"maximum"`` (all negative),
        ``"saddle"`` (some positive and some negative) or ``"degenerate"`` (the second-order
        test cannot decide: a zero eigenvalue and no eigenvalues of both signs, or a Hessian
        not defined there, as for ``abs(x)`` at 0).
    value : sympy.Expr
        The objective at the point.
    eigenvalues : tuple of sympy.Expr
        The Hessian's eigenvalues at the point in ascending order: exact where SymPy finds them
        in closed form, floats otherwise; empty where the Hessian is not defined.
    """

    point: tuple[sp.Expr, ...]
    kind: str
    value: sp.Expr
    eigenvalues: tuple[sp.Expr, ...]


class SolutionList(list):
    """A list of solutions that says whether it is known to hold all of them.

    Attributes
    ----------
    complete : bool
        True where the method guarantees every solution is listed (polynomial systems,
        one-variable equations that SymPy solves over the domain); False after a numeric
        search or ``sympy.solve`` on a transcendental system, which may miss some.
    notes : tuple of str
        How the solutions were found and what may be missing.
    """

    def __init__(self, items: Iterable[Any] = (), *, complete: bool, notes: Sequence[str] = ()):
        super().__init__(items)
        self.complete = complete
        self.notes = tuple(notes)

    def __repr__(self) -> str:
        return f"SolutionList({list.__repr__(self)}, complete={self.complete})"


def natural_key(name: str) -> tuple:
    """Sort key putting ``x2`` before ``x10``: runs of digits compare as numbers.

    Parameters
    ----------
    name : str
        A symbol name.

    Returns
    -------
    tuple
        A key for ``sorted``.
    """
    parts = re.split(r"(\d+)", name)
    chunks = tuple((1, int(part), "") if part.isdigit() else (0, 0, part) for part in parts if part)
    return chunks, name


def _symbol_key(symbol: sp.Symbol) -> tuple:
    return natural_key(symbol.name)


# -- time limits -------------------------------------------------------------------------


class _Timeout(BaseException):
    """Raised inside SymPy when time runs out (a BaseException: SymPy's ``except Exception``
    clauses must not swallow it)."""


@contextmanager
def time_limit(seconds: float | None) -> Iterator[bool]:
    """Interrupt the block with :class:`_Timeout` after ``seconds`` of wall time.

    Uses ``SIGALRM``, so it works only in the main thread on POSIX systems and only where no
    other interval timer is running; elsewhere the block runs without a limit. Yields whether
    the limit is in force.
    """
    usable = (
        seconds is not None
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        and signal.getitimer(signal.ITIMER_REAL)[0] == 0
    )
    if not usable:
        yield False
        return

    def handler(signum: int, frame: Any) -> None:
        raise _Timeout

    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def solve_system(
    equations: Sequence[sp.Expr], unknowns: Sequence[sp.Symbol], timeout: float | None
) -> list[dict[sp.Symbol, sp.Expr]]:
    """``sympy.solve(equations, unknowns, dict=True)`` within ``timeout`` seconds.

    Raises
    ------
    SolveError
        Where SymPy has no method for the system or runs out of time.
    """
    equations, unknowns = list(equations), list(unknowns)
    try:
        with time_limit(timeout):
            if _linear(equations, unknowns):
                # linsolve is exact and much quicker; a free unknown stands for itself
                solutions = sp.linsolve(equations, unknowns)
                return [
                    {u: v for u, v in zip(unknowns, solution, strict=True) if u != v}
                    for solution in solutions
                ]
            return sp.solve(equations, unknowns, dict=True)
    except _Timeout:
        raise SolveError(
            f"sympy.solve did not finish within timeout={timeout} s on {list(equations)}"
        ) from None
    except (NotImplementedError, ValueError, TypeError) as err:
        raise SolveError(f"sympy.solve cannot solve {list(equations)}: {err}") from None


def _linear(expressions: Sequence[sp.Expr], unknowns: Sequence[sp.Symbol]) -> bool:
    """Whether every expression is a polynomial of degree at most 1 in ``unknowns``."""
    for expr in expressions:
        if not expr.is_polynomial(*unknowns):
            return False
        if expr.free_symbols & set(unknowns) and sp.Poly(expr, *unknowns).total_degree() > 1:
            return False
    return True


# -- conversion of user values -----------------------------------------------------------


def to_sympy(name: str, value: Any, names: Mapping[str, sp.Basic] | None = None) -> sp.Expr:
    """A user's number, string or SymPy expression as a SymPy expression.

    Integers and fractions stay exact, floats become ``sympy.Float``, strings are parsed with
    :func:`~convexkit.symbolic.parsing.parse_expression` (``"pi/4"``, ``"1/3"``).
    """
    if isinstance(value, sp.Expr):
        return value
    if isinstance(value, bool):
        raise invalid(name, value, "a number, a string or a SymPy expression (not a bool)")
    if isinstance(value, str):
        return parse_expression(value, names)
    if isinstance(value, numbers.Integral):
        return sp.Integer(int(value))
    if isinstance(value, Fraction):
        return sp.Rational(value.numerator, value.denominator)
    if isinstance(value, numbers.Real):
        number = float(value)
        if not math.isfinite(number):
            raise invalid(name, value, "a finite number")
        return sp.Float(number)
    raise invalid(name, value, "a number, a string or a SymPy expression")


def _check_name(argument: str, name: Any) -> str:
    if (
        not isinstance(name, str)
        or not _NAME.match(name)
        or keyword.iskeyword(name)
        or name in CONSTANTS
        or name in FUNCTIONS
    ):
        raise invalid(
            argument,
            name,
            "names of letters, digits and '_', starting with a letter, other than the "
            "constants (pi, e, E, oo, inf) and the function names",
        )
    return name


def _realify(symbol: sp.Symbol) -> sp.Symbol:
    if symbol.is_real:
        return symbol
    if symbol.is_real is False:
        raise invalid("expr", symbol, "real symbols (this one is declared non-real)")
    return sp.Symbol(symbol.name, real=True)


def _symbols_argument(argument: str, value: Any) -> list[sp.Symbol | str] | None:
    """``variables``/``params`` as given: None, or a list of checked names and real Symbols."""
    if value is None:
        return None
    if isinstance(value, str):
        items: list[Any] = value.replace(",", " ").split()
    elif isinstance(value, sp.Symbol):
        items = [value]
    elif isinstance(value, Iterable):
        items = list(value)
    else:
        raise invalid(argument, value, "None, names in a string, or a sequence of str/Symbol")
    out: list[sp.Symbol | str] = []
    for item in items:
        if isinstance(item, sp.Symbol):
            if item.is_real is False:
                raise invalid(argument, item, "real symbols")
            out.append(_realify(item))
        else:
            out.append(_check_name(argument, item))
    names = [_name_of(item) for item in out]
    if len(set(names)) != len(names):
        raise invalid(argument, value, "distinct names")
    return out


def _name_of(item: sp.Symbol | str) -> str:
    return item.name if isinstance(item, sp.Symbol) else item


# -- the problem -------------------------------------------------------------------------


class Problem:
    """An objective to minimize, with its variables, parameters and constraints.

    Parameters
    ----------
    expr : str or sympy.Expr or number
        The objective. Text is parsed safely (see :mod:`convexkit.symbolic.parsing`).
    variables : str or sequence of str/Symbol, optional
        The variables, in order. Default: the free symbols that are not ``params``, in
        natural order (x1, x2, ..., x10).
    params : str or sequence of str/Symbol, optional
        Symbols that stay symbolic (bind them with :meth:`subs`). Default: where
        ``variables`` are given, the remaining symbols; otherwise none.
    constraints : str or Relational or sequence of them
        Relations with ``<=``, ``>=`` or ``==``, e.g. ``"x1 + x2 >= 1"``.

    Attributes
    ----------
    expr : sympy.Expr
    variables : tuple of sympy.Symbol
    params : tuple of sympy.Symbol
    constraints : tuple of sympy.Relational
        Canonical forms ``g <= 0`` and ``h == 0``, in the order given.
    inequalities : tuple of sympy.Expr
        The ``g`` of the inequality constraints (``g(x) <= 0``).
    equalities : tuple of sympy.Expr
        The ``h`` of the equality constraints (``h(x) == 0``).

    Examples
    --------
    >>> p = Problem("x**2 - y**2")
    >>> p.gradient().T
    Matrix([[2*x, -2*y]])
    >>> [(c.point, c.kind) for c in p.critical_points()]
    [((0, 0), 'saddle')]
    """

    def __init__(
        self,
        expr: str | sp.Expr | numbers.Real,
        variables: str | Sequence[str | sp.Symbol] | None = None,
        params: str | Sequence[str | sp.Symbol] | None = None,
        constraints: str | Relational | Sequence[str | Relational] = (),
    ) -> None:
        given_variables = _symbols_argument("variables", variables)
        given_params = _symbols_argument("params", params)
        given = (given_variables or []) + (given_params or [])
        if len({_name_of(item) for item in given}) != len(given):
            raise invalid("params", params, "names that are not also variables")
        explicit = {item.name: item for item in given if isinstance(item, sp.Symbol)}

        objective = self._objective(expr, explicit)
        names = dict(explicit)
        for symbol in objective.free_symbols:
            names.setdefault(getattr(symbol, "name", str(symbol)), symbol)
        originals, relations = self._relations(constraints, names)

        everything = objective.free_symbols.union(*(r.free_symbols for r in relations))
        by_name: dict[str, sp.Symbol] = {}
        for symbol in everything:
            if not isinstance(symbol, sp.Symbol):
                raise invalid("expr", symbol, "an expression whose free symbols are Symbols")
            if symbol.name in explicit:
                continue  # replaced by the symbol given in variables/params
            other = by_name.setdefault(symbol.name, symbol)
            if _realify(other) != _realify(symbol):
                raise invalid(
                    "expr",
                    expr,
                    f"one symbol per name (two different symbols are named {symbol.name!r})",
                )
        replacement = {s: explicit.get(s.name) or _realify(s) for s in everything}
        objective = objective.xreplace(replacement)
        relations = [r.xreplace(replacement) for r in relations]
        found = {symbol.name: symbol for symbol in replacement.values()}

        def resolve(items: list[sp.Symbol | str] | None) -> tuple[sp.Symbol, ...] | None:
            if items is None:
                return None
            return tuple(
                item
                if isinstance(item, sp.Symbol)
                else found.get(item) or sp.Symbol(item, real=True)
                for item in items
            )

        var_tuple = resolve(given_variables)
        par_tuple = resolve(given_params)
        if var_tuple is None:
            taken = {s.name for s in par_tuple or ()}
            rest = [s for name, s in found.items() if name not in taken]
            var_tuple = tuple(sorted(rest, key=_symbol_key))
            par_tuple = par_tuple or ()
        elif par_tuple is None:
            taken = {s.name for s in var_tuple}
            rest = [s for name, s in found.items() if name not in taken]
            par_tuple = tuple(sorted(rest, key=_symbol_key))
        else:
            known = {s.name for s in var_tuple + par_tuple}
            stray = sorted((n for n in found if n not in known), key=natural_key)
            if stray:
                raise invalid(
                    "variables",
                    variables,
                    f"every symbol listed in variables or params (not listed: {', '.join(stray)})",
                )
        if not var_tuple:
            raise invalid("variables", variables, "at least one variable (expr has none)")

        self._expr: sp.Expr = objective
        self._variables: tuple[sp.Symbol, ...] = var_tuple
        self._params: tuple[sp.Symbol, ...] = par_tuple
        canonical, inequalities, equalities, kinds = [], [], [], []
        for relation, original in zip(relations, originals, strict=True):
            form, kind = self._canonical(relation, original)
            canonical.append(
                sp.Le(form, 0, evaluate=False) if kind == "<=" else sp.Eq(form, 0, evaluate=False)
            )
            (inequalities if kind == "<=" else equalities).append(form)
            kinds.append(kind)
        self._constraints = tuple(canonical)
        self._inequalities = tuple(inequalities)
        self._equalities = tuple(equalities)
        self._kinds = tuple(kinds)
        self._gradient: sp.ImmutableMatrix | None = None
        self._hessian: sp.ImmutableMatrix | None = None

    # -- construction helpers -------------------------------------------------------------
    @staticmethod
    def _objective(expr: Any, names: Mapping[str, sp.Symbol]) -> sp.Expr:
        if isinstance(expr, str):
            return parse_expression(expr, names)
        if isinstance(expr, Relational) or (
            isinstance(expr, sp.logic.boolalg.Boolean) and not isinstance(expr, sp.Expr)
        ):
            raise invalid(
                "expr", expr, "an expression, not a relation (constraints go in constraints=)"
            )
        if isinstance(expr, sp.Expr):
            if expr.has(sp.zoo, sp.nan):
                raise invalid("expr", expr, "an expression that is defined (no zoo or nan)")
            return expr
        if isinstance(expr, numbers.Real) and not isinstance(expr, bool):
            return to_sympy("expr", expr)
        raise invalid("expr", expr, "a string or a SymPy expression")

    @staticmethod
    def _relations(
        constraints: Any, names: Mapping[str, sp.Symbol]
    ) -> tuple[tuple[Any, ...], list[Relational]]:
        if isinstance(constraints, str | Relational | sp.logic.boolalg.BooleanAtom):
            constraints = (constraints,)
        if not isinstance(constraints, Iterable):
            raise invalid("constraints", constraints, "a relation or a sequence of relations")
        originals = tuple(constraints)
        out = []
        for item in originals:
            if isinstance(item, str):
                out.append(parse_relation(item, names))
            elif isinstance(item, Relational):
                out.append(item)
            else:
                raise invalid("constraints", item, "relations with <=, >= or ==, as text or SymPy")
        return originals, out

    def _canonical(self, relation: Relational, original: Any) -> tuple[sp.Expr, str]:
        if isinstance(relation, LessThan):
            form, kind = relation.lhs - relation.rhs, "<="
        elif isinstance(relation, GreaterThan):
            form, kind = relation.rhs - relation.lhs, "<="
        elif isinstance(relation, Equality):
            form, kind = relation.lhs - relation.rhs, "=="
        else:
            raise invalid(
                "constraints",
                original,
                "relations with <=, >= or == (strict inequalities and != define sets that are "
                "not closed)",
            )
        if not form.free_symbols & set(self._variables):
            raise invalid("constraints", original, "a relation that involves the variables")
        return form, kind

    # -- attributes -----------------------------------------------------------------------
    @property
    def expr(self) -> sp.Expr:
        """The objective."""
        return self._expr

    @property
    def variables(self) -> tuple[sp.Symbol, ...]:
        """The variables, in order."""
        return self._variables

    @property
    def params(self) -> tuple[sp.Symbol, ...]:
        """The parameters (symbols that are not optimized over)."""
        return self._params

    @property
    def constraints(self) -> tuple[Relational, ...]:
        """The constraints as ``g <= 0`` and ``h == 0``, in the order given."""
        return self._constraints

    @property
    def inequalities(self) -> tuple[sp.Expr, ...]:
        """``g_i`` of the inequality constraints ``g_i(x) <= 0``."""
        return self._inequalities

    @property
    def equalities(self) -> tuple[sp.Expr, ...]:
        """``h_j`` of the equality constraints ``h_j(x) == 0``."""
        return self._equalities

    @property
    def constraint_kinds(self) -> tuple[str, ...]:
        """``"<="`` or ``"=="`` for each of :attr:`constraints`."""
        return self._kinds

    def symbol(self, name: str) -> sp.Symbol:
        """The variable or parameter called ``name``."""
        for symbol in self._variables + self._params:
            if symbol.name == name:
                return symbol
        names = ", ".join(s.name for s in self._variables + self._params)
        raise invalid("name", name, f"one of {names}")

    # -- derivatives ----------------------------------------------------------------------
    def gradient(self) -> sp.ImmutableMatrix:
        """The gradient as an n x 1 column (computed once).

        Returns
        -------
        sympy.ImmutableMatrix
            ``[df/dx_1, ..., df/dx_n]^T`` in the order of :attr:`variables`.
        """
        if self._gradient is None:
            self._gradient = sp.ImmutableMatrix(_diff_all(self._expr, self._variables))
        return self._gradient

    def hessian(self) -> sp.ImmutableMatrix:
        """The Hessian as an n x n symmetric matrix (computed once).

        Only the upper triangle is differentiated and mirrored, so the matrix is exactly
        symmetric even where SymPy writes mixed partials of non-smooth functions differently.
        """
        if self._hessian is None:
            gradient = self.gradient()
            n = len(self._variables)
            entries: dict[tuple[int, int], sp.Expr] = {}
            for i in range(n):
                row = _diff_all(gradient[i], self._variables[i:])
                for j, entry in enumerate(row, start=i):
                    entries[i, j] = entries[j, i] = entry
            self._hessian = sp.ImmutableMatrix(n, n, lambda i, j: entries[i, j])
        return self._hessian

    # -- points ---------------------------------------------------------------------------
    def _names(self) -> dict[str, sp.Symbol]:
        return {s.name: s for s in self._variables + self._params}

    def point(self, point: Any, argument: str = "point") -> tuple[sp.Expr, ...]:
        """A point as a tuple of SymPy values in the order of :attr:`variables`.

        Parameters
        ----------
        point : mapping, sequence or scalar
            ``{"x": 1, "y": 2}`` (names or symbols as keys, every variable present), a
            sequence of length n (also a SymPy vector), or a scalar where n == 1. Values are
            numbers, strings such as ``"pi/4"``, or SymPy expressions.
        argument : str
            Name used in error messages.
        """
        n = len(self._variables)
        names = self._names()
        if isinstance(point, Mapping):
            values: dict[str, Any] = {}
            for key, value in point.items():
                key_name = key.name if isinstance(key, sp.Symbol) else key
                if key_name not in {v.name for v in self._variables}:
                    allowed = ", ".join(v.name for v in self._variables)
                    raise invalid(argument, point, f"keys among the variables ({allowed})")
                values[key_name] = value
            missing = [v.name for v in self._variables if v.name not in values]
            if missing:
                raise invalid(argument, point, f"a value for every variable (missing {missing})")
            items = [values[v.name] for v in self._variables]
        elif isinstance(point, sp.MatrixBase):
            items = list(point)
        elif isinstance(point, str | sp.Expr | numbers.Number) and not isinstance(point, bool):
            if n != 1:
                raise invalid(argument, point, f"a mapping or a sequence of {n} values")
            items = [point]
        elif isinstance(point, Iterable):
            items = list(point.tolist() if hasattr(point, "tolist") else point)
        else:
            raise invalid(argument, point, "a mapping, a sequence or a number")
        if len(items) != n:
            raise invalid(argument, point, f"{n} coordinates (one per variable)")
        return tuple(to_sympy(argument, item, names) for item in items)

    def _at(self, point: Any, argument: str = "point") -> dict[sp.Symbol, sp.Expr]:
        return dict(zip(self._variables, self.point(point, argument), strict=True))

    def value_at(self, point: Any) -> sp.Expr:
        """The objective at ``point``, exact (use ``float(...)`` or ``.evalf()`` for a number).

        Parameters
        ----------
        point : mapping, sequence or scalar
            As in :meth:`point`.
        """
        return self._expr.subs(self._at(point))

    def gradient_at(self, point: Any) -> sp.ImmutableMatrix:
        """The gradient at ``point``, exact.

        ``Problem("tanh(x)").gradient_at(4).evalf()`` is about 0.00134: the vanishing gradient
        of a saturated activation.
        """
        return self.gradient().subs(self._at(point))

    def hessian_at(self, point: Any) -> sp.ImmutableMatrix:
        """The Hessian at ``point``, exact."""
        return self.hessian().subs(self._at(point))

    # -- models ---------------------------------------------------------------------------
    def taylor(self, point: Any, order: int = 2) -> sp.Expr:
        """The Taylor polynomial of the objective around ``point``.

        Parameters
        ----------
        point : mapping, sequence or scalar
            The expansion point, as in :meth:`point`.
        order : int
            Highest total degree, at least 0.

        Returns
        -------
        sympy.Expr
            ``sum over |k| <= order of D^k f(a) (x - a)^k / k!`` as an expression in the
            variables; exact for a polynomial of degree <= ``order``.

        Notes
        -----
        Computed along the ray ``a + t (x - a)``: the m-th derivative in ``t`` at 0 is the
        m-th order term times m!, so one derivative per order gives every mixed partial.
        """
        order = check_int("order", order, minimum=0)
        at = self._at(point)
        t = sp.Dummy("t", real=True)
        ray = {v: a + t * (v - a) for v, a in at.items()}
        current = self._expr.xreplace(ray)
        if self._expr.is_polynomial(*self._variables) and not current.has(sp.Float):
            # a polynomial in t: its coefficients are the terms, no derivatives needed
            along = sp.Poly(current, t)
            return sp.Add(*(along.coeff_monomial(t**m) for m in range(order + 1)))
        terms = []
        for m in range(order + 1):
            term = current.subs(t, 0)
            if term.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
                raise invalid(
                    "point",
                    point,
                    f"a point where the objective has derivatives up to order {order}",
                )
            terms.append(term / sp.factorial(m))
            if m < order:
                current = sp.diff(current, t)
        return sp.Add(*terms)

    def restrict_to_line(self, x: Any, y: Any) -> Problem:
        """The objective on the line through ``y`` and ``x``: ``g(z) = f(z x + (1 - z) y)``.

        ``f`` is convex if and only if every such ``g`` is (section 11.2), so
        ``convexity(p.restrict_to_line(x, y))`` checks one line.

        Parameters
        ----------
        x, y : mapping, sequence or scalar
            Points as in :meth:`point`; they may hold symbols (a generic line), which become
            parameters of the result.

        Returns
        -------
        Problem
            A one-variable problem; its variable ``g.variables[0]`` is the line's coordinate
            ``z`` (named ``z``, or ``z1``, ``z2``, ... where ``z`` is taken). Its parameters are
            this problem's and the symbols of the points.
        """
        a = self.point(x, "x")
        b = self.point(y, "y")
        taken = {s.name for s in self._variables + self._params}
        taken |= {s.name for value in a + b for s in value.free_symbols}
        name, counter = "z", 0
        while name in taken:
            counter += 1
            name = f"z{counter}"
        z = sp.Symbol(name, real=True)
        line = {v: z * ai + (1 - z) * bi for v, ai, bi in zip(self._variables, a, b, strict=True)}
        restricted = self._expr.xreplace(line)
        extra = {s for value in a + b for s in value.free_symbols} - set(self._params)
        params = tuple(self._params) + tuple(sorted(extra, key=_symbol_key))
        return Problem(restricted, variables=(z,), params=params)

    def subs(self, **values: Any) -> Problem:
        """The problem with parameters bound: ``Problem("a*x**2", params="a").subs(a=2)``.

        Parameters
        ----------
        **values
            Parameter name to value (number, string or SymPy expression).
        """
        mapping = {}
        params = {s.name: s for s in self._params}
        for name, value in values.items():
            if name not in params:
                allowed = ", ".join(params) or "none: this problem has no parameters"
                raise invalid(name, value, f"a parameter name among: {allowed}")
            mapping[params[name]] = to_sympy(name, value, self._names())
        remaining = tuple(s for s in self._params if s not in mapping)
        return Problem(
            self._expr.subs(mapping),
            variables=self._variables,
            params=remaining,
            constraints=tuple(c.subs(mapping) for c in self._constraints),
        )

    # -- critical points ------------------------------------------------------------------
    def critical_points(
        self,
        domain: Any = None,
        *,
        timeout: float | None = 10.0,
        samples: int = 2000,
    ) -> SolutionList:
        """Stationary points (gradient zero) with their kind from the Hessian's eigenvalues.

        Parameters
        ----------
        domain : sequence of (low, high) pairs, or one pair where n == 1, optional
            A box to search in; points outside it are dropped. Default: all of R^n. Only
            stationary points are listed, not minima on the box's boundary.
        timeout : float or None
            Seconds allowed to SymPy's solver (enforced in the main thread on POSIX).
        samples : int
            Sample count of the numeric search used where SymPy finds no closed form.

        Returns
        -------
        SolutionList of CriticalPoint
            Real critical points in ascending order of their coordinates. ``.complete`` says
            whether the list is known to hold all of them: exact for polynomial gradients and
            for one variable where SymPy's ``solveset`` solves over the domain; a numeric
            search (on a bounded domain, where SymPy finds no closed form) and
            ``sympy.solve`` on transcendental systems may miss points.

        Raises
        ------
        SolveError
            Where SymPy cannot solve the system and the domain is unbounded (so no numeric
            search is possible), where the critical points in the domain are infinitely many
            (``sin(x)`` on R, ``relu(x)``), or where time runs out.
        ValueError
            Where the problem still has parameters (bind them with :meth:`subs`).
        """
        if self._params:
            raise invalid(
                "params",
                self._params,
                "no parameters: bind them with subs() before asking for critical points",
            )
        box = self._domain(domain)
        samples = check_int("samples", samples, minimum=10)
        gradient = list(self.gradient())
        if len(self._variables) == 1:
            solutions, complete, notes = self._solve_one(gradient[0], box[0], timeout, samples)
        else:
            solutions, complete, notes = self._solve_many(gradient, box, timeout, samples)
        families = [p for p in solutions if _free(p)]
        points = []
        seen = set()
        for point in solutions:
            if point in seen or any(_on_family(point, f) for f in families if f != point):
                continue
            seen.add(point)
            points.append(self._classify(point))
        points.sort(key=lambda c: tuple(_sort_number(v) for v in c.point))
        return SolutionList(points, complete=complete, notes=notes)

    def _domain(self, domain: Any) -> list[tuple[sp.Expr, sp.Expr]]:
        n = len(self._variables)
        if domain is None:
            return [(-sp.oo, sp.oo)] * n
        pairs = domain
        if n == 1 and isinstance(domain, Sequence) and len(domain) == 2:
            if not isinstance(domain[0], Sequence) or isinstance(domain[0], str):
                pairs = [domain]
        if not isinstance(pairs, Sequence) or len(pairs) != n:
            raise invalid("domain", domain, f"{n} (low, high) pairs, one per variable")
        box = []
        for pair in pairs:
            if not isinstance(pair, Sequence) or isinstance(pair, str) or len(pair) != 2:
                raise invalid("domain", domain, "(low, high) pairs")
            low, high = (to_sympy("domain", bound) for bound in pair)
            if low.free_symbols or high.free_symbols or not bool(low < high):
                raise invalid("domain", domain, "numeric pairs with low < high")
            box.append((low, high))
        return box

    def _solve_one(
        self,
        derivative: sp.Expr,
        bounds: tuple[sp.Expr, sp.Expr],
        timeout: float | None,
        samples: int,
    ) -> tuple[list[tuple[sp.Expr, ...]], bool, list[str]]:
        x = self._variables[0]
        low, high = bounds
        if derivative == 0:
            return [(x,)], True, ["f' is identically zero: every point is critical"]
        interval = sp.Interval(low, high)
        try:
            with time_limit(timeout):
                found = sp.solveset(derivative, x, interval)
        except _Timeout:
            found = None
            why = f"solveset did not finish within timeout={timeout} s"
        except (NotImplementedError, ValueError, TypeError) as err:
            found = None
            why = f"solveset failed: {err}"
        else:
            why = f"solveset gave {found}"
        if isinstance(found, sp.FiniteSet):
            points = [(value,) for value in found if is_real_value(value)]
            return points, True, [f"solveset of f' = 0 over {interval}"]
        if found is sp.S.EmptySet:
            return [], True, [f"solveset of f' = 0 over {interval}: no solution"]
        if isinstance(found, sp.Set) and _infinite(found):
            raise SolveError(
                f"f' = 0 on infinitely many points of {interval} ({found}); for a periodic "
                "objective pass a bounded domain=(low, high)"
            )
        if not (low.is_finite and high.is_finite):
            raise SolveError(
                f"no closed form for the critical points of {self._expr} ({why}); pass a "
                "bounded domain=(low, high) for a numeric search"
            )
        roots = _scan_roots(self._variables, derivative, (float(low), float(high)), samples)
        return (
            [(sp.Float(r, 15),) for r in roots],
            False,
            [
                f"{why}; numeric search: {samples} samples of f' on {interval}, refined where "
                "f' changes sign (zeros where f' touches 0 without changing sign may be missed)"
            ],
        )

    def _solve_many(
        self,
        gradient: list[sp.Expr],
        box: list[tuple[sp.Expr, sp.Expr]],
        timeout: float | None,
        samples: int,
    ) -> tuple[list[tuple[sp.Expr, ...]], bool, list[str]]:
        variables = self._variables
        polynomial = all(g.is_polynomial(*variables) for g in gradient)
        bounded = all(low.is_finite and high.is_finite for low, high in box)
        search = "numeric search: Newton's method from a grid of starting points in the domain"
        try:
            nonzero = [g for g in gradient if g != 0]
            # an identically zero gradient: every point is critical (a family of all variables)
            solutions = solve_system(nonzero, variables, timeout) if nonzero else [{}]
        except SolveError as err:
            if not bounded:
                raise SolveError(f"{err}; pass a bounded domain for a numeric search") from None
            roots = _newton_roots(variables, gradient, self.hessian(), box, samples)
            return [tuple(sp.Float(c, 15) for c in r) for r in roots], False, [f"{err}; {search}"]
        points = []
        for solution in solutions:
            point = tuple(solution.get(v, v) for v in variables)
            if not all(is_real_value(c) for c in point if not c.free_symbols):
                continue
            if not _inside(point, box):
                continue
            points.append(point)
        notes = ["sympy.solve of grad f = 0"]
        if any(c.free_symbols for p in points for c in p):
            notes.append("a point with free variables stands for a curve or surface of points")
        if not polynomial:
            notes.append("the gradient is not polynomial: sympy.solve may miss solutions")
            if bounded:
                # sympy.solve lists some solutions of transcendental systems; a numeric search
                # of the box adds those it missed.
                exact = [tuple(float(sp.re(sp.N(c))) for c in p) for p in points if not _free(p)]
                for root in _newton_roots(variables, gradient, self.hessian(), box, samples):
                    if not any(_close(root, known) for known in exact):
                        points.append(tuple(sp.Float(c, 15) for c in root))
                        exact.append(root)
                notes.append(search)
        return points, polynomial, notes

    def _classify(self, point: tuple[sp.Expr, ...]) -> CriticalPoint:
        at = dict(zip(self._variables, point, strict=True))
        value = self._expr.subs(at)
        value = value.evalf(15) if any(c.has(sp.Float) for c in point) else tidy(value)
        hessian = self.hessian().subs(at)
        if hessian.has(sp.zoo, sp.nan, sp.oo, -sp.oo, sp.DiracDelta):
            return CriticalPoint(point, "degenerate", value, ())
        eigenvalues, signs = _spectrum(hessian)
        if signs is None:
            return CriticalPoint(point, "degenerate", value, eigenvalues)
        positive, negative, zero = (signs.count(s) for s in (1, -1, 0))
        if positive and negative:
            kind = "saddle"
        elif zero:
            kind = "degenerate"
        elif positive:
            kind = "minimum"
        else:
            kind = "maximum"
        return CriticalPoint(point, kind, value, eigenvalues)

    # -- display --------------------------------------------------------------------------
    def __repr__(self) -> str:
        parts = [str(self._expr), f"variables={self._variables}"]
        if self._params:
            parts.append(f"params={self._params}")
        if self._constraints:
            parts.append(f"constraints={self._constraints}")
        return f"Problem({', '.join(parts)})"

    def _repr_latex_(self) -> str:
        variables = ", ".join(sp.latex(v) for v in self._variables)
        text = rf"\underset{{{variables}}}{{\operatorname{{minimize}}}}\; {sp.latex(self._expr)}"
        if self._constraints:
            conditions = r", \; ".join(sp.latex(c) for c in self._constraints)
            text += rf" \quad \text{{subject to}}\; {conditions}"
        return f"$\\displaystyle {text}$"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Problem):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> tuple:
        return (self._expr, self._variables, self._params, self._constraints)


def _derivative(expr: sp.Expr, v: sp.Symbol) -> sp.Expr:
    """``diff(expr, v)``, with sums, products and powers of ``v`` done by hand.

    SymPy's ``diff`` builds a ``Derivative`` for every term of a sum, also for the terms
    without ``v``; for the 465 terms of a 30-variable quadratic that costs seconds. Sums and
    products here only visit the factors that contain ``v``; everything else is ``diff``.
    """
    if expr == v:
        return sp.S.One
    if v not in expr.free_symbols:
        return sp.S.Zero
    if expr.is_Pow and expr.base == v and expr.exp.is_Number:
        return expr.exp * v ** (expr.exp - 1)
    if expr.is_Add:
        return sp.Add(*(_derivative(term, v) for term in expr.args if v in term.free_symbols))
    if expr.is_Mul:
        factors = expr.args
        return sp.Add(
            *(
                sp.Mul(*factors[:i], _derivative(factor, v), *factors[i + 1 :])
                for i, factor in enumerate(factors)
                if v in factor.free_symbols
            )
        )
    return sp.diff(expr, v)


def _diff_all(expr: sp.Expr, variables: Sequence[sp.Symbol]) -> list[sp.Expr]:
    """``[diff(expr, v) for v in variables]``, each term of a sum differentiated only by the
    variables it contains."""
    terms = expr.args if expr.is_Add else (expr,)
    wanted = set(variables)
    parts: dict[sp.Symbol, list[sp.Expr]] = {v: [] for v in variables}
    for term in terms:
        for v in term.free_symbols & wanted:
            parts[v].append(_derivative(term, v))
    return [sp.Add(*parts[v]) for v in variables]


# -- helpers for critical points ---------------------------------------------------------


def _sort_number(value: sp.Expr) -> tuple[int, float, str]:
    if value.free_symbols:
        return (1, 0.0, str(value))
    return (0, float(sp.re(value.evalf(20))), "")


def tidy(value: sp.Expr, seconds: float = 1.0) -> sp.Expr:
    """``sympy.simplify(value)`` where it finishes within ``seconds`` and is no longer."""
    if value.has(sp.Float) or not value.is_number:
        return value
    try:
        with time_limit(seconds):
            simpler = sp.simplify(value)
    except (_Timeout, NotImplementedError, ValueError, TypeError):
        return value
    return simpler if sp.count_ops(simpler) <= sp.count_ops(value) else value


def _free(point: tuple[sp.Expr, ...]) -> bool:
    return any(c.free_symbols for c in point)


def _on_family(point: tuple[sp.Expr, ...], family: tuple[sp.Expr, ...]) -> bool:
    """Whether an isolated solution is one point of a family that sympy.solve also listed."""
    if _free(point):
        return False
    free = sorted(set().union(*(c.free_symbols for c in family)), key=_symbol_key)
    equations = [f - p for f, p in zip(family, point, strict=True)]
    try:
        with time_limit(2.0):
            return bool(sp.solve(equations, free, dict=True))
    except (_Timeout, NotImplementedError, ValueError, TypeError):
        return False


def _close(a: Sequence[float], b: Sequence[float], tolerance: float = 1e-8) -> bool:
    return max(abs(x - y) for x, y in zip(a, b, strict=True)) <= tolerance * max(
        1.0, *(abs(x) for x in a)
    )


def is_real_value(value: sp.Expr) -> bool:
    """Whether a constant is real: by SymPy's assumptions, else by a 30-digit evaluation."""
    if value.is_real is not None:
        return bool(value.is_real)
    number = sp.N(value, 30)
    return abs(sp.im(number)) < 1e-25 * max(1, abs(sp.re(number)))


def _inside(point: tuple[sp.Expr, ...], box: list[tuple[sp.Expr, sp.Expr]]) -> bool:
    for value, (low, high) in zip(point, box, strict=True):
        if value.free_symbols:
            continue
        number = sp.re(sp.N(value, 30))
        if (low.is_finite and number < low) or (high.is_finite and number > high):
            return False
    return True


def _infinite(found: sp.Set) -> bool:
    """Whether a solution set is known to be infinite (an interval, a periodic family)."""
    if isinstance(found, sp.Interval | sp.ImageSet):
        return True
    if isinstance(found, sp.Union):
        return any(_infinite(arg) for arg in found.args)
    return False


def sign_of(value: sp.Expr) -> int | None:
    """-1, 0 or 1 for a constant expression, exactly where SymPy can decide it.

    Exact zero tests come first (``is_zero``, then ``equals(0)``); where they cannot decide,
    a 50-digit evaluation decides, with values below 1e-40 in size counted as zero. Returns
    None for an expression with free symbols or one that does not evaluate to a real number.
    """
    if value.free_symbols:
        return None
    if value.is_zero:
        return 0
    if value.is_positive:
        return 1
    if value.is_negative:
        return -1
    if isinstance(value, sp.Float):
        return int(value > 0) - int(value < 0)
    if value.equals(0):
        return 0
    number = sp.N(value, 50)
    if not number.is_real or not number.is_finite:
        if abs(sp.im(number)) > 1e-40:
            return None
        number = sp.re(number)
    if abs(number) < sp.Float("1e-40"):
        return 0
    return 1 if number > 0 else -1


def _spectrum(matrix: sp.MatrixBase) -> tuple[tuple[sp.Expr, ...], list[int] | None]:
    """Eigenvalues of a symmetric matrix (ascending) and the sign of each.

    Exact matrices: the signs come from the characteristic polynomial by Descartes' rule of
    signs, which counts the positive roots exactly for a polynomial with only real roots
    (as a real symmetric matrix's is); the eigenvalues are exact where SymPy finds them in
    closed form. Float matrices and matrices larger than 12 x 12: a 30-digit numeric
    eigendecomposition, with eigenvalues below 1e-9 relative to the largest counted as zero.
    """
    n = matrix.shape[0]
    if matrix.free_symbols:
        # along a curve of critical points: exact eigenvalues, signs from the assumptions
        try:
            with time_limit(2.0):
                found = matrix.eigenvals(multiple=True)
        except (_Timeout, NotImplementedError, sp.polys.polyerrors.PolynomialError):
            return (), None
        signs_or_none = [
            0 if v.is_zero else 1 if v.is_positive else -1 if v.is_negative else None for v in found
        ]
        if None in signs_or_none:
            return tuple(found), None
        return tuple(found), [s for s in signs_or_none if s is not None]
    exact = not matrix.has(sp.Float) and n <= 12
    if exact:
        coefficients = matrix.charpoly().all_coeffs()
        signs_of = [sign_of(c) for c in coefficients]
        if None not in signs_of:
            zero = 0
            while signs_of and signs_of[-1] == 0:
                signs_of.pop()
                zero += 1
            positive = _sign_changes(signs_of)
            flipped = [s * (-1) ** (len(signs_of) - 1 - i) for i, s in enumerate(signs_of)]
            negative = _sign_changes(flipped)
            if positive + negative + zero == n:
                eigenvalues = _exact_eigenvalues(matrix)
                signs = sorted([-1] * negative + [0] * zero + [1] * positive)
                return eigenvalues, signs
    with mpmath.workdps(30):
        values = mpmath.eigsy(mpmath.matrix(matrix.evalf(30).tolist()), eigvals_only=True)
        numbers_ = sorted(float(v) for v in values)
    scale = max([abs(v) for v in numbers_] + [1.0])
    signs = [0 if abs(v) <= 1e-9 * scale else (1 if v > 0 else -1) for v in numbers_]
    return tuple(sp.Float(v, 15) for v in numbers_), signs


def _sign_changes(signs: list[int]) -> int:
    nonzero = [s for s in signs if s != 0]
    return sum(1 for a, b in zip(nonzero, nonzero[1:], strict=False) if a != b)


def _exact_eigenvalues(matrix: sp.MatrixBase) -> tuple[sp.Expr, ...]:
    try:
        with time_limit(2.0):
            values = matrix.eigenvals(multiple=True)
    except (_Timeout, NotImplementedError, sp.polys.polyerrors.PolynomialError):
        values = None
    # CRootOf, or Cardano's formula with complex cube roots (casus irreducibilis), is no
    # clearer than a float
    if values is None or any(v.has(sp.CRootOf, sp.I) for v in values):
        with mpmath.workdps(30):
            found = mpmath.eigsy(mpmath.matrix(matrix.evalf(30).tolist()), eigvals_only=True)
        return tuple(sorted(sp.Float(float(v), 15) for v in found))
    return tuple(sorted(values, key=_sort_number))


def _numeric(variables: Sequence[sp.Symbol], expr: Any) -> Callable[..., Any]:
    """An mpmath function of ``expr``; arguments are Dummies, whatever the symbols' names."""
    dummies = [sp.Dummy() for _ in variables]
    replaced = expr.xreplace(dict(zip(variables, dummies, strict=True)))
    return sp.lambdify(dummies, replaced, modules="mpmath")


def _scan_roots(
    variables: Sequence[sp.Symbol], derivative: sp.Expr, bounds: tuple[float, float], samples: int
) -> list[float]:
    """Zeros of a one-variable function on [low, high]: sign changes between samples, refined."""
    function = _numeric(variables, derivative)
    low, high = bounds
    grid = [low + (high - low) * i / (samples - 1) for i in range(samples)]
    values = []
    for point in grid:
        try:
            value = function(mpmath.mpf(point))
            values.append(float(value) if mpmath.im(value) == 0 else math.nan)
        except (ValueError, ZeroDivisionError, TypeError):
            values.append(math.nan)
    roots: list[float] = []
    for i, (a, fa) in enumerate(zip(grid, values, strict=True)):
        if fa == 0:
            roots.append(a)
            continue
        if i + 1 == len(grid):
            break
        b, fb = grid[i + 1], values[i + 1]
        if math.isnan(fa) or math.isnan(fb) or fa * fb > 0 or fb == 0:
            continue
        with mpmath.workdps(30):
            root = mpmath.findroot(function, (mpmath.mpf(a), mpmath.mpf(b)), solver="anderson")
        roots.append(float(root))
    return roots


def _newton_roots(
    variables: Sequence[sp.Symbol],
    gradient: list[sp.Expr],
    hessian: sp.MatrixBase,
    box: list[tuple[sp.Expr, sp.Expr]],
    samples: int,
) -> list[tuple[float, ...]]:
    """Zeros of the gradient in a box by Newton's method from a grid of starting points."""
    n = len(variables)
    per_axis = max(2, int(min(samples // 10, 200) ** (1.0 / n)))
    grad_f = _numeric(variables, sp.Matrix(gradient))
    hess_f = _numeric(variables, hessian)
    axes = [
        [float(low) + (float(high) - float(low)) * (i + 0.5) / per_axis for i in range(per_axis)]
        for low, high in box
    ]
    starts: list[list[float]] = [[]]
    for axis in axes:
        starts = [s + [value] for s in starts for value in axis]
    roots: list[tuple[float, ...]] = []
    for start in starts:
        with mpmath.workdps(30):
            try:
                root = mpmath.findroot(
                    lambda *v: list(grad_f(*v)),
                    start,
                    J=lambda *v: hess_f(*v).tolist(),
                    tol=1e-25,
                    maxsteps=60,
                )
            except (ValueError, ZeroDivisionError, TypeError):
                continue
            scale = max(1.0, *(abs(float(root[i])) for i in range(n)))
            # converged to 1e-25: coordinates this small are zeros
            candidate = tuple(
                0.0 if abs(float(root[i])) < 1e-15 * scale else float(root[i]) for i in range(n)
            )
        inside = all(
            float(low) <= c <= float(high) for c, (low, high) in zip(candidate, box, strict=True)
        )
        duplicate = any(
            max(abs(a - b) for a, b in zip(candidate, r, strict=True)) < 1e-8 for r in roots
        )
        if inside and not duplicate:
            roots.append(candidate)
    return roots
