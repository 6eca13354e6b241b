"""Throughput of the compression simulator and the real-codec path at 224 px, one core.

Prints a Markdown table and rewrites the ``augment`` section of ``docs/BENCHMARKS.md``
(between ``<!-- BEGIN augment -->`` and ``<!-- END augment -->``). Run it with ``nice`` on a
shared machine::

    nice python -m benchmarks.bench_augment

OpenCV, PyTorch and the encoders are limited to one thread, so every number is per core;
a data loader with N workers scales it by about N.
"""

from __future__ import annotations

import argparse
import logging
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from benchmarks.benchdoc import DOC, section, write_section
from benchmarks.common import measured_on
from cre_models import artefacts as art
from cre_models import augmentation as A
from cre_models import codecs as C
from worker.demo import sample_photo

__all__ = ["run", "render", "main"]

logger = logging.getLogger(__name__)

SECTION = "augment"
TARGET = 300.0
"""Target images/s per core at 224 px for every severity of the simulator."""


def _face(size: int) -> np.ndarray:
    """The demo's astronaut photo, resized to ``size``."""
    return cv2.resize(sample_photo(), (size, size), interpolation=cv2.INTER_AREA)


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


def render(
    rows: Sequence[tuple[str, str, float, float]], size: int = 224, min_time: float = 1.0
) -> str:
    """The Markdown section: context, then the table."""
    import av

    table = []
    for what, path, wall, cpu in rows:
        flag = " (below target)" if what.startswith("severity") and cpu < TARGET else ""
        table.append(f"| {what} | {path} | {cpu:,.0f}{flag} | {1000 / cpu:.2f} | {wall:,.0f} |")
    return section(
        f"### Compression simulation and codec throughput ({size} px, one core)",
        f"{measured_on('bench_augment')}; "
        f"Python {platform.python_version()}, OpenCV {cv2.__version__}, PyAV {av.__version__}, "
        f"NumPy {np.__version__}. OpenCV, PyTorch and the encoders ran single-threaded; "
        '"per core" divides images by the process\'s CPU time, which stays meaningful while '
        "other jobs share the cores (the wall-clock column falls with the load). Median of 3 "
        f"runs of >= {min_time:g} s; the input is the bundled astronaut photo at {size} px. "
        f"Target: >= {TARGET:.0f} images/s per core for every severity.",
        "| what | path | images/s per core (CPU time) | CPU ms/image | images/s (wall) |",
        table,
        "Severity `none` in `compress` is a copy; in `preprocess` it is augmentation plus the "
        "tensor conversion. The codec rows encode and decode with x264/x265 limited to one "
        "thread (`threads=1`); a one-frame clip pays the encoder's start-up on every image.",
        align="| --- | --- | ---: | ---: | ---: |",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the table and update ``docs/BENCHMARKS.md``."""
    parser = argparse.ArgumentParser(prog="bench_augment", description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--min-time", type=float, default=1.0, help="seconds per run")
    parser.add_argument("--doc", type=Path, default=DOC)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    body = render(run(args.size, args.min_time), args.size, args.min_time)
    print(body)
    if not args.no_write:
        write_section(args.doc, SECTION, body)
        print(f"\nupdated {args.doc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
