"""Summarise training runs as Markdown: validation AUC per condition of each best checkpoint.

``python scripts/summarise_runs.py runs/cmp/*/best [--split val|report]``
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

CONDS = ("none", "light", "medium", "heavy", "ladder-1", "ladder-3", "ladder-5")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("checkpoints", nargs="+")
    p.add_argument("--split", default="val", choices=["val", "report"])
    args = p.parse_args()
    print("| run | best epoch | train min | " + " | ".join(CONDS) + " |")
    print("| --- | --- | --- | " + " | ".join("---" for _ in CONDS) + " |")
    for ck in args.checkpoints:
        ck = Path(ck)
        cfg = json.loads((ck / "config.json").read_text())
        tr = cfg["training"]
        metrics = tr["metrics"].get(args.split, {})
        with (ck.parent / "metrics.csv").open() as f:
            secs = sum(float(r["seconds"]) for r in csv.DictReader(f))
        cells = [f"{metrics[c]['frame_auc']:.3f}" if c in metrics else "-" for c in CONDS]
        name = ck.parent.name
        print(
            f"| {name} | {tr['metrics']['best_epoch']} | {secs / 60:.1f} | "
            + " | ".join(cells)
            + " |"
        )


if __name__ == "__main__":
    main()
