"""Errors the library raises on purpose about an input, each with a stable ``code``.

Every expected failure derives from :class:`CreError`: the worker stores its ``code`` and
message in a ``failed`` result record; anything else is a bug. The worker adds its own
(downloads, the model) in :mod:`worker.errors`.

A subclass states its code in its header, ``class NoVideoStreamError(UnsupportedInputError,
code="no_video")``; one that states none keeps its parent's.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CreError",
    "InputError",
    "UnsupportedInputError",
    "LimitExceededError",
    "CorruptVideoError",
    "TruncatedVideoError",
    "NoVideoStreamError",
]


class CreError(Exception):
    """Base of all expected failures; ``code`` is a short machine-readable reason."""

    code = "error"

    def __init_subclass__(cls, code: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if code is not None:
            cls.code = code

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InputError(CreError, code="bad_input"):
    """The input itself is unusable (bad path, bad file, over a limit)."""


class UnsupportedInputError(InputError, code="unsupported"):
    """Not a video we accept: unknown container, audio only, disallowed protocol."""


class LimitExceededError(InputError, code="limit_exceeded"):
    """Over a configured limit: file size, pixels, duration."""


class NoVideoStreamError(UnsupportedInputError, code="no_video"):
    """The container has no video stream, or one with zero frames."""


class CorruptVideoError(InputError, code="corrupt"):
    """The decoder failed on the data."""


class TruncatedVideoError(CorruptVideoError, code="truncated"):
    """Fewer frames decoded than the container promises: a cut or damaged file."""
