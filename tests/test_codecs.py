"""Real-codec round trips and profiles (cre_models.codecs); ``cre degrade`` (cre_models.degrade)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from cre_models import codecs as C
from cre_models import degrade as D
from tests.conftest import SHARED_DATA, psnr, shared_data_path
from tests.synth import synth_frames, write_video
from worker.demo import sample_photo


@pytest.fixture(scope="module")
def frame720() -> np.ndarray:
    """A 1280x720 frame with a face (the bundled astronaut, letterboxed)."""
    return synth_frames(1, 1280, 720)[0]


@pytest.fixture(scope="module")
def faces() -> list[np.ndarray]:
    folder = SHARED_DATA / "faces" / "codeformer" / "cropped_faces"
    paths = sorted(folder.glob("0*.png"))[:6] if folder.is_dir() else []
    imgs = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths]  # type: ignore[arg-type]
    if not imgs:
        photo = sample_photo()
        imgs = [photo, photo[:256, :256], photo[256:, 256:], sample_photo("coffee")]
    return [cv2.resize(i, (256, 256), interpolation=cv2.INTER_AREA) for i in imgs]


def _mean_psnr(faces: list[np.ndarray], crf: int) -> float:
    return float(np.mean([psnr(f, C.encode_decode_frame(f, crf=crf)) for f in faces]))


def test_crf23_round_trip_of_a_720p_frame_is_faithful_and_crf40_is_visibly_worse(
    frame720: np.ndarray,
) -> None:
    out23 = C.encode_decode_frame(frame720, crf=23)
    out40 = C.encode_decode_frame(frame720, crf=40)
    assert out23.shape == frame720.shape and out23.dtype == np.uint8
    p23, p40 = psnr(frame720, out23), psnr(frame720, out40)
    assert p23 > 30
    assert p40 < p23 - 4, (p23, p40)


@pytest.mark.needs_shared
def test_crf23_round_trip_of_a_real_720p_video_frame() -> None:
    path = shared_data_path("videos", "unlabeled", "sample_3.mp4")
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert frame.shape == (720, 1280, 3)
    p23 = psnr(frame, C.encode_decode_frame(frame, crf=23))
    p40 = psnr(frame, C.encode_decode_frame(frame, crf=40))
    assert p23 > 30 and p40 < p23 - 3, (p23, p40)


def test_quality_falls_along_the_ladder(faces: list[np.ndarray]) -> None:
    crfs = [C.PROFILES[f"ladder-{i}"].crf[0] for i in (1, 3, 5)]
    assert crfs == [30, 35, 40]
    means = [_mean_psnr(faces, crf) for crf in crfs]
    assert means[0] > means[1] > means[2], means


def test_sequences_round_trip_in_order_with_h264_and_h265() -> None:
    frames = synth_frames(6, 96, 64)
    frames[3] = np.zeros_like(frames[3])  # a black frame must come back where it was
    for codec in C.CODECS:
        out = C.encode_decode(frames, codec=codec, crf=20, preset="ultrafast")
        assert len(out) == len(frames)
        scores = [psnr(f, o) for f, o in zip(frames, out, strict=True)]
        assert min(scores) > 28, (codec, scores)
        assert out[3].max() < 40 and out[2].mean() > 40


def test_odd_sizes_come_back_at_the_input_size() -> None:
    img = cv2.resize(sample_photo(), (77, 101))
    for codec in C.CODECS:
        out = C.encode_decode_frame(img, codec=codec, crf=18, preset="ultrafast")
        assert out.shape == img.shape
        assert psnr(img, out) > 28
    tiny = np.full((1, 1, 3), 200, np.uint8)
    assert C.encode_decode_frame(tiny, crf=10).shape == (1, 1, 3)


def test_max_side_downscales_and_restores(frame720: np.ndarray) -> None:
    small = C.encode_decode_frame(frame720, crf=23, max_side=320, restore_size=False)
    assert small.shape == (180, 320, 3)
    restored = C.encode_decode_frame(frame720, crf=23, max_side=320)
    assert restored.shape == frame720.shape
    assert psnr(frame720, restored) < psnr(frame720, C.encode_decode_frame(frame720, crf=23))
    assert C.fit_max_side(1920, 1080, 720) == (720, 406)
    assert C.fit_max_side(1080, 1920, 720) == (406, 720)
    assert C.fit_max_side(641, 479, 720) == (641, 479)  # already fits: untouched
    assert C.fit_max_side(641, 479, None) == (641, 479)


def test_round_trips_are_deterministic() -> None:
    frames = synth_frames(4, 128, 96)
    for codec in C.CODECS:
        a = C.encode_decode(frames, codec=codec, crf=30, preset="veryfast")
        b = C.encode_decode(frames, codec=codec, crf=30, preset="veryfast")
        assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_colour_order_is_kept() -> None:
    img = np.zeros((64, 64, 3), np.uint8)
    img[..., 0] = 200  # red
    img[..., 2] = 40
    out = C.encode_decode_frame(img, crf=23)
    r, g, b = out.reshape(-1, 3).mean(0)
    assert abs(r - 200) < 6 and g < 8 and abs(b - 40) < 6


def test_profiles_sample_with_an_explicit_generator() -> None:
    social = C.get_profile("social")
    assert social.max_side == 720 and social.codec == "libx264" and social.crf == (28, 35)
    draws = [social.sample(np.random.default_rng(s)).crf for s in range(60)]
    assert set(draws) == set(range(28, 36))
    assert social.sample(np.random.default_rng(3)) == social.sample(np.random.default_rng(3))
    assert [C.PROFILES[f"ladder-{i}"].crf[0] for i in range(1, 6)] == list(C.LADDER_CRFS)
    params = C.PROFILES["ladder-2"].sample(np.random.default_rng(0))
    assert params.to_dict() == {
        "artefact": "codec",
        "codec": "libx264",
        "crf": 32,
        "preset": "medium",
        "max_side": None,
    }


@pytest.mark.parametrize(
    "call",
    [
        lambda f: C.encode_decode_frame(f, codec="mpeg2video"),
        lambda f: C.encode_decode_frame(f, crf=60),
        lambda f: C.encode_decode_frame(f, crf=23.5),  # type: ignore[arg-type]
        lambda f: C.encode_decode_frame(f, preset="warp"),
        lambda f: C.encode_decode_frame(f.astype(np.float32)),
        lambda f: C.encode_decode_frame(f[..., 0]),
        lambda f: C.encode_decode_frame(f[:0]),
        lambda f: C.encode_decode([]),
        lambda f: C.encode_decode(f),
        lambda f: C.encode_decode([f, f[:32]]),
        lambda f: C.get_profile("tiktok-9000"),
        lambda f: C.CodecProfile("libx264", (35, 28)),
    ],
)
def test_bad_input_raises_value_error(call: Callable[[np.ndarray], object]) -> None:
    with pytest.raises(ValueError):
        call(np.zeros((48, 48, 3), np.uint8))


def _probe(path: Path) -> tuple[int, int, list[float], list[str]]:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        audio = [a.codec_context.name for a in c.streams.audio]
        times = [float(f.time) for f in c.decode(video=0)]
        return v.width, v.height, times, audio


def test_degrade_video_keeps_frames_timing_and_audio(tmp_path: Path) -> None:
    src = write_video(
        tmp_path / "in.mp4", width=320, height=240, seconds=1.0, fps=15, vfr=True, audio=True
    )
    out = tmp_path / "out.mp4"
    params = D.degrade_video(src, out, "ladder-5", seed=0, preset="ultrafast")
    assert params.crf == 40
    w, h, times, audio = _probe(out)
    w0, h0, times0, audio0 = _probe(src)
    assert (w, h) == (w0, h0) and audio == audio0 == ["aac"]
    assert times == pytest.approx(times0, abs=1e-3)  # variable frame rate survives
    assert psnr(*_first_frames(src, out)) < 45


def _first_frames(a: Path, b: Path) -> tuple[np.ndarray, np.ndarray]:
    frames = []
    for p in (a, b):
        with av.open(str(p)) as c:
            frames.append(next(c.decode(video=0)).to_ndarray(format="rgb24"))
    return frames[0], frames[1]


def test_degrade_video_social_caps_the_size_and_draws_crf_from_the_seed(tmp_path: Path) -> None:
    src = write_video(tmp_path / "wide.mp4", width=960, height=540, seconds=0.4, fps=10)
    a = D.degrade_video(
        src, tmp_path / "a.mkv", "social", seed=1, preset="ultrafast", keep_audio=False
    )
    b = D.degrade_video(src, tmp_path / "b.mkv", "social", seed=1, preset="ultrafast")
    assert a == b and 28 <= a.crf <= 35
    w, h, times, _ = _probe(tmp_path / "a.mkv")
    assert (w, h) == (720, 406) and len(times) == 4
    fa, fb = _first_frames(tmp_path / "a.mkv", tmp_path / "b.mkv")
    assert np.array_equal(fa, fb)  # same seed, same pictures


def test_degrade_video_handles_odd_sizes(tmp_path: Path) -> None:
    src = tmp_path / "odd.mkv"
    with av.open(str(src), "w") as container:  # ffv1 allows odd sizes, unlike yuv420p H.264
        stream = container.add_stream("ffv1", rate=10)
        stream.width, stream.height, stream.pix_fmt = 161, 121, "yuv444p"
        for img in synth_frames(3, 161, 121):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        container.mux(stream.encode(None))
    D.degrade_video(src, tmp_path / "odd.mp4", "c40", preset="ultrafast")
    w, h, times, _ = _probe(tmp_path / "odd.mp4")
    assert (w, h, len(times)) == (160, 120, 3)


def test_degrade_video_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown codec profile"):
        D.degrade_video(tmp_path / "x.mp4", tmp_path / "y.mp4", "nope")
    with pytest.raises(ValueError, match="does not exist"):
        D.degrade_video(tmp_path / "x.mp4", tmp_path / "y.mp4", "social")
    src = write_video(tmp_path / "in.mp4", seconds=0.2, fps=10)
    with pytest.raises(ValueError, match="differ"):
        D.degrade_video(src, src, "social")
    with pytest.raises(ValueError, match="crf"):
        D.degrade_video(src, tmp_path / "y.mp4", "social", crf=99)


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from worker.cli import main as cre

    src = write_video(tmp_path / "in.mp4", seconds=0.4, fps=10, audio=True)
    out = tmp_path / "out.mp4"
    assert (
        cre(["degrade", str(src), str(out), "--profile", "ladder-1", "--preset", "ultrafast"]) == 0
    )
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["crf"] == 30 and record["codec"] == "libx264" and out.is_file()
    assert _probe(out)[3] == ["aac"]
    assert cre(["degrade", str(src), str(tmp_path / "o.mp4"), "--profile", "nope"]) == 2
    assert "unknown codec profile" in capsys.readouterr().err
    assert cre(["degrade", "--list"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in C.PROFILES)
    assert cre(["degrade", str(src)]) == 2


def test_h265_profile_writes_hevc(tmp_path: Path) -> None:
    src = write_video(tmp_path / "in.mp4", width=160, height=120, seconds=0.3, fps=10)
    prof = C.CodecProfile("libx265", (30, 30), "ultrafast", None, "test")
    D.degrade_video(src, tmp_path / "out.mkv", prof)
    with av.open(str(tmp_path / "out.mkv")) as c:
        assert c.streams.video[0].codec_context.name == "hevc"
        assert c.streams.video[0].time_base is not None
        assert sum(1 for _ in c.decode(video=0)) == 3


def test_degrade_video_writes_only_complete_files(tmp_path: Path) -> None:
    from tests.synth import write_empty_video, write_video

    good = write_video(tmp_path / "in.mp4", width=64, height=48, seconds=0.5, fps=8)
    out = tmp_path / "out" / "copy.mp4"
    out.parent.mkdir()
    D.degrade_video(good, out, "ladder-5", 0, keep_audio=False)
    assert out.stat().st_size > 0 and D.longest_side(out) == 64
    assert sorted(p.name for p in out.parent.iterdir()) == ["copy.mp4"]
    empty = write_empty_video(tmp_path / "empty.mp4")
    failed = tmp_path / "out" / "failed.mp4"
    with pytest.raises(ValueError, match="no decodable video frames|no video stream"):
        D.degrade_video(empty, failed, "ladder-5", 0)
    assert sorted(p.name for p in out.parent.iterdir()) == ["copy.mp4"]
