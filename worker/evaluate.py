"""``cre eval --videos DIR --labels FILE``: labelled videos through the worker's own path.

Every clip is scored by :func:`worker.jobs.score_video` (fetch, probe, sample, detect,
crop, model, aggregation, calibration: exactly what a queued job does) under each
condition:

* ``as-delivered``: the file itself;
* ``social``, ``ladder-5``, ...: a copy re-encoded with a :mod:`cre_models.codecs` profile;
* ``half-crf35``: half the width and height, H.264 CRF 35 (the condition the project is
  judged on beside as delivered).

Re-encoded copies are cached under ``--cache-dir`` and the records of every
(condition, clip) are appended to ``OUT/records.jsonl`` as they come, so an interrupted run
resumes where it stopped. Per condition and per manipulation method (its fakes against all
reals): video AUC, balanced accuracy at the checkpoint's threshold, log-loss, expected
calibration error and the mean |score drift| against as delivered; ROC and reliability
diagrams as PNG; everything in ``OUT/metrics.json`` and ``OUT/report.md``.

``--fit`` (validation only) chooses the aggregation (best mean AUC over the conditions),
fits Platt scaling on the pooled video scores and picks the balanced-accuracy threshold on
the calibrated scores, then writes them into the checkpoint's ``config.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cre_models.aggregate import STRATEGIES, aggregate
from cre_models.evaluation.metrics import (
    Platt,
    auc,
    auc_interval,
    balanced_accuracy,
    choose_threshold,
    expected_calibration_error,
    fit_platt,
    logloss,
    reliability_bins,
    require_train_extra,
)
from cre_models.tracks import score_tracks
from cre_models.training.splits import Clip, identity_groups, load_split, read_labels

__all__ = [
    "CONDITIONS",
    "cross_fit",
    "condition_copy",
    "degrade_for",
    "evaluate_videos",
    "fit_decision",
    "identity_folds",
    "video_scores",
    "main",
]

logger = logging.getLogger(__name__)

CONDITIONS = ("as-delivered", "social", "half-crf35", "ladder-5")
"""Default conditions, in the order of the tables."""

METHODS = ("Deepfakes", "Face2Face", "FaceSwap")


def degrade_for(src: Path, condition: str, out: Path, seed: int) -> Path:
    """The copy of ``src`` a condition describes (cached at ``out``)."""
    if condition == "as-delivered":
        return src
    if out.exists():
        return out
    from cre_models.codecs import CodecProfile, get_profile
    from cre_models.degrade import degrade_video, longest_side

    out.parent.mkdir(parents=True, exist_ok=True)
    if condition == "half-crf35":
        profile = CodecProfile("libx264", (35, 35), "medium", longest_side(src) // 2)
    else:
        profile = get_profile(condition)
    degrade_video(src, out, profile, seed, keep_audio=False)
    return out


def condition_copy(videos: Path, file: str, condition: str, cache_dir: Path) -> Path:
    """The copy of ``videos / file`` that ``cre eval --videos`` scores under ``condition``:
    its draw seeded by the file's name, cached at ``cache_dir / condition / file``
    (:func:`degrade_for`). Scripts that read ``cre eval``'s copies find them through this."""
    seed = int(hashlib.sha256(file.encode()).hexdigest()[:8], 16)
    return degrade_for(videos / file, condition, cache_dir / condition / file, seed)


@dataclass
class Scored:
    """One (condition, clip) result, as stored in ``records.jsonl``."""

    condition: str
    clip: Clip
    record: dict[str, Any]


def video_scores(record: dict[str, Any], aggregation: str, topk: float = 0.25) -> float | None:
    """The raw (uncalibrated) video score of a record under ``aggregation``.

    With person tracks in the record: the max over tracks of each track's aggregated face
    scores (tracks shorter than :func:`cre_models.tracks.min_track_faces` are not used when
    longer ones exist: :func:`cre_models.tracks.score_tracks`);
    without: the aggregation of the frame scores.
    """
    frames = record.get("frames", [])
    if record.get("tracks"):
        # the worker's own rule (cre_models.tracks), re-run with another aggregation
        faces = [[x for x in f.get("faces", []) if x.get("track") is not None] for f in frames]
        tracks = score_tracks(
            [[int(x["track"]) for x in fs] for fs in faces],
            [[float(x["score"]) for x in fs] for fs in faces],
            aggregation,
            topk=topk,
        )
        counted = [t.score for t in tracks if t.counted]
        return max(counted) if counted else None
    scores = [f["score"] for f in frames if f.get("score") is not None]
    return aggregate(scores, aggregation, topk=topk) if scores else None


def _pairs(
    scored: Sequence[Scored], aggregation: str, condition: str | None = None
) -> list[tuple[int, float]]:
    """``(label, raw video score)`` of the scored records (of one condition), no-face ones out."""
    out = []
    for r in scored:
        if condition is not None and r.condition != condition:
            continue
        s = video_scores(r.record, aggregation)
        if s is not None:
            out.append((r.clip.label, s))
    return out


def _metrics(
    rows: Sequence[tuple[Clip, float]], threshold: float, base: dict[str, float] | None
) -> dict[str, float]:
    y = [c.label for c, _ in rows]
    s = [p for _, p in rows]
    lo, hi = auc_interval(y, s)
    out = {
        "n": float(len(rows)),
        "auc": auc(y, s),
        "auc_lo": lo,
        "auc_hi": hi,
        "balanced_accuracy": balanced_accuracy(y, s, threshold),
        "logloss": logloss(y, s),
        "ece": expected_calibration_error(y, s),
    }
    if base is not None:
        drifts = [abs(p - base[c.file]) for c, p in rows if c.file in base]
        out["drift"] = float(np.mean(drifts)) if drifts else float("nan")
    return out


def evaluate_videos(
    scored: Sequence[Scored],
    aggregation: str,
    threshold: float,
    calibration: Platt | None,
    conditions: Sequence[str],
) -> dict[str, dict[str, dict[str, float]]]:
    """``{condition: {"all" | method: metrics}}`` from stored records (re-aggregated)."""

    def score(r: Scored) -> float | None:
        raw = video_scores(r.record, aggregation)
        return None if raw is None else (calibration(raw) if calibration else raw)

    per: dict[str, list[tuple[Clip, float]]] = {c: [] for c in conditions}
    missing: dict[str, int] = {c: 0 for c in conditions}
    for r in scored:
        if r.condition not in per:
            continue
        s = score(r)
        if s is None:
            missing[r.condition] += 1
            continue
        per[r.condition].append((r.clip, s))
    base = {c.file: s for c, s in per.get("as-delivered", [])}
    table: dict[str, dict[str, dict[str, float]]] = {}
    for cond, rows in per.items():
        b = None if cond == "as-delivered" else base
        table[cond] = {"all": {**_metrics(rows, threshold, b), "unscored": float(missing[cond])}}
        for m in _methods(c.method for c, _ in rows if c.label == 1):
            sub = [(c, s) for c, s in rows if c.label == 0 or c.method == m]
            if any(c.method == m for c, _ in sub):
                table[cond][m] = _metrics(sub, threshold, b)
    return table


def _methods(present: Iterable[str]) -> list[str]:
    """Columns of the per-method table: the FF++ methods always (a table keeps its shape),
    then every other manipulation method present (NeuralTextures, FaceShifter, ...), sorted."""
    return [*METHODS, *sorted(set(present) - set(METHODS))]


def format_report(table: dict[str, dict[str, dict[str, float]]], threshold: float) -> str:
    """Markdown: one row per condition (all methods), then video AUC per method."""

    def f(x: float) -> str:
        return "-" if x != x else f"{x:.3f}"

    def ci(a: dict[str, float]) -> str:  # tables written before the interval have none
        lo, hi = a.get("auc_lo", float("nan")), a.get("auc_hi", float("nan"))
        return "" if lo != lo else f" [{lo:.2f}, {hi:.2f}]"

    lines = [
        f"| condition | videos | unscored | video AUC [95% CI] "
        f"| balanced acc. @ {threshold:.3f} "
        "| log-loss | ECE | mean abs. drift |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for cond, t in table.items():
        a = t["all"]
        lines.append(
            f"| {cond} | {int(a['n'])} | {int(a.get('unscored', 0))} | {f(a['auc'])}{ci(a)} "
            f"| {f(a['balanced_accuracy'])} | {f(a['logloss'])} | {f(a['ece'])} "
            f"| {f(a.get('drift', float('nan')))} |"
        )
    methods = _methods(m for t in table.values() for m in t if m != "all")
    lines += [
        "",
        "| condition | " + " | ".join(methods) + " |",
        "| --- |" + " --- |" * len(methods),
    ]
    for cond, t in table.items():
        lines.append(
            f"| {cond} | " + " | ".join(f(t[m]["auc"]) if m in t else "-" for m in methods) + " |"
        )
    return "\n".join(lines) + "\n"


def _plots(
    scored: Sequence[Scored], aggregation: str, cal: Platt | None, out: Path, conds: Sequence[str]
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.5))
    for cond in conds:
        rows = [(y, cal(s) if cal else s) for y, s in _pairs(scored, aggregation, cond)]
        if len({y for y, _ in rows}) < 2:
            continue
        y, s = [a for a, _ in rows], [b for _, b in rows]
        fpr, tpr, _ = roc_curve(y, s)
        ax1.plot(fpr, tpr, label=f"{cond} (AUC {auc(y, s):.3f})")
        bins = reliability_bins(y, s, 5)
        ax2.plot([m for m, _, _ in bins], [o for _, o, _ in bins], marker="o", label=cond)
    ax1.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax1.set(xlabel="false-positive rate", ylabel="true-positive rate", title="video ROC")
    ax2.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax2.set(xlabel="predicted P(fake)", ylabel="observed fake share", title="reliability (5 bins)")
    ax1.legend(fontsize=8)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "roc_reliability.png", dpi=100)
    plt.close(fig)


def _load_records(path: Path, clips: dict[str, Clip]) -> list[Scored]:
    out = []
    if path.exists():
        for line in path.read_text().splitlines():
            d = json.loads(line)
            if d["file"] in clips:
                out.append(Scored(d["condition"], clips[d["file"]], d["record"]))
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cre eval --videos", description=__doc__.split("\n\n")[0])
    p.add_argument("--videos", required=True, help="root the labels' paths are relative to")
    p.add_argument("--labels", required=True, help="labels.tsv: file, label, method")
    p.add_argument("--split", default=None, help="identity split JSON (with --subset)")
    p.add_argument("--subset", default=None, choices=("train", "validation", "test"))
    p.add_argument("--weights", default=None, help="checkpoint folder (default: CRE_WEIGHTS)")
    p.add_argument("--conditions", default=",".join(CONDITIONS))
    p.add_argument("--out", required=True, help="folder for records, metrics and plots")
    p.add_argument("--cache-dir", default=".cache/eval-videos", help="re-encoded copies")
    p.add_argument(
        "--fit",
        action="store_true",
        help="choose aggregation, calibration and threshold here and write them into the "
        "checkpoint's config.json (needs --subset validation and a checkpoint folder: "
        "--weights, else CRE_WEIGHTS)",
    )
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(argv if argv is not None else [])
    if "--videos" not in argv and not any(a.startswith("--videos=") for a in argv):
        from cre_models.evaluation.cli import main as eval_images  # face-crop folders

        return eval_images(argv)
    args = _parser().parse_args(argv)
    require_train_extra("cre eval --videos")
    from tqdm import tqdm

    from worker.jobs import score_video
    from worker.scoring import Scorer
    from worker.settings import Settings

    root = Path(args.videos)
    clips = read_labels(args.labels)
    if args.subset:
        split = load_split(args.split)
        clips = [c for c in clips if split.get(c.file) == args.subset]
    fit_folder = _check_fit(args) if args.fit else None
    if not clips:
        raise SystemExit("no clips to evaluate")
    conds = [c for c in args.conditions.split(",") if c]
    settings = Settings(**({"weights": args.weights} if args.weights else {}))
    scorer = Scorer(settings)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    by_file = {c.file: c for c in clips}
    rec_path = out / "records.jsonl"
    scored = _load_records(rec_path, by_file)
    sha = scorer.config.weights_sha256
    other = {
        str(w)
        for w in (s.record.get("model", {}).get("weights_sha256") for s in scored)
        if w != sha
    }
    if other:  # resuming must never mix two models' scores in one table
        raise SystemExit(
            f"{rec_path} holds records scored by other weights (sha256 {', '.join(sorted(other))}"
            f", not {sha}): give this checkpoint its own --out"
        )
    have = {(s.condition, s.clip.file) for s in scored}
    todo = [(cond, c) for cond in conds for c in clips if (cond, c.file) not in have]
    tag = f"{scorer.model_name}-{scorer.model_version}"
    with rec_path.open("a") as f:
        for cond, clip in tqdm(todo, desc="cre eval", unit="video", disable=args.no_progress):
            path = condition_copy(root, clip.file, cond, Path(args.cache_dir))
            rec = score_video(str(path), settings, scorer).model_dump(mode="json")
            f.write(
                json.dumps({"condition": cond, "file": clip.file, "model": tag, "record": rec})
                + "\n"
            )
            f.flush()
            scored.append(Scored(cond, clip, rec))
    scored = [s for s in scored if s.condition in conds]
    cfg = scorer.config
    aggregation = cfg.decision.aggregation
    cal = Platt(**cfg.decision.calibration) if cfg.decision.calibration else None
    threshold = cfg.decision.threshold
    if args.fit:
        aggregation, cal, threshold = fit_decision(scored, conds)
        assert fit_folder is not None
        _write_decision(fit_folder, aggregation, cal, threshold)
    table = evaluate_videos(scored, aggregation, threshold, cal, conds)
    report = format_report(table, threshold)
    meta = {
        "model": tag,
        "clips": len(clips),
        "subset": args.subset,
        "aggregation": aggregation,
        "threshold": threshold,
        "calibration": None if cal is None else {"a": cal.a, "b": cal.b},
    }
    (out / "metrics.json").write_text(json.dumps({"meta": meta, "table": table}, indent=1) + "\n")
    (out / "report.md").write_text(f"{json.dumps(meta)}\n\n{report}")
    _plots(scored, aggregation, cal, out, conds)
    print(report)  # noqa: T201 - the command's output
    return 0


def fit_decision(
    scored: Sequence[Scored], conds: Sequence[str], strategies: Sequence[str] | None = None
) -> tuple[str, Platt, float]:
    """Aggregation (best mean AUC of ``strategies``), Platt calibration and threshold, all on
    ``scored``. One strategy fixes the aggregation; calibration and threshold are fitted
    under it."""
    strategies = tuple(STRATEGIES) if strategies is None else tuple(strategies)
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown or not strategies:
        raise ValueError(f"aggregations must be some of {list(STRATEGIES)}, got {list(strategies)}")
    best: tuple[float, str] = (-1.0, strategies[0])
    for strat in strategies:
        aucs = []
        for cond in conds:
            rows = _pairs(scored, strat, cond)
            aucs.append(auc([y for y, _ in rows], [s for _, s in rows]))
        m = float(np.nanmean(aucs)) if aucs else float("nan")
        logger.info("aggregation %s: mean video AUC %.4f", strat, m)
        if m > best[0]:
            best = (m, strat)
    aggregation = best[1]
    pooled = _pairs(scored, aggregation)
    cal = fit_platt([y for y, _ in pooled], [s for _, s in pooled])
    calibrated = [cal(s) for _, s in pooled]
    threshold = choose_threshold([y for y, _ in pooled], calibrated)
    logger.info(
        "chosen: %s, Platt a=%.3f b=%.3f, threshold %.3f", aggregation, cal.a, cal.b, threshold
    )
    return aggregation, cal, threshold


def identity_folds(clips: Sequence[Clip], k: int) -> dict[str, int]:
    """Fold ``0..k-1`` of every clip, no person in two folds.

    The groups of :func:`cre_models.training.splits.identity_groups` are ordered by a hash
    of their files (fixed, independent of labels and scores) and each goes to the fold with
    the fewest clips so far.
    """
    if k < 2:
        raise ValueError(f"cross-fitting needs at least 2 folds, got {k}")
    groups = identity_groups(list({c.file: c for c in clips}.values()))
    if len(groups) < k:
        raise ValueError(f"{len(groups)} groups of people cannot fill {k} folds")
    groups.sort(key=lambda g: hashlib.sha256(",".join(sorted(c.file for c in g)).encode()).digest())
    sizes = [0] * k
    out: dict[str, int] = {}
    for g in groups:
        f = sizes.index(min(sizes))
        sizes[f] += len(g)
        out.update({c.file: f for c in g})
    return out


def cross_fit(
    scored: Sequence[Scored],
    conds: Sequence[str],
    k: int = 6,
    strategies: Sequence[str] | None = None,
) -> dict[str, float]:
    """Balanced accuracy per condition of :func:`fit_decision`, out of sample by person.

    Each fold of :func:`identity_folds` is held out in turn: the decision (aggregation,
    calibration, threshold) is fitted on the other folds' records and labels the held-out
    clips as the worker would (``fake`` at or above the threshold). The pooled held-out
    labels give one balanced accuracy per condition: what fitting the decision on these
    records is worth on people it did not see.
    """
    fold = identity_folds([r.clip for r in scored], k)
    calls: dict[str, list[tuple[int, float]]] = {c: [] for c in conds}
    for f in range(k):
        rest = [r for r in scored if fold[r.clip.file] != f]
        if len({r.clip.label for r in rest}) < 2:
            raise ValueError(f"fold {f}: the other folds hold one label only")
        aggregation, cal, threshold = fit_decision(rest, conds, strategies)
        for r in scored:
            if fold[r.clip.file] != f or r.condition not in calls:
                continue
            raw = video_scores(r.record, aggregation)
            if raw is not None:
                calls[r.condition].append((r.clip.label, float(cal(raw) >= threshold)))
    return {
        c: balanced_accuracy([y for y, _ in v], [p for _, p in v], 0.5) for c, v in calls.items()
    }


def _check_fit(args: argparse.Namespace) -> Path:
    """Refuse a ``--fit`` that would choose on other clips than validation ones or could not
    write its decision, before any clip is scored (a run is hours)."""
    from cre_models.weights import CONFIG_FILE

    if args.subset != "validation":
        raise SystemExit(
            "--fit chooses on validation; refusing to fit on "
            + (f"the {args.subset} split" if args.subset else "every labelled clip")
            + ": add --subset validation (and --split for a split of your own)"
        )
    from worker.settings import Settings

    folder = Path(args.weights or Settings().weights)
    config = folder / CONFIG_FILE
    if not config.is_file() or not os.access(config, os.W_OK):
        raise SystemExit(
            f"--fit writes its decision into a checkpoint folder's config.json, and {config} "
            "is not a writable one: give --weights FOLDER (a copy, to keep a shipped "
            "checkpoint as it is)"
        )
    return folder


def _write_decision(folder: Path, aggregation: str, cal: Platt, threshold: float) -> None:
    from cre_models.weights import CONFIG_FILE, load_checkpoint_config

    cfg = load_checkpoint_config(folder)
    cfg.decision.aggregation = aggregation
    cfg.decision.calibration = {"a": round(cal.a, 6), "b": round(cal.b, 6)}
    cfg.decision.threshold = round(float(threshold), 6)
    (folder / CONFIG_FILE).write_text(cfg.model_dump_json(indent=2) + "\n")
    logger.info("wrote the decision into %s", folder / CONFIG_FILE)
