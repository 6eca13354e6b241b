"""Speed and memory of the scoring worker; rewrites its part of docs/BENCHMARKS.md.

``python -m benchmarks.bench_worker [--repeats 3] [--videos DIR] [--no-write]``.

Measures, with the checkpoint ``CRE_WEIGHTS`` names (``cre-seed`` when the default
checkpoint does not exist yet; the output says which), on what ``cre run`` runs with one
worker (:func:`worker.jobs.score_video` with a warm :class:`~worker.scoring.Scorer`, the
settings from ``CRE_*`` and ``CRE_TORCH_THREADS`` = all cores unless set):

* per clip, end-to-end scoring time (fetch -> probe -> sample -> detect -> infer ->
  aggregate, the model already loaded, as in a warm worker), median of ``--repeats`` runs,
  beside the decode-only floor of the same file measured in the same run, interleaved
  with the scoring runs (:func:`benchmarks.bench_decode.decode_floor_seconds`: every frame
  decoded, nothing converted), their ratio and the stage times of the record (``decode``:
  probing and waiting for decoded frames; ``detect``; ``infer``); then the median ratio
  over the clips and the largest stage, against issue #9's target (median ratio <= 1.5,
  detection not the largest stage);
* model throughput in face crops per second at the checkpoint's input size;
* peak RSS of a fresh worker process (imports, model, one video) for a 10 s and a 3 min
  720p clip: it should not grow with the duration.

The clips are the real ones in ``../shared/data/videos`` (``--videos``) whose shorter side
is at least 480 px (the others are listed as skipped). Without that folder, and for the
peak-RSS rows, synthetic clips are used and labelled so (scikit-image's astronaut photo
panning slowly; x264 ``veryfast``, CRF 23, default GOP), cached under
``~/.cache/cre/bench-v2``.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.benchdoc import DOC, section, write_section
from benchmarks.common import ROOT
from worker.settings import Settings, get_settings

__all__ = ["main", "bench_clip", "find_clips", "Clip", "TARGETS"]

logger = logging.getLogger(__name__)

BENCH_VERSION = 2
SECTION = "worker"
TARGETS = {
    "e2e_over_floor": 1.5,
    "crops_per_s": 50.0,
    "peak_rss_mb": 1536.0,
}
"""The issue's targets: median end-to-end / decode-only floor over the clips, crops/s,
peak RSS (flat in duration)."""
VIDEOS = ROOT.parent / "shared" / "data" / "videos"
"""The real clips (present for developers and CI; absent on a user's machine)."""
MIN_SHORT_SIDE = 480
"""Clips whose shorter side is below this are not the worker's target input: skipped."""
STAGES = ("decode", "detect", "infer")


@dataclass(frozen=True)
class Clip:
    """A clip to score: its path, a label for the table and its size."""

    path: Path
    label: str
    width: int
    height: int
    duration_s: float


def find_clips(folder: Path) -> tuple[list[Clip], list[str]]:
    """The videos under ``folder`` whose shorter side is >= :data:`MIN_SHORT_SIDE`, and a
    note for each one skipped (too small, unreadable)."""
    from cre_models.errors import CreError
    from cre_models.video import VideoLimits, probe_video

    clips, skipped = [], []
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in {".mp4", ".mov"}):
        name = str(path.relative_to(folder))
        try:
            info = probe_video(path, VideoLimits())
        except CreError as e:
            skipped.append(f"`{name}` ({e.code})")
            continue
        if min(info.width, info.height) < MIN_SHORT_SIDE:
            skipped.append(f"`{name}` ({info.width}x{info.height})")
            continue
        clips.append(Clip(path, name, info.width, info.height, info.duration_s))
    return clips, skipped


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


def _e2e(path: Path, settings: Settings, scorer: Any, repeats: int) -> dict[str, Any]:
    """Medians of ``repeats`` scoring runs and decode-only floors of one file, interleaved."""
    from benchmarks.bench_decode import decode_floor_seconds
    from worker.jobs import score_video

    limits = settings.video_limits()
    decode_floor_seconds(path, limits)  # the file in the page cache for both
    runs, floors = [], []
    for _ in range(repeats):
        floors.append(decode_floor_seconds(path, limits))
        rec = score_video(str(path), settings, scorer)
        if rec.status == "failed":
            raise RuntimeError(f"scoring {path} failed: {rec.error}")
        runs.append(rec)
    med: dict[str, Any] = {
        k: statistics.median(getattr(r.timings, k) for r in runs) for k in ("total", *STAGES)
    }
    med["frames"] = runs[0].frames_sampled
    med["faces"] = runs[0].faces
    med["decode_floor"] = statistics.median(floors)
    med["ratio"] = med["total"] / med["decode_floor"]
    med["largest"] = max(STAGES, key=lambda k: med[k])
    return med


def _crops_per_s(scorer: Any, n: int = 64, repeats: int = 3, threads: int = 0) -> float:
    """Crops/s of ``scorer.predict`` on ``threads`` torch threads (0: the process's)."""
    rng = np.random.default_rng(0)
    size = scorer.transform.size
    crops = list(rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8))
    scorer.predict(crops[: scorer.batch_size], threads=threads)  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        scorer.predict(crops, threads=threads)
        times.append(time.perf_counter() - t)
    return n / statistics.median(times)


BATCH_SIZES = (1, 2, 4, 8, 16)
"""The ``CRE_BATCH_SIZE`` values the sweep measures ``predict`` at."""


def _batch_sweep(scorer: Any) -> dict[str, dict[str, float]]:
    """Crops/s of ``predict`` per batch size (``BATCH_SIZES`` and the worker's own), on one
    and on all threads."""
    import torch

    chosen = scorer.batch_size
    out: dict[str, dict[str, float]] = {}
    try:
        for b in sorted({*BATCH_SIZES, chosen}):
            scorer.batch_size = b
            out[str(b)] = {
                "1": _crops_per_s(scorer, threads=1),
                str(torch.get_num_threads()): _crops_per_s(scorer),
            }
            print(f"batch {b}: {out[str(b)]}", flush=True)
    finally:
        scorer.batch_size = chosen
    return out


_RSS_SCRIPT = """
import json, sys, time
t = time.perf_counter()
from benchmarks.common import peak_rss_mb
from worker.jobs import score_video
from worker.settings import Settings
settings = Settings(weights=sys.argv[2])
rec = score_video(sys.argv[1], settings)
rss_mb, source = peak_rss_mb()
print(json.dumps({"status": rec.status, "seconds": time.perf_counter() - t,
                  "rss_mb": rss_mb, "rss_source": source}))
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


def summarise(per_clip: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Median ratio over the clips, stage seconds summed over them, the largest stage."""
    totals = {k: sum(e[k] for e in per_clip.values()) for k in STAGES}
    return {
        "stage_medians": {k: statistics.median(e[k] for e in per_clip.values()) for k in STAGES},
        "largest_in": {k: sum(e["largest"] == k for e in per_clip.values()) for k in STAGES},
        "median_ratio": statistics.median(e["ratio"] for e in per_clip.values()),
        "median_total": statistics.median(e["total"] for e in per_clip.values()),
        "median_floor": statistics.median(e["decode_floor"] for e in per_clip.values()),
        "stage_totals": totals,
        "largest": max(STAGES, key=lambda k: totals[k]),
    }


def render(results: dict[str, Any]) -> str:
    """The markdown of the ``worker`` section."""
    clips: dict[str, dict[str, Any]] = results["clips"]
    rows = [
        f"| `{name}` | {e['size']} | {e['frames']} / {e['faces']} | {e['total']:.2f} s "
        f"| {e['decode_floor']:.2f} s | {e['ratio']:.2f} | {e['decode']:.2f} | "
        f"{e['detect']:.2f} | {e['infer']:.2f} | {e['largest']} |"
        for name, e in clips.items()
    ]
    s = results["summary"]
    totals = s["stage_totals"]
    largest_ok = s["largest"] != "detect"
    source = (
        f"Real clips: the {len(clips)} videos of `../shared/data/videos` whose shorter side is "
        f">= {MIN_SHORT_SIDE} px"
        + (f" (skipped: {', '.join(results['skipped'])})" if results["skipped"] else "")
        + "."
        if results["real"]
        else "**Synthetic clips** (`../shared/data/videos` is absent): 10 s H.264 clips "
        "(x264 veryfast, CRF 23, default GOP, 30 fps)."
    )
    summary = (
        f"**Median end-to-end / decode-only floor over the {len(clips)} clips: "
        f"{s['median_ratio']:.2f}** ({_fmt_target(s['median_ratio'], TARGETS['e2e_over_floor'])}; "
        f"median end to end {s['median_total']:.2f} s, median floor {s['median_floor']:.2f} s). "
        f"Stage seconds summed over the clips: decode {totals['decode']:.2f}, detect "
        f"{totals['detect']:.2f}, infer {totals['infer']:.2f}: the largest is "
        f"**{s['largest']}** ({'meets' if largest_ok else 'misses'} target: detection not the "
        "largest stage). Median per clip: "
        + ", ".join(f"{k} {v:.2f} s" for k, v in s["stage_medians"].items())
        + "; the largest stage of a clip: "
        + ", ".join(f"{k} in {n}" for k, n in s["largest_in"].items())
        + "."
    )
    other = [
        "| measure | value | target |",
        "| --- | --- | --- |",
        f"| model throughput at {results['input_size']} px | {results['crops_per_s']:.1f} crops/s "
        f"| {_fmt_target(results['crops_per_s'], TARGETS['crops_per_s'], lower_is_better=False)} |",
        *(
            [
                f"| the same on one torch thread (a batch while the decoder thread works) "
                f"| {results['crops_per_s_1t']:.1f} crops/s | - |"
            ]
            if "crops_per_s_1t" in results
            else []
        ),
        *(
            f"| worker peak RSS, {label} synthetic 720p clip (fresh process: imports + model + "
            f"one video; {r.get('rss_source', 'ru_maxrss')}) | {r['rss_mb']:.0f} MB "
            f"| {_fmt_target(r['rss_mb'], TARGETS['peak_rss_mb'])} |"
            for label, r in (("10 s", results["rss_10s"]), ("3 min", results["rss_3min"]))
        ),
    ]
    sweep: dict[str, dict[str, float]] = results.get("batch_sweep") or {}
    if sweep:
        threads = list(next(iter(sweep.values())))
        other.extend(
            [
                "",
                f"`predict` crops/s by `CRE_BATCH_SIZE` ({results['input_size']} px; the worker "
                f"uses {results['batch_size']}):",
                "",
                "| batch size | " + " | ".join(f"{t} torch thread(s)" for t in threads) + " |",
                "| ---: | " + " | ".join("---:" for _ in threads) + " |",
                *(
                    f"| {b} | " + " | ".join(f"{rates[t]:.1f}" for t in threads) + " |"
                    for b, rates in sweep.items()
                ),
            ]
        )
    return section(
        "## Scoring worker (`python -m benchmarks.bench_worker`)",
        f"Measured {results['date']} on {results['machine']}, load average "
        f"{results['load']} at the start, {results['load_end']} after the clips; checkpoint: "
        f"{results['weights']} (input "
        f"{results['input_size']} px, batch {results['batch_size']}, {results['threads']} torch "
        f"threads as `cre run` gives one worker; detection: {results['detection']}). "
        f"`worker.jobs.score_video` with the model already loaded (a warm worker); medians of "
        f"{results['repeats']} runs per clip, the decode-only floor measured in the same run, "
        f"interleaved. {source}",
        "| clip | size, duration | frames / faces | end to end | decode-only floor | ratio "
        "| decode (s) | detect (s) | infer (s) | largest stage |",
        rows,
        "\n".join(
            [
                summary,
                "",
                *other,
                "",
                "Stage times are the record's: `decode` is probing plus waiting for decoded "
                "frames (the decoder runs in a thread beside detection and inference), so the "
                "three overlap and need not add up to the end-to-end time. Decode-only floor: "
                "`bench_decode.decode_floor_seconds` (every frame decoded, no RGB conversion). "
                "Peak RSS: the fresh process's own high-water mark (`VmHWM`; up to the "
                "twentieth session's blocks this read `ru_maxrss`, which a child started by "
                "the benchmark inherits from it, so those figures were the benchmark's own "
                "peak, not the worker's). "
                "The machine may be shared with other jobs (see the load average): trust "
                "ratios more than absolute numbers.",
            ]
        ),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; see the module docstring."""
    parser = argparse.ArgumentParser(description="Benchmark the scoring worker.")
    parser.add_argument("--repeats", type=int, default=3, help="runs per end-to-end figure")
    parser.add_argument("--videos", type=Path, default=VIDEOS, help="folder of real clips")
    parser.add_argument("--doc", type=Path, default=DOC, help="file to update")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)

    from worker.scoring import Scorer

    settings, weights_note = _weights(get_settings())
    if "CRE_TORCH_THREADS" not in os.environ:  # what `cre run --workers 1` gives its worker
        settings = settings.model_copy(update={"torch_threads": max(1, os.cpu_count() or 1)})
    cache = _cache_dir()
    skipped: list[str] = []
    real = args.videos.is_dir()
    if real:
        found, skipped = find_clips(args.videos)
        clips = {c.label: c for c in found}
        print(f"checkpoint: {weights_note}; {len(clips)} real clips in {args.videos}", flush=True)
        for note in skipped:
            print(f"skipped (shorter side < {MIN_SHORT_SIDE} px or unreadable): {note}")
    else:
        print(f"checkpoint: {weights_note}; no {args.videos}: SYNTHETIC clips in {cache}")
        clips = {
            f"synthetic 10 s {name}": Clip(
                bench_clip(cache / f"face_{name}_10s.mp4", w, h, 10),
                f"synthetic 10 s {name}",
                w,
                h,
                10.0,
            )
            for name, w, h in (("1080p", 1920, 1080), ("720p", 1280, 720))
        }
    rss_clips = {
        "10s": bench_clip(cache / "face_720p_10s.mp4", 1280, 720, 10),
        "3min": bench_clip(cache / "face_720p_180s.mp4", 1280, 720, 180),
    }
    scorer = Scorer(settings)
    import torch

    full_every, face_px = settings.detect_full_every, settings.detect_region_face_px
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} CPU cores ({platform.machine()}), torch {torch.__version__}",
        "weights": weights_note,
        "input_size": scorer.transform.size,
        "batch_size": scorer.batch_size,
        "threads": torch.get_num_threads(),
        "detection": (
            "whole frames only"
            if full_every <= 1
            else f"whole frame every {full_every} sampled frames, regions between"
            + (f" (faces ~{face_px} px)" if face_px else "")
        ),
        "repeats": args.repeats,
        "load": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
        "real": real,
        "skipped": skipped,
        "clips": {},
    }
    for name, clip in clips.items():
        e = _e2e(clip.path, settings, scorer, args.repeats)
        e["size"] = f"{clip.width}x{clip.height}, {clip.duration_s:.1f} s"
        results["clips"][name] = e
        print(
            f"{name}: {e['total']:.2f} s, floor {e['decode_floor']:.2f} s, ratio "
            f"{e['ratio']:.2f} (decode {e['decode']:.2f}, detect {e['detect']:.2f}, "
            f"infer {e['infer']:.2f})",
            flush=True,
        )
    results["load_end"] = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    results["summary"] = summarise(results["clips"])
    print(f"summary: {results['summary']}", flush=True)
    results["batch_sweep"] = _batch_sweep(scorer)
    results["crops_per_s"] = _crops_per_s(scorer)
    # the rate of a batch that runs while the decoder thread works (Scorer.score_frames)
    results["crops_per_s_1t"] = _crops_per_s(scorer, threads=1)
    print(
        f"crops/s: {results['crops_per_s']:.1f} ({results['crops_per_s_1t']:.1f} on one thread)",
        flush=True,
    )
    del scorer
    results["rss_10s"] = _peak_rss(rss_clips["10s"], settings.weights)
    results["rss_3min"] = _peak_rss(rss_clips["3min"], settings.weights)
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
