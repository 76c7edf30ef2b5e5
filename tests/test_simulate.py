"""The vectorized runner: batches against single runs, backends, stochastic oracles,
divergence, sweeps and argument errors."""

from __future__ import annotations

import functools
import math
import pickle
import warnings

import numpy as np
import pytest
import sympy as sp

import convexkit as ck
from convexkit.backend import array_namespace, to_numpy
from convexkit.optim.base import Optimizer, hyperparameter
from convexkit.simulate import FiniteSum, Trace, evaluate_chunk, run, sweep

SCALES = np.array([1.0, 4.0])  # f(x) = (x1^2 + 4 x2^2) / 2


def quadratic_grad(x):
    xp = array_namespace(x)
    return x * xp.asarray(SCALES, dtype=x.dtype, device=x.device)


class Quadratic:
    """f(x) = sum_j s_j x_j^2 / 2 as an oracle with values and Hessians."""

    def value(self, x):
        xp = array_namespace(x)
        return xp.sum(quadratic_grad(x) * x, axis=1) / 2

    def grad(self, x):
        return quadratic_grad(x)

    def hess(self, x):
        xp = array_namespace(x)
        eye = xp.asarray(np.diag(SCALES), dtype=x.dtype, device=x.device)
        return xp.broadcast_to(eye, (x.shape[0], *eye.shape))


def plain_step(lr):
    """A tiny optimizer with the Optimizer contract: x <- x - lr g, counting steps."""

    def init(x):
        xp = array_namespace(x)
        return (xp.zeros((x.shape[0],), dtype=x.dtype, device=x.device),)

    def update(x, grad, state, step, oracle=None):
        return x - hyperparameter(lr, step, x) * grad, (state[0] + 1,)

    return Optimizer("plain", init, update, {"lr": lr})


# a small finite sum, f_i(x) = |x - c_i|^2 / 2
N_EXAMPLES, DIM = 12, 3
CENTRES = np.random.default_rng(7).normal(size=(N_EXAMPLES, DIM))


def centre_grad_i(x, idx):
    """Per-example gradients x - c_idx, shape (B, b, d), in x's namespace."""
    xp = array_namespace(x)
    centres = xp.asarray(CENTRES, dtype=x.dtype, device=x.device)
    rows = xp.take(centres, xp.reshape(idx, (-1,)), axis=0)
    rows = xp.reshape(rows, (idx.shape[0], idx.shape[1], DIM))
    return x[:, None, :] - rows


def centre_value_i(x, idx):
    xp = array_namespace(x)
    return xp.sum(centre_grad_i(x, idx) ** 2, axis=2) / 2


def one_hot_i(x, idx):
    """Gradient e_i of f_i(x) = x_i: a step of lr b records how often each example was used."""
    xp = array_namespace(x)
    eye = xp.eye(x.shape[1], dtype=x.dtype, device=x.device)
    rows = xp.take(eye, xp.reshape(idx, (-1,)), axis=0)
    return xp.reshape(rows, (idx.shape[0], idx.shape[1], x.shape[1]))


def zero_grad(x):
    return x * 0


def sampled_counts(trace: Trace, batch_size: int) -> np.ndarray:
    """Uses of every example up to each step, (steps+1, B, n), from a run with one_hot_i."""
    x = to_numpy(trace.x)
    return np.rint((x[0] - x) * batch_size).astype(int)


# ---------------------------------------------------------------- a batch equals single runs


@pytest.mark.parametrize(
    "factory",
    [
        lambda lr: ck.optim.gd(lr),
        lambda lr: ck.optim.momentum(lr, beta=0.5 + lr),
        lambda lr: ck.optim.adam(lr),
        lambda lr: plain_step(lr),
    ],
    ids=["gd", "momentum", "adam", "contract"],
)
def test_batch_equals_single_runs(factory):
    lrs = np.array([0.05, 0.2, 0.45])
    x0 = np.array([[1.0, -2.0], [0.5, 0.5], [-3.0, 1.0]])
    batch = run(Quadratic(), factory(lrs), x0, 30, noise=0.1, seed=3)
    for i, lr in enumerate(lrs):
        single = run(Quadratic(), factory(float(lr)), x0[i], 30, noise=0.1, seed=3, stream_offset=i)
        np.testing.assert_array_equal(batch.x[:, i : i + 1], single.x)
        np.testing.assert_array_equal(batch.loss[:, i : i + 1], single.loss)


@pytest.mark.parametrize("replace", [True, False])
def test_minibatch_batch_equals_single_runs(replace):
    problem = FiniteSum(
        centre_grad_i, N_EXAMPLES, value_i=centre_value_i, batch_size=5, replace=replace
    )
    lrs = np.array([0.1, 0.3, 0.6, 0.9])
    batch = run(problem, ck.optim.sgd(lrs), np.zeros(DIM), 25, seed=11)
    for i, lr in enumerate(lrs):
        single = run(problem, ck.optim.sgd(float(lr)), np.zeros(DIM), 25, seed=11, stream_offset=i)
        np.testing.assert_array_equal(batch.x[:, i : i + 1], single.x)


def test_gd_matches_closed_form_on_a_quadratic():
    lrs = np.array([0.1, 0.3])
    trace = run(Quadratic(), ck.optim.gd(lrs), [1.0, 1.0], 20)
    t = np.arange(21)[:, None]
    for j, s in enumerate(SCALES):
        np.testing.assert_allclose(trace.x[:, :, j], (1 - lrs * s) ** t, rtol=1e-12, atol=1e-300)


# ---------------------------------------------------------------- backends agree


def test_backends_agree(backend):
    xp, device = backend
    problem = FiniteSum(
        centre_grad_i, N_EXAMPLES, value_i=centre_value_i, batch_size=4, replace=False
    )
    opt = ck.optim.momentum(np.array([0.05, 0.2, 0.4]), beta=0.8)
    reference = run(problem, opt, np.ones(DIM), 40, noise=0.05, seed=5)
    x0 = xp.asarray(np.ones(DIM).tolist(), device=device)
    other = run(problem, opt, x0, 40, noise=0.05, seed=5, xp=xp, device=device)
    assert array_namespace(other.x) is array_namespace(x0)
    if device is not None:
        assert other.x.device == device and other.diverged.device == device
    np.testing.assert_allclose(to_numpy(other.x), reference.x, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(to_numpy(other.loss), reference.loss, rtol=1e-10, atol=1e-12)
    assert other.info["path"] == "array"
    grid = {"lr": [0.05, 0.2], "beta": [0.0, 0.8]}
    swept = sweep(
        problem,
        ck.optim.momentum,
        grid,
        np.ones(DIM),
        20,
        noise=0.05,
        seed=5,
        xp=xp,
        device=device,
        chunk_size=3,
    )
    expected = sweep(problem, ck.optim.momentum, grid, np.ones(DIM), 20, noise=0.05, seed=5)
    np.testing.assert_allclose(swept.final_x, expected.final_x, rtol=1e-10, atol=1e-12)
    assert swept.info["backend"] == other.info["backend"]


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_dtype_on_request(dtype):
    trace = run(Quadratic(), ck.optim.gd(0.1), [1.0, 1.0], 10, dtype=dtype, noise=0.01, seed=0)
    assert trace.x.dtype.name == dtype and trace.loss.dtype.name == dtype
    assert trace.info["dtype"] == dtype
    exact = run(Quadratic(), ck.optim.gd(0.1), [1.0, 1.0], 10, noise=0.01, seed=0)
    tolerance = {"float32": 1e-6, "float16": 1e-2, "bfloat16": 3e-2}[dtype]
    np.testing.assert_allclose(trace.x.astype(np.float64), exact.x, atol=tolerance)


def test_default_dtype_is_float64_for_integer_input():
    trace = run(Quadratic(), ck.optim.gd(0.1), [1, 2], 3)
    assert trace.x.dtype == np.float64 and trace.info["dtype"] == "float64"


# ---------------------------------------------------------------- stochastic gradients


def test_minibatch_gradient_mean_equals_full_gradient():
    """At a fixed x the mean of the minibatch gradients is the full gradient, within 6 SE."""
    problem = FiniteSum(centre_grad_i, N_EXAMPLES, batch_size=3, replace=True)
    steps, batch = 200, 50

    def from_zero(x, grad, state, step, oracle=None):
        return x * 0 - grad, state  # every step starts again at x = 0, so x_t = -g_t(0)

    restart = Optimizer("restart", lambda x: (), from_zero, {})
    trace = run(problem, restart, np.zeros(DIM), steps, batch=batch, seed=2)
    draws = to_numpy(trace.x[1:]).reshape(-1, DIM)
    full = -problem.grad(np.zeros((1, DIM)))[0]
    mean = draws.mean(axis=0)
    standard_error = draws.std(axis=0, ddof=1) / math.sqrt(draws.shape[0])
    assert np.all(np.abs(mean - full) < 6 * standard_error)
    # the draws do vary: sampling happened
    assert np.all(draws.std(axis=0) > 0.1)


def test_without_replacement_visits_every_example_once_per_pass():
    n, b, passes = 12, 4, 5
    problem = FiniteSum(one_hot_i, n, batch_size=b, replace=False)
    steps = passes * n // b
    trace = run(problem, ck.optim.sgd(1.0), np.zeros(n), steps, batch=6, seed=9)
    counts = sampled_counts(trace, b)
    per_pass = n // b
    for k in range(passes + 1):
        np.testing.assert_array_equal(counts[k * per_pass], k)
    # each trajectory has its own order, and each pass a new one: the step at which each
    # example is used in the first and in the second pass, (B, n)
    first = np.argmax(counts[: per_pass + 1] > 0, axis=0)
    second = np.argmax(counts[per_pass : 2 * per_pass + 1] > 1, axis=0)
    assert len({tuple(row) for row in first}) > 1
    assert np.any(first != second)


def test_without_replacement_straddles_passes_when_batch_does_not_divide_n():
    n, b = 10, 3
    problem = FiniteSum(one_hot_i, n, batch_size=b, replace=False)
    trace = run(problem, ck.optim.sgd(1.0), np.zeros(n), 20, batch=4, seed=1)
    counts = sampled_counts(trace, b)
    for t in range(21):
        low, high = (b * t) // n, -(-(b * t) // n)
        assert np.all((counts[t] >= low) & (counts[t] <= high))
    np.testing.assert_array_equal(counts[10], 3)
    np.testing.assert_array_equal(counts[20], 6)


def test_with_replacement_repeats_examples():
    n = 8
    problem = FiniteSum(one_hot_i, n, batch_size=n, replace=True)
    trace = run(problem, ck.optim.sgd(1.0), np.zeros(n), 1, batch=200, seed=4)
    counts = sampled_counts(trace, n)[1]
    assert np.all(counts.sum(axis=1) == n)
    assert np.any(counts > 1)  # with replacement a full-size draw repeats some example
    # uniform: each example's total over the 1600 draws is Binomial(1600, 1/8)
    totals, draws = counts.sum(axis=0), counts.sum()
    assert np.all(np.abs(totals - draws / n) < 6 * math.sqrt(draws / n * (1 - 1 / n)))


def test_gaussian_noise_has_the_right_variance():
    sigma = np.repeat([0.5, 2.0, 0.0], 100)  # (B,), 100 trajectories per level
    steps, d = 100, 9
    trace = run(zero_grad, ck.optim.gd(1.0), np.zeros(d), steps, noise=sigma, seed=8)
    noise = -np.diff(to_numpy(trace.x), axis=0)  # (steps, B, d)
    samples = noise.transpose(1, 0, 2).reshape(3, -1)  # all draws of each level
    count = samples.shape[1]
    for k, s in enumerate([0.5, 2.0, 0.0]):
        variance = samples[k].var(ddof=1)
        assert abs(variance - s**2) <= 6 * s**2 * math.sqrt(2 / (count - 1))
        assert abs(samples[k].mean()) <= 6 * s / math.sqrt(count)
    # coordinates (a Box-Muller pair and a separate one), steps and trajectories independent
    first = noise[:, :100, :]
    for a, b in [
        (first[:, :, 0], first[:, :, 1]),
        (first[:, :, 1], first[:, :, 2]),
        (first[1:], first[:-1]),
        (first[:, 1:], first[:, :-1]),
    ]:
        correlation = np.corrcoef(a.ravel(), b.ravel())[0, 1]
        assert abs(correlation) < 6 / math.sqrt(a.size)
    assert trace.info["noise"] == "gaussian" and trace.info["seed"] == 8


def test_seed_none_is_recorded_and_reproduces():
    trace = run(zero_grad, ck.optim.gd(1.0), np.zeros(2), 5, noise=1.0)
    again = run(zero_grad, ck.optim.gd(1.0), np.zeros(2), 5, noise=1.0, seed=trace.info["seed"])
    np.testing.assert_array_equal(trace.x, again.x)
    other = run(zero_grad, ck.optim.gd(1.0), np.zeros(2), 5, noise=1.0, seed=trace.info["seed"] + 1)
    assert not np.array_equal(trace.x, other.x)


# ---------------------------------------------------------------- divergence


def test_divergence_flags_without_warnings():
    lrs = np.array([0.01, 1.1, 2.5, 1e6])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trace = run(lambda x: x**3 + x, ck.optim.gd(lrs), [3.0], 400, threshold=1e300)
    assert trace.diverged.tolist() == [False, True, True, True]
    # the reference: the same recursion in Python floats, where overflow raises or gives inf
    for i, lr in enumerate(lrs.tolist()):
        x, first = 3.0, -1
        for t in range(400):
            try:
                x = x - lr * (x**3 + x)
            except OverflowError:
                x = math.inf
            if not math.isfinite(x) or abs(x) > 1e300:
                first = t + 1
                break
        assert trace.diverged_at[i] == first
    # a diverged trajectory is frozen at its first diverged iterate (huge or infinite)
    for i in np.flatnonzero(trace.diverged):
        at = trace.diverged_at[i]
        assert np.all(trace.x[at:, i] == trace.x[at, i])


def test_divergence_threshold_and_other_trajectories_unaffected():
    lrs = np.array([0.2, 2.5])  # factors |1 - lr| on x1: 0.8 and 1.5
    trace = run(Quadratic(), ck.optim.gd(lrs), [1.0, 0.0], 200)
    assert trace.diverged.tolist() == [False, True]
    x, first = 1.0, None
    for t in range(200):
        x = (1 - 2.5) * x
        if abs(x) > 1e10:
            first = t + 1
            break
    assert trace.diverged_at.tolist() == [-1, first]
    assert abs(trace.x[first, 1, 0]) > 1e10 and np.all(trace.x[first:, 1] == trace.x[first, 1])
    single = run(Quadratic(), ck.optim.gd(0.2), [1.0, 0.0], 200)
    np.testing.assert_array_equal(trace.x[:, :1], single.x)


def test_nonfinite_start_is_diverged_at_step_zero():
    trace = run(Quadratic(), ck.optim.gd(0.1), [[1.0, math.nan], [1.0, 1.0]], 3)
    assert trace.diverged.tolist() == [True, False]
    assert trace.diverged_at.tolist() == [0, -1]


def test_divergence_on_strict_backend_is_silent():
    import array_api_strict as strict

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trace = run(
            lambda x: x**3,
            ck.optim.gd(np.array([0.1, 50.0])),
            [2.0],
            60,
            xp=strict,
            threshold=1e300,
        )
    assert to_numpy(trace.diverged).tolist() == [False, True]


# ---------------------------------------------------------------- objectives and oracles


def test_online_gradient_is_detected_from_the_signature():
    def drifting(x, t):
        return x - t  # f_t(x) = (x - t)^2 / 2

    trace = run(drifting, ck.optim.gd(1.0), [5.0], 6)
    np.testing.assert_array_equal(trace.x[1:, 0, 0], np.arange(6.0))
    assert trace.info["objective"] == "online gradient"
    flagged = run(lambda *args: args[0] - args[1], ck.optim.gd(1.0), [5.0], 6, online=True)
    np.testing.assert_array_equal(flagged.x, trace.x)


def test_online_oracle_passes_the_step_to_value_too():
    class Drifting:
        def value(self, x, t):
            return (x[:, 0] - t) ** 2 / 2

        def grad(self, x, t):
            return x - t

    trace = run(Drifting(), ck.optim.gd(0.5), [0.0], 4)
    assert trace.info["objective"] == "online oracle"
    expected = [(x - t) ** 2 / 2 for t, x in enumerate(trace.x[:, 0, 0])]
    np.testing.assert_allclose(trace.loss[:, 0], expected)


def test_problem_and_its_text_run_through_codegen():
    text = "x1**2/2 + 2*x2**2"  # the Quadratic oracle's function
    lrs = np.array([0.1, 0.3])
    by_problem = run(ck.Problem(text), ck.optim.gd(lrs), [1.0, -2.0], 15)
    by_text = run(text, ck.optim.gd(lrs), [1.0, -2.0], 15)
    by_hand = run(Quadratic(), ck.optim.gd(lrs), [1.0, -2.0], 15)
    assert by_problem.info["objective"] == by_text.info["objective"] == "problem"
    np.testing.assert_array_equal(by_problem.x, by_text.x)
    np.testing.assert_allclose(by_problem.x, by_hand.x, rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose(by_problem.loss, by_hand.loss, rtol=1e-14, atol=1e-300)
    newton = run(ck.Problem(text), ck.optim.newton(), [1.0, -2.0], 1)
    np.testing.assert_allclose(newton.x[1], 0.0, atol=1e-15)


def test_newton_gets_the_oracle_and_converges_in_one_step():
    trace = run(Quadratic(), ck.optim.newton(), np.array([[1.0, 2.0], [-3.0, 0.5]]), 2)
    np.testing.assert_allclose(trace.x[1], 0.0, atol=1e-15)


def test_line_search_gets_values():
    trace = run(Quadratic(), ck.optim.line_search_gd(), [1.0, 1.0], 30)
    assert trace.loss[-1, 0] < 1e-6 * trace.loss[0, 0]


def test_finite_sum_full_gradient_is_deterministic_gd():
    problem = FiniteSum(centre_grad_i, N_EXAMPLES, value_i=centre_value_i)
    trace = run(problem, ck.optim.gd(0.5), np.zeros(DIM), 60)
    np.testing.assert_allclose(trace.x[-1, 0], CENTRES.mean(axis=0), atol=1e-12)
    assert trace.info["sampling"] == "full sum" and trace.info["seed"] is None


# ---------------------------------------------------------------- record modes and Trace


def test_record_modes_keep_what_they_promise():
    lrs = np.array([0.1, 0.2, 0.3])
    full = run(Quadratic(), ck.optim.gd(lrs), [1.0, 1.0], 12)
    assert full.x.shape == (13, 3, 2) and full.loss.shape == (13, 3) and full.steps == 12
    losses = run(Quadratic(), ck.optim.gd(lrs), [1.0, 1.0], 12, record="loss")
    assert losses.x is None
    np.testing.assert_array_equal(losses.loss, full.loss)
    final = run(Quadratic(), ck.optim.gd(lrs), [1.0, 1.0], 12, record="final")
    assert final.x is None and final.loss is None
    np.testing.assert_array_equal(final.x_final, full.x[-1])
    np.testing.assert_array_equal(final.loss_final, full.loss[-1])
    chosen = run(Quadratic(), ck.optim.gd(lrs), [1.0, 1.0], 12, record=[0, 5, 12])
    np.testing.assert_array_equal(chosen.x, full.x[[0, 5, 12]])
    np.testing.assert_array_equal(chosen.t, [0, 5, 12])
    gradient_only = run(quadratic_grad, ck.optim.gd(lrs), [1.0, 1.0], 12)
    assert gradient_only.loss is None and gradient_only.loss_final is None


def test_trace_to_numpy_and_repr():
    import array_api_strict as strict

    trace = run(Quadratic(), ck.optim.gd(np.array([0.1, 2.0])), strict.asarray([1.0, 1.0]), 40)
    host = trace.to_numpy()
    assert isinstance(host.x, np.ndarray) and isinstance(host.diverged, np.ndarray)
    text = repr(trace)
    assert "backend='array_api_strict'" in text and "diverged 1/2" in text
    assert "path='array'" in text and "steps=40" in text


def test_steps_zero_returns_the_start():
    trace = run(Quadratic(), ck.optim.gd(0.1), [1.0, 2.0], 0)
    np.testing.assert_array_equal(trace.x, [[[1.0, 2.0]]])


# ---------------------------------------------------------------- sweep


def test_sweep_product_grid_matches_run_and_theory():
    lrs = np.array([0.05, 0.2, 0.45, 0.55])
    result = sweep(Quadratic(), ck.optim.gd, {"lr": lrs}, [1.0, 1.0], 200)
    assert result.shape == (4,)
    # GD on s x^2/2 contracts iff 0 < lr s < 2; the slowest coordinate sets the rate
    expected = np.max(np.abs(1 - np.outer(lrs, SCALES)), axis=1)
    # the faster mode has died out by the second half of the run, up to (0.8/0.95)^100
    np.testing.assert_allclose(result.rate[:3], expected[:3], rtol=1e-6)
    assert result.diverged.tolist() == [False, False, False, True]
    direct = run(Quadratic(), ck.optim.gd(lrs), [1.0, 1.0], 200, record="final")
    np.testing.assert_array_equal(result.final_loss, direct.loss_final)


@pytest.mark.parametrize("steps", [0, 1, 2, 3, 4, 7])
def test_sweep_rate_for_short_runs(steps):
    result = sweep(lambda x: x, ck.optim.gd, {"lr": [0.25, 1.5]}, [1.0], steps)
    if steps < 2:
        assert np.all(np.isnan(result.rate))
    else:
        np.testing.assert_allclose(result.rate, [0.75, 0.5], rtol=1e-12)


def test_sweep_cartesian_and_aligned_grids():
    grid = {"lr": np.array([0.1, 0.2, 0.3]), "beta": np.array([0.0, 0.5])}
    product = sweep(Quadratic(), ck.optim.momentum, grid, [1.0, 1.0], 20)
    assert product.shape == (3, 2)
    assert product.grid["lr"][2, 1] == 0.3 and product.grid["beta"][2, 1] == 0.5
    single = run(Quadratic(), ck.optim.momentum(0.3, 0.5), [1.0, 1.0], 20, record="final")
    assert product.final_loss[2, 1] == single.loss_final[0]
    aligned = sweep(
        Quadratic(),
        ck.optim.momentum,
        {"lr": [0.1, 0.3], "beta": [0.0, 0.5]},
        [1.0, 1.0],
        20,
        product=False,
    )
    assert aligned.shape == (2,)
    assert aligned.final_loss[1] == product.final_loss[2, 1]
    assert aligned.final_loss[0] == product.final_loss[0, 0]
    best = product.best()
    assert best["final_loss"] == product.final_loss.min()
    assert "best final loss" in repr(product) and "shape=(3, 2)" in repr(product)
    with pytest.raises(ValueError, match="no values"):
        sweep(quadratic_grad, ck.optim.gd, {"lr": [0.1]}, [1.0, 1.0], 3).best()


class ScaledSquare:
    """lam x^2 / 2, in the form codegen compiles (expr, variables, params, derivatives)."""

    x, lam = sp.symbols("x lam", real=True)
    expr = lam * x**2 / 2
    variables = (x,)
    params = (lam,)

    def gradient(self):
        return sp.Matrix([self.lam * self.x])

    def hessian(self):
        return sp.Matrix([[self.lam]])


def test_sweep_over_problem_parameters_and_learning_rates():
    """GD on lam x^2/2 contracts iff 0 < lr lam < 2, at the rate |1 - lr lam|."""
    lams = np.array([0.5, 1.0, 4.0])
    inside = 0.95 * 2 / lams  # strictly inside the region, and strictly outside
    result = sweep(
        ScaledSquare(),
        ck.optim.gd,
        {"lr": np.concatenate([inside, 1.05 * 2 / lams]), "lam": lams},
        [1.0],
        50,
    )
    assert result.shape == (6, 3)
    factor = np.abs(1 - result.grid["lr"] * result.grid["lam"])
    kept = ~result.diverged  # the fastest growing runs leave the finite region first
    np.testing.assert_allclose(result.rate[kept], factor[kept], rtol=1e-9)
    assert np.all(factor[result.diverged] > 1) and result.diverged.sum() >= 2
    assert np.all((result.rate < 1) == (factor < 1))
    # the diagonal of the first block is inside for its own lam: the loss shrank there
    for k in range(3):
        assert result.final_loss[k, k] < 1e-2 * lams[k] / 2
        assert result.final_loss[k + 3, k] > lams[k] / 2


def test_problem_parameters_per_trajectory_in_run():
    trace = run(ScaledSquare(), ck.optim.gd(0.1), [1.0], 5, params={"lam": np.array([1.0, 3.0])})
    np.testing.assert_allclose(
        trace.x[:, :, 0], (1 - 0.1 * np.array([1.0, 3.0])) ** np.arange(6)[:, None]
    )
    assert trace.info["objective"] == "problem"


def test_sweep_does_not_depend_on_the_chunk_size():
    problem = FiniteSum(
        centre_grad_i, N_EXAMPLES, value_i=centre_value_i, batch_size=3, replace=False
    )
    grid = {"lr": np.linspace(0.05, 0.6, 5), "beta": np.array([0.0, 0.5, 0.9])}
    kwargs = dict(noise=0.05, seed=123, repeats=4)
    whole = sweep(problem, ck.optim.momentum, grid, np.zeros(DIM), 30, **kwargs)
    assert whole.shape == (5, 3, 4) and whole.info["chunks"] == 1
    for chunk_size in (1, 7, 16):
        chunked = sweep(
            problem, ck.optim.momentum, grid, np.zeros(DIM), 30, chunk_size=chunk_size, **kwargs
        )
        assert chunked.info["chunks"] == math.ceil(60 / chunk_size)
        np.testing.assert_array_equal(chunked.final_x, whole.final_x)
        np.testing.assert_array_equal(chunked.final_loss, whole.final_loss)
        np.testing.assert_array_equal(chunked.rate, whole.rate)
    # the repeats are different random streams
    assert np.all(np.std(whole.final_loss, axis=-1) > 0)


def test_sweep_chunk_size_from_memory_budget():
    result = sweep(
        Quadratic(), ck.optim.gd, {"lr": np.linspace(0.01, 0.4, 50)}, [1.0, 1.0], 5, memory=20_000
    )
    assert 1 < result.info["chunks"] < 50
    unlimited = sweep(Quadratic(), ck.optim.gd, {"lr": np.linspace(0.01, 0.4, 50)}, [1.0, 1.0], 5)
    assert unlimited.info["chunks"] == 1
    np.testing.assert_array_equal(result.final_x, unlimited.final_x)


def test_sweep_progress_bar_on_request(capsys):
    sweep(
        Quadratic(),
        ck.optim.gd,
        {"lr": np.linspace(0.01, 0.4, 6)},
        [1.0, 1.0],
        5,
        chunk_size=2,
        progress=True,
    )
    assert "3/3" in capsys.readouterr().err
    sweep(Quadratic(), ck.optim.gd, {"lr": np.linspace(0.01, 0.4, 6)}, [1.0, 1.0], 5, chunk_size=2)
    assert capsys.readouterr().err == ""


def test_chunk_evaluation_is_picklable():
    problem = FiniteSum(centre_grad_i, N_EXAMPLES, value_i=centre_value_i, batch_size=2)
    factory = functools.partial(ck.optim.momentum, beta=0.5)
    chunk = {"lr": np.array([0.1, 0.2])}
    arguments = (problem, factory, chunk, np.zeros(DIM), 10, 3, {"seed": 1, "noise": 0.1})
    shipped = pickle.loads(pickle.dumps(arguments))
    local, remote = evaluate_chunk(*arguments), evaluate_chunk(*shipped)
    np.testing.assert_array_equal(local["final_x"], remote["final_x"])
    whole = sweep(
        problem,
        factory,
        {"lr": [0.0, 0.0, 0.0, 0.1, 0.2]},
        np.zeros(DIM),
        10,
        seed=1,
        noise=0.1,
        product=False,
    )
    np.testing.assert_array_equal(whole.final_x[3:], local["final_x"])


# ---------------------------------------------------------------- errors


def _message(excinfo) -> str:
    return str(excinfo.value)


@pytest.mark.parametrize(
    ("x0", "shown"),
    [
        (np.zeros((2, 2, 2)), "(2, 2, 2)"),
        (np.zeros((0,)), "(0,)"),
        ("abc", "'abc'"),
        ([[1.0, 2.0], [3.0]], "[[1.0, 2.0], [3.0]]"),
    ],
)
def test_bad_x0_is_named(x0, shown):
    with pytest.raises(ValueError) as excinfo:
        run(Quadratic(), ck.optim.gd(0.1), x0, 3)
    assert _message(excinfo).startswith("x0=") and shown in _message(excinfo)
    assert "(d,) or (B, d)" in _message(excinfo)


@pytest.mark.parametrize("steps", [-1, 2.5, True, "10"])
def test_bad_steps_is_named(steps):
    with pytest.raises(ValueError, match=r"steps=.*expected an integer >= 0"):
        run(Quadratic(), ck.optim.gd(0.1), [1.0, 1.0], steps)


def test_bad_objective_is_named():
    with pytest.raises(ValueError, match=r"objective=3 .*a Problem, an oracle"):
        run(3, ck.optim.gd(0.1), [1.0], 3)
    with pytest.raises(ValueError, match=r"objective=.*a function of x, or of \(x, t\)"):
        run(lambda x, t, u: x, ck.optim.gd(0.1), [1.0], 3)
    with pytest.raises(ValueError, match=r"objective=.*gradient of shape \(1, 2\).*got \(1, 3\)"):
        run(lambda x: np.zeros((1, 3)), ck.optim.gd(0.1), [1.0, 1.0], 3)


def test_missing_hessian_is_explained():
    with pytest.raises(ValueError, match=r"objective=.*provides 'hess'.*'newton'"):
        run(quadratic_grad, ck.optim.newton(), [1.0, 1.0], 3)
    with pytest.raises(ValueError, match=r"objective=.*provides 'value'.*line_search"):
        run(FiniteSum(centre_grad_i, N_EXAMPLES), ck.optim.line_search_gd(), np.zeros(DIM), 3)


def test_other_bad_arguments_are_named():
    def check(pattern, **kwargs):
        arguments = dict(objective=Quadratic(), optimizer=ck.optim.gd(0.1), x0=[1.0, 1.0], steps=3)
        arguments.update(kwargs)
        with pytest.raises(ValueError, match=pattern):
            run(**arguments)

    check(r"optimizer='gd' .*an Optimizer", optimizer="gd")
    check(r"record='everything' .*'all', 'loss', 'final'", record="everything")
    check(r"record=\[3, 1\] .*strictly increasing", record=[3, 1])
    check(r"noise=-1.0 .*\[0.0, inf\)", noise=-1.0)
    check(r"seed=-2 .*non-negative integer", noise=1.0, seed=-2)
    check(r"batch=3 .*2, the number of rows", x0=[[1.0, 1.0], [2.0, 2.0]], batch=3)
    check(
        r"optimizer hyperparameter lr=2 .*3, the number of rows",
        optimizer=ck.optim.gd(np.array([0.1, 0.2])),
        x0=np.ones((3, 2)),
    )
    check(r"params=.*None unless the objective is a Problem", params={"a": 1.0})
    check(r"xp='torch' .*one of", xp="torch")
    check(r"dtype='int8' .*one of", dtype="int8")
    check(r"threshold=0.0 .*\(0.0, inf\]", threshold=0.0)


def test_bad_finite_sums_and_grids_are_named():
    with pytest.raises(ValueError, match=r"batch_size=13 .*at most n=12"):
        FiniteSum(centre_grad_i, 12, batch_size=13, replace=False)
    with pytest.raises(ValueError, match=r"n=0 .*integer >= 1"):
        FiniteSum(centre_grad_i, 0)
    with pytest.raises(ValueError, match=r"grad_i=.*callable"):
        FiniteSum("x - c", 3)
    with pytest.raises(ValueError, match=r"grid\['lr'\]='<array of shape \(2, 2\)>' .*1-D array"):
        sweep(Quadratic(), ck.optim.gd, {"lr": np.ones((2, 2))}, [1.0, 1.0], 3)
    with pytest.raises(ValueError, match=r"grid=.*equal length when product=False"):
        sweep(
            Quadratic(),
            ck.optim.momentum,
            {"lr": [0.1], "beta": [0.1, 0.2]},
            [1.0, 1.0],
            3,
            product=False,
        )
    with pytest.raises(ValueError, match=r"x0=.*one starting point of shape \(d,\)"):
        sweep(Quadratic(), ck.optim.gd, {"lr": [0.1]}, np.ones((2, 2)), 3)
    with pytest.raises(ValueError, match=r"batch=4 .*sweep sets it"):
        sweep(Quadratic(), ck.optim.gd, {"lr": [0.1]}, [1.0], 3, batch=4)
