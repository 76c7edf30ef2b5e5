"""Compressors against their proven bounds: exact expectations, Monte Carlo, and tightness."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from convexkit import parallel
from convexkit.backend import Random, to_numpy
from convexkit.parallel.compression import _rank_mask

DRAWS = 20_000


@st.composite
def vectors(draw, min_dim=2, max_dim=40):
    d = draw(st.integers(min_dim, max_dim))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    scale = 10.0 ** draw(st.integers(-3, 3))
    v = rng.standard_normal(d) * scale
    # some exact zeros and repeated magnitudes, where compressors have edge cases
    v[rng.random(d) < 0.1] = 0.0
    if draw(st.booleans()):
        v[: d // 2] = np.sign(v[: d // 2]) * scale
    return v, seed


def _monte_carlo(compressor, v, seed):
    batch = np.broadcast_to(v, (DRAWS, v.size)).copy()
    return compressor(batch, Random(seed))


def _coordinate_variance(compressor, v):
    """Exact Var[C(v)_i] of the unbiased compressors."""
    if compressor.name == "qsgd":
        s = compressor.params["levels"]
        norm = np.linalg.norm(v)
        if norm == 0:
            return np.zeros_like(v)
        r = s * np.abs(v) / norm
        p = r - np.floor(r)
        return (norm / s) ** 2 * p * (1 - p)
    if compressor.name == "terngrad":
        return np.max(np.abs(v)) * np.abs(v) - v * v
    if compressor.name == "randk":
        return (v.size / compressor.params["k"] - 1) * v * v
    raise ValueError(compressor.name)


def _qsgd_exact_variance(v, s):
    norm = np.linalg.norm(v)
    if norm == 0:
        return 0.0
    r = s * np.abs(v) / norm
    p = r - np.floor(r)
    return float(np.sum((norm / s) ** 2 * p * (1 - p)))


@pytest.mark.parametrize(
    "make",
    [
        lambda d: parallel.qsgd(1),
        lambda d: parallel.qsgd(4),
        lambda d: parallel.terngrad(),
        lambda d: parallel.randk(max(1, d // 3)),
    ],
    ids=["qsgd1", "qsgd4", "terngrad", "randk"],
)
@given(case=vectors())
def test_unbiased_compressors_have_mean_v(make, case):
    v, seed = case
    compressor = make(v.size)
    assert compressor.unbiased
    samples = _monte_carlo(compressor, v, seed)
    mean = samples.mean(axis=0)
    # the exact per-coordinate variance gives the standard error; a sample's spread is 0 when
    # a rare outcome never shows up, which would make the check impossible to pass
    stderr = np.sqrt(_coordinate_variance(compressor, v) / DRAWS)
    assert np.all(np.abs(mean - v) <= 6 * stderr + 1e-12 * (1 + np.abs(v)))


@pytest.mark.parametrize("levels", [1, 2, 8])
@given(case=vectors())
def test_qsgd_variance_exact_and_bounded(levels, case):
    v, seed = case
    compressor = parallel.qsgd(levels)
    exact = _qsgd_exact_variance(v, levels)
    bound = float(compressor.variance_bound(v))
    assert exact <= bound * (1 + 1e-12) + 1e-300
    errors = np.sum((_monte_carlo(compressor, v, seed) - v) ** 2, axis=1)
    stderr = errors.std() / math.sqrt(DRAWS)
    assert abs(errors.mean() - exact) <= 6 * stderr + 1e-12 * np.sum(v * v)


def test_qsgd_bound_is_nearly_attained():
    # With s = 1 and equal entries, r_i = 1/sqrt(d) and the exact variance is
    # (sqrt(d) - 1) ||v||^2 against the bound sqrt(d) ||v||^2: a bound half as large would fail.
    d, s = 64, 1
    v = np.full(d, 1.0)
    exact = _qsgd_exact_variance(v, s)
    bound = float(parallel.qsgd(s).variance_bound(v))
    assert exact == pytest.approx((math.sqrt(d) - 1) * d)
    assert exact > bound / 2


@given(case=vectors())
def test_terngrad_variance_formula(case):
    v, seed = case
    compressor = parallel.terngrad()
    exact = float(compressor.variance_bound(v))
    errors = np.sum((_monte_carlo(compressor, v, seed) - v) ** 2, axis=1)
    stderr = errors.std() / math.sqrt(DRAWS)
    assert abs(errors.mean() - exact) <= 6 * stderr + 1e-12 * np.sum(v * v)


@given(case=vectors())
def test_randk_variance_formula(case):
    v, seed = case
    compressor = parallel.randk(max(1, v.size // 4))
    exact = float(compressor.variance_bound(v))
    errors = np.sum((_monte_carlo(compressor, v, seed) - v) ** 2, axis=1)
    stderr = errors.std() / math.sqrt(DRAWS)
    assert abs(errors.mean() - exact) <= 6 * stderr + 1e-12 * np.sum(v * v)
    assert np.all(
        np.count_nonzero(_monte_carlo(compressor, v, seed), axis=1) <= compressor.params["k"]
    )


@given(case=vectors())
def test_sign_error_is_exactly_the_formula(case):
    v, _ = case
    compressor = parallel.sign()
    error = float(np.sum((compressor(v[None]) - v) ** 2))
    assert error == pytest.approx(float(compressor.variance_bound(v[None])[0]), rel=1e-9, abs=1e-12)


@given(case=vectors(), fraction=st.floats(0.05, 1.0))
def test_topk_contraction(case, fraction):
    v, _ = case
    k = max(1, int(fraction * v.size))
    compressor = parallel.topk(k)
    message = compressor(v[None])[0]
    assert np.count_nonzero(message) <= k
    assert np.sum((message - v) ** 2) <= (1 - k / v.size) * np.sum(v * v) * (1 + 1e-12)


def test_topk_contraction_is_tight_on_equal_magnitudes():
    d, k = 50, 10
    v = np.where(np.arange(d) % 2 == 0, 1.0, -1.0)
    message = parallel.topk(k)(v[None])[0]
    assert np.sum((message - v) ** 2) == pytest.approx((1 - k / d) * d)
    # ties go to the lowest indices
    assert np.array_equal(np.flatnonzero(message), np.arange(k))


@pytest.mark.parametrize("precision,p", [("float16", 11), ("bfloat16", 8)])
def test_cast_relative_error(precision, p):
    v = np.random.default_rng(3).standard_normal((4, 1000)) * 10.0
    message = parallel.cast(precision)(v)
    assert np.all(np.abs(message - v) <= 2.0**-p * np.abs(v))
    assert np.all(np.sum((message - v) ** 2, axis=-1) <= parallel.cast(precision).variance_bound(v))


def test_fused_topk_equals_the_generic_path():
    rng = np.random.default_rng(7)
    d, k = 10_000, 137
    for dtype in (np.float32, np.float64):
        g = rng.standard_normal((3, 2, d)).astype(dtype)
        g[0, 0, :500] = 1.0  # a block of ties at the top
        g[1, 1] = np.round(g[1, 1])  # many ties everywhere
        e = (0.5 * rng.standard_normal((3, 2, d))).astype(dtype)
        message, error = parallel.compress_with_feedback(parallel.topk(k), g, e)
        corrected = g + e
        expected = np.where(_rank_mask(np, np.abs(corrected), k), corrected, 0)
        assert message.dtype == dtype
        assert np.array_equal(message, expected)
        assert np.array_equal(error, corrected - expected)
        plain = parallel.topk(k)(g)
        assert np.array_equal(plain, np.where(_rank_mask(np, np.abs(g), k), g, 0))


def test_fused_topk_hands_nan_rows_to_the_generic_path():
    d = 5000
    g = np.random.default_rng(1).standard_normal((2, d))
    g[1, : d - 3] = np.nan  # fewer finite entries than k
    message = parallel.topk(10)(g)
    expected = np.where(_rank_mask(np, np.abs(g), 10), g, 0)
    assert np.array_equal(message, expected, equal_nan=True)


@pytest.mark.parametrize("name", ["qsgd", "terngrad", "sign", "topk", "randk"])
def test_backends_agree(backend, name):
    xp, device = backend
    make = {
        "qsgd": lambda: parallel.qsgd(3),
        "terngrad": parallel.terngrad,
        "sign": parallel.sign,
        "topk": lambda: parallel.topk(5),
        "randk": lambda: parallel.randk(5),
    }
    compressor = make[name]()
    host = np.random.default_rng(0).standard_normal((4, 3, 17))
    v = xp.asarray(host, device=device) if device is not None else xp.asarray(host)
    got = compressor(v, Random(11, xp=xp, device=device))
    reference = compressor(host, Random(11))
    np.testing.assert_allclose(to_numpy(got), reference, rtol=1e-12, atol=1e-12)
    if device is not None:
        assert got.device == device


def test_bits_on_the_wire():
    d = 1000
    assert parallel.identity().bits(d) == 32 * d
    assert parallel.qsgd(1).bits(d) == 32 + 2 * d
    assert parallel.qsgd(15).bits(d) == 32 + 5 * d
    assert parallel.terngrad().bits(d) == 32 + 2 * d
    assert parallel.sign().bits(d) == 32 + d
    assert parallel.topk(10).bits(d) == 10 * (32 + 10)
    assert parallel.randk(10).bits(d) == 10 * 32 + 64
    assert parallel.cast("bfloat16").bits(d) == 16 * d


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"levels=0 is not allowed"):
        parallel.qsgd(0)
    with pytest.raises(
        ValueError, match=r"k=20 is not allowed: expected at most the vector length d = 10"
    ):
        parallel.topk(20)(np.ones((1, 10)))
    with pytest.raises(ValueError, match=r"rng=None"):
        parallel.qsgd(2)(np.ones((1, 10)))
    with pytest.raises(ValueError, match=r"precision='int8'"):
        parallel.cast("int8")
