"""The training-only identity adversary (``--identity-adversary``)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from cre_models.training.adversary import (
    GradReverse,
    IdentityAdversary,
    dann_weight,
    identity_index,
    identity_of,
)
from cre_models.training.loop import LoopConfig, draw_pair, draw_sourced, train_loop
from cre_models.training.splits import Clip
from tests.test_video_training_e2e import (
    FACE_LANDMARKS,
    TINY_LOOP,
    assert_resume_refused,
    load_cached_like,
    tiny_clips,
)


def test_gradient_reversal_is_identity_forward_and_minus_weight_backward() -> None:
    x = torch.randn(3, 4, requires_grad=True)
    y = GradReverse.apply(x, 0.25)
    assert torch.equal(y, x)
    (y * torch.arange(4.0)).sum().backward()
    assert x.grad is not None
    assert torch.allclose(x.grad, -0.25 * torch.arange(4.0).expand(3, 4))


def test_dann_ramp_starts_at_zero_and_rises_to_the_weight() -> None:
    ramp = [dann_weight(0.5, s, 100) for s in range(0, 101, 10)]
    assert ramp[0] == 0.0
    assert all(a < b for a, b in zip(ramp, ramp[1:], strict=False))
    assert 0.49 < ramp[-1] <= 0.5
    assert dann_weight(0.5, 500, 100) == ramp[-1]  # past the end: held, not extrapolated


def test_identity_is_the_person_whose_video_the_crop_comes_from() -> None:
    crops = np.zeros((3, 64, 64, 3), np.uint8)

    def video(file: str, label: int, method: str) -> object:
        return load_cached_like(Clip(file, label, method), crops, FACE_LANDMARKS)

    # a Deepfakes clip 033_097 is person 033's video with 097's face: its frames are 033's
    assert identity_of(video("fake/033_097.mp4", 1, "Deepfakes")) == "ffpp:033"  # type: ignore[arg-type]
    assert identity_of(video("real/033.mp4", 0, "youtube")) == "ffpp:033"  # type: ignore[arg-type]
    head = video("talking_heads/anna.mp4", 0, "none")
    assert identity_of(head) == "clip:talking_heads/anna.mp4"  # type: ignore[arg-type]
    people = identity_index(
        [video("real/033.mp4", 0, "youtube"), video("fake/033_097.mp4", 1, "Deepfakes"), head]  # type: ignore[list-item]
    )
    assert people == {"clip:talking_heads/anna.mp4": 0, "ffpp:033": 1}


def test_draw_sourced_is_draw_pair_plus_the_source_clip() -> None:
    real, fake = tiny_clips(3)
    cfg = LoopConfig(size=64, margin=0.25, simulate_prob=0.5)
    kinds = set()
    for seed in range(12):
        img, clean, label, kind, source = draw_sourced(
            [real], [fake], cfg, np.random.default_rng(seed)
        )
        plain = draw_pair([real], [fake], cfg, np.random.default_rng(seed))
        assert np.array_equal(plain[0], img) and np.array_equal(plain[1], clean)
        assert plain[2:] == (label, kind)
        # a self-blend is made from a real clip, so its person is that clip's
        assert source is (fake if kind == "labelled" else real)
        kinds.add(kind)
    assert kinds == {"real", "sbi", "labelled"}


def test_adversary_needs_two_people_and_refuses_what_it_is_not_built_for() -> None:
    with pytest.raises(ValueError, match="at least 2 people"):
        IdentityAdversary(8, 1)
    with pytest.raises(ValueError, match=">= 0"):
        LoopConfig(identity_adversary=-0.1)
    with pytest.raises(ValueError, match="denoiser or twin_pairs"):
        LoopConfig(identity_adversary=0.5, denoiser=True)
    with pytest.raises(ValueError, match="denoiser or twin_pairs"):
        LoopConfig(identity_adversary=0.5, twin_pairs=2)


def test_adversarial_training_logs_the_person_accuracy_and_ships_no_adversary(
    tmp_path: Path,
) -> None:
    videos = tiny_clips(4)  # people 000 (real) and 001 (the fake 001_002's frames)
    run = tmp_path / "run"
    cfg = LoopConfig(
        out=str(run), batch_size=4, steps=4, eval_every=2, identity_adversary=0.5, **TINY_LOOP
    )
    model, summary = train_loop(cfg, videos, videos)
    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["step"] for r in rows] == ["2", "4"]
    assert all(0.0 <= float(r["train_id_acc"]) <= 1.0 for r in rows)
    # the kept weights are the network's alone; the adversary is in resume.pt only
    kept = torch.load(run / "best_state.pt", weights_only=True)
    assert set(kept) == set(model.state_dict())
    state = torch.load(run / "resume.pt", weights_only=True)
    assert set(state["adversary"]) == {"net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias"}
    # resuming restores it; a run saved without one cannot be resumed with one
    more = LoopConfig(**{**cfg.__dict__, "steps": 6})
    train_loop(more, videos, videos, resume=True)
    assert torch.load(run / "resume.pt", weights_only=True)["step"] == 6
    assert_resume_refused(tmp_path, videos, {"identity_adversary": 0.5}, "no identity adversary")
    assert summary["best_step"] in (2, 4)


def test_the_adversary_moves_the_embedder_against_the_person() -> None:
    """One step with a person-only loss: with reversal the embedder's gradient is the
    negative of the one without it (the adversary's own gradient is unchanged)."""
    torch.manual_seed(0)
    emb = torch.nn.Linear(6, 4)
    adv = IdentityAdversary(4, 3, hidden=5)
    x, who = torch.randn(8, 6), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    grads = []
    for weight in (1.0, 0.0):
        emb.zero_grad()
        adv.zero_grad()
        feats = emb(x)
        logits = adv(feats, weight) if weight else adv.net(feats)
        torch.nn.functional.cross_entropy(logits, who).backward()
        assert emb.weight.grad is not None
        grads.append(emb.weight.grad.clone())
    assert torch.allclose(grads[0], -grads[1], atol=1e-6)
