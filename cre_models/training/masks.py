"""Where a training fake was manipulated: map targets and a training-only map head
(``cre train-videos --mask-loss W``).

A real/fake label says *that* a face was manipulated; a map says *where*. With a few dozen
training people a classifier can fit the label through anything that tells the clips apart
(a person, a background, a codec); asking it to also point at the manipulated pixels is
denser supervision that only the manipulation satisfies (Face X-ray, Li et al., CVPR 2020;
LAA-Net, Nguyen et al., CVPR 2024: a localisation branch beside the classifier of
self-blended training).

Targets, per training crop, at the crop's pixels:

* a real crop: zeros (nothing was manipulated);
* a self-blended fake: its blend mask (:func:`~cre_models.training.sbi.make_sbi`), scaled
  to a peak of 1;
* a labelled FaceForensics++ fake: :func:`difference_map` against the same moment of the
  target person's own real clip (FF++ fakes are made frame by frame from it), where that
  moment is in the real clip's cache (:func:`labelled_maps`); otherwise no target, and the
  crop trains the label only.

:class:`MapHead` reads the EfficientNet RGB stream's stride-16 features (the output of block
:data:`TAP_BLOCK`, captured by :class:`FeatureTap`) and predicts one logit per feature
cell; :func:`map_loss` is the per-cell binary cross-entropy against the target shrunk to
that grid. The head lives only in training (and ``resume.pt``): the checkpoint the worker
loads never has it, and scores exactly as before.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..efficientnet_lite import MBConv
from ..model import CompressionResilientNetwork
from .cache import CachedVideo
from .splits import identities

__all__ = [
    "TAP_BLOCK",
    "align_to",
    "difference_map",
    "labelled_maps",
    "FeatureTap",
    "MapHead",
    "map_head_for",
    "map_loss",
]

logger = logging.getLogger(__name__)

TAP_BLOCK = 10
"""EfficientNet-Lite0 block whose output the map head reads (112 channels, stride 16: a
14 x 14 grid at 224 px). The shipped recipe freezes blocks 0-5, so the block is trained."""

MIN_ECC = 0.9
"""Smallest ECC correlation of an accepted alignment of a real crop onto its fake."""

TIME_TOL_S = 0.02
"""A fake crop and a real crop are the same moment when their times differ by at most this."""

DIFF_BLUR_PX = 4.0
"""Gaussian sigma of the difference map at a 224-pixel crop (scaled with the crop side)."""

DIFF_RANGE = (5.0, 20.0)
"""Blurred mean absolute difference (0-255 scale) mapped linearly to 0..1: codec noise
between two H.264 encodes of one frame stays under the low end; a swapped or re-rendered
face is far above the high end."""


def _ring(h: int, w: int) -> np.ndarray:
    """The crop's outer band (top, sides, bottom edge): background and hair, rarely the
    manipulated face, so it aligns two crops of one moment by what they share."""
    ring = np.ones((h, w), np.uint8)
    ring[int(0.18 * h) : int(0.95 * h), int(0.18 * w) : int(0.82 * w)] = 0
    return ring


def align_to(fake: np.ndarray, real: np.ndarray) -> tuple[np.ndarray, float] | None:
    """``real`` warped onto ``fake`` (an affine fit of their outer bands by ECC) and the fit's
    correlation; ``None`` when the fit does not converge.

    The two crops of one moment come from two face detections (on the real frame and on the
    fake one), so their boxes differ by a few pixels and a little scale: unaligned, every edge
    of the background would light up in the difference.
    """
    if fake.shape != real.shape:
        raise ValueError(f"crop shapes differ: {fake.shape} vs {real.shape}")
    g_fake = cv2.cvtColor(fake, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    g_real = cv2.cvtColor(real, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    h, w = g_fake.shape
    start = np.eye(2, 3, dtype=np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-5)
    try:
        cc, warp = cv2.findTransformECC(
            g_fake, g_real, start, cv2.MOTION_AFFINE, criteria, _ring(h, w), 5
        )
    except cv2.error:
        return None
    out = cv2.warpAffine(
        real,
        warp,
        (w, h),
        flags=cv2.INTER_LINEAR + cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT,
    )
    return out, float(cc)


def difference_map(fake: np.ndarray, real: np.ndarray) -> np.ndarray | None:
    """Where ``fake`` differs from ``real`` (the same moment of the clip it was made from):
    ``(H, W)`` float32 in ``[0, 1]``, or ``None`` when the two cannot be aligned well
    (:data:`MIN_ECC`).

    The mean absolute RGB difference after :func:`align_to`, blurred (:data:`DIFF_BLUR_PX`)
    and mapped through :data:`DIFF_RANGE`.
    """
    aligned = align_to(fake, real)
    if aligned is None or aligned[1] < MIN_ECC:
        return None
    diff = np.abs(fake.astype(np.float32) - aligned[0].astype(np.float32)).mean(axis=-1)
    sigma = DIFF_BLUR_PX * min(diff.shape) / 224.0
    blurred = cv2.GaussianBlur(diff, (0, 0), sigma)
    lo, hi = DIFF_RANGE
    return np.clip((blurred - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def labelled_maps(
    fakes: Sequence[CachedVideo], reals: Sequence[CachedVideo]
) -> dict[tuple[str, str], dict[int, np.ndarray]]:
    """Difference maps of the labelled fakes' crops: ``{(file, version): {crop: map}}``, maps
    as uint8 (0-255).

    A FaceForensics++ fake ``TTT_SSS`` is made from target ``TTT``'s real clip, frame by
    frame; its crop ``k`` gets a map when that clip's cache (same version: ``orig`` only, the
    re-encoded copies of two clips are drawn apart) holds a crop within :data:`TIME_TOL_S` of
    it and the two align (:func:`difference_map`).
    """
    real_of = {
        ids[0]: v for v in reals if v.version == "orig" and len(ids := identities(v.clip.file)) == 1
    }
    out: dict[tuple[str, str], dict[int, np.ndarray]] = {}
    crops = paired = kept = 0
    for fake in fakes:
        if fake.version != "orig":
            continue
        crops += fake.n
        ids = identities(fake.clip.file)
        real = real_of.get(ids[0]) if len(ids) == 2 else None
        if real is None or not real.n:
            continue
        maps: dict[int, np.ndarray] = {}
        for k in range(fake.n):
            gaps = np.abs(real.times - fake.times[k])
            j = int(np.argmin(gaps))
            if gaps[j] > TIME_TOL_S or real.crops[j].shape != fake.crops[k].shape:
                continue
            paired += 1
            m = difference_map(fake.crops[k], real.crops[j])
            if m is not None:
                maps[k] = np.round(m * 255).astype(np.uint8)
        kept += len(maps)
        if maps:
            out[(fake.clip.file, fake.version)] = maps
    logger.info(
        "difference maps: %d of %d labelled fake crops (as delivered) have the same moment "
        "of their real clip, %d aligned well enough (%d clips)",
        paired,
        crops,
        kept,
        len(out),
    )
    return out


class FeatureTap:
    """Keeps the last output of a module (a forward hook); :meth:`remove` detaches it."""

    def __init__(self, module: nn.Module) -> None:
        self.output: torch.Tensor | None = None
        self._handle = module.register_forward_hook(self._keep)

    def _keep(self, module: nn.Module, args: object, output: torch.Tensor) -> None:
        self.output = output

    def remove(self) -> None:
        self._handle.remove()
        self.output = None


class MapHead(nn.Module):
    """``(B, C, h, w)`` features -> ``(B, 1, h, w)`` logits of "manipulated here"."""

    def __init__(self, channels: int, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, hidden, 3, padding=1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, 1, 1),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


def map_head_for(model: CompressionResilientNetwork) -> tuple[FeatureTap, MapHead]:
    """A tap on ``model``'s RGB-stream block :data:`TAP_BLOCK` and a head sized for it.

    Raises:
        ValueError: the RGB stream is not an EfficientNet trunk with that block.
    """
    trunk = model.embedder.rgb_trunk
    blocks = [] if trunk is None else list(trunk.blocks)
    if len(blocks) <= TAP_BLOCK:
        raise ValueError(
            f"mask_loss needs an efficientnet_lite0 RGB stream with more than {TAP_BLOCK} "
            "blocks (rgb_blocks)"
        )
    block = blocks[TAP_BLOCK]
    assert isinstance(block, MBConv)
    return FeatureTap(block), MapHead(block.out_channels)


def map_loss(logits: torch.Tensor, targets: Sequence[np.ndarray | None]) -> torch.Tensor:
    """Mean per-cell binary cross-entropy of the items that have a target (``None``: no
    target); each target, ``(H, W)`` in ``[0, 1]``, is area-shrunk to the logits' grid.
    Zero (with a gradient path) when no item has one."""
    if len(targets) != logits.shape[0]:
        raise ValueError(f"{len(targets)} targets for {logits.shape[0]} map logits")
    h, w = logits.shape[-2:]
    rows = [i for i, t in enumerate(targets) if t is not None]
    if not rows:
        return logits.sum() * 0.0
    small = [cv2.resize(t, (w, h), interpolation=cv2.INTER_AREA) for t in targets if t is not None]
    target = torch.from_numpy(np.stack(small)).to(logits.dtype).unsqueeze(1)
    return F.binary_cross_entropy_with_logits(logits[rows], target)
