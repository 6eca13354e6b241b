"""Helpers of the reliability, fault and scale tests: worker processes, waiting, job states."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parents[1]
WAIT_S = 150.0
"""Generous bound for what a test waits for (a shared 2-core machine can be slow)."""

FAST_RELIABILITY = {
    # small bounds so abandoned and stuck jobs are found in seconds, not minutes
    "CRE_WORKER_TTL_S": "16",  # an idle worker wakes every 16 - 15 = 1 s
    "CRE_MAINTENANCE_INTERVAL_S": "1",
    "CRE_HARD_TIMEOUT_GRACE_S": "1",
    "CRE_JOB_TIMEOUT_BASE_S": "8",
    "CRE_JOB_TIMEOUT_PER_VIDEO_S": "1",
}


def worker_env(weights: Path, url: str, **extra: str) -> dict[str, str]:
    """Environment of a worker process: tiny weights, one torch thread, fast reliability bounds."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRE_")}
    env.update(FAST_RELIABILITY)
    env.update(
        CRE_WEIGHTS=str(weights),
        CRE_TORCH_THREADS="1",
        CRE_REDIS_URL=url,
        PYTHONPATH=str(ROOT),
    )
    env.update(extra)
    return env


def start_worker(
    env: dict[str, str],
    name: str,
    log: Path,
    *args: str,
    prefix: Sequence[str] = (),
) -> subprocess.Popen[bytes]:
    """``cre worker --name NAME ARGS...`` in the background, output to ``log``."""
    cmd = [*prefix, sys.executable, "-m", "worker.cli", "worker", "--name", name, *args]
    with log.open("ab") as f:
        return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)


def stop_worker(proc: subprocess.Popen[bytes], timeout: float = 30) -> int | None:
    """SIGTERM (warm shutdown), then SIGKILL if it does not exit; returns its exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def wait_until(
    predicate: Callable[[], Any], timeout: float = WAIT_S, poll: float = 0.2, what: str = ""
) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what or predicate}")
        time.sleep(poll)


def job_status(conn: redis.Redis, job_id: str) -> str | None:
    """RQ's status of a job (``queued``, ``started``, ``finished``...), ``None`` if it is gone."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    from worker.queue import SERIALIZER

    try:
        return str(Job.fetch(job_id, connection=conn, serializer=SERIALIZER).get_status().value)
    except NoSuchJobError:
        return None


def job_of(conn: redis.Redis, job_id: str) -> Any:
    from rq.job import Job

    from worker.queue import SERIALIZER

    return Job.fetch(job_id, connection=conn, serializer=SERIALIZER)


def tail(log: Path, n: int = 4000) -> str:
    """The end of a log file, for assertion messages."""
    return log.read_text(errors="replace")[-n:] if log.exists() else "(no log)"
