"""Time and size of ``cre report`` pages for 32-frame 1080p videos.

``python -m benchmarks.bench_report`` makes synthetic 1080p H.264 clips (the demo's astronaut
portrait), scores each with the worker (32 frames, the shipped checkpoint), then builds its
page twice: once as a new ``cre report`` process (Python start, torch import and model load
included: what a user waits for) and three times in one warm process (what each further
page of ``cre report --out DIR`` or ``cre run --report`` costs). It prints a Markdown table
and rewrites the ``report`` section of ``docs/BENCHMARKS.md``. Targets: under 5 s and
under 2 MB per page on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.benchdoc import DOC, section, write_section
from benchmarks.common import measured_on

__all__ = ["main"]

SECTION = "report"
CLIPS: tuple[tuple[str, int, int, float, int | None], ...] = (
    ("10 s 1080p, 30 fps", 1920, 1080, 10.0, None),
    ("10 s 1080p, 30 fps, GOP 30", 1920, 1080, 10.0, 30),
    ("60 s 1080p, 30 fps", 1920, 1080, 60.0, None),
)
"""(name, width, height, seconds, keyframe interval or x264's default)."""


def _child(args: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of a Python child process running ``args``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, *args],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _cold(jsonl: Path, out: Path) -> tuple[float, float]:
    """Wall and CPU seconds for a fresh ``cre report`` process to write the page."""
    return _child(["-m", "worker.cli", "report", "--json", str(jsonl), "--out", str(out)])


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; see the module docstring."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--docs", type=Path, default=DOC)
    p.add_argument("--repeats", type=int, default=3, help="warm pages per clip (median)")
    p.add_argument("--clips", type=int, default=len(CLIPS), help="how many of the clips")
    args = p.parse_args(argv)

    from tests.synth import write_video
    from worker.jobs import score_video
    from worker.report.cli import write_report
    from worker.report.examine import build_evidence
    from worker.scoring import Scorer
    from worker.settings import Settings

    settings = Settings(frames_per_video=32)
    scorer = Scorer(settings)
    rows = []
    with tempfile.TemporaryDirectory(prefix="cre-bench-report-") as tmp:
        d = Path(tmp)
        for name, w, h, seconds, gop in CLIPS[: args.clips]:
            clip = write_video(
                d / f"{w}x{h}-{seconds:g}s-{gop}.mp4",
                width=w,
                height=h,
                seconds=seconds,
                fps=30,
                gop=gop,
                crf=23,
            )
            record = json.loads(score_video(str(clip), settings, scorer).model_dump_json())
            jsonl = d / "r.jsonl"
            jsonl.write_text(json.dumps(record) + "\n")
            out = d / "page.html"
            cold, cold_cpu = _cold(jsonl, out)
            warm, warm_cpu = [], []
            for _ in range(args.repeats):
                t0, c0 = time.perf_counter(), time.process_time()
                ev = write_report(build_evidence(record, settings, scorer=scorer), out)
                warm.append(time.perf_counter() - t0)
                warm_cpu.append(time.process_time() - c0)
            pictured = sum(len(v) for v in ev.shown.values())
            size_mb = out.stat().st_size / 1e6
            rows.append(
                f"| {name} | {record['frames_sampled']} | {record['faces']} | {pictured} | "
                f"{cold:.2f} ({cold_cpu:.2f}) | {statistics.median(warm):.2f} "
                f"({statistics.median(warm_cpu):.2f}) | {size_mb:.2f} |"
            )
            print(rows[-1], flush=True)
    start = _child(["-c", "import torch, worker.report.cli, worker.scoring"])
    body = section(
        "## Reports (`cre report`)",
        (
            f"{measured_on('bench_report')} at the end. Synthetic H.264 clips (CRF 23) of one "
            "face, scored with 32 frames by the shipped checkpoint; a page pictures the top 3 "
            "faces of each track (source frame, crop, two Grad-CAM maps each) and measures "
            "compression (packet scan, QP on up to 32 frames, blockiness). *New process*: `cre "
            "report --json FILE --out page.html` from start to exit (Python, torch import and "
            "model load included); *warm*: each further page in one process (median of "
            f"{args.repeats}). Wall seconds, with the CPU seconds the process used in brackets: on"
            " a busy machine the wall time grows with the load, the CPU time does not, and on an "
            "idle 2-core machine the wall time is at most about the CPU time. Targets: under 5 s "
            "and 2 MB per page."
        ),
        "| clip | frames | faces | faces pictured | new process, s (CPU s) | warm, s (CPU s) "
        "| page (MB) |",
        rows,
        f"Of a new process's time, {start[0]:.2f} s ({start[1]:.2f} s CPU) is starting "
        "Python and importing torch and the worker, the same for every page; "
        "`--no-heatmaps` never imports torch.",
        align="| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    )
    print(body)
    write_section(args.docs, SECTION, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
