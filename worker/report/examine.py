"""The evidence of one record: the video re-sampled, its faces cropped, heat maps, compression.

The video is re-sampled at the recorded frame times with the worker's sampler
(:func:`cre_models.sampling.sample_frames_at`); faces are cropped exactly as the worker crops
them (the checkpoint's :class:`~cre_models.transforms.FaceTransform`), and Grad-CAM heat
maps (:mod:`cre_models.explain`) are computed here, on demand, never on the scoring path;
how compressed the input is comes from :mod:`worker.report.inputstats`. A record whose
video cannot be read any more still gets its evidence, without pictures, saying why.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from cre_models.errors import CreError
from cre_models.faces import FaceBox
from cre_models.transforms import FaceTransform
from worker.report.evidence import (
    Evidence,
    FaceView,
    InputFacts,
    ReportOptions,
    ShownFace,
    TrackView,
    num,
    tracks_from_record,
)
from worker.report.records import soft_check
from worker.settings import Settings, get_settings

if TYPE_CHECKING:
    from worker.scoring import Scorer

__all__ = ["TIME_SLACK_S", "TIME_TOLERANCE_S", "ModelHolder", "build_evidence"]

logger = logging.getLogger(__name__)


TIME_SLACK_S = 2e-4
"""Added to a recorded ``time_s`` (rounded to 0.1 ms) so the sampler returns that frame."""

TIME_TOLERANCE_S = 2e-3
"""A re-sampled frame further than this from the recorded time is reported as a mismatch."""


def _hex_rgb(colour: str) -> tuple[int, int, int]:
    c = colour.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def _jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def _downscale(image: np.ndarray, width: int) -> tuple[np.ndarray, float]:
    h, w = image.shape[:2]
    scale = min(1.0, width / w)
    if scale >= 1.0:
        return image.copy(), 1.0
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def _frame_picture(
    image: np.ndarray,
    faces: Sequence[tuple[FaceView, str]],
    highlight: FaceView,
    options: ReportOptions,
) -> bytes:
    """The frame, downscaled, every face boxed thinly in its track colour, one thickly."""
    small, scale = _downscale(image, options.frame_width)
    for face, colour in faces:
        x0, y0, x1, y1 = (round(v * scale) for v in face.box)
        rgb = _hex_rgb(colour)
        if face == highlight:
            cv2.rectangle(small, (x0 - 1, y0 - 1), (x1 + 1, y1 + 1), (255, 255, 255), 4)
            cv2.rectangle(small, (x0, y0), (x1, y1), rgb, 2)
        else:
            cv2.rectangle(small, (x0, y0), (x1, y1), rgb, 1)
        for px, py in face.landmarks or ():
            cv2.circle(small, (round(px * scale), round(py * scale)), 2, rgb, -1)
    return _jpeg(small, options.jpeg_quality)


class ModelHolder:
    """The scorer, loaded on first use and kept for the next report of the process."""

    def __init__(self, settings: Settings, scorer: Scorer | None = None) -> None:
        self.settings = settings
        self.scorer = scorer
        self.error: str | None = None

    def get(self) -> Scorer | None:
        if self.scorer is None and self.error is None:
            from worker.errors import ModelUnavailableError
            from worker.scoring import get_scorer

            try:
                self.scorer = get_scorer(self.settings)
            except ModelUnavailableError as e:
                self.error = e.message
                logger.warning("report: no model for heat maps: %s", e.message)
        return self.scorer


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Run with ``n`` torch threads, then restore the process's number.

    A page runs the model on a handful of crops: one thread does that as fast as two on
    an idle machine, and several times faster on a busy one (OpenMP threads that wait for
    a core spin), so ``CRE_TORCH_THREADS=0`` means one thread here.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _checkpoint_config(settings: Settings, scorer: Scorer | None) -> dict[str, Any] | None:
    """The ``config.json`` of the checkpoint ``CRE_WEIGHTS`` names, as a dict.

    Read as plain JSON when the model is not loaded, so a page without heat maps never
    imports torch; ``None`` for a registered untrained network or an unreadable file.
    """
    if scorer is not None:
        return scorer.config.model_dump()
    from cre_models.weights import CONFIG_FILE, WeightsError, resolve_weights

    try:
        folder = resolve_weights(settings.weights)
    except WeightsError:
        return None
    if isinstance(folder, str):  # a registered untrained network: no config.json
        return None
    try:
        raw = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return raw if isinstance(raw, dict) else None


def _transform(config: Mapping[str, Any] | None) -> FaceTransform:
    """The checkpoint's crop contract (its ``input``; the defaults without a readable one)."""
    from pydantic import ValidationError

    from cre_models.weights import InputSpec

    try:
        spec = InputSpec.model_validate((config or {}).get("input") or {})
    except ValidationError:
        spec = InputSpec()
    return FaceTransform.from_spec(spec)


def _calibration(config: Mapping[str, Any]) -> str | None:
    """What the checkpoint says about its calibration: the Platt scaling its ``decision``
    applies, else its training notes (how the threshold was chosen)."""
    platt = (config.get("decision") or {}).get("calibration")
    if isinstance(platt, Mapping) and {"a", "b"} <= set(platt):
        return (
            f"Platt scaling p = sigmoid({platt['a']} × logit(score) + {platt['b']}); "
            "the threshold applies to the calibrated score"
        )
    training = config.get("training") or {}
    note = training.get("calibration")
    if isinstance(note, Mapping):
        note = "; ".join(f"{k}: {v}" for k, v in note.items())
    if not note:
        note = training.get("threshold_rule")
        if note:
            note = f"threshold chosen by {note}"
    return str(note) if note else None


def _frame_threshold(config: Mapping[str, Any], threshold: float | None) -> float | None:
    """The record's threshold on the frame and face scores' scale.

    Frame and face scores are the model's probabilities; a video or track score is their
    aggregate after the checkpoint's Platt scaling, and the threshold applies to that. With
    a calibration the frame-scale threshold is its inverse at the threshold, without one
    the threshold itself; ``None`` without a threshold or for a decreasing scaling.
    """
    if threshold is None:
        return None
    platt = (config.get("decision") or {}).get("calibration")
    if not isinstance(platt, Mapping):
        return threshold
    a, b = num(platt.get("a")), num(platt.get("b"))
    if a is None or b is None:
        return None
    from cre_models.evaluation.metrics import Platt

    return Platt(a, b).inverse(threshold)


def _shown_faces(
    tracks: Sequence[TrackView], options: ReportOptions
) -> dict[int | None, list[FaceView]]:
    return {tr.id: tr.top(options.top) for tr in tracks[: options.max_tracks]}


def _input_facts(info: Any, packets: Any, qp: Any, block: list[float], level: str) -> InputFacts:
    facts = InputFacts(
        width=int(info.width),
        height=int(info.height),
        codec=str(info.codec),
        container=str(info.container),
        duration_s=float(info.duration_s),
        fps=info.fps,
        rotation=int(info.rotation),
        size_bytes=int(info.size_bytes),
        level=level,
    )
    if packets is not None:
        facts.profile = packets.profile
        facts.pix_fmt = packets.pix_fmt
        facts.bit_rate = packets.bit_rate
        facts.packets = packets.packets
        facts.keyframes = packets.keyframes
        facts.bpp = packets.bpp
        facts.key_bpp = packets.key_bpp
        facts.inter_bpp = packets.inter_bpp
    if qp is not None:
        facts.qp_mean, facts.qp_key, facts.qp_inter = qp.mean_qp, qp.key_qp, qp.inter_qp
        facts.qp_blocks = qp.block_qp
        facts.qp_scale, facts.qp_frames = qp.scale, qp.frames
    if block:
        facts.blockiness = float(np.mean(block))
        facts.blockiness_frames = len(block)
    return facts


def _examine_video(
    ev: Evidence,
    path: Path,
    settings: Settings,
    model: ModelHolder,
    options: ReportOptions,
    transform: FaceTransform,
) -> None:
    """Fill ``ev`` with what the video shows: pictures, heat maps, compression.

    Faces are cut by ``transform`` (the checkpoint's), or the loaded scorer's own.
    """
    from cre_models.sampling import sample_frames_at
    from cre_models.video import probe_video
    from worker.report.inputstats import blockiness, compression_level, packet_stats, qp_stats

    record = ev.record
    limits = settings.video_limits()
    info = probe_video(path, limits)
    recorded = record.get("video") or {}
    if recorded and (recorded.get("width"), recorded.get("height")) != (info.width, info.height):
        ev.notes.append(
            f"the file is {info.width}×{info.height} now but was "
            f"{recorded.get('width')}×{recorded.get('height')} when scored: it has changed"
        )
    try:
        packets = packet_stats(path, limits)
    except (CreError, ValueError) as e:
        logger.warning("%s: no packet statistics: %s", path, e)
        packets = None
    qp = qp_stats(path, limits, packets.keyframe_times if packets else None)

    frames = record.get("frames") or []
    wanted = _shown_faces(ev.tracks, options)
    positions = sorted({f.frame_pos for faces in wanted.values() for f in faces})
    if not positions and frames:  # no face: show a few sampled frames
        n = min(options.thumbnails, len(frames))
        positions = sorted({round(i * (len(frames) - 1) / max(1, n - 1)) for i in range(n)})
    faces_at: dict[int, list[tuple[FaceView, str]]] = {}
    for tr in ev.tracks:
        for f in tr.faces:
            faces_at.setdefault(f.frame_pos, []).append((f, tr.colour))
    by_target = {
        round(float(frames[p].get("time_s") or 0.0) + TIME_SLACK_S, 6): p for p in positions
    }

    scorer = model.get() if (options.heatmaps and wanted) else None
    if scorer is not None:
        transform = scorer.transform
    if wanted:
        ev.crop_margin, ev.input_size = transform.margin, transform.size

    shown: dict[tuple[int, tuple[float, float, float, float]], ShownFace] = {}
    crops: list[np.ndarray] = []
    crop_of: list[ShownFace] = []
    block: list[float] = []
    mismatched = 0
    for frame in sample_frames_at(path, info, list(by_target), limits):
        pos = by_target.get(round(frame.target_s, 6))
        if pos is None:
            continue
        recorded_t = float(frames[pos].get("time_s") or 0.0)
        if abs(frame.time_s - recorded_t) > TIME_TOLERANCE_S:
            mismatched += 1
        if len(block) < options.blockiness_frames:
            b = blockiness(frame.image)
            if b is not None:
                block.append(b)
        here = faces_at.get(pos, [])
        for faces in wanted.values():
            for f in faces:
                if f.frame_pos != pos:
                    continue
                sf = ShownFace(face=f, frame_time_s=frame.time_s)
                sf.frame_image = _frame_picture(frame.image, here, f, options)
                try:
                    crop = transform.crop(frame.image, FaceBox(*f.box, landmarks=f.landmarks))
                except ValueError as e:
                    ev.notes.append(f"face at {f.time_s:.2f} s could not be cropped: {e}")
                else:
                    sf.crop_image = _jpeg(crop, max(options.jpeg_quality, 90))
                    crops.append(crop)
                    crop_of.append(sf)
                shown[(pos, f.box)] = sf
        if not wanted:
            small, _ = _downscale(frame.image, options.frame_width)
            ev.thumbnails.append((recorded_t, _jpeg(small, options.jpeg_quality)))
    if mismatched:
        ev.notes.append(
            f"{mismatched} re-sampled frame(s) are not at their recorded time: the file may "
            "have changed since it was scored"
        )
    for tid, faces in wanted.items():
        ev.shown[tid] = [
            shown[(f.frame_pos, f.box)] for f in faces if (f.frame_pos, f.box) in shown
        ]

    if scorer is not None and crops:
        from cre_models.explain import grad_cam, overlay_heatmap

        # frame and face scores are before calibration: compare them on their own scale
        threshold = ev.frame_threshold
        if threshold is None:
            threshold = _frame_threshold(scorer.config.model_dump(), scorer.threshold) or 0.5
        toward = [sf.face.score >= threshold for sf in crop_of]
        with _torch_threads(settings.torch_threads or 1):
            cam = grad_cam(
                scorer.model,
                scorer.transform.to_tensor(crops),
                toward_fake=toward,
                batch_size=scorer.batch_size,
            )
        for i, sf in enumerate(crop_of):
            sf.toward_fake = toward[i]
            sf.recomputed = float(cam.probs[i])
            for stream, maps in cam.maps.items():
                sf.heatmaps[stream] = _jpeg(overlay_heatmap(crops[i], maps[i]), 88)
        ev.heatmap_model = f"{scorer.model_name} v{scorer.model_version}"
        off = [
            sf
            for sf in crop_of
            if sf.recomputed is not None and abs(sf.recomputed - sf.face.score) > 0.01
        ]
        if off:
            ev.notes.append(
                f"{len(off)} of {len(crop_of)} pictured faces score differently now (by up to "
                f"{max(abs((sf.recomputed or 0) - sf.face.score) for sf in off):.3f}): another "
                "checkpoint or different settings than when the video was scored"
            )
    elif options.heatmaps and wanted and model.error:
        ev.notes.append(f"no heat maps: {model.error}")

    level = compression_level(packets.bpp if packets else None, info.codec, qp)
    ev.input = _input_facts(info, packets, qp, block, level)


def build_evidence(
    record: Mapping[str, Any],
    settings: Settings | None = None,
    *,
    options: ReportOptions | None = None,
    scorer: Scorer | None = None,
    video: Path | None = None,
    _model: ModelHolder | None = None,
) -> Evidence:
    """Everything a page shows for ``record``: see the module docstring.

    Args:
        record: a result record as a dict (``ResultRecord.model_dump(mode="json")`` or a
            line of ``cre run --json``), with or without ``tracks``.
        settings: input limits and ``CRE_WEIGHTS`` (the model for heat maps).
        options: what to show; :class:`ReportOptions` defaults.
        scorer: the model and crop geometry; built from ``settings`` on first need.
        video: read this file instead of the record's ``source``.
        _model: a model holder shared by several pages (:func:`write_reports`), so the
            model is loaded once.

    Returns:
        The :class:`~worker.report.evidence.Evidence`; problems with the video or the model
        are written into its ``notes``, never raised.
    """
    t0 = time.perf_counter()
    settings = settings or get_settings()
    options = options or ReportOptions()
    model = _model or ModelHolder(settings, scorer)
    rec = dict(record)
    soft_check(rec)
    tracks = tracks_from_record(rec)
    ev = Evidence(
        record=rec,
        tracks=tracks,
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        topk_fraction=settings.aggregation_topk,
        hidden_tracks=max(0, len(tracks) - options.max_tracks),
    )
    config = None
    if rec.get("status") == "done":
        scorer_now = model.get() if options.heatmaps else model.scorer
        config = _checkpoint_config(settings, scorer_now)
        if config is not None:
            ev.calibration = _calibration(config)
            ev.frame_threshold = _frame_threshold(config, num(rec.get("threshold")))
            spec = config.get("input") or {}
            size, margin = spec.get("size"), spec.get("crop_margin")
            ev.input_size = size if isinstance(size, int) else None
            ev.crop_margin = float(margin) if isinstance(margin, int | float) else None
            m = rec.get("model") or {}
            name, version = config.get("name"), config.get("version")
            if m and (m.get("name"), m.get("version")) != (name, version):
                ev.notes.append(
                    f"scored by {m.get('name')} v{m.get('version')}; crops, heat maps, the "
                    "calibration note and the frame scores' threshold here come from "
                    f"{name} v{version} (CRE_WEIGHTS)"
                )
    if rec.get("status") == "failed":
        ev.build_s = time.perf_counter() - t0
        return ev
    source = str(video) if video is not None else str(rec.get("source") or "")
    try:
        from worker.fetch import fetch

        with fetch(source, settings) as fetched:
            _examine_video(ev, fetched.path, settings, model, options, _transform(config))
    except CreError as e:
        ev.notes.append(f"the video could not be read again ({e.code}: {e.message}): no pictures")
    except OSError as e:
        ev.notes.append(f"the video could not be read again ({e}): no pictures")
    ev.build_s = time.perf_counter() - t0
    return ev
