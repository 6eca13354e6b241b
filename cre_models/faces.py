"""Face detection and square face crops, shared by training and the worker.

The detector is OpenCV's frontal-face Haar cascade: its weights ship inside
``opencv-python-headless`` (``cv2.data.haarcascades``), so nothing is downloaded at run
time. It runs on a copy of the frame downscaled to ``max_side``; boxes are returned in
the original frame's pixel coordinates.

Crop geometry: a face box of side ``s = max(w, h)`` becomes a square of side
``s * (1 + margin)`` centred on the box; parts outside the frame are filled with black
(so the face stays centred and unscaled relative to the crop); the square is resized to
the model's input size.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

__all__ = ["FaceBox", "FaceDetector", "square_crop_box", "crop_face"]


@dataclass(frozen=True)
class FaceBox:
    """A face in frame pixel coordinates (``x0, y0`` inclusive, ``x1, y1`` exclusive)."""

    x0: float
    y0: float
    x1: float
    y1: float
    score: float = 1.0

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)

    def to_list(self) -> list[float]:
        return [round(self.x0, 1), round(self.y0, 1), round(self.x1, 1), round(self.y1, 1)]


def _check_rgb(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        got = getattr(image, "dtype", type(image))
        raise ValueError(f"expected a uint8 numpy array, got {got}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError("empty image")


class FaceDetector:
    """Frontal-face Haar cascade on a downscaled frame.

    Args:
        max_side: the frame is downscaled so its longest side is at most this.
        min_face_px: smallest face side to report, in original-frame pixels.
        max_faces: keep at most this many faces, largest first.
        min_relative_area: drop faces smaller than this fraction of the largest one's area
            (SBI keeps faces at least half the largest; we are a little more permissive).
    """

    def __init__(
        self,
        max_side: int = 480,
        min_face_px: int = 40,
        max_faces: int = 4,
        min_relative_area: float = 0.25,
        scale_factor: float = 1.2,
        min_neighbors: int = 5,
    ) -> None:
        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"  # type: ignore[attr-defined]
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise RuntimeError(f"could not load the Haar cascade from {path}")
        self._lock = threading.Lock()  # CascadeClassifier is not documented as thread-safe
        self.max_side = max_side
        self.min_face_px = min_face_px
        self.max_faces = max_faces
        self.min_relative_area = min_relative_area
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        """Faces in an RGB uint8 frame, largest first."""
        _check_rgb(image)
        h, w = image.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        if scale < 1.0:
            size = (round(w * scale), round(h * scale))
            gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        gray = cv2.equalizeHist(gray)
        min_side = max(12, int(self.min_face_px * scale))
        with self._lock:
            rects, _, weights = self._cascade.detectMultiScale3(
                gray,
                scaleFactor=self.scale_factor,
                minNeighbors=self.min_neighbors,
                minSize=(min_side, min_side),
                outputRejectLevels=True,
            )
        rects_arr = np.asarray(rects).reshape(-1, 4)
        scores = np.asarray(weights).reshape(-1)
        boxes = [
            FaceBox(x / scale, y / scale, (x + bw) / scale, (y + bh) / scale, float(s))
            for (x, y, bw, bh), s in zip(rects_arr.astype(float).tolist(), scores, strict=True)
        ]
        boxes.sort(key=lambda b: b.area, reverse=True)
        if boxes:
            largest = boxes[0].area
            boxes = [b for b in boxes if b.area >= self.min_relative_area * largest]
        return boxes[: self.max_faces]


def square_crop_box(box: FaceBox, margin: float) -> tuple[int, int, int, int]:
    """Integer square ``(x0, y0, x1, y1)`` of side ``max(w, h) * (1 + margin)`` around ``box``.

    May extend beyond the frame; :func:`crop_face` pads those parts.
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    side = max(box.width, box.height) * (1.0 + margin)
    if side <= 0:
        raise ValueError(f"degenerate face box {box}")
    cx, cy = (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2
    s = max(1, round(side))
    x0, y0 = round(cx - s / 2), round(cy - s / 2)
    return x0, y0, x0 + s, y0 + s


def crop_face(image: np.ndarray, box: FaceBox, margin: float, size: int) -> np.ndarray:
    """Square crop around ``box`` with ``margin``, resized to ``size x size`` (uint8 RGB)."""
    _check_rgb(image)
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    h, w = image.shape[:2]
    x0, y0, x1, y1 = square_crop_box(box, margin)
    cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if cx1 <= cx0 or cy1 <= cy0:
        raise ValueError(f"face box {box} lies outside the {w}x{h} frame")
    crop = image[cy0:cy1, cx0:cx1]
    if (cx0, cy0, cx1, cy1) != (x0, y0, x1, y1):
        crop = cv2.copyMakeBorder(
            crop, cy0 - y0, y1 - cy1, cx0 - x0, x1 - cx1, cv2.BORDER_CONSTANT, value=(0, 0, 0)
        )
    side = crop.shape[0]
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interp)
