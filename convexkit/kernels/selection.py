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
# the aggregate by scatter-add, so the dense (rows, d) message array is never written. With error
# feedback the corrected gradient a = g + e is written once into the error buffer, in one
# vectorizable pass that also counts, per block of entries, those near or above the sampled
# quantile; the exact threshold is then found among the few entries of the flagged blocks, and
# only the kept entries are touched again (their error becomes a - a). For workers whose
# gradient is affine, ``h_w (x - c_w)``, the gradient is computed inside that pass and never
# stored.

_BLOCK = 16  # entries per flag: small enough that few blocks hold a candidate
_CHUNK = 1024  # entries per chunk: the flagged blocks are read again while still in cache
_PARALLEL_ENTRIES = 2**22

if numba is not None:

    @numba.njit(inline="always")
    def _corrected_value(affine, i, g, x, c, h, e):  # pragma: no cover - compiled
        if affine:
            return h * (x[i] - c[i]) + e[i]
        return g[i] + e[i]

    # The two passes below differ in one line (how the gradient is formed). They are written
    # out separately: with the choice as a runtime flag inside the loop, LLVM does not
    # vectorize it, and the pass is then several times slower.

    @numba.njit(cache=True, nogil=True)
    def _pass_feedback(g, e, lo, hi, flags):  # pragma: no cover - compiled
        """e[i] <- g[i] + e[i] for one chunk; returns (above hi, non-NaN) counts and writes
        per block of 16 entries the count of those at or above lo into ``flags``."""
        above = 0
        finite = 0
        d = e.shape[0]
        full = d // _BLOCK
        for b in range(full):
            first = b * _BLOCK
            count = 0
            for j in range(_BLOCK):  # a constant trip count: unrolled and vectorized
                value = g[first + j] + e[first + j]
                e[first + j] = value
                magnitude = abs(value)
                above += magnitude > hi
                finite += value == value
                count |= np.int32(magnitude >= lo) << j
            flags[b] = count
        count = 0
        for i in range(full * _BLOCK, d):
            value = g[i] + e[i]
            e[i] = value
            magnitude = abs(value)
            above += magnitude > hi
            finite += value == value
            count |= np.int32(magnitude >= lo) << (i - full * _BLOCK)
        flags[full] = count
        return above, finite

    # two copies of one loop on purpose: a branch on ``affine`` inside it stops vectorization,
    # so :func:`_pass` chooses the loop once per chunk
    @numba.njit(cache=True, nogil=True)
    def _pass_affine(x, c, h, e, lo, hi, flags):  # pragma: no cover - compiled
        """As :func:`_pass_feedback` with the gradient h (x - c) formed on the fly."""
        above = 0
        finite = 0
        d = e.shape[0]
        full = d // _BLOCK
        for b in range(full):
            first = b * _BLOCK
            count = 0
            for j in range(_BLOCK):
                value = h * (x[first + j] - c[first + j]) + e[first + j]
                e[first + j] = value
                magnitude = abs(value)
                above += magnitude > hi
                finite += value == value
                count |= np.int32(magnitude >= lo) << j
            flags[b] = count
        count = 0
        for i in range(full * _BLOCK, d):
            value = h * (x[i] - c[i]) + e[i]
            e[i] = value
            magnitude = abs(value)
            above += magnitude > hi
            finite += value == value
            count |= np.int32(magnitude >= lo) << (i - full * _BLOCK)
        flags[full] = count
        return above, finite

    @numba.njit(cache=True, nogil=True)
    def _pass(affine, g, x, c, h, e, lo, hi, recorded, kept):  # pragma: no cover - compiled
        """e <- a = g + e (g = h (x - c) when ``affine``), in one pass that counts the
        entries above hi and the non-NaN ones, and records (ascending) the indices of the
        entries at or above lo and their values (``kept``). Returns (above, finite, recorded
        count); a count above ``len(recorded) - 1`` means the buffers overflowed (their last
        slot takes the excess).

        Chunk by chunk: a vectorized loop forms a and counts, per block of 16 entries, those
        at or above lo; then only the blocks with such entries are read again, while the
        chunk is still in cache."""
        d = e.shape[0]
        last = recorded.shape[0] - 1
        flags = np.empty(_CHUNK // _BLOCK + 1, dtype=np.int32)
        above = 0
        finite = 0
        n = 0
        for start in range(0, d, _CHUNK):
            stop = min(d, start + _CHUNK)
            if affine:
                counts = _pass_affine(x[start:stop], c[start:stop], h, e[start:stop], lo, hi, flags)
            else:
                counts = _pass_feedback(g[start:stop], e[start:stop], lo, hi, flags)
            above += counts[0]
            finite += counts[1]
            for b in range((stop - start + _BLOCK - 1) // _BLOCK):
                bits = flags[b]
                if bits != 0:
                    first = start + b * _BLOCK
                    for j in range(min(_BLOCK, stop - first)):  # the block is still cached
                        slot = min(n, last)
                        recorded[slot] = first + j
                        kept[slot] = e[first + j]
                        n += (bits >> j) & 1
        return above, finite, n

    @numba.njit(cache=True, nogil=True)
    def _kth_smallest(a, kth):  # pragma: no cover - compiled
        """The value of rank ``kth`` (0-based) of ``a``, reordering ``a`` in place
        (quickselect with a median-of-three pivot; numba's np.partition takes long to
        compile)."""
        lo = 0
        hi = a.shape[0] - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if a[mid] < a[lo]:
                a[mid], a[lo] = a[lo], a[mid]
            if a[hi] < a[lo]:
                a[hi], a[lo] = a[lo], a[hi]
            if a[hi] < a[mid]:
                a[hi], a[mid] = a[mid], a[hi]
            pivot = a[mid]
            i = lo
            j = hi
            while i <= j:
                while a[i] < pivot:
                    i += 1
                while a[j] > pivot:
                    j -= 1
                if i <= j:
                    a[i], a[j] = a[j], a[i]
                    i += 1
                    j -= 1
            if kth <= j:
                hi = j
            elif kth >= i:
                lo = i
            else:
                return a[kth]
        return a[kth]

    @numba.njit(cache=True, nogil=True)
    def _quantile_bounds(sample, k, d, like):  # pragma: no cover - compiled
        """[lo, hi] around the (1 - k/d) quantile of the sampled magnitudes, in the row's
        dtype (``like`` is a one-entry array of it), and the number of entries expected at
        or above lo (with a generous margin)."""
        count = sample.shape[0]
        quantile = 1.0 - k / d
        centre = quantile * count
        spread = 4.0 * np.sqrt(count * quantile * (1.0 - quantile)) + 4.0
        lo_index = max(0, int(centre - spread))
        hi_index = min(count - 1, int(centre + spread))
        bounds = np.empty(2, dtype=like.dtype)
        # after selecting rank hi_index, every entry before it is at most the selected value
        upper = _kth_smallest(sample, hi_index)
        bounds[1] = upper if hi_index < count - 1 else np.inf
        bounds[0] = _kth_smallest(sample[:hi_index], lo_index) if lo_index > 0 else 0.0
        step = d / count
        return bounds, k + int(4 * spread * step + 4 * step) + 64

    @numba.njit(cache=True, nogil=True)
    def _select_row(
        e, k, hi, above, finite, recorded, kept, n, values, indices
    ):  # pragma: no cover
        """With e holding a = g + e, and the indices and values of its entries at or above lo
        recorded: pick the top k of a, write them to values/indices in ascending index
        order, and set their error to a - a. False if a has fewer than k non-NaN entries (e
        then still holds a).

        The loops over the recorded entries are written without branches on the data (a
        slot is written always and the position advances by 0 or 1): about half of the
        recorded entries are kept, so a branch would be mispredicted half the time."""
        d = e.shape[0]
        if finite < k:
            return False
        if above < k <= n < recorded.shape[0]:
            within = n - above
            candidates = np.empty(within + 1, dtype=np.float64)
            m = 0
            for j in range(n):
                magnitude = abs(kept[j])
                candidates[m] = magnitude
                m += magnitude <= hi
            # a partial order suffices: the kth-largest candidate, in linear time
            threshold = _kth_smallest(candidates[:within], within - (k - above))
            greater = above
            for j in range(within):
                greater += candidates[j] > threshold
        else:
            # the sample missed the quantile (adversarial rows): select over the whole row
            every = np.empty(finite, dtype=np.float64)
            m = 0
            for i in range(d):
                if e[i] == e[i]:
                    every[m] = abs(e[i])
                    m += 1
            threshold = _kth_smallest(every, finite - k)
            greater = 0
            for j in range(finite):
                if every[j] > threshold:
                    greater += 1
            recorded = np.empty(d, dtype=np.int64)
            kept = np.empty(d, dtype=e.dtype)
            n = 0
            for i in range(d):
                if abs(e[i]) >= threshold:
                    recorded[n] = i
                    kept[n] = e[i]
                    n += 1
        ties = k - greater
        taken = 0
        slot = 0
        kept_values = np.empty(k + 1, dtype=e.dtype)
        kept_indices = np.empty(k + 1, dtype=np.int64)
        for j in range(n):
            i = recorded[j]
            value = kept[j]
            magnitude = abs(value)
            tie = magnitude == threshold and taken < ties
            keep = magnitude > threshold or tie
            taken += tie
            kept_values[slot] = value
            kept_indices[slot] = i
            slot += keep
            # a - a rather than 0, as the generic path computes it (inf - inf is NaN)
            e[i] = value - value if keep else value
        values[:] = kept_values[:k]
        indices[:] = kept_indices[:k]
        return True

    @numba.njit(cache=True, nogil=True)
    def _sparse_row(affine, r, g, e, x, c, h, workers, k, values, indices):  # pragma: no cover
        """Row r = run * workers + worker. ``affine``: its gradient is h[w] (x[run] - c[w]);
        otherwise g[r]. False if the row failed."""
        d = e.shape[1]
        step = max(1, d // _SAMPLE)
        count = (d + step - 1) // step
        run = r // workers
        w = r % workers
        e_row = e[r]
        g_row = g[0] if affine else g[r]
        x_row = x[run] if affine else x[0]
        c_row = c[w] if affine else c[0]
        scale = h[w] if affine else h[0]
        sample = np.empty(count, dtype=np.float64)
        for j in range(count):
            value = _corrected_value(affine, j * step, g_row, x_row, c_row, scale, e_row)
            sample[j] = abs(value) if value == value else -1.0
        bounds, capacity = _quantile_bounds(sample, k, d, e_row[:1])
        recorded = np.empty(capacity + 1, dtype=np.int64)
        kept = np.empty(capacity + 1, dtype=e.dtype)
        above, finite, n = _pass(
            affine, g_row, x_row, c_row, scale, e_row, bounds[0], bounds[1], recorded, kept
        )
        return _select_row(
            e_row, k, bounds[1], above, finite, recorded, kept, n, values[r], indices[r]
        )

    @numba.njit(cache=True, parallel=True)
    def _sparse_rows(affine, g, e, x, c, h, workers, k, values, indices):  # pragma: no cover
        """:func:`_sparse_row` for every row, rows in parallel; the rows that failed."""
        failed = np.zeros(e.shape[0], dtype=np.bool_)
        for r in numba.prange(e.shape[0]):
            failed[r] = not _sparse_row(affine, r, g, e, x, c, h, workers, k, values, indices)
        return failed

    # Rows in parallel pay for waking the worker threads (milliseconds when other processes
    # hold the cores); below _PARALLEL_ENTRIES entries in all, one thread is faster.
    @numba.njit(cache=True)
    def _sparse_rows_serial(affine, g, e, x, c, h, workers, k, values, indices):  # pragma: no cover
        """:func:`_sparse_row` for every row, one after the other; the rows that failed."""
        failed = np.zeros(e.shape[0], dtype=np.bool_)
        for r in range(e.shape[0]):
            failed[r] = not _sparse_row(affine, r, g, e, x, c, h, workers, k, values, indices)
        return failed

    @numba.njit(cache=True)
    def _scatter_rows(values, indices, weights, workers, out):  # pragma: no cover - compiled
        """out[run] = sum over workers w of weights[w] * (sparse message of row run*K + w),
        added in the order of the workers."""
        runs, d = out.shape
        for run in range(runs):
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
    error: np.ndarray,
    *,
    gradient: np.ndarray | None = None,
    x: np.ndarray | None = None,
    centers: np.ndarray | None = None,
    curvature: np.ndarray | None = None,
) -> np.ndarray:
    """Top-k with error feedback of every row, as a sparse message, in reused buffers.

    The corrected gradient of row r is ``a = g + e`` with ``e = error[r]`` and ``g`` either
    ``gradient[r]`` (rows, d) or, given ``x`` (runs, d), ``centers`` (K, d) and ``curvature``
    (K,), the affine gradient ``h_w (x_b - c_w)`` of worker w of run b (row b*K + w),
    computed inside the kernel and never stored. The message is the top k of ``a``: the k
    largest magnitudes, ties broken by the lower index, NaN never selected, the generic
    path's selection exactly.

    ``values`` and ``indices`` of shape (rows, k) receive the kept entries in ascending index
    order; ``error`` is overwritten with ``a - message``.

    Returns
    -------
    numpy.ndarray of bool, shape (rows,)
        True for rows with fewer than k non-NaN entries: there ``error`` holds ``a`` itself
        and the message slots hold nothing; the caller takes the generic path from ``a``.
    """
    if numba is None:
        raise RuntimeError("topk_sparse needs numba (pip install 'convexkit[fast]')")
    given = [a for a in (gradient, x, centers, curvature, values) if a is not None]
    if not all(isinstance(a, np.ndarray) and a.dtype == error.dtype for a in given):
        raise ValueError(
            f"topk_sparse: every array must have the error's dtype {error.dtype} "
            f"(got {[str(getattr(a, 'dtype', type(a).__name__)) for a in given]})"
        )
    kernel = _sparse_rows if error.size >= _PARALLEL_ENTRIES else _sparse_rows_serial
    if x is not None:
        dummy = np.zeros((1, 1), dtype=error.dtype)
        return kernel(
            True, dummy, error, x, centers, curvature, centers.shape[0], k, values, indices
        )
    dummy = np.zeros((1, 1), dtype=gradient.dtype)
    one = np.ones(1, dtype=gradient.dtype)
    return kernel(False, gradient, error, dummy, dummy, one, 1, k, values, indices)


def scatter_messages(
    values: np.ndarray, indices: np.ndarray, weights: np.ndarray, out: np.ndarray
) -> np.ndarray:
    """``out[b] = sum_w weights[w] * message[b*K + w]`` for sparse messages (rows = runs * K)."""
    _scatter_rows(values, indices, weights, weights.shape[0], out)
    return out
