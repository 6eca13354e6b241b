"""Landmark part cutout (``cre train-videos --part-cutout``): the masks, the fill, the draws."""

from __future__ import annotations

import numpy as np
import pytest

from cre_models.training.loop import LoopConfig, draw_pair
from cre_models.training.parts import PARTS, cutout_part, part_mask
from cre_models.training.splits import Clip
from tests.test_video_training_e2e import load_cached_like

FIVE = np.array([[70, 92], [137, 90], [100, 129], [80, 158], [133, 156]], np.float32)
"""Left eye, right eye, nose, mouth corners of a 224 px face crop (a real cached crop's)."""


def _inside(mask: np.ndarray, point: np.ndarray) -> bool:
    x, y = np.round(point).astype(int)
    return bool(mask[y, x])


def test_each_part_covers_its_landmarks_and_not_the_others() -> None:
    covered = {
        "left_eye": [0],
        "right_eye": [1],
        "eyes": [0, 1],
        "nose": [2],
        "mouth": [3, 4],
    }
    iod = float(np.hypot(*(FIVE[1] - FIVE[0])))
    for part in PARTS:
        mask = part_mask((224, 224), FIVE, part)
        assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1}
        for i in range(5):
            assert _inside(mask, FIVE[i]) == (i in covered[part]), (part, i)
        # a part, not the face: between 2 % and 15 % of the face's square (iod x 2 iod)
        assert 0.02 * 2 * iod**2 < mask.sum() < 0.15 * 224**2
    with pytest.raises(ValueError, match="part must be one of"):
        part_mask((224, 224), FIVE, "forehead")


def test_cutout_fills_one_part_with_the_mean_colour_and_is_seeded() -> None:
    img = np.random.default_rng(0).integers(0, 255, size=(224, 224, 3), dtype=np.uint8)
    before = img.copy()
    out, part = cutout_part(img, FIVE, np.random.default_rng(3))
    assert np.array_equal(img, before)  # a copy
    mask = part_mask((224, 224), FIVE, part).astype(bool)
    fill = before.reshape(-1, 3).mean(axis=0).round()
    assert np.all(out[mask] == fill)
    assert np.array_equal(out[~mask], before[~mask])
    again, same = cutout_part(img, FIVE, np.random.default_rng(3))
    assert same == part and np.array_equal(out, again)
    seen = {cutout_part(img, FIVE, np.random.default_rng(s))[1] for s in range(40)}
    assert seen == set(PARTS)


def test_draws_hide_a_part_of_every_kind_only_when_asked_and_landmarks_exist() -> None:
    """``part_cutout=1``: every crop with landmarks (real, self-blend, labelled fake) loses
    a part and keeps its label and kind; at 0, and for crops without landmarks, the draws
    are bit-identical to a config without the option."""
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 255, size=(3, 224, 224, 3), dtype=np.uint8)
    lms = np.tile(FIVE, (3, 1, 1))
    base = dict(size=224, margin=0.25, simulate_prob=0.0, sbi_share=0.5)

    def draw(cfg: LoopConfig, seed: int, with_landmarks: bool) -> tuple:
        marks = lms if with_landmarks else np.zeros_like(lms)
        real = load_cached_like(Clip("real/000.mp4", 0, "youtube"), crops, marks)
        fake = load_cached_like(Clip("fake/001_002.mp4", 1, "Deepfakes"), crops[::-1].copy(), marks)
        return draw_pair([real], [fake], cfg, np.random.default_rng(seed))

    kinds = set()
    for seed in range(12):
        plain = draw(LoopConfig(**base), seed, True)
        off = draw(LoopConfig(**base, part_cutout=0.0), seed, True)
        assert np.array_equal(plain[0], off[0]) and plain[2:] == off[2:]
        on = draw(LoopConfig(**base, part_cutout=1.0), seed, True)
        assert on[2:] == off[2:]  # label and kind drawn before the cutout
        assert not np.array_equal(on[0], off[0])
        kinds.add(on[3])
        bare_on = draw(LoopConfig(**base, part_cutout=1.0), seed, False)
        bare_off = draw(LoopConfig(**base), seed, False)
        assert np.array_equal(bare_on[0], bare_off[0])  # no landmarks: nothing to hide
    assert kinds == {"real", "sbi", "labelled"}
    with pytest.raises(ValueError, match="part_cutout"):
        LoopConfig(part_cutout=1.5)
