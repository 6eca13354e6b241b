"""Keeping every job accounted for when a worker dies, hangs, or loses Redis.

Three mechanisms, used by :mod:`worker.workers` and :mod:`worker.serve`:

**Abandoned jobs** (a worker killed with SIGKILL, out of memory, its host lost). RQ keeps
each running job in the queue's ``StartedJobRegistry`` with an expiry; a live worker
pushes the expiry forward (the forking worker every ``job_monitoring_interval``), a
dead one cannot. Every worker's maintenance pass (every ``CRE_MAINTENANCE_INTERVAL_S``,
run between dequeues, which wake at least every ``CRE_WORKER_TTL_S - 15`` s) hands each
expired entry still marked *started* to :func:`abandoned_job_handler`. It writes a
``failed`` record with code ``worker_died`` (unless the job wrote its own record after
it started) and re-queues the job ``CRE_ABANDONED_RETRIES`` times (1 by default), so
another worker scores the video and overwrites the record; after that RQ marks it failed
and the ``worker_died`` record stays. Time from the kill to the record, at most:

* :class:`~worker.workers.WarmWorker` (no heartbeat during a job): the registry entry
  expires ``job_timeout + 2 x CRE_HARD_TIMEOUT_GRACE_S`` after the job started
  (:func:`started_registry_ttl`), then up to ``CRE_MAINTENANCE_INTERVAL_S`` plus one
  dequeue wait (``CRE_WORKER_TTL_S - 15``) until a live worker's pass;
* :class:`~worker.workers.ForkWarmWorker`: the parent heartbeats every 30 s (RQ's
  ``job_monitoring_interval``) with 60 s to spare; if only the work horse dies, the parent
  records it at once (``worker_died``, re-run ``CRE_ABANDONED_RETRIES`` times as an
  abandoned job is; or ``timeout`` past the job's timeout, not re-run).

**Jobs stuck in native code.** RQ's job timeout raises an exception from a ``SIGALRM``
handler, and Python runs handlers only between bytecodes: a decoder or a C library that
never returns is not interrupted. :class:`HardTimeout` is a timer armed for every job at
``job_timeout + CRE_HARD_TIMEOUT_GRACE_S``; when it fires, the forking worker kills its
work horse (the parent then records ``timeout``), and the warm worker, which runs jobs in
its own process, writes the ``timeout`` record, marks the RQ job failed and ends its own
process with SIGKILL: a worker stuck for good is worth less than a restart, which the
supervisor (Docker's restart policy, systemd) does. The timer is a Python thread, so it
needs the stuck code to have released the GIL (blocking I/O, sleeps, FFmpeg and torch
calls do); a C loop that holds the GIL forever stops it too, and then the job is
reported by another worker's abandoned-job pass and the stuck process must be ended by
the operator's liveness check (its worker key stops being refreshed).

**Redis going away.** An idle RQ worker retries its dequeue with back-off; anything else
that fails on a lost connection ends ``work()``. :func:`worker.serve.main` (``cre worker``)
then starts a fresh worker, waiting with back-off until Redis answers again. Two windows a
crash can leave behind are closed by :class:`MaintainedQueue`, the queue class of both
worker classes:

* *a job dequeued but never started*: RQ moves a job from the queue to an intermediate
  list and, in a second step, into the started registry. A worker that dies (or loses
  Redis) between the two leaves the job in that list, still *queued*, where no worker
  looks; RQ's maintenance fails it ("stuck in intermediate queue") a minute after first
  seeing it. It never ran, so :class:`RequeueingIntermediateQueue` puts it back at the
  front of the queue instead, :func:`maintenance_window_s` after first seeing it (far
  longer than any live worker takes between the two steps);
* *a maintenance lock held by the dead*: RQ locks a queue for 899 s while one worker
  cleans its registries and deletes the lock when done. A worker that dies mid-pass (or
  whose Redis connection breaks there) left every worker's pass blocked for 15 minutes,
  abandoned jobs included; the lock now lives :func:`maintenance_window_s` seconds.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from rq import Queue
from rq.intermediate_queue import IntermediateQueue
from rq.job import JobStatus

from worker.settings import Settings, get_settings

__all__ = [
    "MaintainedQueue",
    "RequeueingIntermediateQueue",
    "maintenance_window_s",
    "ABANDONED_CODE",
    "TIMEOUT_CODE",
    "abandoned_job_handler",
    "started_registry_ttl",
    "hard_deadline_s",
    "HardTimeout",
    "kill_own_process",
    "timeout_record_message",
    "add_abandoned_handler",
]

logger = logging.getLogger(__name__)

ABANDONED_CODE = "worker_died"
"""Record code of a job whose worker stopped without finishing it."""
TIMEOUT_CODE = "timeout"
"""Record code of a job that ran past its timeout."""


MAINTENANCE_WINDOW_MIN_S = 10
"""Shortest :func:`maintenance_window_s` (a pass, or a dequeue-to-start step, takes
milliseconds to a second)."""


def maintenance_window_s(settings: Settings) -> int:
    """Two maintenance intervals, at least :data:`MAINTENANCE_WINDOW_MIN_S` seconds: how long
    a queue's maintenance lock lives (RQ: 899 s), and how long a dequeued job may wait to be
    started before it counts as stranded (RQ: 60 s). 60 s with the default settings."""
    return max(MAINTENANCE_WINDOW_MIN_S, 2 * settings.maintenance_interval_s)


_MOVE_TO_FRONT = """
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[3])
return 1
"""
"""Move one job id from the intermediate list to the front of its queue, atomically and
only if it is still in the list (never lost between the two, never queued twice)."""


class RequeueingIntermediateQueue(IntermediateQueue):
    """RQ's intermediate list, whose cleanup re-queues the jobs a dead worker dequeued and
    never started (still *queued*, not in the started registry, first seen over
    :func:`maintenance_window_s` ago) instead of failing them; any other entry is left to
    RQ's cleanup."""

    def should_be_cleaned_up(self, job_id: str) -> bool:
        """Whether ``job_id`` was first seen here over :func:`maintenance_window_s` ago."""
        first_seen = self.connection.get(self.get_first_seen_key(job_id))
        if not first_seen:
            return False
        return time.time() - float(first_seen) > maintenance_window_s(get_settings())

    def cleanup(self, worker: Any, queue: Queue) -> None:
        for job_id in self.get_job_ids():
            if job_id in queue.started_job_registry:
                continue
            job = queue.fetch_job(job_id)
            if job is None or job.get_status(refresh=False) != JobStatus.QUEUED:
                continue  # RQ's cleanup: drop a missing job, fail any other state
            if self.set_first_seen(job_id) or not self.should_be_cleaned_up(job_id):
                continue  # a live worker may be between its two steps: look again later
            moved = self.connection.register_script(_MOVE_TO_FRONT)(
                keys=[self.key, queue.key, self.get_first_seen_key(job_id)], args=[job_id]
            )
            if not moved:
                continue  # someone else took it out of the list since we looked
            logger.warning(
                "job %s was dequeued by a worker that stopped before starting it: re-queued",
                job_id,
            )
        super().cleanup(worker, queue)


class MaintainedQueue(Queue):
    """The workers' queue class: a maintenance lock that outlives a dead worker by seconds,
    not 15 minutes, and an intermediate list that re-queues jobs a dead worker dequeued
    (see the module docstring). Submitters use RQ's plain ``Queue``: same keys, same jobs."""

    def acquire_maintenance_lock(self) -> bool:
        ttl = maintenance_window_s(get_settings())
        return bool(self.connection.set(self.registry_cleaning_key, 1, nx=True, ex=ttl))

    @property
    def intermediate_queue(self) -> RequeueingIntermediateQueue:
        return RequeueingIntermediateQueue(self.key, connection=self.connection)


def started_registry_ttl(job_timeout: float | None, settings: Settings) -> int:
    """Seconds a warm (non-heartbeating) worker's running job stays in the started registry.

    Longer than the hard timeout (``job_timeout + grace``), so a live worker's own timer
    reports a stuck job before any other worker may take it for abandoned.
    """
    timeout = job_timeout if job_timeout and job_timeout > 0 else settings.job_timeout_url_s
    return int(timeout) + 2 * settings.hard_timeout_grace_s


def hard_deadline_s(job_timeout: float | None, settings: Settings) -> float | None:
    """Seconds after a job's start at which :class:`HardTimeout` fires (``None``: never)."""
    if job_timeout is None or job_timeout <= 0:
        return None
    return float(job_timeout + settings.hard_timeout_grace_s)


def _own_record_since_start(job: Any, settings: Settings) -> bool:
    from worker.results import load_result

    record = load_result(job.connection, job.id, settings)
    if record is None or job.started_at is None:
        return False
    return record.created_at.timestamp() >= job.started_at.timestamp()


def abandoned_job_handler(job: Any, exc_type: Any, exc_value: Any, traceback: Any) -> bool | None:
    """RQ exception handler: record (and re-queue) jobs that RQ found abandoned.

    RQ calls every worker's exception handlers for each abandoned job during its
    maintenance pass, before it decides between ``job.retry`` (when ``retries_left``) and
    the failed registry; this handler sets ``retries_left`` for the re-run. Any other
    exception is left to the next handler.

    Returns:
        ``None`` (carry on with the next handler).
    """
    from rq.exceptions import AbandonedJobError, StopRequested

    if exc_type is not AbandonedJobError:
        return None
    from worker.guard import refusal_reason

    reason = refusal_reason(job)
    if reason is not None:  # not ours: no record, no re-run
        logger.warning("abandoned job %s is not a cre job (%s): left to RQ", job.id, reason)
        return None
    settings = get_settings()
    try:
        from worker.jobs import failed_record
        from worker.results import save_result

        times = count_death(job)
        if _own_record_since_start(job, settings):
            # The job's own record (a timeout reported by HardTimeout, or a result written
            # just before the process died) says more than "worker died": keep it, no re-run.
            logger.warning("job %s abandoned after writing its record: not re-run", job.id)
            return None
        attempt = 1 + int(job.number_of_retries or 0)
        retry = times <= settings.abandoned_retries
        source = str(job.args[0]) if job.args else "?"
        note = "re-queued for another worker" if retry else "not retried again"
        record = failed_record(
            job.id,
            source,
            ABANDONED_CODE,
            f"the worker running this job ({job.worker_name or 'unknown'}) stopped without "
            f"finishing it (killed, out of memory or host lost); {note}",
            attempt=attempt,
            worker=job.worker_name,
        )
        save_result(job.connection, record, settings)
        if retry:
            arm_rerun(job, attempt)
        logger.warning(
            "job %s (%s) abandoned by worker %s: %s", job.id, source, job.worker_name, note
        )
    except StopRequested:
        # A stop signal landed here: let it end the maintenance pass. RQ then neither
        # re-queues nor fails this job and leaves it in the started registry, so the next
        # pass (this worker's or another's) handles it whole; swallowing it could leave the
        # retry half set up and the job failed instead of re-run.
        raise
    except Exception:
        logger.exception("could not handle abandoned job %s", job.id)
    return None


def count_death(job: Any) -> int:
    """One more death of ``job``'s process (its worker's or its work horse's), counted in
    ``job.meta["abandoned"]``; returns how many so far (against ``CRE_ABANDONED_RETRIES``)."""
    times = int(job.meta.get("abandoned", 0)) + 1
    job.meta["abandoned"] = times
    return times


def arm_rerun(job: Any, attempt: int) -> None:
    """Set ``job`` up for one immediate re-run, which RQ's failure handling then does (a job
    with retries left is re-queued), numbered as the attempt after ``attempt``."""
    job.retries_left = 1
    job.retry_intervals = [0]
    job.number_of_retries = attempt


def add_abandoned_handler(worker: Any) -> None:
    """Install :func:`abandoned_job_handler` on an RQ worker (once)."""
    from worker.rqcompat import has_exception_handler

    if not has_exception_handler(worker, abandoned_job_handler):
        worker.push_exc_handler(abandoned_job_handler)


class HardTimeout:
    """A one-shot timer per job: ``on_expire(job)`` runs ``seconds`` after :meth:`arm`.

    Use as ``with HardTimeout(job, seconds, on_expire): run the job``; leaving the block
    disarms it. ``seconds=None`` arms nothing.
    """

    def __init__(self, job: Any, seconds: float | None, on_expire: Callable[[Any], None]) -> None:
        self.job = job
        self.seconds = seconds
        self.on_expire = on_expire
        self.fired = False
        self._timer: threading.Timer | None = None

    def _fire(self) -> None:
        self.fired = True
        logger.error(
            "job %s still running %.0f s after it started (timeout %s s): ending it",
            self.job.id,
            self.seconds,
            self.job.timeout,
        )
        try:
            self.on_expire(self.job)
        except Exception:
            logger.exception("hard timeout of job %s failed", self.job.id)

    def arm(self) -> None:
        if self.seconds is None:
            return
        self._timer = threading.Timer(self.seconds, self._fire)
        self._timer.daemon = True
        self._timer.name = f"hard-timeout-{self.job.id}"
        self._timer.start()

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def __enter__(self) -> HardTimeout:
        self.arm()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disarm()


def timeout_record_message(job: Any, settings: Settings) -> str:
    """Why a job was ended by :class:`HardTimeout`."""
    return (
        f"the job ran {job.timeout} s (its timeout) plus {settings.hard_timeout_grace_s} s "
        "without returning (stuck in native code: decoder or library) and its process was killed"
    )


def kill_own_process() -> None:
    """End this process at once (SIGKILL): flush logs first, nothing else runs."""
    for handler in logging.getLogger().handlers + logging.getLogger("worker").handlers:
        try:
            handler.flush()
        except Exception:  # best effort before dying
            pass
    time.sleep(0.05)
    os.kill(os.getpid(), signal.SIGKILL)
