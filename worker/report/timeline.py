"""The timeline section of a ``cre report`` page: frame scores over time, one line a track."""

from __future__ import annotations

import math
from collections.abc import Mapping

from worker.report.evidence import Evidence, FaceView, counted_frames, num
from worker.report.markup import esc, fmt

__all__ = ["timeline_section"]


def _timeline_svg(ev: Evidence) -> str:
    """Frame scores over time, one line per track, the threshold and the video score."""
    r = ev.record
    frames = [f for f in r.get("frames") or [] if isinstance(f, Mapping)]
    w, h = 1040, 250
    left, right, top, bottom = 46, 150, 12, 34
    pw, ph = w - left - right, h - top - bottom
    video = r.get("video") or {}
    times = [num(f.get("time_s")) or 0.0 for f in frames]
    duration = num(video.get("duration_s")) or 0.0
    span = max(duration, max(times, default=0.0) * 1.02, 1e-3)

    def x(t: float) -> float:
        return left + pw * min(max(t / span, 0.0), 1.0)

    def y(s: float) -> float:
        return top + ph * (1.0 - min(max(s, 0.0), 1.0))

    parts = [
        f'<svg viewBox="0 0 {w} {h}" width="100%" role="img" aria-label="frame scores over time">',
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fff" stroke="#d1d5db"/>',
    ]
    for v in (0.0, 0.25, 0.5, 0.75, 1.0):
        parts.append(
            f'<line x1="{left}" x2="{left + pw}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
            f'stroke="#f3f4f6"/><text x="{left - 6}" y="{y(v) + 4:.1f}" font-size="11" '
            f'text-anchor="end" fill="#6b7280">{v:.2f}</text>'
        )
    step = _nice_step(span)
    t = 0.0
    while t <= span + 1e-9:
        parts.append(
            f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top + ph}" y2="{top + ph + 4}" '
            f'stroke="#9ca3af"/><text x="{x(t):.1f}" y="{top + ph + 16}" font-size="11" '
            f'text-anchor="middle" fill="#6b7280">{t:g}</text>'
        )
        t = round(t + step, 9)
    parts.append(
        f'<text x="{left + pw / 2:.1f}" y="{h - 3}" font-size="11" text-anchor="middle" '
        f'fill="#6b7280">time (s)</text>'
    )
    counted = counted_frames(r, ev.topk_fraction)
    for pos, fr in enumerate(frames):
        if num(fr.get("score")) is None:
            tx = x(times[pos])
            parts.append(
                f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{top + ph - 8}" y2="{top + ph}" '
                f'stroke="#9ca3af" stroke-width="2"><title>frame {esc(fr.get("index"))} at '
                f"{times[pos]:.2f} s: no face</title></line>"
            )
    for pos in sorted(counted):
        s = num(frames[pos].get("score"))
        if s is not None:
            parts.append(
                f'<circle cx="{x(times[pos]):.1f}" cy="{y(s):.1f}" r="7" fill="none" '
                f'stroke="#111827" stroke-opacity=".35" stroke-width="1.5"/>'
            )
    shown = {(sf.face.frame_pos, sf.face.box) for faces in ev.shown.values() for sf in faces}
    for tr in ev.tracks:
        per_frame: dict[int, FaceView] = {}
        for face in tr.faces:
            if face.frame_pos not in per_frame or face.score > per_frame[face.frame_pos].score:
                per_frame[face.frame_pos] = face
        pts = sorted(per_frame.values(), key=lambda f: f.time_s)
        if len(pts) > 1 and tr.id is not None:  # untracked faces are not one person
            path = " ".join(f"{x(f.time_s):.1f},{y(f.score):.1f}" for f in pts)
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{tr.colour}" '
                f'stroke-width="1.8" stroke-opacity=".85"/>'
            )
        for f in pts:
            big = (f.frame_pos, f.box) in shown
            parts.append(
                f'<circle cx="{x(f.time_s):.1f}" cy="{y(f.score):.1f}" r="{4.5 if big else 3}" '
                f'fill="{tr.colour}" stroke="#fff" stroke-width="{1.5 if big else 0.8}">'
                f"<title>{esc(tr.label)}, frame {f.frame_index} at {f.time_s:.2f} s: "
                f"{f.score:.3f}</title></circle>"
            )

    def level(value: float, label: str, colour: str, style: str, dy: float = 0.0) -> str:
        """A labelled horizontal line across the plot at score ``value``."""
        return (
            f'<line x1="{left}" x2="{left + pw}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
            f'stroke="{colour}" {style}/><text x="{left + pw + 6}" y="{y(value) + 4 + dy:.1f}" '
            f'font-size="11" fill="{colour}">{label} {value:.3f}</text>'
        )

    # frame scores are the model's; the record's threshold and video score are on the
    # calibrated scale: the threshold is drawn where it lies on the frame scores' scale,
    # and the video score only when the two scales are one
    thr, calibrated = ev.frame_threshold, ev.threshold_moves
    if thr is not None:
        label = "frame threshold" if calibrated else "threshold"
        parts.append(level(thr, label, "#b91c1c", 'stroke-width="1.5" stroke-dasharray="6 4"'))
    score = num(r.get("score"))
    if score is not None and thr is not None and not calibrated:
        dy = 14 if abs(y(score) - y(thr)) < 14 else 0
        dy = dy if y(score) >= y(thr) else -dy
        style = 'stroke-width="1" stroke-dasharray="2 3"'
        parts.append(level(score, "video score", "#111827", style, dy))
    parts.append("</svg>")
    return "".join(parts)


def _nice_step(span: float) -> float:
    raw = span / 8
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    for m in (1, 2, 5, 10):
        if raw <= m * mag:
            return float(m * mag)
    return float(10 * mag)


def timeline_section(ev: Evidence) -> str:
    frames = ev.record.get("frames") or []
    if not frames:
        return ""
    legend = "".join(
        f'<span style="margin-right:14px"><span class="sw" style="background:{tr.colour}">'
        f"</span> {esc(tr.label)} ({fmt(tr.score)})</span>"
        for tr in ev.tracks
    )
    caption = (
        "One dot per face and frame (a person track's line joins its faces); larger dots are "
        "pictured below; rings mark the frames that make up the video score; grey ticks at "
        "the bottom are sampled frames without a face. Hover a dot for its numbers."
        if ev.tracks
        else "Each grey tick is a sampled frame: none had a face."
    )
    raw_thr, thr = num(ev.record.get("threshold")), ev.frame_threshold
    if ev.tracks and raw_thr is not None:
        if thr is None:
            caption += (
                " Frame scores are the model's, before any calibration; the threshold cannot be "
                "drawn on their scale (no checkpoint config.json at hand, or a calibration that "
                "cannot be inverted)."
            )
        elif ev.threshold_moves:
            caption += (
                " Frame scores are the model's, before the checkpoint's calibration: the red "
                f"line is the threshold {fmt(raw_thr)} on their scale; the video score and "
                "the track scores in the legend are calibrated."
            )
    return (
        '<section id="timeline"><h2>Frame scores over time</h2>'
        f'<div class="small">{legend}</div>{_timeline_svg(ev)}'
        f'<p class="small mut">{esc(caption)}</p></section>'
    )
