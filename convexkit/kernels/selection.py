"""Fused top-k selection on the CPU (numba), for NumPy arrays of float32 or float64.

The array-API path of :mod:`convexkit.parallel.compression` ranks every entry with two sorts;
NumPy's partition is little better (tens of times a copy for 64 x 10^6 entries). Here each row
finds its k-th largest magnitude from a sample (the exact value is then picked among the few
candidates near the sampled quantile), and a second pass writes the message. With error
feedback the corrected gradient g + e is never stored: both passes recompute it.

The result equals the generic path exactly: the k entries of largest magnitude, ties broken by
the lower index, NaN never selected (rows with fewer than k non-NaN entries are handed back to
the generic path by returning None).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "available",
    "scatter_messages",
    "sparse_eligible",
    "topk_feedback_numpy",
    "topk_numpy",
    "topk_sparse",
]

_SAMPLE = 4096
_MIN_ROW = 4096  # below this the generic path is as fast and compiles nothing

try:
    import numba
except ImportError:  # pragma: no cover - numba is in the test extra
    numba = None


def available() -> bool:
    """Whether numba is importable (the fused kernels need it)."""
    return numba is not None


if numba is not None:

    @numba.njit(cache=True, nogil=True)
    def _row_threshold(g, e, use_e, k):  # pragma: no cover - compiled
        """(threshold t, number of entries equal to t to keep) for one row; (-1, -1) if the
        row has fewer than k non-NaN entries."""
        d = g.shape[0]
        step = max(1, d // _SAMPLE)
        count = (d + step - 1) // step
        sample = np.empty(count, dtype=np.float64)
        for j in range(count):
            i = j * step
            value = g[i] + e[i] if use_e else g[i]
            sample[j] = abs(value) if value == value else -1.0
        sample.sort()
        quantile = 1.0 - k / d
        centre = quantile * count
        spread = 4.0 * np.sqrt(count * quantile * (1.0 - quantile)) + 4.0
        lo_index = max(0, int(centre - spread))
        hi_index = min(count - 1, int(centre + spread))
        lo = sample[lo_index] if lo_index > 0 else -np.inf
        hi = sample[hi_index] if hi_index < count - 1 else np.inf
        capacity = 4 * int(spread * step) + 4 * step + 64
        candidates = np.empty(capacity, dtype=np.float64)
        above = 0
        within = 0
        finite = 0
        for i in range(d):
            value = g[i] + e[i] if use_e else g[i]
            if value != value:
                continue
            finite += 1
            magnitude = abs(value)
            if magnitude > hi:
                above += 1
            elif magnitude >= lo:
                if within < capacity:
                    candidates[within] = magnitude
                within += 1
        if finite < k:
            return -1.0, -1
        if above < k <= above + within and within <= capacity:
            chosen = np.sort(candidates[:within])
            threshold = chosen[within - (k - above)]
        else:
            # the sample missed the quantile (adversarial rows): select over the whole row
            every = np.empty(finite, dtype=np.float64)
            n = 0
            for i in range(d):
                value = g[i] + e[i] if use_e else g[i]
                if value == value:
                    every[n] = abs(value)
                    n += 1
            every.sort()
            threshold = every[finite - k]
        greater = 0
        for i in range(d):
            value = g[i] + e[i] if use_e else g[i]
            if abs(value) > threshold:
                greater += 1
        return threshold, k - greater

    @numba.njit(cache=True, parallel=True)
    def _topk_rows(g, e, use_e, k, message, error_out):  # pragma: no cover - compiled
        rows = g.shape[0]
        failed = np.zeros(rows, dtype=np.bool_)
        for r in numba.prange(rows):
            threshold, ties = _row_threshold(g[r], e[r], use_e, k)
            if ties < 0:
                failed[r] = True
                continue
            taken = 0
            for i in range(g.shape[1]):
                value = g[r, i] + e[r, i] if use_e else g[r, i]
                magnitude = abs(value)
                keep = magnitude > threshold
                if not keep and magnitude == threshold and taken < ties:
                    keep = True
                    taken += 1
                kept = value if keep else 0.0
                message[r, i] = kept
                if use_e:
                    error_out[r, i] = value - kept
        return failed


def _eligible(*arrays: Any) -> bool:
    first = arrays[0]
    return (
        numba is not None
        and all(type(a) is np.ndarray for a in arrays)
        and first.dtype in (np.float32, np.float64)
        and all(a.dtype == first.dtype for a in arrays)
        and first.ndim >= 1
        and first.shape[-1] >= _MIN_ROW
    )


def _run(g: np.ndarray, e: np.ndarray | None, k: int) -> tuple[np.ndarray, np.ndarray] | None:
    d = g.shape[-1]
    flat_g = np.ascontiguousarray(g.reshape(-1, d))
    use_e = e is not None
    flat_e = np.ascontiguousarray(e.reshape(-1, d)) if use_e else flat_g
    message = np.empty_like(flat_g)
    error = np.empty_like(flat_g) if use_e else message[:0]
    failed = _topk_rows(flat_g, flat_e, use_e, k, message, error)
    if failed.any():
        return None
    return message.reshape(g.shape), (error.reshape(g.shape) if use_e else error)


def topk_numpy(v: Any, k: int) -> np.ndarray | None:
    """Top-k of each row of ``v`` (last axis), or None where the fused path does not apply."""
    if not _eligible(v):
        return None
    result = _run(v, None, k)
    return None if result is None else result[0]


def topk_feedback_numpy(g: Any, e: Any, k: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(message, new error) of top-k with error feedback, or None where it does not apply."""
    if not _eligible(g, e) or g.shape != e.shape:
        return None
    return _run(g, e, k)


# ---- sparse messages with reused buffers --------------------------------------------------
#
# Data-parallel simulation sends top-k messages as (indices, values) pairs and adds them into
# the aggregate by scatter-add, so the dense (rows, d) message array is never written. The error
# buffer is updated in place, and the gradient can be computed inside the kernel for workers
# whose gradient is affine, ``h_w (x - c_w)``: then it is never stored either.

_PLAIN, _FEEDBACK, _AFFINE = 0, 1, 2

if numba is not None:

    @numba.njit(inline="always")
    def _corrected(mode, i, g, e, x, c, h):  # pragma: no cover - compiled
        if mode == _PLAIN:
            return g[i]
        if mode == _FEEDBACK:
            return g[i] + e[i]
        return h * (x[i] - c[i]) + e[i]

    @numba.njit(cache=True, nogil=True)
    def _sparse_threshold(mode, g, e, x, c, h, k):  # pragma: no cover - compiled
        """(threshold t, entries equal to t to keep); (-1, -1) for fewer than k non-NaN entries.

        One pass over the row: the entries above a sampled upper quantile are counted, those
        near it collected, and the exact k-th magnitude picked among them; the number of
        entries strictly above it follows from the same candidates, so no second counting
        pass is needed."""
        d = e.shape[0] if mode != _PLAIN else g.shape[0]
        step = max(1, d // _SAMPLE)
        count = (d + step - 1) // step
        sample = np.empty(count, dtype=np.float64)
        for j in range(count):
            value = _corrected(mode, j * step, g, e, x, c, h)
            sample[j] = abs(value) if value == value else -1.0
        sample.sort()
        quantile = 1.0 - k / d
        centre = quantile * count
        spread = 4.0 * np.sqrt(count * quantile * (1.0 - quantile)) + 4.0
        lo_index = max(0, int(centre - spread))
        hi_index = min(count - 1, int(centre + spread))
        lo = sample[lo_index] if lo_index > 0 else -np.inf
        hi = sample[hi_index] if hi_index < count - 1 else np.inf
        capacity = 4 * int(spread * step) + 4 * step + 64
        candidates = np.empty(capacity, dtype=np.float64)
        above = 0
        within = 0
        finite = 0
        for i in range(d):
            value = _corrected(mode, i, g, e, x, c, h)
            if value != value:
                continue
            finite += 1
            magnitude = abs(value)
            if magnitude > hi:
                above += 1
            elif magnitude >= lo:
                if within < capacity:
                    candidates[within] = magnitude
                within += 1
        if finite < k:
            return -1.0, -1
        if above < k <= above + within and within <= capacity:
            chosen = np.sort(candidates[:within])
            threshold = chosen[within - (k - above)]
            greater = above
            for j in range(within):
                if chosen[j] > threshold:
                    greater += 1
            return threshold, k - greater
        # the sample missed the quantile (adversarial rows): select over the whole row
        every = np.empty(finite, dtype=np.float64)
        n = 0
        for i in range(d):
            value = _corrected(mode, i, g, e, x, c, h)
            if value == value:
                every[n] = abs(value)
                n += 1
        every.sort()
        threshold = every[finite - k]
        greater = 0
        for j in range(finite):
            if every[j] > threshold:
                greater += 1
        return threshold, k - greater

    @numba.njit(cache=True, parallel=True)
    def _sparse_rows(mode, g, e, x, c, h, workers, k, values, indices):  # pragma: no cover
        """Rows r = run * workers + worker; ``x`` has one row per run, ``c`` and ``h`` one
        entry per worker. Writes ``values``, ``indices`` (ascending) and, with feedback, the
        new error into ``e``."""
        rows = values.shape[0]
        failed = np.zeros(rows, dtype=np.bool_)
        for r in numba.prange(rows):
            run = r // workers
            w = r % workers
            g_row = g[r] if mode != _AFFINE else g[0]
            e_row = e[r] if mode != _PLAIN else e[0]
            x_row = x[run] if mode == _AFFINE else x[0]
            c_row = c[w] if mode == _AFFINE else c[0]
            scale = h[w] if mode == _AFFINE else h[0]
            threshold, ties = _sparse_threshold(mode, g_row, e_row, x_row, c_row, scale, k)
            if ties < 0:
                failed[r] = True
                continue
            taken = 0
            slot = 0
            for i in range(e_row.shape[0] if mode != _PLAIN else g_row.shape[0]):
                value = _corrected(mode, i, g_row, e_row, x_row, c_row, scale)
                magnitude = abs(value)
                keep = magnitude > threshold
                if not keep and magnitude == threshold and taken < ties:
                    keep = True
                    taken += 1
                if keep:
                    values[r, slot] = value
                    indices[r, slot] = i
                    slot += 1
                if mode != _PLAIN:
                    # a - a rather than 0, as the generic path computes it (inf - inf is NaN)
                    e_row[i] = value - value if keep else value
        return failed

    @numba.njit(cache=True, parallel=True)
    def _scatter_rows(values, indices, weights, workers, out):  # pragma: no cover - compiled
        """out[run] = sum over workers w of weights[w] * (sparse message of row run*K + w),
        added in the order of the workers."""
        runs, d = out.shape
        for run in numba.prange(runs):
            for i in range(d):
                out[run, i] = 0.0
            for w in range(workers):
                r = run * workers + w
                for j in range(values.shape[1]):
                    out[run, indices[r, j]] += weights[w] * values[r, j]


def sparse_eligible(*arrays: Any) -> bool:
    """Whether :func:`topk_sparse` applies to these arrays (NumPy, float32/64, long rows)."""
    return _eligible(*arrays) and all(a.flags.c_contiguous for a in arrays)


def topk_sparse(
    k: int,
    values: np.ndarray,
    indices: np.ndarray,
    *,
    gradient: np.ndarray | None = None,
    error: np.ndarray | None = None,
    x: np.ndarray | None = None,
    centers: np.ndarray | None = None,
    curvature: np.ndarray | None = None,
) -> np.ndarray:
    """Top-k of every row as a sparse message, written into reused buffers.

    Three forms, by the arguments given:

    * ``gradient`` (rows, d): the message of ``gradient``;
    * ``gradient`` and ``error`` (rows, d): error feedback, ``a = g + e``; the message of
      ``a``, and ``error`` overwritten with ``a - message``;
    * ``error``, ``x`` (runs, d), ``centers`` (K, d) and ``curvature`` (K,): error feedback
      on the affine gradient of worker w of run b (row b*K + w), ``h_w (x_b - c_w)``,
      computed inside the kernel and never stored.

    ``values`` and ``indices`` of shape (rows, k) receive the kept entries in ascending index
    order. The selection is the generic path's: the k largest magnitudes, ties broken by the
    lower index, NaN never selected.

    Returns
    -------
    numpy.ndarray of bool, shape (rows,)
        True for rows with fewer than k non-NaN entries: for those nothing was written (their
        error is unchanged, their message slots hold no message), and the caller takes the
        generic path.
    """
    if numba is None:
        raise RuntimeError("topk_sparse needs numba (pip install 'convexkit[fast]')")
    if x is not None:
        workers = centers.shape[0]
        dummy = error[:1, :0]
        return _sparse_rows(
            _AFFINE, dummy, error, x, centers, curvature, workers, k, values, indices
        )
    else:
        mode = _PLAIN if error is None else _FEEDBACK
        e = gradient[:1] if error is None else error
        dummy = np.zeros((1, 0), dtype=gradient.dtype)
        one = np.ones(1, dtype=gradient.dtype)
        failed = _sparse_rows(mode, gradient, e, dummy, dummy, one, 1, k, values, indices)
    return failed


def scatter_messages(
    values: np.ndarray, indices: np.ndarray, weights: np.ndarray, out: np.ndarray
) -> np.ndarray:
    """``out[b] = sum_w weights[w] * message[b*K + w]`` for sparse messages (rows = runs * K)."""
    _scatter_rows(values, indices, weights, weights.shape[0], out)
    return out
