"""``cre train``: the command line of the image training (:mod:`cre_models.training.stages`).

cre train --data REAL_FACES_DIR [--data ...] --val LABELLED_DIR --out runs/NAME [--resume]
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from ..aggregate import STRATEGIES
from ..evaluation.metrics import require_train_extra
from .images import TrainConfig
from .options import add_option, add_options, config_values

__all__ = ["config_from_args", "main"]


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
    add_option(p, d, "out", help="run folder (checkpoints, metrics.csv, curves.png)")
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
    add_option(g, d, "size", help="model input size")
    add_option(g, d, "crop_margin", help="margin around detected faces")
    add_option(g, d, "worker_margin", help="crop margin written for the worker")
    add_options(g, d, ["frames_per_video"])
    add_option(g, d, "zoom", metavar=("MIN", "MAX"))
    g.add_argument("--keep-gray", dest="drop_gray", action="store_false", help="keep grey photos")
    add_option(
        g, d, "sbi", choices=["auto", "on", "off"], help="self-blended fakes from real faces"
    )
    g = p.add_argument_group("model")
    add_option(g, d, "rgb_stream", choices=["seed", "efficientnet_lite0"])
    add_option(g, d, "pretrained", help="ImageNet weights for efficientnet_lite0")
    add_option(g, d, "residual", choices=["gaussian", "srm", "constrained"])
    add_options(g, d, ["embedding_dim"])
    add_option(g, d, "channels", help="e.g. 32,64,128,256")
    add_option(g, d, "denoiser", help="train the denoiser (stage 1); --no-denoiser skips it")
    add_options(g, d, ["denoiser_channels"])
    add_option(g, d, "classifier_input", choices=["input", "denoised"])
    add_options(g, d, ["latent_dim", "head_hidden"])
    g = p.add_argument_group("optimisation")
    add_options(g, d, ["stage1_epochs", "stage1_lr", "stage2_epochs", "stage2_lr", "recon_weight"])
    add_option(g, d, "consistency", help="weight of the clean/compressed embedding term")
    add_options(g, d, ["weight_decay"])
    add_option(g, d, "batch_size", help="items per batch (an SBI item is 2 images)")
    add_option(g, d, "epoch_size", help="items per epoch (0: one pass over the faces)")
    g = p.add_argument_group("compression")
    add_options(g, d, ["severities", "codec_prob", "codec_profiles"])
    g = p.add_argument_group("run")
    add_options(g, d, ["seed"])
    add_option(g, d, "threads", help="torch CPU threads (0: torch's default)")
    add_option(g, d, "workers", help="DataLoader worker processes")
    add_option(g, d, "device", help="auto, cpu, cuda, cuda:1 ...")
    add_options(g, d, ["name", "version"])
    add_option(g, d, "threshold", help="'auto' (chosen on --val) or a number")
    add_option(g, d, "aggregation", choices=sorted(STRATEGIES))
    add_option(g, d, "progress", help="progress bars")
    add_option(g, d, "cache_dir", help="face-crop cache (default $CRE_CACHE or ~/.cache/cre)")
    return p


def config_from_args(argv: Sequence[str] | None = None) -> tuple[TrainConfig, bool]:
    """Parse ``cre train`` arguments into a :class:`TrainConfig` (and the ``--resume`` flag)."""
    a = _parser().parse_args(argv)
    return TrainConfig(**config_values(a, TrainConfig)), a.resume


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``cre train``."""
    from .stages import train

    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    cfg, resume = config_from_args(argv)
    require_train_extra("cre train")
    out = Path(cfg.out)
    if not resume and (out / "resume.pt").exists():
        (out / "resume.pt").unlink()
    best = train(cfg)
    print(f"best checkpoint: {best}")
    return 0
