"""Region detection (FaceDetector.detect_region) and the region-following RoiDetector."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from cre_models.faces import FaceBox, FaceDetector
from cre_models.roi import RoiDetector, face_region


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()  # the worker's defaults: longest side 640, score >= 0.8


def _frame(
    x: int, y: int, face: bool = True, size: tuple[int, int] = (1280, 720), scale: int = 2
) -> np.ndarray:
    """A grey frame with skimage's astronaut (512 px / scale; face ~100 px / scale wide)."""
    w, h = size
    frame = np.full((h, w, 3), 90, np.uint8)
    if face:
        photo = data.astronaut()[::scale, ::scale]
        frame[y : y + photo.shape[0], x : x + photo.shape[1]] = photo
    return frame


def _iou(a: FaceBox, b: FaceBox) -> float:
    iw = max(0.0, min(a.x1, b.x1) - max(a.x0, b.x0))
    ih = max(0.0, min(a.y1, b.y1) - max(a.y0, b.y0))
    return iw * ih / (a.area + b.area - iw * ih)


def test_a_region_at_the_whole_frame_scale_finds_the_face_the_whole_frame_does(
    detector: FaceDetector,
) -> None:
    frame = _frame(700, 150, scale=1)  # a ~100 px face, 50 px in the detector's copy
    (whole,) = detector.detect(frame)
    (found,) = detector.detect_region(frame, face_region([whole], 1.0)) or []
    # the same pixels on the same anchor grid, less context: the same box to a pixel or two
    np.testing.assert_allclose(
        (found.x0, found.y0, found.x1, found.y1), (whole.x0, whole.y0, whole.x1, whole.y1), atol=2
    )
    np.testing.assert_allclose(found.landmarks, whole.landmarks, atol=2)  # type: ignore[arg-type]
    assert found.score == pytest.approx(whole.score, abs=0.02)
    assert _iou(found, whole) > 0.97


def test_a_downscaled_region_finds_the_face_in_frame_pixels(detector: FaceDetector) -> None:
    frame = cv2.resize(_frame(300, 100, size=(640, 360)), (1920, 1080))  # a 150 px face
    (whole,) = detector.detect(frame)
    assert whole.width > 120
    (found,) = detector.detect_region(frame, face_region([whole], 1.0), scale=0.25) or []
    assert _iou(found, whole) > 0.85


def test_a_frame_the_detector_does_not_downscale_keeps_its_resolution_in_a_region(
    detector: FaceDetector,
) -> None:
    frame = _frame(200, 100, size=(640, 480))  # at most max_side: never downscaled
    (whole,) = detector.detect(frame)
    region = face_region([whole], 1.0)
    # the scale is not applied: the same pass as at the whole-frame scale
    assert detector.detect_region(frame, region, scale=0.3) == detector.detect_region(frame, region)
    (found,) = detector.detect_region(frame, region) or []
    assert _iou(found, whole) > 0.97


def test_a_region_not_worth_it_or_outside_the_frame_is_none(detector: FaceDetector) -> None:
    frame = _frame(700, 300)
    assert detector.detect_region(frame, (0, 0, 1280, 720)) is None  # the whole frame
    assert detector.detect_region(frame, (0, 0, 1280, 720), max_fraction=1.0) is not None
    assert detector.detect_region(frame, (2000, 2000, 2100, 2100)) is None
    assert detector.detect_region(frame, (10, 10, 200, 200)) == []  # no face there
    with pytest.raises(ValueError):
        detector.detect_region(np.zeros((10, 10), np.uint8), (0, 0, 5, 5))


def test_face_region_is_the_union_of_padded_squares() -> None:
    a, b = FaceBox(100, 100, 140, 160), FaceBox(300, 50, 320, 70)
    assert face_region([a], 0.0) == (90, 100, 150, 160)  # the square of side max(w, h)
    assert face_region([a], 1.0) == (30, 40, 210, 220)
    assert face_region([a, b], 0.5) == (60, 40, 330, 190)
    with pytest.raises(ValueError):
        face_region([], 1.0)


class ScriptedDetector:
    """Records the passes; each frame's first pixel says how many faces it shows."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def _faces(self, image: np.ndarray) -> list[FaceBox]:
        return [FaceBox(10 + 30 * i, 10, 30 + 30 * i, 30) for i in range(int(image[0, 0, 0]))]

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        self.calls.append("full")
        return self._faces(image)

    def detect_region(self, image: np.ndarray, *_: object, **__: object) -> list[FaceBox] | None:
        self.calls.append("region")
        return self._faces(image)[:1]  # a region only ever finds the first face


def _frames(faces: list[int]) -> list[np.ndarray]:
    out = []
    for n in faces:
        image = np.zeros((100, 200, 3), np.uint8)
        image[0, 0, 0] = n
        out.append(image)
    return out


def test_whole_frames_first_then_every_full_every_and_regions_between() -> None:
    det = ScriptedDetector()
    roi = RoiDetector(det, full_every=3)
    found = [roi.detect(f) for f in _frames([1] * 7)]
    assert all(len(f) == 1 for f in found)
    assert det.calls == ["full", "region", "region", "full", "region", "region", "full"]
    assert (roi.stats.full, roi.stats.region, roi.stats.lost) == (3, 4, 0)


def test_a_lost_face_or_no_face_means_a_whole_frame() -> None:
    det = ScriptedDetector()
    roi = RoiDetector(det, full_every=8)
    found = [roi.detect(f) for f in _frames([2, 2, 0, 0, 1, 1])]
    assert [len(f) for f in found] == [2, 2, 0, 0, 1, 1]
    # frame 1: the region found 1 of 2 faces -> whole; frame 2: lost -> whole; frame 3: no
    # face before -> whole (no region); frame 4: still none before -> whole; frame 5: region
    assert det.calls == [
        "full",
        "region",
        "full",
        "region",
        "full",
        "full",
        "full",
        "region",
    ]
    assert roi.stats.lost == 2 and roi.stats.region == 3 and roi.stats.full == 5


def test_full_every_one_is_every_frame_whole_and_bad_arguments_raise() -> None:
    det = ScriptedDetector()
    roi = RoiDetector(det, full_every=1)
    for f in _frames([1, 1, 1]):
        roi.detect(f)
    assert det.calls == ["full"] * 3
    for kwargs in ({"full_every": 0}, {"pad": -1.0}, {"max_fraction": 0.0}):
        with pytest.raises(ValueError):
            RoiDetector(det, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("face_px", [None, 30])  # 30: regions downscaled to 0.3
def test_following_a_moving_face_matches_whole_frames_and_falls_back_when_it_goes(
    detector: FaceDetector, face_px: int | None
) -> None:
    frames = [_frame(500 + 12 * i, 150 - 5 * i, scale=1) for i in range(6)]
    frames += [_frame(0, 0, face=False), _frame(100, 100, scale=1)]  # gone, back elsewhere
    roi = RoiDetector(detector, full_every=8, face_px=face_px)
    found = [roi.detect(f) for f in frames]
    whole = [detector.detect(f) for f in frames]
    assert [len(f) for f in found] == [1, 1, 1, 1, 1, 1, 0, 1]
    for got, want in zip(found, whole, strict=True):
        for g, w in zip(got, want, strict=True):
            assert _iou(g, w) > (0.95 if face_px is None else 0.8)
    # frame 6: the region lost the face -> whole (none); frame 7: no face before -> whole
    assert roi.stats.region == 6 and roi.stats.lost == 1 and roi.stats.full == 3
