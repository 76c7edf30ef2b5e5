"""Every bound of the catalogue holds on random instances simulated with the library's own
optimizers and runner (stochastic ones within 6 standard errors), and a deliberately wrong
variant of each (rate squared, constant halved, a factor dropped) fails on some instance, so
that these tests would catch a wrong bound."""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import convexkit as ck
from convexkit import optim
from convexkit.simulate import FiniteSum
from convexkit.symbolic.sets import Box
from convexkit.theory import bounds

seeds = st.integers(0, 2**32 - 1)


def wrong(bound, formula, name="wrong"):
    """A copy of ``bound`` with another right-hand side."""
    return bounds.Bound(
        name=name,
        statement="deliberately wrong",
        quantity=bound.quantity,
        formula=formula,
        relation=bound.relation,
        method=bound.method,
        assumptions=bound.assumptions,
        reference="none",
        variables=bound.variables,
        stochastic=bound.stochastic,
        derived=bound.derived,
    )


# ---------------------------------------------------------------------------------------------
# instances


class StronglyConvex:
    """f(x) = sum_i mu u_i^2/2 + (L - mu) log cosh(u_i - a_i), u = Q x: mu-strongly convex,
    L-smooth, not quadratic, one instance per batch row (Q random orthogonal)."""

    def __init__(self, rng, batch, dim, mu, big_l):
        self.mu, self.L = mu[:, None], big_l[:, None]
        self.a = rng.normal(size=(batch, dim)) * 2
        self.q = np.linalg.qr(rng.normal(size=(batch, dim, dim)))[0]
        low, high = np.full((batch, dim), -100.0), np.full((batch, dim), 100.0)
        for _ in range(200):  # bisection of the monotone du: exact to the last bit
            mid = (low + high) / 2
            up = self._du(mid) > 0
            high, low = np.where(up, mid, high), np.where(up, low, mid)
        self.x_star = np.einsum("bji,bj->bi", self.q, (low + high) / 2)
        self.f_star = self.value(self.x_star)

    def _du(self, u):
        return self.mu * u + (self.L - self.mu) * np.tanh(u - self.a)

    def grad(self, x):
        u = np.einsum("bij,bj->bi", self.q, x)
        return np.einsum("bji,bj->bi", self.q, self._du(u))

    def value(self, x):
        u = np.einsum("bij,bj->bi", self.q, x)
        shifted = np.abs(u - self.a)
        log_cosh = shifted + np.log1p(np.exp(-2 * shifted)) - np.log(2)
        return np.sum(self.mu * u**2 / 2 + (self.L - self.mu) * log_cosh, axis=-1)


class Quadratic:
    """f(x) = sum_i lam_i x_i^2 / 2 with one spectrum per batch row; x* = 0, f* = 0."""

    def __init__(self, lam):
        self.lam = lam
        self.x_star, self.f_star = np.zeros_like(lam), np.zeros(lam.shape[0])

    def grad(self, x):
        return self.lam * x

    def value(self, x):
        return np.sum(self.lam * x**2 / 2, axis=-1)


class Huber:
    """f(x) = L sum_i huber_delta(u_i), u = Q x: convex, L-smooth, minimum 0 at 0."""

    def __init__(self, rng, delta, big_l, dim):
        batch = delta.size
        self.delta, self.L = delta[:, None], big_l[:, None]
        self.q = np.linalg.qr(rng.normal(size=(batch, dim, dim)))[0]
        self.x_star, self.f_star = np.zeros((batch, dim)), np.zeros(batch)

    def grad(self, x):
        u = np.einsum("bij,bj->bi", self.q, x)
        g = self.L * np.clip(u, -self.delta, self.delta)
        return np.einsum("bji,bj->bi", self.q, g)

    def value(self, x):
        u = np.abs(np.einsum("bij,bj->bi", self.q, x))
        inner = u <= self.delta
        return np.sum(self.L * np.where(inner, u**2 / 2, self.delta * u - self.delta**2 / 2), -1)


def strongly_convex_batch(rng, batch=48, dim=4):
    mu = np.exp(rng.uniform(np.log(0.05), np.log(1.0), batch))
    big_l = mu * np.exp(rng.uniform(np.log(1.5), np.log(300.0), batch))
    problem = StronglyConvex(rng, batch, dim, mu, big_l)
    x0 = problem.x_star + rng.normal(size=(batch, dim)) * rng.uniform(0.1, 5.0, (batch, 1))
    return problem, mu, big_l, x0


# ---------------------------------------------------------------------------------------------
# gradient descent


@given(seed=seeds)
def test_gd_strongly_convex_distance(seed):
    rng = np.random.default_rng(seed)
    problem, mu, big_l, x0 = strongly_convex_batch(rng)
    lr = rng.uniform(0.01, 1.99, mu.size) / big_l
    trace = ck.run(problem, optim.gd(lr), x0, 150)
    result = ck.compare(
        trace, bounds.gd_strongly_convex, x_star=problem.x_star, eta=lr, mu=mu, L=big_l
    )
    assert result.holds, result


def test_gd_strongly_convex_distance_with_its_rate_squared_fails():
    mu, big_l = np.array([1.0, 1.0]), np.array([10.0, 10.0])
    lr = np.array([0.1, 0.19])
    problem = Quadratic(np.array([[1.0], [10.0]]))
    trace = ck.run(problem, optim.gd(lr), [1.0], 30)
    good = ck.compare(trace, bounds.gd_strongly_convex, eta=lr, mu=mu, L=big_l)
    assert good.holds and good.margin < 1e-9  # tight on the quadratic at the worst curvature
    f = bounds.gd_strongly_convex.formula
    squared = wrong(bounds.gd_strongly_convex, f.subs(bounds.t, 2 * bounds.t))
    assert not ck.compare(trace, squared, eta=lr, mu=mu, L=big_l).holds


@given(seed=seeds)
def test_gd_strongly_convex_tuned_and_value(seed):
    rng = np.random.default_rng(seed)
    problem, mu, big_l, x0 = strongly_convex_batch(rng)
    tuned = ck.run(problem, optim.gd(2 / (mu + big_l)), x0, 150)
    result = ck.compare(
        tuned, bounds.gd_strongly_convex_tuned, x_star=problem.x_star, mu=mu, L=big_l
    )
    assert result.holds, result
    plain = ck.run(problem, optim.gd(1 / big_l), x0, 150)
    value = ck.compare(
        plain,
        bounds.gd_strongly_convex_value,
        x_star=problem.x_star,
        f_star=problem.f_star,
        mu=mu,
        L=big_l,
    )
    assert value.holds, value


def test_gd_strongly_convex_wrong_variants_fail():
    mu, big_l = np.array([1.0]), np.array([20.0])
    quadratic = Quadratic(np.array([[1.0, 20.0]]))
    tuned = ck.run(quadratic, optim.gd(2 / (mu + big_l)), [1.0, 1.0], 40)
    f = bounds.gd_strongly_convex_tuned.formula
    too_fast = wrong(bounds.gd_strongly_convex_tuned, f.subs(bounds.t, 2 * bounds.t))
    assert ck.compare(tuned, bounds.gd_strongly_convex_tuned, mu=mu, L=big_l).holds
    assert not ck.compare(tuned, too_fast, mu=mu, L=big_l).holds
    plain = ck.run(Quadratic(np.array([[1.0]])), optim.gd(1 / big_l), [1.0], 40)
    halved = wrong(bounds.gd_strongly_convex_value, bounds.gd_strongly_convex_value.formula / 2)
    assert ck.compare(plain, bounds.gd_strongly_convex_value, mu=mu, L=big_l).holds
    assert not ck.compare(plain, halved, mu=mu, L=big_l).holds


@given(seed=seeds)
def test_gd_convex(seed):
    rng = np.random.default_rng(seed)
    batch, dim = 48, 3
    big_l = np.exp(rng.uniform(np.log(0.1), np.log(10.0), batch))
    problem = Huber(rng, np.exp(rng.uniform(np.log(1e-3), 0.0, batch)), big_l, dim)
    x0 = rng.normal(size=(batch, dim)) * 3
    trace = ck.run(problem, optim.gd(1 / big_l), x0, 200)
    # t = 0 has no bound (L R0^2 / 0): compare from the first step on
    after = _from_step(trace, 1)
    assert ck.compare(after, bounds.gd_convex, L=big_l, R0=np.linalg.norm(x0, axis=1)).holds


def test_gd_convex_with_the_rate_squared_fails():
    big_l, steps = np.array([1.0]), 200
    problem = Huber(np.random.default_rng(0), np.array([1 / (2 * steps + 1)]), big_l, 1)
    trace = _from_step(ck.run(problem, optim.gd(1.0), [1.0], steps), 1)
    good = ck.compare(trace, bounds.gd_convex, L=big_l, R0=1.0)
    assert good.holds and good.margin < 0.55  # within a factor ~2 of tight (Drori-Teboulle)
    t = bounds.t
    squared = wrong(bounds.gd_convex, bounds.gd_convex.formula * 1 / t)
    assert not ck.compare(trace, squared, L=big_l, R0=1.0).holds


def _from_step(trace, first):
    """The trace from step ``first`` on (times kept)."""
    from dataclasses import replace

    return replace(trace, x=trace.x[first:], loss=trace.loss[first:], t=trace.t[first:])


# ---------------------------------------------------------------------------------------------
# momentum and Nesterov


@settings(max_examples=15)  # each example simulates a whole batch
@given(
    seed=seeds,
    name=st.sampled_from(
        ["heavy_ball_quadratic", "nesterov_quadratic", "nesterov_quadratic_tuned"]
    ),
)
def test_rates_on_quadratics(seed, name):
    """The proven asymptotic rates hold on random spectra in [mu, L] (both ends present), and
    the rate squared fails on the same runs."""
    rng = np.random.default_rng(seed)
    batch, dim = 24, 5
    mu = np.exp(rng.uniform(np.log(0.05), 0.0, batch))
    big_l = mu * np.exp(rng.uniform(np.log(10.0), np.log(500.0), batch))
    lam = mu[:, None] + (big_l - mu)[:, None] * rng.uniform(0, 1, (batch, dim))
    lam[:, 0], lam[:, 1] = mu, big_l
    kappa = big_l / mu
    if name == "heavy_ball_quadratic":
        optimizer = optim.momentum(
            **ck.optimal_hyperparameters("momentum", mu, big_l).hyperparameters
        )
    elif name == "nesterov_quadratic":
        optimizer = optim.nesterov(1 / big_l, (np.sqrt(kappa) - 1) / (np.sqrt(kappa) + 1))
    else:
        optimizer = optim.nesterov(
            **ck.optimal_hyperparameters("nesterov", mu, big_l).hyperparameters
        )
    x0 = rng.choice([-1.0, 1.0], (batch, dim)) * rng.uniform(0.5, 1.5, (batch, dim))
    trace = ck.run(Quadratic(lam), optimizer, x0, 900)
    bound = bounds.get(name)
    result = ck.compare(trace, bound, mu=mu, L=big_l)
    assert result.holds, result
    squared = wrong(bound, bound.formula**2)
    assert not ck.compare(trace, squared, mu=mu, L=big_l).holds


def test_quadratic_rates_are_the_derived_ones():
    """The catalogue's rates on quadratics are those derived from the update code."""
    mu, big_l = bounds.mu, bounds.L
    for bound, name in (
        (bounds.heavy_ball_quadratic, "momentum"),
        (bounds.nesterov_quadratic_tuned, "nesterov"),
    ):
        derived = ck.optimal_hyperparameters(name, mu, big_l).rate
        point = {mu: sp.Rational(3, 7), big_l: sp.Rational(90, 7)}
        assert sp.minimal_polynomial(
            (bound.formula - derived).subs(point), sp.Symbol("w")
        ) == sp.Symbol("w")
    # Nesterov with eta = 1/L, beta = (sqrt(k)-1)/(sqrt(k)+1): worst spectral radius over [mu, L]
    region = ck.stability_region("nesterov")
    k = 100.0
    beta = (np.sqrt(k) - 1) / (np.sqrt(k) + 1)
    worst = region.rate(eta=1 / k, lam=np.linspace(1.0, k, 2001), beta=beta).max()
    value = float(bounds.nesterov_quadratic.evaluate(mu=1.0, L=k))
    assert abs(worst - value) < 1e-7


@given(seed=seeds)
def test_heavy_ball_convex(seed):
    rng = np.random.default_rng(seed)
    batch, dim, steps = 48, 3, 120
    big_l = np.exp(rng.uniform(np.log(0.1), np.log(10.0), batch))
    problem = Huber(rng, np.exp(rng.uniform(np.log(1e-3), 0.0, batch)), big_l, dim)
    beta = rng.uniform(0.0, 0.95, batch)
    lr = rng.uniform(0.05, 1.0, batch) * (1 - beta) / big_l
    x0 = rng.normal(size=(batch, dim)) * 3
    trace = ck.run(problem, optim.momentum(lr, beta), x0, steps)
    result = ck.compare(
        trace,
        bounds.heavy_ball_convex,
        objective=problem.value,
        L=big_l,
        beta=beta,
        eta=lr,
        R0=np.linalg.norm(x0, axis=1),
    )
    assert result.holds, result


def test_heavy_ball_convex_halved_fails_on_the_tight_huber():
    """beta = 0, eta = 1/L, a Huber of width 1/(T+1): the bound holds with equality."""
    steps = 50
    problem = Huber(np.random.default_rng(1), np.array([1 / (steps + 1)]), np.array([1.0]), 1)
    trace = ck.run(problem, optim.momentum(1.0, 0.0), [1.0], steps)
    values = dict(objective=problem.value, L=1.0, beta=0.0, eta=1.0, R0=1.0)
    good = ck.compare(trace, bounds.heavy_ball_convex, **values)
    assert good.holds and good.margin < 1e-6
    halved = wrong(bounds.heavy_ball_convex, bounds.heavy_ball_convex.formula / 2)
    assert not ck.compare(trace, halved, **values).holds


def nesterov_points(problem, trace, lr):
    """Nesterov's x_k from ck.optim.nesterov's points y_k: x_0 = y_0, x_{k+1} = y_k - lr g(y_k)."""
    y = trace.x
    steps = np.stack([problem.grad(y[k]) for k in range(y.shape[0] - 1)])
    return np.concatenate([y[:1], y[:-1] - lr[None, :, None] * steps])


@given(seed=seeds)
def test_nesterov_strongly_convex(seed):
    rng = np.random.default_rng(seed)
    problem, mu, big_l, x0 = strongly_convex_batch(rng)
    kappa = big_l / mu
    beta = (np.sqrt(kappa) - 1) / (np.sqrt(kappa) + 1)
    trace = ck.run(problem, optim.nesterov(1 / big_l, beta), x0, 200)
    points = nesterov_points(problem, trace, 1 / big_l)
    gaps = np.stack([problem.value(p) for p in points]) - problem.f_star
    t = np.arange(points.shape[0])[:, None]
    result = ck.compare(
        None,
        bounds.nesterov_strongly_convex,
        measured=gaps,
        atol=1e-12 * (1 + np.abs(problem.f_star)),
        t=t,
        mu=mu,
        L=big_l,
        D0=gaps[0],
        R0=np.linalg.norm(x0 - problem.x_star, axis=1),
    )
    assert result.holds, result


def test_nesterov_strongly_convex_rate_squared_fails():
    mu, big_l = np.array([1.0]), np.array([100.0])
    beta = (np.sqrt(100.0) - 1) / (np.sqrt(100.0) + 1)
    problem = Quadratic(np.array([[1.0, 100.0]]))
    trace = ck.run(problem, optim.nesterov(1 / big_l, beta), [1.0, 1.0], 200)
    points = nesterov_points(problem, trace, 1 / big_l)
    gaps = np.stack([problem.value(p) for p in points])
    values = dict(t=np.arange(201)[:, None], mu=mu, L=big_l, D0=gaps[0], R0=np.sqrt(2.0))
    assert ck.compare(None, bounds.nesterov_strongly_convex, measured=gaps, **values).holds
    f = bounds.nesterov_strongly_convex.formula
    squared = wrong(bounds.nesterov_strongly_convex, f.subs(bounds.t, 2 * bounds.t))
    assert not ck.compare(None, squared, measured=gaps, **values).holds


def fista(problem, big_l, x0, steps):
    """Beck and Teboulle's scheme (no prox): x_k = y_k - g(y_k)/L, batched over rows."""
    x, y, s = x0, x0, 1.0
    out = [x0]
    for _ in range(steps):
        x_next = y - problem.grad(y) / big_l[:, None]
        s_next = (1 + np.sqrt(1 + 4 * s * s)) / 2
        y = x_next + ((s - 1) / s_next) * (x_next - x)
        x, s = x_next, s_next
        out.append(x)
    return np.stack(out)


@given(seed=seeds)
def test_nesterov_convex(seed):
    rng = np.random.default_rng(seed)
    batch, dim, steps = 48, 3, 200
    big_l = np.exp(rng.uniform(np.log(0.1), np.log(10.0), batch))
    problem = Huber(rng, np.exp(rng.uniform(np.log(1e-4), 0.0, batch)), big_l, dim)
    x0 = rng.normal(size=(batch, dim)) * 3
    points = fista(problem, big_l, x0, steps)
    gaps = np.stack([problem.value(p) for p in points])[1:]
    t = np.arange(1, steps + 1)[:, None]
    r0 = np.linalg.norm(x0, axis=1)
    result = ck.compare(None, bounds.nesterov_convex, measured=gaps, t=t, L=big_l, R0=r0)
    assert result.holds, result


def test_nesterov_convex_halved_fails():
    steps = 400
    delta = np.geomspace(1e-4, 1.0, 64)
    problem = Huber(np.random.default_rng(2), delta, np.ones(64), 1)
    points = fista(problem, np.ones(64), np.ones((64, 1)), steps)
    gaps = np.stack([problem.value(p) for p in points])[1:]
    values = dict(measured=gaps, t=np.arange(1, steps + 1)[:, None], L=1.0, R0=1.0)
    assert ck.compare(None, bounds.nesterov_convex, **values).holds
    halved = wrong(bounds.nesterov_convex, bounds.nesterov_convex.formula / 2)
    assert not ck.compare(None, halved, **values).holds


def test_heavy_ball_counterexample_cycles():
    """Polyak's tuning for [1, 25] on Lessard, Recht and Packard's 1-strongly convex,
    25-smooth function: started in [3.07, 3.46] heavy ball ends on a 3-cycle, although the
    same tuning contracts at rate 2/3 on every quadratic with spectrum in [1, 25]."""
    example = bounds.heavy_ball_counterexample()
    starts = np.linspace(*example.starts, 9)[:, None]
    trace = ck.run(example.grad, optim.momentum(example.lr, example.beta), starts, 900)
    tail = trace.x[-30:, :, 0]
    assert np.all(np.abs(tail).max(axis=0) > 0.5)  # no convergence to x* = 0
    np.testing.assert_allclose(tail[3:], tail[:-3], atol=1e-9)  # period 3
    np.testing.assert_allclose(np.sort(tail[-3:, 0]), np.sort(example.cycle), atol=1e-4)
    # the same tuning on quadratics with curvature in [1, 25] converges at the proven rate
    lam = np.array([[1.0, 5.0, 25.0]])
    quadratic = ck.run(Quadratic(lam), optim.momentum(example.lr, example.beta), [3.2] * 3, 300)
    assert ck.compare(quadratic, bounds.heavy_ball_quadratic, mu=1.0, L=25.0).holds
    # the function is 1-strongly convex and 25-smooth: f'' is 25, 1, 25 on the three pieces
    x = sp.Symbol("x", real=True)
    second = sp.diff(example.expression, x, 2)
    assert {second.subs(x, v) for v in (0, sp.Rational(3, 2), 3)} == {1, 25}


# ---------------------------------------------------------------------------------------------
# stochastic gradient descent


class Norm:
    """f(x) = ||x||: convex, minimum 0 at 0, subgradients of norm 1 (0 at 0)."""

    def grad(self, x):
        norm = np.linalg.norm(x, axis=-1, keepdims=True)
        return np.where(norm > 0, x / np.where(norm > 0, norm, 1.0), 0.0)

    def value(self, x):
        return np.linalg.norm(x, axis=-1)


@given(seed=seeds, decaying=st.booleans())
def test_sgd_convex(seed, decaying):
    """Noisy subgradients g = x/||x|| + sigma xi: E||g||^2 = 1 + sigma^2 d = G^2."""
    rng = np.random.default_rng(seed)
    batch, dim, steps = 400, 3, int(rng.integers(20, 200))
    sigma, r = float(rng.uniform(0.0, 2.0)), float(rng.uniform(0.5, 5.0))
    big_g = np.sqrt(1 + sigma**2 * dim)
    base = r / (big_g * np.sqrt(steps)) * float(rng.uniform(0.3, 3.0))
    lr = (lambda t: base / np.sqrt(t + 1)) if decaying else base
    x0 = np.zeros(dim)
    x0[0] = r
    trace = ck.run(Norm(), optim.sgd(lr), x0, steps, noise=sigma, batch=batch, seed=seed)
    eta = np.array([lr(t) if decaying else base for t in range(steps)])
    weights = np.append(eta, 0.0)  # x_0 .. x_{T-1} weighted by their steps; x_T unused
    result = ck.compare(
        trace, bounds.sgd_convex, objective=Norm().value, weights=weights, r=r, G=big_g, eta=eta
    )
    assert result.holds, result


@given(seed=seeds)
def test_sgd_convex_constant_step(seed):
    """At the best constant step r/(G sqrt(T)) the averaged gap is at most r G / sqrt(T)."""
    rng = np.random.default_rng(seed)
    batch, dim, steps = 400, 2, int(rng.integers(20, 300))
    sigma, r = float(rng.uniform(0.0, 2.0)), float(rng.uniform(0.5, 5.0))
    big_g = np.sqrt(1 + sigma**2 * dim)
    lr = r / (big_g * np.sqrt(steps))
    x0 = np.zeros(dim)
    x0[0] = r
    trace = ck.run(Norm(), optim.sgd(lr), x0, steps, noise=sigma, batch=batch, seed=seed)
    weights = np.append(np.ones(steps), 0.0)  # the mean of x_0 .. x_{T-1}
    result = ck.compare(
        trace,
        bounds.sgd_convex_constant_step,
        objective=Norm().value,
        weights=weights,
        r=r,
        G=big_g,
        T=steps,
    )
    assert result.holds, result


def test_sgd_best_constant_step_is_derived():
    assert (
        sp.simplify(bounds.sgd_best_constant_step() - bounds.r / (bounds.G * sp.sqrt(bounds.T)))
        == 0
    )
    assert (
        sp.simplify(
            bounds.sgd_convex_constant_step.formula - bounds.r * bounds.G / sp.sqrt(bounds.T)
        )
        == 0
    )


def test_sgd_convex_halved_fails_on_the_absolute_value():
    """f = |x| from x0 = 1 with 400 steps of 1/19.99: x walks down and then alternates
    between 0.9995 eta and -0.0005 eta, so the average is almost the whole bound."""
    steps, eta = 400, 1 / 19.99
    trace = ck.run(Norm(), optim.sgd(eta), [1.0], steps, batch=2)  # deterministic: SE 0
    weights = np.append(np.full(steps, eta), 0.0)
    values = dict(objective=Norm().value, weights=weights, r=1.0, G=1.0, eta=np.full(steps, eta))
    good = ck.compare(trace, bounds.sgd_convex, **values)
    assert good.holds and good.margin < 0.02
    halved = wrong(bounds.sgd_convex, bounds.sgd_convex.formula / 2)
    assert not ck.compare(trace, halved, **values).holds


@settings(max_examples=15)  # each example simulates a whole batch
@given(seed=seeds)
def test_sgd_noise_floor_and_second_moment(seed):
    rng = np.random.default_rng(seed)
    lam, sigma = float(rng.uniform(0.2, 3.0)), float(rng.uniform(0.1, 2.0))
    lr = float(rng.uniform(0.1, 1.9)) / lam
    steps = int(np.ceil(40 / -np.log(abs(1 - lr * lam))))  # transient below e^-40
    trace = ck.run(
        lambda x: lam * x, optim.sgd(lr), [0.0] * 4, steps, noise=sigma, batch=2000, seed=seed
    )
    floor = ck.compare(trace, bounds.sgd_noise_floor, eta=lr, lam=lam, sigma=sigma)
    assert floor.holds, floor
    e0 = float(rng.uniform(-3, 3))
    moments = ck.run(
        lambda x: lam * x, optim.sgd(lr), [e0] * 4, 30, noise=sigma, batch=2000, seed=seed
    )
    second = ck.compare(
        moments, bounds.sgd_constant_step_second_moment, eta=lr, lam=lam, sigma=sigma
    )
    assert second.holds, second


def test_sgd_noise_floor_wrong_variants_fail():
    lam, sigma, lr = 1.0, 1.0, 1.5
    trace = ck.run(
        lambda x: lam * x, optim.sgd(lr), [0.0] * 4, 200, noise=sigma, batch=4000, seed=3
    )
    assert ck.compare(trace, bounds.sgd_noise_floor, eta=lr, lam=lam, sigma=sigma).holds
    eta, lam_s, sigma_s = bounds.eta, bounds.lam, bounds.sigma
    small_step = wrong(bounds.sgd_noise_floor, eta * sigma_s**2 / (2 * lam_s))
    assert not ck.compare(trace, small_step, eta=lr, lam=lam, sigma=sigma).holds
    moments = ck.run(
        lambda x: lam * x, optim.sgd(0.3), [2.0] * 4, 30, noise=sigma, batch=4000, seed=4
    )
    f = bounds.sgd_constant_step_second_moment.formula
    slow = wrong(bounds.sgd_constant_step_second_moment, f.subs(bounds.t, bounds.t / 2))
    values = dict(eta=0.3, lam=lam, sigma=sigma)
    assert ck.compare(moments, bounds.sgd_constant_step_second_moment, **values).holds
    assert not ck.compare(moments, slow, **values).holds


# ---------------------------------------------------------------------------------------------
# minibatches


def exact_minibatch_variances(gradients, b):
    """E||g_B - mean||^2 by enumerating every minibatch, in exact rational arithmetic."""
    n = len(gradients)
    mean = [sum(g[k] for g in gradients) / n for k in range(len(gradients[0]))]

    def deviation(batch):
        return sum(
            (sum(gradients[i][k] for i in batch) / b - mean[k]) ** 2 for k in range(len(mean))
        )

    ordered = list(itertools.product(range(n), repeat=b))
    subsets = list(itertools.combinations(range(n), b))
    with_replacement = sum(deviation(s) for s in ordered) / len(ordered)
    without = sum(deviation(s) for s in subsets) / len(subsets)
    sigma_sq = sum(sum((g[k] - mean[k]) ** 2 for k in range(len(mean))) for g in gradients) / n
    return sigma_sq, with_replacement, without


@given(
    gradients=st.integers(2, 6).flatmap(
        lambda n: st.lists(
            st.lists(st.integers(-9, 9), min_size=2, max_size=2), min_size=n, max_size=n
        )
    ),
    data=st.data(),
)
def test_minibatch_variance_formulas_are_exact(gradients, data):
    n = len(gradients)
    b = data.draw(st.integers(1, min(n, 4)))
    grads = [[Fraction(v) for v in g] for g in gradients]
    sigma_sq, with_replacement, without = exact_minibatch_variances(grads, b)
    values = {
        bounds.sigma: sp.sqrt(sp.Rational(sigma_sq.numerator, sigma_sq.denominator)),
        bounds.b: b,
        bounds.n: n,
    }
    assert bounds.minibatch_variance_with_replacement.formula.subs(values) == sp.Rational(
        with_replacement.numerator, with_replacement.denominator
    )
    assert bounds.minibatch_variance_without_replacement.formula.subs(values) == sp.Rational(
        without.numerator, without.denominator
    )


def test_minibatch_variance_without_the_correction_is_wrong():
    grads = [[Fraction(v)] for v in (0, 1, 5, 9)]
    sigma_sq, _, without = exact_minibatch_variances(grads, 2)
    uncorrected = sigma_sq / 2
    assert uncorrected != without


@pytest.mark.parametrize("replace", [True, False])
def test_minibatch_variance_in_the_runner(replace):
    """The runner's minibatches (FiniteSum) have the variance the formulas give: one step of
    SGD with lr = 1 from x = 0 on per-example gradients g_i moves by -g_B."""
    rng = np.random.default_rng(11)
    n, b, batch = 10, 4, 20000
    per_example = rng.normal(size=(n, 3))
    mean = per_example.mean(axis=0)
    sigma = float(np.sqrt(np.mean(np.sum((per_example - mean) ** 2, axis=1))))
    problem = FiniteSum(lambda x, idx: per_example[idx], n, batch_size=b, replace=replace)
    trace = ck.run(problem, optim.sgd(1.0), np.zeros(3), 1, batch=batch, seed=5)
    squared = np.sum((-trace.x[1] - mean) ** 2, axis=1)
    bound = (
        bounds.minibatch_variance_with_replacement
        if replace
        else bounds.minibatch_variance_without_replacement
    )
    values = {"sigma": sigma, "b": b} if replace else {"sigma": sigma, "b": b, "n": n}
    se = squared.std(ddof=1) / np.sqrt(batch)
    result = ck.compare(None, bound, measured=squared.mean(), standard_error=se, **values)
    assert result.holds, result
    other = (
        bounds.minibatch_variance_without_replacement
        if replace
        else bounds.minibatch_variance_with_replacement
    )
    other_values = {"sigma": sigma, "b": b, "n": n} if replace else {"sigma": sigma, "b": b}
    assert not ck.compare(
        None, other, measured=squared.mean(), standard_error=se, **other_values
    ).holds


# ---------------------------------------------------------------------------------------------
# Newton and AdaGrad


class LogCoshNewton:
    """f(x) = sum_i m x_i^2/2 + log cosh(x_i - a_i): Hessian diag(m + sech^2) >= m, Hessian
    Lipschitz with M = max |2 sech^2 tanh| = 4/(3 sqrt 3)."""

    M = 4 / (3 * np.sqrt(3))

    def __init__(self, m, a):
        self.m, self.a = m, a
        low, high = np.full(a.shape, -50.0), np.full(a.shape, 50.0)
        for _ in range(200):
            mid = (low + high) / 2
            up = self.grad(mid) > 0
            high, low = np.where(up, mid, high), np.where(up, low, mid)
        self.x_star = (low + high) / 2

    def grad(self, x):
        return self.m * x + np.tanh(x - self.a)

    def hess(self, x):
        diagonal = self.m + 1 / np.cosh(x - self.a) ** 2
        return diagonal[..., :, None] * np.eye(x.shape[-1])

    def value(self, x):
        return np.sum(self.m * x**2 / 2 + np.log(np.cosh(x - self.a)), axis=-1)


@given(seed=seeds)
def test_newton_local_quadratic(seed):
    rng = np.random.default_rng(seed)
    batch, dim = 200, 3
    m = rng.uniform(0.1, 3.0, (batch, 1))
    problem = LogCoshNewton(m, rng.normal(size=(batch, dim)) * 2)
    x0 = problem.x_star + rng.normal(size=(batch, dim)) * rng.uniform(1e-3, 2.0, (batch, 1))
    trace = ck.run(problem, optim.newton(1.0), x0, 1)
    before = np.linalg.norm(trace.x[0] - problem.x_star, axis=1)
    after = np.linalg.norm(trace.x[1] - problem.x_star, axis=1)
    result = ck.compare(
        None, bounds.newton_local_quadratic, measured=after, M=problem.M, m=m[:, 0], e0=before
    )
    assert result.holds, result


def test_newton_halved_constant_fails_where_the_third_derivative_peaks():
    """With x* placed where |f'''| is largest, the error ratio tends to M / (2 (m + 2/3)),
    above M / (4 m) for m = 2."""
    m = np.array([[2.0]])
    u = np.arctanh(-1 / np.sqrt(3))  # tanh(u) = -1/sqrt(3): f''' = 2 sech^2(u) * (1/sqrt 3) = M
    x_star = -np.tanh(u) / m[0, 0]
    problem = LogCoshNewton(m, np.array([[x_star - u]]))
    x0 = problem.x_star + 1e-3
    trace = ck.run(problem, optim.newton(1.0), x0, 1)
    values = dict(
        measured=np.abs(trace.x[1, :, 0] - problem.x_star[:, 0]), M=problem.M, m=2.0, e0=1e-3
    )
    assert ck.compare(None, bounds.newton_local_quadratic, **values).holds
    halved = wrong(bounds.newton_local_quadratic, bounds.newton_local_quadratic.formula / 2)
    assert not ck.compare(None, halved, **values).holds


def adagrad_regret(gradients_of, batch, dim, steps, width):
    """Projected diagonal AdaGrad (eps = 0, eta = D/sqrt 2) on online losses; returns the
    regret of each run and sum_i ||g_{1:T,i}||_2."""
    box = Box(-width / 2, width / 2, dim=dim)
    optimizer = optim.projected(optim.adagrad(width / np.sqrt(2), eps=0.0), box)
    seen = []

    def grad(x, t):
        g = gradients_of(x, t)
        seen.append(g)
        return g

    trace = ck.run(grad, optimizer, np.zeros((batch, dim)), steps, online=True)
    return trace.x[:-1], np.stack(seen)


@given(seed=seeds)
def test_adagrad_regret_on_absolute_losses(seed):
    """f_t(x) = sum_i |x_i - z_ti|, z uniform in the box: the best point in hindsight is the
    coordinatewise median of the z_t."""
    rng = np.random.default_rng(seed)
    batch, dim, steps, width = 64, 3, 301, 2.0
    targets = rng.uniform(-width / 2, width / 2, (steps, batch, dim)) * rng.uniform(
        0, 1, (1, batch, 1)
    )
    x, g = adagrad_regret(
        lambda x, t: np.sign(x - targets[t]) + (x == targets[t]), batch, dim, steps, width
    )
    loss = np.abs(x - targets).sum(axis=(0, 2))
    best = np.abs(np.median(targets, axis=0)[None] - targets).sum(axis=(0, 2))
    norms = np.sqrt((g**2).sum(axis=0)).sum(axis=-1)
    result = ck.compare(
        None, bounds.adagrad_regret, measured=loss - best, D_inf=width, g_norms=norms
    )
    assert result.holds, result


def test_adagrad_regret_halved_fails_on_random_signs():
    """Linear losses with random signs: a fixed batch of sequences in which some regret
    exceeds half the bound."""
    rng = np.random.default_rng(0)
    batch, steps, width = 256, 2000, 2.0
    signs = rng.choice([-1.0, 1.0], (steps, batch, 1))
    x, g = adagrad_regret(lambda x, t: signs[t], batch, 1, steps, width)
    regret = (g * x).sum(axis=(0, 2)) + np.abs(g.sum(axis=0)).sum(axis=-1) * width / 2
    norms = np.sqrt((g**2).sum(axis=0)).sum(axis=-1)
    values = dict(measured=regret, D_inf=width, g_norms=norms)
    assert ck.compare(None, bounds.adagrad_regret, **values).holds
    halved = wrong(bounds.adagrad_regret, bounds.adagrad_regret.formula / 2)
    assert not ck.compare(None, halved, **values).holds


# ---------------------------------------------------------------------------------------------
# the catalogue itself


def test_catalogue_entries_are_complete():
    found = bounds.catalogue()
    assert len(found) >= 18
    for name, bound in found.items():
        assert bound.name == name and bound.reference and bound.assumptions and bound.method
        assert bound.quantity in bounds.QUANTITIES
        assert set(bound.symbols) <= set(bound.variables) | {"t", "T"}
        assert name in repr(bound)
    assert "heavy_ball_counterexample" in bounds.heavy_ball_quadratic.notes
    with pytest.raises(ValueError, match="name="):
        bounds.get("nope")
    with pytest.raises(ValueError, match="R0="):
        bounds.gd_convex.evaluate(L=1.0, t=1)
    with pytest.raises(ValueError, match="q="):
        bounds.gd_convex.evaluate(L=1.0, t=1, R0=1.0, q=2)
