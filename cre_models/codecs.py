"""Real video codecs: H.264 / H.265 round trips of frames with PyAV, and named profiles.

The simulator in :mod:`cre_models.augmentation` imitates compression with JPEG and
friends; this module runs the real thing. Frames go RGB -> ``yuv420p`` (libswscale,
BT.601) -> libx264 / libx265 at a given CRF and preset -> decoder -> ``yuv420p`` -> RGB,
entirely in memory (no container, no temporary files).

Contract:
    * Input frames are ``uint8`` RGB ``HxWx3`` numpy arrays, all of one size. Output
      frames are ``uint8`` RGB ``HxWx3`` arrays, by default at the input size; colour
      order is never swapped.
    * ``yuv420p`` needs even dimensions: odd sizes are padded by edge replication before
      encoding and cropped afterwards, so any size >= 1x1 round-trips.
    * ``max_side`` first downscales (area interpolation) so the longer side is at most
      ``max_side`` (what platforms do to uploads), encodes at that size and, unless
      ``restore_size=False``, scales the decoded frames back up (bilinear) to the input size.
    * Encoding is deterministic: the same frames and parameters give bit-identical output
      (x264 and x265 are deterministic regardless of threading).
    * Random choices (a CRF drawn from a profile's range) come from an explicit
      ``numpy.random.Generator``; :class:`CodecParams` records what was applied.

Profiles (:data:`PROFILES`), each H.264 unless named otherwise:

========== ================ ===================================================================
name       CRF              notes
========== ================ ===================================================================
social     28-35            longest side <= 720, preset ``medium``: a typical re-encode of an
                            upload by a social platform
social-hevc 28-35           the same with libx265
ladder-1.. 30/32/35/38/40   DeeperForensics-1.0's video-compression perturbation, levels 1-5
ladder-5                    (ffmpeg libx264 defaults, source resolution)
c23, c40   23 / 40          FaceForensics++'s "c23" and "c40" qualities
========== ================ ===================================================================

Whole files go through a profile in :mod:`cre_models.degrade` (``cre degrade``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any, ClassVar

import av
import cv2
import numpy as np

from .images import check_image

__all__ = [
    "CODECS",
    "PRESETS",
    "CodecProfile",
    "CodecParams",
    "PROFILES",
    "LADDER_CRFS",
    "get_profile",
    "encode_decode",
    "encode_decode_frame",
    "fit_max_side",
    "encoder_options",
]

CODECS: dict[str, str] = {"libx264": "h264", "libx265": "hevc"}
"""Encoders we drive, mapped to the decoder that reads their output back."""

PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
)
"""x264 / x265 speed presets, fastest first."""

CRF_RANGE = (0, 51)
"""Valid CRF values for 8-bit x264 and x265."""

LADDER_CRFS = (30, 32, 35, 38, 40)
"""DeeperForensics-1.0's video-compression CRFs for perturbation levels 1-5."""


def _check_codec_args(codec: str, crf: int, preset: str, max_side: int | None) -> None:
    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r}; expected one of {sorted(CODECS)}")
    if isinstance(crf, bool) or not isinstance(crf, int | np.integer):
        raise ValueError(f"crf must be an integer, got {crf!r}")
    if not CRF_RANGE[0] <= crf <= CRF_RANGE[1]:
        raise ValueError(f"crf must be in {CRF_RANGE[0]}..{CRF_RANGE[1]}, got {crf}")
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {PRESETS}")
    if max_side is not None and max_side < 2:
        raise ValueError(f"max_side must be >= 2, got {max_side}")


def fit_max_side(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """Size ``(w, h)`` a frame is encoded at when the longer side may be at most ``max_side``.

    A frame that already fits (or ``max_side=None``) keeps its size, odd or not; a larger
    one is scaled down keeping its aspect ratio, to even dimensions (for yuv420p).
    """
    if max_side is None or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    w = min(max_side - max_side % 2, max(2, int(width * scale / 2 + 0.5) * 2))
    h = min(max_side - max_side % 2, max(2, int(height * scale / 2 + 0.5) * 2))
    return w, h


def encoder_options(codec: str, crf: int, preset: str, threads: int | None) -> dict[str, str]:
    """FFmpeg options of an x264 / x265 encoder (``threads``: ``None`` = all cores)."""
    opts = {"crf": str(crf), "preset": preset}
    if codec == "libx265":
        x265 = ["log-level=error"]
        if threads:
            x265 += [f"pools={threads}", f"frame-threads={threads}"]
        opts["x265-params"] = ":".join(x265)
    elif threads:
        opts["threads"] = str(threads)
    return opts


def _encoder(
    codec: str, width: int, height: int, crf: int, preset: str, fps: int, threads: int | None
) -> av.VideoCodecContext:
    enc = av.CodecContext.create(codec, "w")
    assert isinstance(enc, av.VideoCodecContext)
    enc.width, enc.height = width, height
    enc.pix_fmt = "yuv420p"
    enc.time_base = Fraction(1, fps)
    enc.framerate = Fraction(fps)
    opts = encoder_options(codec, crf, preset, threads)
    enc.options = opts
    return enc


def encode_decode(
    frames: Sequence[np.ndarray] | np.ndarray,
    codec: str = "libx264",
    crf: int = 23,
    preset: str = "medium",
    max_side: int | None = None,
    *,
    restore_size: bool = True,
    fps: int = 25,
    threads: int | None = None,
) -> list[np.ndarray]:
    """Encode RGB frames as one clip with a real codec and decode them back.

    Args:
        frames: ``uint8`` RGB ``HxWx3`` arrays of one size (a list or a ``NxHxWx3`` array).
        codec: ``"libx264"`` (H.264) or ``"libx265"`` (H.265/HEVC).
        crf: constant rate factor, 0 (near lossless) to 51 (worst).
        preset: encoder speed preset (see :data:`PRESETS`); it changes quality at a given CRF.
        max_side: encode at a size whose longer side is at most this (never upscales).
        restore_size: return frames at the input size (bilinear upscale after ``max_side``);
            with ``False`` return them at the encoded size (even dimensions).
        fps: nominal frame rate of the clip (affects rate control only slightly).
        threads: encoder and decoder threads (``None``: FFmpeg's default, all cores;
            use 1 in data-loader workers).

    Returns:
        The decoded frames, ``uint8`` RGB ``HxWx3``, as many as were given.

    Raises:
        ValueError: bad frames (dtype, shape, empty, mixed sizes) or bad codec arguments.
    """
    if isinstance(frames, np.ndarray) and frames.ndim == 3:
        raise ValueError("expected a sequence of frames; use encode_decode_frame() for one image")
    frames = [check_image(f, f"frame {i}") for i, f in enumerate(frames)]
    if not frames:
        raise ValueError("no frames given")
    sizes = {f.shape for f in frames}
    if len(sizes) > 1:
        raise ValueError(f"frames have different sizes: {sorted(sizes)}")
    _check_codec_args(codec, crf, preset, max_side)
    h, w = frames[0].shape[:2]
    ew, eh = fit_max_side(w, h, max_side)
    resized = (ew, eh) != (w, h)
    if not resized:  # odd sizes are padded to even, and cropped back after decoding
        ew, eh = w + w % 2, h + h % 2

    enc = _encoder(codec, ew, eh, int(crf), preset, fps, threads)
    packets: list[av.Packet] = []
    for i, frame in enumerate(frames):
        if resized:
            frame = cv2.resize(frame, (ew, eh), interpolation=cv2.INTER_AREA)
        elif (ew, eh) != (w, h):  # odd size: pad by edge replication, crop after decoding
            frame = cv2.copyMakeBorder(frame, 0, eh - h, 0, ew - w, cv2.BORDER_REPLICATE)
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        vf = vf.reformat(format="yuv420p")
        vf.pts = i
        packets.extend(enc.encode(vf))
    packets.extend(enc.encode(None))

    dec = av.CodecContext.create(CODECS[codec], "r")
    if threads:
        dec.thread_count = threads
    decoded: list[np.ndarray] = []
    for packet in [*packets, None]:
        for out in dec.decode(packet):  # type: ignore[attr-defined]
            decoded.append(out.to_ndarray(format="rgb24"))
    if len(decoded) != len(frames):
        raise RuntimeError(f"{codec} returned {len(decoded)} frames for {len(frames)}")
    if resized and restore_size:
        return [cv2.resize(d, (w, h), interpolation=cv2.INTER_LINEAR) for d in decoded]
    if not resized:
        return [np.ascontiguousarray(d[:h, :w]) for d in decoded]
    return decoded


def encode_decode_frame(
    image: np.ndarray,
    codec: str = "libx264",
    crf: int = 23,
    preset: str = "medium",
    max_side: int | None = None,
    *,
    restore_size: bool = True,
    threads: int | None = None,
) -> np.ndarray:
    """Round-trip one RGB image through a codec as a one-frame clip (an intra frame).

    The training path: same arguments and contract as :func:`encode_decode`.
    """
    return encode_decode(
        [check_image(image, "frame")],
        codec,
        crf,
        preset,
        max_side,
        restore_size=restore_size,
        threads=threads,
    )[0]


@dataclass(frozen=True)
class CodecProfile:
    """A named way a platform (or a benchmark) re-encodes video.

    Attributes:
        codec: ``libx264`` or ``libx265``.
        crf: inclusive CRF range; one value is drawn per video (or per training image).
        preset: encoder preset.
        max_side: longest side after the platform's downscale (``None``: keep the size).
        description: one line for ``cre degrade --list``.
    """

    codec: str
    crf: tuple[int, int]
    preset: str = "medium"
    max_side: int | None = None
    description: str = ""

    def __post_init__(self) -> None:
        lo, hi = self.crf
        if lo > hi:
            raise ValueError(f"crf range {self.crf} is empty")
        _check_codec_args(self.codec, lo, self.preset, self.max_side)
        _check_codec_args(self.codec, hi, self.preset, self.max_side)

    def sample(self, rng: np.random.Generator) -> CodecParams:
        """Draw the parameters for one video or image from this profile."""
        lo, hi = self.crf
        crf = lo if lo == hi else int(rng.integers(lo, hi + 1))
        return CodecParams(self.codec, crf, self.preset, self.max_side)


@dataclass(frozen=True)
class CodecParams:
    """Codec settings actually applied (loggable, and replayable with :meth:`apply`)."""

    name: ClassVar[str] = "codec"
    codec: str = "libx264"
    crf: int = 23
    preset: str = "medium"
    max_side: int | None = None

    def __post_init__(self) -> None:
        _check_codec_args(self.codec, self.crf, self.preset, self.max_side)

    def apply(self, image: np.ndarray) -> np.ndarray:
        """Round-trip one image as a one-frame clip, returned at its input size."""
        return encode_decode_frame(image, self.codec, self.crf, self.preset, self.max_side)

    def to_dict(self) -> dict[str, Any]:
        return {"artefact": self.name, **asdict(self)}


PROFILES: dict[str, CodecProfile] = {
    "social": CodecProfile(
        "libx264", (28, 35), "medium", 720, "H.264 CRF 28-35, longest side <= 720 (platform upload)"
    ),
    "social-hevc": CodecProfile(
        "libx265", (28, 35), "medium", 720, "H.265 CRF 28-35, longest side <= 720"
    ),
    **{
        f"ladder-{i}": CodecProfile(
            "libx264",
            (crf, crf),
            "medium",
            None,
            f"DeeperForensics compression level {i}: CRF {crf}",
        )
        for i, crf in enumerate(LADDER_CRFS, start=1)
    },
    "c23": CodecProfile("libx264", (23, 23), "medium", None, "FaceForensics++ c23: H.264 CRF 23"),
    "c40": CodecProfile("libx264", (40, 40), "medium", None, "FaceForensics++ c40: H.264 CRF 40"),
}
"""Named codec profiles; see the module docstring."""


def get_profile(name: str | CodecProfile) -> CodecProfile:
    """Look up a profile by name (a :class:`CodecProfile` passes through)."""
    if isinstance(name, CodecProfile):
        return name
    try:
        return PROFILES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown codec profile {name!r}; expected one of {sorted(PROFILES)}"
        ) from None
