"""mkdocs hook: publish the figures that ``python -m analyses.all`` writes to ``figures/``.

Pages link figures as ``figures/<name>.png``; the files live outside ``docs/`` (they are the
analyses' output), so they are added to the site here instead of being copied by hand.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File

FIGURES = Path(__file__).resolve().parent.parent / "figures"


def on_files(files, config):
    for png in sorted(FIGURES.glob("*.png")):
        files.append(
            File(
                f"figures/{png.name}",
                src_dir=str(FIGURES.parent),
                dest_dir=config["site_dir"],
                use_directory_urls=config["use_directory_urls"],
            )
        )
    return files
