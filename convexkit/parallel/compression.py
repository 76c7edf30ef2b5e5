"""Gradient compressors for data-parallel training, with error feedback.

A compressor maps each gradient vector (the last axis of an array such as (B, K, d): B runs,
K workers, d parameters) to what the receiver decodes, and says how many bits went on the
wire. Every compressor is written against the array namespace, so it runs on NumPy, CuPy and
array-api-strict; where NumPy offers a much faster selection (top-k), a fused kernel is used
and the generic path stays as the reference.

The compressors and what is proven of each (C(v) is the decoded message, d the length of v):

* ``qsgd(s)``: ||v|| sign(v_i) xi_i, with xi_i the stochastic rounding of s|v_i|/||v|| to the
  levels 0, 1/s, ..., 1. Unbiased; E||C(v) - v||^2 <= min(d/s^2, sqrt(d)/s) ||v||^2.
* ``terngrad``: max|v| sign(v_i) b_i with b_i ~ Bernoulli(|v_i| / max|v|). Unbiased;
  E||C(v) - v||^2 = max|v| ||v||_1 - ||v||^2.
* ``sign``: (||v||_1 / d) sign(v). Biased; ||C(v) - v||^2 = ||v||^2 - ||v||_1^2 / d for a
  vector without zeros.
* ``topk(k)``: the k entries of largest magnitude, the others 0. Biased;
  ||C(v) - v||^2 <= (1 - k/d) ||v||^2.
* ``randk(k)``: k uniformly chosen entries times d/k, the others 0. Unbiased;
  E||C(v) - v||^2 = (d/k - 1) ||v||^2.
* ``cast(fmt)``: v rounded to float16 or bfloat16. Each entry's relative error is at most 2^-p.

Error feedback (Seide et al. 2014; Karimireddy et al. 2019) keeps what compression dropped
and adds it to the next gradient: ``a = g + e; m = C(a); e = a - m``; the receiver gets m.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..backend import Random, array_namespace
from ..errors import check_choice, check_int, invalid

__all__ = [
    "Compressor",
    "cast",
    "compress_with_feedback",
    "identity",
    "qsgd",
    "randk",
    "sign",
    "terngrad",
    "topk",
]


@dataclass(frozen=True)
class Compressor:
    """A gradient compressor.

    Attributes
    ----------
    name : str
        "identity", "qsgd", "terngrad", "sign", "topk", "randk" or "cast".
    unbiased : bool
        Whether E[C(v)] = v.
    params : dict
        Its parameters (levels, k, format).
    value_bits : int
        Bits of one transmitted real number (32 for float32 messages).
    """

    name: str
    unbiased: bool
    params: dict[str, Any] = field(default_factory=dict)
    value_bits: int = 32

    def __call__(self, v: Any, rng: Random | None = None) -> Any:
        """Decoded message C(v), computed along the last axis of ``v``."""
        return _APPLY[self.name](self, v, rng)

    def bits(self, d: int) -> int:
        """Bits on the wire for one message of a d-dimensional vector (fixed-width encoding)."""
        return _BITS[self.name](self, check_int("d", d, minimum=1))

    def variance_bound(self, v: Any) -> Any:
        """Proven bound on E||C(v) - v||^2 along the last axis (for deterministic compressors,
        the exact or bounded squared error); shape of ``v`` without its last axis."""
        return _BOUND[self.name](self, v)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"parallel.{self.name}({shown})"


def _sumsq(xp: Any, v: Any) -> Any:
    return xp.sum(v * v, axis=-1)


def _norm(xp: Any, v: Any) -> Any:
    return xp.sqrt(_sumsq(xp, v))


def _uniform(rng: Random | None, v: Any, name: str) -> Any:
    if rng is None:
        raise invalid("rng", rng, f"a convexkit.backend.Random: {name} draws random numbers")
    return rng.uniform(tuple(v.shape))


# ---- identity ---------------------------------------------------------------------------------


def identity(value_bits: int = 32) -> Compressor:
    """No compression: the message is the gradient, d numbers of ``value_bits`` bits."""
    return Compressor("identity", True, {}, check_int("value_bits", value_bits, minimum=1))


def _apply_identity(c: Compressor, v: Any, rng: Random | None) -> Any:
    return v


# ---- QSGD -------------------------------------------------------------------------------------


def qsgd(levels: int, value_bits: int = 32) -> Compressor:
    """QSGD with ``levels`` = s quantization levels (Alistarh et al. 2017).

    C(v)_i = ||v|| sign(v_i) xi_i where, with r = s|v_i|/||v|| and l = floor(r), xi_i = (l+1)/s
    with probability r - l and l/s otherwise. Unbiased, with
    E||C(v) - v||^2 <= min(d/s^2, sqrt(d)/s) ||v||^2. Encoding: the norm, then a sign bit and
    ceil(log2(s+1)) bits of level per entry.
    """
    s = check_int("levels", levels, minimum=1)
    return Compressor("qsgd", True, {"levels": s}, check_int("value_bits", value_bits, minimum=1))


def _apply_qsgd(c: Compressor, v: Any, rng: Random | None) -> Any:
    xp = array_namespace(v)
    s = c.params["levels"]
    norm = _norm(xp, v)[..., None]
    safe = xp.where(norm > 0, norm, xp.ones_like(norm))
    scaled = xp.abs(v) / safe * s
    low = xp.floor(scaled)
    up = _uniform(rng, v, "qsgd") < (scaled - low)
    level = (low + xp.astype(up, v.dtype)) / s
    return xp.where(norm > 0, norm * xp.sign(v) * level, xp.zeros_like(v))


def _bound_qsgd(c: Compressor, v: Any) -> Any:
    xp = array_namespace(v)
    d, s = v.shape[-1], c.params["levels"]
    return min(d / s**2, math.sqrt(d) / s) * _sumsq(xp, v)


def _bits_qsgd(c: Compressor, d: int) -> int:
    return c.value_bits + d * (1 + math.ceil(math.log2(c.params["levels"] + 1)))


# ---- TernGrad ---------------------------------------------------------------------------------


def terngrad(value_bits: int = 32) -> Compressor:
    """TernGrad (Wen et al. 2017): C(v)_i = max|v| sign(v_i) b_i, b_i ~ Bernoulli(|v_i|/max|v|).

    Unbiased, with E||C(v) - v||^2 = max|v| ||v||_1 - ||v||^2 exactly. Encoding: the scale and
    2 bits per entry.
    """
    return Compressor("terngrad", True, {}, check_int("value_bits", value_bits, minimum=1))


def _apply_terngrad(c: Compressor, v: Any, rng: Random | None) -> Any:
    xp = array_namespace(v)
    scale = xp.max(xp.abs(v), axis=-1, keepdims=True)
    safe = xp.where(scale > 0, scale, xp.ones_like(scale))
    keep = _uniform(rng, v, "terngrad") < xp.abs(v) / safe
    return xp.where(keep, scale * xp.sign(v), xp.zeros_like(v))


def _bound_terngrad(c: Compressor, v: Any) -> Any:
    xp = array_namespace(v)
    a = xp.abs(v)
    return xp.max(a, axis=-1) * xp.sum(a, axis=-1) - _sumsq(xp, v)


def _bits_terngrad(c: Compressor, d: int) -> int:
    return c.value_bits + 2 * d


# ---- scaled sign ------------------------------------------------------------------------------


def sign(value_bits: int = 32) -> Compressor:
    """Scaled sign (Bernstein et al. 2018; Karimireddy et al. 2019): C(v) = (||v||_1/d) sign(v).

    Biased; deterministic error ||C(v) - v||^2 = ||v||^2 - (2 - nnz(v)/d) ||v||_1^2 / d, which
    for a vector without zeros is ||v||^2 - ||v||_1^2 / d: a contraction by the factor
    1 - ||v||_1^2 / (d ||v||^2). Encoding: the scale and one bit per entry.
    """
    return Compressor("sign", False, {}, check_int("value_bits", value_bits, minimum=1))


def _apply_sign(c: Compressor, v: Any, rng: Random | None) -> Any:
    xp = array_namespace(v)
    scale = xp.mean(xp.abs(v), axis=-1, keepdims=True)
    return scale * xp.sign(v)


def _bound_sign(c: Compressor, v: Any) -> Any:
    xp = array_namespace(v)
    d = v.shape[-1]
    l1 = xp.sum(xp.abs(v), axis=-1)
    nonzero = xp.sum(xp.astype(v != 0, v.dtype), axis=-1)
    # sign(0) = 0: zero entries receive nothing, so they add no error of their own
    return _sumsq(xp, v) - (2.0 - nonzero / d) * l1 * l1 / d


def _bits_sign(c: Compressor, d: int) -> int:
    return c.value_bits + d


# ---- top-k and random-k -----------------------------------------------------------------------


def topk(k: int, value_bits: int = 32) -> Compressor:
    """Top-k sparsification: the k entries of largest magnitude are sent (ties: lowest index).

    Biased; ||C(v) - v||^2 <= (1 - k/d) ||v||^2. Encoding: k values and k indices of
    ceil(log2 d) bits.
    """
    return Compressor(
        "topk",
        False,
        {"k": check_int("k", k, minimum=1)},
        check_int("value_bits", value_bits, minimum=1),
    )


def _rank_mask(xp: Any, keys: Any, k: int) -> Any:
    """True at the k largest keys of each row (ties broken by the lower index)."""
    order = xp.argsort(-keys, axis=-1, stable=True)
    ranks = xp.argsort(order, axis=-1, stable=True)
    return ranks < k


def _check_k(c: Compressor, v: Any) -> int:
    k, d = c.params["k"], v.shape[-1]
    if k > d:
        raise invalid("k", k, f"at most the vector length d = {d}")
    return k


def _apply_topk(c: Compressor, v: Any, rng: Random | None) -> Any:
    k = _check_k(c, v)
    xp = array_namespace(v)
    from ..kernels.selection import topk_numpy

    fast = topk_numpy(v, k)
    if fast is not None:
        return fast
    return xp.where(_rank_mask(xp, xp.abs(v), k), v, xp.zeros_like(v))


def _bound_topk(c: Compressor, v: Any) -> Any:
    xp = array_namespace(v)
    return (1.0 - c.params["k"] / v.shape[-1]) * _sumsq(xp, v)


def _bits_topk(c: Compressor, d: int) -> int:
    k = min(c.params["k"], d)
    return k * (c.value_bits + max(1, math.ceil(math.log2(d))))


def randk(k: int, value_bits: int = 32) -> Compressor:
    """Random-k sparsification: k coordinates drawn uniformly without replacement, scaled by d/k.

    Unbiased, with E||C(v) - v||^2 = (d/k - 1) ||v||^2 exactly. Encoding: k values and the
    64-bit seed from which the receiver regenerates the coordinates.
    """
    return Compressor(
        "randk",
        True,
        {"k": check_int("k", k, minimum=1)},
        check_int("value_bits", value_bits, minimum=1),
    )


def _apply_randk(c: Compressor, v: Any, rng: Random | None) -> Any:
    k = _check_k(c, v)
    xp = array_namespace(v)
    keys = _uniform(rng, v, "randk")
    d = v.shape[-1]
    return xp.where(_rank_mask(xp, keys, k), v * (d / k), xp.zeros_like(v))


def _bound_randk(c: Compressor, v: Any) -> Any:
    xp = array_namespace(v)
    return (v.shape[-1] / c.params["k"] - 1.0) * _sumsq(xp, v)


def _bits_randk(c: Compressor, d: int) -> int:
    return min(c.params["k"], d) * c.value_bits + 64


# ---- low-precision cast -----------------------------------------------------------------------

_FORMAT_BITS = {"float16": 16, "bfloat16": 16, "float32": 32}
_FORMAT_PRECISION = {"float16": 11, "bfloat16": 8, "float32": 24}


def cast(precision: str = "float16") -> Compressor:
    """Send the gradient rounded to a low-precision format (round to nearest even).

    Deterministic and biased only by rounding: each entry's relative error is at most
    2^-p (p = 11 for float16, 8 for bfloat16), away from underflow and overflow.
    """
    check_choice("precision", precision, tuple(_FORMAT_BITS))
    return Compressor("cast", False, {"precision": precision}, _FORMAT_BITS[precision])


def _apply_cast(c: Compressor, v: Any, rng: Random | None) -> Any:
    from ..precision import cast_function

    return cast_function(c.params["precision"], array_namespace(v))(v)


def _bound_cast(c: Compressor, v: Any) -> Any:
    xp = array_namespace(v)
    return 2.0 ** (-2 * _FORMAT_PRECISION[c.params["precision"]]) * _sumsq(xp, v)


def _bits_cast(c: Compressor, d: int) -> int:
    return c.value_bits * d


_APPLY = {
    "identity": _apply_identity,
    "qsgd": _apply_qsgd,
    "terngrad": _apply_terngrad,
    "sign": _apply_sign,
    "topk": _apply_topk,
    "randk": _apply_randk,
    "cast": _apply_cast,
}
_BITS = {
    "identity": lambda c, d: c.value_bits * d,
    "qsgd": _bits_qsgd,
    "terngrad": _bits_terngrad,
    "sign": _bits_sign,
    "topk": _bits_topk,
    "randk": _bits_randk,
    "cast": _bits_cast,
}
_BOUND = {
    "identity": lambda c, v: array_namespace(v).zeros(v.shape[:-1], dtype=v.dtype),
    "qsgd": _bound_qsgd,
    "terngrad": _bound_terngrad,
    "sign": _bound_sign,
    "topk": _bound_topk,
    "randk": _bound_randk,
    "cast": _bound_cast,
}


def compress_with_feedback(
    compressor: Compressor, gradient: Any, error: Any, rng: Random | None = None
) -> tuple[Any, Any]:
    """One step of error feedback: ``a = g + e; m = C(a); e' = a - m``.

    Parameters
    ----------
    compressor : Compressor
        The compressor C.
    gradient, error : array
        The fresh gradient and the carried error, of the same shape (..., d).
    rng : Random, optional
        Needed by the stochastic compressors.

    Returns
    -------
    (message, new_error)
    """
    if gradient.shape != error.shape:
        raise invalid(
            "error",
            f"<array {tuple(error.shape)}>",
            f"an array of the gradient's shape {tuple(gradient.shape)}",
        )
    from ..kernels.selection import topk_feedback_numpy

    if compressor.name == "topk":
        fused = topk_feedback_numpy(gradient, error, _check_k(compressor, gradient))
        if fused is not None:
            return fused
    corrected = gradient + error
    message = compressor(corrected, rng)
    return message, corrected - message
