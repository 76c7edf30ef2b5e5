"""mkdocs hook: turn the Sphinx roles of the docstrings into links on the API reference.

The docstrings cross-reference with Sphinx roles (``:class:`Problem```, ``:func:`~convexkit.run```),
which mkdocstrings renders as the role's name followed by code. On the page that holds the
reference, each role becomes a link to the object's heading, resolved as Python resolves a
name: from the object whose docstring it is in, outwards to its module and the package.
Names that are not documented there stay plain code.
"""

from __future__ import annotations

import bisect
import re

ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|obj|exc):<code>~?([\w.]+)(\(\))?</code>")
HEADING = re.compile(r'<h\d id="(convexkit(?:\.[\w]+)*)"')


def _resolve(name: str, scope: str, ids: set[str]) -> str | None:
    if name in ids:
        return name
    parts = scope.split(".")
    while parts:
        candidate = ".".join(parts + [name])
        if candidate in ids:
            return candidate
        parts.pop()
    return None


def on_page_content(html, page, config, files):
    headings = [(m.start(), m.group(1)) for m in HEADING.finditer(html)]
    if not headings:
        return html
    ids = {name for _, name in headings}
    starts = [position for position, _ in headings]

    def link(match: re.Match) -> str:
        name, call = match.group(1), match.group(2) or ""
        index = bisect.bisect_right(starts, match.start()) - 1
        scope = headings[index][1] if index >= 0 else "convexkit"
        target = _resolve(name, scope, ids)
        shown = name.rsplit(".", 1)[-1] if "~" in match.group(0) else name
        code = f"<code>{shown}{call}</code>"
        return f'<a href="#{target}">{code}</a>' if target else code

    return ROLE.sub(link, html)
