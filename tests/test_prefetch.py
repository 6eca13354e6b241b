"""The background prefetcher keeps order, bounds its buffer and propagates errors."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from worker.prefetch import prefetch


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
