"""Mixed precision: low-precision arithmetic emulated exactly, loss scaling, master weights.

The seeds' recipe: the forward pass in FP16, the loss multiplied by a scale (e.g. 256) so that
small gradients do not underflow, FP16 gradients, and FP32 master weights updated with the
gradients unscaled in FP32. This module provides each piece, batched over models (batch axis
first), and the statistics that explain what the low precision does.

* :func:`cast_function` rounds arrays to float16, bfloat16 or float32: round to nearest, ties
  to even, float16 subnormals, overflow to ±inf, NaN preserved. On NumPy the result stays in
  float32 storage (an emulation: each operation is computed in float32 and its result rounded,
  which is what the low format gives for a single operation); on CuPy float16 is native.
  The rounding equals ``x.astype(numpy.float16)`` and ``x.astype(ml_dtypes.bfloat16)`` bit for
  bit, at the speed of one float32 multiply when numba is installed.
* :class:`StaticLossScaler` and :class:`DynamicLossScaler` (PyTorch GradScaler's semantics,
  vectorized over models, with bounds and counters so that the scale never collapses to zero
  or grows to infinity silently).
* :func:`predicted_gradient_fractions` and :func:`measured_gradient_fractions`: which gradient
  entries underflow to zero, become subnormal or overflow, predicted from the FP32 gradients
  and the format's thresholds, and measured on the low-precision gradients.
  :func:`lost_updates` predicts which weight updates are lost to rounding when the weights
  are kept in the low format (an update below half a unit in the last place of its weight).
* :class:`Policy` puts them together for the trainer: ``gradients`` (cast, scale, compute,
  detect inf/NaN per model, unscale in FP32) and ``apply`` (skip, update, round, record).
"""

from __future__ import annotations

import copy
import functools
import math
import numbers
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import array_api_compat
import numpy as np

from .backend import array_namespace, device_of, namespace_name, resolve_namespace, to_numpy
from .errors import check_choice, check_int, check_real, invalid

__all__ = [
    "ENGINES",
    "PRECISIONS",
    "DynamicLossScaler",
    "Format",
    "LossScaleWarning",
    "Policy",
    "StaticLossScaler",
    "cast_function",
    "format_info",
    "lost_updates",
    "measured_gradient_fractions",
    "predicted_gradient_fractions",
    "round_to",
    "spacing",
]

PRECISIONS = ("float64", "float32", "float16", "bfloat16")
ENGINES = ("auto", "numba", "ufunc", "array_api", "astype", "native")


# --------------------------------------------------------------------------------------------
# Formats
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Format:
    """A binary floating-point format: significand bits (with the implicit one) and exponents.

    Attributes
    ----------
    name : str
        "float16", "bfloat16" or "float32".
    precision : int
        Significand bits p, the implicit leading bit included (11, 8, 24).
    emin, emax : int
        Exponents of the smallest normal number 2**emin and of the largest binade.
    """

    name: str
    precision: int
    emin: int
    emax: int

    @property
    def max(self) -> float:
        """Largest finite value, (2 - 2**(1-p)) * 2**emax."""
        return math.ldexp(2.0 - math.ldexp(1.0, 1 - self.precision), self.emax)

    @property
    def tiny(self) -> float:
        """Smallest positive normal value, 2**emin."""
        return math.ldexp(1.0, self.emin)

    @property
    def smallest_subnormal(self) -> float:
        """Smallest positive subnormal value, 2**(emin - p + 1)."""
        return math.ldexp(1.0, self.emin - self.precision + 1)

    @property
    def eps(self) -> float:
        """Distance from 1 to the next larger value, 2**(1 - p)."""
        return math.ldexp(1.0, 1 - self.precision)

    @property
    def zero_threshold(self) -> float:
        """|v| <= this rounds to zero: half the smallest subnormal (the tie goes to even 0)."""
        return self.smallest_subnormal / 2

    @property
    def subnormal_threshold(self) -> float:
        """|v| < this (and above :attr:`zero_threshold`) rounds to a subnormal.

        The midpoint between the largest subnormal and ``tiny``; the tie goes to ``tiny``,
        whose significand is even.
        """
        return self.tiny - self.smallest_subnormal / 2

    @property
    def overflow_threshold(self) -> float:
        """|v| >= this rounds to infinity: ``max`` plus half its unit in the last place."""
        return math.ldexp(2.0 - math.ldexp(1.0, -self.precision), self.emax)


_FORMATS = {
    "float64": Format("float64", 53, -1022, 1023),
    "float32": Format("float32", 24, -126, 127),
    "float16": Format("float16", 11, -14, 15),
    "bfloat16": Format("bfloat16", 8, -126, 127),
}


def _check_precision(precision: Any, name: str = "precision") -> str:
    if precision is None:
        return "float32"
    if isinstance(precision, str) and precision in _FORMATS:
        return precision
    raise invalid(name, precision, "None or one of " + ", ".join(repr(p) for p in PRECISIONS))


def format_info(precision: str) -> Format:
    """The :class:`Format` of ``precision`` ("float16", "bfloat16" or "float32").

    Examples
    --------
    >>> format_info("float16").max
    65504.0
    >>> format_info("float16").zero_threshold == 2.0**-25
    True
    """
    return _FORMATS[_check_precision(precision)]


# --------------------------------------------------------------------------------------------
# Rounding engines
# --------------------------------------------------------------------------------------------

_U32 = np.uint32


def _f16_kernel(x: Any, out: Any) -> None:  # pragma: no cover - compiled by numba
    """float32 -> nearest float16 value, in float32 storage (compiled by numba).

    |x| + C - C with C = 2**(e + 13), e the binade of |x| clamped to [-14, 16], rounds the
    significand to 11 bits (or, below 2**-14, to the subnormal grid 2**-24) with the
    hardware's round-to-nearest-even; results above 65504 become inf, NaN keeps its bits.
    """
    xb = x.view(np.uint32)
    ob = out.view(np.uint32)
    for i in range(xb.size):
        b = xb[i]
        a = _U32(b & _U32(0x7FFFFFFF))
        e = _U32(a & _U32(0x7F800000))
        e = _U32(max(e, _U32(0x38800000)))
        e = _U32(min(e, _U32(0x47800000)))
        c = _U32(e + _U32(13 << 23)).view(np.float32)
        r = np.float32(np.float32(a.view(np.float32) + c) - c).view(np.uint32)
        r = _U32(0x7F800000) if r > _U32(0x477FE000) else r
        r = a if a > _U32(0x7F800000) else r
        ob[i] = _U32(r | _U32(b ^ a))


def _bf16_kernel(x: Any, out: Any) -> None:  # pragma: no cover - compiled by numba
    """float32 -> nearest bfloat16 value, in float32 storage (compiled by numba).

    Adds the rounding bias 0x7FFF plus the lowest kept bit and clears the 16 low bits; a carry
    into the exponent gives the next binade or inf, as it should. NaN becomes a quiet NaN.
    """
    xb = x.view(np.uint32)
    ob = out.view(np.uint32)
    for i in range(xb.size):
        b = xb[i]
        a = _U32(b & _U32(0x7FFFFFFF))
        r = _U32(_U32(a + _U32(0x7FFF) + _U32(_U32(a >> _U32(16)) & _U32(1))) & _U32(0xFFFF0000))
        r = _U32(a | _U32(0x00400000)) if a > _U32(0x7F800000) else r
        ob[i] = _U32(r | _U32(b ^ a))


@functools.cache
def _numba_kernels() -> dict[str, Callable] | None:
    try:
        import numba
    except ImportError:
        return None
    jit = numba.njit(cache=True, nogil=True)
    return {"float16": jit(_f16_kernel), "bfloat16": jit(_bf16_kernel)}


def _placed(like: Any) -> dict[str, Any]:
    """``{"device": ...}`` for arrays that live on a device of their own; {} for NumPy."""
    if isinstance(like, (np.ndarray, np.generic)):
        return {}
    device = device_of(like)
    return {} if device is None else {"device": device}


def _is_numpy(xp: Any) -> bool:
    return xp is np or array_api_compat.is_numpy_namespace(xp)


def _is_cupy(xp: Any) -> bool:
    return array_api_compat.is_cupy_namespace(xp) or getattr(xp, "__name__", "") == "cupy"


def _round_numba(x: Any, kernel: Callable) -> Any:
    source = np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty(source.shape, dtype=np.float32)
    kernel(source.reshape(-1), out.reshape(-1))
    return out


def _round_float_trick(x: Any, fmt: Format, xp: Any) -> Any:
    """Float16 rounding of float32 NumPy or CuPy arrays with whole-array operations.

    |x| + C - C with C = 2**(e + 13), e the binade of |x| clamped to [-14, 16] (so that below
    2**-14 the grid is the subnormal one, 2**-24), rounds to 11 significant bits with the
    hardware's round-to-nearest-even; multiplying by 2**112 and back turns every result of
    2**16 or more into inf. NaN passes through the arithmetic; the sign bit is put back last.
    """
    x = x.astype(np.float32, copy=False)
    a = xp.abs(x)
    shift = (23 - fmt.precision + 1) << 23
    field = a.view(np.uint32) & np.uint32(0x7F800000)
    field = xp.clip(field, np.uint32((127 + fmt.emin) << 23), np.uint32((127 + fmt.emax + 1) << 23))
    field += np.uint32(shift)
    magic = field.view(np.float32)
    big = math.ldexp(1.0, 127 - fmt.emax)
    with np.errstate(over="ignore", invalid="ignore"):  # signaling NaN inputs stay NaN
        r = a + magic
        r -= magic
        r *= np.float32(big)
        r *= np.float32(1.0 / big)
    bits = r.view(np.uint32)
    bits |= x.view(np.uint32) & np.uint32(0x80000000)
    return r


def _round_bf16_bits(x: Any, xp: Any) -> Any:
    """Bfloat16 rounding of float32 NumPy or CuPy arrays: rounding bias 0x7FFF plus the lowest
    kept bit, then the 16 low bits cleared (a carry gives the next binade or inf); NaN kept."""
    x = x.astype(np.float32, copy=False)
    b = x.view(np.uint32)
    r = (b + ((b >> np.uint32(16)) & np.uint32(1))) + np.uint32(0x7FFF)
    r &= np.uint32(0xFFFF0000)
    return xp.where(xp.isnan(x), x, r.view(np.float32))


def _round_array_api(x: Any, fmt: Format, xp: Any) -> Any:
    with np.errstate(over="ignore", invalid="ignore"):  # NumPy-backed namespaces: NaN inputs
        return _round_array_api_inner(x, fmt, xp)


def _round_array_api_inner(x: Any, fmt: Format, xp: Any) -> Any:
    """Rounding with array-API functions only (array-api-strict, any namespace with float64).

    In float64, |x| + C - C with C = 2**(e + 52 - p + 1) rounds |x| once to p significant bits
    (e its binade clamped to [emin, emax], from log2 and corrected where log2 rounded), then
    values above the format's largest finite become inf; the sign is copied back.
    """
    x32 = xp.astype(x, xp.float32)
    a = xp.abs(xp.astype(x32, xp.float64))
    safe = xp.maximum(a, xp.asarray(math.ldexp(1.0, -149), dtype=xp.float64, **_placed(a)))
    e = xp.floor(xp.log2(safe))
    two = xp.asarray(2.0, dtype=xp.float64, **_placed(a))
    e = xp.where(xp.pow(two, e) > safe, e - 1.0, e)
    e = xp.where(xp.pow(two, e + 1.0) <= safe, e + 1.0, e)
    e = xp.clip(e, float(fmt.emin), float(fmt.emax))
    magic = xp.pow(two, e + float(52 - fmt.precision + 1))
    r = (a + magic) - magic
    r = xp.where(r > fmt.max, xp.asarray(math.inf, dtype=xp.float64, **_placed(a)), r)
    r = xp.where(xp.isnan(a), a, r)
    return xp.astype(xp.copysign(r, xp.astype(x32, xp.float64)), xp.float32)


def _round_astype(x: Any, precision: str) -> Any:
    array = np.asarray(x)
    if array.dtype != np.float32:
        array = array.astype(np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        if precision == "bfloat16":
            import ml_dtypes

            return array.astype(ml_dtypes.bfloat16).astype(np.float32)
        return array.astype(np.float16).astype(np.float32)


def cast_function(
    precision: str | None, xp: Any = None, *, engine: str = "auto"
) -> Callable[[Any], Any]:
    """A callable that rounds arrays to ``precision``: ``cast = cast_function("float16")``.

    Round to nearest, ties to even; float16 subnormals; overflow to ±inf; NaN stays NaN (its
    payload is not rounded); the sign of zero is kept. Inputs are float32 values: other
    dtypes are rounded to float32 first (the storage of the emulation).

    Parameters
    ----------
    precision : {"float16", "bfloat16", "float32"} or None
        Target format; None and "float32" round to float32.
    xp : namespace or name, optional
        The arrays' namespace (NumPy if None).
    engine : str
        How to round:

        * ``"auto"``: NumPy: ``"numba"`` where numba is installed, else ``"ufunc"`` for
          float16 and ``"astype"`` for bfloat16; CuPy: ``"native"`` for float16 and
          ``"ufunc"`` for bfloat16; any other namespace: ``"array_api"``.
        * ``"numba"``: one fused pass on the float32 bits (NumPy; as fast as a multiply).
        * ``"ufunc"``: whole-array operations on the float32 bits (NumPy, CuPy).
        * ``"array_api"``: float64 arithmetic with array-API functions only (any namespace;
          array-api-strict has no bit casts, so this is its path).
        * ``"astype"``: through ``numpy.float16`` / ``ml_dtypes.bfloat16`` and back to float32
          (NumPy; the reference the others are tested against).
        * ``"native"``: arrays *in* the low dtype (``numpy.float16``, ``ml_dtypes.bfloat16``,
          ``cupy.float16``): the arithmetic that follows is the library's own.

    Returns
    -------
    callable
        ``cast(x) -> array``: float32 storage holding low-precision values (float16 or
        bfloat16 storage for ``"native"``); float32 input is returned unchanged for float32.
        Its attributes ``precision``, ``engine`` (the one chosen for ``"auto"``) and
        ``storage`` (the dtype name of the results) say what it does.

    Raises
    ------
    ValueError
        For an unknown precision or engine, or an engine the namespace cannot run.

    Examples
    --------
    >>> import numpy as np
    >>> cast = cast_function("float16")
    >>> cast(np.array([1 + 2.0**-11, 1e-8, 7e4], dtype=np.float32))
    array([ 1.,  0., inf], dtype=float32)
    """
    precision = _check_precision(precision)
    engine = check_choice("engine", engine, ENGINES)
    xp = resolve_namespace(xp)
    fmt = _FORMATS[precision]
    numpy_like = _is_numpy(xp)
    cupy_like = _is_cupy(xp)

    if precision in ("float32", "float64"):

        def cast_wide(x: Any) -> Any:
            return _astype(x, precision, xp)

        return _tag(cast_wide, precision, engine, precision)

    if engine == "auto":
        if numpy_like:
            if _numba_kernels() is not None:
                engine = "numba"
            else:
                engine = "ufunc" if precision == "float16" else "astype"
        elif cupy_like:
            engine = "native" if precision != "bfloat16" else "ufunc"
        else:
            engine = "array_api"

    if engine in ("numba", "astype") and not numpy_like:
        raise invalid(
            "engine",
            engine,
            f"an engine that {namespace_name(xp)} runs: "
            "'auto', 'array_api'" + (", 'ufunc', 'native'" if cupy_like else ""),
        )
    if engine == "ufunc" and not (numpy_like or cupy_like):
        raise invalid("engine", engine, "'auto' or 'array_api' (bit views need NumPy or CuPy)")
    if engine == "native" and not (numpy_like or cupy_like):
        raise invalid("engine", engine, "'auto' or 'array_api' (no low dtypes in this namespace)")
    if engine == "native" and cupy_like and precision == "bfloat16":
        raise invalid(
            "engine", engine, "'auto' or 'ufunc' for bfloat16 on CuPy (no bfloat16 dtype)"
        )

    if engine == "numba":
        kernels = _numba_kernels()
        if kernels is None:
            raise invalid(
                "engine",
                engine,
                "'auto', 'ufunc' or 'astype' (numba is not "
                "installed: pip install 'convexkit[fast]')",
            )
        kernel = kernels[precision]

        def cast_numba(x: Any) -> Any:
            return _round_numba(x, kernel)

        return _tag(cast_numba, precision, engine, "float32")

    if engine == "ufunc":

        def cast_ufunc(x: Any) -> Any:
            array = (
                np.asarray(x, dtype=np.float32) if numpy_like else xp.asarray(x, dtype=xp.float32)
            )
            if precision == "float16":
                return _round_float_trick(array, fmt, xp)
            return _round_bf16_bits(array, xp)

        return _tag(cast_ufunc, precision, engine, "float32")

    if engine == "array_api":

        def cast_array_api(x: Any) -> Any:
            return _round_array_api(x, fmt, xp)

        return _tag(cast_array_api, precision, engine, "float32")

    if engine == "astype":

        def cast_astype(x: Any) -> Any:
            return _round_astype(x, precision)

        return _tag(cast_astype, precision, engine, "float32")

    if numpy_like and precision == "bfloat16":
        import ml_dtypes

        native = np.dtype(ml_dtypes.bfloat16)
    else:
        native = getattr(xp, precision)

    def cast_native(x: Any) -> Any:
        array = np.asarray(x) if numpy_like else xp.asarray(x)
        with np.errstate(over="ignore"):
            return array.astype(native, copy=False)

    return _tag(cast_native, precision, engine, precision)


def _tag(function: Callable, precision: str, engine: str, storage: str) -> Callable:
    function.precision = precision  # type: ignore[attr-defined]
    function.engine = engine  # type: ignore[attr-defined]
    function.storage = storage  # type: ignore[attr-defined]
    function.__qualname__ = function.__name__ = f"cast_{precision}_{engine}"
    return function


def round_to(x: Any, precision: str | None, *, engine: str = "auto") -> Any:
    """Round ``x`` to ``precision`` once: ``cast_function(precision, xp, engine=engine)(x)``."""
    return cast_function(precision, array_namespace(x), engine=engine)(x)


# --------------------------------------------------------------------------------------------
# Spacing, lost updates, gradient statistics
# --------------------------------------------------------------------------------------------


def _astype(x: Any, dtype: str, xp: Any) -> Any:
    """``x`` as ``dtype`` (a name) in namespace ``xp``."""
    if _is_numpy(xp):
        return np.asarray(x, dtype=dtype)
    if _is_cupy(xp):
        return x.astype(dtype)
    return xp.astype(x, getattr(xp, dtype))


def _float64(x: Any, xp: Any) -> Any:
    return _astype(x, "float64", xp)


def _binade(a: Any, fmt: Format, xp: Any) -> Any:
    """floor(log2 a) clamped below at emin, exactly (a float64, a >= 0, finite)."""
    two = xp.asarray(2.0, dtype=xp.float64, **_placed(a))
    safe = xp.maximum(a, xp.asarray(fmt.tiny, dtype=xp.float64, **_placed(a)))
    e = xp.floor(xp.log2(safe))
    e = xp.where(xp.pow(two, e) > safe, e - 1.0, e)
    e = xp.where(xp.pow(two, e + 1.0) <= safe, e + 1.0, e)
    return e


def spacing(w: Any, precision: str) -> Any:
    """Unit in the last place of the values ``w`` in ``precision`` (float64 array).

    The distance from |w| to the next larger value of the format: 2**(e - p + 1) with e the
    binade of |w| (at least emin, so subnormals and zero get the subnormal spacing).
    """
    fmt = format_info(precision)
    xp = array_namespace(w)
    a = xp.abs(_float64(w, xp))
    two = xp.asarray(2.0, dtype=xp.float64, **_placed(a))
    return xp.pow(two, _binade(a, fmt, xp) - float(fmt.precision - 1))


def lost_updates(w: Any, w_next: Any, precision: str) -> Any:
    """Which updates ``w -> w_next`` are lost when the result is rounded to ``precision``.

    The theory of a weight kept in a low format: the update is lost when ``w_next`` lies
    within half a unit in the last place of ``w``, i.e. in ``[w - d_down/2, w + d_up/2]``,
    where ``d_up`` and ``d_down`` are the distances to the neighbours of ``w`` (they differ
    at a power of two, where the spacing below is half the spacing above) and the end points
    count only when ``w``'s significand is even (ties go to even). The plain rule
    ``|Δw| < ulp(w) / 2`` is the interior of this interval.

    Parameters
    ----------
    w : array
        Weights, values of the format (e.g. already rounded), finite.
    w_next : array
        The updated weights before rounding (any float dtype, same shape).
    precision : str
        The weights' format.

    Returns
    -------
    array of bool
        True where ``w_next != w`` but rounding ``w_next`` gives back ``w``.
    """
    fmt = format_info(precision)
    xp = array_namespace(w, w_next)
    w64 = _float64(w, xp)
    n64 = _float64(w_next, xp)
    a = xp.abs(w64)
    two = xp.asarray(2.0, dtype=xp.float64, **_placed(a))
    e = _binade(a, fmt, xp)
    ulp = xp.pow(two, e - float(fmt.precision - 1))
    power_of_two = (a == xp.pow(two, e)) & (e > float(fmt.emin))
    below = xp.where(power_of_two, ulp / 2.0, ulp)
    # Toward zero the neighbour is `below` away, away from zero `ulp`; at w = 0 both are ulp.
    positive = w64 > 0.0
    up = xp.where(positive | (w64 == 0.0), ulp, below)
    down = xp.where(positive | (w64 == 0.0), below, ulp)
    significand = a / ulp
    even = xp.remainder(significand, two) == 0.0
    hi = w64 + up / 2.0
    lo = w64 - down / 2.0
    inside = xp.where(even, (n64 >= lo) & (n64 <= hi), (n64 > lo) & (n64 < hi))
    return inside & (n64 != w64)


def _mean_rows(mask: Any, xp: Any) -> Any:
    return xp.mean(_astype(mask, "float64", xp), axis=-1)


def predicted_gradient_fractions(grad: Any, scale: Any, precision: str) -> dict[str, Any]:
    """Fractions of gradient entries that ``precision`` will round to zero, to a subnormal, or
    to ±inf, predicted from the exact (FP32) gradients ``grad`` and the loss ``scale``.

    With v = grad * scale (in float64) and the thresholds of :class:`Format`: zero where
    |v| <= ``zero_threshold`` (half the smallest subnormal; the tie goes to the even zero),
    subnormal where ``zero_threshold`` < |v| < ``subnormal_threshold``, overflow where
    |v| >= ``overflow_threshold`` or v is not finite. For float16 the thresholds are 2**-25,
    2**-14 - 2**-25 and 65520. Exact zeros of ``grad`` count as zero.

    The prediction is about rounding ``grad * scale`` once. A backward pass whose
    intermediate values (e.g. the per-example gradients of a mean loss) underflow earlier
    produces more zeros than predicted.

    Parameters
    ----------
    grad : array of shape (B, P)
        Gradients in FP32 (or higher), unscaled.
    scale : float or array of shape (B,)
        The loss scale the low-precision backward pass uses.
    precision : str
        The low format.

    Returns
    -------
    dict
        ``{"zero", "subnormal", "overflow"}``, each an array of shape (B,) (fractions over
        the P entries of each model).
    """
    fmt = format_info(precision)
    xp = array_namespace(grad)
    g = _float64(grad, xp)
    s = _float64(scale, xp) if not isinstance(scale, numbers.Real) else float(scale)
    if not isinstance(s, float) and s.ndim == 1:
        s = xp.reshape(s, (s.shape[0],) + (1,) * (g.ndim - 1))
    v = xp.abs(g * s)
    finite = xp.isfinite(v)
    return {
        "zero": _mean_rows(v <= fmt.zero_threshold, xp),
        "subnormal": _mean_rows((v > fmt.zero_threshold) & (v < fmt.subnormal_threshold), xp),
        "overflow": _mean_rows((v >= fmt.overflow_threshold) | ~finite, xp),
    }


def measured_gradient_fractions(grad_low: Any, precision: str) -> dict[str, Any]:
    """Fractions of low-precision gradient entries that are zero, subnormal or not finite.

    Parameters
    ----------
    grad_low : array of shape (B, P)
        Gradients as the low-precision backward pass produced them (still scaled).
    precision : str
        Their format (sets the subnormal range).

    Returns
    -------
    dict
        ``{"zero", "subnormal", "overflow"}``, each an array of shape (B,).
    """
    fmt = format_info(precision)
    xp = array_namespace(grad_low)
    a = xp.abs(grad_low)
    return {
        "zero": _mean_rows(a == 0.0, xp),
        "subnormal": _mean_rows((a > 0.0) & (a < fmt.tiny), xp),
        "overflow": _mean_rows(~xp.isfinite(a), xp),
    }


# --------------------------------------------------------------------------------------------
# Loss scalers
# --------------------------------------------------------------------------------------------


class LossScaleWarning(RuntimeWarning):
    """The loss scale reached one of its bounds (it is held there, and counted)."""


def _is_bool_array(value: Any) -> bool:
    return hasattr(value, "dtype") and str(value.dtype).rsplit(".", 1)[-1] in ("bool", "bool_")


class _ScalerBase:
    """Shared state: the scale (float32, as GradScaler keeps it) and integer counters, arrays
    of shape () for a single scale or (B,) for one scale per model."""

    _COUNTERS: tuple[str, ...] = ("skipped",)

    def __init__(self, init_scale: float | np.ndarray) -> None:
        self._init = init_scale
        self.reset()

    def _initial(self, shape: tuple[int, ...], namespace: Any, kwargs: dict) -> Any:
        if isinstance(self._init, np.ndarray):
            if shape not in ((), tuple(self._init.shape)):
                raise invalid(
                    "batch",
                    shape[0],
                    f"{self._init.shape[0]}, the number of scales this scaler was given",
                )
            return namespace.asarray(
                self._init.astype(np.float32).tolist(), dtype=namespace.float32, **kwargs
            )
        return namespace.full(shape, self._init, dtype=namespace.float32, **kwargs)

    def reset(self) -> None:
        """Forget the state: the next use starts again from the initial scale."""
        self._xp: Any = None
        self._scale: Any = None
        self._counts: dict[str, Any] = {}
        self._steps = 0
        self._warned: set[str] = set()

    def bind(self, batch: int | None = None, xp: Any = None, device: Any = None) -> _ScalerBase:
        """Give the scaler one scale per model (``batch`` of them; None: a single scale).

        A fresh scaler binds itself on its first :meth:`update`; binding by hand fixes the
        namespace and device up front. A single scale already in use is broadcast to
        ``batch`` models; a scaler tracking another number of models is refused.

        Raises
        ------
        ValueError
            When the scaler already tracks a different number of models.
        """
        shape = () if batch is None else (check_int("batch", batch, minimum=1),)
        if self._scale is None:
            namespace = resolve_namespace(xp)
            kwargs = {} if device is None else {"device": device}
            self._xp = namespace
            self._scale = self._initial(shape, namespace, kwargs)
            self._counts = {
                name: namespace.zeros(tuple(self._scale.shape), dtype=namespace.int64, **kwargs)
                for name in self._COUNTERS
            }
        elif tuple(self._scale.shape) != shape and batch is not None:
            if self._scale.ndim != 0:
                raise invalid(
                    "batch",
                    batch,
                    f"{self._scale.shape[0]}, the number of models this "
                    "scaler already tracks (call reset() to start over)",
                )
            zeros = self._xp.zeros(shape, dtype=self._xp.int64, **_placed(self._scale))
            self._scale = _astype(zeros, "float32", self._xp) + self._scale
            self._counts = {name: zeros + value for name, value in self._counts.items()}
        return self

    def _found(self, found_inf: Any) -> Any:
        if isinstance(found_inf, (bool, np.bool_)):
            if self._scale is None:
                self.bind(None)
            return self._xp.asarray(bool(found_inf), **_placed(self._scale))
        if isinstance(found_inf, (list, tuple)):
            found_inf = np.asarray(found_inf)
        if not _is_bool_array(found_inf) or found_inf.ndim > 1:
            raise invalid("found_inf", found_inf, "a bool or a bool array of shape (B,)")
        if self._scale is None:
            self.bind(
                None if found_inf.ndim == 0 else found_inf.shape[0],
                array_namespace(found_inf),
                _placed(found_inf).get("device"),
            )
        elif found_inf.ndim == 1 and tuple(self._scale.shape) != tuple(found_inf.shape):
            self.bind(found_inf.shape[0])
        return found_inf

    def _count(self, name: str) -> Any:
        value = self._counts.get(name)
        if value is None:
            return 0
        return int(value) if value.ndim == 0 else value

    def _add(self, name: str, mask: Any) -> None:
        self._counts[name] = self._counts[name] + _astype(mask, "int64", self._xp)

    @property
    def scale(self) -> Any:
        """The current scale: a float, or an array of shape (B,) once bound to B models."""
        if self._scale is None:
            if isinstance(self._init, np.ndarray):
                return self._init.astype(np.float32)
            return float(np.float32(self._init))
        return float(self._scale) if self._scale.ndim == 0 else self._scale

    @property
    def skipped(self) -> Any:
        """Number of steps skipped so far (an int, or an int array of shape (B,))."""
        return self._count("skipped")

    @property
    def steps(self) -> int:
        """Number of recorded steps."""
        return self._steps


class StaticLossScaler(_ScalerBase):
    """A constant loss scale (the seeds use 256); steps with inf/NaN gradients are skipped.

    Parameters
    ----------
    scale : float or array of shape (B,)
        The scale, positive and finite (a power of two keeps unscaling exact); an array gives
        each of B models its own scale, so that one run compares several scales.

    Examples
    --------
    >>> scaler = StaticLossScaler(256)
    >>> scaler.update(True)
    256.0
    >>> scaler.skipped
    1
    """

    def __init__(self, scale: float | Any = 256.0) -> None:
        if isinstance(scale, numbers.Real) and not isinstance(scale, bool):
            super().__init__(check_real("scale", scale, low=0.0, low_open=True))
            return
        values = np.asarray(to_numpy(scale) if hasattr(scale, "shape") else scale)
        if (
            values.ndim != 1
            or values.size == 0
            or values.dtype.kind not in "iuf"
            or not (np.all(np.isfinite(values)) and np.all(values > 0))
        ):
            raise invalid("scale", scale, "a positive finite number or a 1-D array of them")
        super().__init__(values.astype(np.float64))

    def update(self, found_inf: Any) -> Any:
        """Record one step (True where its gradients had an inf or NaN); returns the scale."""
        found = self._found(found_inf)
        self._add("skipped", found)
        self._steps += 1
        return self.scale

    def __repr__(self) -> str:
        shown = (
            f"<array of {self._init.size} scales>"
            if isinstance(self._init, np.ndarray)
            else repr(self._init)
        )
        return f"StaticLossScaler(scale={shown})"


class DynamicLossScaler(_ScalerBase):
    """Dynamic loss scaling with PyTorch GradScaler's semantics, one scale per model.

    Each :meth:`update` records one step. A step whose gradients had an inf or NaN is skipped
    (the trainer keeps the old weights) and the scale is multiplied by ``backoff_factor``;
    after ``growth_interval`` clean steps in a row the scale is multiplied by
    ``growth_factor`` and the count starts again. Unscaling happens before the update, in
    FP32, by the scale the gradients were computed with. The scale is kept in float32, each
    new value the float32 rounding of the product, as GradScaler does.

    Unlike GradScaler the scale is held within ``[min_scale, max_scale]``: a scale that would
    leave the interval stays at the bound, the event is counted (:attr:`hits_min`,
    :attr:`hits_max`) and a :class:`LossScaleWarning` says so, once per bound. A scale held at
    ``min_scale`` while steps keep being skipped means the gradients overflow even at that
    scale (the forward pass or the data is at fault, not the scale); a scale held at
    ``max_scale`` means the gradients are so small that even that scale does not lift them.

    Parameters
    ----------
    init_scale : float
        Starting scale (2**16).
    growth_factor : float
        Factor > 1 applied after ``growth_interval`` clean steps (2.0).
    backoff_factor : float
        Factor in (0, 1) applied after a step with inf/NaN (0.5).
    growth_interval : int
        Clean steps in a row before growing (2000).
    min_scale, max_scale : float
        Bounds of the scale: positive and finite, ``min_scale <= init_scale <= max_scale``
        (defaults 2**-24 and 2**64).

    Examples
    --------
    >>> scaler = DynamicLossScaler(init_scale=8.0, growth_interval=2)
    >>> [scaler.update(found) for found in (False, False, True, False)]
    [8.0, 16.0, 8.0, 8.0]

    One scale per model, with ``found_inf`` of shape (B,):

    >>> import numpy as np
    >>> DynamicLossScaler(init_scale=8.0).update(np.array([True, False]))
    array([4., 8.], dtype=float32)
    """

    _COUNTERS = ("skipped", "tracker", "hits_min", "hits_max")

    def __init__(
        self,
        init_scale: float = 2.0**16,
        growth_factor: float = 2.0,
        backoff_factor: float = 0.5,
        growth_interval: int = 2000,
        min_scale: float = 2.0**-24,
        max_scale: float = 2.0**64,
    ) -> None:
        self.min_scale = check_real("min_scale", min_scale, low=0.0, low_open=True)
        self.max_scale = check_real("max_scale", max_scale, low=self.min_scale)
        init = check_real("init_scale", init_scale, low=self.min_scale, high=self.max_scale)
        self.growth_factor = check_real("growth_factor", growth_factor, low=1.0, low_open=True)
        self.backoff_factor = check_real(
            "backoff_factor", backoff_factor, low=0.0, high=1.0, low_open=True, high_open=True
        )
        self.growth_interval = check_int("growth_interval", growth_interval, minimum=1)
        super().__init__(init)

    @property
    def growth_tracker(self) -> Any:
        """Clean steps in a row since the last growth or backoff (int or array (B,))."""
        return self._count("tracker")

    @property
    def hits_min(self) -> Any:
        """How many updates were held at ``min_scale`` (int or array (B,))."""
        return self._count("hits_min")

    @property
    def hits_max(self) -> Any:
        """How many updates were held at ``max_scale`` (int or array (B,))."""
        return self._count("hits_max")

    def update(self, found_inf: Any) -> Any:
        """Record one step; returns the new scale (a float, or an array of shape (B,)).

        Parameters
        ----------
        found_inf : bool or bool array of shape (B,)
            True where that step's gradients had an inf or NaN.
        """
        found = self._found(found_inf)
        xp = self._xp
        scale = _astype(self._scale, "float64", xp)
        successful = self._counts["tracker"] + 1
        grow = ~found & (successful >= self.growth_interval)
        wanted = xp.where(
            found, scale * self.backoff_factor, xp.where(grow, scale * self.growth_factor, scale)
        )
        low = wanted < self.min_scale
        high = wanted > self.max_scale
        self._scale = _astype(xp.clip(wanted, self.min_scale, self.max_scale), "float32", xp)
        self._counts["tracker"] = xp.where(found | grow, xp.zeros_like(successful), successful)
        self._add("skipped", found)
        self._add("hits_min", low)
        self._add("hits_max", high)
        self._steps += 1
        self._warn(
            "min",
            low,
            "min_scale",
            self.min_scale,
            "their gradients overflow even at this scale, and steps keep being skipped",
        )
        self._warn(
            "max",
            high,
            "max_scale",
            self.max_scale,
            "their gradients stay small even at this scale",
        )
        return self.scale

    def _warn(self, key: str, hit: Any, name: str, bound: float, meaning: str) -> None:
        if key in self._warned or not bool(self._xp.any(hit)):
            return
        self._warned.add(key)
        count = int(self._xp.sum(_astype(hit, "int64", self._xp)))
        who = "the model" if hit.ndim == 0 else f"{count} of {hit.shape[0]} models"
        warnings.warn(
            f"loss scale held at {name}={bound!r} for {who} at step {self._steps - 1}: {meaning} "
            f"(counted in hits_{key}; this warning is shown once)",
            LossScaleWarning,
            stacklevel=3,
        )

    def __repr__(self) -> str:
        return (
            f"DynamicLossScaler(init_scale={self._init!r}, growth_factor={self.growth_factor!r}, "
            f"backoff_factor={self.backoff_factor!r}, growth_interval={self.growth_interval!r}, "
            f"min_scale={self.min_scale!r}, max_scale={self.max_scale!r})"
        )


# --------------------------------------------------------------------------------------------
# Policy: what the trainer calls
# --------------------------------------------------------------------------------------------


def _make_scaler(loss_scale: Any) -> _ScalerBase | None:
    if loss_scale is None:
        return None
    if isinstance(loss_scale, _ScalerBase):
        return loss_scale
    if isinstance(loss_scale, str) and loss_scale == "dynamic":
        return DynamicLossScaler()
    if isinstance(loss_scale, numbers.Real) and not isinstance(loss_scale, bool):
        return StaticLossScaler(loss_scale)
    raise invalid(
        "loss_scale",
        loss_scale,
        "None, a positive number, 'dynamic', a StaticLossScaler or a DynamicLossScaler",
    )


def _is_floating(value: Any) -> bool:
    """True for real floating arrays (targets), False for integer labels."""
    if isinstance(value, (list, tuple)):
        value = np.asarray(value)
    return "float" in str(getattr(value, "dtype", "float"))


def _twin(rng: Any) -> Any:
    """An independent copy of a random source that will draw the same numbers."""
    if rng is None or isinstance(rng, numbers.Integral):
        return rng
    inner = getattr(rng, "_rng", None)
    if inner is not None:  # convexkit.backend.Random: copy the generator, share the namespace
        twin = copy.copy(rng)
        twin._rng = copy.deepcopy(inner)
        return twin
    return copy.deepcopy(rng)


def _select(keep_old: Any, old: Any, new: Any, xp: Any) -> Any:
    """Per model (axis 0): ``old`` where ``keep_old`` else ``new``; leaves without a model
    axis take ``new``."""
    if (
        not (hasattr(new, "shape") and hasattr(old, "shape"))
        or new.ndim == 0
        or (new.shape[0] != keep_old.shape[0] or tuple(old.shape) != tuple(new.shape))
    ):
        return new
    mask = xp.reshape(keep_old, (keep_old.shape[0],) + (1,) * (new.ndim - 1))
    return xp.where(mask, old, new)


_STAT_KEYS = (
    "zero",
    "subnormal",
    "overflow",
    "predicted_zero",
    "predicted_subnormal",
    "predicted_overflow",
    "lost",
    "predicted_lost",
)


class Policy:
    """Mixed-precision training for the trainer: low-precision gradients, loss scaling, master
    weights, per-step statistics. Batched over models (axis 0).

    Parameters
    ----------
    precision : {"float16", "bfloat16", "float32"} or None
        Format of the forward and backward passes (None: float32).
    loss_scale : None, float, "dynamic", StaticLossScaler or DynamicLossScaler
        None: no scaling. A number: a static scale. A scaler object is used (and updated) as
        it is, so its state can be read after training.
    master_weights : bool
        True (the seeds' recipe): the weights live in FP32 and only their copy for the
        forward/backward pass is rounded. False: the weights themselves are kept in the low
        format, so updates below half a unit in the last place of a weight are lost.
    xp : namespace, optional
        Namespace of the arrays (NumPy if None).
    batch : int
        Number of models B.
    engine : str
        Rounding engine of :func:`cast_function`.
    reference : bool
        Also compute the FP32 gradient at the same (rounded) weights every step, to record
        the predicted underflow fractions next to the measured ones (one more FP32
        forward/backward pass per step). False records only what the run measures.

    Attributes
    ----------
    cast : callable
        Rounds to ``precision`` (see :func:`cast_function`).
    scaler : StaticLossScaler, DynamicLossScaler or None
    stats : dict of arrays
        Per-step records, each of shape (steps, B): ``"scale"`` (the scale the step's
        gradients were computed with), ``"skipped"``, measured fractions of gradient entries
        ``"zero"``, ``"subnormal"``, ``"overflow"``; with ``reference`` also
        ``"predicted_zero"``, ``"predicted_subnormal"``, ``"predicted_overflow"``; with
        ``master_weights=False`` also ``"lost"`` (updates lost to rounding, measured) and
        ``"predicted_lost"`` (by :func:`lost_updates`), fractions of the entries whose
        update was not zero.

    Notes
    -----
    The trainer calls, per minibatch::

        policy = Policy(precision, loss_scale, master_weights, xp, batch)
        loss, grad, info = policy.gradients(model, params, Xb, yb, rng)
        params, opt_state, info = policy.apply(optimizer, params, grad, opt_state, step, info)

    where ``model.loss_and_grad(params, X, y, *, cast, loss_scale, rng) -> (loss, grad)``
    applies ``cast`` to the result of every arithmetic operation and multiplies the backward
    seed by ``loss_scale`` (a float or an array of shape (B,)), and ``optimizer`` follows
    :class:`convexkit.optim.base.Optimizer`. The data are taken to float32, then rounded to
    the low format. The returned weights are float32. A skipped model keeps its weights and
    optimizer state, but the trainer's step counter still advances.
    """

    def __init__(
        self,
        precision: str | None = "float16",
        loss_scale: Any = None,
        master_weights: bool = True,
        xp: Any = None,
        batch: int = 1,
        *,
        engine: str = "auto",
        reference: bool = True,
    ) -> None:
        self.precision = _check_precision(precision)
        self.format = _FORMATS[self.precision]
        if not isinstance(master_weights, (bool, np.bool_)):
            raise invalid("master_weights", master_weights, "True or False")
        self.master_weights = bool(master_weights)
        self.xp = resolve_namespace(xp)
        self.batch = check_int("batch", batch, minimum=1)
        self.cast = cast_function(self.precision, self.xp, engine=engine)
        self._storage = "float64" if self.precision == "float64" else "float32"
        self.scaler = _make_scaler(loss_scale)
        self.reference = bool(reference)
        self._records: dict[str, list[Any]] = {}

    def __repr__(self) -> str:
        return (
            f"Policy(precision={self.precision!r}, loss_scale={self.scaler!r}, "
            f"master_weights={self.master_weights!r}, batch={self.batch})"
        )

    def _f32(self, x: Any) -> Any:
        """``x`` in the storage dtype: float32 (float64 for precision "float64")."""
        if isinstance(x, (np.ndarray, numbers.Number, list, tuple)):
            return np.asarray(x, dtype=self._storage)
        return _astype(x, self._storage, array_namespace(x))

    def _low(self, x: Any) -> Any:
        """Rounded to the low format, in float32 storage."""
        return self._f32(self.cast(self._f32(x)))

    def _record(self, key: str, value: Any) -> None:
        self._records.setdefault(key, []).append(value)

    def gradients(
        self, model: Any, params: Any, X: Any, y: Any, rng: Any = None
    ) -> tuple[Any, Any, dict[str, Any]]:
        """Low-precision loss and gradients at ``params``, unscaled in FP32.

        Parameters
        ----------
        model : object
            Has ``loss_and_grad(params, X, y, *, cast, loss_scale, rng) -> (loss, grad)``.
        params : array of shape (B, P)
            The weights (FP32 masters, or low-format weights with ``master_weights=False``).
        X, y : arrays
            The minibatch; rounded to the low format like the weights.
        rng : optional
            Passed on to the model (dropout); the FP32 reference pass gets a copy of it, so
            that both passes draw the same numbers.

        Returns
        -------
        loss : array of shape (B,)
            The low-precision loss (unscaled), in float32.
        grad : array of shape (B, P)
            The gradients unscaled in FP32; zero for models whose gradients had inf/NaN.
        info : dict
            ``"found_inf"`` (B,) bool, ``"scale"`` (the scale used: a float or (B,)),
            ``"grad_low"`` (the scaled low-precision gradients, float32), the measured
            fractions ``"zero"``, ``"subnormal"``, ``"overflow"`` and, with ``reference``,
            ``"grad_reference"`` and the ``"predicted_*"`` fractions.
        """
        if getattr(params, "ndim", None) != 2 or params.shape[0] != self.batch:
            raise invalid(
                "params",
                f"<array of shape {tuple(getattr(params, 'shape', ()))}>",
                f"an array of shape ({self.batch}, P)",
            )
        xp = array_namespace(params)
        if self.scaler is not None:
            self.scaler.bind(self.batch, xp, _placed(params).get("device"))
        low_params = self._low(params)
        native = self.cast.storage != "float32"
        work = self.cast(low_params) if native else low_params
        X32 = self._f32(X)
        targets = _is_floating(y)
        y32 = self._f32(y) if targets else y
        scale = 1.0 if self.scaler is None else self.scaler.scale
        loss_scale = None if self.scaler is None else scale
        reference_rng = _twin(rng) if self.reference else None
        # Overflow to inf (and inf - inf) is expected here and detected below, per model.
        with np.errstate(over="ignore", invalid="ignore"):
            loss, grad_low = model.loss_and_grad(
                work,
                self.cast(X32),
                self.cast(y32) if targets else y,
                cast=self.cast,
                loss_scale=loss_scale,
                rng=rng,
            )
        grad_low = self._f32(grad_low)
        found = ~xp.all(xp.isfinite(grad_low), axis=1)
        if loss_scale is None:
            grad = grad_low
        else:
            divisor = scale if isinstance(scale, float) else xp.reshape(scale, (self.batch, 1))
            grad = grad_low / divisor
        grad = xp.where(xp.reshape(found, (self.batch, 1)), xp.zeros_like(grad), grad)
        info: dict[str, Any] = {"found_inf": found, "scale": scale, "grad_low": grad_low}
        info.update(measured_gradient_fractions(grad_low, self.precision))
        if self.reference:
            _, grad_ref = model.loss_and_grad(
                low_params, X32, y32, cast=None, loss_scale=None, rng=reference_rng
            )
            predicted = predicted_gradient_fractions(grad_ref, scale, self.precision)
            info.update({f"predicted_{key}": value for key, value in predicted.items()})
            info["grad_reference"] = grad_ref
        return self._f32(loss), grad, info

    def apply(
        self,
        optimizer: Any,
        params: Any,
        grad: Any,
        opt_state: Any,
        step: int,
        info: dict[str, Any],
    ) -> tuple[Any, Any, dict[str, Any]]:
        """One optimizer step in FP32, skipped for the models whose gradients had inf/NaN.

        Updates the loss scaler, rounds the weights to the low format when
        ``master_weights`` is False, and records the step's statistics in :attr:`stats`.

        Returns
        -------
        params : array of shape (B, P)
            New weights, float32 (low-format values with ``master_weights=False``).
        opt_state : tuple
            New optimizer state (the old one for skipped models).
        info : dict
            ``info`` with ``"skipped"`` and, without master weights, ``"lost"`` and
            ``"predicted_lost"`` added.
        """
        xp = array_namespace(params)
        found = info["found_inf"]
        weights = self._f32(params) if self.master_weights else self._low(params)
        proposed, new_state = optimizer.update(weights, self._f32(grad), opt_state, step)
        proposed = self._f32(proposed)
        if not self.master_weights:
            rounded = self._low(proposed)
            changed = proposed != weights
            counted = xp.sum(_astype(changed, "float64", xp), axis=1)
            counted = xp.where(counted > 0, counted, xp.ones_like(counted))

            def fraction(mask: Any) -> Any:
                share = xp.sum(_astype(mask, "float64", xp), axis=1) / counted
                return xp.where(found, xp.zeros_like(share), share)

            info["lost"] = fraction((rounded == weights) & changed)
            info["predicted_lost"] = fraction(lost_updates(weights, proposed, self.precision))
            proposed = rounded
        new_params = _select(found, weights, proposed, xp)
        if (
            isinstance(new_state, tuple)
            and isinstance(opt_state, tuple)
            and (len(new_state) == len(opt_state))
        ):
            leaves = [
                _select(found, old, new, xp) for old, new in zip(opt_state, new_state, strict=True)
            ]
            new_state = type(new_state)(*leaves) if hasattr(new_state, "_fields") else tuple(leaves)
        if self.scaler is not None:
            self.scaler.update(found)
        info["skipped"] = found
        scale = info["scale"]
        if isinstance(scale, float):
            scale = xp.full((self.batch,), scale, dtype=xp.float32, **_placed(params))
        self._record("scale", scale)
        self._record("skipped", found)
        for key in _STAT_KEYS:
            if key in info:
                self._record(key, info[key])
        return new_params, new_state, info

    @property
    def stats(self) -> dict[str, np.ndarray]:
        """The per-step records as host arrays of shape (steps, B) (see the class docstring)."""
        return {
            key: np.stack([to_numpy(v) for v in values]) for key, values in self._records.items()
        }
