"""Inference speed of the face model; see cre_models/bench_model.py."""

import sys

from cre_models.bench_model import main

if __name__ == "__main__":
    sys.exit(main())
