"""Checkpoints: ``model.safetensors`` + ``config.json``, strict loading, ``create_model``.

A checkpoint folder holds exactly two files the loader reads:

* ``model.safetensors``: the state dict (no pickle anywhere on the load path).
* ``config.json``: a :class:`CheckpointConfig`: the architecture, the input contract the
  worker must follow (input size, normalisation, face-crop margin, frame sampling), the
  decision threshold and default aggregation, the weights' version and SHA-256, and where
  the training data came from.

Loading is strict: a missing or unexpected key, a wrong shape, a corrupt file or a
checksum mismatch raises :class:`WeightsError` naming the file. :func:`resolve_weights`
says what a weights name means (the shipped folder, a registered untrained network, a
checkpoint folder); the worker, training and evaluation all go through it. Importing this
module does not import torch: the queue's tools read ``config.json`` without it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .transforms import DEFAULT_MEAN, DEFAULT_STD

if TYPE_CHECKING:
    import torch

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
    "resolve_weights",
    "default_weights_dir",
    "shipped_weights_dir",
    "SHIPPED",
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
    """What the model expects (:class:`cre_models.transforms.FaceTransform` follows it)."""

    model_config = ConfigDict(extra="forbid")

    size: int = Field(224, ge=32, description="square input side in pixels")
    mean: tuple[float, float, float] = Field(
        DEFAULT_MEAN, description="per-channel mean (on 0-1) subtracted from RGB inputs"
    )
    std: tuple[float, float, float] = Field(
        DEFAULT_STD, description="per-channel standard deviation (on 0-1) they are divided by"
    )
    crop_margin: float = Field(
        0.3,
        ge=0.0,
        le=2.0,
        description="extra side added around a face box, as a fraction of its side",
    )
    frames_per_video: int = Field(32, ge=1)
    align: bool = Field(False, description="rotate crops so the eyes are level (landmarks)")
    flip_average: bool = Field(
        False,
        description="the worker (cre run, the queue, cre eval --videos) scores each crop and "
        "its mirror image and averages the two probabilities (twice the model time); "
        "cre eval --data and training-time validation score the crop alone",
    )

    @model_validator(mode="before")
    @classmethod
    def _legacy_colour(cls, data: Any) -> Any:
        # older checkpoints say "colour": "RGB", a field nothing read (inputs are RGB)
        if isinstance(data, dict) and "colour" in data:
            data = dict(data)
            if data.pop("colour") != "RGB":
                raise ValueError("input.colour: only RGB inputs exist")
        return data


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
    network: dict[str, Any] = Field(default_factory=lambda: _network_config().to_dict())
    input: InputSpec = Field(default_factory=InputSpec)
    decision: DecisionSpec = Field(default_factory=DecisionSpec)
    weights_file: str = WEIGHTS_FILE
    weights_sha256: str | None = None
    training: dict[str, Any] = Field(default_factory=dict)

    def network_config(self) -> NetworkConfig:
        return _network_config(**self.network)


def _network_config(**fields: Any) -> NetworkConfig:
    from .model import NetworkConfig

    return NetworkConfig.from_dict(fields)


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
    from safetensors.torch import save_file

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
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .model import CompressionResilientNetwork

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


SHIPPED: dict[str, str] = {
    "default": "the shipped checkpoint (cre_models/weights/default): the most accurate",
    "fast": "the previous shipped checkpoint (cre_models/weights/fast): 160 px, half the "
    "model time, lower AUC (docs/EVALUATION.md)",
}
"""Checkpoints shipped inside the package, by name: ``cre_models/weights/<name>``."""


def shipped_weights_dir(name: str) -> Path:
    """The folder of a checkpoint shipped inside the package (see :data:`SHIPPED`)."""
    if name not in SHIPPED:
        raise WeightsError(f"{name!r} is not a shipped checkpoint ({', '.join(SHIPPED)})")
    return Path(__file__).parent / "weights" / name


def default_weights_dir() -> Path:
    """The checkpoint shipped inside the package (``cre_models/weights/default``)."""
    return shipped_weights_dir("default")


MODEL_NAMES: dict[str, str] = {
    **SHIPPED,
    "cre-seed": "the seed architecture, randomly initialised (embedding 512, latent 256)",
    "cre-seed-srm": "the seed architecture with fixed SRM residual kernels, randomly initialised",
}


def resolve_weights(name_or_path: str | Path) -> str | Path:
    """What a weights name means: a registered untrained network's name or a checkpoint folder.

    ``default`` and ``fast`` are shipped folders (:data:`SHIPPED`), which must hold a
    ``config.json``; a registered
    name (``cre-seed``...) comes back as it is; anything else must be an existing folder
    (``~`` expanded), returned as a :class:`~pathlib.Path`. Nothing is loaded.

    Raises:
        WeightsError: with what to do about it.
    """
    key = str(name_or_path)
    if key in SHIPPED:
        folder = shipped_weights_dir(key)
        if not (folder / CONFIG_FILE).is_file():
            raise WeightsError(
                f"no trained checkpoint at {folder} (the {key} weights): train one with "
                "`cre train`, or name a checkpoint folder (config.json + model.safetensors), "
                "or 'cre-seed' for an untrained network"
            )
        return folder
    if key in MODEL_NAMES:
        return key
    folder = Path(key).expanduser()
    if not folder.is_dir():
        raise WeightsError(
            f"{key!r}: no such checkpoint folder and not a registered model name "
            f"({', '.join(MODEL_NAMES)})"
        )
    return folder


def create_model(
    name_or_path: str | Path = "default", device: str | torch.device = "cpu"
) -> tuple[CompressionResilientNetwork, CheckpointConfig]:
    """Build a model by registered name or load one from a checkpoint folder.

    ``"default"`` loads the shipped weights; ``"cre-seed"`` and ``"cre-seed-srm"`` give
    untrained networks (with a default config; seed torch first for repeatable weights);
    anything else is a checkpoint folder (see :func:`resolve_weights`).
    """
    from .model import CompressionResilientNetwork, EmbedderConfig, NetworkConfig

    resolved = resolve_weights(name_or_path)
    if isinstance(resolved, Path):
        return load_pretrained(resolved, device)
    embedder = EmbedderConfig(residual="srm") if resolved == "cre-seed-srm" else EmbedderConfig()
    model = CompressionResilientNetwork(config=NetworkConfig(embedder=embedder))
    cfg = CheckpointConfig(name=resolved, network=model.config.to_dict())
    return model.eval().to(device), cfg
