"""``scripts/face_contrast.py``: the face-against-frame contrasts and their out-of-sample table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from cre_models.training.splits import load_split
from tests.conftest import config_only_checkpoint

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import face_contrast as fc  # noqa: E402


def _frame(face_blur: float, frame_blur: float, seed: int = 0) -> np.ndarray:
    """Textured noise everywhere; the face's square and the rest blurred separately."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    out = image.copy() if frame_blur == 0 else cv2.GaussianBlur(image, (0, 0), frame_blur)
    face = image[60:180, 100:220]
    out[60:180, 100:220] = face if face_blur == 0 else cv2.GaussianBlur(face, (0, 0), face_blur)
    return np.asarray(out)


BOX = (100.0, 60.0, 220.0, 180.0)


def test_a_softer_face_than_its_frame_reads_negative_and_the_frame_blur_cancels() -> None:
    soft_face = fc.region_contrast(_frame(1.5, 0.0), BOX)
    sharp = fc.region_contrast(_frame(0.0, 0.0), BOX)
    assert soft_face is not None and sharp is not None
    assert soft_face["lap"] < -1.0 and soft_face["noise"] < -0.5
    assert abs(sharp["lap"]) < 0.2 and abs(sharp["noise"]) < 0.2
    # the whole frame as soft as the face: no contrast, whatever the absolute softness
    both = fc.region_contrast(_frame(1.5, 1.5), BOX)
    assert both is not None and abs(both["lap"]) < 0.3 and abs(both["noise"]) < 0.3


def test_a_face_with_no_ring_left_in_the_frame_gives_nothing() -> None:
    image = _frame(0.0, 0.0)
    assert fc.region_contrast(image, (0.0, 0.0, 320.0, 240.0)) is None
    assert fc.region_contrast(image, (-40.0, -40.0, 2.0, 2.0)) is None


def test_clip_contrast_is_the_median_over_frames_with_a_face() -> None:
    frames = {0.0: _frame(1.5, 0.0, 1), 0.5: _frame(1.5, 0.0, 2), 1.0: _frame(0.0, 0.0, 3)}
    small = [110.0, 70.0, 130.0, 90.0]
    record = {
        "frames": [
            {"time_s": 0.0, "faces": [{"box": small}, {"box": list(BOX)}]},  # largest counts
            {"time_s": 0.5, "faces": [{"box": list(BOX)}]},
            {"time_s": 1.0, "faces": []},  # no face: not counted
            {"time_s": 2.0, "faces": [{"box": list(BOX)}]},  # not decoded: not counted
        ]
    }
    got = fc.clip_contrast(frames, record)
    assert got["frames"] == 2 and got["lap"] < -1.0
    assert fc.clip_contrast(frames, {"frames": []}) == {"frames": 0, "lap": None, "noise": None}


def _records(tmp: Path, sha: str, test_clip: str | None = None) -> tuple[Path, Path, Path]:
    """Score records that say nothing and features where only ``lap`` tells the labels."""
    rng = np.random.default_rng(0)
    files = [(f"real/{100 + i}.mp4", 0) for i in range(12)]
    files += [(f"fake/{100 + i}_{500 + i}.mp4", 1) for i in range(12)]
    if test_clip:
        files.append((test_clip, 0))
    labels = tmp / "labels.tsv"
    labels.write_text(
        "file\tlabel\tmethod\n" + "".join(f"{f}\t{'fake' if y else 'real'}\tx\n" for f, y in files)
    )
    (tmp / "rec").mkdir()
    (tmp / "feat").mkdir()
    with (tmp / "rec/records.jsonl").open("w") as r, (tmp / "feat/features.jsonl").open("w") as f:
        for cond in ("as-delivered", "half-crf35"):
            for name, y in files:
                s = float(rng.uniform(0.2, 0.8))
                rec = {"frames": [{"score": s}], "model": {"weights_sha256": sha}, "score": s}
                r.write(json.dumps({"condition": cond, "file": name, "record": rec}) + "\n")
                lap = float(rng.normal(-1.0 if y else 0.0, 0.2))
                row = {"condition": cond, "file": name, "frames": 1, "lap": lap, "noise": 0.0}
                f.write(json.dumps({**row, "noise": float(rng.normal())}) + "\n")
    return tmp / "rec", labels, tmp / "feat"


def _table(ckpt: Path, rec: Path, labels: Path, feat: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable, str(ROOT / "scripts/face_contrast.py"), "table",
            "--weights", str(ckpt), "--records", str(rec), str(labels), "--features", str(feat),
            "--condition", "as-delivered", "--condition", "half-crf35", "--folds", "4",
        ],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip


def test_table_finds_a_signal_only_one_contrast_carries(tmp_path: Path) -> None:
    ckpt, sha = config_only_checkpoint(tmp_path)
    r = _table(ckpt, *_records(tmp_path, sha))
    assert r.returncode == 0, r.stderr
    cells = {
        tuple(c.strip() for c in row.strip("|").split("|")[:2]): [
            c.strip() for c in row.strip("|").split("|")
        ]
        for row in r.stdout.splitlines()
        if row.startswith("| lap |") or row.startswith("| noise |")
    }
    for cond in ("as-delivered", "half-crf35"):
        lap = cells[("lap", cond)]
        assert lap[2] == "24" and float(lap[3]) > 0.95  # fakes lower, as the header says
        assert float(lap[4]) < 0.8 and float(lap[5]) > 0.95
        assert float(cells[("noise", cond)][5]) < 0.85


def test_table_refuses_test_clips(tmp_path: Path) -> None:
    ckpt, sha = config_only_checkpoint(tmp_path)
    test_clip = sorted(f for f, s in load_split().items() if s == "test")[0]
    r = _table(ckpt, *_records(tmp_path, sha, test_clip))
    assert r.returncode != 0 and "never chosen on test" in r.stderr


def test_background_box_moves_sideways_to_a_side_that_fits() -> None:
    # room on the left: left; none on the left: right; room on neither: the farther side
    assert fc.background_box((200, 50, 240, 100), 320, 240, 0.25) == (136.0, 50.0, 176.0, 100.0)
    assert fc.background_box((20, 50, 60, 100), 320, 240, 0.25) == (84.0, 50.0, 124.0, 100.0)
    assert fc.background_box((130, 50, 210, 130), 320, 240, 0.25)[0] == 130 - 1.6 * 80
    assert fc.background_box((100, 50, 180, 130), 320, 240, 0.25)[0] == 100 + 1.6 * 80


class _MeanScorer:
    """Scores a crop by its mean brightness: enough to see which pixels were cut."""

    class transform:  # noqa: N801
        margin = 0.0

    def crop(self, image: np.ndarray, boxes: list) -> list[np.ndarray]:  # type: ignore[type-arg]
        return [image[int(b.y0) : int(b.y1), int(b.x0) : int(b.x1)] for b in boxes]

    def predict(self, crops: list[np.ndarray]) -> np.ndarray:
        return np.array([c.mean() / 255 for c in crops])


def test_clip_background_scores_the_patch_beside_the_face_not_the_face() -> None:
    image = np.zeros((240, 320, 3), dtype=np.uint8)
    image[50:100, 200:240] = 255  # a bright face; the frame beside it is dark grey
    image[50:100, 136:176] = 64
    frames = {0.0: image, 0.5: image}
    record = {
        "frames": [
            {"time_s": 0.0, "faces": [{"box": [200, 50, 240, 100]}]},
            {"time_s": 0.5, "faces": [{"box": [200, 50, 240, 100]}]},
            {"time_s": 1.0, "faces": []},
        ]
    }
    got = fc.clip_background(frames, record, _MeanScorer())
    p = 64 / 255
    assert got["bg_frames"] == 2 and abs(got["bg"] - np.log(p / (1 - p))) < 1e-6
    assert fc.clip_background(frames, {"frames": []}, _MeanScorer()) == {"bg": None, "bg_frames": 0}
