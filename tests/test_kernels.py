"""Fused kernels against the plain array path: bit for bit, non-finite values included."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest
import sympy as sp
from fusable import FUSABLE, ROWS, quadratic_problem
from hypothesis import given, settings
from hypothesis import strategies as st

import convexkit as ck
from convexkit.kernels.fused import (
    _keeps_nonfinite,
    fused_trajectories,
    fused_update,
    run_in_pieces,
    update_form,
)

pytest.importorskip("numba", reason="the fused kernels need numba (pip install 'convexkit[fast]')")

COLS = 257  # a chunk boundary inside a row is exercised with small chunks below


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("CONVEXKIT_CACHE", str(tmp_path_factory.getbasetemp() / "ck-cache"))


def _run_both(optimizer, kernel, rng, dtype, steps=4):
    x = rng.standard_normal((ROWS, COLS)).astype(dtype)
    state = optimizer.init(x)
    x_fused, state_fused = x.copy(), tuple(np.array(s) for s in state)
    for t in range(steps):
        g = (rng.standard_normal(x.shape) * 10.0 ** rng.integers(-3, 3)).astype(dtype)
        g.flat[rng.integers(0, g.size, 3)] = [np.inf, -np.inf, np.nan]
        with np.errstate(all="ignore"):
            x, state = optimizer.update(x, g, state, t)
        kernel_x = x_fused.copy()
        kernel_state = tuple(s.copy() for s in state_fused)
        kernel.step_inplace(kernel_x, g, kernel_state, t, chunk=64)
        x_fused, state_fused = kernel_x, kernel_state
    return x, state, x_fused, state_fused


@pytest.mark.parametrize("name", sorted(FUSABLE))
@pytest.mark.parametrize(
    "dtype,arrays",
    [(np.float64, False), (np.float32, True)],
    ids=["float64-scalars", "float32-arrays"],
)
@settings(max_examples=4)
@given(seed=st.integers(0, 2**32 - 1))
def test_fused_update_equals_plain_bit_for_bit(name, dtype, arrays, seed):
    rng = np.random.default_rng(seed)
    optimizer = FUSABLE[name](rng, arrays)
    kernel, reason = fused_update(optimizer)
    assert kernel is not None, reason
    x, state, x_fused, state_fused = _run_both(optimizer, kernel, rng, dtype)
    assert x_fused.dtype == dtype
    np.testing.assert_array_equal(x_fused, x)
    for plain, fused in zip(state, state_fused, strict=True):
        np.testing.assert_array_equal(fused, plain)


def test_pure_update_returns_new_arrays_and_the_state_type():
    optimizer = ck.optim.adam(0.1)
    kernel, _ = fused_update(optimizer)
    x = np.ones((2, 5))
    state = optimizer.init(x)
    x_next, state_next = kernel.update(x, np.ones_like(x), state, 0)
    assert type(state_next) is type(state)
    assert np.all(x == 1.0) and np.all(state[0] == 0.0)
    expected = optimizer.update(x, np.ones_like(x), state, 0)
    np.testing.assert_array_equal(x_next, expected[0])


@pytest.mark.parametrize(
    "optimizer,why",
    [
        (ck.optim.newton(), "needs"),
        (ck.optim.line_search_gd(), "needs"),
        (ck.optim.lbfgs(), "no symbolic form"),
    ],
    ids=["newton", "line_search", "lbfgs"],
)
def test_methods_without_an_elementwise_form_are_refused_with_a_reason(optimizer, why):
    kernel, reason = fused_update(optimizer)
    assert kernel is None
    assert why in reason


def test_schedules_become_per_step_values():
    lr = ck.schedules.exponential(0.5, 0.1) if hasattr(ck.schedules, "exponential") else None
    optimizer = ck.optim.momentum(lr, 0.5)
    form, _ = update_form(optimizer)
    assert "lr" in form.schedules
    kernel, _ = fused_update(optimizer)
    rng = np.random.default_rng(0)
    x, state, x_fused, state_fused = _run_both(optimizer, kernel, rng, np.float64, steps=6)
    np.testing.assert_array_equal(x_fused, x)


def test_trajectories_equal_the_plain_loop_bit_for_bit():
    problem = quadratic_problem()
    rng = np.random.default_rng(1)
    batch, steps = 600, 40
    eta, beta, lam = rng.uniform(0, 3, batch), rng.uniform(0, 1, batch), rng.uniform(0.5, 2, batch)
    optimizer = ck.optim.momentum(eta, beta)
    x0 = rng.standard_normal((batch, 1))
    result, reason = fused_trajectories(
        problem, optimizer, x0, steps, params={"lam": lam}, block=64
    )
    assert reason == "fused"
    x, state, xs = x0.copy(), optimizer.init(x0), [x0]
    with np.errstate(all="ignore"):
        for t in range(steps):
            x, state = optimizer.update(x, lam[:, None] * x, state, t)
            xs.append(x)
    np.testing.assert_array_equal(result["x"], x)
    np.testing.assert_array_equal(result["xs"], np.stack(xs))
    np.testing.assert_array_equal(result["state"][0], state[0])
    assert np.all(x0 == result["xs"][0]), "the caller's x0 must not be modified"


def test_trajectories_record_the_chosen_steps():
    problem = quadratic_problem()
    optimizer = ck.optim.gd(0.1)
    x0 = np.ones((5, 1))
    result, _ = fused_trajectories(
        problem,
        optimizer,
        x0,
        7,
        params={"lam": np.ones(5)},
        record_steps=[0, 3, 6, 7],
        keep_x=False,
    )
    expected = 0.5 * (0.9 ** np.array([0, 3, 6, 7])) ** 2
    np.testing.assert_allclose(result["loss"][:, 0], expected, rtol=1e-14)
    assert result["xs"] is None


def test_trajectories_freeze_where_they_diverge():
    problem = quadratic_problem()
    optimizer = ck.optim.gd(np.array([0.5, 2.5, 3.0]))
    x0 = np.ones((3, 1))
    result, _ = fused_trajectories(
        problem, optimizer, x0, 40, params={"lam": np.ones(3)}, threshold=1e3
    )
    trace = ck.run(
        problem, optimizer, x0, 40, params={"lam": np.ones(3)}, threshold=1e3, path="array"
    )
    np.testing.assert_array_equal(result["diverged_at"], trace.diverged_at)
    np.testing.assert_array_equal(result["xs"], trace.x)


@pytest.mark.parametrize("threshold", [4.0, 1e3, 1e300, np.inf])
def test_trajectories_freeze_exactly_across_many_unrecorded_steps(threshold):
    # long stretches without records run fast and are replayed where a trajectory leaves
    # the box: transient excursions of momentum, overflow to inf and NaN, trajectories near
    # the threshold, non-finite starting points; the array path is the reference
    problem = quadratic_problem()
    rng = np.random.default_rng(3)
    batch, steps = 300, 700
    eta, beta = rng.uniform(0, 4.5, batch), rng.uniform(0, 1, batch)
    lam = rng.uniform(0.5, 2, batch)
    optimizer = ck.optim.momentum(eta, beta)
    x0 = rng.uniform(-3, 3, (batch, 1))
    x0[:3, 0] = [np.nan, np.inf, 5.0]
    chosen = [0, 1, 70, 130, 500, 699, 700]
    result, reason = fused_trajectories(
        problem,
        optimizer,
        x0,
        steps,
        params={"lam": lam},
        record_steps=chosen,
        threshold=threshold,
        block=64,
    )
    assert reason == "fused"
    trace = ck.run(
        problem,
        optimizer,
        x0,
        steps,
        params={"lam": lam},
        record=chosen,
        threshold=threshold,
        path="array",
    )
    assert 0 < np.count_nonzero(trace.diverged_at > 0) < batch
    np.testing.assert_array_equal(result["diverged_at"], trace.diverged_at)
    np.testing.assert_array_equal(result["xs"], trace.x)
    np.testing.assert_array_equal(result["loss"], trace.loss)
    np.testing.assert_array_equal(result["x"], trace.x_final)
    if threshold == np.inf:
        assert _kernel_sources_with("non-finite values stick: one test per span")


def _kernel_sources_with(text):
    return [
        name
        for name, module in sys.modules.items()
        if name.startswith("convexkit_kernel_traj_") and text in open(module.__file__).read()
    ]


@pytest.mark.parametrize("name", sorted(FUSABLE))
@settings(max_examples=3, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_trajectories_without_a_bound_freeze_where_they_become_non_finite(name, seed):
    # threshold=inf: a trajectory is frozen at its last finite iterate; where the update keeps
    # non-finite values the kernel tests once per span, and still equals the array path
    rng = np.random.default_rng(seed)
    batch, steps = 200, 300
    optimizer = FUSABLE[name](rng, False)
    lam = rng.uniform(0.5, 2, batch) * 10.0 ** rng.integers(-1, 3, batch)
    x0 = rng.uniform(-3, 3, (batch, 1)) * 10.0 ** rng.integers(0, 200, (batch, 1))
    x0[:2, 0] = [np.nan, np.inf]
    problem = quadratic_problem()
    options = {"params": {"lam": lam}, "threshold": np.inf, "record": [0, 150, 300]}
    fused = ck.run(problem, optimizer, x0, steps, path="fused", **options)
    plain = ck.run(problem, optimizer, x0, steps, path="array", **options)
    np.testing.assert_array_equal(fused.diverged_at, plain.diverged_at)
    np.testing.assert_array_equal(fused.x, plain.x)
    np.testing.assert_array_equal(fused.loss, plain.loss)
    assert fused.info["path"] == "fused"


def test_trajectories_of_a_two_dimensional_problem_match_the_plain_path():
    a, b = sp.symbols("a b")
    problem = ck.Problem((1 - a) ** 2 + 100 * (b - a**2) ** 2)
    oracle = ck.oracle(problem)
    optimizer = ck.optim.adam(np.full(64, 0.01))
    x0 = np.random.default_rng(2).standard_normal((64, 2))
    result, _ = fused_trajectories(problem, optimizer, x0, 30, keep_x=False, keep_loss=False)
    x, state = x0.copy(), optimizer.init(x0)
    for t in range(30):
        x, state = optimizer.update(x, oracle.grad(x), state, t)
    # the gradient code is printed by two printers; the trajectories agree to rounding
    np.testing.assert_allclose(result["x"], x, rtol=1e-10, atol=1e-12)


def test_reasons_when_the_fused_path_does_not_apply():
    problem = quadratic_problem()
    optimizer = ck.optim.gd(0.1)
    _, reason = fused_trajectories(
        problem, optimizer, np.ones((2, 1), dtype=np.int64), 3, params={"lam": 1.0}
    )
    assert "float32/float64" in reason
    _, reason = fused_trajectories(problem, optimizer, np.ones((2, 1)), 3)
    assert "lam" in reason


def test_compiled_kernels_are_cached_on_disk(tmp_path):
    code = (
        "import numpy as np, convexkit as ck\n"
        "from convexkit.kernels.fused import fused_update\n"
        "k, _ = fused_update(ck.optim.momentum(0.1, 0.9))\n"
        "x = np.ones((1, 10)); s = (np.zeros((1, 10)),)\n"
        "k.step_inplace(x, x.copy(), s, 0)\n"
    )
    env = {**os.environ, "CONVEXKIT_CACHE": str(tmp_path)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    folder = tmp_path / "kernels"
    sources = list(folder.glob("convexkit_kernel_momentum_*.py"))
    assert len(sources) == 1
    assert list((folder / "__pycache__").glob("*.nbi")), "numba wrote no index of cached code"


@pytest.mark.parametrize("name", sorted(FUSABLE))
@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), bad=st.sampled_from([np.inf, -np.inf, np.nan]))
def test_updates_said_to_keep_non_finite_values_do(name, seed, bad):
    # the claim behind the once-per-span test, checked on the optimizer's own update code
    rng = np.random.default_rng(seed)
    optimizer = FUSABLE[name](rng, True)
    form, _ = update_form(optimizer)
    # every elementwise update is claimed to keep them; were one not, the kernels would still
    # agree with the array path (testing after each step), only more slowly
    assert _keeps_nonfinite(form.outputs[0], form.inputs[0]), name
    x = rng.standard_normal((ROWS, 5)) * 10.0 ** rng.integers(-5, 5, (ROWS, 5))
    g = rng.standard_normal((ROWS, 5)) * 10.0 ** rng.integers(-5, 5, (ROWS, 5))
    state = optimizer.init(x)
    with np.errstate(all="ignore"):
        for t in range(3):  # a state that has seen some steps
            x, state = optimizer.update(x, g, state, t)
        x[:, 2] = bad
        g[:, 3] = rng.choice([np.inf, -np.inf, np.nan, 0.0], ROWS)
        x_next, _ = optimizer.update(x, g, state, 3)
    assert not np.isfinite(x_next[:, 2]).any()


@pytest.mark.parametrize(
    "expr,counterexample",
    [
        (1 / (1 + sp.Symbol("x")), np.inf),  # 1 / inf = 0
        (sp.Max(sp.Symbol("x"), 1), -np.inf),
        (sp.sign(sp.Symbol("x")), np.inf),
        (sp.exp(sp.Symbol("x")), -np.inf),
    ],
    ids=["division", "max", "sign", "exp"],
)
def test_operations_that_can_lose_a_non_finite_value_are_not_trusted(expr, counterexample):
    x = sp.Symbol("x")
    assert not _keeps_nonfinite(expr, x)
    with np.errstate(all="ignore"):
        value = sp.lambdify(x, expr, "numpy")(np.float64(counterexample))
    assert np.isfinite(value), "the counterexample must really lose the non-finite value"


def test_pieces_cover_every_job_once_and_errors_reach_the_caller():
    seen = []
    lock = threading.Lock()

    def record(lo, hi):
        with lock:
            seen.extend(range(lo, hi))

    for jobs in (1, 2, 7, 1000):
        seen.clear()
        run_in_pieces(record, jobs)
        assert sorted(seen) == list(range(jobs))

    def fail(lo, hi):
        if lo <= 500 < hi:
            raise ValueError("piece 500")

    with pytest.raises(ValueError, match="piece 500"):
        run_in_pieces(fail, 1000)


def test_an_unbounded_threshold_is_allowed_and_nan_is_refused():
    problem = ck.Problem("x**2/2")
    trace = ck.run(problem, ck.optim.gd(np.array([0.5, 1e200])), [1e300], 5, threshold=np.inf)
    np.testing.assert_array_equal(trace.diverged_at, [-1, 1])
    with pytest.raises(ValueError, match=r"threshold=nan .*\(0\.0, inf\]"):
        ck.run(problem, ck.optim.gd(0.1), [1.0], 5, threshold=float("nan"))
    # simulated workers take the same bound
    workers = ck.parallel.WorkerQuadratics([[1.0, 0.0], [-1.0, 2.0]], curvature=[1.0, 2.0])
    scheme = ck.parallel.synchronous(2)
    lrs = np.array([0.3, 5.0])
    unbounded = ck.run(
        workers, ck.optim.gd(lrs), [0.0, 0.0], 400, parallel=scheme, threshold=np.inf
    )
    assert unbounded.diverged_at[0] == -1 and unbounded.diverged_at[1] > 300
    assert not np.isfinite(unbounded.x_final[1]).all()
