"""Convex sets: membership, projections (on every backend), conditions, unions, errors."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convexkit.backend import asarray, to_numpy
from convexkit.symbolic import sets

# hypothesis with the function-scoped `backend` fixture: the fixture is a pure value
BACKEND_SETTINGS = settings(
    max_examples=8, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None
)


def make_sets() -> dict[str, sets.Set]:
    return {
        "ball": sets.Ball([0.5, -1.0, 2.0], 1.5),
        "box": sets.Box([-1, 0, -2], [1, 0.5, math.inf]),
        "halfspace": sets.HalfSpace([1.0, -2.0, 0.5], 0.75),
        "simplex": sets.Simplex(3, total=2),
        "intersection": sets.Intersection(
            sets.Ball([0, 0, 0], 1.2), sets.HalfSpace([1, 1, 1], 0.5), sets.Box(-1, 1, dim=3)
        ),
        "ball_and_simplex": sets.Intersection(sets.Ball([0.2, 0.1, 0.4], 0.7), sets.Simplex(3)),
    }


CONVEX = sorted(make_sets())
SIMPLE = ["ball", "box", "halfspace", "simplex"]


def on(xp, device, array: np.ndarray):
    return asarray(array, xp, dtype=xp.float64, device=device)


def members(s: sets.Set, rng: np.random.Generator, count: int) -> np.ndarray:
    """Points of ``s``: projections of random points, and mixtures with an interior point."""
    raw = rng.normal(scale=3.0, size=(count, s.dim))
    boundary = s.project(raw)
    inner = np.asarray([float(c) for c in s._interior_point()])
    weights = rng.uniform(size=(count, 1))
    return np.concatenate([boundary, weights * boundary + (1 - weights) * inner])


@pytest.mark.parametrize("name", SIMPLE)
@given(seed=st.integers(0, 2**31 - 1))
@BACKEND_SETTINGS
def test_projection_properties(backend, name, seed):
    check_projection(backend, name, seed)


@pytest.mark.parametrize("name", ["intersection", "ball_and_simplex"])
@given(seed=st.integers(0, 2**31 - 1))
@settings(BACKEND_SETTINGS, max_examples=2)
def test_intersection_projection_properties(backend, name, seed):
    check_projection(backend, name, seed)


def check_projection(backend, name, seed):
    xp, device = backend
    s = make_sets()[name]
    rng = np.random.default_rng(seed)
    x_np = rng.normal(scale=3.0, size=(32, s.dim))
    y_np = rng.normal(scale=3.0, size=(32, s.dim))
    x, y = on(xp, device, x_np), on(xp, device, y_np)
    px, py = s.project(x), s.project(y)
    assert px.shape == x.shape
    assert bool(xp.all(s.contains(px)))
    # idempotent
    assert np.allclose(to_numpy(s.project(px)), to_numpy(px), atol=1e-8)
    # non-expansive
    gap = to_numpy(xp.sqrt(xp.sum((px - py) ** 2, axis=1)))
    dist = np.linalg.norm(x_np - y_np, axis=1)
    assert np.all(gap <= dist + 1e-8)
    # obtuse angle: <x - P(x), z - P(x)> <= 0 for every z in the set
    z = members(s, rng, 24)
    p_np = to_numpy(px)
    inner = np.einsum("bd,bzd->bz", x_np - p_np, z[None, :, :] - p_np[:, None, :])
    scale = 1 + np.abs(x_np).max()
    assert inner.max() <= 1e-7 * scale**2
    # the same numbers as on NumPy
    assert np.allclose(p_np, s.project(x_np), atol=1e-9)


@pytest.mark.parametrize("name", CONVEX)
def test_points_outside_are_moved_and_points_inside_are_kept(name):
    s = make_sets()[name]
    rng = np.random.default_rng(1)
    inside = members(s, rng, 16)
    assert np.all(s.contains(inside))
    assert np.allclose(s.project(inside), inside, atol=1e-9)
    far = rng.normal(scale=20.0, size=(64, s.dim))
    outside = far[~s.contains(far)]
    assert len(outside) > 0
    moved = np.linalg.norm(s.project(outside) - outside, axis=1)
    assert np.all(moved > 1e-6)


def test_ball_projection_closed_form():
    ball = sets.Ball([1.0, 2.0], 2.0)
    x = np.array([[1.0, 2.0], [1.0, 7.0], [4.0, 6.0], [-2.0, 2.0]])
    expected = np.array([[1.0, 2.0], [1.0, 4.0], [1 + 6 / 5, 2 + 8 / 5], [-1.0, 2.0]])
    assert np.allclose(ball.project(x), expected)
    point = sets.Ball([3.0, -1.0], 0)
    assert np.allclose(point.project(x), [[3.0, -1.0]] * 4)


def test_box_projection_clips_with_infinite_sides():
    orthant = sets.Box(0, math.inf, dim=3)
    x = np.array([[-1.0, 2.0, -3.0], [5.0, -0.5, 0.0]])
    assert np.allclose(orthant.project(x), [[0.0, 2.0, 0.0], [5.0, 0.0, 0.0]])


def test_halfspace_projection_moves_along_the_normal():
    h = sets.HalfSpace([3.0, 4.0], 5.0)
    x = np.array([[3.0, 4.0], [0.0, 0.0]])
    # (3, 4) has a.x = 25, excess 20, moved by 20/25 * (3, 4)
    assert np.allclose(h.project(x), [[3.0 - 2.4, 4.0 - 3.2], [0.0, 0.0]])


def reference_simplex(v: np.ndarray, total: float) -> np.ndarray:
    """Projection onto the simplex by bisection on the threshold (an independent method)."""
    lo, hi = v.min() - total, v.max()
    for _ in range(200):
        theta = (lo + hi) / 2
        if np.maximum(v - theta, 0).sum() > total:
            lo = theta
        else:
            hi = theta
    return np.maximum(v - (lo + hi) / 2, 0)


@given(
    seed=st.integers(0, 2**31 - 1),
    dim=st.integers(1, 7),
    total=st.floats(0.1, 5.0),
)
@settings(max_examples=25, deadline=None)
def test_simplex_projection_matches_bisection(seed, dim, total):
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=2.0, size=(10, dim))
    got = sets.Simplex(dim, total).project(x)
    expected = np.stack([reference_simplex(row, total) for row in x])
    assert np.allclose(got, expected, atol=1e-9)


def test_simplex_projection_with_ties():
    x = np.array([[0.5, 0.5, 0.5], [2.0, 2.0, -1.0], [0.0, 0.0, 0.0]])
    got = sets.Simplex(3).project(x)
    assert np.allclose(got, [[1 / 3] * 3, [0.5, 0.5, 0.0], [1 / 3] * 3])


def test_dykstra_reaches_the_nearest_point_of_the_intersection():
    from scipy.optimize import minimize

    ball, half = sets.Ball([0.0, 0.0, 0.0], 1.0), sets.HalfSpace([1.0, 1.0, 0.0], 0.2)
    both = sets.Intersection(ball, half, tol=1e-13)
    rng = np.random.default_rng(3)
    x = rng.normal(scale=2.0, size=(6, 3))
    got = both.project(x)
    for row, p in zip(x, got, strict=True):
        constraints = [
            {"type": "ineq", "fun": lambda z: 1.0 - z @ z},
            {"type": "ineq", "fun": lambda z: 0.2 - z[0] - z[1]},
        ]
        ref = minimize(
            lambda z, r=row: ((z - r) ** 2).sum(),
            np.zeros(3),
            method="SLSQP",
            constraints=constraints,
            options={"ftol": 1e-14, "maxiter": 500},
        )
        assert np.allclose(p, ref.x, atol=1e-5)
    # plain alternating projections would stop at a feasible point that is not the nearest
    assert both.sweeps > 1


def test_dykstra_warns_when_it_cannot_converge():
    empty = sets.Intersection(sets.Ball([0.0, 0.0], 1.0), sets.Ball([5.0, 0.0], 1.0), max_iter=20)
    with pytest.warns(RuntimeWarning, match="max_iter=20"):
        empty.project(np.array([[2.5, 1.0]]))


def test_single_point_and_integer_input():
    box = sets.Box([0, 0], [1, 1])
    assert box.project(np.array([2, -3])).tolist() == [1.0, 0.0]
    assert bool(box.contains(np.array([0.5, 0.5])))
    assert box.project([[2.0, 0.5]]).tolist() == [[1.0, 0.5]]


@pytest.mark.parametrize("name", CONVEX)
def test_condition_agrees_with_contains(name):
    s = make_sets()[name]
    xs = sp.symbols("x0:3")
    condition = s.condition(xs)
    rng = np.random.default_rng(5)
    points = np.concatenate([rng.normal(scale=2.0, size=(40, 3)), members(s, rng, 10)])
    # the simplex is a measure-zero set in R^3: random points almost never lie on it
    for point in points:
        exact = tuple(sp.Rational(repr(float(c))) for c in point)
        truth = bool(condition.subs(dict(zip(xs, exact, strict=True))))
        assert truth == s.contains_exact(exact)
        if truth:
            assert bool(s.contains(point))


def test_condition_forms():
    x, y = sp.symbols("x y")
    assert sets.Ball([1, 2], 3).condition([x, y]) == sp.Le((x - 1) ** 2 + (y - 2) ** 2, 9)
    assert sets.HalfSpace([1, -1], 0.5).condition("x y") == sp.Le(x - y, sp.Rational(1, 2))
    assert sets.Simplex(2).constraints([x, y]) == (sp.Ge(x, 0), sp.Ge(y, 0), sp.Eq(x + y, 1))
    box = sets.Box([0, -math.inf], [1, 2])
    assert set(box.constraints([x, y])) == {sp.Ge(x, 0), sp.Le(x, 1), sp.Le(y, 2)}
    union = sets.Union(sets.Ball([0, 0], 1), sets.Ball([3, 0], 1))
    assert isinstance(union.condition([x, y]), sp.Or)


def check_union_witness(union: sets.Union, verdict: sets.SetConvexity) -> None:
    a, b, t = verdict.witness
    assert union.contains_exact(a) and union.contains_exact(b)
    assert 0 < t < 1
    mix = tuple(t * p + (1 - t) * q for p, q in zip(a, b, strict=True))
    assert mix == verdict.point
    assert not union.contains_exact(mix)
    # and numerically: the mixture is not within tolerance of any member
    assert not bool(union.contains(np.array([float(c) for c in mix]), tol=0.0))


@pytest.mark.parametrize(
    "members_",
    [
        (sets.Ball([0, 0], 1), sets.Ball([3, 0], 1)),
        (sets.Ball([0, 0], 1), sets.Ball([1.5, 0], 1)),
        (sets.Box([0, 0], [1, 1]), sets.Box([1, 1], [2, 2])),
        (sets.Simplex(2), sets.HalfSpace([1, 1], 0.5)),
        (sets.HalfSpace([1, 0], 0), sets.HalfSpace([-1, 0], -1)),
        (sets.Simplex(3), sets.Ball([0, 0, 0], 0.5), sets.Box([-2, -2, -2], [-1, -1, -1])),
    ],
)
def test_nonconvex_unions_come_with_a_witness(members_):
    union = sets.Union(*members_)
    verdict = union.is_convex()
    assert verdict.convex is False
    assert not verdict
    check_union_witness(union, verdict)


@pytest.mark.parametrize(
    "members_",
    [
        (sets.Ball([0, 0], 2), sets.Ball([0.5, 0.5], 1)),
        (sets.Box([-1, -1], [1, 1]), sets.Ball([0, 0], 1), sets.Simplex(2)),
        (sets.HalfSpace([1, 1], 3), sets.Box([0, 0], [1, 1])),
        (sets.HalfSpace([2, 2], 6), sets.HalfSpace([1, 1], 1)),
    ],
)
def test_unions_with_a_containing_member_are_convex(members_):
    verdict = sets.Union(*members_).is_convex()
    assert verdict.convex is True
    assert verdict and verdict.witness is None


def test_union_that_happens_to_be_convex_is_unknown_not_false():
    # two boxes sharing a face form a box: no witness exists, and no containment holds
    verdict = sets.Union(sets.Box([0, 0], [1, 1]), sets.Box([1, 0], [2, 1])).is_convex()
    assert verdict.convex is None
    assert not verdict


def test_union_projection_picks_the_nearest_member():
    union = sets.Union(sets.Ball([0.0, 0.0], 1.0), sets.Ball([4.0, 0.0], 1.0))
    x = np.array([[1.5, 0.0], [2.5, 0.0], [0.0, 3.0]])
    assert np.allclose(union.project(x), [[1.0, 0.0], [3.0, 0.0], [0.0, 1.0]])
    assert union.contains(x).tolist() == [False, False, False]


def test_basic_sets_report_convex():
    for s in make_sets().values():
        verdict = s.is_convex()
        assert verdict.convex is True and verdict.reason


@pytest.mark.parametrize(
    ("make", "argument"),
    [
        (lambda: sets.Ball([0, 0], -1), "radius"),
        (lambda: sets.Ball([], 1), "center"),
        (lambda: sets.Ball([0, float("nan")], 1), "center"),
        (lambda: sets.Box([0, 2], [1, 1]), "low"),
        (lambda: sets.Box([0, 0, 0], [1, 1]), "high"),
        (lambda: sets.Box(0, 1, dim=0), "dim"),
        (lambda: sets.HalfSpace([0, 0], 1), "a"),
        (lambda: sets.Simplex(0), "dim"),
        (lambda: sets.Simplex(3, total=0), "total"),
        (lambda: sets.Intersection(), "sets"),
        (lambda: sets.Intersection(sets.Ball([0], 1), sets.Ball([0, 0], 1)), "sets"),
        (lambda: sets.Intersection(sets.Union(sets.Ball([0], 1))), "sets"),
        (lambda: sets.Union(sets.Ball([0], 1), "not a set"), "sets"),
    ],
)
def test_bad_arguments_are_named(make, argument):
    with pytest.raises(ValueError, match=rf"^{argument}(\[\d+\])?="):
        make()


def test_dimension_mismatch_names_x():
    ball = sets.Ball([0, 0, 0], 1)
    with pytest.raises(ValueError, match=r"^x=.*shape \(B, 3\)"):
        ball.project(np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"^x="):
        ball.contains(np.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match=r"^variables="):
        ball.condition(sp.symbols("x y"))
    with pytest.raises(ValueError, match=r"^point="):
        ball.contains_exact((Fraction(0), Fraction(0)))
