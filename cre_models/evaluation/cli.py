"""``cre eval --data DIR``: a checkpoint on labelled face crops, under every condition.

See :mod:`cre_models.evaluation.crops` for what is measured. A Markdown table goes to
stdout and to ``--out``; ROC curves to ``--roc`` (PNG, by default beside ``--out``).
``cre eval --videos`` (labelled videos through the worker's own path) is
:mod:`worker.evaluate`.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from ..aggregate import STRATEGIES
from ..transforms import FaceTransform
from .crops import DEFAULT_CONDITIONS, dedup_samples, evaluate
from .metrics import require_train_extra
from .tables import format_aggregation_table, format_table, plot_roc

__all__ = ["main"]

logger = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cre eval",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="On labelled videos, through the worker's own path: cre eval --videos DIR "
        "--labels FILE --out DIR [--subset validation --fit --weights FOLDER] (its options: "
        "cre eval --videos DIR --help).",
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
        choices=sorted(STRATEGIES),
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
    p.add_argument(
        "--roc", default=None, help="ROC curves (PNG; default: beside --out, as NAME_roc.png)"
    )
    p.add_argument(
        "--cache-dir", default=None, help="face-crop cache (default $CRE_CACHE or ~/.cache/cre)"
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``cre eval``."""
    args = _parser().parse_args(argv)
    require_train_extra("cre eval")
    if args.threads:
        torch.set_num_threads(args.threads)
    from ..training.data import load_face_samples
    from ..weights import create_model

    model, cfg = create_model(args.weights)
    transform = FaceTransform.from_spec(cfg.input)  # the checkpoint's size and normalisation
    if args.size:
        transform = dataclasses.replace(transform, size=args.size)
    size = transform.size
    threshold = cfg.decision.threshold if args.threshold is None else args.threshold
    aggregation = args.aggregation or cfg.decision.aggregation
    if aggregation not in STRATEGIES:
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
        transform=transform,
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
    roc = roc_path(args.out, args.roc)
    plot_roc(results, str(roc))
    logger.info("wrote %s and %s", args.out, roc)
    return 0


def roc_path(out: str, roc: str | None) -> Path:
    """``--roc``, or beside the report: ``--out runs/a.md`` -> ``runs/a_roc.png`` (so two
    reports written to two folders never overwrite one ``roc.png`` in the working folder)."""
    return Path(roc) if roc else Path(out).with_name(Path(out).stem + "_roc.png")
