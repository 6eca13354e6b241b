"""Small security helpers shared by the worker's tools (see SECURITY.md for the whole picture).

* :func:`redact_url`: a Redis URL as it may be logged or printed, password removed.
* :func:`redis_connection`: the one way tools connect: ``redis://`` or ``rediss://`` (TLS)
  URLs, with the password in the URL (``redis://:PASSWORD@host:6379/0``) or in
  ``CRE_REDIS_URL`` only, never on a command line.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import redis

__all__ = ["redact_url", "redis_connection"]


def redact_url(url: str) -> str:
    """``url`` with its password (and any user) replaced by ``***``; query kept.

    >>> redact_url("redis://:s3cret@redis:6379/0")
    'redis://***@redis:6379/0'
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port is not None else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def redis_connection(url: str, **kwargs: object) -> redis.Redis:
    """A client for ``url`` (``redis://``, ``rediss://`` for TLS, ``unix://``).

    TLS options come from the URL's query, as redis-py reads them, e.g.
    ``rediss://:PW@host:6380/0?ssl_cert_reqs=required&ssl_ca_certs=/etc/ssl/ca.pem``.
    """
    if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"not a Redis URL: {redact_url(url)} (redis://, rediss:// or unix://)")
    return redis.Redis.from_url(url, **kwargs)
