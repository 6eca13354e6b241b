"""Synthetic media for the tests and benchmarks, made with PyAV from the demo's frames.

:func:`write_video` adds what tests need beyond the demo clips (:mod:`worker.demo`):
variable frame rate, a display rotation, an audio track, a GOP, another codec, the MP4
index first. :func:`write_empty_video` and :func:`write_audio_only` make the broken and
the audio-only inputs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from worker.demo import add_video_stream, pan_frames, write_clip

__all__ = ["synth_frames", "write_video", "write_audio_only", "write_empty_video"]

logger = logging.getLogger(__name__)


def synth_frames(
    n: int, width: int, height: int, face: bool = True, seed: int = 0
) -> list[np.ndarray]:
    """``n`` RGB frames of ``width x height`` (:func:`worker.demo.pan_frames`) as a list."""
    return list(pan_frames(n, width, height, face=face, seed=seed))


def write_video(
    path: str | Path,
    *,
    width: int = 320,
    height: int = 240,
    seconds: float = 2.0,
    fps: int = 15,
    face: bool = True,
    codec: str = "libx264",
    crf: int = 23,
    gop: int | None = None,
    vfr: bool = False,
    audio: bool = False,
    seed: int = 0,
    rotation: int = 0,
    faststart: bool = False,
    preset: str = "veryfast",
) -> Path:
    """Write a short synthetic H.264 (or other codec) MP4/MKV and return its path.

    Args:
        vfr: variable frame rate: frame durations vary irregularly between 0.5 and 2 frame
            periods (ticks of ``1 / (4 fps)``).
        audio: add a mono AAC sine track.
        gop: keyframe interval in frames (x264's default when None).
        seed: the pan's starting point (another seed, another picture).
        rotation: display rotation in degrees counter-clockwise (0, 90, 180, 270). The frames
            are stored rotated the other way and the stream carries a display matrix, as a
            phone does: a player that honours it shows the same upright ``width x height``
            picture as with ``rotation=0``.
        faststart: put the MP4 index (``moov``) before the media data.
        preset: x264/x265 speed preset.
    """
    path = Path(path)
    if rotation % 90:
        raise ValueError(f"rotation must be a multiple of 90, got {rotation}")
    n = max(1, round(seconds * fps))
    frames: Iterator[np.ndarray] = pan_frames(n, width, height, face=face, seed=seed)
    codec_args: dict[str, Any] = {"codec": codec, "crf": crf, "preset": preset, "gop": gop}
    if not (vfr or audio or rotation or faststart):
        return write_clip(path, frames, fps, **codec_args)
    quarter_turns = (rotation // 90) % 4
    if quarter_turns:
        # Stored = displayed picture rotated clockwise by `rotation`; the display matrix undoes it.
        frames = (np.ascontiguousarray(np.rot90(f, k=-quarter_turns)) for f in frames)
    coded_w, coded_h = (height, width) if quarter_turns % 2 else (width, height)
    container_opts = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), mode="w", options=container_opts) as out:
        stream = add_video_stream(out, coded_w, coded_h, fps, **codec_args)
        if quarter_turns:
            stream.set_display_rotation(quarter_turns * 90)
        tick = Fraction(1, fps * 4) if vfr else Fraction(1, fps)
        stream.codec_context.time_base = tick
        a_stream = out.add_stream("aac", rate=22050) if audio else None
        if a_stream is not None:
            a_stream.layout = "mono"
        steps = np.random.default_rng(seed).choice([2, 4, 6, 8], size=n) if vfr else np.ones(n)
        pts = 0
        for img, step in zip(frames, steps, strict=True):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = pts, tick
            pts += int(step)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
        if a_stream is not None:
            _mux_tone(out, a_stream, 22050, float(pts * tick))
    logger.debug("wrote %s (%dx%d, %d frames)", path, width, height, n)
    return path


def write_empty_video(
    path: str | Path, *, width: int = 64, height: int = 48, fps: int = 10
) -> Path:
    """Write a container with a video stream header but not a single frame."""
    path = Path(path)
    with av.open(str(path), mode="w") as out:
        add_video_stream(out, width, height, fps)
        out.start_encoding()
    return path


def write_video_without_timestamps(
    path: str | Path, *, width: int = 160, height: int = 120, frames: int = 20, fps: int = 10
) -> Path:
    """An H.264 MP4 whose packets all carry timestamp 0 (as some broken muxing tools write):
    a :func:`write_video` clip re-muxed with every packet's pts and dts set to 0. It plays as
    one frame, and decodes as ``frames``."""
    path = Path(path)
    source = write_video(
        path.with_name(path.stem + "_source.mp4"),
        width=width,
        height=height,
        seconds=frames / fps,
        fps=fps,
    )
    with av.open(str(source)) as inp, av.open(str(path), mode="w") as out:
        stream = inp.streams.video[0]
        copy = out.add_stream_from_template(stream)
        for packet in inp.demux(stream):
            if packet.dts is None:
                continue  # the flush packet
            packet.pts = packet.dts = 0
            packet.stream = copy
            out.mux(packet)
    source.unlink()
    return path


def write_audio_only(path: str | Path, *, seconds: float = 1.0, sample_rate: int = 22050) -> Path:
    """Write an AAC sine tone in an MP4 container (``.m4a``/``.mp4``): no video stream at all."""
    path = Path(path)
    with av.open(str(path), mode="w", format="mp4") as out:
        stream = out.add_stream("aac", rate=sample_rate)
        stream.layout = "mono"
        _mux_tone(out, stream, sample_rate, seconds)
    return path


def _mux_tone(out: Any, stream: Any, sample_rate: int, seconds: float) -> None:
    """Encode a mono 440 Hz sine of ``seconds`` into the audio ``stream`` and mux it."""
    total = int(sample_rate * seconds)
    t = np.arange(total) / sample_rate
    samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    for start in range(0, total, 1024):
        chunk = samples[start : start + 1024][None, :]
        frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
        frame.sample_rate = sample_rate
        frame.pts = start
        frame.time_base = Fraction(1, sample_rate)
        out.mux(stream.encode(frame))
    out.mux(stream.encode())
