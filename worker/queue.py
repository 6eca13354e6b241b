"""Putting videos on the ``cre`` queue: ids, de-duplication, timeouts, serializer.

* Job payloads are in RQ's default format, so a stock ``rq worker cre`` reads them; our
  workers and tools read them with :class:`~worker.payloads.PlainDataSerializer`, which
  builds plain data only (a crafted payload cannot run code in them).
* The job id is the video id (:func:`worker.ids.video_id`): the same file or URL always
  maps to the same job and the same result key.
* A source is not scored twice: it is skipped when its result record (of any status) was
  made from the same content by the same checkpoint with the same options (see
  :mod:`worker.resultkey`; unless ``force``, or ``retry_failed`` for a ``failed`` one), and
  always when a job with its id is queued, scheduled or running: resubmitting a batch after
  a crash scores only what has no result yet; a changed file, checkpoint or option is
  scored again (the submission's ``reason`` says why). The final enqueue is atomic (RQ's
  ``unique=True``), so two submitters racing on one source enqueue it once.
* ``job_timeout`` = ``CRE_JOB_TIMEOUT_BASE_S`` + ``CRE_JOB_TIMEOUT_PER_VIDEO_S`` x the
  duration probed at enqueue time for local files; ``CRE_JOB_TIMEOUT_URL_S`` for URLs and
  for files the probe cannot read (the job will report why).
* Transient download failures are retried with back-off by the job itself (it returns an
  RQ ``Retry``), nothing else is; see :mod:`worker.jobs`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import redis
from rq import Queue
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import Job, JobStatus

from cre_models.errors import CreError
from worker.fetch import is_url
from worker.guard import JOB_FUNCTION
from worker.ids import normalise_source, video_id
from worker.jobs import validate_job_args
from worker.payloads import PlainDataSerializer
from worker.resultkey import (
    CheckpointIdentity,
    IdentityUnavailableError,
    checkpoint_identity,
    expected_key,
    reuse_refusal,
)
from worker.results import load_result
from worker.settings import Settings

__all__ = [
    "JOB_FUNCTION",
    "SERIALIZER",
    "Submission",
    "connect",
    "make_queue",
    "job_timeout_for",
    "enqueue",
]

logger = logging.getLogger(__name__)

SERIALIZER = PlainDataSerializer
"""Writes RQ's default payload format; reads plain data only."""

PENDING_STATUSES = {
    JobStatus.QUEUED,
    JobStatus.STARTED,
    JobStatus.SCHEDULED,
    JobStatus.DEFERRED,
    JobStatus.CREATED,
}
SubmissionStatus = Literal["queued", "skipped_done", "skipped_pending", "rejected"]


@dataclass(frozen=True)
class Submission:
    """What :func:`enqueue` did with one source."""

    source: str
    video_id: str | None
    status: SubmissionStatus
    reason: str | None = None
    job_timeout: int | None = None


def connect(settings: Settings) -> redis.Redis:
    """A Redis connection to ``CRE_REDIS_URL`` (or the default local URL)."""
    return redis.Redis.from_url(settings.redis_url_or_default())


def make_queue(conn: redis.Redis, settings: Settings) -> Queue:
    """The ``cre`` queue (RQ's default payload format, read back as plain data only)."""
    return Queue(settings.queue_name, connection=conn, serializer=SERIALIZER)


def job_timeout_for(source: str, settings: Settings) -> int:
    """Seconds a job for ``source`` may run (see the module docstring)."""
    if is_url(source):
        return settings.job_timeout_url_s
    try:
        from cre_models.video import probe_video

        info = probe_video(Path(source), settings.video_limits())
        duration = float(info.duration_s)
    except (CreError, OSError, ValueError) as e:
        logger.info("cannot probe %s at enqueue time (%s): using the generous timeout", source, e)
        return settings.job_timeout_url_s
    return int(math.ceil(settings.job_timeout_base_s + settings.job_timeout_per_video_s * duration))


def _existing_job(job_id: str, conn: redis.Redis) -> Job | None:
    try:
        return Job.fetch(job_id, connection=conn, serializer=SERIALIZER)
    except NoSuchJobError:
        return None


def _pending_reason(job: Job, status: JobStatus, conn: redis.Redis) -> str:
    """ "job is queued" etc.; for a started job whose worker no longer exists, says so (its
    job waits for the abandoned-job pass, up to the job's timeout, see worker.reliability)."""
    if status != JobStatus.STARTED or not job.worker_name:
        return f"job is {status.value}"
    if conn.exists(f"rq:worker:{job.worker_name}"):
        return f"job is started (worker {job.worker_name})"
    return (
        f"job is started by worker {job.worker_name}, which is no longer alive: once its time "
        "runs out it gets a worker_died record and is re-run if it has retries left"
    )


def _delete_job(job: Job, conn: redis.Redis) -> None:
    """``job.delete()``, also in the minute after a dead worker's execution record expired.

    RQ keeps a job's execution ids 60 s longer than the executions themselves; in that gap
    ``Job.delete`` fails on the missing execution ("Execution ... not found in Redis"). The
    ids then name nothing: drop them and delete again.
    """
    try:
        job.delete()
    except ValueError as e:
        logger.info("job %s: %s: dropping its stale execution ids", job.id, e)
        conn.delete(job.execution_registry.key)
        job.delete()


def printable_source(source: Any) -> str:
    """``source`` as text that can be printed, stored and sent (a file name in another
    encoding, read by Python with surrogate escapes, shows its bytes as ``\\xNN``)."""
    text = str(source)
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that no escaped byte stands for
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def _enqueue_one(
    source: str,
    queue: Queue,
    conn: redis.Redis,
    settings: Settings,
    force: bool,
    options: dict[str, Any] | None,
    retry_failed: bool = False,
    checkpoint: CheckpointIdentity | None = None,
) -> Submission:
    try:
        _, opts = validate_job_args(source, options)
    except CreError as e:
        return Submission(printable_source(source), None, "rejected", e.message)
    if not is_url(source):
        path = Path(source).expanduser()
        if not path.is_file():
            return Submission(
                source, None, "rejected", "no such file" if not path.exists() else "not a file"
            )
    norm = normalise_source(source)
    vid = video_id(norm)
    why: str | None = None
    if not force:
        record = load_result(conn, vid, settings)
        if record is not None:
            key = (
                None
                if checkpoint is None
                else expected_key(settings, checkpoint, opts.frames, opts.aggregation)
            )
            stale = reuse_refusal(record, norm, key)
            if stale is not None:
                why = f"scoring again: {stale}"
            elif retry_failed and record.status == "failed":
                why = "scoring again: --retry-failed"
            else:
                hint = " (--retry-failed to try again)" if record.status == "failed" else ""
                return Submission(norm, vid, "skipped_done", f"already {record.status}{hint}")
    old = _existing_job(vid, conn)
    if old is not None:
        status = old.get_status(refresh=False)
        if status in PENDING_STATUSES:
            return Submission(norm, vid, "skipped_pending", _pending_reason(old, status, conn))
        _delete_job(old, conn)  # finished/failed/stopped: make room for the new job
    timeout = job_timeout_for(norm, settings)
    try:
        queue.enqueue_call(
            JOB_FUNCTION,
            args=(norm, options),
            job_id=vid,
            timeout=timeout,
            failure_ttl=settings.failed_job_ttl_s,
            description=f"score {norm}",
            unique=True,
        )
    except DuplicateJobError:
        return Submission(
            norm, vid, "skipped_pending", "enqueued concurrently by another submitter"
        )
    logger.debug("enqueued %s as %s (timeout %d s)", norm, vid, timeout)
    return Submission(norm, vid, "queued", why, timeout)


def enqueue(
    sources: Iterable[str],
    settings: Settings,
    force: bool = False,
    *,
    options: dict[str, Any] | None = None,
    conn: redis.Redis | None = None,
    retry_failed: bool = False,
) -> list[Submission]:
    """Enqueue one scoring job per source; returns what happened to each, in order.

    Args:
        sources: local video paths or URLs (folders are expanded by the caller).
        settings: queue name, Redis URL, timeouts.
        force: score again even when a matching result record exists (a job that is
            still queued or running is never duplicated).
        options: per-job overrides (:class:`worker.jobs.JobOptions`), validated here.
        conn: Redis connection; from ``settings`` when omitted.
        retry_failed: score again the sources whose record is ``failed`` (not the others).
    """
    conn = conn if conn is not None else connect(settings)
    queue = make_queue(conn, settings)
    checkpoint: CheckpointIdentity | None = None
    if not force:
        try:
            checkpoint = checkpoint_identity(settings.weights)
        except IdentityUnavailableError as e:
            logger.warning("%s: stored results cannot be matched and are scored again", e)
    out = []
    seen: set[str] = set()
    for source in sources:
        try:
            vid: str | None = video_id(source) if isinstance(source, str) else None
        except (OSError, ValueError):
            vid = None
        if vid is not None and vid in seen:
            out.append(Submission(normalise_source(source), vid, "skipped_pending", "listed twice"))
            continue
        sub = _enqueue_one(source, queue, conn, settings, force, options, retry_failed, checkpoint)
        if sub.video_id is not None:
            seen.add(sub.video_id)
        out.append(sub)
    return out
