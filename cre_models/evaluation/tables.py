"""The tables and plots of ``cre eval`` (face crops) and of the image training's model card."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..aggregate import STRATEGIES
from .crops import ConditionResult

__all__ = ["format_table", "format_aggregation_table", "plot_roc"]


def _f(x: float) -> str:
    return "-" if x != x else f"{x:.3f}"


def format_table(results: Sequence[ConditionResult], threshold: float, aggregation: str) -> str:
    """The main Markdown table: one row per condition."""
    lines = [
        f"| condition | frame AUC | frame acc@{threshold:.2f} | frame log-loss "
        f"| video AUC ({aggregation}) | video acc | video log-loss | faces / videos "
        "| cos(clean, compressed) | cos(different faces) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        lines.append(
            f"| {r.condition} | {_f(r.frame_auc)} | {_f(r.frame_acc)} | {_f(r.frame_logloss)} "
            f"| {_f(r.video_auc)} | {_f(r.video_acc)} | {_f(r.video_logloss)} "
            f"| {r.n_frames} / {r.n_videos} | {_f(r.cos_same)} "
            f"| {_f(r.cos_diff)} |"
        )
    return "\n".join(lines)


def format_aggregation_table(results: Sequence[ConditionResult]) -> str:
    """Video AUC / log-loss per aggregation and condition."""
    methods = list(STRATEGIES)
    lines = [
        "| condition | " + " | ".join(f"{m} AUC / log-loss" for m in methods) + " |",
        "| --- | " + " | ".join("---" for _ in methods) + " |",
    ]
    for r in results:
        cells = [f"{_f(r.video_by_agg[m][0])} / {_f(r.video_by_agg[m][2])}" for m in methods]
        lines.append(f"| {r.condition} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_roc(
    results: Sequence[ConditionResult], path: str | Path, title: str = "ROC per condition"
) -> None:
    """Frame-level ROC curves of every condition in one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    fig, ax = plt.subplots(figsize=(6, 6))
    for r in results:
        if len(set(r.labels.tolist())) < 2:
            continue
        fpr, tpr, _ = roc_curve(r.labels, r.probs)
        ax.plot(fpr, tpr, label=f"{r.condition} (AUC {r.frame_auc:.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
