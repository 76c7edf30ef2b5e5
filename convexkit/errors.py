"""Errors and argument checks shared by every layer.

Every check names the argument, shows the value it got and says what is allowed, so that a
user can act on the message without reading the source.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

__all__ = [
    "ConvexkitError",
    "ParseError",
    "check_choice",
    "check_int",
    "check_real",
    "interval_text",
    "invalid",
]


class ConvexkitError(ValueError):
    """Base class of convexkit's own errors (a ``ValueError``, so generic handlers catch it)."""


class ParseError(ConvexkitError):
    """Raised for text that is not a mathematical expression of the restricted grammar.

    The message names what was refused (an attribute access, an unknown function, a string
    literal, ...) and where in the text it stands.
    """


def _show(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def invalid(name: str, value: Any, allowed: str) -> ValueError:
    """Build the standard error for argument ``name`` holding ``value``.

    Parameters
    ----------
    name : str
        The argument's name as the user typed it.
    value : Any
        The value it received.
    allowed : str
        What is allowed, in words ("a positive number", "one of 'a', 'b'").

    Returns
    -------
    ValueError
        An exception to raise: ``raise invalid("lr", -1, "a positive number")``.
    """
    return ValueError(f"{name}={_show(value)} is not allowed: expected {allowed}")


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``, else raise a ValueError naming them."""
    options = tuple(choices)
    if value not in options:
        raise invalid(name, value, "one of " + ", ".join(repr(c) for c in options))
    return value


def check_int(name: str, value: Any, *, minimum: int | None = None) -> int:
    """Return ``value`` as an int, checking it is an integer (not a bool) at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise invalid(name, value, "an integer" + (f" >= {minimum}" if minimum is not None else ""))
    if minimum is not None and value < minimum:
        raise invalid(name, value, f"an integer >= {minimum}")
    return int(value)


def interval_text(
    low: float | None,
    high: float | None,
    low_open: bool = False,
    high_open: bool = False,
    allow_inf: bool = False,
) -> str:
    """An interval as an error message shows it: ``[0.0, inf)``; an unbounded end is open
    unless infinite values are allowed (``(0.0, inf]``)."""
    left = "(" if low_open or (low is None and not allow_inf) else "["
    right = ")" if high_open or (high is None and not allow_inf) else "]"
    return f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"


def check_real(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    allow_inf: bool = False,
) -> float:
    """Return ``value`` as a float after checking it is a finite real number in an interval.

    Parameters
    ----------
    name : str
        Argument name used in the error.
    value : Any
        The value to check.
    low, high : float, optional
        Interval ends; None means unbounded on that side.
    low_open, high_open : bool
        Whether the end itself is excluded.
    allow_inf : bool
        Whether an infinite value (within the interval) is allowed.
    """
    interval = interval_text(low, high, low_open, high_open, allow_inf)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise invalid(name, value, f"a real number in {interval}")
    number = float(value)
    if math.isnan(number) or (math.isinf(number) and not allow_inf):
        raise invalid(name, value, f"a finite real number in {interval}")
    if low is not None and (number < low or (low_open and number == low)):
        raise invalid(name, value, f"a real number in {interval}")
    if high is not None and (number > high or (high_open and number == high)):
        raise invalid(name, value, f"a real number in {interval}")
    return number
