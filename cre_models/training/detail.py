"""Detail matching: a training crop's fine-detail level made independent of its label
(``cre train-videos --match-detail P``).

FaceForensics++ fakes are softer than the real clips they come from (their faces are
generated and resampled): on the cached 224-px crops of the training clips as delivered the
median :func:`detail_level` is 9.6 for reals and 7.1 for fakes (validation: 7.4 and 5.4). A
detector trained on them reads softness as "fake": the shipped checkpoint's raw probability on
the validation reals rises from 0.37 to 0.67 when their crops are smoothed (bilateral filter)
and falls to 0.14 when they are sharpened (``scripts/detail_probe.py``, docs/EVALUATION.md,
fifteenth session), and smooth-skinned real people (make-up, soft light, beauty filters, low
quality) and every re-encode drift towards "fake".

:func:`match_detail` moves a crop's detail level to a target by unsharp masking (up) or a
Gaussian blur (down). The training loop draws the target log-uniformly from the training
crops' own range (:func:`detail_range`, both labels pooled), independently of the label, on a
share of the crops of every kind (real, self-blend source, labelled fake), so the detail level
alone no longer tells the labels apart and the model has to find what the manipulation left.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from .cache import CachedVideo

__all__ = [
    "detail_level",
    "detail_range",
    "match_detail",
    "draw_detail_target",
    "DETAIL_PERCENTILES",
]

DETAIL_PERCENTILES = (10.0, 90.0)
"""The target range: these percentiles of the training crops' detail levels."""

SHARPEN_SIGMA = 1.0
"""Gaussian sigma of the unsharp mask's blur (at any crop size: the detail is per pixel)."""

MAX_AMOUNT = 3.0
"""Largest unsharp-mask amount (out = img + amount * (img - blur(img)))."""

BLUR_SIGMAS = (0.4, 0.6, 0.8, 1.0, 1.3, 1.7, 2.2, 2.8)
"""Gaussian sigmas tried to lower the detail; the one landing nearest the target wins."""


def detail_level(img: np.ndarray) -> float:
    """Fine detail of a crop: the standard deviation of the Laplacian of its grey central half
    (the inner face, away from hair and background), 0-255 scale."""
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
    h, w = grey.shape
    centre = grey[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4]
    return float(cv2.Laplacian(centre, cv2.CV_32F, ksize=1).std())


def detail_range(
    videos: Sequence[CachedVideo], rng: np.random.Generator, n: int = 512
) -> tuple[float, float]:
    """:data:`DETAIL_PERCENTILES` of :func:`detail_level` over ``n`` crops drawn uniformly
    from all of ``videos`` (every label), rounded to 0.01.

    Raises:
        ValueError: no crops.
    """
    pool = [(v, k) for v in videos for k in range(v.n)]
    if not pool:
        raise ValueError("no crops to measure the detail range on")
    picks = rng.choice(len(pool), size=min(n, len(pool)), replace=False)
    levels = [detail_level(pool[int(i)][0].crops[pool[int(i)][1]]) for i in picks]
    lo, hi = np.percentile(levels, DETAIL_PERCENTILES)
    return round(float(lo), 2), round(float(max(hi, lo)), 2)


def draw_detail_target(rng: np.random.Generator, span: tuple[float, float]) -> float:
    """A target level, log-uniform in ``span``."""
    lo, hi = span
    if lo <= 0 or hi < lo:
        raise ValueError(f"a detail range must be positive and ordered, got {span}")
    return math.exp(float(rng.uniform(math.log(lo), math.log(hi))))


def _unsharp(img: np.ndarray, amount: float) -> np.ndarray:
    f = img.astype(np.float32)
    out = f + amount * (f - cv2.GaussianBlur(f, (0, 0), SHARPEN_SIGMA))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def match_detail(img: np.ndarray, target: float) -> np.ndarray:
    """``img`` (uint8 RGB) with its :func:`detail_level` moved towards ``target``.

    Up: an unsharp mask whose amount is fitted in two steps (a first guess from the ratio, then
    a secant correction), capped at :data:`MAX_AMOUNT`. Down: the Gaussian blur of
    :data:`BLUR_SIGMAS` landing nearest the target. A flat crop (no detail) comes back as it is.
    """
    level = detail_level(img)
    if level <= 1e-6 or target <= 0:
        return img
    if target >= level:
        amount = min(target / level - 1.0, MAX_AMOUNT)
        out = _unsharp(img, amount)
        reached = detail_level(out)
        if reached > level + 1e-6 and abs(reached - target) > 0.05 * target:
            amount = min(max(amount * (target - level) / (reached - level), 0.0), MAX_AMOUNT)
            out = _unsharp(img, amount)
        return out
    best, best_gap = img, abs(level - target)
    for sigma in BLUR_SIGMAS:
        cand = cv2.GaussianBlur(img, (0, 0), sigma)
        gap = abs(detail_level(cand) - target)
        if gap < best_gap:
            best, best_gap = cand, gap
    return best
