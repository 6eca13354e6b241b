"""Weight averaging of checkpoints (cre_models.training.soup, scripts/average_checkpoints.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cre_models.training.soup import average_checkpoints, average_state_dicts
from cre_models.weights import InputSpec, load_checkpoint_config, load_pretrained, save_pretrained
from tests.test_model import tiny_network

ROOT = Path(__file__).resolve().parents[1]


def _member(folder: Path, seed: int, size: int = 64, **net: object) -> Path:
    torch.manual_seed(seed)
    model = tiny_network(**net).eval()
    save_pretrained(
        model,
        folder,
        name="tiny",
        version=f"0.0.{seed}",
        input_spec=InputSpec(size=size, crop_margin=0.25, frames_per_video=8),
        training={"summary": {"best_step": seed}},
        include_denoiser=False,
    )
    return folder


def test_average_state_dicts_means_floats_and_keeps_counters() -> None:
    a = {"w": torch.tensor([1.0, 3.0]), "n": torch.tensor(5)}
    b = {"w": torch.tensor([3.0, 5.0]), "n": torch.tensor(9)}
    out = average_state_dicts([a, b])
    assert torch.equal(out["w"], torch.tensor([2.0, 4.0])) and int(out["n"]) == 5
    with pytest.raises(ValueError, match="nothing"):
        average_state_dicts([])
    with pytest.raises(ValueError, match="other tensors"):
        average_state_dicts([a, {"w": b["w"]}])
    with pytest.raises(ValueError, match="shape"):
        average_state_dicts([a, {"w": torch.zeros(3), "n": b["n"]}])


def test_average_checkpoints_writes_the_mean_and_its_members(tmp_path: Path) -> None:
    one, two = _member(tmp_path / "a", 1), _member(tmp_path / "b", 2)
    average_checkpoints([one, two], tmp_path / "soup", "soup", "0.1.0")
    soup, cfg = load_pretrained(tmp_path / "soup")  # loads strictly, checksum verified
    m1, _ = load_pretrained(one)
    m2, _ = load_pretrained(two)
    for k, v in soup.state_dict().items():
        if v.dtype.is_floating_point:
            want = (m1.state_dict()[k].double() + m2.state_dict()[k].double()) / 2
            assert torch.allclose(v.double(), want, atol=1e-6), k
    assert [m["version"] for m in cfg.training["soup"]] == ["0.0.1", "0.0.2"]
    assert cfg.decision.calibration is None  # chosen again by cre eval --fit
    assert cfg.input == load_checkpoint_config(one).input


def test_average_checkpoints_refuses_mismatched_members(tmp_path: Path) -> None:
    one = _member(tmp_path / "a", 1)
    with pytest.raises(ValueError, match="at least two"):
        average_checkpoints([one], tmp_path / "s0", "s", "0")
    with pytest.raises(ValueError, match="architecture"):
        average_checkpoints(
            [one, _member(tmp_path / "c", 3, residual="srm")], tmp_path / "x", "s", "0"
        )
    other_size = _member(tmp_path / "b", 2, size=96)
    with pytest.raises(ValueError, match="input contract"):
        average_checkpoints([one, other_size], tmp_path / "s1", "s", "0")
    r = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "average_checkpoints.py"),
            str(tmp_path / "s2"),
            str(one),
            str(other_size),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert r.returncode != 0 and "input contract" in r.stderr
    assert not (tmp_path / "s2").exists()
