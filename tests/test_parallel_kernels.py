"""The sparse top-k kernel with error feedback against the generic path, exactly."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convexkit.kernels.selection import available, scatter_messages, topk_sparse
from convexkit.parallel.compression import _rank_mask

pytestmark = pytest.mark.skipif(not available(), reason="numba is not installed")


def _generic(corrected, k):
    message = np.where(_rank_mask(np, np.abs(corrected), k), corrected, 0)
    with np.errstate(invalid="ignore"):  # inf - inf where an infinite entry is kept
        return message, corrected - message


def _dense(values, indices, shape):
    out = np.zeros(shape, dtype=values.dtype)
    np.put_along_axis(out, indices, values, axis=1)
    return out


@st.composite
def rows(draw):
    rows_, d = draw(st.integers(1, 4)), draw(st.integers(4096, 12000))
    k = draw(st.sampled_from([1, 7, d // 100, d // 3, d]))
    seed = draw(st.integers(0, 2**31 - 1))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(seed)
    g = rng.standard_normal((rows_, d)).astype(dtype)
    e = (0.5 * rng.standard_normal((rows_, d))).astype(dtype)
    shape = draw(st.sampled_from(["plain", "ties", "blocks", "scales", "inf", "hidden"]))
    if shape == "ties":  # many equal magnitudes everywhere
        g = np.round(g)
        e = np.zeros_like(e)
    elif shape == "blocks":  # a block of equal values at the top: the sample misses them
        g[:, : d // 3] = 50.0
    elif shape == "scales":  # magnitudes over many orders, sorted: adversarial for a sample
        g = np.sort(g * 10.0 ** rng.uniform(-6, 6, size=g.shape), axis=1)
    elif shape == "inf":
        g[:, ::97] = np.inf
    elif shape == "hidden":  # the largest entries between the sampled positions (d >= 8192)
        g[:, 1::2] *= 1000.0
    return g.astype(dtype), e, k


@settings(max_examples=25)
@given(case=rows())
def test_sparse_feedback_equals_the_generic_path(case):
    g, e, k = case
    expected_message, expected_error = _generic(g + e, k)
    values = np.empty((g.shape[0], k), dtype=g.dtype)
    indices = np.empty((g.shape[0], k), dtype=np.int64)
    error = e.copy()
    with np.errstate(invalid="ignore"):
        failed = topk_sparse(k, values, indices, error, gradient=g)
        assert not failed.any()
        assert np.array_equal(_dense(values, indices, g.shape), expected_message)
        assert np.array_equal(error, expected_error, equal_nan=True)
    assert np.all(np.diff(indices, axis=1) > 0)


@settings(max_examples=10)
@given(seed=st.integers(0, 2**31 - 1), dtype=st.sampled_from([np.float32, np.float64]))
def test_affine_gradient_fused_into_the_selection(seed, dtype):
    rng = np.random.default_rng(seed)
    runs, workers, d, k = 2, 3, 5000, 61
    x = rng.standard_normal((runs, d)).astype(dtype)
    centers = rng.standard_normal((workers, d)).astype(dtype)
    curvature = rng.uniform(0.5, 2.0, workers).astype(dtype)
    e = rng.standard_normal((runs * workers, d)).astype(dtype)
    gradient = (curvature[None, :, None] * (x[:, None, :] - centers[None])).reshape(-1, d)
    expected_message, expected_error = _generic(gradient + e, k)
    values = np.empty((runs * workers, k), dtype=dtype)
    indices = np.empty((runs * workers, k), dtype=np.int64)
    failed = topk_sparse(k, values, indices, e, x=x, centers=centers, curvature=curvature)
    assert not failed.any()
    assert np.array_equal(_dense(values, indices, e.shape), expected_message)
    assert np.array_equal(e, expected_error)
    # scatter-add of the sparse messages is the weighted sum of the dense ones, bit for bit
    weights = np.array([0.2, 0.3, 0.5], dtype=dtype)
    out = scatter_messages(values, indices, weights, np.empty((runs, d), dtype=dtype))
    dense = expected_message.reshape(runs, workers, d)
    assert np.array_equal(out, np.sum(weights[None, :, None] * dense, axis=1))


def test_rows_with_too_few_numbers_are_handed_back_holding_the_corrected_vector():
    d, k = 5000, 10
    g = np.random.default_rng(0).standard_normal((3, d))
    g[1, : d - 5] = np.nan
    e = np.ones((3, d))
    corrected = g + e
    values, indices = np.empty((3, k)), np.empty((3, k), dtype=np.int64)
    error = e.copy()
    failed = topk_sparse(k, values, indices, error, gradient=g)
    assert failed.tolist() == [False, True, False]
    assert np.array_equal(error[1], corrected[1], equal_nan=True)
    expected_message, expected_error = _generic(corrected[[0, 2]], k)
    assert np.array_equal(_dense(values[[0, 2]], indices[[0, 2]], (2, d)), expected_message)
    assert np.array_equal(error[[0, 2]], expected_error)
