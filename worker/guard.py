"""Our workers run only our job: every other job is refused before anything of it runs.

RQ imports and calls whatever function a job names, so anyone who can write to Redis can
make a stock ``rq worker`` run ``os.system(...)``, whatever the serializer. ``cre``
workers (``cre worker``, :class:`~worker.workers.WarmWorker`,
:class:`~worker.workers.ForkWarmWorker`, ``cre run``) check each job as it is dequeued,
before RQ imports, calls or forks anything for it (:func:`refusal_reason`). A job is run
only when:

* its payload is plain data (read by :mod:`worker.payloads`; a payload naming a class or
  a callable is refused while it is read);
* it names a registered function (the scoring job :data:`JOB_FUNCTION`, or one registered
  with :func:`register_job_function`) and no object to call a method on;
* its arguments are a list or tuple and its keyword arguments a dict;
* it names no success, failure or stopped callback and no webhook: RQ would import and call
  the callbacks, and post to the webhooks' URLs.

Anything else is failed in RQ with the reason (it lands in the queue's failed registry, its
RQ result says ``refused by the cre worker: ...``), logged, and never executed; no
``cre`` result record is written for it (:func:`refuse_job`).

RQ also resolves a job's callbacks and sends its webhooks outside job execution: its
maintenance pass runs the failure callback and sends the webhooks of every job it finds
abandoned in the started registry, which anyone with write access can forge. Our workers
therefore use :class:`GuardedJob` as their job class: its callbacks are always ``None``,
it sends no webhook, and its ``func`` refuses unregistered functions too. To run another function in
``cre`` workers, register it in a module the worker imports (e.g. a worker subclass given
to ``cre worker --worker-class``).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from rq.exceptions import DeserializationError
from rq.job import Job
from rq.queue import Queue
from rq.utils import now

__all__ = [
    "JOB_FUNCTION",
    "GuardedJob",
    "JobRefusedError",
    "register_job_function",
    "registered_job_functions",
    "refusal_reason",
    "refuse_job",
    "refuse_unless_registered",
]

logger = logging.getLogger(__name__)

JOB_FUNCTION = "worker.jobs.score_video_job"
"""Import path of the scoring job, as stored in the job."""

_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")
_REGISTERED: set[str] = {JOB_FUNCTION}
_CALLBACK_FIELDS = ("success_callback_name", "failure_callback_name", "stopped_callback_name")


def register_job_function(name: str) -> None:
    """Let ``cre`` workers run jobs of the function at import path ``name`` (``pkg.mod.func``).

    Raises:
        ValueError: ``name`` is not a dotted import path.
    """
    if not isinstance(name, str) or not _DOTTED.match(name):
        raise ValueError(f"not an import path of a function: {name!r}")
    _REGISTERED.add(name)
    logger.info("job function %s registered", name)


class JobRefusedError(RuntimeError):
    """A job that a ``cre`` worker does not run (see :func:`refusal_reason`)."""


class GuardedJob(Job):
    """RQ's ``Job`` that never imports a callback, sends no webhook, and imports only a
    registered function (the job class of ``cre`` workers; see the module docstring)."""

    @property
    def func(self) -> Any:
        name = self.func_name
        if self.instance is not None or not isinstance(name, str) or name not in _REGISTERED:
            raise JobRefusedError(f"function {name!r} is not a cre job")
        return super().func

    @property
    def success_callback(self) -> None:
        return None

    @property
    def failure_callback(self) -> None:
        return None

    @property
    def stopped_callback(self) -> None:
        return None

    def send_webhooks(self, status: Any, *, exc_string: str | None = None) -> None:
        if self.webhooks:
            logger.warning("job %s: its webhooks are not sent by a cre worker", self.id)


def registered_job_functions() -> frozenset[str]:
    """The functions ``cre`` workers run."""
    return frozenset(_REGISTERED)


def refusal_reason(job: Job) -> str | None:
    """Why a ``cre`` worker must not run ``job`` (``None``: it may).

    Reads only the job's plain data: nothing the job names is imported or called.
    """
    try:
        func_name, instance = job.func_name, job.instance
        args, kwargs = job.args, job.kwargs
    except DeserializationError as e:
        return f"its payload is not plain data ({e.__cause__ or e})"
    if instance is not None:
        return "it calls a method of an object"
    if not isinstance(func_name, str) or func_name not in _REGISTERED:
        allowed = ", ".join(sorted(_REGISTERED))
        return f"function {func_name!r} is not a cre job (registered: {allowed})"
    if not isinstance(args, list | tuple) or not isinstance(kwargs, dict):
        return "its arguments are not a list and a dict"
    fields = job.to_dict(include_meta=False, include_result=False)
    callbacks = [f"{f[:-5]} {fields[f]!r}" for f in _CALLBACK_FIELDS if fields.get(f)]
    if callbacks:
        return f"it names a callback ({', '.join(callbacks)})"
    if job.webhooks:
        return "it asks for webhooks"
    return None


def refuse_job(worker: Any, job: Job, queue: Queue, reason: str) -> None:
    """Fail ``job`` in RQ with ``reason`` without running any of it; log it.

    The job gets RQ's ``failed`` status, a failed result whose ``exc_string`` gives the
    reason, and a place in the failed registry. It is not retried, no callback runs and no
    webhook is sent.
    """
    message = f"refused by the cre worker: {reason}; nothing was run"
    logger.error(
        "worker %s: refused job %s from queue %s: %s", worker.name, job.id, queue.name, reason
    )
    job.retries_left = None  # never re-queue a refused job
    job.webhooks = []
    job.ended_at = now()
    worker.handle_job_failure(job, queue, exc_string=message)
    queue.intermediate_queue.remove(job.id)


def refuse_unless_registered(worker: Any, job: Job, queue: Queue) -> bool:
    """Refuse ``job`` (see :func:`refuse_job`) unless it may run; ``True`` when refused."""
    reason = refusal_reason(job)
    if reason is None:
        return False
    refuse_job(worker, job, queue, reason)
    return True
