"""``cre train``: the seed's two training stages on face images, and the checkpoints they make.

The recipe and its items are :mod:`cre_models.training.images`. The two stages (defaults):

1. the denoiser alone: Adam, lr 1e-3, 10 epochs, MSE between the reconstruction of the
   compressed image and the clean image;
2. the full network: Adam, lr 1e-4, 20 epochs, loss = 1.0 x cross-entropy + 0.1 x
   reconstruction MSE (+ optional ``--consistency`` x (1 - cosine) between the embedding
   of a clean face and of its compressed copy).

Outputs in ``--out``: ``metrics.csv`` (one row per epoch) and ``curves.png``
(:mod:`cre_models.training.plots`), ``last/`` and ``best/`` checkpoints
(``model.safetensors`` + ``config.json`` + ``MODEL_CARD.md``,
:mod:`cre_models.training.card`) and ``resume.pt`` (optimizer and progress, for
``--resume``). ``best`` is chosen on ``--val`` (mean AUC at severities none and heavy); the
threshold, unless given, is the best balanced accuracy on ``--val``
(:func:`cre_models.evaluation.metrics.choose_threshold`).
"""

from __future__ import annotations

import csv
import json
import logging
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from ..conditions import CompressionSampler
from ..evaluation.crops import ConditionResult, evaluate
from ..evaluation.metrics import choose_threshold
from ..model import CompressionResilientNetwork, count_parameters
from ..weights import DecisionSpec, InputSpec, load_pretrained, save_pretrained
from .card import provenance, result_tables, write_model_card
from .data import FaceSample, load_face_samples
from .images import FaceDataset, TrainConfig, build_model, collate
from .plots import append_metrics, plot_curves

__all__ = ["train"]

logger = logging.getLogger(__name__)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


# --- loops ----------------------------------------------------------------------------------


def _run_epoch(
    model: CompressionResilientNetwork,
    loader: DataLoader[dict[str, torch.Tensor]],
    opt: torch.optim.Optimizer,
    stage: int,
    cfg: TrainConfig,
    device: torch.device,
    desc: str,
) -> dict[str, float]:
    model.train()
    sums = {"loss": 0.0, "ce": 0.0, "recon": 0.0, "consistency": 0.0, "correct": 0.0, "n": 0.0}
    iterator: Any = loader
    if cfg.progress:
        from tqdm import tqdm

        iterator = tqdm(loader, desc=desc, unit="batch", leave=False, dynamic_ncols=True)
    for batch in iterator:
        x = batch["input"].to(device)
        clean = batch["clean"].to(device)
        y = batch["label"].to(device)
        ce = recon = cons = torch.zeros((), device=device)
        if stage == 1:
            recon = F.mse_loss(model.reconstruct(x), clean)
            loss = recon
        else:
            need_recon = model.denoiser is not None and (
                cfg.recon_weight > 0 or cfg.classifier_input == "denoised"
            )
            rec = model.reconstruct(x) if need_recon else None
            feats = model.embedder(rec if cfg.classifier_input == "denoised" else x)
            logits = model.forward_head(feats)
            ce = F.cross_entropy(logits, y)
            loss = cfg.ce_weight * ce
            if rec is not None and cfg.recon_weight > 0:
                recon = F.mse_loss(rec, clean)
                loss = loss + cfg.recon_weight * recon
            if cfg.consistency > 0:
                feats_clean = model.forward_features(clean)
                cons = (1 - F.cosine_similarity(feats, feats_clean, dim=1)).mean()
                loss = loss + cfg.consistency * cons
            sums["correct"] += float((logits.argmax(1) == y).sum())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        n = float(len(x))
        sums["n"] += n
        for k, v in (("loss", loss), ("ce", ce), ("recon", recon), ("consistency", cons)):
            sums[k] += float(v.detach()) * n
        if cfg.progress:
            iterator.set_postfix(loss=f"{sums['loss'] / sums['n']:.4f}")
    n = max(1.0, sums["n"])
    return {
        "train_loss": sums["loss"] / n,
        "ce": sums["ce"] / n,
        "recon": sums["recon"] / n,
        "consistency": sums["consistency"] / n,
        "train_acc": sums["correct"] / n if stage == 2 else float("nan"),
    }


def _validate(
    model: CompressionResilientNetwork, val: Sequence[FaceSample], cfg: TrainConfig
) -> list[ConditionResult]:
    return evaluate(
        model,
        val,
        transform=cfg.transform(),
        conditions=("none", "heavy"),
        seed=cfg.seed,
        stability=False,
        aggregation="mean",
    )


def _frame_metrics(results: Sequence[ConditionResult]) -> dict[str, dict[str, float]]:
    """Frame AUC, accuracy and log-loss per condition, for the checkpoint's config."""
    return {
        r.condition: {
            "frame_auc": r.frame_auc,
            "frame_acc": r.frame_acc,
            "frame_logloss": r.frame_logloss,
        }
        for r in results
    }


def _save(
    model: CompressionResilientNetwork,
    directory: Path,
    cfg: TrainConfig,
    training: dict[str, Any],
    threshold: float,
    include_denoiser: bool,
) -> None:
    save_pretrained(
        model,
        directory,
        name=cfg.name,
        version=cfg.version,
        input_spec=InputSpec(
            size=cfg.size,
            crop_margin=cfg.crop_margin if cfg.worker_margin is None else cfg.worker_margin,
            frames_per_video=cfg.frames_per_video,
        ),
        decision=DecisionSpec(threshold=threshold, aggregation=cfg.aggregation),
        training=training,
        include_denoiser=include_denoiser,
    )


def _load_resume(out: Path) -> dict[str, Any] | None:
    path = out / "resume.pt"
    if not path.is_file():
        return None
    return torch.load(str(path), map_location="cpu", weights_only=True)


def train(cfg: TrainConfig) -> Path:
    """Run both stages; return the ``best`` checkpoint folder."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = _device(cfg.device)
    torch.manual_seed(cfg.seed)
    samples = load_face_samples(
        cfg.data,
        margin=cfg.crop_margin,
        size=cfg.store_size,
        frames_per_video=cfg.frames_per_video,
        drop_gray=cfg.drop_gray,
        cache_dir=cfg.cache_dir,
        progress=cfg.progress,
    )
    if not samples:
        raise ValueError(f"no faces found under {cfg.data}")
    val = (
        load_face_samples(
            cfg.val,
            margin=cfg.crop_margin,
            size=cfg.degrade_size,
            drop_gray=False,
            cache_dir=cfg.cache_dir,
        )
        if cfg.val
        else []
    )
    compress = CompressionSampler(cfg.severities, cfg.codec_prob, cfg.codec_profiles)
    ds = FaceDataset(samples, cfg, compress)
    model = build_model(cfg).to(device)
    logger.info(
        "model: %d parameters (%s); %d training faces; device %s",
        count_parameters(model),
        cfg.rgb_stream,
        len(samples),
        device,
    )
    (out / "train_config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")

    stage1 = cfg.stage1_epochs if model.denoiser is not None else 0
    plan = [(1, e) for e in range(stage1)] + [(2, e) for e in range(cfg.stage2_epochs)]
    state = _load_resume(out)
    start = 0
    best_score = -1.0
    best_epoch = -1
    opt_state = None
    if state is not None:
        model.load_state_dict(state["model"], strict=True)
        start, best_score, best_epoch = (
            int(state["step"]),
            float(state["best_score"]),
            int(state["best_epoch"]),
        )
        if int(state.get("opt_stage", 0)) == plan[start][0] if start < len(plan) else False:
            opt_state = state["optimizer"]
        logger.info("resuming after %d of %d epochs", start, len(plan))
    elif (out / "metrics.csv").exists():
        (out / "metrics.csv").unlink()

    opt: torch.optim.Optimizer | None = None
    opt_stage = 0
    for step in range(start, len(plan)):
        stage, epoch = plan[step]
        if stage != opt_stage:
            params = (
                model.denoiser.parameters()
                if stage == 1 and model.denoiser is not None
                else model.parameters()
            )
            lr = cfg.stage1_lr if stage == 1 else cfg.stage2_lr
            opt = torch.optim.Adam(params, lr=lr, weight_decay=cfg.weight_decay)
            if opt_state is not None:
                opt.load_state_dict(opt_state)
                opt_state = None
            opt_stage = stage
        assert opt is not None
        t0 = time.time()
        ds.set_epoch(step)
        gen = torch.Generator().manual_seed(cfg.seed * 1000 + step)
        torch.manual_seed(cfg.seed * 1000 + step)  # dropout
        loader = DataLoader(
            ds,
            batch_size=cfg.batch_size,
            shuffle=True,
            generator=gen,
            collate_fn=collate,
            num_workers=cfg.workers,
        )
        stats = _run_epoch(
            model, loader, opt, stage, cfg, device, f"stage {stage} epoch {epoch + 1}"
        )
        row: dict[str, Any] = {
            "stage": stage,
            "epoch": epoch + 1,
            "lr": opt.param_groups[0]["lr"],
            **stats,
        }
        if stage == 2 and val:
            res = _validate(model, val, cfg)
            row.update(
                val_auc_none=res[0].frame_auc,
                val_auc_heavy=res[1].frame_auc,
                val_score=(res[0].frame_auc + res[1].frame_auc) / 2,
                val_logloss_none=res[0].frame_logloss,
            )
        row["seconds"] = time.time() - t0
        append_metrics(out / "metrics.csv", row)
        logger.info(
            "stage %d epoch %d: %s",
            stage,
            epoch + 1,
            {k: round(v, 4) for k, v in row.items() if isinstance(v, float)},
        )
        if stage == 2:
            score = row.get("val_score", -float(stats["train_loss"]))
            if score == score and score > best_score:
                best_score, best_epoch = float(score), epoch + 1
                torch.save(model.state_dict(), out / "best_state.pt")
        torch.save(
            {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "step": step + 1,
                "opt_stage": stage,
                "best_score": best_score,
                "best_epoch": best_epoch,
            },
            out / "resume.pt",
        )
        plot_curves(out / "metrics.csv", out / "curves.png")

    # Time spent on all epochs, including those of earlier runs this one resumed.
    with (out / "metrics.csv").open() as f:
        seconds = sum(float(r["seconds"]) for r in csv.DictReader(f))
    return _finish(model, cfg, out, samples, val, best_score, best_epoch, seconds)


def _measure(
    model: CompressionResilientNetwork,
    samples: Sequence[FaceSample],
    cfg: TrainConfig,
    threshold: float,
) -> list[ConditionResult]:
    """Every condition's metrics of ``samples``, accuracy at ``threshold``."""
    return evaluate(
        model,
        samples,
        transform=cfg.transform(),
        seed=cfg.seed,
        threshold=threshold,
        aggregation=cfg.aggregation,
    )


def _finish(
    model: CompressionResilientNetwork,
    cfg: TrainConfig,
    out: Path,
    samples: Sequence[FaceSample],
    val: Sequence[FaceSample],
    best_score: float,
    best_epoch: int,
    seconds: float,
) -> Path:
    include_denoiser = cfg.classifier_input == "denoised"
    for tag in ("last", "best"):
        if tag == "best" and (out / "best_state.pt").is_file():
            model.load_state_dict(
                torch.load(str(out / "best_state.pt"), map_location="cpu", weights_only=True),
                strict=True,
            )
        model.eval()
        threshold, rule = 0.5, "fixed 0.5"
        tables: dict[str, str] = {}
        if cfg.threshold != "auto":
            threshold, rule = float(cfg.threshold), "set by --threshold"
        metrics: dict[str, Any] = {"best_epoch": best_epoch, "best_val_score": best_score}
        if val:
            res = _measure(model, val, cfg, threshold)
            if cfg.threshold == "auto":
                pooled = [r for r in res if r.condition in ("none", "heavy")]
                threshold = choose_threshold(
                    np.concatenate([r.labels for r in pooled]),
                    np.concatenate([r.probs for r in pooled]),
                )
                rule = "best balanced accuracy on the validation crops, none + heavy pooled"
                res = _measure(model, val, cfg, threshold)
            tables[f"Validation ({', '.join(cfg.val)}): used to select the epoch and threshold"] = (
                result_tables(res, threshold, cfg.aggregation)
            )
            metrics["val"] = _frame_metrics(res)
        if cfg.report:
            rep = load_face_samples(
                cfg.report,
                margin=cfg.crop_margin,
                size=cfg.degrade_size,
                drop_gray=False,
                cache_dir=cfg.cache_dir,
            )
            if rep:
                res = _measure(model, rep, cfg, threshold)
                tables[f"Report ({', '.join(cfg.report)}): never used for any choice"] = (
                    result_tables(res, threshold, cfg.aggregation)
                )
                metrics["report"] = _frame_metrics(res)
        n_params = sum(
            v.numel()
            for k, v in model.state_dict().items()
            if include_denoiser or not k.startswith("denoiser.")
        )
        training = {
            "provenance": provenance(samples, cfg.data),
            "recipe": cfg.to_dict(),
            "metrics": metrics,
            "threshold_rule": rule,
            "includes_denoiser": include_denoiser,
            "parameters": n_params,
            "items_per_epoch": len(FaceDataset(samples, cfg, CompressionSampler(codec_prob=0.0))),
            "machine": f"{platform.machine()} CPU x{torch.get_num_threads()} threads"
            if not torch.cuda.is_available()
            else torch.cuda.get_device_name(0),
            "train_minutes": round(seconds / 60, 1),
            "checkpoint": tag,
        }
        _save(model, out / tag, cfg, training, threshold, include_denoiser)
        write_model_card(out / tag, cfg, training, tables, threshold)
        for title, table in tables.items():
            print(f"\n{tag}: {title}\n\n{table}")
    load_pretrained(out / "best")  # the written checkpoint must load strictly
    return out / "best"
