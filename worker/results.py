"""Result records: one validated JSON document per video, stored in Redis.

Redis keys (``cre:`` prefixes come from settings):

* ``cre:result:<video_id>`` (``CRE_RESULT_PREFIX``): the :class:`ResultRecord` as JSON.
  Expires after ``CRE_RESULT_TTL_S`` seconds when that is set; kept otherwise. Independent
  of RQ's own job results (``rq:results:<job_id>``, 500 s by default).
* ``cre:results`` (``CRE_RESULT_INDEX_KEY``): a sorted set of every video id that has a
  record, scored by the record's ``created_at`` (Unix seconds), so readers can list all
  records in order. Ids whose record has expired are pruned when they are read.

``video_id`` is the RQ job id of the video (see :mod:`worker.ids`). A record is reused for
a resubmitted source only when it was made from the same content by the same checkpoint
with the same options (``content``, ``model``, ``options``; see :mod:`worker.resultkey`).

Status: ``done`` (a score and a label), ``no_face`` (the video was read but no face was
found in any sampled frame: ``score`` and ``label`` are null rather than a made-up
number) or ``failed`` (``error`` says why; ``score`` null).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import redis
from pydantic import BaseModel, ConfigDict, Field, model_validator

from worker.security import redact_url, tool_connection
from worker.settings import Precision, Settings, get_settings

__all__ = [
    "SCHEMA_VERSION",
    "ErrorInfo",
    "FaceResult",
    "FrameResult",
    "TrackResult",
    "ModelInfo",
    "ContentInfo",
    "ScoringOptions",
    "Timings",
    "VideoSummary",
    "ResultRecord",
    "CSV_COLUMNS",
    "write_csv",
    "result_key",
    "save_result",
    "load_result",
    "load_results",
    "format_table",
    "main",
]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 2
"""2: per-person ``tracks``, each face's ``track`` and ``landmarks`` (the video score comes
from the tracks); ``model.weights_sha256``, ``options`` and ``content`` (what the result is
keyed by). Records of version 1 still load (without tracks) and are scored again on
resubmission."""
Status = Literal["done", "no_face", "failed"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class ErrorInfo(_Model):
    """Why a video failed: a stable machine-readable ``code`` and a human message."""

    code: str
    message: str


Point = Annotated[list[float], Field(min_length=2, max_length=2)]


class FaceResult(_Model):
    """One detected face: its box ``[x0, y0, x1, y1]`` in upright frame pixels, its score,
    the person track it belongs to, and its landmarks when the detector gives them."""

    box: list[float] = Field(min_length=4, max_length=4)
    score: float = Field(ge=0, le=1)
    track: int | None = Field(None, ge=0, description="id of the face's entry in tracks")
    landmarks: list[Point] | None = Field(
        None,
        min_length=5,
        max_length=5,
        description="[x, y] in frame pixels: left eye, right eye, nose, mouth corners",
    )


class FrameResult(_Model):
    """One sampled frame: when it is, its score (max over its faces; null without a face)."""

    index: int = Field(ge=0)
    time_s: float
    score: float | None = Field(None, ge=0, le=1)
    faces: list[FaceResult] = Field(default_factory=list)


class TrackResult(_Model):
    """One person: the sampled frames their face is in, and their score over those faces."""

    id: int = Field(ge=0)
    frames: list[int] = Field(min_length=1, description="frame indices (as in frames[].index)")
    score: float = Field(ge=0, le=1, description="aggregation of the track's face scores")
    n_faces: int = Field(ge=1)
    counted: bool = Field(
        True, description="long enough to count for the video score (short tracks do not)"
    )

    @model_validator(mode="after")
    def _one_face_per_frame(self) -> TrackResult:
        if self.n_faces != len(self.frames) or len(set(self.frames)) != len(self.frames):
            raise ValueError("a track has one face in each of its frames: n_faces == len(frames)")
        return self


class ModelInfo(_Model):
    """The checkpoint that produced the scores (``weights_sha256`` from its ``config.json``;
    ``None`` for an untrained registered network)."""

    name: str
    version: str
    weights_sha256: str | None = None


class ContentInfo(_Model):
    """The bytes that were scored: size, SHA-256 and, for a local file, its mtime in ns
    (``None`` for a download)."""

    size_bytes: int = Field(ge=0)
    mtime_ns: int | None = None
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class ScoringOptions(_Model):
    """The options that shaped the score: frames sampled, aggregation (``topk`` share for
    ``topk_mean``, else ``None``), decision threshold and the face model's arithmetic
    (``CRE_PRECISION``; records written before it existed were float32)."""

    frames: int = Field(ge=1)
    aggregation: str
    topk: float | None = None
    threshold: float = Field(ge=0, le=1)
    precision: Precision = "float32"


class Timings(_Model):
    """Seconds spent per step; a step never reached is 0.

    Frames are decoded in a background thread while earlier ones are detected and scored,
    so ``decode`` is the probe plus the time spent *waiting* for decoded frames, and the
    steps can add up to less than ``total`` only by overhead, never by more.
    """

    fetch: float = 0.0
    decode: float = 0.0
    detect: float = 0.0
    infer: float = 0.0
    total: float = 0.0


class VideoSummary(_Model):
    """What the probe said about the video (when it got that far)."""

    width: int
    height: int
    duration_s: float
    fps: float | None = None
    codec: str | None = None
    rotation: int = 0
    size_bytes: int | None = None


class ResultRecord(_Model):
    """The stored outcome of scoring one video (see the module docstring for ``status``)."""

    schema_version: int = SCHEMA_VERSION
    video_id: str
    source: str
    status: Status
    score: float | None = Field(None, ge=0, le=1)
    label: Literal["fake", "real"] | None = None
    threshold: float | None = Field(None, ge=0, le=1)
    error: ErrorInfo | None = None
    frames_sampled: int = Field(0, ge=0)
    frames_with_faces: int = Field(0, ge=0)
    faces: int = Field(0, ge=0, description="faces detected over all sampled frames")
    frames: list[FrameResult] = Field(default_factory=list)
    tracks: list[TrackResult] = Field(
        default_factory=list, description="people; the video score is the max over counted ones"
    )
    aggregation: str | None = None
    model: ModelInfo | None = None
    options: ScoringOptions | None = None
    content: ContentInfo | None = None
    timings: Timings = Field(default_factory=Timings)
    worker: str | None = None
    attempt: int = Field(1, ge=1, description="1 + the number of retries before this record")
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    video: VideoSummary | None = None
    warnings: list[str] = Field(
        default_factory=list, description="things the reader should know, e.g. a damaged input"
    )

    @model_validator(mode="after")
    def _consistent(self) -> ResultRecord:
        if self.status == "done":
            if self.score is None or self.label is None:
                raise ValueError("a done record needs a score and a label")
        elif self.score is not None or self.label is not None:
            raise ValueError(f"a {self.status} record has no score or label")
        if (self.status == "failed") != (self.error is not None):
            raise ValueError("error is set exactly when status is failed")
        if self.frames_with_faces > self.frames_sampled:
            raise ValueError("frames_with_faces > frames_sampled")
        track_ids = {t.id for t in self.tracks}
        if len(track_ids) != len(self.tracks):
            raise ValueError("two tracks with one id")
        orphans = {
            face.track
            for frame in self.frames
            for face in frame.faces
            if face.track is not None and face.track not in track_ids
        }
        if orphans:
            raise ValueError(f"faces refer to tracks that are not listed: {sorted(orphans)}")
        return self


def result_key(video_id: str, settings: Settings) -> str:
    """Redis key of the record of ``video_id``."""
    return f"{settings.result_prefix}{video_id}"


def save_result(conn: redis.Redis, record: ResultRecord, settings: Settings) -> None:
    """Store ``record`` (replacing any earlier one for the video) and index it."""
    with conn.pipeline() as pipe:
        pipe.set(
            result_key(record.video_id, settings),
            record.model_dump_json(),
            ex=settings.result_ttl_s,
        )
        pipe.zadd(settings.result_index_key, {record.video_id: record.created_at.timestamp()})
        pipe.execute()
    logger.debug("stored %s result of %s", record.status, record.video_id)


def load_result(conn: redis.Redis, video_id: str, settings: Settings) -> ResultRecord | None:
    """The record of ``video_id``, or ``None`` when there is none (or it expired)."""
    raw = conn.get(result_key(video_id, settings))
    return None if raw is None else ResultRecord.model_validate_json(raw)


def _resolve_ids(conn: redis.Redis, items: Iterable[str], settings: Settings) -> list[str]:
    from worker.ids import looks_like_video_id, video_id

    ids = []
    for item in items:
        if looks_like_video_id(item) and conn.exists(result_key(item, settings)):
            ids.append(item)
        else:
            ids.append(video_id(item))
    return ids


def load_results(
    conn: redis.Redis, ids_or_sources: Sequence[str] | None = None, settings: Settings | None = None
) -> list[ResultRecord]:
    """Stored records, oldest first; all of them, or those of the given ids or sources.

    Args:
        conn: Redis connection.
        ids_or_sources: video ids, or the paths/URLs that were submitted (a path is
            resolved the way the submitter resolved it); ``None`` for every record.
        settings: key names and prefixes; the environment's by default.

    Returns:
        One record per id that has one; ids without a record are left out.
    """
    settings = settings or get_settings()
    if ids_or_sources is None:
        ids = [
            i.decode() if isinstance(i, bytes) else str(i)
            for i in conn.zrange(settings.result_index_key, 0, -1)
        ]
    else:
        ids = _resolve_ids(conn, ids_or_sources, settings)
    if not ids:
        return []
    raws = conn.mget([result_key(i, settings) for i in ids])
    records, expired = [], []
    for vid, raw in zip(ids, raws, strict=True):
        if raw is None:
            expired.append(vid)
        else:
            records.append(ResultRecord.model_validate_json(raw))
    if expired and ids_or_sources is None:
        conn.zrem(settings.result_index_key, *expired)
    return records


def _fmt_score(score: float | None) -> str:
    return "-" if score is None else f"{score:.3f}"


def format_table(records: Sequence[ResultRecord]) -> str:
    """A plain-text table: id, status, score, label, frames with faces, seconds, source/reason."""
    header = (
        f"{'video_id':<14} {'status':<8} {'score':>6} {'label':<5} {'faces':>7} {'secs':>6}  source"
    )
    lines = [header]
    for r in records:
        frames = f"{r.frames_with_faces}/{r.frames_sampled}"
        detail = r.source if r.error is None else f"{r.source}  [{r.error.code}: {r.error.message}]"
        lines.append(
            f"{r.video_id[:13]:<14} {r.status:<8} {_fmt_score(r.score):>6} {r.label or '-':<5} "
            f"{frames:>7} {r.timings.total:>6.2f}  {detail}"
        )
    return "\n".join(lines)


def record_to_json(record: ResultRecord) -> str:
    """One line of JSON (the stored form)."""
    return record.model_dump_json()


def main(argv: Sequence[str] | None = None) -> int:
    """``cre results [--json | --csv] [--from LIST] [ID_OR_SOURCE...]``: print stored records (all
    when none given); a folder stands for the videos in it, as when it was submitted."""
    from worker.submit import add_list_argument, expand_inputs, read_source_lists

    parser = argparse.ArgumentParser(
        prog="cre results", description="Print stored scoring results."
    )
    parser.add_argument(
        "items",
        nargs="*",
        metavar="ID_OR_SOURCE",
        help="video ids or submitted paths/URLs (a folder: its videos)",
    )
    add_list_argument(parser)
    form = parser.add_mutually_exclusive_group()
    form.add_argument(
        "--json", action="store_true", help="one JSON object per line instead of a table"
    )
    form.add_argument("--csv", action="store_true", help="CSV (a header, one row per video)")
    args = parser.parse_args(argv)
    try:
        listed = read_source_lists(args.lists)
    except ValueError as e:
        print(f"cre results: {e}", file=sys.stderr)
        return 2
    asked = [*args.items, *listed]
    # folders as they were submitted: the records are kept under each video's own source
    items = expand_inputs(asked) if asked else []
    if asked and not items:
        print("cre results: no video files in what was given", file=sys.stderr)
        return 1
    settings = get_settings()
    try:
        conn = tool_connection(settings.redis_url_or_default())
    except ValueError as e:  # the URL (never quoted: it holds the password)
        print(f"cre results: {e}", file=sys.stderr)
        return 2
    try:
        records = load_results(conn, items or None, settings)
    except redis.exceptions.RedisError as e:
        print(
            f"cre results: cannot use Redis at {redact_url(settings.redis_url_or_default())}: "
            f"{type(e).__name__}: {e}",
            file=sys.stderr,
        )
        return 2
    if args.json:
        for r in records:
            print(record_to_json(r))
    elif args.csv:
        reconfigure = getattr(sys.stdout, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(newline="")  # the csv module writes its own line ends
        write_csv(records, sys.stdout)
    else:
        print(format_table(records))
    if items and len(records) < len(items):
        print(f"{len(items) - len(records)} of {len(items)} have no result (yet)", file=sys.stderr)
        return 1
    return 0


def _json_default(obj: Any) -> Any:  # pragma: no cover - used by callers writing JSON Lines
    return str(obj)


CSV_COLUMNS = (
    "video_id",
    "source",
    "status",
    "score",
    "label",
    "threshold",
    "error_code",
    "error_message",
    "frames_sampled",
    "frames_with_faces",
    "faces",
    "tracks_counted",
    "aggregation",
    "model",
    "model_version",
    "duration_s",
    "width",
    "height",
    "codec",
    "total_s",
    "created_at",
    "warnings",
)
"""The columns of ``cre results --csv`` and ``cre run --csv``: one row per record, the
fields an analyst sorts and filters on (the JSON record has the rest)."""

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> str:
    """A CSV cell; text that a spreadsheet would run as a formula (a source or message from
    outside, starting with ``= + - @``, tab or CR) gets a leading ``'``, as OWASP advises."""
    if value is None:
        return ""
    text = str(value)
    if isinstance(value, str) and text.startswith(_FORMULA_START):
        return "'" + text
    return text


def _csv_row(r: ResultRecord) -> list[str]:
    video = r.video
    values: list[object] = [
        r.video_id,
        r.source,
        r.status,
        None if r.score is None else f"{r.score:.6f}",
        r.label,
        None if r.threshold is None else f"{r.threshold:.6f}",
        r.error.code if r.error else None,
        r.error.message if r.error else None,
        r.frames_sampled,
        r.frames_with_faces,
        r.faces,
        sum(t.counted for t in r.tracks),
        r.aggregation,
        r.model.name if r.model else None,
        r.model.version if r.model else None,
        video.duration_s if video else None,
        video.width if video else None,
        video.height if video else None,
        video.codec if video else None,
        f"{r.timings.total:.2f}",
        r.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "; ".join(r.warnings) or None,
    ]
    return [_cell(v) for v in values]


def write_csv(records: Iterable[ResultRecord], stream: Any) -> int:
    """Write a header and one :data:`CSV_COLUMNS` row per record to a text ``stream``
    (opened with ``newline=""``); returns how many rows."""
    import csv

    writer = csv.writer(stream)
    writer.writerow(CSV_COLUMNS)
    n = 0
    for r in records:
        writer.writerow(_csv_row(r))
        n += 1
    return n


def dump_jsonl(records: Iterable[ResultRecord], path: str) -> int:
    """Write records as JSON Lines to ``path``; returns how many."""
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r.model_dump(mode="json"), default=_json_default) + "\n")
            n += 1
    return n
