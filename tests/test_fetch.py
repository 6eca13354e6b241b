"""worker.fetch: local paths and downloads from a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import ipaddress
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cre_models.errors import InputError, LimitExceededError, UnsupportedInputError
from cre_models.video import probe_video
from tests.synth import write_video
from worker import fetch as fetch_mod
from worker.errors import FetchError, FetchTooLargeError, TransientFetchError
from worker.fetch import address_refusal, fetch, is_url
from worker.settings import Settings

VIDEO_BYTES: bytes = b""
HLS_PLAYLIST = b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n/etc/hostname\n#EXT-X-ENDLIST\n"


class _Handler(BaseHTTPRequestHandler):
    """Routes for every case the fetcher must handle."""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (base signature)
        pass

    def _send(
        self, status: int, body: bytes, ctype: str = "video/mp4", length: bool = True
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        port = self.server.server_address[1]
        path = self.path.split("?", 1)[0]
        if path == "/video.mp4":
            self.server.hosts.append(self.headers.get("Host", ""))  # type: ignore[attr-defined]
            self._send(200, VIDEO_BYTES)
        elif path == "/missing.mp4":
            self._send(404, b"not found", "text/plain")
        elif path == "/error.mp4":
            self._send(503, b"busy", "text/plain")
        elif path == "/page.mp4":
            self._send(
                200, b"<!DOCTYPE html><html><body>hi</body></html>", "text/html; charset=utf-8"
            )
        elif path == "/sneaky-page.mp4":
            self._send(200, b"<html><body>login</body></html>", "application/octet-stream")
        elif path == "/big-declared.mp4":
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(10**9))
            self.end_headers()
        elif path == "/big-streamed.mp4":
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.end_headers()  # no Content-Length: HTTP/1.0, body ends when the socket closes
            for _ in range(64):
                self.wfile.write(b"\0" * 4096)
        elif path == "/slow.mp4":
            time.sleep(1.5)
            self._send(200, VIDEO_BYTES)
        elif path == "/drip.mp4":
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.end_headers()
            for _ in range(30):
                self.wfile.write(b"\0" * 16)
                self.wfile.flush()
                time.sleep(0.1)
        elif path == "/playlist.m3u8":
            self._send(200, HLS_PLAYLIST, "application/vnd.apple.mpegurl")
        elif path == "/redirect-ok":
            self._redirect("/video.mp4")
        elif path == "/redirect-loop":
            self._redirect("/redirect-loop")
        elif path == "/redirect-loopback":
            self._redirect(f"http://127.0.0.2:{port}/video.mp4")
        elif path == "/redirect-metadata":
            self._redirect("http://169.254.169.254/latest/meta-data/")
        elif path == "/redirect-file":
            self._redirect("file:///etc/passwd")
        else:
            self._send(404, b"no route", "text/plain")


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that hang up on purpose (timeouts, size cap) are expected here


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    global VIDEO_BYTES
    video = write_video(tmp_path_factory.mktemp("srv") / "v.mp4", width=64, height=48, seconds=1)
    VIDEO_BYTES = video.read_bytes()
    httpd = _QuietServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.hosts = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "allow_private_addresses": True,
        "fetch_connect_timeout_s": 2.0,
        "fetch_read_timeout_s": 2.0,
        "fetch_deadline_s": 10.0,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


# --- local paths --------------------------------------------------------------------------


def test_local_file_is_used_in_place(tmp_path: Path) -> None:
    video = write_video(tmp_path / "v.mp4", width=64, height=48, seconds=0.5)
    with fetch(str(video), _settings()) as got:
        assert got.path == video
        assert got.size_bytes == video.stat().st_size
        assert not got.downloaded and got.seconds == 0.0
    assert video.exists()  # never deleted: it is the user's file


def test_local_missing_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        with fetch(str(tmp_path / "nope.mp4"), _settings()):
            pass


def test_local_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="directory"):
        with fetch(str(tmp_path), _settings()):
            pass


def test_local_device_and_fifo(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a regular file"):
        with fetch("/dev/null", _settings()):
            pass
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        with fetch(str(fifo), _settings()):
            pass


def test_local_empty_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.touch()
    with pytest.raises(InputError, match="empty"):
        with fetch(str(empty), _settings()):
            pass


def test_local_file_over_size_limit(tmp_path: Path) -> None:
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * 2000)
    with pytest.raises(LimitExceededError):
        with fetch(str(big), _settings(max_file_bytes=1000)):
            pass


# --- schemes -----------------------------------------------------------------------------


def test_is_url() -> None:
    assert is_url("http://example.com/a.mp4")
    assert is_url("HTTPS://example.com/a.mp4")
    assert is_url("concat:/a.mp4|/b.mp4")
    assert is_url("subfile,,start,0,end,10,,:/etc/passwd") is False  # ',' is no scheme char
    assert not is_url("/tmp/a.mp4")
    assert not is_url("videos/a:b.mp4")
    assert not is_url("./a:b.mp4")


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.com/video.mp4",
        "concat:/tmp/a.mp4|/tmp/b.mp4",
        "subfile:/tmp/a.mp4",
        "data:video/mp4;base64,AAAA",
        "gopher://example.com/",
    ],
)
def test_disallowed_schemes(url: str) -> None:
    with pytest.raises(FetchError, match="not allowed") as err:
        with fetch(url, _settings()):
            pass
    assert not isinstance(err.value, TransientFetchError)


def test_subfile_spec_is_not_opened_as_a_protocol() -> None:
    # Not a URL by RFC 3986 (',' in the scheme), so it is a local path that does not exist.
    with pytest.raises(InputError, match="not found"):
        with fetch("subfile,,start,0,end,10,,:/etc/passwd", _settings()):
            pass


# --- addresses ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ip",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "169.254.1.1",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "fd00:ec2::254",
        "::ffff:127.0.0.1",
        "ff02::1",
    ],
)
def test_non_public_addresses_are_refused(ip: str) -> None:
    assert address_refusal(ipaddress.ip_address(ip)) is not None


@pytest.mark.parametrize("ip", ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(ip: str) -> None:
    assert address_refusal(ipaddress.ip_address(ip)) is None


def test_loopback_refused_by_default(server: str) -> None:
    settings = _settings(allow_private_addresses=False)
    with pytest.raises(FetchError, match="loopback") as err:
        with fetch(f"{server}/video.mp4", settings):
            pass
    assert not isinstance(err.value, TransientFetchError)


def _pretend_127_0_0_1_is_public(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the test server stand in for a public host; every other address is judged as is."""
    real = fetch_mod.address_refusal
    test_server = ipaddress.ip_address("127.0.0.1")
    monkeypatch.setattr(
        fetch_mod, "address_refusal", lambda ip: None if ip == test_server else real(ip)
    )


@pytest.mark.parametrize(
    ("route", "reason"),
    [
        ("redirect-loopback", "loopback"),
        ("redirect-metadata", "metadata"),
        ("redirect-file", "not allowed"),
    ],
)
def test_redirect_targets_are_checked_again(
    server: str, monkeypatch: pytest.MonkeyPatch, route: str, reason: str
) -> None:
    _pretend_127_0_0_1_is_public(monkeypatch)
    settings = _settings(allow_private_addresses=False)
    with fetch(f"{server}/video.mp4", settings) as ok:  # the stand-in itself is allowed
        assert ok.size_bytes == len(VIDEO_BYTES)
    with pytest.raises(FetchError, match=reason) as err:
        with fetch(f"{server}/{route}", settings):
            pass
    assert not isinstance(err.value, TransientFetchError)


def test_connection_goes_to_the_checked_address(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The name resolves (once, through _resolve) to 127.0.0.1; no second lookup may happen:
    # `video.invalid` cannot resolve in real DNS, so only a pinned connection succeeds.
    calls: list[str] = []

    def fake_resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        calls.append(host)
        return [ipaddress.ip_address("127.0.0.1")]

    monkeypatch.setattr(fetch_mod, "_resolve", fake_resolve)
    port = server.rsplit(":", 1)[1]
    with fetch(f"http://video.invalid:{port}/video.mp4", _settings()) as got:
        assert got.path.read_bytes() == VIDEO_BYTES
    assert calls == ["video.invalid"]


# --- downloads ---------------------------------------------------------------------------


def test_download_and_cleanup(server: str) -> None:
    with fetch(f"{server}/video.mp4?token=secret", _settings()) as got:
        assert got.downloaded
        assert got.path.read_bytes() == VIDEO_BYTES
        assert got.size_bytes == len(VIDEO_BYTES)
        assert got.path.suffix == ".mp4"
        assert got.seconds >= 0
        folder = got.path.parent
    assert not folder.exists()


def test_download_removed_after_error_in_body(server: str) -> None:
    with pytest.raises(RuntimeError):
        with fetch(f"{server}/video.mp4", _settings()) as got:
            folder = got.path.parent
            raise RuntimeError("scoring failed")
    assert not folder.exists()


def test_redirect_followed(server: str) -> None:
    with fetch(f"{server}/redirect-ok", _settings()) as got:
        assert got.path.read_bytes() == VIDEO_BYTES


def test_redirect_loop(server: str) -> None:
    with pytest.raises(FetchError, match="redirects"):
        with fetch(f"{server}/redirect-loop", _settings(fetch_max_redirects=3)):
            pass


def test_404_is_permanent(server: str) -> None:
    with pytest.raises(FetchError, match="404") as err:
        with fetch(f"{server}/missing.mp4", _settings()):
            pass
    assert not isinstance(err.value, TransientFetchError)


def test_5xx_is_transient(server: str) -> None:
    with pytest.raises(TransientFetchError, match="503"):
        with fetch(f"{server}/error.mp4", _settings()):
            pass


@pytest.mark.parametrize("route", ["page.mp4", "sneaky-page.mp4"])
def test_html_is_refused(server: str, route: str) -> None:
    with pytest.raises(FetchError, match="web page") as err:
        with fetch(f"{server}/{route}", _settings()):
            pass
    assert not isinstance(err.value, TransientFetchError)


@pytest.mark.parametrize("route", ["big-declared.mp4", "big-streamed.mp4"])
def test_size_cap(server: str, route: str) -> None:
    with pytest.raises(FetchTooLargeError) as err:
        with fetch(f"{server}/{route}", _settings(max_file_bytes=100_000)):
            pass
    assert isinstance(err.value, FetchError) and isinstance(err.value, LimitExceededError)
    assert not isinstance(err.value, TransientFetchError)


def test_read_timeout_is_transient(server: str) -> None:
    with pytest.raises(TransientFetchError, match="timed out"):
        with fetch(f"{server}/slow.mp4", _settings(fetch_read_timeout_s=0.3)):
            pass


def test_deadline_is_transient(server: str) -> None:
    with pytest.raises(TransientFetchError, match="deadline"):
        with fetch(f"{server}/drip.mp4", _settings(fetch_deadline_s=0.6)):
            pass


def test_connection_refused_is_transient(server: str) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        with pytest.raises(TransientFetchError):
            with fetch(f"http://127.0.0.1:{port}/video.mp4", _settings()):
                pass


def test_hls_playlist_url_is_refused_by_the_probe(server: str) -> None:
    settings = _settings()
    with fetch(f"{server}/playlist.m3u8", settings) as got:
        with pytest.raises(UnsupportedInputError, match="HLS"):
            probe_video(got.path, settings.video_limits())
