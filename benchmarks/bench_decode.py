"""Decode speed: every frame vs the 32-frame sampler, and the demux-only keyframe pass.

Generates synthetic H.264 clips (x264 default GOP unless stated, 30 fps), times each case
(median of ``--repeats``) and rewrites the ``decode`` section of docs/BENCHMARKS.md.
Run it with ``nice``: ``nice -n 10 python -m benchmarks.bench_decode``.

:func:`decode_floor_seconds` gives the decoding floor of any video for other benchmarks.
"""

from __future__ import annotations

import argparse
import logging
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.benchdoc import DOC, write_section
from benchmarks.common import measured_on
from cre_models.sampling import sample_frames
from cre_models.video import (
    SampleStats,
    VideoLimits,
    configure_decoder,
    decoded_frames,
    open_video,
    probe_video,
    scan_packets,
    video_stream,
)
from tests.synth import write_video

__all__ = ["decode_floor_seconds", "main"]

logger = logging.getLogger("bench_decode")

SECTION = "decode"

# name, width, height, seconds, gop (None = x264 default, 250)
CLIPS: list[tuple[str, int, int, float, int | None]] = [
    ("10 s 720p", 1280, 720, 10.0, None),
    ("10 s 1080p", 1920, 1080, 10.0, None),
    ("3 min 480p", 854, 480, 180.0, None),
    ("3 min 480p, GOP 30", 854, 480, 180.0, 30),
]


def decode_floor_seconds(path: Path, limits: VideoLimits | None = None) -> float:
    """Seconds to decode every frame of ``path`` (no RGB conversion): the CPU floor.

    Uses the same decoder settings as the sampler (``decode_threads``), so the number is
    the least any scoring of this video with these limits can take.
    """
    limits = limits or VideoLimits()
    stats = SampleStats()
    t0 = time.perf_counter()
    with open_video(Path(path), limits) as container:
        stream = video_stream(container)
        configure_decoder(stream, limits)
        for _ in decoded_frames(container, stream, stats, limits.max_pixels):
            pass
    return time.perf_counter() - t0


def _median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _sample_all(path: Path, n: int, limits: VideoLimits, stats: SampleStats) -> None:
    info = probe_video(path, limits)
    for _ in sample_frames(path, info, n, limits, stats=stats):
        pass


def bench_clip(path: Path, n: int, limits: VideoLimits, repeats: int) -> dict[str, float]:
    """Timings (seconds) and counters for one clip."""
    info = probe_video(path, limits)
    stats = SampleStats()
    _sample_all(path, n, limits, stats)
    floor = statistics.median(decode_floor_seconds(path, limits) for _ in range(repeats))
    return {
        "frames": float(stats.packets),
        "keyframes": float(stats.keyframes),
        "decode_all_s": floor,
        "sampler_s": _median_time(lambda: _sample_all(path, n, limits, SampleStats()), repeats),
        "scan_s": _median_time(lambda: scan_packets(path, limits), repeats),
        "seeks": float(stats.seeks),
        "decoded": float(stats.frames_decoded),
        "mb": info.size_bytes / 1e6,
    }


def _table(rows: list[tuple[str, dict[str, float]]], n: int, repeats: int) -> str:
    lines = [
        f"{measured_on('bench_decode')}: trust ratios more than absolutes. Synthetic H.264 "
        f"clips (x264 veryfast, CRF 23, 30 fps), decode_threads=1, median of {repeats}.",
        "",
        f"| clip | MB | frames | keyframes | decode all | sampler ({n} frames) | seeks | "
        "frames decoded by sampler | demux-only keyframe pass |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in rows:
        lines.append(
            f"| {name} | {r['mb']:.1f} | {r['frames']:.0f} | {r['keyframes']:.0f} | "
            f"{r['decode_all_s']:.2f} s | {r['sampler_s']:.2f} s | {r['seeks']:.0f} | "
            f"{r['decoded']:.0f} | {r['scan_s'] * 1000:.0f} ms |"
        )
    lines += [
        "",
        "The sampler time includes probing (one decoded frame), the demux-only pass and the "
        f"RGB conversion of the {n} frames. It seeks only when a keyframe lies between the "
        "decoder's position and the next target.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=32, help="frames sampled per video")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", type=Path, help="keep generated clips here (reused if present)")
    parser.add_argument("--no-doc", action="store_true", help="print only, leave the doc alone")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    limits = VideoLimits()
    folder = args.dir or Path(tempfile.mkdtemp(prefix="cre-bench-decode-"))
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, w, h, seconds, gop in CLIPS:
        path = folder / (re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") + ".mp4")
        if not path.exists():
            t0 = time.perf_counter()
            write_video(path, width=w, height=h, seconds=seconds, fps=30, gop=gop, face=True)
            logger.info("made %s in %.1f s", path.name, time.perf_counter() - t0)
        r = bench_clip(path, args.frames, limits, args.repeats)
        logger.info(
            "%-20s decode all %.2f s | sampler %.2f s (%d seeks, %d decoded) | scan %.0f ms",
            name,
            r["decode_all_s"],
            r["sampler_s"],
            r["seeks"],
            r["decoded"],
            r["scan_s"] * 1000,
        )
        rows.append((name, r))
    table = _table(rows, args.frames, args.repeats)
    print(table)
    if not args.no_doc:
        write_section(DOC, SECTION, table, heading="## Decoding")
        logger.info("updated %s", DOC)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
