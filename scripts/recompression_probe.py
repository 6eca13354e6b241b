"""Experiment: does a face's score *rise under extra compression* tell real from fake?

Under re-encoding the shipped model's score of a real clip climbs and a fake's does not
(docs/EVALUATION.md, sixth and seventh sessions). This script measures whether that rise,
beside the score itself, separates the labels on people the fit has not seen. Two steps:

``score``: the worker's own path (:func:`worker.jobs.score_video`) on labelled clips, with
every face cut from a copy of its frame whose region around the face went through a JPEG
round trip at ``--jpeg`` quality first (native resolution, the same detections): the cheap
probe a worker could run beside its normal pass. Records go to ``OUT/records.jsonl`` under
the condition name ``CONDITION+jpegQ``. A probe by *re-encoding the whole clip* needs no
new code: ``cre eval --videos`` on the condition's copies with ``--conditions ladder-5``.

``crops``: the cheapest probe, measured without the worker: every cached training crop
(``cre train-videos`` cache, the model's input size) scored as is and after a JPEG round
trip of the crop itself; per clip the logit of the mean score and the rise, then the same
out-of-sample comparison as ``table``.

``table``: for each ``--case SCORE_CONDITION PROBE_CONDITION``, per clip the logit of the
video score (the checkpoint's aggregation) and the rise ``logit(probe) - logit(score)``; a
logistic on the score alone and one on [score, rise], each fitted with the clips of one
identity fold held out (:func:`worker.evaluate.identity_folds`), give out-of-sample AUC and
balanced accuracy. Records of the split's test clips are refused.

``fit``: one logistic on [score, rise, 1] pooled over every ``--case`` (a worker does not
know the condition it was given), written as JSON with its out-of-sample check by identity
fold and the clips it saw. ``apply``: that fit on other clips, the split's test clips allowed
(the one measurement there; the fit's own clips refused), beside the score alone, the
records' shipped decision and the drift of each against the first case.

    python scripts/recompression_probe.py score --videos ../data-external \\
        --labels ../data-external/labels.tsv --subset validation --condition as-delivered \\
        --jpeg 20 --weights runs/s224/checkpoint --out runs/probe_val --cache-dir .cache/eval
    python scripts/recompression_probe.py table --weights runs/s224/checkpoint \\
        --records runs/val_s224 ../data-external/labels.tsv - \\
        --records runs/probe_val ../data-external/labels.tsv - \\
        --case as-delivered as-delivered+jpeg20
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cre_models.evaluation.metrics import auc, balanced_accuracy, fit_logistic
from cre_models.training.splits import Clip, load_split, read_labels
from cre_models.weights import load_checkpoint_config
from worker.evaluate import _load_records, condition_copy, identity_folds, video_scores

logger = logging.getLogger("recompression_probe")

EPS = 1e-4


def h264_still(region: np.ndarray, crf: int) -> np.ndarray:
    """An RGB image after one H.264 frame (x264 ``medium``, yuv420p) at ``crf``, decoded."""
    import io

    import av

    h, w = region.shape[:2]
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        st = out.add_stream("libx264", rate=25)
        st.width, st.height, st.pix_fmt = w, h, "yuv420p"
        st.options = {"crf": str(int(crf)), "preset": "medium"}
        for pkt in st.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(region), "rgb24")):
            out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)
    buf.seek(0)
    with av.open(buf, "r") as inp:
        return next(inp.decode(video=0)).to_ndarray(format="rgb24")


def h264_clip(frames: Sequence[np.ndarray], crf: int) -> np.ndarray:
    """The last of ``frames`` (RGB, one size) after encoding them as one H.264 clip at ``crf``.

    x264 ``medium``, 25 fps, its default GOP: the first frame intra, the last predicted from
    the ones before it, as in a whole-video re-encode.
    """
    import io

    import av

    h, w = frames[0].shape[:2]
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        st = out.add_stream("libx264", rate=25)
        st.width, st.height, st.pix_fmt = w, h, "yuv420p"
        st.options = {"crf": str(int(crf)), "preset": "medium"}
        for f in frames:
            for pkt in st.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), "rgb24")):
                out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)
    buf.seek(0)
    last = None
    with av.open(buf, "r") as inp:
        for frame in inp.decode(video=0):
            last = frame.to_ndarray(format="rgb24")
    if last is None:
        raise RuntimeError("the probe clip decoded to no frame")
    return last


def _region(shape: tuple[int, ...], box: Any, margin: float) -> tuple[int, int, int, int]:
    """The square around ``box`` that the probe re-compresses (8x8 grid, even sides)."""
    h, w = shape[:2]
    cx, cy = (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2
    half = max(box.x1 - box.x0, box.y1 - box.y0) * (0.5 + margin) * 1.5
    x0, y0 = max(0, int(cx - half) // 8 * 8), max(0, int(cy - half) // 8 * 8)
    x1, y1 = min(w, int(math.ceil(cx + half))), min(h, int(math.ceil(cy + half)))
    return x0, y0, x0 + (x1 - x0) // 2 * 2, y0 + (y1 - y0) // 2 * 2


def window_region(window: Sequence[np.ndarray], box: Any, margin: float, crf: int) -> np.ndarray:
    """A copy of ``window[-1]`` whose square around ``box`` is the last frame of that square
    across the whole window encoded as one H.264 clip (:func:`h264_clip`)."""
    x0, y0, x1, y1 = _region(window[-1].shape, box, margin)
    out = window[-1].copy()
    if x1 - x0 < 8 or y1 - y0 < 8:
        return out
    out[y0:y1, x0:x1] = h264_clip([f[y0:y1, x0:x1] for f in window], crf)
    return out


def jpeg_region(
    image: np.ndarray, box: Any, margin: float, quality: int, codec: str = "jpeg"
) -> np.ndarray:
    """A copy of ``image`` (RGB) whose square around ``box`` went through a codec.

    ``codec`` ``jpeg``: a JPEG round trip at ``quality``; ``h264``: one H.264 frame at CRF
    ``quality`` (:func:`h264_still`).

    The square covers the crop the worker cuts (``margin`` on each side) with room to spare,
    on the frame's 8x8 grid, so the codec sees the face at the video's own resolution.
    """
    import cv2

    x0, y0, x1, y1 = _region(image.shape, box, margin)
    out = image.copy()
    if x1 - x0 < 8 or y1 - y0 < 8:
        return out
    if codec == "h264":
        out[y0:y1, x0:x1] = h264_still(image[y0:y1, x0:x1], quality)
        return out
    region = np.ascontiguousarray(image[y0:y1, x0:x1, ::-1])
    ok, buf = cv2.imencode(".jpg", region, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    back = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if back is None:
        raise RuntimeError("JPEG decoding failed")
    out[y0:y1, x0:x1] = back[:, :, ::-1]
    return out


def probe_scorer(settings: Any, quality: int, codec: str = "jpeg") -> Any:
    """A :class:`worker.scoring.Scorer` that cuts every face from its re-compressed region."""
    from worker.scoring import Scorer

    class ProbeScorer(Scorer):
        def crop(self, image: np.ndarray, boxes: Sequence[Any]) -> list[np.ndarray]:
            m = self.transform.margin
            return [self.transform.crop(jpeg_region(image, b, m, quality, codec), b) for b in boxes]

    return ProbeScorer(settings)


def window_scorer(settings: Any, crf: int) -> Any:
    """A :class:`worker.scoring.Scorer` that cuts every face from :func:`window_region`.

    Before each video, ``set_windows({frame time: [frames up to and including it]})``.
    """
    from worker.scoring import Scorer

    class WindowScorer(Scorer):
        windows: dict[float, list[np.ndarray]] = {}
        _time_of: dict[int, float] = {}

        def set_windows(self, windows: dict[float, list[np.ndarray]]) -> None:
            self.windows, self._time_of = windows, {}

        def score_frames(self, frames: Any, *a: Any, **k: Any) -> Any:
            def tap(it: Any) -> Any:
                for f in it:
                    self._time_of[id(f.image)] = round(float(f.time_s), 3)
                    yield f

            return super().score_frames(tap(frames), *a, **k)

        def crop(self, image: np.ndarray, boxes: Sequence[Any]) -> list[np.ndarray]:
            window = self.windows.get(self._time_of.get(id(image), -1.0))
            if window is None or not np.array_equal(window[-1], image):
                raise RuntimeError("no decoded window for a sampled frame")
            m = self.transform.margin
            return [self.transform.crop(window_region(window, b, m, crf), b) for b in boxes]

    return WindowScorer(settings)


def decode_windows(path: Path, times: Sequence[float], n: int) -> dict[float, list[np.ndarray]]:
    """``{time: the n frames up to and including the frame at time}``, one sequential decode."""
    from collections import deque

    import av

    want = {round(float(t), 3) for t in times}
    out: dict[float, list[np.ndarray]] = {}
    last: deque[np.ndarray] = deque(maxlen=n)
    with av.open(str(path), "r") as c:
        for frame in c.decode(video=0):
            last.append(frame.to_ndarray(format="rgb24"))
            t = round(float(frame.time), 3)
            if t in want:
                out[t] = list(last)
            if len(out) == len(want):
                break
    return out


def score(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from worker.jobs import score_video
    from worker.settings import Settings

    clips = read_labels(args.labels)
    if args.subset:
        split = load_split(None)
        clips = [c for c in clips if split.get(c.file) == args.subset]
    if not clips:
        raise SystemExit("no clips to score")
    settings = Settings(weights=args.weights)
    quality = args.jpeg if args.h264 is None else args.h264
    if args.window and args.h264 is None:
        raise SystemExit("--window needs --h264")
    if args.window:
        if not args.times_from:
            raise SystemExit("--window needs --times-from (records of the same frames)")
        times_of: dict[str, list[float]] = {
            s.clip.file: [f["time_s"] for f in s.record.get("frames", [])]
            for s in _load_records(
                Path(args.times_from) / "records.jsonl", {c.file: c for c in clips}
            )
            if s.condition == args.condition
        }
        scorer = window_scorer(settings, quality)
    else:
        scorer = probe_scorer(settings, quality, "jpeg" if args.h264 is None else "h264")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = (
        f"{args.condition}+jpeg{args.jpeg}"
        if args.h264 is None
        else f"{args.condition}+h264crf{args.h264}" + (f"w{args.window}" if args.window else "")
    )
    rec_path = out / "records.jsonl"
    done = {s.clip.file for s in _load_records(rec_path, {c.file: c for c in clips})}
    with rec_path.open("a") as f:
        for clip in tqdm([c for c in clips if c.file not in done], desc=name, unit="video"):
            path = condition_copy(
                Path(args.videos), clip.file, args.condition, Path(args.cache_dir)
            )
            if args.window:
                scorer.set_windows(decode_windows(path, times_of.get(clip.file, []), args.window))
            rec = score_video(str(path), settings, scorer).model_dump(mode="json")
            f.write(json.dumps({"condition": name, "file": clip.file, "record": rec}) + "\n")
            f.flush()
    return 0


def _logit(p: float) -> float:
    p = min(max(p, EPS), 1 - EPS)
    return math.log(p / (1 - p))


def load_rows(
    tables: Sequence[Sequence[str]], aggregation: str, sha: str | None, allow_test: bool = False
) -> tuple[dict[tuple[str, str], dict[str, Any]], dict[str, Clip]]:
    """``{(condition, file): row}`` and the clips, from every table.

    A row holds ``logit`` (of the raw video score under ``aggregation``) and the record's own
    ``score`` and ``label`` (the shipped decision). A table is ``(folder, labels, tag)``;
    ``tag`` other than ``-`` renames the folder's records' condition (a ``cre eval
    --conditions ladder-5`` run on re-encoded copies). Test clips are refused unless
    ``allow_test`` (``apply``, the one measurement on test).
    """
    split = load_split(None)
    out: dict[tuple[str, str], dict[str, Any]] = {}
    clips: dict[str, Clip] = {}
    for folder, labels, tag in tables:
        by_file = {c.file: c for c in read_labels(labels)}
        for r in _load_records(Path(folder) / "records.jsonl", by_file):
            if split.get(r.clip.file) == "test" and not allow_test:
                raise SystemExit(f"{folder}: a test clip ({r.clip.file}): never chosen on test")
            got = r.record.get("model", {}).get("weights_sha256")
            if sha is not None and got != sha:
                raise SystemExit(f"{folder}: records of other weights ({got}, not {sha})")
            cond = r.condition if tag == "-" else tag
            s = video_scores(r.record, aggregation)
            if s is not None:
                out[(cond, r.clip.file)] = {
                    "logit": _logit(s),
                    "score": r.record.get("score"),
                    "label": r.record.get("label"),
                }
                clips[r.clip.file] = r.clip
    return out, clips


def load_logits(
    tables: Sequence[Sequence[str]], aggregation: str, sha: str | None
) -> tuple[dict[tuple[str, str], float], dict[str, Clip]]:
    """``{(condition, file): logit of the video score}`` and the clips (:func:`load_rows`)."""
    rows, clips = load_rows(tables, aggregation, sha)
    return {k: v["logit"] for k, v in rows.items()}, clips


def case_features(
    logits: dict[tuple[str, str], float], clips: dict[str, Clip], cond: str, probe: str
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Files with both records, their ``[logit(score), rise, 1]`` rows and labels."""
    files = sorted(f for f in clips if (cond, f) in logits and (probe, f) in logits)
    if len({clips[f].label for f in files}) < 2:
        raise SystemExit(f"{cond} / {probe}: clips of both labels needed, got {len(files)}")
    s = np.array([logits[(cond, f)] for f in files])
    rise = np.array([logits[(probe, f)] for f in files]) - s
    y = np.array([clips[f].label for f in files], dtype=float)
    return files, np.stack([s, rise, np.ones_like(s)], 1), y


def out_of_sample(x: np.ndarray, y: np.ndarray, folds: Sequence[int], k: int) -> np.ndarray:
    """Logit of a logistic on ``x`` for each row, fitted without the row's fold."""
    z = np.zeros(len(y))
    f = np.asarray(folds)
    for i in range(k):
        held = f == i
        if held.any():
            z[held] = x[held] @ fit_logistic(x[~held], y[~held])
    return z


def table(args: argparse.Namespace) -> int:
    cfg = load_checkpoint_config(Path(args.weights))
    logits, clips = load_logits(args.records, cfg.decision.aggregation, cfg.weights_sha256)
    folds = identity_folds(list(clips.values()), args.folds)
    lines = [
        f"aggregation {cfg.decision.aggregation}; {args.folds} identity folds, out of sample",
        "",
        "| condition | probe | clips | AUC, score | AUC, score + rise | balanced acc., score "
        "| balanced acc., score + rise | mean rise real / fake | weights [score, rise, 1] |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for cond, probe in args.case:
        files, x, y = case_features(logits, clips, cond, probe)
        rise = x[:, 1]
        fo = [folds[f] for f in files]
        z1 = out_of_sample(x[:, [0, 2]], y, fo, args.folds)
        z2 = out_of_sample(x, y, fo, args.folds)
        w = fit_logistic(x, y)
        lines.append(
            f"| {cond} | {probe} | {len(files)} | {auc(y, z1):.3f} | {auc(y, z2):.3f} "
            f"| {balanced_accuracy(y, z1, 0.0):.3f} | {balanced_accuracy(y, z2, 0.0):.3f} "
            f"| {rise[y == 0].mean():.2f} / {rise[y == 1].mean():.2f} "
            f"| [{w[0]:.2f}, {w[1]:.2f}, {w[2]:.2f}] |"
        )
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-z)))


def fit(args: argparse.Namespace) -> int:
    """One logistic on [score, rise, 1] pooled over every case (a worker does not know the
    condition), its out-of-sample check per case, written to ``--out`` as JSON."""
    cfg = load_checkpoint_config(Path(args.weights))
    logits, clips = load_logits(args.records, cfg.decision.aggregation, cfg.weights_sha256)
    folds = identity_folds(list(clips.values()), args.folds)
    cases = [case_features(logits, clips, c, p) for c, p in args.case]
    x = np.concatenate([c[1] for c in cases])
    y = np.concatenate([c[2] for c in cases])
    fo = np.array([folds[f] for c in cases for f in c[0]])
    w = fit_logistic(x, y)
    # out of sample: a clip's rows (every case) are held out together with its person's fold
    z1 = out_of_sample(x[:, [0, 2]], y, fo.tolist(), args.folds)
    z2 = out_of_sample(x, y, fo.tolist(), args.folds)
    check: dict[str, dict[str, float]] = {}
    start = 0
    for (cond, _), (files, _, yc) in zip(args.case, cases, strict=True):
        sl = slice(start, start + len(files))
        start += len(files)
        check[cond] = {
            "clips": len(files),
            "auc_score": round(auc(yc, z1[sl]), 4),
            "auc_combined": round(auc(yc, z2[sl]), 4),
            "balanced_accuracy_score": round(balanced_accuracy(yc, z1[sl], 0.0), 4),
            "balanced_accuracy_combined": round(balanced_accuracy(yc, z2[sl], 0.0), 4),
        }
    out = {
        "features": ["logit(score)", "logit(probe score) - logit(score)", "1"],
        "weights": [round(float(v), 6) for v in w],
        "aggregation": cfg.decision.aggregation,
        "weights_sha256": cfg.weights_sha256,
        "cases": [list(c) for c in args.case],
        "fitted_on": sorted({f for c in cases for f in c[0]}),
        "validation_out_of_sample": check,
        "folds": args.folds,
    }
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    sys.stdout.write(
        json.dumps({k: out[k] for k in ("weights", "validation_out_of_sample")}, indent=1) + "\n"
    )
    return 0


def apply(args: argparse.Namespace) -> int:
    """A ``fit``'s logistic on other clips (test allowed: the one measurement there), beside
    the score alone and the records' shipped decision; drift against the first case."""
    fitted = json.loads(Path(args.fit).read_text())
    cfg = load_checkpoint_config(Path(args.weights))
    if fitted["weights_sha256"] != cfg.weights_sha256:
        raise SystemExit(f"{args.fit}: fitted on other weights than {args.weights}")
    rows, clips = load_rows(args.records, fitted["aggregation"], cfg.weights_sha256, True)
    seen = sorted(set(clips) & set(fitted["fitted_on"]))
    if seen:
        raise SystemExit(f"{len(seen)} clip(s) the fit saw, e.g. {seen[0]}: apply is for others")
    logits = {k: v["logit"] for k, v in rows.items()}
    w = np.asarray(fitted["weights"])
    cases = [tuple(c) for c in fitted["cases"]]
    lines = [
        f"fit {args.fit}: weights {fitted['weights']}; aggregation {fitted['aggregation']}",
        "",
        "| condition | probe | clips | AUC, score | AUC, score + rise | balanced acc., shipped "
        "decision | balanced acc., score + rise | mean abs. drift, shipped / score + rise "
        "| mean rise real / fake |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    first: dict[str, tuple[float, float]] = {}
    for i, (cond, probe) in enumerate(cases):
        files, x, y = case_features(logits, clips, cond, probe)
        z = x @ w
        shipped = np.array([rows[(cond, f)]["label"] == "fake" for f in files], dtype=float)
        score = np.array([float(rows[(cond, f)]["score"]) for f in files])
        p = _sigmoid(z)
        if i == 0:
            first = {f: (score[j], p[j]) for j, f in enumerate(files)}
            drift = "-"
        else:
            both = [j for j, f in enumerate(files) if f in first]
            d0 = np.mean([abs(score[j] - first[files[j]][0]) for j in both])
            d1 = np.mean([abs(p[j] - first[files[j]][1]) for j in both])
            drift = f"{d0:.3f} / {d1:.3f}"
        lines.append(
            f"| {cond} | {probe} | {len(files)} | {auc(y, x[:, 0]):.3f} | {auc(y, z):.3f} "
            f"| {balanced_accuracy(y, shipped, 0.5):.3f} | {balanced_accuracy(y, z, 0.0):.3f} "
            f"| {drift} | {x[y == 0, 1].mean():.2f} / {x[y == 1, 1].mean():.2f} |"
        )
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def jpeg_crop(crop: np.ndarray, quality: int) -> np.ndarray:
    """An RGB crop after a JPEG round trip at ``quality``."""
    import cv2

    ok, buf = cv2.imencode(
        ".jpg", np.ascontiguousarray(crop[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    )
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    back = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if back is None:
        raise RuntimeError("JPEG decoding failed")
    return np.ascontiguousarray(back[:, :, ::-1])


def crops(args: argparse.Namespace) -> int:
    from cre_models.training.cache import CacheSpec, load_cached
    from worker.scoring import Scorer
    from worker.settings import Settings

    split = load_split(None)
    clips: list[Clip] = []
    for labels, subset in args.labels:
        clips += [c for c in read_labels(labels) if subset == "-" or split.get(c.file) == subset]
    if any(split.get(c.file) == "test" for c in clips):
        raise SystemExit("test clips: never chosen on test")
    scorer = Scorer(Settings(weights=args.weights))
    spec = CacheSpec(size=scorer.transform.size, margin=scorer.transform.margin)
    rows: dict[str, list[float]] = {}
    for v in load_cached(clips, Path(args.cache_dir), spec):
        batch = list(v.crops)
        rows[v.clip.file] = [_logit(float(np.mean(scorer.predict(batch))))] + [
            _logit(float(np.mean(scorer.predict([jpeg_crop(c, q) for c in batch]))))
            for q in args.jpeg
        ]
        logger.info("%s: %s", v.clip.file, np.round(rows[v.clip.file], 2))
    by_file = {c.file: c for c in clips}
    files = sorted(rows)
    folds = identity_folds([by_file[f] for f in files], args.folds)
    y = np.array([by_file[f].label for f in files], dtype=float)
    s = np.array([rows[f][0] for f in files])
    one = np.ones_like(s)
    fo = [folds[f] for f in files]
    z1 = out_of_sample(np.stack([s, one], 1), y, fo, args.folds)
    lines = [
        f"{len(files)} clips, cached crops as delivered; out of sample, {args.folds} folds",
        "",
    ]
    lines += [
        "| JPEG quality | AUC, score | AUC, score + rise | mean rise real / fake |",
        "| --- | --- | --- | --- |",
    ]
    for i, q in enumerate(args.jpeg, start=1):
        rise = np.array([rows[f][i] for f in files]) - s
        z2 = out_of_sample(np.stack([s, rise, one], 1), y, fo, args.folds)
        lines.append(
            f"| {q} | {auc(y, z1):.3f} | {auc(y, z2):.3f} "
            f"| {rise[y == 0].mean():.2f} / {rise[y == 1].mean():.2f} |"
        )
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("score", help="the worker's path with faces cut from JPEG'd regions")
    s.add_argument("--videos", required=True)
    s.add_argument("--labels", required=True)
    s.add_argument("--subset", default=None, choices=("train", "validation"))
    s.add_argument("--condition", default="as-delivered")
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--jpeg", type=int, help="the probe: JPEG at this quality")
    g.add_argument("--h264", type=int, help="the probe: one H.264 frame at this CRF")
    s.add_argument(
        "--window",
        type=int,
        default=0,
        help="with --h264: encode the face's square over this many frames up to the "
        "sampled one (its last frame is the probe)",
    )
    s.add_argument(
        "--times-from",
        default=None,
        help="cre eval --videos --out folder whose records give the sampled frame times",
    )
    s.add_argument("--weights", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--cache-dir", default=".cache/eval-videos")
    c = sub.add_parser("crops", help="cached crops, JPEG round trip of the crop itself")
    c.add_argument("--weights", required=True)
    c.add_argument(
        "--labels",
        nargs=2,
        action="append",
        required=True,
        metavar=("LABELS", "SUBSET"),
        help="a labels file and its split subset or -",
    )
    c.add_argument("--cache-dir", required=True, help="cre train-videos --cache-dir")
    c.add_argument("--jpeg", type=int, nargs="+", default=[20, 40])
    c.add_argument("--folds", type=int, default=6)
    t = sub.add_parser("table", help="out-of-sample AUC of the score with and without the rise")
    t.add_argument("--weights", required=True)
    t.add_argument(
        "--records", nargs=3, action="append", required=True, metavar=("FOLDER", "LABELS", "TAG")
    )
    t.add_argument(
        "--case", nargs=2, action="append", required=True, metavar=("CONDITION", "PROBE")
    )
    t.add_argument("--folds", type=int, default=6)
    f = sub.add_parser("fit", help="one logistic on [score, rise] pooled over the cases")
    f.add_argument("--weights", required=True)
    f.add_argument(
        "--records", nargs=3, action="append", required=True, metavar=("FOLDER", "LABELS", "TAG")
    )
    f.add_argument(
        "--case", nargs=2, action="append", required=True, metavar=("CONDITION", "PROBE")
    )
    f.add_argument("--folds", type=int, default=6)
    f.add_argument("--out", required=True, help="the fit, as JSON")
    a = sub.add_parser("apply", help="a fit on other clips (test allowed), once")
    a.add_argument("--fit", required=True)
    a.add_argument("--weights", required=True)
    a.add_argument(
        "--records", nargs=3, action="append", required=True, metavar=("FOLDER", "LABELS", "TAG")
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return {"score": score, "crops": crops, "table": table, "fit": fit, "apply": apply}[args.cmd](
        args
    )


if __name__ == "__main__":
    raise SystemExit(main())
