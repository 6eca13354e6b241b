"""Whole videos through a codec profile: :func:`degrade_video` and ``cre degrade``.

:func:`degrade_video` streams a video through a profile of :mod:`cre_models.codecs` (frame
by frame, never holding the whole video), copies the audio stream(s) unchanged and keeps
the input's timestamps, so variable frame rate survives. ``cre degrade IN OUT --profile
NAME`` is its command line.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import av
import numpy as np

from .codecs import PRESETS, PROFILES, encoder_options, fit_max_side, get_profile
from .video import video_stream

if TYPE_CHECKING:
    from .codecs import CodecParams, CodecProfile

__all__ = ["longest_side", "degrade_video", "main"]

logger = logging.getLogger(__name__)


def longest_side(path: str | Path) -> int:
    """The longer of a video's coded width and height (first video stream)."""
    with av.open(str(path)) as c:
        if not c.streams.video:
            raise ValueError(f"{path} has no video stream")
        cc = video_stream(c).codec_context
        return max(cc.width, cc.height)


def degrade_video(
    in_path: str | Path,
    out_path: str | Path,
    profile: str | CodecProfile = "social",
    seed: int | np.random.Generator | None = 0,
    *,
    crf: int | None = None,
    preset: str | None = None,
    keep_audio: bool = True,
    threads: int | None = None,
) -> CodecParams:
    """Write a copy of a video re-encoded the way ``profile`` says; return what was applied.

    Frames are decoded, resized (if the profile caps the size) and re-encoded one at a
    time, so memory does not grow with the video's length. Timestamps are kept (variable
    frame rate survives); audio streams are copied without re-encoding when
    ``keep_audio``. The output container follows ``out_path``'s extension (``.mp4``,
    ``.mkv``, ``.mov``). Rotation metadata is not copied: frames are written as coded.
    The file appears at ``out_path`` only once it is complete.

    Args:
        in_path: input video.
        out_path: output file (overwritten).
        profile: a name from :data:`PROFILES` or a :class:`CodecProfile`.
        seed: seed or generator for the CRF drawn from the profile's range.
        crf: override the drawn CRF.
        preset: override the profile's preset.
        keep_audio: copy audio streams.
        threads: encoder threads (``None``: all cores).

    Returns:
        The :class:`CodecParams` used (``max_side`` as in the profile).

    Raises:
        ValueError: unknown profile, bad override, missing input, no video stream.
    """
    prof = get_profile(profile)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    params = prof.sample(rng)
    if crf is not None or preset is not None:
        params = replace(
            params, crf=params.crf if crf is None else crf, preset=preset or params.preset
        )
    in_path, out_path = Path(in_path), Path(out_path)
    if not in_path.is_file():
        raise ValueError(f"input video {in_path} does not exist")
    if in_path.resolve() == out_path.resolve():
        raise ValueError("output path must differ from the input path")

    # written under a per-process name and renamed when complete: an interrupted or failed
    # run never leaves a half-written file at out_path, and two processes making the same
    # copy do not write into one file
    tmp = out_path.with_name(f"{out_path.stem}.tmp{os.getpid()}{out_path.suffix}")
    try:
        with av.open(str(in_path)) as src:
            if not src.streams.video:
                raise ValueError(f"{in_path} has no video stream")
            vin = video_stream(src)
            width, height = vin.codec_context.width, vin.codec_context.height
            ow, oh = fit_max_side(width, height, params.max_side)
            ow, oh = ow - ow % 2, oh - oh % 2  # yuv420p: an odd size loses its last row/column
            rate = vin.average_rate or vin.guessed_rate or Fraction(25)
            audio_in = list(src.streams.audio) if keep_audio else []
            with av.open(str(tmp), mode="w") as dst:
                opts = encoder_options(params.codec, params.crf, params.preset, threads)
                vout = dst.add_stream(params.codec, rate=rate, options=opts)
                assert isinstance(vout, av.VideoStream)
                vout.width, vout.height = ow, oh
                vout.pix_fmt = "yuv420p"
                tb = vin.time_base or Fraction(1, 90000)
                vout.codec_context.time_base = tb
                audio_map = {}
                for a in audio_in:
                    try:
                        audio_map[a.index] = dst.add_stream_from_template(a)
                    except (ValueError, av.FFmpegError) as exc:  # codec the container cannot hold
                        logger.warning("dropping audio stream %d: %s", a.index, exc)
                n = 0
                last_pts = None
                for packet in src.demux(vin, *audio_in):
                    if packet.stream.index in audio_map:
                        if packet.dts is None:
                            continue
                        packet.stream = audio_map[packet.stream.index]
                        dst.mux(packet)
                        continue
                    for frame in packet.decode():
                        assert isinstance(frame, av.VideoFrame)
                        out = frame.reformat(ow, oh, format="yuv420p", interpolation="AREA")
                        pts = frame.pts
                        if pts is None or (last_pts is not None and pts <= last_pts):
                            pts = 0 if last_pts is None else last_pts + 1
                        out.pts, out.time_base = pts, tb
                        last_pts = pts
                        dst.mux(vout.encode(out))
                        n += 1
                dst.mux(vout.encode(None))
        logger.info(
            "degraded %s -> %s: %d frames, %dx%d -> %dx%d, %s",
            in_path,
            out_path,
            n,
            width,
            height,
            ow,
            oh,
            params.to_dict(),
        )
        if n == 0:
            raise ValueError(f"{in_path} has no decodable video frames")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(out_path)
    return params


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cre degrade",
        description="Write a copy of a video re-encoded the way a platform or benchmark would.",
        epilog="profiles:\n" + "\n".join(f"  {k:<12} {v.description}" for k, v in PROFILES.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", type=Path, nargs="?", help="input video")
    p.add_argument("output", type=Path, nargs="?", help="output video (.mp4, .mkv, .mov)")
    p.add_argument("--profile", default="social", help="profile name (default: social)")
    p.add_argument("--seed", type=int, default=0, help="seed for the CRF drawn from the profile")
    p.add_argument("--crf", type=int, default=None, help="override the profile's CRF")
    p.add_argument("--preset", default=None, choices=PRESETS, help="override the profile's preset")
    p.add_argument("--no-audio", action="store_true", help="drop audio instead of copying it")
    p.add_argument("--threads", type=int, default=None, help="encoder threads (default: all)")
    p.add_argument("--list", action="store_true", help="list the profiles and exit")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``cre degrade IN OUT --profile NAME``: print the applied parameters as JSON."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.list:
        for name, prof in PROFILES.items():
            print(f"{name:<12} {prof.description}")
        return 0
    if args.input is None or args.output is None:
        parser.print_usage(sys.stderr)
        print("cre degrade: error: INPUT and OUTPUT are required", file=sys.stderr)
        return 2
    try:
        params = degrade_video(
            args.input,
            args.output,
            args.profile,
            seed=args.seed,
            crf=args.crf,
            preset=args.preset,
            keep_audio=not args.no_audio,
            threads=args.threads,
        )
    except ValueError as exc:
        print(f"cre degrade: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"input": str(args.input), "output": str(args.output), **params.to_dict()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
