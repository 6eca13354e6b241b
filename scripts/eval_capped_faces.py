"""Experiment: ``cre eval --videos`` with every face crop's detail capped at ``--cap`` pixels.

Each crop is shrunk to ``cap x cap`` (area interpolation) and enlarged back to the model's
input before scoring, so a large face as delivered and the same face after re-encoding at
half size look alike to the model. It asks whether equalising detail steadies the score
(docs/EVALUATION.md, sixth session). The checkpoint is copied first, because ``--fit``
writes its decision into the copy's ``config.json``; the shipped weights are never touched.

    python scripts/eval_capped_faces.py --cap 96 --weights runs/s224/checkpoint \\
        --videos ../data-external --labels ../data-external/labels.tsv --out runs/cap96
"""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path

import cv2
import numpy as np

import cre_models.transforms as transforms
from cre_models.faces import FaceBox


def cap_crops(cap: int) -> None:
    """Make :class:`~cre_models.transforms.FaceTransform` cap its crops' detail (this process)."""
    if cap < 8:
        raise SystemExit(f"--cap must be at least 8 px, not {cap}")
    original = transforms.FaceTransform.crop_with_landmarks

    def capped(
        self: transforms.FaceTransform, image: np.ndarray, box: FaceBox
    ) -> tuple[np.ndarray, np.ndarray | None]:
        crop, landmarks = original(self, image, box)
        side = crop.shape[0]
        small = cv2.resize(crop, (cap, cap), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (side, side), interpolation=cv2.INTER_LINEAR), landmarks

    transforms.FaceTransform.crop_with_landmarks = capped  # type: ignore[method-assign]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cap", type=int, required=True, help="side the crops are shrunk to")
    p.add_argument("--weights", required=True, help="checkpoint folder (copied into --out)")
    p.add_argument("--videos", required=True)
    p.add_argument("--labels", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--subset", default="validation")
    p.add_argument("--cache-dir", default=".cache/eval")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    cap_crops(args.cap)
    out = Path(args.out)
    copy = out / "checkpoint"
    if not copy.exists():
        shutil.copytree(args.weights, copy)
    from worker.evaluate import main as eval_main

    argv = ["--videos", args.videos, "--labels", args.labels, "--weights", str(copy)]
    argv += ["--cache-dir", args.cache_dir, "--no-progress", "--subset", args.subset]
    argv += ["--out", str(out / f"eval_{args.subset}")]
    return eval_main([*argv, "--fit"] if args.subset == "validation" else argv)


if __name__ == "__main__":
    raise SystemExit(main())
