"""Run an iterator in a background thread, a few items ahead of its consumer.

Decoding (FFmpeg), face detection and inference (both torch) release the GIL, so
on two cores the decoder can work on the next frames while the current ones are detected
and scored. Exceptions raised by the producer are re-raised in the consumer at the point
where the failed item would have arrived; closing the consumer's generator stops the
producer, closes the source iterator (e.g. the decoder and its file) and waits for the
thread. Close it explicitly (``contextlib.closing``) when the consumer may stop early,
before deleting anything the source reads: a suspended generator is only closed when it
is garbage-collected, and an exception's traceback keeps it alive.

A :class:`Lookahead` passed in tells the consumer whether the producer is idle (its buffer
full, or the source exhausted): the scorer then lets torch use the core the decoder
would otherwise need (:meth:`worker.scoring.Scorer.score_frames`).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Generator, Iterable
from typing import TypeVar

__all__ = ["prefetch", "Lookahead"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_DONE = object()


class _Raised:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class Lookahead:
    """What the consumer of a running :func:`prefetch` can ask about its producer."""

    def __init__(self) -> None:
        self._buf: queue.Queue[object] | None = None
        self._finished = threading.Event()

    def producer_idle(self) -> bool:
        """True while the producer cannot be working: its buffer is full (it waits for the
        consumer, which is busy with this call's caller) or it has run out of items.

        At most the item it was producing when the buffer filled overlaps what the caller
        does next; before :func:`prefetch` starts, False.
        """
        buf = self._buf
        return self._finished.is_set() or (buf is not None and buf.full())


def prefetch(
    items: Iterable[T],
    depth: int = 4,
    name: str = "cre-prefetch",
    lookahead: Lookahead | None = None,
) -> Generator[T, None, None]:
    """Yield the items of ``items``, produced by a daemon thread up to ``depth`` ahead.

    Args:
        items: any iterable; it is iterated (and, if a generator, closed) in the thread.
        depth: how many items may wait in the buffer; bounds the memory held.
        name: the thread's name, for debugging.
        lookahead: filled in to tell the consumer when the producer is idle.
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    buf: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    if lookahead is not None:
        lookahead._buf = buf

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                buf.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        it = iter(items)
        try:
            for item in it:
                if not put(item):
                    break
            else:
                put(_DONE)
        except BaseException as e:  # re-raised in the consumer
            put(_Raised(e))
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()
            if lookahead is not None:
                lookahead._finished.set()

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = buf.get()
            if item is _DONE:
                return
            if isinstance(item, _Raised):
                raise item.exc
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join(timeout=5)
        if thread.is_alive():  # the source is stuck in native code: nothing more to do here
            logger.warning("%s: the producer thread did not stop within 5 s", name)
