"""Person tracks: link the faces of the sampled frames, score each person, then the video.

A video is fake when any person in it is. Scoring frames (max over a frame's faces, then
an aggregate over frames) lets a real person's frames dilute a fake one's whenever the two
are not on screen together; scoring people does not. So the faces of the sampled frames
are linked into tracks (one per person), each track is scored from its own faces with the
usual strategies (:func:`cre_models.aggregate.aggregate`), and the video score is the
highest track score.

Linking (:func:`link_faces`), frame by frame in sample order:

* Every track still *alive* (seen at most :data:`MAX_GAP` skipped samples ago) predicts
  where its face is now: at constant velocity from its last two faces, or where it was
  last seen when it has one. Frames are sparse (about 32 samples over a whole video), so
  faces move between samples; the prediction keeps a person walking steadily, or two
  people crossing, on their own tracks.
* A track and a face of the new frame may be linked when the face is at most
  :data:`MAX_LINK_DISTANCE` face sizes from the prediction and their sizes differ by at
  most :data:`MAX_SIZE_RATIO`. The distance is the mean distance of the five landmarks
  when both faces have them (``box.landmarks``, frame pixels), else of the box centres;
  the face size is the geometric mean of the two faces' ``sqrt(width * height)``.
* The cost of a link is ``distance + (1 - IoU) + |ln(size ratio)|`` (IoU of the predicted
  and the new box); links are made greedily, cheapest first, each track and each face at
  most once. A face left over starts a new track. With a handful of faces per frame,
  greedy matching gives the same answer as an optimal assignment except in contrived ties.
* A track not linked for more than :data:`MAX_GAP` consecutive samples ends; a person who
  comes back later starts a new track.

Video score (:func:`score_tracks`, :func:`track_video`): tracks with at least
``max(MIN_TRACK_FACES, ceil(MIN_TRACK_SHARE * frames with a face))`` faces *count*; the
video score is the maximum score over the counted tracks. A spurious detection (a face on
a poster, a false positive on a background) makes a track of one or two faces, which must
not decide a video alone. When no track counts (a video with faces in very few frames),
every track counts.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from .aggregate import aggregate, check_strategy

__all__ = [
    "MAX_GAP",
    "MAX_LINK_DISTANCE",
    "MAX_SIZE_RATIO",
    "MIN_TRACK_FACES",
    "MIN_TRACK_SHARE",
    "BoxLike",
    "Track",
    "TrackedVideo",
    "link_faces",
    "min_track_faces",
    "score_tracks",
    "track_video",
]

logger = logging.getLogger(__name__)

MAX_GAP = 3
"""Sampled frames a track may skip (face missed, turned away, occluded) and still continue:
about a tenth of a 32-frame sample."""
MAX_LINK_DISTANCE = 1.5
"""Farthest a face may be from its track's predicted position, in face sizes."""
MAX_SIZE_RATIO = 2.0
"""Largest ratio of face sizes (``sqrt(width * height)``) between a track and a new face."""
MIN_TRACK_FACES = 2
"""A track needs at least this many faces to count for the video score."""
MIN_TRACK_SHARE = 0.25
"""...and at least this share of the frames that have a face (rounded up)."""


class BoxLike(Protocol):
    """What linking needs of a face (``cre_models.faces.FaceBox``): its box in frame pixels.

    Five landmarks (``landmarks``, ``((x, y), ...)`` in frame pixels) are used when the
    detector provides them; they are read with ``getattr`` so detectors without them work.
    """

    @property
    def x0(self) -> float: ...
    @property
    def y0(self) -> float: ...
    @property
    def x1(self) -> float: ...
    @property
    def y1(self) -> float: ...


@dataclass(frozen=True)
class Track:
    """One person: the sampled frames they appear in, their face score there, their score.

    Attributes:
        id: track id, numbered from 0 in order of first appearance.
        frame_indices: positions (in the sequence given to :func:`link_faces`) of the
            frames this track has a face in, increasing.
        face_scores: the track's face score in each of those frames.
        score: ``aggregate(face_scores, strategy)``.
        counted: whether the track is long enough to count for the video score (see the
            module docstring).
    """

    id: int
    frame_indices: tuple[int, ...]
    face_scores: tuple[float, ...]
    score: float
    counted: bool = True

    @property
    def n_faces(self) -> int:
        """Faces in the track (one per frame it appears in)."""
        return len(self.frame_indices)


@dataclass(frozen=True)
class TrackedVideo:
    """Tracks of one video and the video score they give.

    Attributes:
        track_ids: for each frame, the track id of each of its faces (same order as given).
        tracks: the tracks, by id.
        score: max over the counted tracks' scores; ``None`` when no frame has a face.
    """

    track_ids: list[list[int]]
    tracks: list[Track] = field(default_factory=list)
    score: float | None = None


@dataclass
class _Face:
    """A face reduced to what linking compares: centre, size, landmarks (all in pixels)."""

    box: np.ndarray  # (4,) x0, y0, x1, y1
    centre: np.ndarray  # (2,)
    size: float
    landmarks: np.ndarray | None  # (K, 2)

    @classmethod
    def of(cls, box: BoxLike) -> _Face:
        b = np.array([box.x0, box.y0, box.x1, box.y1], dtype=np.float64)
        w, h = b[2] - b[0], b[3] - b[1]
        if not (np.all(np.isfinite(b)) and w > 0 and h > 0):
            raise ValueError(f"degenerate face box {box}")
        raw = getattr(box, "landmarks", None)
        marks = None
        if raw is not None:
            marks = np.asarray(raw, dtype=np.float64).reshape(-1, 2)
            if marks.size == 0 or not np.all(np.isfinite(marks)):
                marks = None
        centre = np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2])
        return cls(box=b, centre=centre, size=math.sqrt(w * h), landmarks=marks)

    def shifted(self, d: np.ndarray) -> _Face:
        """The same face moved by ``d`` pixels (a prediction)."""
        marks = None if self.landmarks is None else self.landmarks + d
        return _Face(self.box + np.tile(d, 2), self.centre + d, self.size, marks)


@dataclass
class _Live:
    """A track being built: its faces so far, as (frame position, face)."""

    id: int
    seen: list[tuple[int, _Face]]

    def predict(self, pos: int) -> _Face:
        """Where this track's face should be in the frame at ``pos`` (constant velocity)."""
        last_pos, last = self.seen[-1]
        if len(self.seen) < 2:
            return last
        prev_pos, prev = self.seen[-2]
        velocity = (last.centre - prev.centre) / (last_pos - prev_pos)
        return last.shifted(velocity * (pos - last_pos))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union)


def _link_cost(pred: _Face, face: _Face) -> float | None:
    """Cost of giving ``face`` to the track predicted at ``pred``; ``None`` if not allowed."""
    ratio = max(pred.size, face.size) / min(pred.size, face.size)
    if ratio > MAX_SIZE_RATIO:
        return None
    scale = math.sqrt(pred.size * face.size)
    if (
        pred.landmarks is not None
        and face.landmarks is not None
        and pred.landmarks.shape == face.landmarks.shape
    ):
        dist = float(np.linalg.norm(pred.landmarks - face.landmarks, axis=1).mean()) / scale
    else:
        dist = float(np.linalg.norm(pred.centre - face.centre)) / scale
    if dist > MAX_LINK_DISTANCE:
        return None
    return dist + (1.0 - _iou(pred.box, face.box)) + math.log(ratio)


def link_faces(frames: Sequence[Sequence[BoxLike]]) -> list[list[int]]:
    """Link the faces of consecutive sampled frames into person tracks.

    Args:
        frames: for each sampled frame in time order, its face boxes (any order).

    Returns:
        For each frame, the track id of each of its faces, in the order given. Ids count
        from 0 in order of first appearance; two faces of one frame never share an id.

    Raises:
        ValueError: a box with no area or a non-finite coordinate.
    """
    live: list[_Live] = []
    next_id = 0
    out: list[list[int]] = []
    for pos, boxes in enumerate(frames):
        faces = [_Face.of(b) for b in boxes]
        # tracks that skipped more than MAX_GAP samples are over
        live = [t for t in live if pos - t.seen[-1][0] - 1 <= MAX_GAP]
        candidates: list[tuple[float, int, int]] = []
        for ti, track in enumerate(live):
            pred = track.predict(pos)
            for fi, face in enumerate(faces):
                cost = _link_cost(pred, face)
                if cost is not None:
                    candidates.append((cost, ti, fi))
        ids: list[int | None] = [None] * len(faces)
        used: set[int] = set()
        for _, ti, fi in sorted(candidates):
            if ti in used or ids[fi] is not None:
                continue
            used.add(ti)
            ids[fi] = live[ti].id
            live[ti].seen.append((pos, faces[fi]))
        for fi, face in enumerate(faces):
            if ids[fi] is None:
                ids[fi] = next_id
                live.append(_Live(next_id, [(pos, face)]))
                next_id += 1
        out.append([i for i in ids if i is not None])
    logger.debug("linked faces of %d frames into %d tracks", len(out), next_id)
    return out


def min_track_faces(frames_with_faces: int) -> int:
    """Faces a track needs to count for the video score (see the module docstring)."""
    return max(MIN_TRACK_FACES, math.ceil(MIN_TRACK_SHARE * frames_with_faces - 1e-9))


def score_tracks(
    track_ids: Sequence[Sequence[int]],
    scores: Sequence[Sequence[float]],
    strategy: str = "mean",
    *,
    topk: float = 0.25,
) -> list[Track]:
    """Score each track from its faces' scores, and mark the tracks that count.

    Args:
        track_ids: per frame, the track id of each face (from :func:`link_faces`).
        scores: per frame, the score of each face, in ``[0, 1]``, in the same order.
        strategy: aggregation over a track's faces (:data:`cre_models.aggregate.STRATEGIES`).
        topk: the fraction kept by ``topk_mean``.

    Returns:
        The tracks, by id.

    Raises:
        ValueError: shapes that do not match, a track id twice in one frame, an unknown
            strategy or a score outside ``[0, 1]``.
    """
    check_strategy(strategy)
    if len(track_ids) != len(scores):
        raise ValueError(f"{len(track_ids)} frames of track ids but {len(scores)} of scores")
    members: dict[int, list[tuple[int, float]]] = {}
    for pos, (ids, frame_scores) in enumerate(zip(track_ids, scores, strict=True)):
        if len(ids) != len(frame_scores):
            raise ValueError(f"frame {pos}: {len(ids)} track ids but {len(frame_scores)} scores")
        if len(set(ids)) != len(ids):
            raise ValueError(f"frame {pos}: a track has two faces in one frame: {list(ids)}")
        for tid, s in zip(ids, frame_scores, strict=True):
            members.setdefault(int(tid), []).append((pos, float(s)))
    frames_with_faces = sum(1 for ids in track_ids if len(ids) > 0)
    need = min_track_faces(frames_with_faces)
    long_enough = {tid for tid, m in members.items() if len(m) >= need}
    counted = long_enough or set(members)  # none long enough: every track counts
    return [
        Track(
            id=tid,
            frame_indices=tuple(p for p, _ in m),
            face_scores=tuple(s for _, s in m),
            score=aggregate([s for _, s in m], strategy, topk=topk),
            counted=tid in counted,
        )
        for tid, m in sorted(members.items())
    ]


def track_video(
    boxes: Sequence[Sequence[BoxLike]],
    scores: Sequence[Sequence[float]],
    strategy: str = "mean",
    *,
    topk: float = 0.25,
) -> TrackedVideo:
    """Link faces into tracks, score the tracks and the video.

    Args:
        boxes: per sampled frame in time order, its face boxes.
        scores: per frame, the score of each face (same order as ``boxes``).
        strategy: aggregation over each track's faces.
        topk: the fraction kept by ``topk_mean``.

    Returns:
        Track ids per face, the tracks, and the video score: the max over the counted
        tracks, ``None`` when no frame has a face.
    """
    ids = link_faces(boxes)
    tracks = score_tracks(ids, scores, strategy, topk=topk)
    counted = [t.score for t in tracks if t.counted]
    return TrackedVideo(track_ids=ids, tracks=tracks, score=max(counted) if counted else None)
