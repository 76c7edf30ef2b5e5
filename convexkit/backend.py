"""Array namespaces, devices, dtypes and random numbers for every backend.

convexkit writes its numerical code once against an array namespace ``xp`` (the array API
standard, through array-api-compat). This module finds that namespace for a set of arrays,
resolves what a user passes as ``xp=`` (None, a module, or a name), moves arrays to the host,
and gives each backend a random generator whose numbers do not depend on the backend where
that is possible (NumPy and array-api-strict draw the same values).

SymPy objects get the symbolic namespace of :mod:`convexkit.symbolic.xp`, so that optimizer
update rules written against ``xp`` also run on symbols. This module never imports SymPy
itself; it hands such objects on without touching them.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import Any

import array_api_compat
import numpy as np

from .errors import invalid

__all__ = [
    "Random",
    "array_namespace",
    "asarray",
    "device_of",
    "is_symbolic",
    "namespace_name",
    "resolve_dtype",
    "resolve_namespace",
    "to_numpy",
]

_NAMES = {
    "numpy": "numpy",
    "np": "numpy",
    "cupy": "cupy",
    "cp": "cupy",
    "array_api_strict": "array_api_strict",
    "array-api-strict": "array_api_strict",
    "strict": "array_api_strict",
}


def is_symbolic(value: Any) -> bool:
    """True for SymPy objects (checked without importing SymPy)."""
    if "sympy" not in sys.modules:
        return False
    return isinstance(value, sys.modules["sympy"].Basic)


def array_namespace(*arrays: Any) -> Any:
    """The namespace of ``arrays``: NumPy, CuPy, array-api-strict, or the symbolic one.

    Python scalars and None are ignored. With no array at all, NumPy is returned.
    """
    if any(is_symbolic(a) for a in arrays):
        from .symbolic import xp as symbolic_xp

        return symbolic_xp
    real = [a for a in arrays if a is not None and not isinstance(a, (int, float, complex, bool))]
    if not real:
        return np
    namespace = array_api_compat.array_namespace(*real)
    # array-api-compat wraps NumPy; the plain module is faster and equivalent for our use.
    return np if array_api_compat.is_numpy_namespace(namespace) else namespace


def resolve_namespace(xp: Any = None) -> Any:
    """Turn what a user passes as ``xp=`` into a namespace.

    Parameters
    ----------
    xp : None, str or module
        None or ``"numpy"`` gives NumPy; ``"cupy"`` and ``"array_api_strict"`` import those
        libraries; a module is returned as it is (NumPy's array-api-compat wrapper becomes NumPy).

    Raises
    ------
    ValueError
        For an unknown name; ImportError, with the install hint, when CuPy is absent.
    """
    if xp is None:
        return np
    if isinstance(xp, str):
        key = _NAMES.get(xp.lower())
        if key is None:
            raise invalid(
                "xp",
                xp,
                "None, a namespace module, or one of "
                + ", ".join(repr(k) for k in ("numpy", "cupy", "array_api_strict")),
            )
        if key == "cupy":
            try:
                return importlib.import_module("cupy")
            except ImportError as err:  # pragma: no cover - depends on the machine
                raise ImportError(
                    "xp='cupy' needs CuPy: pip install 'convexkit[gpu]' on a machine with CUDA"
                ) from err
        return np if key == "numpy" else importlib.import_module(key)
    if isinstance(xp, ModuleType):
        if array_api_compat.is_numpy_namespace(xp):
            return np
        return xp
    raise invalid("xp", xp, "None, a namespace module, or a namespace name")


def namespace_name(xp: Any) -> str:
    """Short name of a namespace: 'numpy', 'cupy', 'array_api_strict', 'symbolic', ..."""
    name = getattr(xp, "__name__", type(xp).__name__)
    if name.startswith("array_api_compat."):
        name = name.split(".", 1)[1]
    if name == "convexkit.symbolic.xp":
        return "symbolic"
    return name.split(".")[0]


def device_of(x: Any) -> Any:
    """The device of array ``x`` (None for Python scalars and SymPy objects)."""
    if x is None or isinstance(x, (int, float, complex, bool)) or is_symbolic(x):
        return None
    return array_api_compat.device(x)


_DTYPES = ("float64", "float32", "float16", "bfloat16")


def resolve_dtype(dtype: Any, xp: Any) -> Any:
    """The namespace's dtype object for ``dtype`` (a name such as 'float32', or a dtype).

    None gives float64. float16 is accepted only where the namespace has it; bfloat16 is
    accepted on NumPy through ml_dtypes.
    """
    if dtype is None:
        return xp.float64
    if isinstance(dtype, str):
        if dtype not in _DTYPES:
            raise invalid("dtype", dtype, "one of " + ", ".join(repr(d) for d in _DTYPES))
        if dtype == "bfloat16":
            if xp is not np:
                raise invalid("dtype", dtype, "bfloat16 only on NumPy (through ml_dtypes)")
            import ml_dtypes

            return np.dtype(ml_dtypes.bfloat16)
        found = getattr(xp, dtype, None)
        if found is None:
            raise invalid("dtype", dtype, f"a dtype that {namespace_name(xp)} provides")
        return found
    return dtype


def asarray(value: Any, xp: Any, *, dtype: Any = None, device: Any = None) -> Any:
    """``xp.asarray`` that also accepts NumPy arrays for non-NumPy namespaces and a device."""
    if xp is np:
        return np.asarray(value, dtype=dtype)
    if isinstance(value, np.ndarray) and not array_api_compat.is_cupy_namespace(xp):
        value = value.tolist() if value.ndim == 0 else value
    if device is None:
        return xp.asarray(value, dtype=dtype)
    return xp.asarray(value, dtype=dtype, device=device)


def to_numpy(x: Any) -> np.ndarray:
    """Copy ``x`` (any backend, any device) into a NumPy array on the host."""
    if isinstance(x, np.ndarray):
        return x
    if array_api_compat.is_cupy_array(x):
        return x.get()
    if isinstance(x, (int, float, complex, bool, np.generic)):
        return np.asarray(x)
    module = type(x).__module__
    if module.startswith("array_api_strict"):
        # array-api-strict refuses __array__ on purpose; DLPack needs the CPU device.
        import array_api_strict

        host = (
            array_api_strict.asarray(x, device=array_api_strict.Device("CPU_DEVICE"))
            if (x.device != array_api_strict.Device("CPU_DEVICE"))
            else x
        )
        return np.from_dlpack(host).copy()
    return np.asarray(x)


class Random:
    """A seeded random generator that hands out arrays of one backend.

    On NumPy and array-api-strict the numbers come from ``numpy.random.default_rng(seed)``
    and are moved to the target namespace and device, so both backends draw identical
    values. On CuPy they come from ``cupy.random.default_rng(seed)``: the same distribution,
    another stream.

    Parameters
    ----------
    seed : int, numpy.random.Generator or None
        Seed of the stream; a Generator is used as it is.
    xp : namespace, optional
        Target namespace (NumPy if None).
    device : optional
        Target device of the namespace.
    dtype : optional
        Floating dtype of the arrays drawn (float64 if None).
    """

    def __init__(self, seed: Any = None, xp: Any = None, device: Any = None, dtype: Any = None):
        self.xp = resolve_namespace(xp)
        self.device = device
        self.dtype = resolve_dtype(dtype, self.xp)
        self._on_gpu = array_api_compat.is_cupy_namespace(self.xp)
        if self._on_gpu:  # pragma: no cover - needs a GPU
            self._rng = self.xp.random.default_rng(seed)
        else:
            self._rng = (
                seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
            )

    def _move(self, values: Any, dtype: Any = None) -> Any:
        if self._on_gpu or self.xp is np:
            return values if dtype is None else values.astype(dtype, copy=False)
        return asarray(values, self.xp, dtype=dtype, device=self.device)

    def normal(self, shape: tuple[int, ...], scale: Any = 1.0) -> Any:
        """Gaussian draws of ``shape`` with standard deviation ``scale``."""
        draw = self._rng.standard_normal(shape)
        if self.xp is np or self._on_gpu:
            return (draw * scale).astype(self.dtype, copy=False)
        return self._move(draw * np.asarray(scale), self.dtype)

    def uniform(self, shape: tuple[int, ...], low: float = 0.0, high: float = 1.0) -> Any:
        """Uniform draws on [low, high)."""
        return self._move(self._rng.uniform(low, high, shape), self.dtype)

    def integers(self, high: int, shape: tuple[int, ...]) -> Any:
        """Integers drawn uniformly from 0 .. high-1 (index dtype of the namespace)."""
        return self._move(self._rng.integers(0, high, shape))

    def permutations(self, n: int, count: int) -> Any:
        """``count`` independent permutations of 0 .. n-1, shape (count, n), without a loop."""
        keys = self._rng.random((count, n))
        order = keys.argsort(axis=1)
        return self._move(order)
