"""``python -m benchmarks [NAME...]``: run the benchmarks (the CPU set, or the named ones).

Each rewrites its block of ``docs/BENCHMARKS.md``; extra arguments are not passed on (run
one module directly for its options). The whole set takes a while on a 2-core machine.
"""

from __future__ import annotations

import importlib
import sys
import time

BENCHMARKS = ("model", "augment", "decode", "faces", "worker", "report", "scale", "workers")
"""Cheapest first; ``faces`` needs ``../shared/data``; ``worker``, ``report``, ``scale`` and
``workers`` score real videos."""
GPU = ("gpu",)
"""Run only when named (``python -m benchmarks gpu``): they need a CUDA GPU."""


def main(argv: list[str] | None = None) -> int:
    names = list(sys.argv[1:] if argv is None else argv) or list(BENCHMARKS)
    unknown = [n for n in names if n not in (*BENCHMARKS, *GPU)]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; choose from {', '.join((*BENCHMARKS, *GPU))}")
        return 2
    for name in names:
        t0 = time.perf_counter()
        print(f"== benchmarks.bench_{name}", flush=True)
        rc = importlib.import_module(f"benchmarks.bench_{name}").main([])
        print(f"== bench_{name}: exit {rc}, {time.perf_counter() - t0:.0f} s", flush=True)
        if rc:
            return int(rc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
