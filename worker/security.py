"""Small security helpers shared by the worker's tools (see SECURITY.md for the whole picture).

* :func:`redact_url`: a Redis URL as it may be logged or printed, password removed.
* :func:`redis_connection`: the one way tools connect: ``redis://`` or ``rediss://`` (TLS)
  URLs, with the password in the URL (``redis://:PASSWORD@host:6379/0``) or in
  ``CRE_REDIS_URL`` only, never on a command line.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import redis

__all__ = ["redact_url", "redis_connection", "tool_connection", "TOOL_CONNECT_TIMEOUT_S"]

TOOL_CONNECT_TIMEOUT_S = 10.0
"""How long a command-line tool waits for Redis to accept a connection (redis-py's default
is the operating system's, minutes for a host that drops packets)."""


def redact_url(url: str) -> str:
    """``url`` with its password (and any user) replaced by ``***``; query kept.

    >>> redact_url("redis://:s3cret@redis:6379/0")
    'redis://***@redis:6379/0'
    """
    # Everything up to the last "@" after the scheme is credentials. Not urlsplit: a password
    # with "/", "#" or "?" in it (base64 often has "/") would end its netloc early and leave
    # the rest of the password in the "path".
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    return f"{scheme}://***@{rest.rpartition('@')[2]}"


def redis_connection(url: str, **kwargs: object) -> redis.Redis:
    """A client for ``url`` (``redis://``, ``rediss://`` for TLS, ``unix://``).

    TLS options come from the URL's query, as redis-py reads them, e.g.
    ``rediss://:PW@host:6380/0?ssl_cert_reqs=required&ssl_ca_certs=/etc/ssl/ca.pem``.
    """
    if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"not a Redis URL: {redact_url(url)} (redis://, rediss:// or unix://)")
    try:
        return redis.Redis.from_url(url, **kwargs)
    except ValueError:  # redis-py's message may quote part of the password: not repeated
        raise ValueError(
            f"cannot read the Redis URL {redact_url(url)}: percent-encode the characters "
            "/ # ? @ : % of a password (%2F %23 %3F %40 %3A %25), or use one of letters "
            "and digits (openssl rand -hex 32)"
        ) from None


def tool_connection(url: str) -> redis.Redis:
    """:func:`redis_connection` for a command-line tool: connecting and each reply wait at
    most :data:`TOOL_CONNECT_TIMEOUT_S` (a tool that cannot reach Redis says so promptly).

    Raises:
        ValueError: the URL cannot be read (the message never quotes the password).
    """
    return redis_connection(
        url, socket_connect_timeout=TOOL_CONNECT_TIMEOUT_S, socket_timeout=TOOL_CONNECT_TIMEOUT_S
    )
