"""One path from video to model input: the training cache, the evaluation and the worker
crop a face identically; ``cre train-videos`` and ``cre eval --videos --fit`` run end to end
on tiny generated clips (tiny configs: the numbers mean nothing, the plumbing is tested)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch

from cre_models.faces import FaceDetector
from cre_models.training.cache import CacheSpec, cache_video, load_cached
from cre_models.training.splits import Clip
from tests.synth import write_video
from worker.settings import Settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("videos")
    rows = ["file\tlabel\tmethod"]
    for i, (label, method) in enumerate(
        [("real", "youtube"), ("fake", "Deepfakes"), ("real", "youtube"), ("fake", "Face2Face")]
    ):
        name = f"{label}/{i:03d}.mp4"
        (root / label).mkdir(exist_ok=True)
        write_video(root / name, width=256, height=192, seconds=1.0, fps=8, seed=i, crf=20 + 8 * i)
        rows.append(f"{name}\t{label}\t{method}")
    labels = root / "labels.tsv"
    labels.write_text("\n".join(rows) + "\n")
    split = root / "split.json"
    split.write_text(
        json.dumps(
            {
                "clips": {
                    "real/000.mp4": "train",
                    "fake/001.mp4": "train",
                    "real/002.mp4": "validation",
                    "fake/003.mp4": "validation",
                }
            }
        )
    )
    return root, labels


def test_training_cache_and_worker_give_the_same_tensor(
    clips: tuple[Path, Path], tmp_path: Path
) -> None:
    from cre_models.sampling import sample_frames
    from cre_models.video import probe_video
    from worker.scoring import Scorer

    root, _ = clips
    video = root / "real/000.mp4"
    scorer = Scorer(Settings(weights="default"))
    spec = CacheSpec(
        size=scorer.transform.size,
        margin=scorer.transform.margin,
        align=scorer.transform.align,
        frames=4,
        detect_max_side=scorer.detector.max_side,
        detect_score_threshold=scorer.detector.score_threshold,
        min_face_px=scorer.detector.min_face_px,
        detect_full_every=scorer.detect_full_every,
        detect_region_face_px=scorer.region_face_px,
    )
    assert spec.detect_full_every > 1  # the region path is what is compared
    out = tmp_path / "c.npz"
    n = cache_video(video, spec, FaceDetector(**_detector_args(scorer)), out)
    assert n == 4
    cached = np.load(out)["crops"]
    # the worker: its sampler, its detector, its crop (what score_video and cre eval run)
    limits = Settings().video_limits()
    frames = list(sample_frames(video, probe_video(video, limits), 4, limits))
    roi = scorer.roi_detector()
    assert roi is not None
    worker_crops = [scorer.crop(f.image, roi.detect(f.image)[:1])[0] for f in frames]
    assert roi.stats.region > 0
    assert torch.equal(scorer.transform.to_tensor(cached), scorer.transform.to_tensor(worker_crops))


def _detector_args(scorer: object) -> dict[str, object]:
    d = scorer.detector  # type: ignore[attr-defined]
    return {
        "max_side": d.max_side,
        "score_threshold": d.score_threshold,
        "min_face_px": d.min_face_px,
    }


def test_train_videos_then_eval_videos_fit(clips: tuple[Path, Path], tmp_path: Path) -> None:
    from cre_models.training.cli import main as train_main
    from cre_models.weights import load_checkpoint_config
    from worker.evaluate import main as eval_main

    root, labels = clips
    split = root / "split.json"
    out = tmp_path / "run"
    args = ["--data", str(root), "--labels", str(labels), "--split", str(split)]
    tiny = ["--frames", "3", "--steps", "2", "--batch-size", "4", "--eval-every", "1"]
    tiny += ["--rgb-stream", "seed", "--size", "64", "--threads", "1", "--warmup", "1"]
    cache = tmp_path / "cache"
    with pytest.raises(SystemExit, match="deg-copies"):
        train_main(
            [*args, "--out", str(out), "--cache-dir", str(cache), *tiny, "--deg-copies", "0"]
        )
    with pytest.raises(SystemExit, match="residual-norm"):  # refused before any caching
        train_main(
            [*args, "--out", str(out), "--cache-dir", str(cache), *tiny, "--residual-norm", "l1"]
        )
    with pytest.raises(SystemExit, match="detail_px"):
        train_main([*args, "--out", str(out), "--cache-dir", str(cache), *tiny, "--detail-px", "8"])
    assert not cache.exists()
    photos = tmp_path / "photos"
    _photo(photos / "a.png")
    extra = ["--extra-reals", str(photos)]
    rc = train_main(
        [*args, "--out", str(out), "--cache-dir", str(cache), *tiny, "--deg-copies", "2", *extra]
    )
    assert rc == 0
    ckpt = out / "checkpoint"
    cfg = load_checkpoint_config(ckpt)
    assert cfg.input.size == 64 and cfg.input.crop_margin == 0.25
    provenance = cfg.training["provenance"]
    assert provenance["train_clips"] == 2 and provenance["train_real_clips"] == 1
    assert provenance["extra_reals"] == {str(photos): 1}
    assert provenance["reencoded_copies"] == 2
    loop = json.loads((out / "loop_config.json").read_text())
    assert loop["extra"] == {"frames": 3, "deg_copies": 2, "align": False, "extra_reals": 1}
    # two re-encoded copies of each training clip, one of each validation clip, none of a photo
    copies = sorted(p.name.split(".mp4.")[1] for p in (cache / "videos").iterdir())
    assert copies == ["deg.mp4"] * 4 + ["deg2.mp4"] * 2
    rows = (out / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3 and "val_auc_orig" in rows[0]
    # the test split is refused for fitting; validation is used
    ev = ["--videos", str(root), "--labels", str(labels), "--split", str(split)]
    ev += ["--weights", str(ckpt), "--conditions", "as-delivered,half-crf35", "--no-progress"]
    ev += ["--cache-dir", str(tmp_path / "evcache")]
    with pytest.raises(SystemExit, match="refusing"):
        eval_main([*ev, "--subset", "test", "--fit", "--out", str(tmp_path / "e0")])
    for subset in ([], ["--subset", "train"]):  # training clips included: refused too
        with pytest.raises(SystemExit, match="add --subset validation"):
            eval_main([*ev, *subset, "--fit", "--out", str(tmp_path / "e0")])
    no_weights = [a for a in ev if a not in ("--weights", str(ckpt))]
    with pytest.raises(SystemExit, match="--weights FOLDER"):  # a name is no folder to write
        eval_main([*no_weights, "--subset", "validation", "--fit", "--out", str(tmp_path / "e0")])
    missing = [str(tmp_path / "nope") if a == str(ckpt) else a for a in ev]
    with pytest.raises(SystemExit, match="is not a writable one"):
        eval_main([*missing, "--subset", "validation", "--fit", "--out", str(tmp_path / "e0")])
    assert not (tmp_path / "e0").exists()  # refused before anything was scored
    rc = eval_main([*ev, "--subset", "validation", "--fit", "--out", str(tmp_path / "e1")])
    assert rc == 0
    fitted = load_checkpoint_config(ckpt)
    assert fitted.decision.calibration is not None
    metrics = json.loads((tmp_path / "e1" / "metrics.json").read_text())
    assert set(metrics["table"]) == {"as-delivered", "half-crf35"}
    assert metrics["table"]["as-delivered"]["all"]["n"] == 2
    assert "drift" in metrics["table"]["half-crf35"]["all"]
    a = metrics["table"]["as-delivered"]["all"]
    assert a["auc_lo"] <= a["auc"] <= a["auc_hi"]
    assert "video AUC [95% CI]" in (tmp_path / "e1" / "report.md").read_text()
    assert (tmp_path / "e1" / "roc_reliability.png").stat().st_size > 1000
    recs = (tmp_path / "e1" / "records.jsonl").read_text().splitlines()
    assert len(recs) == 4
    # records of other weights are refused, never mixed into one table
    from cre_models.weights import load_pretrained, save_pretrained

    model, c = load_pretrained(ckpt)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    save_pretrained(model, tmp_path / "other", input_spec=c.input, decision=c.decision)
    other = [str(tmp_path / "other") if a == str(ckpt) else a for a in ev]
    with pytest.raises(SystemExit, match="other weights"):
        eval_main([*other, "--subset", "validation", "--out", str(tmp_path / "e1")])
    # a rerun resumes from records.jsonl instead of scoring again
    rc = eval_main([*ev, "--subset", "validation", "--out", str(tmp_path / "e1")])
    assert rc == 0
    assert len((tmp_path / "e1" / "records.jsonl").read_text().splitlines()) == 4


def test_cached_clip_missing_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not cached"):
        load_cached([Clip("x/nope.mp4", 0, "youtube")], tmp_path, CacheSpec())


def test_denoiser_run_ships_a_denoised_input_checkpoint(
    clips: tuple[Path, Path], tmp_path: Path
) -> None:
    from cre_models.training.cli import main as train_main
    from cre_models.weights import load_checkpoint_config, load_pretrained

    root, labels = clips
    out = tmp_path / "run"
    args = ["--data", str(root), "--labels", str(labels), "--split", str(root / "split.json")]
    tiny = ["--frames", "3", "--steps", "2", "--batch-size", "4", "--eval-every", "2"]
    tiny += ["--rgb-stream", "seed", "--size", "64", "--threads", "1", "--warmup", "1"]
    tiny += ["--denoiser", "true", "--denoiser-warmup", "2"]
    rc = train_main([*args, "--out", str(out), "--cache-dir", str(tmp_path / "cache"), *tiny])
    assert rc == 0
    cfg = load_checkpoint_config(out / "checkpoint")
    assert cfg.training["loop"]["denoiser"] is True
    model, _ = load_pretrained(out / "checkpoint")
    assert model.denoiser is not None and model.config.classifier_input == "denoised"
    p = model.predict_proba(torch.zeros(2, 3, 64, 64))
    assert p.shape == (2,) and bool(torch.all((p >= 0) & (p <= 1)))


def test_draw_pair_clean_is_the_image_before_simulated_degradation() -> None:
    from cre_models.training.loop import LoopConfig, draw_item, draw_pair

    rng = np.random.default_rng(0)
    crops = rng.integers(0, 255, size=(4, 64, 64, 3), dtype=np.uint8)
    five = np.array([[20, 25], [44, 25], [32, 34], [24, 44], [40, 44]], np.float32)
    lms = np.tile(five, (4, 1, 1))
    real = load_cached_like(Clip("real/000.mp4", 0, "youtube"), crops, lms)
    fake = load_cached_like(Clip("fake/001_002.mp4", 1, "Deepfakes"), crops[::-1].copy(), lms)
    never = LoopConfig(size=64, margin=0.25, simulate_prob=0.0)
    always = LoopConfig(size=64, margin=0.25, simulate_prob=1.0, severities=("heavy",))
    for seed in range(6):
        img, clean, label, kind = draw_pair([real], [fake], never, np.random.default_rng(seed))
        assert np.array_equal(img, clean) and img.shape == (64, 64, 3)
        again = draw_item([real], [fake], never, np.random.default_rng(seed))
        assert np.array_equal(again[0], img) and again[1:] == (label, kind)
        img, clean, _, _ = draw_pair([real], [fake], always, np.random.default_rng(seed))
        assert img.shape == clean.shape and not np.array_equal(img, clean)


def load_cached_like(
    clip: Clip,
    crops: np.ndarray,
    landmarks: np.ndarray,
    version: str = "orig",
    times: np.ndarray | None = None,
) -> Any:
    from cre_models.training.cache import CachedVideo

    t = np.arange(len(crops), dtype=np.float32) if times is None else times
    return CachedVideo(clip, version, crops, landmarks, t)


FACE_LANDMARKS = np.tile(
    np.array([[20, 25], [44, 25], [32, 34], [24, 44], [40, 44]], np.float32), (3, 1, 1)
)
"""Five landmarks of a face filling a 64 px crop, for each of three frames."""
TINY_LOOP = {"rgb_stream": "seed", "pretrained": False, "size": 64, "warmup": 1, "threads": 1}
"""A seed-CNN loop at 64 px on one thread: seconds per run."""


def tiny_clips(seed: int, versions: tuple[str, ...] = ("orig",)) -> list[Any]:
    """A real and a fake clip of three random 64 px crops each, in every one of ``versions``."""
    rng = np.random.default_rng(seed)
    return [
        load_cached_like(
            clip, rng.integers(0, 255, size=(3, 64, 64, 3), dtype=np.uint8), FACE_LANDMARKS, v
        )
        for clip in (Clip("real/000.mp4", 0, "youtube"), Clip("fake/001_002.mp4", 1, "Deepfakes"))
        for v in versions
    ]


def test_twins_are_one_moment_of_one_clip_in_both_versions() -> None:
    from cre_models.training.loop import LoopConfig, draw_twins, twin_index

    rng = np.random.default_rng(0)
    lms = np.zeros((3, 5, 2), np.float32)
    clip, lone = Clip("fake/001_002.mp4", 1, "Deepfakes"), Clip("real/000.mp4", 0, "youtube")
    orig = np.stack([np.full((64, 64, 3), 40 * i, np.uint8) for i in range(3)])
    deg = orig[::-1].copy()  # the re-encoded copy's crops, times reversed below
    videos = [
        load_cached_like(clip, orig, lms, "orig", np.array([0.0, 1.0, 2.0], np.float32)),
        load_cached_like(clip, deg, lms, "deg", np.array([2.0, 1.0, 0.1], np.float32)),
        load_cached_like(lone, orig, lms, "orig"),  # no re-encoded version: never a twin
    ]
    pairs = twin_index(videos)
    assert [(a.clip.file, b.version) for a, b in pairs] == [("fake/001_002.mp4", "deg")]
    cfg = LoopConfig(size=64)
    for seed in range(8):
        twin = draw_twins(pairs, cfg, np.random.default_rng(seed))
        assert twin is not None
        a, b, label = twin
        assert label == 1 and a.shape == b.shape == (64, 64, 3)
        # same moment: same flat grey level in both (jitter reflects a flat image onto itself)
        assert abs(int(a[32, 32, 0]) - int(b[32, 32, 0])) <= 1
    far = [(videos[0], load_cached_like(clip, deg, lms, "deg", np.full(3, 9.0, np.float32)))]
    assert draw_twins(far, cfg, rng) is None


def test_twin_training_runs_and_needs_both_versions(tmp_path: Path) -> None:
    from cre_models.training.loop import LoopConfig, train_loop

    videos = tiny_clips(1, ("orig", "deg"))
    cfg = LoopConfig(
        out=str(tmp_path / "run"), batch_size=6, steps=2, eval_every=2, twin_pairs=2, **TINY_LOOP
    )
    model, summary = train_loop(cfg, videos, videos)
    assert summary["best_step"] == 2 and not model.training
    with pytest.raises(ValueError, match="both versions"):
        train_loop(cfg, [v for v in videos if v.version == "orig"], [])


def test_ema_update_is_a_lerp_of_floats_and_a_copy_of_counters() -> None:
    from cre_models.training.loop import ema_update

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    ema = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    before = {k: v.clone() for k, v in ema.state_dict().items()}
    model[1].num_batches_tracked += 7
    ema_update(ema, model, 0.9)
    for k, v in ema.state_dict().items():
        m = model.state_dict()[k]
        want = m if not v.dtype.is_floating_point else 0.9 * before[k] + 0.1 * m
        assert torch.allclose(v, want), k
    assert int(ema[1].num_batches_tracked) == 7


def test_ema_training_keeps_the_average_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cre_models.training.loop import LoopConfig, train_loop

    videos = tiny_clips(2)
    run = tmp_path / "run"
    cfg = LoopConfig(out=str(run), batch_size=4, steps=4, eval_every=2, ema=0.9, **TINY_LOOP)
    model, summary = train_loop(cfg, videos, videos)
    state = torch.load(run / "resume.pt", weights_only=True)
    assert set(state) >= {"model", "ema"}
    # the kept weights are the average, not the last raw step
    kept = torch.load(run / "best_state.pt", weights_only=True)
    step = summary["best_step"]
    if step == 4:
        assert all(torch.equal(kept[k], v) for k, v in state["ema"].items())
    raw, avg = state["model"], state["ema"]
    assert any(not torch.equal(raw[k], avg[k]) for k in raw if raw[k].dtype.is_floating_point)
    # resuming restores the average too (a fresh one would restart from the raw weights)
    import cre_models.training.loop as loop

    seen: list[dict[str, torch.Tensor]] = []
    real_update = loop.ema_update

    def spy(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
        if not seen:
            seen.append({k: v.clone() for k, v in ema.state_dict().items()})
        real_update(ema, model, decay)

    monkeypatch.setattr(loop, "ema_update", spy)
    more = LoopConfig(out=str(run), batch_size=4, steps=6, eval_every=2, ema=0.9, **TINY_LOOP)
    train_loop(more, videos, videos, resume=True)
    assert torch.load(run / "resume.pt", weights_only=True)["step"] == 6
    assert all(torch.equal(seen[0][k], v) for k, v in avg.items())
    # a run saved without the average cannot be resumed with one: a clear error, not a KeyError
    assert_resume_refused(tmp_path, videos, {"ema": 0.9}, "no weight average")


def assert_resume_refused(
    tmp_path: Path, videos: list[Any], option: dict[str, Any], match: str
) -> None:
    """A plain tiny run, then its ``--resume`` with ``option`` added: refused with ``match``."""
    from cre_models.training.loop import LoopConfig, train_loop

    plain = LoopConfig(
        out=str(tmp_path / "plain"), batch_size=4, steps=2, eval_every=2, **TINY_LOOP
    )
    train_loop(plain, videos, videos)
    again = LoopConfig(**{**plain.__dict__, "steps": 4, **option})
    with pytest.raises(ValueError, match=match):
        train_loop(again, videos, videos, resume=True)


# --- real photos and videos of other people (``--extra-reals``) ----------------------------


def _photo(path: Path, seed: int = 0, grey: bool = False) -> Path:
    import cv2

    from tests.synth import synth_frames

    frame = synth_frames(1, 256, 192, seed=seed)[0]
    if grey:
        frame = np.repeat(frame.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return path


def test_extra_real_clips_finds_photos_and_videos_and_refuses_bad_folders(tmp_path: Path) -> None:
    from cre_models.training.cli import _files_per_folder, extra_real_clips
    from cre_models.training.splits import EXTRA_METHOD

    _photo(tmp_path / "people/a/123.png")
    write_video(tmp_path / "people/b.mp4", width=128, height=96, seconds=0.5, fps=4)
    (tmp_path / "people/notes.txt").write_text("not media")
    clips = extra_real_clips([str(tmp_path / "people")])
    assert [Path(c.file).name for c in clips] == ["123.png", "b.mp4"]
    assert all(c.label == 0 and c.method == EXTRA_METHOD for c in clips)
    assert all(Path(c.file).is_absolute() for c in clips)
    with pytest.raises(SystemExit, match="not a folder"):
        extra_real_clips([str(tmp_path / "nope")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="no image or video"):
        extra_real_clips([str(tmp_path / "empty")])
    # a folder given twice, or inside another, adds its files once
    folders = [str(tmp_path / "people"), str(tmp_path / "people/a")]
    twice = extra_real_clips(folders)
    assert [Path(c.file).name for c in twice] == ["123.png", "b.mp4"]
    assert _files_per_folder(folders, twice) == {folders[0]: 2, folders[1]: 0}
    # a labelled file (a fake, maybe) is never trained as a real
    with pytest.raises(SystemExit, match="labelled set"):
        extra_real_clips([str(tmp_path / "people")], [tmp_path / "people" / "b.mp4"])


def test_a_photo_is_cropped_as_the_worker_crops_a_frame_and_never_re_encoded(
    tmp_path: Path,
) -> None:
    from cre_models.images import read_image
    from cre_models.training.cache import build_cache, is_still
    from cre_models.training.splits import EXTRA_METHOD

    colour = _photo(tmp_path / "p/colour.png")
    grey = _photo(tmp_path / "p/grey.jpg", grey=True)
    clips = [Clip(str(colour), 0, EXTRA_METHOD), Clip(str(grey), 0, EXTRA_METHOD)]
    assert all(is_still(c) for c in clips)
    spec = CacheSpec(size=64, frames=4)
    cache = tmp_path / "cache"
    done = build_cache(clips, tmp_path, cache, spec, versions=("orig", "deg"))
    assert sorted(done.values()) == [0, 1]  # the grey photo keeps no crop
    assert not (cache / "videos").exists()  # no re-encoded copy of a still
    loaded = load_cached(clips, cache, spec, versions=("orig", "deg"))
    assert [(Path(v.clip.file).name, v.version, v.n) for v in loaded] == [
        ("colour.png", "orig", 1),
        ("grey.jpg", "orig", 0),
    ]
    image = read_image(colour)
    det = FaceDetector(
        max_side=spec.detect_max_side,
        score_threshold=spec.detect_score_threshold,
        min_face_px=spec.min_face_px,
    )
    crop, lm = spec.transform().crop_with_landmarks(image, det.detect(image)[0])
    assert np.array_equal(loaded[0].crops[0], crop)
    assert lm is not None and np.allclose(loaded[0].landmarks[0], lm)


def test_extra_reals_are_the_other_domain_whatever_their_names() -> None:
    from cre_models.training.loop import LoopConfig, _domain, draw_item
    from cre_models.training.splits import EXTRA_METHOD

    five = np.array([[20, 25], [44, 25], [32, 34], [24, 44], [40, 44]], np.float32)
    lms = np.tile(five, (2, 1, 1))
    dark = np.full((2, 64, 64, 3), 10, np.uint8)
    light = np.full((2, 64, 64, 3), 200, np.uint8)
    ffpp = load_cached_like(Clip("real/000.mp4", 0, "youtube"), dark, lms)
    # named like an FF++ clip (three digits), but an extra photo
    extra = load_cached_like(Clip("/photos/123.png", 0, EXTRA_METHOD), light, lms)
    assert _domain(ffpp) == "ffpp" and _domain(extra) == "other"
    assert _domain(load_cached_like(Clip("/photos/123.png", 0, "youtube"), light, lms)) == "ffpp"
    only_other = LoopConfig(size=64, margin=0.25, ffpp_share=0.0, simulate_prob=0.0)
    for seed in range(6):
        img, label, kind = draw_item([ffpp, extra], [], only_other, np.random.default_rng(seed))
        assert kind in ("real", "sbi") and label == int(kind == "sbi")
        assert img.mean() > 150  # drawn from the extra photo, never the FF++ clip


def test_training_logs_its_progress_between_validations(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A long run says where it is, how fast it goes and how long it has left, not only at
    its validations."""
    from cre_models.training.loop import LoopConfig, train_loop

    videos = tiny_clips(3)
    cfg = LoopConfig(
        out=str(tmp_path / "run"), batch_size=4, steps=4, eval_every=4, log_every=2, **TINY_LOOP
    )
    with caplog.at_level("INFO", logger="cre_models.training.loop"):
        train_loop(cfg, videos, videos)
    lines = [r.getMessage() for r in caplog.records if "s/step" in r.getMessage()]
    assert [line.split(":")[0] for line in lines] == ["step 2/4", "step 4/4"]
    assert all("min left" in line and "train loss" in line for line in lines)


def test_soften_reals_softens_real_clips_and_self_blend_sources_only() -> None:
    """``soften_reals=1``: every crop drawn from a real clip (a real, or a self-blend's
    source) is resampled before the rest; labelled fakes come as they are. At 0 the draws
    are bit-identical to a config without the option."""
    from cre_models.training.loop import LoopConfig, draw_pair, soften

    rng = np.random.default_rng(0)
    crops = rng.integers(0, 255, size=(4, 64, 64, 3), dtype=np.uint8)
    five = np.array([[20, 25], [44, 25], [32, 34], [24, 44], [40, 44]], np.float32)
    lms = np.tile(five, (4, 1, 1))
    real = load_cached_like(Clip("real/000.mp4", 0, "youtube"), crops, lms)
    fake = load_cached_like(Clip("fake/001_002.mp4", 1, "Deepfakes"), crops[::-1].copy(), lms)

    def detail(img: np.ndarray) -> float:
        return float(cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())

    soft = soften(crops[0], np.random.default_rng(1))
    assert soft.shape == crops[0].shape and soft.dtype == np.uint8
    assert detail(soft) < 0.5 * detail(crops[0])
    assert np.array_equal(soft, soften(crops[0], np.random.default_rng(1)))  # seeded

    base = dict(size=64, margin=0.25, simulate_prob=0.0, sbi_share=0.5)
    kinds = set()
    for seed in range(12):
        plain = draw_pair([real], [fake], LoopConfig(**base), np.random.default_rng(seed))
        off = draw_pair(
            [real], [fake], LoopConfig(**base, soften_reals=0.0), np.random.default_rng(seed)
        )
        assert np.array_equal(plain[0], off[0]) and plain[2:] == off[2:]
        img, _, _, kind = draw_pair(
            [real], [fake], LoopConfig(**base, soften_reals=1.0), np.random.default_rng(seed)
        )
        kinds.add(kind)
        assert kind == off[3]  # the label and kind are drawn before the softening
        if kind == "labelled":  # untouched, and the same draw as without the option
            assert np.array_equal(img, off[0])
        else:
            assert detail(img) < 0.6 * detail(off[0])
    assert kinds == {"real", "sbi", "labelled"}
    with pytest.raises(ValueError, match="soften_reals"):
        LoopConfig(soften_reals=1.5)
