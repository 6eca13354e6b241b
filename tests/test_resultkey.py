"""What a result is keyed by: checkpoint identity, resolved options, file content."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.queue_helpers import TINY_FRAMES, save_tiny_checkpoint
from worker.resultkey import (
    IdentityUnavailableError,
    ResultKey,
    checkpoint_identity,
    expected_key,
    file_content,
    file_sha256,
    reuse_refusal,
    scoring_options,
)
from worker.results import ContentInfo, ModelInfo, ResultRecord, ScoringOptions
from worker.settings import Settings

pytest_plugins = ("tests.queue_fixtures",)  # fixtures: tiny_weights

ROOT = Path(__file__).resolve().parents[1]


def test_checkpoint_identity_reads_config_json(tiny_weights: Path) -> None:
    cfg = json.loads((tiny_weights / "config.json").read_text())
    ident = checkpoint_identity(str(tiny_weights))
    assert ident.model == ModelInfo(
        name="tiny-test", version="0.0.1", weights_sha256=cfg["weights_sha256"]
    )
    assert (ident.frames_per_video, ident.aggregation, ident.threshold) == (
        TINY_FRAMES,
        "mean",
        0.5,
    )
    shipped = json.loads((ROOT / "cre_models/weights/default/config.json").read_text())
    default = checkpoint_identity("default").model
    assert default.name == shipped["name"] and default.weights_sha256 == shipped["weights_sha256"]


def test_checkpoint_identity_of_an_untrained_network_and_of_nothing(tmp_path: Path) -> None:
    seed = checkpoint_identity("cre-seed").model
    assert seed.name == "cre-seed" and seed.weights_sha256 is None
    with pytest.raises(IdentityUnavailableError, match="cannot read"):
        checkpoint_identity(str(tmp_path / "missing"))
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(IdentityUnavailableError):
        checkpoint_identity(str(tmp_path))


@pytest.mark.parametrize(
    ("overrides", "frames", "aggregation"),
    [
        ({}, None, None),
        ({"frames_per_video": 9, "threshold": 0.3}, None, None),
        ({"aggregation": "topk_mean", "aggregation_topk": 0.5}, None, None),
        ({"aggregation": "max"}, 4, "topk_mean"),
        ({}, 7, "confident"),
        ({"precision": "bfloat16"}, None, None),
    ],
)
def test_submitter_and_worker_resolve_the_same_key(
    tiny_weights: Path, overrides: dict[str, object], frames: int | None, aggregation: str | None
) -> None:
    """The submitter (settings + config.json) and the worker (its Scorer) agree."""
    from worker.scoring import Scorer

    settings = Settings(weights=str(tiny_weights), torch_threads=1, **overrides)  # type: ignore[arg-type]
    scorer = Scorer(settings)
    worker_side = ResultKey(
        model=ModelInfo(
            name=scorer.model_name,
            version=scorer.model_version,
            weights_sha256=scorer.config.weights_sha256,
        ),
        options=scoring_options(
            frames,
            aggregation,
            default_frames=scorer.frames_per_video,
            default_aggregation=scorer.aggregation,
            topk=scorer.topk,
            threshold=scorer.threshold,
            precision=scorer.precision,
        ),
    )
    submit_side = expected_key(settings, checkpoint_identity(settings.weights), frames, aggregation)
    assert submit_side == worker_side


def test_a_different_checkpoint_has_a_different_identity(
    tiny_weights: Path, tmp_path: Path
) -> None:
    other = save_tiny_checkpoint(tmp_path / "other", seed=1)  # same name and version
    a, b = checkpoint_identity(str(tiny_weights)), checkpoint_identity(str(other))
    assert (a.model.name, a.model.version) == (b.model.name, b.model.version)
    assert a.model != b.model  # the weights hash tells them apart


def _key() -> ResultKey:
    return ResultKey(
        model=ModelInfo(name="m", version="1", weights_sha256="a" * 64),
        options=ScoringOptions(frames=8, aggregation="mean", threshold=0.5),
    )


def _record(source: str, content: ContentInfo | None, key: ResultKey | None = None) -> ResultRecord:
    key = key or _key()
    return ResultRecord(
        video_id="v" + "0" * 32,
        source=source,
        status="no_face",
        model=key.model,
        options=key.options,
        content=content,
    )


def test_reuse_rules_for_files(tmp_path: Path) -> None:
    f = tmp_path / "v.mp4"
    f.write_bytes(b"0123456789")
    rec = _record(str(f), file_content(f))
    assert rec.content is not None and rec.content.sha256 == file_sha256(f)
    assert reuse_refusal(rec, str(f), _key()) is None
    # checkpoint and options
    other_model = ResultKey(
        ModelInfo(name="m", version="1", weights_sha256="b" * 64), _key().options
    )
    assert "checkpoint differs" in (reuse_refusal(rec, str(f), other_model) or "")
    other_opts = ResultKey(
        _key().model, ScoringOptions(frames=9, aggregation="mean", threshold=0.5)
    )
    assert "options differ" in (reuse_refusal(rec, str(f), other_opts) or "")
    assert "cannot be identified" in (reuse_refusal(rec, str(f), None) or "")
    # same size and mtime, other bytes: only the hash sees it
    st = f.stat()
    f.write_bytes(b"9876543210")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert "content changed" in (reuse_refusal(rec, str(f), _key()) or "")
    # touched only: the modification time counts
    f.write_bytes(b"0123456789")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert "size or modification time" in (reuse_refusal(rec, str(f), _key()) or "")
    f.write_bytes(b"01234567890")
    assert "size or modification time" in (reuse_refusal(rec, str(f), _key()) or "")
    assert "does not say" in (reuse_refusal(_record(str(f), None), str(f), _key()) or "")
    f.unlink()
    assert "cannot read" in (reuse_refusal(rec, str(f), _key()) or "")


def test_reuse_rules_for_urls() -> None:
    url = "https://example.com/v.mp4"
    downloaded = ContentInfo(size_bytes=10, mtime_ns=None, sha256="c" * 64)
    assert reuse_refusal(_record(url, downloaded), url, _key()) is None
    assert reuse_refusal(_record(url, None), url, _key()) is None  # e.g. a failed download
    other_opts = ResultKey(
        _key().model, ScoringOptions(frames=9, aggregation="mean", threshold=0.5)
    )
    assert "options differ" in (reuse_refusal(_record(url, downloaded), url, other_opts) or "")


def test_the_arithmetic_is_part_of_the_key_and_old_records_were_float32() -> None:
    from worker.results import ScoringOptions

    common = {"default_frames": 32, "default_aggregation": "mean", "topk": 0.25, "threshold": 0.5}
    f32 = scoring_options(None, None, **common)  # type: ignore[arg-type]
    bf16 = scoring_options(None, None, precision="bfloat16", **common)  # type: ignore[arg-type]
    assert f32.precision == "float32" and f32 != bf16
    old = ScoringOptions.model_validate({"frames": 32, "aggregation": "mean", "threshold": 0.5})
    assert old == f32  # a record from before CRE_PRECISION is reused by a float32 worker


def test_a_failure_outside_scoring_stands_until_the_file_changes(tmp_path: Path) -> None:
    """A ``failed`` record without a checkpoint (a timeout, a killed worker) is no "other
    checkpoint": a plain resubmit keeps it (``--retry-failed`` tries again); a file replaced
    after the failure is scored again."""
    from datetime import UTC, datetime, timedelta

    from worker.jobs import failed_record

    f = tmp_path / "v.mp4"
    f.write_bytes(b"0123456789")
    later = datetime.now(UTC) + timedelta(seconds=5)
    rec = failed_record("v" + "0" * 32, str(f), "timeout", "took too long")
    rec = rec.model_copy(update={"created_at": later})
    assert rec.model is None
    assert reuse_refusal(rec, str(f), _key()) is None
    assert reuse_refusal(rec, str(f), None) is None
    os.utime(f, ns=(0, int((later.timestamp() + 60) * 1e9)))  # replaced after the failure
    assert "changed since the failed attempt" in (reuse_refusal(rec, str(f), _key()) or "")
    url = "https://example.com/v.mp4"
    assert reuse_refusal(rec.model_copy(update={"source": url}), url, _key()) is None
    # a worker that could not load its model: fixing it is the reason to score again
    os.utime(f, ns=(0, 0))
    broken = failed_record("v" + "0" * 32, str(f), "model_unavailable", "no weights")
    assert "checkpoint differs" in (reuse_refusal(broken, str(f), _key()) or "")
