"""The command-line entry points: a bad ``CRE_*`` value is one line and exit 2 (the command
could not start), never a traceback; ``CRE_LOG_LEVEL`` reaches every ``cre`` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from worker.settings import Settings, settings_problem

ROOT = Path(__file__).resolve().parents[1]


UNREACHABLE = "redis://127.0.0.1:1/0"
"""A command that got past its settings fails on this Redis instead of doing anything."""


def _run(
    args: list[str], *, redis_url: str | None = UNREACHABLE, text: bool = True, **env: str
) -> subprocess.CompletedProcess[Any]:
    """``python ARGS`` in a fresh process without this one's ``CRE_*`` (``redis_url=None``:
    no ``CRE_REDIS_URL``, so ``cre run`` starts its embedded Valkey)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CRE_")}
    if redis_url is not None:
        clean["CRE_REDIS_URL"] = redis_url
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=text,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("command", "env", "named"),
    [
        (["-m", "worker.cli", "run", "x.mp4"], {"CRE_DEVICE": "tpu"}, "CRE_DEVICE"),
        (["-m", "worker.cli", "run", "x.mp4"], {"CRE_AGGREGATION": "median"}, "topk_mean"),
        (["-m", "worker.cli", "results"], {"CRE_THRESHOLD": "1.5"}, "CRE_THRESHOLD"),
        (["-m", "worker.cli", "worker", "--burst"], {"CRE_LOG_LEVEL": "loud"}, "CRE_LOG_LEVEL"),
        (["scripts/submit.py", "x.mp4"], {"CRE_FRAMES_PER_VIDEO": "0"}, "CRE_FRAMES_PER_VIDEO"),
        (["scripts/results.py"], {"CRE_BATCH_SIZE": "many"}, "CRE_BATCH_SIZE"),
    ],
)
def test_a_bad_setting_is_one_line_and_exit_2(
    command: list[str], env: dict[str, str], named: str
) -> None:
    r = _run(command, **env)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    (line,) = [ln for ln in r.stderr.splitlines() if "bad setting" in ln]
    assert named in line


def test_a_password_in_a_bad_setting_is_not_repeated() -> None:
    with pytest.raises(ValidationError) as e:
        Settings(redis_url="redis://:hunter2@host/0", batch_size="many")  # type: ignore[call-arg]
    problem = settings_problem(e.value)
    assert problem is not None and "CRE_BATCH_SIZE" in problem and "hunter2" not in problem
    assert Settings(log_level="warning").log_level == "WARNING"  # type: ignore[call-arg]


def test_another_models_validation_error_is_not_a_setting() -> None:
    from worker.results import ResultRecord

    with pytest.raises(ValidationError) as e:
        ResultRecord.model_validate({"status": "nonsense"})
    assert settings_problem(e.value) is None


def test_log_level_reaches_a_cre_command() -> None:
    code = (
        "import logging, sys; from worker.cli import main; "
        "rc = main(['degrade', '--list']); print('LEVEL', logging.getLogger().level); sys.exit(rc)"
    )
    quiet = _run(["-c", code], CRE_LOG_LEVEL="warning")
    assert quiet.returncode == 0, quiet.stderr
    assert f"LEVEL {30}" in quiet.stdout
    default = _run(["-c", code])
    assert f"LEVEL {20}" in default.stdout


def test_cre_run_with_nothing_to_queue_starts_no_worker(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    r = _run(
        ["-m", "worker.cli", "run", str(tmp_path / "missing.mp4"), "--json", str(out)],
        redis_url=None,
    )
    assert r.returncode == 0, r.stderr  # every input got a record: a failed one
    assert "0 video(s) to score with 0 worker(s)" in r.stdout
    assert "worker" not in r.stderr.lower()
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["status"] == "failed" and record["error"]["code"] == "bad_input"


@pytest.mark.parametrize(
    ("module", "argv"),
    [
        ("worker.evaluate", ["--videos", "v", "--labels", "l.tsv", "--out", "o"]),
        ("cre_models.evaluation.cli", ["--data", "d"]),
        ("cre_models.training.cli", ["--data", "d", "--labels", "l.tsv"]),
        ("cre_models.training.images_cli", ["--data", "d"]),
    ],
)
def test_training_and_evaluation_name_the_missing_extra(
    module: str, argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "sklearn" else real(name, *a)
    )
    with pytest.raises(SystemExit, match=r"needs scikit-learn: pip install -e '\.\[train\]'"):
        importlib.import_module(module).main(argv)


def test_a_file_name_that_is_not_utf8_is_refused_and_the_run_goes_on(tmp_path: Path) -> None:
    from worker.jobs import validate_job_args
    from worker.queue import printable_source

    name = os.fsdecode(b"caf\xe9.mp4")  # a Latin-1 name, as Python reads it from the disk
    assert printable_source(str(tmp_path / name)).endswith("caf\\xe9.mp4")
    assert printable_source("plain.mp4") == "plain.mp4"
    with pytest.raises(Exception, match="not valid UTF-8"):
        validate_job_args(str(tmp_path / name))
    try:
        (tmp_path / name).write_bytes(b"not looked at")
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system refuses non-UTF-8 names")
    out = tmp_path / "r.jsonl"
    r = _run(  # bytes: the output names a file that is not UTF-8
        ["-m", "worker.cli", "run", str(tmp_path), "--json", str(out)], redis_url=None, text=False
    )
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["status"] == "failed" and record["error"]["code"] == "bad_input"
    assert "not valid UTF-8" in record["error"]["message"]
    assert record["source"].endswith("caf\\xe9.mp4")


def test_cre_without_a_command_is_an_error_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    from worker.cli import main

    assert main([]) == 2
    out, err = capsys.readouterr()
    assert not out and "usage: cre COMMAND" in err
    assert main(["--help"]) == 0
    out, err = capsys.readouterr()
    assert "usage: cre COMMAND" in out and not err
