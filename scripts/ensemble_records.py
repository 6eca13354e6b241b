"""Experiment: the video table of several runs' frame scores averaged, from their records.

``cre eval --videos`` stores every record (``records.jsonl``); runs scored through the same
worker path see the same frames and faces, so their face scores can be averaged face by
face and the decision fitted on the average as ``--fit`` fits one model's
(:func:`worker.evaluate.fit_decision`). It asks whether a seed ensemble is worth its
inference cost (docs/EVALUATION.md, sixth session).

    python scripts/ensemble_records.py --labels ../data-external/labels.tsv \\
        runs/s224/eval_validation runs/s224s1/eval_validation

Several labelled tables pooled (for example the split's validation clips and a second table
of other people, as ``scripts/pool_decision.py`` pools them): one ``--table`` per labels file,
followed by the members' folders in the same order every time:

    python scripts/ensemble_records.py \\
        --table ../data-external/labels.tsv runs/v60_s224 runs/v60_s160 \\
        --table ../data-external/labels_more.tsv runs/more_s224 runs/more_s160
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import numpy as np

from cre_models.training.splits import read_labels
from worker.evaluate import Scored, _load_records, evaluate_videos, fit_decision

CONDITIONS = ("as-delivered", "social", "half-crf35", "ladder-5")


def average(runs: list[list[Scored]]) -> list[Scored]:
    """The first run's records with every face score the mean over the runs.

    Raises:
        SystemExit: a record or a face missing from one of the runs (not the same path).
    """
    index = [{(s.condition, s.clip.file): s for s in run} for run in runs[1:]]
    out = []
    for s in runs[0]:
        others = []
        for i, run in enumerate(index, 2):
            if (s.condition, s.clip.file) not in run:
                raise SystemExit(f"run {i} has no {s.condition} record of {s.clip.file}")
            others.append(run[(s.condition, s.clip.file)].record)
        rec = copy.deepcopy(s.record)
        for fi, frame in enumerate(rec.get("frames", [])):
            for ji, face in enumerate(frame.get("faces", [])):
                try:
                    scores = [face["score"]] + [
                        o["frames"][fi]["faces"][ji]["score"] for o in others
                    ]
                except (IndexError, KeyError) as e:
                    msg = f"{s.clip.file} ({s.condition}): the runs saw other faces"
                    raise SystemExit(msg) from e
                face["score"] = float(np.mean(scores))
            if frame.get("faces"):
                frame["score"] = max(f["score"] for f in frame["faces"])
        out.append(Scored(s.condition, s.clip, rec))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--labels", help="the labels file of the positional folders")
    p.add_argument("evals", nargs="*", type=Path, help="cre eval --videos output folders")
    p.add_argument(
        "--table",
        nargs="+",
        action="append",
        default=[],
        metavar="LABELS FOLDER",
        help="a labels file, then one cre eval --videos folder per member; repeatable",
    )
    args = p.parse_args()
    tables = [(args.labels, args.evals)] if args.evals else []
    tables += [(t[0], [Path(x) for x in t[1:]]) for t in args.table]
    if not tables or any(labels is None or len(evals) < 2 for labels, evals in tables):
        p.error("give --labels with two or more folders, or --table LABELS FOLDER FOLDER...")
    if len({len(evals) for _, evals in tables}) != 1:
        p.error("every --table needs the same members")
    scored: list[Scored] = []
    for labels, evals in tables:
        clips = {c.file: c for c in read_labels(labels)}
        scored += average([_load_records(e / "records.jsonl", clips) for e in evals])
    members = [" + ".join(str(e) for e in evals) for _, evals in tables]
    aggregation, cal, threshold = fit_decision(scored, CONDITIONS)
    table = evaluate_videos(scored, aggregation, threshold, cal, CONDITIONS)
    aucs = [table[c]["all"]["auc"] for c in CONDITIONS]
    print(f"{'; '.join(members)}: {aggregation}, threshold {threshold:.3f}")  # noqa: T201
    print(f"mean video AUC over the conditions: {np.mean(aucs):.3f}")  # noqa: T201
    for c in CONDITIONS:
        a = table[c]["all"]
        drift = f", drift {a['drift']:.3f}" if "drift" in a else ""
        print(f"  {c}: AUC {a['auc']:.3f}, balanced acc. {a['balanced_accuracy']:.3f}{drift}")  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
