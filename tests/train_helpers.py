"""Tiny generated datasets and configs for the training and evaluation tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from cre_models.training.images import TrainConfig
from cre_models.training.sbi import make_sbi
from tests.synth import synth_frames
from worker.demo import sample_photo


def _write(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def real_frames_dir(root: Path, n: int = 4) -> Path:
    """``n`` frames (320x240) showing a real face, as PNG files."""
    for i, frame in enumerate(synth_frames(n, 320, 240, face=True, seed=1)):
        _write(root / f"frame_{i}.png", frame)
    return root


def labelled_crops_dir(root: Path, n: int = 3, size: int = 96) -> Path:
    """``real/`` and ``fake/`` face crops (fakes self-blended), named ``<video>_<k>.png``."""
    photo = sample_photo("astronaut")
    rng = np.random.default_rng(0)
    for i in range(n):
        y0, x0 = 20 + 8 * i, 120 + 6 * i
        crop = cv2.resize(
            photo[y0 : y0 + 280, x0 : x0 + 280], (size, size), interpolation=cv2.INTER_AREA
        )
        _write(root / "real" / f"vid{i % 2}_{i}.png", crop)
        fake, _ = make_sbi(crop, rng)
        _write(root / "fake" / f"fvid{i % 2}_{i}.png", fake)
    return root


def tiny_config(tmp: Path, data: Path, labelled: Path, **overrides: object) -> TrainConfig:
    cfg = TrainConfig(
        data=[str(data)],
        out=str(tmp / "run"),
        val=[str(labelled)],
        report=[str(labelled)],
        size=32,
        store_size=64,
        degrade_size=48,
        frames_per_video=2,
        embedding_dim=16,
        channels=(4, 8, 8, 8),
        denoiser_channels=(4, 8, 8, 8),
        latent_dim=8,
        head_hidden=8,
        stage1_epochs=1,
        stage2_epochs=2,
        epoch_size=4,
        batch_size=2,
        codec_prob=0.5,
        codec_profiles=("ladder-5",),
        threads=1,
        progress=False,
        cache_dir=str(tmp / "cache"),
    )
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return cfg
