"""Resubmission rules end to end: ``scripts/submit.py`` and ``cre worker --burst`` processes on
a real Valkey server. A result is reused only for the same content, checkpoint and options.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.queue_helpers import save_tiny_checkpoint, write_clip
from tests.reliability_helpers import ROOT, start_worker, stop_worker, tail, worker_env
from worker.resultkey import file_sha256

pytest_plugins = ("tests.queue_fixtures",)  # fixtures: tiny_weights, valkey_url, conn
pytestmark = pytest.mark.slow


@pytest.fixture
def web(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local HTTP server for ``served/``: (base URL, folder)."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", folder
    httpd.shutdown()
    httpd.server_close()


def _submit(env: dict[str, str], *args: str) -> dict[str, dict]:
    """``submit.py --json ARGS``: the submissions by file stem (or URL)."""
    out = subprocess.run(
        [sys.executable, "scripts/submit.py", "--json", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    subs = [json.loads(line) for line in out.stdout.splitlines()]
    return {
        s["source"] if s["source"].startswith("http") else Path(s["source"]).stem: s for s in subs
    }


def _work(env: dict[str, str], log: Path) -> None:
    """One ``cre worker --burst``: scores what is queued, then exits."""
    proc = start_worker(env, "resubmit", log, "--burst")
    try:
        assert proc.wait(timeout=240) == 0, tail(log)
    finally:
        stop_worker(proc)


def _records(conn: redis.Redis) -> dict[str, dict]:
    from worker.results import load_results

    return {
        r.source if r.source.startswith("http") else Path(r.source).stem: r.model_dump(mode="json")
        for r in load_results(conn)
    }


def test_resubmission_rules_end_to_end(
    conn: redis.Redis, valkey_url: str, tiny_weights: Path, tmp_path: Path, web: tuple[str, Path]
) -> None:
    base_url, served = web
    folder = tmp_path / "videos"
    folder.mkdir()
    a = write_clip(folder / "a.mp4", width=320, height=240, seconds=1.0, fps=8, seed=1)
    b = write_clip(folder / "b.mp4", width=320, height=240, seconds=1.0, fps=8, seed=2)
    (folder / "broken.mp4").write_bytes(os.urandom(4096))
    write_clip(served / "u.mp4", width=320, height=240, seconds=1.0, fps=8, seed=3)
    url = f"{base_url}/u.mp4"
    env = worker_env(tiny_weights, valkey_url, CRE_ALLOW_PRIVATE_ADDRESSES="true")
    log = tmp_path / "worker.log"
    everything = {"a", "b", "broken", url}

    # 1. first submission: everything is scored; records say what they were made from
    subs = _submit(env, str(folder), url)
    assert {n: s["status"] for n, s in subs.items()} == dict.fromkeys(everything, "queued")
    _work(env, log)
    first = _records(conn)
    assert {n: r["status"] for n, r in first.items()} == {
        "a": "done",
        "b": "done",
        "broken": "failed",
        url: "done",
    }, tail(log)
    tiny_sha = json.loads((tiny_weights / "config.json").read_text())["weights_sha256"]
    for name in ("a", "b", "broken"):
        content = first[name]["content"]
        assert content["sha256"] == file_sha256(folder / f"{name}.mp4")
        assert content["mtime_ns"] == (folder / f"{name}.mp4").stat().st_mtime_ns
        assert first[name]["model"]["weights_sha256"] == tiny_sha
    assert first[url]["content"]["mtime_ns"] is None  # a download: the hash of what was served
    assert first[url]["content"]["sha256"] == file_sha256(served / "u.mp4")
    assert first["a"]["options"] == {
        "frames": 6,
        "aggregation": "mean",
        "topk": None,
        "threshold": 0.5,
        "precision": "float32",
    }

    # 2. the same files, checkpoint and options: nothing is scored again
    again = _submit(env, str(folder), url)
    assert {n: s["status"] for n, s in again.items()} == dict.fromkeys(everything, "skipped_done")
    assert "--retry-failed" in again["broken"]["reason"]

    # 3. another file at the same path: only that one is scored again
    b_before = first["b"]["content"]["sha256"]
    write_clip(b, width=352, height=288, seconds=1.0, fps=8)  # other bytes, same path
    changed = _submit(env, str(folder), url)
    assert changed["b"]["status"] == "queued" and "file changed" in changed["b"]["reason"]
    assert {changed[n]["status"] for n in ("a", "broken", url)} == {"skipped_done"}
    _work(env, log)
    rescored = _records(conn)
    assert rescored["b"]["content"]["sha256"] == file_sha256(b) != b_before
    assert rescored["a"]["created_at"] == first["a"]["created_at"]  # untouched

    # 4. another checkpoint (same name and version, other weights): everything again
    other = save_tiny_checkpoint(tmp_path / "other-weights", seed=1)
    env_other = worker_env(other, valkey_url, CRE_ALLOW_PRIVATE_ADDRESSES="true")
    subs = _submit(env_other, str(folder), url)
    assert {n: s["status"] for n, s in subs.items()} == dict.fromkeys(everything, "queued")
    assert all("checkpoint differs" in s["reason"] for s in subs.values())
    _work(env_other, log)
    other_sha = json.loads((other / "config.json").read_text())["weights_sha256"]
    assert {r["model"]["weights_sha256"] for r in _records(conn).values()} == {other_sha}
    assert {s["status"] for s in _submit(env_other, str(folder), url).values()} == {"skipped_done"}

    # 5. other options (frames per video): everything again, with those options
    env_opts = {**env_other, "CRE_FRAMES_PER_VIDEO": "3"}
    subs = _submit(env_opts, str(a), url)
    assert {s["status"] for s in subs.values()} == {"queued"}
    assert all("options differ" in s["reason"] for s in subs.values())
    _work(env_opts, log)
    now = _records(conn)
    assert now["a"]["options"]["frames"] == 3 and now["a"]["frames_sampled"] == 3
    assert now[url]["options"]["frames"] == 3
    assert {s["status"] for s in _submit(env_opts, str(a), url).values()} == {"skipped_done"}

    # 6. --force and --retry-failed still work
    forced = _submit(env_opts, "--force", str(a))
    assert forced["a"]["status"] == "queued"
    retried = _submit(env_other, "--retry-failed", str(folder / "broken.mp4"))
    assert (
        retried["broken"]["status"] == "queued" and "--retry-failed" in retried["broken"]["reason"]
    )
