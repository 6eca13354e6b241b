"""Synthetic test and demo videos, made with PyAV from a sample photo.

The face comes from ``skimage/data/astronaut.png`` (a NASA portrait, public domain),
which ships inside the ``scikit-image`` wheel: it is read as a file, skimage is never
imported. A clip pans and zooms slowly over the photo so consecutive frames differ
(a still image would make every encoder trivially perfect).
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

__all__ = [
    "sample_photo",
    "synth_frames",
    "iter_synth_frames",
    "write_video",
    "write_audio_only",
    "write_empty_video",
]

logger = logging.getLogger(__name__)


def sample_photo(name: str = "astronaut") -> np.ndarray:
    """An RGB uint8 sample photo bundled with scikit-image (``astronaut``, ``coffee``...)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("scikit-image is not installed: it provides the sample photos")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / f"{name}.png"
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise RuntimeError(f"cannot read sample photo {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def iter_synth_frames(
    n: int, width: int, height: int, face: bool = True, seed: int = 0
) -> Iterator[np.ndarray]:
    """Yield ``n`` RGB frames of ``width x height``: a slow pan over a face photo, or texture.

    With ``face=False`` the frames are smooth random texture with no face in them. Frames
    are made one at a time, so long clips need no memory for the whole video.
    """
    rng = np.random.default_rng(seed)
    if face:
        src = sample_photo("astronaut")
    else:
        small = rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)
        src = cv2.resize(small, (640, 480), interpolation=cv2.INTER_CUBIC)
    sh, sw = src.shape[:2]
    # Fit the photo into the frame (letterboxed), then drift slightly over time.
    scale = min(width / sw, height / sh)
    for i in range(n):
        t = i / max(1, n - 1)
        z = scale * (1.0 + 0.05 * t)
        dx = (width - sw * z) / 2 + 6 * np.sin(2 * np.pi * t)
        dy = (height - sh * z) / 2 + 4 * np.cos(2 * np.pi * t)
        m = np.array([[z, 0, dx], [0, z, dy]], dtype=np.float64)
        yield cv2.warpAffine(
            src, m, (width, height), flags=cv2.INTER_LINEAR, borderValue=(20, 20, 20)
        )


def synth_frames(
    n: int, width: int, height: int, face: bool = True, seed: int = 0
) -> list[np.ndarray]:
    """``n`` RGB frames of ``width x height`` (see :func:`iter_synth_frames`) as a list."""
    return list(iter_synth_frames(n, width, height, face=face, seed=seed))


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
    quarter_turns = (rotation // 90) % 4
    n = max(1, round(seconds * fps))
    frames: Iterator[np.ndarray] = iter_synth_frames(n, width, height, face=face, seed=seed)
    if quarter_turns:
        # Stored = displayed picture rotated clockwise by `rotation`; the display matrix undoes it.
        frames = (np.ascontiguousarray(np.rot90(f, k=-quarter_turns)) for f in frames)
    coded_w, coded_h = (height, width) if quarter_turns % 2 else (width, height)
    container_opts = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), mode="w", options=container_opts) as out:
        stream = out.add_stream(codec, rate=fps)
        assert isinstance(stream, av.video.stream.VideoStream)
        stream.width, stream.height = coded_w, coded_h
        stream.pix_fmt = "yuv420p"
        opts: dict[str, object] = (
            {"crf": str(crf), "preset": preset} if codec in ("libx264", "libx265") else {}
        )
        if gop:
            stream.codec_context.gop_size = gop
        stream.options = opts
        if quarter_turns:
            stream.set_display_rotation(quarter_turns * 90)
        tick = Fraction(1, fps * 4) if vfr else Fraction(1, fps)
        stream.codec_context.time_base = tick
        a_stream = out.add_stream("aac", rate=22050) if audio else None
        if a_stream is not None:
            a_stream.layout = "mono"
        rng = np.random.default_rng(seed)
        pts = 0
        for img in frames:
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = pts
            frame.time_base = tick
            pts += int(rng.choice([2, 4, 6, 8])) if vfr else 1
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
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
        stream = out.add_stream("libx264", rate=fps)
        assert isinstance(stream, av.video.stream.VideoStream)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        out.start_encoding()
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
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)
