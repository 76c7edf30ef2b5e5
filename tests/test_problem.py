"""Problem: variables and parameters, derivatives, Taylor models, lines, critical points."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import convexkit as ck
from convexkit.symbolic.problem import KINDS, Problem, SolveError, natural_key

x, y, z = sp.symbols("x y z", real=True)


# -- construction ----------------------------------------------------------------------


def test_variables_default_to_natural_order() -> None:
    p = Problem("x10 + x2**2 + x1*y + alpha")
    assert [v.name for v in p.variables] == ["alpha", "x1", "x2", "x10", "y"]
    assert sorted(["x10", "x9", "x1", "y", "x"], key=natural_key) == ["x", "x1", "x9", "x10", "y"]


def test_params_and_variables_split_the_symbols() -> None:
    p = Problem("a*x**2 + b*y", params="a b")
    assert p.variables == (x, y)
    assert [s.name for s in p.params] == ["a", "b"]
    q = Problem("a*x**2 + b*y", variables=["y", "x"])
    assert q.variables == (y, x)  # the order given is kept
    assert [s.name for s in q.params] == ["a", "b"]
    with pytest.raises(ValueError, match=r"variables=.*not listed: b"):
        Problem("a*x + b", variables="x", params="a")
    with pytest.raises(ValueError, match="params="):
        Problem("a*x", variables="x a", params="a")


def test_sympy_symbols_become_real_and_points_accept_either() -> None:
    u, v = sp.symbols("u v")  # no assumptions
    p = Problem(sp.Abs(u) + v**2)
    assert all(s.is_real for s in p.variables)
    # the derivative of |u| for real u is sign(u), not the complex-valued formula
    assert p.gradient()[0] == sp.sign(p.symbol("u"))
    assert p.value_at({u: -2, "v": 3}) == 11
    positive = sp.Symbol("w", positive=True)
    assert Problem(positive**2).variables == (positive,)
    plain = sp.Symbol("w")
    # a symbol given in variables replaces the expression's symbol of the same name
    assert Problem(plain**2, variables=[positive]).variables[0].is_positive
    with pytest.raises(ValueError, match="two different symbols are named 'w'"):
        Problem(plain**2 + positive)
    assert Problem(plain + sp.Symbol("w", real=True)).expr == 2 * sp.Symbol("w", real=True)


def test_constraints_are_kept_in_canonical_form() -> None:
    p = Problem("x1**2 + x2**2", constraints=["x1 + x2 >= 1", "x1**2 + x2**2 <= 4", "x1 == 2*x2"])
    x1, x2 = p.variables
    assert p.inequalities == (1 - x1 - x2, x1**2 + x2**2 - 4)
    assert p.equalities == (x1 - 2 * x2,)
    assert p.constraint_kinds == ("<=", "<=", "==")
    assert isinstance(p.constraints[0], sp.LessThan) and p.constraints[0].rhs == 0
    assert isinstance(p.constraints[2], sp.Equality)
    q = Problem(x**2, constraints=sp.Ge(x, 1))
    assert q.inequalities == (1 - x,)
    constrained_only = Problem("x**2", constraints=["y >= 1"])
    assert constrained_only.variables == (x, y)


@pytest.mark.parametrize(
    ("kwargs", "argument", "allowed"),
    [
        ({"expr": [1, 2]}, "expr=", "a string or a SymPy expression"),
        ({"expr": sp.Eq(x, 1)}, "expr=", "not a relation"),
        ({"expr": "x", "variables": ["1x"]}, "variables=", "starting with a letter"),
        ({"expr": "x", "variables": ["pi"]}, "variables=", "other than the"),
        ({"expr": "x", "variables": 3}, "variables=", "sequence of str/Symbol"),
        ({"expr": "x", "variables": ["x", "x"]}, "variables=", "distinct names"),
        ({"expr": "x", "constraints": ["x > 0"]}, "constraints=", "strict inequalities"),
        ({"expr": "x", "constraints": ["x != 0"]}, "constraints=", "<=, >= or =="),
        ({"expr": "x", "constraints": [3]}, "constraints=", "relations with"),
        ({"expr": "x", "constraints": ["2 >= 1"]}, "constraints=", "involves the variables"),
        ({"expr": "3"}, "variables=", "at least one variable"),
    ],
)
def test_construction_errors_name_argument_value_and_allowed(kwargs, argument, allowed) -> None:
    with pytest.raises(ValueError) as info:
        Problem(**kwargs)
    assert argument in str(info.value)
    assert allowed in str(info.value)


def test_method_argument_errors() -> None:
    p = Problem("x**2 + y")
    with pytest.raises(ValueError, match=r"order=-1 .*integer >= 0"):
        p.taylor((0, 0), order=-1)
    with pytest.raises(ValueError, match=r"point=\(1, 2, 3\).*2 coordinates"):
        p.value_at((1, 2, 3))
    with pytest.raises(ValueError, match=r"point=.*missing \['y'\]"):
        p.value_at({"x": 1})
    with pytest.raises(ValueError, match=r"point=1 .*mapping or a sequence of 2"):
        p.value_at(1)
    with pytest.raises(ValueError, match=r"point=.*not a bool"):
        p.value_at((True, 1))
    with pytest.raises(ValueError, match=r"c=1 .*parameter name"):
        Problem("a*x", params="a").subs(c=1)
    with pytest.raises(ValueError, match="domain="):
        p.critical_points(domain=[(1, 0), (0, 1)])


def test_points_accept_mappings_sequences_scalars_and_text() -> None:
    p = Problem("sin(x) + y")
    assert p.value_at({"x": "pi/2", y: 1}) == 2
    assert p.value_at(["pi/6", sp.Rational(1, 2)]) == 1
    assert p.value_at(np.array([0.0, 2.0])) == sp.Float(2.0)
    assert Problem("x**2").value_at(3) == 9
    assert Problem("x**2").value_at(0.5) == sp.Float(0.25)


def test_repr_latex_equality() -> None:
    p = Problem("x^2 + a*y", params="a", constraints=["x + y <= 1"])
    assert repr(p) == (
        "Problem(a*y + x**2, variables=(x, y), params=(a,), constraints=(x + y - 1 <= 0,))"
    )
    latex = p._repr_latex_()
    assert latex.startswith("$\\displaystyle") and latex.endswith("$")
    assert "minimize" in latex and "subject to" in latex and "x^{2}" in latex
    assert Problem("x**2") == Problem("x^2") and hash(Problem("x**2")) == hash(Problem("x^2"))
    assert Problem("x**2") != Problem("x**2", variables="x y")


# -- derivatives ---------------------------------------------------------------------------

VARIABLES = sp.symbols("x1 x2 x3", real=True)


@st.composite
def polynomials(draw, degree: int = 4) -> sp.Expr:
    """A random polynomial in x1, x2, x3 with small integer coefficients."""
    terms = draw(
        st.lists(
            st.tuples(
                st.integers(-5, 5).filter(bool),
                st.tuples(*(st.integers(0, degree) for _ in VARIABLES)).filter(
                    lambda e: sum(e) <= degree
                ),
            ),
            min_size=1,
            max_size=8,
        )
    )
    return sp.Add(
        *(c * sp.Mul(*(v**k for v, k in zip(VARIABLES, e, strict=True))) for c, e in terms)
    )


@st.composite
def smooth_expressions(draw) -> sp.Expr:
    """A polynomial plus smooth functions of linear forms (exp, sin, tanh, log(1 + u^2))."""
    base = draw(polynomials(degree=3))
    wrap = draw(st.lists(st.sampled_from(["exp", "sin", "tanh", "softlog"]), max_size=3))
    for name in wrap:
        coefficients = draw(st.tuples(*(st.integers(-2, 2) for _ in VARIABLES)))
        u = sp.Rational(1, 2) * sum(c * v for c, v in zip(coefficients, VARIABLES, strict=True))
        inner = {
            "exp": sp.exp(u),
            "sin": sp.sin(u),
            "tanh": sp.tanh(u),
            "softlog": sp.log(1 + u**2),
        }[name]
        base = base + draw(st.integers(1, 3)) * inner * draw(st.sampled_from([1, VARIABLES[0]]))
    return base


def _central_gradient(f, point: np.ndarray, h: float) -> np.ndarray:
    out = np.empty(point.size)
    for i in range(point.size):
        step = np.zeros(point.size)
        step[i] = h
        out[i] = (f(*(point + step)) - f(*(point - step))) / (2 * h)
    return out


def _central_hessian(f, point: np.ndarray, h: float) -> np.ndarray:
    n = point.size
    out = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            ei, ej = np.eye(n)[i] * h, np.eye(n)[j] * h
            out[i, j] = (
                f(*(point + ei + ej))
                - f(*(point + ei - ej))
                - f(*(point - ei + ej))
                + f(*(point - ei - ej))
            ) / (4 * h * h)
    return out


@given(expr=smooth_expressions(), seed=st.integers(0, 2**32 - 1))
def test_gradient_and_hessian_match_finite_differences(expr: sp.Expr, seed: int) -> None:
    p = Problem(expr, variables=VARIABLES)
    f = sp.lambdify(VARIABLES, expr, "numpy")
    point = np.random.default_rng(seed).uniform(-1.2, 1.2, size=3)
    gradient = np.array(p.gradient_at(point.tolist()), dtype=float).ravel()
    hessian = np.array(p.hessian_at(point.tolist()), dtype=float)
    scale = 1.0 + float(np.max(np.abs(hessian)))
    fd_gradient = _central_gradient(f, point, 1e-6)
    fd_hessian = _central_hessian(f, point, 1e-4)
    np.testing.assert_allclose(gradient, fd_gradient, rtol=1e-6, atol=1e-6 * scale)
    np.testing.assert_allclose(hessian, fd_hessian, rtol=1e-4, atol=1e-4 * scale)


@given(expr=smooth_expressions())
def test_derivatives_equal_sympys_exactly(expr: sp.Expr) -> None:
    p = Problem(expr, variables=VARIABLES)
    gradient = sp.Matrix([sp.diff(expr, v) for v in VARIABLES])
    assert sp.expand(p.gradient() - gradient) == sp.zeros(3, 1)
    assert sp.expand(p.hessian() - sp.hessian(expr, VARIABLES)) == sp.zeros(3, 3)
    assert p.hessian() == p.hessian().T
    assert p.gradient() is p.gradient()  # cached


def test_hessian_of_a_30_variable_quadratic_is_quick_and_exact() -> None:
    rng = np.random.default_rng(0)
    n = 30
    a = rng.integers(-3, 4, size=(n, n))
    a = a + a.T
    names = [f"x{i}" for i in range(1, n + 1)]
    text = " + ".join(
        f"({a[i, j] if i != j else a[i, i] // 2})*{names[i]}*{names[j]}"
        for i in range(n)
        for j in range(i, n)
    )
    start = time.perf_counter()
    p = Problem(text)
    hessian = p.hessian()
    elapsed = time.perf_counter() - start
    expected = a.copy()
    np.fill_diagonal(expected, 2 * (np.diag(a) // 2))
    assert [v.name for v in p.variables] == names
    assert np.array_equal(np.array(hessian, dtype=np.int64), expected)
    assert elapsed < 2.0


def test_vanishing_gradient_of_tanh() -> None:
    p = Problem("tanh(x)")
    slope = float(p.gradient_at(4)[0])
    assert slope == pytest.approx(1 - math.tanh(4) ** 2, rel=1e-14)
    assert 0.0013 < slope < 0.00135
    assert float(Problem("relu(x)").gradient_at(4)[0]) == 1.0


# -- Taylor models -------------------------------------------------------------------------


@given(
    expr=polynomials(degree=4),
    center=st.tuples(*(st.fractions(-2, 2, max_denominator=5) for _ in VARIABLES)),
)
def test_taylor_of_degree_k_polynomial_is_exact(expr: sp.Expr, center) -> None:
    p = Problem(expr, variables=VARIABLES)
    degree = sp.Poly(expr, *VARIABLES).total_degree()
    assert sp.expand(p.taylor(center, order=degree) - expr) == 0
    assert sp.expand(p.taylor(center, order=degree + 2) - expr) == 0
    if degree >= 1:
        below = sp.expand(p.taylor(center, order=degree - 1) - expr)
        assert below != 0
        assert sp.Poly(below, *VARIABLES).total_degree() == degree


@pytest.mark.parametrize("order", [0, 1, 2, 3, 4])
def test_taylor_error_is_order_k_plus_one(order: int) -> None:
    p = Problem("exp(x/2)*sin(y + 1) + log(2 + x*y)")
    center = {"x": sp.Rational(1, 3), "y": sp.Rational(-1, 4)}
    model = p.taylor(center, order=order)
    direction = (sp.Rational(3, 5), sp.Rational(4, 5))
    errors = []
    steps = [sp.Rational(1, 10) / 2**k for k in range(4)]
    for h in steps:
        at = {x: center["x"] + h * direction[0], y: center["y"] + h * direction[1]}
        errors.append(abs(sp.N(p.expr.subs(at) - model.subs(at), 50)))
    slopes = [float(sp.log(errors[k] / errors[k + 1], 2)) for k in range(len(errors) - 1)]
    assert all(order + 0.7 < s < order + 1.3 for s in slopes), slopes


def test_taylor_of_a_one_variable_function() -> None:
    p = Problem("exp(x)")
    assert p.taylor(0, order=3) == 1 + x + x**2 / 2 + x**3 / 6
    assert p.taylor(0, order=0) == 1
    with pytest.raises(ValueError, match="point="):
        Problem("log(x)").taylor(0)


# -- restriction to a line ---------------------------------------------------------------


def test_restrict_to_line() -> None:
    p = Problem("x**2*y + exp(y)")
    g = p.restrict_to_line((1, 2), (3, -1))
    (zeta,) = g.variables
    assert zeta.name == "z"
    assert g.value_at(1) == p.value_at((1, 2))
    assert g.value_at(0) == p.value_at((3, -1))
    assert g.value_at(sp.Rational(1, 2)) == p.value_at((2, sp.Rational(1, 2)))
    assert sp.expand(g.expr - ((3 - 2 * zeta) ** 2 * (3 * zeta - 1) + sp.exp(3 * zeta - 1))) == 0


def test_restrict_to_line_with_symbolic_points_and_taken_names() -> None:
    p = Problem("x**2 + z**2")
    a, b = sp.symbols("a b", real=True)
    g = p.restrict_to_line((a, 0), (0, b))
    assert g.variables[0].name == "z1"
    assert set(g.params) == {a, b}
    t = g.variables[0]
    assert sp.expand(g.expr - ((t * a) ** 2 + ((1 - t) * b) ** 2)) == 0


# -- critical points -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("x**2 - y**2", [((0, 0), "saddle", (-2, 2))]),
        ("x**2 + y**2", [((0, 0), "minimum", (2, 2))]),
        ("-(x**2) - 3*y**2", [((0, 0), "maximum", (-6, -2))]),
        ("x**3", [((0,), "degenerate", (0,))]),
        ("x**4", [((0,), "degenerate", (0,))]),
        (
            "x**4 - 2*x**2",
            [((-1,), "minimum", (8,)), ((0,), "maximum", (-4,)), ((1,), "minimum", (8,))],
        ),
        ("x**3 + y**3 - 3*x*y", [((0, 0), "saddle", (-3, 3)), ((1, 1), "minimum", (3, 9))]),
        ("x**2*y**2 + x**2", [((0, y), "degenerate", (0, 2 + 2 * y**2))]),
        ("tanh(x)", []),
        ("x**2 + 1", [((0,), "minimum", (2,))]),
    ],
)
def test_critical_points_and_kinds(text: str, expected: list) -> None:
    found = Problem(text).critical_points()
    assert found.complete
    got = [(c.point, c.kind) for c in found]
    assert got == [(point, kind) for point, kind, _ in expected]
    for c, (_, _, eigenvalues) in zip(found, expected, strict=True):
        if c.point[-1].free_symbols:
            continue
        assert c.eigenvalues == eigenvalues
        assert c.kind in KINDS


def test_curve_of_critical_points() -> None:
    found = Problem("(x + y)**2").critical_points()
    assert len(found) == 1
    point = found[0].point
    assert point[0] + point[1] == 0 and point[1].free_symbols == {y}
    assert found[0].kind == "degenerate" and found[0].eigenvalues == (0, 4)
    assert any("curve" in note for note in found.notes)


def test_critical_points_with_radicals_are_exact() -> None:
    found = Problem("x**5 - x + y**2").critical_points()
    root = 5 ** sp.Rational(-1, 4)
    assert [(c.point, c.kind) for c in found] == [((-root, 0), "saddle"), ((root, 0), "minimum")]
    for c in found:
        assert sp.simplify(Problem("x**5 - x + y**2").gradient_at(c.point)) == sp.zeros(2, 1)


def test_periodic_and_flat_objectives() -> None:
    with pytest.raises(SolveError, match="infinitely many"):
        Problem("sin(x)").critical_points()
    with pytest.raises(SolveError, match="infinitely many"):
        Problem("relu(x)").critical_points()
    found = Problem("sin(x)").critical_points(domain=(-4, 4))
    assert found.complete
    assert [(c.point, c.kind) for c in found] == [
        ((-sp.pi / 2,), "minimum"),
        ((sp.pi / 2,), "maximum"),
    ]


def test_nonsmooth_point_is_degenerate() -> None:
    (c,) = Problem("abs(x)").critical_points()
    assert c.point == (0,) and c.kind == "degenerate" and c.eigenvalues == ()


def test_local_and_global_minimum_of_x_cos_pi_x() -> None:
    p = Problem("x*cos(pi*x)")
    found = p.critical_points(domain=(-1, 2))
    assert not found.complete  # found numerically: no closed form
    assert [c.kind for c in found] == ["minimum", "maximum", "minimum"]
    second = sp.lambdify(x, p.hessian()[0, 0], "mpmath")
    first = sp.lambdify(x, p.gradient()[0], "mpmath")
    for c in found:
        assert abs(first(c.point[0])) < 1e-12
        sign = 1 if c.kind == "minimum" else -1
        assert sign * float(second(c.point[0])) > 0
    local, _, best = found
    assert best.value < local.value < 0
    assert best.point[0] == pytest.approx(1.0904082219, abs=1e-9)


def test_numeric_search_adds_what_solve_misses() -> None:
    found = Problem("sin(x)*cos(y)").critical_points(domain=[(-2, 2), (-2, 2)])
    half = math.pi / 2
    expected = {(-half, 0.0): "minimum", (0.0, -half): "saddle", (0.0, half): "saddle"}
    expected[(half, 0.0)] = "maximum"
    got = {tuple(round(float(v), 9) for v in c.point): c.kind for c in found}
    assert got == {tuple(round(v, 9) for v in k): kind for k, kind in expected.items()}


def test_transcendental_system_without_domain_is_refused() -> None:
    with pytest.raises(SolveError, match="bounded domain"):
        Problem("x*cos(pi*x)").critical_points()


def test_critical_points_need_bound_parameters() -> None:
    p = Problem("a*x**2", params="a")
    with pytest.raises(ValueError, match="subs"):
        p.critical_points()
    (c,) = p.subs(a=-3).critical_points()
    assert c.kind == "maximum" and c.eigenvalues == (-6,)


@settings(max_examples=25)
@given(
    entries=st.lists(st.integers(-4, 4), min_size=6, max_size=6),
    b=st.lists(st.integers(-3, 3), min_size=3, max_size=3),
)
def test_kind_of_a_quadratic_matches_numpy_eigenvalues(entries: list[int], b: list[int]) -> None:
    a = np.zeros((3, 3), dtype=np.int64)
    a[np.triu_indices(3)] = entries
    a = a + np.triu(a, 1).T
    eigenvalues = np.linalg.eigvalsh(a)
    v = sp.Matrix(VARIABLES)
    expr = (v.T * sp.Matrix(a) * v)[0] / 2 + (sp.Matrix(b).T * v)[0]
    found = Problem(expr, variables=VARIABLES).critical_points()
    if round(np.linalg.det(a)) == 0:
        return  # singular: a subspace of critical points or none, covered elsewhere
    (c,) = found
    expected_point = np.linalg.solve(a, -np.array(b, dtype=float))
    np.testing.assert_allclose(np.array(c.point, dtype=float), expected_point, atol=1e-12)
    if np.all(eigenvalues > 0):
        assert c.kind == "minimum"
    elif np.all(eigenvalues < 0):
        assert c.kind == "maximum"
    else:
        assert c.kind == "saddle"
    np.testing.assert_allclose(np.array(c.eigenvalues, dtype=float), eigenvalues, atol=1e-9)


def test_subs_binds_parameters() -> None:
    p = Problem("a*x**2 + b*x", params="a b")
    q = p.subs(a=2, b="1/2")
    assert q.params == () and q.expr == 2 * x**2 + x / 2
    partial = p.subs(a=1)
    assert [s.name for s in partial.params] == ["b"]
    assert ck.Problem is Problem and ck.CriticalPoint is not None


@pytest.mark.slow
def test_landscape_analysis_agrees_and_redraws_identically(tmp_path) -> None:
    from analyses import landscape

    result = landscape.run(quick=True, seed=0)
    assert all(r["agrees"] for r in result["summary"]), result["summary"]
    first = landscape.plot(result, tmp_path / "a")
    second = landscape.plot(landscape.run(quick=True, seed=0), tmp_path / "b")
    assert [p.name for p in first] == [p.name for p in second]
    assert all(p.name.startswith("landscape_") for p in first)
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(first, second, strict=True))
