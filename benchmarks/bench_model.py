"""Inference speed of the face model on this machine: crops per second per configuration.

``python -m benchmarks.bench_model [--threads 2]`` prints a Markdown table and
rewrites the ``model-speed`` section of ``docs/BENCHMARKS.md``. The worker's target is at
least 50 face crops/s on a 2-core CPU at the checkpoint's input size.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from benchmarks.benchdoc import DOC, section, write_section
from benchmarks.common import measured_on
from cre_models.model import CompressionResilientNetwork, EmbedderConfig, NetworkConfig

__all__ = ["crops_per_second", "main"]

SECTION = "model-speed"


@torch.no_grad()
def crops_per_second(
    model: CompressionResilientNetwork,
    size: int,
    batch: int = 8,
    seconds: float = 3.0,
    repeats: int = 3,
) -> float:
    """Median crops/s of ``forward_features`` + head (what the worker runs) at ``size``."""
    model.eval()
    x = torch.rand(batch, 3, size, size) * 2 - 1
    model.forward_head(model.forward_features(x))  # warm-up
    rates = []
    for _ in range(repeats):
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / repeats:
            model.forward_head(model.forward_features(x))
            n += batch
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--sizes", default="96,128,160")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--docs", type=Path, default=DOC)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = []
    for stream in ("seed", "efficientnet_lite0"):
        net = CompressionResilientNetwork(
            config=NetworkConfig(embedder=EmbedderConfig(rgb_stream=stream), denoiser=None)
        )
        params = sum(p.numel() for p in net.parameters()) / 1e6
        for size in (int(s) for s in args.sizes.split(",")):
            rate = crops_per_second(net, size, args.batch, args.seconds)
            rows.append(f"| {stream} | {params:.2f} M | {size} | {args.batch} | {rate:.1f} |")
    body = section(
        "## Face model inference (embedder + head, no denoiser)",
        f"{measured_on('bench_model')}; torch {torch.__version__}, {args.threads} threads,"
        f" batch {args.batch}; median of 3.",
        "| RGB stream | parameters | input px | batch | crops/s |",
        rows,
    )
    print(body)
    write_section(args.docs, SECTION, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
