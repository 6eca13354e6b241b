"""Errors a job turns into a ``failed`` result record, each with a stable ``code``.

Every error the scoring path raises on purpose derives from :class:`CreError`; the job
catches it and stores ``code`` and message. Anything else is a bug and is stored as
``internal``.
"""

from __future__ import annotations

__all__ = [
    "CreError",
    "InputError",
    "FetchError",
    "TransientFetchError",
    "FetchTooLargeError",
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


class FetchError(InputError):
    """A URL could not be fetched and retrying will not help (404, refused address...)."""

    code = "fetch_failed"


class TransientFetchError(FetchError):
    """A URL could not be fetched but a retry may succeed (timeout, 5xx, reset)."""

    code = "fetch_transient"


class UnsupportedInputError(InputError):
    """Not a video we accept: unknown container, audio only, disallowed protocol."""

    code = "unsupported"


class LimitExceededError(InputError):
    """Over a configured limit: file size, pixels, duration."""

    code = "limit_exceeded"


class FetchTooLargeError(FetchError, LimitExceededError):
    """A download is larger than ``max_file_bytes`` (by Content-Length or while streaming)."""

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
