"""Inference speed of the face model on this machine: crops per second per configuration.

``python -m benchmarks.bench_model [--threads 1,2] [--sizes 128,160,224]`` prints a Markdown
table and rewrites the ``model-speed`` section of ``docs/BENCHMARKS.md``: per RGB stream,
input size and torch thread count, the network as training builds it and the copy the worker
runs (:func:`cre_models.inference.optimise_for_inference`, fed channels-last as the worker
feeds it). The worker's target is at least 50 face crops/s on a 2-core CPU at the
checkpoint's input size; on two cores the worker's model runs on one thread while the
decoder thread works and on both while it waits.
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
from cre_models.inference import optimise_for_inference, torch_threads
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
    channels_last: bool = False,
) -> float:
    """Median crops/s of ``forward_features`` + head (what the worker runs) at ``size``;
    ``channels_last``: the input in that layout (as the worker feeds its inference copy)."""
    model.eval()
    x = torch.rand(batch, 3, size, size) * 2 - 1
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    model.forward_head(model.forward_features(x))  # warm-up
    rates = []
    for _ in range(repeats):
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / repeats:
            model.forward_head(model.forward_features(x))
            n += batch
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)


def batch_sweep(
    fast: CompressionResilientNetwork,
    sizes: Sequence[int],
    batches: Sequence[int],
    threads: Sequence[int],
    seconds: float,
) -> list[str]:
    """Markdown rows: crops/s of ``fast`` (a worker copy) per input size, thread count and
    batch size, each the median of 3 rounds that go through every batch size in turn (so a
    slow spell of a shared machine lands on all of them)."""
    if not batches:
        return []
    head = "| input px | torch threads | " + " | ".join(f"batch {b}" for b in batches) + " |"
    rows = [head, "| ---: | ---: | " + " | ".join("---:" for _ in batches) + " |"]
    for size in sizes:
        for n in threads:
            rates: dict[int, list[float]] = {b: [] for b in batches}
            with torch_threads(n):
                for _ in range(3):
                    for b in batches:
                        rates[b].append(crops_per_second(fast, size, b, seconds / 3, 1, True))
            med = {b: statistics.median(r) for b, r in rates.items()}
            best = max(med, key=lambda b: med[b])
            cells = [f"**{med[b]:.1f}**" if b == best else f"{med[b]:.1f}" for b in batches]
            rows.append(f"| {size} | {n} | " + " | ".join(cells) + " |")
            print(rows[-1], flush=True)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--threads", default="1,2", help="torch thread counts, comma-separated")
    p.add_argument("--sizes", default="128,160,224", help="input sizes, comma-separated")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument(
        "--batch-sweep",
        default="1,2,3,4,6,8,12,16",
        help="batch sizes for the worker copy's sweep (empty: no sweep)",
    )
    p.add_argument("--docs", type=Path, default=DOC)
    args = p.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]
    sizes = [int(s) for s in args.sizes.split(",")]
    torch.manual_seed(0)
    rows = []
    copies: dict[str, CompressionResilientNetwork] = {}
    for stream in ("seed", "efficientnet_lite0"):
        net = CompressionResilientNetwork(
            config=NetworkConfig(embedder=EmbedderConfig(rgb_stream=stream), denoiser=None)
        ).eval()
        fast = copies[stream] = optimise_for_inference(net)
        torch_choice = optimise_for_inference(net, onednn=False)
        params = sum(p.numel() for p in net.parameters()) / 1e6
        for size in sizes:
            for n in threads:
                with torch_threads(n):
                    built = crops_per_second(net, size, args.batch, args.seconds)
                    before = crops_per_second(torch_choice, size, args.batch, args.seconds, 3, True)
                    worker = crops_per_second(fast, size, args.batch, args.seconds, 3, True)
                rows.append(
                    f"| {stream} | {params:.2f} M | {size} | {args.batch} | {n} | {built:.1f} "
                    f"| {before:.1f} | {worker:.1f} |"
                )
                print(rows[-1], flush=True)
    sweep_rows = batch_sweep(  # the shipped architecture
        copies["efficientnet_lite0"],
        sizes,
        [int(b) for b in args.batch_sweep.split(",") if b],
        threads,
        args.seconds,
    )
    body = section(
        "## Face model inference (embedder + head, no denoiser)",
        f"{measured_on('bench_model')}; torch {torch.__version__}, batch {args.batch}; median "
        'of 3. "as built": the network as training builds it; "worker": the copy the worker '
        "runs (`cre_models.inference.optimise_for_inference`: batch norms folded, channels-last, "
        'every convolution on oneDNN), fed channels-last; "worker, torch\'s kernels": the same '
        "copy with PyTorch's own choice of convolution kernel (`onednn=False`, the worker up to "
        "the twentieth session).",
        "| RGB stream | parameters | input px | batch | torch threads | crops/s as built "
        "| crops/s worker, torch's kernels | crops/s worker |",
        rows,
    )
    if sweep_rows:
        body += (
            "\n\nThe worker copy of the shipped architecture (efficientnet_lite0 + srm) by batch "
            "size: crops/s, median of 3 interleaved rounds; **bold**: the best of a row.\n\n"
            + "\n".join(sweep_rows)
        )
    print(body)
    write_section(args.docs, SECTION, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
