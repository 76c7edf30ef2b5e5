"""Communication accounting and the simulated clock of the data-parallel simulator, against the
ring protocol's simulation and the alpha-beta formulas."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convexkit as ck
from convexkit import parallel
from convexkit.simulate import FiniteSum

NET = parallel.Network(latency=2e-5, bandwidth=1e9)


def _quadratic(x):
    return x


@settings(max_examples=25)
@given(workers=st.integers(2, 9), d=st.integers(1, 40))
def test_dense_ring_bytes_per_worker_are_those_of_the_protocol(workers, d):
    """Dense messages are all-reduced; each worker's bytes at each step are what the ring
    protocol, run chunk by chunk, has that worker send (they differ when K does not divide d)."""
    scheme = parallel.synchronous(workers, network=NET)
    trace = ck.run(_quadratic, ck.optim.gd(0.1), np.ones(d), 3, parallel=scheme)
    _, sent = parallel.simulate_ring_allreduce(np.zeros((workers, d)), bytes_per_value=4)
    assert np.array_equal(trace.bytes_sent, np.broadcast_to(sent, (3, workers)))
    assert trace.bytes_sent.sum(axis=1)[0] == pytest.approx(
        workers * parallel.ring_allreduce_bytes(4 * d, workers)
    )


@pytest.mark.parametrize(
    "compressor,topology,scheme_name",
    [
        (parallel.topk(5), "ring", "ring all-gather"),
        (parallel.qsgd(4), "ring", "ring all-gather"),
        (parallel.cast("bfloat16"), "ring", "ring all-reduce"),
        (parallel.sign(), "parameter_server", "parameter server"),
        (None, "parameter_server", "parameter server"),
    ],
)
def test_compressed_bytes_follow_the_encoding_and_the_topology(compressor, topology, scheme_name):
    K, d = 4, 100
    scheme = parallel.synchronous(K, topology=topology, compressor=compressor, network=NET)
    trace = ck.run(_quadratic, ck.optim.gd(0.1), np.ones(d), 5, seed=0, parallel=scheme)
    cost = parallel.communication_cost(d, K, compressor=compressor, topology=topology, network=NET)
    assert cost.scheme == scheme_name == trace.info["exchange"]
    assert np.allclose(
        trace.bytes_sent.sum(axis=1),
        cost.bytes_total if topology == "ring" else K * cost.bytes_per_worker,
    )
    message = (compressor or parallel.identity()).bits(d) / 8
    if scheme_name == "ring all-gather":
        assert np.all(trace.bytes_sent == (K - 1) * message)
    if scheme_name == "parameter server":  # each worker pushes one message per step
        assert np.all(trace.bytes_sent == message)
    assert np.allclose(trace.communication_seconds, cost.seconds)


def test_clock_is_slowest_worker_plus_exchange_and_local_sgd_talks_every_period():
    """Unequal minibatches: a synchronous step lasts as long as the largest one takes, plus
    the exchange; asynchronous steps last the mean round trip; local SGD sends only every
    H steps."""
    A = np.random.default_rng(0).normal(size=(40, 3))

    def grad_i(x, idx):
        return np.einsum("kbd,kd->kb", A[idx], x)[..., None] * A[idx]

    data = FiniteSum(grad_i, 40, batch_size=2)
    per_example = 1e-3
    sizes = [1, 2, 5, 2]
    common = dict(batch_sizes=sizes, network=NET, seconds_per_example=per_example)
    steps = 12

    sync = ck.run(
        data,
        ck.optim.sgd(0.01),
        np.ones(3),
        steps,
        seed=1,
        parallel=parallel.synchronous(4, **common),
    )
    exchange = parallel.ring_allreduce_time(3 * 4, 4, NET)
    assert np.allclose(np.diff(sync.seconds), 5 * per_example + exchange)
    assert np.allclose(sync.compute_seconds, per_example * np.array(sizes))

    stale = ck.run(
        data,
        ck.optim.sgd(0.01),
        np.ones(3),
        steps,
        seed=1,
        parallel=parallel.asynchronous(4, 2, **common),
    )
    push = parallel.parameter_server_time(3 * 4, 3 * 4, 4, NET)
    assert np.allclose(np.diff(stale.seconds), np.mean(sizes) * per_example + push)

    period = 4
    local = ck.run(
        data,
        ck.optim.sgd(0.01),
        np.ones(3),
        steps,
        seed=1,
        parallel=parallel.local_sgd(4, period, **common),
    )
    talks = (np.arange(steps) + 1) % period == 0
    assert np.all(local.bytes_sent[~talks] == 0) and np.all(local.bytes_sent[talks] > 0)
    assert np.allclose(np.diff(local.seconds), 5 * per_example + np.where(talks, exchange, 0))


@pytest.mark.parametrize("topology", ["ring", "parameter_server"])
@pytest.mark.parametrize("compressor", [None, parallel.topk(100)], ids=["dense", "topk"])
def test_simulated_speedup_equals_the_closed_form(topology, compressor):
    """Strong scaling: a global batch of 64 examples split over K workers; T(1) / T(K) from
    the simulated clock equals :func:`speedup` of the same time model."""
    d, per_example, batch = 10_000, 2e-5, 64
    workers = np.array([1, 2, 4, 8, 16, 32, 64])
    objective = FiniteSum(
        lambda x, idx: np.broadcast_to(x[:, None, :], idx.shape + x.shape[1:]), batch, batch_size=1
    )
    seconds = []
    for k in workers.tolist():  # one simulation per worker count: the shapes differ
        scheme = parallel.synchronous(
            k,
            topology=topology,
            compressor=compressor,
            batch_sizes=[batch // k] * k,
            network=NET,
            seconds_per_example=per_example,
        )
        trace = ck.run(
            objective, ck.optim.sgd(0.1), np.zeros(d), 2, seed=0, parallel=scheme, record="final"
        )
        seconds.append(trace.seconds[-1] / 2)
    simulated = seconds[0] / np.asarray(seconds)
    # speedup() times one worker without communication; the simulator's single worker still
    # pushes to and pulls from a parameter server (in a ring it sends nothing)
    single = parallel.communication_cost(
        d, 1, compressor=compressor, topology=topology, network=NET
    ).seconds
    closed = parallel.speedup(
        workers,
        compute_seconds=per_example * batch,
        d=d,
        compressor=compressor,
        topology=topology,
        network=NET,
    )
    closed = np.where(
        workers == 1, 1.0, closed * (per_example * batch + single) / (per_example * batch)
    )
    np.testing.assert_allclose(simulated, closed, rtol=1e-12)


def test_measured_compute_time_makes_a_running_clock():
    trace = ck.run(
        _quadratic, ck.optim.gd(0.1), np.ones(50), 20, batch=3, parallel=parallel.synchronous(4)
    )
    assert np.all(trace.compute_seconds > 0)
    assert np.all(np.diff(trace.seconds) > 0)
    assert trace.seconds[-1] == pytest.approx(
        np.sum(trace.compute_seconds.max(axis=1) + trace.communication_seconds)
    )
