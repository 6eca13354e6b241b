"""Detail matching in training (``cre train-videos --match-detail``): levels, targets, draws."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from cre_models.training.detail import (
    detail_level,
    detail_range,
    draw_detail_target,
    match_detail,
)
from cre_models.training.loop import LoopConfig, draw_sourced, train_loop
from tests.test_video_training_e2e import TINY_LOOP, load_cached_like, tiny_clips
from worker.demo import sample_photo


def _face(size: int = 128) -> np.ndarray:
    photo = sample_photo("astronaut")
    return cv2.resize(photo[0:300, 120:420], (size, size), interpolation=cv2.INTER_AREA)


def test_match_detail_moves_the_level_up_and_down_to_the_target() -> None:
    img = _face()
    level = detail_level(img)
    for target in (0.5 * level, 0.8 * level, 1.3 * level, 2.0 * level):
        out = match_detail(img, target)
        assert out.dtype == np.uint8 and out.shape == img.shape
        assert detail_level(out) == pytest.approx(target, rel=0.12)
    # the level is measured in the centre: a flat crop has none and comes back as it is
    flat = np.full((64, 64, 3), 120, np.uint8)
    assert detail_level(flat) == 0.0 and match_detail(flat, 5.0) is flat


def test_detail_range_and_targets() -> None:
    videos = tiny_clips(0)
    lo, hi = detail_range(videos, np.random.default_rng(0))
    levels = [detail_level(c) for v in videos for c in v.crops]
    assert min(levels) <= lo <= hi <= max(levels)
    rng = np.random.default_rng(1)
    targets = [draw_detail_target(rng, (2.0, 8.0)) for _ in range(400)]
    assert 2.0 <= min(targets) and max(targets) <= 8.0
    assert np.median(targets) == pytest.approx(4.0, rel=0.15)  # log-uniform: geometric mean
    with pytest.raises(ValueError, match="positive and ordered"):
        draw_detail_target(rng, (0.0, 0.0))
    with pytest.raises(ValueError, match="no crops"):
        detail_range([], rng)


def test_draws_move_every_kind_to_a_label_blind_level() -> None:
    real, fake = tiny_clips(2)
    face = _face(64)
    real = load_cached_like(real.clip, np.stack([face] * 3), real.landmarks)
    fake = load_cached_like(fake.clip, np.stack([face] * 3), fake.landmarks)
    base = {"size": 64, "margin": 0.25, "simulate_prob": 0.0}
    level = detail_level(face)
    span = (2.0 * level, 2.0 * level + 1e-3)  # one target, far above the crops' own level
    got = {}
    for seed in range(30):
        off = draw_sourced([real], [fake], LoopConfig(**base), np.random.default_rng(seed))
        on = draw_sourced(
            [real],
            [fake],
            LoopConfig(**base, match_detail=1.0, detail_range=span),
            np.random.default_rng(seed),
        )
        assert on[2:4] == off[2:4]  # same label and kind
        got.setdefault(on[3], []).append(detail_level(on[0]) / detail_level(off[0]))
    assert set(got) == {"real", "sbi", "labelled"}
    for kind, ratios in got.items():  # every kind sharpened alike (the jitter blurs a little)
        assert 1.5 < np.median(ratios) < 2.5, kind
    with pytest.raises(ValueError, match="match_detail"):
        LoopConfig(match_detail=1.5)
    with pytest.raises(ValueError, match="positive and ordered"):  # no range measured
        draw_sourced([real], [fake], LoopConfig(**base, match_detail=1.0), np.random.default_rng(0))


def test_the_loop_measures_the_range_and_records_it(tmp_path: Path) -> None:
    videos = tiny_clips(4)
    cfg = LoopConfig(
        out=str(tmp_path / "run"),
        batch_size=4,
        steps=2,
        eval_every=2,
        match_detail=0.5,
        **TINY_LOOP,
    )
    _, summary = train_loop(cfg, videos, videos)
    saved = json.loads((tmp_path / "run" / "loop_config.json").read_text())
    lo, hi = saved["detail_range"]
    assert 0 < lo <= hi and summary["detail_range"] == [lo, hi]
    assert (lo, hi) == detail_range(videos, np.random.default_rng([0, 7]))
