"""Checkpoints: ``model.safetensors`` + ``config.json``, strict loading, ``create_model``.

A checkpoint folder holds exactly two files the loader reads:

* ``model.safetensors``: the state dict (no pickle anywhere on the load path).
* ``config.json``: a :class:`CheckpointConfig`: the architecture, the input contract the
  worker must follow (input size, normalisation, face-crop margin, frame sampling), the
  decision threshold and default aggregation, the weights' version and SHA-256, and where
  the training data came from.

Loading is strict: a missing or unexpected key, a wrong shape, a corrupt file or a
checksum mismatch raises :class:`WeightsError` naming the file.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .model import CompressionResilientNetwork, NetworkConfig

__all__ = [
    "WeightsError",
    "InputSpec",
    "DecisionSpec",
    "CheckpointConfig",
    "save_pretrained",
    "load_pretrained",
    "load_checkpoint_config",
    "create_model",
    "default_weights_dir",
    "MODEL_NAMES",
    "WEIGHTS_FILE",
    "CONFIG_FILE",
]

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
FORMAT_VERSION = 1


class WeightsError(ValueError):
    """A checkpoint could not be loaded; the message names the file and the reason."""


class InputSpec(BaseModel):
    """What the model expects, so the worker never hard-codes it."""

    model_config = ConfigDict(extra="forbid")

    size: int = Field(224, ge=32, description="square input side in pixels")
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    colour: str = "RGB"
    crop_margin: float = Field(
        0.3,
        ge=0.0,
        le=2.0,
        description="extra side added around a face box, as a fraction of its side",
    )
    frames_per_video: int = Field(32, ge=1)
    align: bool = Field(False, description="rotate crops so the eyes are level (landmarks)")


class DecisionSpec(BaseModel):
    """How scores become decisions."""

    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(0.5, ge=0.0, le=1.0)
    aggregation: str = "mean"
    calibration: dict[str, float] | None = Field(
        None,
        description="Platt scaling of the video score: {'a': ..., 'b': ...}, "
        "p = sigmoid(a * logit(score) + b); the threshold applies to the calibrated score",
    )


class CheckpointConfig(BaseModel):
    """The content of ``config.json``."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    format_version: int = FORMAT_VERSION
    name: str = "cre-seed"
    version: str = "0.0.0"
    architecture: str = "CompressionResilientNetwork"
    network: dict[str, Any] = Field(default_factory=lambda: NetworkConfig().to_dict())
    input: InputSpec = Field(default_factory=InputSpec)
    decision: DecisionSpec = Field(default_factory=DecisionSpec)
    weights_file: str = WEIGHTS_FILE
    weights_sha256: str | None = None
    training: dict[str, Any] = Field(default_factory=dict)

    def network_config(self) -> NetworkConfig:
        return NetworkConfig.from_dict(dict(self.network))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_pretrained(
    model: CompressionResilientNetwork,
    directory: str | Path,
    *,
    name: str = "cre-seed",
    version: str = "0.0.0",
    input_spec: InputSpec | None = None,
    decision: DecisionSpec | None = None,
    training: dict[str, Any] | None = None,
    include_denoiser: bool = True,
) -> CheckpointConfig:
    """Write ``model.safetensors`` and ``config.json`` into ``directory``.

    With ``include_denoiser=False`` (allowed only when the classifier sees the raw input)
    the denoiser is left out, which is what an inference checkpoint needs: about a tenth
    of the size. The written config says so, and loading builds the network without it.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    net_cfg = model.config.to_dict()
    state = model.state_dict()
    if not include_denoiser:
        if model.config.classifier_input == "denoised":
            raise ValueError("the classifier reads the denoiser's output: it cannot be left out")
        net_cfg["denoiser"] = None
        state = {k: v for k, v in state.items() if not k.startswith("denoiser.")}
    net_cfg["embedder"]["rgb_pretrained"] = False  # the weights below replace any ImageNet init
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    weights_path = directory / WEIGHTS_FILE
    save_file(
        tensors, str(weights_path), metadata={"format": "pt", "name": name, "version": version}
    )
    cfg = CheckpointConfig(
        name=name,
        version=version,
        network=net_cfg,
        input=input_spec or InputSpec(),
        decision=decision or DecisionSpec(),
        weights_sha256=_sha256(weights_path),
        training=training or {},
    )
    (directory / CONFIG_FILE).write_text(cfg.model_dump_json(indent=2) + "\n")
    logger.info("saved checkpoint %s v%s to %s", name, version, directory)
    return cfg


def load_checkpoint_config(directory: str | Path) -> CheckpointConfig:
    """Read and validate ``config.json`` of a checkpoint folder."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise WeightsError(
            f"{path}: no such file (a checkpoint folder needs {CONFIG_FILE} and {WEIGHTS_FILE})"
        )
    try:
        raw = json.loads(path.read_text())
        return CheckpointConfig.model_validate(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise WeightsError(f"{path}: not valid JSON: {e}") from e
    except ValidationError as e:
        raise WeightsError(f"{path}: invalid checkpoint config: {e}") from e


def load_pretrained(
    directory: str | Path,
    device: str | torch.device = "cpu",
    verify_checksum: bool = True,
) -> tuple[CompressionResilientNetwork, CheckpointConfig]:
    """Build the network described by ``config.json`` and load its weights strictly.

    Returns the model in eval mode on ``device`` and its config.
    """
    directory = Path(directory)
    cfg = load_checkpoint_config(directory)
    weights_path = directory / cfg.weights_file
    if not weights_path.is_file():
        raise WeightsError(f"{weights_path}: no such file")
    if verify_checksum and cfg.weights_sha256:
        actual = _sha256(weights_path)
        if actual != cfg.weights_sha256:
            raise WeightsError(
                f"{weights_path}: SHA-256 {actual} does not match "
                f"{cfg.weights_sha256} in {CONFIG_FILE}"
            )
    try:
        net_cfg = cfg.network_config()
    except (TypeError, ValueError) as e:
        raise WeightsError(f"{directory / CONFIG_FILE}: bad network config: {e}") from e
    net_cfg.embedder.rgb_pretrained = False
    model = CompressionResilientNetwork(config=net_cfg)
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"{weights_path}: not a readable safetensors file: {e}") from e
    try:
        # assign, not copy: copying large tensors starts torch's OpenMP pool, after which a
        # forked child that uses torch hangs (ForkWarmWorker loads weights in its parent)
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as e:
        raise WeightsError(
            f"{weights_path}: weights do not match the architecture in {CONFIG_FILE}: {e}"
        ) from e
    model.eval().to(device)
    return model, cfg


def default_weights_dir() -> Path:
    """The checkpoint shipped inside the package (``cre_models/weights/default``)."""
    return Path(__file__).parent / "weights" / "default"


def _seed_network(**overrides: Any) -> CompressionResilientNetwork:
    return CompressionResilientNetwork(config=NetworkConfig(**overrides))


MODEL_NAMES: dict[str, str] = {
    "default": "the shipped, trained checkpoint (cre_models/weights/default)",
    "cre-seed": "the seed architecture, randomly initialised (embedding 512, latent 256)",
    "cre-seed-srm": "the seed architecture with fixed SRM residual kernels, randomly initialised",
}


def create_model(
    name_or_path: str | Path = "default", device: str | torch.device = "cpu"
) -> tuple[CompressionResilientNetwork, CheckpointConfig]:
    """Build a model by registered name or load one from a checkpoint folder.

    ``"default"`` loads the shipped weights; ``"cre-seed"`` and friends give untrained
    networks (with a default config); anything else is taken as a checkpoint folder path.
    """
    key = str(name_or_path)
    if key == "default":
        return load_pretrained(default_weights_dir(), device)
    if key == "cre-seed":
        model = _seed_network()
    elif key == "cre-seed-srm":
        from .model import EmbedderConfig

        model = _seed_network(embedder=EmbedderConfig(residual="srm"))
    else:
        path = Path(name_or_path)
        if not path.exists():
            raise WeightsError(
                f"{path}: no such checkpoint folder, and not a registered model name "
                f"({', '.join(MODEL_NAMES)})"
            )
        return load_pretrained(path, device)
    cfg = CheckpointConfig(name=key, network=model.config.to_dict())
    return model.eval().to(device), cfg
