"""Mixed precision: exact rounding against numpy.float16 / ml_dtypes.bfloat16, the loss scalers
against a plain GradScaler reference, the underflow and lost-update theory against what the
rounding measures, and the policy in training runs."""

from __future__ import annotations

import importlib.util
import math
import warnings

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import convexkit as ck
from convexkit import precision as P
from convexkit.backend import array_namespace, to_numpy

HAS_NUMBA = importlib.util.find_spec("numba") is not None
F16_MAX = float(np.finfo(np.float16).max)


# --------------------------------------------------------------------------------------------
# helpers


def reference_round(x: np.ndarray, precision: str) -> np.ndarray:
    """The rounding as NumPy and ml_dtypes do it, back in float32."""
    x = np.asarray(x, dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        if precision == "float16":
            return x.astype(np.float16).astype(np.float32)
        return x.astype(ml_dtypes.bfloat16).astype(np.float32)


def assert_bitwise_equal(actual, expected) -> None:
    """Same float32 bits everywhere, except that any NaN matches any NaN."""
    a = np.asarray(to_numpy(actual), dtype=np.float32)
    e = np.asarray(expected, dtype=np.float32)
    assert a.shape == e.shape
    nan = np.isnan(e)
    assert np.array_equal(np.isnan(a), nan), "NaN not preserved"
    bad = (a.view(np.uint32) != e.view(np.uint32)) & ~nan
    assert not bad.any(), (
        f"{bad.sum()} mismatches, first input index {np.flatnonzero(bad)[:5]}: "
        f"got {a[bad][:5]!r}, expected {e[bad][:5]!r}"
    )


def edge_values(precision: str) -> np.ndarray:
    """Max, min normal, subnormals, halfway cases, inf, NaN, signed zeros, of ``precision``."""
    fmt = P.format_info(precision)
    p = fmt.precision
    tiny, sub = fmt.tiny, fmt.smallest_subnormal
    values = [
        0.0,
        -0.0,
        np.inf,
        -np.inf,
        np.nan,
        -np.nan,
        fmt.max,
        -fmt.max,
        tiny,
        -tiny,
        sub,
        -sub,
        sub / 2,
        -sub / 2,
        3 * sub / 2,
        5 * sub / 2,
        sub / 4,  # subnormal ties and below
        tiny - sub,
        tiny - sub / 2,
        tiny - sub / 4,  # largest subnormal, tie with tiny
        1 + 2.0**-p,
        1 + 3 * 2.0**-p,
        1 - 2.0 ** -(p + 1),  # normal ties (even, odd)
        2 + 2.0 ** (1 - p),
        fmt.overflow_threshold,
        np.nextafter(np.float32(fmt.overflow_threshold), np.float32(0)),
        fmt.max * (1 + 2.0 ** -(p + 2)),
        3.4e38,
        -3.4e38,
        1e-45,
        -1e-45,
        1.17e-38,
    ]
    with np.errstate(over="ignore"):
        array = np.array(values, dtype=np.float64).astype(np.float32)
    return np.concatenate(
        [array, np.nextafter(array, np.float32(np.inf)), np.nextafter(array, np.float32(-np.inf))]
    )


def random_values(rng: np.random.Generator, n: int, precision: str) -> np.ndarray:
    """Values over the whole range of the format and beyond, plus raw float32 bit patterns."""
    low, high = (-30, 13) if precision == "float16" else (-140, 89)
    magnitudes = np.exp2(rng.uniform(low, high, n)) * rng.choice([-1.0, 1.0], n)
    with np.errstate(over="ignore"):
        spread = magnitudes.astype(np.float32)
    bits = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32).view(np.float32)
    return np.concatenate([spread, bits])


NUMPY_ENGINES = ["ufunc", "array_api", "native"] + (["numba"] if HAS_NUMBA else [])


# --------------------------------------------------------------------------------------------
# rounding


@pytest.mark.parametrize("precision", ["float16", "bfloat16"])
@pytest.mark.parametrize("engine", NUMPY_ENGINES)
def test_rounding_is_bitwise_exact_on_edge_and_random_values(precision, engine):
    cast = P.cast_function(precision, engine=engine)
    values = np.concatenate(
        [edge_values(precision), random_values(np.random.default_rng(7), 50_000, precision)]
    )
    with np.errstate(over="ignore", invalid="ignore"):
        out = cast(values)
    if engine == "native":
        assert out.dtype != np.float32
        out = out.astype(np.float32)
    else:
        assert out.dtype == np.float32 and out.shape == values.shape
    assert_bitwise_equal(out, reference_round(values, precision))


@given(seed=st.integers(0, 2**32 - 1), precision=st.sampled_from(["float16", "bfloat16"]))
def test_rounding_of_arbitrary_bit_patterns(seed, precision):
    bits = np.random.default_rng(seed).integers(0, 2**32, 4096, dtype=np.uint64)
    values = bits.astype(np.uint32).view(np.float32).reshape(64, 64)
    expected = reference_round(values, precision)
    for engine in ["ufunc"] + (["numba"] if HAS_NUMBA else []):
        assert_bitwise_equal(P.cast_function(precision, engine=engine)(values), expected)


@pytest.mark.parametrize("precision", ["float16", "bfloat16"])
def test_rounding_on_every_backend(backend, precision):
    xp, device = backend
    values = np.concatenate(
        [edge_values(precision), random_values(np.random.default_rng(3), 5000, precision)]
    )
    from convexkit.backend import asarray

    x = asarray(values, xp, device=device)
    cast = P.cast_function(precision, xp)
    out = cast(x)
    assert array_namespace(out) is array_namespace(x)
    assert_bitwise_equal(
        np.asarray(to_numpy(out), dtype=np.float32), reference_round(values, precision)
    )


def test_rounding_facts_of_float16():
    cast = P.cast_function("float16")
    x = np.array(
        [
            65504,
            65519.996,
            65520,
            2.0**-25,
            2.0**-25 * (1 + 2.0**-20),
            3 * 2.0**-25,
            1 + 2.0**-11,
            1 + 3 * 2.0**-11,
            -1e-9,
        ],
        dtype=np.float32,
    )
    out = cast(x)
    assert out[0] == 65504 and out[1] == 65504 and np.isposinf(out[2])
    assert out[3] == 0 and out[4] == 2.0**-24 and out[5] == 2.0**-23  # ties to even
    assert out[6] == 1.0 and out[7] == 1 + 2.0**-9
    assert out[8] == 0 and np.signbit(out[8])


def test_shape_and_non_float32_input_are_handled():
    cast = P.cast_function("float16")
    x64 = np.linspace(-3, 3, 24).reshape(2, 3, 4)
    out = cast(x64)
    assert out.shape == (2, 3, 4) and out.dtype == np.float32
    assert_bitwise_equal(out, reference_round(x64.astype(np.float32), "float16"))
    transposed = np.asarray(x64, dtype=np.float32).transpose(2, 0, 1)
    assert_bitwise_equal(cast(transposed), reference_round(transposed, "float16"))
    assert P.cast_function("float32")(x64).dtype == np.float32
    assert P.cast_function("float64")(x64) is not None
    assert P.round_to(np.float32(1 + 2.0**-12), "float16") == 1.0


def test_cast_function_refuses_what_it_cannot_do():
    import array_api_strict as strict

    with pytest.raises(ValueError, match="precision='float8'"):
        P.cast_function("float8")
    with pytest.raises(ValueError, match="engine='fast'"):
        P.cast_function("float16", engine="fast")
    with pytest.raises(ValueError, match="engine='numba'.*array_api"):
        P.cast_function("float16", strict, engine="numba")
    with pytest.raises(ValueError, match="engine='ufunc'"):
        P.cast_function("bfloat16", strict, engine="ufunc")
    assert P.cast_function("float16", strict).engine == "array_api"


@pytest.mark.parametrize("precision", ["float16", "bfloat16"])
def test_format_constants_and_thresholds(precision):
    fmt = P.format_info(precision)
    info = np.finfo(np.float16) if precision == "float16" else ml_dtypes.finfo(ml_dtypes.bfloat16)
    assert fmt.max == float(info.max)
    assert fmt.tiny == float(info.smallest_normal)
    assert fmt.smallest_subnormal == float(info.smallest_subnormal)
    assert fmt.eps == float(info.eps)
    cast = P.cast_function(precision)
    below = lambda v: np.nextafter(np.float32(v), np.float32(0))  # noqa: E731
    above = lambda v: np.nextafter(np.float32(v), np.float32(np.inf))  # noqa: E731
    assert cast(np.float32(fmt.zero_threshold)) == 0 and cast(above(fmt.zero_threshold)) > 0
    assert cast(np.float32(fmt.subnormal_threshold)) == fmt.tiny
    assert cast(below(fmt.subnormal_threshold)) < fmt.tiny
    assert np.isinf(cast(np.float32(fmt.overflow_threshold)))
    assert cast(below(fmt.overflow_threshold)) == fmt.max


# --------------------------------------------------------------------------------------------
# spacing and lost updates


def _next_up(values: np.ndarray, precision: str) -> np.ndarray:
    """The next larger value of the format, from its bits (positive finite values)."""
    dtype = np.float16 if precision == "float16" else ml_dtypes.bfloat16
    low = values.astype(dtype)
    return (low.view(np.uint16) + np.uint16(1)).view(dtype).astype(np.float64)


@pytest.mark.parametrize("precision", ["float16", "bfloat16"])
def test_spacing_is_the_distance_to_the_next_value(precision):
    rng = np.random.default_rng(2)
    fmt = P.format_info(precision)
    w = reference_round(random_values(rng, 5000, precision)[:5000], precision)
    w = np.abs(w[np.isfinite(w) & (np.abs(w) < fmt.max)]).astype(np.float64)
    w = np.concatenate([w, [0.0, fmt.tiny, fmt.smallest_subnormal, 1.0, 2.0]])
    assert np.array_equal(P.spacing(w, precision), _next_up(w, precision) - w)


@given(seed=st.integers(0, 2**32 - 1), precision=st.sampled_from(["float16", "bfloat16"]))
def test_lost_updates_prediction_equals_what_rounding_does(seed, precision):
    rng = np.random.default_rng(seed)
    fmt = P.format_info(precision)
    n = 4000
    low, high = (-24, 15) if precision == "float16" else (-133, 127)
    w = np.exp2(rng.integers(low, high + 1, n).astype(float))  # powers of two: asymmetric
    w = np.where(rng.random(n) < 0.5, w * rng.uniform(1, 2, n), w)
    w = reference_round(w * rng.choice([-1, 1], n), precision)
    w[:4] = [0.0, fmt.max, -fmt.max, fmt.tiny]
    w = w[np.isfinite(w)]
    ulp = P.spacing(w, precision)
    # updates around half an ulp (both sides, ties exactly), and random small ones
    factors = rng.choice([0.5, 0.25, 0.24, 0.26, 0.49, 0.51, 1.0, 0.1, 1e-3], w.size)
    delta = ulp * factors * rng.choice([-1.0, 1.0], w.size)
    with np.errstate(over="ignore"):
        w_next = (w.astype(np.float64) + delta).astype(np.float32)
    predicted = P.lost_updates(w, w_next, precision)
    with np.errstate(over="ignore"):
        measured = (reference_round(w_next, precision) == w) & (w_next != w)
    assert np.array_equal(predicted, measured)
    assert 0.1 < predicted.mean() < 0.9  # both outcomes occur


@given(seed=st.integers(0, 2**32 - 1), log_scale=st.integers(-4, 24))
def test_predicted_gradient_fractions_equal_measured_on_the_same_gradients(seed, log_scale):
    rng = np.random.default_rng(seed)
    grad = np.exp2(rng.uniform(-45, 2, (5, 3000))) * rng.choice([-1, 1], (5, 3000))
    grad = grad.astype(np.float32)
    grad[0, :10] = 0.0
    scale = 2.0**log_scale
    scaled = grad * np.float32(scale)  # exact: a power of two
    predicted = P.predicted_gradient_fractions(grad, scale, "float16")
    with np.errstate(over="ignore"):
        measured = P.measured_gradient_fractions(P.cast_function("float16")(scaled), "float16")
    for key in ("zero", "subnormal", "overflow"):
        assert np.array_equal(predicted[key], measured[key]), key
    per_model = np.full(5, scale, dtype=np.float32)
    again = P.predicted_gradient_fractions(grad, per_model, "float16")
    assert np.array_equal(again["zero"], predicted["zero"])


# --------------------------------------------------------------------------------------------
# loss scalers


def grad_scaler_reference(
    found: list[bool], init: float, growth: float, backoff: float, interval: int
) -> list[float]:
    """PyTorch GradScaler's documented update, written plainly for one model."""
    scale, tracker, out = np.float32(init), 0, []
    for inf in found:
        if inf:
            scale = np.float32(float(scale) * backoff)
            tracker = 0
        else:
            tracker += 1
            if tracker == interval:
                grown = np.float32(float(scale) * growth)
                if math.isfinite(grown):
                    scale = grown
                tracker = 0
        out.append(float(scale))
    return out


@given(
    found=st.lists(st.lists(st.booleans(), min_size=1, max_size=40), min_size=1, max_size=6),
    interval=st.integers(1, 6),
    growth=st.sampled_from([2.0, 1.5, 3.0]),
    backoff=st.sampled_from([0.5, 0.25, 0.7]),
    init=st.sampled_from([2.0**16, 1.0, 3.0]),
)
def test_dynamic_scaler_matches_grad_scaler(found, interval, growth, backoff, init):
    steps = min(len(row) for row in found)
    table = np.array([row[:steps] for row in found], dtype=bool)  # (B, T)
    scaler = P.DynamicLossScaler(
        init, growth, backoff, interval, min_scale=2.0**-100, max_scale=2.0**100
    )
    got = np.stack([np.array(scaler.update(table[:, t])) for t in range(steps)], axis=1)
    expected = np.array(
        [grad_scaler_reference(list(row), init, growth, backoff, interval) for row in table]
    )
    assert np.array_equal(got, expected)
    assert np.array_equal(scaler.skipped, table.sum(axis=1))
    assert scaler.steps == steps and np.all(scaler.hits_min == 0) and np.all(scaler.hits_max == 0)


def test_dynamic_scaler_scalar_use_as_in_the_api():
    scaler = P.DynamicLossScaler()
    assert scaler.scale == 2.0**16
    assert scaler.update(True) == 2.0**15
    scaler = P.DynamicLossScaler(init_scale=4.0, growth_interval=3)
    assert [scaler.update(f) for f in (False, False, False, True, False)] == [4, 4, 8, 4, 4]
    assert scaler.skipped == 1 and scaler.growth_tracker == 1
    with pytest.raises(ValueError, match="found_inf"):
        scaler.update(np.array([[True]]))
    with pytest.raises(ValueError, match="found_inf"):
        scaler.update(np.array([1.0]))


def test_dynamic_scaler_holds_at_its_bounds_and_says_so():
    scaler = P.DynamicLossScaler(
        init_scale=4.0, backoff_factor=0.5, min_scale=1.0, growth_interval=1, max_scale=16.0
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(4):
            scale = scaler.update(np.array([True, False]))
    messages = sorted(str(w.message) for w in caught if w.category is P.LossScaleWarning)
    assert len(messages) == 2
    assert "max_scale=16.0 for 1 of 2 models" in messages[0]
    assert "min_scale=1.0 for 1 of 2 models" in messages[1]
    assert list(scale) == [1.0, 16.0]
    assert list(scaler.hits_min) == [2, 0] and list(scaler.hits_max) == [0, 2]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # shown once per bound
        scaler.update(np.array([True, False]))
    assert list(scaler.scale) == [1.0, 16.0] and list(scaler.skipped) == [5, 0]


def test_scaler_arguments_are_checked():
    with pytest.raises(ValueError, match="min_scale=0"):
        P.DynamicLossScaler(min_scale=0)
    with pytest.raises(ValueError, match="init_scale=100.0"):
        P.DynamicLossScaler(init_scale=100.0, max_scale=10.0)
    with pytest.raises(ValueError, match="backoff_factor=1.5"):
        P.DynamicLossScaler(backoff_factor=1.5)
    with pytest.raises(ValueError, match="growth_interval=0"):
        P.DynamicLossScaler(growth_interval=0)
    with pytest.raises(ValueError, match="scale=-1"):
        P.StaticLossScaler(-1)
    scaler = P.StaticLossScaler(256)
    scaler.update(np.array([True, False, True]))
    assert scaler.scale.shape == (3,) and list(scaler.skipped) == [1, 0, 1]
    with pytest.raises(ValueError, match="batch=2"):
        scaler.bind(2)


def test_scaler_on_array_api_strict():
    import array_api_strict as strict

    device = strict.Device("device1")
    scaler = P.DynamicLossScaler(init_scale=8.0, growth_interval=1)
    scale = scaler.update(strict.asarray([True, False], device=device))
    assert scale.device == device
    assert to_numpy(scale).tolist() == [4.0, 16.0]


# --------------------------------------------------------------------------------------------
# the policy, on a tiny model with the trainer's contract


class TinyLinear:
    """Linear regression without bias, loss (Xw - y)^2 / 2 averaged; every result cast."""

    def loss_and_grad(self, params, X, y, *, cast=None, loss_scale=None, rng=None):
        c = cast or (lambda a: a)
        xp = array_namespace(params)
        n = X.shape[0]
        r = c(c(xp.matmul(params, X.T)) - y)
        loss = c(xp.sum(c(r * r), axis=1) * (0.5 / n))
        seed = 1.0 if loss_scale is None else loss_scale
        seed = xp.asarray(seed, dtype=r.dtype, device=r.device)
        seed = c(xp.reshape(seed, (-1, 1)) * (1.0 / n))
        grad = c(xp.matmul(c(r * seed), X))
        return loss, grad


def tiny_task(n=512, d=8, y_scale=1e-3, noise=1e-6, seed=0):
    """Targets of order 1e-3 fitted to 1e-6: per-example gradients r/n underflow in float16."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    w = (rng.standard_normal(d) * y_scale / np.sqrt(d)).astype(np.float32)
    y = (X @ w + noise * rng.standard_normal(n)).astype(np.float32)
    return X, y


def gd_run(policy, X, y, steps, lr=0.5, batch=3):
    model = TinyLinear()
    spread = np.array([0.0, 1e-3, 1e-2])[:batch, None]  # models start at different distances
    params = spread * np.random.default_rng(5).standard_normal((batch, X.shape[1]))
    params = params.astype(np.float32)
    optimizer = ck.optim.gd(lr)
    state = optimizer.init(params)
    for step in range(steps):
        _, grad, info = policy.gradients(model, params, X, y)
        params, state, info = policy.apply(optimizer, params, grad, state, step, info)
    return params, model.loss_and_grad(params, X, y)[0]


def test_policy_unscales_exactly_and_skips_overflowing_models():
    X, y = tiny_task()
    model = TinyLinear()
    params = np.array([[1e-3] * 8, [1e-3] * 8, [1e-3] * 8], dtype=np.float32)
    scaler = P.DynamicLossScaler(init_scale=2.0**10, growth_interval=1000)
    policy = P.Policy("float16", scaler, True, np, 3)
    # a third model whose gradient overflows: huge weights
    params[2] = 300.0
    optimizer = ck.optim.momentum(0.1, 0.9)
    state = optimizer.init(params)
    state = type(state)(state.v + 1.0)
    _, grad, info = policy.gradients(model, params, X, y)
    assert info["found_inf"].tolist() == [False, False, True]
    assert np.array_equal(grad[:2], info["grad_low"][:2] / np.float32(2.0**10))
    assert np.all(grad[2] == 0)
    new, new_state, info = policy.apply(optimizer, params, grad, state, 0, info)
    assert np.array_equal(new[2], params[2]) and np.array_equal(new_state.v[2], state.v[2])
    assert not np.array_equal(new[0], params[0]) and new.dtype == np.float32
    assert list(scaler.scale) == [2.0**10, 2.0**10, 2.0**9]
    stats = policy.stats
    assert stats["skipped"].tolist() == [[False, False, True]]
    assert stats["scale"].tolist() == [[2.0**10] * 3]


def test_policy_records_prediction_and_measurement_on_a_run():
    X, y = tiny_task()
    policy = P.Policy("float16", 2.0**14, True, np, 3)
    gd_run(policy, X, y, steps=60)
    stats = policy.stats
    assert stats["zero"].shape == (60, 3)
    # scaled: the backward pass stays in range, the parameter-level prediction holds closely
    for key in ("zero", "subnormal", "overflow"):
        assert abs(stats[key].mean() - stats[f"predicted_{key}"].mean()) < 0.02, key
    assert stats["subnormal"].max() > 0  # some entries do fall below 2**-14 late in training


def test_float16_without_scaling_fails_and_scaling_recovers_float32():
    X, y = tiny_task()
    results = {}
    for name, precision, scale in (
        ("fp32", "float32", None),
        ("fp16", "float16", None),
        ("scaled", "float16", 2.0**14),
    ):
        policy = P.Policy(precision, scale, True, np, 3)
        results[name] = gd_run(policy, X, y, steps=80)[1]
    assert np.all(results["fp16"] > 10 * results["fp32"])
    assert np.all(np.abs(results["scaled"] / results["fp32"] - 1) < 0.05)


def test_weights_kept_in_float16_lose_exactly_the_predicted_updates():
    X, y = tiny_task()
    policy = P.Policy("float16", 2.0**14, False, np, 3)
    params, _ = gd_run(policy, X, y, steps=60, lr=0.2)
    stats = policy.stats
    assert np.array_equal(stats["lost"], stats["predicted_lost"])
    assert stats["lost"][-10:].mean() > 0.3  # late in training most updates are lost
    assert np.array_equal(params, P.cast_function("float16")(params))


def test_master_weights_keep_float32_values():
    X, y = tiny_task()
    params, _ = gd_run(P.Policy("float16", 2.0**14, True, np, 3), X, y, steps=30)
    assert not np.array_equal(params, P.cast_function("float16")(params))


def test_policy_with_bfloat16_and_native_float16():
    X, y = tiny_task()
    _, loss_bf16 = gd_run(P.Policy("bfloat16", None, True, np, 3), X, y, steps=40)
    _, loss_native = gd_run(P.Policy("float16", 2.0**14, True, np, 3, engine="native"), X, y, 40)
    _, loss_fp32 = gd_run(P.Policy("float32", None, True, np, 3), X, y, steps=40)
    assert np.all(np.abs(loss_native / loss_fp32 - 1) < 0.05)
    assert np.all(
        loss_bf16 < 1e-3 * TinyLinear().loss_and_grad(np.zeros((3, 8), np.float32), X, y)[0]
    )


def test_policy_on_array_api_strict():
    import array_api_strict as strict

    device = strict.Device("device1")
    X, y = tiny_task(n=64)
    Xs, ys = strict.asarray(X, device=device), strict.asarray(y, device=device)
    policy = P.Policy("float16", P.DynamicLossScaler(growth_interval=5), True, strict, 2)
    params = strict.zeros((2, 8), dtype=strict.float32, device=device)
    optimizer = ck.optim.gd(0.5)
    state = optimizer.init(params)
    for step in range(12):
        _, grad, info = policy.gradients(TinyLinear(), params, Xs, ys)
        params, state, info = policy.apply(optimizer, params, grad, state, step, info)
    assert params.device == device
    expected = P.Policy("float16", P.DynamicLossScaler(growth_interval=5), True, np, 2)
    reference = np.zeros((2, 8), dtype=np.float32)
    state = optimizer.init(reference)
    for step in range(12):
        _, grad, info = expected.gradients(TinyLinear(), reference, X, y)
        reference, state, info = expected.apply(optimizer, reference, grad, state, step, info)
    assert np.array_equal(to_numpy(params), reference)
    assert np.array_equal(policy.stats["scale"], expected.stats["scale"])


def test_policy_arguments_are_checked():
    with pytest.raises(ValueError, match="precision='half'"):
        P.Policy("half")
    with pytest.raises(ValueError, match="loss_scale='big'"):
        P.Policy("float16", "big")
    with pytest.raises(ValueError, match="master_weights=1"):
        P.Policy("float16", None, 1)
    with pytest.raises(ValueError, match="params="):
        P.Policy("float16", None, True, np, 2).gradients(TinyLinear(), np.zeros((3, 8)), 0, 0)


# --------------------------------------------------------------------------------------------
# through the trainer


def test_train_with_dynamic_scaling_records_skips_and_recovers():
    X, y = tiny_task(n=1024, d=8)
    model = ck.models.linear_regression(8, init_std=0.0)
    common = dict(batch_size=1024, epochs=60, seed=[0, 1], eval_every=1024)
    fp32 = ck.train(model, ck.optim.gd(0.5), (X, y), **common)
    fp16 = ck.train(model, ck.optim.gd(0.5), (X, y), precision="float16", **common)
    # large enough that the scaled per-example gradients overflow float16 at first
    scaler = P.DynamicLossScaler(init_scale=2.0**32, growth_interval=20)
    scaled = ck.train(
        model, ck.optim.gd(0.5), (X, y), precision="float16", loss_scale=scaler, **common
    )
    assert np.all(fp16.final_loss > 10 * fp32.final_loss)
    assert np.all(np.abs(scaled.final_loss / fp32.final_loss - 1) < 0.05)
    stats = scaled.stats
    skipped = stats["skipped"]
    assert skipped.shape == (60, 2) and skipped.sum() >= 2
    assert np.array_equal(skipped.sum(axis=0), scaler.skipped)
    # after a skipped step the scale halves
    rows, cols = np.nonzero(skipped[:-1])
    assert np.array_equal(stats["scale"][rows + 1, cols], stats["scale"][rows, cols] / 2)


def test_analysis_quick_rows_agree(tmp_path):
    from analyses import mixed_precision

    result = mixed_precision.run(quick=True, seed=1)
    checked = [row for row in result["summary"] if row["agrees"] is not None]
    assert len(checked) == 7
    failing = [row["quantity"] for row in checked if not row["agrees"]]
    assert not failing, failing
    paths = mixed_precision.plot(result, tmp_path)
    assert [p.name for p in paths] == [
        "mixed_precision_histograms.png",
        "mixed_precision_scale.png",
        "mixed_precision_loss.png",
    ]
    first = [p.read_bytes() for p in paths]
    again = mixed_precision.plot(result, tmp_path)
    assert [p.read_bytes() for p in again] == first
