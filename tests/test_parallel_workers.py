"""The data-parallel simulator: workers as an array axis, against large-batch SGD, single runs,
stale points, local SGD's derived fixed point, other backends, sweeps and the trainer."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convexkit as ck
from convexkit import parallel
from convexkit.backend import array_namespace, to_numpy
from convexkit.simulate import FiniteSum

N, DIM = 48, 3
_RNG = np.random.default_rng(11)
A = _RNG.normal(size=(N, DIM))
Y = _RNG.normal(size=N)


def grad_i(x, idx):
    """Least squares, f_i(x) = (a_i . x - y_i)^2 / 2, on any array namespace."""
    xp = array_namespace(x)
    a = xp.asarray(A, device=x.device)
    y = xp.asarray(Y, device=x.device)
    rows, b = idx.shape
    flat = xp.reshape(idx, (-1,))
    picked = xp.reshape(xp.take(a, flat, axis=0), (rows, b, DIM))
    residual = xp.sum(picked * x[:, None, :], axis=2) - xp.reshape(xp.take(y, flat), (rows, b))
    return residual[..., None] * picked


def value_i(x, idx):
    residual = np.einsum("kbd,kd->kb", A[idx], x) - Y[idx]
    return residual**2 / 2


class Recorder:
    """grad_i that keeps every (points, indices) it is called with."""

    def __init__(self):
        self.calls = []

    def __call__(self, x, idx):
        self.calls.append((np.array(x), np.array(idx)))
        return grad_i(x, idx)


# ---------------------------------------------------------------- one worker is ck.run


@pytest.mark.parametrize("replace", [True, False])
def test_one_worker_samples_exactly_as_run(replace):
    data = FiniteSum(grad_i, N, value_i=value_i, batch_size=4, replace=replace)
    opt = ck.optim.momentum(np.array([0.02, 0.05, 0.1]), 0.5)
    alone = ck.run(data, opt, np.zeros(DIM), 60, seed=3)
    worker = ck.run(data, opt, np.zeros(DIM), 60, seed=3, parallel=parallel.synchronous(1))
    assert np.array_equal(alone.x, worker.x)
    assert np.array_equal(alone.loss, worker.loss)


def test_one_worker_draws_the_noise_of_run():
    opt = ck.optim.gd(0.1)
    alone = ck.run(lambda x: 2 * x, opt, np.ones(4), 30, noise=0.3, seed=2, batch=3)
    worker = ck.run(
        lambda x: 2 * x,
        opt,
        np.ones(4),
        30,
        noise=0.3,
        seed=2,
        batch=3,
        parallel=parallel.synchronous(1),
    )
    assert np.array_equal(alone.x, worker.x)


# ---------------------------------------------------------------- synchronous = large batch


@settings(max_examples=15)
@given(
    shards=st.lists(st.integers(2, 9), min_size=1, max_size=5),
    seed=st.integers(0, 2**31 - 1),
    replace=st.booleans(),
    topology=st.sampled_from(["ring", "parameter_server"]),
)
def test_synchronous_step_is_one_sgd_step_on_the_union_of_minibatches(
    shards, seed, replace, topology
):
    rng = np.random.default_rng(seed)
    n = sum(shards)
    sizes = [int(rng.integers(1, s + 1)) for s in shards]  # unequal minibatches, within shards
    recorder = Recorder()
    data = FiniteSum(recorder, n, batch_size=2, replace=replace)
    scheme = parallel.synchronous(len(shards), topology=topology, shards=shards, batch_sizes=sizes)
    lr = np.array([0.05, 0.1])
    trace = ck.run(data, ck.optim.sgd(lr), np.zeros(DIM), 12, seed=seed, parallel=scheme)

    offsets = np.concatenate([[0], np.cumsum(shards)[:-1]])
    x = np.zeros((2, DIM))
    for t, (_, idx) in enumerate(recorder.calls):
        idx = idx.reshape(2, len(shards), -1)
        for k, (start, size) in enumerate(zip(offsets, shards, strict=True)):
            own = idx[:, k, : sizes[k]]
            assert np.all((own >= start) & (own < start + size)), "a worker left its shard"
        union = np.concatenate([idx[:, k, : sizes[k]] for k in range(len(shards))], axis=1)
        x = x - lr[:, None] * grad_i(x, union).mean(axis=1)
        np.testing.assert_allclose(trace.x[t + 1], x, rtol=1e-12, atol=1e-14)


def test_full_shards_average_to_gradient_descent():
    data = FiniteSum(grad_i, N)
    scheme = parallel.synchronous(4, shards=[3, 11, 7, 27])
    plain = ck.run(data, ck.optim.gd(0.05), np.zeros(DIM), 40)
    workers = ck.run(data, ck.optim.gd(0.05), np.zeros(DIM), 40, parallel=scheme)
    np.testing.assert_allclose(workers.x, plain.x, rtol=1e-12, atol=1e-15)
    assert np.allclose(workers.info["weights"], np.array([3, 11, 7, 27]) / N)


def test_without_replacement_each_worker_walks_through_its_shard():
    recorder = Recorder()
    shards = [4, 6, 5]
    data = FiniteSum(recorder, sum(shards), batch_size=2, replace=False)
    scheme = parallel.synchronous(3, shards=shards, batch_sizes=[2, 3, 1])
    ck.run(data, ck.optim.sgd(0.01), np.zeros(DIM), 12, seed=9, batch=2, parallel=scheme)
    idx = np.stack([i.reshape(2, 3, -1) for _, i in recorder.calls])  # (steps, runs, K, b)
    offsets = [0, 4, 10]
    for k, (size, b) in enumerate(zip(shards, [2, 3, 1], strict=True)):
        stream = idx[:, :, k, :b].transpose(1, 0, 2).reshape(2, -1)  # each run's draws in order
        passes = stream[:, : (stream.shape[1] // size) * size].reshape(2, -1, size)
        expected = np.arange(offsets[k], offsets[k] + size)
        assert np.all(np.sort(passes, axis=2) == expected), f"worker {k} repeated an example"
    # the two runs draw different orders
    assert not np.array_equal(idx[:, 0], idx[:, 1])


def test_local_sgd_with_period_one_is_synchronous_sgd():
    data = FiniteSum(grad_i, N, batch_size=3)
    sync = ck.run(
        data, ck.optim.sgd(0.05), np.zeros(DIM), 30, seed=4, parallel=parallel.synchronous(3)
    )
    local = ck.run(
        data, ck.optim.sgd(0.05), np.zeros(DIM), 30, seed=4, parallel=parallel.local_sgd(3, 1)
    )
    np.testing.assert_allclose(local.x, sync.x, rtol=1e-12, atol=1e-15)


@given(
    period=st.integers(2, 6),
    seed=st.integers(0, 2**31 - 1),
)
@settings(max_examples=10)
def test_local_sgd_converges_to_its_derived_drifted_point(period, seed):
    """Local GD on worker quadratics h_k (x - c_k)^2 / 2: H local steps from the average a take
    worker k to c_k + r_k^H (a - c_k), r_k = 1 - eta h_k, so the average settles at
    a* = sum w_k (1 - r_k^H) c_k / sum w_k (1 - r_k^H), not at the minimizer of f."""
    rng = np.random.default_rng(seed)
    K, d, eta = 4, 3, 0.2
    curvature = rng.uniform(0.5, 3.0, K)
    objective = parallel.WorkerQuadratics(rng.normal(size=(K, d)), curvature)
    shrink = 1 - (1 - eta * curvature) ** period
    derived = (objective.weights * shrink) @ objective.centers / (objective.weights @ shrink)
    trace = ck.run(
        objective,
        ck.optim.gd(eta),
        np.zeros(d),
        150 * period,
        parallel=parallel.local_sgd(K, period),
        record="final",
    )
    np.testing.assert_allclose(trace.x_final[0], derived, rtol=1e-9, atol=1e-9)
    drift = np.linalg.norm(derived - objective.minimizer())
    assert drift > 1e-3, "heterogeneous curvatures must drift"
    assert np.linalg.norm(trace.x_final[0] - objective.minimizer()) > 0.5 * drift


# ---------------------------------------------------------------- asynchronous


class PointRecorder:
    """A gradient oracle of f = |x|^2 / 2 that keeps the points it was asked about."""

    def __init__(self):
        self.points = []

    def grad(self, x):
        self.points.append(np.array(x))
        return x

    def value(self, x):
        return (x * x).sum(axis=1) / 2


@pytest.mark.parametrize("delays", ["fixed", "uniform", (0.2, 0.0, 0.5, 0.3)])
def test_asynchronous_gradients_are_taken_at_stale_iterates(delays):
    oracle = PointRecorder()
    K, runs, steps = 3, 2, 25
    staleness = 3
    scheme = parallel.asynchronous(K, staleness, delays=delays)
    trace = ck.run(
        oracle, ck.optim.gd(np.array([0.1, 0.2])), np.ones(2), steps, seed=5, parallel=scheme
    )
    assert trace.delays.shape == (steps, runs, K)
    for t, points in enumerate(oracle.points):
        delay = trace.delays[t]
        assert np.all((delay >= 0) & (delay <= staleness))
        source = np.maximum(t - delay, 0)  # (runs, K)
        expected = trace.x[source, np.arange(runs)[:, None]]
        assert np.array_equal(points.reshape(runs, K, 2), expected)
    if delays == "fixed":
        assert np.all(trace.delays == staleness)


def test_random_delays_follow_their_distribution():
    probabilities = np.array([0.1, 0.4, 0.0, 0.5])
    scheme = parallel.asynchronous(8, delays=probabilities)
    trace = ck.run(
        lambda x: x,
        ck.optim.gd(0.01),
        np.ones(1),
        400,
        seed=1,
        batch=25,
        parallel=scheme,
        record="final",
    )
    draws = trace.delays.reshape(-1)
    counts = np.bincount(draws, minlength=4) / draws.size
    stderr = np.sqrt(probabilities * (1 - probabilities) / draws.size)
    assert np.all(np.abs(counts - probabilities) <= 6 * stderr + 1e-12)
    assert counts[2] == 0


def test_per_run_staleness_gives_one_delay_per_run():
    scheme = parallel.asynchronous(2, staleness=(0, 1, 4))
    trace = ck.run(lambda x: x, ck.optim.gd(0.5), np.ones(1), 10, parallel=scheme)
    assert trace.batch == 3
    assert np.array_equal(trace.delays[:, :, 0], np.broadcast_to([0, 1, 4], (10, 3)))
    # zero staleness is gradient descent
    np.testing.assert_allclose(trace.x[:, 0, 0], 0.5 ** np.arange(11))


# ---------------------------------------------------------------- backends and fast paths


SCHEMES = {
    "sync-qsgd-ef21": lambda: parallel.synchronous(
        3,
        shards=[8, 12, 28],
        batch_sizes=[2, 3, 4],
        compressor=parallel.qsgd(2),
        error_feedback="ef21",
    ),
    "async-randk": lambda: parallel.asynchronous(
        3, 2, delays="uniform", compressor=parallel.randk(1)
    ),
    "local-sign-ef": lambda: parallel.local_sgd(
        3, 4, topology="parameter_server", compressor=parallel.sign(), error_feedback=True
    ),
}


@pytest.mark.parametrize("name", sorted(SCHEMES))
@pytest.mark.parametrize("replace", [True, False])
def test_backends_give_the_same_iterates(backend, name, replace):
    xp, device = backend
    data = FiniteSum(grad_i, N, batch_size=3, replace=replace)
    opt = ck.optim.momentum(np.array([0.05, 0.1]), 0.5)
    scheme = SCHEMES[name]()
    reference = ck.run(data, opt, np.zeros(DIM), 25, seed=3, parallel=scheme)
    start = xp.asarray(np.zeros(DIM), device=device) if device else xp.asarray(np.zeros(DIM))
    other = ck.run(data, opt, start, 25, seed=3, parallel=scheme)
    np.testing.assert_allclose(to_numpy(other.x), reference.x, rtol=1e-13, atol=1e-15)
    if device is not None:
        assert other.x_final.device == device


@pytest.mark.parametrize("mode", ["synchronous", "asynchronous", "local"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sparse_top_k_path_equals_the_generic_path(mode, dtype):
    import array_api_strict as strict

    rng = np.random.default_rng(2)
    K, d = 4, 5000  # long enough rows for the fused kernel
    objective = parallel.WorkerQuadratics(rng.normal(size=(K, d)), [0.5, 1.0, 1.5, 2.0])
    compressor = parallel.topk(50)
    scheme = {
        "synchronous": parallel.synchronous(K, compressor=compressor, error_feedback=True),
        "asynchronous": parallel.asynchronous(
            K, 2, delays="uniform", compressor=compressor, error_feedback=True
        ),
        "local": parallel.local_sgd(K, 3, compressor=compressor, error_feedback=True),
    }[mode]
    opt = ck.optim.gd(np.array([0.1, 0.3]))
    fast = ck.run(objective, opt, np.zeros(d), 20, parallel=scheme, seed=1, dtype=dtype)
    generic = ck.run(
        objective, opt, strict.asarray(np.zeros(d)), 20, parallel=scheme, seed=1, dtype=dtype
    )
    assert fast.info["path"] == "array, sparse top-k" and generic.info["path"] == "array"
    assert np.array_equal(fast.x, to_numpy(generic.x))


# ---------------------------------------------------------------- sweeps and the trainer


def test_sweep_with_workers_does_not_depend_on_the_chunk_size():
    data = FiniteSum(grad_i, N, value_i=value_i, batch_size=2)
    scheme = parallel.asynchronous(3, 2, delays="uniform", compressor=parallel.qsgd(3))
    factory = functools.partial(ck.optim.momentum, beta=0.5)
    grid = {"lr": np.linspace(0.01, 0.2, 7)}
    whole = ck.sweep(data, factory, grid, np.zeros(DIM), 30, seed=8, parallel=scheme)
    chunked = ck.sweep(
        data, factory, grid, np.zeros(DIM), 30, seed=8, parallel=scheme, chunk_size=3
    )
    assert chunked.info["chunks"] == 3
    assert np.array_equal(whole.final_x, chunked.final_x)
    assert np.array_equal(whole.final_loss, chunked.final_loss)


def test_trainer_synchronous_workers_equal_plain_training():
    X, y = ck.data.airfoil()
    model = ck.models.mlp([5, 8, 1])
    opt = ck.optim.momentum(0.01, 0.9)
    # 1500 examples in minibatches of 16: parts of 2 and 1 example for the 14 workers, and a
    # last minibatch of 12 that leaves two workers without an example
    plain = ck.train(model, opt, (X, y), batch_size=16, epochs=1, seed=[0, 1])
    scheme = parallel.synchronous(14, seconds_per_example=1e-4)
    workers = ck.train(model, opt, (X, y), batch_size=16, epochs=1, seed=[0, 1], parallel=scheme)
    np.testing.assert_allclose(workers.loss, plain.loss, rtol=1e-10)
    assert workers.stats["bytes_sent"].shape == (plain.steps, 14)
    assert np.array_equal(workers.stats["compute_seconds"][-1] > 0, np.arange(14) < 12)
    assert np.all(np.diff(workers.stats["seconds"]) > 0)


def test_trainer_runs_stale_compressed_and_local_workers():
    X, y = ck.data.airfoil()
    model = ck.models.linear_regression(5)
    design = np.c_[X, np.ones(len(X))]
    residual = design @ np.linalg.lstsq(design, y, rcond=None)[0] - y
    optimum = 0.5 * np.mean(residual**2)  # the least-squares loss, about 0.242
    for scheme in (
        parallel.asynchronous(3, 2, delays="uniform", compressor=parallel.qsgd(4)),
        parallel.local_sgd(3, 4, compressor=parallel.topk(2), error_feedback=True),
    ):
        history = ck.train(
            model, ck.optim.sgd(0.05), (X, y), batch_size=12, epochs=1, seed=[0, 1], parallel=scheme
        )
        # from about 0.49 to within 0.02 of the optimum in one epoch, as plain SGD does
        assert np.all(history.final_loss < optimum + 0.02)
        assert history.stats["parallel"] == repr(scheme)
    with pytest.raises(ValueError, match=r"batch_size=2 is not allowed: .*at least the number"):
        ck.train(
            model,
            ck.optim.sgd(0.05),
            (X, y),
            batch_size=2,
            epochs=1,
            parallel=parallel.synchronous(3),
        )
    with pytest.raises(ValueError, match=r"parallel=.* is not allowed: .*loss_scale"):
        ck.train(
            model,
            ck.optim.sgd(0.05),
            (X, y),
            batch_size=12,
            epochs=1,
            precision="float16",
            parallel=parallel.synchronous(3),
        )


# ---------------------------------------------------------------- errors and reprs


def test_errors_name_the_argument_its_value_and_what_is_allowed():
    cases = [
        (lambda: parallel.synchronous(0), r"workers=0 is not allowed: expected an integer >= 1"),
        (lambda: parallel.synchronous(2, topology="star"), r"topology='star' .*'ring'"),
        (lambda: parallel.synchronous(2, error_feedback=True), r"error_feedback='classic'"),
        (
            lambda: parallel.synchronous(2, compressor=parallel.sign(), error_feedback="ef"),
            r"error_feedback='ef' .*'ef21'",
        ),
        (lambda: parallel.synchronous(2, shards=[3]), r"shards=\(3,\) .*one entry per worker"),
        (lambda: parallel.asynchronous(2, -1), r"staleness=-1 .*>= 0"),
        (lambda: parallel.asynchronous(2, delays=[0.5, 0.6]), r"delays=.*summing to 1"),
        (lambda: parallel.asynchronous(2, 1, delays="poisson"), r"delays='poisson'"),
        (lambda: parallel.local_sgd(2, 0), r"period=0 .*>= 1"),
        (lambda: parallel.WorkerQuadratics(np.ones((2, 3)), [1.0, -1.0]), r"curvature="),
        (
            lambda: ck.run(
                FiniteSum(grad_i, N),
                ck.optim.gd(0.1),
                np.zeros(DIM),
                3,
                parallel=parallel.synchronous(2, shards=[10, 10]),
            ),
            r"shards=\(10, 10\) .*adding up to n = 48",
        ),
        (
            lambda: ck.run(
                FiniteSum(grad_i, N, batch_size=5, replace=False),
                ck.optim.gd(0.1),
                np.zeros(DIM),
                3,
                parallel=parallel.synchronous(2, shards=[3, 45]),
            ),
            r"batch_sizes=\(5, 5\) .*at most the shard sizes \(3, 45\)",
        ),
        (
            lambda: ck.run(
                lambda x: x,
                ck.optim.gd(0.1),
                np.ones(2),
                3,
                parallel=parallel.synchronous(2, shards=[1, 1]),
            ),
            r"shards=\(1, 1\) .*FiniteSum",
        ),
        (
            lambda: ck.run(
                lambda x: x, ck.optim.newton(), np.ones(2), 3, parallel=parallel.synchronous(2)
            ),
            r"optimizer=.*needs only gradients",
        ),
        (
            lambda: ck.run(lambda x: x, ck.optim.gd(0.1), np.ones(2), 3, parallel="ring"),
            r"parallel='ring' is not allowed",
        ),
        (
            lambda: ck.run(
                lambda x: x,
                ck.optim.gd(0.1),
                np.ones(1),
                3,
                batch=2,
                parallel=parallel.asynchronous(1, (1, 2, 3)),
            ),
            r"batch=2 is not allowed|staleness=\(1, 2, 3\)",
        ),
    ]
    for make, message in cases:
        with pytest.raises(ValueError, match=message):
            make()


def test_trace_reports_the_scheme_and_converts_to_numpy():
    scheme = parallel.synchronous(2, compressor=parallel.topk(1), error_feedback=True)
    trace = ck.run(lambda x: x, ck.optim.gd(0.5), np.ones(3), 4, parallel=scheme)
    host = trace.to_numpy()
    assert isinstance(host, parallel.ParallelTrace)
    assert np.array_equal(
        host.bytes_total, np.concatenate([[0], np.cumsum(trace.bytes_sent.sum(1))])
    )
    text = repr(trace)
    assert "parallel.synchronous(workers=2, topology='ring', compressor=parallel.topk(k=1)" in text
    assert "bytes sent" in text and "s simulated" in text
    assert parallel.shard_sizes(10, 4).tolist() == [3, 3, 2, 2]
