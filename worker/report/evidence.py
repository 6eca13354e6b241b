"""What a ``cre report`` page shows: the record's faces and person tracks, and the pictures.

Everything a page shows comes in an :class:`Evidence`, built by
:mod:`worker.report.examine` from a result record, the video and the model, and laid out by
:mod:`worker.report.page`. Result records are read as plain dicts
(``record["frames"][i]["faces"][j]``...), so fields added later (``tracks``,
``faces[].track``, ``faces[].landmarks``) are used when present and never break a page when
absent: without ``tracks`` every face is one track, id 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = [
    "TRACK_COLOURS",
    "ReportOptions",
    "FaceView",
    "TrackView",
    "ShownFace",
    "InputFacts",
    "Evidence",
    "num",
    "tracks_from_record",
    "counted_frames",
]


TRACK_COLOURS = (
    "#2563eb",
    "#d97706",
    "#059669",
    "#7c3aed",
    "#db2777",
    "#0891b2",
    "#65a30d",
    "#b91c1c",
)
"""Colour of track ``k`` is ``TRACK_COLOURS[k % 8]``: timeline lines and frame boxes."""


def _within(default: int, lo: int, hi: int | None = None) -> Any:
    """A :class:`ReportOptions` field whose value must lie in ``[lo, hi]`` (``hi=None``: no top)."""
    return field(default=default, metadata={"range": (lo, hi)})


@dataclass(frozen=True)
class ReportOptions:
    """What a page shows and how big it gets (each count checked against its range)."""

    top: int = _within(3, 1)
    """Faces pictured per track (highest scores)."""
    max_tracks: int = _within(6, 1)
    """Tracks pictured (highest scores); all of them are on the timeline."""
    heatmaps: bool = True
    """Compute Grad-CAM maps (loads the model)."""
    frame_width: int = _within(480, 16, 4096)
    """Width in pixels of the pictured source frames."""
    jpeg_quality: int = _within(80, 1, 100)
    """Quality of every inlined JPEG."""
    thumbnails: int = _within(4, 0)
    """Frames shown for a record without faces."""
    blockiness_frames: int = _within(6, 0)
    """Decoded frames the blockiness is measured on, at most."""

    def __post_init__(self) -> None:
        for f in fields(self):
            lo, hi = f.metadata.get("range", (None, None))
            value = getattr(self, f.name)
            if lo is not None and value < lo:
                raise ValueError(f"{f.name} must be >= {lo}, got {value}")
            if hi is not None and value > hi:
                raise ValueError(f"{f.name} must be <= {hi}, got {value}")


@dataclass(frozen=True)
class FaceView:
    """One face of a record: where (frame, time, box) and how it scored."""

    frame_pos: int
    """Position of its frame in ``record["frames"]``."""
    frame_index: int
    time_s: float
    box: tuple[float, float, float, float]
    score: float
    track: int | None = None
    landmarks: tuple[tuple[float, float], ...] | None = None


@dataclass
class TrackView:
    """One person: the faces a tracker linked (or every face, for records without tracks).

    ``id`` is ``None`` for faces that a tracked record left outside every track.
    """

    id: int | None
    faces: list[FaceView]
    score: float | None = None
    n_faces: int = 0
    from_record: bool = False
    """True when the record had ``tracks``; False when all faces were taken as one."""

    @property
    def label(self) -> str:
        return "faces outside any track" if self.id is None else f"person track {self.id}"

    @property
    def colour(self) -> str:
        return "#6b7280" if self.id is None else TRACK_COLOURS[self.id % len(TRACK_COLOURS)]

    def top(self, k: int) -> list[FaceView]:
        """The ``k`` highest-scoring faces, highest first (earlier frame on ties)."""
        return sorted(self.faces, key=lambda f: (-f.score, f.time_s))[:k]


@dataclass
class ShownFace:
    """A face shown with pictures: the frame it came from, its crop and its heat maps."""

    face: FaceView
    frame_image: bytes | None = None
    """JPEG of the (downscaled) source frame with the box drawn."""
    crop_image: bytes | None = None
    """JPEG of the crop the model scored."""
    heatmaps: dict[str, bytes] = field(default_factory=dict)
    """JPEG per stream (``rgb``, ``noise``): the crop under its Grad-CAM map."""
    toward_fake: bool = True
    """The maps show what pushed the score up (True) or down (False)."""
    recomputed: float | None = None
    """The model's score for the crop now (compare with ``face.score``)."""
    frame_time_s: float | None = None
    """Time of the frame that was decoded again (compare with ``face.time_s``)."""


@dataclass
class InputFacts:
    """What the report measured about the input file (``None``: not measured)."""

    width: int | None = None
    height: int | None = None
    codec: str | None = None
    profile: str | None = None
    pix_fmt: str | None = None
    container: str | None = None
    duration_s: float | None = None
    fps: float | None = None
    rotation: int | None = None
    size_bytes: int | None = None
    bit_rate: float | None = None
    packets: int | None = None
    keyframes: int | None = None
    bpp: float | None = None
    key_bpp: float | None = None
    inter_bpp: float | None = None
    qp_mean: float | None = None
    qp_key: float | None = None
    qp_inter: float | None = None
    qp_blocks: float | None = None
    qp_scale: int | None = None
    qp_frames: int | None = None
    blockiness: float | None = None
    blockiness_frames: int = 0
    level: str = "unknown"


@dataclass
class Evidence:
    """Everything one report page shows."""

    record: dict[str, Any]
    tracks: list[TrackView]
    shown: dict[int | None, list[ShownFace]] = field(default_factory=dict)
    """Per track id, its shown faces (highest score first)."""
    input: InputFacts | None = None
    thumbnails: list[tuple[float, bytes]] = field(default_factory=list)
    """``(time_s, JPEG)`` of a few sampled frames, for a record without faces."""
    calibration: str | None = None
    frame_threshold: float | None = None
    """The threshold on the frame and face scores' scale (before calibration); ``None``
    when the checkpoint's config is not at hand."""
    heatmap_model: str | None = None
    """``name vX`` of the model that made the heat maps, when it made any."""
    input_size: int | None = None
    crop_margin: float | None = None
    topk_fraction: float = 0.25
    notes: list[str] = field(default_factory=list)
    """Things the report itself has to say (video unavailable, a score that differs...)."""
    generated_at: str = ""
    build_s: float | None = None
    hidden_tracks: int = 0
    """Tracks left out of the pictures (over ``--max-tracks``); all are on the timeline."""

    @property
    def threshold_moves(self) -> bool:
        """The record's threshold lies elsewhere on the frame scores' scale (a calibrated
        checkpoint): frames are compared with :attr:`frame_threshold`, not with it."""
        thr, ft = num(self.record.get("threshold")), self.frame_threshold
        return thr is not None and ft is not None and abs(ft - thr) > 1e-9


def num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _landmarks(value: Any) -> tuple[tuple[float, float], ...] | None:
    if not isinstance(value, list) or not value:
        return None
    points = []
    for p in value:
        if isinstance(p, list | tuple) and len(p) >= 2 and all(num(c) is not None for c in p[:2]):
            points.append((float(p[0]), float(p[1])))
    return tuple(points) or None


def _faces(record: Mapping[str, Any]) -> list[FaceView]:
    faces = []
    for pos, frame in enumerate(record.get("frames") or []):
        if not isinstance(frame, Mapping):
            continue
        t = num(frame.get("time_s")) or 0.0
        idx = frame.get("index")
        idx = idx if isinstance(idx, int) else pos
        for face in frame.get("faces") or []:
            if not isinstance(face, Mapping):
                continue
            box = face.get("box")
            score = num(face.get("score"))
            if not isinstance(box, list) or len(box) != 4 or score is None:
                continue
            coords = [num(v) for v in box]
            if any(c is None for c in coords):
                continue
            track = face.get("track")
            faces.append(
                FaceView(
                    frame_pos=pos,
                    frame_index=idx,
                    time_s=t,
                    box=(float(box[0]), float(box[1]), float(box[2]), float(box[3])),
                    score=score,
                    track=track if isinstance(track, int) and not isinstance(track, bool) else None,
                    landmarks=_landmarks(face.get("landmarks")),
                )
            )
    return faces


def tracks_from_record(record: Mapping[str, Any]) -> list[TrackView]:
    """The person tracks of a record, highest score first.

    With ``record["tracks"]`` (``[{id, frames, score, n_faces}]``) each face goes to the
    track its ``track`` field names, and faces with no (or an unknown) track are gathered
    in a last track with id ``None``. Without ``tracks``, every face is track 0, scored
    like the video (the record's ``score``). A record without faces has no track.
    """
    faces = _faces(record)
    raw_tracks = record.get("tracks")
    if not isinstance(raw_tracks, list) or not raw_tracks:
        if not faces:
            return []
        score = num(record.get("score"))
        if score is None:
            score = max(f.score for f in faces)
        return [TrackView(id=0, faces=faces, score=score, n_faces=len(faces))]
    tracks: dict[int, TrackView] = {}
    for t in raw_tracks:
        if not isinstance(t, Mapping) or not isinstance(t.get("id"), int):
            continue
        n = t.get("n_faces")
        tracks[t["id"]] = TrackView(
            id=t["id"],
            faces=[],
            score=num(t.get("score")),
            n_faces=n if isinstance(n, int) else 0,
            from_record=True,
        )
    loose: list[FaceView] = []
    for f in faces:
        if f.track is not None and f.track in tracks:
            tracks[f.track].faces.append(f)
        else:
            loose.append(f)
    out = list(tracks.values())
    for tr in out:
        tr.n_faces = tr.n_faces or len(tr.faces)
        if tr.score is None and tr.faces:
            tr.score = max(f.score for f in tr.faces)
    out.sort(key=lambda tr: (-(tr.score if tr.score is not None else -1.0), tr.id or 0))
    if loose:
        out.append(
            TrackView(
                id=None,
                faces=loose,
                score=max(f.score for f in loose),
                n_faces=len(loose),
                from_record=True,
            )
        )
    return out


def counted_frames(record: Mapping[str, Any], topk_fraction: float = 0.25) -> set[int]:
    """Positions (in ``record["frames"]``) of the frames that make up the video score.

    ``max``: the highest frame; ``topk_mean``: the ``ceil(fraction * n)`` highest;
    ``confident``: the frames :func:`~cre_models.aggregate.confident_subset` picks; ``mean``:
    all frames with a score.
    """
    scored = [
        (pos, s)
        for pos, f in enumerate(record.get("frames") or [])
        if isinstance(f, Mapping) and (s := num(f.get("score"))) is not None
    ]
    if not scored:
        return set()
    agg = record.get("aggregation")
    ranked = sorted(scored, key=lambda p: -p[1])
    if agg == "max":
        return {ranked[0][0]}
    if agg == "topk_mean":
        k = max(1, math.ceil(topk_fraction * len(scored) - 1e-9))
        return {p for p, _ in ranked[:k]}
    if agg == "confident":
        # the strategy's own choice on the frame scores (the record's video score is after
        # the checkpoint's calibration, so it cannot be matched against them)
        from cre_models.aggregate import confident_subset

        mask = confident_subset([s for _, s in scored])
        return {p for (p, _), keep in zip(scored, mask.tolist(), strict=True) if keep}
    return {p for p, _ in scored}
