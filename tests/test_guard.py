"""cre workers run only the scoring job: foreign jobs are refused, logged, failed in RQ, and
never executed, while a real video beside them is scored.

Foreign jobs: ``os.system`` enqueued with RQ's JSON and with its default (pickle) serializer,
a payload whose pickle would run code (``__reduce__`` opening a file for writing), and the
scoring job naming a callback that would touch a file.
"""

from __future__ import annotations

import builtins
import logging
import pickle
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from rq import Callback, Queue
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from tests.guard_targets import MARKER_ENV
from tests.queue_helpers import write_clip
from tests.reliability_helpers import start_worker, stop_worker, tail, worker_env
from worker.settings import Settings

pytest_plugins = ("tests.queue_fixtures",)  # fixtures: tiny_weights, valkey_url, conn

FOREIGN = ("os-json", "os-pickle", "evil-pickle", "callback")


class _OpensAFileForWriting:
    """Unpickling this calls ``open(path, "w")``: it creates the file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (builtins.open, (str(self.path), "w"))


def _enqueue_foreign(conn: redis.Redis, marks: Path) -> dict[str, Path]:
    """The four foreign jobs on queue ``cre``; returns the file each would create."""
    from worker.guard import JOB_FUNCTION

    files = {name: marks / name for name in FOREIGN}
    Queue("cre", connection=conn, serializer=JSONSerializer).enqueue_call(
        "os.system", args=(f"touch {files['os-json']}",), job_id="os-json"
    )
    Queue("cre", connection=conn).enqueue_call(  # RQ's default serializer: pickle
        "os.system", args=(f"touch {files['os-pickle']}",), job_id="os-pickle"
    )
    Queue("cre", connection=conn).enqueue_call(JOB_FUNCTION, args=("x",), job_id="evil-pickle")
    evil = (JOB_FUNCTION, None, (_OpensAFileForWriting(files["evil-pickle"]),), {})
    conn.hset("rq:job:evil-pickle", "data", zlib.compress(pickle.dumps(evil)))
    files["callback"] = marks / "touched"  # tests.guard_targets.touch_marker
    Queue("cre", connection=conn).enqueue_call(
        JOB_FUNCTION,
        args=("/nowhere.mp4",),
        job_id="callback",
        on_failure=Callback("tests.guard_targets.touch_marker"),
        on_success=Callback("tests.guard_targets.touch_marker"),
    )
    return files


def _check_refused(conn: redis.Redis, files: dict[str, Path], settings: Settings) -> None:
    from worker.payloads import PlainDataSerializer
    from worker.results import load_result

    expected = {
        "os-json": "function 'os.system' is not a cre job",
        "os-pickle": "function 'os.system' is not a cre job",
        "evil-pickle": "payload is not plain data",
        "callback": "it names a callback",
    }
    for name, path in files.items():
        assert not path.exists(), f"{name}: the foreign job ran"
    for job_id, reason in expected.items():
        job = Job.fetch(job_id, connection=conn, serializer=PlainDataSerializer)
        assert job.get_status() == JobStatus.FAILED, job_id
        result = job.latest_result()
        assert result is not None and reason in (result.exc_string or ""), (job_id, result)
        assert load_result(conn, job_id, settings) is None  # no cre record for foreign jobs


def test_refusal_reasons(conn: redis.Redis, tmp_path: Path) -> None:
    from worker.guard import (
        JOB_FUNCTION,
        refusal_reason,
        register_job_function,
        registered_job_functions,
    )
    from worker.payloads import PlainDataSerializer

    _enqueue_foreign(conn, tmp_path)
    Queue("cre", connection=conn).enqueue_call(JOB_FUNCTION, args=("/v.mp4",), job_id="ours")
    Queue("cre", connection=conn, serializer=JSONSerializer).enqueue_call(
        JOB_FUNCTION, args=("/v.mp4", {"frames": 4}), job_id="ours-json"
    )

    def reason(job_id: str) -> str | None:
        return refusal_reason(Job.fetch(job_id, connection=conn, serializer=PlainDataSerializer))

    assert reason("ours") is None and reason("ours-json") is None
    assert "'os.system' is not a cre job" in (reason("os-json") or "")
    assert "STACK_GLOBAL" in (reason("evil-pickle") or "")
    assert "names a callback" in (reason("callback") or "")
    assert "touch_marker" in (reason("callback") or "")
    assert not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match="import path"):
        register_job_function("os.system; rm -rf /")
    assert "tests.guard_targets.touch_marker" not in registered_job_functions()
    Queue("cre", connection=conn).enqueue_call(
        "tests.guard_targets.touch_marker", job_id="registered"
    )
    assert "not a cre job" in (reason("registered") or "")
    register_job_function("tests.guard_targets.touch_marker")
    try:
        assert reason("registered") is None
    finally:
        import worker.guard

        worker.guard._REGISTERED.discard("tests.guard_targets.touch_marker")


@pytest.fixture
def job_env(
    monkeypatch: pytest.MonkeyPatch, tiny_weights: Path, valkey_url: str, tmp_path: Path
) -> Iterator[Path]:
    from worker.scoring import clear_scorer_cache
    from worker.settings import get_settings

    marks = tmp_path / "marks"
    marks.mkdir()
    monkeypatch.setenv("CRE_WEIGHTS", str(tiny_weights))
    monkeypatch.setenv("CRE_REDIS_URL", valkey_url)
    monkeypatch.setenv("CRE_TORCH_THREADS", "1")
    monkeypatch.setenv(MARKER_ENV, str(marks))
    get_settings.cache_clear()
    yield marks
    get_settings.cache_clear()
    clear_scorer_cache()


def test_warm_worker_refuses_foreign_jobs_and_scores_the_video(
    job_env: Path, conn: redis.Redis, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from worker.queue import enqueue
    from worker.results import load_result
    from worker.settings import get_settings
    from worker.workers import WarmWorker

    files = _enqueue_foreign(conn, job_env)
    clip = write_clip(tmp_path / "real.mp4", width=320, height=240, seconds=1.0, fps=8)
    (sub,) = enqueue([str(clip)], get_settings(), conn=conn)
    assert sub.video_id is not None
    with caplog.at_level(logging.ERROR, logger="worker.guard"):
        WarmWorker(["cre"], connection=conn).work(burst=True)
    _check_refused(conn, files, get_settings())
    rec = load_result(conn, sub.video_id, get_settings())
    assert rec is not None and rec.status == "done", rec
    refused = [r for r in caplog.records if r.name == "worker.guard"]
    assert {r.args[1] for r in refused if isinstance(r.args, tuple)} == set(FOREIGN)
    assert not Queue("cre", connection=conn).intermediate_queue.get_job_ids()


@pytest.mark.slow
@pytest.mark.parametrize("fork", [False, True], ids=["warm", "fork"])
def test_cre_worker_burst_refuses_foreign_jobs_of_both_serializers(
    fork: bool, conn: redis.Redis, valkey_url: str, tiny_weights: Path, tmp_path: Path
) -> None:
    """`cre worker --burst` (and `--fork`): nothing foreign runs, the real video is scored."""
    from worker.queue import enqueue
    from worker.results import load_result

    marks = tmp_path / "marks"
    marks.mkdir()
    settings = Settings(redis_url=valkey_url)
    files = _enqueue_foreign(conn, marks)
    clip = write_clip(tmp_path / "real.mp4", width=320, height=240, seconds=1.0, fps=8)
    (sub,) = enqueue([str(clip)], settings, conn=conn)
    assert sub.video_id is not None
    env = worker_env(tiny_weights, valkey_url, **{MARKER_ENV: str(marks)})
    log = tmp_path / "worker.log"
    args = ["--burst", "--fork"] if fork else ["--burst"]
    proc = start_worker(env, "guarded", log, *args)
    try:
        assert proc.wait(timeout=240) == 0, tail(log)
    finally:
        stop_worker(proc)
    _check_refused(conn, files, settings)
    rec = load_result(conn, sub.video_id, settings)
    assert rec is not None and rec.status == "done", tail(log)
    text = log.read_text()
    for name in FOREIGN:
        assert f"refused job {name} " in text, tail(log)


def _forge_abandoned(conn: redis.Redis, job_id: str) -> None:
    """A scoring job naming a failure callback, left 'started' with an expired registry entry:
    what anyone with write access can put in Redis for a worker's maintenance pass."""
    from rq import SimpleWorker
    from rq.registry import StartedJobRegistry

    from worker.guard import JOB_FUNCTION

    job = Queue("cre", connection=conn).enqueue_call(
        JOB_FUNCTION,
        args=("/nowhere.mp4",),
        job_id=job_id,
        on_failure=Callback("tests.guard_targets.touch_marker"),
    )
    ghost = SimpleWorker(["cre"], connection=conn, name=f"ghost-{job_id}")
    ghost.register_birth()
    conn.lrem("rq:queue:cre", 0, job_id)
    ghost.prepare_execution(job)
    ghost.prepare_job_execution(job)
    key = StartedJobRegistry("cre", connection=conn).key
    conn.zadd(key, dict.fromkeys(conn.zrange(key, 0, -1), 1))  # expired long ago


@pytest.mark.parametrize("cls_name", ["WarmWorker", "ForkWarmWorker"])
def test_maintenance_runs_no_callback_of_an_abandoned_job(
    cls_name: str, job_env: Path, conn: redis.Redis
) -> None:
    """RQ's maintenance pass runs the failure callback of every job it finds abandoned; in a
    cre worker (job class GuardedJob) it runs none, and the job is still failed in RQ."""
    from rq import SimpleWorker

    import worker.workers
    from worker.guard import GuardedJob
    from worker.payloads import PlainDataSerializer

    marker = job_env / "touched"
    _forge_abandoned(conn, "control")
    SimpleWorker(["cre"], connection=conn, serializer=PlainDataSerializer).clean_registries()
    assert marker.exists(), "control: RQ's own Job class runs the callback"
    marker.unlink()

    w = getattr(worker.workers, cls_name)(["cre"], connection=conn)
    assert w.job_class is GuardedJob and all(q.job_class is GuardedJob for q in w.queues)
    _forge_abandoned(conn, "forged")
    w.clean_registries()
    assert not marker.exists()
    job = Job.fetch("forged", connection=conn, serializer=PlainDataSerializer)
    assert job.get_status() == JobStatus.FAILED


def test_guarded_job_imports_only_registered_functions(conn: redis.Redis) -> None:
    from worker.guard import GuardedJob, JobRefusedError
    from worker.payloads import PlainDataSerializer

    Queue("cre", connection=conn).enqueue_call("os.system", args=("true",), job_id="os")
    job = GuardedJob.fetch("os", connection=conn, serializer=PlainDataSerializer)
    with pytest.raises(JobRefusedError, match="os.system"):
        job.perform()
