"""Empirical rates (log-linear fits over an automatic window) and comparisons with bounds."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import convexkit as ck
from convexkit import optim
from convexkit.comparison import trajectory_errors
from convexkit.theory import bounds


@given(rate=st.floats(0.05, 1.5), scale=st.floats(1e-3, 1e3), steps=st.integers(5, 400))
def test_geometric_errors_give_their_rate_exactly(rate, scale, steps):
    e = scale * rate ** np.arange(steps + 1.0)
    assert ck.empirical_rate(e) == pytest.approx(rate, rel=1e-9)


def test_the_window_skips_the_transient_and_stops_at_the_floor():
    t = np.arange(400.0)
    fast_then_slow = 100 * 0.5**t + 0.9**t  # a transient mode that dies out
    floored = np.maximum(fast_then_slow, 1e-12 * 0.9**0)  # the float floor of a run
    fit = ck.empirical_rate(floored, full=True)
    assert fit.rate[0] == pytest.approx(0.9, rel=1e-6)
    assert fit.stop[0] < 400 and fit.start[0] > 0
    # a window from the start is biased by the transient: the override is honoured
    early = ck.empirical_rate(fast_then_slow, window=(0, 10))
    assert early < 0.8


def test_floor_and_batch_axis():
    t = np.arange(300.0)[:, None]
    rates = np.array([0.3, 0.8, 0.97])
    e = np.maximum(rates**t, 1e-300)
    np.testing.assert_allclose(ck.empirical_rate(e), rates, rtol=1e-9)
    np.testing.assert_allclose(ck.empirical_rate(e, floor=1e-6), rates, rtol=1e-9)


def test_diverging_runs_are_fitted_before_they_are_frozen():
    """ck.run freezes a trajectory where it leaves the finite range; the fit stops there."""
    lr = np.array([0.5, 1.5, 2.5, 3.5])
    trace = ck.run(lambda x: x, optim.gd(lr), [1.0], 200)
    assert trace.diverged.tolist() == [False, False, True, True]
    np.testing.assert_allclose(ck.empirical_rate(trace), np.abs(1 - lr), rtol=1e-9)


def test_a_run_that_reaches_zero_has_rate_zero():
    trace = ck.run(lambda x: x, optim.gd(np.array([1.0, 0.5])), [1.0], 20)
    rates = ck.empirical_rate(trace)
    assert rates[0] == 0.0 and rates[1] == pytest.approx(0.5)


def test_gap_rate_is_the_square_of_the_distance_rate_on_quadratics():
    problem = ck.Problem("3*x**2/2")
    trace = ck.run(problem, optim.gd(np.array([0.1, 0.5])), [2.0], 100)
    distance = ck.empirical_rate(trace)
    gap = ck.empirical_rate(trace, of="gap")
    np.testing.assert_allclose(gap, distance**2, rtol=1e-8)
    np.testing.assert_allclose(
        trajectory_errors(trace, "distance", x_star=[0.0])[:, 0], np.abs(trace.x[:, 0, 0])
    )


def test_x_star_shifts_the_error():
    trace = ck.run(lambda x: x - 5.0, optim.gd(0.3), [1.0], 80)
    assert ck.empirical_rate(trace, x_star=[5.0]) == pytest.approx([0.7], rel=1e-6)


def test_empirical_rate_errors():
    with pytest.raises(ValueError, match="of="):
        ck.empirical_rate(ck.run(lambda x: x, optim.gd(0.1), [1.0], 5), of="speed")
    with pytest.raises(ValueError, match="window="):
        ck.empirical_rate(np.ones(10), window=(5, 3))
    with pytest.raises(ValueError, match="trace="):
        ck.empirical_rate(np.ones((3, 3, 3)))
    with pytest.raises(ValueError, match="transient="):
        ck.empirical_rate(np.ones(10), transient=1.0)


def test_compare_reports_margin_and_fails_a_wrong_bound():
    trace = ck.run(lambda x: x, optim.gd(0.25), [1.0], 50)
    good = ck.compare(trace, bounds.gd_strongly_convex, eta=0.25, mu=1.0, L=1.0)
    assert good.holds and abs(good.margin) < 1e-9  # |1 - eta| ^ t: equality
    loose = ck.compare(trace, bounds.gd_strongly_convex, eta=0.25, mu=0.5, L=1.0)
    assert loose.holds and loose.margin == 0.0  # equality at t = 0, slack afterwards
    assert 1 - loose.empirical[-1, 0] / loose.proven[-1, 0] > 0.5
    tight = ck.compare(trace, bounds.gd_strongly_convex, eta=0.25, mu=1.5, L=1.5)
    assert not tight.holds and tight.margin < 0
    assert "holds=True" in repr(good)
    assert good.empirical.shape == (51, 1) and good.proven.shape == (51, 1)


def test_compare_with_a_rate_bound():
    lam = np.array([[1.0, 4.0, 9.0]])
    tuning = ck.optimal_hyperparameters("momentum", 1.0, 9.0)
    trace = ck.run(lambda x: lam * x, optim.momentum(**tuning.hyperparameters), [1.0] * 3, 400)
    result = ck.compare(trace, bounds.heavy_ball_quadratic, mu=1.0, L=9.0)
    assert result.holds
    assert result.empirical[0] == pytest.approx(0.5, abs=0.02)
    assert not ck.compare(trace, bounds.heavy_ball_quadratic, mu=1.0, L=2.0).holds


def test_compare_errors_name_the_argument():
    trace = ck.run(lambda x: x, optim.gd(0.25), [1.0], 5)
    with pytest.raises(ValueError, match="bound="):
        ck.compare(trace, "gd_convex")
    with pytest.raises(ValueError, match="objective="):
        ck.compare(trace, bounds.heavy_ball_convex, L=1.0, beta=0.0, eta=1.0)
    with pytest.raises(ValueError, match="measured="):
        ck.compare(trace, bounds.adagrad_regret, D_inf=1.0, g_norms=1.0)
    with pytest.raises(ValueError, match="standard_error="):
        ck.compare(None, bounds.sgd_noise_floor, measured=1.0, eta=0.1, lam=1.0, sigma=1.0)
    with pytest.raises(ValueError, match="trace="):
        ck.compare(None, bounds.gd_convex, L=1.0)


def test_recorded_steps_are_the_abscissa():
    """A trace that kept every fifth step is fitted against the steps, not the positions."""
    trace = ck.run(lambda x: x, optim.gd(0.2), [1.0], 100, record=list(range(0, 101, 5)))
    assert ck.empirical_rate(trace)[0] == pytest.approx(0.8, rel=1e-9)


def test_rate_of_an_error_that_passes_exactly_through_zero():
    # momentum with eta*lam = 1 from x0 = 1: x_1 = 0 exactly, then the oscillation goes on
    # at the spectral radius sqrt(beta); a zero in the middle is not the float floor
    problem = ck.Problem("lam*x**2/2", params=["lam"])
    trace = ck.run(problem, ck.optim.momentum(1.0, 0.9), [1.0], 200, params={"lam": 1.0})
    assert float(np.asarray(trace.x)[1, 0, 0]) == 0.0
    proven = float(ck.stability_region("momentum").rate(eta=1.0, lam=1.0, beta=0.9))
    assert abs(ck.empirical_rate(trace)[0] - proven) < 1e-3
