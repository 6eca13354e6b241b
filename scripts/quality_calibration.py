"""Experiment: can a calibration that knows how compressed a video is steady its score?

The shipped decision is Platt scaling of the raw video score, one for every condition. A
re-encoded real clip scores higher than the same clip as delivered (docs/EVALUATION.md,
sixth session), so this script asks whether the encoder's own quantiser (QP, read back from
the stream by :func:`worker.report.inputstats.qp_stats`) and the face's size in pixels,
beside the score's logit, let one logistic calibration undo that. Every variant is fitted
leave-one-clip-out (all conditions of a clip held out together) on a run's validation
records, so its numbers are out of sample; it also prints the mean raw score of real and
fake clips per condition, which says where the drift comes from.

    python scripts/quality_calibration.py --records runs/s224/eval_validation \\
        --videos ../data-external --labels ../data-external/labels.tsv \\
        --cache-dir .cache/eval
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cre_models.evaluation.metrics import auc, choose_threshold, fit_logistic
from cre_models.training.splits import read_labels
from cre_models.video import VideoLimits
from worker.evaluate import CONDITIONS, _load_records, video_scores
from worker.report.inputstats import qp_stats

logger = logging.getLogger("quality_calibration")

EPS = 1e-4
VARIANTS = {
    "platt": (),  # the shipped form: logit of the score and an intercept
    "+qp": ("qp",),
    "+qp, slope by qp": ("qp", "qp_slope"),
    "+face px": ("face",),
    "+qp, face px, slope by qp": ("qp", "face", "qp_slope"),
}


@dataclass(frozen=True)
class Row:
    condition: str
    file: str
    label: int
    score: float  # raw video score, the checkpoint's aggregation
    qp: float  # mean macroblock (else frame) quantiser
    face_px: float  # median face box width in frame pixels


def features(r: Row, terms: Sequence[str]) -> list[float]:
    s = min(max(r.score, EPS), 1 - EPS)
    z = math.log(s / (1 - s))
    x = [z]
    q = (r.qp - 23) / 6  # H.264: +6 QP halves the precision
    if "qp" in terms:
        x.append(q)
    if "face" in terms:
        x.append(math.log2(r.face_px / 100))
    if "qp_slope" in terms:
        x.append(z * q)
    return [*x, 1.0]


def predict(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(x @ w / 2))


def leave_one_clip_out(rows: Sequence[Row], terms: Sequence[str]) -> dict[str, float]:
    """Per condition: video AUC and balanced accuracy (threshold fitted in-fold) of the
    out-of-fold calibrated scores; and the mean |drift| at half size + CRF 35."""
    out: dict[tuple[str, str], tuple[float, float]] = {}
    for f in sorted({r.file for r in rows}):
        train = [r for r in rows if r.file != f]
        x = np.array([features(r, terms) for r in train])
        y = np.array([r.label for r in train])
        w = fit_logistic(x, y)
        threshold = choose_threshold(y.tolist(), predict(x, w).tolist())
        for r in rows:
            if r.file == f:
                out[(r.condition, f)] = (float(predict(np.array(features(r, terms)), w)), threshold)
    labels = {r.file: r.label for r in rows}
    res: dict[str, float] = {}
    for c in CONDITIONS:
        keys = [k for k in out if k[0] == c]
        y = [labels[k[1]] for k in keys]
        p = [out[k][0] for k in keys]
        hits = [(out[k][0] >= out[k][1]) == bool(labels[k[1]]) for k in keys]
        pos = [h for h, yy in zip(hits, y, strict=True) if yy]
        neg = [h for h, yy in zip(hits, y, strict=True) if not yy]
        res[f"{c} AUC"] = auc(y, p)
        res[f"{c} bal. acc."] = (float(np.mean(pos)) + float(np.mean(neg))) / 2
    drift = [
        abs(out[("half-crf35", f)][0] - out[("as-delivered", f)][0])
        for f in labels
        if ("half-crf35", f) in out and ("as-delivered", f) in out
    ]
    res["drift half-crf35"] = float(np.mean(drift))
    return res


def load_rows(args: argparse.Namespace) -> list[Row]:
    clips = {c.file: c for c in read_labels(args.labels)}
    scored = _load_records(Path(args.records) / "records.jsonl", clips)
    config = json.loads((Path(args.records) / "metrics.json").read_text())["meta"]
    rows = []
    for s in scored:
        score = video_scores(s.record, config["aggregation"])
        if score is None or s.condition not in CONDITIONS:
            continue
        path = (
            Path(args.videos) / s.clip.file
            if s.condition == "as-delivered"
            else Path(args.cache_dir) / s.condition / s.clip.file
        )
        q = qp_stats(path, VideoLimits())
        if q is None:
            raise SystemExit(f"{path}: no quantisers (not H.264/MPEG-2, or not readable)")
        widths = [
            fc["box"][2] - fc["box"][0] for fr in s.record["frames"] for fc in fr.get("faces", [])
        ]
        rows.append(
            Row(
                s.condition,
                s.clip.file,
                s.clip.label,
                score,
                q.block_qp or q.mean_qp,
                float(np.median(widths)),
            )
        )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", required=True, help="a `cre eval --videos` output folder")
    p.add_argument("--videos", required=True, help="root of the as-delivered files")
    p.add_argument("--labels", required=True)
    p.add_argument("--cache-dir", required=True, help="the eval's re-encoded copies")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    rows = load_rows(args)
    print(f"{len(rows)} records from {args.records}\n")  # noqa: T201
    print("| condition | mean QP | median face px | real: mean raw score | fake: mean raw score |")  # noqa: T201
    print("| --- | --- | --- | --- | --- |")  # noqa: T201
    for c in CONDITIONS:
        rs = [r for r in rows if r.condition == c]
        real = [r.score for r in rs if not r.label]
        fake = [r.score for r in rs if r.label]
        print(  # noqa: T201
            f"| {c} | {np.mean([r.qp for r in rs]):.1f} | {np.median([r.face_px for r in rs]):.0f}"
            f" | {np.mean(real):.3f} | {np.mean(fake):.3f} |"
        )
    head = [f"{c} AUC" for c in CONDITIONS] + [
        "as-delivered bal. acc.",
        "half-crf35 bal. acc.",
        "drift half-crf35",
    ]
    print("\n| calibration (leave one clip out) | " + " | ".join(head) + " | weights, all clips |")  # noqa: T201
    print("| --- " * (len(head) + 2) + "|")  # noqa: T201
    for name, terms in VARIANTS.items():
        res = leave_one_clip_out(rows, terms)
        w = fit_logistic(
            np.array([features(r, terms) for r in rows]), np.array([r.label for r in rows])
        )
        cells = " | ".join(f"{res[h]:.3f}" for h in head)
        print(f"| {name} | {cells} | {np.round(w, 2).tolist()} |")  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
