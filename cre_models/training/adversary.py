"""A training-only identity adversary: the embedding should not tell which person it saw.

With few training people a detector can learn how *those people's* real faces look rather
than what a manipulation leaves (identity leakage: Dong et al., CVPR 2023, "Implicit Identity
Leakage: The Stumbling Block to Improving Deepfake Detection Generalization"). On this
project's validation a person's fake outranks their own real clip far more often than another
person's real clip (docs/EVALUATION.md): a per-person score level.

:class:`IdentityAdversary` classifies the fused embedding into the training people through a
gradient-reversal layer (:class:`GradReverse`, Ganin & Lempitsky 2015): the adversary learns
to name the person, the embedder is pushed the other way. Its weight follows the DANN ramp
(:func:`dann_weight`), from 0 to the configured weight over the run. The adversary lives only
in training (and ``resume.pt``); the checkpoint the worker loads never has it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .cache import CachedVideo
from .splits import identities

__all__ = ["GradReverse", "IdentityAdversary", "identity_of", "identity_index", "dann_weight"]


class GradReverse(torch.autograd.Function):
    """Identity forward; the gradient times ``-weight`` backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: float) -> torch.Tensor:
        ctx.weight = weight
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.weight * grad, None


class IdentityAdversary(nn.Module):
    """A small MLP from the embedding to ``n_ids`` person logits, behind gradient reversal."""

    def __init__(self, embedding_dim: int, n_ids: int, hidden: int = 256) -> None:
        super().__init__()
        if n_ids < 2:
            raise ValueError(f"an identity adversary needs at least 2 people, got {n_ids}")
        self.net = nn.Sequential(
            nn.Linear(embedding_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, n_ids)
        )

    def forward(self, features: torch.Tensor, weight: float) -> torch.Tensor:
        return self.net(GradReverse.apply(features, weight))


def identity_of(video: CachedVideo) -> str:
    """The person whose video a crop comes from: the FF++ target id (``XXX`` of ``XXX`` or
    ``XXX_YYY``: the frames, light and camera are XXX's), else the clip itself."""
    ids = identities(video.clip.file)
    return f"ffpp:{ids[0]}" if ids else f"clip:{video.clip.file}"


def identity_index(videos: Sequence[CachedVideo]) -> dict[str, int]:
    """A class number per person of ``videos`` (sorted, so a run and its resume agree)."""
    return {name: i for i, name in enumerate(sorted({identity_of(v) for v in videos}))}


def dann_weight(weight: float, step: int, steps: int) -> float:
    """DANN's ramp: ``weight * (2 / (1 + exp(-10 p)) - 1)`` with ``p`` the run's progress."""
    p = min(1.0, max(0.0, step / max(1, steps)))
    return weight * (2.0 / (1.0 + math.exp(-10.0 * p)) - 1.0)
