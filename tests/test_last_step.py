"""``scripts/last_step.py``: a run's last-step weights as a checkpoint."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from cre_models.training.loop import LoopConfig, build_network, train_loop
from cre_models.weights import DecisionSpec, InputSpec, load_pretrained, save_pretrained
from tests.test_video_training_e2e import TINY_LOOP, tiny_clips

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import last_step  # noqa: E402


def test_the_last_step_is_written_with_the_runs_contract(tmp_path: Path) -> None:
    videos = tiny_clips(4)
    run = tmp_path / "run"
    with pytest.raises(FileNotFoundError, match="missing"):
        last_step.write_last_step(run, tmp_path / "last")
    cfg = LoopConfig(out=str(run), batch_size=4, steps=4, eval_every=2, **TINY_LOOP)
    train_loop(cfg, videos, videos)
    save_pretrained(  # the run's checkpoint/: other weights than the last step's
        build_network(cfg),
        run / "checkpoint",
        name="cre-test",
        version="0.0.1",
        input_spec=InputSpec(size=64, crop_margin=0.25),
        decision=DecisionSpec(threshold=0.4, aggregation="max"),
        training={"summary": {"best_step": 2}},
    )
    assert last_step.write_last_step(run, tmp_path / "last") == 4
    last, last_cfg = load_pretrained(tmp_path / "last")
    kept, kept_cfg = load_pretrained(run / "checkpoint")
    final = torch.load(run / "resume.pt", weights_only=True)["model"]
    for k, v in last.state_dict().items():
        assert torch.equal(v, final[k]), k
    assert any(not torch.equal(v, final[k]) for k, v in kept.state_dict().items())
    assert last_cfg.input == kept_cfg.input and last_cfg.network == kept_cfg.network
    assert last_cfg.training["summary"] == {"best_step": 2, "kept": "last", "kept_step": 4}
    assert last_cfg.decision.aggregation == "mean"  # left to cre eval --fit / pool_decision


def test_a_run_can_keep_its_last_step(tmp_path: Path) -> None:
    videos = tiny_clips(4)
    cfg = LoopConfig(
        out=str(tmp_path / "run"), batch_size=4, steps=4, eval_every=2, keep="last", **TINY_LOOP
    )
    model, summary = train_loop(cfg, videos, videos)
    final = torch.load(tmp_path / "run" / "resume.pt", weights_only=True)["model"]
    assert all(torch.equal(v, final[k]) for k, v in model.state_dict().items())
    assert summary["kept"] == "last" and summary["kept_step"] == 4
    assert summary["best_step"] in (2, 4)  # still validated and recorded
    with pytest.raises(ValueError, match="keep must be one of best, last"):
        LoopConfig(keep="final")
