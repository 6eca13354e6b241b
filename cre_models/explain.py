"""Where the model looked: Grad-CAM on the last convolution of each embedder stream.

Grad-CAM (Selvaraju et al. 2017, "Grad-CAM: Visual Explanations from Deep Networks via
Gradient-based Localization") weights each channel of a convolution's output by the mean
gradient of the target logit over that channel, sums the channels and keeps the positive
part. Here the target is the log-odds of "manipulated" (``logit_1 - logit_0``, or the single
logit of a one-output head), so a hot region is one that pushed the score *up*; or, per
crop, its negative, so a hot region is one that pushed the score *down* (what made a face
look real: a map toward "fake" of a confidently real face is mostly empty).

:class:`~cre_models.model.CompressionResilientNetwork` has two streams, so there are two
maps per face: ``rgb`` (the RGB stream: content, blending seams, colour) and ``noise``
(the noise-residual stream: high-frequency traces). Each is taken at the stream's last
``nn.Conv2d`` (``H/8`` for the seed CNN, ``H/32`` for EfficientNet-Lite0) and upsampled
to the crop.

This is for reports, computed on demand: it needs gradients, so it is several times the
cost of scoring and never runs on the scoring path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .model import CompressionResilientNetwork
from .transforms import to_tensor

__all__ = ["CamResult", "STREAMS", "stream_layers", "grad_cam", "overlay_heatmap"]

STREAMS = ("rgb", "noise")
"""Names of the maps :func:`grad_cam` returns, one per embedder stream."""


@dataclass
class CamResult:
    """Grad-CAM of a batch of crops.

    Attributes:
        probs: probability of "manipulated" per crop ``(B,)``, from the same forward pass.
        maps: per stream name, ``(B, H, W)`` float32 maps in ``[0, 1]`` at the crop size
            (each map scaled by its own maximum; an all-zero map means no region pushed the
            score up).
        peaks: per stream name, ``(B,)`` the maximum before scaling, so maps of one crop
            can be compared across streams.
    """

    probs: np.ndarray
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    peaks: dict[str, np.ndarray] = field(default_factory=dict)


def _last_conv(module: nn.Module) -> nn.Conv2d:
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(f"{type(module).__name__} has no Conv2d layer")
    return convs[-1]


def stream_layers(model: CompressionResilientNetwork) -> dict[str, nn.Conv2d]:
    """The last convolution of each embedder stream, keyed by :data:`STREAMS`."""
    emb = model.embedder
    return {"rgb": _last_conv(emb.rgb_stream), "noise": _last_conv(emb.noise_stream)}


def _fake_logodds(logits: torch.Tensor) -> torch.Tensor:
    if logits.shape[1] == 1:
        return logits[:, 0]
    return logits[:, 1] - logits[:, 0]


def grad_cam(
    model: CompressionResilientNetwork,
    crops: Sequence[np.ndarray] | torch.Tensor,
    toward_fake: Sequence[bool] | bool = True,
    batch_size: int = 16,
) -> CamResult:
    """Grad-CAM maps of both streams for uint8 RGB crops (or a float batch in ``[-1, 1]``).

    The model is used in eval mode, with its parameters' ``requires_grad`` switched off
    for the call; mode and flags are restored afterwards, and no gradient is left anywhere.

    Args:
        model: the network that scores the crops.
        crops: ``HxWx3`` uint8 RGB crops at the model's input size (normalised with the
            default mean/std), or a ``(B, 3, H, W)`` batch already normalised (e.g. by
            :meth:`cre_models.transforms.FaceTransform.to_tensor`).
        toward_fake: per crop (or one for all), explain "manipulated" (``True``: regions
            that raised the score) or "real" (``False``: regions that lowered it).
        batch_size: crops per forward/backward pass.

    Returns:
        A :class:`CamResult` with probabilities and one map per stream.
    """
    x_all = to_tensor(crops)
    if isinstance(toward_fake, bool):
        toward_fake = [toward_fake] * len(x_all)
    if len(toward_fake) != len(x_all):
        raise ValueError(f"toward_fake has {len(toward_fake)} entries for {len(x_all)} crops")
    signs = torch.tensor([1.0 if t else -1.0 for t in toward_fake])
    layers = stream_layers(model)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    probs: list[torch.Tensor] = []
    maps: dict[str, list[torch.Tensor]] = {k: [] for k in layers}
    peaks: dict[str, list[torch.Tensor]] = {k: [] for k in layers}
    acts: dict[str, torch.Tensor] = {}

    def keep(name: str) -> Callable[[nn.Module, object, torch.Tensor], torch.Tensor]:
        # The hooked output becomes a leaf that needs a gradient: the backward pass then
        # runs from the logits to these two layers only (no weight gradients, nothing
        # before them), a fraction of a full backward pass.
        def hook(_m: nn.Module, _inp: object, out: torch.Tensor) -> torch.Tensor:
            leaf = out.detach().requires_grad_(True)
            acts[name] = leaf
            return leaf

        return hook

    needs_grad = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in needs_grad:
        p.requires_grad_(False)
    handles = [layer.register_forward_hook(keep(name)) for name, layer in layers.items()]
    try:
        with torch.enable_grad():
            for i in range(0, len(x_all), batch_size):
                x = x_all[i : i + batch_size].to(device)
                acts.clear()
                logits = model(x)
                if logits.shape[1] == 1:
                    probs.append(torch.sigmoid(logits[:, 0]).detach().float().cpu())
                else:
                    probs.append(torch.softmax(logits, dim=1)[:, 1].detach().float().cpu())
                sign = signs[i : i + batch_size].to(logits.device)
                (_fake_logodds(logits) * sign).sum().backward()
                for name in layers:
                    a = acts[name]  # (B, C, h, w)
                    assert a.grad is not None
                    weights = a.grad.mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
                    cam = F.relu((weights * a).sum(dim=1, keepdim=True))  # (B, 1, h, w)
                    cam = F.interpolate(
                        cam, size=x.shape[-2:], mode="bilinear", align_corners=False
                    )[:, 0]  # (B, H, W)
                    peak = cam.flatten(1).amax(dim=1)  # (B,)
                    scaled = cam / peak.clamp_min(1e-12)[:, None, None]
                    maps[name].append(scaled.detach().float().cpu())
                    peaks[name].append(peak.detach().float().cpu())
    finally:
        for h in handles:
            h.remove()
        for p, flag in needs_grad:
            p.requires_grad_(flag)
        model.train(was_training)
    return CamResult(
        probs=torch.cat(probs).numpy().astype(np.float64),
        maps={k: torch.cat(v).numpy() for k, v in maps.items()},
        peaks={k: torch.cat(v).numpy() for k, v in peaks.items()},
    )


def overlay_heatmap(image: np.ndarray, cam: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """``image`` (uint8 RGB) blended with ``cam`` (``[0, 1]``, any size) in a colour map.

    Cold regions keep the image visible; hot ones turn yellow-red (OpenCV's ``INFERNO``),
    weighted by the map itself so the crop stays readable.
    """
    h, w = image.shape[:2]
    if cam.shape != (h, w):
        cam = cv2.resize(cam.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    cam = np.clip(cam, 0.0, 1.0).astype(np.float32)
    colour = cv2.applyColorMap((cam * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)
    colour = cv2.cvtColor(colour, cv2.COLOR_BGR2RGB).astype(np.float32)
    weight = (alpha * (0.25 + 0.75 * cam))[..., None]
    out = image.astype(np.float32) * (1 - weight) + colour * weight
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
