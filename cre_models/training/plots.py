"""``cre train``'s record of a run: ``metrics.csv`` (a row per epoch) and ``curves.png``."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

__all__ = ["CSV_FIELDS", "append_metrics", "plot_curves"]

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


def append_metrics(path: Path, row: dict[str, Any]) -> None:
    """Append one epoch's row (the :data:`CSV_FIELDS` of ``row``) to ``metrics.csv``."""
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
