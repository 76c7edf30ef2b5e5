"""Models: hand-written gradients against finite differences, the batch axis, the precision hook,
dropout, initialisation, SymPy-derived activations, backends and errors."""

from __future__ import annotations

import numpy as np
import pytest
import sympy

import convexkit as ck
from convexkit.backend import to_numpy
from convexkit.models import ACTIVATIONS, activation, counter_bits, counter_normal

B = 3


def _labels(model, shape, rng):
    if model.loss_kind == "squared":
        return rng.standard_normal(shape)
    return rng.integers(0, model.n_classes, shape)


def _finite_differences(model, params, X, y, rng_seed=None, h=1e-6):
    grad = np.zeros_like(params)
    for j in range(params.shape[1]):  # a loop over coordinates, for the test only
        step = np.zeros(params.shape[1])
        step[j] = h
        up = model.loss_and_grad(params + step, X, y, rng=rng_seed)[0]
        down = model.loss_and_grad(params - step, X, y, rng=rng_seed)[0]
        grad[:, j] = (up - down) / (2 * h)
    return grad


MODELS = [
    ck.models.linear_regression(4),
    ck.models.linear_regression(4, l2=0.3),
    ck.models.logistic_regression(4),
    ck.models.logistic_regression(4, 3, l2=np.array([0.1, 0.2, 0.0])),
    *[ck.models.mlp([4, 6, 5, 3], name) for name in ACTIVATIONS],
    ck.models.mlp([4, 6, 1], "tanh"),
    ck.models.mlp([4, 6, 1], "sigmoid", loss="logistic", l2=0.1),
    ck.models.mlp([4, 7, 3], "silu", dropout=0.3),
    ck.models.mlp([4, 5, 2], sympy.log(1 + sympy.exp(sympy.Symbol("u")))),  # softplus
]


@pytest.mark.parametrize("shared", [True, False], ids=["shared X", "X per run"])
@pytest.mark.parametrize("model", MODELS, ids=repr)
def test_gradient_matches_finite_differences(model, shared: bool) -> None:
    rng = np.random.default_rng(7)
    params = model.init([1, 2, 3]) + 0.3 * rng.standard_normal((B, model.n_params))
    X = rng.standard_normal((8, 4) if shared else (B, 8, 4))
    y = _labels(model, (8,) if shared else (B, 8), rng)
    seed = 5 if model.dropout else None  # the same masks in every evaluation
    loss, grad = model.loss_and_grad(params, X, y, rng=seed)
    numeric = _finite_differences(model, params, X, y, seed)
    assert grad.shape == (B, model.n_params) and loss.shape == (B,)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)
    if not model.dropout:
        np.testing.assert_array_equal(loss, model.loss(params, X, y))


def test_losses_are_the_textbook_formulas() -> None:
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((10, 3)), rng.standard_normal(10)
    linear = ck.models.linear_regression(3, l2=0.2)
    params = rng.standard_normal((2, 4))
    w, b = params[:, :3], params[:, 3]
    expected = np.mean((X @ w.T + b - y[:, None]) ** 2, axis=0) / 2 + 0.1 * np.sum(w**2, axis=1)
    np.testing.assert_allclose(linear.loss(params, X, y), expected, rtol=1e-14)

    labels = rng.integers(0, 2, 10)
    logistic = ck.models.logistic_regression(3)
    p = 1 / (1 + np.exp(-(X @ w.T + b)))
    expected = -np.mean(labels[:, None] * np.log(p) + (1 - labels[:, None]) * np.log(1 - p), axis=0)
    np.testing.assert_allclose(logistic.loss(params, X, labels), expected, rtol=1e-12)

    classes = rng.integers(0, 4, 10)
    softmax = ck.models.logistic_regression(3, 4)
    theta = rng.standard_normal((2, softmax.n_params))
    W, c = theta[:, :12].reshape(2, 3, 4), theta[:, 12:]
    logits = np.einsum("nf,bfk->bnk", X, W) + c[:, None, :]
    log_p = logits - np.log(np.exp(logits).sum(axis=2, keepdims=True))
    expected = -np.mean(np.take_along_axis(log_p, classes[None, :, None], axis=2)[..., 0], axis=1)
    np.testing.assert_allclose(softmax.loss(theta, X, classes), expected, rtol=1e-12)


def test_classification_losses_are_stable_for_huge_logits() -> None:
    X = np.array([[1.0], [-1.0]])
    logistic = ck.models.logistic_regression(1)
    loss, grad = logistic.loss_and_grad(np.array([[1000.0, 1000.0]]), X, np.array([0, 1]))
    expected = (np.logaddexp(0, 2000.0) + np.logaddexp(0, 0.0)) / 2  # softplus(z) - y z
    np.testing.assert_allclose(loss, [expected], rtol=1e-14)
    np.testing.assert_allclose(grad, [[(1.0 + 0.5) / 2, (1.0 - 0.5) / 2]], rtol=1e-14)
    softmax = ck.models.logistic_regression(1, 3)
    params = np.array([[1000.0, -1000.0, 0.0, 0.0, 0.0, 0.0]])  # W = (1000, -1000, 0), b = 0
    loss, grad = softmax.loss_and_grad(params, X, np.array([1, 1]))
    # logits (1000, -1000, 0) and (-1000, 1000, 0): losses 2000 and 0
    np.testing.assert_allclose(loss, [1000.0], rtol=1e-14)
    assert np.all(np.isfinite(grad))


def test_a_batch_of_runs_equals_the_runs_one_by_one() -> None:
    model = ck.models.mlp([4, 6, 3], "tanh", l2=0.01)
    rng = np.random.default_rng(2)
    params = model.init([4, 5, 6])
    X, y = rng.standard_normal((B, 9, 4)), rng.integers(0, 3, (B, 9))
    loss, grad = model.loss_and_grad(params, X, y)
    for i in range(B):  # the reference: one run at a time
        single_loss, single_grad = model.loss_and_grad(params[i : i + 1], X[i], y[i])
        np.testing.assert_allclose(single_loss[0], loss[i], rtol=1e-14)
        np.testing.assert_allclose(single_grad[0], grad[i], rtol=1e-13, atol=1e-16)


def _round16(a):
    return a.astype(np.float16).astype(a.dtype)


@pytest.mark.parametrize(
    "model", [MODELS[1], MODELS[3], ck.models.mlp([4, 6, 3], "relu")], ids=repr
)
def test_cast_hook_rounds_every_result(model) -> None:
    rng = np.random.default_rng(3)
    params = (
        model.init([1, 2, 3], dtype="float32")
        + rng.standard_normal((B, model.n_params)).astype(np.float32) * 0.3
    )
    X = rng.standard_normal((8, 4)).astype(np.float32)
    y = _labels(model, (8,), rng)
    calls = []

    def counting(a):
        calls.append(a.shape)
        return a

    plain = model.loss_and_grad(params, X, y)
    counted = model.loss_and_grad(params, X, y, cast=counting)
    np.testing.assert_array_equal(plain[1], counted[1])
    forward_calls = len(calls)
    calls.clear()
    model.loss(params, X, y, cast=counting)
    assert forward_calls > len(calls) > 3  # the backward pass is cast too
    loss, grad = model.loss_and_grad(params, X, y, cast=_round16)
    np.testing.assert_array_equal(loss, _round16(loss))  # representable in float16
    np.testing.assert_array_equal(grad, _round16(grad))
    assert np.max(np.abs(grad - plain[1])) > 0  # and really rounded
    np.testing.assert_allclose(grad, plain[1], rtol=0.05, atol=0.02)


def test_loss_scale_multiplies_the_backward_seed() -> None:
    model = ck.models.mlp([4, 6, 3], "relu", l2=0.1)
    rng = np.random.default_rng(4)
    params = model.init([1, 2, 3]) + 0.1
    X, y = rng.standard_normal((8, 4)), rng.integers(0, 3, 8)
    loss, grad = model.loss_and_grad(params, X, y)
    scaled_loss, scaled = model.loss_and_grad(params, X, y, loss_scale=1024.0)
    np.testing.assert_array_equal(scaled_loss, loss)  # the loss is reported unscaled
    np.testing.assert_array_equal(scaled, 1024.0 * grad)  # a power of two: exact
    per_run = np.array([1.0, 2.0, 4.0])
    np.testing.assert_array_equal(
        model.loss_and_grad(params, X, y, loss_scale=per_run)[1], per_run[:, None] * grad
    )


def test_dropout_is_unbiased_per_run_and_off_without_rng() -> None:
    p, hidden, runs = 0.25, 50, 4000
    model = ck.models.mlp([1, hidden, 1], "identity", dropout=p)
    plain = ck.models.mlp([1, hidden, 1], "identity")
    layers = [
        (np.ones((runs, 1, hidden)), np.zeros((runs, hidden))),
        (np.full((runs, hidden, 1), 1.0 / hidden), np.zeros((runs, 1))),
    ]
    params = model.flatten(layers)
    X, y = np.ones((1, 1)), np.zeros(1)
    np.testing.assert_array_equal(model.loss(params, X, y), plain.loss(params, X, y))
    loss, _ = model.loss_and_grad(params, X, y, rng=np.random.default_rng(0))
    output = np.sqrt(2 * loss)  # y_hat = (kept units) / (hidden (1 - p)) >= 0
    kept = output * hidden * (1 - p)
    np.testing.assert_allclose(kept, np.round(kept), atol=1e-9)  # whole units dropped
    se = np.sqrt(p / (1 - p) / hidden / runs)
    assert abs(output.mean() - 1.0) < 6 * se  # inverted dropout keeps the mean
    assert len(np.unique(kept)) > 5  # every run its own mask
    again, _ = model.loss_and_grad(params, X, y, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(loss, again)


def test_init_is_the_books_and_depends_on_each_seed_only() -> None:
    model = ck.models.linear_regression(5)
    params = model.init(list(range(2000)))
    assert params.shape == (2000, 6)
    np.testing.assert_array_equal(params[:, 5], 0.0)  # bias 0
    assert abs(params[:, :5].std() - 0.01) < 0.01 * 6 / np.sqrt(2 * 10000)
    np.testing.assert_array_equal(model.init([7, 3])[1], model.init([3])[0])
    np.testing.assert_array_equal(model.init(3, batch=4)[0], model.init([3])[0])
    assert len(np.unique(model.init(3, batch=4)[:, 0])) == 4
    rng_params = model.init(np.random.default_rng(0), 2, dtype="float32")
    assert rng_params.dtype == np.float32 and rng_params.shape == (2, 6)
    mlp = ck.models.mlp([100, 50, 10])
    first = mlp.unflatten(mlp.init(list(range(20))))[0][0]
    assert abs(first.std() - np.sqrt(2 / 100)) < 0.01  # He initialisation for ReLU


def test_counter_streams_are_uniform_and_independent_of_the_batch() -> None:
    bits = counter_bits([1, 2], 0, 5)
    np.testing.assert_array_equal(counter_bits([2], 0, 5)[0], bits[1])
    assert not np.array_equal(counter_bits([1], 1, 5)[0], bits[0])  # streams differ
    draws = counter_normal(list(range(50)), 3, 2000).ravel()
    assert abs(draws.mean()) < 6 / np.sqrt(draws.size)
    assert abs(draws.var() - 1) < 6 * np.sqrt(2 / draws.size)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_derivatives_come_from_sympy(name: str) -> None:
    act = activation(name)
    x = next(iter(act.expression.free_symbols))
    assert sympy.simplify(act.derivative - sympy.diff(act.expression, x)) == 0
    z = np.random.default_rng(0).uniform(-4, 4, (3, 50))
    z = z[np.abs(z) > 1e-3]  # away from the kinks
    h = 1e-6
    numeric = (act.function(z + h) - act.function(z - h)) / (2 * h)
    np.testing.assert_allclose(act.gradient(z), numeric, rtol=1e-6, atol=1e-8)
    with np.errstate(over="raise", invalid="raise"):
        act.gradient(np.array([-1000.0, 1000.0]))  # no overflow far out


def test_model_on_array_api_strict_matches_numpy(backend) -> None:
    xp, device = backend
    model = ck.models.mlp([4, 6, 3], "elu", l2=0.1, dropout=0.2)
    rng = np.random.default_rng(5)
    params = model.init([1, 2, 3])
    X, y = rng.standard_normal((B, 8, 4)), rng.integers(0, 3, (B, 8))
    loss, grad = model.loss_and_grad(params, X, y, rng=3)

    def move(a):
        return xp.asarray(a) if device is None else xp.asarray(a, device=device)

    other_loss, other_grad = model.loss_and_grad(move(params), move(X), move(y), rng=3)
    if device is not None:
        assert other_grad.device == device
    np.testing.assert_allclose(to_numpy(other_grad), grad, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(to_numpy(other_loss), loss, rtol=1e-12)


def test_predictions_and_accuracy() -> None:
    X = np.array([[-2.0], [-1.0], [1.0], [2.0]])
    y = np.array([0, 0, 1, 1])
    model = ck.models.logistic_regression(1)
    params = np.array([[5.0, 0.0], [-5.0, 0.0]])
    np.testing.assert_array_equal(model.predict(params, X), [[0, 0, 1, 1], [1, 1, 0, 0]])
    np.testing.assert_array_equal(model.accuracy(params, X, y), [1.0, 0.0])
    with pytest.raises(ValueError, match="classifier"):
        ck.models.linear_regression(1).accuracy(params, X, y)


def test_clear_errors() -> None:
    model = ck.models.linear_regression(3)
    X = np.zeros((4, 3))
    with pytest.raises(ValueError, match=r"params=.*shape \(B, 4\)"):
        model.loss(np.zeros((2, 5)), X, np.zeros(4))
    with pytest.raises(ValueError, match=r"X=.*\(b, 3\)"):
        model.loss(np.zeros((2, 4)), np.zeros((4, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="y="):
        model.loss(np.zeros((2, 4)), X, np.zeros(5))
    with pytest.raises(ValueError, match="activation='swish'"):
        ck.models.mlp([3, 4, 1], "swish")
    with pytest.raises(ValueError, match="sizes="):
        ck.models.mlp([3, 1])
    with pytest.raises(ValueError, match="dropout=1"):
        ck.models.mlp([3, 4, 2], dropout=1)
    with pytest.raises(ValueError, match="one output"):
        ck.models.mlp([3, 4, 2], loss="squared")
    with pytest.raises(ValueError, match="l2="):
        ck.models.linear_regression(3, l2=-1.0)
    with pytest.raises(ValueError, match="n_classes=1"):
        ck.models.logistic_regression(3, 1)
    with pytest.raises(ValueError, match="rng="):
        ck.models.mlp([3, 4, 2], dropout=0.5).loss_and_grad(
            ck.models.mlp([3, 4, 2]).init(0), X, np.zeros(4, dtype=int), rng="seed"
        )
