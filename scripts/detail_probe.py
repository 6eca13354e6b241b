"""How much a checkpoint's score follows the detail level of a face rather than the face.

Scores the cached training-format crops of labelled clips (``cre train-videos
--cache-only`` builds them; the checkpoint's own crop size, margin and alignment) as they
are and under three label-blind changes of fine detail:

* ``bilateral``: an edge-preserving smoothing (``cv2.bilateralFilter(9, 40, 7)``): skin
  smoothed, edges kept, as make-up, soft light or a beauty filter leave a face;
* ``resample-0.6``: shrunk to 0.6x and enlarged back: less detail everywhere, as a lower
  resolution;
* ``unsharp``: ``1.6 x - 0.6 blur_1.5(x)``: more detail, as a sharpening filter.

A detector that reads the manipulation should move little under any of them; one that
reads "soft = fake" raises real faces' scores under the first two and lowers fakes' under
the third. Prints, per label, the median :func:`~cre_models.training.detail.detail_level`
of the crops as they are, the mean raw probability (the network's, before calibration and
aggregation) of each version, and the mean change against the crops as they are.
Records of the split's test clips are refused: choices are made on validation.

    python scripts/detail_probe.py --weights cre_models/weights/default \\
        --data ../data-external --labels ../data-external/labels.tsv --subset validation \\
        --cache-dir /work/cache/crops
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from cre_models.model import CompressionResilientNetwork
from cre_models.training.cache import CacheSpec, load_cached
from cre_models.training.detail import detail_level
from cre_models.training.splits import load_split, read_labels, split_file
from cre_models.transforms import to_tensor
from cre_models.weights import load_pretrained, resolve_weights

logger = logging.getLogger("detail_probe")


def _bilateral(x: np.ndarray) -> np.ndarray:
    return cv2.bilateralFilter(x, 9, 40, 7)


def _resample(x: np.ndarray) -> np.ndarray:
    h, w = x.shape[:2]
    small = cv2.resize(x, (round(w * 0.6), round(h * 0.6)), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _unsharp(x: np.ndarray) -> np.ndarray:
    f = x.astype(np.float32)
    out = 1.6 * f - 0.6 * cv2.GaussianBlur(f, (0, 0), 1.5)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


VERSIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "as-is": lambda x: x,
    "bilateral": _bilateral,
    "resample-0.6": _resample,
    "unsharp": _unsharp,
}
"""The versions of every crop that are scored, in table order."""


def probe(
    model: CompressionResilientNetwork, crops: np.ndarray, size: int, batch: int = 32
) -> dict[str, float]:
    """Mean probability of ``crops`` in each of :data:`VERSIONS`."""
    out = {}
    with torch.inference_mode():
        for name, change in VERSIONS.items():
            probs = [
                model.predict_proba(to_tensor([change(c) for c in crops[i : i + batch]], size))
                for i in range(0, len(crops), batch)
            ]
            out[name] = float(torch.cat(probs).mean())
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", required=True, help="checkpoint folder or shipped name")
    p.add_argument("--data", required=True, help="root of the labels' file paths")
    p.add_argument("--labels", required=True)
    p.add_argument("--split", default=str(split_file()))
    p.add_argument("--subset", default="validation", choices=("train", "validation"))
    p.add_argument("--cache-dir", default=".cache/crops")
    p.add_argument("--every", type=int, default=4, help="score every Nth crop of a clip")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", help="also write the table here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.every < 1:
        raise SystemExit(f"--every must be >= 1, not {args.every}")
    torch.set_num_threads(args.threads)
    model, cfg = load_pretrained(resolve_weights(args.weights))
    split = load_split(args.split)
    clips = [c for c in read_labels(args.labels) if split.get(c.file) == args.subset]
    if not clips:
        raise SystemExit(f"no clip of {args.labels} is in the {args.subset} split")
    spec = CacheSpec(size=cfg.input.size, margin=cfg.input.crop_margin, align=cfg.input.align)
    try:
        videos = load_cached(clips, Path(args.cache_dir), spec)
    except FileNotFoundError as e:
        raise SystemExit(f"{e} (cre train-videos --cache-only with the same size/margin)") from None
    rows: dict[str, list[dict[str, float]]] = {"real": [], "fake": []}
    levels: dict[str, list[float]] = {"real": [], "fake": []}
    for v in videos:
        if v.n:
            label = "fake" if v.clip.label else "real"
            rows[label].append(probe(model, v.crops[:: args.every], cfg.input.size))
            levels[label] += [detail_level(c) for c in v.crops[:: args.every]]
    table = {}
    print(f"{args.weights}: {args.subset} clips, every {args.every}th cached crop (as delivered)")
    print(
        "| label | clips | median detail level | "
        + " | ".join(VERSIONS)
        + " | "
        + " | ".join(f"change, {n}" for n in list(VERSIONS)[1:])
        + " |"
    )
    print("| --- " * (3 + 2 * len(VERSIONS) - 1) + "|")
    for label, per_clip in rows.items():
        if not per_clip:
            continue
        means = {n: float(np.mean([r[n] for r in per_clip])) for n in VERSIONS}
        level = float(np.median(levels[label]))
        table[label] = {"clips": len(per_clip), "detail_level": level, **means}
        changes = [means[n] - means["as-is"] for n in list(VERSIONS)[1:]]
        print(
            f"| {label} | {len(per_clip)} | {level:.1f} | "
            + " | ".join(f"{means[n]:.3f}" for n in VERSIONS)
            + " | "
            + " | ".join(f"{c:+.3f}" for c in changes)
            + " |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
