"""Lagrangian, KKT points and the penalty formulation."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

import convexkit as ck
from convexkit.symbolic.constraints import KKTPoint, Lagrangian, kkt, lagrangian, penalty
from convexkit.symbolic.problem import Problem, sign_of

x, y = sp.symbols("x y", real=True)


def assert_kkt(problem: Problem, point: KKTPoint) -> None:
    """The four KKT conditions, checked exactly from the problem's own constraints."""
    lag = lagrangian(problem)
    at = dict(zip(problem.variables, point.point, strict=True))
    at.update(point.multipliers)
    # stationarity: grad f + sum alpha grad g + sum nu grad h = 0
    gradient = sp.Matrix([sp.diff(problem.expr, v) for v in problem.variables])
    for multiplier, kind, relation in zip(
        lag.multipliers, problem.constraint_kinds, problem.constraints, strict=True
    ):
        gradient += point.multipliers[multiplier] * sp.Matrix(
            [sp.diff(relation.lhs, v) for v in problem.variables]
        )
        residual = relation.lhs.xreplace(at)
        if kind == "<=":
            assert sign_of(residual) in (-1, 0)  # primal feasibility
            assert sign_of(point.multipliers[multiplier]) in (0, 1)  # dual feasibility
            # complementary slackness
            assert sp.simplify(point.multipliers[multiplier] * residual) == 0
        else:
            assert sp.simplify(residual) == 0
    assert sp.simplify(gradient.xreplace(at)) == sp.zeros(len(problem.variables), 1)
    assert sp.simplify(point.value - problem.expr.xreplace(at)) == 0


def test_lagrangian_form_and_multipliers() -> None:
    p = Problem("x**2 + y**2", constraints=["x + y >= 1", "x == 2*y", "y <= 3"])
    lag = ck.lagrangian(p)
    assert isinstance(lag, Lagrangian)
    a1, a2 = lag.alphas
    (n1,) = lag.nus
    assert [s.name for s in lag.multipliers] == ["alpha1", "nu1", "alpha2"]
    assert lag.multipliers == (a1, n1, a2)
    expected = x**2 + y**2 + a1 * (1 - x - y) + n1 * (x - 2 * y) + a2 * (y - 3)
    assert sp.expand(lag.expr - expected) == 0
    assert lag.gradient() == sp.ImmutableMatrix([2 * x - a1 + n1, 2 * y - a1 - 2 * n1 + a2])
    assert "alpha_{1}" in lag._repr_latex_()
    assert repr(lag).startswith("Lagrangian(")


def test_multiplier_names_avoid_the_problems_names() -> None:
    p = Problem("alpha1**2 + nu1", constraints=["alpha1 >= 1", "nu1 == 0"])
    lag = lagrangian(p)
    assert [s.name for s in lag.multipliers] == ["alpha_1", "nu_1"]


@pytest.mark.parametrize(
    ("text", "constraints", "expected"),
    [
        ("x**2 + y**2", ["x + y >= 1"], [((sp.Rational(1, 2),) * 2, (1,), (0,))]),
        (
            "(x - 2)**2 + (y - 1)**2",
            ["x**2 + y**2 <= 1", "x >= 0", "y >= 0"],
            [((2 / sp.sqrt(5), 1 / sp.sqrt(5)), (sp.sqrt(5) - 1, 0, 0), (0,))],
        ),
        ("x*y", ["x + y == 2"], [((1, 1), (-1,), (0,))]),
        ("x**2", ["x <= 5"], [((0,), (0,), ())]),
        ("x + y", ["x**2 + y**2 <= 1"], [((-sp.sqrt(2) / 2,) * 2, (sp.sqrt(2) / 2,), (0,))]),
        ("-x - y", ["x <= 1", "y <= 1", "x + y <= 3"], [((1, 1), (1, 1, 0), (0, 1))]),
        ("x", ["x >= 1", "x <= 0"], []),
        (
            "-x**2",
            ["x >= -1", "x <= 1"],
            [((-1,), (2, 0), (0,)), ((1,), (0, 2), (1,)), ((0,), (0, 0), ())],
        ),
        ("(x - 1)**2 + y**2", [], [((1, 0), (), ())]),
    ],
)
def test_kkt_points_of_known_problems(text: str, constraints: list[str], expected: list) -> None:
    p = Problem(text, constraints=constraints)
    found = ck.kkt(p)
    assert found.complete
    lag = lagrangian(p)
    got = [(k.point, tuple(k.multipliers[m] for m in lag.multipliers), k.active) for k in found]
    simplified = [
        (tuple(sp.nsimplify(c) for c in pt), tuple(sp.simplify(m) for m in ms), act)
        for pt, ms, act in got
    ]
    assert sorted(simplified, key=str) == sorted(
        [(tuple(sp.S(c) for c in pt), tuple(sp.S(m) for m in ms), act) for pt, ms, act in expected],
        key=str,
    )
    for point in found:
        assert_kkt(p, point)


def test_transcendental_kkt_system() -> None:
    p = Problem("exp(x) + x**2", constraints=["x >= 1"])
    found = kkt(p)
    assert not found.complete and any("not polynomial" in n for n in found.notes)
    (point,) = found
    assert point.point == (1,) and point.active == (0,)
    assert point.multipliers[lagrangian(p).alphas[0]] == sp.E + 2
    assert_kkt(p, point)


def test_kkt_argument_errors() -> None:
    with pytest.raises(ValueError, match="problem="):
        kkt("x**2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="subs"):
        kkt(Problem("a*x**2", params="a", constraints=["x >= 1"]))
    many = Problem("x**2", constraints=[f"x <= {k}" for k in range(1, 5)])
    with pytest.raises(ValueError, match="max_inequalities=3"):
        kkt(many, max_inequalities=3)


@st.composite
def convex_quadratic_programs(draw):
    """A strongly convex quadratic in 2 or 3 variables with feasible linear constraints."""
    n = draw(st.integers(2, 3))
    m = np.array(draw(st.lists(st.integers(-2, 2), min_size=n * n, max_size=n * n))).reshape(n, n)
    a = m @ m.T + np.eye(n, dtype=np.int64)
    b = np.array(draw(st.lists(st.integers(-4, 4), min_size=n, max_size=n)))
    inside = np.array(draw(st.lists(st.integers(-2, 2), min_size=n, max_size=n)))
    count = draw(st.integers(1, 3))
    rows = []
    for _ in range(count):
        normal = draw(st.lists(st.integers(-3, 3), min_size=n, max_size=n).filter(any))
        slack = draw(st.integers(0, 2))
        rows.append((np.array(normal), int(np.dot(normal, inside)) + slack))
    equality = draw(st.booleans())
    normals = [normal for normal, _ in rows]
    if equality:
        normals.append(np.eye(n, dtype=np.int64)[0] - np.eye(n, dtype=np.int64)[1])
    # SLSQP, the reference, is unreliable where constraint normals are parallel (LICQ fails)
    for i, first in enumerate(normals):
        for second in normals[i + 1 :]:
            assume(np.linalg.matrix_rank(np.vstack([first, second])) == 2)
    return a, b, rows, equality, inside


@settings(max_examples=20, deadline=None)
@given(program=convex_quadratic_programs())
def test_kkt_point_of_a_convex_qp_is_the_slsqp_optimum(program) -> None:
    a, b, rows, equality, inside = program
    n = len(b)
    names = [f"x{i}" for i in range(1, n + 1)]
    v = sp.Matrix(sp.symbols(names, real=True))
    expr = (v.T * sp.Matrix(a) * v)[0] / 2 + (sp.Matrix(b).T * v)[0]
    constraints = [sp.Le((sp.Matrix(normal).T * v)[0], bound) for normal, bound in rows]
    if equality:  # an equality through the feasible point `inside`
        constraints.append(sp.Eq(v[0] - v[1], int(inside[0] - inside[1])))
    p = Problem(expr, variables=list(v), constraints=constraints)
    found = kkt(p)
    assert found.complete
    assert len(found) == 1  # strongly convex: the unique KKT point is the minimizer
    (point,) = found
    assert_kkt(p, point)

    scipy_constraints = [
        {"type": "ineq", "fun": lambda u, c=normal, d=bound: d - c @ u} for normal, bound in rows
    ]
    if equality:
        target = float(inside[0] - inside[1])
        scipy_constraints.append({"type": "eq", "fun": lambda u, t=target: u[0] - u[1] - t})
    result = minimize(
        lambda u: 0.5 * u @ a @ u + b @ u,
        x0=inside.astype(float),
        jac=lambda u: a @ u + b,
        constraints=scipy_constraints,
        method="SLSQP",
        options={"ftol": 1e-12, "maxiter": 500},
    )
    assert result.success, result.message
    exact = np.array([float(c) for c in point.point])
    np.testing.assert_allclose(result.x, exact, atol=1e-5)
    assert float(point.value) <= result.fun + 1e-9


def test_penalty_formulation() -> None:
    p = Problem("x**2 + y**2", constraints=["x + y >= 1", "x == 2*y"])
    q = ck.penalty(p, 10)
    assert q.constraints == () and q.variables == p.variables
    expected = x**2 + y**2 + 10 * sp.Max(0, 1 - x - y) ** 2 + 10 * (x - 2 * y) ** 2
    assert sp.simplify(q.expr - expected) == 0
    symbolic = penalty(p, "mu")
    (mu,) = symbolic.params
    assert mu.name == "mu" and mu.is_positive
    assert sp.simplify(symbolic.subs(mu=10).expr - expected) == 0


@pytest.mark.parametrize("weight", [-1, 0, "x", True, [1]])
def test_penalty_weight_errors(weight) -> None:
    with pytest.raises(ValueError, match="weight="):
        penalty(Problem("x**2", constraints=["x >= 1"]), weight)


def test_penalty_minimizers_approach_the_constrained_optimum() -> None:
    # min x^2 s.t. x >= 1: the penalty minimizer is w / (1 + w), an error of 1 / (1 + w)
    p = Problem("x**2", constraints=["x >= 1"])
    errors = []
    for weight in (1, 10, 100, 1000):
        q = penalty(p, weight)
        f = sp.lambdify(q.variables, q.expr, "numpy")
        result = minimize(
            lambda u, f=f: f(*u),
            x0=[3.0],
            method="Nelder-Mead",
            options={"xatol": 1e-12, "fatol": 1e-15},
        )
        assert result.x[0] == pytest.approx(weight / (1 + weight), abs=1e-7)
        errors.append(1 - result.x[0])
    ratios = [errors[k] / errors[k + 1] for k in range(3)]
    assert all(r > 5 for r in ratios), ratios


def test_dependent_constraints_give_one_point_with_valid_multipliers() -> None:
    # both constraints are active at 0 with parallel gradients: the multipliers are not unique
    p = Problem("(x + 1)**2", constraints=["x >= 0", "2*x >= 0"])
    found = kkt(p)
    assert found.complete
    (point,) = found
    assert point.point == (0,) and point.active == (0, 1)
    assert_kkt(p, point)


def test_a_face_of_minimizers_is_reported_as_incomplete() -> None:
    p = Problem("x + y", constraints=["x + y >= 1", "x >= 0", "y >= 0"])
    found = kkt(p)
    assert not found.complete
    assert any("continuum" in note for note in found.notes)
    points = {k.point for k in found}
    assert {(0, 1), (1, 0)} <= points
    for point in found:
        assert_kkt(p, point)
        assert point.value == 1
