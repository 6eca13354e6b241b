"""The demo set of ``cre run --demo``: short clips of one real face, made on this machine.

The face comes from ``skimage/data/astronaut.png`` (a NASA portrait, public domain), which
ships inside the ``scikit-image`` wheel: it is read as a file, skimage is never imported.
A clip pans and zooms slowly over the photo so consecutive frames differ (a still image
would make every encoder trivially perfect); the seed sets where the pan starts, so two
seeds give two different clips. The tests and benchmarks make their media from the same
frames (``tests/synth.py``).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

__all__ = [
    "DEMO_DESCRIPTION",
    "sample_photo",
    "pan_frames",
    "add_video_stream",
    "write_clip",
    "make_demo_set",
]

DEMO_VERSION = 2
"""Part of the demo folder's name: a new version makes the clips again (2: seeded pans)."""
DEMO_DESCRIPTION = (
    "Demo set: short synthetic clips generated on this machine from scikit-image's bundled "
    "'astronaut' photo (a real, unmanipulated NASA portrait) at several sizes and H.264 qualities, "
    "plus one clip with no face. None of them is a deepfake; the scores only demonstrate the "
    "pipeline (what a result looks like), not the model's accuracy."
)

# (file name, width, height, crf, face)
_DEMO_CLIPS: tuple[tuple[str, int, int, int, bool], ...] = (
    ("astronaut_720p_crf23.mp4", 1280, 720, 23, True),
    ("astronaut_480p_crf35.mp4", 854, 480, 35, True),
    ("astronaut_360p_crf28.mp4", 640, 360, 28, True),
    ("no_face_480p_crf23.mp4", 854, 480, 23, False),
)


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


def pan_frames(
    n: int, width: int, height: int, face: bool = True, seed: int = 0
) -> Iterator[np.ndarray]:
    """Yield ``n`` RGB frames of ``width x height``: a slow pan over a face photo, or texture.

    ``seed`` sets where the pan starts (each seed another picture; 0 starts at the top of
    the cycle) and, with ``face=False``, the texture: smooth random colours, no face.
    Frames are made one at a time, so long clips need no memory for the whole video.
    """
    rng = np.random.default_rng(seed)
    if face:
        src = sample_photo("astronaut")
    else:
        small = rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)
        src = cv2.resize(small, (640, 480), interpolation=cv2.INTER_CUBIC)
    phase = 2 * np.pi * (seed * 0.618034 % 1.0)  # seed 0: the pan starts at 0
    sh, sw = src.shape[:2]
    # Fit the photo into the frame (letterboxed), then drift slightly over time.
    scale = min(width / sw, height / sh)
    for i in range(n):
        t = i / max(1, n - 1)
        z = scale * (1.0 + 0.05 * t)
        dx = (width - sw * z) / 2 + 6 * np.sin(2 * np.pi * t + phase)
        dy = (height - sh * z) / 2 + 4 * np.cos(2 * np.pi * t + phase)
        m = np.array([[z, 0, dx], [0, z, dy]], dtype=np.float64)
        yield cv2.warpAffine(
            src, m, (width, height), flags=cv2.INTER_LINEAR, borderValue=(20, 20, 20)
        )


def add_video_stream(
    out: av.container.OutputContainer,
    width: int,
    height: int,
    fps: int,
    *,
    codec: str = "libx264",
    crf: int = 23,
    preset: str = "veryfast",
    gop: int | None = None,
) -> av.video.stream.VideoStream:
    """A yuv420p video stream of ``out`` (x264/x265 at ``crf`` and ``preset``)."""
    stream = out.add_stream(codec, rate=fps)
    assert isinstance(stream, av.video.stream.VideoStream)
    stream.width, stream.height = width, height
    stream.pix_fmt = "yuv420p"
    if gop:
        stream.codec_context.gop_size = gop
    if codec in ("libx264", "libx265"):
        stream.options = {"crf": str(crf), "preset": preset}
    return stream


def write_clip(
    path: str | Path, frames: Iterable[np.ndarray], fps: int, **stream_args: object
) -> Path:
    """Encode RGB frames at a constant ``fps`` into ``path`` (see :func:`add_video_stream`)."""
    path = Path(path)
    tick = Fraction(1, fps)
    with av.open(str(path), mode="w") as out:
        stream: av.video.stream.VideoStream | None = None
        for pts, img in enumerate(frames):
            if stream is None:
                h, w = img.shape[:2]
                stream = add_video_stream(out, w, h, fps, **stream_args)  # type: ignore[arg-type]
                stream.codec_context.time_base = tick
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = pts, tick
            out.mux(stream.encode(frame))
        if stream is not None:
            out.mux(stream.encode())
    return path


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cre"


def make_demo_set(folder: Path | None = None, seconds: float = 3.0, fps: int = 15) -> list[Path]:
    """Write (or reuse) the clips of :data:`DEMO_DESCRIPTION`; returns their paths."""
    folder = folder or _cache_dir() / f"demo-v{DEMO_VERSION}"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (name, w, h, crf, face) in enumerate(_DEMO_CLIPS):
        path = folder / name
        if not path.is_file() or path.stat().st_size == 0:
            tmp = path.with_name(f".{name}.tmp{path.suffix}")
            frames = pan_frames(max(1, round(seconds * fps)), w, h, face=face, seed=i)
            write_clip(tmp, frames, fps, crf=crf)
            tmp.replace(path)
        paths.append(path)
    return paths
