"""Stable ids for inputs: the same video always gets the same job id and result key.

A local file is identified by its absolute, symlink-resolved path; a URL by the string as
given (no normalisation: two spellings of one URL are two inputs). The id is
``v`` + the first 32 hex digits of the SHA-256 of that string: RQ job ids allow only
letters, digits, ``_`` and ``-``, and a hash keeps paths and URLs out of Redis key names.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from worker.fetch import is_url

__all__ = ["normalise_source", "video_id", "looks_like_video_id", "VIDEO_ID_RE"]

VIDEO_ID_RE = re.compile(r"^v[0-9a-f]{32}$")
"""What :func:`video_id` returns."""


def normalise_source(source: str) -> str:
    """The canonical form of an input: the URL as given, or the real absolute path of a file."""
    if is_url(source):
        return source
    return str(Path(source).expanduser().resolve())


def video_id(source: str) -> str:
    """Stable job id and result id of ``source`` (see the module docstring)."""
    digest = hashlib.sha256(normalise_source(source).encode("utf-8", "surrogateescape")).hexdigest()
    return "v" + digest[:32]


def looks_like_video_id(text: str) -> bool:
    """Whether ``text`` has the shape of an id made by :func:`video_id`."""
    return bool(VIDEO_ID_RE.match(text))
