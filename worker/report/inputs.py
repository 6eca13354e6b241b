"""The input section of a ``cre report`` page: the file, its codec and how compressed it is."""

from __future__ import annotations

from typing import Any

from worker.report.evidence import Evidence, InputFacts, num
from worker.report.markup import esc

__all__ = ["input_section"]


def _size(nbytes: Any) -> str:
    v = num(nbytes)
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


def input_section(ev: Evidence) -> str:
    r = ev.record
    video = r.get("video") or {}
    i = ev.input or InputFacts()
    width = i.width or video.get("width")
    height = i.height or video.get("height")
    fps = i.fps or num(video.get("fps"))
    duration = i.duration_s or num(video.get("duration_s"))
    rows = [
        ("resolution", f"{width}×{height}" if width and height else "–"),
        (
            "codec",
            " · ".join(
                esc(v)
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
            f"{esc(r.get('frames_sampled', 0))}" + (f" of {i.packets}" if i.packets else ""),
        ),
    ]
    if video.get("rotation") or i.rotation:
        rows.append(("rotation", f"{esc(i.rotation or video.get('rotation'))}°"))
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
        f'<p>Compression: <b id="compression">{esc(i.level)}</b>{esc(basis)}</p>'
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
