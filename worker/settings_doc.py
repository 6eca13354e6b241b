"""``python -m worker.settings_doc``: the settings table (name, default, meaning) as Markdown.

Generated from :class:`worker.settings.Settings`, so the README cannot drift from the code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pydantic import SecretStr

from worker.settings import Settings

__all__ = ["settings_table", "main"]


def _default(value: object) -> str:
    if value is None:
        return "unset"
    if isinstance(value, SecretStr):
        return "(secret)"
    if value == "":
        return "empty"
    return f"`{value}`"


def settings_table() -> str:
    """A Markdown table of every ``CRE_*`` variable, its default and its description."""
    lines = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        meaning = " ".join((field.description or "").split()).replace("|", "\\|")
        lines.append(f"| `CRE_{name.upper()}` | {_default(field.default)} | {meaning} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Print :func:`settings_table`."""
    argparse.ArgumentParser(prog="python -m worker.settings_doc", description=__doc__).parse_args(
        argv
    )
    print(settings_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
