"""Constrained problems: the Lagrangian, KKT points and a penalty formulation (section 11.2.3).

A :class:`~convexkit.symbolic.problem.Problem` keeps its constraints as ``g_i(x) <= 0`` and
``h_j(x) == 0``. Here

- :func:`lagrangian` builds ``L(x, alpha, nu) = f(x) + sum_i alpha_i g_i(x) + sum_j nu_j h_j(x)``
  with named multiplier symbols;
- :func:`kkt` finds the points satisfying the KKT conditions (stationarity of L in x, primal
  feasibility, alpha >= 0, complementary slackness alpha_i g_i = 0) by enumerating active
  sets: for each set A of inequality constraints it solves stationarity together with
  ``g_i = 0`` for i in A and ``h = 0`` (the other alpha are 0), and keeps the real solutions
  with alpha >= 0 that satisfy every constraint;
- :func:`penalty` replaces the constraints by ``weight * (sum max(0, g_i)^2 + sum h_j^2)``.
"""

from __future__ import annotations

import itertools
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import sympy as sp
from sympy.solvers.simplex import InfeasibleLPError, UnboundedLPError, lpmin

from convexkit.errors import check_int, invalid
from convexkit.symbolic.problem import (
    Problem,
    SolutionList,
    SolveError,
    is_real_value,
    natural_key,
    sign_of,
    solve_system,
    tidy,
    to_sympy,
)

__all__ = ["KKTPoint", "Lagrangian", "kkt", "lagrangian", "penalty"]


@dataclass(frozen=True)
class Lagrangian:
    """``L(x, alpha, nu) = f(x) + sum_i alpha_i g_i(x) + sum_j nu_j h_j(x)``.

    Attributes
    ----------
    expr : sympy.Expr
        The Lagrangian.
    problem : Problem
        The constrained problem it belongs to.
    alphas : tuple of sympy.Symbol
        Multipliers of the inequality constraints ``g_i <= 0`` (``alpha1``, ``alpha2``, ...).
    nus : tuple of sympy.Symbol
        Multipliers of the equality constraints ``h_j == 0`` (``nu1``, ``nu2``, ...).
    multipliers : tuple of sympy.Symbol
        One multiplier per entry of ``problem.constraints``, in that order.
    """

    expr: sp.Expr
    problem: Problem
    alphas: tuple[sp.Symbol, ...]
    nus: tuple[sp.Symbol, ...]
    multipliers: tuple[sp.Symbol, ...]

    @property
    def variables(self) -> tuple[sp.Symbol, ...]:
        """The problem's variables x."""
        return self.problem.variables

    def gradient(self) -> sp.ImmutableMatrix:
        """``grad_x L``: the stationarity condition is that it vanishes."""
        return sp.ImmutableMatrix([sp.diff(self.expr, v) for v in self.variables])

    def __repr__(self) -> str:
        return f"Lagrangian({self.expr}, multipliers={self.multipliers})"

    def _repr_latex_(self) -> str:
        symbols = ", ".join(sp.latex(s) for s in self.variables + self.multipliers)
        return f"$\\displaystyle L({symbols}) = {sp.latex(self.expr)}$"


class KKTPoint(NamedTuple):
    """A point that satisfies the KKT conditions of a constrained problem.

    Attributes
    ----------
    point : tuple of sympy.Expr
        Coordinates in the order of ``problem.variables``.
    multipliers : dict of sympy.Symbol to sympy.Expr
        The value of each multiplier of the :class:`Lagrangian` (0 for inactive inequalities).
    value : sympy.Expr
        The objective at the point.
    active : tuple of int
        Indices into ``problem.constraints`` of the constraints that hold with equality at
        the point (every equality constraint, and the inequalities with ``g_i = 0``).
    """

    point: tuple[sp.Expr, ...]
    multipliers: dict[sp.Symbol, sp.Expr]
    value: sp.Expr
    active: tuple[int, ...]


def _fresh(base: str, count: int, taken: set[str]) -> tuple[sp.Symbol, ...]:
    """``count`` real symbols named base1, base2, ... avoiding ``taken`` names."""
    for separator in ("", "_", "__", "___"):
        names = [f"{base}{separator}{i}" for i in range(1, count + 1)]
        if not taken.intersection(names):
            return tuple(sp.Symbol(name, real=True) for name in names)
    raise invalid("problem", sorted(taken), f"symbol names that leave room for {base}1, ...")


def _check_problem(problem: Any) -> Problem:
    if not isinstance(problem, Problem):
        raise invalid("problem", problem, "a convexkit Problem")
    return problem


def lagrangian(problem: Problem) -> Lagrangian:
    """The Lagrangian of a constrained problem.

    Parameters
    ----------
    problem : Problem
        With constraints ``g_i(x) <= 0`` and ``h_j(x) == 0`` (a problem without constraints
        gives ``L = f``).

    Returns
    -------
    Lagrangian
        ``L = f + sum alpha_i g_i + sum nu_j h_j`` with its multiplier symbols.

    Examples
    --------
    >>> lagrangian(Problem("x**2", constraints=["x >= 1"])).expr
    alpha1*(1 - x) + x**2
    """
    problem = _check_problem(problem)
    taken = {s.name for s in problem.variables + problem.params}
    alphas = _fresh("alpha", len(problem.inequalities), taken)
    nus = _fresh("nu", len(problem.equalities), taken)
    expr = problem.expr
    expr += sp.Add(*(a * g for a, g in zip(alphas, problem.inequalities, strict=True)))
    expr += sp.Add(*(n * h for n, h in zip(nus, problem.equalities, strict=True)))
    ordered = []
    next_alpha, next_nu = iter(alphas), iter(nus)
    for kind in problem.constraint_kinds:
        ordered.append(next(next_alpha) if kind == "<=" else next(next_nu))
    return Lagrangian(expr, problem, alphas, nus, tuple(ordered))


def _same_point(a: Sequence[sp.Expr], b: Sequence[sp.Expr]) -> bool:
    return all(x == y or sign_of(x - y) == 0 for x, y in zip(a, b, strict=True))


def kkt(
    problem: Problem,
    *,
    timeout: float | None = 10.0,
    max_inequalities: int = 10,
) -> SolutionList:
    """The KKT points of a constrained problem, by enumeration of active sets.

    Parameters
    ----------
    problem : Problem
        Without parameters (bind them with ``problem.subs``).
    timeout : float or None
        Seconds allowed to SymPy for each active set's system.
    max_inequalities : int
        The most inequality constraints accepted (2**m active sets are solved).

    Returns
    -------
    SolutionList of KKTPoint
        The real points with multipliers that satisfy stationarity, primal feasibility, dual
        feasibility (alpha >= 0) and complementary slackness, sorted by value, each point
        once (with the multipliers found for the smallest active set). Where the multipliers
        are not unique (constraint gradients linearly dependent), one valid choice is given.
        ``.complete`` is False where some active set's system could not be solved, is not
        polynomial (``sympy.solve`` may miss solutions of a transcendental system), or has a
        continuum of KKT points (a face of minimizers of a linear program: one point of it
        is listed; where the face's conditions are not linear, none); ``.notes`` says which.

    Notes
    -----
    KKT points are candidates: for a convex problem (convex f and g_i, affine h_j) each is a
    global minimizer, otherwise they include maxima and saddle points of the constrained
    problem as well.
    """
    problem = _check_problem(problem)
    max_inequalities = check_int("max_inequalities", max_inequalities, minimum=0)
    if problem.params:
        raise invalid(
            "problem",
            problem,
            "a problem without parameters (bind them with problem.subs(...) first)",
        )
    inequalities, equalities = problem.inequalities, problem.equalities
    if len(inequalities) > max_inequalities:
        raise invalid(
            "problem",
            problem,
            f"at most max_inequalities={max_inequalities} inequality constraints "
            f"(it has {len(inequalities)}; 2**m active sets are solved)",
        )
    lag = lagrangian(problem)
    variables = problem.variables
    stationarity = list(lag.gradient())
    system = stationarity + list(inequalities) + list(equalities)
    polynomial = all(e.is_polynomial(*variables, *lag.multipliers) for e in system)
    notes = ["active sets enumerated; each system solved exactly (sympy.linsolve or sympy.solve)"]
    if not polynomial:
        notes.append("the KKT system is not polynomial: sympy.solve may miss solutions")
    complete = polynomial
    found: list[KKTPoint] = []
    for size in range(len(inequalities) + 1):
        for active in itertools.combinations(range(len(inequalities)), size):
            inactive = {a: sp.S.Zero for i, a in enumerate(lag.alphas) if i not in active}
            equations = [e.xreplace(inactive) for e in stationarity]
            equations += [inequalities[i] for i in active] + list(equalities)
            unknowns = list(variables) + [lag.alphas[i] for i in active] + list(lag.nus)
            try:
                solutions = solve_system(equations, unknowns, timeout)
            except SolveError as err:
                complete = False
                notes.append(f"active set {active}: {err}")
                continue
            for solution in solutions:
                values = {u: solution.get(u, u) for u in unknowns}
                free = sorted(
                    set().union(*(v.free_symbols for v in values.values())) & set(unknowns),
                    key=lambda s: natural_key(s.name),
                )
                if free:
                    outcome, values = _family(problem, lag, values, active, free)
                    if outcome == "infeasible":
                        continue
                    if outcome != "point":
                        complete = False
                        notes.append(f"active set {active}: {outcome} ({solution})")
                    if values is None:
                        continue
                candidate = _candidate(problem, lag, values, inactive)
                if candidate is None:
                    continue
                if any(_same_point(candidate.point, k.point) for k in found):
                    continue
                found.append(candidate)
    found.sort(key=lambda k: (float(sp.re(sp.N(k.value))), [float(sp.N(c)) for c in k.point]))
    return SolutionList(found, complete=complete, notes=notes)


def _family(
    problem: Problem,
    lag: Lagrangian,
    values: dict[sp.Symbol, sp.Expr],
    active: tuple[int, ...],
    free: list[sp.Symbol],
) -> tuple[str, dict[sp.Symbol, sp.Expr] | None]:
    """Settle a solution with free unknowns (multipliers that are not unique, or a face).

    The conditions left to check (inactive constraints feasible, active multipliers
    nonnegative) are solved as an exact linear program where they are linear in the free
    unknowns. Returns ``("infeasible", None)``, ``("point", values)`` when the point is
    determined and some multipliers satisfy the conditions, ``("a continuum of KKT points
    (one listed)", values)``, or a reason and None where the conditions are not linear.
    """
    conditions = [
        sp.Le(g.xreplace(values), 0) for i, g in enumerate(problem.inequalities) if i not in active
    ]
    conditions += [sp.Ge(values[lag.alphas[i]], 0) for i in active]
    conditions = [c for c in conditions if c not in (sp.true,)]
    if sp.false in conditions:
        return "infeasible", None
    sides = [c.lhs - c.rhs for c in conditions]
    if not all(_affine(side, free) for side in sides):
        return "a continuum of solutions with nonlinear conditions left out", None
    try:
        _, chosen = lpmin(sp.S.Zero, conditions) if conditions else (0, {})
    except InfeasibleLPError:
        return "infeasible", None
    except UnboundedLPError:
        chosen = {}
    fixed = {s: to_sympy("multiplier", chosen.get(s, 0)) for s in free}
    settled = {u: v.xreplace(fixed) for u, v in values.items()}
    determined = not any(values[v].free_symbols & set(free) for v in problem.variables)
    if determined:
        return "point", settled
    return "a continuum of KKT points (one listed)", settled


def _affine(expr: sp.Expr, symbols: Sequence[sp.Symbol]) -> bool:
    if not expr.is_polynomial(*symbols):
        return False
    return not (expr.free_symbols & set(symbols)) or sp.Poly(expr, *symbols).total_degree() <= 1


def _candidate(
    problem: Problem,
    lag: Lagrangian,
    values: dict[sp.Symbol, sp.Expr],
    inactive: dict[sp.Symbol, sp.Expr],
) -> KKTPoint | None:
    """A KKTPoint from one solution of an active set's system, or None if it fails a check."""
    if not all(is_real_value(v) for v in values.values()):
        return None
    point = tuple(values[v] for v in problem.variables)
    at = dict(zip(problem.variables, point, strict=True))
    multipliers = {m: values.get(m, inactive.get(m, sp.S.Zero)) for m in lag.multipliers}
    for alpha in lag.alphas:
        if sign_of(multipliers[alpha]) not in (0, 1):
            return None  # dual feasibility: alpha >= 0
    active = []
    for index, (kind, relation) in enumerate(
        zip(problem.constraint_kinds, problem.constraints, strict=True)
    ):
        residual = sign_of(relation.lhs.xreplace(at))
        if residual is None or (kind == "<=" and residual > 0) or (kind == "==" and residual):
            return None  # primal feasibility
        if residual == 0:
            active.append(index)
    return KKTPoint(point, multipliers, tidy(problem.expr.xreplace(at)), tuple(active))


def penalty(problem: Problem, weight: Any) -> Problem:
    """The quadratic penalty formulation of a constrained problem.

    Parameters
    ----------
    problem : Problem
        With constraints ``g_i <= 0`` and ``h_j == 0``.
    weight : positive number, str or sympy.Symbol
        The penalty weight; a name or a Symbol becomes a (positive) parameter of the result.

    Returns
    -------
    Problem
        Unconstrained: ``f + weight * (sum_i max(0, g_i)**2 + sum_j h_j**2)``. Its minimizers
        approach the constrained ones as the weight grows (for a convex problem with a
        unique solution the error shrinks like 1/weight).
    """
    problem = _check_problem(problem)
    params: Iterable[sp.Symbol] = problem.params
    if isinstance(weight, str):
        taken = {s.name for s in problem.variables + problem.params}
        if weight in taken:
            raise invalid("weight", weight, "a name that is not already a variable or parameter")
        symbol = sp.Symbol(weight, positive=True)
        value: sp.Expr = symbol
        params = tuple(params) + (symbol,)
    elif isinstance(weight, sp.Symbol):
        if weight.is_positive is False:
            raise invalid("weight", weight, "a positive number or a symbol that may be positive")
        value = weight
        if weight not in problem.params:
            params = tuple(params) + (weight,)
    elif isinstance(weight, numbers.Real | sp.Expr) and not isinstance(weight, bool):
        value = to_sympy("weight", weight)
        if value.free_symbols or sign_of(value) != 1:
            raise invalid("weight", weight, "a positive number, a name or a Symbol")
    else:
        raise invalid("weight", weight, "a positive number, a name or a Symbol")
    terms = [sp.Max(0, g) ** 2 for g in problem.inequalities]
    terms += [h**2 for h in problem.equalities]
    expr = problem.expr + value * sp.Add(*terms)
    ordered = tuple(sorted(set(params), key=lambda s: natural_key(s.name)))
    return Problem(expr, variables=problem.variables, params=ordered)
