"""Optimal constant hyperparameters: the derived formulas against the known closed forms
(exactly), against a numerical minimax over a grid, and against simulation on random spectra."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import convexkit as ck
from convexkit.theory.tuning import KAPPA, L_SMOOTH, MU, worst_rate

kappa = L_SMOOTH / MU
KNOWN = {
    "gd": ({"lr": 2 / (MU + L_SMOOTH)}, (kappa - 1) / (kappa + 1)),
    "momentum": (
        {
            "lr": 4 / (sp.sqrt(L_SMOOTH) + sp.sqrt(MU)) ** 2,
            "beta": ((sp.sqrt(kappa) - 1) / (sp.sqrt(kappa) + 1)) ** 2,
        },
        (sp.sqrt(kappa) - 1) / (sp.sqrt(kappa) + 1),
    ),
    "nesterov": (
        {
            "lr": 4 / (3 * L_SMOOTH + MU),
            "beta": (sp.sqrt(3 * kappa + 1) - 2) / (sp.sqrt(3 * kappa + 1) + 2),
        },
        1 - 2 / sp.sqrt(3 * kappa + 1),
    ),
}


def exactly_zero(expr) -> bool:
    return sp.minimal_polynomial(expr, sp.Symbol("w")) == sp.Symbol("w")


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_derived_tuning_equals_the_known_closed_form(name):
    """Compared exactly at rational spectra (mu, L): every difference is the algebraic
    number 0 (its minimal polynomial is w)."""
    tuning = ck.optimal_hyperparameters(name, MU, L_SMOOTH)
    hyper, rate = KNOWN[name]
    rng = np.random.default_rng(7)
    for _ in range(4):
        mu_value = sp.Rational(int(rng.integers(1, 20)), int(rng.integers(1, 9)))
        l_value = mu_value * sp.Rational(int(rng.integers(2, 400)), int(rng.integers(1, 3)))
        point = {MU: mu_value, L_SMOOTH: l_value}
        for key, formula in hyper.items():
            assert exactly_zero((tuning.formulas[key] - formula).subs(point)), key
        assert exactly_zero((tuning.rate_formula - rate).subs(point))


def test_rates_in_kappa_and_derivation_text():
    assert ck.optimal_hyperparameters("gd", 1.0, 10.0).rate_in_kappa == (KAPPA - 1) / (KAPPA + 1)
    momentum = ck.optimal_hyperparameters("momentum", 1.0, 10.0)
    assert sp.simplify(momentum.rate_in_kappa - (sp.sqrt(KAPPA) - 1) / (sp.sqrt(KAPPA) + 1)) == 0
    nesterov = ck.optimal_hyperparameters("nesterov", 1.0, 10.0)
    assert sp.simplify(nesterov.rate_in_kappa - (1 - 2 / sp.sqrt(3 * KAPPA + 1))) == 0
    assert "multiplicity 2" in nesterov.derivation
    assert "rate" in repr(nesterov)


def test_heavy_ball_tuning_is_polyaks():
    polyak = ck.optimal_hyperparameters("heavy_ball", 1.0, 100.0)
    seeds = ck.optimal_hyperparameters("momentum", 1.0, 100.0)
    assert polyak.hyperparameters == {
        "a": seeds.hyperparameters["lr"],
        "b": seeds.hyperparameters["beta"],
    }


def test_values_arrays_and_symbols():
    tuning = ck.optimal_hyperparameters("momentum", 1.0, 100.0)
    assert tuning.rate == pytest.approx(9 / 11, rel=1e-12)
    assert tuning.hyperparameters["beta"] == pytest.approx((9 / 11) ** 2, rel=1e-12)
    arrays = ck.optimal_hyperparameters("gd", np.array([1.0, 2.0]), np.array([3.0, 10.0]))
    np.testing.assert_allclose(arrays.hyperparameters["lr"], [0.5, 1 / 6])
    exact = ck.optimal_hyperparameters("momentum", sp.Integer(1), sp.Integer(9))
    assert exact.rate == sp.Rational(1, 2) and exact.hyperparameters["lr"] == sp.Rational(1, 4)


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="name="):
        ck.optimal_hyperparameters("adam", 1.0, 2.0)
    with pytest.raises(ValueError, match="mu="):
        ck.optimal_hyperparameters("gd", -1.0, 2.0)
    with pytest.raises(ValueError, match="mu="):
        ck.optimal_hyperparameters("gd", 3.0, 2.0)
    with pytest.raises(ValueError, match="L="):
        ck.optimal_hyperparameters("gd", 1.0, float("inf"))


@settings(max_examples=15)  # each example simulates a whole batch
@given(seed=st.integers(0, 2**32 - 1), name=st.sampled_from(["gd", "momentum", "nesterov"]))
def test_no_grid_point_beats_the_derived_tuning(seed, name):
    """Numerical minimax: over a grid of hyperparameters around the optimum, the worst spectral
    radius over [mu, L] never falls below the derived rate, and the derived point attains it."""
    rng = np.random.default_rng(seed)
    mu, big_l = 1.0, float(np.exp(rng.uniform(np.log(2.0), np.log(1e4))))
    tuning = ck.optimal_hyperparameters(name, mu, big_l)
    lr = tuning.hyperparameters["lr"]
    # a wide geometric grid and a fine one around the optimum
    scales = np.concatenate([np.geomspace(0.1, 10.0, 61), np.linspace(0.8, 1.2, 61)])
    if name == "gd":
        attained = worst_rate(name, mu, big_l, eta=lr)
        grid = worst_rate(name, mu, big_l, eta=lr * scales)
    else:
        beta = tuning.hyperparameters["beta"]
        near = np.clip(beta + np.linspace(-0.1, 0.1, 41) * (1 - beta), 0.0, 0.9999)
        betas = np.concatenate([np.linspace(0.0, 0.999, 41), near])
        attained = worst_rate(name, mu, big_l, eta=lr, beta=beta)
        grid = worst_rate(name, mu, big_l, eta=(lr * scales)[:, None], beta=betas[None, :])
    # a double root's modulus goes through the square root of a discriminant rounded at
    # 1e-16: 1e-7 is the float resolution there
    assert abs(float(attained) - tuning.rate) < 1e-7
    assert float(np.min(grid)) >= tuning.rate - 1e-7


@settings(max_examples=15)  # each example simulates a whole batch
@given(seed=st.integers(0, 2**32 - 1), name=st.sampled_from(["gd", "momentum", "nesterov"]))
def test_tuned_methods_achieve_the_predicted_rate_on_random_spectra(seed, name):
    """Random diagonal quadratics with spectrum in [mu, L] (both ends present): the tuned
    method's measured rate is the predicted one (asymptotic fit, within 0.02)."""
    rng = np.random.default_rng(seed)
    batch, dim = 24, 6
    mu = np.exp(rng.uniform(np.log(0.01), np.log(1.0), batch))
    kappas = np.exp(rng.uniform(np.log(20.0), np.log(400.0), batch))
    big_l = mu * kappas
    lam = mu[:, None] + (big_l - mu)[:, None] * rng.uniform(0, 1, (batch, dim))
    lam[:, 0], lam[:, 1] = mu, big_l
    tuning = ck.optimal_hyperparameters(name, mu, big_l)
    optimizer = tuning.optimizer()
    x0 = rng.choice([-1.0, 1.0], (batch, dim)) * rng.uniform(0.5, 1.5, (batch, dim))
    trace = ck.run(lambda x: lam * x, optimizer, x0, 1200)
    measured = ck.empirical_rate(trace)
    np.testing.assert_array_less(np.abs(measured - tuning.rate), 0.02)
