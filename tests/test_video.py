"""cre_models.video + sampling: probe, limits, timestamp sampling, seeking, rotation, bad inputs."""

from __future__ import annotations

import bisect
import dataclasses
from pathlib import Path

import av
import numpy as np
import pytest

from benchmarks.bench_decode import decode_floor_seconds
from cre_models.errors import (
    CorruptVideoError,
    InputError,
    LimitExceededError,
    NoVideoStreamError,
    TruncatedVideoError,
    UnsupportedInputError,
)
from cre_models.sampling import sample_frames, sample_targets
from cre_models.video import SampleStats, VideoInfo, VideoLimits, probe_video, scan_packets
from tests.synth import (
    write_audio_only,
    write_empty_video,
    write_video,
    write_video_without_timestamps,
)
from worker.settings import Settings

av.logging.set_level(av.logging.PANIC)  # damaged inputs make FFmpeg log loudly


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small clips shared by the tests of this module (about 1 s to make, in all)."""
    d = tmp_path_factory.mktemp("videos")
    return {
        "clip": write_video(d / "clip.mp4", width=160, height=120, seconds=2, fps=15),
        "faststart": write_video(
            d / "fs.mp4", width=160, height=120, seconds=4, fps=15, faststart=True, audio=True
        ),
        "vfr": write_video(d / "vfr.mp4", width=96, height=64, seconds=3, fps=20, vfr=True),
        "long_short_gop": write_video(
            d / "long.mp4", width=64, height=48, seconds=30, fps=10, gop=10, face=False
        ),
        "short_long_gop": write_video(d / "short.mp4", width=64, height=48, seconds=4, fps=15),
        "tiny": write_video(d / "tiny.mp4", width=64, height=48, seconds=1, fps=10),
        "mkv": write_video(d / "clip.mkv", width=96, height=64, seconds=2, fps=15),
    }


def _limits(**overrides: object) -> VideoLimits:
    return VideoLimits(**overrides)  # type: ignore[arg-type]


def _sample(path: Path, n: int, limits: VideoLimits | None = None) -> tuple[list, SampleStats]:
    limits = limits or _limits()
    info = probe_video(path, limits)
    stats = SampleStats()
    return list(sample_frames(path, info, n, limits, stats=stats)), stats


def _reference(path: Path) -> tuple[list[float], list[np.ndarray]]:
    """Every frame of the file, in presentation order, decoded plainly by PyAV."""
    with av.open(str(path)) as c:
        frames = [(f.time, f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]
    frames.sort(key=lambda x: x[0])
    return [t for t, _ in frames], [img for _, img in frames]


# --- probe ---------------------------------------------------------------------------------


def test_probe_describes_the_clip(videos: dict[str, Path]) -> None:
    info = probe_video(videos["faststart"], _limits())
    assert isinstance(info, VideoInfo)
    assert (info.width, info.height, info.rotation) == (160, 120, 0)
    assert info.codec == "h264" and "mp4" in info.container
    assert info.duration_s == pytest.approx(4.0, abs=0.1)
    assert info.fps == pytest.approx(15.0)
    assert info.frames_expected == 60
    assert info.has_audio
    assert info.size_bytes == videos["faststart"].stat().st_size
    assert not probe_video(videos["clip"], _limits()).has_audio


def test_probe_mkv_has_no_frame_count(videos: dict[str, Path]) -> None:
    info = probe_video(videos["mkv"], _limits())
    assert info.container == "matroska,webm"
    assert info.frames_expected is None
    frames, stats = _sample(videos["mkv"], 8)
    assert len(frames) == 8 and stats.packets == 30


# --- sampling ------------------------------------------------------------------------------


def test_sample_targets_are_segment_centres() -> None:
    assert sample_targets(1.0, 4.0, 4) == pytest.approx([1.5, 2.5, 3.5, 4.5])
    with pytest.raises(ValueError):
        sample_targets(0.0, 1.0, 0)


def test_frames_are_the_ones_on_screen_at_each_target(videos: dict[str, Path]) -> None:
    """Against a decode-all reference, for a clip with irregular frame durations (VFR)."""
    path = videos["vfr"]
    ref_times, ref_images = _reference(path)
    gaps = np.diff(ref_times)
    assert gaps.min() < 0.8 * gaps.max()  # really variable frame rate
    frames, stats = _sample(path, 16)
    assert not stats.all_frames and not stats.damaged
    targets = sample_targets(ref_times[0], stats_span(path), 16)
    assert [f.index for f in frames] == list(range(len(frames)))
    assert len(frames) >= 14  # at most a couple of targets share a frame
    for f in frames:
        assert min(abs(f.target_s - t) for t in targets) < 1e-9
        i = bisect.bisect_right(ref_times, f.target_s + 1e-6) - 1
        assert f.time_s == pytest.approx(ref_times[i])
        np.testing.assert_array_equal(f.image, ref_images[i])
    times = [f.time_s for f in frames]
    assert times == sorted(set(times))  # in order, never twice


def stats_span(path: Path) -> float:
    return scan_packets(path, _limits()).duration_s


def test_index_or_fps_would_be_wrong_for_vfr(videos: dict[str, Path]) -> None:
    """The VFR clip is one where index / fps misplaces frames (so the test above means it)."""
    ref_times, _ = _reference(videos["vfr"])
    fps = probe_video(videos["vfr"], _limits()).fps
    assert fps is not None
    by_index = np.arange(len(ref_times)) / fps
    assert np.abs(by_index - np.asarray(ref_times)).max() > 0.1


def test_long_clip_with_short_gop_seeks(videos: dict[str, Path]) -> None:
    frames, stats = _sample(videos["long_short_gop"], 8)
    assert len(frames) == 8
    assert stats.keyframes >= 25 and stats.seeks >= 6
    assert stats.frames_decoded < stats.packets / 3  # most of the video never decoded
    ref_times, ref_images = _reference(videos["long_short_gop"])
    for f in frames:
        i = bisect.bisect_right(ref_times, f.target_s + 1e-6) - 1
        assert f.time_s == pytest.approx(ref_times[i])
        np.testing.assert_array_equal(f.image, ref_images[i])


def test_short_clip_with_long_gop_decodes_straight_through(videos: dict[str, Path]) -> None:
    frames, stats = _sample(videos["short_long_gop"], 8)
    assert len(frames) == 8
    assert stats.keyframes == 1 and stats.seeks == 0
    assert stats.frames_decoded >= stats.packets - 8  # nothing skipped by seeking


def test_fewer_frames_than_requested_returns_each_once(videos: dict[str, Path]) -> None:
    frames, stats = _sample(videos["tiny"], 32)
    assert stats.all_frames and stats.packets == 10
    assert len(frames) == stats.frames_returned == 10
    assert [f.time_s for f in frames] == pytest.approx([i / 10 for i in range(10)])
    assert all(f.target_s == f.time_s for f in frames)


def test_settings_make_the_limits() -> None:
    """CRE_* settings reach the sampler as one VideoLimits; their defaults are its defaults."""
    assert Settings().video_limits() == VideoLimits()
    limits = Settings(
        max_pixels=1000, accepted_formats="mp4, matroska", accepted_codecs="h264,", decode_threads=2
    ).video_limits()
    assert limits.max_pixels == 1000 and limits.decode_threads == 2
    assert limits.formats == ("mp4", "matroska") and limits.codecs == ("h264",)
    assert limits.format_whitelist == "mp4,matroska"
    with pytest.raises(ValueError):
        VideoLimits(formats=())


def test_images_are_rgb_uint8(videos: dict[str, Path]) -> None:
    frames, _ = _sample(videos["clip"], 4)
    for f in frames:
        assert f.image.dtype == np.uint8 and f.image.shape == (120, 160, 3)
        assert f.image.flags.c_contiguous
    # The synthetic face photo is warm-toned: red dominates blue (catches a BGR mix-up).
    mean = np.mean([f.image.reshape(-1, 3).mean(0) for f in frames], axis=0)
    assert mean[0] > mean[2]


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotated_video_comes_out_upright(tmp_path: Path, rotation: int) -> None:
    upright = write_video(tmp_path / "up.mp4", width=96, height=64, seconds=0.5, fps=10)
    rotated = write_video(
        tmp_path / "rot.mp4", width=96, height=64, seconds=0.5, fps=10, rotation=rotation
    )
    info = probe_video(rotated, _limits())
    assert info.rotation == rotation
    assert (info.width, info.height) == (96, 64)
    want, _ = _sample(upright, 3)
    got, _ = _sample(rotated, 3)
    for w, g in zip(want, got, strict=True):
        assert g.image.shape == (64, 96, 3)
        err = np.abs(g.image.astype(int) - w.image.astype(int)).mean()
        flipped = np.abs(np.rot90(g.image, 2).astype(int) - w.image.astype(int)).mean()
        assert err < 6 < flipped


def test_decode_threads_do_not_change_the_frames(videos: dict[str, Path]) -> None:
    one, _ = _sample(videos["clip"], 6, _limits(decode_threads=1))
    two, _ = _sample(videos["clip"], 6, _limits(decode_threads=2))
    assert [f.time_s for f in one] == [f.time_s for f in two]
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a.image, b.image)


def test_decode_floor(videos: dict[str, Path]) -> None:
    assert decode_floor_seconds(videos["clip"], _limits()) > 0


# --- bad inputs ----------------------------------------------------------------------------


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        probe_video(tmp_path / "nope.mp4", _limits())


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="directory"):
        probe_video(tmp_path, _limits())


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "e.mp4").touch()
    with pytest.raises(InputError, match="empty"):
        probe_video(tmp_path / "e.mp4", _limits())


def test_random_bytes_named_mp4(tmp_path: Path) -> None:
    path = tmp_path / "r.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    with pytest.raises(UnsupportedInputError):
        probe_video(path, _limits())


def test_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 100)
    with pytest.raises(UnsupportedInputError):
        probe_video(path, _limits())


def test_mp4_cut_in_half_moov_at_end(tmp_path: Path, videos: dict[str, Path]) -> None:
    data = videos["clip"].read_bytes()
    assert data.find(b"moov") > len(data) // 2  # the index really is at the end
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(TruncatedVideoError):
        probe_video(path, _limits())


def test_faststart_mp4_cut_in_half_is_truncated(tmp_path: Path, videos: dict[str, Path]) -> None:
    data = videos["faststart"].read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")  # index first: the cut file still opens
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: len(data) // 2])
    limits = _limits()
    info = probe_video(path, limits)  # the header still promises the whole clip
    assert info.frames_expected == 60
    with pytest.raises(TruncatedVideoError, match="of the 60 frames"):
        list(sample_frames(path, info, 8, limits))


def test_missing_frames_at_decode_time_are_truncation(
    tmp_path: Path, videos: dict[str, Path]
) -> None:
    """All packets listed, but the tail of the media data zeroed: fewer frames decode."""
    data = bytearray(videos["faststart"].read_bytes())
    start = data.find(b"mdat") + 4
    cut = start + (len(data) - start) // 2
    data[cut:] = bytes(len(data) - cut)
    path = tmp_path / "zeroed.mp4"
    path.write_bytes(bytes(data))
    limits = _limits()
    info = probe_video(path, limits)
    with pytest.raises(CorruptVideoError):  # TruncatedVideoError or too many bad packets
        list(sample_frames(path, info, 8, limits))


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_bit_flips_are_reported_or_refused(
    tmp_path: Path, videos: dict[str, Path], seed: int
) -> None:
    rng = np.random.default_rng(seed)
    data = bytearray(videos["faststart"].read_bytes())
    for pos in rng.integers(0, len(data), 200):
        data[pos] ^= 1 << int(rng.integers(8))
    path = tmp_path / "flipped.mp4"
    path.write_bytes(bytes(data))
    limits = _limits()
    try:
        info = probe_video(path, limits)
        stats = SampleStats()
        frames = list(sample_frames(path, info, 8, limits, stats=stats))
    except InputError:
        return  # refused with a clear, typed error
    assert frames and stats.damaged  # decoded, and says the input was damaged


def test_audio_only(tmp_path: Path) -> None:
    path = write_audio_only(tmp_path / "song.mp4")
    with pytest.raises(NoVideoStreamError, match="audio"):
        probe_video(path, _limits())


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_zero_frames(tmp_path: Path, suffix: str) -> None:
    path = write_empty_video(tmp_path / f"empty{suffix}")
    assert path.stat().st_size > 0
    with pytest.raises((NoVideoStreamError, TruncatedVideoError)):
        probe_video(path, _limits())


@pytest.mark.parametrize("frames", [8, 40])  # fewer and more frames than sampled
def test_frames_that_share_one_timestamp_are_damaged_timestamps(
    tmp_path: Path, frames: int
) -> None:
    """Sampling is by time: 40 frames at time 0 cannot be told apart. Before, the clip was
    scored from one frame with the warning that the video is shorter than asked."""
    path = write_video_without_timestamps(tmp_path / "zero_pts.mp4", frames=frames)
    index = scan_packets(path, _limits())
    assert index.packets == frames and index.distinct_times == 1
    info = probe_video(path, _limits())
    with pytest.raises(CorruptVideoError, match="damaged timestamps"):
        list(sample_frames(path, info, 16, _limits()))


def test_over_pixel_limit_by_setting(videos: dict[str, Path]) -> None:
    with pytest.raises(LimitExceededError, match="pixels"):
        probe_video(videos["clip"], _limits(max_pixels=160 * 120 - 1))
    probe_video(videos["clip"], _limits(max_pixels=160 * 120))


def test_decoder_pixel_cap(videos: dict[str, Path]) -> None:
    """The decoder's own max_pixels refuses a frame even if the probe was passed."""
    info = probe_video(videos["clip"], _limits())
    with pytest.raises(LimitExceededError):
        list(sample_frames(videos["clip"], info, 4, _limits(max_pixels=1000)))


def test_real_8000x8000_video(tmp_path: Path) -> None:
    path = tmp_path / "huge.mp4"
    with av.open(str(path), "w") as out:  # one flat frame: cheap to encode (~0.5 s)
        stream = out.add_stream("libx264", rate=1)
        assert isinstance(stream, av.video.stream.VideoStream)
        stream.width = stream.height = 8000
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast"}
        frame = av.VideoFrame(8000, 8000, "yuv420p")
        frame.pts = 0
        for packet in [*stream.encode(frame), *stream.encode()]:
            out.mux(packet)
    with pytest.raises(LimitExceededError, match="8000x8000"):
        probe_video(path, _limits())


def test_over_duration_limit(videos: dict[str, Path]) -> None:
    with pytest.raises(LimitExceededError, match="lasts"):
        probe_video(videos["clip"], _limits(max_duration_s=1.5))


def test_over_file_size_limit(videos: dict[str, Path]) -> None:
    with pytest.raises(LimitExceededError, match="bytes"):
        probe_video(videos["clip"], _limits(max_file_bytes=1000))


def test_hls_playlist_pointing_at_local_files(tmp_path: Path, videos: dict[str, Path]) -> None:
    playlist = tmp_path / "list.m3u8"
    playlist.write_text(
        f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n{videos['clip']}\n#EXT-X-ENDLIST\n"
    )
    with pytest.raises(UnsupportedInputError, match="HLS"):
        probe_video(playlist, _limits())


def test_ffmpeg_whitelists_refuse_protocols_and_playlists(
    tmp_path: Path, videos: dict[str, Path]
) -> None:
    """The option names themselves work in this PyAV/FFmpeg (not only our sniffing)."""
    from cre_models.video import _container_options

    options = _container_options(_limits())
    playlist = tmp_path / "list.m3u8"
    playlist.write_text(f"#EXTM3U\n#EXTINF:2.0,\n{videos['clip']}\n#EXT-X-ENDLIST\n")
    clip = videos["clip"]
    for name in [str(playlist), f"concat:{clip}|{clip}", "http://127.0.0.1:9/x.mp4"]:
        with pytest.raises(av.error.FFmpegError):
            av.open(name, options=options).close()
    av.open(str(clip), options=options).close()  # a plain file still opens


def test_protocol_like_file_names_are_files(
    tmp_path: Path, videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A local file literally named like an FFmpeg protocol is read as a plain file."""
    monkeypatch.chdir(tmp_path)
    weird = Path("concat:x.mp4")
    weird.write_bytes(videos["clip"].read_bytes())
    assert probe_video(weird, _limits()).frames_expected == 30
    with pytest.raises(InputError, match="not found"):
        probe_video(Path(f"concat:{videos['clip']}|{videos['clip']}"), _limits())


def test_the_seed_changes_a_synthetic_face_clip(tmp_path: Path) -> None:
    """Two seeds give two clips (the pan starts elsewhere); one seed, the same bytes."""
    a, b, c = (
        write_video(tmp_path / f"{name}.mp4", width=64, height=48, seconds=0.5, fps=10, seed=s)
        for name, s in (("a", 0), ("b", 1), ("c", 0))
    )
    assert a.read_bytes() == c.read_bytes()
    assert a.read_bytes() != b.read_bytes()


def test_mpeg_program_stream_is_accepted(tmp_path: Path) -> None:
    """``.mpg`` / ``.mpeg`` are among the extensions a folder submits: the default demuxer
    list must open them (MPEG-2 video in an MPEG program stream, as cameras and DVDs write)."""
    from tests.synth import pan_frames
    from worker.submit import VIDEO_EXTENSIONS

    assert {".mpg", ".mpeg"} <= set(VIDEO_EXTENSIONS)
    path = tmp_path / "clip.mpg"
    with av.open(str(path), mode="w", format="mpeg") as out:
        stream = out.add_stream("mpeg2video", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for img in pan_frames(25, 320, 240, face=True, seed=0):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(stream.encode())
    info = probe_video(path, VideoLimits())
    assert (info.width, info.height) == (320, 240) and info.duration_s == pytest.approx(
        1.0, abs=0.1
    )
    frames = list(sample_frames(path, info, 4, VideoLimits()))
    assert len(frames) == 4


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_the_main_video_stream_is_read_not_a_small_first_one(tmp_path: Path, suffix: str) -> None:
    """A thumbnail or second angle before the main video (stream 0 = 160x120 one-frame
    picture, stream 1 = the 320x240 clip with a face): probe and sampler read the main one."""
    from fractions import Fraction

    from tests.synth import pan_frames

    path = tmp_path / f"two{suffix}"
    tick = Fraction(1, 10)
    with av.open(str(path), mode="w") as out:
        thumb = out.add_stream("libx264", rate=10)
        main = out.add_stream("libx264", rate=10)
        for s, (w, h) in ((thumb, (160, 120)), (main, (320, 240))):
            s.width, s.height, s.pix_fmt = w, h, "yuv420p"
            s.codec_context.time_base = tick
        grey = np.full((120, 160, 3), 200, np.uint8)
        for i, img in enumerate(pan_frames(20, 320, 240, face=True, seed=0)):
            for s, im in ((thumb, grey), (main, img)):
                frame = av.VideoFrame.from_ndarray(im, format="rgb24")
                frame.pts, frame.time_base = i, tick
                out.mux(s.encode(frame))
        for s in (thumb, main):
            out.mux(s.encode())
    info = probe_video(path, VideoLimits())
    assert (info.width, info.height) == (320, 240)
    frames = list(sample_frames(path, info, 4, VideoLimits()))
    assert len(frames) == 4 and all(f.image.shape == (240, 320, 3) for f in frames)
    from worker.report.inputstats import packet_stats  # the report reads the same stream

    facts = packet_stats(path, VideoLimits())
    assert (facts.coded_width, facts.coded_height, facts.packets) == (320, 240, 20)


def test_a_span_far_past_the_header_is_damage_not_a_long_video() -> None:
    """A bit flip in one timestamp of a 3 s clip makes its packets span days: ``corrupt``
    (damaged timestamps), not ``limit_exceeded`` (a video too long)."""
    from cre_models.sampling import _check_index
    from cre_models.video import KeyframeIndex

    info = VideoInfo(
        path=Path("x.mp4"),
        container="mov,mp4",
        codec="h264",
        width=320,
        height=240,
        rotation=0,
        duration_s=3.0,
        fps=10.0,
        frames_expected=30,
        has_audio=False,
        size_bytes=1000,
    )
    index = KeyframeIndex(30, 0.0, 393219.0, [0.0], [0], distinct_times=30)
    with pytest.raises(CorruptVideoError, match="damaged timestamps"):
        _check_index(index, info, VideoLimits())
    no_header = dataclasses.replace(info, duration_s=0.0)  # nothing to compare: a long video
    with pytest.raises(LimitExceededError):
        _check_index(index, no_header, VideoLimits())


def test_a_stream_without_its_keyframe_is_corrupt_not_missing(tmp_path: Path) -> None:
    """Packets but no decodable frame (the only keyframe lost, as in a clip cut mid-GOP):
    ``corrupt``, not "no video stream"; a cut file without a packet left: ``truncated``."""
    source = write_video(tmp_path / "src.mp4", seconds=1.0, fps=10, gop=1000)
    cut = tmp_path / "no_keyframe.mp4"
    with av.open(str(source)) as src, av.open(str(cut), mode="w") as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.size and not packet.is_keyframe:
                packet.stream = stream
                out.mux(packet)
    with pytest.raises(CorruptVideoError, match="packets gave no frame"):
        probe_video(cut, _limits())
    data = source.read_bytes()  # moov at the end: cut its last bytes
    (tmp_path / "cut.mp4").write_bytes(data[:-100])
    with pytest.raises(TruncatedVideoError):
        probe_video(tmp_path / "cut.mp4", _limits())


def test_frames_lost_with_their_keyframe_are_damage_not_truncation(tmp_path: Path) -> None:
    """A clip that starts after its first keyframe (cut mid-GOP): the decoder drops the
    frames that needed it, silently. Every packet was read, so the file is not cut: the
    rest is scored, with the lost frames counted as damaged."""
    source = write_video(tmp_path / "src.mp4", seconds=3.0, fps=10, gop=10)
    cut = tmp_path / "starts_mid_gop.mp4"
    with av.open(str(source)) as src, av.open(str(cut), mode="w") as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        for i, packet in enumerate(src.demux(src.streams.video[0])):
            if packet.size and i >= 2:  # the first keyframe and the frame after it gone
                packet.stream = stream
                out.mux(packet)
    frames, stats = _sample(cut, 32)
    assert stats.reached_end and stats.seeks == 0
    assert 15 <= len(frames) < 28 and stats.damaged and stats.decode_errors >= 2


def test_a_frame_size_that_grows_past_the_limit_mid_stream_is_over_the_limit(
    tmp_path: Path,
) -> None:
    """The decoder refuses frames over the pixel cap; when the stream's size changed to
    such frames, that is the limit, not damaged packets to skip."""
    from fractions import Fraction

    from tests.synth import pan_frames

    def part(path: Path, w: int, h: int, first_pts: int, n: int) -> bytes:
        with av.open(str(path), mode="w", format="mpegts") as out:
            s = out.add_stream("libx264", rate=10)
            s.width, s.height, s.pix_fmt = w, h, "yuv420p"
            s.codec_context.time_base = Fraction(1, 10)
            for i, img in enumerate(pan_frames(n, w, h, face=False, seed=1)):
                frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                frame.pts, frame.time_base = first_pts + i, Fraction(1, 10)
                out.mux(s.encode(frame))
            out.mux(s.encode())
        return path.read_bytes()

    clip = tmp_path / "grows.ts"
    clip.write_bytes(
        part(tmp_path / "a.ts", 160, 120, 0, 15) + part(tmp_path / "b.ts", 640, 480, 15, 15)
    )
    limits = dataclasses.replace(_limits(), max_pixels=320 * 240)
    info = probe_video(clip, limits)
    assert (info.width, info.height) == (160, 120)
    with pytest.raises(LimitExceededError, match="changes to 640x480"):
        list(sample_frames(clip, info, 8, limits))
    roomy = dataclasses.replace(_limits(), max_pixels=640 * 480)  # within the limit: noted
    frames, stats = _sample(clip, 8, roomy)
    assert stats.frame_sizes == [(160, 120), (640, 480)]
    assert {f.image.shape[:2] for f in frames} == {(120, 160), (480, 640)}


def test_a_trim_without_re_encoding_is_neither_damaged_nor_cut(tmp_path: Path) -> None:
    """A clip cut without re-encoding keeps its GOP's start before the first shown frame,
    marked for discard by an edit list: those packets give no frame by design. The clip's
    shown frames are sampled, from its shown time span, with no damage reported."""
    source = write_video(tmp_path / "src.mp4", seconds=6.0, fps=10, gop=60, face=False)
    trimmed = tmp_path / "trimmed.mp4"
    with av.open(str(source)) as src, av.open(str(trimmed), mode="w") as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.size:
                assert packet.pts is not None and packet.dts is not None
                packet.pts -= 20 * packet.duration  # the first 2 s before the cut
                packet.dts -= 20 * packet.duration
                packet.stream = stream
                out.mux(packet)
    from cre_models.video import scan_packets

    index = scan_packets(trimmed, _limits())
    assert index.discarded == 20 and index.packets == 60
    assert index.start_s == pytest.approx(0.0, abs=0.05)
    frames, stats = _sample(trimmed, 32)
    assert len(frames) == 32 and not stats.damaged and stats.decode_errors == 0
    assert min(f.time_s for f in frames) >= 0.0
