"""The HTML of ``cre report``: one self-contained page per video, and an index page.

Everything a page shows comes in an :class:`Evidence` (built by :mod:`worker.report` from a
result record, the video and the model); this module only lays it out, so it needs no
video, model or torch and its output is fully determined by its input.

A page is one file: images are inlined as ``data:`` URIs, plots are inline SVG, styles are
inline, and a ``Content-Security-Policy`` meta tag forbids every fetch, so it opens from
disk, offline, and cannot call anywhere. Each page carries its key numbers as JSON in
``<script type="application/json" id="cre-report">`` (data, never executed); the index page
reads that block from every report in a folder.

Result records are read as plain dicts (``record["frames"][i]["faces"][j]``...), so fields
added later (``tracks``, ``faces[].track``, ``faces[].landmarks``) are used when present
and never break a page when absent: without ``tracks`` every face is one track, id 0.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cre_models.aggregate import STRATEGIES

__all__ = [
    "REPORT_FORMAT",
    "FaceView",
    "TrackView",
    "ShownFace",
    "InputFacts",
    "Evidence",
    "tracks_from_record",
    "counted_frames",
    "report_meta",
    "render_report",
    "read_report_meta",
    "render_index",
    "TRACK_COLOURS",
]

REPORT_FORMAT = 1
"""Version of the JSON block a page carries (``report_format`` in it)."""

TRACK_COLOURS = (
    "#2563eb",
    "#d97706",
    "#059669",
    "#7c3aed",
    "#db2777",
    "#0891b2",
    "#65a30d",
    "#b91c1c",
)
"""Colour of track ``k`` is ``TRACK_COLOURS[k % 8]``: timeline lines and frame boxes."""

_META_RE = re.compile(
    r'<script type="application/json" id="cre-report">(.*?)</script>', re.S | re.I
)


# --------------------------------------------------------------------------------------
# What a page shows


@dataclass(frozen=True)
class FaceView:
    """One face of a record: where (frame, time, box) and how it scored."""

    frame_pos: int
    """Position of its frame in ``record["frames"]``."""
    frame_index: int
    time_s: float
    box: tuple[float, float, float, float]
    score: float
    track: int | None = None
    landmarks: tuple[tuple[float, float], ...] | None = None


@dataclass
class TrackView:
    """One person: the faces a tracker linked (or every face, for records without tracks).

    ``id`` is ``None`` for faces that a tracked record left outside every track.
    """

    id: int | None
    faces: list[FaceView]
    score: float | None = None
    n_faces: int = 0
    from_record: bool = False
    """True when the record had ``tracks``; False when all faces were taken as one."""

    @property
    def label(self) -> str:
        return "faces outside any track" if self.id is None else f"person track {self.id}"

    @property
    def colour(self) -> str:
        return "#6b7280" if self.id is None else TRACK_COLOURS[self.id % len(TRACK_COLOURS)]

    def top(self, k: int) -> list[FaceView]:
        """The ``k`` highest-scoring faces, highest first (earlier frame on ties)."""
        return sorted(self.faces, key=lambda f: (-f.score, f.time_s))[:k]


@dataclass
class ShownFace:
    """A face shown with pictures: the frame it came from, its crop and its heat maps."""

    face: FaceView
    frame_image: bytes | None = None
    """JPEG of the (downscaled) source frame with the box drawn."""
    crop_image: bytes | None = None
    """JPEG of the crop the model scored."""
    heatmaps: dict[str, bytes] = field(default_factory=dict)
    """JPEG per stream (``rgb``, ``noise``): the crop under its Grad-CAM map."""
    toward_fake: bool = True
    """The maps show what pushed the score up (True) or down (False)."""
    recomputed: float | None = None
    """The model's score for the crop now (compare with ``face.score``)."""
    frame_time_s: float | None = None
    """Time of the frame that was decoded again (compare with ``face.time_s``)."""


@dataclass
class InputFacts:
    """What the report measured about the input file (``None``: not measured)."""

    width: int | None = None
    height: int | None = None
    codec: str | None = None
    profile: str | None = None
    pix_fmt: str | None = None
    container: str | None = None
    duration_s: float | None = None
    fps: float | None = None
    rotation: int | None = None
    size_bytes: int | None = None
    bit_rate: float | None = None
    packets: int | None = None
    keyframes: int | None = None
    bpp: float | None = None
    key_bpp: float | None = None
    inter_bpp: float | None = None
    qp_mean: float | None = None
    qp_key: float | None = None
    qp_inter: float | None = None
    qp_blocks: float | None = None
    qp_scale: int | None = None
    qp_frames: int | None = None
    blockiness: float | None = None
    blockiness_frames: int = 0
    level: str = "unknown"


@dataclass
class Evidence:
    """Everything one report page shows."""

    record: dict[str, Any]
    tracks: list[TrackView]
    shown: dict[int | None, list[ShownFace]] = field(default_factory=dict)
    """Per track id, its shown faces (highest score first)."""
    input: InputFacts | None = None
    thumbnails: list[tuple[float, bytes]] = field(default_factory=list)
    """``(time_s, JPEG)`` of a few sampled frames, for a record without faces."""
    calibration: str | None = None
    heatmap_model: str | None = None
    """``name vX`` of the model that made the heat maps, when it made any."""
    input_size: int | None = None
    crop_margin: float | None = None
    topk_fraction: float = 0.25
    notes: list[str] = field(default_factory=list)
    """Things the report itself has to say (video unavailable, a score that differs...)."""
    generated_at: str = ""
    build_s: float | None = None
    hidden_tracks: int = 0
    """Tracks left out of the pictures (over ``--max-tracks``); all are on the timeline."""


# --------------------------------------------------------------------------------------
# Records as plain dicts


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _landmarks(value: Any) -> tuple[tuple[float, float], ...] | None:
    if not isinstance(value, list) or not value:
        return None
    points = []
    for p in value:
        if isinstance(p, list | tuple) and len(p) >= 2 and all(_num(c) is not None for c in p[:2]):
            points.append((float(p[0]), float(p[1])))
    return tuple(points) or None


def _faces(record: Mapping[str, Any]) -> list[FaceView]:
    faces = []
    for pos, frame in enumerate(record.get("frames") or []):
        if not isinstance(frame, Mapping):
            continue
        t = _num(frame.get("time_s")) or 0.0
        idx = frame.get("index")
        idx = idx if isinstance(idx, int) else pos
        for face in frame.get("faces") or []:
            if not isinstance(face, Mapping):
                continue
            box = face.get("box")
            score = _num(face.get("score"))
            if not isinstance(box, list) or len(box) != 4 or score is None:
                continue
            coords = [_num(v) for v in box]
            if any(c is None for c in coords):
                continue
            track = face.get("track")
            faces.append(
                FaceView(
                    frame_pos=pos,
                    frame_index=idx,
                    time_s=t,
                    box=(float(box[0]), float(box[1]), float(box[2]), float(box[3])),
                    score=score,
                    track=track if isinstance(track, int) and not isinstance(track, bool) else None,
                    landmarks=_landmarks(face.get("landmarks")),
                )
            )
    return faces


def tracks_from_record(record: Mapping[str, Any]) -> list[TrackView]:
    """The person tracks of a record, highest score first.

    With ``record["tracks"]`` (``[{id, frames, score, n_faces}]``) each face goes to the
    track its ``track`` field names, and faces with no (or an unknown) track are gathered
    in a last track with id ``None``. Without ``tracks``, every face is track 0, scored
    like the video (the record's ``score``). A record without faces has no track.
    """
    faces = _faces(record)
    raw_tracks = record.get("tracks")
    if not isinstance(raw_tracks, list) or not raw_tracks:
        if not faces:
            return []
        score = _num(record.get("score"))
        if score is None:
            score = max(f.score for f in faces)
        return [TrackView(id=0, faces=faces, score=score, n_faces=len(faces))]
    tracks: dict[int, TrackView] = {}
    for t in raw_tracks:
        if not isinstance(t, Mapping) or not isinstance(t.get("id"), int):
            continue
        n = t.get("n_faces")
        tracks[t["id"]] = TrackView(
            id=t["id"],
            faces=[],
            score=_num(t.get("score")),
            n_faces=n if isinstance(n, int) else 0,
            from_record=True,
        )
    loose: list[FaceView] = []
    for f in faces:
        if f.track is not None and f.track in tracks:
            tracks[f.track].faces.append(f)
        else:
            loose.append(f)
    out = list(tracks.values())
    for tr in out:
        tr.n_faces = tr.n_faces or len(tr.faces)
        if tr.score is None and tr.faces:
            tr.score = max(f.score for f in tr.faces)
    out.sort(key=lambda tr: (-(tr.score if tr.score is not None else -1.0), tr.id or 0))
    if loose:
        out.append(
            TrackView(
                id=None,
                faces=loose,
                score=max(f.score for f in loose),
                n_faces=len(loose),
                from_record=True,
            )
        )
    return out


def counted_frames(record: Mapping[str, Any], topk_fraction: float = 0.25) -> set[int]:
    """Positions (in ``record["frames"]``) of the frames that make up the video score.

    ``max``: the highest frame; ``topk_mean``: the ``ceil(fraction * n)`` highest;
    ``mean`` and ``confident`` (when it falls back to the mean): all frames with a score.
    """
    scored = [
        (pos, s)
        for pos, f in enumerate(record.get("frames") or [])
        if isinstance(f, Mapping) and (s := _num(f.get("score"))) is not None
    ]
    if not scored:
        return set()
    agg = record.get("aggregation")
    ranked = sorted(scored, key=lambda p: -p[1])
    if agg == "max":
        return {ranked[0][0]}
    if agg == "topk_mean":
        k = max(1, math.ceil(topk_fraction * len(scored) - 1e-9))
        return {p for p, _ in ranked[:k]}
    if agg == "confident":
        video = _num(record.get("score"))
        for subset in ([p for p in scored if p[1] > 0.8], [p for p in scored if p[1] < 0.2]):
            if subset and video is not None:
                if abs(sum(s for _, s in subset) / len(subset) - video) < 1e-9:
                    return {p for p, _ in subset}
    return {p for p, _ in scored}


# --------------------------------------------------------------------------------------
# Small formatting helpers


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _f(value: Any, digits: int = 3, none: str = "–") -> str:
    v = _num(value)
    return none if v is None else f"{v:.{digits}f}"


def _img(data: bytes | None, alt: str, cls: str = "", mime: str = "image/jpeg") -> str:
    if not data:
        return f'<div class="noimg {cls}">{_e(alt)}: not available</div>'
    b64 = base64.b64encode(data).decode("ascii")
    return f'<img class="{cls}" alt="{_e(alt)}" src="data:{mime};base64,{b64}">'


def _size(nbytes: Any) -> str:
    v = _num(nbytes)
    if v is None:
        return "–"
    for unit in ("B", "KB", "MB", "GB"):
        if v < 1024 or unit == "GB":
            return f"{v:.0f} {unit}" if unit == "B" else f"{v:.1f} {unit}"
        v /= 1024
    return "–"


def _rate(bits_per_s: float | None) -> str:
    if bits_per_s is None:
        return "–"
    if bits_per_s >= 1e6:
        return f"{bits_per_s / 1e6:.2f} Mbit/s"
    return f"{bits_per_s / 1e3:.0f} kbit/s"


def _json_for_script(obj: Any) -> str:
    """JSON safe inside a ``<script>`` element (no ``</script>`` or ``<!--`` can form)."""
    text = json.dumps(obj, ensure_ascii=True, sort_keys=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _name(record: Mapping[str, Any]) -> str:
    source = str(record.get("source") or record.get("video_id") or "video")
    tail = re.split(r"[/\\]", source.split("?", 1)[0].rstrip("/\\"))[-1]
    return tail or source


# --------------------------------------------------------------------------------------
# Sections


_CSS = """
:root{--fg:#111827;--mut:#6b7280;--bd:#e5e7eb;--bg:#f9fafb;--fake:#b91c1c;--real:#15803d;
--nof:#6b7280;--fail:#374151}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
color:var(--fg);margin:0;background:#fff}
main{max-width:1100px;margin:0 auto;padding:20px 24px 40px}
h1{font-size:20px;margin:0 0 4px;word-break:break-all}
h2{font-size:16px;margin:28px 0 10px;padding-bottom:4px;border-bottom:1px solid var(--bd)}
h3{font-size:14px;margin:18px 0 8px}
.mut{color:var(--mut)}
.small{font-size:12px}
code,pre{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12px}
.verdict{display:flex;gap:24px;align-items:stretch;flex-wrap:wrap;margin-top:14px}
.scorebox{min-width:210px;padding:14px 18px;border-radius:10px;color:#fff}
.scorebox .big{font-size:40px;font-weight:700;line-height:1.1}
.scorebox .lab{font-size:18px;font-weight:700;letter-spacing:.06em;text-transform:uppercase}
.s-fake{background:var(--fake)}.s-real{background:var(--real)}
.s-no_face{background:var(--nof)}.s-failed{background:var(--fail)}
.facts{flex:1;min-width:300px}
table.kv{border-collapse:collapse}
table.kv td{padding:2px 14px 2px 0;vertical-align:top}
table.kv td:first-child{color:var(--mut);white-space:nowrap}
.why{background:var(--bg);border:1px solid var(--bd);border-radius:8px;padding:10px 14px;
margin-top:14px}
.warn{background:#fffbeb;border:1px solid #fcd34d;border-radius:8px;padding:8px 14px;
margin-top:10px}
.err{background:#fef2f2;border:1px solid #fca5a5;border-radius:8px;padding:8px 14px;
margin-top:10px}
.note{background:#eff6ff;border:1px solid #bfdbfe;border-radius:8px;padding:8px 14px;
margin-top:10px}
ul.tight{margin:4px 0;padding-left:20px}
svg text{font-family:inherit}
.track{border:1px solid var(--bd);border-radius:10px;padding:10px 14px;margin:14px 0}
.track h3{margin-top:4px;display:flex;align-items:center;gap:8px}
.sw{display:inline-block;width:12px;height:12px;border-radius:3px}
.cards{display:flex;flex-wrap:wrap;gap:14px}
.card{border:1px solid var(--bd);border-radius:8px;padding:8px;background:var(--bg);
width:330px}
.card .frame{width:312px;height:auto;display:block;border-radius:4px}
.crops{display:flex;gap:4px;margin-top:6px}
.crops figure{margin:0;text-align:center;font-size:11px;color:var(--mut)}
.crops img{width:100px;height:100px;display:block;border-radius:3px;image-rendering:auto}
.noimg{font-size:11px;color:var(--mut);border:1px dashed var(--bd);padding:6px;
min-height:40px}
.thumbs{display:flex;gap:8px;flex-wrap:wrap}
.thumbs figure{margin:0;font-size:11px;color:var(--mut);text-align:center}
.thumbs img{width:250px;height:auto;display:block;border-radius:4px}
details pre{white-space:pre-wrap;word-break:break-all;background:var(--bg);padding:10px;
border-radius:6px;max-height:420px;overflow:auto}
footer{margin-top:30px;color:var(--mut);font-size:12px}
"""


def _verdict_class(record: Mapping[str, Any]) -> tuple[str, str]:
    status = record.get("status")
    if status == "done":
        label = record.get("label") or "?"
        return f"s-{label}", str(label)
    if status == "no_face":
        return "s-no_face", "no face"
    return "s-failed", "failed"


def _aggregation_text(record: Mapping[str, Any], topk_fraction: float) -> str:
    agg = record.get("aggregation")
    n = record.get("frames_with_faces") or 0
    if not n:
        return f"{agg} (no frame scores)" if isinstance(agg, str) else "–"
    if agg == "topk_mean":
        k = max(1, math.ceil(topk_fraction * n - 1e-9)) if n else 0
        return f"topk_mean: the mean of the {k} highest of {n} frame scores"
    if agg == "mean":
        return f"mean of {n} frame scores"
    if agg == "max":
        return f"the highest of {n} frame scores"
    if isinstance(agg, str):
        return f"{agg}: {STRATEGIES.get(agg, 'see the checkpoint')} ({n} frame scores)"
    return "–"


def _why(ev: Evidence) -> str:
    r = ev.record
    status = r.get("status")
    sampled = r.get("frames_sampled") or 0
    if status == "failed":
        err = r.get("error") or {}
        return (
            f"<p>No score: the video could not be scored "
            f"(<code>{_e(err.get('code'))}</code>: {_e(err.get('message'))}).</p>"
        )
    if status == "no_face":
        return (
            f"<p>No score: no face was found in any of the {sampled} sampled frames, and "
            "<code>cre</code> scores faces only. The frames below show what was sampled.</p>"
        )
    score, thr = _num(r.get("score")), _num(r.get("threshold"))
    side = "at or above" if (score is not None and thr is not None and score >= thr) else "below"
    scored = [
        (pos, f) for pos, f in enumerate(r.get("frames") or []) if _num(f.get("score")) is not None
    ]
    parts = [
        f"<p>Score <b>{_f(score)}</b> is {side} the threshold <b>{_f(thr)}</b>: "
        f"labelled <b>{_e(r.get('label'))}</b>. It is the "
        f"{_e(_aggregation_text(r, ev.topk_fraction))} (each frame scores the maximum over its "
        f"faces); {r.get('frames_with_faces', 0)} of {sampled} sampled frames had a face."
    ]
    if scored:
        pos, best = max(scored, key=lambda p: p[1]["score"])
        owner = ""
        for tr in ev.tracks:
            if any(f.frame_pos == pos and f.score == best["score"] for f in tr.faces):
                owner = f" ({tr.label})"
                break
        vals = [float(f["score"]) for _, f in scored]
        over = sum(v >= (thr if thr is not None else 0.5) for v in vals)
        parts.append(
            f" The highest frame score is {_f(best['score'])} at "
            f"{_f(best.get('time_s'), 2)} s{_e(owner)}; the lowest {_f(min(vals))}; "
            f"{over} frame(s) are at or above the threshold."
        )
    n_tracks = len([t for t in ev.tracks if t.id is not None])
    if n_tracks:
        source = "from the record's tracks" if ev.tracks[0].from_record else "all faces as one"
        parts.append(f" {n_tracks} person track(s) ({source}).")
    parts.append("</p>")
    return "".join(parts)


def _verdict(ev: Evidence) -> str:
    r = ev.record
    cls, label = _verdict_class(r)
    score = _num(r.get("score"))
    big = _f(score) if score is not None else "–"
    model = r.get("model") or {}
    err = r.get("error")
    rows = [
        ("status", f"<code>{_e(r.get('status'))}</code>"),
        ("threshold", _f(r.get("threshold"))),
        ("aggregation", _e(_aggregation_text(r, ev.topk_fraction))),
        (
            "frames",
            f"{_e(r.get('frames_with_faces', 0))} with a face of "
            f"{_e(r.get('frames_sampled', 0))} sampled; {_e(r.get('faces', 0))} faces",
        ),
        (
            "model",
            f"{_e(model.get('name', '–'))} v{_e(model.get('version', '?'))}" if model else "–",
        ),
    ]
    if ev.calibration:
        rows.append(("calibration", _e(ev.calibration)))
    timings = r.get("timings") or {}
    rows += [
        ("video id", f"<code>{_e(r.get('video_id'))}</code>"),
        ("scored", f"{_e(r.get('created_at'))} by {_e(r.get('worker') or '–')}"),
        ("attempt", _e(r.get("attempt", 1))),
        ("time", f"{_f(timings.get('total'), 2)} s"),
    ]
    kv = "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in rows)
    out = [
        '<section id="verdict"><div class="verdict">',
        f'<div class="scorebox {cls}"><div class="small">score</div>'
        f'<div class="big" id="score">{big}</div><div class="lab">{_e(label)}</div></div>',
        f'<div class="facts"><table class="kv">{kv}</table></div></div>',
        f'<div class="why">{_why(ev)}</div>',
    ]
    if err:
        out.append(
            f'<div class="err"><b>Error</b> <code>{_e(err.get("code"))}</code>: '
            f"{_e(err.get('message'))}</div>"
        )
    warnings = [w for w in r.get("warnings") or [] if w]
    if warnings:
        items = "".join(f"<li>{_e(w)}</li>" for w in warnings)
        out.append(f'<div class="warn"><b>Warnings</b><ul class="tight">{items}</ul></div>')
    if ev.notes:
        items = "".join(f"<li>{_e(n)}</li>" for n in ev.notes)
        out.append(
            f'<div class="note"><b>About this report</b><ul class="tight">{items}</ul></div>'
        )
    out.append("</section>")
    return "".join(out)


def _timeline_svg(ev: Evidence) -> str:
    """Frame scores over time, one line per track, the threshold and the video score."""
    r = ev.record
    frames = [f for f in r.get("frames") or [] if isinstance(f, Mapping)]
    w, h = 1040, 250
    left, right, top, bottom = 46, 150, 12, 34
    pw, ph = w - left - right, h - top - bottom
    video = r.get("video") or {}
    times = [_num(f.get("time_s")) or 0.0 for f in frames]
    duration = _num(video.get("duration_s")) or 0.0
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
        if _num(fr.get("score")) is None:
            tx = x(times[pos])
            parts.append(
                f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{top + ph - 8}" y2="{top + ph}" '
                f'stroke="#9ca3af" stroke-width="2"><title>frame {_e(fr.get("index"))} at '
                f"{times[pos]:.2f} s: no face</title></line>"
            )
    for pos in sorted(counted):
        s = _num(frames[pos].get("score"))
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
                f"<title>{_e(tr.label)}, frame {f.frame_index} at {f.time_s:.2f} s: "
                f"{f.score:.3f}</title></circle>"
            )
    thr = _num(r.get("threshold"))
    if thr is not None:
        parts.append(
            f'<line x1="{left}" x2="{left + pw}" y1="{y(thr):.1f}" y2="{y(thr):.1f}" '
            f'stroke="#b91c1c" stroke-width="1.5" stroke-dasharray="6 4"/>'
            f'<text x="{left + pw + 6}" y="{y(thr) + 4:.1f}" font-size="11" fill="#b91c1c">'
            f"threshold {thr:.3f}</text>"
        )
    score = _num(r.get("score"))
    if score is not None:
        dy = 14 if thr is not None and abs(y(score) - y(thr)) < 14 else 0
        dy = dy if y(score) >= (y(thr) if thr is not None else 0) else -dy
        parts.append(
            f'<line x1="{left}" x2="{left + pw}" y1="{y(score):.1f}" y2="{y(score):.1f}" '
            f'stroke="#111827" stroke-width="1" stroke-dasharray="2 3"/>'
            f'<text x="{left + pw + 6}" y="{y(score) + 4 + dy:.1f}" font-size="11" '
            f'fill="#111827">video score {score:.3f}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _nice_step(span: float) -> float:
    raw = span / 8
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    for m in (1, 2, 5, 10):
        if raw <= m * mag:
            return float(m * mag)
    return float(10 * mag)


def _timeline(ev: Evidence) -> str:
    frames = ev.record.get("frames") or []
    if not frames:
        return ""
    legend = "".join(
        f'<span style="margin-right:14px"><span class="sw" style="background:{tr.colour}">'
        f"</span> {_e(tr.label)} ({_f(tr.score)})</span>"
        for tr in ev.tracks
    )
    caption = (
        "One dot per face and frame (a person track's line joins its faces); larger dots are "
        "pictured below; rings mark the frames that make up the video score; grey ticks at "
        "the bottom are sampled frames without a face. Hover a dot for its numbers."
        if ev.tracks
        else "Each grey tick is a sampled frame: none had a face."
    )
    return (
        '<section id="timeline"><h2>Frame scores over time</h2>'
        f'<div class="small">{legend}</div>{_timeline_svg(ev)}'
        f'<p class="small mut">{_e(caption)}</p></section>'
    )


def _face_card(ev: Evidence, tr: TrackView, sf: ShownFace) -> str:
    f = sf.face
    direction = "toward fake" if sf.toward_fake else "toward real"
    figs = [f"<figure>{_img(sf.crop_image, 'face crop')}crop</figure>"]
    for stream, title in (("rgb", "RGB stream"), ("noise", "noise stream")):
        if stream in sf.heatmaps:
            figs.append(f"<figure>{_img(sf.heatmaps[stream], title)}{title}</figure>")
    x0, y0, x1, y1 = f.box
    extra = ""
    if sf.recomputed is not None and abs(sf.recomputed - f.score) > 0.01:
        extra = f'<br><span class="mut">the model now gives {sf.recomputed:.3f}</span>'
    heat_note = (
        f'<div class="small mut">heat: what pushed this face {direction}</div>'
        if sf.heatmaps
        else ""
    )
    return (
        '<div class="card">'
        f"{_img(sf.frame_image, f'frame {f.frame_index}', 'frame')}"
        f'<div class="crops">{"".join(figs)}</div>{heat_note}'
        f'<div class="small"><b>{f.score:.3f}</b> · frame {f.frame_index} at '
        f"{f.time_s:.2f} s · box {x1 - x0:.0f}×{y1 - y0:.0f} px{extra}</div></div>"
    )


def _tracks(ev: Evidence) -> str:
    if not ev.tracks:
        return ""
    out = ['<section id="tracks"><h2>People: the highest-scoring faces of each track</h2>']
    if ev.heatmap_model:
        out.append(
            '<p class="small mut">Heat maps: Grad-CAM on the last convolution of each stream '
            f"of {_e(ev.heatmap_model)}, computed for this report. The RGB stream sees "
            "content and colour (blending seams, mismatched skin); the noise stream sees "
            "high-frequency residue (resampling and compression traces). A face at or above "
            "the threshold shows what pushed its score up; a face below it, what pushed its "
            "score down.</p>"
        )
    for tr in ev.tracks:
        shown = ev.shown.get(tr.id, [])
        sizes = sorted(max(f.box[2] - f.box[0], f.box[3] - f.box[1]) for f in tr.faces)
        median = sizes[len(sizes) // 2] if sizes else 0
        frames = {f.frame_pos for f in tr.faces}
        t0 = min((f.time_s for f in tr.faces), default=0.0)
        t1 = max((f.time_s for f in tr.faces), default=0.0)
        size_note = ""
        if ev.input_size and median:
            crop_side = median * (1 + (ev.crop_margin or 0.0))
            how = "downscaled" if crop_side >= ev.input_size else "upscaled"
            size_note = (
                f" · median face {median:.0f} px, crop {how} to {ev.input_size} px for the model"
            )
        out.append(
            f'<div class="track"><h3><span class="sw" style="background:{tr.colour}"></span>'
            f"{_e(tr.label)} · score {_f(tr.score)}</h3>"
            f'<div class="small mut">{tr.n_faces or len(tr.faces)} faces in {len(frames)} '
            f"frames, {t0:.2f}–{t1:.2f} s{size_note}</div>"
        )
        if shown:
            out.append(
                f'<div class="cards">{"".join(_face_card(ev, tr, sf) for sf in shown)}</div>'
            )
        else:
            top = ", ".join(f"{f.score:.3f} at {f.time_s:.2f} s" for f in tr.top(3))
            out.append(f'<p class="small">Highest faces: {_e(top)} (pictures not available).</p>')
        out.append("</div>")
    if ev.hidden_tracks:
        out.append(
            f'<p class="small mut">{ev.hidden_tracks} more track(s) are on the timeline but '
            "not pictured (see <code>--max-tracks</code>).</p>"
        )
    out.append("</section>")
    return "".join(out)


def _thumbnails(ev: Evidence) -> str:
    if not ev.thumbnails:
        return ""
    figs = "".join(
        f"<figure>{_img(jpeg, f'frame at {t:.2f} s')}{t:.2f} s</figure>"
        for t, jpeg in ev.thumbnails
    )
    return f'<section id="frames"><h2>Sampled frames</h2><div class="thumbs">{figs}</div></section>'


def _input(ev: Evidence) -> str:
    r = ev.record
    video = r.get("video") or {}
    i = ev.input or InputFacts()
    width = i.width or video.get("width")
    height = i.height or video.get("height")
    fps = i.fps or _num(video.get("fps"))
    duration = i.duration_s or _num(video.get("duration_s"))
    rows = [
        ("resolution", f"{width}×{height}" if width and height else "–"),
        (
            "codec",
            " · ".join(
                _e(v)
                for v in (i.codec or video.get("codec"), i.profile, i.pix_fmt, i.container)
                if v
            )
            or "–",
        ),
        (
            "duration",
            (f"{duration:.2f} s" if duration is not None else "–")
            + (f" at {fps:.2f} fps" if fps else ""),
        ),
        ("file size", _size(i.size_bytes or video.get("size_bytes"))),
        ("video bit rate", _rate(i.bit_rate)),
        (
            "frames sampled",
            f"{_e(r.get('frames_sampled', 0))}" + (f" of {i.packets}" if i.packets else ""),
        ),
    ]
    if video.get("rotation") or i.rotation:
        rows.append(("rotation", f"{_e(i.rotation or video.get('rotation'))}°"))
    comp = []
    if i.bpp is not None:
        detail = ", ".join(
            s
            for s in (
                f"keyframes {i.key_bpp:.3f}" if i.key_bpp is not None else "",
                f"others {i.inter_bpp:.3f}" if i.inter_bpp is not None else "",
            )
            if s
        )
        comp.append(
            ("bits per pixel per frame", f"{i.bpp:.4f}" + (f" ({detail})" if detail else ""))
        )
    if i.qp_mean is not None:
        detail = ", ".join(
            s
            for s in (
                f"I-frames {i.qp_key:.1f}" if i.qp_key is not None else "",
                f"others {i.qp_inter:.1f}" if i.qp_inter is not None else "",
                f"macroblock mean {i.qp_blocks:.1f}" if i.qp_blocks is not None else "",
            )
            if s
        )
        comp.append(
            (
                "quantiser (QP)",
                f"{i.qp_mean:.1f} of {i.qp_scale} over {i.qp_frames} frames"
                + (f" ({detail})" if detail else ""),
            )
        )
    if i.blockiness is not None:
        comp.append(
            (
                "blockiness",
                f"{i.blockiness:.2f} over {i.blockiness_frames} frame(s) "
                "(1.00: no 8×8 grid; above ~1.3: visible blocks)",
            )
        )
    rows_html = "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in rows)
    comp_html = "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in comp)
    basis = (
        f" (from the frame quantiser, {i.qp_mean:.1f})"
        if i.qp_mean is not None
        else f" (from bits per pixel, {i.bpp:.4f})"
        if i.bpp is not None
        else ""
    )
    level = (
        f'<p>Compression: <b id="compression">{_e(i.level)}</b>{_e(basis)}</p>'
        if ev.input is not None
        else ""
    )
    explain = (
        '<p class="small mut">QP is the quantiser the encoder chose for each frame (H.264: '
        "0–51, +6 halves the precision; ~23–27 is x264's default quality, 35+ turns faces "
        "into blocks); adaptive quantisation then moves it per macroblock. Bits per pixel "
        "also depend on content (a still scene needs few bits "
        "at any quality). Blockiness compares luma steps across the 8-pixel grid with steps "
        "inside it; a deblocking filter or rescaling hides the grid, so a low value does not "
        "prove light compression.</p>"
        if comp
        else ""
    )
    return (
        '<section id="input"><h2>The input</h2>'
        f'<table class="kv">{rows_html}{comp_html}</table>{level}{explain}</section>'
    )


def report_meta(ev: Evidence) -> dict[str, Any]:
    """The numbers the index page lists, as stored in a page's JSON block."""
    r = ev.record
    err = r.get("error") or {}
    model = r.get("model") or {}
    return {
        "report_format": REPORT_FORMAT,
        "video_id": r.get("video_id"),
        "source": r.get("source"),
        "name": _name(r),
        "status": r.get("status"),
        "score": _num(r.get("score")),
        "label": r.get("label"),
        "threshold": _num(r.get("threshold")),
        "frames_sampled": r.get("frames_sampled"),
        "frames_with_faces": r.get("frames_with_faces"),
        "faces": r.get("faces"),
        "tracks": len([t for t in ev.tracks if t.id is not None]),
        "model": f"{model.get('name')} v{model.get('version')}" if model else None,
        "created_at": r.get("created_at"),
        "error_code": err.get("code"),
        "warnings": len(r.get("warnings") or []),
        "compression": ev.input.level if ev.input is not None else None,
        "generated_at": ev.generated_at,
    }


def render_report(ev: Evidence) -> str:
    """The complete HTML page of one video (see the module docstring)."""
    r = ev.record
    name = _name(r)
    score = _num(r.get("score"))
    title_score = f"{score:.3f} {r.get('label')}" if score is not None else str(r.get("status"))
    record_json = json.dumps(r, indent=1, ensure_ascii=False, default=str)
    build = f" in {ev.build_s:.2f} s" if ev.build_s is not None else ""
    return "".join(
        [
            '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
            "img-src data:; style-src 'unsafe-inline'\">",
            f"<title>cre report: {_e(name)} ({_e(title_score)})</title>",
            f"<style>{_CSS}</style></head><body><main>",
            f'<h1>{_e(name)}</h1><div class="small mut" style="word-break:break-all">'
            f"{_e(r.get('source'))}</div>",
            _verdict(ev),
            _timeline(ev),
            _tracks(ev),
            _thumbnails(ev),
            _input(ev),
            '<section id="record"><h2>The result record</h2><details><summary>JSON as '
            f"stored ({len(record_json)} characters)</summary><pre>{_e(record_json)}</pre>"
            "</details></section>",
            f"<footer>Made by <code>cre report</code> at {_e(ev.generated_at)}{build}. "
            "One self-contained file: no network, no external resources.</footer>",
            '<script type="application/json" id="cre-report">',
            _json_for_script(report_meta(ev)),
            "</script></main></body></html>\n",
        ]
    )


# --------------------------------------------------------------------------------------
# The index page


def read_report_meta(text: str) -> dict[str, Any] | None:
    """The JSON block of a report page, or ``None`` when ``text`` is not a report."""
    m = _META_RE.search(text)
    if m is None:
        return None
    try:
        meta = json.loads(m.group(1))
    except json.JSONDecodeError:
        return None
    return meta if isinstance(meta, dict) and "report_format" in meta else None


_INDEX_JS = """
(function(){
var table=document.getElementById('reports'),body=table.tBodies[0];
var rows=Array.prototype.slice.call(body.rows);
var fl=document.getElementById('f-label'),fs=document.getElementById('f-status');
var count=document.getElementById('count');
function filter(){var n=0;rows.forEach(function(r){
var ok=(!fl.value||r.dataset.label===fl.value)&&(!fs.value||r.dataset.status===fs.value);
r.hidden=!ok;if(ok)n++;});count.textContent=n+' of '+rows.length;}
var dir={};
Array.prototype.forEach.call(table.tHead.rows[0].cells,function(th){
if(!th.dataset.key)return;th.addEventListener('click',function(){
var k=th.dataset.key,num=th.dataset.num==='1',d=dir[k]=-(dir[k]||(num?1:-1));
rows.sort(function(a,b){var x=a.dataset[k],y=b.dataset[k];
if(num){x=x===''?-1:parseFloat(x);y=y===''?-1:parseFloat(y);return d*(x-y);}
return d*String(x).localeCompare(String(y));});
rows.forEach(function(r){body.appendChild(r);});
Array.prototype.forEach.call(table.tHead.rows[0].cells,function(c){
c.classList.remove('asc','desc');});th.classList.add(d>0?'asc':'desc');});});
fl.addEventListener('change',filter);fs.addEventListener('change',filter);filter();
})();
"""

_INDEX_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
color:#111827;margin:0}
main{max-width:1200px;margin:0 auto;padding:20px 24px}
h1{font-size:20px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:5px 10px;border-bottom:1px solid #e5e7eb;vertical-align:top}
th[data-key]{cursor:pointer;user-select:none;white-space:nowrap}
th.asc::after{content:" ▲"}th.desc::after{content:" ▼"}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.pill{padding:1px 8px;border-radius:9px;color:#fff;font-size:12px;white-space:nowrap}
.fake{background:#b91c1c}.real{background:#15803d}.no_face{background:#6b7280}
.failed{background:#374151}
.bar{margin:10px 0 14px}
.bar label{margin-right:16px}
.mut{color:#6b7280;font-size:12px}
"""


def _options(values: Sequence[str], all_label: str) -> str:
    opts = [f'<option value="">{_e(all_label)}</option>']
    opts += [f'<option value="{_e(v)}">{_e(v)}</option>' for v in values]
    return "".join(opts)


def render_index(entries: Sequence[tuple[str, Mapping[str, Any]]], title: str = "") -> str:
    """The index page: one row per ``(relative file name, report meta)``.

    Sortable by clicking a column (score sorts numerically), filterable by label and
    status; a few lines of inline JavaScript, nothing loaded from anywhere.
    """
    rows = []
    labels: set[str] = set()
    statuses: set[str] = set()
    for href, m in entries:
        status = str(m.get("status") or "")
        label = str(m.get("label") or ("no face" if status == "no_face" else status))
        labels.add(label)
        statuses.add(status)
        score = _num(m.get("score"))
        pill = {"fake": "fake", "real": "real", "no face": "no_face"}.get(label, "failed")
        frames = f"{m.get('frames_with_faces') or 0}/{m.get('frames_sampled') or 0}"
        rows.append(
            f'<tr data-name="{_e(m.get("name"))}" data-score="{"" if score is None else score}" '
            f'data-label="{_e(label)}" data-status="{_e(status)}" '
            f'data-created="{_e(m.get("created_at"))}">'
            f'<td><a href="{_e(href)}">{_e(m.get("name"))}</a>'
            f'<div class="mut">{_e(m.get("source"))}</div></td>'
            f'<td class="num">{_f(score)}</td>'
            f'<td><span class="pill {pill}">{_e(label)}</span></td>'
            f"<td>{_e(status)}{' · ' + _e(m.get('error_code')) if m.get('error_code') else ''}"
            f"</td>"
            f'<td class="num">{_e(frames)}</td><td class="num">{_e(m.get("tracks", 0))}</td>'
            f"<td>{_e(m.get('compression') or '–')}</td><td>{_e(m.get('model') or '–')}</td>"
            f'<td class="mut">{_e(str(m.get("created_at") or "")[:16].replace("T", " "))}</td>'
            "</tr>"
        )
    head = (
        '<tr><th data-key="name">video</th><th data-key="score" data-num="1">score</th>'
        '<th data-key="label">label</th><th data-key="status">status</th>'
        "<th>faces/frames</th><th>tracks</th><th>compression</th><th>model</th>"
        '<th data-key="created">scored</th></tr>'
    )
    return "".join(
        [
            '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
            "img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'\">",
            f"<title>cre reports{': ' + _e(title) if title else ''}</title>",
            f"<style>{_INDEX_CSS}</style></head><body><main>",
            f"<h1>cre reports{': ' + _e(title) if title else ''}</h1>",
            '<div class="bar"><label>label <select id="f-label">',
            _options(sorted(labels), "all"),
            '</select></label><label>status <select id="f-status">',
            _options(sorted(statuses), "all"),
            '</select></label><span class="mut" id="count"></span></div>',
            f'<table id="reports"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>',
            '<p class="mut">Click a column heading to sort. Each report is a self-contained '
            "file in this folder.</p>",
            f"<script>{_INDEX_JS}</script></main></body></html>\n",
        ]
    )
