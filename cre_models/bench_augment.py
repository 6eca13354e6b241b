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
import logging
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from . import artefacts as art
from . import augmentation as A
from . import codecs as C
from .benchdoc import write_section

__all__ = ["run", "render", "update_doc", "main"]

logger = logging.getLogger(__name__)

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


def _rate(
    fn: Callable[[], object], items: int, min_time: float, repeats: int
) -> tuple[float, float]:
    """Median items per wall-clock second and per CPU second over ``repeats`` runs.

    Each run lasts at least ``min_time`` wall seconds. CPU time is the whole process's
    (all threads), so on a machine shared with other jobs it still measures what one core
    delivers, while the wall-clock rate drops with the load.
    """
    fn()  # warm up (imports, tables, encoder libraries)
    wall, cpu = [], []
    for _ in range(repeats):
        n, t0, c0 = 0, time.perf_counter(), time.process_time()
        while True:
            fn()
            n += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= min_time:
                break
        wall.append(n * items / elapsed)
        cpu.append(n * items / max(time.process_time() - c0, 1e-9))
    return statistics.median(wall), statistics.median(cpu)


def run(
    size: int = 224, min_time: float = 1.0, repeats: int = 3
) -> list[tuple[str, str, float, float]]:
    """Measure everything; return ``(what, path, images/s wall, images/s CPU)`` rows."""
    cv2.setNumThreads(1)
    import torch

    torch.set_num_threads(1)
    img = _face(size)
    rows: list[tuple[str, str, float, float]] = []

    def add(
        what: str, path: str, fn: Callable[[], object], items: int = 1, reps: int = repeats
    ) -> None:
        wall, cpu = _rate(fn, items, min_time, reps)
        rows.append((what, path, wall, cpu))
        logger.info("%s | %s: %.0f/s wall, %.0f/s CPU", what, path, wall, cpu)

    for severity in A.SEVERITIES:
        rng = np.random.default_rng(0)
        add(
            f"severity `{severity}`",
            "`compress`: uint8 -> uint8",
            partial(A.compress, img, severity, rng),
        )
    for severity in (*A.SEVERITIES, "random"):
        pipe = A.PreprocessingPipeline(size, augment=True, severity=severity, seed=0)
        add(
            f"severity `{severity}`",
            "`preprocess` (augment=True): -> tensor",
            partial(pipe.preprocess, img),
        )
    pipe = A.PreprocessingPipeline(size, augment=True, seed=0)
    batch = [_face(2 * size)] * 32
    add(
        "severity `random`",
        f"`preprocess_batch` of 32 at {2 * size} px",
        partial(pipe.preprocess_batch, batch),
        32,
    )

    strong: list[art.ArtefactParams] = [
        art.ColorShiftParams((20, -20, 20)),
        art.BlurParams(7),
        art.NoiseParams(15.0, 0),
        art.ResizeParams(0.5, "area", "cubic"),
        art.BlockParams(4.0),
        art.JpegParams(30),
    ]
    for par in strong:
        add(f"artefact `{par.name}`", f"`{par!r}`", partial(par.apply, img))

    cases = [("libx264", "veryfast"), ("libx264", "medium"), ("libx265", "medium")]
    for codec, preset in cases:
        fn = partial(C.encode_decode_frame, img, codec, 30, preset, threads=1)
        add(f"{codec} CRF 30 `{preset}`", "one-frame clip (training path)", fn)
    frames = _clip(size, 32)
    for codec, preset in cases:
        seq = partial(C.encode_decode, frames, codec, 30, preset, threads=1)
        add(f"{codec} CRF 30 `{preset}`", "32-frame clip, per frame", seq, 32, 1)
    return rows


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def render(
    rows: Sequence[tuple[str, str, float, float]], size: int = 224, min_time: float = 1.0
) -> str:
    """The Markdown section: context, then the table."""
    import av

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    lines = [
        f"### Compression simulation and codec throughput ({size} px, one core)",
        "",
        f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC by `scripts/bench_augment.py` on "
        f"{_cpu_model()}, {os.cpu_count()} cores shared with other jobs (load average {load}); "
        f"Python {platform.python_version()}, OpenCV {cv2.__version__}, PyAV {av.__version__}, "
        f"NumPy {np.__version__}. OpenCV, PyTorch and the encoders ran single-threaded; "
        '"per core" divides images by the process\'s CPU time, which stays meaningful while '
        "other jobs share the cores (the wall-clock column falls with the load). Median of 3 "
        f"runs of >= {min_time:g} s; the input is the bundled astronaut photo at {size} px. "
        f"Target: >= {TARGET:.0f} images/s per core for every severity.",
        "",
        "| what | path | images/s per core (CPU time) | CPU ms/image | images/s (wall) |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for what, path, wall, cpu in rows:
        flag = " (below target)" if what.startswith("severity") and cpu < TARGET else ""
        lines.append(f"| {what} | {path} | {cpu:,.0f}{flag} | {1000 / cpu:.2f} | {wall:,.0f} |")
    lines += [
        "",
        "Severity `none` in `compress` is a copy; in `preprocess` it is augmentation plus the "
        "tensor conversion. The codec rows encode and decode with x264/x265 limited to one "
        "thread (`threads=1`); a one-frame clip pays the encoder's start-up on every image.",
    ]
    return "\n".join(lines)


def update_doc(doc: Path, body: str, section: str = SECTION) -> None:
    """Replace the ``augment`` block of ``doc`` (see :mod:`cre_models.benchdoc`)."""
    write_section(doc, section, body)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the table and update ``docs/BENCHMARKS.md``."""
    parser = argparse.ArgumentParser(prog="bench_augment", description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--min-time", type=float, default=1.0, help="seconds per run")
    parser.add_argument("--doc", type=Path, default=Path("docs/BENCHMARKS.md"))
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    body = render(run(args.size, args.min_time), args.size, args.min_time)
    print(body)
    if not args.no_write:
        update_doc(args.doc, body)
        print(f"\nupdated {args.doc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
