"""The trainer (sampling, evaluation, batches of runs, schedules, precision hand-off, errors) and
SGD theory against simulation (variance, noise floors, schedules, the convex bound)."""

from __future__ import annotations

import numpy as np
import pytest

import convexkit as ck
from analyses import sgd_variance as theory
from convexkit.backend import to_numpy
from convexkit.training import epoch_order


@pytest.fixture(scope="module")
def airfoil():
    return ck.data.airfoil()


@pytest.fixture(scope="module")
def linear():
    return ck.models.linear_regression(5)


# ---- the trainer


def test_full_batch_training_is_exact_gradient_descent(airfoil, linear) -> None:
    X, y = airfoil
    history = ck.train(linear, ck.optim.sgd(0.5), (X, y), batch_size=1500, epochs=4, seed=[0, 1])
    A = np.hstack([X, np.ones((1500, 1))])
    theta = linear.init([0, 1])
    for _ in range(4):  # the reference: gradient descent written out
        theta = theta - 0.5 * (A @ theta.T - y[:, None]).T @ A / 1500
    np.testing.assert_allclose(history.params, theta, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(history.final_loss, linear.loss(theta, X, y), rtol=1e-12)
    assert history.steps == 4 and history.epochs.tolist() == [0, 1, 2, 3, 4]


def test_a_run_depends_on_its_own_seed_only(airfoil, linear) -> None:
    X, y = airfoil
    optimizer = ck.optim.adam(0.01)
    both = ck.train(linear, optimizer, (X, y), batch_size=10, epochs=1, seed=[3, 5])
    alone = ck.train(linear, optimizer, (X, y), batch_size=10, epochs=1, seed=[5])
    np.testing.assert_array_equal(both.params[1], alone.params[0])
    np.testing.assert_allclose(both.loss[:, 1], alone.loss[:, 0], rtol=1e-14)
    assert not np.array_equal(both.params[0], both.params[1])


def test_learning_rates_as_an_array_train_at_once(airfoil, linear) -> None:
    X, y = airfoil
    rates = np.array([0.01, 0.05, 0.2])
    grid = ck.train(linear, ck.optim.momentum(rates, 0.9), (X, y), batch_size=100, epochs=1, seed=7)
    for k, rate in enumerate(rates):  # the reference: one learning rate at a time
        single = ck.train(
            linear, ck.optim.momentum(rate, 0.9), (X, y), batch_size=100, epochs=1, seed=7
        )
        np.testing.assert_allclose(grid.params[k], single.params[0], rtol=1e-13, atol=1e-16)


def test_shuffles_visit_every_example_once_per_epoch() -> None:
    orders = np.stack([epoch_order([4, 9], epoch, 50) for epoch in range(3)])
    assert orders.shape == (3, 2, 50)
    np.testing.assert_array_equal(
        np.sort(orders, axis=-1), np.broadcast_to(np.arange(50), (3, 2, 50))
    )
    assert not np.array_equal(orders[0, 0], orders[1, 0])  # a new order each epoch
    assert not np.array_equal(orders[0, 0], orders[0, 1])  # and for each seed
    np.testing.assert_array_equal(epoch_order([9], 2, 50)[0], orders[2, 1])


def test_sampling_with_replacement_is_uniform() -> None:
    n = 20
    draws = epoch_order(list(range(500)), 0, n, "replacement").ravel()
    counts = np.bincount(draws, minlength=n)
    expected = draws.size / n
    chi2 = np.sum((counts - expected) ** 2 / expected)  # 19 degrees of freedom
    assert chi2 < 19 + 6 * np.sqrt(2 * 19)
    assert np.any([len(set(row)) < n for row in epoch_order(list(range(20)), 0, n, "replacement")])


def test_evaluation_every_200_examples_and_history(airfoil, linear) -> None:
    X, y = airfoil
    history = ck.train(linear, ck.optim.sgd(0.05), (X, y), batch_size=10, epochs=2, seed=[0, 1])
    np.testing.assert_allclose(history.epochs, np.arange(16) * 200 / 1500)  # 0 .. 3000 by 200
    assert history.loss.shape == (16, 2) and history.seconds.shape == (16,)
    assert history.epoch_seconds.shape == (2,) and np.all(np.diff(history.seconds) >= 0)
    np.testing.assert_array_equal(history.final_loss, history.loss[-1])
    assert history.loss[0, 0] > 1.5 * history.loss[-1, 0]  # 0.49 down to 0.244
    assert not history.diverged.any() and history.runs == 2 and history.steps == 300
    text = repr(history)
    assert "± " in text and "mean ± std over 2 runs" in text and "linear_regression(5)" in text
    odd = ck.train(
        linear, ck.optim.sgd(0.05), (X, y), batch_size=7, epochs=0.5, seed=0, eval_every=300
    )
    assert odd.steps == 108 and odd.epochs[-1] == pytest.approx(756 / 1500)  # half of 215 steps


def test_diverging_runs_are_recorded_without_warnings(airfoil, linear) -> None:
    X, y = airfoil
    with np.errstate(all="raise"):
        history = ck.train(
            linear, ck.optim.sgd(np.array([0.05, 50.0])), (X, y), batch_size=100, epochs=20, seed=0
        )
    assert history.diverged.tolist() == [False, True]
    assert "1 diverged" in repr(history)


def test_schedules_per_epoch_see_the_epoch(airfoil, linear) -> None:
    X, y = airfoil
    seen = []

    def schedule(t):
        seen.append(int(t))
        return 0.01

    ck.train(linear, ck.optim.sgd(schedule), (X, y), batch_size=500, epochs=2, schedule_per="epoch")
    assert seen == [0, 0, 0, 1, 1, 1]
    seen.clear()
    ck.train(linear, ck.optim.sgd(schedule), (X, y), batch_size=500, epochs=2)
    assert seen == [0, 1, 2, 3, 4, 5]


def test_training_on_array_api_strict_matches_numpy(backend, airfoil, linear) -> None:
    xp, device = backend
    X, y = airfoil
    reference = ck.train(linear, ck.optim.adam(0.01), (X, y), batch_size=100, epochs=1, seed=[1, 2])
    other = ck.train(
        linear,
        ck.optim.adam(0.01),
        (X, y),
        batch_size=100,
        epochs=1,
        seed=[1, 2],
        xp=xp,
        device=device,
    )
    np.testing.assert_allclose(to_numpy(other.params), reference.params, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(other.loss, reference.loss, rtol=1e-12)


def test_classifier_with_dropout_learns_digits() -> None:
    X, y = ck.data.digits()
    model = ck.models.mlp([64, 32, 10], dropout=0.1, l2=1e-4)
    history = ck.train(
        model, ck.optim.adam(0.01), (X, y), batch_size=64, epochs=3, seed=[0, 1], eval_every=1000
    )
    assert np.all(model.accuracy(history.params, X, y) > 0.9)
    assert np.all(history.final_loss < 0.4 * history.loss[0])


def test_float32_and_the_precision_hand_off(airfoil, linear) -> None:
    X, y = airfoil
    plain = ck.train(
        linear,
        ck.optim.sgd(0.05),
        (X, y),
        batch_size=10,
        epochs=1,
        seed=[0, 1],
        precision="float32",
    )
    assert plain.params.dtype == np.float32 and plain.stats == {}
    half = ck.train(
        linear,
        ck.optim.sgd(0.05),
        (X, y),
        batch_size=10,
        epochs=1,
        seed=[0, 1],
        precision="float16",
        loss_scale=256.0,
    )
    assert half.params.dtype == np.float32
    assert half.stats["scale"].shape == (150, 2) and np.all(half.stats["scale"] == 256.0)
    np.testing.assert_allclose(half.final_loss, plain.final_loss, rtol=2e-3)


def test_clear_errors(airfoil, linear) -> None:
    X, y = airfoil
    data = (X, y)
    sgd = ck.optim.sgd(0.1)
    cases = [
        (dict(batch_size=0, epochs=1), "batch_size=0"),
        (dict(batch_size=1501, epochs=1), "batch_size=1501"),
        (dict(batch_size=10, epochs=0), "epochs=0"),
        (dict(batch_size=10, epochs=1, sampling="random"), "sampling='random'"),
        (dict(batch_size=10, epochs=1, seed=-1), "seed=-1"),
        (dict(batch_size=10, epochs=1, seed=[]), "seed=\\[\\]"),
        (dict(batch_size=10, epochs=1, schedule_per="batch"), "schedule_per='batch'"),
        (dict(batch_size=10, epochs=1, precision="float8"), "precision='float8'"),
        (dict(batch_size=10, epochs=1, precision="float16", dtype="float64"), "dtype='float64'"),
        (dict(batch_size=10, epochs=1, loss_scale=-2.0), "loss_scale=-2.0"),
        (dict(batch_size=10, epochs=1, eval_every=0), "eval_every=0"),
        (dict(batch_size=10, epochs=1, init=np.zeros(3)), "init="),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            ck.train(linear, sgd, data, **kwargs)
    with pytest.raises(ValueError, match="as many runs"):
        ck.train(
            linear,
            ck.optim.sgd(np.array([0.1, 0.2])),
            data,
            batch_size=10,
            epochs=1,
            seed=[0, 1, 2],
        )
    with pytest.raises(ValueError, match="data="):
        ck.train(linear, sgd, (X[:, :4], y), batch_size=10, epochs=1)
    with pytest.raises(ValueError, match="data="):
        ck.train(linear, sgd, (X, y[:-1]), batch_size=10, epochs=1)
    classifier = ck.models.logistic_regression(5, 3)
    with pytest.raises(ValueError, match="integer class labels"):
        ck.train(classifier, sgd, (X, y), batch_size=10, epochs=1)
    with pytest.raises(ValueError, match="labels 0 .. 2"):
        ck.train(classifier, sgd, (X, np.full(1500, 3)), batch_size=10, epochs=1)
    with pytest.raises(ValueError, match="needs only gradients"):
        ck.train(linear, ck.optim.newton(), data, batch_size=10, epochs=1)
    with pytest.raises(ValueError, match="model="):
        ck.train("linear", sgd, data, batch_size=10, epochs=1)


# ---- SGD theory against simulation


def test_minibatch_variance_with_and_without_replacement(airfoil, linear) -> None:
    X, y = airfoil
    G = theory.per_example_gradients(linear, linear.init(0)[0], X, y)
    sizes = [1, 10, 100, 1000]
    for sampling, replacement in (("replacement", True), ("shuffle", False)):
        measured = theory.measured_variance(G, sizes, sampling, draws=1500, seed=1)
        for b, (mean, se) in zip(sizes, measured, strict=True):
            exact = theory.gradient_variance(G, b, replacement)
            assert abs(mean - exact) <= 6 * se, (sampling, b, mean, exact, se)
    ((mean, se),) = theory.measured_variance(G, [1500], "shuffle", draws=10, seed=0)
    assert mean < 1e-25  # the whole data set: no noise at all


def test_finite_population_factor_is_needed_at_small_n(airfoil, linear) -> None:
    X, y = airfoil
    G = theory.per_example_gradients(linear, linear.init(0)[0], X[:20], y[:20])
    ((mean, se),) = theory.measured_variance(G, [10], "shuffle", draws=20000, seed=2)
    with_factor = theory.gradient_variance(G, 10, replacement=False)
    without_factor = theory.gradient_variance(G, 10, replacement=True)
    assert abs(mean - with_factor) <= 6 * se
    assert abs(mean - without_factor) > 6 * se  # sigma^2 / b alone would fail this test


def test_constant_step_noise_floor_exact_against_simulation(airfoil, linear) -> None:
    X, y = airfoil
    problem = theory.least_squares_problem(X, y)
    runs, steps, rates = 96, 300, np.array([0.02, 0.1])
    history = ck.train(
        linear,
        ck.optim.sgd(np.repeat(rates, runs)),
        (X, y),
        batch_size=10,
        epochs=steps * 10 / 1500,
        seed=list(range(2 * runs)),
        sampling="replacement",
        eval_every=steps * 10,
        init=problem["theta"],
    )
    gaps = (history.final_loss - problem["f_star"]).reshape(2, runs)
    P = problem["A"].shape[1]
    exact = theory.sgd_moments(
        problem, np.tile(rates, (steps, 1)), 10, np.zeros(P), np.zeros((P, P))
    )[-1]
    wrong = theory.sgd_moments(
        problem, np.tile(rates, (steps, 1)), 1, np.zeros(P), np.zeros((P, P))
    )[-1]  # as if the batch were 1
    se = gaps.std(axis=1, ddof=1) / np.sqrt(runs)
    assert np.all(np.abs(gaps.mean(axis=1) - exact) <= 6 * se)
    assert np.all(np.abs(gaps.mean(axis=1) - wrong) > 6 * se)


def test_recursion_fixed_point_is_the_noise_floor(airfoil) -> None:
    problem = theory.least_squares_problem(*airfoil)
    P = problem["A"].shape[1]
    rate = 0.05
    floor = theory.noise_floor(problem, rate, 10)
    long = theory.sgd_moments(problem, np.full((6000, 1), rate), 10, np.zeros(P), np.zeros((P, P)))[
        -1, 0
    ]
    assert abs(long - floor) < 1e-6 * floor
    small = theory.noise_floor(problem, 1e-4, 10)
    approximate = 1e-4 * np.trace(problem["sigma_star"]) / 40  # eta tr(Sigma*) / (4 b)
    assert abs(small - approximate) < 1e-3 * approximate


def test_schedule_exact_expected_loss_against_simulation(airfoil, linear) -> None:
    X, y = airfoil
    problem = theory.least_squares_problem(X, y)
    schedule = ck.schedules.inverse_time(0.05, 0.02)
    steps, runs = 300, 128
    history = ck.train(
        linear,
        ck.optim.sgd(schedule),
        (X, y),
        batch_size=10,
        epochs=2,
        seed=list(range(runs)),
        sampling="replacement",
        eval_every=1000,
    )
    std = np.r_[np.full(5, 0.01), 0.0]
    m0 = -problem["theta"]
    lrs = np.asarray([schedule(t) for t in range(steps)])[:, None]
    exact = theory.sgd_moments(problem, lrs, 10, m0, np.outer(m0, m0) + np.diag(std**2))
    steps_at = np.rint(history.epochs * 150).astype(int)
    gaps = history.loss - problem["f_star"]
    se = gaps.std(axis=1, ddof=1) / np.sqrt(runs)
    assert np.all(np.abs(gaps.mean(axis=1) - exact[steps_at, 0]) <= 6 * se + 1e-12)


def test_convex_sgd_bound_holds_on_logistic_regression() -> None:
    steps = 200
    problem = ck.data.logistic_regression_data(steps, 5, seed=4)
    design = np.hstack([problem.X, np.ones((steps, 1))])
    L = np.max(np.linalg.norm(design, axis=1))
    r = np.linalg.norm(problem.optimum)
    eta = theory.best_constant_step(r, L, steps)
    assert theory.convex_bound(r, L, eta, steps) == pytest.approx(r * L / np.sqrt(steps))
    model = ck.models.logistic_regression(5)
    history = ck.train(
        model,
        ck.optim.sgd(np.repeat([eta, 8 * eta], 32)),
        (problem.X, problem.y),
        batch_size=1,
        epochs=1,
        seed=list(range(64)),
        sampling="replacement",
        eval_every=1,
        init=np.zeros(6),
    )
    average = history.loss[:-1].mean(axis=0) - problem.optimal_loss
    measured = average.reshape(2, 32).mean(axis=1)
    assert np.all(measured <= theory.convex_bound(r, L, np.array([eta, 8 * eta]), steps))
    assert np.all(measured > 0)


# ---- the analyses built on the trainer


@pytest.mark.parametrize(
    "name", ["airfoil", "minibatch", pytest.param("sgd_variance", marks=pytest.mark.slow)]
)
def test_analysis_quick_run_agrees_and_plots(name: str, tmp_path) -> None:
    import importlib

    module = importlib.import_module(f"analyses.{name}")
    result = module.run(quick=True, seed=0)
    rows = result["summary"]
    assert rows and all(set(r) == {"quantity", "proven", "measured", "agrees"} for r in rows)
    failing = [r["quantity"] for r in rows if r["agrees"] is False]
    assert not failing, failing
    assert any(r["agrees"] is True for r in rows)
    paths = module.plot(result, tmp_path)
    assert paths and all(p.exists() and p.stat().st_size > 1000 for p in paths)
