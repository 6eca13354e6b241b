"""Choose a checkpoint's decision on more than one labelled table of validation records.

``cre eval --videos ... --fit`` chooses the aggregation, Platt calibration and threshold on
one run's records. This script pools the records of several runs of the same weights (for
example the split's validation clips and a second held-out table of other people, scored
without ``--fit``) and reports, per condition:

* the video AUC on the pooled clips, under the aggregation the pooled fit chooses;
* the balanced accuracy of the checkpoint's current decision and of the pooled fit
  (in sample), and of the pooled fit *out of sample by person*
  (:func:`worker.evaluate.cross_fit`: each identity fold held out in turn);
* log-loss, ECE and mean |drift| against as delivered, under the pooled fit.

``--write`` stores the pooled decision in the checkpoint's ``config.json``. Records of the
split's test clips are refused: test is reported once, never chosen on.

    python scripts/pool_decision.py --weights runs/s224/checkpoint \\
        --records runs/val_s224 ../data-external/labels.tsv \\
        --records runs/more_s224 ../data-external/labels_more.tsv
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cre_models.aggregate import STRATEGIES
from cre_models.evaluation.metrics import Platt
from cre_models.training.splits import load_split, read_labels
from cre_models.weights import load_checkpoint_config
from worker.evaluate import (
    CONDITIONS,
    Scored,
    _load_records,
    _write_decision,
    cross_fit,
    evaluate_videos,
    fit_decision,
    video_scores,
)

logger = logging.getLogger("pool_decision")


def pooled_records(
    tables: Sequence[tuple[str, str]], weights_sha256: str, split: dict[str, str]
) -> list[Scored]:
    """Every run's records (``records.jsonl`` of each folder, clips from its labels file).

    Refuses records of other weights, a clip in two tables and any clip of the test split.
    """
    out: list[Scored] = []
    seen: dict[str, str] = {}
    for folder, labels in tables:
        clips = {c.file: c for c in read_labels(labels)}
        path = Path(folder) / "records.jsonl"
        if not path.exists():
            raise SystemExit(f"{path}: no records (run cre eval --videos --out {folder} first)")
        recs = _load_records(path, clips)
        if not recs:
            raise SystemExit(f"{path}: no record of a clip listed in {labels}")
        test = sorted({r.clip.file for r in recs if split.get(r.clip.file) == "test"})
        if test:
            raise SystemExit(
                f"{path}: records of {len(test)} test clip(s), e.g. {test[0]}: never fit on test"
            )
        other = {str(r.record.get("model", {}).get("weights_sha256")) for r in recs} - {
            weights_sha256
        }
        if other:
            raise SystemExit(
                f"{path}: records of other weights ({', '.join(sorted(other))}), "
                f"not the checkpoint's {weights_sha256}"
            )
        for f in {r.clip.file for r in recs}:
            if f in seen:
                raise SystemExit(f"{f} is in both {seen[f]} and {folder}")
            seen[f] = folder
        out += recs
    return out


def within_between(scored: Sequence[Scored], aggregation: str, cond: str) -> tuple[float, float]:
    """AUC over (real, fake) pairs of one identity group, and over pairs of two groups.

    A score that ranks a person's fake over the same person's real but not over other
    people's reals sits at person-specific levels: a threshold will not carry across people.
    """
    from cre_models.training.splits import identity_groups

    clips = list({r.clip.file: r.clip for r in scored}.values())
    group = {c.file: i for i, g in enumerate(identity_groups(clips)) for c in g}
    s = {
        r.clip.file: v
        for r in scored
        if r.condition == cond and (v := video_scores(r.record, aggregation)) is not None
    }
    wins = {True: [0.0, 0], False: [0.0, 0]}
    for real in (c for c in clips if c.label == 0 and c.file in s):
        for fake in (c for c in clips if c.label == 1 and c.file in s):
            w = wins[group[real.file] == group[fake.file]]
            d = s[fake.file] - s[real.file]
            w[0] += 1.0 if d > 0 else 0.5 if d == 0 else 0.0
            w[1] += 1
    return tuple(w[0] / w[1] if w[1] else float("nan") for w in (wins[True], wins[False]))  # type: ignore[return-value]


def _fmt(x: float) -> str:
    return "-" if x != x else f"{x:.3f}"


def report(
    scored: Sequence[Scored],
    conds: Sequence[str],
    current: tuple[str, Platt | None, float],
    k: int,
    strategies: Sequence[str] | None = None,
) -> tuple[str, tuple[str, Platt, float]]:
    """Markdown table of the pooled records, and the pooled decision (its aggregation the best
    of ``strategies``: one fixes it)."""
    agg, cal, thr = fit_decision(scored, conds, strategies)
    fitted = evaluate_videos(scored, agg, thr, cal, conds)
    now = evaluate_videos(scored, current[0], current[2], current[1], conds)
    held = cross_fit(scored, conds, k, strategies)
    clips = {r.clip.file: r.clip for r in scored}
    n_fake = sum(c.label for c in clips.values())
    lines = [
        f"{len(clips)} clips ({len(clips) - n_fake} real, {n_fake} fake); "
        f"current decision: {current[0]}, threshold {current[2]:.3f}; "
        f"pooled fit: {agg}, Platt a={cal.a:.3f} b={cal.b:.3f}, threshold {thr:.3f}",
        "",
        "| condition | videos | video AUC [95% CI] | balanced acc., current "
        "| balanced acc., pooled fit | balanced acc., pooled fit out of sample "
        "| log-loss | ECE | mean abs. drift | AUC within / between people |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in conds:
        a = fitted[c]["all"]
        lines.append(
            f"| {c} | {int(a['n'])} | {_fmt(a['auc'])} [{a['auc_lo']:.2f}, {a['auc_hi']:.2f}] "
            f"| {_fmt(now[c]['all']['balanced_accuracy'])} | {_fmt(a['balanced_accuracy'])} "
            f"| {_fmt(held[c])} | {_fmt(a['logloss'])} | {_fmt(a['ece'])} "
            f"| {_fmt(a.get('drift', float('nan')))} "
            "| {} / {} |".format(*map(_fmt, within_between(scored, agg, c)))
        )
    mean_auc = float(np.nanmean([fitted[c]["all"]["auc"] for c in conds]))
    lines += ["", f"mean video AUC over the conditions: {mean_auc:.3f}"]
    return "\n".join(lines) + "\n", (agg, cal, thr)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", required=True, help="checkpoint folder the records came from")
    p.add_argument(
        "--records",
        nargs=2,
        action="append",
        required=True,
        metavar=("FOLDER", "LABELS"),
        help="a cre eval --videos --out folder and the labels file it was run with; repeatable",
    )
    p.add_argument("--conditions", default=",".join(CONDITIONS))
    p.add_argument(
        "--folds", type=int, default=6, help="identity folds of the out-of-sample column"
    )
    p.add_argument(
        "--aggregation",
        choices=list(STRATEGIES),
        default=None,
        help="fix the pooled fit's aggregation (default: the best mean AUC of all)",
    )
    p.add_argument("--split", default=None, help="identity split JSON (default: the committed one)")
    p.add_argument("--json", default=None, help="also write the numbers here")
    p.add_argument("--write", action="store_true", help="store the pooled decision in --weights")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    folder = Path(args.weights)
    cfg = load_checkpoint_config(folder)
    if cfg.weights_sha256 is None:
        raise SystemExit(f"{folder}/config.json names no weights_sha256 to check records against")
    conds = [c for c in args.conditions.split(",") if c]
    scored = [
        r
        for r in pooled_records(
            [tuple(t) for t in args.records], cfg.weights_sha256, load_split(args.split)
        )
        if r.condition in conds
    ]
    d = cfg.decision
    current = (d.aggregation, Platt(**d.calibration) if d.calibration else None, d.threshold)
    strategies = (args.aggregation,) if args.aggregation else None
    try:
        text, (agg, cal, thr) = report(scored, conds, current, args.folds, strategies)
    except ValueError as e:  # too few groups of people for --folds, one label only, ...
        raise SystemExit(f"pool_decision: {e}") from None
    sys.stdout.write(text)
    if args.json:
        Path(args.json).write_text(
            json.dumps({"aggregation": agg, "a": cal.a, "b": cal.b, "threshold": thr}) + "\n"
        )
    if args.write:
        _write_decision(folder, agg, cal, thr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
