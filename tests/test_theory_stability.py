"""Stability regions derived from the update code, against their known forms (exactly) and
against simulation (points inside with a margin contract, points outside grow, the spectral
radius is the measured rate)."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from hypothesis import given
from hypothesis import strategies as st

import convexkit as ck
from convexkit import optim
from convexkit.theory.iteration import BETA, ETA, LAM, heavy_ball
from convexkit.theory.stability import (
    delayed_gd_threshold,
    jury_conditions,
    schur_stable,
    spectral_radius,
)

H = sp.Symbol("h", real=True)
rational = st.fractions(min_value=-3, max_value=6, max_denominator=50)


def holds_at(condition, point) -> bool:
    return bool(condition.subs(point))


# ---------------------------------------------------------------------------------------------
# exact forms


def test_momentum_region_reads_as_in_the_seeds():
    region = ck.stability_region("momentum")
    assert region.describe() == "0 < eta*lam < 2*beta + 2, |beta| < 1"
    expected = {
        sp.StrictGreaterThan(ETA * LAM, 0),
        sp.StrictLessThan(ETA * LAM, 2 * BETA + 2),
        sp.StrictLessThan(sp.Abs(BETA), 1),
    }
    assert set(region.conditions) == expected
    assert "2 \\beta + 2" in region._repr_latex_()
    assert "char. polynomial" in repr(region)


def test_gd_region():
    region = ck.stability_region("gd")
    assert set(region.conditions) == {
        sp.StrictGreaterThan(ETA * LAM, 0),
        sp.StrictLessThan(ETA * LAM, 2),
    }
    assert region.intervals == ((0, 2),)
    assert sp.simplify(region.spectral_radius - sp.Abs(1 - ETA * LAM)) == 0


@given(h=rational, beta=rational)
def test_nesterov_region_equals_the_hand_derived_one_at_rational_points(h, beta):
    """Nesterov's p(z) = z^2 - (1+b)(1-h) z + b(1-h): Jury gives h > 0, (1 + 2b) h < 2 + 2b
    and |b (1 - h)| < 1; compared exactly at rational points."""
    region = ck.stability_region("nesterov")
    h, beta = sp.Rational(h.numerator, h.denominator), sp.Rational(beta.numerator, beta.denominator)
    by_hand = h > 0 and (1 + 2 * beta) * h < 2 + 2 * beta and abs(beta * (1 - h)) < 1
    point = {ETA: h, LAM: 1, BETA: beta}
    assert holds_at(region.condition, point) == bool(by_hand)


@given(h=rational, beta=rational)
def test_jury_conditions_are_schur_stability_at_rational_points(h, beta):
    """The derived conditions hold exactly where the exact Schur-Cohn test (on the numbers)
    says every root is inside the unit circle, for every two-parameter method."""
    h, beta = sp.Rational(h.numerator, h.denominator), sp.Rational(beta.numerator, beta.denominator)
    for name in ("momentum", "nesterov", "heavy_ball"):
        region = ck.stability_region(name)
        point = {ETA: h, LAM: 1, BETA: beta}
        coefficients = [c.subs(point) for c in region.polynomial.all_coeffs()]
        assert holds_at(region.condition, point) == schur_stable(coefficients), name


def test_heavy_ball_region_is_the_momentum_region():
    assert ck.stability_region("heavy_ball").condition == ck.stability_region("momentum").condition


@pytest.mark.parametrize("tau", range(1, 9))
def test_delayed_gd_threshold_is_the_closed_form_exactly(tau):
    """The derived region is 0 < eta*lam < h*, and h* equals 2 sin(pi / (2(2 tau + 1))): the
    closed form's minimal polynomial divides the one of h*, and the two agree to 60 digits
    (which separates h* from every other root of that polynomial)."""
    region = ck.stability_region("delayed_gd", tau=tau)
    ((low, high),) = region.intervals
    assert low == 0
    closed = delayed_gd_threshold(tau)
    minimal = sp.minimal_polynomial(closed, H)
    derived = sp.minimal_polynomial(high, H)
    assert sp.rem(derived, minimal, H) == 0
    assert abs(sp.N(high - closed, 60)) < sp.Float("1e-55")
    assert region.describe().startswith("0 < eta*lam < ")


def test_delayed_gd_closed_form_is_a_root_on_the_unit_circle():
    """At h = 2 sin(pi/(2(2 tau+1))) the polynomial has the root z = exp(i pi/(2 tau+1))."""
    z = sp.Symbol("z")
    for tau in (1, 2, 3):
        value = (z ** (tau + 1) - z**tau + delayed_gd_threshold(tau)).subs(
            z, sp.exp(sp.I * sp.pi / (2 * tau + 1))
        )
        assert abs(complex(sp.N(value, 50))) < 1e-45


def test_fixed_values_give_one_parameter_regions():
    assert ck.stability_region("momentum", beta=0.9).describe() == "0 < eta*lam < 19/5"
    assert ck.stability_region("nesterov", beta=0.5).describe() == "0 < eta*lam < 3/2"
    assert ck.stability_region("nesterov", beta=0.5, lam=2).describe() == "0 < eta < 3/4"
    region = ck.stability_region(optim.momentum(ETA, 0.5))
    assert region.intervals == ((0, 3),)


def test_schur_stable_and_spectral_radius_helpers():
    assert schur_stable([1, 0, sp.Rational(1, 4)])
    assert not schur_stable([1, -2, 1])
    assert not schur_stable([1, 0, 1])
    assert schur_stable([2, 1])
    z = sp.Symbol("z")
    radius = spectral_radius(sp.Poly(z**2 - z + sp.Rational(1, 4), z))
    assert radius == sp.Rational(1, 2)
    conditions = jury_conditions(sp.Poly(z**3 - sp.Rational(1, 2) * z, z))
    assert all(bool(c) for c in conditions)


def test_rate_exact_and_rate_agree():
    region = ck.stability_region("momentum")
    assert region.rate_exact(eta=0.1, lam=1, beta=0.9) == 3 * sp.sqrt(10) / 10
    delayed = ck.stability_region("delayed_gd", tau=3)
    exact = float(delayed.rate_exact(eta=0.3, lam=1).evalf(15))
    assert abs(exact - float(delayed.rate(eta=0.3, lam=1.0))) < 1e-12


def test_errors_name_the_argument():
    region = ck.stability_region("momentum")
    with pytest.raises(ValueError, match="gamma="):
        region.contains(eta=1.0, lam=1.0, beta=0.5, gamma=1.0)
    with pytest.raises(ValueError, match="beta="):
        region.rate(eta=1.0, lam=1.0)
    with pytest.raises(ValueError, match="name_or_optimizer="):
        ck.stability_region("adam")
    with pytest.raises(ValueError, match="beta="):
        ck.stability_region("gd", beta=0.5)
    with pytest.raises(ValueError, match="tau="):
        ck.stability_region("delayed_gd")
    with pytest.raises(ValueError, match="beta="):
        ck.stability_region("momentum", beta=float("nan"))


# ---------------------------------------------------------------------------------------------
# against simulation


def simulated_rates(optimizer, lam, x0, steps):
    """Measured rate of |x_t| for each trajectory (lam of shape (B,) or (B, d))."""
    lam = np.asarray(lam, dtype=float)
    lam = lam[:, None] if lam.ndim == 1 else lam
    trace = ck.run(lambda x: lam * x, optimizer, x0, steps)
    return ck.empirical_rate(trace)


def with_margin(region, h, beta, margin=0.05):
    """Points whose whole neighbourhood h*(1 +- margin), beta +- margin is inside (1), outside
    (-1) or mixed (0) according to the derived region."""
    votes = [
        region.contains(eta=h * a, lam=1.0, beta=beta + db)
        for a in (1 - margin, 1, 1 + margin)
        for db in (-margin, 0, margin)
    ]
    votes = np.stack(votes)
    return np.where(votes.all(axis=0), 1, np.where(~votes.any(axis=0), -1, 0))


METHODS = {
    "momentum": (optim.momentum, (0.0, 1.0)),
    "nesterov": (optim.nesterov, (0.0, 1.0)),
    "heavy_ball": (heavy_ball, (-1.4, 1.4)),
}


@given(seed=st.integers(0, 2**32 - 1), name=st.sampled_from(sorted(METHODS)))
def test_inside_contracts_and_outside_grows(seed, name):
    """Points inside the derived region with a 5% margin contract in simulation of the same
    update code; points outside with that margin grow. One batch per example."""
    factory, beta_range = METHODS[name]
    region = ck.stability_region(name)
    rng = np.random.default_rng(seed)
    h = np.concatenate([rng.uniform(0.05, 5.0, 240), rng.uniform(-1.0, -0.05, 16)])
    beta = rng.uniform(*beta_range, h.size)
    side = with_margin(region, h, beta)
    keep = side != 0
    h, beta, side = h[keep], beta[keep], side[keep]
    # eta*lam < 0 through a negative curvature: the optimizers take only eta >= 0
    rates = simulated_rates(factory(np.abs(h), beta), np.sign(h), [1.0], 600)
    assert np.all(rates[side == 1] < 1), rates[side == 1].max()
    assert np.all(rates[side == -1] > 1), rates[side == -1].min()
    assert (side == 1).sum() > 20 and (side == -1).sum() > 20


@given(seed=st.integers(0, 2**32 - 1), tau=st.integers(1, 8))
def test_delayed_gd_inside_contracts_outside_grows(seed, tau):
    region = ck.stability_region("delayed_gd", tau=tau)
    limit = float(region.intervals[0][1])
    rng = np.random.default_rng(seed)
    inside = rng.uniform(0.05, 0.95, 24) * limit
    outside = np.concatenate([rng.uniform(1.05, 2.0, 24) * limit, -rng.uniform(0.05, 1.0, 4)])
    h = np.concatenate([inside, outside])
    rates = simulated_rates(optim.delayed_gd(np.abs(h), tau), np.sign(h), [1.0], 1500)
    assert np.all(rates[: inside.size] < 1), rates[: inside.size].max()
    assert np.all(rates[inside.size :] > 1), rates[inside.size :].min()


@given(seed=st.integers(0, 2**32 - 1), name=st.sampled_from(["gd", "momentum", "nesterov"]))
def test_spectral_radius_is_the_measured_rate_on_random_quadratics(seed, name):
    """Random diagonal spectra and random stable hyperparameters: the measured rate of
    ||x_t|| never exceeds the largest spectral radius over the spectrum (asymptotic fit, 0.02)
    where the error takes at least ~40 steps to reach the float floor (radius >= 0.5: a
    shorter fit still sees the modes beat, up to 0.021 above the radius at radius 0.26), and
    equals it where the dominant mode stands out (every other eigenvalue modulus below 0.9 of
    it) and the error takes at least ~100 steps to reach the float floor (radius >= 0.8), so
    that the fit sees the asymptotic regime."""
    rng = np.random.default_rng(seed)
    region = ck.stability_region(name)
    batch, dim = 128, 4
    lam = rng.uniform(0.1, 1.0, (batch, dim))
    beta = rng.uniform(0.0, 0.9, batch)
    if name == "gd":
        lr = rng.uniform(0.05, 1.95, batch) / lam.max(axis=1)
        roots = region.roots(eta=lr[:, None], lam=lam)
        optimizer = optim.gd(lr)
    else:
        lr = rng.uniform(0.05, 1.5, batch) / lam.max(axis=1)
        roots = region.roots(eta=lr[:, None], lam=lam, beta=beta[:, None])
        optimizer = getattr(optim, name)(lr, beta)
    moduli = np.abs(roots).reshape(batch, -1)
    radius = moduli.max(axis=1)
    others = np.where(moduli < radius[:, None] * (1 - 1e-9), moduli, 0.0).max(axis=1)
    clear = others <= 0.9 * radius
    stable = radius < 0.995
    slow = radius >= 0.8  # at least ~100 steps before the float floor
    fitted = radius >= 0.5  # at least ~40 steps before the float floor
    x0 = rng.choice([-1.0, 1.0], (batch, dim)) * rng.uniform(0.5, 1.5, (batch, dim))
    trace = ck.run(lambda x: lam * x, optimizer, x0, 800)
    measured = ck.empirical_rate(trace)
    assert np.all(measured[stable & fitted] <= radius[stable & fitted] + 0.02)
    gap = np.abs(measured - radius)[stable & clear & slow]
    assert np.all(gap < 0.02), gap.max()
    assert (stable & clear & slow).sum() >= 5


def test_growth_rate_outside_is_the_spectral_radius():
    """Outside the region the measured growth factor is the spectral radius too."""
    h = np.array([2.2, 2.5, 3.0, 3.5])
    region = ck.stability_region("gd")
    rates = simulated_rates(optim.gd(h), np.ones(h.size), [1.0], 60)
    np.testing.assert_allclose(rates, region.rate(eta=h, lam=1.0), rtol=1e-9)


def test_regions_in_a_users_symbols_and_degenerate_cases():
    e, b = sp.Symbol("e", positive=True), sp.Symbol("b", real=True)
    assert ck.stability_region(optim.momentum(e, b)).describe() == "0 < e*lam < 2*b + 2, |b| < 1"
    newton = ck.stability_region(optim.newton(e))  # x+ = (1 - e) x whatever lam is
    assert newton.describe() == "e < 2"
    np.testing.assert_array_equal(newton.contains(e=[0.5, 1.9, 2.1]), [True, True, False])
    assert ck.stability_region(optim.gd(0.5), lam=3).describe() == "always"
    assert ck.stability_region("momentum", beta=1.5).describe() == "never"
    with pytest.raises(ValueError, match="optimizer="):
        ck.stability_region(optim.momentum(np.array([0.1, 0.2]), 0.9))
    with pytest.raises(ValueError, match="linear on f"):
        ck.stability_region(optim.adam(0.1))
