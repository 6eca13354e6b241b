"""Average the weights of checkpoints trained from one initialisation (a "model soup").

Runs of ``cre train-videos`` with the same seed and architecture start from the same
weights (ImageNet for the RGB stream, the seed's draw for the rest), so their fine-tuned
weights usually lie in one basin and their average scores like an ensemble at the cost
of one network (Wortsman et al., "Model soups", ICML 2022). Whether it helps here is
measured like any other candidate: on validation video scores through the worker's path.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

__all__ = ["average_state_dicts", "average_checkpoints"]

logger = logging.getLogger(__name__)


def average_state_dicts(states: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The mean of floating-point tensors; other tensors (batch counters) from the first."""
    if not states:
        raise ValueError("nothing to average")
    keys = list(states[0])
    for i, s in enumerate(states[1:], 1):
        if list(s) != keys:
            raise ValueError(f"state {i} has other tensors than state 0")
        for k in keys:
            if s[k].shape != states[0][k].shape:
                raise ValueError(
                    f"{k}: shape {tuple(s[k].shape)} in state {i}, "
                    f"{tuple(states[0][k].shape)} in state 0"
                )
    out = {}
    for k in keys:
        first = states[0][k]
        if first.dtype.is_floating_point:
            out[k] = torch.stack([s[k].double() for s in states]).mean(0).to(first.dtype)
        else:
            out[k] = first.clone()
    return out


def average_checkpoints(
    checkpoints: Sequence[Path], out: Path, name: str, version: str
) -> dict[str, Any]:
    """Write the average of ``checkpoints`` to ``out`` (a checkpoint folder); return its
    config's ``training`` record. The members must share architecture and input contract;
    the decision (aggregation, calibration, threshold) is left to ``cre eval --fit``."""
    from ..weights import DecisionSpec, load_pretrained, save_pretrained

    if len(checkpoints) < 2:
        raise ValueError("a soup needs at least two checkpoints")
    loaded = [load_pretrained(c) for c in checkpoints]
    model, first = loaded[0]
    for (_, cfg), path in zip(loaded[1:], checkpoints[1:], strict=True):
        if cfg.network != first.network:
            raise ValueError(f"{path}: another architecture than {checkpoints[0]}")
        if cfg.input != first.input:
            raise ValueError(f"{path}: another input contract than {checkpoints[0]}")
    model.load_state_dict(average_state_dicts([m.state_dict() for m, _ in loaded]))
    members = [
        {
            "checkpoint": Path(c).name if Path(c).name != "checkpoint" else Path(c).parent.name,
            "name": cfg.name,
            "version": cfg.version,
            "weights_sha256": cfg.weights_sha256,
            "training": cfg.training,
        }
        for c, (_, cfg) in zip(checkpoints, loaded, strict=True)
    ]
    training = {**first.training, "soup": members}
    save_pretrained(
        model,
        out,
        name=name,
        version=version,
        input_spec=first.input,
        decision=DecisionSpec(threshold=0.5, aggregation="mean"),
        training=training,
        include_denoiser=first.network.get("denoiser") is not None,
    )
    logger.info("averaged %d checkpoints into %s", len(checkpoints), out)
    return training
