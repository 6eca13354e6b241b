"""Throughput of the compression simulator and the real-codec path at 224 px, one core.

Prints a Markdown table and rewrites the ``augment`` section of ``docs/BENCHMARKS.md``
(between ``<!-- BEGIN augment -->`` and ``<!-- END augment -->``). Run it with ``nice`` on a
shared machine::

    nice python scripts/bench_augment.py            # or: python -m cre_models.bench_augment

OpenCV, PyTorch and the encoders are limited to one thread, so every number is per core;
a data loader with N workers scales it by about N.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from . import augmentation as A
from . import codecs as C

__all__ = ["run", "render", "update_doc", "main"]

SECTION = "augment"
TARGET = 300.0
"""Target images/s per core at 224 px for every severity of the simulator."""


def _face(size: int) -> np.ndarray:
    """The astronaut photo bundled with scikit-image (read as a file), resized to ``size``."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("scikit-image is not installed: it provides the sample photo")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "astronaut.png"
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise RuntimeError(f"cannot read {path}")
    return cv2.resize(
        cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (size, size), interpolation=cv2.INTER_AREA
    )


def _clip(size: int, n: int) -> list[np.ndarray]:
    """``n`` frames panning slowly over the photo (a still clip would be trivially cheap)."""
    big = _face(size + n)
    return [np.ascontiguousarray(big[i // 2 : i // 2 + size, i : i + size]) for i in range(n)]


def _rate(fn: Callable[[], object], items: int, min_time: float, repeats: int) -> float:
    """Median items/s over ``repeats`` runs, each at least ``min_time`` seconds long."""
    fn()  # warm up (imports, tables, encoder libraries)
    rates = []
    for _ in range(repeats):
        n, t0 = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= min_time:
                break
        rates.append(n * items / elapsed)
    return statistics.median(rates)


def run(size: int = 224, min_time: float = 1.0, repeats: int = 3) -> list[tuple[str, str, float]]:
    """Measure everything; return ``(what, path, images per second)`` rows."""
    cv2.setNumThreads(1)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    img = _face(size)
    big = _face(2 * size)
    rows: list[tuple[str, str, float]] = []

    for severity in A.SEVERITIES:
        rng = np.random.default_rng(0)
        rate = _rate(partial(A.compress, img, severity, rng), 1, min_time, repeats)
        rows.append((f"severity `{severity}`", "`compress`, uint8 224 -> uint8", rate))
    for severity in (*A.SEVERITIES, "random"):
        pipe = A.PreprocessingPipeline(size, augment=True, severity=severity, seed=0)
        rate = _rate(partial(pipe.preprocess, img), 1, min_time, repeats)
        rows.append((f"severity `{severity}`", "`preprocess`, 224 -> tensor, augment", rate))
    pipe = A.PreprocessingPipeline(size, augment=True, seed=0)
    batch = [big] * 32
    rate = _rate(lambda: pipe.preprocess_batch(batch), 32, min_time, repeats)
    rows.append(("severity `random`", "`preprocess_batch` of 32, 448 -> 224 tensor", rate))

    strong = [
        A.ColorShiftParams((20, -20, 20)),
        A.BlurParams(7),
        A.NoiseParams(15.0, 0),
        A.ResizeParams(0.5),
        A.BlockParams(4.0),
        A.JpegParams(30),
    ]
    for p in strong:
        rows.append(
            (
                f"artefact `{p.name}`",
                f"`{p!r}`",
                _rate(partial(p.apply, img), 1, min_time, repeats),
            )
        )

    codec_cases = [
        ("libx264", "veryfast"),
        ("libx264", "medium"),
        ("libx265", "ultrafast"),
        ("libx265", "medium"),
    ]
    for codec, preset in codec_cases:
        rate = _rate(
            partial(C.encode_decode_frame, img, codec, 30, preset, threads=1),
            1,
            min_time,
            repeats,
        )
        rows.append((f"{codec} CRF 30 `{preset}`", "one-frame clip (training path)", rate))
    frames = _clip(size, 32)
    for codec, preset in codec_cases:
        rate = _rate(
            partial(C.encode_decode, frames, codec, 30, preset, threads=1), 32, min_time, 1
        )
        rows.append((f"{codec} CRF 30 `{preset}`", "32-frame clip, per frame", rate))
    return rows


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def render(rows: Sequence[tuple[str, str, float]], size: int = 224) -> str:
    """The Markdown section: context, then the table."""
    import av

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    lines = [
        f"### Compression simulation and codec throughput ({size} px, one core)",
        "",
        f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC by `scripts/bench_augment.py` on "
        f"{_cpu_model()}, {os.cpu_count()} cores shared with other jobs (load average {load}); "
        f"Python {platform.python_version()}, OpenCV {cv2.__version__}, PyAV {av.__version__}, "
        f"NumPy {np.__version__}. OpenCV, PyTorch and the encoders ran single-threaded, so the "
        "numbers are per core (median of 3 runs of >= 1 s; the input is the 224 px astronaut "
        f"photo). Target: >= {TARGET:.0f} images/s per core for every severity.",
        "",
        "| what | path | images/s | ms/image |",
        "| --- | --- | ---: | ---: |",
    ]
    for what, path, rate in rows:
        flag = ""
        if what.startswith("severity") and rate < TARGET:
            flag = " (below target)"
        lines.append(f"| {what} | {path} | {rate:,.0f}{flag} | {1000 / rate:.2f} |")
    lines += [
        "",
        "Severity `none` in `compress` is a copy; in `preprocess` it is augmentation plus the "
        "tensor conversion. The codec rows encode and decode with x264/x265 limited to one "
        "thread (`threads=1`); a one-frame clip pays the encoder's start-up on every image.",
    ]
    return "\n".join(lines)


def update_doc(doc: Path, body: str, section: str = SECTION) -> None:
    """Replace (or append) the ``<!-- BEGIN section -->`` .. ``<!-- END section -->`` block."""
    begin, end = f"<!-- BEGIN {section} -->", f"<!-- END {section} -->"
    block = f"{begin}\n{body}\n{end}"
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the table and update ``docs/BENCHMARKS.md``."""
    parser = argparse.ArgumentParser(prog="bench_augment", description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--min-time", type=float, default=1.0, help="seconds per run")
    parser.add_argument("--doc", type=Path, default=Path("docs/BENCHMARKS.md"))
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    body = render(run(args.size, args.min_time), args.size)
    print(body)
    if not args.no_write:
        update_doc(args.doc, body)
        print(f"\nupdated {args.doc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
