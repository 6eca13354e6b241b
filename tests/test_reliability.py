"""Bad input through the real queue: a clear ``failed`` record with a reason, never a crash.

Every case is a batch of two on a real Valkey: the bad input and a good video. A warm
worker (``WarmWorker``, in this process) works the batch; the bad input must get a
``failed`` record with an expected error code (never ``internal``), its RQ job must end
normally (the record is the outcome), and the good video must still be scored.
"""

from __future__ import annotations

import http.server
import ipaddress
import shutil
import threading
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import redis

from tests.queue_helpers import serve_http, worker_environment, write_clip
from worker.settings import Settings

pytest_plugins = ("tests.queue_fixtures",)  # fixtures: tiny_weights, valkey_url, conn

MAX_DURATION_S = 2.5
MAX_FILE_BYTES = 2_000_000


# --- inputs -------------------------------------------------------------------------------------


def _flip_bits(data: bytes, n: int, rng: np.random.Generator) -> bytes:
    buf = bytearray(data)
    for pos in rng.choice(len(buf) * 8, size=n, replace=False):
        buf[pos // 8] ^= 1 << (pos % 8)
    return bytes(buf)


def _write_huge(path: Path, side: int = 8000) -> Path:
    """One grey ``side x side`` H.264 frame (cheap to encode, too many pixels to accept)."""
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("libx264", rate=1)
        stream.width = stream.height = side
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast"}
        frame = av.VideoFrame.from_ndarray(np.full((side, side, 3), 128, np.uint8), format="rgb24")
        frame.pts, frame.time_base = 0, Fraction(1, 1)
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The good clip and every bad local input, generated here."""
    from tests.synth import write_audio_only, write_empty_video, write_video_without_timestamps

    d = tmp_path_factory.mktemp("bad-inputs")
    rng = np.random.default_rng(6)
    good = write_clip(d / "good.mp4", width=320, height=240, seconds=1.0, fps=8, seed=3)
    moov_end = write_clip(d / "moov_end.mp4", width=320, height=240, seconds=2.0, fps=8)
    faststart = write_clip(
        d / "faststart.mp4", width=320, height=240, seconds=2.0, fps=8, faststart=True
    )
    out = {"good": good}
    (d / "empty.mp4").write_bytes(b"")
    out["empty"] = d / "empty.mp4"
    (d / "random.mp4").write_bytes(rng.integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    out["random_bytes"] = d / "random.mp4"
    (d / "notes.txt").write_text("this is a text file, not a video\n" * 20)
    out["text"] = d / "notes.txt"
    data = moov_end.read_bytes()
    (d / "cut.mp4").write_bytes(data[: len(data) // 2])
    out["truncated_moov_at_end"] = d / "cut.mp4"
    data = faststart.read_bytes()
    (d / "cut_faststart.mp4").write_bytes(data[: len(data) // 2])
    out["truncated_faststart"] = d / "cut_faststart.mp4"
    (d / "flipped.mp4").write_bytes(_flip_bits(good.read_bytes(), 200, rng))
    out["bit_flips"] = d / "flipped.mp4"
    out["audio_only"] = write_audio_only(d / "audio.mp4", seconds=1.0)
    out["zero_frames"] = write_empty_video(d / "zero.mp4")
    out["one_timestamp"] = write_video_without_timestamps(d / "zero_pts.mp4")
    out["too_many_pixels"] = _write_huge(d / "huge.mp4")
    out["too_long"] = write_clip(d / "long.mp4", width=64, height=48, seconds=4.0, fps=4)
    out["directory"] = d / "a_folder.mp4"
    out["directory"].mkdir()
    (d / "local.m3u8").write_text(
        f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile://{good}\n#EXTINF:10,\n"
        "/etc/passwd\n#EXT-X-ENDLIST\n"
    )
    out["hls_local_playlist"] = d / "local.m3u8"
    return out


class _Handler(http.server.BaseHTTPRequestHandler):
    video = b""
    playlist = b""

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        port = self.server.server_address[1]
        if self.path == "/slow.mp4":
            threading.Event().wait(3.0)  # longer than the read timeout
            self._send(200, self.video, "video/mp4")
        elif self.path == "/page.mp4":
            self._send(200, b"<!DOCTYPE html><html><body>login</body></html>", "text/html")
        elif self.path == "/huge.mp4":
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(10**10))
            self.end_headers()
        elif self.path == "/to-loopback":
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.2:{port}/video.mp4")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/list.m3u8":
            self._send(200, self.playlist, "application/vnd.apple.mpegurl")
        else:
            self._send(404, b"not found", "text/plain")

    def handle_error(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def http_server(inputs: dict[str, Path]) -> Iterator[str]:
    _Handler.video = inputs["good"].read_bytes()
    _Handler.playlist = f"#EXTM3U\n#EXTINF:1,\nfile://{inputs['good']}\n#EXT-X-ENDLIST\n".encode()
    with serve_http(_Handler) as url:
        yield url


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tiny_weights: Path, valkey_url: str) -> Iterator[Settings]:
    """Worker settings from the environment, as a deployed worker reads them."""
    import worker.fetch
    from worker.settings import get_settings

    worker_environment(
        monkeypatch,
        tiny_weights,
        valkey_url,
        fetch_retries=0,
        fetch_read_timeout_s=0.5,
        fetch_connect_timeout_s=1,
        max_duration_s=MAX_DURATION_S,
        max_file_bytes=MAX_FILE_BYTES,
    )
    # the guard stays on; only the test server stands in for a public host
    real = worker.fetch.address_refusal
    server_ip = ipaddress.ip_address("127.0.0.1")
    monkeypatch.setattr(
        worker.fetch, "address_refusal", lambda ip: None if ip == server_ip else real(ip)
    )
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def _work(conn: redis.Redis) -> None:
    from worker.workers import WarmWorker

    WarmWorker(["cre"], connection=conn).work(burst=True)


def _check_batch(
    conn: redis.Redis,
    settings: Settings,
    bad_id: str,
    good_id: str,
    codes: set[str],
    reason: str | None = None,
) -> None:
    from worker.results import load_result

    bad = load_result(conn, bad_id, settings)
    good = load_result(conn, good_id, settings)
    assert bad is not None and bad.status == "failed" and bad.error is not None
    assert bad.error.code in codes, bad.error
    assert bad.error.message.strip()
    if reason is not None:
        assert reason.lower() in bad.error.message.lower(), bad.error.message
    assert good is not None and good.status == "done", good
    from tests.reliability_helpers import job_status

    assert job_status(conn, bad_id) == "finished"  # no crash: the record is the outcome


# code sets: the stable codes of worker/errors.py
BAD_INPUT = {"bad_input"}
CORRUPT = {"corrupt", "truncated", "unsupported"}

LOCAL_CASES: dict[str, tuple[set[str], str | None]] = {
    "empty": (BAD_INPUT, "empty"),
    "random_bytes": (CORRUPT, None),
    "text": (CORRUPT, None),
    "truncated_moov_at_end": ({"truncated", "corrupt"}, None),
    "truncated_faststart": ({"truncated"}, None),
    "audio_only": ({"no_video"}, None),
    "zero_frames": ({"no_video", "truncated", "corrupt"}, None),
    "one_timestamp": ({"corrupt"}, "damaged timestamps"),
    "too_many_pixels": ({"limit_exceeded"}, "pixel"),
    "too_long": ({"limit_exceeded"}, "over the limit"),
    "hls_local_playlist": ({"unsupported"}, None),
}


@pytest.mark.parametrize("case", list(LOCAL_CASES))
def test_bad_local_file_fails_clearly_and_the_good_one_is_scored(
    case: str, env: Settings, conn: redis.Redis, inputs: dict[str, Path]
) -> None:
    from worker.queue import enqueue

    codes, reason = LOCAL_CASES[case]
    subs = enqueue([str(inputs[case]), str(inputs["good"])], env, force=True, conn=conn)
    assert [s.status for s in subs] == ["queued", "queued"], subs
    _work(conn)
    _check_batch(conn, env, str(subs[0].video_id), str(subs[1].video_id), codes, reason)


def test_faststart_cut_in_half_is_truncated_not_a_short_clip(
    env: Settings, conn: redis.Redis, inputs: dict[str, Path]
) -> None:
    """It decodes a few frames without any decoder error; the count gives it away."""
    from worker.queue import enqueue
    from worker.results import load_result

    (sub,) = enqueue([str(inputs["truncated_faststart"])], env, conn=conn)
    _work(conn)
    rec = load_result(conn, str(sub.video_id), env)
    assert rec is not None and rec.error is not None and rec.error.code == "truncated"
    assert rec.score is None and rec.frames_sampled == 0


def test_bit_flips_give_a_record_never_a_crash(
    env: Settings, conn: redis.Redis, inputs: dict[str, Path]
) -> None:
    """200 flipped bits: a ``failed`` record when the decoder notices, else a scored record.

    FFmpeg conceals most damage inside coded frames without reporting it (FACTS.md), so a
    flipped file that still decodes is scored like any other; what must never happen is a
    crash, an ``internal`` error, or a lost job.
    """
    from tests.reliability_helpers import job_status
    from worker.queue import enqueue
    from worker.results import load_result

    subs = enqueue([str(inputs["bit_flips"]), str(inputs["good"])], env, force=True, conn=conn)
    _work(conn)
    bad = load_result(conn, str(subs[0].video_id), env)
    good = load_result(conn, str(subs[1].video_id), env)
    assert bad is not None and job_status(conn, str(subs[0].video_id)) == "finished"
    if bad.status == "failed":
        assert bad.error is not None and bad.error.code in CORRUPT, bad.error
    else:
        assert bad.frames_sampled > 0 and bad.video is not None
    assert good is not None and good.status == "done"


@pytest.mark.parametrize("case", ["missing", "directory"])
def test_bad_paths_are_refused_at_enqueue_and_failed_by_the_worker(
    case: str, env: Settings, conn: redis.Redis, inputs: dict[str, Path], tmp_path: Path
) -> None:
    """Refused with a reason when submitted; if a job gets queued anyway (the file was
    removed after submission, or the job was put on the queue directly), the worker
    writes a ``failed`` record."""
    from worker.ids import video_id
    from worker.queue import JOB_FUNCTION, enqueue, make_queue

    if case == "missing":
        gone = tmp_path / "gone.mp4"
        shutil.copyfile(inputs["good"], gone)
        path = str(gone)
    else:
        path = str(inputs["directory"])
    if case == "missing":
        (sub, good) = enqueue([path, str(inputs["good"])], env, force=True, conn=conn)
        assert sub.status == "queued"
        Path(path).unlink()  # gone before a worker gets to it
        bad_id = str(sub.video_id)
    else:
        (sub, good) = enqueue([path, str(inputs["good"])], env, force=True, conn=conn)
        assert sub.status == "rejected" and sub.reason == "not a file"
        bad_id = video_id(path)
        make_queue(conn, env).enqueue_call(JOB_FUNCTION, args=(path, None), job_id=bad_id)
    assert enqueue([path], env, conn=conn)[0].status == "rejected"
    _work(conn)
    reason = "not found" if case == "missing" else "directory"
    _check_batch(conn, env, bad_id, str(good.video_id), BAD_INPUT, reason)


URL_CASES: dict[str, tuple[str, set[str], str | None]] = {
    "timeout": ("{server}/slow.mp4", {"fetch_transient"}, None),
    "404": ("{server}/missing.mp4", {"fetch_failed"}, "404"),
    "html": ("{server}/page.mp4", {"fetch_failed", "unsupported"}, "html"),
    "over_size_cap": ("{server}/huge.mp4", {"limit_exceeded"}, None),
    "redirect_to_loopback": ("{server}/to-loopback", {"fetch_failed"}, "loopback"),
    "hls_playlist_url": ("{server}/list.m3u8", {"unsupported"}, None),
    "file_scheme": ("file:///etc/passwd", {"fetch_failed", "unsupported", "bad_input"}, None),
    "ftp_scheme": ("ftp://example.com/v.mp4", {"fetch_failed", "unsupported", "bad_input"}, None),
    "concat_protocol": (
        "concat:{good}|{good}",
        {"fetch_failed", "unsupported", "bad_input"},
        None,
    ),
}


@pytest.mark.parametrize("case", list(URL_CASES))
def test_bad_url_fails_clearly_and_the_good_one_is_scored(
    case: str, env: Settings, conn: redis.Redis, inputs: dict[str, Path], http_server: str
) -> None:
    from worker.queue import enqueue

    template, codes, reason = URL_CASES[case]
    url = template.format(server=http_server, good=inputs["good"])
    subs = enqueue([url, str(inputs["good"])], env, force=True, conn=conn)
    assert subs[0].status == "queued", subs[0]
    _work(conn)
    _check_batch(conn, env, str(subs[0].video_id), str(subs[1].video_id), codes, reason)


@pytest.mark.parametrize(
    ("source", "options"),
    [
        (123, None),
        (["a.mp4"], None),
        ("", None),
        ("x.mp4\n", None),
        ("good", {"frames": "many"}),
        ("good", {"frames": 0}),
        ("good", {"aggregation": "median"}),
        ("good", {"unknown": 1}),
        ("good", ["frames", 4]),
    ],
)
def test_job_arguments_that_are_not_what_the_job_expects_are_refused_at_enqueue(
    source: object, options: object, env: Settings, conn: redis.Redis, inputs: dict[str, Path]
) -> None:
    from worker.queue import enqueue, make_queue

    src = str(inputs["good"]) if source == "good" else source
    (sub,) = enqueue([src], env, options=options, conn=conn)  # type: ignore[list-item, arg-type]
    assert sub.status == "rejected" and sub.reason, sub
    assert make_queue(conn, env).count == 0
