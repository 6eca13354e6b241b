"""The HTML page of one video: one self-contained file.

Images are inlined as ``data:`` URIs, plots are inline SVG, styles are inline, and a
``Content-Security-Policy`` meta tag forbids every fetch, so a page opens from disk,
offline, and cannot call anywhere. Each page carries its key numbers as JSON in
``<script type="application/json" id="cre-report">`` (data, never executed); the index page
(:mod:`worker.report.index`) reads that block from every report in a folder. The page needs
no video, model or torch: its output is fully determined by its :class:`Evidence`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from cre_models.aggregate import STRATEGIES
from worker.report.evidence import Evidence, ShownFace, TrackView, num
from worker.report.inputs import input_section
from worker.report.markup import esc, fmt, img, json_for_script
from worker.report.timeline import timeline_section

__all__ = ["REPORT_FORMAT", "report_meta", "render_report", "read_report_meta"]


REPORT_FORMAT = 1
"""Version of the JSON block a page carries (``report_format`` in it)."""


_META_RE = re.compile(
    r'<script type="application/json" id="cre-report">(.*?)</script>', re.S | re.I
)


def display_name(record: Mapping[str, Any]) -> str:
    source = str(record.get("source") or record.get("video_id") or "video")
    tail = re.split(r"[/\\]", source.split("?", 1)[0].rstrip("/\\"))[-1]
    return tail or source


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


def _threshold_text(record: Mapping[str, Any], ev: Evidence) -> str:
    """The threshold, and where it lies on the frame scores' scale when they differ."""
    thr = num(record.get("threshold"))
    if not ev.threshold_moves:
        return fmt(thr)
    return f"{fmt(thr)} (frame scores, before calibration: {fmt(ev.frame_threshold)})"


def _why(ev: Evidence) -> str:
    r = ev.record
    status = r.get("status")
    sampled = r.get("frames_sampled") or 0
    if status == "failed":
        err = r.get("error") or {}
        return (
            f"<p>No score: the video could not be scored "
            f"(<code>{esc(err.get('code'))}</code>: {esc(err.get('message'))}).</p>"
        )
    if status == "no_face":
        return (
            f"<p>No score: no face was found in any of the {sampled} sampled frames, and "
            "<code>cre</code> scores faces only. The frames below show what was sampled.</p>"
        )
    score, thr = num(r.get("score")), num(r.get("threshold"))
    side = "at or above" if (score is not None and thr is not None and score >= thr) else "below"
    scored = [
        (pos, f) for pos, f in enumerate(r.get("frames") or []) if num(f.get("score")) is not None
    ]
    ft, calibrated = ev.frame_threshold, ev.threshold_moves
    parts = [
        f"<p>Score <b>{fmt(score)}</b> is {side} the threshold <b>{fmt(thr)}</b>: "
        f"labelled <b>{esc(r.get('label'))}</b>. It is the "
        f"{esc(_aggregation_text(r, ev.topk_fraction))}"
        f"{', calibrated by the checkpoint' if calibrated else ''} (each frame scores the "
        f"maximum over its faces); {r.get('frames_with_faces', 0)} of {sampled} sampled frames "
        "had a face."
    ]
    if scored:
        pos, best = max(scored, key=lambda p: p[1]["score"])
        owner = ""
        for tr in ev.tracks:
            if any(f.frame_pos == pos and f.score == best["score"] for f in tr.faces):
                owner = f" ({tr.label})"
                break
        vals = [float(f["score"]) for _, f in scored]
        if ft is None:
            count = (
                " Frame scores are the model's, before any calibration; the threshold cannot "
                "be placed on their scale (no checkpoint config.json at hand, or a calibration "
                "that cannot be inverted)."
            )
        else:
            over = sum(v >= ft for v in vals)
            scale = (
                f" (frame scores are the model's, before calibration: on their scale the "
                f"threshold is {fmt(ft)})"
                if calibrated
                else ""
            )
            count = f" {over} frame(s) are at or above the threshold{scale}."
        parts.append(
            f" The highest frame score is {fmt(best['score'])} at "
            f"{fmt(best.get('time_s'), 2)} s{esc(owner)}; the lowest {fmt(min(vals))}.{count}"
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
    score = num(r.get("score"))
    big = fmt(score) if score is not None else "–"
    model = r.get("model") or {}
    err = r.get("error")
    rows = [
        ("status", f"<code>{esc(r.get('status'))}</code>"),
        ("threshold", _threshold_text(r, ev)),
        ("aggregation", esc(_aggregation_text(r, ev.topk_fraction))),
        (
            "frames",
            f"{esc(r.get('frames_with_faces', 0))} with a face of "
            f"{esc(r.get('frames_sampled', 0))} sampled; {esc(r.get('faces', 0))} faces",
        ),
        (
            "model",
            f"{esc(model.get('name', '–'))} v{esc(model.get('version', '?'))}" if model else "–",
        ),
    ]
    if ev.calibration:
        rows.append(("calibration", esc(ev.calibration)))
    timings = r.get("timings") or {}
    rows += [
        ("video id", f"<code>{esc(r.get('video_id'))}</code>"),
        ("scored", f"{esc(r.get('created_at'))} by {esc(r.get('worker') or '–')}"),
        ("attempt", esc(r.get("attempt", 1))),
        ("time", f"{fmt(timings.get('total'), 2)} s"),
    ]
    kv = "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in rows)
    out = [
        '<section id="verdict"><div class="verdict">',
        f'<div class="scorebox {cls}"><div class="small">score</div>'
        f'<div class="big" id="score">{big}</div><div class="lab">{esc(label)}</div></div>',
        f'<div class="facts"><table class="kv">{kv}</table></div></div>',
        f'<div class="why">{_why(ev)}</div>',
    ]
    if err:
        out.append(
            f'<div class="err"><b>Error</b> <code>{esc(err.get("code"))}</code>: '
            f"{esc(err.get('message'))}</div>"
        )
    warnings = [w for w in r.get("warnings") or [] if w]
    if warnings:
        items = "".join(f"<li>{esc(w)}</li>" for w in warnings)
        out.append(f'<div class="warn"><b>Warnings</b><ul class="tight">{items}</ul></div>')
    if ev.notes:
        items = "".join(f"<li>{esc(n)}</li>" for n in ev.notes)
        out.append(
            f'<div class="note"><b>About this report</b><ul class="tight">{items}</ul></div>'
        )
    out.append("</section>")
    return "".join(out)


def _face_card(ev: Evidence, tr: TrackView, sf: ShownFace) -> str:
    f = sf.face
    direction = "toward fake" if sf.toward_fake else "toward real"
    figs = [f"<figure>{img(sf.crop_image, 'face crop')}crop</figure>"]
    for stream, title in (("rgb", "RGB stream"), ("noise", "noise stream")):
        if stream in sf.heatmaps:
            figs.append(f"<figure>{img(sf.heatmaps[stream], title)}{title}</figure>")
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
        f"{img(sf.frame_image, f'frame {f.frame_index}', 'frame')}"
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
            f"of {esc(ev.heatmap_model)}, computed for this report. The RGB stream sees "
            "content and colour (blending seams, mismatched skin); the noise stream sees "
            "high-frequency residue (resampling and compression traces). A face at or above "
            "the threshold (on the face scores' scale, before calibration) shows what pushed "
            "its score up; a face below it, what pushed its score down.</p>"
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
            f"{esc(tr.label)} · score {fmt(tr.score)}</h3>"
            f'<div class="small mut">{tr.n_faces or len(tr.faces)} faces in {len(frames)} '
            f"frames, {t0:.2f}–{t1:.2f} s{size_note}</div>"
        )
        if shown:
            out.append(
                f'<div class="cards">{"".join(_face_card(ev, tr, sf) for sf in shown)}</div>'
            )
        else:
            top = ", ".join(f"{f.score:.3f} at {f.time_s:.2f} s" for f in tr.top(3))
            out.append(f'<p class="small">Highest faces: {esc(top)} (pictures not available).</p>')
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
        f"<figure>{img(jpeg, f'frame at {t:.2f} s')}{t:.2f} s</figure>" for t, jpeg in ev.thumbnails
    )
    return f'<section id="frames"><h2>Sampled frames</h2><div class="thumbs">{figs}</div></section>'


def report_meta(ev: Evidence) -> dict[str, Any]:
    """The numbers the index page lists, as stored in a page's JSON block."""
    r = ev.record
    err = r.get("error") or {}
    model = r.get("model") or {}
    return {
        "report_format": REPORT_FORMAT,
        "video_id": r.get("video_id"),
        "source": r.get("source"),
        "name": display_name(r),
        "status": r.get("status"),
        "score": num(r.get("score")),
        "label": r.get("label"),
        "threshold": num(r.get("threshold")),
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
    name = display_name(r)
    score = num(r.get("score"))
    title_score = f"{score:.3f} {r.get('label')}" if score is not None else str(r.get("status"))
    record_json = json.dumps(r, indent=1, ensure_ascii=False, default=str)
    build = f" in {ev.build_s:.2f} s" if ev.build_s is not None else ""
    return "".join(
        [
            '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
            "img-src data:; style-src 'unsafe-inline'\">",
            f"<title>cre report: {esc(name)} ({esc(title_score)})</title>",
            f"<style>{_CSS}</style></head><body><main>",
            f'<h1>{esc(name)}</h1><div class="small mut" style="word-break:break-all">'
            f"{esc(r.get('source'))}</div>",
            _verdict(ev),
            timeline_section(ev),
            _tracks(ev),
            _thumbnails(ev),
            input_section(ev),
            '<section id="record"><h2>The result record</h2><details><summary>JSON as '
            f"stored ({len(record_json)} characters)</summary><pre>{esc(record_json)}</pre>"
            "</details></section>",
            f"<footer>Made by <code>cre report</code> at {esc(ev.generated_at)}{build}. "
            "One self-contained file: no network, no external resources.</footer>",
            '<script type="application/json" id="cre-report">',
            json_for_script(report_meta(ev)),
            "</script></main></body></html>\n",
        ]
    )


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
