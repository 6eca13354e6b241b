"""The ``cre`` command: one entry point, one sub-command per task.

Each sub-command's arguments live with the code that does the work; this module only
dispatches, so ``cre train --help`` shows the options of the module that trains.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence

__all__ = ["main", "COMMANDS"]

COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("worker.run", "score videos on this machine (embedded Valkey + N workers)"),
    "results": ("worker.results", "print stored results"),
    "report": ("worker.report.cli", "HTML page per video: why it got its score"),
    "worker": ("worker.serve", "run a scoring worker (deployment entry point)"),
    "train": ("cre_models.training.images_cli", "train a checkpoint on face images (self-blends)"),
    "train-videos": ("cre_models.training.cli", "train a checkpoint on labelled videos"),
    "eval": ("worker.evaluate", "evaluate a checkpoint (--videos: through the worker's path)"),
    "degrade": ("cre_models.degrade", "write a compressed copy of a video"),
}


def _usage() -> str:
    lines = ["usage: cre COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<12} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines.append("\n`cre COMMAND --help` for a command's options.")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage(), file=sys.stdout if args else sys.stderr)  # an error goes to stderr
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"cre: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    level = os.environ.get("CRE_LOG_LEVEL", "INFO").strip().upper()  # checked by Settings
    logging.basicConfig(
        level=level if level in logging.getLevelNamesMapping() else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from worker.settings import exit_on_bad_settings

    module = importlib.import_module(COMMANDS[name][0])
    entry: Callable[[list[str]], int | None] = module.main
    return exit_on_bad_settings(entry, rest, f"cre {name}")


if __name__ == "__main__":
    sys.exit(main())
