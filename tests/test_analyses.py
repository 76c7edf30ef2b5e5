"""Every analysis module in quick mode: its summary rows, its figures and their reproducibility,
and the command ``python -m analyses.all`` that runs them all.

Each module found by :func:`analyses.all.discover` is run once (``run(quick=True, seed=0)``
and ``plot``); the tests below share that run. Its figures must be byte-identical to those of
an independent run of the same module (the command's, in another process), except for modules
that declare ``TIMING_DEPENDENT = True`` because their figures show measured wall times: for
those, drawing the same result twice must give the same bytes.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import analyses.all
from analyses.all import discover

ROOT = Path(analyses.all.__file__).resolve().parent.parent
NAMES = discover()
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ROW_KEYS = {"quantity", "proven", "measured", "agrees"}


@dataclass
class Analysis:
    """One quick run of an analysis module and the figures it drew."""

    name: str
    module: ModuleType
    result: Any
    outdir: Path
    paths: list[Path]
    seconds: float


@dataclass
class Command:
    """The finished ``python -m analyses.all --quick`` and its output folder."""

    process: subprocess.CompletedProcess
    outdir: Path


def _run_and_plot(module: ModuleType, outdir: Path) -> tuple[Any, list[Path]]:
    result = module.run(quick=True, seed=0)
    return result, list(module.plot(result, outdir))


@pytest.fixture(scope="module", params=NAMES)
def analysis(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Analysis:
    """Run one module in quick mode with seed 0 and draw its figures into a fresh folder."""
    name = request.param
    module = importlib.import_module(f"analyses.{name}")
    outdir = tmp_path_factory.mktemp(f"{name}-first")
    start = time.perf_counter()
    result, paths = _run_and_plot(module, outdir)
    return Analysis(name, module, result, outdir, paths, time.perf_counter() - start)


@pytest.fixture(scope="module")
def command(tmp_path_factory: pytest.TempPathFactory) -> Command:
    """``python -m analyses.all --quick --no-progress --outdir <tmp>`` in a subprocess."""
    outdir = tmp_path_factory.mktemp("all-quick")
    process = subprocess.run(
        [sys.executable, "-m", "analyses.all", "--quick", "--no-progress", "--outdir", str(outdir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    return Command(process, outdir)


def _bytes_by_name(paths: list[Path], outdir: Path) -> dict[str, bytes]:
    return {str(p.resolve().relative_to(outdir.resolve())): p.read_bytes() for p in paths}


def test_discover_finds_the_analyses() -> None:
    assert NAMES == sorted(NAMES)
    assert {"gradient_descent", "momentum", "adaptive_paths"} <= set(NAMES)
    assert not {"all", "_common"} & set(NAMES)


def test_plot_writes_png_files(analysis: Analysis) -> None:
    assert analysis.paths, f"{analysis.name}.plot returned no paths"
    assert len(set(analysis.paths)) == len(analysis.paths), "a figure is listed twice"
    for path in analysis.paths:
        path = Path(path)
        assert path.is_file(), f"{path} was returned but not written"
        assert path.resolve().is_relative_to(analysis.outdir.resolve()), (
            f"{path} is outside the requested folder {analysis.outdir}"
        )
        assert path.suffix == ".png"
        with path.open("rb") as stream:
            assert stream.read(8) == PNG_SIGNATURE, f"{path} is not a PNG file"


def test_summary_rows_have_the_four_keys(analysis: Analysis) -> None:
    assert isinstance(analysis.result, dict)
    rows = analysis.result.get("summary")
    assert isinstance(rows, list) and rows, f"{analysis.name}: no summary rows"
    for row in rows:
        assert isinstance(row, dict) and ROW_KEYS <= set(row), row
        assert isinstance(row["quantity"], str) and row["quantity"], row


def test_summary_agrees_is_a_python_bool_or_none(analysis: Analysis) -> None:
    """The table writes True/False as yes/**no**, which a NumPy bool would not get."""
    wrong = [
        (row["quantity"], type(row["agrees"]).__name__)
        for row in analysis.result["summary"]
        if row["agrees"] is not None and not isinstance(row["agrees"], bool)
    ]
    assert not wrong, wrong


def test_quick_summary_agrees(analysis: Analysis) -> None:
    failing = [
        (row["quantity"], row["proven"], row["measured"])
        for row in analysis.result["summary"]
        if row["agrees"] is False
    ]
    assert not failing, failing


def test_figures_are_reproducible(analysis: Analysis, command: Command, tmp_path: Path) -> None:
    """A second run with the same seed draws byte-identical figures.

    The command's run (another process) is the second one; where the command did not get to
    this module, the module is run once more here. A module whose figures show measured wall
    times (``TIMING_DEPENDENT = True``) cannot repeat its numbers, so for it the same result is
    drawn twice instead.
    """
    first = _bytes_by_name(analysis.paths, analysis.outdir)
    if getattr(analysis.module, "TIMING_DEPENDENT", False):
        second = _bytes_by_name(list(analysis.module.plot(analysis.result, tmp_path)), tmp_path)
        what = "drawing the same result again"
    elif all((command.outdir / name).is_file() for name in first):
        second = {name: (command.outdir / name).read_bytes() for name in first}
        what = "python -m analyses.all (or another analysis writing a file of the same name)"
    else:
        _, paths = _run_and_plot(analysis.module, tmp_path)
        second = _bytes_by_name(paths, tmp_path)
        what = "a second run"
    assert first.keys() == second.keys()
    differing = sorted(name for name in first if first[name] != second[name])
    assert not differing, f"{analysis.name}: {what} gave different bytes for {differing}"


def test_command_runs_every_analysis_and_writes_the_summary(command: Command) -> None:
    process = command.process
    assert process.returncode == 0, process.stderr[-4000:]
    summary = command.outdir / "SUMMARY.md"
    timings = command.outdir / "TIMINGS.md"
    assert summary.is_file() and timings.is_file()
    text = summary.read_text(encoding="utf-8")
    timed = timings.read_text(encoding="utf-8")
    assert text.startswith("# Proven against measured")
    assert timed.startswith("# Measured timings")
    # wall-clock rows go to TIMINGS.md so that SUMMARY.md is the same on every run
    timing_dependent = {
        name
        for name in NAMES
        if getattr(importlib.import_module(f"analyses.{name}"), "TIMING_DEPENDENT", False)
    }
    missing = [
        name for name in NAMES if f"| {name} |" not in (timed if name in timing_dependent else text)
    ]
    assert not missing, f"no summary rows for {missing}"
    assert not [name for name in timing_dependent if f"| {name} |" in text]
    output = process.stdout + process.stderr
    reported = {line.split(":")[0] for line in output.splitlines() if ": " in line}
    assert set(NAMES) <= reported, f"no time reported for {sorted(set(NAMES) - reported)}"
