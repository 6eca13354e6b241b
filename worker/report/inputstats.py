"""How compressed a video is: bits per pixel per frame from its packets, blockiness of frames.

Three measures, all cheap, none needs the original:

* **quantiser** (QP): what the encoder itself chose, read from FFmpeg's ``venc_params``
  side data: the frame's (slice) QP, and the mean over its macroblocks after adaptive
  quantisation (H.264 and MPEG-2; VP9 and AV1 give one q-index per frame). H.264's scale
  runs 0-51, each +6 halves the precision: x264's default CRF 23 gives frame QPs around
  23-27, social-network re-encodes 28-34, and above 35 a face is mostly blocks. Read on
  :data:`QP_MAX_FRAMES` frames in runs after up to :data:`QP_KEYFRAMES` keyframes spread
  over the video.

* **bits per pixel per frame** (bpp): the mean size of the video packets in bits divided by
  the frame's pixel count, from a demux-only pass (no decoding). For H.264 at 1080p30 a
  streaming service's top rung is around 0.1 bpp, social networks re-encode to 0.03-0.08,
  and below 0.03 faces visibly lose detail. HEVC, VP9 and AV1 need roughly half the bits
  of H.264 for the same quality, so :func:`compression_level` scales their bpp by 2.
* **blockiness**: the mean absolute luma step across the 8-pixel block grid divided by the
  mean step elsewhere (1.0: no grid; above about 1.3 blocks are visible). A deblocking
  filter (H.264, HEVC) or rescaling after encoding hides the grid, so a low value does
  not prove light compression; a high one does prove heavy compression.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import av.error
import cv2
import numpy as np
from av.sidedata.sidedata import Type as SideDataType

from cre_models.video import VideoLimits, open_video, video_stream

__all__ = [
    "PacketStats",
    "QpStats",
    "packet_stats",
    "qp_stats",
    "blockiness",
    "compression_level",
    "EFFICIENT_CODECS",
    "QP_KEYFRAMES",
    "QP_MAX_FRAMES",
    "QP_MAP_FRAMES",
]

logger = logging.getLogger(__name__)

EFFICIENT_CODECS = frozenset({"hevc", "h265", "vp9", "av1", "libdav1d", "libaom-av1"})
"""Codecs that need roughly half the bits of H.264 for the same quality."""

QP_KEYFRAMES = 4
"""Keyframes (spread over the video) after which :func:`qp_stats` reads quantisers."""
QP_MAX_FRAMES = 32
"""Frames :func:`qp_stats` decodes in all, split evenly between those keyframes."""
QP_MAP_FRAMES = 8
"""Of those, frames whose per-macroblock map is read (about 10 ms each at 1080p)."""
QP_SCALES = {"h264": 51, "mpeg2video": 31, "vp9": 255, "av1": 255, "libdav1d": 255}
"""Largest quantiser of each codec whose decoder exports one."""


@dataclass(frozen=True)
class QpStats:
    """Quantisers the encoder used, read back from the stream (see the module docstring).

    Attributes:
        codec: FFmpeg's decoder name.
        scale: the codec's largest quantiser (51 for H.264).
        frames: how many frames were read.
        mean_qp: mean frame (slice) quantiser of those frames.
        key_qp: the same over intra (I) frames only; ``None`` without one.
        inter_qp: the same over the other frames; ``None`` without one.
        block_qp: mean quantiser over all macroblocks (after adaptive quantisation);
            ``None`` for codecs with one value per frame.
    """

    codec: str
    scale: int
    frames: int
    mean_qp: float
    key_qp: float | None
    inter_qp: float | None
    block_qp: float | None = None


@dataclass(frozen=True)
class PacketStats:
    """What a demux-only pass says about a video stream (sizes in bytes, rates in bit/s)."""

    container: str
    codec: str
    profile: str | None
    pix_fmt: str | None
    coded_width: int
    coded_height: int
    packets: int
    keyframes: int
    video_bytes: int
    key_bytes: int
    duration_s: float
    stream_bit_rate: int | None
    container_bit_rate: int | None
    keyframe_times: tuple[float, ...] = ()

    @property
    def bit_rate(self) -> float | None:
        """Video bit rate: from the packets when the span is known, else the headers'."""
        if self.duration_s > 0 and self.video_bytes:
            return 8 * self.video_bytes / self.duration_s
        return float(self.stream_bit_rate or self.container_bit_rate or 0) or None

    def _bpp(self, nbytes: float, count: int) -> float | None:
        pixels = self.coded_width * self.coded_height
        return 8 * nbytes / count / pixels if count and pixels else None

    @property
    def bpp(self) -> float | None:
        """Mean bits per pixel per frame over all packets."""
        return self._bpp(self.video_bytes, self.packets)

    @property
    def key_bpp(self) -> float | None:
        """Mean bits per pixel of keyframes (intra-coded: the least compressed frames)."""
        return self._bpp(self.key_bytes, self.keyframes)

    @property
    def inter_bpp(self) -> float | None:
        """Mean bits per pixel of the other frames."""
        return self._bpp(self.video_bytes - self.key_bytes, self.packets - self.keyframes)


def packet_stats(path: Path, limits: VideoLimits) -> PacketStats:
    """Read every video packet of ``path`` once, without decoding.

    Raises:
        cre_models.errors.InputError: the file cannot be opened (see
            :func:`cre_models.video.open_video`).
        ValueError: there is no video stream.
    """
    sizes: list[int] = []
    key = 0
    key_bytes = 0
    key_times: list[float] = []
    t_min, t_max = float("inf"), float("-inf")
    with open_video(path, limits) as container:
        if not container.streams.video:
            raise ValueError("no video stream")
        stream = video_stream(container)
        ctx = stream.codec_context
        tb = stream.time_base
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                sizes.append(packet.size)
                ts = packet.pts if packet.pts is not None else packet.dts
                t = float(ts * tb) if ts is not None and tb is not None else None
                if packet.is_keyframe:
                    key += 1
                    key_bytes += packet.size
                    if t is not None:
                        key_times.append(t)
                if t is not None and tb is not None:
                    d = float(packet.duration * tb) if packet.duration else 0.0
                    t_min, t_max = min(t_min, t), max(t_max, t + d)
        except (av.error.FFmpegError, OSError, ValueError) as e:
            logger.warning("%s: packet scan stopped after %d packets: %s", path, len(sizes), e)
        stats = PacketStats(
            container=str(container.format.name),
            codec=str(ctx.name) if ctx is not None else "?",
            profile=getattr(ctx, "profile", None) or None,
            pix_fmt=getattr(ctx, "pix_fmt", None) or None,
            coded_width=int(stream.width),
            coded_height=int(stream.height),
            packets=len(sizes),
            keyframes=key,
            video_bytes=sum(sizes),
            key_bytes=key_bytes,
            duration_s=max(0.0, t_max - t_min) if sizes else 0.0,
            stream_bit_rate=int(stream.bit_rate) if stream.bit_rate else None,
            container_bit_rate=int(container.bit_rate) if container.bit_rate else None,
            keyframe_times=tuple(sorted(key_times)),
        )
    return stats


def _frame_qp(frame: av.VideoFrame, blocks: bool) -> tuple[float, float | None] | None:
    """``(frame QP, mean macroblock QP or None)`` from the frame's side data, if any."""
    side_data: Any = frame.side_data  # a SideDataContainer (PyAV's stub says SideData)
    params: Any = side_data.get(SideDataType.VIDEO_ENC_PARAMS)
    if params is None:
        return None
    if not blocks:
        return float(params.qp), None
    try:
        mean = float(np.asarray(params.qp_map()).mean())  # per macroblock: H.264, MPEG-2
    except (ValueError, TypeError, RuntimeError):
        return float(params.qp), None  # one value per frame (VP9, AV1)
    return float(params.qp), mean


def qp_stats(
    path: Path, limits: VideoLimits, keyframe_times: Sequence[float] | None = None
) -> QpStats | None:
    """Mean quantisers of up to :data:`QP_MAX_FRAMES` frames after a few keyframes.

    Args:
        path: a local video file.
        limits: input whitelists (the file is opened like the sampler opens it).
        keyframe_times: seconds of the keyframes to start from (all of them; a spread of
            :data:`QP_KEYFRAMES` is taken); the first frames of the file when ``None``.

    Returns:
        ``None`` when the codec's decoder exports no quantiser (HEVC, for one) or the
        stream cannot be read.
    """
    codec_name = None
    qps: list[tuple[bool, float, float | None]] = []
    starts: list[float | None] = [*sorted(keyframe_times or [])]
    if len(starts) > QP_KEYFRAMES:
        pick = np.linspace(0, len(starts) - 1, QP_KEYFRAMES).round().astype(int)
        starts = [starts[i] for i in pick]
    per_start = max(1, QP_MAX_FRAMES // max(1, len(starts)))
    try:
        with open_video(path, limits) as container:
            if not container.streams.video:
                return None
            stream = video_stream(container)
            ctx = stream.codec_context
            codec_name = str(ctx.name)
            if codec_name not in QP_SCALES:
                return None
            ctx.thread_count = 1
            ctx.options = {"export_side_data": "venc_params"}
            tb = stream.time_base
            for start in starts or [None]:  # None: from the first frame
                if start is not None and tb is not None:
                    container.seek(int(round(start / float(tb))), stream=stream, backward=True)
                    ctx.flush_buffers()
                n = 0
                for frame in container.decode(stream):
                    qp = _frame_qp(frame, blocks=len(qps) % 4 == 0 and len(qps) < 4 * QP_MAP_FRAMES)
                    if qp is not None:
                        qps.append((frame.pict_type == av.video.frame.PictureType.I, *qp))
                    n += 1
                    if n >= per_start:
                        break
    except (av.error.FFmpegError, OSError, ValueError) as e:
        logger.warning("%s: cannot read quantisers: %s", path, e)
    if not qps or codec_name is None:
        return None
    key = [q for is_key, q, _ in qps if is_key]
    inter = [q for is_key, q, _ in qps if not is_key]
    blocks = [b for _, _, b in qps if b is not None]
    return QpStats(
        codec=codec_name,
        scale=QP_SCALES[codec_name],
        frames=len(qps),
        mean_qp=float(np.mean([q for _, q, _ in qps])),
        key_qp=float(np.mean(key)) if key else None,
        inter_qp=float(np.mean(inter)) if inter else None,
        block_qp=float(np.mean(blocks)) if blocks else None,
    )


def blockiness(image: np.ndarray, block: int = 8) -> float | None:
    """Mean luma step across the ``block`` grid over the mean step inside blocks.

    Args:
        image: an RGB uint8 frame (or a 2-D luma array) at its decoded size: rescaling
            moves the grid.
        block: the grid period in pixels (8 for JPEG, MPEG-2, H.264's 8x8 transform).

    Returns:
        About 1.0 without a grid, higher with one; ``None`` for an image too small or flat.
    """
    if image.ndim == 3:
        luma = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    else:
        luma = image
    y = luma.astype(np.float32)
    if min(y.shape) < 2 * block + 1:
        return None
    steps = []
    for axis in (1, 0):
        d = np.abs(np.diff(y, axis=axis))  # step between pixel i and i+1 along axis
        d = d.mean(axis=1 - axis)  # (n-1,) mean step at each position
        at_edge = (np.arange(d.size) % block) == block - 1  # between i = 8k-1 and 8k
        steps.append((float(d[at_edge].mean()), float(d[~at_edge].mean())))
    edge = sum(s[0] for s in steps) / 2
    inner = sum(s[1] for s in steps) / 2
    if inner < 1e-3:
        return None
    return edge / inner


def compression_level(bpp: float | None, codec: str | None, qp: QpStats | None = None) -> str:
    """A word for how hard the video was compressed: ``light``, ``moderate``, ``strong``, ``heavy``.

    From the frame quantiser when there is one (H.264: below 20, 20-27, 28-34, 35 and up; MPEG-2
    and the q-index codecs are mapped onto 0-51 first), else from bits per pixel per frame
    (>= 0.15 H.264-equivalent bpp, >= 0.07, >= 0.03, below; HEVC/VP9/AV1 count double).
    ``unknown`` without either. A rough guide, not a measurement of quality: bits also
    depend on content (a still scene needs few at any quality).
    """
    if qp is not None:
        q = qp.mean_qp * 51.0 / qp.scale
        if q < 20:
            return "light"
        if q < 28:
            return "moderate"
        if q < 35:
            return "strong"
        return "heavy"
    if bpp is None or bpp <= 0:
        return "unknown"
    equivalent = bpp * (2.0 if (codec or "").lower() in EFFICIENT_CODECS else 1.0)
    if equivalent >= 0.15:
        return "light"
    if equivalent >= 0.07:
        return "moderate"
    if equivalent >= 0.03:
        return "strong"
    return "heavy"
