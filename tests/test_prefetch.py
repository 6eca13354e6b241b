"""The background prefetcher keeps order, bounds its buffer, propagates errors, and is
closed (thread stopped, decoder closed) before a job's download is deleted."""

from __future__ import annotations

import functools
import http.server
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from worker.prefetch import prefetch

pytest_plugins = ("tests.queue_fixtures",)  # fixtures: tiny_weights, valkey_url, conn


def test_keeps_order_and_all_items() -> None:
    assert list(prefetch(range(100), depth=3)) == list(range(100))
    assert list(prefetch([], depth=1)) == []


def test_runs_in_another_thread_and_bounds_the_buffer() -> None:
    produced: list[int] = []
    threads: set[str] = set()

    def gen() -> Iterator[int]:
        for i in range(50):
            threads.add(threading.current_thread().name)
            produced.append(i)
            yield i

    it = prefetch(gen(), depth=2, name="t-prefetch")
    assert next(it) == 0
    deadline = time.monotonic() + 5
    while len(produced) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    # one item handed out, at most `depth` buffered, one more blocked in put()
    assert len(produced) <= 1 + 2 + 1
    assert threads == {"t-prefetch"}
    it.close()


def test_producer_error_reaches_the_consumer_after_earlier_items() -> None:
    def gen() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("broken at 3")

    got: list[int] = []
    with pytest.raises(ValueError, match="broken at 3"):
        for x in prefetch(gen(), depth=4):
            got.append(x)
    assert got == [1, 2]


def test_closing_the_consumer_stops_and_closes_the_producer() -> None:
    closed = threading.Event()

    def gen() -> Iterator[int]:
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    it = prefetch(gen(), depth=2)
    assert [next(it) for _ in range(3)] == [0, 1, 2]
    it.close()
    assert closed.wait(5), "the producer generator was not closed"


def test_bad_depth() -> None:
    with pytest.raises(ValueError, match="depth"):
        next(prefetch([1], depth=0))


# --- in a warm worker: a job timeout closes the decoder before the download is deleted ------


@pytest.fixture
def served_clip(tmp_path: Path) -> Iterator[str]:
    """The URL of a small face clip on a local HTTP server."""
    from tests.queue_helpers import serve_http, write_clip

    folder = tmp_path / "served"
    folder.mkdir()
    write_clip(folder / "v.mp4", width=320, height=240, seconds=3.0, fps=10)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    with serve_http(handler) as url:
        yield url + "/v.mp4"


def _open_files_under(folder: Path) -> list[str]:
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(folder)):
            out.append(target)
    return out


def _prefetch_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("cre-prefetch")]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_job_timeout_in_a_warm_worker_leaves_no_decoder_thread_and_no_open_file(
    served_clip: str,
    tiny_weights: Path,
    valkey_url: str,
    conn: redis.Redis,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """RQ's job timeout lands while frames are being scored (detection is slowed down here):
    the prefetch thread and its decoder are closed before the download is deleted."""
    import worker.fetch
    from worker.queue import enqueue
    from worker.results import load_result
    from worker.scoring import Scorer, clear_scorer_cache
    from worker.settings import get_settings
    from worker.workers import WarmWorker

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    for name, value in {
        "CRE_WEIGHTS": str(tiny_weights),
        "CRE_REDIS_URL": valkey_url,
        "CRE_TORCH_THREADS": "1",
        "CRE_ALLOW_PRIVATE_ADDRESSES": "true",
        "CRE_FETCH_TMP_DIR": str(downloads),
        "CRE_JOB_TIMEOUT_URL_S": "2",
        "CRE_FRAMES_PER_VIDEO": "24",  # more than the buffer holds: the decoder must wait
        "CRE_FETCH_RETRIES": "0",
        "CRE_DETECT_BATCH": "1",  # one frame per detect(), the call slowed down below
        "CRE_DETECT_FULL_EVERY": "1",  # every frame through detect(), no regions
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    real_detect = Scorer.detect

    def slow_detect(self: Scorer, image: object) -> object:
        time.sleep(0.8)  # 24 frames: far past the 2 s timeout
        return real_detect(self, image)  # type: ignore[arg-type]

    monkeypatch.setattr(Scorer, "detect", slow_detect)
    at_delete: list[tuple[list[str], list[str]]] = []
    real_rmtree = worker.fetch.shutil.rmtree

    def recording_rmtree(path: str | Path, *args: object, **kwargs: object) -> None:
        at_delete.append((_prefetch_threads(), _open_files_under(Path(path))))
        real_rmtree(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(worker.fetch.shutil, "rmtree", recording_rmtree)
    try:
        (sub,) = enqueue([served_clip], get_settings(), conn=conn)
        assert sub.video_id is not None
        WarmWorker(["cre"], connection=conn).work(burst=True)
        rec = load_result(conn, sub.video_id, get_settings())
    finally:
        get_settings.cache_clear()
        clear_scorer_cache()
    assert rec is not None and rec.error is not None and rec.error.code == "timeout", rec
    assert at_delete == [([], [])], "decoder still running when the download was deleted"
    assert _prefetch_threads() == [] and _open_files_under(downloads) == []
    assert list(downloads.iterdir()) == []


def test_lookahead_says_when_the_producer_is_idle() -> None:
    from worker.prefetch import Lookahead

    release = threading.Event()

    def gen() -> Iterator[int]:
        yield 0
        release.wait(5)  # busy producing the next item until released
        yield from range(1, 6)

    probe = Lookahead()
    assert not probe.producer_idle()  # not started
    it = prefetch(gen(), depth=2, lookahead=probe)
    assert next(it) == 0
    assert not probe.producer_idle()  # working on item 1, buffer not full
    release.set()
    deadline = time.monotonic() + 5
    while not probe.producer_idle() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert probe.producer_idle()  # two items waiting: it waits for the consumer
    assert list(it) == [1, 2, 3, 4, 5]
    assert probe.producer_idle()  # ran out of items
