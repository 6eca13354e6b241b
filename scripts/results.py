#!/usr/bin/env python
"""Print stored results: ``python scripts/results.py [--json] [ID_OR_SOURCE...]``.

A thin wrapper over :func:`worker.results.main` (the same as ``cre results``).
"""

import sys

from worker.results import main

if __name__ == "__main__":
    sys.exit(main())
