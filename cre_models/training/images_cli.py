"""``cre train``: the command line of the image training (:mod:`cre_models.training.stages`).

cre train --data REAL_FACES_DIR [--data ...] --val LABELLED_DIR --out runs/NAME [--resume]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..aggregate import STRATEGIES
from .images import TrainConfig

__all__ = ["config_from_args", "main"]


def _csv(s: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in s.split(",") if x.strip())


def _ints(s: str) -> tuple[int, ...]:
    return tuple(int(x) for x in _csv(s))


def _plain(group: Any, defaults: TrainConfig, *names: str) -> None:
    """``--the-name`` options typed and defaulted by :class:`TrainConfig`'s field."""
    for name in names:
        value = getattr(defaults, name)
        group.add_argument("--" + name.replace("_", "-"), type=type(value), default=value)


def _parser() -> argparse.ArgumentParser:
    d = TrainConfig()
    p = argparse.ArgumentParser(
        prog="cre train", description="Train a compression-resilient face-swap detector."
    )
    p.add_argument(
        "--data",
        action="append",
        required=True,
        help="folder of real faces or real/ + fake/; repeatable",
    )
    p.add_argument("--out", default=d.out, help="run folder (checkpoints, metrics.csv, curves.png)")
    p.add_argument(
        "--val", action="append", default=[], help="labelled folder for model selection; repeatable"
    )
    p.add_argument(
        "--report",
        action="append",
        default=[],
        help="labelled folder reported in the model card only",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    g = p.add_argument_group("faces")
    g.add_argument("--size", type=int, default=d.size, help="model input size")
    g.add_argument(
        "--crop-margin", type=float, default=d.crop_margin, help="margin around detected faces"
    )
    g.add_argument(
        "--worker-margin", type=float, default=None, help="crop margin written for the worker"
    )
    _plain(g, d, "frames_per_video")
    g.add_argument("--zoom", type=float, nargs=2, default=d.zoom, metavar=("MIN", "MAX"))
    g.add_argument("--keep-gray", action="store_true", help="keep grey photos")
    g.add_argument(
        "--sbi",
        choices=["auto", "on", "off"],
        default=d.sbi,
        help="self-blended fakes from real faces",
    )
    g = p.add_argument_group("model")
    g.add_argument("--rgb-stream", choices=["seed", "efficientnet_lite0"], default=d.rgb_stream)
    g.add_argument(
        "--no-pretrained", action="store_true", help="random init for efficientnet_lite0"
    )
    g.add_argument("--residual", choices=["gaussian", "srm", "constrained"], default=d.residual)
    _plain(g, d, "embedding_dim")
    g.add_argument("--channels", type=_ints, default=d.channels, help="e.g. 32,64,128,256")
    g.add_argument(
        "--no-denoiser", action="store_true", help="train without the denoiser (skips stage 1)"
    )
    g.add_argument("--denoiser-channels", type=_ints, default=d.denoiser_channels)
    g.add_argument("--classifier-input", choices=["input", "denoised"], default=d.classifier_input)
    _plain(g, d, "latent_dim", "head_hidden")
    g = p.add_argument_group("optimisation")
    _plain(g, d, "stage1_epochs", "stage1_lr", "stage2_epochs", "stage2_lr", "recon_weight")
    g.add_argument(
        "--consistency",
        type=float,
        default=d.consistency,
        help="weight of the clean/compressed embedding term",
    )
    _plain(g, d, "weight_decay")
    g.add_argument(
        "--batch-size",
        type=int,
        default=d.batch_size,
        help="items per batch (an SBI item is 2 images)",
    )
    g.add_argument(
        "--epoch-size",
        type=int,
        default=d.epoch_size,
        help="items per epoch (0: one pass over the faces)",
    )
    g = p.add_argument_group("compression")
    g.add_argument("--severities", type=_csv, default=d.severities)
    _plain(g, d, "codec_prob")
    g.add_argument("--codec-profiles", type=_csv, default=d.codec_profiles)
    g = p.add_argument_group("run")
    _plain(g, d, "seed")
    g.add_argument(
        "--threads", type=int, default=d.threads, help="torch CPU threads (0: torch's default)"
    )
    g.add_argument("--workers", type=int, default=d.workers, help="DataLoader worker processes")
    g.add_argument("--device", default=d.device, help="auto, cpu, cuda, cuda:1 ...")
    _plain(g, d, "name", "version")
    g.add_argument("--threshold", default=d.threshold, help="'auto' (chosen on --val) or a number")
    g.add_argument("--aggregation", choices=sorted(STRATEGIES), default=d.aggregation)
    g.add_argument("--no-progress", action="store_true")
    g.add_argument(
        "--cache-dir", default=None, help="face-crop cache (default $CRE_CACHE or ~/.cache/cre)"
    )
    return p


def config_from_args(argv: Sequence[str] | None = None) -> tuple[TrainConfig, bool]:
    """Parse ``cre train`` arguments into a :class:`TrainConfig` (and the ``--resume`` flag)."""
    a = _parser().parse_args(argv)
    flags = {  # options that switch a default off
        "drop_gray": not a.keep_gray,
        "pretrained": not a.no_pretrained,
        "denoiser": not a.no_denoiser,
        "progress": not a.no_progress,
    }
    given = {f.name: getattr(a, f.name) for f in dataclasses.fields(TrainConfig) if f.name in a}
    cfg = TrainConfig(**{**given, "zoom": tuple(a.zoom), **flags})
    return cfg, a.resume


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``cre train``."""
    from .stages import train

    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    cfg, resume = config_from_args(argv)
    out = Path(cfg.out)
    if not resume and (out / "resume.pt").exists():
        (out / "resume.pt").unlink()
    best = train(cfg)
    print(f"best checkpoint: {best}")
    return 0
