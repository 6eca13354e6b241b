"""Person tracks: linking faces across sampled frames, and scoring people instead of frames."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis

from cre_models.faces import FaceBox
from cre_models.tracks import (
    MAX_GAP,
    MAX_LINK_DISTANCE,
    MAX_SIZE_RATIO,
    link_faces,
    min_track_faces,
    score_tracks,
    track_video,
)
from worker.results import SCHEMA_VERSION, ResultRecord
from worker.settings import Settings

pytest_plugins = ("tests.queue_fixtures",)  # fixtures: tiny_weights, valkey_url, conn

SIDE = 100.0
"""Face side used by these tests, in pixels: distances below are in face sizes."""


def face(cx: float, cy: float, side: float = SIDE) -> FaceBox:
    """A square face box centred on ``(cx, cy)`` (no landmarks, like the Haar detector)."""
    return FaceBox(cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


def marked(box: tuple[float, float, float, float], eyes_cx: float, cy: float) -> FaceBox:
    """A box (possibly badly placed) with landmarks of a face centred on ``(eyes_cx, cy)``."""
    s = SIDE
    pts = ((-0.2, -0.1), (0.2, -0.1), (0.0, 0.05), (-0.15, 0.2), (0.15, 0.2))
    return FaceBox(*box, landmarks=tuple((eyes_cx + dx * s, cy + dy * s) for dx, dy in pts))


def tracks_by_position(frames: list[list[FaceBox]], ids: list[list[int]]) -> dict[int, list]:
    """Track id -> the centres of its faces, frame by frame."""
    out: dict[int, list] = {}
    for boxes, frame_ids in zip(frames, ids, strict=True):
        for b, i in zip(boxes, frame_ids, strict=True):
            out.setdefault(i, []).append(((b.x0 + b.x1) / 2, (b.y0 + b.y1) / 2))
    return out


# --- linking ----------------------------------------------------------------------------------


def test_two_people_side_by_side_stay_two_tracks() -> None:
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(32):
        left = face(200 + rng.normal(0, 8), 300 + rng.normal(0, 8))
        right = face(450 + rng.normal(0, 8), 310 + rng.normal(0, 8))
        # a detector lists faces largest first: the order changes from frame to frame
        frames.append([left, right] if rng.random() < 0.5 else [right, left])
    ids = link_faces(frames)
    by_track = tracks_by_position(frames, ids)
    assert sorted(by_track) == [0, 1]
    for centres in by_track.values():
        xs = [x for x, _ in centres]
        assert len(xs) == 32 and (max(xs) < 325 or min(xs) > 325)  # never both sides


def test_a_person_moving_steadily_stays_one_track() -> None:
    # 0.9 face sizes between samples: the first step is within reach of the last position,
    # later ones are followed by the constant-velocity prediction
    frames = [[face(100 + 90 * i, 200 + 10 * i)] for i in range(12)]
    assert link_faces(frames) == [[0]] * 12
    # speeding up (the prediction lags behind) still links while within MAX_LINK_DISTANCE
    accel = [[face(100 + 60 * i + 8 * i * i, 200)] for i in range(8)]
    assert link_faces(accel) == [[0]] * 8


def test_a_jump_farther_than_the_link_distance_starts_a_new_track() -> None:
    far = SIDE * (MAX_LINK_DISTANCE + 0.2)
    assert link_faces([[face(100, 100)], [face(100 + far, 100)]]) == [[0], [1]]
    near = SIDE * (MAX_LINK_DISTANCE - 0.2)
    assert link_faces([[face(100, 100)], [face(100 + near, 100)]]) == [[0], [0]]


@pytest.mark.parametrize("gap", [1, MAX_GAP])
def test_skipped_frames_do_not_split_a_track(gap: int) -> None:
    frames: list[list[FaceBox]] = [[face(200 + 5 * i, 200)] for i in range(4)]
    frames += [[] for _ in range(gap)]
    frames += [[face(220 + 5 * (gap + i), 200)] for i in range(4)]
    ids = link_faces(frames)
    assert ids == [[0]] * 4 + [[]] * gap + [[0]] * 4


def test_a_longer_absence_starts_a_new_track() -> None:
    frames: list[list[FaceBox]] = [[face(200, 200)]] * 3 + [[]] * (MAX_GAP + 1) + [[face(200, 200)]]
    assert link_faces(frames)[-1] == [1]


def test_crossing_faces_keep_their_tracks() -> None:
    # A walks right, B walks left, slightly lower; they pass each other mid-clip with
    # overlapping boxes, in an order that changes from frame to frame
    frames = []
    for i in range(9):
        a = face(100 + 50 * i, 200)
        b = face(500 - 50 * i, 230)
        frames.append([a, b] if i % 2 else [b, a])
    ids = link_faces(frames)
    by_track = tracks_by_position(frames, ids)
    assert len(by_track) == 2
    for centres in by_track.values():
        xs = [x for x, _ in centres]
        assert xs == sorted(xs) or xs == sorted(xs, reverse=True)  # each keeps its direction
        assert len({y for _, y in centres}) == 1  # and its height


def test_close_faces_of_different_size_stay_apart() -> None:
    # a large face in front and a small one just behind it, boxes overlapping
    frames = [[face(300 + i, 300, 160), face(360 - i, 250, 60)] for i in range(6)]
    frames[3].reverse()
    ids = link_faces(frames)
    by_track = tracks_by_position(frames, ids)
    assert len(by_track) == 2
    assert ids[3] == [1, 0]


def test_a_track_takes_one_face_per_frame_the_nearest() -> None:
    # someone steps in beside the first person: both faces are within reach of the track
    ids = link_faces([[face(300, 300)], [face(400, 300), face(310, 300)], [face(310, 300)]])
    assert ids == [[0], [1, 0], [0]]


def test_a_face_much_larger_than_the_track_is_someone_else() -> None:
    big = SIDE * MAX_SIZE_RATIO * 1.2
    assert link_faces([[face(300, 300)], [face(300, 300, big)]]) == [[0], [1]]


def test_landmarks_decide_when_boxes_are_ambiguous() -> None:
    # two people 120 px apart; in the last frame both boxes slid towards the middle and
    # past each other (a bad detection), but the landmarks are where the faces are
    a0 = marked((0, 0, 100, 100), 50, 50)
    b0 = marked((120, 0, 220, 100), 170, 50)
    a1 = marked((75, 0, 175, 100), 50, 50)  # box centre 125: nearer to B's last position
    b1 = marked((45, 0, 145, 100), 170, 50)  # box centre 95: nearer to A's
    assert link_faces([[a0, b0], [a1, b1]]) == [[0, 1], [0, 1]]
    # without landmarks the boxes alone swap the people
    plain = [[FaceBox(b.x0, b.y0, b.x1, b.y1) for b in f] for f in ([a0, b0], [a1, b1])]
    assert link_faces(plain) == [[0, 1], [1, 0]]


def test_empty_input_and_faceless_frames() -> None:
    assert link_faces([]) == []
    assert link_faces([[], []]) == [[], []]
    empty = track_video([], [])
    assert empty.tracks == [] and empty.score is None and empty.track_ids == []
    faceless = track_video([[], [], []], [[], [], []])
    assert faceless.tracks == [] and faceless.score is None


def test_one_frame() -> None:
    out = track_video([[face(100, 100), face(400, 100)]], [[0.3, 0.6]])
    assert out.track_ids == [[0, 1]]
    assert [t.frame_indices for t in out.tracks] == [(0,), (0,)]
    # no track has MIN_TRACK_FACES faces, so all count
    assert all(t.counted for t in out.tracks) and out.score == pytest.approx(0.6)


def test_degenerate_box_is_rejected() -> None:
    with pytest.raises(ValueError, match="degenerate"):
        link_faces([[FaceBox(10, 10, 10, 40)]])


# --- scoring ----------------------------------------------------------------------------------


def test_min_track_faces() -> None:
    assert [min_track_faces(n) for n in (0, 1, 8, 9, 12, 32)] == [2, 2, 2, 3, 3, 8]


def test_the_fake_person_is_not_diluted_by_the_real_one() -> None:
    # the real person is on screen throughout, the fake one in the second half only
    boxes, scores = [], []
    for i in range(32):
        boxes.append([face(400, 200)] + ([face(150, 200)] if i >= 16 else []))
        scores.append([0.1] + ([0.9] if i >= 16 else []))
    out = track_video(boxes, scores, "mean")
    real, fake = out.tracks
    assert real.frame_indices == tuple(range(32)) and fake.frame_indices == tuple(range(16, 32))
    assert real.score == pytest.approx(0.1) and fake.score == pytest.approx(0.9)
    assert out.score == pytest.approx(0.9)
    frame_max_mean = np.mean([max(s) for s in scores])  # the old rule: 0.5
    assert frame_max_mean == pytest.approx(0.5)


def test_a_spurious_short_track_does_not_decide_the_video() -> None:
    boxes = [[face(300, 300)] for _ in range(32)]
    scores = [[0.1] for _ in range(32)]
    for i in (5, 6):  # a face on a poster, found in two frames, very "fake"
        boxes[i].append(face(900, 100, 40))
        scores[i].append(0.99)
    out = track_video(boxes, scores, "mean")
    person, poster = out.tracks
    assert person.counted and not poster.counted and poster.n_faces == 2
    assert out.score == pytest.approx(0.1)


def test_short_tracks_count_when_no_track_is_long_enough() -> None:
    # faces in 3 of 10 frames, each somewhere else: three 1-face tracks, none reaching 2
    boxes: list[list[FaceBox]] = [[] for _ in range(10)]
    boxes[0], boxes[4], boxes[8] = [face(100, 100)], [face(600, 100)], [face(100, 500)]
    scores = [[0.2] if b else [] for b in boxes]
    scores[4] = [0.7]
    out = track_video(boxes, scores)
    assert len(out.tracks) == 3 and all(t.counted for t in out.tracks)
    assert out.score == pytest.approx(0.7)


@pytest.mark.parametrize(("strategy", "expected"), [("mean", 0.4), ("max", 0.7)])
def test_each_track_is_scored_with_the_strategy(strategy: str, expected: float) -> None:
    ids = [[0], [0], [0], [0]]
    tracks = score_tracks(ids, [[0.1], [0.7], [0.1], [0.7]], strategy)
    assert tracks[0].score == pytest.approx(expected)
    assert tracks[0].face_scores == (0.1, 0.7, 0.1, 0.7)


def test_score_tracks_checks_its_input() -> None:
    with pytest.raises(ValueError, match="frames of track ids"):
        score_tracks([[0]], [[0.5], [0.5]])
    with pytest.raises(ValueError, match="scores"):
        score_tracks([[0, 1]], [[0.5]])
    with pytest.raises(ValueError, match="two faces in one frame"):
        score_tracks([[0, 0]], [[0.5, 0.5]])
    with pytest.raises(ValueError, match="unknown aggregation"):
        score_tracks([[0]], [[0.5]], "median")


# --- the worker: a two-person video where one person is "fake" ----------------------------------

FAKE_RGB = (200, 60, 60)
"""The "fake" person's face colour: the test-double model scores red faces high."""
REAL_RGB = (60, 180, 60)
"""The real person's face colour: green faces score low."""
CLIP_FRAMES, CLIP_FPS, SAMPLED = 20, 10, 12
FAKE_FROM = 10
"""The fake person walks in halfway through the clip; the real one is there throughout."""


def _two_people_frame(i: int, background: np.ndarray) -> np.ndarray:
    import cv2

    img = background.copy()
    cv2.ellipse(img, (240 - 2 * i, 125), (28, 36), 0, 0, 360, REAL_RGB, -1)
    if i >= FAKE_FROM:
        cv2.ellipse(img, (60 + 3 * i, 120), (28, 36), 0, 0, 360, FAKE_RGB, -1)
    return img


@pytest.fixture(scope="module")
def two_people_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2 s H.264 clip: a green (real) face on the right throughout, a red (fake) face on
    the left in the second half; both drift slowly."""
    import av

    path = tmp_path_factory.mktemp("tracks") / "two_people.mp4"
    rng = np.random.default_rng(0)
    background = (118 + rng.integers(0, 20, (240, 320, 3))).astype(np.uint8)
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("libx264", rate=CLIP_FPS)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast"}
        for i in range(CLIP_FRAMES):
            frame = av.VideoFrame.from_ndarray(_two_people_frame(i, background), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@dataclass(frozen=True)
class MarkedFaceBox(FaceBox):
    """``FaceBox`` with landmarks, as the RetinaFace detector returns it."""

    landmarks: tuple[tuple[float, float], ...] | None = None


class ColourDetector:
    """Test-double detector: a face is a large blob of a face colour; largest first."""

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        import cv2

        boxes = []
        r, g = image[..., 0].astype(int), image[..., 1].astype(int)
        for mask in (r - g > 80, g - r > 60):
            n, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8))
            if n < 2:
                continue
            x, y, w, h, area = stats[1 + int(np.argmax(stats[1:, 4]))]
            if area < 300:
                continue
            pts = ((0.3, 0.4), (0.7, 0.4), (0.5, 0.6), (0.35, 0.8), (0.65, 0.8))
            marks = tuple((x + px * w, y + py * h) for px, py in pts)
            boxes.append(MarkedFaceBox(x, y, x + w, y + h, 0.99, landmarks=marks))
        return sorted(boxes, key=lambda b: b.area, reverse=True)

    def detect_batch(self, images: list[np.ndarray]) -> list[list[MarkedFaceBox]]:
        return [self.detect(image) for image in images]


class ColourModel:
    """Test-double model: the redder the face crop, the more "fake" (about 0.87 vs 0.13)."""

    def predict_proba(self, x: Any) -> Any:  # (B, 3, H, W) in [-1, 1] -> (B,)
        import torch

        red_minus_green = (x[:, 0] - x[:, 1]).mean(dim=(1, 2))
        return 0.5 + 0.4 * torch.tanh(4 * red_minus_green)


def _colour_scorer(settings: Settings) -> Any:
    from worker.scoring import Scorer

    scorer = Scorer(settings)
    scorer.detector = ColourDetector()  # type: ignore[assignment]
    scorer.model = ColourModel()  # type: ignore[assignment]
    return scorer


def _check_two_people_record(rec: ResultRecord) -> None:
    """The video score follows the fake person's track; the real person's frames do not
    dilute it; every face carries its track id and landmarks."""
    assert rec.status == "done" and rec.frames_sampled == SAMPLED
    assert len(rec.tracks) == 2 and all(t.counted for t in rec.tracks)
    real, fake = sorted(rec.tracks, key=lambda t: t.score)
    assert fake.score > 0.8 and real.score < 0.2
    assert rec.score == pytest.approx(fake.score) and rec.label == "fake"
    # the old rule (mean of the per-frame max) is diluted by the frames with the real one only
    frame_mean = float(np.mean([f.score for f in rec.frames if f.score is not None]))
    assert frame_mean < rec.score - 0.2
    seen: dict[int, list[int]] = {real.id: [], fake.id: []}
    for frame in rec.frames:
        for f in frame.faces:
            assert f.track is not None and f.landmarks is not None and len(f.landmarks) == 5
            x0, y0, x1, y1 = f.box
            assert all(x0 <= x <= x1 and y0 <= y <= y1 for x, y in f.landmarks)
            on_left = (x0 + x1) / 2 < 160
            assert f.track == (fake.id if on_left else real.id)
            seen[f.track].append(frame.index)
    assert fake.frames == seen[fake.id] and real.frames == seen[real.id]
    assert real.n_faces == SAMPLED and 3 <= fake.n_faces <= SAMPLED - 3
    assert rec.frames_with_faces == SAMPLED and rec.faces == real.n_faces + fake.n_faces


def test_video_score_follows_the_fake_person(two_people_clip: Path, tiny_weights: Path) -> None:
    from worker.jobs import JobOptions, score_video

    settings = Settings(weights=str(tiny_weights), torch_threads=1, batch_size=4)
    rec = score_video(
        str(two_people_clip),
        settings,
        _colour_scorer(settings),
        options=JobOptions(frames=SAMPLED),
    )
    _check_two_people_record(rec)
    again = ResultRecord.model_validate_json(rec.model_dump_json())  # the stored form
    assert again.tracks == rec.tracks and again.schema_version == SCHEMA_VERSION


def test_video_score_follows_the_fake_person_through_the_queue(
    two_people_clip: Path,
    tiny_weights: Path,
    conn: redis.Redis,
    valkey_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import worker.scoring
    from worker.queue import enqueue
    from worker.results import load_result
    from worker.settings import get_settings
    from worker.workers import WarmWorker

    monkeypatch.setenv("CRE_WEIGHTS", str(tiny_weights))
    monkeypatch.setenv("CRE_REDIS_URL", valkey_url)
    monkeypatch.setenv("CRE_TORCH_THREADS", "1")
    get_settings.cache_clear()
    try:
        scorer = _colour_scorer(get_settings())
        monkeypatch.setattr(worker.scoring, "get_scorer", lambda settings: scorer)
        (sub,) = enqueue(
            [str(two_people_clip)], get_settings(), options={"frames": SAMPLED}, conn=conn
        )
        assert sub.video_id is not None
        WarmWorker(["cre"], connection=conn).work(burst=True)
        rec = load_result(conn, sub.video_id, get_settings())
    finally:
        get_settings.cache_clear()
    assert rec is not None
    _check_two_people_record(rec)


def test_record_tracks_are_validated_and_old_records_still_load() -> None:
    from pydantic import ValidationError

    one_face = {"box": [0, 0, 10, 10], "score": 0.5, "track": 3}
    base = {"video_id": "v1", "source": "a.mp4", "status": "done", "score": 0.5, "label": "real"}
    frames = [{"index": 0, "time_s": 0.0, "score": 0.5, "faces": [one_face]}]
    track = {"id": 3, "frames": [0], "score": 0.5, "n_faces": 1}
    ok = ResultRecord.model_validate({**base, "frames": frames, "tracks": [track]})
    assert ok.frames[0].faces[0].track == 3 and ok.tracks[0].counted
    with pytest.raises(ValidationError, match="not listed"):
        ResultRecord.model_validate({**base, "frames": frames, "tracks": []})
    with pytest.raises(ValidationError, match="two tracks with one id"):
        ResultRecord.model_validate({**base, "frames": frames, "tracks": [track, track]})
    with pytest.raises(ValidationError, match="landmarks"):
        bad_face = {**one_face, "landmarks": [[1.0, 2.0, 3.0]]}
        ResultRecord.model_validate({**base, "frames": [{**frames[0], "faces": [bad_face]}]})
    with pytest.raises(ValidationError, match="n_faces"):
        ResultRecord.model_validate({**base, "tracks": [{**track, "n_faces": 2}]})
    v1 = {
        **base,
        "schema_version": 1,
        "frames": [{**frames[0], "faces": [{"box": [0, 0, 1, 1], "score": 0.5}]}],
    }
    old = ResultRecord.model_validate(v1)
    assert old.tracks == [] and old.frames[0].faces[0].track is None


def test_the_readme_example_record_is_a_valid_current_record() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Results schema", 1)[1]
    example = section.split("```json\n", 1)[1].split("```", 1)[0]
    rec = ResultRecord.model_validate_json(example)
    assert rec.schema_version == SCHEMA_VERSION
    counted = [t.score for t in rec.tracks if t.counted]
    assert rec.score == max(counted)
    assert rec.faces == sum(t.n_faces for t in rec.tracks)
    assert [t.counted for t in rec.tracks] == [
        t.n_faces >= min_track_faces(rec.frames_with_faces) for t in rec.tracks
    ]
