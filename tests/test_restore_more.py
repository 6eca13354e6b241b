"""scripts/restore_more_ffpp.sh: clips of a manifest out of fetched snapshots, sha256-checked."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "restore_more_ffpp.sh"
HEADER = "file\tlabel\tmethod\toriginal\tsource_repo\tsource_path\tsha256\tbytes\tcommit"

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def _git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env
    ).stdout.strip()


def _mirror(tmp_path: Path) -> tuple[Path, str, dict[str, bytes]]:
    """A snapshot like fetch's (MIRRORS/owner+name/repo, bare): ``old.mp4`` only in the first
    commit (the newest deletes it), ``new.mp4`` at HEAD."""
    work = tmp_path / "work"
    work.mkdir()
    _git(work, "init", "-q")
    files = {"v/old.mp4": b"old clip bytes", "v/new.mp4": b"new clip bytes"}
    (work / "v").mkdir()
    (work / "v/old.mp4").write_bytes(files["v/old.mp4"])
    _git(work, "add", ".")
    _git(work, "commit", "-q", "-m", "one")
    first = _git(work, "rev-parse", "HEAD")
    (work / "v/old.mp4").unlink()
    (work / "v/new.mp4").write_bytes(files["v/new.mp4"])
    _git(work, "add", "-A")
    _git(work, "commit", "-q", "-m", "two")
    mirrors = tmp_path / "mirrors"
    subprocess.run(
        ["git", "clone", "-q", "--bare", str(work), str(mirrors / "own+repo" / "repo")], check=True
    )
    return mirrors, first, files


def _row(file: str, path: str, data: bytes, commit: str = "") -> str:
    sha = hashlib.sha256(data).hexdigest()
    return f"{file}\tfake\tNeuralTextures\t100.mp4\town/repo\t{path}\t{sha}\t{len(data)}\t{commit}"


def _run(out: Path, manifest: Path, mirrors: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), str(out), str(manifest)],
        capture_output=True,
        text=True,
        env={**os.environ, "MIRRORS": str(mirrors)},
    )


def test_restores_from_head_and_from_a_named_commit(tmp_path: Path) -> None:
    mirrors, first, files = _mirror(tmp_path)
    manifest = tmp_path / "ffpp_unseen.tsv"
    manifest.write_text(
        "\n".join(
            [
                HEADER,
                _row("c/100_101.mp4", "v/old.mp4", files["v/old.mp4"], first),
                _row("c/101_100.mp4", "v/new.mp4", files["v/new.mp4"]),
            ]
        )
        + "\n"
    )
    out = tmp_path / "out"
    r = _run(out, manifest, mirrors)
    assert r.returncode == 0, r.stderr
    assert (out / "c/100_101.mp4").read_bytes() == files["v/old.mp4"]
    assert (out / "c/101_100.mp4").read_bytes() == files["v/new.mp4"]
    assert (out / "labels_unseen.tsv").read_text() == manifest.read_text()
    assert "2 files ready" in r.stdout


def test_a_wrong_checksum_or_a_missing_snapshot_fails(tmp_path: Path) -> None:
    mirrors, first, files = _mirror(tmp_path)
    bad = tmp_path / "ffpp_bad.tsv"
    bad.write_text(HEADER + "\n" + _row("c/x.mp4", "v/old.mp4", b"other bytes", first) + "\n")
    r = _run(tmp_path / "out", bad, mirrors)
    assert r.returncode != 0 and "FAILED" in r.stdout + r.stderr
    assert not (tmp_path / "out" / "labels_bad.tsv").exists()
    # the file is not in HEAD: without the commit column it cannot be read, and nothing
    # half-written is left behind to be trusted by a rerun
    nocommit = tmp_path / "ffpp_nocommit.tsv"
    nocommit.write_text(HEADER + "\n" + _row("c/y.mp4", "v/old.mp4", files["v/old.mp4"]) + "\n")
    r = _run(tmp_path / "out2", nocommit, mirrors)
    assert r.returncode != 0
    assert not (tmp_path / "out2" / "c/y.mp4").exists()
    r = _run(tmp_path / "out3", nocommit, tmp_path / "nowhere")
    assert r.returncode != 0 and "fetch github:own/repo first" in r.stderr
