"""``cre train``'s recipe: its configuration, its network and its training items.

Data: folders of real faces (photos, videos) and optionally labelled fakes (``real/`` +
``fake/`` or FaceForensics++ layout), see :mod:`cre_models.training.data`. Every real face
also yields a self-blended fake (:mod:`cre_models.training.sbi`) unless ``--sbi off``, so
real-only training works. Each training item is a real face and its self-blended twin,
sharing one random crop (zoom, shift, flip); each image is then compressed independently
(:class:`cre_models.conditions.CompressionSampler`: simulator severities none..heavy and
real-codec profiles). The two stages that train on these items are
:mod:`cre_models.training.stages`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..augmentation import SEVERITIES
from ..conditions import LADDER, CompressionSampler
from ..images import resize_square
from ..model import CompressionResilientNetwork, DenoiserConfig, EmbedderConfig, NetworkConfig
from ..transforms import FaceTransform, to_tensor
from .data import FaceSample
from .sbi import make_sbi

__all__ = ["TrainConfig", "FaceDataset", "build_model", "collate"]


@dataclass
class TrainConfig:
    """Every knob of a training run (written into the checkpoint's config and model card)."""

    data: list[str] = field(default_factory=list)
    out: str = "runs/default"
    val: list[str] = field(default_factory=list)
    report: list[str] = field(default_factory=list)
    # faces
    size: int = 128
    crop_margin: float = 0.3
    store_size: int = 256
    degrade_size: int = 224
    frames_per_video: int = 32
    worker_margin: float | None = None  # crop margin written for the worker (default: crop_margin)
    zoom: tuple[float, float] = (
        0.62,
        1.0,
    )  # side of the random crop as a fraction of the stored crop
    drop_gray: bool = True
    sbi: str = "auto"  # auto: on for real faces; on; off
    # model
    rgb_stream: str = "seed"
    pretrained: bool = True
    residual: str = "gaussian"
    embedding_dim: int = 512
    channels: tuple[int, ...] = (32, 64, 128, 256)
    denoiser: bool = True
    denoiser_channels: tuple[int, ...] = (64, 128, 256, 512)
    latent_dim: int = 256
    classifier_input: str = "input"
    head_hidden: int = 256
    # optimisation
    stage1_epochs: int = 10
    stage1_lr: float = 1e-3
    stage2_epochs: int = 20
    stage2_lr: float = 1e-4
    ce_weight: float = 1.0
    recon_weight: float = 0.1
    consistency: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = 16  # items per batch; an SBI item is a real + fake pair
    epoch_size: int = 0  # items per epoch (0: one pass over the faces)
    # compression
    severities: tuple[str, ...] = SEVERITIES
    codec_prob: float = 0.3
    codec_profiles: tuple[str, ...] = ("social", *LADDER)
    # run
    seed: int = 0
    threads: int = 0
    workers: int = 0
    device: str = "auto"
    name: str = "cre"
    version: str = "0.1.0"
    threshold: str = "auto"  # "auto": balanced-accuracy threshold on --val; or a number
    aggregation: str = "mean"
    progress: bool = True
    cache_dir: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def transform(self) -> FaceTransform:
        """The input contract of the checkpoint this run writes (size and worker margin)."""
        margin = self.crop_margin if self.worker_margin is None else self.worker_margin
        return FaceTransform(self.size, margin)


def _random_view(
    rng: np.random.Generator, zoom: tuple[float, float], side: int
) -> tuple[int, int, int, bool]:
    s = max(8, round(side * rng.uniform(*zoom)))
    free = side - s
    cx = free / 2 + rng.uniform(-0.06, 0.06) * side
    cy = free / 2 + rng.uniform(-0.06, 0.06) * side
    x0 = int(np.clip(round(cx), 0, free))
    y0 = int(np.clip(round(cy), 0, free))
    return x0, y0, s, bool(rng.random() < 0.5)


def _view(img: np.ndarray, view: tuple[int, int, int, bool], out: int) -> np.ndarray:
    x0, y0, s, flip = view
    crop = img[y0 : y0 + s, x0 : x0 + s]
    if flip:
        crop = crop[:, ::-1]
    return resize_square(np.ascontiguousarray(crop), out)


class FaceDataset(Dataset[dict[str, torch.Tensor]]):
    """Training items: ``clean`` and ``input`` (compressed) ``(K, 3, S, S)``, ``label`` ``(K,)``.

    A real face with SBI gives K=2 (itself and its self-blended fake); a labelled face K=1.
    Item ``i`` of epoch ``e`` is a pure function of ``(seed, e, i)``.
    """

    def __init__(
        self, samples: Sequence[FaceSample], cfg: TrainConfig, compress: CompressionSampler
    ) -> None:
        if not samples:
            raise ValueError("no training faces")
        self.samples = list(samples)
        self.cfg = cfg
        self.compress = compress
        has_fakes = any(s.label == 1 for s in samples)
        self.use_sbi = cfg.sbi != "off"
        if cfg.sbi == "off" and not has_fakes:
            raise ValueError("--sbi off needs labelled fakes in the data")
        self.epoch = 0
        self.length = cfg.epoch_size or len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, self.epoch, index])
        sample = (
            self.samples[int(rng.integers(len(self.samples)))]
            if cfg.epoch_size
            else self.samples[index]
        )
        base = sample.image
        images = [base]
        labels = [sample.label]
        if sample.label == 0 and self.use_sbi:
            fake, _ = make_sbi(base, rng, cfg.crop_margin)
            images.append(fake)
            labels.append(1)
        view = _random_view(rng, cfg.zoom, base.shape[0])
        clean = [_view(im, view, cfg.degrade_size) for im in images]
        inputs = [self.compress(im, rng) for im in clean]
        return {  # at the model's input size
            "clean": to_tensor(clean, cfg.size),
            "input": to_tensor(inputs, cfg.size),
            "label": torch.tensor(labels),
        }


def collate(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: torch.cat([it[k] for it in items]) for k in items[0]}


def build_model(cfg: TrainConfig) -> CompressionResilientNetwork:
    """The network a config describes (ImageNet weights in the RGB stream when asked)."""
    pretrained = cfg.pretrained and cfg.rgb_stream == "efficientnet_lite0"
    embedder = EmbedderConfig(
        cfg.embedding_dim,
        cfg.residual,
        cfg.rgb_stream,
        tuple(cfg.channels),
        rgb_pretrained=pretrained,
    )
    denoiser = (
        DenoiserConfig(cfg.latent_dim, tuple(cfg.denoiser_channels)) if cfg.denoiser else None
    )
    return CompressionResilientNetwork(
        config=NetworkConfig(
            embedder,
            denoiser,
            head_hidden=cfg.head_hidden,
            classifier_input=cfg.classifier_input,  # type: ignore[arg-type]
        )
    )
