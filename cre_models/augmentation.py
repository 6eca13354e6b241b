"""Simulated compression: four severities of the six artefacts, and the seed's pipeline.

The artefacts themselves (pure functions and their parameter records) are in
:mod:`cre_models.artefacts`; this module says which of them each severity draws, and
:class:`PreprocessingPipeline` turns a face into a model input with them.

Severities (the seed's definitions; ``p`` is the probability that a step is applied).
Steps run in this order: colour shift, blur, noise, downscale-upscale, block
quantisation, JPEG, i.e. capture-side damage first and the platform's compression last.

============== =========== ============== ============== ============== ============= ==============
severity       colour      blur           noise          downscale      block (extra) JPEG
============== =========== ============== ============== ============== ============= ==============
none           -           -              -              -              -             -
light          p=.2, +-8   p=.5, 3x3      -              -              -             70-90
medium         p=.3, +-12  p=1, 3x3/5x5   -              p=1, 0.7-0.9   p=.1, 1-2     50-70
heavy          p=.3, +-20  p=1, 5x5/7x7   p=1, 5-15      p=1, 0.5-0.7   p=.25, 2-4    30-50
============== =========== ============== ============== ============== ============= ==============

Colour shift and block quantisation are optional extras (not in the seed's severity
definitions); "minimal blur" for ``light`` is read as a 3x3 kernel half of the time.

Parameters are drawn first and applied second: :meth:`PreprocessingPipeline.sample`
returns an :class:`Applied` record (log it with ``to_dict()``) and
:meth:`PreprocessingPipeline.apply` applies one, so ``apply(image, sample(rng))`` is what
``preprocess_uint8(image, rng=rng)`` does. :class:`PreprocessingPipeline` returns float32
tensors ``(3, S, S)`` / ``(B, 3, S, S)``, RGB, in ``[-1, 1]`` (``x / 127.5 - 1``,
:func:`cre_models.transforms.to_tensor`), the model's input contract. The same seed gives
bit-identical output. Bad input raises ``ValueError``.

Multi-process data loading: do not rely on one pipeline-owned generator (forked workers
would share its state); pass ``rng=np.random.default_rng([seed, epoch, index])`` per call
instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np

from .artefacts import (
    ArtefactParams,
    AugmentParams,
    BlockParams,
    BlurParams,
    ColorShiftParams,
    JpegParams,
    NoiseParams,
    ResizeParams,
)
from .images import check_image, resize_square
from .transforms import to_tensor

if TYPE_CHECKING:
    import torch

__all__ = [
    "SEVERITIES",
    "Step",
    "SEVERITY_STEPS",
    "Applied",
    "apply_params",
    "sample_severity",
    "compress",
    "PreprocessingPipeline",
]

SEVERITIES = ("none", "light", "medium", "heavy")
"""Severity levels, mildest first."""

Seed: TypeAlias = np.random.Generator | int
"""Where a call's randomness comes from: a generator, or an integer seed of a new one."""


def _as_rng(rng: Seed) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, int | np.integer) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise ValueError(f"expected a numpy.random.Generator or an integer seed, got {rng!r}")


# --------------------------------------------------------------------------------------
# Severities


@dataclass(frozen=True)
class Step:
    """One step of a severity: an artefact, the probability it is applied, its ranges."""

    artefact: type[ArtefactParams]
    probability: float = 1.0
    ranges: Mapping[str, Any] = field(default_factory=dict)

    def sample(self, rng: np.random.Generator) -> ArtefactParams | None:
        # Always draw the coin, so later steps see the same stream whatever happens here.
        applied = rng.random() < self.probability
        # Each subclass has its own ``sample(rng, **ranges)`` signature.
        return self.artefact.sample(rng, **self.ranges) if applied else None  # type: ignore[attr-defined]


# The module docstring's table, transposed: a row per artefact, in the order they are
# applied; the argument of its ``sample()`` that takes the range; then, for each of
# SEVERITIES, ``(probability, range)`` or None where that severity leaves it out.
_SEVERITY_TABLE: tuple[tuple[Any, ...], ...] = (
    (ColorShiftParams, "max_shift", None, (0.2, 8), (0.3, 12), (0.3, 20)),
    (BlurParams, "kernels", None, (0.5, (3,)), (1.0, (3, 5)), (1.0, (5, 7))),
    (NoiseParams, "sigma", None, None, None, (1.0, (5.0, 15.0))),
    (ResizeParams, "factor", None, None, (1.0, (0.7, 0.9)), (1.0, (0.5, 0.7))),
    (BlockParams, "scale", None, None, (0.1, (1.0, 2.0)), (0.25, (2.0, 4.0))),
    (JpegParams, "quality", None, (1.0, (70, 90)), (1.0, (50, 70)), (1.0, (30, 50))),
)


def _steps(severity: str) -> tuple[Step, ...]:
    column = SEVERITIES.index(severity)
    steps = []
    for artefact, argument, *cells in _SEVERITY_TABLE:
        if cells[column] is not None:
            probability, ranges = cells[column]
            steps.append(Step(artefact, probability, {argument: ranges}))
    return tuple(steps)


SEVERITY_STEPS: dict[str, tuple[Step, ...]] = {s: _steps(s) for s in SEVERITIES}
"""What each severity applies, in order (see the module docstring's table)."""


def _check_severity(severity: str) -> str:
    if severity not in SEVERITY_STEPS:
        raise ValueError(f"unknown severity {severity!r}; expected one of {SEVERITIES}")
    return severity


def sample_severity(severity: str, rng: Seed) -> list[ArtefactParams]:
    """Draw the artefacts (and their parameters) one image gets at ``severity``."""
    gen = _as_rng(rng)
    drawn = (step.sample(gen) for step in SEVERITY_STEPS[_check_severity(severity)])
    return [p for p in drawn if p is not None]


def apply_params(img: np.ndarray, params: Sequence[ArtefactParams]) -> np.ndarray:
    """Apply recorded parameters in order (replays a logged degradation exactly)."""
    out = check_image(img)
    for p in params:
        out = p.apply(out)
    return out.copy() if out is img else out


def compress(img: np.ndarray, severity: str, rng: Seed) -> tuple[np.ndarray, list[ArtefactParams]]:
    """Degrade one image at ``severity`` (``none``, ``light``, ``medium``, ``heavy``).

    Returns:
        ``(uint8 RGB image of the input's shape, the parameters applied, in order)``.
    """
    img = check_image(img)
    params = sample_severity(severity, rng)
    return apply_params(img, params), params


@dataclass(frozen=True)
class Applied:
    """What a pipeline did to one image: severity, augmentation and artefacts, in order."""

    severity: str
    augment: AugmentParams | None = None
    artefacts: tuple[Any, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "augment": None if self.augment is None else self.augment.to_dict(),
            "artefacts": [p.to_dict() for p in self.artefacts],
        }


class PreprocessingPipeline:
    """The seed's preprocessing: resize, optional augmentation, simulated compression, tensor.

    Per image: resize to ``image_size`` x ``image_size`` (area when shrinking, bilinear when
    enlarging; non-square inputs are stretched, face crops are square already), then, if
    ``augment``, flip and colour jitter (:class:`AugmentParams`), then, if
    ``apply_compression``, the artefacts of one severity (a fixed one, or one drawn per
    image when ``severity="random"``), or with probability ``codec_probability`` a real
    H.264/H.265 one-frame round trip drawn from ``codec_profile``.

    Args:
        image_size: output side in pixels (>= 32).
        augment: apply training augmentation.
        severity: ``none``, ``light``, ``medium``, ``heavy`` or ``random``.
        severity_weights: probabilities of the four severities for ``random`` (default equal).
        seed: seed of the pipeline's own generator (used when a call passes no ``rng``).
        rng: the pipeline's own generator (instead of ``seed``).
        codec_probability: probability of the real-codec path instead of the simulation.
        codec_profile: name of a profile in :data:`cre_models.codecs.PROFILES`.

    Example:
        >>> pipeline = PreprocessingPipeline(image_size=224, augment=True, seed=0)
        >>> pipeline.preprocess(image, apply_compression=True).shape  # (3, 224, 224)
    """

    def __init__(
        self,
        image_size: int = 224,
        augment: bool = False,
        severity: str = "random",
        *,
        severity_weights: Sequence[float] | None = None,
        seed: int | None = None,
        rng: np.random.Generator | None = None,
        codec_probability: float = 0.0,
        codec_profile: str = "social",
    ) -> None:
        if not isinstance(image_size, int | np.integer) or image_size < 32:
            raise ValueError(f"image_size must be an integer >= 32, got {image_size!r}")
        if severity != "random":
            _check_severity(severity)
        weights = np.full(len(SEVERITIES), 1.0 / len(SEVERITIES))
        if severity_weights is not None:
            weights = np.asarray(severity_weights, dtype=np.float64)
            if weights.shape != (len(SEVERITIES),) or (weights < 0).any() or weights.sum() <= 0:
                raise ValueError(
                    f"severity_weights must be 4 non-negative numbers, got {severity_weights!r}"
                )
            weights = weights / weights.sum()
        if not 0.0 <= codec_probability <= 1.0:
            raise ValueError(f"codec_probability must be in [0, 1], got {codec_probability}")
        self.codec = None
        if codec_probability > 0:
            from .codecs import get_profile

            self.codec = get_profile(codec_profile)
        self.image_size = int(image_size)
        self.augment = bool(augment)
        self.severity = severity
        self.severity_weights = weights
        self.codec_probability = float(codec_probability)
        self.rng = rng if rng is not None else np.random.default_rng(seed)

    def __repr__(self) -> str:
        return (
            f"PreprocessingPipeline(image_size={self.image_size}, augment={self.augment}, "
            f"severity={self.severity!r}, codec_probability={self.codec_probability})"
        )

    def _rng(self, rng: Seed | None) -> np.random.Generator:
        return self.rng if rng is None else _as_rng(rng)

    def sample(self, rng: Seed | None = None, *, compression: bool = True) -> Applied:
        """Draw everything one image will get (augmentation, severity, artefacts)."""
        gen = self._rng(rng)
        aug = AugmentParams.sample(gen) if self.augment else None
        if not compression:
            return Applied("none", aug, ())
        if self.codec is not None and gen.random() < self.codec_probability:
            return Applied("codec", aug, (self.codec.sample(gen),))
        severity = self.severity
        if severity == "random":
            severity = SEVERITIES[int(gen.choice(len(SEVERITIES), p=self.severity_weights))]
        return Applied(severity, aug, tuple(sample_severity(severity, gen)))

    def resize(self, image: Any) -> np.ndarray:
        """Resize to ``image_size`` square (checks the input)."""
        return resize_square(check_image(image), self.image_size)

    def apply(self, image: Any, applied: Applied) -> np.ndarray:
        """Resize, then apply a drawn record (augmentation, artefacts): ``uint8`` RGB SxSx3.

        ``apply(image, sample(rng))`` is :meth:`preprocess_uint8`; keep the record to log
        or replay what an image got.
        """
        img = self.resize(image)
        if applied.augment is not None:
            img = applied.augment.apply(img)
        return apply_params(img, applied.artefacts)

    def preprocess_uint8(
        self, image: Any, apply_compression: bool = True, rng: Seed | None = None
    ) -> np.ndarray:
        """Everything :meth:`preprocess` does except the tensor conversion (``uint8`` RGB SxSx3)."""
        img = check_image(image)  # before anything is drawn
        return self.apply(img, self.sample(rng, compression=apply_compression))

    def preprocess(
        self, image: Any, apply_compression: bool = True, rng: Seed | None = None
    ) -> torch.Tensor:
        """One image -> float32 tensor ``(3, S, S)``, RGB in ``[-1, 1]``.

        Args:
            image: ``uint8`` RGB ``HxWx3`` array or PIL image.
            apply_compression: apply the simulated (or real) compression.
            rng: generator or seed for this call (default: the pipeline's own generator).
        """
        return to_tensor(self.preprocess_uint8(image, apply_compression, rng))[0]

    def preprocess_batch(
        self,
        images: Sequence[Any] | np.ndarray,
        apply_compression: bool = True,
        rng: Seed | None = None,
    ) -> torch.Tensor:
        """Images (a list or a ``BxHxWx3`` array) -> float32 ``(B, 3, S, S)`` in ``[-1, 1]``.

        Images are processed in order with one generator, so a seed fixes the whole batch.
        """
        if isinstance(images, np.ndarray) and images.ndim != 4:
            raise ValueError(f"expected a BxHxWx3 array, got shape {images.shape}")
        if len(images) == 0:
            raise ValueError("no images given")
        gen = self._rng(rng)
        outs = []
        for i, image in enumerate(images):
            try:
                outs.append(self.preprocess_uint8(image, apply_compression, gen))
            except ValueError as exc:
                raise ValueError(f"image {i}: {exc}") from exc
        return to_tensor(outs)

    def degrade(self, image: Any, rng: Seed | None = None) -> np.ndarray:
        """Compression only, at the image's own size: ``uint8`` RGB in, ``uint8`` RGB out.

        For training code that does its own resizing, augmentation and tensor conversion;
        ``apply_params(image, sample(rng).artefacts)`` is the same with the record kept.
        """
        img = check_image(image)
        return apply_params(img, self.sample(rng).artefacts)
