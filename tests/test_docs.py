"""The documentation site: it builds with warnings as errors, documents every public name, links
only figures that the analyses write, and every REPL example on its pages gives the output shown.
"""

from __future__ import annotations

import doctest
import importlib.util
import pkgutil
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import convexkit

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CONFIG = DOCS / "mkdocs.yml"
FIGURES = ROOT / "figures"
ANALYSES = ROOT / "analyses"

FIGURE_LINK = re.compile(r"figures/([A-Za-z0-9_.-]+)\.png")
DIRECTIVE = re.compile(r"^:::\s*([\w.]+)\s*$")

# The smallest valid PNG (1 x 1, grey), standing in for a figure not generated on this machine.
PLACEHOLDER_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010800000000"
    "3a7e9b550000000a49444154789c6360000000020001e221bc330000000049454e44ae426082"
)


def _nav_pages() -> list[str]:
    yaml = pytest.importorskip("yaml", reason="PyYAML (installed with mkdocs) reads mkdocs.yml")
    config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    pages: list[str] = []

    def walk(node):
        if isinstance(node, str):
            pages.append(node)
        elif isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            for value in node.values():
                walk(value)

    walk(config["nav"])
    return pages


def _page_names() -> list[str]:
    """Markdown pages of the site (docs_dir is docs/ itself)."""
    return sorted(p.name for p in DOCS.glob("*.md"))


def _linked_figures() -> set[str]:
    names: set[str] = set()
    for page in DOCS.glob("*.md"):
        names.update(FIGURE_LINK.findall(page.read_text(encoding="utf-8")))
    return names


def _mkdocs_missing() -> str | None:
    for module, package in (
        ("mkdocs", "mkdocs"),
        ("mkdocstrings", "mkdocstrings[python]"),
        ("mkdocstrings_handlers.python", "mkdocstrings[python]"),
    ):
        try:
            found = importlib.util.find_spec(module)
        except ModuleNotFoundError:
            found = None
        if found is None:
            return f"{package} is not installed (pip install -e '.[docs]')"
    return None


def _build(config: Path, site: Path) -> subprocess.CompletedProcess:
    # From the repository root with a relative -f, as a user runs it: docs_dir is the config's
    # own folder, which mkdocs accepts only when the config path is given relative.
    root = config.parent.parent
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-f",
            str(config.relative_to(root)),
            "-d",
            str(site),
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_site_builds_without_warnings(tmp_path):
    """``mkdocs build --strict``: a broken link, a page missing from the nav, a docstring that
    does not parse or an unknown reference fails the build."""
    missing = _mkdocs_missing()
    if missing:
        pytest.skip(missing)
    absent = sorted(name for name in _linked_figures() if not (FIGURES / f"{name}.png").exists())
    if not absent:
        config = CONFIG
    else:
        # figures/ holds generated files (python -m analyses.all); where some are not there,
        # build a copy of the site whose figures/ has stand-ins for them, so that the build
        # still checks everything else. Their names are checked by the next test.
        root = tmp_path / "tree"
        shutil.copytree(DOCS, root / "docs", ignore=shutil.ignore_patterns("__pycache__"))
        (root / "figures").mkdir()
        for png in FIGURES.glob("*.png"):
            shutil.copy2(png, root / "figures" / png.name)
        for name in absent:
            (root / "figures" / f"{name}.png").write_bytes(PLACEHOLDER_PNG)
        (root / "convexkit").symlink_to(ROOT / "convexkit", target_is_directory=True)
        config = root / "docs" / "mkdocs.yml"
    site = tmp_path / "site"
    result = _build(config, site)
    assert result.returncode == 0, (
        f"mkdocs build --strict failed (exit {result.returncode}):\n"
        f"{result.stdout[-5000:]}\n{result.stderr[-5000:]}"
    )
    for page in _nav_pages():
        html = site / ("index.html" if page == "index.md" else f"{page[:-3]}/index.html")
        assert html.exists(), f"{page} is in the nav but {html} was not built"
    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    for anchor in ("convexkit.symbolic.problem.Problem", "convexkit.simulate.run"):
        assert f'id="{anchor}"' in api, f"the API reference has no entry {anchor}"


def test_linked_figures_are_written_by_the_analyses():
    """Every ``figures/<name>.png`` a page links is a file that some analysis writes."""
    sources = "\n".join(p.read_text(encoding="utf-8") for p in ANALYSES.rglob("*.py"))
    unknown = sorted(name for name in _linked_figures() if f"{name}.png" not in sources)
    assert not unknown, f"pages link figures that no analysis writes: {unknown}"


def test_nav_and_pages_agree():
    """Every page of docs/ is in the nav and every nav entry exists."""
    nav = _nav_pages()
    missing = sorted(page for page in nav if not (DOCS / page).exists())
    assert not missing, f"the nav of docs/mkdocs.yml lists pages that do not exist: {missing}"
    orphans = sorted(set(_page_names()) - set(nav))
    assert not orphans, f"pages of docs/ missing from the nav of docs/mkdocs.yml: {orphans}"


def _directives() -> dict[str, bool]:
    """The ``::: module`` blocks of api.md: target -> whether it documents its members."""
    found: dict[str, bool] = {}
    target = None
    for line in (DOCS / "api.md").read_text(encoding="utf-8").splitlines():
        match = DIRECTIVE.match(line.strip()) if not line.startswith(" ") else None
        if match:
            target = match.group(1)
            found[target] = True
        elif target and line.startswith(" ") and re.search(r"members:\s*false", line):
            found[target] = False
        elif line.strip() and not line.startswith(" "):
            target = None
    return found


def test_every_public_name_is_documented():
    """Each name of ``convexkit._PUBLIC`` is named in api.md or documented by a ``:::`` block
    covering its module."""
    api = (DOCS / "api.md").read_text(encoding="utf-8")
    blocks = _directives()
    undocumented = []
    for name, (module, attribute) in convexkit._PUBLIC.items():
        if attribute is None:
            covered = module in blocks
        else:
            covered = (
                blocks.get(module, False)
                or f"{module}.{attribute}" in blocks
                or re.search(rf"\b{re.escape(name)}\b", api) is not None
            )
        if not covered:
            undocumented.append(f"{name} ({module})")
    assert not undocumented, f"public names missing from docs/api.md: {undocumented}"


def test_every_public_module_has_a_reference_block():
    """Every importable module of the package without a leading underscore has a ``:::`` block."""
    blocks = _directives()
    modules = ["convexkit"] + [
        info.name
        for info in pkgutil.walk_packages(convexkit.__path__, "convexkit.")
        if not any(part.startswith("_") for part in info.name.split("."))
    ]
    missing = sorted(set(modules) - set(blocks))
    assert not missing, f"modules without a ::: block in docs/api.md: {missing}"
    stale = sorted(set(blocks) - set(modules))
    assert not stale, f"::: blocks in docs/api.md for modules that do not exist: {stale}"


def _examples(page: Path) -> str:
    """The page with everything but its ```pycon blocks blanked, so line numbers still match."""
    lines = page.read_text(encoding="utf-8").splitlines()
    kept, inside = [], False
    for line in lines:
        if line.strip() == "```pycon":
            inside = True
            kept.append("")
        elif inside and line.strip() == "```":
            inside = False
            kept.append("")
        else:
            kept.append(line if inside else "")
    return "\n".join(kept) + "\n"


def _pages_with_examples() -> list[str]:
    return [name for name in _page_names() if "```pycon" in (DOCS / name).read_text("utf-8")]


@pytest.mark.parametrize("page", _pages_with_examples())
def test_page_examples_give_the_output_shown(page, monkeypatch):
    """The REPL sessions on each page, run top to bottom as one doctest."""
    monkeypatch.setenv("MPLBACKEND", "Agg")
    path = DOCS / page
    test = doctest.DocTestParser().get_doctest(
        _examples(path), {"__name__": "__docs__"}, page, str(path), 0
    )
    assert test.examples, f"{page} has a pycon block without examples"
    report: list[str] = []
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    result = runner.run(test, out=report.append, clear_globs=True)
    assert result.failed == 0, "".join(report)
