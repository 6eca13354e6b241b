"""Markdown table of ``cre train-videos`` runs: validation video AUC at each evaluation.

    python scripts/summarise_video_runs.py runs/A runs/B ...

Reads each run's ``loop_config.json`` and ``metrics.csv`` (written as the run goes), so the
table in docs/EVALUATION.md is this script's output, not hand-copied numbers.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path)
    args = p.parse_args()
    head = "| run | RGB / residual | notes | step | train acc. | video AUC as delivered | "
    head += "video AUC re-encoded | mean | minutes |"
    print(head)  # noqa: T201
    print("| --- " * 9 + "|")  # noqa: T201
    for run in args.runs:
        cfg = json.loads((run / "loop_config.json").read_text())
        notes = []
        if cfg.get("freeze_blocks", 0) and cfg["rgb_stream"] == "efficientnet_lite0":
            notes.append(f"{cfg['freeze_blocks']} blocks frozen")
        notes.append(f"{cfg['size']} px")
        data = cfg.get("extra", {})
        frames, copies = data.get("frames", 32), data.get("deg_copies", 1)  # the CLI's defaults
        if (frames, copies) != (32, 1):
            notes.append(f"{frames} frames, {copies} re-encoded copies")
        if _aligned(run, data):
            notes.append("eye-levelled crops")
        if data.get("extra_labelled"):
            notes.append(f"{data['extra_labelled']} extra labelled clips")
        if data.get("extra_reals"):
            notes.append(f"{data['extra_reals']} extra real photos/videos")
        if cfg.get("soften_reals", 0):
            notes.append(f"{cfg['soften_reals']:g} of real-clip crops softened")
        if cfg.get("detail_px", 0):
            notes.append(f"detail capped at {cfg['detail_px']} px")
        if cfg.get("rgb_blocks", 16) != 16:
            notes.append(f"RGB stream cut after {cfg['rgb_blocks']} blocks")
        if cfg.get("residual_norm", "none") != "none":
            notes.append(f"residual {cfg['residual_norm']}-normalised")
        if cfg.get("part_cutout", 0):
            notes.append(f"{cfg['part_cutout']:g} of crops with a part hidden")
        if cfg.get("identity_adversary", 0):
            notes.append(f"identity adversary {cfg['identity_adversary']:g}")
        if cfg.get("mask_loss", 0):
            notes.append(f"manipulation map (weight {cfg['mask_loss']:g})")
        if cfg.get("keep", "best") == "last":
            notes.append("last step kept")
        if cfg.get("match_detail", 0):
            notes.append(f"{cfg['match_detail']:g} of crops detail-matched")
        if cfg.get("denoiser"):
            notes.append(f"denoised input (L1 weight {cfg['recon_weight']:g})")
        if cfg.get("twin_pairs"):
            notes.append(f"{cfg['twin_pairs']} twin pairs (weight {cfg['twin_weight']:g})")
        if cfg.get("ema"):
            notes.append(f"weight EMA {cfg['ema']:g}")
        notes.append(f"lr {cfg['lr']:g}, SBI share {cfg['sbi_share']:g}")
        if cfg.get("seed", 0):
            notes.append(f"seed {cfg['seed']}")
        notes.append("domain-balanced" if "ffpp_share" in cfg else "not domain-balanced")
        with (run / "metrics.csv").open() as f:
            rows = list(csv.DictReader(f))
        best = max(rows, key=lambda r: float(r["val_score"]))
        for r in rows:
            mark = " **(best)**" if r is best else ""
            print(  # noqa: T201
                f"| {run.name} | {cfg['rgb_stream']} / {cfg['residual']} | {'; '.join(notes)} "
                f"| {r['step']}{mark} | {float(r['train_acc']):.3f} "
                f"| {float(r['val_auc_orig']):.3f} | {float(r['val_auc_deg']):.3f} "
                f"| {float(r['val_score']):.3f} | {float(r['seconds']) / 60:.1f} |"
            )


def _aligned(run: Path, extra: dict[str, object]) -> bool:
    """Eye-levelled crops: recorded in ``extra`` since the fifth session, and always in the
    checkpoint's input contract (the fallback for older runs)."""
    if "align" in extra:
        return bool(extra["align"])
    config = run / "checkpoint" / "config.json"
    return config.is_file() and bool(json.loads(config.read_text())["input"].get("align"))


if __name__ == "__main__":
    main()
