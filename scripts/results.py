#!/usr/bin/env python
"""Print stored results: ``python scripts/results.py [--json] [ID_OR_SOURCE...]``.

A thin wrapper over :func:`worker.results.main` (the same as ``cre results``).
"""

import sys

from worker.results import main
from worker.settings import exit_on_bad_settings

if __name__ == "__main__":
    sys.exit(exit_on_bad_settings(main, sys.argv[1:], "results.py"))
