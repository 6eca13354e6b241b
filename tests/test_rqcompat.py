"""RQ's private API that ``worker/rqcompat.py`` relies on still behaves as it assumes.

Each test exercises one name of :data:`worker.rqcompat.PRIVATE_NAMES` on the installed RQ
(a real worker on a real Valkey), so an RQ upgrade that renames or changes one fails here.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
import tomllib
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import redis
from rq import SimpleWorker
from rq.exceptions import StopRequested

from worker import rqcompat

pytest_plugins = ("tests.queue_fixtures",)  # fixtures: valkey_url, conn

ROOT = Path(__file__).resolve().parents[1]


class _Sticky(rqcompat.StopRequestSticks, rqcompat.PubSubStopsFirst, SimpleWorker):
    """The stop mixin on a plain worker, with the pubsub teardown fix the shipped workers
    have: without it RQ's teardown can wait 60 s for its pubsub thread (``PubSubStopsFirst``),
    which failed the idle-loop test below twice in fresh-clone CI runs (62 s against 10)."""


@pytest.fixture
def restore_signals() -> Iterator[None]:
    """RQ's request_stop and work() install SIGINT/SIGTERM handlers: put pytest's back."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


def test_rq_is_pinned_to_the_tested_minor_range() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (spec,) = [d for d in deps if re.match(r"rq\b", d)]
    m = re.fullmatch(r"rq>=(\d+)\.(\d+)(?:\.\d+)?,<(\d+)\.(\d+)", spec.replace(" ", ""))
    assert m, f"rq must be pinned to one minor range (rq>=X.Y,<X.Y+1), got {spec!r}"
    major, minor, major_end, minor_end = map(int, m.groups())
    assert (major_end, minor_end) == (major, minor + 1), spec
    installed = tuple(int(x) for x in version("rq").split(".")[:2])
    assert installed == (major, minor), f"installed rq {version('rq')} is outside {spec}"


def test_every_private_name_exists(conn: redis.Redis) -> None:
    from rq.worker import BaseWorker

    worker = SimpleWorker(["cre"], connection=conn)
    for name in rqcompat.PRIVATE_NAMES:
        cls_name, attr = name.split(".")
        assert cls_name == "BaseWorker" and isinstance(worker, BaseWorker), name
        assert hasattr(worker, attr), f"RQ {version('rq')} has no {name}"
    assert callable(BaseWorker._shutdown)
    assert isinstance(worker._exc_handlers, list)
    assert worker._stop_requested is False and worker._shutdown_requested_date is None


def test_exception_handler_stack(conn: redis.Redis) -> None:
    def handler(*args: Any) -> None:
        return None

    worker = SimpleWorker(["cre"], connection=conn)
    assert not rqcompat.has_exception_handler(worker, handler)
    worker.push_exc_handler(handler)
    assert rqcompat.has_exception_handler(worker, handler)
    worker.pop_exc_handler()
    assert not rqcompat.has_exception_handler(worker, handler)


def test_shutdown_raises_when_idle_and_sets_the_flag_when_busy(
    conn: redis.Redis, restore_signals: None
) -> None:
    """RQ's own _shutdown: an idle worker raises StopRequested, a busy one sets the flag."""
    from rq.worker import WorkerStatus

    idle = SimpleWorker(["cre"], connection=conn)
    idle.set_state(WorkerStatus.IDLE)
    with pytest.raises(StopRequested):
        idle._shutdown()
    busy = SimpleWorker(["cre"], connection=conn)
    busy.set_state(WorkerStatus.BUSY)
    assert busy._stop_requested is False
    busy.request_stop(signal.SIGTERM, None)  # calls _shutdown()
    assert busy._stop_requested is True
    assert busy.shutdown_requested_date is not None  # a busy worker writes it to Redis


def test_the_work_loop_reads_the_stop_flag(conn: redis.Redis, restore_signals: None) -> None:
    """With the flag set, a non-burst worker on an empty queue returns at once (it would
    otherwise wait for jobs until max_idle_time)."""
    worker = SimpleWorker(["cre"], connection=conn)
    worker._stop_requested = True
    t0 = time.monotonic()
    worker.work(burst=False, max_idle_time=20, logging_level="WARNING")
    assert time.monotonic() - t0 < 10


def test_stop_request_sticks_when_the_exception_is_lost(conn: redis.Redis) -> None:
    """RQ raises StopRequested from the signal handler of an idle worker; if something
    swallows it (an at-fork hook did), the request must still stop the loop."""
    from worker.workers import ForkWarmWorker, WarmWorker

    for cls in (_Sticky, WarmWorker, ForkWarmWorker):
        worker = cls(["cre"], connection=conn)
        assert not worker.stop_requested()
        try:
            worker._shutdown()
        except StopRequested:
            pass  # what RQ does for an idle worker; pretend it was swallowed
        assert worker.stop_requested(), cls.__name__


def test_request_stop_sets_the_local_shutdown_date(
    conn: redis.Redis, restore_signals: None
) -> None:
    worker = SimpleWorker(["cre"], connection=conn)
    assert not rqcompat.stop_was_requested(worker)
    with pytest.raises(StopRequested):  # idle: RQ raises from the handler
        worker.request_stop(signal.SIGTERM, None)
    assert rqcompat.stop_was_requested(worker)
    assert worker.shutdown_requested_date is None  # the public one reads Redis: not written


def test_a_lost_stop_request_ends_the_idle_loop(conn: redis.Redis, restore_signals: None) -> None:
    """RQ's idle loop goes round after every dequeue timeout without reading the stop flag;
    a request whose StopRequested was swallowed (here: raised in another thread) must still
    end ``work()`` within a few dequeue timeouts, not at ``max_idle_time`` (30 s)."""
    import threading

    from worker.workers import WarmWorker

    for cls in (_Sticky, WarmWorker):
        worker = cls(["cre"], connection=conn, worker_ttl=16)  # dequeue timeout: 1 s

        def lost_stop(w: Any = worker) -> None:
            try:
                w._shutdown()  # idle: sets the flag, then RQ raises, and nobody hears it
            except StopRequested:
                pass

        timer = threading.Timer(1.5, lost_stop)
        timer.start()
        t0 = time.monotonic()
        try:
            worker.work(burst=False, max_idle_time=30, logging_level="WARNING")
        finally:
            timer.cancel()
        assert worker.stop_requested(), cls.__name__
        assert time.monotonic() - t0 < 10, cls.__name__


def test_a_stopping_worker_does_not_wait_for_its_pubsub_thread(
    conn: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The teardown hang of a fresh-clone CI run: the UNSUBSCRIBE reply reached RQ's pubsub
    thread before ``stop()`` cleared its flag, and the thread then slept out RQ's 60 s
    ``sleep_time``. That ordering is forced here by delaying ``stop()`` by 0.3 s; RQ's own
    ``unsubscribe`` then takes about a minute, ours returns at once."""
    from worker.workers import ForkWarmWorker, WarmWorker

    for cls in (WarmWorker, ForkWarmWorker):
        worker = cls(["cre"], connection=conn)
        worker.subscribe()
        thread = worker.pubsub_thread
        time.sleep(0.3)  # the thread is in its blocking read
        stop = thread.stop

        def late_stop(*args: Any, _stop: Any = stop, **kwargs: Any) -> None:
            time.sleep(0.3)
            _stop(*args, **kwargs)

        monkeypatch.setattr(thread, "stop", late_stop)
        done = threading.Event()
        runner = threading.Thread(
            target=lambda w=worker, d=done: (w.unsubscribe(), d.set()), daemon=True
        )
        t0 = time.monotonic()
        runner.start()
        assert done.wait(15), f"{cls.__name__}.unsubscribe() still waiting after 15 s"
        assert time.monotonic() - t0 < 5
        assert not thread.is_alive()


def _handler_in_a_forked_child() -> int:
    """Fork; the child exits 0 when its SIGTERM handler is the default, 1 otherwise."""
    pid = os.fork()
    if pid == 0:  # the child: nothing but the check
        os._exit(0 if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL else 1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_a_child_forked_from_a_worker_ends_on_sigterm(conn: redis.Redis) -> None:
    """A worker's scheduler process inherits the worker's SIGTERM handler until it installs
    its own; a stop landing there was lost and the worker waited for it until SIGKILL. In a
    child, SIGTERM is back to its default; a handler that is not a worker's stays."""
    worker = SimpleWorker(["cre"], connection=conn)
    old = signal.signal(signal.SIGTERM, worker.request_stop)
    try:
        assert _handler_in_a_forked_child() == 0
        signal.signal(signal.SIGTERM, lambda *_: None)
        assert _handler_in_a_forked_child() == 1
    finally:
        signal.signal(signal.SIGTERM, old)
