"""Codegen: SymPy printed into array code, on every backend, checked against SymPy itself."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sympy.codegen import cfunctions as cf

from convexkit import backend as bk
from convexkit.codegen import CompiledFunction, Oracle, cache_info, clear_cache, lambdify, oracle
from convexkit.symbolic.problem import Problem

x, y, z, lam = sp.symbols("x y z lam", real=True)


def _problem(expr, variables, params=()):
    return Problem(expr, variables=list(variables), params=list(params))


def _on(xp, device, values, dtype=None):
    dtype = bk.resolve_dtype(dtype, xp) if dtype is not None else None
    return bk.asarray(np.asarray(values, dtype=np.float64), xp, dtype=dtype, device=device)


def _host(a):
    return bk.to_numpy(a)


# Expressions with a domain where they are real: every printing rule is used at least once.
CASES = [
    (sp.Piecewise((x**2, x < 0), (sp.sin(x), x < 1), (1 - x, True)), (-2, 3)),
    (
        sp.Piecewise((x, sp.And(x > -1, y > 0)), (y, sp.Or(x < -1.5, sp.Not(y < 1))), (0, True)),
        (-2, 2),
    ),
    (sp.Piecewise((x, x > 0)), (0.1, 2)),
    (sp.Max(x, y, 0.5) - sp.Min(x, -y, 0), (-2, 2)),
    (sp.Abs(x - y) + sp.sign(x) * y, (-2, 2)),
    (sp.Heaviside(x) + 2 * sp.Heaviside(y, 1), (-2, 2)),
    (sp.exp(-(x**2)) * sp.cos(3 * y) + sp.log(1 + x**2) + sp.tanh(y) * sp.pi, (-2, 2)),
    (x**5 - 3 * x**4 * y + y**-2 + (x + y) ** 7 + x**70 / 10**20, (0.5, 1.5)),
    (
        sp.sqrt(x) + x ** sp.Rational(3, 2) + x ** sp.Rational(-5, 2) + x ** sp.Rational(1, 3),
        (0.1, 3),
    ),
    (2**x + x**y + sp.E ** (x * y), (0.1, 2)),
    (sp.asin(x / 3) + sp.acos(y / 3) + sp.atan(x * y) + sp.atan2(y, x), (-2, 2)),
    (
        cf.hypot(x, y)
        + cf.log1p(x**2)
        + cf.expm1(y)
        + cf.log2(1 + x**2)
        + cf.log10(2 + y)
        + cf.exp2(x)
        + cf.Sqrt(2 + x)
        + cf.Sqrt(3),
        (-1.5, 1.5),
    ),
    (sp.sinh(x) + sp.cosh(y) + sp.asinh(x) + sp.acosh(2 + y**2) + sp.atanh(x / 3), (-2, 2)),
    (sp.sec(x) + sp.csc(y) + sp.cot(y) + sp.sech(x) + sp.csch(y) + sp.coth(y), (0.3, 1.2)),
    (sp.asec(x) + sp.acsc(y) + sp.acot(x) + sp.asech(1 / x) + sp.acsch(y) + sp.acoth(x), (1.1, 3)),
    (sp.floor(2 * x) + sp.ceiling(y) + sp.Mod(x, 0.75), (-2, 2)),
    (sp.erf(x) + sp.erfc(y) + sp.erf(x * y / 2), (-3, 3)),
    (sp.Rational(1, 3) * x + sp.pi * y + sp.sqrt(2) * sp.exp(sp.Rational(1, 2)), (-2, 2)),
]


def _reference(expr, points):
    symbols = (x, y)
    plain = expr.replace(cf.Sqrt, sp.sqrt)  # codegen's Sqrt has no numerical evaluation
    return np.array(
        [float(plain.subs(dict(zip(symbols, p, strict=True))).evalf(30)) for p in points]
    )


@pytest.mark.parametrize("expr, domain", CASES, ids=[str(i) for i in range(len(CASES))])
def test_agrees_with_sympy_on_every_backend(backend, expr, domain):
    xp, device = backend
    rng = np.random.default_rng(len(str(expr)))
    points = rng.uniform(*domain, size=(12, 2))
    expected = _reference(expr, points)
    fn = lambdify(expr, [x, y], xp)
    a, b = (_on(xp, device, points[:, i]) for i in range(2))
    got = fn(a, b)
    assert bk.array_namespace(got) is bk.array_namespace(a)
    assert bk.device_of(got) == bk.device_of(a)
    np.testing.assert_allclose(_host(got), expected, rtol=1e-12, atol=1e-12)
    # the same function on NumPy gives the same numbers
    on_numpy = lambdify(expr, [x, y])(points[:, 0], points[:, 1])
    np.testing.assert_allclose(_host(got), on_numpy, rtol=1e-14, atol=1e-15)


def test_generated_code_uses_only_the_namespace():
    expr = sp.Piecewise((sp.exp(x), x < 0), (sp.Max(x, y), True)) + sp.erf(y)
    fn = lambdify(expr, [x, y], "array_api_strict")
    source = fn.__source__
    assert "xp.where(" in source and "xp.maximum(" in source
    assert "math." not in source and "numpy" not in source and "import" not in source
    scope = fn._kernel.__globals__
    assert scope["__builtins__"] == {}
    assert set(scope) - {"__builtins__", "xp"} == {
        "_kernel",
        "_erf",
        "_erfc",
        "_erf_small",
        "_erfc_abs",
    }
    assert fn._kernel.__globals__["xp"].__name__ == "array_api_strict"


def test_odd_symbol_names_get_safe_identifiers():
    odd = [sp.Symbol(name, real=True) for name in ("lambda", "xp", "_t0", "a b", "x[0]")]
    clash = sp.Symbol("lambda", positive=True)  # same name, other symbol
    expr = sum((i + 1) * s for i, s in enumerate(odd)) + 10 * clash
    fn = lambdify(expr, [*odd, clash])
    values = [np.array([1.0, 2.0]) * (i + 1) for i in range(6)]
    expected = sum((i + 1) * v for i, v in enumerate(values[:5])) + 10 * values[5]
    np.testing.assert_allclose(fn(*values), expected)
    assert "lambda" not in fn.__source__.split("\n", 3)[3]


def test_matrices_arrays_and_constants_broadcast(backend):
    xp, device = backend
    matrix = sp.Matrix([[x, 2], [x * y, 0]])
    array = sp.Array([y, -1, sp.pi])
    fn = lambdify((matrix, array, sp.Integer(3)), [x, y], xp)
    a = _on(xp, device, [1.0, 2.0, 3.0])
    b = _on(xp, device, [4.0, 5.0, 6.0])
    m, v, c = fn(a, b)
    assert tuple(m.shape) == (3, 2, 2) and tuple(v.shape) == (3, 3) and tuple(c.shape) == (3,)
    m, v, c = _host(m), _host(v), _host(c)
    np.testing.assert_array_equal(m[:, 0, 0], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(m[:, 0, 1], [2.0, 2.0, 2.0])
    np.testing.assert_array_equal(m[:, 1, 0], [4.0, 10.0, 18.0])
    np.testing.assert_array_equal(m[:, 1, 1], [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(
        v, [[4.0, -1.0, math.pi], [5.0, -1.0, math.pi], [6.0, -1.0, math.pi]]
    )
    np.testing.assert_array_equal(c, [3.0, 3.0, 3.0])


def test_batch_axes_broadcast_between_arguments(backend):
    xp, device = backend
    fn = lambdify(sp.Matrix([x + y, x * y]), [x, y], xp)
    a = _on(xp, device, [[1.0], [2.0]])  # (2, 1)
    b = _on(xp, device, [10.0, 20.0, 30.0])  # (3,)
    out = _host(fn(a, b))
    assert out.shape == (2, 3, 2, 1)
    np.testing.assert_array_equal(out[1, 2, :, 0], [32.0, 60.0])
    # a Python number is a weak scalar: it broadcasts and keeps the array's dtype
    single = fn(_on(xp, device, [1.0, 2.0], "float32"), 0.5)
    assert single.dtype == xp.float32 and tuple(single.shape) == (2, 2, 1)


def test_stack_layout_matches_assignment(backend):
    xp, device = backend
    if xp is np:
        pytest.skip("the stack layout is for array namespaces; NumPy has its chunked one")
    expr = (sp.Matrix([[x, 2], [sp.Max(x, y), sp.exp(y)]]), x * y, sp.Integer(7))
    stacked = CompiledFunction(expr, [x, y], xp, layout="stack")
    assigned = lambdify(expr, [x, y], xp)
    assert "xp.stack(" in stacked.__source__
    a = _on(xp, device, [0.5, -1.0, 2.0])
    b = _on(xp, device, [[1.0], [3.0]])
    for s, t in zip(stacked(a, b), assigned(a, b), strict=True):
        assert bk.device_of(s) == bk.device_of(a)
        np.testing.assert_array_equal(_host(s), _host(t))


def test_numpy_chunks_cover_every_point():
    xs = sp.symbols("x1:4", real=True)
    vector = sp.Array([xs[0] * xs[1] * lam, sp.exp(xs[2]) - lam, 5, xs[1] ** 3])
    fn = lambdify((vector, sp.Matrix([[1, 2], [3, 4]]), xs[0]), [xs, lam])
    rng = np.random.default_rng(1)
    points = rng.standard_normal((3 * fn._chunk + 17, 3))
    lams = rng.standard_normal(points.shape[0])
    out, constant, first = fn(points, lams)
    p0, p1, p2 = points.T
    expected = np.stack([p0 * p1 * lams, np.exp(p2) - lams, np.full_like(p0, 5), p1**3], axis=1)
    np.testing.assert_allclose(out, expected, rtol=1e-15)
    np.testing.assert_array_equal(
        constant, np.broadcast_to([[1.0, 2.0], [3.0, 4.0]], (len(p0), 2, 2))
    )
    np.testing.assert_array_equal(first, p0)
    # a non-contiguous (2, 25) batch, and a parameter broadcast along its last axis
    grid = points[:100].reshape(2, 50, 3)[:, ::2]
    out = fn(grid, lams[:25])[0]
    assert out.shape == (2, 25, 4)
    p, q = grid[1, 3], lams[3]
    np.testing.assert_allclose(out[1, 3], [p[0] * p[1] * q, np.exp(p[2]) - q, 5.0, p[1] ** 3])


def test_float32_stays_float32(backend):
    xp, device = backend
    expr = (
        sp.Max(x, sp.Rational(1, 2)) * sp.pi
        + sp.Piecewise((x**2, x < 1), (1, True))
        + lam * sp.erf(x)
    )
    problem = _problem(expr + y**2 / 3, [x, y], [lam])
    for params in ({"lam": 0.5}, {"lam": np.array([0.5, 2.0, -1.0])}):
        o = oracle(problem, xp, params=params, device=device)
        points = _on(xp, device, [[0.2, 1.0], [1.5, -2.0], [-3.0, 0.5]], "float32")
        value, grad, hess = o.value(points), o.grad(points), o.hess(points)
        for result in (value, grad, hess):
            assert result.dtype == xp.float32
            assert bk.device_of(result) == bk.device_of(points)
        exact = oracle(problem, params=params)
        np.testing.assert_allclose(
            _host(grad), exact.grad(_host(points).astype(np.float64)), rtol=2e-6
        )
    # a dtype asked of the oracle wins over the points' dtype
    o64 = oracle(problem, xp, params={"lam": 0.5}, dtype="float64", device=device)
    assert o64.grad(points).dtype == xp.float64


def test_integer_points_are_evaluated_in_float64(backend):
    xp, device = backend
    o = oracle(_problem(x**2 / 2 + x * y, [x, y]), xp, device=device)
    points = bk.asarray(np.array([[1, 2], [3, 4]]), xp, device=device)
    grad = o.grad(points)
    assert grad.dtype == xp.float64
    np.testing.assert_array_equal(_host(grad), [[3.0, 1.0], [7.0, 3.0]])


def test_cache_returns_the_same_function():
    clear_cache()
    expr = sp.Matrix([x**2 * y, sp.sin(x)])
    first = lambdify(expr, [x, y])
    again = lambdify(sp.Matrix([x**2 * y, sp.sin(x)]), (x, y))
    assert first is again
    assert cache_info()["hits"] == 1 and cache_info()["misses"] == 1
    assert lambdify(expr, [x, y], "array_api_strict") is not first
    assert lambdify(expr, [y, x]) is not first
    assert lambdify(expr, [[x, y]]) is not first
    o = oracle(_problem(x**2 + y**2, [x, y]))
    o.grad(np.ones((2, 2)))
    assert o._function("grad") is lambdify(sp.Array([2 * x, 2 * y]), ((x, y),))


def test_oracle_shapes_and_unbatched_points(backend):
    xp, device = backend
    f = sp.exp(x * y) + x**4 - z * y
    o = oracle(_problem(f, [x, y, z]), xp, device=device)
    assert o.dim == 3 and isinstance(o, Oracle)
    batch = _on(xp, device, np.random.default_rng(3).standard_normal((5, 3)))
    assert tuple(o.value(batch).shape) == (5,)
    assert tuple(o.grad(batch).shape) == (5, 3)
    assert tuple(o.hess(batch).shape) == (5, 3, 3)
    value, grad = o.value_and_grad(batch)
    np.testing.assert_allclose(_host(value), _host(o.value(batch)), rtol=1e-15)
    np.testing.assert_allclose(_host(grad), _host(o.grad(batch)), rtol=1e-15)
    one = _on(xp, device, [0.1, 0.2, 0.3])
    assert tuple(o.value(one).shape) == () and tuple(o.hess(one).shape) == (3, 3)
    np.testing.assert_allclose(
        _host(o.grad(one)), _host(o.grad(_on(xp, device, [[0.1, 0.2, 0.3]])))[0]
    )
    grid = _on(xp, device, np.zeros((2, 4, 3)))
    assert tuple(o.hess(grid).shape) == (2, 4, 3, 3)
    hess = _host(o.hess(batch))
    np.testing.assert_allclose(hess, np.swapaxes(hess, 1, 2), rtol=1e-15)


def test_oracle_from_text_and_from_expressions():
    o = oracle("x1**2 + 3*x2**2")
    np.testing.assert_array_equal(
        o.grad(np.array([[1.0, 1.0], [2.0, 0.0]])), [[2.0, 6.0], [4.0, 0.0]]
    )
    assert oracle(x**2 * y).dim == 2


def test_parameters_as_scalars_and_per_point_arrays(backend):
    xp, device = backend
    problem = _problem(lam / 2 * (x**2 + y**2) + sp.log(1 + sp.exp(-x - 2 * y)), [x, y], [lam])
    rng = np.random.default_rng(4)
    points = rng.standard_normal((6, 2))
    lams = rng.uniform(0.1, 3.0, 6)
    per_point = oracle(problem, xp, params={lam: _on(xp, device, lams)}, device=device)
    got = _host(per_point.grad(_on(xp, device, points)))
    for i in range(6):
        single = oracle(problem, xp, params={"lam": float(lams[i])}, device=device)
        np.testing.assert_allclose(
            got[i], _host(single.grad(_on(xp, device, points[i]))), rtol=1e-14
        )
    # parameter arrays from NumPy are moved to the oracle's namespace and device
    from_host = oracle(problem, xp, params={"lam": lams}, device=device)
    np.testing.assert_allclose(
        _host(from_host.hess(_on(xp, device, points))),
        _host(per_point.hess(_on(xp, device, points))),
    )


def _finite_difference_gradient(value, point, h):
    steps = np.eye(point.shape[0]) * h
    return (value(point + steps) - value(point - steps)) / (2 * h)


def _finite_difference_hessian(value, point, h):
    e = np.eye(point.shape[0]) * h
    plus_plus = point + e[:, None, :] + e[None, :, :]
    plus_minus = point + e[:, None, :] - e[None, :, :]
    minus_plus = point - e[:, None, :] + e[None, :, :]
    minus_minus = point - e[:, None, :] - e[None, :, :]
    total = value(plus_plus) - value(plus_minus) - value(minus_plus) + value(minus_minus)
    return total / (4 * h * h)


def _richardson(difference, value, point, h):
    """Central differences with steps h and h/2 combined: the h**2 error term cancels."""
    return (4 * difference(value, point, h / 2) - difference(value, point, h)) / 3


_LEAVES = st.sampled_from([x, y, z, sp.Integer(2), sp.Rational(1, 3), sp.Rational(-3, 2)])
_UNARY = [
    sp.sin,
    sp.cos,
    sp.tanh,
    sp.atan,
    lambda u: sp.exp(sp.sin(u)),
    lambda u: sp.log(1 + u**2),
    lambda u: sp.sqrt(1 + u**2),
    lambda u: 1 / (1 + sp.exp(-u)),
    lambda u: u**2,
    lambda u: u**3,
    lambda u: sp.erf(u),
]
_BINARY = [
    lambda a, b: a + b,
    lambda a, b: a - b,
    lambda a, b: a * b,
    lambda a, b: a / (1 + b**2),
    lambda a, b: sp.Max(a, b) ** 2,  # C^1: its Hessian jumps only on a set of measure zero
]


@st.composite
def _trees(draw, depth=None):
    """A random expression: operators down to a drawn depth, leaves below."""
    if depth is None:
        depth = draw(st.integers(2, 4))
    if depth == 0 or draw(st.integers(0, 5)) == 0:
        return draw(_LEAVES)
    if draw(st.booleans()):
        return draw(st.sampled_from(_UNARY))(draw(_trees(depth - 1)))
    return draw(st.sampled_from(_BINARY))(draw(_trees(depth - 1)), draw(_trees(depth - 1)))


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expr=_trees(), seed=st.integers(0, 2**32 - 1))
def test_derivatives_agree_with_finite_differences(expr, seed):
    variables = [v for v in (x, y, z) if v in expr.free_symbols] or [x]
    o = oracle(_problem(expr, variables))
    rng = np.random.default_rng(seed)
    point = rng.uniform(-1.5, 1.5, len(variables))
    value, grad, hess = o.value(point), o.grad(point), o.hess(point)
    assume(np.isfinite(value) and np.all(np.isfinite(grad)) and np.all(np.isfinite(hess)))
    # Max leaves kinks in the Hessian: no branch of any Max may change near the stencil
    h = 1e-3
    box = point + rng.uniform(-2 * h, 2 * h, (64, len(variables)))
    for m in expr.atoms(sp.Max):
        for a, b in itertools.combinations(m.args, 2):
            gap = np.broadcast_to(lambdify(a - b, [variables])(box), (64,))
            assume(np.all(gap > 0) or np.all(gap < 0))
    scale = max(1.0, abs(float(value)), float(np.max(np.abs(grad))), float(np.max(np.abs(hess))))
    fd_grad = _richardson(_finite_difference_gradient, o.value, point, 1e-3)
    np.testing.assert_allclose(grad, fd_grad, rtol=0, atol=1e-7 * scale)
    fd_hess = _richardson(_finite_difference_hessian, o.value, point, h)
    np.testing.assert_allclose(hess, fd_hess, rtol=0, atol=1e-6 * scale)


def test_objective_that_is_a_bare_variable():
    o = oracle(Problem(x))
    np.testing.assert_array_equal(o.grad(np.array([[2.0], [3.0]])), [[1.0], [1.0]])


def test_erf_matches_the_standard_library():
    values = np.concatenate(
        [
            np.linspace(-7, 7, 2001),
            [0.0, -0.0, 1e-300, -1e-20, 0.46875, 0.46876, 4.0, 4.0000001, 26.0, 27.5, 1e6],
            [np.inf, -np.inf],
        ]
    )
    erf = lambdify(sp.erf(x), [x])(values)
    erfc = lambdify(sp.erfc(x), [x])(values)
    expected_erf = np.array([math.erf(v) for v in values])
    expected_erfc = np.array([math.erfc(v) for v in values])
    np.testing.assert_allclose(erf, expected_erf, rtol=1e-15, atol=1e-300)
    tiny = expected_erfc > 1e-300  # relative accuracy down to where erfc underflows
    np.testing.assert_allclose(erfc[tiny], expected_erfc[tiny], rtol=5e-14)
    np.testing.assert_array_equal(erfc[~tiny], expected_erfc[~tiny])
    assert np.isnan(lambdify(sp.erf(x), [x])(np.array([np.nan])))[0]


def test_heaviside_and_dirac_delta_values():
    points = np.array([-1.0, 0.0, 2.0])
    np.testing.assert_array_equal(lambdify(sp.Heaviside(x), [x])(points), [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(lambdify(sp.Heaviside(x, 1), [x])(points), [0.0, 1.0, 1.0])
    # the second derivative of |x|: zero off the kink, undefined (nan) on it
    second = lambdify(sp.diff(sp.Abs(x), x, 2), [x])(points)
    np.testing.assert_array_equal(second[[0, 2]], [0.0, 0.0])
    assert np.isnan(second[1])


def test_piecewise_without_a_default_is_nan_outside():
    out = lambdify(sp.Piecewise((x, x > 0)), [x])(np.array([-1.0, 2.0]))
    assert np.isnan(out[0]) and out[1] == 2.0


def test_wrong_shapes_are_named():
    o = oracle(_problem(x**2 + y**2, [x, y], [lam]), params={"lam": np.ones(3)})
    with pytest.raises(ValueError, match=r"x='array of shape \(4, 3\)'.*\(B, 2\).*\(2,\)"):
        o.grad(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"x='array of shape \(\)'"):
        o.value(np.float64(1.0))
    with pytest.raises(ValueError, match=r"params.*'lam'.*\(3,\).*batch shape \(5,\)"):
        o.grad(np.zeros((5, 2)))
    fn = lambdify(x * y, [[x, y], lam])
    with pytest.raises(
        ValueError, match=r"args\[0\]='array of shape \(2, 3\)'.*last axis has length 2"
    ):
        fn(np.zeros((2, 3)), 1.0)
    with pytest.raises(
        ValueError, match=r"arrays=.*args\[0\] of batch shape \(4,\).*lam of batch shape \(3,\)"
    ):
        fn(np.zeros((4, 2)), np.zeros(3))
    with pytest.raises(TypeError, match=r"takes 2 arrays \(args\[0\], lam\); got 1"):
        fn(np.zeros((4, 2)))


def test_bad_expressions_and_arguments_are_named():
    with pytest.raises(ValueError, match=r"expr sub-expression=gamma\(x\).*allowed.*erf"):
        lambdify(sp.gamma(x) + 1, [x])
    with pytest.raises(ValueError, match=r"expr sub-expression=.*I.*real constants"):
        lambdify(x + sp.sqrt(-2), [x])
    with pytest.raises(ValueError, match=r"args=.*missing \['y'\]"):
        lambdify(x + y, [x])
    with pytest.raises(ValueError, match=r"expr='x \+ 1'.*not parsed here"):
        lambdify("x + 1", [x])
    with pytest.raises(ValueError, match=r"args\[1\]=.*not a Symbol"):
        lambdify(x, [x, [y, 2]])
    with pytest.raises(ValueError, match=r"args=.*each symbol once"):
        lambdify(x, [x, [x, y]])
    with pytest.raises(ValueError, match=r"expr=.*real-valued"):
        lambdify(x > 1, [x])
    with pytest.raises(ValueError, match=r"xp='torch'"):
        lambdify(x, [x], "torch")
    import array_api_strict as strict

    with pytest.raises(ValueError, match=r"layout='leading'.*'trailing' or 'stack'"):
        CompiledFunction(x, [x], strict, layout="leading")


def test_bad_parameters_and_points_are_named():
    problem = _problem(lam * x**2, [x], [lam])
    with pytest.raises(ValueError, match=r"params=.*missing \['lam'\].*params=\{'lam': 0.5\}"):
        oracle(problem)
    with pytest.raises(ValueError, match=r"params=\{'mu': 1\}.*parameters lam"):
        oracle(problem, params={"lam": 1, "mu": 1})
    with pytest.raises(ValueError, match=r"params\['lam'\]=.*not a symbolic expression"):
        oracle(problem, params={"lam": y})
    with pytest.raises(ValueError, match=r"problem=3.*ck.Problem"):
        oracle(3)
    with pytest.raises(ValueError, match=r"params=\[1.0\].*a dict"):
        oracle(problem, params=[1.0])
    import array_api_strict as strict

    o = oracle(problem, params={"lam": 1.0})
    with pytest.raises(ValueError, match=r"x='Array'.*numpy"):
        o.grad(strict.asarray([[1.0]]))
    fn = lambdify(x, [x])
    with pytest.raises(ValueError, match=r"x='array_api_strict array'.*NumPy array"):
        fn(strict.asarray([1.0]))
