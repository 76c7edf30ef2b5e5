"""Every benchmark script in quick mode: it runs and prints its ratios (no timing claims)."""

from __future__ import annotations

import importlib
import pkgutil
import re

import pytest

import analyses.benchmarks

MODULES = sorted(m.name for m in pkgutil.iter_modules(analyses.benchmarks.__path__))


def test_every_benchmark_is_found():
    assert {"fused", "codegen_gradient", "parallel", "precision", "symbolic", "training"} <= set(
        MODULES
    )


@pytest.mark.parametrize("name", MODULES)
def test_benchmark_runs_in_quick_mode(name, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("CONVEXKIT_CACHE", str(tmp_path))
    module = importlib.import_module(f"analyses.benchmarks.{name}")
    module.main(["--quick"])
    printed = capsys.readouterr().out
    numbers = [float(n) for n in re.findall(r"(?<![\w.])\d+\.\d+(?:e[+-]?\d+)?", printed)]
    assert numbers, f"{name} printed no measurements:\n{printed}"
    assert "nan" not in printed.lower().split()
