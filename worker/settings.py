"""Operational settings, read from ``CRE_*`` environment variables (pydantic-settings).

Model-dependent numbers (input size, crop margin, frames per video, threshold, default
aggregation) come from the weights' ``config.json``; a setting left at ``None`` here means
"use the weights' value".
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "get_settings", "DEFAULT_REDIS_URL"]

DEFAULT_REDIS_URL = "redis://localhost:6379/0"
"""Where ``submit.py``, ``results.py`` and workers connect when ``CRE_REDIS_URL`` is unset."""


class Settings(BaseSettings):
    """Every operational knob of the worker and its tools. Env prefix ``CRE_``."""

    model_config = SettingsConfigDict(env_prefix="CRE_", extra="ignore")

    # --- Redis and the queue -------------------------------------------------------------
    redis_url: SecretStr | None = Field(
        None,
        description="Redis/Valkey URL (redis://, rediss:// for TLS; password in the URL). "
        "Unset: `cre run` starts an embedded Valkey, other tools use redis://localhost:6379/0.",
    )
    queue_name: str = Field("cre", description="RQ queue name")
    result_prefix: str = Field("cre:result:", description="key prefix of result records")
    result_ttl_s: int | None = Field(
        None, ge=1, description="seconds to keep result records; unset = keep"
    )
    result_index_key: str = Field(
        "cre:results", description="sorted set of the video ids that have a result record"
    )
    job_timeout_base_s: int = Field(60, ge=1, description="job timeout before the per-second part")
    job_timeout_per_video_s: float = Field(
        2.0, ge=0, description="extra timeout per second of video"
    )
    fetch_retries: int = Field(
        3, ge=0, description="retries of a job whose download failed transiently"
    )
    fetch_retry_backoff_s: str = Field(
        "10,60,300",
        description="seconds before each retry of a transient download failure, comma-separated "
        "(the last repeats); delayed retries need a worker started with --with-scheduler",
    )
    job_timeout_url_s: int = Field(
        1800, ge=1, description="job timeout for URLs and unprobeable files (duration unknown)"
    )

    # --- Reliability (worker/reliability.py) ---------------------------------------------
    worker_ttl_s: int = Field(
        60,
        ge=16,
        description="seconds a worker's registration lives without a heartbeat; an idle worker "
        "wakes every worker_ttl_s - 15 s (to reconnect, run maintenance)",
    )
    maintenance_interval_s: int = Field(
        30, ge=1, description="seconds between a worker's passes over abandoned jobs"
    )
    hard_timeout_grace_s: int = Field(
        30,
        ge=1,
        description="a job still running this long after its timeout (stuck in native code) is "
        "ended by killing its process",
    )
    abandoned_retries: int = Field(
        1, ge=0, description="re-runs of a job whose worker died (SIGKILL, out of memory)"
    )

    # --- Model and inference -------------------------------------------------------------
    weights: str = Field("default", description="checkpoint folder or registered model name")
    device: Literal["cpu", "cuda"] = Field("cpu", description="torch device")
    batch_size: int = Field(16, ge=1, description="face crops per forward pass")
    torch_threads: int = Field(0, ge=0, description="torch intra-op threads; 0 = all cores")
    decode_threads: int = Field(
        1, ge=0, description="FFmpeg decoder threads (slice threading); 0 = FFmpeg decides"
    )
    frames_per_video: int | None = Field(
        None, ge=1, description="frames sampled per video; unset = weights' value"
    )
    aggregation: str | None = Field(
        None, description="aggregation of each person track's face scores; unset = weights' value"
    )
    threshold: float | None = Field(
        None, ge=0, le=1, description="decision threshold; unset = weights' value"
    )
    aggregation_topk: float = Field(
        0.25, gt=0, le=1, description="share of a track's face scores averaged by topk_mean"
    )

    # --- Faces -----------------------------------------------------------------------------
    detect_max_side: int = Field(
        640,
        ge=64,
        description="face detection (RetinaFace) runs on a copy of each frame downscaled to this "
        "longest side; faces under ~20 px in that copy are often missed",
    )
    detect_score_threshold: float = Field(
        0.8, gt=0, lt=1, description="smallest face score the detector keeps"
    )
    detect_threads: int = Field(
        1, ge=0, description="torch threads during face detection; 0 = as for the model"
    )
    detect_batch: int = Field(4, ge=1, description="sampled frames per detector forward pass")
    min_face_px: int = Field(40, ge=8, description="smallest face side, in original-frame pixels")
    max_faces_per_frame: int = Field(4, ge=1, description="largest faces kept per frame")

    # --- Input limits --------------------------------------------------------------------
    max_file_bytes: int = Field(2 * 1024**3, ge=1, description="largest accepted file or download")
    max_pixels: int = Field(4096 * 2304, ge=1, description="largest accepted width x height")
    max_duration_s: float = Field(3600.0, gt=0, description="longest accepted video, seconds")
    accepted_formats: str = Field(
        "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,mpegts,flv",
        description="FFmpeg demuxers allowed to open inputs (format_whitelist)",
    )
    accepted_codecs: str = Field(
        "", description="video codecs accepted, comma-separated FFmpeg names; empty = any"
    )

    # --- Fetching URLs ---------------------------------------------------------------------
    url_schemes: str = Field("http,https", description="allowed URL schemes")
    allow_private_addresses: bool = Field(
        False, description="allow URLs resolving to loopback/private/link-local addresses"
    )
    fetch_connect_timeout_s: float = Field(5.0, gt=0, description="seconds to connect")
    fetch_read_timeout_s: float = Field(30.0, gt=0, description="seconds without data")
    fetch_deadline_s: float = Field(600.0, gt=0, description="overall limit for one download")
    fetch_max_redirects: int = Field(5, ge=0, description="redirects followed")
    fetch_tmp_dir: str | None = Field(None, description="folder for downloads; unset = system temp")

    log_level: str = Field("INFO", description="logging level")

    def redis_url_or_default(self) -> str:
        return self.redis_url.get_secret_value() if self.redis_url else DEFAULT_REDIS_URL


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings, read once from the environment."""
    return Settings()
