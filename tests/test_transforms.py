"""cre_models.transforms: the one face -> crop -> tensor contract, driven by config.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cre_models.faces import FaceBox, crop_face_with_landmarks
from cre_models.images import check_image, resize_square
from cre_models.transforms import FaceTransform, to_tensor
from cre_models.weights import CONFIG_FILE, InputSpec, load_checkpoint_config
from tests.queue_helpers import save_tiny_checkpoint
from worker.settings import Settings

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _images(n: int = 3, size: int = 40) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)


def test_default_normalisation_is_exactly_minus_one_to_one() -> None:
    imgs = _images()
    want = torch.from_numpy(imgs).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
    assert torch.equal(to_tensor(imgs), want)  # bit for bit: the shipped model's input
    assert torch.equal(to_tensor(list(imgs)), want) and torch.equal(to_tensor(imgs[0]), want[:1])


def test_mean_and_std_are_honoured_per_channel() -> None:
    imgs = _images()
    x = to_tensor(imgs, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    for c in range(3):
        want = (imgs[..., c] / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
        np.testing.assert_allclose(x[:, c].numpy(), want, atol=1e-5)


def test_sizes_and_errors() -> None:
    mixed = [_images(1, 40)[0], _images(1, 50)[0]]
    with pytest.raises(ValueError, match="different sizes"):
        to_tensor(mixed)
    assert to_tensor(mixed, 32).shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="image 1: expected dtype uint8"):
        to_tensor([mixed[0], mixed[0].astype(np.float32)])
    with pytest.raises(ValueError, match="no images"):
        to_tensor([])
    with pytest.raises(ValueError, match="ambiguous"):
        to_tensor(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    x = torch.zeros(1, 3, 8, 8)
    assert to_tensor(x) is x
    with pytest.raises(ValueError, match="HxWx3"):
        check_image(np.zeros((4, 4), np.uint8))
    big = _images(1, 64)[0]
    assert resize_square(big, 64) is not big and resize_square(big, 32).shape == (32, 32, 3)


def test_face_transform_crops_as_the_faces_module_does() -> None:
    frame = np.random.default_rng(1).integers(0, 256, size=(120, 160, 3), dtype=np.uint8)
    box = FaceBox(50, 30, 90, 80, 0.9, ((60, 45), (80, 46), (70, 55), (62, 68), (78, 69)))
    t = FaceTransform(size=48, margin=0.2, align=True)
    crop, marks = t.crop_with_landmarks(frame, box)
    want, want_marks = crop_face_with_landmarks(frame, box, 0.2, 48, align=True)
    np.testing.assert_array_equal(crop, want)
    np.testing.assert_array_equal(t.crop(frame, box), want)
    assert marks is not None and want_marks is not None
    np.testing.assert_allclose(marks, want_marks)
    assert t.to_tensor([crop]).shape == (1, 3, 48, 48)
    with pytest.raises(ValueError):
        FaceTransform(size=48, margin=0.2, std=(0.5, 0.0, 0.5))


def test_from_spec_reads_the_checkpoint_input() -> None:
    spec = InputSpec(size=96, crop_margin=0.15, align=True, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    t = FaceTransform.from_spec(spec)
    assert (t.size, t.margin, t.align, t.mean, t.std) == (
        96,
        0.15,
        True,
        IMAGENET_MEAN,
        IMAGENET_STD,
    )


def test_legacy_colour_field_loads_and_only_rgb_exists(tmp_path: Path) -> None:
    folder = save_tiny_checkpoint(tmp_path / "ckpt")
    raw = json.loads((folder / CONFIG_FILE).read_text())
    assert "colour" not in raw["input"]
    raw["input"]["colour"] = "RGB"  # what checkpoints written before its removal say
    (folder / CONFIG_FILE).write_text(json.dumps(raw))
    assert load_checkpoint_config(folder).input.size == raw["input"]["size"]
    raw["input"]["colour"] = "BGR"
    (folder / CONFIG_FILE).write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="RGB"):
        load_checkpoint_config(folder)


def test_the_worker_honours_the_checkpoints_normalisation(tmp_path: Path) -> None:
    """A checkpoint with ImageNet mean/std is scored with them (it used to be refused)."""
    from worker.scoring import Scorer

    folder = save_tiny_checkpoint(tmp_path / "ckpt")
    raw = json.loads((folder / CONFIG_FILE).read_text())
    plain = Scorer(Settings(weights=str(folder)))
    raw["input"].update(mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD))
    (folder / CONFIG_FILE).write_text(json.dumps(raw))
    imagenet = Scorer(Settings(weights=str(folder)))
    assert imagenet.transform.mean == IMAGENET_MEAN and imagenet.transform.std == IMAGENET_STD
    crops = list(_images(4, raw["input"]["size"]))
    assert not np.allclose(plain.predict(crops), imagenet.predict(crops))
