"""Face crops -> batched model inference -> per-face and per-frame scores.

A :class:`Scorer` holds the model and the face detector. It is built once per worker
process by :func:`get_scorer` (a module-level cache keyed by the settings that shape it),
never once per job.

Scoring rules:

* a frame's score is the **max over its faces** (a video is fake if any face is fake);
* frames without a face get no score (``None``) and are counted, not guessed;
* the video score comes from person tracks, not from frame scores: faces are linked across
  frames and scored per person (:mod:`cre_models.tracks`, called by :mod:`worker.jobs`);
  a video with no face in any sampled frame has no score (status ``no_face``).

Fork safety: once a process has run a multi-threaded forward pass, a forked child that
runs torch hangs in the OpenMP pool. The default RQ worker never loads the model in its
parent; as a second line of defence, a child forked from a process that has run the model
drops to one torch thread (:func:`_after_fork_in_child`), which avoids the pool.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from cre_models.aggregate import check_strategy
from cre_models.evaluation.metrics import Platt
from cre_models.faces import FaceBox, FaceDetector
from cre_models.inference import (
    check_device,
    check_precision,
    default_batch_size,
    optimise_for_inference,
    torch_threads,
)
from cre_models.roi import RoiDetector, RoiStats
from cre_models.sampling import timed
from cre_models.transforms import FaceTransform
from worker.errors import ModelUnavailableError
from worker.settings import Settings

if TYPE_CHECKING:
    import torch

    from cre_models.model import CompressionResilientNetwork
    from cre_models.weights import CheckpointConfig

__all__ = [
    "FrameScore",
    "ScoredFrames",
    "Scorer",
    "get_scorer",
    "clear_scorer_cache",
]

logger = logging.getLogger(__name__)


class FrameLike(Protocol):
    """What :meth:`Scorer.score_frames` needs of a sampled frame.

    :class:`cre_models.sampling.SampledFrame` is one.
    """

    index: int
    time_s: float
    image: np.ndarray


@dataclass
class FrameScore:
    """Faces and scores of one sampled frame."""

    index: int
    time_s: float
    boxes: list[FaceBox] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)

    @property
    def score(self) -> float | None:
        """Max over the frame's faces; ``None`` without a face."""
        return max(self.scores) if self.scores else None


@dataclass
class ScoredFrames:
    """Everything :meth:`Scorer.score_frames` measured about one video."""

    frames: list[FrameScore]
    decode_s: float = 0.0
    detect_s: float = 0.0
    infer_s: float = 0.0
    roi: RoiStats | None = None
    """Whole-frame and region detector passes (``None``: whole frames in batches)."""
    batches: int = 0
    """Model batches run."""
    batches_all_threads: int = 0
    """Of those, batches given every torch thread (the decoder idle, see ``score_frames``)."""

    @property
    def frame_scores(self) -> list[float]:
        """Scores of the frames with a face, in frame order."""
        return [s for f in self.frames if (s := f.score) is not None]

    @property
    def n_faces(self) -> int:
        return sum(len(f.boxes) for f in self.frames)


_FORWARD_RAN = False
"""Set once this process has run a forward pass (see the module docstring)."""


def _after_fork_in_child() -> None:
    if _FORWARD_RAN:
        import torch

        torch.set_num_threads(1)
        logger.warning(
            "forked from a process that ran the model: "
            "using one torch thread to avoid the OpenMP deadlock"
        )


os.register_at_fork(after_in_child=_after_fork_in_child)


def device_problem(settings: Settings) -> str | None:
    """Why ``CRE_DEVICE`` or ``CRE_DETECT_DEVICE`` cannot run in this process, or ``None``.

    Asks ``torch.cuda.is_available()`` only when a CUDA device is set."""
    for name, device in (
        ("CRE_DEVICE", settings.device),
        ("CRE_DETECT_DEVICE", settings.detect_device),
    ):
        try:
            check_device(device)
        except ValueError as e:
            return f"{name}={device}, but {e}"
    return None


class Scorer:
    """The model, its input contract and the face detector: everything a job scores with.

    Args:
        settings: operational settings; model-dependent values left unset come from the
            checkpoint's ``config.json``.
        model, config: an already-built model and its config (tests); loaded from
            ``settings.weights`` when omitted.
    """

    def __init__(
        self,
        settings: Settings,
        model: CompressionResilientNetwork | None = None,
        config: CheckpointConfig | None = None,
    ) -> None:
        import torch

        if settings.torch_threads > 0:
            torch.set_num_threads(settings.torch_threads)
        problem = device_problem(settings)
        if problem is not None:
            raise ModelUnavailableError(problem)
        if model is None or config is None:
            from cre_models.weights import WeightsError, create_model, resolve_weights

            try:
                weights = resolve_weights(settings.weights)
            except WeightsError as e:
                raise ModelUnavailableError(f"CRE_WEIGHTS={settings.weights!r}: {e}") from e
            t0 = time.perf_counter()
            try:
                if isinstance(weights, str):
                    # an untrained registered network: seed it, so every worker process (and
                    # every run) builds the same random weights and gives the same scores
                    logger.warning(
                        "CRE_WEIGHTS=%s is an untrained network: scores mean nothing", weights
                    )
                    with torch.random.fork_rng(devices=[]):
                        torch.manual_seed(0)
                        model, config = create_model(weights, device=settings.device)
                else:
                    model, config = create_model(weights, device=settings.device)
            except (WeightsError, OSError, ValueError) as e:
                raise ModelUnavailableError(
                    f"cannot load CRE_WEIGHTS={settings.weights!r}: {e}"
                ) from e
            logger.info(
                "loaded %s v%s in %.2f s", config.name, config.version, time.perf_counter() - t0
            )
        self.device = torch.device(settings.device)
        if "cuda" in (self.device.type, settings.detect_device):  # process-wide flags
            torch.backends.cudnn.allow_tf32 = settings.cuda_tf32
            torch.backends.cuda.matmul.allow_tf32 = settings.cuda_tf32
        self.precision = check_precision(settings.precision, self.device.type)
        logger.info("face model arithmetic: %s (CRE_PRECISION)", self.precision)
        self.model = model
        self.config = config
        self.transform = FaceTransform.from_spec(config.input)
        self.batch_size = settings.batch_size or default_batch_size(
            self.device.type, self.transform.size
        )
        self.frames_per_video = settings.frames_per_video or config.input.frames_per_video
        self.threshold = (
            config.decision.threshold if settings.threshold is None else settings.threshold
        )
        try:
            self.aggregation = check_strategy(settings.aggregation or config.decision.aggregation)
        except ValueError as e:
            raise ModelUnavailableError(f"aggregation: {e}") from e
        self.topk = settings.aggregation_topk
        cal = config.decision.calibration
        self.calibration = None if cal is None else Platt(**cal)
        self.detector = FaceDetector(
            max_side=settings.detect_max_side,
            score_threshold=settings.detect_score_threshold,
            min_face_px=settings.min_face_px,
            max_faces=settings.max_faces_per_frame,
            threads=settings.detect_threads,
            device=settings.detect_device,
        )
        self.detect_batch_size = settings.detect_batch
        self.detect_full_every = settings.detect_full_every
        self.region_face_px = settings.detect_region_face_px

    @property
    def model(self) -> Any:
        """The network (eval mode); inference runs a fused copy of it (:attr:`fast_model`)."""
        return self._model

    @model.setter
    def model(self, model: Any) -> None:
        import torch

        self._model = model.eval() if isinstance(model, torch.nn.Module) else model
        # built here, once: a forking worker's jobs inherit it (built on one thread, so the
        # parent's OpenMP pool is not started)
        self.fast_model: Any = (
            optimise_for_inference(self._model)
            if isinstance(self._model, torch.nn.Module) and self.device.type == "cpu"
            else self._model
        )

    @property
    def model_name(self) -> str:
        return self.config.name

    @property
    def model_version(self) -> str:
        return self.config.version

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        """Face boxes (with landmarks) in an upright RGB frame, largest first."""
        return self.detector.detect(image)

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[FaceBox]]:
        """:meth:`detect` for several frames in one detector forward pass."""
        return self.detector.detect_batch(images)

    def crop(self, image: np.ndarray, boxes: Sequence[FaceBox]) -> list[np.ndarray]:
        """Square crops around ``boxes``, as the checkpoint's ``config.json`` says."""
        return [self.transform.crop(image, b) for b in boxes]

    def predict(self, crops: Sequence[np.ndarray], threads: int = 0) -> np.ndarray:
        """Probability of "manipulated" for each crop, in batches of ``batch_size``.

        ``threads``: torch threads for this call (0: the process's setting).
        """
        global _FORWARD_RAN
        import torch

        if not crops:
            return np.zeros(0, dtype=np.float64)
        out: list[torch.Tensor] = []
        bf16 = self.precision == "bfloat16"
        with (
            torch.inference_mode(),
            torch_threads(threads),
            torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16),
        ):
            for i in range(0, len(crops), self.batch_size):
                x = self.transform.to_tensor(crops[i : i + self.batch_size]).to(self.device)
                x = x.contiguous(memory_format=torch.channels_last)
                p = self.fast_model.predict_proba(x)
                if self.config.input.flip_average:  # the mirror image too (config.json)
                    p = (p + self.fast_model.predict_proba(x.flip(-1))) / 2
                out.append(p.float().cpu())
        _FORWARD_RAN = True
        return torch.cat(out).numpy().astype(np.float64)

    def warm_up(self) -> float:
        """One forward pass at every batch size up to ``batch_size`` (mid-grey crops); the
        seconds it took. On a GPU the first pass at a new input shape sets up its kernels
        (2.4 s in the first clip of the first-sight table in docs/BENCHMARKS.md); a warm worker
        pays that here instead of in its first job. Never call it in a process that forks
        work horses afterwards (see the module docstring)."""
        t = time.perf_counter()
        size = self.transform.size
        crop = np.full((size, size, 3), 128, dtype=np.uint8)
        for n in range(1, self.batch_size + 1):
            self.predict([crop] * n)
        return time.perf_counter() - t

    def score_frames(
        self,
        frames: Iterable[FrameLike],
        on_frame: Callable[[int], None] | None = None,
        decoder_idle: Callable[[], bool] | None = None,
    ) -> ScoredFrames:
        """Detect, crop and score the faces of every frame.

        Faces are found by a :class:`~cre_models.roi.RoiDetector` (whole frames every
        ``detect_full_every`` frames, regions around the known faces in between), one
        frame at a time; with ``detect_full_every`` 1 (or a detector without regions),
        whole frames ``detect_batch`` at a time (one detector forward pass). Only the crops
        are kept, and they are scored as soon as ``batch_size`` are waiting, so memory does
        not grow with the number of frames. The model leaves a core to the decoder thread
        (one torch thread fewer than the process's, at least one): on two cores, a second
        torch thread next to a busy core stalls in OpenMP's barriers (docs/BENCHMARKS.md).
        When ``decoder_idle()`` says the decoder cannot be working during a batch (its
        look-ahead buffer is full, or the video is decoded: :class:`worker.prefetch.Lookahead`),
        that batch gets every thread of the process.

        Args:
            frames: sampled frames, upright RGB, in time order (one video).
            on_frame: called with the number of frames done after each frame.
            decoder_idle: asked before each batch; ``None``: the decoder may always be busy.
        """
        import torch

        result = ScoredFrames(frames=[])
        pending: list[tuple[FrameScore, np.ndarray]] = []
        roi = self.roi_detector()
        per_pass = 1 if roi is not None else self.detect_batch_size

        every = torch.get_num_threads()
        beside_decoder = max(1, every - 1)

        def flush() -> None:
            t = time.perf_counter()
            idle = decoder_idle is not None and decoder_idle()
            threads = every if idle else beside_decoder
            result.batches += 1
            result.batches_all_threads += int(idle and every > beside_decoder)
            probs = self.predict([c for _, c in pending], threads)
            for (fs, _), p in zip(pending, probs, strict=True):
                fs.scores.append(float(p))
            result.infer_s += time.perf_counter() - t
            pending.clear()

        def detect_chunk(chunk: list[FrameLike]) -> None:
            t1 = time.perf_counter()
            images = [f.image for f in chunk]
            if roi is not None:
                all_boxes = [roi.detect(images[0])]
            elif len(chunk) == 1:
                all_boxes = [self.detect(images[0])]
            else:
                all_boxes = self.detect_batch(images)
            for frame, boxes in zip(chunk, all_boxes, strict=True):
                fs = FrameScore(index=frame.index, time_s=frame.time_s, boxes=boxes)
                pending.extend((fs, c) for c in self.crop(frame.image, boxes))
                result.frames.append(fs)
            result.detect_s += time.perf_counter() - t1
            if len(pending) >= self.batch_size:
                flush()
            if on_frame is not None:
                on_frame(len(result.frames))

        def add_decode_s(seconds: float) -> None:
            result.decode_s += seconds

        chunk: list[FrameLike] = []
        for frame in timed(frames, add_decode_s):
            chunk.append(frame)
            if len(chunk) >= per_pass:
                detect_chunk(chunk)
                chunk = []
        if chunk:
            detect_chunk(chunk)
        if pending:
            flush()
        if roi is not None:
            result.roi = roi.stats
            logger.debug("face detection: %s", roi.stats)
        return result

    def roi_detector(self) -> RoiDetector | None:
        """A fresh region-following detector for one video; ``None`` for whole frames."""
        if self.detect_full_every <= 1 or not hasattr(self.detector, "detect_region"):
            return None
        return RoiDetector(
            self.detector, full_every=self.detect_full_every, face_px=self.region_face_px
        )

    def calibrate(self, score: float) -> float:
        """The checkpoint's calibration (Platt scaling) of a video or track score."""
        if self.calibration is None:
            return score
        return round(self.calibration(score), 6)

    def label(self, score: float) -> str:
        """``fake`` at or above the threshold, else ``real``."""
        return "fake" if score >= self.threshold else "real"


_CACHE: dict[tuple[Any, ...], Scorer] = {}
_CACHE_LOCK = threading.Lock()


def _cache_key(settings: Settings) -> tuple[Any, ...]:
    return (
        settings.weights,
        settings.device,
        settings.cuda_tf32,
        settings.batch_size,
        settings.torch_threads,
        settings.frames_per_video,
        settings.aggregation,
        settings.aggregation_topk,
        settings.threshold,
        settings.detect_max_side,
        settings.detect_score_threshold,
        settings.detect_threads,
        settings.detect_device,
        settings.detect_batch,
        settings.detect_full_every,
        settings.detect_region_face_px,
        settings.min_face_px,
        settings.max_faces_per_frame,
        settings.precision,
    )


def get_scorer(settings: Settings) -> Scorer:
    """The process's :class:`Scorer` for these settings, built on first use."""
    key = _cache_key(settings)
    with _CACHE_LOCK:
        scorer = _CACHE.get(key)
        if scorer is None:
            scorer = _CACHE[key] = Scorer(settings)
        return scorer


def clear_scorer_cache() -> None:
    """Forget every cached scorer (tests)."""
    with _CACHE_LOCK:
        _CACHE.clear()
