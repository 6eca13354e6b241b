"""Face crops under compression: how good a checkpoint is, and how much of it survives.

Given labelled face samples (:func:`cre_models.training.data.load_face_samples`: ``real/``
and ``fake/`` folders of videos, frames or face crops), the checkpoint is scored on every
face under each compression condition (:mod:`cre_models.conditions`: simulator severities
``none/light/medium/heavy`` and the real-codec ladder ``ladder-1..5``), and measured:

* per frame (face crop): ROC AUC, accuracy at the checkpoint's threshold, log-loss;
* per video: the same after aggregating a video's face scores (the checkpoint's
  aggregation; every other aggregation is measured too). Face crops named
  ``<videoid>_<...>.jpg`` (DFDC style) are grouped by the video id into pseudo-videos;
* embedding stability: mean cosine similarity between the embedding of a clean face and
  of its compressed copy, beside the mean similarity between different faces (embeddings
  are centred on the mean clean embedding of the evaluated set first).

Metrics are scikit-learn's (:mod:`cre_models.evaluation.metrics`). Compression is applied
to the face crop as stored (224 px by default, the size of the DFDC crops), then the crop
is resized to the model's input size, as the worker would see a face cut out of a
compressed frame. Tables and plots: :mod:`cre_models.evaluation.tables`; the command:
:mod:`cre_models.evaluation.cli`.
"""

from __future__ import annotations

import hashlib
import logging
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..aggregate import STRATEGIES, aggregate
from ..augmentation import SEVERITIES
from ..conditions import LADDER, apply_condition
from ..model import CompressionResilientNetwork
from ..transforms import FaceTransform
from .metrics import accuracy, auc, logloss

if TYPE_CHECKING:
    from ..training.data import FaceSample

__all__ = [
    "DEFAULT_CONDITIONS",
    "ConditionResult",
    "score_samples",
    "evaluate",
    "dedup_samples",
]

logger = logging.getLogger(__name__)

DEFAULT_CONDITIONS = (*SEVERITIES, *LADDER)
"""Every condition ``cre eval`` measures unless told otherwise, mildest first."""


@torch.no_grad()
def score_samples(
    model: CompressionResilientNetwork,
    images: Sequence[np.ndarray],
    transform: FaceTransform,
    batch_size: int = 32,
    with_embeddings: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Probabilities of "fake" ``(N,)`` (and embeddings ``(N, D)``) for uint8 RGB crops.

    Crops are resized and normalised by ``transform`` (the checkpoint's input contract).
    """
    model.eval()
    device = next(model.parameters()).device
    probs, embs = [], []
    for i in range(0, len(images), batch_size):
        x = transform.to_tensor(images[i : i + batch_size]).to(device)
        feats = model.forward_features(x)
        logits = model.forward_head(feats)
        p = torch.sigmoid(logits[:, 0]) if logits.shape[1] == 1 else torch.softmax(logits, 1)[:, 1]
        probs.append(p.float().cpu().numpy())
        if with_embeddings:
            embs.append(feats.float().cpu().numpy())
    return np.concatenate(probs), (np.concatenate(embs) if with_embeddings else None)


@dataclass
class ConditionResult:
    """Metrics of one compression condition."""

    condition: str
    frame_auc: float
    frame_acc: float
    frame_logloss: float
    video_auc: float
    video_acc: float
    video_logloss: float
    n_frames: int
    n_videos: int
    cos_same: float = float("nan")
    cos_diff: float = float("nan")
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    probs: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    video_by_agg: dict[str, tuple[float, float, float]] = field(default_factory=dict)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _video_scores(
    samples: Sequence[FaceSample], probs: np.ndarray, method: str
) -> tuple[np.ndarray, np.ndarray]:
    # As the worker does: a frame's score is the max over its faces, then frames -> video.
    # A frame is (file, frame index): each image file is its own frame.
    frames: dict[str, dict[tuple[str, int], float]] = {}
    labels_by_group: dict[str, int] = {}
    for s, p in zip(samples, probs, strict=True):
        per_frame = frames.setdefault(s.group, {})
        key = (s.source, s.index)
        per_frame[key] = max(per_frame.get(key, 0.0), float(p))
        labels_by_group[s.group] = max(labels_by_group.get(s.group, 0), s.label)
    labels = np.array([labels_by_group[g] for g in frames])
    scores = np.array([aggregate(list(f.values()), method) for f in frames.values()])
    return labels, scores


def evaluate(
    model: CompressionResilientNetwork,
    samples: Sequence[FaceSample],
    *,
    transform: FaceTransform,
    threshold: float = 0.5,
    aggregation: str = "mean",
    conditions: Sequence[str] = DEFAULT_CONDITIONS,
    seed: int = 0,
    stability: bool = True,
    batch_size: int = 32,
) -> list[ConditionResult]:
    """Metrics per condition (see the module doc).

    Compression draws are seeded by ``(seed, condition name, image index)``, so a condition
    gives the same images whichever other conditions are evaluated with it.
    """
    if not samples:
        raise ValueError("no face samples to evaluate")
    labels = np.array([s.label for s in samples])
    clean_emb = None
    results = []
    for cond in conditions:
        imgs = [
            apply_condition(
                s.image, cond, np.random.default_rng([seed, zlib.crc32(cond.encode()), i])
            )
            for i, s in enumerate(samples)
        ]
        probs, emb = score_samples(model, imgs, transform, batch_size, with_embeddings=stability)
        cos_same = cos_diff = float("nan")
        if stability and emb is not None:
            if cond == "none":
                clean_emb = emb
            if clean_emb is not None:
                # Centre on the mean clean embedding: raw embeddings share a large common
                # component (LayerNorm + SiLU), which makes every cosine close to 1.
                centre = clean_emb.mean(axis=0, keepdims=True)
                a, b = _unit(emb - centre), _unit(clean_emb - centre)
                sims = a @ b.T  # (N, N) cosine: rows compressed, columns clean
                cos_same = float(np.diag(sims).mean())
                n = len(sims)
                cos_diff = float((sims.sum() - np.trace(sims)) / max(1, n * n - n))
        by_agg = {}
        for method in STRATEGIES:
            vl, vs = _video_scores(samples, probs, method)
            by_agg[method] = (auc(vl, vs), accuracy(vl, vs, threshold), logloss(vl, vs))
        v_auc, v_acc, v_ll = by_agg[aggregation]
        n_videos = len({s.group for s in samples})
        results.append(
            ConditionResult(
                cond,
                auc(labels, probs),
                accuracy(labels, probs, threshold),
                logloss(labels, probs),
                v_auc,
                v_acc,
                v_ll,
                len(samples),
                n_videos,
                cos_same,
                cos_diff,
                labels,
                probs,
                by_agg,
            )
        )
        logger.info("%s: frame AUC %.3f, video AUC %.3f", cond, results[-1].frame_auc, v_auc)
    return results


def dedup_samples(samples: Sequence[FaceSample]) -> list[FaceSample]:
    """Samples with byte-identical crops removed (first occurrence kept).

    The DFDC dev crops repeat the same images across train, valid and test; evaluating
    the union of splits without duplicates gives each image one vote.
    """
    seen: set[str] = set()
    out = []
    for s in samples:
        h = hashlib.sha1(np.ascontiguousarray(s.image).tobytes()).hexdigest()
        if h not in seen:
            seen.add(h)
            out.append(s)
    return out
