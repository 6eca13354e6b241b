"""``cre worker [--fork] [--burst] [--name NAME]``: a long-running scoring worker.

The deployment entry point (docker/Dockerfile runs exactly this). It runs one RQ worker
on queue ``CRE_QUEUE_NAME`` at ``CRE_REDIS_URL`` (``redis://`` or ``rediss://``, password in
the URL, never on the command line; logs show it redacted):

* :class:`~worker.workers.WarmWorker` (default): no fork, the model loaded once; the
  only choice with ``CRE_DEVICE=cuda`` (CUDA cannot be used across a fork): run one such
  worker per GPU (``CUDA_VISIBLE_DEVICES``);
* ``--fork``: :class:`~worker.workers.ForkWarmWorker`, one work horse per job (crash
  isolation, RQ's heartbeat), CPU only.

Reliability settings (:mod:`worker.reliability`): ``CRE_WORKER_TTL_S``,
``CRE_MAINTENANCE_INTERVAL_S`` (how soon abandoned jobs are found),
``CRE_HARD_TIMEOUT_GRACE_S`` and ``CRE_ABANDONED_RETRIES``. The RQ scheduler runs inside
the worker (RQ elects one among all workers), so delayed retries of transient download
failures happen.

When Redis is unreachable (at start, or lost so that RQ's worker loop gives up) the
worker is started again once Redis answers, with back-off up to 30 s; ``--max-down-s``
bounds that wait (exit status 2; a ``--burst`` run gives up after 60 s unless told
otherwise). Credentials Redis refuses end it at once (exit status 2): waiting would not help.
SIGTERM/SIGINT stop it after the current job. The default worker name ends in a random part:
a restarted container has the same host name and PID, and RQ refuses the name of a worker
it still lists (for up to the dead one's heartbeat TTL).
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import Sequence

import redis

from worker.rqcompat import stop_was_requested
from worker.security import redact_url, redis_connection
from worker.settings import get_settings

__all__ = ["main", "MAX_BACKOFF_S", "BURST_MAX_DOWN_S"]

logger = logging.getLogger(__name__)

MAX_BACKOFF_S = 30.0
"""Longest wait between two attempts to reach Redis."""
CONNECT_TIMEOUT_S = 10.0
"""Longest wait for Redis to accept one connection."""
BURST_MAX_DOWN_S = 60.0
"""A ``--burst`` worker (a cron job) gives up after Redis was unreachable this long, unless
``--max-down-s`` says otherwise: a burst run must end."""


def _queue_empty(conn: redis.Redis, queue_name: str) -> bool:
    from rq import Queue

    from worker.queue import SERIALIZER

    return Queue(queue_name, connection=conn, serializer=SERIALIZER).count == 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``cre worker``; see the module docstring."""
    parser = argparse.ArgumentParser(prog="cre worker", description=__doc__.split("\n\n")[0])
    parser.add_argument("--fork", action="store_true", help="fork a work horse per job (CPU only)")
    parser.add_argument("--burst", action="store_true", help="quit when the queue is empty")
    parser.add_argument(
        "--name",
        help="worker name (default: HOST-PID-RANDOM: a restarted container has the same host "
        "name and PID, and RQ refuses a name whose dead worker it still lists)",
    )
    parser.add_argument(
        "--no-scheduler", action="store_true", help="do not run RQ's scheduler (delayed retries)"
    )
    parser.add_argument(
        "--max-down-s",
        type=float,
        default=0.0,
        help="give up after Redis has been unreachable this long (0: never; with --burst, "
        f"0 means {BURST_MAX_DOWN_S:g} s)",
    )
    parser.add_argument("--logging-level", default=None, help="RQ's log level (default: settings)")
    parser.add_argument(
        "--worker-class",
        default=None,
        metavar="MODULE.CLASS",
        help="a subclass of WarmWorker/ForkWarmWorker to run instead (tests use it)",
    )
    args = parser.parse_args(argv)

    from worker.workers import ForkWarmWorker, WarmWorker

    settings = get_settings()
    if args.fork and "cuda" in (settings.device, settings.detect_device):
        parser.error(
            "--fork cannot be used with CRE_DEVICE=cuda or CRE_DETECT_DEVICE=cuda: "
            "run one warm worker per GPU"
        )
    from worker.scoring import device_problem

    problem = device_problem(settings)
    if problem is not None:
        parser.error(problem)
    worker_class: type[WarmWorker] | type[ForkWarmWorker] = (
        ForkWarmWorker if args.fork else WarmWorker
    )
    if args.worker_class:
        from rq.utils import import_attribute

        custom = import_attribute(args.worker_class)
        if not (isinstance(custom, type) and issubclass(custom, worker_class)):
            parser.error(f"--worker-class must name a subclass of {worker_class.__name__}")
        worker_class = custom
    url = settings.redis_url_or_default()
    shown = redact_url(url)
    try:
        redis_connection(url).close()
    except ValueError as e:  # never quotes the password
        print(f"cre worker: {e}", file=sys.stderr)
        return 2
    base_name = args.name or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
    max_down_s = args.max_down_s or (BURST_MAX_DOWN_S if args.burst else 0.0)
    level = args.logging_level or settings.log_level
    backoff, down_since, starts = 1.0, None, 0
    while True:
        # bounded connect: against a host that drops packets each try would take the OS's
        # minutes, past --max-down-s (the dequeue's own blocking reads need no socket timeout)
        conn = redis_connection(url, socket_connect_timeout=CONNECT_TIMEOUT_S)
        try:
            conn.ping()
            down_since, backoff = None, 1.0
            name = base_name if starts == 0 else f"{base_name}-r{starts}"
            starts += 1
            worker = worker_class(
                [settings.queue_name],
                connection=conn,
                name=name,
                worker_ttl=settings.worker_ttl_s,
                maintenance_interval=settings.maintenance_interval_s,
            )
            logger.info(
                "worker %s (%s) on queue %s at %s",
                name,
                worker_class.__name__,
                settings.queue_name,
                shown,
            )
            worker.work(burst=args.burst, with_scheduler=not args.no_scheduler, logging_level=level)
            # RQ's loop returns both on a stop request and after an unexpected error.
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            if stop_was_requested(worker):
                logger.info("worker %s stopped on request", name)
                return 0
            if args.burst and _queue_empty(conn, settings.queue_name):
                return 0
            logger.warning("worker %s quit unexpectedly: starting a new one", name)
            time.sleep(1.0)
        except redis.exceptions.AuthenticationError as e:  # waiting will not fix a password
            logger.error("Redis at %s refused the credentials (%s): check CRE_REDIS_URL", shown, e)
            return 2
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as e:
            now = time.monotonic()
            down_since = down_since if down_since is not None else now
            if max_down_s and now - down_since >= max_down_s:
                waited = now - down_since
                logger.error("Redis at %s unreachable for %.0f s: giving up", shown, waited)
                return 2
            logger.warning("Redis at %s unreachable (%s): retrying in %.0f s", shown, e, backoff)
            time.sleep(backoff)
            backoff = min(2 * backoff, MAX_BACKOFF_S)
        finally:
            conn.close()
