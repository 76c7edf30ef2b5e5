"""Array creation that works on every namespace convexkit supports, NumPy 1.26 included
(whose creation functions take no ``device`` and which lacks ``concat``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import device_of


def zeros(xp: Any, shape: tuple[int, ...], like: Any) -> Any:
    """Zeros of ``shape`` with the dtype and device of ``like``."""
    if xp is np:
        return np.zeros(shape, dtype=like.dtype)
    return xp.zeros(shape, dtype=like.dtype, device=device_of(like))


def eye(xp: Any, n: int, like: Any) -> Any:
    """The n-by-n identity with the dtype and device of ``like``."""
    if xp is np:
        return np.eye(n, dtype=like.dtype)
    return xp.eye(n, dtype=like.dtype, device=device_of(like))


def concat(xp: Any, arrays: list[Any], axis: int) -> Any:
    """``xp.concat`` (``numpy.concatenate`` on NumPy)."""
    if xp is np:
        return np.concatenate(arrays, axis=axis)
    return xp.concat(arrays, axis=axis)
