"""What several benchmarks share: the machine line of a section, synthetic face clips, and
a process's own peak memory."""

from __future__ import annotations

import argparse
import os
import platform
from datetime import UTC, datetime
from pathlib import Path

__all__ = [
    "ROOT",
    "cpu_model",
    "peak_rss_mb",
    "measured_on",
    "add_clip_arguments",
    "write_clips",
    "describe_weights",
]

ROOT = Path(__file__).resolve().parents[1]
"""The repository root (workers started by a benchmark import the code from here)."""


def peak_rss_mb() -> tuple[float, str]:
    """This process's peak resident memory in MB, and where it was read.

    On Linux ``VmHWM`` of ``/proc/self/status``: the high-water mark of this process's own
    memory. Not ``getrusage``'s ``ru_maxrss`` there: a child started by ``subprocess`` keeps
    the ``ru_maxrss`` of the process it was forked from across ``exec``, so a fresh process
    started by a benchmark that holds a model reports at least the benchmark's own peak
    (seen: 726 MB for a child whose own peak was 10 MB). Elsewhere ``ru_maxrss`` (bytes on
    macOS, KiB on the BSDs), with that caveat.
    """
    import resource
    import sys

    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024, "VmHWM"
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024), "ru_maxrss"


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measured_on(script: str) -> str:
    """``Measured <UTC time> by `python -m benchmarks.<script>` on <CPU>, <N> cores ...``."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return (
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `python -m benchmarks.{script}` on "
        f"{cpu_model()}, {os.cpu_count()} cores shared with "
        f"other jobs (load average {load})"
    )


def add_clip_arguments(parser: argparse.ArgumentParser) -> None:
    """``--width --height --seconds --fps`` of the clips :func:`write_clips` makes."""
    parser.add_argument("--width", type=int, default=480)
    parser.add_argument("--height", type=int, default=270)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--fps", type=int, default=15)


def write_clips(folder: Path, n: int, args: argparse.Namespace) -> list[Path]:
    """``n`` different synthetic face clips (H.264) of the size :func:`add_clip_arguments` set."""
    from tests.synth import write_video

    size = {"width": args.width, "height": args.height, "seconds": args.seconds, "fps": args.fps}
    return [write_video(folder / f"clip{i}.mp4", seed=i, **size) for i in range(n)]


def describe_weights(name: str) -> str:
    """What ``CRE_WEIGHTS=name`` is, from its ``config.json`` (not assumed)."""
    from worker.resultkey import checkpoint_identity

    model = checkpoint_identity(name).model
    if model.weights_sha256 is None:
        return (
            f"{model.name}, an untrained registered network: its architecture's compute, "
            "meaningless scores"
        )
    return f"{model.name} v{model.version}"
