"""Iteration maps derived from the update code: matrices, characteristic polynomials, the
heavy-ball equivalence, and the maps checked against simulation of the same code."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from hypothesis import given
from hypothesis import strategies as st

import convexkit as ck
from convexkit import optim
from convexkit.theory.iteration import (
    BETA,
    ETA,
    LAM,
    Z,
    heavy_ball,
    heavy_ball_equivalence,
    iteration_map,
    symbolic_optimizer,
)


def same(a, b) -> bool:
    return sp.simplify(sp.expand(a - b)) == 0


def test_gd_and_momentum_maps_are_those_of_the_seeds():
    gd = iteration_map(symbolic_optimizer("gd"))
    assert gd.matrix.shape == (1, 1)
    assert same(gd.matrix[0, 0], 1 - ETA * LAM)
    momentum = iteration_map(symbolic_optimizer("momentum"))
    # w = (x, v): x+ = (1 - eta lam) x - eta beta v, v+ = lam x + beta v (seeds, 11.6.2)
    expected = sp.Matrix([[1 - ETA * LAM, -ETA * BETA], [LAM, BETA]])
    assert (momentum.matrix - expected).applyfunc(sp.expand) == sp.zeros(2, 2)
    assert same(momentum.polynomial.as_expr(), Z**2 - (1 + BETA - ETA * LAM) * Z + BETA)


def test_nesterov_polynomial():
    nesterov = iteration_map(symbolic_optimizer("nesterov"))
    expected = Z**2 - (1 + BETA) * (1 - ETA * LAM) * Z + BETA * (1 - ETA * LAM)
    assert same(nesterov.polynomial.as_expr(), expected)


@pytest.mark.parametrize("tau", range(0, 9))
def test_delayed_gd_polynomial(tau):
    derived = iteration_map(symbolic_optimizer("delayed_gd", tau=tau))
    assert derived.matrix.shape == (tau + 1, tau + 1)
    assert same(derived.polynomial.as_expr(), Z ** (tau + 1) - Z**tau + ETA * LAM)


def test_zero_roots_are_removed_but_kept_in_the_full_polynomial():
    # heavy ball whose state also keeps a copy of x_prev that no update reads again: the
    # copy adds an eigenvalue 0 to the iteration matrix and nothing else
    def init(x):
        return (x, x)

    def update(x, grad, state, step, oracle=None):
        previous, _ = state
        return x - ETA * grad + BETA * (x - previous), (x, previous)

    derived = iteration_map(ck.optim.Optimizer("twice", init, update, {}))
    assert derived.full_polynomial.degree() == 3
    assert derived.polynomial.degree() == 2
    assert same(derived.full_polynomial.as_expr(), Z * derived.polynomial.as_expr())


def test_newton_on_the_scalar_model_uses_the_hessian_of_the_oracle():
    derived = iteration_map(optim.newton(ETA))
    assert same(derived.matrix[0, 0], 1 - ETA)


def test_heavy_ball_equivalence_is_derived_and_exact():
    found = heavy_ball_equivalence()
    a, b = sorted(found.mapping, key=str)
    assert found.mapping == {a: ETA, b: BETA}
    substituted = found.heavy_ball_polynomial.as_expr().subs(found.mapping)
    assert same(substituted, found.momentum_polynomial.as_expr())
    assert "a = eta" in repr(found)


@given(seed=st.integers(0, 2**32 - 1))
def test_heavy_ball_and_seeds_momentum_give_identical_iterates(seed):
    """Under a = eta, b = beta the two forms are the same method: same iterates on any
    function (here a random diagonal quadratic plus a smooth non-quadratic term)."""
    rng = np.random.default_rng(seed)
    batch, dim, steps = 16, 3, 40
    lam = rng.uniform(0.1, 2.0, (batch, dim))
    lr = rng.uniform(0.01, 1.0, batch)
    beta = rng.uniform(0.0, 0.95, batch)

    def grad(x):
        return lam * x + np.tanh(x)

    x = rng.normal(size=(batch, dim))
    seeds, polyak = optim.momentum(lr, beta), heavy_ball(lr, beta)
    sx, px = x, x
    s_state, p_state = seeds.init(x), polyak.init(x)
    for step in range(steps):
        sx, s_state = seeds.update(sx, grad(sx), s_state, step)
        px, p_state = polyak.update(px, grad(px), p_state, step)
    np.testing.assert_allclose(sx, px, rtol=1e-9, atol=1e-12)


@given(
    seed=st.integers(0, 2**32 - 1), name=st.sampled_from(["gd", "momentum", "nesterov", "delayed"])
)
def test_iteration_matrix_reproduces_the_update_on_arrays(seed, name):
    """The derived matrix, evaluated at numbers, maps (x, state) exactly as the array update."""
    rng = np.random.default_rng(seed)
    lr, beta, lam = rng.uniform(0.01, 1.0), rng.uniform(0.0, 0.99), rng.uniform(0.1, 3.0)
    if name == "delayed":
        tau = int(rng.integers(1, 5))
        symbolic, numeric = symbolic_optimizer("delayed_gd", tau=tau), optim.delayed_gd(lr, tau)
    else:
        symbolic = symbolic_optimizer(name)
        numeric = getattr(optim, name)(lr, beta) if name != "gd" else optim.gd(lr)
    derived = iteration_map(symbolic)
    matrix = np.array(derived.matrix.subs({ETA: lr, BETA: beta, LAM: lam}).evalf(), dtype=float)
    size = matrix.shape[0]
    w = rng.normal(size=(4, size))
    x = w[:, :1]
    template = numeric.init(x)
    leaves = [w[:, i : i + 1] for i in range(1, size)]
    state = type(template)(*leaves) if hasattr(template, "_fields") else tuple(leaves)
    x_next, state_next = numeric.update(x, lam * x, state, 5)
    flat = [x_next, *state_next]
    np.testing.assert_allclose(np.hstack(flat), w @ matrix.T, rtol=1e-12, atol=1e-12)


def test_non_linear_and_time_varying_updates_are_refused():
    with pytest.raises(ValueError, match="linear on f = lam"):
        iteration_map(optim.adagrad(ETA))
    with pytest.raises(ValueError, match="time-invariant"):
        iteration_map(optim.gd(lambda step: ETA / (step + 1)))
    with pytest.raises(ValueError, match="optimizer="):
        iteration_map("momentum")
    with pytest.raises(ValueError, match="tau"):
        symbolic_optimizer("delayed_gd")
    with pytest.raises(ValueError, match="name="):
        symbolic_optimizer("adam")


def test_torch_momentum_has_the_same_map_after_its_first_step():
    torch_form = iteration_map(optim.momentum(ETA, BETA, convention="torch"))
    seeds = iteration_map(symbolic_optimizer("momentum"))
    assert (torch_form.matrix - seeds.matrix).applyfunc(sp.expand) == sp.zeros(2, 2)
