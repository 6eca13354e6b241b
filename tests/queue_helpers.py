"""Helpers of the worker tests: a tiny random checkpoint, test clips."""

from __future__ import annotations

import inspect
from pathlib import Path

TINY_INPUT = 64
TINY_FRAMES = 6


def save_tiny_checkpoint(directory: Path, seed: int = 0) -> Path:
    """A random, small network (fast on CPU) saved with ``save_pretrained``."""
    import torch

    from cre_models.model import CompressionResilientNetwork, EmbedderConfig, NetworkConfig
    from cre_models.weights import DecisionSpec, InputSpec, save_pretrained

    torch.manual_seed(seed)
    net = CompressionResilientNetwork(
        config=NetworkConfig(
            embedder=EmbedderConfig(embedding_dim=16, channels=(8, 8, 16, 16)),
            denoiser=None,
            head_hidden=16,
        )
    )
    save_pretrained(
        net,
        directory,
        name="tiny-test",
        version="0.0.1",
        input_spec=InputSpec(size=TINY_INPUT, frames_per_video=TINY_FRAMES),
        decision=DecisionSpec(threshold=0.5, aggregation="mean"),
        include_denoiser=False,
    )
    return directory


def write_clip(path: Path, **kwargs: object) -> Path:
    """``tests.synth.write_video`` with only the keyword arguments it supports."""
    from tests.synth import write_video

    params = inspect.signature(write_video).parameters
    return write_video(path, **{k: v for k, v in kwargs.items() if k in params})  # type: ignore[arg-type]


def synth_supports(name: str) -> bool:
    from tests.synth import write_video

    return name in inspect.signature(write_video).parameters
