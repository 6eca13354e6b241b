"""Importable functions that leave a trace when called: what a test enqueues or names as a
callback to prove that a ``cre`` worker never runs it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["touch_marker", "MARKER_ENV"]

MARKER_ENV = "CRE_TEST_MARKER_DIR"
"""Folder where :func:`touch_marker` leaves its file."""


def touch_marker(*args: Any, **kwargs: Any) -> str:
    """Create ``$CRE_TEST_MARKER_DIR/touched``; returns its path."""
    path = Path(os.environ[MARKER_ENV]) / "touched"
    path.touch()
    return str(path)
