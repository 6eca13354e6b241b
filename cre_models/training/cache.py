"""Face crops of labelled videos, cached on disk so training epochs never decode again.

One ``.npz`` per (video, version): ``crops`` ``(N, S, S, 3)`` uint8 RGB, ``landmarks``
``(N, 5, 2)`` float32 in crop pixels, ``times`` ``(N,)`` seconds, ``det_scores`` ``(N,)``.
The crops come from the worker's own path: frames sampled by
:func:`cre_models.sampling.sample_frames`, faces found by :class:`cre_models.faces.FaceDetector`,
cut by :class:`cre_models.transforms.FaceTransform` with the checkpoint's margin and
size. Only the largest face of a frame is kept: in a FaceForensics++ fake it is the
manipulated one, and a second face would carry the wrong label.

Versions: ``orig`` is the file as delivered; ``deg`` is a re-encoded copy drawn per video
(H.264 at a random CRF, often downscaled first: the ``TRAIN_DEGRADE_*`` constants), so
training sees the real codec's artefacts at the frame level, not only simulated ones.
``deg2``, ``deg3``, ... are further copies, each drawn with its own seed
(:func:`degraded_versions`), so one clip is seen at several sizes and qualities.

A clip may also be a still photo (``cre train-videos --extra-reals``): its largest face is
cached as a one-crop "video" (:func:`cache_image`), as delivered only: a still has no codec
ladder to re-encode, and the training loop's compression simulator degrades it instead.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .splits import Clip

if TYPE_CHECKING:
    from ..faces import FaceDetector
    from ..transforms import FaceTransform

__all__ = [
    "CacheSpec",
    "CachedVideo",
    "degraded_copy",
    "deg_path",
    "degraded_versions",
    "cache_video",
    "cache_image",
    "is_still",
    "build_cache",
    "load_cached",
    "TRAIN_DEGRADE_CRF",
    "TRAIN_DEGRADE_SCALES",
]

logger = logging.getLogger(__name__)

CACHE_FORMAT = 1

TRAIN_DEGRADE_CRF = (23, 40)
"""CRF range of a training video's ``deg`` copy (H.264, drawn uniformly per video)."""
TRAIN_DEGRADE_SCALES = (1.0, 0.75, 0.5)
"""Longest-side factors the ``deg`` copy is downscaled by (one drawn per video)."""
TRAIN_DEGRADE_PRESET = "veryfast"
"""x264 preset of the ``deg`` copies: they are training data, not a test condition."""


@dataclass(frozen=True)
class CacheSpec:
    """Everything that decides the crops of a video (part of the cache key)."""

    size: int = 128
    """Side of the crops (the model's input size)."""
    margin: float = 0.25
    """Crop margin around the face box (:class:`~cre_models.transforms.FaceTransform`)."""
    align: bool = False
    """Eye-levelled crops."""
    frames: int = 32
    """Frames sampled per video."""
    detect_max_side: int = 640
    """The detector's copy of a frame is at most this long (the worker's setting)."""
    detect_score_threshold: float = 0.8
    """Smallest face score kept."""
    min_face_px: int = 40
    """Smallest face side, in frame pixels."""
    detect_full_every: int = 8
    """Whole-frame detection every this many sampled frames, regions between (the worker's
    ``CRE_DETECT_FULL_EVERY``; :class:`~cre_models.roi.RoiDetector`); 1 = every frame whole."""
    detect_region_face_px: int = 80
    """A region's scale: its smallest face about this many pixels (``CRE_DETECT_REGION_FACE_PX``;
    0 = the whole-frame copy's scale)."""

    def key(self) -> str:
        raw = json.dumps({"format": CACHE_FORMAT, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(raw.encode()).hexdigest()[:12]

    def transform(self) -> FaceTransform:
        """The crop contract of these crops (mean and std: the defaults, unused by crops)."""
        from ..transforms import FaceTransform

        return FaceTransform(self.size, self.margin, self.align)


@dataclass(frozen=True)
class CachedVideo:
    """A cached video's crops (see the module docstring)."""

    clip: Clip
    version: str
    crops: np.ndarray
    landmarks: np.ndarray
    times: np.ndarray
    dense: np.ndarray | None = None
    """``(N, 468, 2)`` FaceMesh points in crop pixels, NaN where none was kept
    (:mod:`~cre_models.training.facemesh`; only with ``--sbi-mask dense``)."""

    @property
    def n(self) -> int:
        return len(self.crops)


def cache_video(path: Path, spec: CacheSpec, detector: FaceDetector, out: Path) -> int:
    """Sample, detect and crop one video into ``out`` (``.npz``); return the crops kept."""
    from ..roi import RoiDetector
    from ..sampling import sample_frames
    from ..video import VideoLimits, probe_video

    limits = VideoLimits()
    info = probe_video(path, limits)
    transform = spec.transform()
    crops, lms, times, scores = [], [], [], []
    roi = RoiDetector(
        detector, full_every=spec.detect_full_every, face_px=spec.detect_region_face_px
    )
    for frame in sample_frames(path, info, spec.frames, limits):
        boxes = roi.detect(frame.image)  # the worker's detection path, frame after frame
        if not boxes:
            continue
        crop, lm = transform.crop_with_landmarks(frame.image, boxes[0])
        crops.append(crop)
        lms.append(np.zeros((5, 2), np.float32) if lm is None else np.asarray(lm, np.float32))
        times.append(frame.time_s)
        scores.append(boxes[0].score)
    _save(out, spec, crops, lms, times, scores)
    return len(crops)


def is_still(clip: Clip) -> bool:
    """Whether a clip is a still photo (cached as delivered only, see the module doc)."""
    from .data import media_kind

    return media_kind(Path(clip.file)) == "image"


def cache_image(path: Path, spec: CacheSpec, detector: FaceDetector, out: Path) -> int:
    """Detect and crop the largest face of a photo into ``out`` (``.npz``); return 0 or 1.

    A grey photo keeps no crop (the worker sees colour video), nor does a photo without a
    face the detector accepts; both are logged, never an error.
    """
    from ..images import read_image
    from .data import is_grayscale

    image = read_image(path)
    boxes = [] if is_grayscale(image) else detector.detect(image)
    crops, lms, scores = [], [], []
    if boxes:
        crop, lm = spec.transform().crop_with_landmarks(image, boxes[0])
        crops.append(crop)
        lms.append(np.zeros((5, 2), np.float32) if lm is None else np.asarray(lm, np.float32))
        scores.append(boxes[0].score)
    else:
        logger.info("%s: no colour face kept", path)
    _save(out, spec, crops, lms, [0.0] * len(crops), scores)
    return len(crops)


def _save(
    out: Path,
    spec: CacheSpec,
    crops: list[np.ndarray],
    lms: list[np.ndarray],
    times: list[float],
    scores: list[float],
) -> None:
    from .data import save_npz_atomic

    out.parent.mkdir(parents=True, exist_ok=True)
    # atomic, through a temporary file of this process: an interrupted build never leaves a
    # half file behind, and two builds sharing the cache never write into one file
    save_npz_atomic(
        out,
        crops=np.stack(crops) if crops else np.zeros((0, spec.size, spec.size, 3), np.uint8),
        landmarks=np.stack(lms) if lms else np.zeros((0, 5, 2), np.float32),
        times=np.asarray(times, np.float64),
        det_scores=np.asarray(scores, np.float32),
    )


def degraded_copy(src: Path, dst: Path, seed: int) -> dict[str, object]:
    """Write the ``deg`` training copy of ``src`` (see the ``TRAIN_DEGRADE_*`` constants)."""
    from ..codecs import CodecProfile
    from ..degrade import degrade_video, longest_side

    rng = np.random.default_rng(seed)
    scale = float(rng.choice(TRAIN_DEGRADE_SCALES))
    prof = CodecProfile(
        "libx264",
        TRAIN_DEGRADE_CRF,
        TRAIN_DEGRADE_PRESET,
        None if scale == 1.0 else int(longest_side(src) * scale),
    )
    dst.parent.mkdir(parents=True, exist_ok=True)
    params = degrade_video(src, dst, prof, rng, keep_audio=False, threads=1)
    return params.to_dict()


def degraded_versions(copies: int) -> tuple[str, ...]:
    """Names of ``copies`` re-encoded versions: ``deg``, ``deg2``, ``deg3``, ..."""
    if copies < 0:
        raise ValueError(f"copies must be >= 0, not {copies}")
    return tuple("deg" if i == 1 else f"deg{i}" for i in range(1, copies + 1))


def deg_path(cache_dir: Path, clip: Clip, version: str = "deg") -> Path:
    """Where the re-encoded training copy ``version`` of ``clip`` is kept."""
    return cache_dir / "videos" / (clip.file.replace("/", "__") + f".{version}.mp4")


def _check_version(version: str) -> None:
    """A re-encoded version's name must be one :func:`degraded_versions` makes."""
    tail = version[3:]
    copies = int(tail) if tail.isdigit() else 0 if tail else 1
    if not version.startswith("deg") or version not in degraded_versions(copies):
        raise ValueError(f"unknown version {version!r}: orig, deg, deg2, deg3, ...")


def _deg_seed(seed: int, clip: Clip, version: str) -> int:
    """The draw of one re-encoded copy (``deg`` keeps the seed of the first caches)."""
    tag = f"{seed}:{clip.file}" if version == "deg" else f"{seed}:{clip.file}:{version}"
    return int(hashlib.sha256(tag.encode()).hexdigest()[:8], 16)


def build_cache(
    clips: Sequence[Clip],
    data_root: Path,
    cache_dir: Path,
    spec: CacheSpec,
    versions: Sequence[str] = ("orig",),
    seed: int = 0,
) -> dict[str, int]:
    """Cache every clip's crops (skipping what is cached); return crops per cached file.

    Still photos (:func:`is_still`) are cached as delivered only, whatever ``versions``."""
    from tqdm import tqdm

    from ..faces import FaceDetector

    detector = FaceDetector(
        max_side=spec.detect_max_side,
        score_threshold=spec.detect_score_threshold,
        min_face_px=spec.min_face_px,
    )
    root = cache_dir / spec.key()
    root.mkdir(parents=True, exist_ok=True)
    (root / "spec.json").write_text(json.dumps(asdict(spec), indent=1))
    done: dict[str, int] = {}
    # every "orig" first; a still photo has no re-encoded versions
    jobs = [(c, v) for v in versions for c in clips if v == "orig" or not is_still(c)]
    for clip, version in tqdm(jobs, desc="crop cache", unit="video"):
        src = data_root / clip.file
        out = root / version / (clip.file.replace("/", "__") + ".npz")
        if out.exists():
            done[str(out)] = -1
            continue
        t0 = time.perf_counter()
        path = src
        if version != "orig":
            _check_version(version)
            path = deg_path(cache_dir, clip, version)
            if not path.exists():
                params = degraded_copy(src, path, _deg_seed(seed, clip, version))
                logger.info("%s: degraded copy %s %s", clip.file, version, params)
        try:
            n = (cache_image if is_still(clip) else cache_video)(path, spec, detector, out)
        except Exception as e:  # a clip that cannot be read is reported, not silently skipped
            logger.error("%s (%s): %s", clip.file, version, e)
            raise
        done[str(out)] = n
        logger.info("%s %s: %d crops in %.1f s", clip.file, version, n, time.perf_counter() - t0)
    return done


def load_cached(
    clips: Sequence[Clip], cache_dir: Path, spec: CacheSpec, versions: Sequence[str] = ("orig",)
) -> list[CachedVideo]:
    """The cached crops of ``clips`` (raises when one is missing: build the cache first).

    Still photos load as delivered only (:func:`build_cache`)."""
    root = cache_dir / spec.key()
    out = []
    for clip in clips:
        for version in ("orig",) if is_still(clip) else versions:
            f = root / version / (clip.file.replace("/", "__") + ".npz")
            if not f.exists():
                raise FileNotFoundError(f"{f} is not cached: run the cache build first")
            with np.load(f) as z:
                out.append(CachedVideo(clip, version, z["crops"], z["landmarks"], z["times"]))
    return out
