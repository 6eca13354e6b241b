"""``cre eval``: metrics, aggregation, the report table and ROC curves; the shipped checkpoint."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from cre_models.aggregate import aggregate
from cre_models.evaluation.cli import main
from cre_models.evaluation.metrics import auc, logloss
from cre_models.model import (
    CompressionResilientNetwork,
    DenoiserConfig,
    EmbedderConfig,
    NetworkConfig,
)
from cre_models.weights import (
    DecisionSpec,
    InputSpec,
    default_weights_dir,
    load_pretrained,
    save_pretrained,
)
from tests.conftest import shared_data_path
from tests.train_helpers import labelled_crops_dir


def _pairwise_auc(y: np.ndarray, s: np.ndarray) -> float:
    pos, neg = s[y == 1], s[y == 0]
    wins = [1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg)]
    return float(np.mean(wins))


def test_auc_matches_the_pairwise_definition() -> None:
    rng = np.random.default_rng(0)
    for _ in range(5):
        y = rng.integers(0, 2, 40)
        s = rng.integers(0, 6, 40) / 5.0  # many ties
        assert auc(y, s) == pytest.approx(_pairwise_auc(y, s))
    assert np.isnan(auc([1, 1], [0.2, 0.3]))


def test_log_loss_and_aggregations() -> None:
    assert logloss([1, 0], [0.5, 0.5]) == pytest.approx(np.log(2))
    assert logloss([1], [0.0]) == pytest.approx(-np.log(1e-6))
    p = np.array([0.1, 0.2, 0.9, 0.95])
    assert aggregate(p, "mean") == pytest.approx(p.mean())
    assert aggregate(p, "max") == pytest.approx(0.95)
    assert aggregate(p, "topk_mean") == pytest.approx(0.95)
    assert aggregate(np.full(20, 0.9), "confident") == pytest.approx(0.9)
    assert aggregate(np.r_[np.full(19, 0.05), 0.6], "confident") == pytest.approx(0.05)
    with pytest.raises(ValueError):
        aggregate([], "mean")
    with pytest.raises(ValueError):
        aggregate([0.5], "median")


@pytest.fixture
def tiny_checkpoint(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    net = CompressionResilientNetwork(
        config=NetworkConfig(
            embedder=EmbedderConfig(embedding_dim=16, channels=(4, 8, 8, 8)),
            denoiser=DenoiserConfig(latent_dim=8, channels=(4, 8, 8, 8)),
            head_hidden=8,
        )
    )
    save_pretrained(
        net,
        tmp_path / "ckpt",
        input_spec=InputSpec(size=32),
        decision=DecisionSpec(threshold=0.5),
        include_denoiser=False,
    )
    return tmp_path / "ckpt"


def test_cre_eval_writes_table_and_roc(
    tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = labelled_crops_dir(tmp_path / "labelled")
    out, roc = tmp_path / "eval.md", tmp_path / "roc.png"
    args = ["--data", str(data), "--weights", str(tiny_checkpoint), "--crop-size", "64"]
    args += ["--conditions", "none,heavy,ladder-5", "--out", str(out), "--roc", str(roc)]
    rc = main([*args, "--cache-dir", str(tmp_path / "cache")])
    assert rc == 0
    printed = capsys.readouterr().out
    table = out.read_text()
    assert table.strip() in printed.strip()
    rows = [
        line
        for line in table.splitlines()
        if line.startswith("| ") and not line.startswith("| condition")
    ]
    conditions = [r.split("|")[1].strip() for r in rows if not r.startswith("| ---")]
    assert conditions[:3] == ["none", "heavy", "ladder-5"]
    assert "6 / 4" in table  # 6 faces, grouped into 4 pseudo-videos by the name prefix
    none_row = next(r for r in rows if r.startswith("| none"))
    assert "| 1.000 |" in none_row.split("6 / 4")[1]  # cos(clean, clean) == 1
    assert roc.is_file() and roc.stat().st_size > 1000


def test_the_roc_plot_goes_beside_the_report_unless_named() -> None:
    from cre_models.evaluation.cli import roc_path

    assert roc_path("runs/a/eval.md", None) == Path("runs/a/eval_roc.png")
    assert roc_path("eval.md", None) == Path("eval_roc.png")
    assert roc_path("runs/a/eval.md", "plots/roc.png") == Path("plots/roc.png")


def test_shipped_checkpoint_loads_strictly_and_scores_a_dev_crop() -> None:
    if not (default_weights_dir() / "model.safetensors").is_file():
        pytest.skip("no shipped checkpoint in this checkout")
    model, cfg = load_pretrained(default_weights_dir())
    crops = shared_data_path("dev", "dfdc_face_crops", "test", "fake")
    import cv2

    img = cv2.cvtColor(cv2.imread(str(sorted(crops.glob("*.jpg"))[0])), cv2.COLOR_BGR2RGB)
    from cre_models.transforms import FaceTransform

    p = model.predict_proba(FaceTransform.from_spec(cfg.input).to_tensor([img]))
    assert p.shape == (1,) and 0.0 <= float(p[0]) <= 1.0
    prov = cfg.training["provenance"]  # cre train: real_faces; cre train-videos: clips
    assert prov.get("real_faces", prov.get("train_real_clips", 0)) > 0
    assert (default_weights_dir() / "MODEL_CARD.md").is_file()
    assert (default_weights_dir() / "model.safetensors").stat().st_size < 25 * 2**20


def test_fit_writes_into_the_weights_folder_given_or_named_by_cre_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import argparse

    from worker.evaluate import _check_fit

    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    given = argparse.Namespace(subset="validation", weights=str(folder))
    assert _check_fit(given) == folder
    monkeypatch.setenv("CRE_WEIGHTS", str(folder))
    assert _check_fit(argparse.Namespace(subset="validation", weights=None)) == folder
    monkeypatch.setenv("CRE_WEIGHTS", "default")  # a registered name: no folder to write
    with pytest.raises(SystemExit, match="--weights FOLDER"):
        _check_fit(argparse.Namespace(subset="validation", weights=None))
    with pytest.raises(SystemExit, match="add --subset validation"):
        _check_fit(argparse.Namespace(subset=None, weights=str(folder)))
