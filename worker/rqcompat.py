"""Every use of RQ's private API, in one module.

RQ is pinned to the minor range the tests ran on (``pyproject.toml``). The few places where
``cre`` needs something RQ does not expose publicly go through this module, and
``tests/test_rqcompat.py`` checks each of them against the installed RQ, so an upgrade that
renames or changes one fails there, not in production:

* ``BaseWorker._exc_handlers``: the exception-handler stack has a public ``push`` but no
  public read; :func:`has_exception_handler` keeps ``push_exc_handler`` idempotent.
* ``BaseWorker._shutdown()`` and ``BaseWorker._stop_requested``: RQ's warm-shutdown step
  and the flag its work loop checks; :class:`StopRequestSticks` sets the flag before RQ
  raises ``StopRequested``, which can be lost, and honours it where RQ's idle loop asks
  the public ``should_run_maintenance_tasks`` before each dequeue (see there).
* ``BaseWorker._shutdown_requested_date``: set in the process by ``request_stop`` (SIGTERM,
  SIGINT). The public ``shutdown_requested_date`` reads Redis, where RQ writes it only for
  a busy worker; :func:`stop_was_requested` reads the local one.

RQ 3.0's ``unsubscribe`` (called as a worker stops) sends UNSUBSCRIBE before it tells its pubsub
thread to stop; :class:`PubSubStopsFirst` does it the other way round (see there).

A child forked from a worker (its scheduler process, a work horse) inherits the worker's
SIGTERM handler until it installs its own. A warm stop sends the scheduler SIGTERM and waits
for it; landing in that window (in an at-fork hook, which swallows exceptions) the handler's
``StopRequested`` was lost and the worker waited for the scheduler until SIGKILL (a fresh-clone
CI run, twentieth session). :func:`sigterm_default_in_forked_child`, run after every fork in
a process that imported this module, puts SIGTERM back to its default (end the process) in
such a child, as RQ does itself in a work horse.

Anything else ``cre`` uses of RQ is public API (``Worker``, ``SimpleWorker``, ``Job``,
``Queue``, ``handle_job_failure``, ``fork_work_horse``, ``execute_job``...).
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from typing import Any

from rq.exceptions import StopRequested
from rq.worker import BaseWorker

__all__ = [
    "PRIVATE_NAMES",
    "PubSubStopsFirst",
    "StopRequestSticks",
    "has_exception_handler",
    "sigterm_default_in_forked_child",
    "stop_was_requested",
]

logger = logging.getLogger(__name__)

PRIVATE_NAMES: tuple[str, ...] = (
    "BaseWorker._exc_handlers",
    "BaseWorker._shutdown",
    "BaseWorker._stop_requested",
    "BaseWorker._shutdown_requested_date",
)
"""The private RQ names this module uses (``tests/test_rqcompat.py`` checks each one)."""


def sigterm_default_in_forked_child() -> None:
    """SIGTERM back to its default in a process whose handler is an RQ worker's (see the
    module docstring); any other handler is left alone."""
    handler = signal.getsignal(signal.SIGTERM)
    if isinstance(getattr(handler, "__self__", None), BaseWorker):
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        except ValueError:  # not the main thread: nothing safe to do here
            pass


os.register_at_fork(after_in_child=sigterm_default_in_forked_child)


def has_exception_handler(worker: Any, handler: Callable[..., Any]) -> bool:
    """Whether ``handler`` is on ``worker``'s exception-handler stack."""
    return handler in worker._exc_handlers


def stop_was_requested(worker: Any) -> bool:
    """Whether this worker process received a warm-shutdown request (SIGTERM or SIGINT)."""
    return worker._shutdown_requested_date is not None


class StopRequestSticks:
    """Make a warm-shutdown request (SIGTERM) stick even when RQ's exception is lost.

    RQ stops an idle worker by raising ``StopRequested`` from the signal handler and only
    sets ``_stop_requested`` for a busy one. A signal that lands inside code which swallows
    exceptions (seen: logging's at-fork hook while the scheduler process forks; any
    ``except Exception`` in a maintenance pass, which an idle worker with a short
    maintenance interval is often inside) loses that exception. Setting the flag first is
    not enough on its own: RQ's idle loop (``dequeue_job_and_maintain_ttl``) goes round
    after every dequeue timeout without reading the flag, so the worker would run until a
    job arrived or a second signal. RQ reads ``should_run_maintenance_tasks`` before every
    dequeue attempt, in that loop and in the outer one, never with a job in hand; it raises
    ``StopRequested`` there once the flag is set, so the worker stops at most one dequeue
    timeout after the request.

    Mix it in before the RQ worker class: ``class W(StopRequestSticks, SimpleWorker)``.
    """

    _stop_requested: bool

    def _shutdown(self) -> None:
        self._stop_requested = True
        super()._shutdown()  # type: ignore[misc]

    @property
    def should_run_maintenance_tasks(self) -> bool:
        """RQ's own answer, once no stop was requested; raises ``StopRequested`` after one."""
        if self._stop_requested:
            raise StopRequested()
        return bool(super().should_run_maintenance_tasks)  # type: ignore[misc]

    def stop_requested(self) -> bool:
        """Whether the work loop will stop at its next check."""
        return bool(self._stop_requested)


PUBSUB_JOIN_S = 5.0
"""How long a stopping worker waits for its pubsub thread (a daemon) before it goes on."""


class PubSubStopsFirst:
    """Stop the worker's pubsub thread before unsubscribing, so that a warm shutdown ends.

    RQ 3.0's ``unsubscribe`` sends UNSUBSCRIBE, then calls the thread's ``stop()``. With
    redis-py 8 that ``stop()`` waits, without a bound, for the thread to leave its loop,
    which reads with RQ's ``sleep_time`` of 60 s. When the UNSUBSCRIBE reply reaches the
    thread before ``stop()`` clears its running flag, the thread goes round once more and, no
    longer subscribed, waits up to 60 s: the worker hangs in its teardown after "unsubscribing
    from channel" (seen once in a fresh-clone CI run: a warm-shutdown test killed it after
    30 s). Here the flag is cleared first (``stop`` with no wait), then the UNSUBSCRIBE reply
    wakes the thread, which leaves; the join is bounded either way.

    Mix it in before the RQ worker class. Uses only RQ's public ``pubsub`` and
    ``pubsub_thread`` attributes and redis-py's public ``PubSubWorkerThread.stop``.
    """

    pubsub: Any
    pubsub_thread: Any
    pubsub_channel_name: str
    name: str

    def unsubscribe(self) -> None:
        thread = self.pubsub_thread
        if thread is None:
            return
        logger.info("worker %s: unsubscribing from channel %s", self.name, self.pubsub_channel_name)
        try:
            thread.stop(timeout=0)  # redis-py >= 8: clear the flag, do not wait
        except TypeError:
            thread.stop()  # older redis-py: stop() only clears the flag
        if thread.is_alive():
            self.pubsub.unsubscribe()  # its reply wakes the thread, which now sees the flag
            thread.join(timeout=PUBSUB_JOIN_S)
        if thread.is_alive():
            logger.warning(
                "worker %s: pubsub thread still running after %.0f s; going on without it",
                self.name,
                PUBSUB_JOIN_S,
            )
        self.pubsub.close()
