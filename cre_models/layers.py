"""Reusable building blocks: conv-norm-act blocks and noise-residual extractors.

Residual extractors turn an image into its high-frequency "noise" so that a CNN sees
manipulation traces rather than content:

* ``gaussian``: image minus its Gaussian blur (the seed's choice).
* ``srm``: three fixed SRM high-pass kernels from steganalysis (Fridrich & Kodovsky 2012,
  used for forensics by Zhou et al. 2018 "Learning Rich Features for Image Manipulation
  Detection").
* ``constrained``: a learnable convolution whose kernels are forced to be prediction-error
  filters (centre -1, the rest summing to 1), Bayar & Stamm 2018.

All extractors map ``(B, 3, H, W) -> (B, out_channels, H, W)`` and keep the spatial size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ConvNormAct",
    "ConvStream",
    "GaussianResidual",
    "SRMResidual",
    "ConstrainedConvResidual",
    "RESIDUAL_EXTRACTORS",
    "build_residual_extractor",
]


class ConvNormAct(nn.Sequential):
    """Conv(k x k) -> norm -> activation -> optional 2x2 max-pool."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        act_layer: type[nn.Module] = nn.ReLU,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
        pool: bool = True,
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
            norm_layer(out_channels),
            act_layer(),
        ]
        if pool:
            layers.append(nn.MaxPool2d(2))
        super().__init__(*layers)


class ConvStream(nn.Module):
    """The seed's stream: ConvNormAct blocks, global average pool, linear projection.

    ``(B, in_channels, H, W) -> (B, out_dim)``.
    """

    def __init__(
        self,
        in_channels: int,
        channels: tuple[int, ...],
        out_dim: int,
        act_layer: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        blocks = []
        prev = in_channels
        for ch in channels:
            blocks.append(ConvNormAct(prev, ch, act_layer=act_layer))
            prev = ch
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.proj = nn.Linear(prev, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(x)  # (B, C, H/16, W/16)
        return self.proj(self.pool(x).flatten(1))  # (B, out_dim)


def gaussian_kernel2d(kernel_size: int, sigma: float) -> torch.Tensor:
    """A normalised 2-D Gaussian kernel of shape (k, k)."""
    if kernel_size < 3 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd and >= 3, got {kernel_size}")
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    ax = torch.arange(kernel_size, dtype=torch.float64) - (kernel_size - 1) / 2
    g = torch.exp(-(ax**2) / (2 * sigma**2))
    k2 = torch.outer(g, g)
    return (k2 / k2.sum()).float()


class GaussianResidual(nn.Module):
    """``x - GaussianBlur(x)`` per channel, with reflect padding (no learnable weights)."""

    out_channels = 3
    kernel: torch.Tensor

    def __init__(self, kernel_size: int = 5, sigma: float = 1.0) -> None:
        super().__init__()
        k = gaussian_kernel2d(kernel_size, sigma)
        self.register_buffer("kernel", k.expand(3, 1, kernel_size, kernel_size).clone())
        self.pad = kernel_size // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        blurred = F.conv2d(F.pad(x, [self.pad] * 4, mode="reflect"), self.kernel, groups=3)
        return x - blurred


def _srm_kernels() -> torch.Tensor:
    """The three SRM kernels most used in forensics, each padded to 5x5, shape (3, 5, 5)."""
    k1 = (
        torch.tensor(
            [
                [0, 0, 0, 0, 0],
                [0, -1, 2, -1, 0],
                [0, 2, -4, 2, 0],
                [0, -1, 2, -1, 0],
                [0, 0, 0, 0, 0],
            ],
            dtype=torch.float32,
        )
        / 4.0
    )
    k2 = (
        torch.tensor(
            [
                [-1, 2, -2, 2, -1],
                [2, -6, 8, -6, 2],
                [-2, 8, -12, 8, -2],
                [2, -6, 8, -6, 2],
                [-1, 2, -2, 2, -1],
            ],
            dtype=torch.float32,
        )
        / 12.0
    )
    k3 = (
        torch.tensor(
            [
                [0, 0, 0, 0, 0],
                [0, 0, 0, 0, 0],
                [0, 1, -2, 1, 0],
                [0, 0, 0, 0, 0],
                [0, 0, 0, 0, 0],
            ],
            dtype=torch.float32,
        )
        / 2.0
    )
    return torch.stack([k1, k2, k3])


class SRMResidual(nn.Module):
    """Three fixed SRM high-pass filters, each applied to every colour channel and summed.

    Output channel ``i`` is kernel ``i`` applied to the mean of R, G and B.
    """

    out_channels = 3
    kernel: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        k = _srm_kernels()  # (3, 5, 5)
        weight = k[:, None].expand(3, 3, 5, 5) / 3.0
        self.register_buffer("kernel", weight.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, [2, 2, 2, 2], mode="reflect"), self.kernel)


class ConstrainedConvResidual(nn.Module):
    """Learnable prediction-error filters (Bayar & Stamm): centre -1, the rest sums to 1.

    The constraint is applied as a reparameterisation in ``forward`` so it holds at every
    step without a projection hook in the training loop.
    """

    mask: torch.Tensor

    def __init__(self, out_channels: int = 3, kernel_size: int = 5) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError("kernel_size must be odd")
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.weight = nn.Parameter(torch.empty(out_channels, 3, kernel_size, kernel_size))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        mask = torch.ones(kernel_size, kernel_size)
        mask[kernel_size // 2, kernel_size // 2] = 0
        self.register_buffer("mask", mask)

    def constrained_weight(self) -> torch.Tensor:
        w = self.weight * self.mask
        # Normalise off-centre weights of each (out, in) kernel to sum to 1 (sign-safe).
        s = w.sum(dim=(2, 3), keepdim=True)
        s = torch.where(s.abs() < 1e-6, torch.full_like(s, 1e-6), s)
        w = w / s
        centre = torch.zeros_like(self.mask)
        centre[self.kernel_size // 2, self.kernel_size // 2] = 1.0
        return w - centre  # centre weight becomes -1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.kernel_size // 2
        return F.conv2d(F.pad(x, [p, p, p, p], mode="reflect"), self.constrained_weight())


RESIDUAL_EXTRACTORS = ("gaussian", "srm", "constrained")


def build_residual_extractor(
    name: str, blur_kernel: int = 5, blur_sigma: float = 1.0
) -> GaussianResidual | SRMResidual | ConstrainedConvResidual:
    """Build a residual extractor by name (one of :data:`RESIDUAL_EXTRACTORS`)."""
    if name == "gaussian":
        return GaussianResidual(blur_kernel, blur_sigma)
    if name == "srm":
        return SRMResidual()
    if name == "constrained":
        return ConstrainedConvResidual()
    raise ValueError(f"unknown residual extractor {name!r}; choose one of {RESIDUAL_EXTRACTORS}")
