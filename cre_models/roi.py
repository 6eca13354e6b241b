"""Face detection over a video's sampled frames, whole frames only now and then.

A video's sampled frames mostly show the same faces near the same places. The
:class:`RoiDetector` runs the detector on the whole frame for the first frame and then
every ``full_every`` frames; on the frames in between, only on a region around the faces
of the previous frame (each face's box grown by ``pad`` times its side on every side,
the union of those), a fraction of the pixels. Small faces are looked for at the
whole-frame scale, on the same pixels and anchor grid as a whole-frame pass (boxes at IoU
0.98-1.0 with whole-frame ones on the shared videos); large faces in frames the detector
downscales anyway, in a region downscaled until the face is about ``face_px`` pixels (IoU
about 0.95: RetinaFace's boxes depend a little on the scale). See
:meth:`~cre_models.faces.FaceDetector.detect_region` and docs/BENCHMARKS.md.

It falls back to the whole frame when the region would be large (over ``max_fraction``
of the frame), when the previous frame had no face, and when the region finds fewer
faces than the previous frame had (a face moved out of it or disappeared); a whole-frame
pass restarts the count. What it can miss: a new face entering a frame between two
whole-frame passes while the known ones stay, until the next whole-frame pass.

One detector serves any number of videos; one :class:`RoiDetector` follows one video,
its frames in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .faces import FaceBox, FaceDetector

__all__ = ["RoiStats", "RoiDetector", "face_region"]


@dataclass
class RoiStats:
    """What a :class:`RoiDetector` did: passes over whole frames and over regions."""

    full: int = 0
    """Whole-frame passes (including fallbacks)."""
    region: int = 0
    """Region passes."""
    lost: int = 0
    """Region passes that found fewer faces than the frame before (redone whole)."""


def face_region(faces: Sequence[FaceBox], pad: float) -> tuple[float, float, float, float]:
    """The union of squares of side ``(1 + 2 * pad) * max(w, h)`` centred on ``faces``."""
    if not faces:
        raise ValueError("face_region needs at least one face")
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    x0 = y0 = float("inf")
    x1 = y1 = float("-inf")
    for f in faces:
        half = max(f.width, f.height) * (0.5 + pad)
        cx, cy = (f.x0 + f.x1) / 2, (f.y0 + f.y1) / 2
        x0, y0 = min(x0, cx - half), min(y0, cy - half)
        x1, y1 = max(x1, cx + half), max(y1, cy + half)
    return x0, y0, x1, y1


class RoiDetector:
    """Faces in one video's frames, fed in order (see the module docstring).

    Args:
        detector: a :class:`~cre_models.faces.FaceDetector` (or anything with ``detect``
            and ``detect_region``).
        full_every: a whole-frame pass at least every this many frames; 1 = every frame.
        pad: a face's region reaches ``pad`` times its side beyond its box on every side.
        max_fraction: a region larger than this share of the frame is not worth it: the
            whole frame is detected instead.
        face_px: the region is downscaled so that the smallest previous face is about this
            many pixels (never more than a whole-frame pass would); ``None`` or 0 (as
            ``CRE_DETECT_REGION_FACE_PX`` says it): the whole-frame scale.
    """

    def __init__(
        self,
        detector: FaceDetector,  # or anything with its detect and detect_region
        full_every: int = 8,
        pad: float = 1.0,
        max_fraction: float = 0.75,
        face_px: float | None = None,
    ) -> None:
        if full_every < 1:
            raise ValueError(f"full_every must be >= 1, got {full_every}")
        if pad < 0 or not 0.0 < max_fraction <= 1.0:
            raise ValueError(f"pad must be >= 0 and max_fraction in (0, 1]: {pad}, {max_fraction}")
        self.detector = detector
        self.full_every = full_every
        self.pad = pad
        self.max_fraction = max_fraction
        self.face_px = face_px
        self.stats = RoiStats()
        self._previous: list[FaceBox] = []
        self._since_full = 0  # frames since the last whole-frame pass

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        """Faces in the next frame of the video, largest first (as ``detector.detect``)."""
        faces: list[FaceBox] | None = None
        if self._previous and self._since_full < self.full_every:
            region = face_region(self._previous, self.pad)
            scale = None
            if self.face_px:
                scale = self.face_px / min(max(f.width, f.height) for f in self._previous)
            faces = self.detector.detect_region(image, region, scale, self.max_fraction)
            if faces is not None:
                self.stats.region += 1
                if len(faces) < len(self._previous):
                    self.stats.lost += 1
                    faces = None
        if faces is None:
            faces = self.detector.detect(image)
            self.stats.full += 1
            self._since_full = 0
        self._since_full += 1
        self._previous = faces
        return faces
