"""Which frames of a video are looked at: ``n`` upright RGB frames chosen by timestamp.

:func:`sample_frames` yields ``n`` frames chosen by presentation timestamp
(``frame.time``; never index / fps, since variable frame rate exists) at the centres of
``n`` equal segments of the video. It is the one sampler: the worker scores these frames,
training caches their face crops, evaluation re-scores them.

Sampling first runs a demux-only pass over the video packets
(:func:`~cre_models.video.scan_packets`, no decoding): it counts packets, so a cut file is
caught before any work, and it lists the keyframes, so the decoder seeks only when a
keyframe lies between the frame it has reached and the next target. A short clip with a
long GOP is thus decoded straight through (faster than seeking), a long clip with a short
GOP mostly by seeking. Only the sampled frames are converted to RGB; the decoded video is
never held in memory.
"""

from __future__ import annotations

import bisect
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import av
import numpy as np

from .errors import CorruptVideoError, LimitExceededError, TruncatedVideoError
from .video import (
    KeyframeIndex,
    SampleStats,
    VideoInfo,
    VideoLimits,
    configure_decoder,
    decoded_frames,
    open_video,
    scan_packets,
    upright,
    video_stream,
)

__all__ = [
    "SampledFrame",
    "sample_targets",
    "sample_frames",
    "sample_frames_at",
    "timed",
]

T = TypeVar("T")
_END = object()

logger = logging.getLogger(__name__)

_EPS = 1e-6
"""Seconds of slack when comparing frame times with target times (float rounding)."""

_MAX_BAD_PACKET_FRACTION = 0.5
"""Above this share of undecodable packets a video is corrupt rather than damaged."""

_MIN_PACKET_FRACTION = 0.98
"""Fewer packets than this share of the container's frame count means the file is cut."""

_MAX_SPAN_RATIO = 1.5
"""Packets spanning more than this multiple of the header's duration have damaged timestamps."""

_MIN_DISTINCT_FRACTION = 0.5
"""Fewer different packet timestamps than this share of the packets: damaged timestamps (the
sampler chooses frames by time, so frames that share one time cannot be told apart)."""


@dataclass(frozen=True)
class SampledFrame:
    """One sampled frame: ``image`` is HxWx3 uint8 RGB, already upright."""

    index: int
    target_s: float
    time_s: float
    image: np.ndarray


def sample_targets(start_s: float, duration_s: float, n: int) -> list[float]:
    """Centres of ``n`` equal segments of ``[start_s, start_s + duration_s)``."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    step = duration_s / n
    return [start_s + (i + 0.5) * step for i in range(n)]


def _check_index(index: KeyframeIndex, info: VideoInfo, limits: VideoLimits) -> None:
    """The packets must match what the header promised (count, span) and the limits."""
    expected = info.frames_expected
    if expected and index.packets < _MIN_PACKET_FRACTION * expected - 1:
        raise TruncatedVideoError(
            f"only {index.packets} of the {expected} frames the container lists are present: "
            "the file is cut or damaged"
        )
    if index.packets > 1 and index.distinct_times < _MIN_DISTINCT_FRACTION * index.packets:
        raise CorruptVideoError(
            f"the {index.packets} video packets carry only {index.distinct_times} distinct "
            f"timestamp{'' if index.distinct_times == 1 else 's'}: damaged timestamps (frames "
            "that share a time cannot be sampled by time)"
        )
    if info.duration_s > 0 and index.duration_s > _MAX_SPAN_RATIO * info.duration_s + 1.0:
        raise CorruptVideoError(
            f"video packets span {index.duration_s:.1f} s but the header says "
            f"{info.duration_s:.1f} s: damaged timestamps"
        )
    # The header's duration passed the limit in probe_video; the packets must agree (after
    # the checks above: a span far past the header's is damage, not a long video).
    if index.duration_s > limits.max_duration_s:
        raise LimitExceededError(
            f"video packets span {index.duration_s:.1f} s, over the limit of "
            f"{limits.max_duration_s:g} s"
        )


def timed(items: Iterable[T], add_seconds: Callable[[float], None]) -> Iterator[T]:
    """Yield ``items``, passing the seconds spent waiting for each one to ``add_seconds``.

    The time the consumer spends between items is not counted: this measures the producer
    (decoding, for frames).
    """
    it = iter(items)
    while True:
        t0 = time.perf_counter()
        item = next(it, _END)
        add_seconds(time.perf_counter() - t0)
        if item is _END:
            return
        yield item  # type: ignore[misc]


def _scan(
    path: Path, info: VideoInfo, n: int, limits: VideoLimits, stats: SampleStats
) -> KeyframeIndex:
    """The demux-only pass, with what it found and what was asked for in ``stats``."""
    stats.frames_requested = n
    stats.frames_expected = info.frames_expected
    t0 = time.perf_counter()
    index = scan_packets(path, limits)
    stats.scan_s = time.perf_counter() - t0
    stats.packets, stats.keyframes = index.packets, len(index.keyframe_times)
    return index


@contextmanager
def _decoder(
    path: Path, limits: VideoLimits
) -> Iterator[tuple[av.container.InputContainer, av.video.stream.VideoStream]]:
    with open_video(path, limits) as container:
        stream = video_stream(container)
        configure_decoder(stream, limits)
        yield container, stream


def sample_frames(
    path: Path,
    info: VideoInfo,
    n: int,
    limits: VideoLimits,
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
        limits: what the file may be, and ``decode_threads``.
        stats: optional; filled in with counters and timings while iterating.

    Raises:
        TruncatedVideoError: fewer packets than the container promises, or a decode pass
            that read fewer packets than the scan found.
        CorruptVideoError: more than half of the packets cannot be decoded (packets that
            give no frame and no error count as such), or none; or the packets' timestamps
            are damaged (spanning far more than the header's duration, or fewer different
            times than half the packets).
        LimitExceededError: the decoder refuses a frame above ``max_pixels``, or the frame
            size changes to one above it.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    stats = stats if stats is not None else SampleStats()
    index = _scan(path, info, n, limits, stats)
    _check_index(index, info, limits)

    stats.all_frames = index.packets - index.discarded <= n
    targets = [] if stats.all_frames else sample_targets(index.start_s, index.duration_s, n)
    with _decoder(path, limits) as (container, stream):
        if stats.all_frames:
            inner = _every_frame(container, stream, info, stats, limits)
        else:
            inner = _frames_at(container, stream, info, index, targets, stats, limits)

        def add_decode_s(seconds: float) -> None:
            stats.decode_s += seconds

        # time only the decoding, not what the consumer does between frames
        yield from timed(inner, add_decode_s)

    one_pass_to_the_end = stats.reached_end and stats.seeks == 0
    shown = index.packets - index.discarded  # packets that should each give a frame
    fed_all = stats.packets_fed >= _MIN_PACKET_FRACTION * shown
    silent = stats.packets_fed - stats.frames_decoded - stats.decode_errors
    if one_pass_to_the_end and fed_all and silent > 0:
        # Every packet reached the decoder and some gave no frame and no error: H.264 drops
        # the frames whose reference frame was lost (damage at the start, a clip cut
        # mid-GOP). Damaged packets, not a cut file.
        stats.decode_errors += silent
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
    if one_pass_to_the_end and stats.frames_decoded + stats.decode_errors < (
        _MIN_PACKET_FRACTION * shown - 1
    ):
        raise TruncatedVideoError(
            f"decoded only {stats.frames_decoded} frames from {shown} packets: "
            "the file is cut or damaged"
        )


def _every_frame(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    info: VideoInfo,
    stats: SampleStats,
    limits: VideoLimits,
) -> Iterator[SampledFrame]:
    last_time = float("-inf")
    for frame in decoded_frames(container, stream, stats, limits.max_pixels):
        t = float(frame.time)
        if t <= last_time + _EPS:
            continue  # a repeated timestamp: keep each frame time once
        last_time = t
        yield SampledFrame(stats.frames_returned, t, t, upright(frame, info.rotation))
        stats.frames_returned += 1


def _frames_at(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    info: VideoInfo,
    index: KeyframeIndex,
    targets: list[float],
    stats: SampleStats,
    limits: VideoLimits,
) -> Iterator[SampledFrame]:
    """The frame on screen at each target, seeking past keyframes when that saves decoding."""
    frames = decoded_frames(container, stream, stats, limits.max_pixels)
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
            frames = decoded_frames(container, stream, stats, limits.max_pixels)
            held = None
            ahead = next(frames, None)
            if ahead is not None and float(ahead.time) > target + _EPS:
                # Landed after the target (odd index): decode from the start instead.
                logger.warning("seek to %.3f s landed at %.3f s; not seeking", target, ahead.time)
                can_seek = False
                container.seek(index.keyframe_pts[0], stream=stream, backward=True)
                frames = decoded_frames(container, stream, stats, limits.max_pixels)
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
        yield SampledFrame(stats.frames_returned, target, t, upright(chosen, info.rotation))
        stats.frames_returned += 1


def sample_frames_at(
    path: Path,
    info: VideoInfo,
    times: Sequence[float],
    limits: VideoLimits,
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
    index = _scan(path, info, len(targets), limits, stats)
    with _decoder(path, limits) as (container, stream):
        yield from _frames_at(container, stream, info, index, targets, stats, limits)
