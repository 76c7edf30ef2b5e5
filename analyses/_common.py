"""Small helpers the analysis modules share."""

from __future__ import annotations

from typing import Any


def row(quantity: str, proven: Any, measured: Any, agrees: bool | None = None) -> dict[str, Any]:
    """One line of the summary table: a quantity with its proven and measured values."""
    verdict = None if agrees is None else bool(agrees)  # NumPy bools print as "True"
    return {"quantity": quantity, "proven": proven, "measured": measured, "agrees": verdict}
