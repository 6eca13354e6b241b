"""Dense face landmarks for self-blend masks (``cre train-videos --sbi-mask dense``).

SBI (Shiohara & Yamasaki, 2022) blends through the hull of 81 facial landmarks; the default
mask here is drawn from the detector's five points
(:func:`~cre_models.training.sbi.landmark_face_mask`). This module puts MediaPipe FaceMesh's
468 points on each cached crop once, so that the mask can follow the real face outline
(:func:`~cre_models.training.sbi.dense_face_mask`).

Training time only: the worker never loads it. The model is ``face_landmark.tflite``
(Apache-2.0, 1.24 MB) from the ``mediapipe==0.10.21`` wheel: ``--facemesh`` takes that file or
the wheel itself (``pip download mediapipe==0.10.21 --no-deps``; the member is read from the
zip, nothing of mediapipe is installed or imported). It runs on ``ai-edge-litert``'s
interpreter (the ``dense`` extra). Input: 192x192 RGB in [0, 1], cut from a square 1.5 times
the face box with the eyes levelled (MediaPipe's own crop rule); output: 468 (x, y, z) points
in that square and a face-presence logit.

Points are stored beside the crop cache, one ``.npz`` per cached file:
``<cache>/<spec key>/dense/<version>/<file>.npz`` with ``points`` ``(N, 468, 2)`` float32 in
crop pixels and ``scores`` ``(N,)`` (face presence, 0-1). A crop whose score is below
:data:`MIN_SCORE` gets NaN points, and its self-blend falls back to the five-point mask.
"""

from __future__ import annotations

import logging
import math
import zipfile
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from .cache import CachedVideo, CacheSpec

__all__ = [
    "FACEMESH_MEMBER",
    "MIN_SCORE",
    "N_POINTS",
    "FaceMesh",
    "read_model",
    "dense_file",
    "build_dense",
    "attach_dense",
]

logger = logging.getLogger(__name__)

FACEMESH_MEMBER = "mediapipe/modules/face_landmark/face_landmark.tflite"
"""Where the model lies inside the mediapipe wheel."""
N_POINTS = 468
INPUT_SIDE = 192
BOX_SCALE = 1.5
"""FaceMesh's input square, as a multiple of the face box side (MediaPipe's rule)."""
MIN_SCORE = 0.5
"""Smallest face-presence score whose points are kept."""


def read_model(path: str | Path) -> bytes:
    """The FaceMesh model's bytes, from the ``.tflite`` file or from a mediapipe wheel."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(
            f"{p}: no such file (give face_landmark.tflite or the mediapipe==0.10.21 wheel: "
            "pip download mediapipe==0.10.21 --no-deps)"
        )
    if zipfile.is_zipfile(p):
        with zipfile.ZipFile(p) as z:
            if FACEMESH_MEMBER not in z.namelist():
                raise ValueError(f"{p} holds no {FACEMESH_MEMBER} (mediapipe 1.x ships none)")
            return z.read(FACEMESH_MEMBER)
    return p.read_bytes()


class FaceMesh:
    """MediaPipe FaceMesh on face crops: 468 points in the crop's pixels and a score."""

    def __init__(self, model: bytes, threads: int = 1) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError(
                "dense self-blend masks need ai-edge-litert: pip install -e '.[dense]'"
            ) from e
        self._it = Interpreter(model_content=model, num_threads=threads)
        self._it.allocate_tensors()
        inp = self._it.get_input_details()[0]
        if tuple(inp["shape"]) != (1, INPUT_SIDE, INPUT_SIDE, 3):
            raise ValueError(f"not the FaceMesh model: input shape {inp['shape']}")
        self._in = inp["index"]
        outs = {int(np.prod(d["shape"])): d["index"] for d in self._it.get_output_details()}
        if N_POINTS * 3 not in outs or 1 not in outs:
            raise ValueError("not the FaceMesh model: outputs are not 468 x 3 points and a score")
        self._points, self._score = outs[N_POINTS * 3], outs[1]

    def __call__(
        self, crop: np.ndarray, landmarks: np.ndarray, margin: float
    ) -> tuple[np.ndarray, float]:
        """Points ``(468, 2)`` float32 in ``crop`` pixels and the face score for one crop.

        ``crop`` is uint8 RGB, cut with ``margin`` around the face box and centred on it (the
        crop cache's contract); ``landmarks`` are its five points (the eyes level the input).
        """
        m = input_transform(crop.shape[0], landmarks, margin)
        x = cv2.warpAffine(crop, m, (INPUT_SIDE, INPUT_SIDE), flags=cv2.INTER_LINEAR)
        self._it.set_tensor(self._in, (x.astype(np.float32) / 255.0)[None])
        self._it.invoke()
        pts = self._it.get_tensor(self._points).reshape(N_POINTS, 3)[:, :2]
        logit = float(self._it.get_tensor(self._score).reshape(()))
        inv = cv2.invertAffineTransform(m)
        back = pts.astype(np.float64) @ inv[:, :2].T + inv[:, 2]
        return back.astype(np.float32), 1.0 / (1.0 + math.exp(-min(max(logit, -60.0), 60.0)))


def input_transform(side: int, landmarks: np.ndarray, margin: float) -> np.ndarray:
    """The 2x3 affine map from a crop of ``side`` pixels to FaceMesh's input square.

    The face box is the crop's central ``side / (1 + margin)``; FaceMesh sees a square
    :data:`BOX_SCALE` times that, rotated about the crop's centre so the eyes are level
    (no rotation when the eyes are not known)."""
    lm = np.asarray(landmarks, np.float64).reshape(-1, 2)
    angle = 0.0
    if len(lm) >= 2 and np.all(np.isfinite(lm[:2])) and np.any(lm[:2]):
        (lx, ly), (rx, ry) = lm[0], lm[1]
        angle = math.degrees(math.atan2(ry - ly, rx - lx))
    box = side / (1.0 + margin)
    scale = INPUT_SIDE / (BOX_SCALE * box)
    c = (side / 2.0, side / 2.0)
    m = np.asarray(cv2.getRotationMatrix2D(c, angle, scale), np.float64)
    m[:, 2] += INPUT_SIDE / 2.0 - side / 2.0
    return m


def dense_file(cache_dir: Path, spec: CacheSpec, video: CachedVideo) -> Path:
    """Where one cached file's dense points are stored."""
    name = video.clip.file.replace("/", "__") + ".npz"
    return cache_dir / spec.key() / "dense" / video.version / name


def build_dense(
    videos: Sequence[CachedVideo],
    cache_dir: Path,
    spec: CacheSpec,
    mesh: FaceMesh,
    progress: bool = True,
) -> tuple[int, int]:
    """Put FaceMesh's points on every crop of ``videos`` not yet done; return (kept, crops)."""
    from tqdm import tqdm

    from .data import save_npz_atomic

    kept = total = 0
    for video in tqdm(videos, desc="dense landmarks", unit="video", disable=not progress):
        out = dense_file(cache_dir, spec, video)
        if out.exists():
            continue
        points = np.full((video.n, N_POINTS, 2), np.nan, np.float32)
        scores = np.zeros(video.n, np.float32)
        for k in range(video.n):
            pts, score = mesh(video.crops[k], video.landmarks[k], spec.margin)
            scores[k] = score
            if score >= MIN_SCORE:
                points[k] = pts
        kept += int((scores >= MIN_SCORE).sum())
        total += video.n
        out.parent.mkdir(parents=True, exist_ok=True)
        save_npz_atomic(out, points=points, scores=scores)
    if total:
        logger.info(
            "dense landmarks: %d of %d new crops kept (score >= %.2f)", kept, total, MIN_SCORE
        )
    return kept, total


def attach_dense(
    videos: Sequence[CachedVideo], cache_dir: Path, spec: CacheSpec
) -> list[CachedVideo]:
    """``videos`` with their stored dense points (raises when a file was not built)."""
    import dataclasses

    out = []
    for video in videos:
        f = dense_file(cache_dir, spec, video)
        if not f.exists():
            raise FileNotFoundError(f"{f}: dense landmarks not built (run build_dense first)")
        with np.load(f) as z:
            points = z["points"]
        if points.shape != (video.n, N_POINTS, 2):
            raise ValueError(f"{f}: points {points.shape} do not match {video.n} crops")
        out.append(dataclasses.replace(video, dense=points))
    return out
