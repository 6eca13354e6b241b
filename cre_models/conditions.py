"""Named compression conditions shared by training and evaluation.

A *condition* is a string:

* a severity of the seed's artefact simulator: ``none``, ``light``, ``medium``, ``heavy``
  (:mod:`cre_models.augmentation`);
* a real-codec profile of :mod:`cre_models.codecs` (``social``, ``ladder-1`` ..
  ``ladder-5``, ``c23``, ``c40``...), applied to one image as a one-frame clip.

:func:`apply_condition` applies one to a uint8 RGB image with an explicit generator;
:class:`CompressionSampler` draws the condition of each training image.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

__all__ = [
    "SEVERITIES",
    "LADDER",
    "apply_condition",
    "CompressionSampler",
    "simulator_available",
]

logger = logging.getLogger(__name__)

SEVERITIES = ("none", "light", "medium", "heavy")
LADDER = ("ladder-1", "ladder-2", "ladder-3", "ladder-4", "ladder-5")


def simulator_available() -> bool:
    """Whether :mod:`cre_models.augmentation` (the seed's artefact simulator) is importable."""
    try:
        from . import augmentation  # noqa: F401
    except ImportError:
        return False
    return True


def _simulate(image: np.ndarray, severity: str, rng: np.random.Generator) -> np.ndarray:
    try:
        from .augmentation import compress
    except ImportError:  # the simulator is a sibling module; keep training usable without it
        return _jpeg_only(image, severity, rng)
    return compress(image, severity, rng)[0]


_JPEG_Q = {"light": (70, 90), "medium": (40, 70), "heavy": (15, 40)}


def _jpeg_only(image: np.ndarray, severity: str, rng: np.random.Generator) -> np.ndarray:
    """Stand-in used only when the simulator module is absent: JPEG at a severity's quality."""
    lo, hi = _JPEG_Q[severity]
    q = int(rng.integers(lo, hi + 1))
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, q]
    )
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if decoded is None:
        raise RuntimeError("JPEG decoding failed")
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)


def apply_condition(image: np.ndarray, condition: str, rng: np.random.Generator) -> np.ndarray:
    """Compress a uint8 RGB image under a named condition (see the module doc)."""
    if condition == "none":
        return image
    if condition in SEVERITIES:
        return _simulate(image, condition, rng)
    from .codecs import get_profile

    profile = get_profile(condition)
    return profile.sample(rng).apply(image)


@dataclass
class CompressionSampler:
    """Draws a condition per training image: a simulator severity, or a real codec.

    Attributes:
        severities: simulator severities to draw from, uniformly.
        codec_prob: probability of a real-codec profile instead of a severity.
        codec_profiles: profiles drawn from, uniformly, when a codec is chosen.
    """

    severities: Sequence[str] = SEVERITIES
    codec_prob: float = 0.3
    codec_profiles: Sequence[str] = field(default_factory=lambda: ("social", *LADDER))

    def __post_init__(self) -> None:
        bad = [s for s in self.severities if s not in SEVERITIES]
        if bad or not self.severities:
            raise ValueError(
                f"severities must be a non-empty subset of {SEVERITIES},"
                f" got {list(self.severities)}"
            )
        if not 0.0 <= self.codec_prob <= 1.0:
            raise ValueError(f"codec_prob must be in [0, 1], got {self.codec_prob}")
        if self.codec_prob > 0:
            from .codecs import get_profile

            for p in self.codec_profiles:
                get_profile(p)

    def sample(self, rng: np.random.Generator) -> str:
        if self.codec_prob > 0 and self.codec_profiles and rng.random() < self.codec_prob:
            return str(self.codec_profiles[int(rng.integers(len(self.codec_profiles)))])
        return str(self.severities[int(rng.integers(len(self.severities)))])

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return apply_condition(image, self.sample(rng), rng)
