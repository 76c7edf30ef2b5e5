"""Theory against the data-parallel simulator: the derived stability region of stale gradients,
error feedback against compression alone, and compressors' bounds inside the simulator."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convexkit as ck
from convexkit import parallel
from convexkit.simulate import FiniteSum
from convexkit.theory.stability import delayed_gd_threshold

# ---------------------------------------------------------------- staleness and stability


@settings(max_examples=12)
@given(
    tau=st.integers(0, 6),
    lam=st.floats(0.1, 10.0),
    workers=st.integers(1, 4),
    seed=st.integers(0, 2**31 - 1),
)
def test_asynchronous_staleness_contracts_inside_the_derived_region_and_grows_outside(
    tau, lam, workers, seed
):
    """GD with every gradient tau steps old, on f = lam |x|^2 / 2: the region derived from the
    delayed-gradient optimizer's code, its closed form 0 < eta lam < 2 sin(pi / (2 (2 tau + 1))),
    and the simulator agree, at 0.95 and 1.05 of the boundary."""
    region = ck.stability_region("delayed_gd", tau=tau)
    limit = float(delayed_gd_threshold(tau))
    inside, outside = 0.95 * limit / lam, 1.05 * limit / lam
    assert region.contains(eta=inside, lam=lam) and not region.contains(eta=outside, lam=lam)
    rate_in = float(region.rate(eta=inside, lam=lam))
    rate_out = float(region.rate(eta=outside, lam=lam))
    assert rate_in < 1 < rate_out
    # steps for the spectral radius alone to shrink by 10^4 (inside) or grow by 10^4 (outside)
    steps = math.ceil(max(math.log(1e4) / -math.log(rate_in), math.log(1e4) / math.log(rate_out)))
    x0 = np.random.default_rng(seed).uniform(0.5, 1.0, size=(2, 3))
    trace = ck.run(
        lambda x: lam * x,
        ck.optim.gd(np.array([inside, outside])),
        x0,
        steps,
        parallel=parallel.asynchronous(workers, tau),
        record="final",
        threshold=1e300,
    )
    size = np.linalg.norm(trace.x_final, axis=1) / np.linalg.norm(x0, axis=1)
    assert size[0] < 1e-2, f"inside the region (rate {rate_in:.4f}) it must contract"
    assert size[1] > 1e2, f"outside the region (rate {rate_out:.4f}) it must grow"


def test_random_delays_up_to_tau_are_stable_where_the_fixed_delay_tau_is():
    """A step inside the region of the largest delay contracts with delays drawn below it."""
    tau = 3
    eta = 0.9 * float(delayed_gd_threshold(tau))
    trace = ck.run(
        lambda x: x,
        ck.optim.gd(eta),
        np.ones(2),
        600,
        seed=4,
        batch=6,
        parallel=parallel.asynchronous(4, tau, delays="uniform"),
        record="final",
    )
    assert np.all(np.abs(trace.x_final) < 1e-3)


# ---------------------------------------------------------------- error feedback


def _heterogeneous_least_squares(workers=4, per_worker=12, d=8, seed=1):
    """Least squares whose shards disagree: each worker's gradient at the optimum is far
    from zero, while their average is zero."""
    rng = np.random.default_rng(seed)
    n = workers * per_worker
    A = rng.normal(size=(n, d)) + np.repeat(rng.normal(size=(workers, d)), per_worker, axis=0)
    y = rng.normal(size=n) + np.repeat(3 * rng.normal(size=workers), per_worker)

    def grad_i(x, idx):
        rows = A[idx]
        return (np.einsum("kbd,kd->kb", rows, x) - y[idx])[..., None] * rows

    L = np.linalg.eigvalsh(A.T @ A / n).max()
    return FiniteSum(grad_i, n), np.linalg.lstsq(A, y, rcond=None)[0], L


@pytest.mark.parametrize("compressor", [parallel.sign(), parallel.topk(2)], ids=["sign", "topk"])
def test_error_feedback_reaches_the_optimum_where_compression_alone_stalls(compressor):
    data, optimum, L = _heterogeneous_least_squares()
    checkpoints = [1000, 2000, 3000, 4000]

    def distance(feedback, lr):
        scheme = parallel.synchronous(4, compressor=compressor, error_feedback=feedback)
        trace = ck.run(
            data, ck.optim.gd(lr), np.zeros(optimum.size), 4000, parallel=scheme, record=checkpoints
        )
        return np.linalg.norm(trace.x[:, 0] - optimum, axis=1)

    alone = distance(False, 0.5 / L)
    # compression alone: the average of compressed worker gradients vanishes elsewhere, so
    # the iterates settle at a wrong point and stay there
    assert np.all(alone > 0.1)
    assert alone[-1] > 0.9 * alone[1]
    # EF21: the workers' gradient estimates converge, and so do the iterates, exactly
    assert distance("ef21", 0.5 / L)[-1] < 1e-8
    # classic error feedback: a neighbourhood of the optimum that shrinks with the step
    classic_large = distance(True, 0.5 / L).max()
    classic_small = distance(True, 0.1 / L)[1:].max()
    assert classic_large < 0.25 * alone.min()
    assert classic_small < 0.5 * classic_large


def test_classic_error_feedback_reaches_the_optimum_when_local_gradients_vanish():
    """With one worker the local gradient is zero at the optimum, and classic error feedback
    converges exactly, also for top-k on a least-squares problem."""
    data, optimum, L = _heterogeneous_least_squares(workers=1, per_worker=40)
    scheme = parallel.synchronous(1, compressor=parallel.topk(2), error_feedback=True)
    trace = ck.run(
        data, ck.optim.gd(0.5 / L), np.zeros(optimum.size), 3000, parallel=scheme, record="final"
    )
    assert np.linalg.norm(trace.x_final[0] - optimum) < 1e-8


# ---------------------------------------------------------------- compressors inside the simulator


@pytest.mark.parametrize(
    "compressor",
    [parallel.qsgd(2), parallel.terngrad(), parallel.randk(2)],
    ids=["qsgd", "terngrad", "randk"],
)
def test_stochastic_compressors_stay_unbiased_in_the_simulator(compressor):
    """One step from x0 with gradient g = x0: over many runs (each its own counter-based
    stream) the mean step equals the uncompressed one, within 6 standard errors, and the
    mean squared error matches the compressor's exact variance."""
    runs, d = 20_000, 5
    x0 = np.array([1.0, -0.5, 0.25, 2.0, 0.0])
    scheme = parallel.synchronous(2, compressor=compressor)
    trace = ck.run(
        lambda x: x, ck.optim.gd(1.0), x0, 1, batch=runs, seed=7, parallel=scheme, record="final"
    )
    step = x0 - trace.x_final  # the average of two workers' decoded messages
    stderr = step.std(axis=0) / math.sqrt(runs)
    assert np.all(np.abs(step.mean(axis=0) - x0) <= 6 * stderr + 1e-12)
    # two independent messages averaged: the variance halves
    error = np.sum((step - x0) ** 2, axis=1)
    bound = float(compressor.variance_bound(x0[None, :])[0]) / 2
    assert error.mean() <= bound + 6 * error.std() / math.sqrt(runs)
    assert d == x0.size


@settings(max_examples=30)
@given(
    seed=st.integers(0, 2**31 - 1),
    exponent=st.integers(-3, 3),
    precision=st.sampled_from(["float16", "bfloat16"]),
)
def test_cast_error_within_its_bound_and_exact_in_expectation(seed, exponent, precision):
    """Casting is deterministic: its expected error is its error, within 2^-2p |v|^2, and the
    message is the rounded gradient entry by entry (within 2^-p relative)."""
    rng = np.random.default_rng(seed)
    # magnitudes within 10^(exponent +- 1), inside both formats' normal range (no underflow)
    v = rng.choice([-1.0, 1.0], (3, 64)) * 10.0 ** rng.uniform(exponent - 1, exponent + 1, (3, 64))
    compressor = parallel.cast(precision)
    message = compressor(v)
    assert not compressor.unbiased
    assert np.array_equal(message, compressor(v))  # the same message every time
    p = {"float16": 11, "bfloat16": 8}[precision]
    assert np.all(np.abs(message - v) <= 2.0**-p * np.abs(v))
    assert np.all(np.sum((message - v) ** 2, axis=1) <= compressor.variance_bound(v))
    assert np.all(parallel.identity().variance_bound(v) == 0)
