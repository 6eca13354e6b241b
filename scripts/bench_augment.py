"""Throughput of the compression simulator and real codecs; see cre_models/bench_augment.py."""

import sys

from cre_models.bench_augment import main

if __name__ == "__main__":
    sys.exit(main())
