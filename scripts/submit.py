#!/usr/bin/env python
"""Enqueue videos: ``python scripts/submit.py PATH_OR_URL... [--wait] [--force] [--json]``.

A thin wrapper over :mod:`worker.submit`; see there.
"""

import sys

from worker.settings import exit_on_bad_settings
from worker.submit import main

if __name__ == "__main__":
    sys.exit(exit_on_bad_settings(main, sys.argv[1:], "submit.py"))
