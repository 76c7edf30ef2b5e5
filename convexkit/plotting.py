"""Matplotlib helpers: the Agg backend, a house style, and deterministic, atomic saving.

Figures written by :func:`savefig` are byte-identical on re-run (no time stamps or version
strings in the metadata) and appear atomically: a reader, or an interrupted run, sees either
the previous file or the new one, never half of one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["figure", "savefig", "write_text_atomic"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "figure.dpi": 100,
            "savefig.dpi": 100,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "font.size": 9,
            "svg.hashsalt": "convexkit",
        }
    )
    return plt


def figure(
    ncols: int = 1, nrows: int = 1, *, width: float = 4.0, height: float = 3.2, **kwargs: Any
):
    """A new figure and its axes on the Agg backend: ``fig, axes = figure(2)``."""
    plt = _pyplot()
    return plt.subplots(
        nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, **kwargs
    )


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as stream:
            stream.write(text)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def savefig(fig: Any, path: str | os.PathLike) -> Path:
    """Save ``fig`` as PNG to ``path`` deterministically and atomically, then close it."""
    plt = _pyplot()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
    )
    os.close(handle)
    try:
        fig.savefig(temporary, format="png", metadata={"Software": None}, bbox_inches=None)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    finally:
        plt.close(fig)
    return target
