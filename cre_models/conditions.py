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

import numpy as np

from .augmentation import SEVERITIES, compress

__all__ = ["LADDER", "apply_condition", "CompressionSampler"]

logger = logging.getLogger(__name__)

LADDER = ("ladder-1", "ladder-2", "ladder-3", "ladder-4", "ladder-5")
"""The real-codec ladder (DeeperForensics CRF 30-40), mildest first."""


def apply_condition(image: np.ndarray, condition: str, rng: np.random.Generator) -> np.ndarray:
    """Compress a uint8 RGB image under a named condition (see the module doc)."""
    if condition == "none":
        return image
    if condition in SEVERITIES:
        return compress(image, condition, rng)[0]
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
