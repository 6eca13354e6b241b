"""The few HTML helpers every part of a ``cre report`` page uses."""

from __future__ import annotations

import base64
import html
import json
from typing import Any

from worker.report.evidence import num

__all__ = ["esc", "fmt", "img", "json_for_script"]


def esc(value: Any) -> str:
    """``value`` as HTML text (quotes escaped too); ``None`` is empty."""
    return html.escape("" if value is None else str(value), quote=True)


def fmt(value: Any, digits: int = 3, none: str = "–") -> str:
    """A number with ``digits`` decimals, or ``none`` when it is not a number."""
    v = num(value)
    return none if v is None else f"{v:.{digits}f}"


def img(data: bytes | None, alt: str, cls: str = "", mime: str = "image/jpeg") -> str:
    """An inline ``data:`` image, or a placeholder saying it is not available."""
    if not data:
        return f'<div class="noimg {cls}">{esc(alt)}: not available</div>'
    b64 = base64.b64encode(data).decode("ascii")
    return f'<img class="{cls}" alt="{esc(alt)}" src="data:{mime};base64,{b64}">'


def json_for_script(obj: Any) -> str:
    """JSON safe inside a ``<script>`` element (no ``</script>`` or ``<!--`` can form)."""
    text = json.dumps(obj, ensure_ascii=True, sort_keys=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
