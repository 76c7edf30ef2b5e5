"""Regenerate every figure and the summary table of proven against measured.

Usage::

    python -m analyses.all                 # every analysis, figures/ and figures/SUMMARY.md
    python -m analyses.all --quick         # small sizes, for a smoke test
    python -m analyses.all --only momentum_region --only schedules
    python -m analyses.all --list

Every analysis module in this package (any ``analyses/<name>.py`` with ``run`` and ``plot``)
is found by itself. Figures are written atomically, so an interrupted run leaves the previous
files intact; re-running with the same seed gives byte-identical files, except the wall-clock
measurements of modules marked ``TIMING_DEPENDENT`` (their figures and ``TIMINGS.md``).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import analyses
from convexkit.plotting import write_text_atomic

ROOT = Path(__file__).resolve().parent.parent


def discover() -> list[str]:
    """Names of the analysis modules, sorted."""
    names = []
    for info in pkgutil.iter_modules(analyses.__path__):
        if info.ispkg or info.name == "all" or info.name.startswith("_"):
            continue
        names.append(info.name)
    return sorted(names)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "**no**"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def summary_markdown(results: dict[str, dict], *, timings: bool = False) -> str:
    """The summary table: one row per quantity, proven next to measured.

    With ``timings`` the table of the timing-dependent analyses (wall-clock measurements, which
    change from run to run); without, every other analysis (byte-identical on re-run).
    """
    title = "# Measured timings" if timings else "# Proven against measured"
    note = (
        "Written by `python -m analyses.all`; wall-clock measurements, different on every run."
        if timings
        else "Written by `python -m analyses.all`; every row is recomputed on each run."
    )
    lines = [
        title,
        "",
        note,
        "",
        "| analysis | quantity | proven | measured | agrees |",
        "|---|---|---|---|---|",
    ]
    for name, result in results.items():
        if bool(result.get("timing_dependent")) != timings:
            continue
        for row in result.get("summary", []):
            lines.append(
                "| "
                + " | ".join(
                    _cell(x)
                    for x in (
                        name,
                        row.get("quantity"),
                        row.get("proven"),
                        row.get("measured"),
                        row.get("agrees"),
                    )
                )
                + " |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m analyses.all", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this analysis (repeatable)",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of every random stream (default 0)"
    )
    parser.add_argument("--outdir", type=Path, default=ROOT / "figures", help="where figures go")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--list", action="store_true", help="list the analyses and stop")
    args = parser.parse_args(argv)

    names = discover()
    if args.list:
        print("\n".join(names))
        return 0
    unknown = [n for n in args.only if n not in names]
    if unknown:
        parser.error(f"--only {unknown[0]!r} is not an analysis; choose from: {', '.join(names)}")
    chosen = args.only or names

    from tqdm import tqdm

    results: dict[str, dict] = {}
    progress = tqdm(chosen, disable=args.no_progress, unit="analysis", file=sys.stderr)
    for name in progress:
        progress.set_description(name)
        module = importlib.import_module(f"analyses.{name}")
        start = time.perf_counter()
        result = module.run(quick=args.quick, seed=args.seed)
        module.plot(result, args.outdir)
        results[name] = {**result, "timing_dependent": getattr(module, "TIMING_DEPENDENT", False)}
        progress.write(f"{name}: {time.perf_counter() - start:.1f} s")
    if not args.only:
        write_text_atomic(args.outdir / "SUMMARY.md", summary_markdown(results))
        write_text_atomic(args.outdir / "TIMINGS.md", summary_markdown(results, timings=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
