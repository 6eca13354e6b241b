"""Dense-landmark self-blend masks (``cre train-videos --sbi-mask dense``).

The mask geometry, the fall-back to the five points, the FaceMesh input square, the model
file's reading, the stored points beside the crop cache, and the early refusals. The real
FaceMesh model runs only where ``CRE_FACEMESH`` names it (the mediapipe 0.10.21 wheel or its
``face_landmark.tflite``) and ``ai-edge-litert`` is installed: it is training-time only.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from cre_models.training.cache import CacheSpec
from cre_models.training.facemesh import (
    FACEMESH_MEMBER,
    INPUT_SIDE,
    MIN_SCORE,
    N_POINTS,
    attach_dense,
    build_dense,
    dense_file,
    input_transform,
    read_model,
)
from cre_models.training.loop import LoopConfig, draw_pair
from cre_models.training.sbi import DENSE_SHRINK, dense_face_mask, make_sbi, sample_sbi_params
from cre_models.training.splits import Clip
from tests.test_video_training_e2e import clips, load_cached_like  # noqa: F401 (fixture)

FIVE = np.array([[70, 92], [137, 90], [100, 129], [80, 158], [133, 156]], np.float32)
"""Left eye, right eye, nose, mouth corners of a 224 px face crop (a real cached crop's)."""


def _oval(n: int = N_POINTS, centre: tuple[float, float] = (104, 118)) -> np.ndarray:
    """``n`` points on and inside a face-shaped ellipse of a 224 px crop (semi-axes 60 x 80)."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    r = np.where(np.arange(n) % 3 == 0, 1.0, 0.6)  # a third on the outline, the rest inside
    return np.stack([centre[0] + 60 * r * np.cos(t), centre[1] + 80 * r * np.sin(t)], 1)


def test_dense_mask_fills_the_hull_of_the_points_scaled_within_its_range() -> None:
    pts = _oval()
    for seed in range(8):
        rng = np.random.default_rng(seed)
        params = sample_sbi_params(rng, 0.25)
        mask = dense_face_mask((224, 224), pts, params, rng)
        assert mask.shape == (224, 224) and mask.dtype == np.float32
        assert mask[118, 104] == pytest.approx(params.blend_ratio, abs=1e-3)  # the centre
        assert mask[:10].max() == 0 and mask[:, :20].max() == 0  # far from the face: zero
        # the area at half the blend ratio: between the smallest and the largest hull, give
        # or take the dilation / erosion
        lo, hi = DENSE_SHRINK
        half = float((mask >= params.blend_ratio / 2).sum())
        ellipse = np.pi * 60 * 80
        assert 0.75 * ellipse * lo**2 < half < 1.25 * ellipse * hi**2
    with pytest.raises(ValueError, match="finite"):
        bad = pts.copy()
        bad[3] = np.nan
        dense_face_mask((224, 224), bad, params, rng)
    with pytest.raises(ValueError, match=">= 3"):
        dense_face_mask((224, 224), pts[:2], params, rng)


def test_make_sbi_uses_dense_points_when_finite_else_the_five() -> None:
    img = np.random.default_rng(1).integers(0, 255, size=(224, 224, 3), dtype=np.uint8)
    nan = np.full((N_POINTS, 2), np.nan, np.float32)
    for seed in range(5):
        five = make_sbi(img, np.random.default_rng(seed), 0.25, landmarks=FIVE)
        fallback = make_sbi(img, np.random.default_rng(seed), 0.25, landmarks=FIVE, dense=nan)
        assert np.array_equal(five[0], fallback[0]) and np.array_equal(five[1], fallback[1])
        fake, mask = make_sbi(img, np.random.default_rng(seed), 0.25, landmarks=FIVE, dense=_oval())
        assert not np.array_equal(mask, five[1])
        assert np.array_equal(fake[mask == 0], img[mask == 0])  # unchanged outside the mask
        assert mask[:10].max() == 0


def test_input_square_is_one_and_a_half_face_boxes_with_the_eyes_level() -> None:
    side, margin = 224, 0.25
    m = input_transform(side, FIVE, margin)
    c = m @ np.array([side / 2, side / 2, 1.0])
    assert c == pytest.approx([INPUT_SIDE / 2, INPUT_SIDE / 2])  # the face centre stays central
    eyes = np.c_[FIVE[:2], np.ones(2)] @ m.T
    assert eyes[0, 1] == pytest.approx(eyes[1, 1], abs=1e-6)  # levelled
    box = side / (1 + margin)
    scale = float(np.hypot(*m[:, 0]))
    assert scale * 1.5 * box == pytest.approx(INPUT_SIDE)
    # without eyes: no rotation
    m0 = input_transform(side, np.zeros((5, 2)), margin)
    assert m0[0, 1] == 0 and m0[1, 0] == 0


def test_read_model_takes_the_file_or_the_wheel_and_says_what_is_wrong(tmp_path: Path) -> None:
    raw = tmp_path / "face_landmark.tflite"
    raw.write_bytes(b"TFL3-model")
    assert read_model(raw) == b"TFL3-model"
    wheel = tmp_path / "mediapipe-0.10.21-cp311-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(FACEMESH_MEMBER, b"from-the-wheel")
    assert read_model(wheel) == b"from-the-wheel"
    empty = tmp_path / "mediapipe-1.0.whl"
    with zipfile.ZipFile(empty, "w") as z:
        z.writestr("mediapipe/__init__.py", "")
    with pytest.raises(ValueError, match="holds no"):
        read_model(empty)
    with pytest.raises(FileNotFoundError, match="pip download mediapipe"):
        read_model(tmp_path / "missing.whl")


class _StubMesh:
    """Stands in for :class:`FaceMesh`: an oval per crop, the score read from pixel (0, 0)."""

    calls = 0

    def __call__(self, crop: np.ndarray, landmarks: np.ndarray, margin: float):  # noqa: ANN204
        self.calls += 1
        return _oval().astype(np.float32), float(crop[0, 0, 0]) / 255.0


def test_points_are_stored_beside_the_cache_once_and_attached(tmp_path: Path) -> None:
    spec = CacheSpec(size=224)
    crops = np.zeros((3, 224, 224, 3), np.uint8)
    crops[:, 0, 0, 0] = [255, 10, 200]  # scores 1.0, 0.04 (below MIN_SCORE), 0.78
    video = load_cached_like(Clip("real/000.mp4", 0, "youtube"), crops, np.tile(FIVE, (3, 1, 1)))
    mesh = _StubMesh()
    kept, total = build_dense([video], tmp_path, spec, mesh, progress=False)  # type: ignore[arg-type]
    assert (kept, total) == (2, 3) and mesh.calls == 3
    assert dense_file(tmp_path, spec, video).is_file()
    assert build_dense([video], tmp_path, spec, mesh, progress=False) == (0, 0)  # type: ignore[arg-type]
    assert mesh.calls == 3  # not recomputed
    (got,) = attach_dense([video], tmp_path, spec)
    assert got.dense is not None and got.dense.shape == (3, N_POINTS, 2)
    assert np.isnan(got.dense[1]).all() and np.isfinite(got.dense[[0, 2]]).all()
    assert 10 / 255 < MIN_SCORE
    other = load_cached_like(Clip("real/001.mp4", 0, "youtube"), crops, np.tile(FIVE, (3, 1, 1)))
    with pytest.raises(FileNotFoundError, match="not built"):
        attach_dense([other], tmp_path, spec)
    shorter = load_cached_like(
        Clip("real/000.mp4", 0, "youtube"), crops[:2], np.tile(FIVE, (2, 1, 1))
    )
    with pytest.raises(ValueError, match="do not match"):
        attach_dense([shorter], tmp_path, spec)


def test_dense_option_changes_only_the_self_blends_and_is_checked() -> None:
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 255, size=(3, 224, 224, 3), dtype=np.uint8)
    lms = np.tile(FIVE, (3, 1, 1))
    base = dict(size=224, margin=0.25, simulate_prob=0.0, sbi_share=0.5)
    real = load_cached_like(Clip("real/000.mp4", 0, "youtube"), crops, lms)
    import dataclasses

    dense_real = dataclasses.replace(real, dense=np.tile(_oval()[None], (3, 1, 1)))
    fake = load_cached_like(Clip("fake/001_002.mp4", 1, "Deepfakes"), crops[::-1].copy(), lms)
    kinds = set()
    for seed in range(16):
        five = draw_pair([dense_real], [fake], LoopConfig(**base), np.random.default_rng(seed))
        dense = draw_pair(
            [dense_real], [fake], LoopConfig(**base, sbi_mask="dense"), np.random.default_rng(seed)
        )
        plain = draw_pair(
            [real], [fake], LoopConfig(**base, sbi_mask="dense"), np.random.default_rng(seed)
        )
        assert five[2:] == dense[2:]  # label and kind drawn the same way
        kinds.add(five[3])
        same = np.array_equal(five[0], dense[0])
        assert same == (five[3] != "sbi")  # only self-blends differ
        assert np.array_equal(plain[0], five[0])  # no points stored: the five-point mask
    assert kinds == {"real", "sbi", "labelled"}
    with pytest.raises(ValueError, match="sbi_mask must be one of"):
        LoopConfig(sbi_mask="68")


def test_train_videos_refuses_dense_masks_without_a_model_before_caching(tmp_path: Path) -> None:
    from cre_models.training.cli import main as train_main

    labels = tmp_path / "labels.tsv"
    labels.write_text(
        "file\tlabel\tmethod\nreal/000.mp4\treal\tyoutube\nfake/001.mp4\tfake\tDeepfakes\n"
    )
    split = tmp_path / "split.json"
    split.write_text('{"clips": {"real/000.mp4": "train", "fake/001.mp4": "validation"}}')
    cache = tmp_path / "cache"
    args = ["--data", str(tmp_path), "--labels", str(labels), "--split", str(split)]
    args += ["--cache-dir", str(cache)]
    with pytest.raises(SystemExit, match="needs --facemesh"):
        train_main([*args, "--sbi-mask", "dense"])
    with pytest.raises(SystemExit, match="--facemesh .*missing"):
        train_main([*args, "--sbi-mask", "dense", "--facemesh", str(tmp_path / "missing")])
    with pytest.raises(SystemExit, match="sbi-mask"):
        train_main([*args, "--sbi-mask", "81"])
    assert not cache.exists()


FACEMESH = os.environ.get("CRE_FACEMESH", "")


@pytest.mark.skipif(not FACEMESH, reason="CRE_FACEMESH (the mediapipe 0.10.21 wheel) not set")
def test_real_facemesh_outlines_a_real_face() -> None:
    pytest.importorskip("ai_edge_litert")
    from cre_models.faces import FaceDetector
    from cre_models.training.facemesh import FaceMesh
    from cre_models.transforms import FaceTransform
    from worker.demo import sample_photo

    img = sample_photo("astronaut")
    (face, *_) = FaceDetector().detect(img)
    tf = FaceTransform(224, 0.25)
    crop, lm = tf.crop_with_landmarks(img, face)
    pts, score = FaceMesh(read_model(FACEMESH))(crop, lm, 0.25)
    assert score > 0.9 and pts.shape == (N_POINTS, 2)
    hull = cv2.convexHull(np.round(pts).astype(np.int32))
    for x, y in lm:  # the five detector points lie inside the mesh's outline
        assert cv2.pointPolygonTest(hull, (float(x), float(y)), False) > 0
    assert np.all((pts > -10) & (pts < 234))


class _FaceMeshOfAnySize:
    """Stands in for :class:`FaceMesh` in a tiny run: an oval scaled to the crop, score 1."""

    def __call__(self, crop: np.ndarray, landmarks: np.ndarray, margin: float):  # noqa: ANN204
        return (_oval() * crop.shape[0] / 224).astype(np.float32), 1.0


@pytest.mark.slow
def test_a_dense_run_stores_points_for_real_crops_and_records_them(
    clips: tuple[Path, Path],  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import json

    from cre_models.training import cli
    from cre_models.weights import load_checkpoint_config

    monkeypatch.setattr(cli, "_facemesh", lambda path: _FaceMeshOfAnySize())
    root, labels = clips
    out, cache = tmp_path / "run", tmp_path / "cache"
    args = ["--data", str(root), "--labels", str(labels), "--split", str(root / "split.json")]
    args += ["--frames", "3", "--steps", "2", "--batch-size", "4", "--eval-every", "1"]
    args += ["--rgb-stream", "seed", "--size", "64", "--threads", "1", "--warmup", "1"]
    args += ["--out", str(out), "--cache-dir", str(cache), "--sbi-mask", "dense"]
    assert cli.main([*args, "--facemesh", "stub", "--cache-only"]) == 0
    stored = sorted(p.relative_to(cache).parts[1:] for p in cache.glob("*/dense/*/*.npz"))
    assert stored == [("dense", "deg", "real__000.mp4.npz"), ("dense", "orig", "real__000.mp4.npz")]
    assert cli.main([*args, "--facemesh", "stub"]) == 0
    cfg = load_checkpoint_config(out / "checkpoint")
    dense = cfg.training["provenance"]["dense_landmarks"]
    assert dense["real_crops"] == dense["real_crops_with_points"] > 0
    assert "face_landmark.tflite" in dense["model"]
    assert json.loads((out / "loop_config.json").read_text())["sbi_mask"] == "dense"
