"""Time and size of cre report pages; see worker/bench_report.py."""

import sys

from worker.bench_report import main

if __name__ == "__main__":
    sys.exit(main())
