"""Test-only worker classes that misbehave on purpose (loaded by worker processes of the tests).

A video whose file name contains ``slow`` makes the job sleep ``CRE_TEST_SLOW_S`` seconds
(default 120) before scoring, so a test can kill the worker in the middle of a job. One
whose name contains ``hang`` never returns: the job blocks ``SIGALRM`` and sleeps in C,
as a call into a decoder or library that never returns to the interpreter would, so
RQ's job timeout (an exception raised by a ``SIGALRM`` handler) cannot end it. Every
other video is scored normally.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import worker.jobs
from worker.workers import ForkWarmWorker, WarmWorker

__all__ = ["FaultWarmWorker", "FaultForkWorker", "stuck_in_native_code"]


def stuck_in_native_code(seconds: float = 3600.0) -> None:
    """Block like native code that never returns: no Python signal handler can run."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    time.sleep(seconds)


def _install() -> None:
    original = worker.jobs.score_video
    if getattr(original, "_faulty", False):
        return

    def score_video(source: str, *args: Any, **kwargs: Any) -> Any:
        name = Path(source).name
        if "hang" in name:
            stuck_in_native_code()
        if "slow" in name:
            time.sleep(float(os.environ.get("CRE_TEST_SLOW_S", "120")))
        return original(source, *args, **kwargs)

    score_video._faulty = True  # type: ignore[attr-defined]
    worker.jobs.score_video = score_video  # type: ignore[assignment]


class FaultWarmWorker(WarmWorker):
    """:class:`~worker.workers.WarmWorker` with the ``slow``/``hang`` behaviours."""

    def work(self, *args: Any, **kwargs: Any) -> bool:
        _install()
        return super().work(*args, **kwargs)


class FaultForkWorker(ForkWarmWorker):
    """:class:`~worker.workers.ForkWarmWorker` with the ``slow``/``hang`` behaviours."""

    def work(self, *args: Any, **kwargs: Any) -> bool:
        _install()
        return super().work(*args, **kwargs)
