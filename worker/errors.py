"""The worker's own expected failures: downloads and the model.

They build on :mod:`cre_models.errors` (whose :class:`~cre_models.errors.CreError` every
expected failure derives from), so a job turns any of them into a ``failed`` record with
the error's ``code``.
"""

from __future__ import annotations

from cre_models.errors import CreError, InputError, LimitExceededError

__all__ = [
    "FetchError",
    "TransientFetchError",
    "FetchTooLargeError",
    "ModelUnavailableError",
]


class FetchError(InputError, code="fetch_failed"):
    """A URL could not be fetched and retrying will not help (404, refused address...)."""


class TransientFetchError(FetchError, code="fetch_transient"):
    """A URL could not be fetched but a retry may succeed (timeout, 5xx, reset)."""


class FetchTooLargeError(FetchError, LimitExceededError, code="limit_exceeded"):
    """A download is larger than ``max_file_bytes`` (by Content-Length or while streaming)."""


class ModelUnavailableError(CreError, code="model_unavailable"):
    """The configured checkpoint cannot be loaded (missing, corrupt, wrong architecture)."""
