"""Unit tests of the scoring worker: aggregation, crops, ids, records, job arguments, enqueueing."""

from __future__ import annotations

import math
import os
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis

from cre_models.aggregate import STRATEGIES, aggregate, confident_score, topk_mean_score
from cre_models.errors import InputError
from cre_models.faces import FaceBox, crop_face, square_crop_box
from tests.queue_helpers import TINY_FRAMES, worker_environment, write_clip
from worker.results import ResultRecord
from worker.settings import Settings

pytest_plugins = ("tests.queue_fixtures",)  # fixtures: tiny_weights, valkey_url, conn

# --- aggregation ----------------------------------------------------------------------------


def test_mean_and_max() -> None:
    s = [0.1, 0.4, 0.7]
    assert aggregate(s, "mean") == pytest.approx(0.4)
    assert aggregate(s, "max") == pytest.approx(0.7)


@pytest.mark.parametrize(
    ("n", "fraction", "k"), [(8, 0.25, 2), (9, 0.25, 3), (3, 0.1, 1), (5, 1.0, 5), (1, 0.25, 1)]
)
def test_topk_mean_keeps_ceil_fraction(n: int, fraction: float, k: int) -> None:
    rng = np.random.default_rng(n)
    s = rng.random(n)
    expected = float(np.sort(s)[-k:].mean())
    assert topk_mean_score(s, fraction) == pytest.approx(expected)
    assert aggregate(s, "topk_mean", topk=fraction) == pytest.approx(expected)
    assert math.ceil(fraction * n) == k


def test_topk_rejects_bad_fraction() -> None:
    with pytest.raises(ValueError, match="fraction"):
        topk_mean_score([0.5], 0.0)


def test_confident_fake_branch() -> None:
    # 32 frames, 13 confidently fake (> 11 and > 32 // 2.5 = 12): mean of those 13
    s = [0.9] * 10 + [0.95] * 3 + [0.3] * 19
    assert confident_score(s) == pytest.approx(np.mean([0.9] * 10 + [0.95] * 3))


def test_confident_needs_more_than_eleven_fakes() -> None:
    # 11 of 20 frames are confident fakes: more than n // 2.5 but not more than 11 -> plain mean
    s = [0.9] * 11 + [0.5] * 9
    assert confident_score(s) == pytest.approx(np.mean(s))


def test_confident_needs_share_of_fakes() -> None:
    # 16 of 40 frames > 0.8: > 11 but not > 40 // 2.5 = 16 -> not the fake branch; not 90 % real
    s = [0.9] * 16 + [0.5] * 24
    assert confident_score(s) == pytest.approx(np.mean(s))


def test_confident_real_branch() -> None:
    s = [0.05] * 19 + [0.1] * 9 + [0.6]  # 28 of 29 below 0.2 (> 90 %)
    assert confident_score(s) == pytest.approx(np.mean([0.05] * 19 + [0.1] * 9))


def test_confident_single_frame_is_its_score() -> None:
    assert confident_score([0.3]) == pytest.approx(0.3)


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_every_strategy_stays_in_range_and_rejects_bad_input(strategy: str) -> None:
    rng = np.random.default_rng(1)
    s = rng.random(17)
    assert s.min() - 1e-12 <= aggregate(s, strategy) <= s.max() + 1e-12
    with pytest.raises(ValueError, match="no frame scores"):
        aggregate([], strategy)
    with pytest.raises(ValueError, match="probabilities"):
        aggregate([0.2, 1.5], strategy)
    with pytest.raises(ValueError, match="probabilities"):
        aggregate([0.2, float("nan")], strategy)


def test_unknown_strategy() -> None:
    with pytest.raises(ValueError, match="unknown aggregation"):
        aggregate([0.5], "median")


# --- crop geometry ----------------------------------------------------------------------------


def test_square_crop_box_is_centred_square_with_margin() -> None:
    box = FaceBox(100, 50, 140, 110)  # 40 x 60
    x0, y0, x1, y1 = square_crop_box(box, 0.5)
    assert x1 - x0 == y1 - y0 == 90  # max(40, 60) * 1.5
    assert (x0 + x1) / 2 == pytest.approx(120, abs=0.5)
    assert (y0 + y1) / 2 == pytest.approx(80, abs=0.5)
    assert square_crop_box(box, 0.0)[2] - square_crop_box(box, 0.0)[0] == 60
    with pytest.raises(ValueError):
        square_crop_box(box, -0.1)


def test_crop_face_pads_outside_the_frame_with_black() -> None:
    img = np.full((100, 100, 3), 200, dtype=np.uint8)
    box = FaceBox(0, 0, 40, 40)  # margin 1.0 -> the square (-20, -20)-(60, 60): 20 px outside
    crop = crop_face(img, box, 1.0, 80)
    assert crop.shape == (80, 80, 3) and crop.dtype == np.uint8
    assert crop[:20].max() == 0 and crop[:, :20].max() == 0  # left of and above the frame: black
    assert crop[20:, 20:].min() == 200  # inside the frame: the frame, unscaled
    small = crop_face(img, FaceBox(30, 30, 70, 70), 0.3, 32)
    assert small.shape == (32, 32, 3)
    with pytest.raises(ValueError, match="outside"):
        crop_face(img, FaceBox(300, 300, 340, 340), 0.1, 32)


def test_crop_face_keeps_the_face_content() -> None:
    img = np.zeros((120, 160, 3), dtype=np.uint8)
    img[40:80, 60:100] = (255, 0, 0)  # a red "face"
    crop = crop_face(img, FaceBox(60, 40, 100, 80), 0.0, 40)
    assert (crop[..., 0] == 255).mean() > 0.95


# --- ids ------------------------------------------------------------------------------------


def test_video_id_is_stable_for_one_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from worker.ids import looks_like_video_id, normalise_source, video_id

    f = tmp_path / "a.mp4"
    f.write_bytes(b"x")
    link = tmp_path / "link.mp4"
    link.symlink_to(f)
    monkeypatch.chdir(tmp_path)
    ids = {video_id(str(f)), video_id("a.mp4"), video_id("./a.mp4"), video_id(str(link))}
    assert len(ids) == 1
    vid = ids.pop()
    assert looks_like_video_id(vid)
    assert all(c.isalnum() or c in "_-" for c in vid)  # RQ's job id alphabet
    assert normalise_source("a.mp4") == str(f.resolve())
    other = tmp_path / "b.mp4"
    assert video_id(str(other)) != vid


def test_video_id_of_url_is_the_url_as_given() -> None:
    from worker.ids import normalise_source, video_id

    url = "https://example.com/v.mp4?x=1"
    assert normalise_source(url) == url
    assert video_id(url) == video_id(url)
    assert video_id(url) != video_id("https://example.com/v.mp4?x=2")


# --- result records ---------------------------------------------------------------------------


def test_record_consistency_rules() -> None:
    from worker.results import ErrorInfo, ResultRecord

    ok = ResultRecord(video_id="v1", source="s", status="done", score=0.7, label="fake")
    assert ResultRecord.model_validate_json(ok.model_dump_json()) == ok
    with pytest.raises(ValueError):
        ResultRecord(video_id="v1", source="s", status="done")  # no score
    with pytest.raises(ValueError):
        ResultRecord(video_id="v1", source="s", status="no_face", score=0.5, label="real")
    with pytest.raises(ValueError):
        ResultRecord(video_id="v1", source="s", status="failed")  # no error
    with pytest.raises(ValueError):
        ResultRecord(video_id="v1", source="s", status="done", score=1.2, label="fake")
    failed = ResultRecord(
        video_id="v1", source="s", status="failed", error=ErrorInfo(code="corrupt", message="m")
    )
    assert failed.score is None


def test_records_round_trip_through_redis(conn: redis.Redis) -> None:
    from worker.results import ErrorInfo, ResultRecord, load_results, save_result

    settings = Settings(result_ttl_s=100)
    a = ResultRecord(
        video_id="v" + "a" * 32, source="/x/a.mp4", status="done", score=0.2, label="real"
    )
    b = ResultRecord(
        video_id="v" + "b" * 32,
        source="/x/b.mp4",
        status="failed",
        error=ErrorInfo(code="corrupt", message="bad"),
    )
    save_result(conn, a, settings)
    save_result(conn, b, settings)
    assert 0 < conn.ttl(settings.result_prefix + a.video_id) <= 100
    assert [r.video_id for r in load_results(conn, None, settings)] == [a.video_id, b.video_id]
    assert load_results(conn, [b.video_id], settings) == [b]
    conn.delete(settings.result_prefix + a.video_id)  # as if it expired
    assert [r.video_id for r in load_results(conn, None, settings)] == [b.video_id]
    assert conn.zcard(settings.result_index_key) == 1  # the expired id was pruned


# --- scoring ----------------------------------------------------------------------------------


@pytest.fixture
def tiny_settings(tiny_weights: Path) -> Settings:
    return Settings(weights=str(tiny_weights), torch_threads=1, batch_size=4)


def test_scorer_uses_the_checkpoint_contract(tiny_settings: Settings) -> None:
    from worker.scoring import Scorer

    scorer = Scorer(tiny_settings)
    assert scorer.transform.size == 64 and scorer.frames_per_video == TINY_FRAMES
    assert scorer.aggregation == "mean" and scorer.threshold == 0.5
    crops = [np.full((64, 64, 3), v, dtype=np.uint8) for v in (0, 80, 160, 240, 30)]
    probs = scorer.predict(crops)
    assert probs.shape == (5,) and np.all((probs >= 0) & (probs <= 1))
    one_by_one = np.concatenate([scorer.predict([c]) for c in crops])
    np.testing.assert_allclose(probs, one_by_one, rtol=1e-4, atol=1e-6)  # batching changes nothing


def test_batch_size_zero_is_chosen_by_device_and_input_size(tiny_settings: Settings) -> None:
    """``CRE_BATCH_SIZE=0`` (the default): the CPU batch comes from the checkpoint's input
    size (here 64 px: the cap of 16); a set value is kept."""
    from worker.scoring import Scorer

    assert Settings().batch_size == 0
    assert Scorer(tiny_settings.model_copy(update={"batch_size": 0})).batch_size == 16
    assert Scorer(tiny_settings).batch_size == 4


def test_frame_score_is_max_over_faces_and_faceless_frames_count(tiny_settings: Settings) -> None:
    from worker.scoring import Scorer

    class FakeDetector:
        def detect(self, image: np.ndarray) -> list[FaceBox]:
            n = int(image[0, 0, 0])  # the frame says how many faces it has
            return [FaceBox(10 + 20 * i, 10, 26 + 20 * i, 26) for i in range(n)]

    class Frame:
        def __init__(self, i: int, faces: int) -> None:
            self.index, self.time_s = i, i / 10
            self.image = np.random.default_rng(i).integers(0, 255, (80, 120, 3), dtype=np.uint8)
            self.image[0, 0, 0] = faces

    scorer = Scorer(tiny_settings.model_copy(update={"detect_batch": 1}))  # one frame per pass
    scorer.detector = FakeDetector()  # type: ignore[assignment]
    done: list[int] = []
    out = scorer.score_frames([Frame(0, 2), Frame(1, 0), Frame(2, 3)], on_frame=done.append)
    assert done == [1, 2, 3]
    assert [len(f.scores) for f in out.frames] == [2, 0, 3]
    assert out.frames[1].score is None
    assert out.frames[0].score == max(out.frames[0].scores)
    assert out.frame_scores == [out.frames[0].score, out.frames[2].score]
    assert out.n_faces == 5


def test_missing_default_checkpoint_fails_clearly(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import cre_models.weights as weights
    from worker.errors import ModelUnavailableError
    from worker.scoring import Scorer

    monkeypatch.setattr(weights, "shipped_weights_dir", lambda name: tmp_path / "nowhere" / name)
    for name in ("default", "fast"):
        with pytest.raises(
            weights.WeightsError, match=f"no trained checkpoint.*the {name} weights"
        ):
            weights.resolve_weights(name)
    with pytest.raises(ModelUnavailableError, match="CRE_WEIGHTS='default': no trained"):
        Scorer(Settings(weights="default"))
    with pytest.raises(ModelUnavailableError, match="no such checkpoint folder"):
        Scorer(Settings(weights=str(tmp_path / "missing")))
    (tmp_path / "broken").mkdir()
    with pytest.raises(ModelUnavailableError, match="cannot load"):
        Scorer(Settings(weights=str(tmp_path / "broken")))


def test_no_face_video_gets_a_no_face_result(tiny_settings: Settings, tmp_path: Path) -> None:
    from worker.jobs import score_video
    from worker.scoring import Scorer

    clip = write_clip(
        tmp_path / "noface.mp4", width=320, height=240, seconds=1.0, fps=10, face=False
    )
    rec = score_video(str(clip), tiny_settings, Scorer(tiny_settings))
    assert rec.status == "no_face"
    assert rec.score is None and rec.label is None and rec.error is None
    assert rec.frames_sampled == TINY_FRAMES and rec.frames_with_faces == 0 and rec.faces == 0
    assert all(f.score is None for f in rec.frames)
    assert rec.video is not None and (rec.video.width, rec.video.height) == (320, 240)


def test_face_video_is_scored(tiny_settings: Settings, tmp_path: Path) -> None:
    from worker.jobs import score_video
    from worker.scoring import Scorer

    clip = write_clip(tmp_path / "face.mp4", width=320, height=240, seconds=1.0, fps=10, face=True)
    rec = score_video(str(clip), tiny_settings, Scorer(tiny_settings))
    assert rec.status == "done" and rec.error is None
    assert rec.frames_with_faces > 0 and rec.faces >= rec.frames_with_faces
    scores = [f.score for f in rec.frames if f.score is not None]
    assert rec.score == pytest.approx(float(np.mean(scores)))
    assert rec.label == ("fake" if rec.score >= 0.5 else "real")
    assert rec.model is not None and rec.model.name == "tiny-test"
    assert rec.timings.total >= rec.timings.detect + rec.timings.infer
    times = [f.time_s for f in rec.frames]
    assert times == sorted(times)
    faces = [face for f in rec.frames for face in f.faces]
    assert faces and all(face.landmarks is not None and len(face.landmarks) == 5 for face in faces)
    (lx, ly), (rx, ry) = faces[0].landmarks[:2]  # type: ignore[index]
    x0, y0, x1, y1 = faces[0].box
    assert x0 <= lx < rx <= x1 and y0 <= min(ly, ry)


def test_batched_detection_scores_like_one_frame_at_a_time(
    tiny_settings: Settings, tmp_path: Path
) -> None:
    from skimage import data

    from worker.scoring import Scorer

    class Frame:
        def __init__(self, i: int, image: np.ndarray) -> None:
            self.index, self.time_s, self.image = i, i / 10, image

    face = data.astronaut()[::2, ::2]  # 256 x 256
    images = []
    for i in range(7):
        img = np.zeros((360, 640, 3), np.uint8)
        if i != 3:  # one faceless frame
            img[50 : 50 + 256, 40 * i : 40 * i + 256] = face
        images.append(img)
    frames = [Frame(i, im) for i, im in enumerate(images)]
    whole = tiny_settings.model_copy(update={"detect_full_every": 1})  # every frame whole
    one = Scorer(whole.model_copy(update={"detect_batch": 1})).score_frames(frames)
    assert one.roi is None
    done: list[int] = []
    batched_settings = whole.model_copy(update={"detect_batch": 3})
    batched = Scorer(batched_settings).score_frames(frames, on_frame=done.append)
    assert done == [3, 6, 7]
    # the default: whole frames now and then, regions around the faces in between
    regions = Scorer(tiny_settings.model_copy(update={"detect_full_every": 8}))
    followed = regions.score_frames(frames)
    assert followed.roi is not None and followed.roi.region > 0
    assert [len(f.boxes) for f in one.frames] == [1, 1, 1, 0, 1, 1, 1]
    for other, px in ((batched, 0.2), (followed, 0.1 * 256)):
        assert [len(f.boxes) for f in other.frames] == [len(f.boxes) for f in one.frames]
        for a, b in zip(one.frames, other.frames, strict=True):
            assert a.index == b.index
            np.testing.assert_allclose(
                [x.to_list() for x in a.boxes], [x.to_list() for x in b.boxes], atol=px
            )
    for a, b in zip(one.frames, batched.frames, strict=True):
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-3)


def test_unreadable_file_gives_failed_record(tiny_settings: Settings, tmp_path: Path) -> None:
    from worker.jobs import score_video
    from worker.scoring import Scorer

    bad = tmp_path / "bad.mp4"
    bad.write_bytes(os.urandom(2000))
    rec = score_video(str(bad), tiny_settings, Scorer(tiny_settings))
    assert rec.status == "failed" and rec.error is not None and rec.error.code != "internal"
    assert rec.score is None


# --- job arguments and enqueueing ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "options", "match"),
    [
        (None, None, "must be a string"),
        (42, None, "must be a string"),
        ("   ", None, "empty"),
        ("a\nb.mp4", None, "control characters"),
        ("x" * 5000, None, "longer than"),
        ("a.mp4", [], "must be a dict"),
        ("a.mp4", {"colour": "red"}, "invalid options"),
        ("a.mp4", {"frames": 0}, "invalid options"),
        ("a.mp4", {"aggregation": "median"}, "unknown aggregation"),
    ],
)
def test_job_arguments_are_validated(source: object, options: object, match: str) -> None:
    from worker.jobs import validate_job_args

    with pytest.raises(InputError, match=match):
        validate_job_args(source, options)


def test_valid_job_arguments() -> None:
    from worker.jobs import validate_job_args

    src, opts = validate_job_args("a.mp4", {"frames": 8, "aggregation": "confident"})
    assert src == "a.mp4" and opts.frames == 8 and opts.aggregation == "confident"


def test_enqueue_rejects_bad_arguments_without_queueing(conn: redis.Redis, tmp_path: Path) -> None:
    from worker.queue import enqueue, make_queue

    settings = Settings()
    clip = write_clip(tmp_path / "c.mp4", seconds=0.5, fps=10)
    subs = enqueue(
        [str(tmp_path / "missing.mp4"), str(tmp_path), "  "], settings, conn=conn
    ) + enqueue([str(clip)], settings, options={"frames": -1}, conn=conn)
    assert [s.status for s in subs] == ["rejected"] * 4
    assert "no such file" in (subs[0].reason or "") and "not a file" in (subs[1].reason or "")
    assert make_queue(conn, settings).count == 0


def test_enqueue_uses_rq_default_format_stable_ids_and_duration_timeout(
    conn: redis.Redis, tmp_path: Path
) -> None:
    from rq.job import Job
    from rq.serializers import DefaultSerializer

    from worker.ids import video_id
    from worker.payloads import loads_plain
    from worker.queue import SERIALIZER, enqueue

    settings = Settings(job_timeout_base_s=30, job_timeout_per_video_s=10.0)
    clip = write_clip(tmp_path / "c.mp4", seconds=2.0, fps=10)
    (sub,) = enqueue([str(clip)], settings, conn=conn)
    assert sub.status == "queued" and sub.video_id == video_id(str(clip))
    assert sub.job_timeout is not None and 45 <= sub.job_timeout <= 55  # 30 + 10 x ~2 s
    job = Job.fetch(sub.video_id, connection=conn, serializer=SERIALIZER)
    assert job.failure_ttl == settings.failed_job_ttl_s == 7 * 86400  # not RQ's year
    assert job.func_name == "worker.jobs.score_video_job" and job.args[0] == str(clip.resolve())
    raw = conn.hget(job.key, "data")
    assert raw is not None
    data = zlib.decompress(raw)
    expected = ("worker.jobs.score_video_job", None, (str(clip.resolve()), None), {})
    assert DefaultSerializer.loads(data) == expected  # what a stock `rq worker` reads
    assert loads_plain(data) == expected  # what our workers read
    url = "https://example.com/v.mp4"
    (usub,) = enqueue([url], settings, conn=conn)
    assert usub.job_timeout == settings.job_timeout_url_s


def video_id_of(path: Path) -> str:
    from worker.ids import video_id

    return video_id(str(path))


def _record_like_a_worker(
    vid: str, clip: Path, settings: Settings, **fields: object
) -> ResultRecord:
    """The record a worker with ``settings`` would write for ``clip`` (its key included)."""
    from worker.resultkey import checkpoint_identity, expected_key, file_content

    key = expected_key(settings, checkpoint_identity(settings.weights), None, None)
    values: dict[str, object] = {"status": "done", "score": 0.4, "label": "real"}
    values.update(fields)
    return ResultRecord(
        video_id=vid,
        source=str(clip.resolve()),
        model=key.model,
        options=key.options,
        content=file_content(clip),
        **values,  # type: ignore[arg-type]
    )


def test_resubmission_is_skipped_unless_forced(conn: redis.Redis, tmp_path: Path) -> None:
    from worker.queue import enqueue, make_queue
    from worker.results import save_result

    settings = Settings()
    clip = write_clip(tmp_path / "c.mp4", seconds=0.5, fps=10)
    first = enqueue([str(clip), str(clip)], settings, conn=conn)
    assert [s.status for s in first] == ["queued", "skipped_pending"]
    again = enqueue([str(clip)], settings, force=True, conn=conn)
    assert again[0].status == "skipped_pending"  # never two jobs for one video, even forced
    assert make_queue(conn, settings).count == 1
    vid = first[0].video_id
    assert vid is not None
    make_queue(conn, settings).empty()
    conn.delete(f"rq:job:{vid}")
    save_result(conn, _record_like_a_worker(vid, clip, settings), settings)
    assert enqueue([str(clip)], settings, conn=conn)[0].status == "skipped_done"
    assert enqueue([str(clip)], settings, retry_failed=True, conn=conn)[0].status == "skipped_done"
    assert enqueue([str(clip)], settings, force=True, conn=conn)[0].status == "queued"
    make_queue(conn, settings).empty()
    conn.delete(f"rq:job:{vid}")
    failed = _record_like_a_worker(
        vid,
        clip,
        settings,
        status="failed",
        score=None,
        label=None,
        error={"code": "corrupt", "message": "x"},
    )
    save_result(conn, failed, settings)
    skipped = enqueue([str(clip)], settings, conn=conn)[0]
    assert skipped.status == "skipped_done" and "--retry-failed" in (skipped.reason or "")
    retried = enqueue([str(clip)], settings, retry_failed=True, conn=conn)[0]
    assert retried.status == "queued" and "--retry-failed" in (retried.reason or "")


def test_a_record_without_its_key_is_not_reused(conn: redis.Redis, tmp_path: Path) -> None:
    """Records of cre 0.1 (no content, model hash or options) are scored again."""
    from worker.queue import enqueue
    from worker.results import ResultRecord, save_result

    settings = Settings()
    clip = write_clip(tmp_path / "c.mp4", seconds=0.5, fps=10)
    vid = video_id_of(clip)
    old = ResultRecord(video_id=vid, source=str(clip), status="done", score=0.4, label="real")
    save_result(conn, old, settings)
    (sub,) = enqueue([str(clip)], settings, conn=conn)
    assert sub.status == "queued" and "checkpoint differs" in (sub.reason or ""), sub


# --- the RQ job: retries and failures (a real Valkey, an in-process WarmWorker) ---------------


@pytest.fixture
def job_env(monkeypatch: pytest.MonkeyPatch, tiny_weights: Path, valkey_url: str) -> Iterator[None]:
    from worker.scoring import clear_scorer_cache
    from worker.settings import get_settings

    worker_environment(
        monkeypatch, tiny_weights, valkey_url, fetch_retries=2, fetch_retry_backoff_s=0
    )
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
    clear_scorer_cache()


def _run_burst(conn: redis.Redis) -> None:
    from worker.workers import WarmWorker

    WarmWorker(["cre"], connection=conn).work(burst=True)


def test_transient_fetch_failures_are_retried_then_recorded(
    job_env: None, conn: redis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rq.job import Job, JobStatus

    import worker.fetch
    from worker.errors import TransientFetchError
    from worker.queue import SERIALIZER, enqueue
    from worker.results import load_result
    from worker.settings import get_settings

    calls: list[str] = []

    def flaky(source: str, settings: Settings) -> object:
        calls.append(source)
        raise TransientFetchError("503 from the server")

    monkeypatch.setattr(worker.fetch, "fetch", flaky)
    clip = write_clip(tmp_path / "c.mp4", seconds=0.5, fps=10)
    (sub,) = enqueue([str(clip)], get_settings(), conn=conn)
    assert sub.video_id is not None
    _run_burst(conn)
    assert len(calls) == 3  # the first attempt and CRE_FETCH_RETRIES=2 retries
    rec = load_result(conn, sub.video_id, get_settings())
    assert rec is not None and rec.status == "failed" and rec.attempt == 3
    assert rec.error is not None and rec.error.code == "fetch_transient"
    job = Job.fetch(sub.video_id, connection=conn, serializer=SERIALIZER)
    # like every expected failure, the record is the outcome: the RQ job itself finished
    assert job.get_status() == JobStatus.FINISHED and job.number_of_retries == 2


def test_transient_failure_then_success_overwrites_the_record(
    job_env: None, conn: redis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import worker.fetch
    from worker.errors import TransientFetchError
    from worker.queue import enqueue
    from worker.results import load_result
    from worker.settings import get_settings

    real_fetch = worker.fetch.fetch
    calls: list[str] = []

    def flaky_once(source: str, settings: Settings) -> object:
        calls.append(source)
        if len(calls) == 1:
            raise TransientFetchError("connection reset")
        return real_fetch(source, settings)

    monkeypatch.setattr(worker.fetch, "fetch", flaky_once)
    clip = write_clip(tmp_path / "c.mp4", seconds=0.5, fps=10, face=False)
    (sub,) = enqueue([str(clip)], get_settings(), conn=conn)
    assert sub.video_id is not None
    _run_burst(conn)
    rec = load_result(conn, sub.video_id, get_settings())
    assert len(calls) == 2
    assert rec is not None and rec.status == "no_face" and rec.attempt == 2


def test_unexpected_errors_are_recorded_as_internal_and_not_retried(
    job_env: None, conn: redis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rq.job import Job, JobStatus

    import cre_models.video
    from worker.queue import SERIALIZER, enqueue
    from worker.results import load_result
    from worker.settings import get_settings

    calls: list[Path] = []

    def broken_probe(path: Path, limits: object) -> object:
        calls.append(path)
        raise RuntimeError("boom")

    clip = write_clip(tmp_path / "c.mp4", seconds=0.5, fps=10)
    (sub,) = enqueue([str(clip)], get_settings(), conn=conn)
    assert sub.video_id is not None
    monkeypatch.setattr(cre_models.video, "probe_video", broken_probe)
    _run_burst(conn)
    assert len(calls) == 1
    rec = load_result(conn, sub.video_id, get_settings())
    assert rec is not None and rec.status == "failed" and rec.error is not None
    assert rec.error.code == "internal" and "boom" in rec.error.message
    job = Job.fetch(sub.video_id, connection=conn, serializer=SERIALIZER)
    assert job.get_status() == JobStatus.FAILED and "boom" in (job.latest_result().exc_string or "")


@pytest.mark.parametrize("stop", [KeyboardInterrupt, SystemExit])
def test_a_worker_stopped_mid_job_writes_no_failure_of_the_video(
    stop: type[BaseException],
    job_env: None,
    conn: redis.Redis,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A cold stop (a second SIGTERM, Ctrl-C twice) is not the video's failure: no record
    that would say ``internal`` (a resubmit scores it again)."""
    import cre_models.video
    from worker.ids import video_id
    from worker.jobs import score_video_job
    from worker.results import load_result
    from worker.settings import get_settings

    def stopped(path: Path, limits: object) -> object:
        raise stop()

    clip = write_clip(tmp_path / "c.mp4", seconds=0.5, fps=10)
    monkeypatch.setattr(cre_models.video, "probe_video", stopped)
    with pytest.raises(stop):
        score_video_job(str(clip))
    assert load_result(conn, video_id(str(clip)), get_settings()) is None


def test_bad_options_reaching_a_worker_give_a_failed_record(
    job_env: None, conn: redis.Redis
) -> None:
    from worker.queue import JOB_FUNCTION, make_queue
    from worker.results import load_result
    from worker.settings import get_settings

    # bypass enqueue()'s validation, as a hand-made producer might
    make_queue(conn, get_settings()).enqueue_call(
        JOB_FUNCTION, args=("a.mp4", {"frames": "many"}), job_id="vbad"
    )
    _run_burst(conn)
    rec = load_result(conn, "vbad", get_settings())
    assert rec is not None and rec.status == "failed" and rec.error is not None
    assert rec.error.code == "bad_input" and "frames" in rec.error.message


# --- small pieces -----------------------------------------------------------------------------


def test_untrained_registered_network_is_the_same_in_every_process() -> None:
    from worker.scoring import Scorer

    settings = Settings(weights="cre-seed", torch_threads=1)
    a, b = Scorer(settings), Scorer(settings)
    crops = [np.full((224, 224, 3), 90, dtype=np.uint8)]
    assert a.predict(crops)[0] == pytest.approx(b.predict(crops)[0], abs=1e-6)


def test_retry_intervals_parse() -> None:
    from worker.jobs import retry_intervals

    assert retry_intervals(Settings(fetch_retry_backoff_s="10, 60,300")) == [10, 60, 300]
    assert retry_intervals(Settings(fetch_retry_backoff_s="")) == [0]
    with pytest.raises(ValueError, match="BACKOFF"):
        retry_intervals(Settings(fetch_retry_backoff_s="soon"))


def test_settings_table_lists_every_setting() -> None:
    from worker.settings_doc import settings_table

    table = settings_table()
    for name in Settings.model_fields:
        assert f"`CRE_{name.upper()}`" in table


def test_a_batch_gets_every_torch_thread_only_while_the_decoder_is_idle(
    tiny_settings: Settings,
) -> None:
    import torch

    from worker.scoring import Scorer

    class OneFace:
        def detect(self, image: np.ndarray) -> list[FaceBox]:
            return [FaceBox(10, 10, 42, 42)]

    class Frame:
        def __init__(self, i: int) -> None:
            self.index, self.time_s = i, i / 10
            self.image = np.random.default_rng(i).integers(0, 255, (80, 120, 3), dtype=np.uint8)

    scorer = Scorer(tiny_settings.model_copy(update={"detect_batch": 1, "batch_size": 2}))
    scorer.detector = OneFace()  # type: ignore[assignment]
    asked: list[int] = []
    real_predict = scorer.predict

    def predict(crops: list[np.ndarray], threads: int = 0) -> np.ndarray:
        asked.append(threads)
        return real_predict(crops, threads)

    scorer.predict = predict  # type: ignore[method-assign]
    idle = iter([False, True, True])
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        out = scorer.score_frames([Frame(i) for i in range(6)], decoder_idle=lambda: next(idle))
        assert asked == [1, 2, 2]  # one core left to a working decoder, both when it waits
        assert (out.batches, out.batches_all_threads) == (3, 2)
        asked.clear()
        out = scorer.score_frames([Frame(i) for i in range(6)])  # no signal: always beside it
        assert asked == [1, 1, 1] and out.batches_all_threads == 0
        torch.set_num_threads(1)  # one thread (e.g. one of several workers): nothing to give
        asked.clear()
        out = scorer.score_frames([Frame(i) for i in range(4)], decoder_idle=lambda: True)
        assert asked == [1, 1] and out.batches_all_threads == 0
    finally:
        torch.set_num_threads(before)


def test_csv_rows_are_one_per_record_and_never_a_spreadsheet_formula() -> None:
    import csv
    import io

    from worker.results import (
        CSV_COLUMNS,
        ErrorInfo,
        ResultRecord,
        TrackResult,
        VideoSummary,
        write_csv,
    )

    done = ResultRecord(
        video_id="v" + "a" * 32,
        source='=HYPERLINK("http://evil")',  # a hostile file name or URL
        status="done",
        score=0.8123456,
        label="fake",
        threshold=0.5,
        tracks=[
            TrackResult(id=0, frames=[0, 1], score=0.8, n_faces=2, counted=True),
            TrackResult(id=1, frames=[1], score=0.1, n_faces=1, counted=False),
        ],
        video=VideoSummary(width=640, height=480, duration_s=2.5, fps=25.0, codec="h264"),
        warnings=["a, with a comma", "another"],
    )
    failed = ResultRecord(
        video_id="v" + "b" * 32,
        source="/videos/b.mp4",
        status="failed",
        error=ErrorInfo(code="corrupt", message='-1 "quoted", and more'),
    )
    out = io.StringIO(newline="")
    assert write_csv([done, failed], out) == 2
    header, a, b = csv.reader(io.StringIO(out.getvalue()))
    assert tuple(header) == CSV_COLUMNS
    row = dict(zip(header, a, strict=True))
    assert row["source"] == '\'=HYPERLINK("http://evil")' and row["score"] == "0.812346"
    assert row["tracks_counted"] == "1" and row["width"] == "640" and row["codec"] == "h264"
    assert row["warnings"] == "a, with a comma; another" and row["error_code"] == ""
    row = dict(zip(header, b, strict=True))
    assert row["status"] == "failed" and row["score"] == "" and row["label"] == ""
    assert row["error_code"] == "corrupt" and row["error_message"] == '\'-1 "quoted", and more'


def test_a_job_whose_dead_worker_execution_expired_is_replaced(
    conn: redis.Redis, tmp_path: Path
) -> None:
    """In the minute after a dead worker's execution record expired, RQ still lists its id
    and ``Job.delete`` fails: a resubmit must replace the job, not crash the batch."""
    from rq.job import Job, JobStatus

    from worker.queue import SERIALIZER, enqueue

    settings = Settings()
    clip = write_clip(tmp_path / "c.mp4", seconds=1.0, fps=10)
    (first,) = enqueue([str(clip)], settings, conn=conn)
    assert first.video_id is not None
    job = Job.fetch(first.video_id, connection=conn, serializer=SERIALIZER)
    job.set_status(JobStatus.FAILED)
    conn.zadd(job.execution_registry.key, {"gone-execution": time.time() + 60})
    with pytest.raises(ValueError, match="not found"):  # what RQ does on its own
        Job.fetch(first.video_id, connection=conn, serializer=SERIALIZER).delete()
    (again,) = enqueue([str(clip)], settings, conn=conn, force=True)
    assert again.status == "queued" and again.video_id == first.video_id
    fresh = Job.fetch(first.video_id, connection=conn, serializer=SERIALIZER)
    assert fresh.get_status() == JobStatus.QUEUED


def test_a_started_job_of_a_dead_worker_says_so_on_resubmit(
    conn: redis.Redis, tmp_path: Path
) -> None:
    from rq.job import Job, JobStatus

    from worker.queue import SERIALIZER, enqueue

    settings = Settings()
    clip = write_clip(tmp_path / "c.mp4", seconds=1.0, fps=10)
    (first,) = enqueue([str(clip)], settings, conn=conn)
    assert first.video_id is not None
    job = Job.fetch(first.video_id, connection=conn, serializer=SERIALIZER)
    job.worker_name = "w-alive"
    job.save()
    job.set_status(JobStatus.STARTED)
    conn.set("rq:worker:w-alive", "1")
    (again,) = enqueue([str(clip)], settings, conn=conn)
    assert again.status == "skipped_pending" and again.reason == "job is started (worker w-alive)"
    conn.delete("rq:worker:w-alive")  # its heartbeat key expired: the worker is gone
    (late,) = enqueue([str(clip)], settings, conn=conn)
    assert late.status == "skipped_pending" and "no longer alive" in (late.reason or "")
