"""Local video file -> probed facts, checked limits -> sampled upright RGB frames.

``probe_video`` opens a file with FFmpeg restricted to the ``file`` protocol and the accepted
demuxers (no ``concat:``, ``http:``, HLS playlists...), checks the limits of
:class:`~worker.settings.Settings` and returns a :class:`VideoInfo`. ``sample_frames`` yields
``n`` frames chosen by presentation timestamp (``frame.time``; never index / fps, since
variable frame rate exists) at the centres of ``n`` equal segments of the video.

Frame sampling first runs a demux-only pass over the video packets (no decoding): it counts
packets, so a cut file is caught before any work, and it lists the keyframes, so the decoder
seeks only when a keyframe lies between the frame it has reached and the next target. A
short clip with a long GOP is thus decoded straight through (faster than seeking), a long
clip with a short GOP mostly by seeking. Only the sampled frames are converted to RGB; the
decoded video is never held in memory.
"""

from __future__ import annotations

import bisect
import logging
import os
import statistics
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import av
import av.error
import numpy as np

from worker.errors import (
    CorruptVideoError,
    CreError,
    InputError,
    LimitExceededError,
    NoVideoStreamError,
    TruncatedVideoError,
    UnsupportedInputError,
)
from worker.fetch import check_local_file
from worker.settings import Settings, get_settings

__all__ = [
    "VideoInfo",
    "SampledFrame",
    "SampleStats",
    "KeyframeIndex",
    "probe_video",
    "sample_frames",
    "sample_frame_batches",
    "sample_frames_at",
    "sample_targets",
    "scan_packets",
    "decode_floor_seconds",
    "open_video",
]

logger = logging.getLogger(__name__)

_EPS = 1e-6
"""Seconds of slack when comparing frame times with target times (float rounding)."""

_MAX_BAD_PACKET_FRACTION = 0.5
"""Above this share of undecodable packets a video is corrupt rather than damaged."""

_MIN_PACKET_FRACTION = 0.98
"""Fewer packets than this share of the container's frame count means the file is cut."""

_MAX_SPAN_RATIO = 1.5
"""Packets spanning more than this multiple of the header's duration have damaged timestamps."""


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


@dataclass(frozen=True)
class SampledFrame:
    """One sampled frame: ``image`` is HxWx3 uint8 RGB, already upright."""

    index: int
    target_s: float
    time_s: float
    image: np.ndarray


@dataclass
class SampleStats:
    """Counters filled in by :func:`sample_frames` (pass one to read them afterwards).

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

    @property
    def duration_s(self) -> float:
        return max(0.0, self.end_s - self.start_s)


# --------------------------------------------------------------------------------------
# Opening files safely


def _container_options(settings: Settings) -> dict[str, str]:
    return {"protocol_whitelist": "file", "format_whitelist": settings.accepted_formats}


def _sniff(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(64)


def _open_error(path: Path, exc: Exception, head: bytes, settings: Settings) -> CreError:
    """Translate an ``av.open`` failure into the error a user should see."""
    if head.lstrip().startswith(b"#EXTM3U"):
        return UnsupportedInputError("HLS playlists (.m3u8) are not accepted: send the video file")
    if isinstance(exc, av.error.ArgumentError):
        # EINVAL at open: the demuxer FFmpeg chose is not in format_whitelist, or the name
        # asked for a protocol other than `file`.
        return UnsupportedInputError(
            f"container format not accepted (accepted: {settings.accepted_formats})"
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
def open_video(path: Path, settings: Settings) -> Iterator[av.container.InputContainer]:
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
        container = av.open(str(path), mode="r", options=_container_options(settings))
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        # ValueError includes UnicodeDecodeError: damaged metadata that is not UTF-8.
        raise _open_error(path, exc, head, settings) from exc
    try:
        yield container
    finally:
        container.close()


def _video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream:
    if not container.streams.video:
        kinds: list[str] = sorted({s.type for s in container.streams})
        if not kinds:
            raise NoVideoStreamError("the file holds no stream with any frame")
        raise NoVideoStreamError(
            f"no video stream in the file (streams: {', '.join(kinds)})"
            + (": an audio-only file" if kinds == ["audio"] else "")
        )
    return container.streams.video[0]


def _configure_decoder(stream: av.video.stream.VideoStream, settings: Settings) -> None:
    """Thread count and the pixel cap, set before the decoder opens."""
    ctx = stream.codec_context
    threads = settings.decode_threads
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
    # hence the slack; decoded frames are checked exactly in _decoded_frames.
    cap = settings.max_pixels + 128 * int(2 * settings.max_pixels**0.5 + 128)
    ctx.options = {"max_pixels": str(cap)}


def _decoded_frames(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    stats: SampleStats,
    max_pixels: int,
) -> Iterator[av.VideoFrame]:
    """Decode packet by packet; a packet the decoder rejects is counted and skipped."""
    stats.reached_end = False
    try:
        for packet in container.demux(stream):
            try:
                frames = stream.decode(packet)
            except av.error.ArgumentError as exc:
                raise LimitExceededError(
                    "the decoder refused the stream (frame larger than the pixel limit?)"
                ) from exc
            except (av.error.InvalidDataError, av.error.UndefinedError) as exc:
                stats.decode_errors += 1
                logger.debug("undecodable packet at pts %s: %s", packet.pts, exc)
                continue
            for frame in frames:
                if frame.time is None:
                    stats.decode_errors += 1
                    continue
                stats.frames_decoded += 1
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


def _upright(frame: av.VideoFrame, rotation: int) -> np.ndarray:
    image: np.ndarray = frame.to_ndarray(format="rgb24")
    k = (rotation // 90) % 4
    if k:
        image = np.ascontiguousarray(np.rot90(image, k=k))
    return image


def _normalise_rotation(degrees: float) -> int:
    return int(round(degrees / 90.0)) * 90 % 360


# --------------------------------------------------------------------------------------
# Probe


def probe_video(path: Path, settings: Settings) -> VideoInfo:
    """Open a local file, check the limits and describe its first video stream.

    Decodes the first frame (to learn its display rotation and to prove the stream is
    decodable), nothing more unless the container records no duration.

    Raises:
        InputError: missing path, directory, device, empty file.
        LimitExceededError: file size, pixels or duration over the limits.
        UnsupportedInputError: not an accepted container, HLS playlist, unknown codec.
        NoVideoStreamError: no video stream (audio only) or no frame in it.
        TruncatedVideoError, CorruptVideoError: the data cannot be read.
    """
    path = Path(path)
    size = check_local_file(path, settings)
    with open_video(path, settings) as container:
        stream = _video_stream(container)
        ctx = stream.codec_context
        codec = ctx.name if ctx is not None else None
        if not codec or codec == "none":
            raise UnsupportedInputError("the video codec is unknown to FFmpeg")
        accepted = [c.strip() for c in settings.accepted_codecs.split(",") if c.strip()]
        if accepted and codec not in accepted:
            raise UnsupportedInputError(f"video codec {codec} is not accepted ({accepted})")
        coded_w, coded_h = stream.width, stream.height
        if coded_w <= 0 or coded_h <= 0:
            raise CorruptVideoError(f"the video stream reports a size of {coded_w}x{coded_h}")
        if coded_w * coded_h > settings.max_pixels:
            raise LimitExceededError(
                f"video is {coded_w}x{coded_h} = {coded_w * coded_h} pixels, over the limit "
                f"of {settings.max_pixels}"
            )
        tb = stream.time_base
        duration_s: float | None = None
        if stream.duration and tb:
            duration_s = float(stream.duration * tb)
        elif container.duration:
            duration_s = container.duration / av.time_base
        start_s = float(stream.start_time * tb) if stream.start_time is not None and tb else 0.0
        if duration_s is not None and duration_s > settings.max_duration_s:
            raise LimitExceededError(
                f"video lasts {duration_s:.1f} s, over the limit of {settings.max_duration_s:g} s"
            )
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else None
        frames_expected = stream.frames or None
        has_audio = bool(container.streams.audio)

        _configure_decoder(stream, settings)
        stats = SampleStats()
        first = next(_decoded_frames(container, stream, stats, settings.max_pixels), None)
        if first is None:
            if stats.decode_errors:
                raise CorruptVideoError(
                    f"no frame could be decoded ({stats.decode_errors} packets rejected)"
                )
            raise NoVideoStreamError("the video stream contains no frames")
        rotation = _normalise_rotation(first.rotation)

    if duration_s is None:
        index = scan_packets(path, settings)
        duration_s, start_s = index.duration_s, index.start_s
        if duration_s > settings.max_duration_s:
            raise LimitExceededError(
                f"video lasts {duration_s:.1f} s, over the limit of {settings.max_duration_s:g} s"
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


def scan_packets(path: Path, settings: Settings) -> KeyframeIndex:
    """Read every video packet once without decoding: count, time span, keyframes.

    Raises:
        NoVideoStreamError: the stream holds no packet.
        TruncatedVideoError: reading stopped on an error (a cut or damaged file).
    """
    times: list[float] = []
    end = float("-inf")
    durations: list[float] = []
    key_times: list[float] = []
    key_pts: list[int] = []
    with open_video(path, settings) as container:
        stream = _video_stream(container)
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
        raise NoVideoStreamError("the video stream contains no frames")
    start = min(times)
    if not durations and len(times) > 1:
        # No packet durations (some containers): extend by the typical frame interval.
        gaps = np.diff(np.sort(np.asarray(times)))
        end = max(times) + float(statistics.median(gaps.tolist()))
    order = np.argsort(np.asarray(key_times), kind="stable")
    return KeyframeIndex(
        packets=len(times),
        start_s=start,
        end_s=max(end, start),
        keyframe_times=[key_times[i] for i in order],
        keyframe_pts=[key_pts[i] for i in order],
    )


# --------------------------------------------------------------------------------------
# Sampling


def sample_targets(start_s: float, duration_s: float, n: int) -> list[float]:
    """Centres of ``n`` equal segments of ``[start_s, start_s + duration_s)``."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    step = duration_s / n
    return [start_s + (i + 0.5) * step for i in range(n)]


def _check_index(index: KeyframeIndex, info: VideoInfo, settings: Settings) -> None:
    """The packets must match what the header promised (count, span) and the limits."""
    expected = info.frames_expected
    if expected and index.packets < _MIN_PACKET_FRACTION * expected - 1:
        raise TruncatedVideoError(
            f"only {index.packets} of the {expected} frames the container lists are present: "
            "the file is cut or damaged"
        )
    # The header's duration passed the limit in probe_video; the packets must agree.
    if index.duration_s > settings.max_duration_s:
        raise LimitExceededError(
            f"video packets span {index.duration_s:.1f} s, over the limit of "
            f"{settings.max_duration_s:g} s"
        )
    if info.duration_s > 0 and index.duration_s > _MAX_SPAN_RATIO * info.duration_s + 1.0:
        raise CorruptVideoError(
            f"video packets span {index.duration_s:.1f} s but the header says "
            f"{info.duration_s:.1f} s: damaged timestamps"
        )


def sample_frames(
    path: Path,
    info: VideoInfo,
    n: int,
    settings: Settings,
    *,
    stats: SampleStats | None = None,
) -> Iterator[SampledFrame]:
    """Yield up to ``n`` upright RGB frames at evenly spaced timestamps.

    Target ``i`` is the centre of segment ``i`` of ``n`` equal segments of the video; the
    frame returned for it is the one on screen at that time (the last frame whose
    ``frame.time`` is not after the target). Frames come in time order. A video with at
    most ``n`` frames yields each frame once, with ``target_s == time_s``;
    ``stats.all_frames`` then says so. Two targets that fall on the same frame yield it
    once (possible only with variable frame rate), so count the frames you receive.

    Args:
        path: the local file (the one ``info`` describes).
        info: from :func:`probe_video`; gives rotation and the expected frame count.
        n: frames wanted.
        settings: limits, whitelists, ``decode_threads``.
        stats: optional; filled in with counters and timings while iterating.

    Raises:
        TruncatedVideoError: fewer packets or frames than the container promises.
        CorruptVideoError: more than half of the packets cannot be decoded, or none.
        NoVideoStreamError: no frames.
        LimitExceededError: the decoder refuses a frame above ``max_pixels``.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    stats = stats if stats is not None else SampleStats()
    stats.frames_requested = n
    stats.frames_expected = info.frames_expected

    t0 = time.perf_counter()
    index = scan_packets(path, settings)
    stats.scan_s = time.perf_counter() - t0
    stats.packets, stats.keyframes = index.packets, len(index.keyframe_times)
    _check_index(index, info, settings)

    stats.all_frames = index.packets <= n
    targets = [] if stats.all_frames else sample_targets(index.start_s, index.duration_s, n)
    with open_video(path, settings) as container:
        stream = _video_stream(container)
        _configure_decoder(stream, settings)
        if stats.all_frames:
            inner = _every_frame(container, stream, info, stats, settings)
        else:
            inner = _frames_at(container, stream, info, index, targets, stats, settings)
        while True:
            # Time only the decoding, not what the consumer does between frames.
            t0 = time.perf_counter()
            item = next(inner, None)
            stats.decode_s += time.perf_counter() - t0
            if item is None:
                break
            yield item

    if stats.decode_errors:
        logger.warning(
            "%s: %d packets could not be decoded (%d frames decoded, %d flagged corrupt)",
            path,
            stats.decode_errors,
            stats.frames_decoded,
            stats.corrupt_frames,
        )
    if stats.frames_returned == 0:
        raise CorruptVideoError(f"no frame could be decoded from {index.packets} packets")
    attempted = stats.frames_decoded + stats.decode_errors
    if attempted and stats.decode_errors > _MAX_BAD_PACKET_FRACTION * attempted:
        raise CorruptVideoError(
            f"{stats.decode_errors} of {attempted} packets could not be decoded"
        )
    if (
        stats.reached_end
        and stats.seeks == 0
        and stats.frames_decoded + stats.decode_errors < (_MIN_PACKET_FRACTION * index.packets - 1)
    ):
        raise TruncatedVideoError(
            f"decoded only {stats.frames_decoded} frames from {index.packets} packets: "
            "the file is cut or damaged"
        )


def _every_frame(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    info: VideoInfo,
    stats: SampleStats,
    settings: Settings,
) -> Iterator[SampledFrame]:
    last_time = float("-inf")
    for frame in _decoded_frames(container, stream, stats, settings.max_pixels):
        t = float(frame.time)
        if t <= last_time + _EPS:
            continue  # a repeated timestamp: keep each frame time once
        last_time = t
        yield SampledFrame(stats.frames_returned, t, t, _upright(frame, info.rotation))
        stats.frames_returned += 1


def _frames_at(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    info: VideoInfo,
    index: KeyframeIndex,
    targets: list[float],
    stats: SampleStats,
    settings: Settings,
) -> Iterator[SampledFrame]:
    """The frame on screen at each target, seeking past keyframes when that saves decoding."""
    frames = _decoded_frames(container, stream, stats, settings.max_pixels)
    held: av.VideoFrame | None = None  # last decoded frame with time <= current target
    ahead: av.VideoFrame | None = None  # first decoded frame after it (already read)
    last_emitted: float | None = None
    can_seek = True
    for target in targets:
        position = (
            float(ahead.time)
            if ahead is not None
            else float(held.time)
            if held is not None
            else index.start_s
        )
        k = bisect.bisect_right(index.keyframe_times, target + _EPS) - 1
        if can_seek and k >= 0 and index.keyframe_times[k] > position + _EPS:
            # A keyframe lies between where we are and the target: jump to it.
            container.seek(index.keyframe_pts[k], stream=stream, backward=True)
            stats.seeks += 1
            frames = _decoded_frames(container, stream, stats, settings.max_pixels)
            held = None
            ahead = next(frames, None)
            if ahead is not None and float(ahead.time) > target + _EPS:
                # Landed after the target (odd index): decode from the start instead.
                logger.warning("seek to %.3f s landed at %.3f s; not seeking", target, ahead.time)
                can_seek = False
                container.seek(index.keyframe_pts[0], stream=stream, backward=True)
                frames = _decoded_frames(container, stream, stats, settings.max_pixels)
                ahead = None
        while ahead is None or float(ahead.time) <= target + _EPS:
            if ahead is not None:
                held = ahead
            ahead = next(frames, None)
            if ahead is None:
                break
        chosen = held if held is not None else ahead
        if chosen is None:
            return  # the stream ended early: reported by the caller's checks
        t = float(chosen.time)
        if last_emitted is not None and t <= last_emitted + _EPS:
            continue  # two targets on one frame (variable frame rate): return it once
        last_emitted = t
        yield SampledFrame(stats.frames_returned, target, t, _upright(chosen, info.rotation))
        stats.frames_returned += 1


def sample_frame_batches(
    path: Path,
    info: VideoInfo,
    n: int,
    settings: Settings,
    batch_size: int,
    *,
    stats: SampleStats | None = None,
) -> Iterator[list[SampledFrame]]:
    """:func:`sample_frames` grouped into lists of at most ``batch_size`` frames."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    batch: list[SampledFrame] = []
    for frame in sample_frames(path, info, n, settings, stats=stats):
        batch.append(frame)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def sample_frames_at(
    path: Path,
    info: VideoInfo,
    times: Sequence[float],
    settings: Settings,
    *,
    stats: SampleStats | None = None,
) -> Iterator[SampledFrame]:
    """Yield the frame on screen at each of ``times`` (seconds), in time order.

    The same decoding as :func:`sample_frames` with the targets given rather than spread
    evenly, so frames recorded by a scoring run can be fetched again (``cre report``).
    ``target_s`` of each frame is the time it was asked for; a time on the same frame as
    an earlier one yields nothing. Pass a recorded, rounded ``time_s`` plus a little
    slack (well under one frame interval), or the previous frame may be returned.

    Raises:
        InputError: any of those :func:`sample_frames` raises (a file that changed or was
            damaged since it was scored).
    """
    targets = sorted({float(t) for t in times})
    if not targets:
        return
    stats = stats if stats is not None else SampleStats()
    stats.frames_requested = len(targets)
    stats.frames_expected = info.frames_expected
    index = scan_packets(path, settings)
    stats.packets, stats.keyframes = index.packets, len(index.keyframe_times)
    with open_video(path, settings) as container:
        stream = _video_stream(container)
        _configure_decoder(stream, settings)
        yield from _frames_at(container, stream, info, index, targets, stats, settings)


def decode_floor_seconds(path: Path, settings: Settings | None = None) -> float:
    """Seconds to decode every frame of ``path`` (no RGB conversion): the CPU floor.

    Uses the same decoder settings as the sampler (``decode_threads``), so the number is
    the least any scoring of this video with these settings can take.
    """
    settings = settings or get_settings()
    stats = SampleStats()
    t0 = time.perf_counter()
    with open_video(Path(path), settings) as container:
        stream = _video_stream(container)
        _configure_decoder(stream, settings)
        for _ in _decoded_frames(container, stream, stats, settings.max_pixels):
            pass
    return time.perf_counter() - t0
