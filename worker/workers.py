"""RQ worker classes that load the model once, before the first job.

* ``rq worker cre --serializer json`` (RQ's default forking ``Worker``): correct but slow
  per job: each job runs in a fresh fork that imports torch and loads the weights again
  (about 2 s). The parent never touches the model.
* ``rq worker cre -w worker.workers.WarmWorker``: a :class:`rq.SimpleWorker` (no fork):
  the model is loaded once, before work starts, and jobs run in the worker process itself.
  No fork means no fork-after-forward deadlock and no per-job import. One job at a time;
  no heartbeat during a job (set ``job_timeout`` sensibly: the queue does).
* ``rq worker cre -w worker.workers.ForkWarmWorker``: the forking worker with the weights
  loaded in the parent but **never run there**; each job's fork inherits them
  (copy-on-write), keeps RQ's heartbeat and crash isolation, and records a ``failed``
  result when a job's process is killed (out of memory, SIGKILL).

Both classes use the JSON serializer whatever ``--serializer`` says, since that is what
:mod:`worker.queue` puts on the queue.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from rq import Queue, SimpleWorker, Worker
from rq.job import Job

from worker.queue import SERIALIZER
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


def _load_model() -> None:
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


def record_killed_job(job: Job, retpid: int, ret_val: int, rusage: Any) -> None:
    """Store a ``failed`` record for a job whose work horse died without writing one."""
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
        record = failed_record(
            job.id,
            source,
            "worker_died",
            f"the job's process exited unexpectedly{signal_note}: out of memory or killed",
            worker=job.worker_name,
        )
        save_result(job.connection, record, settings)
    except Exception:
        logger.exception("could not record the death of job %s", job.id)


class WarmWorker(SimpleWorker):
    """Non-forking worker that loads the model before work (see the module docstring)."""

    def __init__(
        self, queues: str | Queue | Sequence[str] | Sequence[Queue], *args: Any, **kwargs: Any
    ) -> None:
        kwargs["serializer"] = SERIALIZER
        super().__init__(_queue_names(queues), *args, **kwargs)

    def work(self, *args: Any, **kwargs: Any) -> bool:
        _load_model()
        return super().work(*args, **kwargs)


class ForkWarmWorker(Worker):
    """Forking worker with the weights loaded (never run) in the parent."""

    def __init__(
        self, queues: str | Queue | Sequence[str] | Sequence[Queue], *args: Any, **kwargs: Any
    ) -> None:
        kwargs["serializer"] = SERIALIZER
        kwargs.setdefault("work_horse_killed_handler", record_killed_job)
        super().__init__(_queue_names(queues), *args, **kwargs)

    def work(self, *args: Any, **kwargs: Any) -> bool:
        _load_model()
        return super().work(*args, **kwargs)
