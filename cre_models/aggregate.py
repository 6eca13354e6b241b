"""Frame scores -> one score, by a named strategy.

Every strategy takes scores of frames that had a face and returns one probability of
"manipulated". The worker applies it to each person track (one face per frame, see
:mod:`cre_models.tracks`) and takes the highest track score as the video's; the
evaluation applies it to a video's frame scores (the max over each frame's faces), which
is the same thing for a video of one person. Frames without a face are not scores and are
never passed in. This lives in ``cre_models`` so that the evaluation compares exactly the
strategies the worker runs.

Strategies:

* ``mean``: plain mean (SBI, DeepfakeBench).
* ``max``: the most suspicious frame.
* ``topk_mean``: mean of the ``k`` highest scores, ``k = ceil(fraction * n)`` (at least 1).
* ``confident``: the DFDC winner's (selimsef) rule, verbatim: with ``n`` scores and
  ``f`` of them above 0.8, if ``f > 11`` and ``f > n // 2.5`` the mean of those ``f``;
  else if more than 90 % of the scores are below 0.2, the mean of those; else the plain
  mean. (The original uses floor division ``n // 2.5``; so do we.)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

__all__ = [
    "STRATEGIES",
    "aggregate",
    "mean_score",
    "max_score",
    "topk_mean_score",
    "confident_score",
    "check_strategy",
]

CONFIDENT_FAKE = 0.8
"""``confident``: a frame above this counts as a confident fake."""
CONFIDENT_REAL = 0.2
"""``confident``: a frame below this counts as a confident real."""
CONFIDENT_MIN_FAKES = 11
"""``confident``: more than this many confident fakes are needed (with 32 frames: 12)."""


def _as_array(scores: Sequence[float] | np.ndarray) -> np.ndarray:
    arr = np.asarray(scores, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise ValueError("no frame scores to aggregate")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0) or np.any(arr > 1):
        raise ValueError("frame scores must be finite probabilities in [0, 1]")
    return arr


def mean_score(scores: Sequence[float] | np.ndarray) -> float:
    """Plain mean of the frame scores."""
    return float(_as_array(scores).mean())


def max_score(scores: Sequence[float] | np.ndarray) -> float:
    """Highest frame score."""
    return float(_as_array(scores).max())


def topk_mean_score(scores: Sequence[float] | np.ndarray, fraction: float = 0.25) -> float:
    """Mean of the ``ceil(fraction * n)`` highest frame scores (at least one).

    Args:
        scores: frame scores in ``[0, 1]``.
        fraction: share of the frames to keep, in ``(0, 1]``.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"topk fraction must be in (0, 1], got {fraction}")
    arr = _as_array(scores)
    k = max(1, math.ceil(fraction * arr.size - 1e-9))
    return float(np.sort(arr)[-k:].mean())


def confident_subset(scores: Sequence[float] | np.ndarray) -> np.ndarray:
    """Which scores the "confident strategy" averages (a boolean mask): the confident fakes
    when there are enough, else the confident reals when nearly all are, else all."""
    arr = _as_array(scores)
    n = arr.size
    fakes = arr > CONFIDENT_FAKE
    n_fakes = int(np.count_nonzero(fakes))
    if n_fakes > n // 2.5 and n_fakes > CONFIDENT_MIN_FAKES:
        return fakes
    reals = arr < CONFIDENT_REAL
    if np.count_nonzero(reals) > 0.9 * n:
        return reals
    return np.ones(n, dtype=bool)


def confident_score(scores: Sequence[float] | np.ndarray) -> float:
    """The DFDC winner's "confident strategy" (see the module docstring)."""
    arr = _as_array(scores)
    return float(arr[confident_subset(arr)].mean())


STRATEGIES: dict[str, str] = {
    "mean": "mean of the frame scores",
    "max": "highest frame score",
    "topk_mean": "mean of the top CRE_AGGREGATION_TOPK share of frame scores",
    "confident": "DFDC winner: mean of the confident frames when there are enough, else the mean",
}
"""Names accepted by :func:`aggregate`, with a one-line description each."""


def check_strategy(name: str) -> str:
    """Return ``name`` if it is a known strategy, else raise ``ValueError`` listing them."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown aggregation {name!r}; choose one of {', '.join(STRATEGIES)}")
    return name


def aggregate(
    scores: Sequence[float] | np.ndarray, strategy: str = "mean", *, topk: float = 0.25
) -> float:
    """Video score from frame scores with the named ``strategy``.

    Args:
        scores: per-frame scores (frames with a face only), each in ``[0, 1]``.
        strategy: one of :data:`STRATEGIES`.
        topk: the fraction kept by ``topk_mean``.

    Raises:
        ValueError: unknown strategy, no scores, or a score outside ``[0, 1]``.
    """
    check_strategy(strategy)
    fns: dict[str, Callable[[np.ndarray], float]] = {
        "mean": mean_score,
        "max": max_score,
        "topk_mean": lambda a: topk_mean_score(a, topk),
        "confident": confident_score,
    }
    return fns[strategy](_as_array(scores))
