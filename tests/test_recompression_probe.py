"""``scripts/recompression_probe.py``: the probe's JPEG region and its out-of-sample table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from cre_models.faces import FaceBox
from cre_models.training.splits import load_split
from tests.conftest import config_only_checkpoint

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import recompression_probe as rp  # noqa: E402


def test_jpeg_region_changes_the_face_surroundings_only() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    box = FaceBox(150.0, 100.0, 190.0, 150.0)
    before = image.copy()
    out = rp.jpeg_region(image, box, 0.25, 20)
    assert (image == before).all()  # the frame itself is not touched
    assert out.shape == image.shape and out.dtype == np.uint8
    changed = np.argwhere((out != image).any(axis=2))
    assert len(changed) > 0.5 * 40 * 50  # noise does not survive JPEG at quality 20
    (y0, x0), (y1, x1) = changed.min(0), changed.max(0)
    assert x0 <= 150 and x1 >= 190 and y0 <= 100 and y1 >= 150  # the crop is covered
    assert x0 % 8 == 0 and y0 % 8 == 0  # on the frame's 8x8 grid
    assert (out[:, :x0] == image[:, :x0]).all() and (out[:, x1 + 1 :] == image[:, x1 + 1 :]).all()
    assert (rp.jpeg_region(image, box, 0.25, 20) == out).all()  # deterministic


def _tables(tmp: Path, sha: str, test_clip: str | None = None, first: int = 100) -> list[str]:
    """Score and probe records where only the rise under the probe tells the labels apart."""
    rng = np.random.default_rng(first)
    files = [(f"real/{first + i}.mp4", 0) for i in range(12)]
    files += [(f"fake/{first + i}_{first + 400 + i}.mp4", 1) for i in range(12)]
    if test_clip:
        files.append((test_clip, 0))
    labels = tmp / "labels.tsv"
    labels.write_text(
        "file\tlabel\tmethod\n" + "".join(f"{f}\t{'fake' if y else 'real'}\tx\n" for f, y in files)
    )
    base = {f: float(rng.uniform(0.2, 0.8)) for f, _ in files}  # the score says nothing
    args = []
    for name, cond in (("score", "as-delivered"), ("probe", "as-delivered+jpeg20")):
        (tmp / name).mkdir()
        with (tmp / name / "records.jsonl").open("w") as fh:
            for f, y in files:
                s = base[f] if name == "score" else base[f] + (0.02 if y else 0.15)
                rec = {
                    "frames": [{"score": s}],
                    "model": {"weights_sha256": sha},
                    "score": s,
                    "label": "fake" if s >= 0.5 else "real",
                }
                fh.write(json.dumps({"condition": cond, "file": f, "record": rec}) + "\n")
        args += ["--records", str(tmp / name), str(labels), "-"]
    return args


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts/recompression_probe.py"), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


def test_table_finds_a_signal_only_the_rise_carries(tmp_path: Path) -> None:
    ckpt, sha = config_only_checkpoint(tmp_path)
    r = _run(
        "table",
        "--weights",
        str(ckpt),
        *_tables(tmp_path, sha),
        "--case",
        "as-delivered",
        "as-delivered+jpeg20",
        "--folds",
        "4",
    )
    assert r.returncode == 0, r.stderr
    row = next(x for x in r.stdout.splitlines() if x.startswith("| as-delivered |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2] == "24"
    auc_score, auc_both = float(cells[3]), float(cells[4])
    assert auc_score < 0.75 and auc_both > 0.95


def test_table_refuses_test_clips_and_other_weights(tmp_path: Path) -> None:
    ckpt, sha = config_only_checkpoint(tmp_path)
    test_clip = sorted(f for f, s in load_split().items() if s == "test")[0]
    (tmp_path / "a").mkdir()
    r = _run(
        "table",
        "--weights",
        str(ckpt),
        *_tables(tmp_path / "a", sha, test_clip),
        "--case",
        "as-delivered",
        "as-delivered+jpeg20",
    )
    assert r.returncode != 0 and "never chosen on test" in r.stderr
    (tmp_path / "b").mkdir()
    r = _run(
        "table",
        "--weights",
        str(ckpt),
        *_tables(tmp_path / "b", "f" * 64),
        "--case",
        "as-delivered",
        "as-delivered+jpeg20",
    )
    assert r.returncode != 0 and "other weights" in r.stderr


def test_fit_pools_the_cases_and_apply_measures_it_on_other_clips_only(tmp_path: Path) -> None:
    ckpt, sha = config_only_checkpoint(tmp_path)
    case = ["--case", "as-delivered", "as-delivered+jpeg20"]
    (tmp_path / "a").mkdir()
    fitted = tmp_path / "fit.json"
    r = _run(
        "fit", "--weights", str(ckpt), *_tables(tmp_path / "a", sha), *case,
        "--folds", "4", "--out", str(fitted),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    got = json.loads(fitted.read_text())
    assert got["weights"][1] < 0  # reals rise more under the probe than fakes
    assert len(got["fitted_on"]) == 24 and got["weights_sha256"] == sha
    assert got["validation_out_of_sample"]["as-delivered"]["auc_combined"] > 0.95
    # other people, test clips allowed (the one measurement): only the rise tells them apart
    test_clip = sorted(f for f, s in load_split().items() if s == "test")[0]
    (tmp_path / "b").mkdir()
    tables_b = _tables(tmp_path / "b", sha, test_clip, first=200)
    r = _run("apply", "--fit", str(fitted), "--weights", str(ckpt), *tables_b)
    assert r.returncode == 0, r.stderr
    row = next(x for x in r.stdout.splitlines() if x.startswith("| as-delivered |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2] == "25" and float(cells[3]) < 0.75 and float(cells[4]) > 0.9
    # the clips it was fitted on are refused, and so is a fit of other weights
    (tmp_path / "c").mkdir()
    r = _run("apply", "--fit", str(fitted), "--weights", str(ckpt), *_tables(tmp_path / "c", sha))
    assert r.returncode != 0 and "the fit saw" in r.stderr
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**got, "weights_sha256": "f" * 64}))
    r = _run("apply", "--fit", str(other), "--weights", str(ckpt), *tables_b)
    assert r.returncode != 0 and "other weights" in r.stderr


def test_h264_region_is_one_smoothed_frame_of_even_size() -> None:
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (121, 161, 3), dtype=np.uint8)  # odd frame sides
    box = FaceBox(60.0, 40.0, 101.0, 83.0)
    out = rp.jpeg_region(image, box, 0.25, 45, "h264")
    changed = (out != image).any(axis=2)
    assert changed[40:83, 60:101].mean() > 0.9
    ys, xs = np.nonzero(changed)
    assert (xs.max() - xs.min() + 1) % 2 == 0 and (ys.max() - ys.min() + 1) % 2 == 0
    # CRF 45 smooths: less high-frequency energy than the noise it was given
    assert (
        np.abs(np.diff(out[45:80, 65:95].astype(int), axis=1)).mean()
        < np.abs(np.diff(image[45:80, 65:95].astype(int), axis=1)).mean()
    )
    assert (rp.jpeg_region(image, box, 0.25, 45, "h264") == out).all()


def test_window_region_encodes_the_square_over_time_and_keeps_the_rest() -> None:
    rng = np.random.default_rng(3)
    window = [rng.integers(0, 256, (96, 128, 3), dtype=np.uint8) for _ in range(4)]
    box = FaceBox(50.0, 30.0, 80.0, 66.0)
    out = rp.window_region(window, box, 0.25, 40)
    assert out.shape == window[-1].shape
    changed = (out != window[-1]).any(axis=2)
    ys, xs = np.nonzero(changed)
    assert changed[30:66, 50:80].mean() > 0.9
    assert not changed[:, : xs.min()].any() and not changed[: ys.min()].any()
    # the last frame of a clip of four different noise frames is not a still of the last one
    x0, y0, x1, y1 = rp._region(window[-1].shape, box, 0.25)
    still = rp.h264_still(window[-1][y0:y1, x0:x1], 40)
    assert not np.array_equal(out[y0:y1, x0:x1], still)
