"""CPU inference helpers: torch's thread count for a block, and a faster eval-only copy.

:func:`torch_threads` runs a block with a given number of torch intra-op threads and
restores the previous count. :func:`optimise_for_inference` returns a copy of an eval-mode
network that gives the same outputs up to float rounding (about 1e-7 on probabilities)
in roughly half the CPU time at the worker's batch sizes (docs/BENCHMARKS.md): every
``Conv2d`` followed by a ``BatchNorm2d`` in an ``nn.Sequential`` is fused into one
convolution, a ``ReLU`` followed by a ``MaxPool2d`` is moved after the pool (the same
numbers, since max and ReLU commute, on a quarter of the values), the weights are
stored channels-last, where oneDNN's convolutions and pooling are fastest, and every
convolution runs oneDNN's kernel (:class:`OneDnnConv2d`). PyTorch picks oneDNN for most
convolutions on its own, but not for a 1x1 convolution of a batch under 16 on one thread:
that one goes to its generic kernel, behind a copy out of channels-last, which made the
worker's one-thread batches (the decoder busy on the other core) a fifth slower than they
need be (docs/BENCHMARKS.md, twenty-first session).

Both work under one torch thread (:func:`torch_threads`), so that preparing a model in a
forking worker's parent never starts torch's OpenMP pool (see ``worker/scoring.py``).
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

import torch
from torch import nn

logger = logging.getLogger(__name__)

__all__ = [
    "torch_threads",
    "CPU_BATCH_PIXELS",
    "default_batch_size",
    "channels_last",
    "OneDnnConv2d",
    "optimise_for_inference",
    "native_bfloat16",
    "check_precision",
]

M = TypeVar("M", bound=nn.Module)


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads (0: leave the count alone)."""
    previous = torch.get_num_threads()
    switch = n > 0 and n != previous
    if switch:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if switch:
            torch.set_num_threads(previous)


def native_bfloat16() -> bool:
    """Whether this CPU has native bfloat16 arithmetic (AMX tiles or AVX512-BF16).

    Where it has not, bfloat16 is emulated by oneDNN and slower than float32.
    """
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


CPU_BATCH_PIXELS = 204_800
"""Input pixels per CPU forward pass when the batch size is left to the input size: 8 crops of
160 px, 5 of 224 px. The best batch per crop on this project's 2-core machine at 128-320 px
(docs/BENCHMARKS.md, model-speed): a larger batch outgrows the caches, the full-resolution
first layers of the noise stream above all, and gets slower per crop."""

_MAX_AUTO_BATCH = 16
"""The largest batch the CPU rule gives (the largest one measured)."""


def default_batch_size(device: str, size: int) -> int:
    """Face crops per forward pass when ``CRE_BATCH_SIZE`` is 0: on a GPU 8 (the batch its
    runs measured); on the CPU as many ``size`` x ``size`` crops as fit
    :data:`CPU_BATCH_PIXELS`, rounded up, between 1 and 16 (160 px: 8, 224 px: 5, 288 px: 3)."""
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    if torch.device(device).type != "cpu":
        return 8
    return max(1, min(_MAX_AUTO_BATCH, math.ceil(CPU_BATCH_PIXELS / (size * size))))


def check_device(device: str) -> str:
    """``device`` if this torch can run on it; a ``ValueError`` saying why where it cannot
    (a CUDA device asked of a CPU-only build, or of a CUDA build that sees no GPU)."""
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        why = (
            "is a CPU-only build"
            if torch.version.cuda is None
            else f"is built for CUDA {torch.version.cuda} but sees no GPU "
            "(driver, CUDA_VISIBLE_DEVICES)"
        )
        raise ValueError(f"this torch ({torch.__version__}) {why}")
    return device


def check_precision(precision: str, device: str) -> str:
    """``precision`` (``float32`` or ``bfloat16``) if it can run; a warning where it is slow.

    bfloat16 on a CPU without native units (:func:`native_bfloat16`) is emulated, and
    slower than float32: it runs, with a logged warning.
    """
    if precision not in ("float32", "bfloat16"):
        raise ValueError(f"precision must be float32 or bfloat16, not {precision!r}")
    if precision == "bfloat16" and device == "cpu" and not native_bfloat16():
        logger.warning("bfloat16 on a CPU without native bfloat16: slower than float32")
    return precision


def channels_last(model: M) -> M:
    """``model`` with its 4-D weights stored channels-last (in place; also returned)."""
    with torch_threads(1), torch.no_grad():
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return model


class OneDnnConv2d(nn.Conv2d):
    """A ``Conv2d`` that runs oneDNN's convolution for CPU float32 input, whatever the batch
    size and thread count (see the module docstring); anything else (another device or
    dtype, bfloat16 autocast, a padding mode or padding string) takes ``Conv2d``'s own path.
    Only for inference: it has no backward of its own beyond what oneDNN's op provides."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            x.device.type != "cpu"
            or x.dtype != torch.float32
            or self.weight.dtype != torch.float32
            or self.padding_mode != "zeros"
            or isinstance(self.padding, str)
            or torch.is_autocast_enabled("cpu")
        ):
            return super().forward(x)
        return torch.ops.aten.mkldnn_convolution(
            x, self.weight, self.bias, self.padding, self.stride, self.dilation, self.groups
        )


def _onednn_convolutions(model: nn.Module) -> None:
    """Every plain ``Conv2d`` of ``model`` becomes a :class:`OneDnnConv2d` (in place: the
    class changes, the parameters stay); nothing where this torch has no oneDNN."""
    if not torch.backends.mkldnn.is_available():
        return
    for module in model.modules():
        if type(module) is nn.Conv2d:
            module.__class__ = OneDnnConv2d


def _fuse_sequential(seq: nn.Sequential) -> None:
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for i in range(len(seq) - 1):
        a, b = seq[i], seq[i + 1]
        if isinstance(a, nn.Conv2d) and isinstance(b, nn.BatchNorm2d):
            seq[i] = fuse_conv_bn_eval(a, b)
            seq[i + 1] = nn.Identity()
    # ReLU -> MaxPool2d (Identity between them allowed) becomes MaxPool2d -> ReLU
    layers = [m for m in seq if not isinstance(m, nn.Identity)]
    for i in range(len(layers) - 1):
        a, b = layers[i], layers[i + 1]
        if type(a) is nn.ReLU and isinstance(b, nn.MaxPool2d):
            ia = next(k for k, m in enumerate(seq) if m is a)
            ib = next(k for k, m in enumerate(seq) if m is b)
            seq[ia], seq[ib] = b, nn.ReLU(inplace=True)


def optimise_for_inference(model: M, onednn: bool = True) -> M:
    """A fused, channels-last copy of ``model`` for inference (see the module docstring).

    ``onednn=False`` leaves the convolutions to PyTorch's own choice of kernel (for
    benchmarks that measure what :class:`OneDnnConv2d` buys).

    The copy is in eval mode and meant for inference only (its batch norms are folded
    into the convolutions: training it would not train the original). Feed it
    channels-last input (``x.contiguous(memory_format=torch.channels_last)``) for the
    speed; any layout gives the same outputs.
    """
    with torch_threads(1), torch.no_grad():
        fast = copy.deepcopy(model).eval()
        for module in list(fast.modules()):
            if isinstance(module, nn.Sequential):
                _fuse_sequential(module)
        if onednn:
            _onednn_convolutions(fast)
        return channels_last(fast)
