"""Face detector operating point: recall, false faces and speed over ../shared/data.

Runs :class:`cre_models.faces.FaceDetector` over the photos in ``faces/`` and over the
frames the worker samples from every video in ``videos/`` (``cre_models.sampling.sample_frames``,
32 per video), for each longest side (480/640/960), score threshold (0.5-0.9), torch
thread count (1/2) and frames per forward pass (1/4). Detections are compared with the
hand-checked faces in ``benchmarks/bench_faces_truth.json`` (a detection overlapping a
listed face by IoU >= 0.4 is that face; any other detection is a false face, except over
the few boxes listed as undecidable). The videos are also run through the worker's path,
:class:`cre_models.roi.RoiDetector` with the worker's defaults (whole frames now and then,
regions around the known faces between), for its recall, false faces and the IoU of its
boxes with the whole-frame ones. Prints the tables and rewrites the ``faces`` section
of ``docs/BENCHMARKS.md``; ``--sheets DIR`` also writes contact sheets (PNG, boxes and
landmarks drawn) at the chosen defaults, for checking by eye.

Recall and false faces come from one pass per longest side at the lowest threshold,
filtered per threshold afterwards: greedy NMS keeps a box only if no higher-scoring box
overlaps it, so raising the threshold afterwards gives exactly what the detector gives at
that threshold. The detector's other filters (``min_face_px``, ``max_faces``,
``min_relative_area``) are applied after the threshold, as in the detector.

Run it with ``nice`` on the shared machine::

    nice -n 10 python -m benchmarks.bench_faces --sheets /tmp/face-sheets
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from benchmarks.benchdoc import DOC, write_section
from benchmarks.common import ROOT, measured_on
from cre_models.faces import FaceBox, FaceDetector
from cre_models.images import read_image
from cre_models.roi import RoiDetector, RoiStats
from cre_models.sampling import sample_frames
from cre_models.training.data import IMAGE_EXTS
from cre_models.video import VideoLimits, probe_video

logger = logging.getLogger("bench_faces")

TRUTH = Path(__file__).resolve().parent / "bench_faces_truth.json"
DATA = ROOT.parent / "shared" / "data"
SECTION = "faces"
HEADING = "## Face detector (RetinaFace MobileNet-0.25): operating point"
DEFAULTS = {"max_side": 640, "threshold": 0.8, "threads": 1, "batch": 4}
"""The operating point chosen from these tables (worker/settings.py defaults)."""
DEPLOYED = {"max_faces": 4, "min_relative_area": 0.25}
"""The worker's per-frame filters, applied after the threshold (as the detector does)."""


@dataclass
class Item:
    """One photo or one sampled video frame with its hand-checked faces."""

    source: str  # path under the data folder
    position: int  # sampled-frame position (0 for photos)
    image: np.ndarray
    truth: list[list[float]]
    ignore: list[list[float]] = field(default_factory=list)

    @property
    def is_video(self) -> bool:
        return self.source.startswith("videos/")


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def load_truth(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def iter_groups(data: Path, truth: dict[str, Any]) -> Iterator[tuple[str, list[Item]]]:
    """``(name, items)`` per video (its sampled frames) and one group of all photos.

    One video's frames at a time keeps memory at 32 frames, not 320.
    """
    items = truth["items"]
    limits = VideoLimits()
    n = int(truth["frames_per_video"])
    for source in sorted(k for k in items if k.startswith("videos/")):
        path = data / source
        info = probe_video(path, limits)
        frames = list(sample_frames(path, info, n, limits))
        expected = items[source]["faces"]
        if len(frames) != len(expected):
            raise RuntimeError(f"{source}: {len(frames)} frames sampled, truth has {len(expected)}")
        yield (
            source,
            [Item(source, i, f.image, expected[i]) for i, f in enumerate(frames)],
        )
    photos = sorted(
        p for p in (data / "faces").rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTS
    )
    group: list[Item] = []
    for p in photos:
        source = str(p.relative_to(data))
        entry = items.get(source)
        if entry is None:
            raise RuntimeError(f"{source} has no entry in the truth file")
        group.append(Item(source, 0, read_image(p), entry["faces"], entry.get("ignore", [])))
    yield "photos", group


def apply_threshold(faces: list[FaceBox], threshold: float) -> list[FaceBox]:
    """What the deployed detector returns at ``threshold``, from the unfiltered output of
    one at a lower threshold (``max_faces`` and ``min_relative_area`` off)."""
    kept = [f for f in faces if f.score >= threshold]
    kept.sort(key=lambda b: b.area, reverse=True)
    if kept:
        largest = kept[0].area
        kept = [b for b in kept if b.area >= DEPLOYED["min_relative_area"] * largest]
    return kept[: int(DEPLOYED["max_faces"])]


@dataclass
class Score:
    """Counts for one (max_side, threshold) over photos or video frames."""

    with_face: int = 0  # items with at least one listed face
    found: int = 0  # ... where at least one listed face was detected
    false: int = 0  # detections matching no listed (or undecidable) face
    false_where: list[str] = field(default_factory=list)
    lowest: float = 1.0  # lowest score of a detection that matched a listed face


def score_item(item: Item, faces: list[FaceBox], iou_min: float, s: Score) -> None:
    boxes = [f.to_list() for f in faces]
    if item.truth:
        s.with_face += 1
        matched = [
            f.score
            for f, b in zip(faces, boxes, strict=True)
            for t in item.truth
            if iou(b, t) >= iou_min
        ]
        if matched:
            s.found += 1
            s.lowest = min(s.lowest, max(matched))
    for b in boxes:
        if not any(iou(b, t) >= iou_min for t in item.truth + item.ignore):
            s.false += 1
            s.false_where.append(f"{item.source}#{item.position}")


def worker_roi(detector: FaceDetector) -> RoiDetector:
    """A :class:`RoiDetector` as the worker builds one for a video (its default settings)."""
    from worker.settings import Settings

    d = Settings()
    return RoiDetector(
        detector, full_every=d.detect_full_every, face_px=d.detect_region_face_px or None
    )


@dataclass
class WorkerPath:
    """The worker's path over one video: recall and false faces, IoU with whole frames."""

    score: Score
    ious: list[float]
    stats: RoiStats


def run_worker_path(
    detector: FaceDetector, items: list[Item], whole: list[list[FaceBox]], iou_min: float
) -> WorkerPath:
    """Detect ``items`` (one video's frames, in order) as the worker does; compare with the
    whole-frame faces ``whole`` (IoU of each whole-frame box with its best match)."""
    roi = worker_roi(detector)
    out = WorkerPath(Score(), [], roi.stats)
    for item, want in zip(items, whole, strict=True):
        got = roi.detect(item.image)
        score_item(item, got, iou_min, out.score)
        for w in want:
            out.ious.append(max((iou(w.to_list(), g.to_list()) for g in got), default=0.0))
    return out


def time_detector(
    det: FaceDetector, images: list[np.ndarray], batch: int
) -> tuple[float, float, list[list[FaceBox]]]:
    """Wall-clock and CPU seconds to detect faces in ``images``, ``batch`` frames per pass.

    CPU time is the process's (all threads): on a machine shared with other jobs it is what
    a one-thread run would take on an idle core; wall clock includes waiting for a core.
    """
    out: list[list[FaceBox]] = []
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(0, len(images), batch):
        chunk = images[i : i + batch]
        out.extend([det.detect(chunk[0])] if len(chunk) == 1 else det.detect_batch(chunk))
    return time.perf_counter() - t0, time.process_time() - c0, out


def draw_sheet(items: list[Item], faces: list[list[FaceBox]], path: Path, cols: int = 4) -> None:
    """Thumbnails (400 px) with boxes, scores and landmarks; green = matches a listed face."""
    tiles = []
    for item, found in zip(items, faces, strict=True):
        h, w = item.image.shape[:2]
        s = 400 / max(h, w)
        th = cv2.resize(item.image, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
        th = cv2.cvtColor(th, cv2.COLOR_RGB2BGR)
        for f in found:
            ok = any(iou(f.to_list(), t) >= 0.4 for t in item.truth + item.ignore)
            colour = (0, 200, 0) if ok else (0, 0, 255)
            p0, p1 = (int(f.x0 * s), int(f.y0 * s)), (int(f.x1 * s), int(f.y1 * s))
            cv2.rectangle(th, p0, p1, colour, 1)
            cv2.putText(th, f"{f.score:.2f}", (p0[0], max(10, p0[1] - 2)), 0, 0.4, colour, 1)
            for x, y in f.landmarks or ():
                cv2.circle(th, (int(x * s), int(y * s)), 1, (255, 0, 255), -1)
        tile = np.zeros((420, 400, 3), np.uint8)
        tile[: th.shape[0], : th.shape[1]] = th
        label = f"{item.position} {Path(item.source).name[:40]}"
        cv2.putText(tile, label, (2, 414), 0, 0.45, (255, 255, 255), 1)
        tiles.append(tile)
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.hstack(tiles[i : i + cols]) for i in range(0, len(tiles), cols)]
    cv2.imwrite(str(path), np.vstack(rows))


def _numbers(kind: type) -> Any:
    """An argparse ``type`` for a comma-separated list of ``kind``."""
    return lambda text: [kind(x) for x in text.split(",") if x.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    p.add_argument("--truth", type=Path, default=TRUTH)
    p.add_argument("--sides", type=_numbers(int), default=[480, 640, 960])
    p.add_argument("--thresholds", type=_numbers(float), default=[0.5, 0.6, 0.7, 0.8, 0.9])
    p.add_argument("--threads", type=_numbers(int), default=[1, 2], help="torch threads")
    p.add_argument("--batches", type=_numbers(int), default=[1, 4], help="frames per pass")
    p.add_argument("--multithread-frames", type=int, default=4, help="frames per video timed")
    p.add_argument("--sheets", type=Path, help="write contact sheets at the defaults here")
    p.add_argument("--docs", type=Path, default=DOC)
    p.add_argument("--no-docs", action="store_true", help="print only")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.data.is_dir():
        print(f"bench_faces: no data at {args.data}: nothing measured")
        return 0
    torch.set_num_threads(1)
    cv2.setNumThreads(1)

    truth = load_truth(args.truth)
    iou_min = float(truth["match_iou"])
    sides, thresholds, threads, batches = args.sides, args.thresholds, args.threads, args.batches
    low = min(thresholds)
    base = FaceDetector(score_threshold=low)  # loads the weights once
    detectors = {
        side: FaceDetector(
            model=base.model,
            max_side=side,
            score_threshold=low,
            max_faces=1000,
            min_relative_area=0.0,
        )
        for side in sides
    }

    scores: dict[tuple[int, float, str], Score] = defaultdict(Score)
    seconds: dict[tuple[int, int, int, str], float] = defaultdict(float)
    cpu_seconds: dict[tuple[int, int, int, str], float] = defaultdict(float)
    timed: dict[tuple[int, int, int, str], int] = defaultdict(int)
    frames: dict[str, int] = defaultdict(int)
    per_video: dict[tuple[int, float, str], Score] = defaultdict(Score)
    # the worker's detector (its defaults) on whole frames and on the worker's path
    deployed = FaceDetector(
        model=base.model, max_side=int(DEFAULTS["max_side"]), score_threshold=DEFAULTS["threshold"]
    )
    worker_path: dict[str, WorkerPath] = {}
    path_cpu = {"whole": 0.0, "worker": 0.0}
    if args.sheets:
        args.sheets.mkdir(parents=True, exist_ok=True)

    for name, items in iter_groups(args.data, truth):
        logger.info("%s: %d images", name, len(items))
        images = [it.image for it in items]
        kind = "photos" if name == "photos" else "frames"
        is_1080p = kind == "frames" and max(images[0].shape[:2]) >= 1920
        frames[kind] += len(items)
        if is_1080p:
            frames["1080p"] += len(items)
        if kind == "frames":
            c0 = time.process_time()
            whole = [deployed.detect(image) for image in images]
            c1 = time.process_time()
            worker_path[name] = run_worker_path(deployed, items, whole, iou_min)
            path_cpu["whole"] += c1 - c0
            path_cpu["worker"] += time.process_time() - c1
        for side in sides:
            det = detectors[side]
            wall, cpu, found = time_detector(det, images, 1)
            if kind == "frames":
                for key in ("frames", "1080p") if is_1080p else ("frames",):
                    seconds[(side, 1, 1, key)] += wall
                    cpu_seconds[(side, 1, 1, key)] += cpu
                    timed[(side, 1, 1, key)] += len(images)
            for t in thresholds:
                for it, faces in zip(items, found, strict=True):
                    kept = apply_threshold(faces, t)
                    score_item(it, kept, iou_min, scores[(side, t, kind)])
                    if kind == "frames":
                        score_item(it, kept, iou_min, per_video[(side, t, name)])
            if args.sheets and side == DEFAULTS["max_side"] and DEFAULTS["threshold"] in thresholds:
                kept = [apply_threshold(f, DEFAULTS["threshold"]) for f in found]
                stem = Path(name).name.replace(".", "_")
                for k in range(0, len(items), 16):
                    draw_sheet(
                        items[k : k + 16], kept[k : k + 16], args.sheets / f"{stem}_{k // 16}.png"
                    )
            if kind != "frames":
                continue
            for n_threads in threads:
                for batch in batches:
                    if (n_threads, batch) == (1, 1):
                        continue
                    timing = FaceDetector(
                        model=base.model, max_side=side, score_threshold=low, threads=n_threads
                    )
                    # more than one thread stalls on a busy machine (seconds per frame):
                    # time those on the first frames only
                    subset = images if n_threads == 1 else images[: args.multithread_frames]
                    wall, cpu, _ = time_detector(timing, subset, batch)
                    for key in ("frames", "1080p") if is_1080p else ("frames",):
                        seconds[(side, n_threads, batch, key)] += wall
                        cpu_seconds[(side, n_threads, batch, key)] += cpu
                        timed[(side, n_threads, batch, key)] += len(subset)

    for (side, t, kind), sc in sorted(scores.items()):
        if sc.false_where:
            logger.info(
                "false faces, side %d, score >= %.1f, %s: %s", side, t, kind, sc.false_where
            )
    body = render(
        args,
        truth,
        sides,
        thresholds,
        threads,
        batches,
        scores,
        seconds,
        cpu_seconds,
        timed,
        frames,
    )
    body += "\n" + render_per_video(per_video, sides, thresholds)
    body += "\n" + render_worker_path(worker_path, path_cpu)
    print(body)
    if not args.no_docs:
        write_section(args.docs, SECTION, body, heading=HEADING)
        logger.info("wrote the %s section of %s", SECTION, args.docs)
    return 0


def _pct(a: int, b: int) -> str:
    return f"{a}/{b} ({100 * a / b:.1f}%)" if b else "-"


def render(
    args: argparse.Namespace,
    truth: dict[str, Any],
    sides: list[int],
    thresholds: list[float],
    threads: list[int],
    batches: list[int],
    scores: dict[tuple[int, float, str], Score],
    seconds: dict[tuple[int, int, int, str], float],
    cpu_seconds: dict[tuple[int, int, int, str], float],
    timed: dict[tuple[int, int, int, str], int],
    frames: dict[str, int],
) -> str:
    n_videos = sum(1 for k in truth["items"] if k.startswith("videos/"))
    lines = [
        f"{measured_on('bench_faces')}; torch "
        f"{torch.__version__}. Data: {frames['frames']} frames sampled by the worker "
        f"(`cre_models.sampling.sample_frames`, {truth['frames_per_video']} per video) from the "
        f"{n_videos} videos in `../shared/data/videos` ({frames['1080p']} of them 1080p) and "
        f"{frames['photos']} photos in `../shared/data/faces`, against the hand-checked faces "
        "in `benchmarks/bench_faces_truth.json` (a detection is a face it overlaps by IoU >= "
        f"{truth['match_iou']}; any other detection is a false face). Detector filters as "
        "deployed: `min_face_px` 40, `max_faces` 4, `min_relative_area` 0.25, NMS IoU 0.4.",
        "",
        "### Recall and false faces",
        "",
        "| longest side | score >= | frames with a face found | false faces in frames "
        "| photos with a face found | false faces in photos | lowest score of a face found "
        "(frames / photos) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for side in sides:
        for t in thresholds:
            fr, ph = scores[(side, t, "frames")], scores[(side, t, "photos")]
            lines.append(
                f"| {side} | {t:.1f} | {_pct(fr.found, fr.with_face)} | {fr.false} "
                f"| {_pct(ph.found, ph.with_face)} | {ph.false} "
                f"| {fr.lowest:.3f} / {ph.lowest:.3f} |"
            )
    lines += [
        "",
        "### Speed (ms per frame: resize, forward pass, decoding, NMS)",
        "",
        "CPU is the process's CPU time over all its threads (what one thread needs on an idle "
        "core); wall is the elapsed time on the shared machine. Runs with more than one torch "
        f"thread are timed on the first {args.multithread_frames} frames of each video.",
        "",
        "| longest side | torch threads | frames per pass | all frames, CPU | all frames, wall "
        "| 1080p, CPU | 1080p, wall |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]

    def ms(table: dict[tuple[int, int, int, str], float], key: tuple[int, int, int, str]) -> str:
        return f"{1000 * table[key] / max(1, timed[key]):.0f}"

    for side in sides:
        for n_threads in threads:
            for batch in batches:
                a, h = (side, n_threads, batch, "frames"), (side, n_threads, batch, "1080p")
                lines.append(
                    f"| {side} | {n_threads} | {batch} | {ms(cpu_seconds, a)} | {ms(seconds, a)} "
                    f"| {ms(cpu_seconds, h)} | {ms(seconds, h)} |"
                )
    false_at = {
        (side, t): scores[(side, t, "photos")].false_where + scores[(side, t, "frames")].false_where
        for side in sides
        for t in thresholds
    }
    d = DEFAULTS
    lines += [
        "",
        f"False faces at the defaults (side {d['max_side']}, score >= {d['threshold']}): "
        + (", ".join(false_at[(int(d["max_side"]), float(d["threshold"]))]) or "none")
        + ".",
    ]
    return "\n".join(lines) + "\n"


def render_per_video(
    per_video: dict[tuple[int, float, str], Score], sides: list[int], thresholds: list[float]
) -> str:
    d = DEFAULTS
    videos = sorted({name for (_, _, name) in per_video})
    lines = [
        f"### Per video at the defaults (side {d['max_side']}, score >= {d['threshold']})",
        "",
        "| video | frames with a face | found | false faces |",
        "| --- | --- | --- | --- |",
    ]
    for name in videos:
        s = per_video.get((int(d["max_side"]), float(d["threshold"]), name), Score())
        lines.append(f"| `{name}` | {s.with_face} | {_pct(s.found, s.with_face)} | {s.false} |")
    worst = {
        (side, t): min(
            (
                per_video[(side, t, v)].found / per_video[(side, t, v)].with_face
                for v in videos
                if per_video[(side, t, v)].with_face
            ),
            default=0.0,
        )
        for side in sides
        for t in thresholds
    }
    lines += [
        "",
        "Worst video's share of face frames found, per setting: "
        + "; ".join(f"{s}/{t:.1f}: {100 * w:.0f}%" for (s, t), w in worst.items())
        + ".",
    ]
    return "\n".join(lines) + "\n"


def render_worker_path(paths: dict[str, WorkerPath], cpu: dict[str, float]) -> str:
    """The worker's path per video: recall, false faces, IoU with whole-frame boxes, passes."""
    from worker.settings import Settings

    d = Settings()
    n = sum(len(p.ious) for p in paths.values())
    ious = [x for p in paths.values() for x in p.ious]
    found = sum(p.score.found for p in paths.values())
    with_face = sum(p.score.with_face for p in paths.values())
    frames = sum(p.stats.full + p.stats.region - p.stats.lost for p in paths.values())
    lines = [
        "### The worker's path: whole frames now and then, regions between",
        "",
        f"`cre_models.roi.RoiDetector` with the worker's defaults (`CRE_DETECT_FULL_EVERY` "
        f"{d.detect_full_every}, `CRE_DETECT_REGION_FACE_PX` {d.detect_region_face_px}; side "
        f"{DEFAULTS['max_side']}, score >= {DEFAULTS['threshold']}) over each video's sampled "
        "frames in order, against the hand-checked faces and against the same detector on "
        "whole frames (IoU of each whole-frame box with its best match).",
        "",
        "| video | frames with a face | found | false faces | mean IoU with whole frames "
        "| whole-frame passes | region passes (of them lost) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, p in sorted(paths.items()):
        mean = f"{np.mean(p.ious):.3f}" if p.ious else "-"
        lines.append(
            f"| `{name}` | {p.score.with_face} | {_pct(p.score.found, p.score.with_face)} "
            f"| {p.score.false} | {mean} | {p.stats.full} | {p.stats.region} ({p.stats.lost}) |"
        )
    worst = min(
        (p.score.found / p.score.with_face for p in paths.values() if p.score.with_face),
        default=0.0,
    )
    lines += [
        "",
        f"All videos: a face found in {_pct(found, with_face)} of the frames that show one "
        f"(worst video {100 * worst:.0f}%), "
        f"{sum(p.score.false for p in paths.values())} false faces; mean IoU with the "
        f"whole-frame boxes {np.mean(ious) if ious else float('nan'):.3f} over {n} faces "
        f"(lowest {min(ious, default=float('nan')):.3f}). Detection CPU: "
        f"{1000 * cpu['worker'] / max(1, frames):.0f} ms per frame on this path against "
        f"{1000 * cpu['whole'] / max(1, frames):.0f} on whole frames (one thread).",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
