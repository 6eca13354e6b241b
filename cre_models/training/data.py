"""Face crops of labelled images and videos for ``cre train`` and ``cre eval --data``.

Layouts understood by :func:`discover_media` (first match wins, per root folder):

* ``real/`` and/or ``fake/`` sub-folders (any depth below them): labels from the folder.
* FaceForensics++: ``original_sequences/`` is real, ``manipulated_sequences/`` is fake.
* anything else: every image and video under the folder is real (the real-only recipe,
  where fakes are synthesised by :mod:`cre_models.training.sbi`).

Videos are read by the worker's sampler (:func:`cre_models.sampling.sample_frames`: frames
by timestamp, upright), faces found by its detector (:class:`cre_models.faces.FaceDetector`,
RetinaFace) and cut by :class:`cre_models.transforms.FaceTransform` with the given margin.
Images that are already face crops (like the DFDC dev crops) are used whole:
``faces="auto"`` treats an image whose longest side is at most ``crop_max_side`` (320 px)
and that is (nearly) square as a face crop, without running the detector; video frames are
always searched for faces (re-detecting inside a tight crop would re-frame it with the
margin, or miss the face).

Extracted crops are cached as ``.npz`` files outside the repository (``$CRE_CACHE`` or
``~/.cache/cre``), keyed by the file's path, size, modification time and the extraction
parameters (detector settings included), so a second run skips detection.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import CreError
from ..faces import FaceDetector
from ..images import read_image, resize_square
from ..transforms import FaceTransform

__all__ = [
    "IMAGE_EXTS",
    "VIDEO_EXTS",
    "MediaItem",
    "FaceSample",
    "discover_media",
    "media_kind",
    "media_under",
    "extract_faces",
    "load_face_samples",
    "default_cache_dir",
    "is_grayscale",
    "group_of",
    "save_npz_atomic",
]

logger = logging.getLogger(__name__)

IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
VIDEO_EXTS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"})
FaceMode = Literal["auto", "detect", "crops"]
CACHE_VERSION = 4


@dataclass(frozen=True)
class MediaItem:
    """One image or video with its label (0 real, 1 fake)."""

    path: Path
    label: int
    kind: Literal["image", "video"]


@dataclass
class FaceSample:
    """One face crop (uint8 RGB, square) and where it came from.

    ``group`` identifies the video (or the image) the face belongs to, for per-video
    metrics; ``index`` is the frame (or face) number inside it.
    """

    image: np.ndarray
    label: int
    source: str
    group: str
    index: int


def default_cache_dir() -> Path:
    """``$CRE_CACHE`` or ``~/.cache/cre``: never inside the repository."""
    env = os.environ.get("CRE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "cre"


def media_kind(path: Path) -> Literal["image", "video"] | None:
    """``image`` or ``video`` by the file's extension; ``None`` for anything else."""
    ext = path.suffix.lower()
    if ext in IMAGE_EXTS:
        return "image"
    if ext in VIDEO_EXTS:
        return "video"
    return None


def media_under(root: Path, label: int) -> list[MediaItem]:
    """Every image and video file below ``root`` (sorted), all with ``label``."""
    items = []
    for p in sorted(root.rglob("*")):
        kind = media_kind(p)
        if kind is not None and p.is_file():
            items.append(MediaItem(p, label, kind))
    return items


def discover_media(root: str | Path) -> list[MediaItem]:
    """Images and videos under ``root`` with labels from the folder layout (see module doc)."""
    root = Path(root)
    if root.is_file():
        kind = media_kind(root)
        if kind is None:
            raise ValueError(
                f"{root}: not an image or video ({', '.join(sorted(IMAGE_EXTS | VIDEO_EXTS))})"
            )
        return [MediaItem(root, 0, kind)]
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such file or folder")
    real, fake = root / "real", root / "fake"
    if real.is_dir() or fake.is_dir():
        return media_under(real, 0) + media_under(fake, 1)
    orig, manip = root / "original_sequences", root / "manipulated_sequences"
    if orig.is_dir() or manip.is_dir():
        return media_under(orig, 0) + media_under(manip, 1)
    return media_under(root, 0)


def is_grayscale(image: np.ndarray, tol: int = 3) -> bool:
    """True when all three channels are (nearly) equal: a grey photo stored as RGB."""
    i = image.astype(np.int16)
    return bool(
        np.abs(i[..., 0] - i[..., 1]).max() <= tol and np.abs(i[..., 1] - i[..., 2]).max() <= tol
    )


def group_of(path: Path, kind: str) -> str:
    """The video a face belongs to: the video file, or for DFDC-style crop names
    ``<videoid>_<...>_<k>.jpg`` the video id prefix; otherwise the image itself."""
    if kind == "video":
        return str(path)
    stem = path.stem
    if "_" in stem:
        return str(path.parent / stem.split("_")[0])
    return str(path)


def extract_faces(
    frame: np.ndarray,
    detector: FaceDetector,
    transform: FaceTransform,
    faces: FaceMode = "auto",
    crop_max_side: int = 320,
) -> list[np.ndarray]:
    """Square face crops from one RGB frame (see the module doc for ``faces``)."""
    h, w = frame.shape[:2]
    looks_like_crop = max(h, w) <= crop_max_side and abs(h - w) <= 0.1 * max(h, w)
    if faces == "crops" or (faces == "auto" and looks_like_crop):
        return [_centre_square(frame, transform.size)]
    return [transform.crop(frame, b) for b in detector.detect(frame)]


def _centre_square(image: np.ndarray, size: int) -> np.ndarray:
    h, w = image.shape[:2]
    s = min(h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    return resize_square(image[y0 : y0 + s, x0 : x0 + s], size)


def _cache_key(item: MediaItem, params: Sequence[object]) -> str:
    st = item.path.stat()
    raw = f"{CACHE_VERSION}|{item.path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{params!r}"
    return hashlib.sha1(raw.encode()).hexdigest()


def load_face_samples(
    roots: Iterable[str | Path],
    *,
    margin: float,
    size: int,
    frames_per_video: int = 32,
    faces: FaceMode = "auto",
    drop_gray: bool = True,
    cache_dir: str | Path | None = None,
    detector: FaceDetector | None = None,
    progress: bool = False,
) -> list[FaceSample]:
    """Face crops from every image and video under ``roots``, with labels and groups.

    Args:
        roots: folders (or single files), each with one of the layouts in the module doc.
        margin: crop margin around a detected face box (the worker's).
        size: side of the stored crops (training resizes from here).
        frames_per_video: frames sampled from each video (by timestamp, as the worker does).
        faces: ``auto``, ``detect`` (always run the detector) or ``crops`` (images are crops).
        drop_gray: skip grey photos (the worker sees colour video).
        cache_dir: where extracted crops are cached (``None``: :func:`default_cache_dir`).
        detector: a face detector (default: the worker's default settings).
        progress: show a tqdm bar.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache = cache / "faces"
    cache.mkdir(parents=True, exist_ok=True)
    # the detector and its operating point are part of the cache key: crops cached with
    # another detector (cre 0.x's cascade) or threshold are not reused
    det = detector if detector is not None else FaceDetector()
    items = [it for r in roots for it in discover_media(r)]
    params = (margin, size, frames_per_video, faces, drop_gray, repr(det))
    out: list[FaceSample] = []
    iterator: Iterable[MediaItem] = items
    if progress:
        from tqdm import tqdm

        iterator = tqdm(items, desc="faces", unit="file")
    for item in iterator:
        key = cache / f"{_cache_key(item, params)}.npz"
        cached = _read_cached(key)
        if cached is not None:
            crops, indices = cached
        else:
            crops, indices = _extract_item(
                item, det, FaceTransform(size, margin), frames_per_video, faces, drop_gray
            )
            arr = np.stack(crops) if crops else np.zeros((0, size, size, 3), np.uint8)
            save_npz_atomic(key, crops=arr, indices=np.asarray(indices, np.int64))
        group = group_of(item.path, item.kind)
        for crop, idx in zip(crops, indices, strict=True):
            out.append(FaceSample(crop, item.label, str(item.path), group, idx))
    n_fake = sum(s.label for s in out)
    logger.info(
        "%d face crops (%d real, %d fake) from %d files",
        len(out),
        len(out) - n_fake,
        n_fake,
        len(items),
    )
    return out


def save_npz_atomic(path: Path, **arrays: Any) -> None:
    """``np.savez`` to a temporary file of this process beside ``path``, then an atomic
    rename: a reader (another ``cre eval`` or ``cre train`` sharing the cache) sees the old
    file, no file, or the whole new one, never a half-written one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem + ".", suffix=".tmp.npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_cached(key: Path) -> tuple[list[np.ndarray], list[int]] | None:
    """A cache file's crops and frame indices; ``None`` when it is missing or unreadable (a
    file cut short by a crash, or written by an older, non-atomic version): the caller
    extracts the faces again and rewrites it."""
    if not key.is_file():
        return None
    try:
        with np.load(key) as z:
            crops = list(z["crops"]) if z["crops"].size else []
            return crops, [int(i) for i in z["indices"]]
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as e:
        logger.warning("face cache %s unreadable (%s): extracting again", key.name, e)
        return None


def _video_frames(path: Path, n: int) -> list[np.ndarray]:
    """``n`` frames of a video, sampled exactly as the worker samples them."""
    from ..sampling import sample_frames
    from ..video import VideoLimits, probe_video

    limits = VideoLimits()
    return [f.image for f in sample_frames(path, probe_video(path, limits), n, limits)]


def _extract_item(
    item: MediaItem,
    detector: FaceDetector,
    transform: FaceTransform,
    frames_per_video: int,
    faces: FaceMode,
    drop_gray: bool,
) -> tuple[list[np.ndarray], list[int]]:
    try:
        frames = (
            [read_image(item.path)]
            if item.kind == "image"
            else _video_frames(item.path, frames_per_video)
        )
    except (ValueError, OSError, CreError) as e:  # an unreadable file is reported and skipped
        logger.warning("skipping %s: %s", item.path, e)
        return [], []
    crops: list[np.ndarray] = []
    indices: list[int] = []
    mode: FaceMode = "detect" if item.kind == "video" and faces == "auto" else faces
    for fi, frame in enumerate(frames):
        if drop_gray and is_grayscale(frame):
            continue
        for crop in extract_faces(frame, detector, transform, mode):
            crops.append(crop)
            indices.append(fi)
    if not crops:
        logger.info("no face in %s", item.path)
    return crops, indices
