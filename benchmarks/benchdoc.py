"""One place that rewrites a benchmark's section of ``docs/BENCHMARKS.md``.

Each benchmark script owns the text between ``<!-- BEGIN name -->`` and
``<!-- END name -->``; running it again replaces that block and leaves the rest alone.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

__all__ = ["DOC", "section", "write_section"]

DOC = Path(__file__).resolve().parents[1] / "docs" / "BENCHMARKS.md"
"""The file every benchmark writes its section of."""


def section(
    title: str, intro: str, columns: str, rows: Sequence[str], note: str = "", align: str = ""
) -> str:
    """A benchmark's Markdown: ``title``, ``intro``, a table (``columns`` is its header row,
    ``align`` its separator row, left-aligned by default) and an optional ``note``."""
    n = columns.count("|") - 1
    lines = [title, "", intro, "", columns, align or "|" + " --- |" * n, *rows]
    return "\n".join([*lines, "", note] if note else lines)


def write_section(doc: Path, name: str, body: str, heading: str | None = None) -> None:
    """Replace the ``name`` block of ``doc`` with ``body``, or append it (after ``heading``).

    Args:
        doc: the Markdown file (created with a ``# Benchmarks`` title if absent).
        name: the marker name.
        body: the new text between the markers.
        heading: a line written before the block only when the block is appended.
    """
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    block = f"{begin}\n{body.rstrip()}\n{end}"
    text = doc.read_text() if doc.is_file() else "# Benchmarks\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        prefix = f"{heading}\n\n" if heading else ""
        text = text.rstrip() + "\n\n" + prefix + block + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)
