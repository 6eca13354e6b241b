"""Path or URL -> a local file the decoder may read.

A local path must name a non-empty regular file within ``max_file_bytes``. A URL is
downloaded by Python (never by FFmpeg, which would follow playlists and protocols) into a
temporary folder that is removed when the ``fetch`` context exits.

Downloads are guarded: only ``url_schemes`` (http, https); every host, including each
redirect target, must resolve to public addresses only (loopback, private, link-local
such as the 169.254.169.254 metadata service, carrier-grade NAT, multicast, reserved and
unspecified addresses are refused unless ``allow_private_addresses``); the connection is
made to the very address that was checked (no second DNS lookup, so DNS rebinding cannot
swap it); HTTPS certificates are verified against the host name. Size is capped by
Content-Length and while streaming; there are connect and read timeouts and an overall
deadline. Redirects are followed by this module, at most ``fetch_max_redirects``.

Residual risks: environment proxies are ignored (connections are direct); an address
embedding a private IPv4 address in a public IPv6 prefix (NAT64 ``64:ff9b::/96``, 6to4)
is judged by its IPv6 form, i.e. allowed.
"""

from __future__ import annotations

import http.client
import ipaddress
import logging
import re
import shutil
import socket
import ssl
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from cre_models.video import check_local_file
from worker.errors import FetchError, FetchTooLargeError, TransientFetchError
from worker.settings import Settings

__all__ = [
    "FetchedSource",
    "fetch",
    "is_url",
    "address_refusal",
]

logger = logging.getLogger(__name__)

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
_CHUNK = 256 * 1024
_REDIRECTS = {301, 302, 303, 307, 308}
_TRANSIENT_4XX = {408, 425, 429}
_USER_AGENT = "cre-worker/0.1 (+video scoring)"
_HTML_TYPES = {"text/html", "application/xhtml+xml"}
_METADATA_ADDRESSES = {
    ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack...
    ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
}


@dataclass(frozen=True)
class FetchedSource:
    """A source made local: ``path`` is the file to read while the ``fetch`` context lives."""

    path: Path
    source: str
    size_bytes: int
    seconds: float
    downloaded: bool


def is_url(source: str) -> bool:
    """True when ``source`` starts with a URL scheme (``http:``, ``file:``, ``concat:``...).

    Anything with a scheme is treated as a URL, so FFmpeg pseudo-protocols such as
    ``concat:a|b`` or ``subfile,,...:x`` are refused by the scheme allow-list rather than
    read as file names. Write ``./name:with:colons.mp4`` for such a local file.
    """
    return _SCHEME.match(source) is not None


def address_refusal(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why a download may not connect to ``ip`` (a short reason), or None if it is public."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in _METADATA_ADDRESSES:
        return "a cloud metadata address"
    for name, flag in (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("unspecified", ip.is_unspecified),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private),
    ):
        if flag:
            return f"{'an' if name[0] in 'aeiou' else 'a'} {name} address"
    if not ip.is_global:
        return "not a public address"
    return None


@contextmanager
def fetch(source: str, settings: Settings) -> Iterator[FetchedSource]:
    """Make ``source`` (a local path or an http(s) URL) available as a local file.

    Downloads are written to a temporary folder that is removed when the context exits,
    also on error.

    Raises:
        InputError: a bad local path (see :func:`cre_models.video.check_local_file`).
        LimitExceededError: a local file over ``max_file_bytes``.
        FetchError: scheme not allowed, refused address, HTTP 4xx, HTML page, too large
            (:class:`~worker.errors.FetchTooLargeError`), too many redirects.
        TransientFetchError: timeout, deadline, connection refused or reset, HTTP 5xx/429.
    """
    if not is_url(source):
        path = Path(source).expanduser()
        size = check_local_file(path, settings.video_limits())
        yield FetchedSource(
            path=path, source=source, size_bytes=size, seconds=0.0, downloaded=False
        )
        return
    _check_scheme(source, settings)
    tmp_dir = Path(tempfile.mkdtemp(prefix="cre-fetch-", dir=settings.fetch_tmp_dir))
    try:
        target = tmp_dir / ("download" + _suffix(source))
        t0 = time.monotonic()
        size = _download(source, target, settings)
        seconds = time.monotonic() - t0
        logger.info("fetched %s: %d bytes in %.2f s", _redact(source), size, seconds)
        yield FetchedSource(
            path=target, source=source, size_bytes=size, seconds=seconds, downloaded=True
        )
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


# --------------------------------------------------------------------------------------
# Internals


def _allowed_schemes(settings: Settings) -> set[str]:
    return {s.strip().lower() for s in settings.url_schemes.split(",") if s.strip()}


def _check_scheme(url: str, settings: Settings) -> None:
    match = _SCHEME.match(url)
    scheme = match.group(1).lower() if match else ""
    allowed = _allowed_schemes(settings) & {"http", "https"}  # the only ones we can speak
    if scheme not in allowed:
        raise FetchError(
            f"URL scheme {scheme!r} is not allowed (allowed: {', '.join(sorted(allowed))})"
        )


def _redact(url: str) -> str:
    """The URL without its query string (which may hold a signature or token)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _suffix(url: str) -> str:
    suffix = Path(urlsplit(url).path).suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix) else ""


def _resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Every address ``host`` resolves to (a literal address resolves to itself)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        if exc.errno == socket.EAI_AGAIN:
            raise TransientFetchError(f"temporary DNS failure for {host}") from exc
        raise FetchError(f"cannot resolve host {host!r}") from exc
    addresses: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise FetchError(f"host {host!r} has no address")
    return addresses


def _checked_addresses(
    host: str, port: int, settings: Settings
) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    addresses = _resolve(host, port)
    if settings.allow_private_addresses:
        return addresses
    for ip in addresses:
        reason = address_refusal(ip)
        if reason is not None:
            raise FetchError(f"refused to connect to {host} ({ip}): {reason}")
    return addresses


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection to a pre-checked address, whatever DNS says now."""

    def __init__(self, host: str, port: int, ip: str, timeout: float, read_timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._ip = ip
        self._read_timeout = read_timeout

    def connect(self) -> None:
        self.sock = socket.create_connection((self._ip, self.port), self.timeout)
        self.sock.settimeout(self._read_timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a pre-checked address; SNI and certificate checked against the host name."""

    def __init__(
        self,
        host: str,
        port: int,
        ip: str,
        timeout: float,
        read_timeout: float,
        context: ssl.SSLContext,
    ):
        super().__init__(host, port, timeout=timeout, context=context)
        self._ip = ip
        self._read_timeout = read_timeout
        self._ssl_context = context

    def connect(self) -> None:
        raw = socket.create_connection((self._ip, self.port), self.timeout)
        self.sock = self._ssl_context.wrap_socket(raw, server_hostname=self.host)
        self.sock.settimeout(self._read_timeout)


def _open(
    url: str, settings: Settings, deadline: float
) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    """Connect (to a checked address) and send a GET; returns the response headers."""
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        raise FetchError(f"URL has no host: {_redact(url)}")
    if parts.username or parts.password:
        raise FetchError("credentials in URLs are not supported")
    scheme = parts.scheme.lower()
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as exc:
        raise FetchError(f"bad port in URL {_redact(url)}") from exc
    addresses = _checked_addresses(host, port, settings)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    last_error: Exception | None = None
    for ip in addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TransientFetchError("download deadline exceeded while connecting")
        connect_timeout = min(settings.fetch_connect_timeout_s, remaining)
        read_timeout = min(settings.fetch_read_timeout_s, remaining)
        conn: http.client.HTTPConnection
        if scheme == "https":
            conn = _PinnedHTTPSConnection(
                host, port, str(ip), connect_timeout, read_timeout, ssl.create_default_context()
            )
        else:
            conn = _PinnedHTTPConnection(host, port, str(ip), connect_timeout, read_timeout)
        try:
            conn.request(
                "GET",
                path,
                headers={"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"},
            )
            return conn, conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            if isinstance(exc, ssl.SSLCertVerificationError):
                raise FetchError(f"TLS certificate of {host} not valid: {exc}") from exc
            last_error = exc
            if isinstance(exc, TimeoutError):
                break  # do not multiply the wait by the number of addresses
    raise _transient(f"cannot connect to {host}", last_error)


def _transient(message: str, exc: Exception | None) -> TransientFetchError:
    if isinstance(exc, TimeoutError):
        return TransientFetchError(f"{message}: timed out")
    return TransientFetchError(f"{message}: {exc}")


def _download(url: str, target: Path, settings: Settings) -> int:
    deadline = time.monotonic() + settings.fetch_deadline_s
    for _hop in range(settings.fetch_max_redirects + 1):
        conn, response = _open(url, settings, deadline)
        try:
            status = response.status
            if status in _REDIRECTS:
                location = response.getheader("Location")
                if not location:
                    raise FetchError(f"HTTP {status} redirect without a Location")
                new_url = urljoin(url, location)
                _check_scheme(new_url, settings)
                logger.debug("redirect %d: %s -> %s", status, _redact(url), _redact(new_url))
                url = new_url
                continue
            if status >= 500 or status in _TRANSIENT_4XX:
                raise TransientFetchError(f"HTTP {status} {response.reason} from {_redact(url)}")
            if status >= 400:
                raise FetchError(f"HTTP {status} {response.reason} from {_redact(url)}")
            if status != 200:
                raise FetchError(f"unexpected HTTP {status} {response.reason}")
            return _save_body(response, conn.sock, target, settings, deadline)
        finally:
            conn.close()
    raise FetchError(f"more than {settings.fetch_max_redirects} redirects")


def _save_body(
    response: http.client.HTTPResponse,
    sock: socket.socket | None,
    target: Path,
    settings: Settings,
    deadline: float,
) -> int:
    content_type = (response.getheader("Content-Type") or "").split(";", 1)[0].strip().lower()
    if content_type in _HTML_TYPES:
        raise FetchError(f"the URL returned a web page ({content_type}), not a video")
    length_header = response.getheader("Content-Length")
    if length_header is not None:
        try:
            length = int(length_header)
        except ValueError as exc:
            raise FetchError(f"bad Content-Length {length_header!r}") from exc
        if length > settings.max_file_bytes:
            raise FetchTooLargeError(
                f"download is {length} bytes, over the limit of {settings.max_file_bytes}"
            )
    size = 0
    try:
        with open(target, "wb") as out:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TransientFetchError(
                        f"download deadline of {settings.fetch_deadline_s:g} s exceeded"
                    )
                if sock is not None:
                    # Shorten the read timeout so the deadline also bounds a slow drip.
                    sock.settimeout(min(settings.fetch_read_timeout_s, remaining))
                chunk = response.read1(_CHUNK)
                if not chunk:
                    break
                if size == 0 and _looks_like_html(chunk):
                    raise FetchError("the URL returned a web page (HTML), not a video")
                size += len(chunk)
                if size > settings.max_file_bytes:
                    raise FetchTooLargeError(
                        f"download exceeded the limit of {settings.max_file_bytes} bytes"
                    )
                out.write(chunk)
    except (TimeoutError, ConnectionError, http.client.IncompleteRead) as exc:
        raise _transient("download interrupted", exc) from exc
    except http.client.HTTPException as exc:
        raise TransientFetchError(f"download failed: {exc}") from exc
    if length_header is not None and size != int(length_header):
        raise TransientFetchError(f"download ended after {size} of {length_header} bytes")
    if size == 0:
        raise FetchError("the URL returned an empty body")
    return size


def _looks_like_html(chunk: bytes) -> bool:
    head = chunk[:256].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html"))
