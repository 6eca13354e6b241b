"""``cre eval``: how good a checkpoint is, and how much of it survives compression.

Given labelled media (``real/`` and ``fake/`` folders of videos, frames or face crops; see
:mod:`cre_models.data`), the checkpoint is scored on every face under each compression
condition (:mod:`cre_models.conditions`: simulator severities ``none/light/medium/heavy``
and the real-codec ladder ``ladder-1..5``), and reported as:

* per frame (face crop): ROC AUC, accuracy at the checkpoint's threshold, log-loss;
* per video: the same after aggregating a video's face scores (the checkpoint's
  aggregation; other aggregations are compared in a second table). Face crops named
  ``<videoid>_<...>.jpg`` (DFDC style) are grouped by the video id into pseudo-videos;
* embedding stability: mean cosine similarity between the embedding of a clean face and
  of its compressed copy, beside the mean similarity between different faces (embeddings
  are centred on the mean clean embedding of the evaluated set first).

A Markdown table goes to stdout and to ``--out``; ROC curves to ``--roc`` (PNG).

Compression is applied to the face crop as stored (224 px by default, the size of the
DFDC crops), then the crop is resized to the model's input size, as the worker would see a
face cut out of a compressed frame.
"""

from __future__ import annotations

import argparse
import logging
import sys
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .aggregate import STRATEGIES, aggregate
from .augmentation import SEVERITIES
from .conditions import LADDER, apply_condition
from .data import FaceSample, load_face_samples
from .model import CompressionResilientNetwork
from .transforms import to_tensor

__all__ = [
    "AGGREGATIONS",
    "aggregate",
    "roc_auc",
    "roc_curve",
    "log_loss",
    "ConditionResult",
    "score_samples",
    "evaluate",
    "format_table",
    "format_aggregation_table",
    "plot_roc",
    "dedup_samples",
    "main",
]

logger = logging.getLogger(__name__)

DEFAULT_CONDITIONS = (*SEVERITIES, *LADDER)
EPS = 1e-6


# --- aggregation: the worker's own strategies (cre_models.aggregate) -------------------------

AGGREGATIONS = STRATEGIES
"""Frame-to-video strategies compared by the evaluation: exactly the worker's."""


# --- metrics --------------------------------------------------------------------------------


def roc_auc(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with tie correction); NaN with one class."""
    y = np.asarray(labels, np.int64)
    s = np.asarray(scores, np.float64)
    n_pos, n_neg = int((y == 1).sum()), int((y == 0).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), np.float64)
    sorted_s = s[order]
    i = 0
    while i < len(s):  # average ranks over ties
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_curve(
    labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates over all thresholds, from (0, 0) to (1, 1)."""
    y = np.asarray(labels, np.int64)
    s = np.asarray(scores, np.float64)
    order = np.argsort(-s, kind="mergesort")
    y, s = y[order], s[order]
    distinct = np.r_[np.where(np.diff(s))[0], len(s) - 1]
    tps = np.cumsum(y)[distinct]
    fps = (1 + distinct) - tps
    tpr = np.r_[0.0, tps / max(1, y.sum())]
    fpr = np.r_[0.0, fps / max(1, (1 - y).sum())]
    return fpr, tpr


def log_loss(labels: Sequence[int] | np.ndarray, probs: Sequence[float] | np.ndarray) -> float:
    """Mean binary cross-entropy, probabilities clipped to ``[1e-6, 1 - 1e-6]``."""
    y = np.asarray(labels, np.float64)
    p = np.clip(np.asarray(probs, np.float64), EPS, 1 - EPS)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


def accuracy(
    labels: Sequence[int] | np.ndarray, probs: Sequence[float] | np.ndarray, threshold: float
) -> float:
    y = np.asarray(labels, np.int64)
    return float(((np.asarray(probs) >= threshold).astype(np.int64) == y).mean())


# --- scoring --------------------------------------------------------------------------------


@torch.no_grad()
def score_samples(
    model: CompressionResilientNetwork,
    images: Sequence[np.ndarray],
    size: int,
    batch_size: int = 32,
    with_embeddings: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Probabilities of "fake" ``(N,)`` (and embeddings ``(N, D)``) for uint8 RGB crops."""
    model.eval()
    device = next(model.parameters()).device
    probs, embs = [], []
    for i in range(0, len(images), batch_size):
        x = to_tensor(images[i : i + batch_size], size).to(device)
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
    size: int,
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
        probs, emb = score_samples(model, imgs, size, batch_size, with_embeddings=stability)
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
        for method in AGGREGATIONS:
            vl, vs = _video_scores(samples, probs, method)
            by_agg[method] = (roc_auc(vl, vs), accuracy(vl, vs, threshold), log_loss(vl, vs))
        v_auc, v_acc, v_ll = by_agg[aggregation]
        n_videos = len({s.group for s in samples})
        results.append(
            ConditionResult(
                cond,
                roc_auc(labels, probs),
                accuracy(labels, probs, threshold),
                log_loss(labels, probs),
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


def _f(x: float) -> str:
    return "-" if x != x else f"{x:.3f}"


def format_table(results: Sequence[ConditionResult], threshold: float, aggregation: str) -> str:
    """The main Markdown table: one row per condition."""
    lines = [
        f"| condition | frame AUC | frame acc@{threshold:.2f} | frame log-loss "
        f"| video AUC ({aggregation}) | video acc | video log-loss | faces / videos "
        "| cos(clean, compressed) | cos(different faces) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        lines.append(
            f"| {r.condition} | {_f(r.frame_auc)} | {_f(r.frame_acc)} | {_f(r.frame_logloss)} "
            f"| {_f(r.video_auc)} | {_f(r.video_acc)} | {_f(r.video_logloss)} "
            f"| {r.n_frames} / {r.n_videos} | {_f(r.cos_same)} "
            f"| {_f(r.cos_diff)} |"
        )
    return "\n".join(lines)


def format_aggregation_table(results: Sequence[ConditionResult]) -> str:
    """Video AUC / log-loss per aggregation and condition."""
    methods = list(AGGREGATIONS)
    lines = [
        "| condition | " + " | ".join(f"{m} AUC / log-loss" for m in methods) + " |",
        "| --- | " + " | ".join("---" for _ in methods) + " |",
    ]
    for r in results:
        cells = [f"{_f(r.video_by_agg[m][0])} / {_f(r.video_by_agg[m][2])}" for m in methods]
        lines.append(f"| {r.condition} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_roc(
    results: Sequence[ConditionResult], path: str | Path, title: str = "ROC per condition"
) -> None:
    """Frame-level ROC curves of every condition in one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 6))
    for r in results:
        if len(set(r.labels.tolist())) < 2:
            continue
        fpr, tpr = roc_curve(r.labels, r.probs)
        ax.plot(fpr, tpr, label=f"{r.condition} (AUC {r.frame_auc:.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def dedup_samples(samples: Sequence[FaceSample]) -> list[FaceSample]:
    """Samples with byte-identical crops removed (first occurrence kept).

    The DFDC dev crops repeat the same images across train, valid and test; evaluating
    the union of splits without duplicates gives each image one vote.
    """
    import hashlib

    seen: set[str] = set()
    out = []
    for s in samples:
        h = hashlib.sha1(np.ascontiguousarray(s.image).tobytes()).hexdigest()
        if h not in seen:
            seen.add(h)
            out.append(s)
    return out


# --- CLI ------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cre eval", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    p.add_argument(
        "--data",
        action="append",
        required=True,
        help="labelled folder (real/ and fake/); repeatable",
    )
    p.add_argument(
        "--weights",
        default="default",
        help="checkpoint folder or registered name (default: shipped)",
    )
    p.add_argument(
        "--conditions", default=",".join(DEFAULT_CONDITIONS), help="comma-separated conditions"
    )
    p.add_argument("--size", type=int, default=None, help="input size (default: the checkpoint's)")
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="decision threshold (default: the checkpoint's)",
    )
    p.add_argument(
        "--aggregation",
        default=None,
        choices=sorted(AGGREGATIONS),
        help="default: the checkpoint's",
    )
    p.add_argument(
        "--faces", default="auto", choices=["auto", "detect", "crops"], help="how to find faces"
    )
    p.add_argument(
        "--crop-size", type=int, default=224, help="side of stored crops, compressed at this size"
    )
    p.add_argument("--frames-per-video", type=int, default=None, help="default: the checkpoint's")
    p.add_argument(
        "--no-stability", action="store_true", help="skip the embedding-stability columns"
    )
    p.add_argument(
        "--dedup", action="store_true", help="drop byte-identical face crops (keeps the first)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--out", default="eval.md", help="Markdown report file")
    p.add_argument("--roc", default="roc.png", help="ROC curves (PNG)")
    p.add_argument(
        "--cache-dir", default=None, help="face-crop cache (default $CRE_CACHE or ~/.cache/cre)"
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``cre eval``."""
    args = _parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from .weights import create_model

    model, cfg = create_model(args.weights)
    size = args.size or cfg.input.size
    threshold = cfg.decision.threshold if args.threshold is None else args.threshold
    aggregation = args.aggregation or cfg.decision.aggregation
    if aggregation not in AGGREGATIONS:
        aggregation = "mean"
    conditions = [c.strip() for c in args.conditions.split(",") if c.strip()]
    samples = load_face_samples(
        args.data,
        margin=cfg.input.crop_margin,
        size=args.crop_size,
        frames_per_video=args.frames_per_video or cfg.input.frames_per_video,
        faces=args.faces,
        drop_gray=False,
        cache_dir=args.cache_dir,
    )
    if args.dedup:
        before = len(samples)
        samples = dedup_samples(samples)
        logger.info("dropped %d duplicate face crops", before - len(samples))
    if not samples:
        print(f"cre eval: no faces found under {args.data}", file=sys.stderr)
        return 1
    results = evaluate(
        model,
        samples,
        size=size,
        threshold=threshold,
        aggregation=aggregation,
        conditions=conditions,
        seed=args.seed,
        stability=not args.no_stability,
    )
    header = (
        f"Checkpoint `{args.weights}` ({cfg.name} v{cfg.version}), input {size} px, "
        f"threshold {threshold:.3f}, "
        f"data: {', '.join(args.data)}\n\n"
    )
    report = (
        header + format_table(results, threshold, aggregation) + "\n\nVideo-level aggregation:\n\n"
    )
    report += format_aggregation_table(results) + "\n"
    print(report)
    Path(args.out).write_text(report)
    plot_roc(results, args.roc)
    logger.info("wrote %s and %s", args.out, args.roc)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    sys.exit(main())
