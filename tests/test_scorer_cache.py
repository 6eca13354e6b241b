"""worker.scoring's per-process scorer cache: a scorer is reused only for the settings that
built it."""

from __future__ import annotations

import inspect
import re
from typing import Any

import pytest

import worker.scoring
from worker.scoring import Scorer, _cache_key
from worker.settings import Settings

# another valid value for each setting a Scorer reads
OTHER: dict[str, Any] = {
    "weights": "fast",
    "device": "cuda",
    "cuda_tf32": True,
    "batch_size": 3,
    "torch_threads": 3,
    "frames_per_video": 7,
    "aggregation": "max",
    "aggregation_topk": 0.5,
    "threshold": 0.3,
    "detect_max_side": 320,
    "detect_score_threshold": 0.6,
    "detect_threads": 3,
    "detect_device": "cuda",
    "detect_batch": 3,
    "detect_full_every": 3,
    "detect_region_face_px": 50,
    "min_face_px": 30,
    "max_faces_per_frame": 3,
    "precision": "bfloat16",
}


def _read_by_scorer() -> set[str]:
    source = inspect.getsource(Scorer) + inspect.getsource(worker.scoring.get_scorer)
    return set(re.findall(r"\bsettings\.([a-z_0-9]+)\b", source)) - {"video_limits"}


def test_every_setting_a_scorer_reads_is_in_the_cache_key() -> None:
    read = _read_by_scorer()
    assert read <= set(OTHER), f"add to OTHER: {sorted(read - set(OTHER))}"
    base = Settings()  # type: ignore[call-arg]
    for name in sorted(read):
        other = base.model_copy(update={name: OTHER[name]})
        assert _cache_key(other) != _cache_key(base), name


@pytest.mark.parametrize("name", ["precision", "aggregation"])
def test_two_settings_that_differ_get_two_scorers(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[Settings] = []

    def fake(settings: Settings) -> Any:
        built.append(settings)
        return object()

    monkeypatch.setattr(worker.scoring, "Scorer", fake)
    monkeypatch.setattr(worker.scoring, "_CACHE", {})
    base = Settings()  # type: ignore[call-arg]
    a = worker.scoring.get_scorer(base)
    assert worker.scoring.get_scorer(base.model_copy()) is a
    assert worker.scoring.get_scorer(base.model_copy(update={name: OTHER[name]})) is not a
    assert len(built) == 2
