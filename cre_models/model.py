"""The seed's models: a two-stream embedder, a denoising autoencoder and the full network.

* :class:`ResilientEmbedder`: an RGB stream and a noise-residual stream, fused into one
  embedding. The residual extractor (``gaussian``, ``srm``, ``constrained``) and the RGB
  stream (``seed`` CNN or ``efficientnet_lite0``) are configuration choices.
* :class:`DenoisingAutoencoder`: five stride-2 conv stages down (224 -> 7) and five
  transposed-conv stages up, Tanh output; learns to undo compression.
* :class:`CompressionResilientNetwork`: denoiser + embedder + classifier head.

Input contract (also written into every checkpoint's ``config.json``): float32 tensors
``(B, 3, H, W)``, RGB, scaled to ``[-1, 1]`` (``x / 127.5 - 1`` for uint8, the default of
:mod:`cre_models.transforms`), ``H, W >= 32``.
The denoiser's Tanh output lives in the same range, so a reconstruction can be fed back
to the embedder and compared with the clean image directly.

Which image the classifier sees is ``NetworkConfig.classifier_input``: ``"input"`` (the
default: the embedder sees the frame as received and the denoiser is an auxiliary
reconstruction branch that shapes training; inference can skip it entirely) or
``"denoised"`` (the embedder sees the denoiser's reconstruction). ``docs/EVALUATION.md``
compares the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, overload

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .efficientnet_lite import LITE0_DEPTH, EfficientNetLite0
from .layers import RESIDUAL_EXTRACTORS, ConvStream, build_residual_extractor
from .transforms import to_tensor

__all__ = [
    "EmbedderConfig",
    "DenoiserConfig",
    "NetworkConfig",
    "ResilientEmbedder",
    "DenoisingAutoencoder",
    "CompressionResilientNetwork",
    "extract_resilient_features",
    "validate_images",
    "MIN_INPUT_SIZE",
    "RGB_STREAMS",
    "RESIDUAL_NORMS",
    "LITE0_DEPTH",
    "MIN_DETAIL_PX",
    "cap_detail",
]

MIN_INPUT_SIZE = 32
"""Smallest accepted height/width: four 2x poolings must leave at least 2x2 pixels."""

RGB_STREAMS = ("seed", "efficientnet_lite0")
RESIDUAL_NORMS = ("none", "rms")
"""How the noise residual is scaled before its stream: ``none`` (as filtered) or ``rms``
(each image's residual divided by its own root mean square, so that the stream sees where
the high frequencies are, relative to the rest of the face, and not how much of them the
codec left: a re-encoded face has less of them everywhere)."""
RESIDUAL_RMS_FLOOR = 1e-3
"""Smallest RMS divided by (a flat image's residual is not blown up to noise)."""
MIN_DETAIL_PX = 32
"""Smallest ``EmbedderConfig.detail_px`` other than 0 (off)."""
ClassifierInput = Literal["input", "denoised"]


@dataclass
class EmbedderConfig:
    """Architecture of :class:`ResilientEmbedder`."""

    embedding_dim: int = 512
    residual: str = "gaussian"
    rgb_stream: str = "seed"
    channels: tuple[int, ...] = (32, 64, 128, 256)
    blur_kernel: int = 5
    blur_sigma: float = 1.0
    fusion_dropout: float = 0.1
    rgb_pretrained: bool = False  # load ImageNet weights at build time (efficientnet_lite0)
    residual_norm: str = "none"  # one of RESIDUAL_NORMS
    rgb_blocks: int = LITE0_DEPTH  # efficientnet_lite0: MBConv blocks kept (fewer: local features)
    detail_px: int = 0  # > 0: both streams see the input shrunk to this side and enlarged back

    def __post_init__(self) -> None:
        self.channels = tuple(self.channels)
        if self.detail_px != 0 and self.detail_px < MIN_DETAIL_PX:
            raise ValueError(
                f"detail_px must be 0 (off) or at least {MIN_DETAIL_PX}, got {self.detail_px}"
            )
        if not 1 <= self.rgb_blocks <= LITE0_DEPTH:
            raise ValueError(f"rgb_blocks must be in 1..{LITE0_DEPTH}, got {self.rgb_blocks}")
        if self.rgb_blocks != LITE0_DEPTH and self.rgb_stream != "efficientnet_lite0":
            raise ValueError(
                f"rgb_blocks applies to the efficientnet_lite0 stream, not {self.rgb_stream!r}"
            )
        if self.residual_norm not in RESIDUAL_NORMS:
            raise ValueError(
                f"residual_norm must be one of {RESIDUAL_NORMS}, got {self.residual_norm!r}"
            )
        if self.embedding_dim < 2 or self.embedding_dim % 2:
            raise ValueError(f"embedding_dim must be even and >= 2, got {self.embedding_dim}")
        if self.residual not in RESIDUAL_EXTRACTORS:
            raise ValueError(
                f"residual must be one of {RESIDUAL_EXTRACTORS}, got {self.residual!r}"
            )
        if self.rgb_stream not in RGB_STREAMS:
            raise ValueError(f"rgb_stream must be one of {RGB_STREAMS}, got {self.rgb_stream!r}")


@dataclass
class DenoiserConfig:
    """Architecture of :class:`DenoisingAutoencoder`."""

    latent_dim: int = 256
    channels: tuple[int, ...] = (64, 128, 256, 512)

    def __post_init__(self) -> None:
        self.channels = tuple(self.channels)


@dataclass
class NetworkConfig:
    """Architecture of :class:`CompressionResilientNetwork`."""

    embedder: EmbedderConfig = field(default_factory=EmbedderConfig)
    denoiser: DenoiserConfig | None = field(default_factory=DenoiserConfig)
    num_classes: int = 2
    head_hidden: int = 256
    head_dropout: float = 0.3
    classifier_input: ClassifierInput = "input"

    def __post_init__(self) -> None:
        if isinstance(self.embedder, dict):
            self.embedder = EmbedderConfig(**self.embedder)
        if isinstance(self.denoiser, dict):
            self.denoiser = DenoiserConfig(**self.denoiser)
        if self.num_classes < 1:
            raise ValueError("num_classes must be >= 1")
        if self.classifier_input not in ("input", "denoised"):
            raise ValueError(
                f"classifier_input must be 'input' or 'denoised', got {self.classifier_input!r}"
            )
        if self.classifier_input == "denoised" and self.denoiser is None:
            raise ValueError("classifier_input='denoised' needs a denoiser")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NetworkConfig:
        return cls(**d)


def validate_images(x: Any, min_size: int = MIN_INPUT_SIZE) -> torch.Tensor:
    """Check a model input batch and return it; raise ``ValueError`` with the reason."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"expected a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(
            f"expected a floating-point tensor scaled to [-1, 1], got dtype {x.dtype}; "
            "use extract_resilient_features() or cre_models.transforms.to_tensor() for uint8 images"
        )
    if x.ndim != 4:
        raise ValueError(f"expected shape (B, 3, H, W), got {tuple(x.shape)}")
    if x.shape[1] != 3:
        raise ValueError(f"expected 3 (RGB) channels, got {x.shape[1]} in shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError("empty batch")
    if x.shape[2] < min_size or x.shape[3] < min_size:
        raise ValueError(
            f"images must be at least {min_size}x{min_size}, got {x.shape[2]}x{x.shape[3]}"
        )
    if not bool(torch.isfinite(x).all()):
        raise ValueError("input contains NaN or infinite values")
    return x


def cap_detail(x: torch.Tensor, detail_px: int) -> torch.Tensor:
    """``x`` shrunk (area average) so that its longer side is at most ``detail_px`` and
    enlarged back (bilinear) to its own size: detail finer than that scale, the first thing a
    codec or a downscale removes, is gone at every quality. ``0`` or a smaller input: ``x``."""
    h, w = x.shape[-2:]
    if detail_px <= 0 or max(h, w) <= detail_px:
        return x
    scale = detail_px / max(h, w)
    small = (max(1, round(h * scale)), max(1, round(w * scale)))
    shrunk = F.interpolate(x, size=small, mode="area")
    return F.interpolate(shrunk, size=(h, w), mode="bilinear", align_corners=False)


class ResilientEmbedder(nn.Module):
    """Two-stream embedder: RGB stream + noise-residual stream, fused.

    ``(B, 3, H, W)`` in ``[-1, 1]`` -> ``(B, embedding_dim)``; any ``H, W >= 32``.
    """

    def __init__(
        self, embedding_dim: int = 512, config: EmbedderConfig | None = None, **kwargs: Any
    ):
        super().__init__()
        if config is None:
            config = EmbedderConfig(embedding_dim=embedding_dim, **kwargs)
        elif kwargs:
            raise ValueError("pass either config or keyword arguments, not both")
        self.config = config
        half = config.embedding_dim // 2
        self.rgb_stream = _build_rgb_stream(config, half)
        self.residual = build_residual_extractor(
            config.residual, config.blur_kernel, config.blur_sigma
        )
        self.noise_stream = ConvStream(self.residual.out_channels, config.channels, half, nn.ReLU)
        self.fusion = nn.Sequential(
            nn.Linear(config.embedding_dim, config.embedding_dim),
            nn.LayerNorm(config.embedding_dim),
            nn.SiLU(),
            nn.Dropout(config.fusion_dropout),
        )

    @property
    def embedding_dim(self) -> int:
        return self.config.embedding_dim

    @property
    def rgb_trunk(self) -> EfficientNetLite0 | None:
        """The RGB stream's EfficientNet-Lite0 trunk; ``None`` for the seed CNN."""
        trunk = getattr(self.rgb_stream, "trunk", None)
        return trunk if isinstance(trunk, EfficientNetLite0) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        validate_images(x)
        x = cap_detail(x, self.config.detail_px)
        rgb = self.rgb_stream(x)  # (B, D/2)
        noise = self.noise_stream(self.noise_residual(x))  # (B, D/2)
        return self.fusion(torch.cat([rgb, noise], dim=1))  # (B, D)

    def noise_residual(self, x: torch.Tensor) -> torch.Tensor:
        """The noise stream's input: the filtered residual, scaled as ``residual_norm`` says."""
        r = self.residual(x)  # (B, C, H, W)
        if self.config.residual_norm == "rms":
            rms = r.float().pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt()
            r = r / rms.clamp_min(RESIDUAL_RMS_FLOOR).to(r.dtype)
        return r


def _build_rgb_stream(config: EmbedderConfig, out_dim: int) -> nn.Module:
    if config.rgb_stream == "seed":
        return ConvStream(3, config.channels, out_dim, nn.SiLU)
    if config.rgb_stream == "efficientnet_lite0":
        from .efficientnet_lite import EfficientNetLite0Stream

        return EfficientNetLite0Stream(
            out_dim, pretrained=config.rgb_pretrained, blocks=config.rgb_blocks
        )
    raise ValueError(f"unknown rgb_stream {config.rgb_stream!r}")


def _down(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 4, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.LeakyReLU(0.2),
    )


def _up(cin: int, cout: int, last: bool = False) -> nn.Sequential:
    if last:
        return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1), nn.Tanh())
    return nn.Sequential(
        nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
    )


class DenoisingAutoencoder(nn.Module):
    """Five stride-2 stages down, five up; returns ``(reconstruction, latent)``.

    ``(B, 3, H, W)`` -> ``(B, 3, H, W)`` in ``[-1, 1]`` and ``(B, latent_dim, H/32, W/32)``
    (``7x7`` at 224 px). Sizes that are not multiples of 32 are padded (reflect) and the
    reconstruction is cropped back, so any ``H, W >= 32`` works.
    """

    def __init__(self, latent_dim: int = 256, config: DenoiserConfig | None = None) -> None:
        super().__init__()
        self.config = config or DenoiserConfig(latent_dim=latent_dim)
        chans = (3, *self.config.channels, self.config.latent_dim)
        self.encoder = nn.Sequential(
            *[_down(a, b) for a, b in zip(chans[:-1], chans[1:], strict=True)]
        )
        rev = chans[::-1]
        ups = [
            _up(a, b, last=(i == len(rev) - 2))
            for i, (a, b) in enumerate(zip(rev[:-1], rev[1:], strict=True))
        ]
        self.decoder = nn.Sequential(*ups)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        validate_images(x)
        h, w = x.shape[-2:]
        ph, pw = (-h) % 32, (-w) % 32
        xp = F.pad(x, [0, pw, 0, ph], mode="reflect") if (ph or pw) else x
        latent = self.encoder(xp)  # (B, latent_dim, H/32, W/32)
        recon = self.decoder(latent)[..., :h, :w]  # (B, 3, H, W)
        return recon, latent


class CompressionResilientNetwork(nn.Module):
    """Denoiser + two-stream embedder + classifier head.

    ``forward(x)`` returns logits ``(B, num_classes)``; with ``return_reconstruction=True``
    also the denoiser's reconstruction ``(B, 3, H, W)``. Class 1 is "manipulated".
    """

    def __init__(
        self,
        embedding_dim: int = 512,
        num_classes: int = 2,
        latent_dim: int = 256,
        config: NetworkConfig | None = None,
    ) -> None:
        super().__init__()
        if config is None:
            config = NetworkConfig(
                embedder=EmbedderConfig(embedding_dim=embedding_dim),
                denoiser=DenoiserConfig(latent_dim=latent_dim),
                num_classes=num_classes,
            )
        self.config = config
        self.denoiser = DenoisingAutoencoder(config=config.denoiser) if config.denoiser else None
        self.embedder = ResilientEmbedder(config=config.embedder)
        d = config.embedder.embedding_dim
        self.head = nn.Sequential(
            nn.Linear(d, config.head_hidden),
            nn.ReLU(),
            nn.Dropout(config.head_dropout),
            nn.Linear(config.head_hidden, config.num_classes),
        )

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        if self.denoiser is None:
            raise ValueError(
                "this network was built without a denoiser (inference-only checkpoint)"
            )
        return self.denoiser(x)[0]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Embedding ``(B, D)`` of the image the classifier sees."""
        if self.config.classifier_input == "denoised":
            x = self.reconstruct(x)
        return self.embedder(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes)`` from embeddings."""
        return self.head(features)

    @overload
    def forward(
        self, x: torch.Tensor, return_reconstruction: Literal[False] = ...
    ) -> torch.Tensor: ...

    @overload
    def forward(
        self, x: torch.Tensor, return_reconstruction: Literal[True]
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def forward(
        self, x: torch.Tensor, return_reconstruction: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        validate_images(x)
        recon = None
        if return_reconstruction or self.config.classifier_input == "denoised":
            recon = self.reconstruct(x)
        feats = self.embedder(recon if self.config.classifier_input == "denoised" else x)
        logits = self.forward_head(feats)
        if return_reconstruction:
            assert recon is not None
            return logits, recon
        return logits

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Probability of "manipulated" ``(B,)``: softmax class 1, or sigmoid for one logit."""
        logits = self.forward(x)
        if logits.shape[1] == 1:
            return torch.sigmoid(logits[:, 0])
        return torch.softmax(logits, dim=1)[:, 1]


@torch.no_grad()
def extract_resilient_features(
    embedder: ResilientEmbedder | CompressionResilientNetwork,
    images: np.ndarray | Sequence[np.ndarray] | torch.Tensor,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    image_size: int | None = None,
) -> torch.Tensor:
    """Embeddings ``(B, D)`` (on CPU) for uint8 RGB images or a float tensor in ``[-1, 1]``.

    Puts the model in eval mode for the call (and restores its previous mode), runs
    without gradients in batches of ``batch_size`` on ``device`` (default: the model's).
    """
    x = to_tensor(images, image_size)
    validate_images(x)
    if device is None:
        device = next(embedder.parameters()).device
    features_fn = (
        embedder.forward_features if isinstance(embedder, CompressionResilientNetwork) else embedder
    )
    was_training = embedder.training
    embedder.eval()
    try:
        chunks = [
            features_fn(x[i : i + batch_size].to(device)).float().cpu()
            for i in range(0, len(x), batch_size)
        ]
    finally:
        embedder.train(was_training)
    return torch.cat(chunks)


def count_parameters(module: nn.Module) -> int:
    """Number of parameters (learnable or not) in ``module``."""
    return sum(p.numel() for p in module.parameters())
