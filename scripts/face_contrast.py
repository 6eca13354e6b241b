"""Experiment: does the face's softness *relative to its own frame* add to the score?

FaceForensics++ fakes are softer than the real clips they come from, and a re-encoded real
face is as soft as a Deepfake (docs/EVALUATION.md, eighth session): absolute softness moves
with the codec. A contrast inside one frame, the face's interior against the ring of frame
around the face, cancels what a codec does to the whole frame, and costs a worker almost
nothing (it has the frames and the boxes). Two contrasts, fixed before any number was seen:

* ``lap``: log variance of the 3x3 Laplacian of the luma, interior minus ring;
* ``noise``: log median absolute response to Immerkaer's noise kernel, interior minus ring.

The interior is the box's central half (width and height); the ring is the box scaled 1.6x
about its centre minus the box scaled 1.15x, clipped to the frame. A clip's value is the
median over its sampled frames with a face (the record's frames and largest box each).

``measure``: the contrasts of every clip of ``cre eval --videos`` records, per condition, from
the condition's copy (the same copies ``cre eval`` made, at native resolution), to
``OUT/features.jsonl`` (resumable). ``table``: a logistic on [score, contrast] against one on
the score alone, one fit pooled over the conditions (a worker does not know what a video went
through), out of sample by person (:func:`worker.evaluate.identity_folds`; a clip's rows are
held out together). Test clips are refused by both.

    python scripts/face_contrast.py measure --videos ../data-external --cache-dir .cache/eval \\
        --records runs/v60_default ../data-external/labels.tsv --out runs/contrast_val
    python scripts/face_contrast.py table --weights cre_models/weights/default \\
        --records runs/v60_default ../data-external/labels.tsv --features runs/contrast_val \\
        --condition as-delivered --condition half-crf35
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from cre_models.evaluation.metrics import auc, balanced_accuracy, fit_logistic
from cre_models.training.splits import load_split, read_labels
from cre_models.weights import load_checkpoint_config
from worker.evaluate import _load_records, condition_copy, identity_folds

sys.path.insert(0, str(Path(__file__).resolve().parent))
import recompression_probe as rp  # noqa: E402

FEATURES = ("lap", "noise")
SCORED = ("bg",)
IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)


def _scaled(box: Sequence[float], s: float, w: int, h: int) -> tuple[int, int, int, int]:
    """``box`` (x0, y0, x1, y1) scaled by ``s`` about its centre, clipped to a w x h frame."""
    x0, y0, x1, y1 = (float(v) for v in box)
    cx, cy, hw, hh = (x0 + x1) / 2, (y0 + y1) / 2, s * (x1 - x0) / 2, s * (y1 - y0) / 2
    return (
        max(0, int(round(cx - hw))),
        max(0, int(round(cy - hh))),
        min(w, int(round(cx + hw))),
        min(h, int(round(cy + hh))),
    )


def region_contrast(rgb: np.ndarray, box: Sequence[float]) -> dict[str, float] | None:
    """``{lap, noise}``: interior minus ring, for one face of one uint8 RGB frame.

    None when the interior or the ring has fewer than 64 pixels (a face at the frame's edge).
    """
    h, w = rgb.shape[:2]
    ox0, oy0, ox1, oy1 = _scaled(box, 1.6, w, h)
    if ox1 - ox0 < 8 or oy1 - oy0 < 8:
        return None
    patch = rgb[oy0:oy1, ox0:ox1].astype(np.float32)
    luma = patch @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    lap = cv2.Laplacian(luma, cv2.CV_32F, ksize=1, borderType=cv2.BORDER_REFLECT)
    noise = np.abs(cv2.filter2D(luma, cv2.CV_32F, IMMERKAER, borderType=cv2.BORDER_REFLECT))

    def mask(s: float) -> np.ndarray:
        m = np.zeros(luma.shape, dtype=bool)
        x0, y0, x1, y1 = _scaled(box, s, w, h)
        m[max(0, y0 - oy0) : max(0, y1 - oy0), max(0, x0 - ox0) : max(0, x1 - ox0)] = True
        return m

    inner = mask(0.5)
    ring = ~mask(1.15)
    if inner.sum() < 64 or ring.sum() < 64:
        return None
    return {
        "lap": float(np.log(lap[inner].var() + 1e-3) - np.log(lap[ring].var() + 1e-3)),
        "noise": float(
            np.log(np.median(noise[inner]) + 1e-3) - np.log(np.median(noise[ring]) + 1e-3)
        ),
    }


def largest_faces(
    frames: dict[float, np.ndarray], record: dict[str, Any]
) -> Iterator[tuple[np.ndarray, list[float]]]:
    """``(frame, largest box)`` of each of a record's sampled frames that has a face and was
    decoded (``frames`` by time, rounded to the millisecond)."""
    for f in record.get("frames", []):
        faces = f.get("faces") or []
        image = frames.get(round(float(f["time_s"]), 3))
        if faces and image is not None:
            box = max((x["box"] for x in faces), key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
            yield image, box


def clip_contrast(frames: dict[float, np.ndarray], record: dict[str, Any]) -> dict[str, Any]:
    """Median contrasts over a record's sampled frames (largest face of each)."""
    per: dict[str, list[float]] = {k: [] for k in FEATURES}
    for image, box in largest_faces(frames, record):
        c = region_contrast(image, box)
        if c is not None:
            for k in FEATURES:
                per[k].append(c[k])
    out: dict[str, Any] = {"frames": len(per["lap"])}
    for k in FEATURES:
        out[k] = float(np.median(per[k])) if per[k] else None
    return out


def background_box(
    box: Sequence[float], w: int, h: int, margin: float, shift: float = 1.6
) -> tuple[float, float, float, float]:
    """``box`` moved sideways by ``shift`` box widths: left if that square with the crop's
    ``margin`` lies inside the w x h frame, else right, else to the side farther from the
    edge (the crop is then cut partly outside the frame, as the worker cuts faces there)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    bw, pad = x1 - x0, margin * max(x1 - x0, y1 - y0)
    left, right = x0 - shift * bw, x0 + shift * bw
    if left - pad >= 0:
        dx = left
    elif right + bw + pad <= w:
        dx = right
    else:
        dx = left if x0 > w - x1 else right
    return (dx, y0, dx + bw, y1)


def clip_background(
    frames: dict[float, np.ndarray], record: dict[str, Any], scorer: Any
) -> dict[str, Any]:
    """``bg``: logit of the median score of :func:`background_box` squares, one per sampled
    frame with a face (largest box), cut and scored as the worker cuts and scores faces."""
    from cre_models.faces import FaceBox

    crops = []
    for image, box in largest_faces(frames, record):
        h, w = image.shape[:2]
        bg = FaceBox(*background_box(box, w, h, scorer.transform.margin))
        crops += scorer.crop(image, [bg])
    if not crops:
        return {"bg": None, "bg_frames": 0}
    return {"bg": rp._logit(float(np.median(scorer.predict(crops)))), "bg_frames": len(crops)}


def measure(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    split = load_split(None)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "features.jsonl"
    done: set[tuple[str, str]] = set()
    if path.exists():
        done = {(d["condition"], d["file"]) for d in map(json.loads, path.read_text().splitlines())}
    todo = []
    for folder, labels in args.records:
        by_file = {c.file: c for c in read_labels(labels)}
        for r in _load_records(Path(folder) / "records.jsonl", by_file):
            if split.get(r.clip.file) == "test":
                raise SystemExit(f"{folder}: a test clip ({r.clip.file}): never chosen on test")
            if args.condition and r.condition not in args.condition:
                continue
            if (r.condition, r.clip.file) not in done:
                todo.append(r)
    scorer = None
    if args.weights:
        from worker.scoring import Scorer
        from worker.settings import Settings

        scorer = Scorer(Settings(weights=args.weights))
    with path.open("a") as fh:
        for r in tqdm(todo, desc="contrast", unit="video"):
            video = condition_copy(
                Path(args.videos), r.clip.file, r.condition, Path(args.cache_dir)
            )
            times = [f["time_s"] for f in r.record.get("frames", [])]
            frames = {t: w[-1] for t, w in rp.decode_windows(video, times, 1).items()}
            row = {"condition": r.condition, "file": r.clip.file, **clip_contrast(frames, r.record)}
            if scorer is not None:
                row.update(clip_background(frames, r.record, scorer))
            fh.write(json.dumps(row) + "\n")
            fh.flush()
    return 0


def load_features(folders: Sequence[str]) -> dict[tuple[str, str], dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for folder in folders:
        for line in (Path(folder) / "features.jsonl").read_text().splitlines():
            d = json.loads(line)
            out[(d["condition"], d["file"])] = d
    return out


def table(args: argparse.Namespace) -> int:
    cfg = load_checkpoint_config(Path(args.weights))
    tables = [(folder, labels, "-") for folder, labels in args.records]
    logits, clips = rp.load_logits(tables, cfg.decision.aggregation, cfg.weights_sha256)
    feats = load_features(args.features)
    folds = identity_folds(list(clips.values()), args.folds)
    lines = [
        f"aggregation {cfg.decision.aggregation}; one logistic pooled over "
        f"{', '.join(args.condition)}; {args.folds} identity folds, out of sample",
        "",
        "| feature | condition | clips | AUC, feature alone (fake = lower) | AUC, score "
        "| AUC, score + feature | balanced acc., score | balanced acc., score + feature "
        "| mean feature real / fake | weights [score, feature, 1] |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    present = {k for d in feats.values() for k in d}
    for name in [n for n in FEATURES + SCORED if n in present]:
        rows = []
        for cond in args.condition:
            for f in sorted(clips):
                v = feats.get((cond, f), {}).get(name)
                if (cond, f) in logits and v is not None:
                    rows.append((cond, f, logits[(cond, f)], v, float(clips[f].label)))
        x = np.array([[r[2], r[3], 1.0] for r in rows])
        y = np.array([r[4] for r in rows])
        fo = [folds[r[1]] for r in rows]
        z1 = rp.out_of_sample(x[:, [0, 2]], y, fo, args.folds)
        z2 = rp.out_of_sample(x, y, fo, args.folds)
        w = fit_logistic(x, y)
        for cond in args.condition:
            m = np.array([r[0] == cond for r in rows])
            ym, fm = y[m], x[m, 1]
            lines.append(
                f"| {name} | {cond} | {int(m.sum())} | {auc(ym, -fm):.3f} | {auc(ym, z1[m]):.3f} "
                f"| {auc(ym, z2[m]):.3f} | {balanced_accuracy(ym, z1[m], 0.0):.3f} "
                f"| {balanced_accuracy(ym, z2[m], 0.0):.3f} "
                f"| {fm[ym == 0].mean():.2f} / {fm[ym == 1].mean():.2f} "
                f"| [{w[0]:.2f}, {w[1]:.2f}, {w[2]:.2f}] |"
            )
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure", help="the contrasts of every clip of some records")
    m.add_argument("--videos", required=True, help="root the labels' paths are relative to")
    m.add_argument("--cache-dir", required=True, help="cre eval's re-encoded copies")
    m.add_argument("--records", nargs=2, action="append", required=True, metavar=("DIR", "LABELS"))
    m.add_argument("--condition", action="append", help="only these conditions (default: all)")
    m.add_argument("--weights", help="also `bg`: this checkpoint's score away from the face")
    m.add_argument("--out", required=True)
    t = sub.add_parser("table", help="out-of-sample AUC of the score with and without a contrast")
    t.add_argument("--weights", required=True)
    t.add_argument("--records", nargs=2, action="append", required=True, metavar=("DIR", "LABELS"))
    t.add_argument("--features", action="append", required=True, help="measure's OUT folders")
    t.add_argument("--condition", action="append", required=True)
    t.add_argument("--folds", type=int, default=6)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return {"measure": measure, "table": table}[args.cmd](args)


if __name__ == "__main__":
    raise SystemExit(main())
