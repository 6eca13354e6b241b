"""Self-blended images: the fake differs from its source only inside a soft mask."""

from __future__ import annotations

import numpy as np
import pytest

from cre_models.training.sbi import (
    alter_source,
    make_sbi,
    sample_sbi_params,
    self_blend,
    soft_face_mask,
)
from worker.demo import sample_photo


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    import cv2

    img = sample_photo("astronaut")[20:300, 120:400]  # the face with some margin around it
    return cv2.resize(img, (128, 128), interpolation=cv2.INTER_AREA)


@pytest.mark.parametrize("seed", range(6))
def test_fake_differs_only_inside_a_soft_mask(face: np.ndarray, seed: int) -> None:
    fake, mask = make_sbi(face, np.random.default_rng(seed))
    assert fake.shape == face.shape and fake.dtype == np.uint8
    assert mask.shape == face.shape[:2] and mask.dtype == np.float32
    outside = mask == 0
    assert outside.any(), "the mask must leave the border of the crop untouched"
    np.testing.assert_array_equal(fake[outside], face[outside])
    inside = mask > 0
    assert np.abs(fake[inside].astype(int) - face[inside].astype(int)).max() > 0
    # soft: a band of intermediate values, never above 1
    assert mask.max() <= 1.0
    assert ((mask > 0.05) & (mask < 0.95 * mask.max())).sum() > 0.02 * mask.size


def test_mask_is_centred_on_the_face(face: np.ndarray) -> None:
    mask = soft_face_mask(face.shape[:2], sample_sbi_params(np.random.default_rng(0)))
    h, w = mask.shape
    assert mask[h // 2, w // 2] > 0
    assert mask[0, 0] == 0 and mask[-1, -1] == 0


def test_seeded_and_pure(face: np.ndarray) -> None:
    before = face.copy()
    a, ma = make_sbi(face, np.random.default_rng(7))
    b, mb = make_sbi(face, np.random.default_rng(7))
    c, _ = make_sbi(face, np.random.default_rng(8))
    np.testing.assert_array_equal(face, before)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ma, mb)
    assert not np.array_equal(a, c)


def test_parameters_replay(face: np.ndarray) -> None:
    params = sample_sbi_params(np.random.default_rng(3))
    a, _ = self_blend(face, params)
    b, _ = self_blend(face, params)
    np.testing.assert_array_equal(a, b)
    assert alter_source(face, params).shape == face.shape


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        make_sbi(np.zeros((32, 32), np.uint8), np.random.default_rng(0))
    with pytest.raises(ValueError):
        make_sbi(np.zeros((32, 32, 3), np.float32), np.random.default_rng(0))
