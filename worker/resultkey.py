"""What a result is keyed by, and when a stored one may be reused.

A record is reused for a resubmitted source (``skipped_done``) only when all of these match
what the worker would use now; anything else is scored again:

* **the source**: the real absolute path of a file or the URL as given (this is the
  record's key, ``cre:result:<video_id>``, see :mod:`worker.ids`);
* **the content** (files): size, mtime (ns) and SHA-256 of the bytes. Size and mtime are
  compared first; the file is hashed only when they match. URLs are keyed by the URL as
  given; the record keeps the SHA-256 of what was downloaded (``content``), for the
  reader, since the submitter cannot know what the URL would serve now;
* **the checkpoint**: name, version and weights SHA-256 from its ``config.json``
  (``CRE_WEIGHTS``), read without importing torch;
* **the options** (:class:`~worker.results.ScoringOptions`): frames sampled, aggregation
  (and its top-k share), decision threshold and the face model's arithmetic, as resolved
  from the job's options, the ``CRE_*`` settings and the checkpoint's defaults.

The submitter resolves checkpoint and options from *its own* settings, so it must run with
the same ``CRE_WEIGHTS`` (and ``CRE_FRAMES_PER_VIDEO``, ``CRE_AGGREGATION``,
``CRE_AGGREGATION_TOPK``, ``CRE_THRESHOLD``, ``CRE_PRECISION``) as the workers; when they
differ, every resubmission is scored again, and ``submit.py`` prints why. A record that
lacks any part of the key (written by an older version, or a failure before the file was
read) is never reused; the one exception is the arithmetic, which records from before
``CRE_PRECISION`` lack and which was float32 then. ``--force`` scores again regardless;
``--retry-failed`` scores again the matching ``failed`` records.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from worker.fetch import is_url
from worker.results import ContentInfo, ModelInfo, ResultRecord, ScoringOptions
from worker.settings import Precision, Settings

__all__ = [
    "CheckpointIdentity",
    "IdentityUnavailableError",
    "ResultKey",
    "checkpoint_identity",
    "file_sha256",
    "file_content",
    "scoring_options",
    "expected_key",
    "reuse_refusal",
]

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20


class IdentityUnavailableError(ValueError):
    """The configured checkpoint cannot be identified (no such folder, bad ``config.json``)."""


@dataclass(frozen=True)
class CheckpointIdentity:
    """A checkpoint's identity and the defaults it brings for the scoring options."""

    model: ModelInfo
    frames_per_video: int
    aggregation: str
    threshold: float


@dataclass(frozen=True)
class ResultKey:
    """What a record must have been made with to be reused (the source aside)."""

    model: ModelInfo
    options: ScoringOptions


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def file_content(path: Path, *, downloaded: bool = False) -> ContentInfo:
    """Size, mtime (``None`` for a download: its mtime is the download's) and SHA-256."""
    st = os.stat(path)
    mtime = None if downloaded else st.st_mtime_ns
    return ContentInfo(size_bytes=st.st_size, mtime_ns=mtime, sha256=file_sha256(path))


def checkpoint_identity(weights: str) -> CheckpointIdentity:
    """Identity of ``CRE_WEIGHTS=weights``, resolved the way the worker resolves it.

    ``default`` is the shipped folder; a registered untrained network (``cre-seed``...) has
    no weights hash; anything else is a checkpoint folder whose ``config.json`` is read.

    Raises:
        IdentityUnavailableError: no such folder or registered name, or no readable config.
    """
    from cre_models.weights import CONFIG_FILE, CheckpointConfig, WeightsError, resolve_weights

    try:
        resolved = resolve_weights(weights)
    except WeightsError as e:
        raise IdentityUnavailableError(
            f"CRE_WEIGHTS={weights!r}: cannot read its checkpoint ({e})"
        ) from e
    if isinstance(resolved, str):  # a registered untrained network (builds torch modules)
        cfg = CheckpointConfig(name=resolved)
        return CheckpointIdentity(
            ModelInfo(name=cfg.name, version=cfg.version, weights_sha256=None),
            cfg.input.frames_per_video,
            cfg.decision.aggregation,
            cfg.decision.threshold,
        )
    path = resolved / CONFIG_FILE
    try:
        raw = json.loads(path.read_text())
        return CheckpointIdentity(
            ModelInfo(
                name=str(raw["name"]),
                version=str(raw["version"]),
                weights_sha256=raw.get("weights_sha256"),
            ),
            int(raw["input"]["frames_per_video"]),
            str(raw["decision"]["aggregation"]),
            float(raw["decision"]["threshold"]),
        )
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise IdentityUnavailableError(
            f"CRE_WEIGHTS={weights!r}: cannot read {path} ({type(e).__name__}: {e})"
        ) from e


def scoring_options(
    frames: int | None,
    aggregation: str | None,
    *,
    default_frames: int,
    default_aggregation: str,
    topk: float,
    threshold: float,
    precision: Precision = "float32",
) -> ScoringOptions:
    """The options a job is scored with: the job's own, else the worker's defaults.

    The worker calls it with its scorer's values, the submitter with
    :func:`expected_key`'s, so both sides build the key the same way.
    """
    agg = aggregation or default_aggregation
    return ScoringOptions(
        frames=frames or default_frames,
        aggregation=agg,
        topk=topk if agg == "topk_mean" else None,
        threshold=threshold,
        precision=precision,
    )


def expected_key(
    settings: Settings, checkpoint: CheckpointIdentity, frames: int | None, aggregation: str | None
) -> ResultKey:
    """The key a worker with these settings and checkpoint would give a job's record."""
    return ResultKey(
        model=checkpoint.model,
        options=scoring_options(
            frames,
            aggregation,
            default_frames=settings.frames_per_video or checkpoint.frames_per_video,
            default_aggregation=settings.aggregation or checkpoint.aggregation,
            topk=settings.aggregation_topk,
            threshold=checkpoint.threshold if settings.threshold is None else settings.threshold,
            precision=settings.precision,
        ),
    )


def _model_text(m: ModelInfo | None) -> str:
    if m is None:
        return "none"
    return f"{m.name} v{m.version}, weights {(m.weights_sha256 or 'unhashed')[:12]}"


FAILURES_OUTSIDE_SCORING = frozenset({"timeout", "worker_died", "internal"})
"""Error codes of ``failed`` records that a worker writes without the scoring key (no
``model``, no ``options``): the job ran out of time, its process died, or it raised
something unexpected. Another checkpoint or other options are no reason to expect another
outcome, so such a record stands on a plain resubmit (``--retry-failed`` tries again).
``model_unavailable`` is not one: a fixed worker is exactly the reason to score again."""


def _changed_since_failure(record: ResultRecord, source: str) -> str | None:
    """A :data:`FAILURES_OUTSIDE_SCORING` record stands unless the file changed after it."""
    if is_url(source):
        return None
    try:
        st = os.stat(source)
    except OSError as e:
        return f"cannot read the file ({e.strerror or e})"
    content = record.content
    if content is not None and content.mtime_ns is not None:
        same = (st.st_size, st.st_mtime_ns) == (content.size_bytes, content.mtime_ns)
    else:
        same = st.st_mtime_ns <= record.created_at.timestamp() * 1e9
    return None if same else "the file changed since the failed attempt"


def reuse_refusal(record: ResultRecord, source: str, key: ResultKey | None) -> str | None:
    """Why ``record`` cannot stand for scoring ``source`` now (``None``: it can).

    Args:
        record: the stored record of ``source``.
        source: the normalised source (real path or URL).
        key: what a worker would use now; ``None`` when the checkpoint is unknown here.
    """
    if (
        record.status == "failed"
        and record.model is None
        and record.error is not None
        and record.error.code in FAILURES_OUTSIDE_SCORING
    ):
        return _changed_since_failure(record, source)
    if key is None:
        return "the checkpoint (CRE_WEIGHTS) cannot be identified here"
    if record.model != key.model:
        was, now = _model_text(record.model), _model_text(key.model)
        return f"checkpoint differs (record: {was}; now: {now})"
    if record.options != key.options:
        shown = record.options.model_dump() if record.options else None
        return f"options differ (record: {shown}; now: {key.options.model_dump()})"
    if is_url(source):
        return None
    content = record.content
    if content is None or content.mtime_ns is None:
        return "the record does not say which file content was scored"
    try:
        st = os.stat(source)
        if (st.st_size, st.st_mtime_ns) != (content.size_bytes, content.mtime_ns):
            return "the file changed since it was scored (size or modification time)"
        if file_sha256(Path(source)) != content.sha256:
            return "the file's content changed since it was scored"
    except OSError as e:
        return f"cannot read the file ({e.strerror or e})"
    return None
