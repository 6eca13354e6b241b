"""The README cannot drift from the code: settings, commands and the make targets."""

from __future__ import annotations

from pathlib import Path

from worker.cli import COMMANDS
from worker.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_every_setting_is_documented() -> None:
    missing = [
        f"CRE_{n.upper()}" for n in Settings.model_fields if f"`CRE_{n.upper()}`" not in README
    ]
    assert not missing, f"settings missing from README.md: {missing}"


def test_every_cre_command_is_documented() -> None:
    missing = [name for name in COMMANDS if f"cre {name}" not in README]
    assert not missing, f"`cre` commands missing from README.md: {missing}"


def test_two_commands_and_ci_agree() -> None:
    assert "make run" in README and "make test" in README
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
    makefile = (ROOT / "Makefile").read_text()
    assert "torch==2.13.0" in makefile, "the CPU torch pin must be installed before the project"
