"""The training-only manipulation map (``cre train-videos --mask-loss``): targets, loss, loop."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch

from cre_models.training.loop import LoopConfig, draw_mapped, draw_sourced, train_loop
from cre_models.training.masks import (
    TAP_BLOCK,
    difference_map,
    labelled_maps,
    map_head_for,
    map_loss,
)
from cre_models.training.splits import Clip
from tests.test_video_training_e2e import (
    FACE_LANDMARKS,
    load_cached_like,
)
from worker.demo import sample_photo

LITE_LOOP = {"rgb_stream": "efficientnet_lite0", "pretrained": False, "size": 64, "threads": 1}


def _scene(size: int = 128) -> np.ndarray:
    photo = sample_photo("astronaut")
    return cv2.resize(photo[0:400, 60:460], (size, size), interpolation=cv2.INTER_AREA)


def _crop(frame: np.ndarray, x: int, y: int, side: int, size: int = 128) -> np.ndarray:
    return cv2.resize(frame[y : y + side, x : x + side], (size, size), interpolation=cv2.INTER_AREA)


def test_difference_map_finds_the_changed_region_through_a_box_offset() -> None:
    frame = sample_photo("astronaut")[0:480, 0:480].copy()
    fake_frame = frame.copy()
    fake_frame[170:290, 190:310] = 255 - fake_frame[170:290, 190:310]  # the "manipulated" face
    fake = _crop(fake_frame, 120, 100, 260)  # the change: crop rows/cols ~34-93 / ~34-93
    # the real crop comes from another detection on the real frame: a few pixels and a
    # little scale off
    real = _crop(frame, 114, 94, 272)
    m = difference_map(fake, real)
    assert m is not None and m.shape == fake.shape[:2] and m.dtype == np.float32
    assert m[44:84, 44:84].mean() > 0.9  # inside the change
    ring = np.ones_like(m, bool)
    ring[22:106, 22:106] = False
    assert m[ring].mean() < 0.05  # the aligned background stays dark
    # the same frame on both sides: next to nothing lights up (resampling two box sizes
    # leaves a trace in the finest texture only); the very same crop: nothing at all
    same = difference_map(_crop(frame, 120, 100, 260), real)
    assert same is not None and same.mean() < 0.06 and (same > 0.5).mean() < 0.03
    exact = difference_map(real, real)
    assert exact is not None and not exact.any()


def test_difference_map_refuses_crops_that_do_not_align() -> None:
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, size=(96, 96, 3), dtype=np.uint8)
    assert difference_map(_scene(96), noise) is None
    with pytest.raises(ValueError, match="shapes differ"):
        difference_map(_scene(96), _scene(128))


def _pair(times_real: np.ndarray | None = None) -> list[Any]:
    real = np.stack([_scene(64)] * 3)
    fake = real.copy()
    fake[:, 20:44, 18:46] = 255 - fake[:, 20:44, 18:46]
    return [
        load_cached_like(
            Clip("real/001.mp4", 0, "youtube"), real, FACE_LANDMARKS, "orig", times_real
        ),
        load_cached_like(Clip("fake/001_002.mp4", 1, "Deepfakes"), fake, FACE_LANDMARKS),
        load_cached_like(Clip("fake/001_002.mp4", 1, "Deepfakes"), fake, FACE_LANDMARKS, "deg"),
    ]


def test_labelled_maps_pair_each_fake_crop_with_the_same_moment_of_its_target() -> None:
    real, fake, fake_deg = _pair(np.array([0.0, 1.0, 2.5], np.float32))
    maps = labelled_maps([fake, fake_deg], [real])
    # crops 0 and 1 have their moment in the real clip; crop 2 (t=2.0 vs 2.5) does not;
    # the re-encoded copy gets none (its frames were drawn apart from the real clip's copy)
    assert list(maps) == [("fake/001_002.mp4", "orig")]
    got = maps[("fake/001_002.mp4", "orig")]
    assert sorted(got) == [0, 1]
    assert got[0].dtype == np.uint8 and got[0][24:40, 22:42].mean() > 200
    # a fake whose target has no real clip in training gets no map
    other = load_cached_like(Clip("fake/005_006.mp4", 1, "FaceSwap"), fake.crops, FACE_LANDMARKS)
    assert labelled_maps([other], [real]) == {}


def test_draw_mapped_draws_as_before_and_gives_each_kind_its_target() -> None:
    real, fake, fake_deg = _pair()
    maps = labelled_maps([fake], [real])
    cfg = LoopConfig(size=64, margin=0.25, simulate_prob=0.5)
    seen = set()
    for seed in range(40):
        plain = draw_sourced([real], [fake, fake_deg], cfg, np.random.default_rng(seed))
        img, clean, label, kind, video, target = draw_mapped(
            [real],
            [fake, fake_deg],
            cfg,
            np.random.default_rng(seed),
            maps,
        )
        # the map costs no random number: the images are those of a run without it
        assert np.array_equal(plain[0], img) and np.array_equal(plain[1], clean)
        assert (label, kind) == plain[2:4] and video is plain[4]
        bare = draw_mapped([real], [fake, fake_deg], cfg, np.random.default_rng(seed), None)
        assert bare[5] is None
        if kind == "real":
            assert target is not None and target.shape == (64, 64) and not target.any()
        elif kind == "sbi":
            assert target is not None and target.max() == pytest.approx(1.0, abs=0.05)
            assert target.min() == 0.0  # the blend mask does not cover the whole crop
        elif video.version == "deg":
            assert target is None  # a labelled crop without a difference map
        else:
            assert target is not None and target.shape == (64, 64)
            # jittered with the image: the change (rows 20-44) stays where the image changed
            assert target[26:38, 24:40].mean() > 0.7 and target[52:, :].mean() < 0.1
        seen.add((kind, video.version if kind == "labelled" else ""))
    assert {("real", ""), ("sbi", ""), ("labelled", "orig"), ("labelled", "deg")} <= seen


def test_map_loss_reads_only_items_with_a_target() -> None:
    logits = torch.zeros(3, 1, 4, 4, requires_grad=True)
    on = np.ones((16, 16), np.float32)
    loss = map_loss(logits, [on, None, np.zeros((16, 16), np.float32)])
    assert float(loss.detach()) == pytest.approx(float(torch.log(torch.tensor(2.0))), rel=1e-5)
    loss.backward()
    assert logits.grad is not None and not logits.grad[1].any() and logits.grad[0].abs().sum() > 0
    # right answers cost less than wrong ones; no target at all: zero, still differentiable
    good = torch.cat([torch.full((1, 1, 4, 4), 6.0), torch.full((1, 1, 4, 4), -6.0)])
    assert map_loss(good, [on, on * 0]) < map_loss(-good, [on, on * 0])
    none = map_loss(logits, [None, None, None])
    assert float(none.detach()) == 0.0 and none.requires_grad
    with pytest.raises(ValueError, match="2 targets for 3"):
        map_loss(logits, [on, on])


def test_mask_loss_needs_an_efficientnet_stream_and_refuses_what_it_is_not_built_for() -> None:
    from cre_models.training.loop import build_network

    with pytest.raises(ValueError, match="efficientnet_lite0"):
        map_head_for(build_network(LoopConfig(rgb_stream="seed")))
    with pytest.raises(ValueError, match="efficientnet_lite0"):
        map_head_for(build_network(LoopConfig(pretrained=False, rgb_blocks=TAP_BLOCK)))
    with pytest.raises(ValueError, match=">= 0"):
        LoopConfig(mask_loss=-1.0)
    with pytest.raises(ValueError, match="denoiser or identity_adversary"):
        LoopConfig(mask_loss=1.0, denoiser=True)
    with pytest.raises(ValueError, match="denoiser or identity_adversary"):
        LoopConfig(mask_loss=1.0, identity_adversary=0.5)


def test_training_with_the_map_logs_its_loss_and_ships_the_network_alone(tmp_path: Path) -> None:
    videos = _pair()
    val = videos[:2]  # a real and a fake as delivered: an AUC to keep the best step by
    run = tmp_path / "run"
    cfg = LoopConfig(out=str(run), batch_size=4, steps=4, eval_every=2, mask_loss=1.0, **LITE_LOOP)
    model, _ = train_loop(cfg, videos, val)
    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["step"] for r in rows] == ["2", "4"]
    assert all(float(r["train_map_loss"]) > 0 for r in rows)
    # the kept weights are the network's alone; the head is in resume.pt only; no hook is left
    assert set(torch.load(run / "best_state.pt", weights_only=True)) == set(model.state_dict())
    assert "map_head" in torch.load(run / "resume.pt", weights_only=True)
    assert not model.embedder.rgb_stream.trunk.blocks[TAP_BLOCK]._forward_hooks
    more = LoopConfig(**{**cfg.__dict__, "steps": 6})
    train_loop(more, videos, val, resume=True)
    assert torch.load(run / "resume.pt", weights_only=True)["step"] == 6
    # a run saved without the head cannot be resumed with one
    plain = LoopConfig(
        out=str(tmp_path / "plain"), batch_size=4, steps=2, eval_every=2, **LITE_LOOP
    )
    train_loop(plain, videos, val)
    with pytest.raises(ValueError, match="no map head"):
        again = LoopConfig(**{**plain.__dict__, "steps": 4, "mask_loss": 1.0})
        train_loop(again, videos, val, resume=True)
