"""The house rules that keep the code easy to change: one-way imports, a light top-level import,
and a public namespace in which every name of the contract resolves."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import convexkit

PACKAGE = Path(convexkit.__file__).resolve().parent

# A module may import convexkit modules of its own rank or lower, never higher.
RANKS = {
    "errors": 0,
    "symbolic": 1,
    "backend": 1,
    "plotting": 1,
    "codegen": 2,
    "schedules": 2,
    "data": 2,
    "optim": 3,
    "models": 3,
    "simulate": 4,
    "precision": 4,
    "kernels": 3,
    "theory": 5,
    "comparison": 5,
    "training": 6,
    "parallel": 7,
}


def _area(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(path: Path) -> list[str]:
    module = "convexkit." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    module = module.removesuffix(".__init__")
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
                if node.module is None:
                    found += [f"{target}.{alias.name}" for alias in node.names]
                else:
                    found.append(target)
            elif node.module:
                found.append(node.module)
    return [name for name in found if name.startswith("convexkit.")]


def _sources() -> list[Path]:
    return sorted(
        p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE
    )


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_one_way(path: Path) -> None:
    own = _area("convexkit." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts))
    assert own in RANKS, f"{path.name}: area {own!r} has no rank; add it to RANKS"
    for target in _imports(path):
        area = _area(target)
        assert area in RANKS, f"{path}: imports unknown area {target}"
        assert RANKS[area] <= RANKS[own], (
            f"{path.relative_to(PACKAGE)} (rank {RANKS[own]}) imports {target} (rank {RANKS[area]})"
        )


def test_top_level_import_is_light() -> None:
    code = (
        "import sys, convexkit\n"
        "heavy = [m for m in ('sympy', 'matplotlib', 'scipy', 'numba', 'distributed') "
        "if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import convexkit pulled in {out.stdout.strip()}"


def test_backend_never_imports_sympy_at_module_level() -> None:
    tree = ast.parse((PACKAGE / "backend.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
            assert not any(n.startswith("sympy") for n in names)


@pytest.mark.parametrize("name", sorted(convexkit._PUBLIC))
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(convexkit, name) is not None


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        convexkit.nonexistent  # noqa: B018
