"""Decisions fitted on pooled validation records, and their out-of-sample check by person."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import worker.evaluate as ev
from cre_models.training.splits import Clip, identity_groups, load_split
from cre_models.weights import load_checkpoint_config
from tests.conftest import config_only_checkpoint

ROOT = Path(__file__).resolve().parent.parent
CONDS = ("as-delivered", "half-crf35")


def _record(scores: list[float], sha: str = "x") -> dict[str, Any]:
    return {"frames": [{"score": s} for s in scores], "model": {"weights_sha256": sha}}


def _people(n: int) -> list[Clip]:
    """``n`` FF++ people, each a real clip and a fake of it (ids 100.., source 500..)."""
    out = []
    for i in range(n):
        t, s = 100 + i, 500 + i
        out += [Clip(f"real/{t}.mp4", 0, "youtube"), Clip(f"fake/{t}_{s}.mp4", 1, "Deepfakes")]
    return out


def _scored(clips: list[Clip], score: Any) -> list[ev.Scored]:
    return [ev.Scored(cond, c, _record(score(c, cond))) for cond in CONDS for c in clips]


def test_identity_groups_keep_a_person_together_and_other_people_apart() -> None:
    clips = [
        Clip("a/001.mp4", 0, "youtube"),
        Clip("a/002_001.mp4", 1, "Deepfakes"),
        Clip("a/002.mp4", 0, "youtube"),
        Clip("a/003.mp4", 0, "youtube"),
        Clip("th/talking_head.mp4", 0, "none"),
    ]
    groups = sorted(sorted(c.file for c in g) for g in identity_groups(clips))
    assert groups == [
        ["a/001.mp4", "a/002.mp4", "a/002_001.mp4"],
        ["a/003.mp4"],
        ["th/talking_head.mp4"],
    ]


def test_identity_folds_are_balanced_fixed_and_never_split_a_person() -> None:
    clips = _people(12)
    folds = ev.identity_folds(clips, 4)
    assert folds == ev.identity_folds(list(reversed(clips)), 4)  # order does not matter
    for i in range(12):
        assert folds[f"real/{100 + i}.mp4"] == folds[f"fake/{100 + i}_{500 + i}.mp4"]
    assert sorted(np.bincount(list(folds.values()))) == [6, 6, 6, 6]
    with pytest.raises(ValueError, match="cannot fill"):
        ev.identity_folds(_people(3), 4)
    with pytest.raises(ValueError, match="at least 2"):
        ev.identity_folds(clips, 1)


def test_cross_fit_never_fits_on_the_people_it_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    clips = _people(12)
    scored = _scored(clips, lambda c, _: [0.2 + 0.6 * c.label])
    folds = ev.identity_folds(clips, 3)
    fitted_on: list[set[str]] = []
    real_fit = ev.fit_decision

    def spy(rest: list[ev.Scored], conds: list[str], strategies: Any = None) -> Any:
        fitted_on.append({r.clip.file for r in rest})
        return real_fit(rest, conds, strategies)

    monkeypatch.setattr(ev, "fit_decision", spy)
    held = ev.cross_fit(scored, CONDS, 3)
    assert held == {"as-delivered": 1.0, "half-crf35": 1.0}  # separable scores stay separable
    assert len(fitted_on) == 3
    for f, files in enumerate(fitted_on):
        assert files == {c.file for c in clips if folds[c.file] != f}


def test_cross_fit_is_out_of_sample_where_the_in_sample_fit_is_not() -> None:
    # every person's fake scores above their own real, but the level is the person's own:
    # a threshold fitted on everyone is near perfect in sample, worse on people held out
    rng = np.random.default_rng(0)
    clips = _people(12)
    level = {100 + i: float(rng.uniform(0.05, 0.85)) for i in range(12)}

    def score(c: Clip, _: str) -> list[float]:
        person = int(Path(c.file).stem.split("_")[0])
        return [level[person] + 0.1 * c.label]

    scored = _scored(clips, score)
    agg, cal, thr = ev.fit_decision(scored, CONDS)
    table = ev.evaluate_videos(scored, agg, thr, cal, CONDS)
    held = ev.cross_fit(scored, CONDS, 4)
    assert held["as-delivered"] < table["as-delivered"]["all"]["balanced_accuracy"]


def _table(tmp_path: Path, name: str, clips: list[Clip], sha: str, seed: int) -> tuple[str, str]:
    rng = np.random.default_rng(seed)
    out = tmp_path / name
    out.mkdir()
    labels = out / "labels.tsv"
    labels.write_text(
        "file\tlabel\tmethod\n"
        + "".join(f"{c.file}\t{'fake' if c.label else 'real'}\t{c.method}\n" for c in clips)
    )
    with (out / "records.jsonl").open("w") as f:
        for cond in CONDS:
            for c in clips:
                s = float(np.clip(0.3 + 0.3 * c.label + rng.normal(0, 0.15), 0.01, 0.99))
                rec = _record([s] * 4, sha)
                f.write(json.dumps({"condition": cond, "file": c.file, "record": rec}) + "\n")
    return str(out), str(labels)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts/pool_decision.py"), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


def test_pool_decision_pools_tables_and_writes_the_decision(tmp_path: Path) -> None:
    ckpt, sha = config_only_checkpoint(tmp_path)
    a = _table(tmp_path, "a", _people(6), sha, 0)
    b = _table(
        tmp_path,
        "b",
        [Clip(c.file.replace("/1", "/2"), c.label, c.method) for c in _people(6)],
        sha,
        1,
    )
    before = load_checkpoint_config(ckpt).decision
    r = _run(
        "--weights",
        str(ckpt),
        "--records",
        *a,
        "--records",
        *b,
        "--conditions",
        ",".join(CONDS),
        "--folds",
        "4",
        "--json",
        str(tmp_path / "d.json"),
    )
    assert r.returncode == 0, r.stderr
    assert "24 clips (12 real, 12 fake)" in r.stdout
    assert "| half-crf35 | 24 |" in r.stdout
    assert load_checkpoint_config(ckpt).decision == before  # nothing written without --write
    fitted = json.loads((tmp_path / "d.json").read_text())
    r = _run(
        "--weights",
        str(ckpt),
        "--records",
        *a,
        "--records",
        *b,
        "--conditions",
        ",".join(CONDS),
        "--folds",
        "4",
        "--write",
    )
    assert r.returncode == 0, r.stderr
    after = load_checkpoint_config(ckpt).decision
    assert after.aggregation == fitted["aggregation"]
    assert after.threshold == pytest.approx(fitted["threshold"], abs=1e-6)
    assert after.calibration == pytest.approx({"a": fitted["a"], "b": fitted["b"]}, abs=1e-6)


def test_pool_decision_refuses_other_weights_a_clip_twice_and_test_clips(tmp_path: Path) -> None:
    ckpt, sha = config_only_checkpoint(tmp_path)
    a = _table(tmp_path, "a", _people(6), sha, 0)
    r = _run("--weights", str(ckpt), "--records", *a, "--records", *a)
    assert r.returncode != 0 and "is in both" in r.stderr
    other = _table(tmp_path, "other", _people(6), "f" * 64, 0)
    r = _run("--weights", str(ckpt), "--records", *other)
    assert r.returncode != 0 and "other weights" in r.stderr
    test_file = sorted(f for f, s in load_split().items() if s == "test")[0]
    t = _table(tmp_path, "t", [Clip(test_file, 0, "youtube"), *_people(6)], sha, 0)
    r = _run("--weights", str(ckpt), "--records", *t)
    assert r.returncode != 0 and "never fit on test" in r.stderr


def test_within_between_tells_person_levels_from_separation() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    import pool_decision

    clips = _people(6)
    # each person's fake just above their real, people at very different levels
    scored = _scored(clips, lambda c, _: [0.1 + 0.13 * (int(c.file[5:8]) - 100) + 0.05 * c.label])
    within, between = pool_decision.within_between(scored, "mean", "as-delivered")
    assert within == 1.0
    assert 0.4 < between < 0.7


def test_one_aggregation_fixes_the_fit_where_another_would_win() -> None:
    # one high frame marks a fake: max separates perfectly, mean much less
    clips = _people(8)

    def score(c: Clip, _: str) -> list[float]:
        i = int(Path(c.file).stem.split("_")[0]) - 100
        base = [0.2 + 0.05 * (i % 4)] * 7
        return [*base, 0.9 if c.label else 0.5]

    scored = _scored(clips, score)
    assert ev.fit_decision(scored, CONDS)[0] == "max"
    agg, cal, thr = ev.fit_decision(scored, CONDS, ["mean"])
    assert agg == "mean"
    pooled = [(r.clip.label, ev.video_scores(r.record, "mean")) for r in scored]
    assert cal.a != 0 and 0 < thr < 1 and all(s is not None for _, s in pooled)
    assert set(ev.cross_fit(scored, CONDS, 4, ["mean"])) == set(CONDS)
    with pytest.raises(ValueError, match="aggregations must be"):
        ev.fit_decision(scored, CONDS, ["median"])
    with pytest.raises(ValueError, match="aggregations must be"):
        ev.fit_decision(scored, CONDS, [])


def test_pool_decision_aggregation_option_fixes_the_reported_aggregation(tmp_path: Path) -> None:
    ckpt, sha = config_only_checkpoint(tmp_path)
    a = _table(tmp_path, "a", _people(6), sha, 0)
    args = ["--weights", str(ckpt), "--records", *a, "--conditions", ",".join(CONDS)]
    for name in ("max", "topk_mean"):
        r = _run(*args, "--folds", "3", "--aggregation", name)
        assert r.returncode == 0, r.stderr
        assert f"pooled fit: {name}," in r.stdout
    r = _run(*args, "--aggregation", "median")
    assert r.returncode != 0 and "invalid choice" in r.stderr
    r = _run(*args, "--folds", "7")  # 6 people cannot fill 7 folds: said, not a traceback
    assert r.returncode != 0 and "cannot fill 7 folds" in r.stderr
    assert "Traceback" not in r.stderr


def test_the_per_method_table_shows_methods_beyond_the_three_ff_methods() -> None:
    # fakes by a method no FF++ column names (NeuralTextures) get their own column and AUC
    clips = _people(4) + [Clip("nt/100_500.mp4", 1, "NeuralTextures")]

    def score(c: Clip, _: str) -> list[float]:
        return [0.2 + 0.6 * c.label]

    scored = _scored(clips, score)
    table = ev.evaluate_videos(scored, "mean", 0.5, None, CONDS)
    assert set(table["as-delivered"]) == {"all", "Deepfakes", "NeuralTextures"}
    assert table["as-delivered"]["NeuralTextures"]["n"] == 5  # 4 reals + its fake
    report = ev.format_report(table, 0.5)
    assert "| condition | Deepfakes | Face2Face | FaceSwap | NeuralTextures |" in report
    assert "| as-delivered | 1.000 | - | - | 1.000 |" in report
