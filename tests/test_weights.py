"""Checkpoint save/load: round trips, strictness and clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from cre_models.model import CompressionResilientNetwork
from cre_models.weights import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    DecisionSpec,
    InputSpec,
    WeightsError,
    create_model,
    default_weights_dir,
    load_checkpoint_config,
    load_pretrained,
    resolve_weights,
    save_pretrained,
)
from tests.test_model import rand_images, tiny_network


@pytest.fixture
def saved(tmp_path: Path) -> tuple[CompressionResilientNetwork, Path]:
    torch.manual_seed(0)
    model = tiny_network().eval()
    save_pretrained(
        model,
        tmp_path,
        name="tiny",
        version="1.2.3",
        input_spec=InputSpec(size=64, crop_margin=0.25, frames_per_video=8),
        decision=DecisionSpec(threshold=0.4, aggregation="max"),
        training={"data": "unit test"},
    )
    return model, tmp_path


def test_round_trip_gives_identical_outputs(
    saved: tuple[CompressionResilientNetwork, Path],
) -> None:
    model, path = saved
    loaded, cfg = load_pretrained(path)
    x = rand_images(3, 64)
    with torch.no_grad():
        logits_a, recon_a = model(x, return_reconstruction=True)
        logits_b, recon_b = loaded(x, return_reconstruction=True)
    assert torch.equal(logits_a, logits_b)
    assert torch.equal(recon_a, recon_b)
    assert (cfg.name, cfg.version, cfg.input.size, cfg.decision.threshold) == (
        "tiny",
        "1.2.3",
        64,
        0.4,
    )
    assert cfg.input.crop_margin == 0.25 and cfg.decision.aggregation == "max"
    assert cfg.training == {"data": "unit test"}
    assert not loaded.training


def test_inference_checkpoint_without_denoiser(tmp_path: Path) -> None:
    model = tiny_network().eval()
    save_pretrained(model, tmp_path, include_denoiser=False)
    assert not any(k.startswith("denoiser.") for k in load_file(str(tmp_path / WEIGHTS_FILE)))
    loaded, cfg = load_pretrained(tmp_path)
    assert loaded.denoiser is None and cfg.network["denoiser"] is None
    x = rand_images(2, 48)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    with pytest.raises(ValueError, match="without a denoiser"):
        loaded(x, return_reconstruction=True)
    denoised = tiny_network(classifier_input="denoised")
    with pytest.raises(ValueError, match="cannot be left out"):
        save_pretrained(denoised, tmp_path / "d", include_denoiser=False)


def test_config_json_is_plain_and_records_the_contract(
    saved: tuple[CompressionResilientNetwork, Path],
) -> None:
    _, path = saved
    raw = json.loads((path / CONFIG_FILE).read_text())
    assert raw["input"]["mean"] == [0.5, 0.5, 0.5] and raw["input"]["size"] == 64
    assert raw["input"]["frames_per_video"] == 8
    assert len(raw["weights_sha256"]) == 64
    assert raw["network"]["embedder"]["embedding_dim"] == 32


def test_missing_key_is_a_clear_error(saved: tuple[CompressionResilientNetwork, Path]) -> None:
    _, path = saved
    state = load_file(str(path / WEIGHTS_FILE))
    state.pop("embedder.fusion.0.weight")
    save_file(state, str(path / WEIGHTS_FILE))
    with pytest.raises(WeightsError, match=r"(?s)model\.safetensors.*Missing key"):
        load_pretrained(path, verify_checksum=False)


def test_unexpected_key_is_a_clear_error(saved: tuple[CompressionResilientNetwork, Path]) -> None:
    _, path = saved
    state = load_file(str(path / WEIGHTS_FILE))
    state["extra.weight"] = torch.zeros(1)
    save_file(state, str(path / WEIGHTS_FILE))
    with pytest.raises(WeightsError, match="Unexpected key"):
        load_pretrained(path, verify_checksum=False)


def test_wrong_shape_is_a_clear_error(saved: tuple[CompressionResilientNetwork, Path]) -> None:
    _, path = saved
    state = load_file(str(path / WEIGHTS_FILE))
    key = "head.0.weight"
    state[key] = torch.zeros(state[key].shape[0] + 1, state[key].shape[1])
    save_file(state, str(path / WEIGHTS_FILE))
    with pytest.raises(WeightsError, match="size mismatch"):
        load_pretrained(path, verify_checksum=False)


def test_checksum_mismatch_names_the_file(saved: tuple[CompressionResilientNetwork, Path]) -> None:
    _, path = saved
    data = bytearray((path / WEIGHTS_FILE).read_bytes())
    data[-1] ^= 0xFF
    (path / WEIGHTS_FILE).write_bytes(bytes(data))
    with pytest.raises(WeightsError, match=r"model\.safetensors: SHA-256"):
        load_pretrained(path)


@pytest.mark.parametrize("content", [b"", b"not a safetensors file at all", b"\x00" * 64])
def test_corrupt_weights_file(
    saved: tuple[CompressionResilientNetwork, Path], content: bytes
) -> None:
    _, path = saved
    (path / WEIGHTS_FILE).write_bytes(content)
    with pytest.raises(WeightsError, match=r"model\.safetensors: not a readable safetensors"):
        load_pretrained(path, verify_checksum=False)


def test_pickle_is_not_accepted(saved: tuple[CompressionResilientNetwork, Path]) -> None:
    model, path = saved
    torch.save(model.state_dict(), path / WEIGHTS_FILE)
    with pytest.raises(WeightsError, match="not a readable safetensors"):
        load_pretrained(path, verify_checksum=False)


def test_bad_config_files(saved: tuple[CompressionResilientNetwork, Path], tmp_path: Path) -> None:
    _, path = saved
    with pytest.raises(WeightsError, match=r"config\.json: no such file"):
        load_checkpoint_config(tmp_path / "nowhere")
    (path / CONFIG_FILE).write_text("{not json")
    with pytest.raises(WeightsError, match="not valid JSON"):
        load_pretrained(path)
    (path / CONFIG_FILE).write_text(json.dumps({"input": {"size": 8}}))
    with pytest.raises(WeightsError, match="invalid checkpoint config"):
        load_pretrained(path)
    (path / CONFIG_FILE).write_text(json.dumps({"surprise": 1}))
    with pytest.raises(WeightsError, match="invalid checkpoint config"):
        load_pretrained(path)


def test_missing_weights_file(saved: tuple[CompressionResilientNetwork, Path]) -> None:
    _, path = saved
    (path / WEIGHTS_FILE).unlink()
    with pytest.raises(WeightsError, match=r"model\.safetensors: no such file"):
        load_pretrained(path)


def test_create_model_names_and_paths(
    saved: tuple[CompressionResilientNetwork, Path], tmp_path: Path
) -> None:
    model, cfg = create_model("cre-seed")
    assert isinstance(model, CompressionResilientNetwork) and cfg.name == "cre-seed"
    srm, _ = create_model("cre-seed-srm")
    assert srm.config.embedder.residual == "srm"
    _, path = saved
    loaded, cfg = create_model(path)
    assert cfg.name == "tiny"
    with pytest.raises(WeightsError, match="not a registered model name"):
        create_model(tmp_path / "does-not-exist")


def test_one_resolver_for_every_weights_name(
    saved: tuple[CompressionResilientNetwork, Path], tmp_path: Path
) -> None:
    _, path = saved
    assert resolve_weights("default") == default_weights_dir()
    assert resolve_weights("fast") == default_weights_dir().parent / "fast"
    assert resolve_weights("cre-seed") == "cre-seed"
    assert resolve_weights(str(path)) == path
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    with pytest.raises(WeightsError, match="no such checkpoint folder"):
        resolve_weights(not_a_folder)


def test_the_shipped_checkpoints_load_and_differ_as_documented() -> None:
    """``default`` and ``fast`` both load strictly (checksums verified), and ``fast`` is the
    smaller input: the trade the README states."""
    from cre_models.weights import SHIPPED, load_checkpoint_config, shipped_weights_dir

    configs = {name: load_checkpoint_config(shipped_weights_dir(name)) for name in SHIPPED}
    assert configs["fast"].input.size < configs["default"].input.size
    assert configs["fast"].weights_sha256 != configs["default"].weights_sha256
    model, _ = create_model("fast")
    assert sum(p.numel() for p in model.parameters()) > 0
    with pytest.raises(WeightsError, match="not a shipped checkpoint"):
        shipped_weights_dir("retinaface")


def test_reading_a_config_does_not_import_torch() -> None:
    """The queue's tools resolve weights and read config.json without loading torch."""
    code = (
        "import sys; from cre_models.weights import resolve_weights, load_checkpoint_config; "
        "load_checkpoint_config(resolve_weights('default')); assert 'torch' not in sys.modules"
    )
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root, env=env)
