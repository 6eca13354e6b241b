"""``scripts/detail_probe.py``: the versions it scores and its table, on the shipped weights."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from cre_models.training.cache import CacheSpec
from cre_models.training.detail import detail_level
from cre_models.weights import load_checkpoint_config, resolve_weights
from worker.demo import sample_photo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import detail_probe as dp  # noqa: E402


def test_versions_change_the_detail_the_way_their_names_say() -> None:
    # skin-like: a smooth shading with fine low-contrast texture (what make-up smooths away)
    rng = np.random.default_rng(0)
    shade = np.linspace(90, 170, 128, dtype=np.float32)[None, :, None] * np.ones((128, 1, 3))
    face = np.clip(shade + rng.normal(0, 6, (128, 128, 3)), 0, 255).astype(np.uint8)
    level = detail_level(face)
    assert dp.VERSIONS["as-is"](face) is face
    assert detail_level(dp.VERSIONS["bilateral"](face)) < level
    assert detail_level(dp.VERSIONS["resample-0.6"](face)) < level
    assert detail_level(dp.VERSIONS["unsharp"](face)) > level


def _cache(tmp: Path) -> tuple[Path, Path, Path]:
    """A labels file, a split and a crop cache (in the default checkpoint's crop format) of a
    validation real, a validation fake and a test clip."""
    cfg = load_checkpoint_config(resolve_weights("default"))
    spec = CacheSpec(size=cfg.input.size, margin=cfg.input.crop_margin, align=cfg.input.align)
    face = cv2.resize(sample_photo("astronaut")[0:300, 120:420], (spec.size, spec.size))
    files = {"real/100.mp4": ("real", "validation"), "fake/101_102.mp4": ("fake", "validation")}
    files["real/200.mp4"] = ("real", "test")
    labels = tmp / "labels.tsv"
    labels.write_text(
        "file\tlabel\tmethod\n" + "".join(f"{f}\t{y}\tx\n" for f, (y, _) in files.items())
    )
    split = tmp / "split.json"
    split.write_text(json.dumps({"clips": {f: s for f, (_, s) in files.items()}}))
    root = tmp / "cache" / spec.key() / "orig"
    root.mkdir(parents=True)
    for f in files:
        np.savez(
            root / (f.replace("/", "__") + ".npz"),
            crops=np.stack([face, face[:, ::-1]]),
            landmarks=np.zeros((2, 5, 2), np.float32),
            times=np.array([0.0, 1.0], np.float32),
            det_scores=np.ones(2, np.float32),
        )
    return labels, split, tmp / "cache"


def test_the_probe_prints_and_writes_one_row_per_label(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels, split, cache = _cache(tmp_path)
    out = tmp_path / "probe.json"
    args = ["--weights", "default", "--data", str(tmp_path), "--labels", str(labels)]
    args += ["--split", str(split), "--cache-dir", str(cache), "--every", "1", "--threads", "1"]
    assert dp.main([*args, "--json", str(out)]) == 0
    table = json.loads(out.read_text())
    assert set(table) == {"real", "fake"} and table["real"]["clips"] == 1  # the test clip: never
    assert set(table["real"]) == {"clips", "detail_level", *dp.VERSIONS}
    assert table["real"]["detail_level"] > 0
    assert all(0.0 <= table["fake"][v] <= 1.0 for v in dp.VERSIONS)
    text = capsys.readouterr().out
    assert "| real | 1 |" in text and "change, unsharp" in text
    table_lines = [line for line in text.splitlines() if line.startswith("|")]
    assert len({line.count("|") for line in table_lines}) == 1  # header, rule, rows: same columns
    with pytest.raises(SystemExit):  # the test split is not a choice
        dp.main([*args, "--subset", "test"])
    with pytest.raises(SystemExit, match="not cached"):
        dp.main([*args, "--cache-dir", str(tmp_path / "empty")])
