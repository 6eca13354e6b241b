"""``scripts/ensemble_records.py``: face scores of several runs averaged, over pooled tables."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONDS = ("as-delivered", "social", "half-crf35", "ladder-5")


def _write_run(folder: Path, clips: list[tuple[str, int]], score: float, flip: bool) -> None:
    """Records of ``clips``: one frame, one face each; fakes score ``score`` (reals 1 -
    score), or the other way round with ``flip``."""
    folder.mkdir(parents=True)
    lines = []
    for cond in CONDS:
        for file, label in clips:
            s = score if bool(label) != flip else 1.0 - score
            face = {"box": [0, 0, 10, 10], "score": s}
            record = {"frames": [{"index": 0, "score": s, "faces": [face]}]}
            lines.append(json.dumps({"condition": cond, "file": file, "record": record}))
    (folder / "records.jsonl").write_text("\n".join(lines) + "\n")


def _labels(path: Path, clips: list[tuple[str, int]]) -> Path:
    rows = ["file\tlabel\tmethod"]
    rows += [f"{f}\t{'fake' if y else 'real'}\t{'Deepfakes' if y else 'youtube'}" for f, y in clips]
    path.write_text("\n".join(rows) + "\n")
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "scripts/ensemble_records.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def two_tables(tmp_path: Path) -> dict[str, Path]:
    a = [(f"a/{100 + i}.mp4", 0) for i in range(4)] + [(f"a/{100 + i}_9.mp4", 1) for i in range(4)]
    b = [(f"b/{200 + i}.mp4", 0) for i in range(3)] + [(f"b/{200 + i}_9.mp4", 1) for i in range(3)]
    out = {"la": _labels(tmp_path / "a.tsv", a), "lb": _labels(tmp_path / "b.tsv", b)}
    # member 1 ranks every clip right (0.9 / 0.1); member 2 ranks table b's clips wrong with
    # less confidence (0.3 / 0.7): the average still ranks every clip right
    _write_run(tmp_path / "m1a", a, 0.9, False)
    _write_run(tmp_path / "m1b", b, 0.9, False)
    _write_run(tmp_path / "m2a", a, 0.9, False)
    _write_run(tmp_path / "m2b", b, 0.7, True)
    return {**out, **{p.name: p for p in tmp_path.iterdir() if p.is_dir()}}


def test_tables_are_pooled_and_faces_averaged(two_tables: dict[str, Path]) -> None:
    t = {k: str(v) for k, v in two_tables.items()}
    both = _run("--table", t["la"], t["m1a"], t["m2a"], "--table", t["lb"], t["m1b"], t["m2b"])
    assert both.returncode == 0, both.stderr
    assert "mean video AUC over the conditions: 1.000" in both.stdout
    # member 2 alone (twice) ranks table b's clips wrong: pooled AUC below 1
    alone = _run("--table", t["la"], t["m2a"], t["m2a"], "--table", t["lb"], t["m2b"], t["m2b"])
    assert alone.returncode == 0, alone.stderr
    assert "mean video AUC over the conditions: 1.000" not in alone.stdout


def test_bad_tables_are_refused(two_tables: dict[str, Path]) -> None:
    t = {k: str(v) for k, v in two_tables.items()}
    uneven = _run("--table", t["la"], t["m1a"], t["m2a"], "--table", t["lb"], t["m1b"])
    assert uneven.returncode == 2 and "two or more folders" in uneven.stderr
    nothing = _run()
    assert nothing.returncode == 2 and "--table" in nothing.stderr
    # a member without a record the first one has: a clear error, not a wrong average
    missing = _run("--table", t["la"], t["m1a"], t["m1b"])
    assert missing.returncode != 0 and "has no" in missing.stderr
