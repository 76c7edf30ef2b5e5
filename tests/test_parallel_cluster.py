"""Scale-out on a real Dask cluster: separate worker processes on 127.0.0.1, results identical
to one process, and no Dask import unless a cluster is asked for."""

from __future__ import annotations

import functools
import importlib.util
import subprocess
import sys

import numpy as np
import pytest

import convexkit as ck
from convexkit import parallel
from convexkit.simulate import FiniteSum

needs_distributed = pytest.mark.skipif(
    importlib.util.find_spec("distributed") is None,
    reason="Dask's distributed package is not installed (pip install 'convexkit[dist]')",
)

N, DIM = 40, 3
A = np.random.default_rng(5).normal(size=(N, DIM))
Y = A @ np.arange(1.0, DIM + 1)


def grad_i(x, idx):
    rows = A[idx]
    return (np.einsum("kbd,kd->kb", rows, x) - Y[idx])[..., None] * rows


def value_i(x, idx):
    return (np.einsum("kbd,kd->kb", A[idx], x) - Y[idx]) ** 2 / 2


def block_of_runs(lr, seed):
    """One Monte Carlo chunk: final losses of a block of stale, compressed runs."""
    data = FiniteSum(grad_i, N, value_i=value_i, batch_size=2)
    scheme = parallel.asynchronous(2, 2, delays="uniform", compressor=parallel.qsgd(2))
    trace = ck.run(
        data, ck.optim.sgd(lr), np.zeros(DIM), 50, seed=seed, parallel=scheme, record="final"
    )
    return trace.loss_final


@pytest.fixture(scope="module")
def client():
    with parallel.local_cluster(n_workers=2, threads_per_worker=1) as active:
        yield active


@needs_distributed
def test_sweep_on_a_local_cluster_equals_the_sweep_in_one_process(client):
    info = client.scheduler_info()
    assert len(info["workers"]) == 2
    assert all(address.startswith("tcp://127.0.0.1:") for address in info["workers"])
    assert client.scheduler.address.startswith("tcp://127.0.0.1:")
    pids = set(client.run(lambda: __import__("os").getpid()).values())
    assert len(pids) == 2 and __import__("os").getpid() not in pids  # separate processes

    data = FiniteSum(grad_i, N, value_i=value_i, batch_size=3)
    scheme = parallel.synchronous(2, compressor=parallel.randk(1), error_feedback="ef21")
    factory = functools.partial(ck.optim.momentum, beta=0.5)
    grid = {"lr": np.linspace(0.005, 0.08, 9)}
    kwargs = dict(seed=11, chunk_size=2, parallel=scheme, noise=0.01)
    local = ck.sweep(data, factory, grid, np.zeros(DIM), 40, **kwargs)
    remote = ck.sweep(data, factory, grid, np.zeros(DIM), 40, client=client, **kwargs)
    address = ck.sweep(
        data, factory, grid, np.zeros(DIM), 40, client=client.scheduler.address, **kwargs
    )
    assert remote.info["chunks"] == 5
    for result in (remote, address):
        assert np.array_equal(result.final_x, local.final_x)
        assert np.array_equal(result.final_loss, local.final_loss)
        assert np.array_equal(result.rate, local.rate, equal_nan=True)
        assert np.array_equal(result.diverged, local.diverged)


@needs_distributed
def test_monte_carlo_chunks_map_over_the_cluster_in_order(client):
    tasks = [(lr, seed) for lr in (0.01, 0.05) for seed in (1, 2)]
    here = parallel.map_chunks(block_of_runs, tasks)
    there = parallel.map_chunks(block_of_runs, tasks, client=client)
    assert len(there) == 4
    for mine, theirs in zip(here, there, strict=True):
        assert np.array_equal(mine, theirs)


@needs_distributed
def test_an_analysis_runs_its_monte_carlo_on_the_cluster(client):
    from analyses import parallel_staleness

    here = parallel_staleness.run(quick=True, seed=2)
    there = parallel_staleness.run(quick=True, seed=2, client=client)
    assert np.array_equal(here["random_contracting"], there["random_contracting"])
    assert here["summary"] == there["summary"]


def test_importing_and_sweeping_without_a_client_never_imports_dask():
    script = (
        "import sys, numpy as np, convexkit as ck\n"
        "ck.sweep(lambda x: x, ck.optim.gd, {'lr': [0.1, 0.5]}, [1.0], 5)\n"
        "ck.run(lambda x: x, ck.optim.gd(0.1), [1.0], 3, parallel=ck.parallel.synchronous(2))\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)


def test_a_client_that_is_not_one_is_refused():
    with pytest.raises(ValueError, match=r"client=42 is not allowed: expected None, a distributed"):
        ck.sweep(lambda x: x, ck.optim.gd, {"lr": [0.1]}, [1.0], 2, client=42)
