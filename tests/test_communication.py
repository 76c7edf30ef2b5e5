"""The communication model against a simulation of the protocol it describes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from convexkit import parallel


@given(workers=st.integers(1, 12), n=st.integers(1, 200), seed=st.integers(0, 2**31 - 1))
def test_ring_allreduce_sums_and_sends_what_the_formula_says(workers, n, seed):
    x = np.random.default_rng(seed).standard_normal((workers, n))
    result, sent = parallel.simulate_ring_allreduce(x)
    np.testing.assert_allclose(
        result, np.broadcast_to(x.sum(axis=0), x.shape), rtol=1e-12, atol=1e-12
    )
    # the formula is the average over workers; with n divisible by K every worker sends it
    assert sent.mean() == pytest.approx(parallel.ring_allreduce_bytes(n * 8, workers))
    if n % workers == 0:
        assert np.allclose(sent, parallel.ring_allreduce_bytes(n * 8, workers))


def test_ring_time_grows_with_latency_rounds_and_is_flat_in_bandwidth_term():
    net = parallel.Network(latency=1e-5, bandwidth=1e9)
    n = 4e8
    times = [parallel.ring_allreduce_time(n, k, net) for k in (2, 4, 64)]
    # bandwidth term 2(K-1)/K n / beta approaches 2 n / beta; latency term grows as 2(K-1) alpha
    assert times[0] == pytest.approx(2 * 1e-5 + n / 1e9)
    assert times[2] == pytest.approx(2 * 63 * 1e-5 + 2 * 63 / 64 * n / 1e9)


def test_compressed_messages_are_all_gathered_and_cost_less():
    d, k = 10**6, 16
    dense = parallel.communication_cost(d, k)
    sparse = parallel.communication_cost(d, k, compressor=parallel.topk(d // 100))
    sign = parallel.communication_cost(d, k, compressor=parallel.sign())
    assert dense.scheme == "ring all-reduce" and sparse.scheme == "ring all-gather"
    assert sparse.bytes_per_worker == pytest.approx((k - 1) * parallel.topk(d // 100).bits(d) / 8)
    assert sparse.bytes_per_worker < dense.bytes_per_worker
    assert sign.bytes_per_worker == pytest.approx((k - 1) * (32 + d) / 8)


def test_parameter_server_bottleneck_is_the_server_link():
    d, k = 10**6, 8
    net = parallel.Network(latency=0.0, bandwidth=1e9, servers=2)
    cost = parallel.communication_cost(d, k, topology="parameter_server", network=net)
    assert cost.seconds == pytest.approx(k * (4 * d + 4 * d) / (2 * 1e9))


def test_speedup_saturates_when_communication_dominates():
    counts = np.array([1, 2, 4, 8, 16, 32, 64])
    s = parallel.speedup(counts, compute_seconds=0.1, d=10**7)
    assert s[0] == pytest.approx(1.0)
    assert np.all(np.diff(s[:3]) > 0)
    ring = parallel.ring_allreduce_time(4e7, 64)
    assert s[-1] == pytest.approx(0.1 / (0.1 / 64 + ring))
    compressed = parallel.speedup(
        counts, compute_seconds=0.1, d=10**7, compressor=parallel.topk(10**5)
    )
    assert compressed[3] > s[3]


def test_model_parallel_memory_split_and_traffic():
    sizes = [1024, 4096, 4096, 4096, 10]
    cost = parallel.model_parallel_cost(sizes, devices=2, batch=32)
    params = sum((sizes[i] + 1) * sizes[i + 1] for i in range(len(sizes) - 1))
    assert cost.memory_per_device.sum() == pytest.approx(params * 16)
    assert cost.memory_per_device.max() < cost.data_parallel_memory
    cut = cost.boundaries[1]
    assert cost.bytes_per_step == 2 * 32 * sizes[cut] * 4


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="workers=0"):
        parallel.ring_allreduce_time(10, 0)
    with pytest.raises(ValueError, match="topology='tree'"):
        parallel.communication_cost(10, 2, topology="tree")
    with pytest.raises(ValueError, match="devices=9"):
        parallel.model_parallel_cost([4, 4, 4], devices=9, batch=1)
    with pytest.raises(ValueError, match="bandwidth=0"):
        parallel.Network(bandwidth=0)
