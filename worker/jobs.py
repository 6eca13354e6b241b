"""The RQ job: score one video and store its result record.

:func:`score_video` is a plain function that wires the steps
(fetch -> probe -> sample -> detect/crop -> score -> person tracks -> video score) and times
them; it needs no Redis. :func:`score_video_job` is the thin RQ job around it: it stores the
record, reports progress in ``job.meta["progress"]`` and decides about retries.

The video score comes from person tracks (:mod:`cre_models.tracks`): faces are linked across
the sampled frames, each track is scored with the aggregation strategy, and the video gets
the highest score of the tracks long enough to count; each face keeps its track id.

Failure policy (a record always exists once a job has run):

* an expected failure (:class:`~cre_models.errors.CreError`: bad input, corrupt video, model
  unavailable...) gives a ``failed`` record with the error's code; the RQ job itself
  finishes normally, because the record is the outcome;
* a transient download failure (:class:`~worker.errors.TransientFetchError`) gives a
  ``failed`` record with code ``fetch_transient`` and the job returns an RQ ``Retry`` with
  back-off (``CRE_FETCH_RETRIES``, ``CRE_FETCH_RETRY_BACKOFF_S``), so only those are
  retried; a later attempt overwrites the record, and after the last retry the
  ``fetch_transient`` record stays (``attempt`` says how many were made);
* anything else (a bug, a job timeout) gives a ``failed`` record with code ``internal``
  (``timeout`` for RQ's job timeout) and is re-raised, so RQ moves the job to its failed
  registry with the traceback. Such jobs are not retried.

Nothing here imports torch at module level: a forking worker's parent never loads the model.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cre_models.errors import CreError, InputError
from cre_models.tracks import track_video
from worker.errors import TransientFetchError
from worker.results import (
    ContentInfo,
    ErrorInfo,
    FaceResult,
    FrameResult,
    ModelInfo,
    ResultRecord,
    ScoringOptions,
    Timings,
    TrackResult,
    VideoSummary,
    save_result,
)
from worker.settings import Settings, get_settings

if TYPE_CHECKING:
    from cre_models.faces import FaceBox

__all__ = [
    "JobOptions",
    "validate_job_args",
    "score_video",
    "score_video_job",
    "failed_record",
    "retry_intervals",
    "MAX_SOURCE_LENGTH",
]

logger = logging.getLogger(__name__)

MAX_SOURCE_LENGTH = 4096
"""Longest accepted path or URL, in characters."""


class JobOptions(BaseModel):
    """Per-job overrides, validated when the job is enqueued and again when it runs."""

    model_config = ConfigDict(extra="forbid")

    frames: int | None = Field(
        None, ge=1, le=512, description="frames to sample (default: the weights')"
    )
    aggregation: str | None = Field(
        None, description="aggregation strategy (default: the weights')"
    )

    @field_validator("aggregation")
    @classmethod
    def _known(cls, v: str | None) -> str | None:
        from cre_models.aggregate import check_strategy

        return None if v is None else check_strategy(v)


def validate_job_args(source: Any, options: Any = None) -> tuple[str, JobOptions]:
    """Check the arguments of :func:`score_video_job`.

    Raises:
        InputError: with the reason (wrong type, empty, too long, control characters,
            unknown or invalid option).
    """
    if not isinstance(source, str):
        raise InputError(f"source must be a string, got {type(source).__name__}")
    if not source.strip():
        raise InputError("source is empty")
    if len(source) > MAX_SOURCE_LENGTH:
        raise InputError(f"source is longer than {MAX_SOURCE_LENGTH} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in source):
        raise InputError("source contains control characters")
    try:
        source.encode("utf-8")
    except UnicodeEncodeError:  # a file name in another encoding, read with surrogateescape
        raise InputError("the name is not valid UTF-8: rename the file") from None
    if options is not None and not isinstance(options, dict):
        raise InputError(f"options must be a dict or None, got {type(options).__name__}")
    try:
        opts = JobOptions.model_validate(options or {})
    except ValidationError as e:
        msgs = "; ".join(
            f"{'.'.join(map(str, err['loc'])) or 'options'}: {err['msg']}" for err in e.errors()
        )
        raise InputError(f"invalid options: {msgs}") from e
    return source, opts


def retry_intervals(settings: Settings) -> list[int]:
    """Back-off before each retry of a transient download failure, from settings."""
    try:
        values = [int(float(v)) for v in settings.fetch_retry_backoff_s.split(",") if v.strip()]
    except ValueError as e:
        raise ValueError(
            f"CRE_FETCH_RETRY_BACKOFF_S={settings.fetch_retry_backoff_s!r}: {e}"
        ) from e
    return [max(0, v) for v in values] or [0]


def _worker_name() -> str:
    from rq import get_current_job

    job = get_current_job()
    return (
        job.worker_name if job is not None and job.worker_name else None
    ) or f"{socket.gethostname()}:{os.getpid()}"


def failed_record(
    video_id: str,
    source: str,
    code: str,
    message: str,
    *,
    timings: Timings | None = None,
    video: VideoSummary | None = None,
    attempt: int = 1,
    worker: str | None = None,
    model: ModelInfo | None = None,
    options: ScoringOptions | None = None,
    content: ContentInfo | None = None,
) -> ResultRecord:
    """A ``failed`` record with ``code`` and ``message`` (and what is known of its key)."""
    return ResultRecord(
        video_id=video_id,
        source=source,
        status="failed",
        error=ErrorInfo(code=code, message=message[:2000]),
        timings=timings or Timings(),
        video=video,
        attempt=attempt,
        worker=worker,
        model=model,
        options=options,
        content=content,
    )


def _face_result(box: FaceBox, score: float, track: int) -> FaceResult:
    """A face of the record; landmarks only when the detector gives them (RetinaFace)."""
    marks = getattr(box, "landmarks", None)
    return FaceResult(
        box=box.to_list(),
        score=score,
        track=track,
        landmarks=None
        if marks is None
        else [[round(float(x), 1), round(float(y), 1)] for x, y in marks],
    )


def _content_of(fetched: Any) -> ContentInfo:
    """Size, mtime and SHA-256 of the bytes about to be scored (part of the result's key)."""
    from worker.resultkey import file_content

    try:
        return file_content(fetched.path, downloaded=fetched.downloaded)
    except OSError as e:
        raise InputError(f"cannot read {fetched.source}: {e.strerror or e}") from e


def score_video(
    source: str,
    settings: Settings,
    scorer: Any = None,
    *,
    video_id: str | None = None,
    options: JobOptions | None = None,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    attempt: int = 1,
    worker: str | None = None,
) -> ResultRecord:
    """Score one video end to end and return its record; never stores anything.

    Expected failures (:class:`~cre_models.errors.CreError`, including a transient download
    failure) come back as a ``failed`` record with what was learnt before the failure
    (timings, video info). Anything else propagates.

    Args:
        source: a local path or a URL.
        settings: operational settings.
        scorer: a :class:`~worker.scoring.Scorer`; the process's cached one when ``None``.
        video_id: the id to store under (the RQ job id); derived from ``source`` if omitted.
        options: per-job overrides.
        on_progress: called with ``{"stage", "frames_done", "frames_total"}`` as work goes on.
        attempt: 1 + the retries before this attempt (stored in the record).
        worker: the worker's name (stored in the record).
    """
    from cre_models.sampling import sample_frames
    from cre_models.video import SampleStats, probe_video
    from worker.fetch import fetch
    from worker.prefetch import Lookahead, prefetch

    t_start = time.perf_counter()
    if video_id is None:
        from worker.ids import video_id as make_id

        video_id = make_id(source)
    options = options or JobOptions()
    timings = Timings()
    video: VideoSummary | None = None
    model: ModelInfo | None = None
    run_options: ScoringOptions | None = None
    content: ContentInfo | None = None

    def progress(stage: str, done: int = 0, total: int = 0) -> None:
        if on_progress is not None:
            on_progress({"stage": stage, "frames_done": done, "frames_total": total})

    try:
        if scorer is None:
            from worker.scoring import get_scorer

            progress("loading model")
            scorer = get_scorer(settings)
        from worker.resultkey import scoring_options

        model = ModelInfo(
            name=scorer.model_name,
            version=scorer.model_version,
            weights_sha256=scorer.config.weights_sha256,
        )
        run_options = scoring_options(
            options.frames,
            options.aggregation,
            default_frames=scorer.frames_per_video,
            default_aggregation=scorer.aggregation,
            topk=scorer.topk,
            threshold=scorer.threshold,
            precision=scorer.precision,
        )
        aggregation, n_frames = run_options.aggregation, run_options.frames
        progress("fetching")
        t0 = time.perf_counter()
        with fetch(source, settings) as fetched:
            content = _content_of(fetched)  # hashed with the fetch: what is scored below
            timings.fetch = time.perf_counter() - t0
            t1 = time.perf_counter()
            limits = settings.video_limits()
            info = probe_video(fetched.path, limits)
            timings.decode = time.perf_counter() - t1
            video = VideoSummary(
                width=int(info.width),
                height=int(info.height),
                duration_s=float(info.duration_s),
                fps=info.fps,
                codec=str(info.codec) if info.codec is not None else None,
                rotation=int(info.rotation or 0),
                size_bytes=int(info.size_bytes),
            )
            progress("scoring", 0, n_frames)
            stats = SampleStats()
            # decode in a background thread while this one detects and scores; closing it
            # on any way out (error, job timeout) stops the thread and closes the decoder
            # before the fetch context deletes a download
            lookahead = Lookahead()
            decoded = prefetch(
                sample_frames(fetched.path, info, n_frames, limits, stats=stats),
                lookahead=lookahead,
            )
            with contextlib.closing(decoded):
                scored = scorer.score_frames(
                    decoded,
                    on_frame=lambda k: progress("scoring", k, n_frames),
                    decoder_idle=lookahead.producer_idle,
                )
        timings.decode += scored.decode_s
        timings.detect = scored.detect_s
        timings.infer = scored.infer_s
        frame_scores = scored.frame_scores
        warnings = []
        if stats.damaged:
            warnings.append(
                f"damaged input: {stats.decode_errors} packet(s) failed to decode, "
                f"{stats.corrupt_frames} frame(s) flagged corrupt; scored what decoded"
            )
        if len(scored.frames) < n_frames:
            warnings.append(f"{len(scored.frames)} of {n_frames} frames: the video is shorter")
        if len(stats.frame_sizes) > 1:
            turned = int(info.rotation or 0) in (90, 270)  # sizes as the record's: upright
            sizes = " -> ".join(f"{h}x{w}" if turned else f"{w}x{h}" for w, h in stats.frame_sizes)
            warnings.append(
                f"the frame size changes ({sizes}): face boxes are in each frame's own pixels"
            )
        # a video is fake when any person in it is: score people (tracks), then the video
        tracked = track_video(
            [f.boxes for f in scored.frames],
            [f.scores for f in scored.frames],
            aggregation,
            topk=scorer.topk,
        )
        # calibrated (monotone, so the max over tracks is unchanged): 0.8 means about 80 %
        score = None if tracked.score is None else scorer.calibrate(tracked.score)
        timings.total = time.perf_counter() - t_start
        frames = [
            FrameResult(
                index=f.index,
                time_s=round(float(f.time_s), 4),
                score=f.score,
                faces=[
                    _face_result(b, s, t) for b, s, t in zip(f.boxes, f.scores, ids, strict=True)
                ],
            )
            for f, ids in zip(scored.frames, tracked.track_ids, strict=True)
        ]
        tracks = [
            TrackResult(
                id=t.id,
                frames=[scored.frames[p].index for p in t.frame_indices],
                score=scorer.calibrate(t.score),
                n_faces=t.n_faces,
                counted=t.counted,
            )
            for t in tracked.tracks
        ]
        record = ResultRecord(
            video_id=video_id,
            source=source,
            status="done" if score is not None else "no_face",
            score=score,
            label=scorer.label(score) if score is not None else None,
            threshold=scorer.threshold,
            frames_sampled=len(scored.frames),
            frames_with_faces=len(frame_scores),
            faces=scored.n_faces,
            frames=frames,
            tracks=tracks,
            aggregation=aggregation,
            model=model,
            options=run_options,
            content=content,
            timings=timings,
            worker=worker,
            attempt=attempt,
            video=video,
            warnings=warnings,
        )
    except CreError as e:
        timings.total = time.perf_counter() - t_start
        logger.info("%s (%s) failed: %s: %s", video_id, source, e.code, e.message)
        return failed_record(
            video_id,
            source,
            e.code,
            e.message,
            timings=timings,
            video=video,
            attempt=attempt,
            worker=worker,
            model=model,
            options=run_options,
            content=content,
        )
    progress("done", record.frames_sampled, record.frames_sampled)
    logger.info(
        "%s: %s score=%s faces in %d/%d frames, %d track(s), %.2f s",
        video_id,
        record.status,
        record.score,
        record.frames_with_faces,
        record.frames_sampled,
        len(record.tracks),
        timings.total,
    )
    return record


def _job_connection(job: Any, settings: Settings) -> Any:
    if job is not None:
        return job.connection
    import redis

    return redis.Redis.from_url(settings.redis_url_or_default())


def score_video_job(source: str, options: dict[str, Any] | None = None) -> Any:
    """RQ job: score ``source``, store its record, return a short summary (or an RQ ``Retry``).

    See the module docstring for the failure policy. Progress is kept in
    ``job.meta["progress"]``.
    """
    from rq import Retry, get_current_job
    from rq.timeouts import JobTimeoutException

    settings = get_settings()
    job = get_current_job()
    attempt = 1 + int(job.number_of_retries or 0) if job is not None else 1
    worker = _worker_name()
    from worker.ids import video_id as make_id

    vid = job.id if job is not None else make_id(source)
    conn = _job_connection(job, settings)

    def on_progress(p: dict[str, Any]) -> None:
        if job is not None:
            job.meta["progress"] = p
            job.save_meta()

    t0 = time.perf_counter()
    try:
        src, opts = validate_job_args(source, options)
        record = score_video(
            src,
            settings,
            None,
            video_id=vid,
            options=opts,
            on_progress=on_progress,
            attempt=attempt,
            worker=worker,
        )
    except CreError as e:  # argument validation
        record = failed_record(vid, str(source), e.code, e.message, attempt=attempt, worker=worker)
    except (SystemExit, KeyboardInterrupt):
        # the worker was stopped mid-job (a second SIGTERM, Ctrl-C twice): not the video's
        # failure, so no record; a resubmit scores it again
        logger.warning("%s (%s): worker stopped while scoring; no record written", vid, source)
        raise
    except BaseException as e:
        code = "timeout" if isinstance(e, JobTimeoutException) else "internal"
        message = f"{type(e).__name__}: {e}"
        logger.exception("%s (%s): %s", vid, source, message)
        record = failed_record(
            vid,
            str(source),
            code,
            message,
            timings=Timings(total=time.perf_counter() - t0),
            attempt=attempt,
            worker=worker,
        )
        save_result(conn, record, settings)
        raise
    save_result(conn, record, settings)
    if (
        job is not None
        and record.error is not None
        and record.error.code == TransientFetchError.code
        and attempt <= settings.fetch_retries
    ):
        intervals = retry_intervals(settings)
        logger.warning(
            "%s: transient fetch failure, retry %d of %d", vid, attempt, settings.fetch_retries
        )
        return Retry(max=settings.fetch_retries, interval=intervals)
    return {"video_id": vid, "status": record.status, "score": record.score, "label": record.label}
