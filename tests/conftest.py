"""Shared test fixtures: the optional ../shared data and RNG hygiene."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


BAD_IMAGES = {
    "float": np.zeros((64, 64, 3), np.float32),
    "gray": np.zeros((64, 64), np.uint8),
    "rgba": np.zeros((64, 64, 4), np.uint8),
    "no-rows": np.zeros((0, 64, 3), np.uint8),
    "no-columns": np.zeros((64, 0, 3), np.uint8),
    "list": [[0, 0, 0]],
}
"""What the one image check (:func:`cre_models.images.check_image`) refuses, by name."""

bad_images = pytest.mark.parametrize("bad", list(BAD_IMAGES.values()), ids=list(BAD_IMAGES))
"""Run a test once per :data:`BAD_IMAGES` entry, as ``bad``."""


def psnr(a: np.ndarray, b: np.ndarray, cap: float = 100.0) -> float:
    """Peak signal-to-noise ratio of two uint8 images in dB (``cap`` for identical images)."""
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    mse = float(np.mean((a.astype(np.float32) - b.astype(np.float32)) ** 2))
    return cap if mse == 0 else min(cap, 10.0 * float(np.log10(255.0**2 / mse)))


def config_only_checkpoint(tmp: Path) -> tuple[Path, str]:
    """``tmp/ckpt`` holding only the ``fast`` weights' ``config.json``, and those weights'
    sha256: enough for the scripts that read records of a checkpoint without its model."""
    import shutil

    from cre_models.weights import load_checkpoint_config

    ckpt = tmp / "ckpt"
    ckpt.mkdir()
    shutil.copy(ROOT / "cre_models/weights/fast/config.json", ckpt / "config.json")
    sha = load_checkpoint_config(ckpt).weights_sha256
    assert sha is not None
    return ckpt, sha


def shared_data_path(*parts: str) -> Path:
    """Path under ../shared/data, or skip the test when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not available (../shared/data is absent)")
    return path


@pytest.fixture
def shared_data() -> Path:
    return shared_data_path()


@pytest.fixture(autouse=True)
def _restore_rng_state() -> Iterator[None]:
    """Tests may seed global RNGs; restore them so test order never matters."""
    py_state = random.getstate()
    np_state = np.random.get_state()
    torch_state = torch.random.get_rng_state()
    yield
    random.setstate(py_state)
    np.random.set_state(np_state)
    torch.random.set_rng_state(torch_state)
