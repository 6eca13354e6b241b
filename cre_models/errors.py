"""Errors the library raises on purpose about an input, each with a stable ``code``.

Every expected failure derives from :class:`CreError`: the worker stores its ``code`` and
message in a ``failed`` result record; anything else is a bug. The worker adds its own
(downloads, the model) in :mod:`worker.errors`.
"""

from __future__ import annotations

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

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InputError(CreError):
    """The input itself is unusable (bad path, bad file, over a limit)."""

    code = "bad_input"


class UnsupportedInputError(InputError):
    """Not a video we accept: unknown container, audio only, disallowed protocol."""

    code = "unsupported"


class LimitExceededError(InputError):
    """Over a configured limit: file size, pixels, duration."""

    code = "limit_exceeded"


class NoVideoStreamError(UnsupportedInputError):
    """The container has no video stream, or one with zero frames."""

    code = "no_video"


class CorruptVideoError(InputError):
    """The decoder failed on the data."""

    code = "corrupt"


class TruncatedVideoError(CorruptVideoError):
    """Fewer frames decoded than the container promises: a cut or damaged file."""

    code = "truncated"
