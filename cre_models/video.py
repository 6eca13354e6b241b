"""Local video file -> probed facts, checked limits, decoded upright frames.

:func:`probe_video` opens a file with FFmpeg restricted to the ``file`` protocol and the
accepted demuxers (no ``concat:``, ``http:``, HLS playlists...), checks the limits of a
:class:`VideoLimits` and returns a :class:`VideoInfo`. The decoding helpers here
(:func:`open_video`, :func:`decoded_frames`, :func:`upright`) are what
:mod:`cre_models.sampling` builds its frame sampler on; the worker, training and evaluation
all read video through these two modules.

Limits come as one small value, :class:`VideoLimits`: the worker makes it from its
``CRE_*`` settings (:meth:`worker.settings.Settings.video_limits`); training and evaluation
use its defaults.
"""

from __future__ import annotations

import logging
import os
import stat
import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import av
import av.error
import numpy as np

from .errors import (
    CorruptVideoError,
    CreError,
    InputError,
    LimitExceededError,
    NoVideoStreamError,
    TruncatedVideoError,
    UnsupportedInputError,
)

__all__ = [
    "VideoLimits",
    "VideoInfo",
    "SampleStats",
    "KeyframeIndex",
    "scan_packets",
    "check_local_file",
    "probe_video",
    "open_video",
    "video_stream",
    "configure_decoder",
    "decoded_frames",
    "upright",
]

logger = logging.getLogger(__name__)

_FORMATS = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,mpegts,mpeg,flv"


@dataclass(frozen=True)
class VideoLimits:
    """What a video may be to be read at all, and how it is decoded.

    The defaults are the operational defaults (the worker's ``CRE_*`` settings start from
    them). Checked on construction.

    Attributes:
        max_file_bytes: largest accepted file.
        max_pixels: largest accepted ``width x height`` (coded and decoded).
        max_duration_s: longest accepted video.
        formats: FFmpeg demuxers allowed to open a file (its ``format_whitelist``).
        codecs: accepted video codecs (FFmpeg names); empty = any.
        decode_threads: FFmpeg decoder threads (slice threading); 0 = FFmpeg decides.
    """

    max_file_bytes: int = 2 * 1024**3
    max_pixels: int = 4096 * 2304
    max_duration_s: float = 3600.0
    formats: tuple[str, ...] = tuple(_FORMATS.split(","))
    codecs: tuple[str, ...] = ()
    decode_threads: int = 1

    def __post_init__(self) -> None:
        if min(self.max_file_bytes, self.max_pixels) < 1 or not self.max_duration_s > 0:
            raise ValueError(f"limits must be positive: {self}")
        if not self.formats:
            raise ValueError("at least one container format must be accepted")
        if self.decode_threads < 0:
            raise ValueError(f"decode_threads must be >= 0, got {self.decode_threads}")

    @property
    def format_whitelist(self) -> str:
        """The accepted demuxers as FFmpeg's comma-separated ``format_whitelist``."""
        return ",".join(self.formats)


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` learned about a file that passed every limit.

    ``width`` and ``height`` are the display size (after rotation); ``rotation`` is the
    counter-clockwise angle (0, 90, 180 or 270) applied to decoded frames to show them
    upright. ``frames_expected`` is the container's frame count when it records one.
    """

    path: Path
    container: str
    codec: str
    width: int
    height: int
    rotation: int
    duration_s: float
    fps: float | None
    frames_expected: int | None
    has_audio: bool
    size_bytes: int
    start_s: float = 0.0
    """Presentation time of the first frame (the sampled span starts here)."""


@dataclass
class SampleStats:
    """Counters filled in while decoding (pass one to :func:`~cre_models.sampling.sample_frames`).

    ``damaged`` is true when packets failed to decode or frames came out flagged corrupt:
    the frames returned are usable, but the result should say the input was damaged.
    """

    packets: int = 0
    keyframes: int = 0
    frames_expected: int | None = None
    frames_requested: int = 0
    frames_returned: int = 0
    frames_decoded: int = 0
    seeks: int = 0
    decode_errors: int = 0
    corrupt_frames: int = 0
    packets_fed: int = 0
    """Packets holding data that were given to the decoder, other than those the container
    marks for discard (they give no frame by design)."""
    frame_sizes: list[tuple[int, int]] = field(default_factory=list)
    """Each ``(width, height)`` the decoded frames had, in the order first seen (more than
    one: the stream changed size, and face boxes are in each frame's own pixels)."""
    all_frames: bool = False
    """True when the video has no more frames than requested: each frame returned once."""
    reached_end: bool = False
    """The decoder read the stream to its end (so the frame count can be checked)."""
    scan_s: float = 0.0
    decode_s: float = 0.0

    @property
    def damaged(self) -> bool:
        return self.decode_errors > 0 or self.corrupt_frames > 0


@dataclass(frozen=True)
class KeyframeIndex:
    """Result of the demux-only pass: packet count, time span and keyframe positions."""

    packets: int
    start_s: float
    end_s: float
    keyframe_times: list[float] = field(repr=False)
    keyframe_pts: list[int] = field(repr=False)
    distinct_times: int = 0
    """How many different timestamps the packets carry (``packets`` in a sound file)."""
    discarded: int = 0
    """Of ``packets``, those the container marks for discard (an edit list's pre-roll): they
    are decoded as references but give no frame."""

    @property
    def duration_s(self) -> float:
        return max(0.0, self.end_s - self.start_s)


# --------------------------------------------------------------------------------------
# Opening files safely


def _container_options(limits: VideoLimits) -> dict[str, str]:
    return {"protocol_whitelist": "file", "format_whitelist": limits.format_whitelist}


def _sniff(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(64)


def _open_error(path: Path, exc: Exception, head: bytes, limits: VideoLimits) -> CreError:
    """Translate an ``av.open`` failure into the error a user should see."""
    if head.lstrip().startswith(b"#EXTM3U"):
        return UnsupportedInputError("HLS playlists (.m3u8) are not accepted: send the video file")
    if isinstance(exc, av.error.ArgumentError):
        # EINVAL at open: the demuxer FFmpeg chose is not in format_whitelist, or the name
        # asked for a protocol other than `file`.
        return UnsupportedInputError(
            f"container format not accepted (accepted: {limits.format_whitelist})"
        )
    if isinstance(exc, av.error.EOFError):
        return TruncatedVideoError("the file ends before any video data: it is cut or empty")
    if isinstance(exc, av.error.InvalidDataError):
        if head[4:8] == b"ftyp":
            return TruncatedVideoError(
                "MP4/MOV file without a readable index (moov): the file is truncated or damaged"
            )
        if head[:4] == b"\x1a\x45\xdf\xa3":
            return CorruptVideoError("Matroska/WebM file that FFmpeg cannot read")
        return UnsupportedInputError("not a video file in a format we accept")
    if isinstance(exc, av.error.FFmpegError | ValueError):
        return CorruptVideoError(f"FFmpeg cannot open the file: {exc}")
    return InputError(f"cannot read {path.name}: {exc}")


@contextmanager
def open_video(path: Path, limits: VideoLimits) -> Iterator[av.container.InputContainer]:
    """Open ``path`` with FFmpeg restricted to local files and the accepted demuxers.

    The path is made absolute first, so a file named like ``concat:a|b`` or
    ``subfile,,...:x`` is read as a file, never interpreted as an FFmpeg protocol (and
    those protocols are not whitelisted anyway).

    Raises:
        InputError: any subclass, with a message a user can act on.
    """
    path = Path(os.path.abspath(path))
    head = _sniff(path)
    try:
        container = av.open(str(path), mode="r", options=_container_options(limits))
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        # ValueError includes UnicodeDecodeError: damaged metadata that is not UTF-8.
        raise _open_error(path, exc, head, limits) from exc
    try:
        yield container
    finally:
        container.close()


def video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream:
    """The file's main video stream, or :class:`NoVideoStreamError` saying what it holds.

    With several video streams (a thumbnail or cover picture first, a second camera angle),
    the largest picture that is not an attached picture or a still image; the first of
    equals. Every reader of one file (probe, packet scan, sampler) gets the same stream.
    """
    if not container.streams.video:
        kinds: list[str] = sorted({s.type for s in container.streams})
        if not kinds:
            raise NoVideoStreamError("the file holds no stream with any frame")
        raise NoVideoStreamError(
            f"no video stream in the file (streams: {', '.join(kinds)})"
            + (": an audio-only file" if kinds == ["audio"] else "")
        )
    streams = list(container.streams.video)
    if len(streams) == 1:
        return streams[0]
    pictures = av.stream.Disposition.attached_pic | av.stream.Disposition.still_image
    moving = [s for s in streams if not (s.disposition & pictures)] or streams

    def pixels(s: av.video.stream.VideoStream) -> int:
        ctx = s.codec_context  # None for a codec FFmpeg does not know
        return 0 if ctx is None else (ctx.width or 0) * (ctx.height or 0)

    main = max(moving, key=pixels)
    if main is not streams[0]:
        logger.info("video stream %d of %d is the main one (the largest)", main.index, len(streams))
    return main


def configure_decoder(stream: av.video.stream.VideoStream, limits: VideoLimits) -> None:
    """Thread count and the pixel cap, set before the decoder opens."""
    ctx = stream.codec_context
    threads = limits.decode_threads
    # 1 = single-threaded (the default: the sampler already runs in its own thread beside
    # detection and inference). More threads use FFmpeg's slice threading only: frame
    # threading ("AUTO"/"FRAME") deadlocked in avcodec_free_context when a decoder was
    # closed mid-stream (seen in the test suite with PyAV 18.1's FFmpeg), and the sampler
    # always closes decoders early. x264 writes one slice per frame by default, so slice
    # threads help only on multi-slice inputs.
    if threads == 1:
        ctx.thread_count = 1
    else:
        ctx.thread_type = "SLICE"
        ctx.thread_count = threads  # 0 = FFmpeg picks one per core
    # A stream whose headers under-state its size still cannot make the decoder allocate
    # far more than the limit: avcodec_open2 / the decoder refuse larger frames. The cap
    # applies to the coded size, padded to whole macroblocks/CTUs (up to 128 px per side),
    # hence the slack; decoded frames are checked exactly in decoded_frames.
    cap = limits.max_pixels + 128 * int(2 * limits.max_pixels**0.5 + 128)
    ctx.options = {"max_pixels": str(cap)}


def decoded_frames(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    stats: SampleStats,
    max_pixels: int,
) -> Iterator[av.VideoFrame]:
    """Decode packet by packet; a packet the decoder rejects is counted and skipped."""
    stats.reached_end = False
    try:
        for packet in container.demux(stream):
            if packet.size and not packet.is_discard:
                stats.packets_fed += 1
            try:
                frames = stream.decode(packet)
            except av.error.ArgumentError as exc:
                raise LimitExceededError(
                    "the decoder refused the stream (frame larger than the pixel limit?)"
                ) from exc
            except (av.error.InvalidDataError, av.error.UndefinedError) as exc:
                ctx = stream.codec_context
                if (ctx.width or 0) * (ctx.height or 0) > max_pixels:  # a new, larger size
                    raise LimitExceededError(
                        f"the frame size changes to {ctx.width}x{ctx.height}, over the pixel "
                        f"limit of {max_pixels}"
                    ) from exc
                stats.decode_errors += 1
                logger.debug("undecodable packet at pts %s: %s", packet.pts, exc)
                continue
            for frame in frames:
                if frame.time is None:
                    stats.decode_errors += 1
                    continue
                stats.frames_decoded += 1
                if (frame.width, frame.height) not in stats.frame_sizes:
                    stats.frame_sizes.append((frame.width, frame.height))
                if frame.is_corrupt:
                    stats.corrupt_frames += 1
                if frame.width * frame.height > max_pixels:
                    raise LimitExceededError(
                        f"decoded frame is {frame.width}x{frame.height}, over the pixel limit "
                        f"of {max_pixels}"
                    )
                yield frame
        stats.reached_end = True
    except av.error.ArgumentError as exc:
        raise LimitExceededError(
            "the decoder refused to open the stream (frame larger than the pixel limit?)"
        ) from exc
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise CorruptVideoError(f"reading the file failed: {exc}") from exc


def upright(frame: av.VideoFrame, rotation: int) -> np.ndarray:
    """A decoded frame as ``HxWx3`` uint8 RGB, turned by ``rotation`` to show it upright."""
    image: np.ndarray = frame.to_ndarray(format="rgb24")
    k = (rotation // 90) % 4
    if k:
        image = np.ascontiguousarray(np.rot90(image, k=k))
    return image


def _normalise_rotation(degrees: float) -> int:
    return int(round(degrees / 90.0)) * 90 % 360


def check_local_file(path: Path, limits: VideoLimits) -> int:
    """Check that ``path`` is a non-empty regular file within ``max_file_bytes``.

    Returns:
        The file size in bytes.

    Raises:
        InputError: missing, a directory, a device/FIFO/socket, empty or unreadable.
        LimitExceededError: larger than ``limits.max_file_bytes``.
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        raise InputError(f"file not found: {path}") from None
    except OSError as exc:
        raise InputError(f"cannot access {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{path} is a directory, not a video file")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{path} is not a regular file (device, FIFO or socket)")
    if st.st_size == 0:
        raise InputError(f"{path} is empty (0 bytes)")
    if st.st_size > limits.max_file_bytes:
        raise LimitExceededError(
            f"file is {st.st_size} bytes, over the limit of {limits.max_file_bytes}"
        )
    if not os.access(path, os.R_OK):
        raise InputError(f"{path} is not readable")
    return st.st_size


# --------------------------------------------------------------------------------------
# Probe


def probe_video(path: Path, limits: VideoLimits) -> VideoInfo:
    """Open a local file, check the limits and describe its first video stream.

    Decodes the first frame (to learn its display rotation and to prove the stream is
    decodable), nothing more unless the container records no duration.

    Raises:
        InputError: missing path, directory, device, empty file.
        LimitExceededError: file size, pixels or duration over the limits.
        UnsupportedInputError: not an accepted container, HLS playlist, unknown codec.
        NoVideoStreamError: no video stream (audio only).
        TruncatedVideoError: a video stream without a single packet (a cut file).
        CorruptVideoError: the data cannot be read, or the stream's packets give no frame.
    """
    path = Path(path)
    size = check_local_file(path, limits)
    with open_video(path, limits) as container:
        stream = video_stream(container)
        ctx = stream.codec_context
        codec = ctx.name if ctx is not None else None
        if not codec or codec == "none":
            raise UnsupportedInputError("the video codec is unknown to FFmpeg")
        accepted = list(limits.codecs)
        if accepted and codec not in accepted:
            raise UnsupportedInputError(f"video codec {codec} is not accepted ({accepted})")
        coded_w, coded_h = stream.width, stream.height
        if coded_w <= 0 or coded_h <= 0:
            raise CorruptVideoError(f"the video stream reports a size of {coded_w}x{coded_h}")
        if coded_w * coded_h > limits.max_pixels:
            raise LimitExceededError(
                f"video is {coded_w}x{coded_h} = {coded_w * coded_h} pixels, over the limit "
                f"of {limits.max_pixels}"
            )
        tb = stream.time_base
        duration_s: float | None = None
        if stream.duration and tb:
            duration_s = float(stream.duration * tb)
        elif container.duration:
            duration_s = container.duration / av.time_base
        start_s = float(stream.start_time * tb) if stream.start_time is not None and tb else 0.0
        if duration_s is not None and duration_s > limits.max_duration_s:
            raise LimitExceededError(
                f"video lasts {duration_s:.1f} s, over the limit of {limits.max_duration_s:g} s"
            )
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else None
        frames_expected = stream.frames or None
        has_audio = bool(container.streams.audio)

        configure_decoder(stream, limits)
        stats = SampleStats()
        first = next(decoded_frames(container, stream, stats, limits.max_pixels), None)
        if first is None:
            if stats.decode_errors:
                raise CorruptVideoError(
                    f"no frame could be decoded ({stats.decode_errors} packets rejected)"
                )
            if stats.packets_fed:  # data, but the decoder made nothing of it (no keyframe)
                raise CorruptVideoError(
                    f"the video stream's {stats.packets_fed} packets gave no frame: the file "
                    "is cut or damaged"
                )
            raise TruncatedVideoError(
                "the video stream holds no frame: the file is cut, or was written without any"
            )
        rotation = _normalise_rotation(first.rotation)

    if duration_s is None:
        index = scan_packets(path, limits)
        duration_s, start_s = index.duration_s, index.start_s
        if duration_s > limits.max_duration_s:
            raise LimitExceededError(
                f"video lasts {duration_s:.1f} s, over the limit of {limits.max_duration_s:g} s"
            )
    width, height = (coded_h, coded_w) if rotation in (90, 270) else (coded_w, coded_h)
    info = VideoInfo(
        path=path,
        container=container.format.name,
        codec=codec,
        width=width,
        height=height,
        rotation=rotation,
        duration_s=duration_s,
        fps=fps,
        frames_expected=frames_expected,
        has_audio=has_audio,
        size_bytes=size,
        start_s=start_s,
    )
    logger.debug("probed %s: %s", path, info)
    return info


# --------------------------------------------------------------------------------------
# Demux-only pass


def scan_packets(path: Path, limits: VideoLimits) -> KeyframeIndex:
    """Read every video packet once without decoding: count, time span, keyframes.

    Packets the container marks for discard (the pre-roll an edit list hides: a clip trimmed
    without re-encoding keeps the GOP's start before its first shown frame) count as packets
    and keyframes, for seeking, but not in the time span the sampler chooses frames from.

    Raises:
        TruncatedVideoError: the stream holds no packet, or reading stopped on an error (a
            cut or damaged file).
    """
    times: list[float] = []
    shown: list[float] = []
    end = float("-inf")
    durations: list[float] = []
    key_times: list[float] = []
    key_pts: list[int] = []
    with open_video(path, limits) as container:
        stream = video_stream(container)
        tb = stream.time_base
        if tb is None:
            raise CorruptVideoError("the video stream has no time base")
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue  # the flush packet at the end
                ts = packet.pts if packet.pts is not None else packet.dts
                if ts is None:
                    continue
                t = float(ts * tb)
                times.append(t)
                if packet.is_discard:
                    if packet.is_keyframe:
                        key_times.append(t)
                        key_pts.append(ts)
                    continue
                shown.append(t)
                if packet.duration:
                    d = float(packet.duration * tb)
                    durations.append(d)
                    end = max(end, t + d)
                else:
                    end = max(end, t)
                if packet.is_keyframe:
                    key_times.append(t)
                    key_pts.append(ts)
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise TruncatedVideoError(
                f"reading stopped after {len(times)} video packets: {exc}"
            ) from exc
    if not times:
        raise TruncatedVideoError(
            "the video stream holds no frame: the file is cut, or was written without any"
        )
    shown = shown or times  # all marked for discard: keep them rather than nothing
    start = min(shown)
    end = max(end, max(shown))
    if not durations and len(shown) > 1:
        # No packet durations (some containers): extend by the typical frame interval.
        gaps = np.diff(np.sort(np.asarray(shown)))
        end = max(shown) + float(statistics.median(gaps.tolist()))
    order = np.argsort(np.asarray(key_times), kind="stable")
    return KeyframeIndex(
        packets=len(times),
        discarded=len(times) - len(shown) if shown is not times else 0,
        start_s=start,
        end_s=max(end, start),
        keyframe_times=[key_times[i] for i in order],
        keyframe_pts=[key_pts[i] for i in order],
        distinct_times=len(set(times)),
    )
