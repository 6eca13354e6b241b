"""Speed and memory of the scoring worker; rewrites its part of docs/BENCHMARKS.md.

``python -m benchmarks.bench_worker [--repeats 3] [--no-write]``.

Measures, with the checkpoint ``CRE_WEIGHTS`` names (``cre-seed`` when the default
checkpoint does not exist yet; the output says which):

* end-to-end scoring time (fetch -> probe -> sample -> detect -> infer -> aggregate, the
  model already loaded, as in a warm worker) of a 10 s 1080p and a 10 s 720p H.264 clip,
  median of ``--repeats`` runs, with the decode-only floor of the same clip beside it
  (:func:`benchmarks.bench_decode.decode_floor_seconds`: every frame decoded, nothing
  converted);
* model throughput in face crops per second at the checkpoint's input size;
* peak RSS of a fresh worker process (imports, model, one video) for a 10 s and a 3 min
  720p clip: it should not grow with the duration.

The clips are synthetic (scikit-image's astronaut photo panning slowly; x264 ``veryfast``,
CRF 23, default GOP) and cached under ``~/.cache/cre/bench-v2``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.benchdoc import DOC, section, write_section
from worker.settings import Settings, get_settings

__all__ = ["main", "bench_clip", "TARGETS"]

logger = logging.getLogger(__name__)

BENCH_VERSION = 2
SECTION = "worker"
TARGETS = {
    "e2e_1080p_s": 3.0,
    "e2e_720p_s": 1.5,
    "crops_per_s": 50.0,
    "peak_rss_mb": 1536.0,
}
"""The issue's targets: seconds per 10 s clip, crops/s, peak RSS (flat in duration)."""


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cre" / f"bench-v{BENCH_VERSION}"


def bench_clip(path: Path, width: int, height: int, seconds: float, fps: int = 30) -> Path:
    """Write (once) a synthetic H.264 face clip (``tests.synth.write_video``)."""
    if path.is_file() and path.stat().st_size > 0:
        return path
    from tests.synth import write_video

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.mp4")
    write_video(tmp, width=width, height=height, seconds=seconds, fps=fps)
    tmp.replace(path)
    return path


def _weights(settings: Settings) -> tuple[Settings, str]:
    from cre_models.weights import WeightsError, resolve_weights

    try:
        resolve_weights(settings.weights)
        return settings, settings.weights
    except WeightsError:
        if settings.weights != "default":
            raise
        note = "cre-seed (untrained: the default checkpoint does not exist yet)"
        return settings.model_copy(update={"weights": "cre-seed"}), note


def _e2e(path: Path, settings: Settings, scorer: Any, repeats: int) -> dict[str, float]:
    from benchmarks.bench_decode import decode_floor_seconds
    from worker.jobs import score_video

    runs = []
    for _ in range(repeats):
        rec = score_video(str(path), settings, scorer)
        if rec.status == "failed":
            raise RuntimeError(f"scoring {path} failed: {rec.error}")
        runs.append(rec)
    floor = statistics.median(
        decode_floor_seconds(path, settings.video_limits()) for _ in range(max(1, repeats // 2))
    )
    med = {
        k: statistics.median(getattr(r.timings, k) for r in runs)
        for k in ("total", "decode", "detect", "infer")
    }
    med["frames"] = runs[0].frames_sampled
    med["faces"] = runs[0].faces
    med["decode_floor"] = floor
    return med


def _crops_per_s(scorer: Any, n: int = 64, repeats: int = 3) -> float:
    rng = np.random.default_rng(0)
    size = scorer.transform.size
    crops = list(rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8))
    scorer.predict(crops[: scorer.batch_size])  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        scorer.predict(crops)
        times.append(time.perf_counter() - t)
    return n / statistics.median(times)


_RSS_SCRIPT = """
import json, resource, sys, time
t = time.perf_counter()
from worker.jobs import score_video
from worker.settings import Settings
settings = Settings(weights=sys.argv[2])
rec = score_video(sys.argv[1], settings)
print(json.dumps({"status": rec.status, "seconds": time.perf_counter() - t,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _peak_rss(path: Path, weights: str) -> dict[str, Any]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    out = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT, str(path), weights],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _fmt_target(value: float, target: float, lower_is_better: bool = True) -> str:
    ok = value <= target if lower_is_better else value >= target
    return f"{'meets' if ok else 'misses'} target {'<=' if lower_is_better else '>='} {target:g}"


def render(results: dict[str, Any]) -> str:
    """The markdown of the ``worker`` section."""
    e1, e7 = results["e2e_1080p"], results["e2e_720p"]
    rows = [
        f"| 10 s {name} clip scored end to end ({e['frames']} frames, {e['faces']} faces) "
        f"| {e['total']:.2f} s (decode+sample {e['decode']:.2f}, detect {e['detect']:.2f}, "
        f"infer {e['infer']:.2f}) | {e['decode_floor']:.2f} s | "
        f"{_fmt_target(e['total'], TARGETS[key])} |"
        for name, e, key in (("1080p", e1, "e2e_1080p_s"), ("720p", e7, "e2e_720p_s"))
    ]
    rows.append(
        f"| model throughput at {results['input_size']} px "
        f"| {results['crops_per_s']:.1f} crops/s | - | "
        f"{_fmt_target(results['crops_per_s'], TARGETS['crops_per_s'], lower_is_better=False)} |"
    )
    rows += [
        f"| worker peak RSS, {label} 720p clip (fresh process: imports + model + one video) "
        f"| {r['rss_mb']:.0f} MB | - | {_fmt_target(r['rss_mb'], TARGETS['peak_rss_mb'])} |"
        for label, r in (("10 s", results["rss_10s"]), ("3 min", results["rss_3min"]))
    ]
    return section(
        "## Scoring worker (`python -m benchmarks.bench_worker`)",
        f"Measured {results['date']} on {results['machine']}, load average "
        f"{results['load']} at the start; checkpoint: "
        f"{results['weights']} (input {results['input_size']} px, batch {results['batch_size']}, "
        f"{results['threads']} torch threads). Medians of {results['repeats']} runs, model already "
        "loaded (a warm worker). Synthetic H.264 clips (x264 veryfast, CRF 23, default GOP, "
        "30 fps).",
        "| measure | value | decode-only floor, same clip | target |",
        rows,
        "The machine may be shared with other jobs (see the load average): trust ratios "
        "more than absolute numbers. Decode-only floor: `bench_decode.decode_floor_seconds` "
        "(every frame decoded, no RGB conversion).",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; see the module docstring."""
    parser = argparse.ArgumentParser(description="Benchmark the scoring worker.")
    parser.add_argument("--repeats", type=int, default=3, help="runs per end-to-end figure")
    parser.add_argument("--doc", type=Path, default=DOC, help="file to update")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)

    from worker.scoring import Scorer

    settings, weights_note = _weights(get_settings())
    cache = _cache_dir()
    print(f"checkpoint: {weights_note}; clips in {cache}", flush=True)
    clips = {
        "1080p": bench_clip(cache / "face_1080p_10s.mp4", 1920, 1080, 10),
        "720p": bench_clip(cache / "face_720p_10s.mp4", 1280, 720, 10),
        "720p_3min": bench_clip(cache / "face_720p_180s.mp4", 1280, 720, 180),
    }
    scorer = Scorer(settings)
    import torch

    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} CPU cores ({platform.machine()}), torch {torch.__version__}",
        "weights": weights_note,
        "input_size": scorer.transform.size,
        "batch_size": scorer.batch_size,
        "threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "load": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    results["e2e_1080p"] = _e2e(clips["1080p"], settings, scorer, args.repeats)
    print(f"1080p: {results['e2e_1080p']}", flush=True)
    results["e2e_720p"] = _e2e(clips["720p"], settings, scorer, args.repeats)
    print(f"720p: {results['e2e_720p']}", flush=True)
    results["crops_per_s"] = _crops_per_s(scorer)
    print(f"crops/s: {results['crops_per_s']:.1f}", flush=True)
    del scorer
    results["rss_10s"] = _peak_rss(clips["720p"], settings.weights)
    results["rss_3min"] = _peak_rss(clips["720p_3min"], settings.weights)
    print(f"peak RSS: 10 s {results['rss_10s']}, 3 min {results['rss_3min']}", flush=True)
    body = render(results)
    print()
    print(body)
    if not args.no_write:
        write_section(args.doc, SECTION, body)
        print(f"\nupdated {args.doc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
