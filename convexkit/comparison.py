"""Measured against proven: empirical rates, and comparisons of traces with bounds.

:func:`empirical_rate` fits ``log e_t ≈ a + t log ρ`` over a window of each trajectory's error
``e_t`` (the distance to the minimizer, or the optimality gap): the window starts after the
transient and stops before the error reaches the float floor (or leaves the finite range, for
a diverging run), so that ρ is the asymptotic factor per step. :func:`compare` holds a trace
against a :class:`~convexkit.theory.bounds.Bound` and returns a :class:`Comparison`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .backend import to_numpy
from .errors import check_choice, check_int, check_real, invalid
from .theory.bounds import Bound

__all__ = ["Comparison", "RateFit", "compare", "empirical_rate", "trajectory_errors"]

_KINDS = ("distance", "gap")


def _eps(dtype: Any) -> float:
    """Machine epsilon of a floating dtype (float64's when unknown)."""
    if dtype is None:
        return float(np.finfo(np.float64).eps)
    try:
        return float(np.finfo(dtype).eps)
    except (TypeError, ValueError):
        try:
            import ml_dtypes

            return float(ml_dtypes.finfo(dtype).eps)
        except (ImportError, TypeError, ValueError):
            return float(np.finfo(np.float64).eps)


def _host(value: Any) -> np.ndarray | None:
    return None if value is None else np.asarray(to_numpy(value), dtype=np.float64)


def trajectory_errors(
    trace: Any, of: str = "distance", *, x_star: Any = None, f_star: Any = None
) -> np.ndarray:
    """The error of every trajectory at every recorded step, shape (steps, B).

    Parameters
    ----------
    trace : Trace
        A trace with ``.x`` (steps, B, d) (for ``of="distance"``) or ``.loss`` (steps, B)
        (for ``of="gap"``).
    of : {"distance", "gap"}
        ``‖x_t − x*‖`` or ``f(x_t) − f*``.
    x_star : array of shape (d,) or (B, d), optional
        The minimizer (0 by default).
    f_star : float or array of shape (B,), optional
        The minimum (0 by default).
    """
    check_choice("of", of, _KINDS)
    if of == "distance":
        x = _host(getattr(trace, "x", None))
        if x is None:
            raise invalid("trace", trace, "a trace that recorded iterates (record='all')")
        star = 0.0 if x_star is None else _host(x_star)
        return np.sqrt(np.sum((x - star) ** 2, axis=-1))
    loss = _host(getattr(trace, "loss", None))
    if loss is None:
        raise invalid("trace", trace, "a trace with losses (an objective with a value function)")
    star = 0.0 if f_star is None else _host(f_star)
    return loss - star


@dataclass(frozen=True)
class RateFit:
    """An empirical rate with the window it was fitted on.

    Attributes
    ----------
    rate : numpy.ndarray of shape (B,)
        ``exp`` of the fitted slope of ``log e_t``: the factor per step.
    start, stop : numpy.ndarray of int, shape (B,)
        The window of each trajectory's fit, as positions in the recorded steps
        (``start <= i < stop``; the steps themselves where every step was recorded).
    """

    rate: np.ndarray
    start: np.ndarray
    stop: np.ndarray


def empirical_rate(
    trace: Any,
    *,
    of: str = "distance",
    x_star: Any = None,
    f_star: Any = None,
    window: tuple[int, int] | None = None,
    transient: float = 0.25,
    floor: float | None = None,
    ceiling: float = 1e100,
    envelope: int = 4,
    full: bool = False,
) -> Any:
    """The measured contraction factor per step of each trajectory.

    Parameters
    ----------
    trace : Trace or array
        A :class:`~convexkit.simulate.Trace`, or errors directly: an array of shape
        (steps,) or (steps, B) of positive numbers.
    of : {"distance", "gap"}
        Fit ``‖x_t − x*‖`` or ``f(x_t) − f*`` (for a trace). For a linear method on a quadratic
        the gap contracts at the square of the distance's rate.
    x_star, f_star : optional
        The minimizer and the minimum (0 by default).
    window : (start, stop), optional
        Fit on the records ``start <= i < stop`` of every trajectory, overriding the
        automatic choice (with ``envelope > 1`` the last ``envelope − 1`` of them only feed
        the running maximum).
    transient : float, default 0.25
        Automatic window: the fraction of each trajectory's usable steps skipped at the start.
    floor : float, optional
        Errors at or below this are not used (the float floor). By default
        ``1000 · eps · max(e_0, scale)``, ``scale`` being ``‖x*‖`` or ``|f*|``.
    ceiling : float, default 1e100
        Errors above ``ceiling · e_0`` are not used (a diverging trajectory), nor anything
        after a trace's ``diverged_at``.
    envelope : int, default 4
        Fit the running maximum of ``e_t .. e_{t+envelope−1}`` rather than ``e_t``: it fills
        the dips of an oscillating error (complex eigenvalues make ``|x_t|`` pass near zero
        every few steps) and leaves the slope of a geometric sequence unchanged. 1 fits
        ``e_t`` itself.
    full : bool
        Return a :class:`RateFit` with the windows instead of the rates alone.

    Returns
    -------
    numpy.ndarray of shape (B,), a float for one-dimensional input, or a RateFit
        ``ρ = exp(slope)``; 0 where the error vanished within two steps, NaN where no two
        usable steps exist.
    """
    check_real("transient", transient, low=0.0, high=1.0, high_open=True)
    check_real("ceiling", ceiling, low=1.0, low_open=True)
    envelope = check_int("envelope", envelope, minimum=1)
    diverged_at = None
    scale = 0.0
    times = None
    if hasattr(trace, "x") or hasattr(trace, "loss"):
        values = trajectory_errors(trace, of, x_star=x_star, f_star=f_star)
        if getattr(trace, "t", None) is not None:
            times = np.asarray(trace.t, dtype=np.float64)
        raw_diverged = getattr(trace, "diverged_at", None)
        if raw_diverged is not None:
            diverged_at = np.asarray(to_numpy(raw_diverged)).astype(np.int64)
        reference = x_star if of == "distance" else f_star
        if reference is not None:
            ref = _host(reference)
            scale = float(
                np.max(np.sqrt(np.sum(ref**2, axis=-1)) if of == "distance" else np.abs(ref))
            )
        final = getattr(trace, "x_final", None)
        eps = _eps(None if final is None else np.asarray(to_numpy(final)).dtype)
    else:
        values = np.asarray(trace, dtype=np.float64)
        eps = np.finfo(np.float64).eps
        if values.ndim not in (1, 2):
            raise invalid(
                "trace",
                f"array of shape {values.shape}",
                "a Trace or an array of shape (steps,) or (steps, B)",
            )
    single = values.ndim == 1
    e = np.abs(values.reshape(values.shape[0], -1))
    steps, batch = e.shape
    if steps < 2:
        raise invalid("trace", f"{steps} recorded step(s)", "at least two recorded steps")
    first = e[0]
    low = (
        np.full(batch, 1e3 * eps) * np.maximum(first, scale)
        if floor is None
        else np.full(batch, float(floor))
    )
    low = np.maximum(low, np.finfo(np.float64).tiny * 1e3)
    t = np.arange(steps)[:, None]  # positions of the records
    step = (np.arange(steps, dtype=np.float64) if times is None else times)[:, None]
    finite = np.isfinite(e) & (e <= ceiling * np.maximum(first, low))
    if diverged_at is not None:
        finite &= (diverged_at < 0) | (step <= diverged_at)
    if envelope > 1:
        # an oscillating error may pass through zero (|x_t| = 0 exactly at one step) without
        # having reached the float floor: judge the floor on the running maximum ahead
        ahead = np.concatenate([np.where(finite, e, 0.0), np.zeros((envelope - 1, batch))])
        reach = np.lib.stride_tricks.sliding_window_view(ahead, envelope, axis=0).max(axis=-1)
        # a value below the floor counts only as a dip of an oscillation well above it
        usable = finite & ((e > low) | (reach > 100.0 * low))
    else:
        usable = finite & (e > low)
    # usable steps form a prefix: stop at the first unusable one
    stop = np.where(usable.all(axis=0), steps, np.argmin(usable, axis=0))
    if window is not None:
        start_w, stop_w = (int(window[0]), int(window[1]))
        if not 0 <= start_w < stop_w <= steps:
            raise invalid("window", window, f"(start, stop) with 0 <= start < stop <= {steps}")
        start = np.full(batch, start_w)
        stop = np.minimum(stop, stop_w)
    else:
        start = np.floor(transient * stop).astype(np.int64)
        start = np.where(stop - start < 2, 0, start)
    if envelope > 1:
        # running maximum of e_t .. e_{t+envelope-1}, used where the whole span is usable
        padded = np.concatenate([np.where(usable, e, 0.0), np.zeros((envelope - 1, batch))])
        spans = np.lib.stride_tricks.sliding_window_view(padded, envelope, axis=0)
        smooth = spans.max(axis=-1)
        fits = stop - envelope + 1 - start >= 2
        series = np.where(fits, smooth, e)
        stop = np.where(fits, stop - envelope + 1, stop)
    else:
        series = e
    inside = (t >= start) & (t < stop)
    logs = np.where(inside, np.log(np.where(inside, series, 1.0)), 0.0)
    weight = inside.astype(np.float64)
    count = weight.sum(axis=0)
    mean_t = (weight * step).sum(axis=0) / np.maximum(count, 1)
    mean_y = logs.sum(axis=0) / np.maximum(count, 1)
    centered = (step - mean_t) * weight
    slope = (centered * (logs - mean_y)).sum(axis=0) / np.maximum((centered**2).sum(axis=0), 1e-300)
    rate = np.exp(slope)
    vanished = (stop <= 2) & (first > low)
    rate = np.where(count >= 2, rate, np.where(vanished, 0.0, np.nan))
    if full:
        return RateFit(rate, start, stop)
    return float(rate[0]) if single else rate


@dataclass(frozen=True)
class Comparison:
    """A trace held against a bound.

    Attributes
    ----------
    bound : Bound
        The proven result.
    empirical : numpy.ndarray or float
        What was measured: the empirical rate per trajectory (``quantity == "rate"``), the
        measured quantity at every recorded step (shape (steps, B)), or a batch mean.
    proven : numpy.ndarray or float
        The bound's value at the same places.
    holds : bool
        True when every measured value is within the bound: ``measured <= proven`` up to
        rounding (rates within ``rate_tol``; stochastic bounds within ``sigmas`` standard
        errors; exact values ``==`` within that many standard errors on both sides).
    margin : float
        Smallest relative slack ``1 − measured/proven`` (for ``"=="``, minus the largest
        relative deviation); negative where the bound fails.
    standard_error : float or None
        Of a stochastic measurement.
    details : dict
        What was compared (times, per-trajectory values).
    """

    bound: Bound
    empirical: Any
    proven: Any
    holds: bool
    margin: float
    standard_error: Any = None
    details: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        def show(v: Any) -> str:
            array = np.asarray(v, dtype=float)
            return f"{float(array):.6g}" if array.ndim == 0 else f"<array {array.shape}>"

        se = "" if self.standard_error is None else f", standard error {show(self.standard_error)}"
        return (
            f"Comparison({self.bound.name}: holds={self.holds}, margin={self.margin:.4g}, "
            f"empirical {show(self.empirical)}, proven {show(self.proven)}{se})"
        )


def _needs(bound: Bound, name: str) -> bool:
    return name in bound.symbols


def compare(
    trace: Any,
    bound: Bound,
    *,
    x_star: Any = None,
    f_star: Any = None,
    measured: Any = None,
    standard_error: Any = None,
    objective: Any = None,
    weights: Any = None,
    sigmas: float = 6.0,
    rtol: float = 1e-9,
    atol: Any = 0.0,
    rate_tol: Any = None,
    **values: Any,
) -> Comparison:
    """Hold a simulated trace (or a measured value) against a proven bound.

    Parameters
    ----------
    trace : Trace or None
        The simulation. None when ``measured`` is given.
    bound : Bound
        From ``ck.bounds``.
    x_star, f_star : optional
        Minimizer (0 by default) and minimum (0 by default).
    measured : array, optional
        The measured quantity itself instead of reading it from ``trace`` (needed for
        ``"regret"``, ``"minibatch_variance"`` and ``"newton_error"``): values that broadcast
        with the bound's. For a stochastic bound, a batch mean with its ``standard_error``.
    standard_error : array, optional
        Standard error of a stochastic ``measured``.
    objective : callable, optional
        ``value(x) -> (B,)`` for ``"gap_avg"``: the averaged iterate is evaluated with it.
    weights : array of shape (steps,), optional
        Averaging weights over the recorded iterates for ``"gap_avg"`` (the step sizes for
        SGD); a uniform average of all of them by default.
    sigmas : float, default 6
        Tolerance of stochastic comparisons, in standard errors.
    rtol, atol : float or array
        Rounding tolerances of deterministic comparisons: ``measured <= proven (1 + rtol) +
        atol``; read from a trace, a float floor of ``1000 eps`` times the starting error
        (and ``|f*|``) is added to ``atol``.
    rate_tol : float or array, optional
        Relative tolerance of rate bounds (a finite fit of an asymptotic rate). By default,
        per trajectory, ``0.005 + ln(stop/start)/(stop − start)`` for its fit window: the
        bias that a double eigenvalue (an error ``~ t ρ^t``, as at the optimal tunings)
        puts on a fit of ``log e_t`` over ``start <= t < stop``.
    **values : float or array
        The bound's symbols (``mu=``, ``L=``, ...). ``t``, ``T``, ``R0`` (``‖x_0 − x*‖``),
        ``D0`` (``f(x_0) − f*``) and ``e0`` (``x_0 − x*``) are read from the trace when not
        given.

    Returns
    -------
    Comparison
        Deterministic bounds are checked at every step and trajectory. A stochastic bound is
        checked on the batch: for each trajectory ``d_i = measured_i − proven_i`` has mean
        ``<= 0`` by the theorem, and the comparison holds when ``mean(d) <= sigmas · SE(d)``
        (``|mean(d)| <=`` that for an exact value).
    """
    if not isinstance(bound, Bound):
        raise invalid("bound", bound, "a Bound from ck.bounds")
    check_real("sigmas", sigmas, low=0.0)
    quantity = bound.quantity
    if measured is not None:
        proven = bound.evaluate(**values)
        empirical = np.asarray(measured, dtype=float)
        if bound.stochastic and standard_error is None:
            raise invalid(
                "standard_error", None, f"the standard error of the measured mean for {bound.name}"
            )
        se = None if standard_error is None else np.asarray(standard_error, dtype=float)
        return _deterministic(bound, empirical, proven, rtol, atol, {}, se=se, sigmas=sigmas)
    if trace is None:
        raise invalid("trace", trace, f"a Trace (or measured=) to compare with {bound.name}")
    if quantity == "rate":
        fit = empirical_rate(trace, x_star=x_star, full=True)
        proven = np.asarray(bound.evaluate(**values), dtype=float)
        ratio = fit.rate / proven
        if rate_tol is None:
            length = np.maximum(fit.stop - fit.start, 2)
            tolerance = 0.005 + np.log(fit.stop / np.maximum(fit.start, 1)) / length
        else:
            tolerance = np.asarray(rate_tol, dtype=float)
            if np.any(tolerance < 0):
                raise invalid("rate_tol", rate_tol, "non-negative values")
        holds = bool(np.all(ratio <= 1 + tolerance))
        details = {"start": fit.start, "stop": fit.stop, "rate_tol": tolerance}
        return Comparison(bound, fit.rate, proven, holds, float(np.min(1 - ratio)), None, details)
    steps = np.asarray(trace.t)
    x = _host(trace.x)
    if x is None:
        raise invalid("trace", trace, "a trace that recorded iterates (record='all')")
    star = 0.0 if x_star is None else _host(x_star)
    given = dict(values)
    if quantity in ("dist", "dist_sq", "gap"):
        dist = np.sqrt(np.sum((x - star) ** 2, axis=-1))
        if _needs(bound, "t"):
            given.setdefault("t", steps[:, None])
        if _needs(bound, "R0"):
            given.setdefault("R0", dist[0][None, :])
        floor = 1e3 * np.finfo(np.float64).eps * np.abs(dist[0])[None, :]
        if quantity == "gap" or _needs(bound, "D0"):
            loss = _host(trace.loss)
            if loss is None:
                raise invalid("trace", trace, f"a trace with losses for {bound.name}")
            reference = 0.0 if f_star is None else _host(f_star)
            gap = loss - reference
            if _needs(bound, "D0"):
                given.setdefault("D0", gap[0][None, :])
        if quantity == "gap":
            empirical = gap
            floor = 1e3 * np.finfo(np.float64).eps * (np.abs(gap[0]) + np.abs(reference))[None, :]
        else:
            empirical = dist if quantity == "dist" else dist**2
            floor = floor if quantity == "dist" else floor * np.abs(dist[0])[None, :]
        proven = np.broadcast_to(bound.evaluate(**given), empirical.shape)
        return _deterministic(bound, empirical, proven, rtol, atol + floor, {"t": steps})
    if quantity == "gap_avg":
        if objective is None:
            raise invalid(
                "objective", objective, f"a value function value(x) -> (B,) for {bound.name}"
            )
        w = np.ones(x.shape[0]) if weights is None else np.asarray(weights, dtype=float)
        if w.shape != (x.shape[0],):
            raise invalid(
                "weights",
                f"array of shape {w.shape}",
                f"shape ({x.shape[0]},): one weight per recorded iterate",
            )
        average = np.tensordot(w / w.sum(), x, axes=(0, 0))
        gaps = _host(objective(average)) - (0.0 if f_star is None else _host(f_star))
        if _needs(bound, "T"):
            given.setdefault("T", x.shape[0] - 1)
        if _needs(bound, "R0"):
            given.setdefault("R0", np.sqrt(np.sum((x[0] - star) ** 2, axis=-1)))
        proven = np.broadcast_to(bound.evaluate(**given), gaps.shape)
        if bound.stochastic:
            return _stochastic(bound, gaps, proven, sigmas, {})
        floor = 1e3 * np.finfo(np.float64).eps * np.abs(gaps)
        return _deterministic(bound, gaps, proven, rtol, atol + floor, {})
    if quantity in ("second_moment", "variance"):
        deviation = x - star
        if quantity == "variance":
            samples = (deviation[-1] ** 2).reshape(-1)
            proven = np.broadcast_to(bound.evaluate(**given), samples.shape)
            return _stochastic(bound, samples, proven, sigmas, {})
        squares = (deviation**2).reshape(deviation.shape[0], -1)  # (steps, B * d)
        if _needs(bound, "t"):
            given.setdefault("t", steps[:, None])
        if _needs(bound, "e0"):
            given.setdefault("e0", deviation[0].reshape(1, -1))
        proven = np.broadcast_to(bound.evaluate(**given), squares.shape)
        return _stochastic(bound, squares, proven, sigmas, {"t": steps}, axis=1)
    raise invalid(
        "measured",
        measured,
        f"the measured {quantity} (it is not read from a trace) for {bound.name}",
    )


def _deterministic(
    bound: Bound,
    empirical: np.ndarray,
    proven: np.ndarray,
    rtol: float,
    atol: Any,
    details: dict,
    *,
    se: np.ndarray | None = None,
    sigmas: float = 6.0,
) -> Comparison:
    """Every measured value against the bound at the same place."""
    empirical, proven = np.broadcast_arrays(np.asarray(empirical, float), np.asarray(proven, float))
    tolerance = rtol * np.abs(proven) + np.asarray(atol, dtype=float)
    if se is not None:
        tolerance = tolerance + sigmas * se
    if bound.relation == "==":
        deviation = np.abs(empirical - proven)
        holds = bool(np.all(deviation <= tolerance))
        meaningful = np.abs(proven) > tolerance
        relative = deviation / np.where(meaningful, np.abs(proven), 1.0)
        margin = float(-np.max(np.where(meaningful, relative, 0.0), initial=0.0))
    else:
        holds = bool(np.all(empirical <= proven + tolerance))
        meaningful = proven > tolerance
        slack = 1 - empirical / np.where(meaningful, proven, 1.0)
        margin = float(np.min(np.where(meaningful, slack, np.inf), initial=np.inf))
    return Comparison(bound, _plain(empirical), _plain(proven), holds, margin, _plain(se), details)


def _stochastic(
    bound: Bound,
    samples: np.ndarray,
    proven: np.ndarray,
    sigmas: float,
    details: dict,
    axis: int = 0,
) -> Comparison:
    """Independent samples of a random quantity against its proven mean (or mean bound)."""
    count = samples.shape[axis]
    if count < 2:
        raise invalid("trace", f"{count} trajectory", "at least two trajectories for a mean")
    difference = samples - proven
    mean_difference = difference.mean(axis=axis)
    se = difference.std(axis=axis, ddof=1) / np.sqrt(count)
    scale = np.abs(proven.mean(axis=axis))
    tolerance = sigmas * se + 1e-12 * scale
    if bound.relation == "==":
        holds = bool(np.all(np.abs(mean_difference) <= tolerance))
        margin = float(-np.max(np.abs(mean_difference) / np.maximum(scale, 1e-300)))
    else:
        holds = bool(np.all(mean_difference <= tolerance))
        margin = float(np.min(-mean_difference / np.maximum(scale, 1e-300)))
    empirical = samples.mean(axis=axis)
    return Comparison(
        bound,
        _plain(empirical),
        _plain(proven.mean(axis=axis)),
        holds,
        margin,
        _plain(se),
        {**details, "samples": count},
    )


def _plain(value: Any) -> Any:
    if value is None:
        return None
    array = np.asarray(value, dtype=float)
    return float(array) if array.ndim == 0 else array
