"""``scripts/summarise_video_runs.py``: the training-time table of docs/EVALUATION.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run_dir(
    root: Path, name: str, extra: dict[str, object], input_align: bool | None = None
) -> Path:
    run = root / name
    run.mkdir()
    loop = {
        "rgb_stream": "efficientnet_lite0",
        "residual": "srm",
        "freeze_blocks": 6,
        "size": 160,
        "lr": 3e-4,
        "sbi_share": 0.5,
        "ffpp_share": 0.75,
        "seed": 1,
        "extra": extra,
    }
    (run / "loop_config.json").write_text(json.dumps(loop))
    rows = ["step,train_acc,val_auc_orig,val_auc_deg,val_score,seconds"]
    rows += ["150,0.6,0.8,0.7,0.75,300", "300,0.8,0.9,0.7,0.8,600"]
    (run / "metrics.csv").write_text("\n".join(rows) + "\n")
    if input_align is not None:
        (run / "checkpoint").mkdir()
        config = {"input": {"size": 160, "align": input_align}}
        (run / "checkpoint" / "config.json").write_text(json.dumps(config))
    return run


def _table(*runs: Path) -> list[str]:
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "summarise_video_runs.py"), *map(str, runs)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.splitlines()


def test_rows_marks_best_and_names_the_recipe(tmp_path: Path) -> None:
    run = _run_dir(
        tmp_path, "a", {"frames": 64, "deg_copies": 3, "align": True, "extra_reals": 132}
    )
    head, _, first, second = _table(run)
    assert "132 extra real photos/videos" in first
    assert head.startswith("| run |")
    assert "64 frames, 3 re-encoded copies" in first and "eye-levelled crops" in first
    assert "seed 1" in first
    assert "**(best)**" in second and "**(best)**" not in first  # val_score 0.8 > 0.75
    assert second.endswith("| 0.900 | 0.700 | 0.800 | 10.0 |")


def test_align_read_from_the_checkpoint_for_older_runs(tmp_path: Path) -> None:
    old_aligned = _run_dir(tmp_path, "old", {"frames": 32, "deg_copies": 1}, input_align=True)
    old_plain = _run_dir(tmp_path, "plain", {}, input_align=False)
    no_checkpoint = _run_dir(tmp_path, "bare", {})
    rows = _table(old_aligned, old_plain, no_checkpoint)[2:]
    assert all("eye-levelled crops" in r for r in rows[:2])
    assert not any("eye-levelled crops" in r for r in rows[2:])
    assert not any("re-encoded copies" in r for r in rows)  # the CLI's defaults are not named
    assert not any("extra real" in r for r in rows)
