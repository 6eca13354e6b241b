"""Face detection and square face crops, shared by training and the worker.

The detector is RetinaFace MobileNet-0.25 (:mod:`cre_models.retinaface`), whose converted
weights ship in ``cre_models/weights/retinaface``, so nothing is downloaded at run time. It
runs on a copy of the frame downscaled so its longest side is at most ``max_side`` (never
upscaled); boxes and landmarks are returned in the original frame's pixel coordinates.
Several frames can go through one forward pass (:meth:`FaceDetector.detect_batch`): they are
padded to one size, a multiple of 32, with the mean colour (zero after normalisation); a
single frame is padded the same way, so ``detect(x) == detect_batch([x])[0]``.
:meth:`FaceDetector.detect_region` looks at a part of a frame only (what
:class:`~cre_models.roi.RoiDetector` runs between whole-frame passes). The network and its
inputs are channels-last, the layout in which its convolutions are fastest on CPU.

Crop geometry: a face box of side ``s = max(w, h)`` becomes a square of side
``s * (1 + margin)`` centred on the box; parts outside the frame are filled with black
(so the face stays centred and unscaled relative to the crop); the square is resized to
the model's input size. With ``align=True`` the square is first rotated about its centre
so that the eyes are level (the angle of the line from the left to the right eye).

Coordinates are continuous: pixel ``i`` covers ``[i, i + 1)``, so a landmark at ``x`` in a
frame lands at ``(x - x0) * size / side`` in an unaligned crop.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from .images import check_image, resize_square

if TYPE_CHECKING:
    from .retinaface import RetinaFace

__all__ = [
    "LANDMARK_NAMES",
    "FaceBox",
    "FaceDetector",
    "square_crop_box",
    "crop_face",
    "crop_face_with_landmarks",
    "eye_angle",
]

logger = logging.getLogger(__name__)

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
"""The five points of :attr:`FaceBox.landmarks`, in order; left and right as seen in the image."""

PAD_MULTIPLE = 32
"""Detector inputs are padded to a multiple of the coarsest stride."""

SNAP_SCALE = 2 / 3
"""A region scale above this share of the whole-frame scale uses the whole-frame copy."""

MAX_CANDIDATES = 750
"""Highest-scoring candidates kept before NMS (bounds the work on pathological frames)."""


@dataclass(frozen=True)
class FaceBox:
    """A face in frame pixel coordinates (``x0, y0`` inclusive, ``x1, y1`` exclusive).

    ``landmarks`` are five ``(x, y)`` points in frame pixels (:data:`LANDMARK_NAMES`), or
    ``None`` when the box did not come from a landmark detector.
    """

    x0: float
    y0: float
    x1: float
    y1: float
    score: float = 1.0
    landmarks: tuple[tuple[float, float], ...] | None = None

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
        """The box as ``[x0, y0, x1, y1]``, rounded to 0.1 px (the result record's ``box``)."""
        return [round(self.x0, 1), round(self.y0, 1), round(self.x1, 1), round(self.y1, 1)]

    def landmarks_list(self) -> list[list[float]] | None:
        """The landmarks as ``[[x, y], ...]`` rounded to 0.1 px, or ``None``."""
        if self.landmarks is None:
            return None
        return [[round(x, 1), round(y, 1)] for x, y in self.landmarks]

    def to_dict(self) -> dict[str, Any]:
        """``{"box": [...], "score": ..., "landmarks": [[x, y], ...] | None}`` (JSON-ready)."""
        return {
            "box": self.to_list(),
            "score": round(float(self.score), 4),
            "landmarks": self.landmarks_list(),
        }

    def landmarks_array(self) -> np.ndarray | None:
        """The landmarks as a ``(5, 2)`` float array, or ``None``."""
        if self.landmarks is None:
            return None
        return np.asarray(self.landmarks, dtype=np.float64).reshape(-1, 2)


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


class FaceDetector:
    """RetinaFace MobileNet-0.25 on a downscaled copy of each frame.

    Thread-safe: one forward pass at a time (a lock), under ``torch.inference_mode``.

    Args:
        max_side: frames are downscaled (never upscaled) so their longest side is at most this.
        score_threshold: smallest face score kept (softmax probability of "face").
        nms_iou: boxes overlapping a higher-scoring one by more than this IoU are dropped.
        min_face_px: smallest face to report: ``max(w, h)`` of the box in original-frame pixels.
        max_faces: keep at most this many faces, largest first.
        min_relative_area: drop faces smaller than this fraction of the largest one's area
            (SBI keeps faces at least half the largest; we are a little more permissive).
        threads: torch intra-op threads during the detector's forward pass (the previous
            value is restored afterwards); 0 leaves torch's setting alone. One thread is the
            measured best on two cores (docs/BENCHMARKS.md).
        weights: folder with ``model.safetensors`` (default: the shipped conversion).
        model: an already-built :class:`~cre_models.retinaface.RetinaFace` (tests).
        device: torch device of the forward pass (``"cpu"``, ``"cuda"``); frames are prepared
            and boxes decoded on the CPU either way.
    """

    def __init__(
        self,
        max_side: int = 640,
        score_threshold: float = 0.8,
        nms_iou: float = 0.4,
        min_face_px: int = 40,
        max_faces: int = 4,
        min_relative_area: float = 0.25,
        threads: int = 1,
        weights: Path | None = None,
        model: RetinaFace | None = None,
        device: str = "cpu",
    ) -> None:
        if max_side < PAD_MULTIPLE:
            raise ValueError(f"max_side must be >= {PAD_MULTIPLE}, got {max_side}")
        if not 0.0 < score_threshold < 1.0:
            raise ValueError(f"score_threshold must be in (0, 1), got {score_threshold}")
        if not 0.0 < nms_iou <= 1.0:
            raise ValueError(f"nms_iou must be in (0, 1], got {nms_iou}")
        if max_faces < 1 or min_face_px < 0 or threads < 0:
            raise ValueError("max_faces must be >= 1, min_face_px and threads >= 0")
        if not 0.0 <= min_relative_area <= 1.0:
            raise ValueError(f"min_relative_area must be in [0, 1], got {min_relative_area}")
        from .inference import channels_last
        from .retinaface import load_retinaface

        model = model.eval() if model is not None else load_retinaface(weights)
        self.device = device
        self.model = channels_last(model).to(device)  # its inputs are built channels-last (_pad)
        self.config = self.model.config
        self._mean = np.asarray(self.config.bgr_mean, dtype=np.float32)
        self._priors: dict[tuple[int, int], np.ndarray] = {}
        self._lock = threading.Lock()
        self.max_side = max_side
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        self.min_face_px = min_face_px
        self.max_faces = max_faces
        self.min_relative_area = min_relative_area
        self.threads = threads

    def __repr__(self) -> str:
        return (
            f"FaceDetector(max_side={self.max_side}, score_threshold={self.score_threshold}, "
            f"nms_iou={self.nms_iou}, min_face_px={self.min_face_px}, "
            f"max_faces={self.max_faces}, min_relative_area={self.min_relative_area}, "
            f"threads={self.threads}, device={self.device!r})"
        )

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        """Faces in an RGB uint8 ``(H, W, 3)`` frame, largest first.

        Raises:
            ValueError: on anything but a non-empty ``(H, W, 3)`` uint8 array.
        """
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[FaceBox]]:
        """Faces in several RGB uint8 frames, one forward pass; per frame, largest first.

        Frames of different sizes are padded to the largest (right and bottom).

        Raises:
            ValueError: on an empty sequence or any frame that :meth:`detect` would refuse.
        """
        if len(images) == 0:
            raise ValueError("detect_batch needs at least one image")
        for image in images:
            check_image(image)
        batch, scales = self._prepare(images)
        loc, conf, landmarks = self._forward(batch)
        return [
            self.postprocess(loc[i], conf[i], landmarks[i], batch.shape[1:3], scales[i], img.shape)
            for i, img in enumerate(images)
        ]

    def detect_region(
        self,
        image: np.ndarray,
        region: tuple[float, float, float, float],
        scale: float | None = None,
        max_fraction: float = 0.75,
    ) -> list[FaceBox] | None:
        """Faces in a region ``(x0, y0, x1, y1)`` of a frame (frame pixels); largest first.

        At the whole-frame scale (``scale`` ``None``, more than 2/3 of the scale
        :meth:`detect` uses, or a frame :meth:`detect` does not downscale), the region is
        grown outwards to the 32-pixel grid of the detector's copy of the frame and cut
        from that copy: the network sees the same pixels and anchors there as in a
        whole-frame pass, only with less context. At a smaller ``scale`` (detector pixels
        per frame pixel), the region is cut from the frame and downscaled by it: large
        faces need fewer pixels (their boxes move by a few percent). Frames at most
        ``max_side`` long keep their full resolution: the classifier sees their faces at
        nearly native pixels, where a box moved by a few pixels changes its scores most.
        Boxes come back in frame pixels.

        Returns:
            The faces, or ``None`` when the region's input would exceed ``max_fraction`` of
            the whole-frame input (not worth it: run :meth:`detect`) or lies outside the
            frame.

        Raises:
            ValueError: on an image :meth:`detect` would refuse.
        """
        check_image(image)
        h, w = image.shape[:2]
        full = min(1.0, self.max_side / max(h, w))
        budget = max_fraction * (w * full) * (h * full)
        if scale is None or full >= 1.0 or scale > full * SNAP_SCALE:
            sw, sh = self._copy_size(h, w)
            sx, sy = w / sw, h / sh
            m = PAD_MULTIPLE
            ax0 = max(0, math.floor(region[0] / sx / m) * m)
            ay0 = max(0, math.floor(region[1] / sy / m) * m)
            ax1 = min(sw, math.ceil(region[2] / sx / m) * m)
            ay1 = min(sh, math.ceil(region[3] / sy / m) * m)
            if ax1 <= ax0 or ay1 <= ay0 or (ax1 - ax0) * (ay1 - ay0) > budget:
                return None
            # that part of the whole-frame copy: the same pixels when the scale is a whole
            # number (1080p and 720p at 640: 3 and 2), within rounding otherwise
            fx0, fx1 = round(ax0 * sx), round(ax1 * sx)
            fy0, fy1 = round(ay0 * sy), round(ay1 * sy)
            cut = image[fy0:fy1, fx0:fx1]
            if full < 1:
                cut = cv2.resize(cut, (ax1 - ax0, ay1 - ay0), interpolation=cv2.INTER_AREA)
            offset = (float(ax0), float(ay0))
        else:
            x0, y0 = max(0, math.floor(region[0])), max(0, math.floor(region[1]))
            x1, y1 = min(w, math.ceil(region[2])), min(h, math.ceil(region[3]))
            rw, rh = max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))
            if x1 <= x0 or y1 <= y0 or rw * rh > budget:
                return None
            cut = cv2.resize(image[y0:y1, x0:x1], (rw, rh), interpolation=cv2.INTER_AREA)
            sx, sy = (x1 - x0) / rw, (y1 - y0) / rh
            offset = (x0 / sx, y0 / sy)
        batch = self._pad([cut])
        loc, conf, landmarks = self._forward(batch)
        return self.postprocess(
            loc[0], conf[0], landmarks[0], batch.shape[1:3], (sx, sy), image.shape, offset
        )

    # --- steps (public so that the conversion script can feed the ONNX reference) ----------

    def preprocess(
        self, images: Sequence[np.ndarray]
    ) -> tuple[np.ndarray, list[tuple[float, float]]]:
        """Resize, BGR minus mean, pad: ``(B, 3, Hp, Wp)`` float32 and per-image ``(sx, sy)``.

        ``sx, sy`` multiply detector-input coordinates back to frame coordinates.
        """
        batch, scales = self._prepare(images)
        return np.ascontiguousarray(batch.transpose(0, 3, 1, 2)), scales

    def scaled(self, image: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
        """The detector's copy of a frame (longest side at most ``max_side``) and ``(sx, sy)``."""
        h, w = image.shape[:2]
        nw, nh = self._copy_size(h, w)
        if (nw, nh) != (w, h):
            image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
        return image, (w / nw, h / nh)

    def _copy_size(self, h: int, w: int) -> tuple[int, int]:
        """``(width, height)`` of the detector's copy of an ``h x w`` frame (:meth:`scaled`;
        :meth:`detect_region` cuts its regions on the same grid)."""
        s = min(1.0, self.max_side / max(h, w))
        return (max(1, round(w * s)), max(1, round(h * s))) if s < 1.0 else (w, h)

    def _prepare(
        self, images: Sequence[np.ndarray]
    ) -> tuple[np.ndarray, list[tuple[float, float]]]:
        """:meth:`preprocess` in channels-last layout: ``(B, Hp, Wp, 3)``."""
        pairs = [self.scaled(image) for image in images]
        return self._pad([r for r, _ in pairs]), [sc for _, sc in pairs]

    def _pad(self, resized: Sequence[np.ndarray]) -> np.ndarray:
        """RGB uint8 copies -> ``(B, Hp, Wp, 3)`` BGR minus mean, zero (the mean) padded."""
        hp = _round_up(max(r.shape[0] for r in resized), PAD_MULTIPLE)
        wp = _round_up(max(r.shape[1] for r in resized), PAD_MULTIPLE)
        batch = np.zeros((len(resized), hp, wp, 3), dtype=np.float32)
        for i, r in enumerate(resized):
            np.subtract(r[..., ::-1], self._mean, out=batch[i, : r.shape[0], : r.shape[1]])
        return batch

    def _forward(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Raw outputs for a ``(B, Hp, Wp, 3)`` batch (fed channels-last, as the model is)."""
        import torch

        from .inference import torch_threads

        x = torch.from_numpy(batch).permute(0, 3, 1, 2).to(self.device)
        with self._lock, torch.inference_mode(), torch_threads(self.threads):
            loc, conf, landmarks = (t.cpu() for t in self.model(x))
        return loc.numpy(), conf.numpy(), landmarks.numpy()

    def priors(self, height: int, width: int) -> np.ndarray:
        """Cached :func:`~cre_models.retinaface.prior_boxes` for a padded input size."""
        from .retinaface import prior_boxes

        key = (height, width)
        priors = self._priors.get(key)
        if priors is None:
            priors = self._priors[key] = prior_boxes(height, width, self.config)
        return priors

    def postprocess(
        self,
        loc: np.ndarray,
        conf: np.ndarray,
        landmarks: np.ndarray,
        input_hw: tuple[int, ...],
        scale: tuple[float, float],
        frame_shape: tuple[int, ...],
        offset: tuple[float, float] = (0.0, 0.0),
    ) -> list[FaceBox]:
        """One image's raw outputs -> faces in frame pixels, largest first.

        Args:
            loc, conf, landmarks: ``(N, 4)``, ``(N, 2)``, ``(N, 10)`` network outputs.
            input_hw: the padded input's ``(Hp, Wp)``.
            scale: ``(sx, sy)`` from :meth:`preprocess`.
            frame_shape: the original frame's shape.
            offset: where the input's origin lies in the detector's copy of the frame
                (non-zero for a region, :meth:`detect_region`).
        """
        from .retinaface import decode_boxes, decode_landmarks, nms

        scores = conf[:, 1]
        idx = np.flatnonzero(scores >= self.score_threshold)
        if idx.size == 0:
            return []
        if idx.size > MAX_CANDIDATES:
            idx = idx[np.argsort(-scores[idx], kind="stable")[:MAX_CANDIDATES]]
        priors = self.priors(int(input_hw[0]), int(input_hw[1]))[idx]
        variances = self.config.variances
        boxes = decode_boxes(loc[idx], priors, variances)
        points = decode_landmarks(landmarks[idx], priors, variances)
        keep = nms(boxes, scores[idx], self.nms_iou)
        ox, oy = offset
        if ox or oy:
            boxes = boxes + np.asarray([ox, oy, ox, oy], dtype=boxes.dtype)
            points = points + np.asarray([ox, oy], dtype=points.dtype)
        sx, sy = scale
        fh, fw = frame_shape[:2]
        faces: list[FaceBox] = []
        for k in keep:
            x0, y0, x1, y1 = (float(v) for v in boxes[k] * (sx, sy, sx, sy))
            if max(x1 - x0, y1 - y0) < self.min_face_px:
                continue
            x0, y0, x1, y1 = max(0.0, x0), max(0.0, y0), min(float(fw), x1), min(float(fh), y1)
            if x1 <= x0 or y1 <= y0:
                continue
            pts = tuple((float(px) * sx, float(py) * sy) for px, py in points[k])
            faces.append(FaceBox(x0, y0, x1, y1, float(scores[idx[k]]), pts))
        faces.sort(key=lambda b: b.area, reverse=True)
        if faces:
            largest = faces[0].area
            faces = [b for b in faces if b.area >= self.min_relative_area * largest]
        return faces[: self.max_faces]


def eye_angle(landmarks: np.ndarray) -> float:
    """Angle in radians of the line from the left eye to the right eye (0 when level)."""
    (lx, ly), (rx, ry) = landmarks[0], landmarks[1]
    return math.atan2(ry - ly, rx - lx)


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


def crop_face_with_landmarks(
    image: np.ndarray, box: FaceBox, margin: float, size: int, align: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """Square crop around ``box`` (as :func:`crop_face`) and the landmarks in crop pixels.

    Args:
        image: RGB uint8 frame.
        box: the face; ``box.landmarks`` are needed for ``align=True``.
        margin: the square's side is ``max(w, h) * (1 + margin)``.
        size: output side in pixels.
        align: rotate about the square's centre so that the eyes are level.

    Returns:
        The ``(size, size, 3)`` uint8 crop, and the ``(5, 2)`` float landmarks in crop
        pixel coordinates (``None`` when the box has none).

    Raises:
        ValueError: bad image, margin or size; a square wholly outside the frame;
            ``align=True`` without landmarks.
    """
    image = check_image(image)
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    h, w = image.shape[:2]
    x0, y0, x1, y1 = square_crop_box(box, margin)
    cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if cx1 <= cx0 or cy1 <= cy0:
        raise ValueError(f"face box {box} lies outside the {w}x{h} frame")
    pts = box.landmarks_array()
    side = x1 - x0
    if align:
        if pts is None:
            raise ValueError("align=True needs a face box with landmarks")
        theta = eye_angle(pts)
        c, s = math.cos(theta), math.sin(theta)
        # frame -> crop in continuous coordinates: rotate by -theta about the square's centre
        a = np.array([[c, s], [-s, c]])
        centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
        t = centre - np.array([x0, y0]) - a @ centre
        # OpenCV samples at integer pixel centres: shift by half a pixel on both sides
        t_idx = t + a @ np.array([0.5, 0.5]) - 0.5
        m = np.hstack([a, t_idx[:, None]])
        crop = cv2.warpAffine(
            image,
            m,
            (side, side),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(0, 0, 0),
        )
        crop_pts = None if pts is None else pts @ a.T + t
    else:
        crop = image[cy0:cy1, cx0:cx1]
        if (cx0, cy0, cx1, cy1) != (x0, y0, x1, y1):
            crop = cv2.copyMakeBorder(
                crop, cy0 - y0, y1 - cy1, cx0 - x0, x1 - cx1, cv2.BORDER_CONSTANT, value=(0, 0, 0)
            )
        crop_pts = None if pts is None else pts - np.array([x0, y0], dtype=np.float64)
    out = resize_square(crop, size)
    if crop_pts is not None:
        crop_pts = crop_pts * (size / side)
    return out, crop_pts


def crop_face(
    image: np.ndarray, box: FaceBox, margin: float, size: int, align: bool = False
) -> np.ndarray:
    """Square crop around ``box`` with ``margin``, resized to ``size x size`` (uint8 RGB).

    ``align=True`` rotates the square about its centre so the eyes are level (needs
    ``box.landmarks``); see :func:`crop_face_with_landmarks`.
    """
    return crop_face_with_landmarks(image, box, margin, size, align)[0]
