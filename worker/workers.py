"""RQ worker classes that load the model once, before the first job.

* ``rq worker cre`` (RQ's stock forking ``Worker``): correct but slow per job: each job
  runs in a fresh fork that imports torch and loads the weights again. The parent never
  touches the model. It unpickles payloads with ``pickle.loads`` and runs any function a
  job names (see SECURITY.md).
* ``rq worker cre -w worker.workers.WarmWorker``: a :class:`rq.SimpleWorker` (no fork):
  the model is loaded once, before work starts, and jobs run in the worker process itself.
  No fork means no fork-after-forward deadlock and no per-job import. One job at a time;
  no heartbeat during a job (set ``job_timeout`` sensibly: the queue does).
* ``rq worker cre -w worker.workers.ForkWarmWorker``: the forking worker with the weights
  loaded in the parent but **never run there**; each job's fork inherits them
  (copy-on-write), keeps RQ's heartbeat and crash isolation, and records a ``failed``
  result when a job's process is killed (out of memory, SIGKILL).

Both classes run only the scoring job: any other job is failed in RQ with the reason and
never executed, and no job's callback or webhook is ever run (:mod:`worker.guard`). Both
read payloads with :class:`~worker.payloads.PlainDataSerializer` (plain data only) whatever
``--serializer`` says; they write RQ's default format, like the queue.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from typing import Any

from rq import Queue, SimpleWorker, Worker
from rq.job import Job

from worker.guard import GuardedJob, refuse_unless_registered
from worker.queue import SERIALIZER
from worker.reliability import (
    TIMEOUT_CODE,
    HardTimeout,
    MaintainedQueue,
    add_abandoned_handler,
    arm_rerun,
    count_death,
    hard_deadline_s,
    kill_own_process,
    started_registry_ttl,
    timeout_record_message,
)
from worker.rqcompat import PubSubStopsFirst, StopRequestSticks
from worker.settings import get_settings

__all__ = ["WarmWorker", "ForkWarmWorker", "record_killed_job"]

logger = logging.getLogger(__name__)


def _queue_names(queues: Any) -> list[str]:
    items = [queues] if isinstance(queues, str | Queue) else list(queues)
    return [q.name if isinstance(q, Queue) else str(q) for q in items]


def _setup_logging(level: str) -> None:
    """Show this package's log lines the way ``rq worker`` shows its own (it configures only
    the ``rq.worker`` logger)."""
    if logging.getLogger().handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", "%H:%M:%S"))
    for name in ("worker", "cre_models"):
        pkg_logger = logging.getLogger(name)
        if not pkg_logger.handlers:
            pkg_logger.addHandler(handler)
            pkg_logger.setLevel(level.upper())


def _load_model(warm_up: bool = False) -> None:
    """Load the process's scorer; with ``warm_up`` and a GPU, also run
    :meth:`~worker.scoring.Scorer.warm_up` (never in a forking worker's parent)."""
    from worker.scoring import get_scorer

    settings = get_settings()
    _setup_logging(settings.log_level)
    scorer = get_scorer(settings)
    logger.info(
        "worker %d: model %s v%s loaded (batch %d, aggregation %s)",
        os.getpid(),
        scorer.model_name,
        scorer.model_version,
        scorer.batch_size,
        scorer.aggregation,
    )
    if warm_up and scorer.device.type == "cuda":
        logger.info("worker %d: GPU warmed up in %.2f s", os.getpid(), scorer.warm_up())


def record_killed_job(job: Job, retpid: int, ret_val: int, rusage: Any) -> None:
    """Store a ``failed`` record for a job whose work horse died without writing one, and
    set the job up to be re-run (``CRE_ABANDONED_RETRIES`` times, as a job whose whole
    worker died), which RQ's failure handling then does. A hard timeout is not re-run."""
    from worker.jobs import failed_record
    from worker.results import load_result, save_result

    settings = get_settings()
    try:
        existing = load_result(job.connection, job.id, settings)
        started = job.started_at.timestamp() if job.started_at else 0.0
        if existing is not None and existing.created_at.timestamp() >= started:
            return  # the job wrote its own record before dying
        source = str(job.args[0]) if job.args else "?"
        signal_note = (
            f" (signal {os.WTERMSIG(ret_val)})" if ret_val and os.WIFSIGNALED(ret_val) else ""
        )
        ran_s = time.time() - started if started else 0.0
        attempt = 1 + int(job.number_of_retries or 0)
        if job.timeout and job.timeout > 0 and ran_s > job.timeout:  # ended by HardTimeout
            code, message = TIMEOUT_CODE, timeout_record_message(job, settings)
        else:
            code = "worker_died"
            times = count_death(job)
            job.save_meta()
            retry = times <= settings.abandoned_retries
            message = (
                f"the job's process exited unexpectedly{signal_note}: out of memory or killed; "
                + ("re-queued" if retry else "not retried again")
            )
            if retry:  # RQ's handle_job_failure, next, re-queues it
                arm_rerun(job, attempt)
        record = failed_record(
            job.id, source, code, message, attempt=attempt, worker=job.worker_name
        )
        save_result(job.connection, record, settings)
    except Exception:
        logger.exception("could not record the death of job %s", job.id)


class _Warm(StopRequestSticks, PubSubStopsFirst):
    """What both worker classes are: plain-data payloads, the guarded job class, the pass
    over abandoned jobs, and the model loaded before the first job. Mixed in before the RQ
    worker class."""

    def __init__(
        self, queues: str | Queue | Sequence[str] | Sequence[Queue], *args: Any, **kwargs: Any
    ) -> None:
        kwargs["serializer"] = SERIALIZER
        kwargs["job_class"] = GuardedJob
        kwargs["queue_class"] = MaintainedQueue
        super().__init__(_queue_names(queues), *args, **kwargs)  # type: ignore[call-arg]
        add_abandoned_handler(self)

    warm_up_model = False
    """Run the model once per batch size on a GPU before the first job (no fork after)."""

    def work(self, *args: Any, **kwargs: Any) -> bool:
        _load_model(warm_up=self.warm_up_model)
        return bool(super().work(*args, **kwargs))  # type: ignore[misc]


class WarmWorker(_Warm, SimpleWorker):
    """Non-forking worker that loads the model before work (see the module docstring); on a
    GPU it also warms the model up (:meth:`~worker.scoring.Scorer.warm_up`)."""

    warm_up_model = True

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        """How long the running job stays in the started registry (no heartbeat during it)."""
        return started_registry_ttl(job.timeout, get_settings())

    def execute_job(self, job: Job, queue: Queue) -> None:
        if refuse_unless_registered(self, job, queue):
            return
        deadline = hard_deadline_s(job.timeout, get_settings())
        with HardTimeout(job, deadline, lambda j: self._end_stuck_job(j, queue)):
            super().execute_job(job, queue)

    def _end_stuck_job(self, job: Job, queue: Queue) -> None:
        """Record a job stuck in native code, fail it in RQ, and end this process."""
        from worker.jobs import failed_record
        from worker.results import save_result

        settings = get_settings()
        message = timeout_record_message(job, settings)
        try:
            source = str(job.args[0]) if job.args else "?"
            attempt = 1 + int(job.number_of_retries or 0)
            record = failed_record(
                job.id, source, TIMEOUT_CODE, message, attempt=attempt, worker=self.name
            )
            save_result(self.connection, record, settings)
            self.handle_job_failure(job, queue, exc_string=message)
        finally:
            logger.error("worker %s: ending this process (job %s is stuck)", self.name, job.id)
            kill_own_process()


class ForkWarmWorker(_Warm, Worker):
    """Forking worker with the weights loaded (never run) in the parent."""

    def __init__(
        self, queues: str | Queue | Sequence[str] | Sequence[Queue], *args: Any, **kwargs: Any
    ) -> None:
        kwargs.setdefault("work_horse_killed_handler", record_killed_job)
        super().__init__(queues, *args, **kwargs)
        self._hard_timeout: HardTimeout | None = None

    def fork_work_horse(self, job: Job, queue: Queue) -> None:
        super().fork_work_horse(job, queue)  # only the parent returns
        deadline = hard_deadline_s(job.timeout, get_settings())
        self._hard_timeout = HardTimeout(job, deadline, lambda j: self.kill_horse())
        self._hard_timeout.arm()

    def execute_job(self, job: Job, queue: Queue) -> None:
        if refuse_unless_registered(self, job, queue):  # before the fork
            return
        try:
            super().execute_job(job, queue)
        finally:
            if self._hard_timeout is not None:
                self._hard_timeout.disarm()
                self._hard_timeout = None
