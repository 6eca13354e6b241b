"""Every benchmark of ``cre``, and the one writer of ``docs/BENCHMARKS.md``.

Each ``bench_*.py`` measures one thing, prints a Markdown section and rewrites its own
block of the docs (:mod:`benchmarks.benchdoc`). Run one with ``python -m
benchmarks.bench_model``, or all of them with ``python -m benchmarks`` (``make bench``),
from the repository root. They make their clips with the tests' media maker
(``tests/synth.py``) and are not part of the installed package.
"""
