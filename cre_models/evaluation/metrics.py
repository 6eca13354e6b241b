"""Video-level metrics, threshold choice and calibration.

AUC, ROC, log-loss, accuracy and balanced accuracy are scikit-learn's (the reference
implementations; an optional dependency, ``pip install 'cre[train]'``, imported on first
use); expected calibration error and Platt scaling are a few lines here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "auc",
    "auc_interval",
    "accuracy",
    "balanced_accuracy",
    "logloss",
    "expected_calibration_error",
    "reliability_bins",
    "choose_threshold",
    "Platt",
    "fit_platt",
    "fit_logistic",
]

EPS = 1e-6

Labels = Sequence[int] | np.ndarray
"""0 (real) / 1 (fake) per item: a list or an array."""
Scores = Sequence[float] | np.ndarray
"""A score or probability per item: a list or an array."""


def _arrays(labels: Labels, scores: Scores) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels, np.int64)
    s = np.asarray(scores, np.float64)
    if y.shape != s.shape:
        raise ValueError(f"{len(y)} labels but {len(s)} scores")
    return y, s


def require_train_extra(command: str) -> None:
    """Exit with the install line when scikit-learn (the ``train`` extra, which training and
    evaluation need and scoring never imports) is missing."""
    import importlib.util

    if importlib.util.find_spec("sklearn") is None:
        raise SystemExit(f"{command} needs scikit-learn: pip install -e '.[train]'")


def auc(labels: Labels, scores: Scores) -> float:
    """ROC AUC; NaN when only one class is present."""
    from sklearn.metrics import roc_auc_score

    y, s = _arrays(labels, scores)
    if len(set(y.tolist())) < 2:
        return float("nan")
    return float(roc_auc_score(y, s))


def auc_interval(
    labels: Labels, scores: Scores, level: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the ROC AUC; NaNs when only one class is present.

    Reals and fakes are resampled separately (their counts stay fixed, as in the split), and
    each resample's AUC is the share of (fake, real) pairs in order, ties counting half.
    With a few dozen videos the interval is wide: it says how far a split's AUC can be
    trusted, not how good the model is elsewhere.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), not {level}")
    y, s = _arrays(labels, scores)
    pos, neg = s[y == 1], s[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    chunk = max(1, 20_000_000 // (len(pos) * len(neg)))  # bounded memory for large sets
    aucs = []
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        p = pos[rng.integers(len(pos), size=(b, len(pos)))][:, :, None]
        n = neg[rng.integers(len(neg), size=(b, len(neg)))][:, None, :]
        aucs.append((p > n).mean(axis=(1, 2)) + 0.5 * (p == n).mean(axis=(1, 2)))
    lo, hi = np.quantile(np.concatenate(aucs), [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def accuracy(labels: Labels, scores: Scores, threshold: float) -> float:
    """Share of right decisions ``score >= threshold``; NaN without labels."""
    from sklearn.metrics import accuracy_score

    y, s = _arrays(labels, scores)
    if len(y) == 0:
        return float("nan")
    return float(accuracy_score(y, (s >= threshold).astype(np.int64)))


def balanced_accuracy(labels: Labels, scores: Scores, threshold: float) -> float:
    """Mean of the true-positive and true-negative rates of ``score >= threshold``."""
    from sklearn.metrics import balanced_accuracy_score

    y, s = _arrays(labels, scores)
    if len(y) == 0:
        return float("nan")
    return float(balanced_accuracy_score(y, (s >= threshold).astype(np.int64)))


def logloss(labels: Labels, probs: Scores) -> float:
    """Binary cross-entropy, probabilities clipped to ``[1e-6, 1 - 1e-6]``."""
    from sklearn.metrics import log_loss

    y, p = _arrays(labels, probs)
    if len(y) == 0:
        return float("nan")
    return float(log_loss(y, np.clip(p, EPS, 1 - EPS), labels=[0, 1]))


def reliability_bins(
    labels: Labels, probs: Scores, n_bins: int = 10
) -> list[tuple[float, float, int]]:
    """``(mean predicted, observed fake rate, count)`` per equal-width bin with data."""
    y, p = _arrays(labels, probs)
    edges = np.linspace(0, 1, n_bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, n_bins - 1)
    return [
        (float(p[idx == b].mean()), float(y[idx == b].mean()), int((idx == b).sum()))
        for b in range(n_bins)
        if (idx == b).any()
    ]


def expected_calibration_error(labels: Labels, probs: Scores, n_bins: int = 10) -> float:
    """Count-weighted mean |predicted - observed| over equal-width bins."""
    bins = reliability_bins(labels, probs, n_bins)
    n = sum(c for _, _, c in bins)
    return float(sum(c * abs(m - o) for m, o, c in bins) / n) if n else float("nan")


def choose_threshold(labels: Labels, scores: Scores) -> float:
    """The threshold with the best balanced accuracy (midpoint between neighbouring scores)."""
    y, s = _arrays(labels, scores)
    cands = np.unique(s)
    if len(cands) < 2:
        return 0.5
    mids = np.r_[(cands[:-1] + cands[1:]) / 2]
    accs = [balanced_accuracy(y.tolist(), s.tolist(), float(t)) for t in mids]
    best = max(accs)
    # among equally good thresholds take the median one: the widest margin on both sides
    good = [float(t) for t, a in zip(mids, accs, strict=True) if a == best]
    return good[len(good) // 2]


@dataclass(frozen=True)
class Platt:
    """``p = sigmoid(a * logit(score) + b)``: calibrates a score into a probability."""

    a: float = 1.0
    b: float = 0.0

    def __call__(self, score: float) -> float:
        s = min(max(score, EPS), 1 - EPS)
        z = self.a * math.log(s / (1 - s)) + self.b
        return 1.0 / (1.0 + math.exp(-z))

    def inverse(self, probability: float) -> float | None:
        """The score this scaling maps to ``probability`` (``None`` when ``a <= 0``, where
        the scaling is not increasing): the calibrated threshold on the model's scale."""
        if self.a <= 0:
            return None
        p = min(max(probability, EPS), 1 - EPS)
        z = (math.log(p / (1 - p)) - self.b) / self.a
        return 1.0 / (1.0 + math.exp(-z))


def fit_platt(labels: Labels, scores: Scores, l2: float = 1e-2) -> Platt:
    """Fit :class:`Platt` by (lightly L2-regularised) maximum likelihood, Newton's method.

    Targets are Platt's smoothed labels ``(n+ + 1) / (n+ + 2)`` and ``1 / (n- + 2)``, which
    keep a small validation set from producing 0 / 1 probabilities.
    """
    y, s = _arrays(labels, scores)
    x = np.log(np.clip(s, EPS, 1 - EPS) / (1 - np.clip(s, EPS, 1 - EPS)))
    w = fit_logistic(np.stack([x, np.ones_like(x)], axis=1), y, l2)
    return Platt(float(w[0]), float(w[1]))


def fit_logistic(features: np.ndarray, labels: np.ndarray, l2: float = 1e-2) -> np.ndarray:
    """Weights ``w`` of ``p = sigmoid(features @ w)`` on Platt's smoothed targets (see
    :func:`fit_platt`, which is this with the columns ``logit(score), 1``).

    The first column is the score's logit, whose weight is pulled towards 1 (identity); the
    last is the intercept, left free; every other column's weight is pulled towards 0, all
    with an L2 weight ``l2``. Newton's method with backtracking.
    """
    y = np.asarray(labels, dtype=float)
    if len(set(y.tolist())) < 2:
        raise ValueError("calibration needs both classes")
    n_pos, n_neg = int(y.sum()), int((1 - y).sum())
    t = np.where(y == 1, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    k = features.shape[1]
    prior = np.zeros(k)
    prior[0] = 1.0
    penalty = np.full(k, l2)
    penalty[-1] = 0.0  # the intercept is free
    jitter = np.where(penalty == 0, 1e-9, 0.0)  # keeps a free weight's Hessian invertible

    def nll(w: np.ndarray) -> float:
        z = features @ w
        # log(1 + e^z) - t z, written stably
        return float((np.logaddexp(0, z) - t * z).sum() + 0.5 * (penalty * (w - prior) ** 2).sum())

    w = prior.copy()
    for _ in range(100):
        p = 0.5 * (1 + np.tanh(features @ w / 2))  # sigmoid without overflow
        g = features.T @ (p - t) + penalty * (w - prior)
        h = (features * (p * (1 - p))[:, None]).T @ features + np.diag(penalty + jitter)
        step = np.linalg.solve(h, g)
        lr, f0 = 1.0, nll(w)
        while nll(w - lr * step) > f0 and lr > 1e-6:  # backtracking keeps Newton from overshooting
            lr /= 2
        w = w - lr * step
        if np.abs(lr * step).max() < 1e-9:
            break
    return w
