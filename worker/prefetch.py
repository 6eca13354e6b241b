"""Run an iterator in a background thread, a few items ahead of its consumer.

Decoding (FFmpeg), face detection and inference (both torch) release the GIL, so
on two cores the decoder can work on the next frames while the current ones are detected
and scored. Exceptions raised by the producer are re-raised in the consumer at the point
where the failed item would have arrived; closing the consumer's generator stops the
producer, closes the source iterator (e.g. the decoder and its file) and waits for the
thread. Close it explicitly (``contextlib.closing``) when the consumer may stop early,
before deleting anything the source reads: a suspended generator is only closed when it
is garbage-collected, and an exception's traceback keeps it alive.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Generator, Iterable
from typing import TypeVar

__all__ = ["prefetch"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_DONE = object()


class _Raised:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def prefetch(
    items: Iterable[T], depth: int = 4, name: str = "cre-prefetch"
) -> Generator[T, None, None]:
    """Yield the items of ``items``, produced by a daemon thread up to ``depth`` ahead.

    Args:
        items: any iterable; it is iterated (and, if a generator, closed) in the thread.
        depth: how many items may wait in the buffer; bounds the memory held.
        name: the thread's name, for debugging.
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    buf: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

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
