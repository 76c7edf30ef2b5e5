"""Models with hand-written backward passes, batched over independent models.

Every model keeps the parameters of one run in one flat vector, so that a batch of B runs is an
array of shape (B, P) that any optimizer of :mod:`convexkit.optim` updates as it is. Inside, the
vector is viewed as dense layers ``(W1, b1, W2, b2, ...)``, each ``W`` of shape (in, out) in
row-major order followed by its bias.

Inputs ``X`` are either shared by all runs, shape (b, f), or one minibatch per run, shape
(B, b, f); targets ``y`` have shape (b,) or (B, b). Losses are averaged over the b examples
and come back per run, shape (B,).

``loss_and_grad(params, X, y, *, cast=None, loss_scale=None, rng=None)`` is the hook for
mixed precision: ``cast`` is applied to the result of every arithmetic operation of the forward
and backward pass (matrix products, additions, activations, each loss term, every product of the
backward pass), so that rounding each result to float16 or bfloat16 emulates low-precision
arithmetic; ``loss_scale`` (a number or one per run) multiplies the seed of the backward pass.
Reductions (sums over examples) are rounded once, after accumulating in the working dtype, as
hardware with wider accumulators does.

Activation functions are SymPy expressions; their derivatives come from ``sympy.diff`` and both
are compiled by :func:`convexkit.codegen.lambdify` for the namespace of the arrays.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from .backend import Random, array_namespace, asarray, device_of, resolve_dtype, resolve_namespace
from .errors import check_choice, check_int, check_real, invalid

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "Model",
    "activation",
    "counter_bits",
    "counter_normal",
    "counter_uniform",
    "linear_regression",
    "logistic_regression",
    "mlp",
]

LOSSES = ("squared", "logistic", "softmax")


# --------------------------------------------------------------------------------------------
# counter-based random numbers: run i's numbers depend on its own seed only


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finalizer on an array of uint64 (wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def _seed_array(seeds: Any) -> np.ndarray:
    values = np.atleast_1d(np.asarray(seeds))
    if values.ndim != 1 or not np.issubdtype(values.dtype, np.integer) or np.any(values < 0):
        raise invalid("seed", seeds, "a non-negative integer or a sequence of them")
    return values.astype(np.uint64)


def counter_bits(seeds: Any, stream: int, count: int) -> np.ndarray:
    """Random 64-bit words, one row per seed: shape (len(seeds), count).

    Row i is the SplitMix64 sequence started from a key that mixes ``seeds[i]`` and
    ``stream``, so it depends on that seed and stream only, never on the other seeds in the
    batch: training seeds [3, 5] gives run 0 exactly what training seed [3] gives. Computed for
    every row at once, without a loop over seeds.
    """
    seed_words = _seed_array(seeds)
    stream_word = np.array([stream], dtype=np.uint64) * _M2 + _GOLDEN
    keys = _mix(_mix(seed_words + _GOLDEN) ^ _mix(stream_word))
    counters = np.arange(1, count + 1, dtype=np.uint64)
    return _mix(keys[:, None] + counters[None, :] * _GOLDEN)


def counter_uniform(seeds: Any, stream: int, count: int) -> np.ndarray:
    """Uniform numbers in [0, 1) of shape (len(seeds), count); see :func:`counter_bits`."""
    return (counter_bits(seeds, stream, count) >> np.uint64(11)).astype(np.float64) * 2.0**-53


def counter_normal(seeds: Any, stream: int, count: int) -> np.ndarray:
    """Standard normal numbers of shape (len(seeds), count), row i depending on ``seeds[i]``
    and ``stream`` only (Box-Muller on consecutive pairs of :func:`counter_uniform`, so the
    first k numbers do not depend on ``count``)."""
    pairs = (count + 1) // 2
    u = counter_uniform(seeds, stream, 2 * pairs).reshape(-1, pairs, 2)
    radius = np.sqrt(-2.0 * np.log1p(-u[..., 0]))  # 1 - u lies in (0, 1]
    angle = 2.0 * np.pi * u[..., 1]
    normal = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=-1)
    return normal.reshape(-1, 2 * pairs)[:, :count]


# --------------------------------------------------------------------------------------------
# activations: SymPy expression -> derivative -> array functions


def _expressions() -> dict[str, Any]:
    import sympy

    x = sympy.Symbol("x", real=True)
    sigmoid = (1 + sympy.tanh(x / 2)) / 2  # = 1 / (1 + exp(-x)), without overflow
    return {
        "relu": sympy.Piecewise((0, x <= 0), (x, True)),  # derivative 0 at 0, as PyTorch
        "leaky_relu": sympy.Piecewise((x / 100, x <= 0), (x, True)),
        # exp(Min(x, 0)): both branches are evaluated, and exp(x) would overflow for large x
        "elu": sympy.Piecewise((sympy.exp(sympy.Min(x, 0)) - 1, x < 0), (x, True)),
        "sigmoid": sigmoid,
        "tanh": sympy.tanh(x),
        "silu": x * sigmoid,
        "identity": x,
    }


ACTIVATIONS = ("relu", "leaky_relu", "elu", "sigmoid", "tanh", "silu", "identity")


class Activation(NamedTuple):
    """An activation function, its derivative, and both as array functions.

    Attributes
    ----------
    name : str
    expression, derivative : sympy.Expr
        ``f(x)`` and ``sympy.diff(f, x)``.
    function, gradient : callable
        Array versions: ``function(z)`` and ``gradient(z)`` for an array ``z`` of any
        namespace, elementwise, same shape.
    """

    name: str
    expression: Any
    derivative: Any
    function: Callable[[Any], Any]
    gradient: Callable[[Any], Any]


def _array_function(expr: Any, symbol: Any) -> Callable[[Any], Any]:
    """An elementwise array function for a SymPy expression in one symbol, compiled by
    :func:`convexkit.codegen.lambdify` for the namespace of each array it is called on."""
    from .codegen import lambdify

    compiled: dict[int, Callable[[Any], Any]] = {}

    def function(z: Any) -> Any:
        xp = array_namespace(z)
        kernel = compiled.get(id(xp))
        if kernel is None:
            kernel = compiled[id(xp)] = lambdify(expr, symbol, xp=xp)
        return kernel(z)

    return function


@functools.lru_cache(maxsize=64)
def _activation_from(name: str, expression: Any) -> Activation:
    import sympy

    (symbol,) = expression.free_symbols
    derivative = sympy.diff(expression, symbol)
    return Activation(
        name,
        expression,
        derivative,
        _array_function(expression, symbol),
        _array_function(derivative, symbol),
    )


def activation(name_or_expression: Any) -> Activation:
    """The activation named ``name_or_expression``, or one built from a SymPy expression.

    Parameters
    ----------
    name_or_expression : str or sympy.Expr
        One of :data:`ACTIVATIONS`, or an expression in exactly one symbol (for example
        ``x * sympy.tanh(sympy.log(1 + sympy.exp(x)))``).

    Returns
    -------
    Activation
        With the derivative from ``sympy.diff``.
    """
    if isinstance(name_or_expression, str):
        check_choice("activation", name_or_expression, ACTIVATIONS)
        return _activation_from(name_or_expression, _expressions()[name_or_expression])
    import sympy

    if not isinstance(name_or_expression, sympy.Expr) or len(name_or_expression.free_symbols) != 1:
        raise invalid(
            "activation",
            name_or_expression,
            "one of "
            + ", ".join(repr(a) for a in ACTIVATIONS)
            + " or a SymPy expression in one symbol",
        )
    return _activation_from(str(name_or_expression), name_or_expression)


# --------------------------------------------------------------------------------------------
# the model


def _identity(x: Any) -> Any:
    return x


def _xp(a: Any) -> Any:
    """The namespace of ``a``, with a fast path for NumPy arrays (called on every step)."""
    return np if type(a) is np.ndarray else array_namespace(a)


def _transpose(xp: Any, a: Any) -> Any:
    """Swap the last two axes."""
    if xp is np:
        return np.swapaxes(a, -1, -2)
    axes = tuple(range(a.ndim - 2)) + (a.ndim - 1, a.ndim - 2)
    return xp.permute_dims(a, axes)


def _permute(xp: Any, a: Any, axes: tuple[int, ...]) -> Any:
    return np.transpose(a, axes) if xp is np else xp.permute_dims(a, axes)


def _forward_product(xp: Any, a: Any, W: Any) -> Any:
    """``a @ W`` for W of shape (B, in, out): a is (B, b, in), or (b, in) shared by the runs,
    which is one matrix product ``a @ [W_1 ... W_B]`` instead of B small ones."""
    if a.ndim == 3 or W.shape[0] == 1:
        return xp.matmul(a, W)
    B, fan_in, fan_out = W.shape
    stacked = xp.reshape(_permute(xp, W, (1, 0, 2)), (fan_in, B * fan_out))
    return _permute(xp, xp.reshape(xp.matmul(a, stacked), (a.shape[0], B, fan_out)), (1, 0, 2))


def _weight_product(xp: Any, a: Any, dz: Any) -> Any:
    """``a^T @ dz`` per run, shape (B, in, out), for a of shape (B, b, in) or shared (b, in)."""
    if a.ndim == 3 or dz.shape[0] == 1:
        return xp.matmul(_transpose(xp, a), dz)
    B, count, fan_out = dz.shape
    stacked = xp.reshape(_permute(xp, dz, (1, 0, 2)), (count, B * fan_out))
    product = xp.matmul(_transpose(xp, a), stacked)
    return _permute(xp, xp.reshape(product, (a.shape[1], B, fan_out)), (1, 0, 2))


def _full(xp: Any, shape: tuple[int, ...], value: float, like: Any) -> Any:
    """An array of ``value`` with the dtype and device of ``like``."""
    if xp is np:
        return np.full(shape, value, dtype=like.dtype)
    return xp.full(shape, value, dtype=like.dtype, device=device_of(like))


def _astype(xp: Any, a: Any, dtype: Any) -> Any:
    return a.astype(dtype) if xp is np else xp.astype(a, dtype)


def _concat(xp: Any, arrays: list, axis: int) -> Any:
    concat = getattr(xp, "concat", None) or xp.concatenate
    return concat(arrays, axis=axis)


class Model:
    """A dense network with a loss and a hand-written backward pass, batched over runs.

    Build one with :func:`linear_regression`, :func:`logistic_regression` or :func:`mlp`.

    Attributes
    ----------
    name : str
        ``"linear_regression"``, ``"logistic_regression"``, ``"softmax_regression"`` or
        ``"mlp"``.
    sizes : tuple of int
        Widths of the layers, inputs first: ``(n_features, hidden..., n_outputs)``.
    loss_kind : {"squared", "logistic", "softmax"}
        Squared error ``(y_hat - y)^2 / 2``, binary cross-entropy on one logit, or softmax
        cross-entropy; each averaged over the examples of a minibatch.
    activation : Activation or None
        Of the hidden layers (None without hidden layers).
    l2 : float or array of shape (B,)
        The objective adds ``l2 * |W|^2 / 2`` over every weight matrix (not the biases).
    dropout : float
        Probability of dropping a hidden unit during training (inverted dropout: kept units
        are divided by ``1 - dropout``); applied only when ``loss_and_grad`` gets an ``rng``.
    n_params : int
        Length P of the flat parameter vector.
    layout : tuple of (name, offset, shape)
        Where each weight matrix and bias lies in the flat vector.
    """

    def __init__(
        self,
        name: str,
        sizes: Sequence[int],
        *,
        loss: str,
        activation_name: Any = None,
        l2: Any = 0.0,
        dropout: float = 0.0,
        init_std: Any = None,
    ) -> None:
        self.name = name
        self.sizes = tuple(int(s) for s in sizes)
        self.loss_kind = check_choice("loss", loss, LOSSES)
        self.activation = None if len(self.sizes) == 2 else activation(activation_name)
        self.l2 = _check_l2(l2)
        self.dropout = check_real("dropout", dropout, low=0.0, high=1.0, high_open=True)
        self.init_std = init_std
        layout = []
        offset = 0
        widths = zip(self.sizes[:-1], self.sizes[1:], strict=True)
        for index, (fan_in, fan_out) in enumerate(widths, 1):
            layout.append((f"W{index}", offset, (fan_in, fan_out)))
            offset += fan_in * fan_out
            layout.append((f"b{index}", offset, (fan_out,)))
            offset += fan_out
        self.layout = tuple(layout)
        self.n_params = offset

    # ---- description

    @property
    def n_features(self) -> int:
        """Number of input features."""
        return self.sizes[0]

    @property
    def n_outputs(self) -> int:
        """Width of the last layer."""
        return self.sizes[-1]

    @property
    def n_classes(self) -> int | None:
        """Number of classes of a classifier, None for regression."""
        if self.loss_kind == "squared":
            return None
        return 2 if self.loss_kind == "logistic" else self.sizes[-1]

    def __repr__(self) -> str:
        extra = []
        if self.name == "mlp":
            extra.append(f"activation={self.activation.name!r}")
            extra.append(f"loss={self.loss_kind!r}")
        if not (isinstance(self.l2, float) and self.l2 == 0.0):
            shown = self.l2 if isinstance(self.l2, float) else f"<array {self.l2.shape}>"
            extra.append(f"l2={shown}")
        if self.dropout:
            extra.append(f"dropout={self.dropout}")
        head = {
            "linear_regression": f"{self.sizes[0]}",
            "logistic_regression": f"{self.sizes[0]}, 2",
            "softmax_regression": f"{self.sizes[0]}, {self.sizes[-1]}",
            "mlp": f"{self.sizes}",
        }[self.name]
        shown_name = "logistic_regression" if self.name == "softmax_regression" else self.name
        return f"models.{shown_name}({', '.join([head, *extra])})"

    # ---- parameters

    def _std(self, layer: int) -> float:
        if self.init_std is not None:
            return float(self.init_std)
        if len(self.sizes) == 2:
            return 0.01  # the book's initialisation of linear and softmax regression
        fan_in = self.sizes[layer]
        gain = 2.0 if self.activation.name in ("relu", "leaky_relu", "elu") else 1.0
        is_last = layer == len(self.sizes) - 2
        return float(np.sqrt((1.0 if is_last else gain) / fan_in))

    def init(
        self,
        seed_or_rng: Any = 0,
        batch: int | None = None,
        *,
        xp: Any = None,
        dtype: Any = None,
        device: Any = None,
    ) -> Any:
        """Initial parameters of shape (B, P): normal weights, zero biases.

        Weights have standard deviation ``init_std`` (by default 0.01 for models without a
        hidden layer, as the book initialises linear regression; ``sqrt(2 / fan_in)`` for
        hidden layers of ReLU-type networks and ``sqrt(1 / fan_in)`` otherwise).

        Parameters
        ----------
        seed_or_rng : int, sequence of int, or numpy.random.Generator
            An int gives ``batch`` independent draws from that seed's stream (row 0 equals
            ``init([seed])``); a sequence gives one row per seed, row i depending on
            ``seeds[i]`` only; a Generator is drawn from directly.
        batch : int, optional
            Number of runs B (default 1, or the number of seeds).
        xp, dtype, device : optional
            Namespace, floating dtype (float64 by default) and device of the result.

        Returns
        -------
        array of shape (B, P)
        """
        namespace = resolve_namespace(xp)
        float_dtype = resolve_dtype(dtype, namespace)
        if isinstance(seed_or_rng, np.random.Generator):
            B = 1 if batch is None else check_int("batch", batch, minimum=1)
            draws = seed_or_rng.standard_normal((B, self.n_params))
        elif isinstance(seed_or_rng, numbers.Integral) and not isinstance(seed_or_rng, bool):
            B = 1 if batch is None else check_int("batch", batch, minimum=1)
            draws = counter_normal([seed_or_rng], 0, B * self.n_params).reshape(B, self.n_params)
        else:
            seeds = _seed_array(seed_or_rng)
            if batch is not None and batch != seeds.shape[0]:
                raise invalid("batch", batch, f"None or {seeds.shape[0]}, the number of seeds")
            draws = counter_normal(seeds, 0, self.n_params)
        scale = np.zeros(self.n_params)
        for index, (name, offset, shape) in enumerate(self.layout):
            if name.startswith("W"):
                scale[offset : offset + int(np.prod(shape))] = self._std(index // 2)
        return asarray(draws * scale, namespace, dtype=float_dtype, device=device)

    def unflatten(self, params: Any) -> list[tuple[Any, Any]]:
        """Views of ``params`` (B, P) as ``[(W1, b1), (W2, b2), ...]`` with ``W`` of shape
        (B, in, out) and ``b`` of shape (B, out)."""
        self._check_params(params)
        xp = _xp(params)
        B = params.shape[0]
        layers = []
        pairs = zip(self.layout[::2], self.layout[1::2], strict=True)
        for (_, w_at, w_shape), (_, b_at, b_shape) in pairs:
            size = w_shape[0] * w_shape[1]
            W = xp.reshape(params[:, w_at : w_at + size], (B, *w_shape))
            layers.append((W, params[:, b_at : b_at + b_shape[0]]))
        return layers

    def flatten(self, layers: Sequence[tuple[Any, Any]]) -> Any:
        """The inverse of :meth:`unflatten`: ``[(W, b), ...]`` to one array (B, P)."""
        if len(layers) != len(self.sizes) - 1:
            raise invalid("layers", f"{len(layers)} layers", f"{len(self.sizes) - 1} (W, b) pairs")
        xp = array_namespace(layers[0][0])
        B = layers[0][0].shape[0]
        parts = []
        for W, b in layers:
            parts += [xp.reshape(W, (B, -1)), b]
        return _concat(xp, parts, 1)

    # ---- checks

    def _check_params(self, params: Any) -> None:
        shape = tuple(getattr(params, "shape", ()))
        if len(shape) != 2 or shape[1] != self.n_params:
            raise invalid(
                "params", f"array of shape {shape}", f"shape (B, {self.n_params}) for {self!r}"
            )

    def _inputs(self, params: Any, X: Any, y: Any) -> tuple[Any, Any, Any]:
        self._check_params(params)
        xp = _xp(params)
        B = params.shape[0]
        shape = tuple(getattr(X, "shape", ()))
        if (
            len(shape) not in (2, 3)
            or shape[-1] != self.n_features
            or (len(shape) == 3 and shape[0] != B)
        ):
            raise invalid(
                "X",
                f"array of shape {shape}",
                f"shape (b, {self.n_features}) or ({B}, b, {self.n_features})",
            )
        if X.dtype != params.dtype:
            X = _astype(xp, X, params.dtype)
        if y is not None:
            y_shape = tuple(getattr(y, "shape", ()))
            if y_shape not in (shape[:-1], (shape[-2],), (B, shape[-2])):
                raise invalid(
                    "y", f"array of shape {y_shape}", f"shape ({shape[-2]},) or ({B}, {shape[-2]})"
                )
            if self.loss_kind != "softmax" and y.dtype != params.dtype:
                y = _astype(xp, y, params.dtype)
        return xp, X, y

    # ---- forward and backward

    def _forward(
        self, params: Any, layers: list, X: Any, c: Callable, rng: Any
    ) -> tuple[Any, list]:
        """The output logits and what the backward pass needs."""
        xp = _xp(params)
        drop = self.dropout > 0 and rng is not None
        if drop:
            rng = _as_random(rng, params)
        a = X
        cache = []
        for index, (W, b) in enumerate(layers):
            z = c(c(_forward_product(xp, a, W)) + b[:, None, :])
            if index == len(layers) - 1:
                cache.append((a, None, None))
                return z, cache
            h = c(self.activation.function(z))
            mask = None
            if drop:
                keep = rng.uniform(tuple(h.shape)) >= self.dropout
                mask = _astype(xp, keep, h.dtype) * (1.0 / (1.0 - self.dropout))
                h = c(h * mask)
            cache.append((a, z, mask))
            a = h
        raise AssertionError("unreachable")

    def _penalty(self, params: Any, c: Callable) -> Any:
        xp = _xp(params)
        total = None
        for W, _ in self.unflatten(params):
            term = c(xp.sum(c(W * W), axis=(1, 2)))
            total = term if total is None else c(total + term)
        return c(total * _per_run(self.l2 * 0.5, params, 0))

    def penalty(self, params: Any, *, cast: Callable | None = None) -> Any:
        """The L2 penalty ``l2 * sum |W|^2 / 2`` per run, shape (B,) (zeros when l2 is 0)."""
        self._check_params(params)
        if not self._has_penalty():
            xp = array_namespace(params)
            return _full(xp, (params.shape[0],), 0.0, params)
        return self._penalty(params, cast or _identity)

    def _has_penalty(self) -> bool:
        return not (isinstance(self.l2, float) and self.l2 == 0.0)

    def _head(self, z: Any, y: Any, c: Callable, seed: Any) -> tuple[Any, Any]:
        """Mean loss per run (B,) and, with ``seed`` (B,), d loss/d z times the seed."""
        xp = _xp(z)
        count = z.shape[-2]
        if self.loss_kind == "squared":
            r = c(z[..., 0] - y)
            loss = c(xp.sum(c(r * r), axis=-1) * (0.5 / count))
            if seed is None:
                return loss, None
            return loss, c(r * c(seed / count)[:, None])[..., None]
        if self.loss_kind == "logistic":
            u = z[..., 0]
            e = c(xp.exp(c(-c(xp.abs(u)))))  # exp(-|u|), never overflows
            softplus = c(c(xp.maximum(u, 0.0)) + c(xp.log1p(e)))
            loss = c(xp.sum(c(softplus - c(y * u)), axis=-1) * (1.0 / count))
            if seed is None:
                return loss, None
            denominator = c(1.0 + e)
            sigmoid = xp.where(u >= 0, c(1.0 / denominator), c(e / denominator))
            return loss, c(c(sigmoid - y) * c(seed / count)[:, None])[..., None]
        classes = z.shape[-1]
        shifted = c(z - xp.max(z, axis=-1, keepdims=True))
        e = c(xp.exp(shifted))
        total = c(xp.sum(e, axis=-1))
        classes_range = np.arange(classes) if xp is np else xp.arange(classes, device=device_of(z))
        onehot = _astype(xp, y[..., None] == classes_range, z.dtype)
        picked = xp.sum(shifted * onehot, axis=-1)
        loss = c(xp.sum(c(c(xp.log(total)) - picked), axis=-1) * (1.0 / count))
        if seed is None:
            return loss, None
        p = c(e / total[..., None])
        return loss, c(c(p - onehot) * c(seed / count)[:, None, None])

    def loss(self, params: Any, X: Any, y: Any, *, cast: Callable | None = None) -> Any:
        """The objective per run: mean loss over the examples plus the L2 penalty.

        Parameters
        ----------
        params : array of shape (B, P)
        X : array of shape (b, f) or (B, b, f)
        y : array of shape (b,) or (B, b)
        cast : callable, optional
            Applied to the result of every arithmetic operation (see the module docstring).

        Returns
        -------
        array of shape (B,)
        """
        c = cast or _identity
        xp, X, y = self._inputs(params, X, y)
        z, _ = self._forward(params, self.unflatten(params), X, c, None)
        loss, _ = self._head(z, y, c, None)
        if self._has_penalty():
            loss = c(loss + self._penalty(params, c))
        return loss

    def loss_and_grad(
        self,
        params: Any,
        X: Any,
        y: Any,
        *,
        cast: Callable | None = None,
        loss_scale: Any = None,
        rng: Any = None,
    ) -> tuple[Any, Any]:
        """The objective per run and its gradient, by a hand-written backward pass.

        Parameters
        ----------
        params : array of shape (B, P)
        X : array of shape (b, f) (shared by all runs) or (B, b, f) (one minibatch per run)
        y : array of shape (b,) or (B, b)
            Targets, or int class labels for classifiers.
        cast : callable, optional
            Applied to the result of every arithmetic operation, forward and backward.
        loss_scale : float or array of shape (B,), optional
            Multiplies the seed of the backward pass: the gradient returned is
            ``loss_scale * d loss / d params`` (the loss returned is not scaled).
        rng : numpy.random.Generator, convexkit.backend.Random or int, optional
            Source of the dropout masks (independent for every run and example). Without it
            no unit is dropped (evaluation mode).

        Returns
        -------
        loss : array of shape (B,)
        grad : array of shape (B, P)
        """
        c = cast or _identity
        xp, X, y = self._inputs(params, X, y)
        B = params.shape[0]
        seed = _full(xp, (B,), 1.0, params)
        if loss_scale is not None:
            # the loss and its scale stay in FP32 (as in PyTorch); only what the scaled seed
            # flows into is rounded, so a scale above the format's maximum is not lost
            seed = seed * _per_run(loss_scale, params, 0)
        layers = self.unflatten(params)
        z, cache = self._forward(params, layers, X, c, rng)
        loss, dz = self._head(z, y, c, seed)
        grads: list[Any] = [None] * (2 * len(layers))
        for index in range(len(layers) - 1, -1, -1):
            a, _, _ = cache[index]
            W, _ = layers[index]
            dW = c(_weight_product(xp, a, dz))
            grads[2 * index] = xp.reshape(dW, (B, -1))
            grads[2 * index + 1] = c(xp.sum(dz, axis=-2))
            if self._has_penalty():
                decay = c(seed * _per_run(self.l2, params, 0))
                grads[2 * index] = c(grads[2 * index] + c(xp.reshape(W, (B, -1)) * decay[:, None]))
            if index > 0:
                _, z_prev, mask = cache[index - 1]
                dh = c(xp.matmul(dz, _transpose(xp, W)))
                if mask is not None:
                    dh = c(dh * mask)
                dz = c(dh * c(self.activation.gradient(z_prev)))
        if self._has_penalty():
            loss = c(loss + self._penalty(params, c))
        return loss, _concat(xp, grads, 1)

    # ---- predictions

    def predict(self, params: Any, X: Any) -> Any:
        """Predictions per run: values (B, b) for regression, class labels (B, b) otherwise."""
        xp, X, _ = self._inputs(params, X, None)
        z, _ = self._forward(params, self.unflatten(params), X, _identity, None)
        if self.loss_kind == "squared":
            return z[..., 0]
        if self.loss_kind == "logistic":
            return _astype(xp, z[..., 0] > 0, xp.int64)
        return xp.argmax(z, axis=-1)

    def accuracy(self, params: Any, X: Any, y: Any) -> Any:
        """Fraction of correctly classified examples per run, shape (B,)."""
        if self.loss_kind == "squared":
            raise invalid("model", self, "a classifier (accuracy needs class labels)")
        xp = array_namespace(params)
        right = _astype(xp, self.predict(params, X) == y, params.dtype)
        return xp.mean(right, axis=-1)


def _check_l2(l2: Any) -> Any:
    if isinstance(l2, numbers.Real) and not isinstance(l2, bool):
        return check_real("l2", l2, low=0.0)
    values = np.asarray(l2, dtype=float)
    if values.ndim != 1 or not np.all(np.isfinite(values)) or np.any(values < 0):
        raise invalid("l2", l2, "a non-negative number or a 1-D array of them (one per run)")
    return values


def _per_run(value: Any, like: Any, extra_axes: int) -> Any:
    """A scalar, or an array over the runs moved to ``like``'s namespace (shape (B,) plus
    ``extra_axes`` unit axes)."""
    if isinstance(value, numbers.Real):
        return float(value)
    xp = array_namespace(like)
    array = asarray(value, xp, dtype=like.dtype, device=device_of(like))
    if array.ndim == 0:
        return array
    if array.shape[0] not in (1, like.shape[0]):
        raise invalid(
            "loss_scale or l2",
            f"array of shape {tuple(array.shape)}",
            f"a number or shape ({like.shape[0]},), one per run",
        )
    return xp.reshape(array, (array.shape[0],) + (1,) * extra_axes)


def _as_random(rng: Any, like: Any) -> Random:
    if isinstance(rng, Random):
        return rng
    if isinstance(rng, np.random.Generator) or (
        isinstance(rng, numbers.Integral) and not isinstance(rng, bool)
    ):
        return Random(rng, xp=array_namespace(like), device=device_of(like), dtype=like.dtype)
    raise invalid("rng", rng, "None, an int seed, a numpy.random.Generator or a backend.Random")


# --------------------------------------------------------------------------------------------
# constructors


def _sizes_ok(name: str, value: Any, minimum: int = 1) -> int:
    return check_int(name, value, minimum=minimum)


def linear_regression(n_features: int, *, l2: Any = 0.0, init_std: float = 0.01) -> Model:
    """Linear regression ``y_hat = X w + b`` with loss ``(y_hat - y)^2 / 2`` averaged over the
    examples (the book's ``squared_loss``).

    Parameters
    ----------
    n_features : int
        Number of inputs f; the flat parameters are ``[w (f), b]``, P = f + 1.
    l2 : float or array of shape (B,)
        Adds ``l2 * |w|^2 / 2`` to the objective.
    init_std : float
        Standard deviation of the initial weights (0.01 in the book; the bias starts at 0).

    Returns
    -------
    Model
    """
    _sizes_ok("n_features", n_features)
    check_real("init_std", init_std, low=0.0)
    return Model("linear_regression", (n_features, 1), loss="squared", l2=l2, init_std=init_std)


def logistic_regression(
    n_features: int, n_classes: int = 2, *, l2: Any = 0.0, init_std: float = 0.01
) -> Model:
    """Logistic regression (2 classes: one logit, binary cross-entropy) or softmax regression
    (more classes: one logit per class, softmax cross-entropy), averaged over the examples.

    Parameters
    ----------
    n_features : int
        Number of inputs f.
    n_classes : int
        Number of classes K >= 2. Parameters are ``[w (f), b]`` for K = 2 and
        ``[W (f x K, row-major), b (K)]`` otherwise.
    l2 : float or array of shape (B,)
        Adds ``l2 * |W|^2 / 2`` to the objective.
    init_std : float
        Standard deviation of the initial weights (biases start at 0).

    Returns
    -------
    Model
        Labels ``y`` are integers 0 .. K-1.
    """
    _sizes_ok("n_features", n_features)
    _sizes_ok("n_classes", n_classes, 2)
    check_real("init_std", init_std, low=0.0)
    if n_classes == 2:
        return Model(
            "logistic_regression", (n_features, 1), loss="logistic", l2=l2, init_std=init_std
        )
    return Model(
        "softmax_regression", (n_features, n_classes), loss="softmax", l2=l2, init_std=init_std
    )


def mlp(
    sizes: Sequence[int],
    activation: Any = "relu",
    *,
    loss: str | None = None,
    l2: Any = 0.0,
    dropout: float = 0.0,
    init_std: float | None = None,
) -> Model:
    """A multilayer perceptron whose activation derivative is derived with SymPy.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths, inputs first: ``(n_features, hidden_1, ..., n_outputs)``, at least 3
        entries.
    activation : str or sympy.Expr
        One of :data:`ACTIVATIONS` or a SymPy expression in one symbol; its derivative is
        ``sympy.diff`` of it, turned into array code.
    loss : {"squared", "logistic", "softmax"}, optional
        Default: squared error for one output, softmax cross-entropy for more.
        ``"logistic"`` needs one output.
    l2 : float or array of shape (B,)
        Adds ``l2 * sum |W|^2 / 2`` over every weight matrix.
    dropout : float
        Dropout probability of the hidden units, in [0, 1).
    init_std : float, optional
        Standard deviation of every initial weight; default He (``sqrt(2 / fan_in)``) for
        ReLU-type activations and ``sqrt(1 / fan_in)`` otherwise and for the last layer.

    Returns
    -------
    Model
    """
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence) or len(sizes) < 3:
        raise invalid(
            "sizes", sizes, "a sequence of at least 3 layer widths (inputs, hidden..., outputs)"
        )
    for width in sizes:
        _sizes_ok("sizes", width)
    if loss is None:
        loss = "squared" if sizes[-1] == 1 else "softmax"
    check_choice("loss", loss, LOSSES)
    if loss in ("squared", "logistic") and sizes[-1] != 1:
        raise invalid("sizes", sizes, f"one output for loss={loss!r}")
    if loss == "softmax" and sizes[-1] < 2:
        raise invalid("sizes", sizes, "at least 2 outputs for loss='softmax'")
    if init_std is not None:
        check_real("init_std", init_std, low=0.0)
    return Model(
        "mlp",
        sizes,
        loss=loss,
        activation_name=activation,
        l2=l2,
        dropout=dropout,
        init_std=init_std,
    )
