"""Learning-rate schedules: values against the seeds' scheduler classes and plain formulas,
monotonicity where promised, vectorization over t on every backend, batches, warmup."""

from __future__ import annotations

import bisect
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from convexkit import schedules
from convexkit.backend import asarray, to_numpy

# ---------------------------------------------------------------------------------------------
# The seeds' scheduler classes (d2l 11.11), stateful, called once per update
# ---------------------------------------------------------------------------------------------


class D2LFactorScheduler:
    def __init__(self, factor=1, stop_factor_lr=1e-7, base_lr=0.1):
        self.factor, self.stop_factor_lr, self.base_lr = factor, stop_factor_lr, base_lr

    def __call__(self, num_update):
        self.base_lr = max(self.stop_factor_lr, self.base_lr * self.factor)
        return self.base_lr


class D2LCosineScheduler:
    def __init__(self, max_update, base_lr=0.01, final_lr=0, warmup_steps=0, warmup_begin_lr=0):
        self.base_lr_orig = base_lr
        self.max_update = max_update
        self.final_lr = final_lr
        self.warmup_steps = warmup_steps
        self.warmup_begin_lr = warmup_begin_lr
        self.max_steps = self.max_update - self.warmup_steps

    def get_warmup_lr(self, epoch):
        increase = (
            (self.base_lr_orig - self.warmup_begin_lr) * float(epoch) / float(self.warmup_steps)
        )
        return self.warmup_begin_lr + increase

    def __call__(self, epoch):
        if epoch < self.warmup_steps:
            return self.get_warmup_lr(epoch)
        if epoch <= self.max_update:
            self.base_lr = (
                self.final_lr
                + (self.base_lr_orig - self.final_lr)
                * (1 + math.cos(math.pi * (epoch - self.warmup_steps) / self.max_steps))
                / 2
            )
        return self.base_lr


def multistep_lr(t, milestones, gamma, base_lr):
    """PyTorch's MultiStepLR value at epoch t."""
    return base_lr * gamma ** bisect.bisect_right(milestones, t)


# ---------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------

seeds = st.integers(0, 2**32 - 1)


@given(alpha=st.floats(0.5, 0.99), floor=st.floats(1e-4, 1e-2), base=st.floats(0.05, 1.0))
def test_factor_matches_the_seeds_class(alpha, floor, base):
    ours = schedules.factor(alpha, floor, base)
    theirs = D2LFactorScheduler(alpha, floor, base)
    assert ours(0) == base
    for n in range(1, 200):
        assert ours(n) == pytest.approx(theirs(n), rel=1e-12)
    assert ours(10_000) == floor


@given(
    total=st.integers(2, 60),
    base=st.floats(0.01, 1.0),
    final=st.floats(0.0, 0.01),
    warm_fraction=st.floats(0.0, 0.9),
    begin=st.floats(0.0, 0.01),
)
def test_cosine_matches_the_seeds_class(total, base, final, warm_fraction, begin):
    ramp = min(int(warm_fraction * total), total - 1)
    ours = schedules.cosine(total, base, final, ramp, begin)
    theirs = D2LCosineScheduler(total, base, final, ramp, begin)
    values = [ours(t) for t in range(total + 10)]
    np.testing.assert_allclose(
        values, [theirs(t) for t in range(total + 10)], rtol=1e-12, atol=1e-15
    )
    assert values[ramp] == pytest.approx(base)
    assert values[total] == pytest.approx(final, abs=1e-15) and values[-1] == values[total]


def test_closed_forms():
    t = np.arange(50)
    checks = [
        (schedules.constant(0.3), np.full(50, 0.3)),
        (schedules.exponential(0.5, 0.1), 0.5 * np.exp(-0.1 * t)),
        (schedules.polynomial(0.5, 0.5, 2.0), 0.5 * (2.0 * t + 1) ** -0.5),
        (schedules.inverse_time(0.5, 0.2), 0.5 / (1 + 0.2 * t)),
        (schedules.square_root(0.5), 0.5 * (t + 1) ** -0.5),
        (
            schedules.multi_factor([10, 20, 35], 0.5, 0.4),
            [multistep_lr(s, [10, 20, 35], 0.5, 0.4) for s in range(50)],
        ),
        (
            schedules.piecewise_constant([5, 12], [1.0, 0.3, 0.05]),
            [1.0] * 5 + [0.3] * 7 + [0.05] * 38,
        ),
    ]
    for schedule, expected in checks:
        np.testing.assert_allclose(
            [schedule(int(s)) for s in t], expected, rtol=1e-13, err_msg=repr(schedule)
        )


def test_int_steps_give_floats():
    for schedule in _all(batched=False):
        assert type(schedule(3)) is float, repr(schedule)


# ---------------------------------------------------------------------------------------------
# Monotonicity
# ---------------------------------------------------------------------------------------------


@given(
    base=st.floats(0.01, 1.0),
    alpha=st.floats(0.1, 1.0),
    rate=st.floats(0.0, 2.0),
    beta=st.floats(0.0, 5.0),
    cut=st.lists(st.integers(1, 80), min_size=1, max_size=4, unique=True),
)
def test_decays_are_nonincreasing(base, alpha, rate, beta, cut):
    t = np.arange(100)
    for schedule in (
        schedules.factor(alpha, 1e-3, base),
        schedules.multi_factor(sorted(cut), alpha, base),
        schedules.exponential(base, rate),
        schedules.polynomial(base, alpha, beta),
        schedules.inverse_time(base, rate),
        schedules.square_root(base),
        schedules.cosine(80, base, base * alpha * 0.5),
    ):
        values = schedule(t)
        assert np.all(np.diff(values) <= 1e-15), repr(schedule)


# begin_lr stays below the target inner(ramp) >= 0.05 e^{-1.5} > 0.011, so the ramp rises.
@given(ramp=st.integers(1, 30), begin=st.floats(0.0, 0.01), base=st.floats(0.05, 1.0))
def test_warmup_rises_linearly_then_follows_the_schedule(ramp, begin, base):
    inner = schedules.exponential(base, 0.05)
    schedule = schedules.warmup(inner, ramp, begin)
    values = schedule(np.arange(ramp + 40))
    target = inner(ramp)
    expected_ramp = begin + (target - begin) * np.arange(ramp) / ramp
    np.testing.assert_allclose(values[:ramp], expected_ramp, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(values[ramp:], inner(np.arange(ramp, ramp + 40)), rtol=1e-15)
    assert np.all(np.diff(values[: ramp + 1]) >= 0)
    assert np.all(np.diff(values[ramp:]) <= 0)


@given(total=st.integers(5, 100), warm_fraction=st.floats(0.05, 0.5), base=st.floats(0.01, 1.0))
def test_delayed_warmup_reproduces_cosines_own_warmup(total, warm_fraction, base):
    ramp = max(1, int(warm_fraction * total))
    built_in = schedules.cosine(total, base, 0.001, warmup_steps=ramp)
    wrapped = schedules.warmup(schedules.cosine(total - ramp, base, 0.001), ramp, delay=True)
    t = np.arange(total + 5)
    np.testing.assert_allclose(wrapped(t), built_in(t), rtol=1e-12, atol=1e-15)


def test_warmup_of_the_first_ten_percent_of_any_callable():
    def inverse(t):
        return 0.2 / (1 + t)

    steps = 200
    schedule = schedules.warmup(inverse, steps // 10)
    assert schedule(0) == 0.0
    assert schedule(10) == pytest.approx(inverse(20) / 2)
    assert schedule(20) == inverse(20) and schedule(150) == inverse(150)
    np.testing.assert_allclose(
        schedule(np.arange(steps)), [schedule(t) for t in range(steps)], rtol=1e-15
    )
    assert schedules.warmup(inverse, 0)(7) == inverse(7)


# ---------------------------------------------------------------------------------------------
# Vectorization over t, batches, backends
# ---------------------------------------------------------------------------------------------


def _all(batched):
    lr = np.array([0.1, 0.5, 0.05]) if batched else 0.1
    scalars = [
        schedules.constant(lr),
        schedules.factor(0.9, 1e-3, lr),
        schedules.multi_factor([4, 9], 0.5, lr),
        schedules.exponential(lr, 0.1),
        schedules.polynomial(lr, 0.5, 1.0),
        schedules.inverse_time(lr, 0.3),
        schedules.square_root(lr),
        schedules.cosine(15, lr, 0.01, warmup_steps=3, warmup_begin_lr=0.001),
        schedules.warmup(schedules.factor(0.8, base_lr=lr), 4, 0.01),
        schedules.warmup(schedules.square_root(0.3), 4, lr),
    ]
    if not batched:
        scalars.append(schedules.piecewise_constant([3, 8], [0.3, 0.2, 0.1]))
    return scalars


@pytest.mark.parametrize("batched", [False, True])
def test_array_of_t_equals_the_scalar_values(backend, batched):
    xp, device = backend
    steps = np.arange(25)
    for schedule in _all(batched):
        expected = np.array([schedule(int(t)) for t in steps])
        got = schedule(asarray(steps, xp, device=device))
        assert got.shape == ((25, 3) if batched else (25,)), repr(schedule)
        np.testing.assert_allclose(to_numpy(got), expected, rtol=1e-14, err_msg=repr(schedule))
        grid = schedule(asarray(np.reshape(steps, (5, 5)), xp, device=device))
        np.testing.assert_allclose(to_numpy(grid).reshape(expected.shape), expected, rtol=1e-14)


def test_batch_of_schedules_equals_single_schedules():
    bases = np.array([0.1, 0.5, 0.05])
    factors = np.array([0.9, 0.5, 0.99])
    batch = schedules.factor(factors, 1e-3, bases)
    t = np.arange(30)
    values = batch(t)
    for row in range(3):
        single = schedules.factor(float(factors[row]), 1e-3, float(bases[row]))
        np.testing.assert_array_equal(values[:, row], single(t))
        assert np.array_equal(batch(7)[row], single(7))


# ---------------------------------------------------------------------------------------------
# Errors and reprs
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: schedules.constant(-1.0), r"lr=-1\.0 .*\[0\.0, inf\)"),
        (lambda: schedules.factor(1.5), r"factor=1\.5 .*\(0\.0, 1\.0\]"),
        (lambda: schedules.factor(0.0), r"factor=0\.0"),
        (lambda: schedules.factor(0.9, base_lr=np.array([0.1, -0.2])), r"base_lr=.*-0\.2"),
        (lambda: schedules.multi_factor([5, 3]), r"milestones=\[5, 3\].*increasing"),
        (lambda: schedules.multi_factor([2.5]), r"milestones\[0\]=2\.5"),
        (lambda: schedules.piecewise_constant([3], [1.0]), r"values=\[1\.0\].*2 numbers"),
        (lambda: schedules.piecewise_constant([0], [1.0, 2.0]), r"boundaries=\[0\]"),
        (lambda: schedules.exponential(0.1, -0.5), r"rate=-0\.5"),
        (lambda: schedules.polynomial(0.1, alpha="a"), r"alpha='a'"),
        (lambda: schedules.cosine(10, warmup_steps=10), r"warmup_steps=10 .*max_update=10"),
        (lambda: schedules.cosine(0), r"max_update=0"),
        (lambda: schedules.warmup(0.1, 5), r"schedule=0\.1"),
        (lambda: schedules.warmup(schedules.constant(0.1), -2), r"warmup_steps=-2"),
        (lambda: schedules.constant(0.1)(-1), r"t=-1"),
        (lambda: schedules.constant(0.1)(1.5), r"t=1\.5"),
        (lambda: schedules.constant(np.ones((2, 2))), r"lr=.*shape \(2, 2\)"),
    ],
)
def test_bad_arguments_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_reprs():
    assert repr(schedules.factor(0.9, 1e-3, 0.1)) == (
        "schedules.factor(factor=0.9, stop_factor_lr=0.001, base_lr=0.1)"
    )
    assert repr(schedules.multi_factor([5, 10])) == (
        "schedules.multi_factor(milestones=[5, 10], factor=0.5, base_lr=0.1)"
    )
    assert repr(schedules.warmup(schedules.square_root(0.1), 5)) == (
        "schedules.warmup(schedule=schedules.square_root(base_lr=0.1), warmup_steps=5, "
        "begin_lr=0.0)"
    )
    assert repr(schedules.exponential(np.ones(3), 0.1)) == (
        "schedules.exponential(base_lr=<array (3,)>, rate=0.1)"
    )
