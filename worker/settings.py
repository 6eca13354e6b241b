"""Operational settings, read from ``CRE_*`` environment variables (pydantic-settings).

Model-dependent numbers (input size, crop margin, frames per video, threshold, default
aggregation) come from the weights' ``config.json``; a setting left at ``None`` here means
"use the weights' value". The input limits start from the library's
:class:`~cre_models.video.VideoLimits` defaults and reach the decoder as one such value
(:meth:`Settings.video_limits`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cre_models.video import VideoLimits

__all__ = [
    "Settings",
    "get_settings",
    "DEFAULT_REDIS_URL",
    "Precision",
    "settings_problem",
    "exit_on_bad_settings",
]

DEFAULT_REDIS_URL = "redis://localhost:6379/0"
"""Where ``submit.py``, ``results.py`` and workers connect when ``CRE_REDIS_URL`` is unset."""

_LIMITS = VideoLimits()
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

Precision = Literal["float32", "bfloat16"]
"""The face model's arithmetic (``CRE_PRECISION``, and a record's ``options.precision``)."""


class Settings(BaseSettings):
    """Every operational knob of the worker and its tools. Env prefix ``CRE_``."""

    model_config = SettingsConfigDict(
        env_prefix="CRE_", extra="ignore", use_attribute_docstrings=True
    )

    # --- Redis and the queue -------------------------------------------------------------
    redis_url: SecretStr | None = None
    """Redis/Valkey URL (redis://, rediss:// for TLS; password in the URL). Unset: `cre run` starts
    an embedded Valkey, other tools use redis://localhost:6379/0."""
    queue_name: str = "cre"
    """RQ queue name"""
    result_prefix: str = "cre:result:"
    """key prefix of result records"""
    result_ttl_s: int | None = Field(None, ge=1)
    """seconds to keep result records (about 9 KB each for 32 frames with a face); unset =
    keep"""
    failed_job_ttl_s: int = Field(7 * 86400, ge=1)
    """seconds RQ keeps a failed job's own data (its traceback, for rq info); the result
    record keeps CRE_RESULT_TTL_S"""
    result_index_key: str = "cre:results"
    """sorted set of the video ids that have a result record"""
    job_timeout_base_s: int = Field(60, ge=1)
    """job timeout before the per-second part"""
    job_timeout_per_video_s: float = Field(2.0, ge=0)
    """extra timeout per second of video"""
    fetch_retries: int = Field(3, ge=0)
    """retries of a job whose download failed transiently"""
    fetch_retry_backoff_s: str = "10,60,300"
    """seconds before each retry of a transient download failure, comma-separated (the last
    repeats); delayed retries need a worker started with --with-scheduler"""
    job_timeout_url_s: int = Field(1800, ge=1)
    """job timeout for URLs and unprobeable files (duration unknown)"""

    # --- Reliability (worker/reliability.py) ---------------------------------------------
    worker_ttl_s: int = Field(60, ge=16)
    """seconds a worker's registration lives without a heartbeat; an idle worker wakes every
    worker_ttl_s - 15 s (to reconnect, run maintenance)"""
    maintenance_interval_s: int = Field(30, ge=1)
    """seconds between a worker's passes over abandoned jobs"""
    hard_timeout_grace_s: int = Field(30, ge=1)
    """a job still running this long after its timeout (stuck in native code) is ended by killing
    its process"""
    abandoned_retries: int = Field(1, ge=0)
    """re-runs of a job whose worker died (SIGKILL, out of memory)"""

    # --- Model and inference -------------------------------------------------------------
    weights: str = "default"
    """checkpoint folder or registered model name (`default`: the shipped checkpoint; `fast`: the
    previous one, 160 px, faster and less accurate)"""
    device: Literal["cpu", "cuda"] = "cpu"
    """torch device of the face model: cpu or cuda (the current CUDA device; pick a GPU with
    CUDA_VISIBLE_DEVICES)"""
    batch_size: int = Field(0, ge=0)
    """face crops per forward pass (scored as soon as this many wait); 0 = by device and input
    size: on the CPU as many crops as fit 204,800 pixels, rounded up (5 at the default's 224 px,
    8 at 160 px: the fastest per crop measured, docs/BENCHMARKS.md), on a GPU 8"""
    torch_threads: int = Field(0, ge=0)
    """torch intra-op threads; 0 = all cores"""
    precision: Precision = "float32"
    """the face model's arithmetic: `bfloat16` autocast runs about 2x faster on CPUs with
    native bfloat16 (AMX, AVX512-BF16) but moved validation scores enough to cost AUC and
    the fitted threshold's accuracy (docs/BENCHMARKS.md): use it only with a decision
    re-fitted under it (`cre eval --fit`)"""
    cuda_tf32: bool = False
    """on a GPU, let cuDNN and matmuls use TF32 (PyTorch's own default for convolutions): on
    the GPU benchmark's clips it moved video scores by up to 2.5e-3 and a frame's by up to
    0.094 from the CPU's, where float32 gave the CPU's video scores (docs/BENCHMARKS.md)"""
    decode_threads: int = Field(_LIMITS.decode_threads, ge=0)
    """FFmpeg decoder threads (slice threading); 0 = FFmpeg decides"""
    frames_per_video: int | None = Field(None, ge=1)
    """frames sampled per video; unset = weights' value"""
    aggregation: str | None = None
    """aggregation of each person track's face scores: mean, max, topk_mean or confident;
    unset = weights' value"""
    threshold: float | None = Field(None, ge=0, le=1)
    """decision threshold, on the calibrated scale of video and track scores; unset =
    weights' value"""
    aggregation_topk: float = Field(0.25, gt=0, le=1)
    """share of a track's face scores averaged by topk_mean"""

    # --- Faces -----------------------------------------------------------------------------
    detect_max_side: int = Field(640, ge=64)
    """face detection (RetinaFace) runs on a copy of each frame downscaled to this longest side;
    faces under ~20 px in that copy are often missed"""
    detect_score_threshold: float = Field(0.8, gt=0, lt=1)
    """smallest face score the detector keeps"""
    detect_threads: int = Field(1, ge=0)
    """torch threads during face detection; 0 = as for the model"""
    detect_device: Literal["cpu", "cuda"] = "cpu"
    """torch device of face detection, cpu or cuda; on the GPU it saved 0.05-0.6 s a clip once
    warm, but each new frame or face-region size stalled it 2-9 s the first time it was seen
    (docs/BENCHMARKS.md)"""
    detect_batch: int = Field(4, ge=1)
    """sampled frames per detector forward pass when every frame is detected whole
    (CRE_DETECT_FULL_EVERY=1)"""
    detect_full_every: int = Field(8, ge=1)
    """a video's first sampled frame and then every this many are detected whole; the frames in
    between only in a region around the previous frame's faces (whole again when that region
    finds fewer faces); 1 = every frame whole"""
    detect_region_face_px: int = Field(80, ge=0)
    """in frames longer than CRE_DETECT_MAX_SIDE, a region is downscaled so that its smallest face
    is about this many pixels (never finer than the whole-frame copy); 0 = always the
    whole-frame copy's scale"""
    min_face_px: int = Field(40, ge=8)
    """smallest face side, in original-frame pixels"""
    max_faces_per_frame: int = Field(4, ge=1)
    """largest faces kept per frame"""

    # --- Input limits --------------------------------------------------------------------
    max_file_bytes: int = Field(_LIMITS.max_file_bytes, ge=1)
    """largest accepted file or download"""
    max_pixels: int = Field(_LIMITS.max_pixels, ge=1)
    """largest accepted width x height"""
    max_duration_s: float = Field(_LIMITS.max_duration_s, gt=0)
    """longest accepted video, seconds"""
    accepted_formats: str = _LIMITS.format_whitelist
    """FFmpeg demuxers allowed to open inputs (format_whitelist)"""
    accepted_codecs: str = ",".join(_LIMITS.codecs)
    """video codecs accepted, comma-separated FFmpeg names; empty = any"""

    # --- Fetching URLs ---------------------------------------------------------------------
    url_schemes: str = "http,https"
    """allowed URL schemes, comma-separated: http, https or both (no other scheme is ever
    fetched)"""
    allow_private_addresses: bool = False
    """allow URLs resolving to loopback/private/link-local addresses"""
    fetch_connect_timeout_s: float = Field(5.0, gt=0)
    """seconds to connect"""
    fetch_read_timeout_s: float = Field(30.0, gt=0)
    """seconds without data"""
    fetch_deadline_s: float = Field(600.0, gt=0)
    """overall limit for one download"""
    fetch_max_redirects: int = Field(5, ge=0)
    """redirects followed"""
    fetch_tmp_dir: str | None = None
    """folder for downloads; unset = system temp"""

    log_level: str = "INFO"
    """logging level: DEBUG, INFO, WARNING, ERROR or CRITICAL"""

    @field_validator("aggregation")
    @classmethod
    def _known_aggregation(cls, value: str | None) -> str | None:
        from cre_models.aggregate import STRATEGIES

        if value is not None and value not in STRATEGIES:
            raise ValueError(
                f"unknown aggregation {value!r}; choose one of {', '.join(STRATEGIES)}"
            )
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in _LEVELS:
            raise ValueError(f"unknown logging level {value!r}; choose one of {', '.join(_LEVELS)}")
        return level

    def redis_url_or_default(self) -> str:
        return self.redis_url.get_secret_value() if self.redis_url else DEFAULT_REDIS_URL

    def video_limits(self) -> VideoLimits:
        """The input limits and decoder threads, as the sampler takes them."""
        return VideoLimits(
            max_file_bytes=self.max_file_bytes,
            max_pixels=self.max_pixels,
            max_duration_s=self.max_duration_s,
            formats=_names(self.accepted_formats),
            codecs=_names(self.accepted_codecs),
            decode_threads=self.decode_threads,
        )


def _names(csv: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in csv.split(",") if n.strip())


def settings_problem(error: ValidationError) -> str | None:
    """The bad ``CRE_*`` variables of a :class:`Settings` validation error, one clause each
    (the values are not repeated: one may hold a password); ``None`` for any other model's
    error."""
    if error.title != Settings.__name__:
        return None
    return "; ".join(
        f"CRE_{str(e['loc'][0]).upper() if e['loc'] else '?'}: {e['msg']}" for e in error.errors()
    )


def exit_on_bad_settings(
    entry: Callable[[list[str]], int | None], argv: Sequence[str], prog: str
) -> int:
    """Run a command's ``main``; a bad ``CRE_*`` value is one line on stderr and exit 2 (the
    command could not start), not a traceback."""
    try:
        return int(entry(list(argv)) or 0)
    except ValidationError as e:
        problem = settings_problem(e)
        if problem is None:
            raise
        print(f"{prog}: bad setting: {problem}", file=sys.stderr)  # noqa: T201
        return 2


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings, read once from the environment."""
    return Settings()
