"""Identity splits, video metrics, calibration and landmark self-blends."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cre_models.evaluation.metrics import (
    auc,
    balanced_accuracy,
    choose_threshold,
    expected_calibration_error,
    fit_platt,
)
from cre_models.training.sbi import landmark_face_mask, make_sbi, sample_sbi_params
from cre_models.training.splits import Clip, identities, load_split, make_split, read_labels

from .conftest import SHARED_DATA


def _clips() -> list[Clip]:
    clips = []
    for a, b in [("001", "002"), ("003", "004"), ("005", "006"), ("007", "008"), ("009", "010")]:
        for x, y in ((a, b), (b, a)):
            clips.append(Clip(f"real/{x}.mp4", 0, "youtube"))
            for m in ("Deepfakes", "Face2Face", "FaceSwap"):
                clips.append(Clip(f"{m}/{x}_{y}.mp4", 1, m))
    clips.append(Clip("talking_heads/someone.mp4", 0, "none"))
    return clips


def test_identities_parse_ffpp_names() -> None:
    assert identities("a/b/033_097.mp4") == ("033", "097")
    assert identities("x/033.mp4") == ("033",)
    assert identities("talking_heads/liveportrait_d0.mp4") == ()


def test_split_is_identity_disjoint_and_deterministic() -> None:
    clips = _clips()
    split = make_split(clips, test_fraction=0.2, val_fraction=0.2)
    assign = split["clips"]
    assert isinstance(assign, dict)
    people: dict[str, set[str]] = {}
    for c in clips:
        for i in identities(c.file):
            people.setdefault(i, set()).add(assign[c.file])
    assert all(len(s) == 1 for s in people.values()), people
    assert assign["talking_heads/someone.mp4"] == "train"
    for s in ("test", "validation"):
        methods = {c.method for c in clips if assign[c.file] == s and c.label}
        assert methods == {"Deepfakes", "Face2Face", "FaceSwap"}
    assert make_split(clips) == make_split(clips)


def test_committed_split_matches_the_rule() -> None:
    manifest = SHARED_DATA / "external" / "MANIFEST.tsv"
    if not manifest.exists():
        pytest.skip("../shared/data/external is absent")
    clips = read_labels(manifest)
    committed = json.loads(
        (Path(__file__).parents[1] / "cre_models/training/ffpp_split.json").read_text()
    )
    assert make_split(clips) == committed
    assert load_split() == committed["clips"]


def _write_labels(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    path.write_text("file\tlabel\tmethod\n" + "".join(f"{f}\t{lab}\t{m}\n" for f, lab, m in rows))
    return path


def test_extra_labelled_clips_train_only_when_their_people_are_new(tmp_path: Path) -> None:
    """``cre train-videos --extra-labelled``: new people's clips join training; a clip that
    shows a validation or test person, or one already listed, is refused by name."""
    from cre_models.training.cli import extra_labelled_clips

    clips = _clips()
    split = make_split(clips)["clips"]
    assert isinstance(split, dict)
    held = next(c for c in clips if split[c.file] == "test" and c.label == 0)
    trained = next(c for c in clips if split[c.file] == "train" and c.label == 0)
    new = _write_labels(
        tmp_path / "new.tsv",
        [("real/900.mp4", "real", "youtube"), ("Deepfakes/900_901.mp4", "fake", "Deepfakes")],
    )
    more = extra_labelled_clips([str(new)], clips, split)
    assert more == [
        Clip("real/900.mp4", 0, "youtube"),
        Clip("Deepfakes/900_901.mp4", 1, "Deepfakes"),
    ]
    # a training person may come back in a new clip: only held-out people are refused
    again = _write_labels(
        tmp_path / "again.tsv", [(f"FaceSwap/{held.stem}_{trained.stem}.mp4", "fake", "FaceSwap")]
    )
    with pytest.raises(SystemExit, match=f"person {held.stem}, who is in the test split"):
        extra_labelled_clips([str(again)], clips, split)
    ok = _write_labels(
        tmp_path / "ok.tsv", [(f"FaceSwap/{trained.stem}_902.mp4", "fake", "FaceSwap")]
    )
    assert len(extra_labelled_clips([str(ok)], clips, split)) == 1
    dup = _write_labels(tmp_path / "dup.tsv", [(trained.file, "real", "youtube")])
    with pytest.raises(SystemExit, match="listed twice"):
        extra_labelled_clips([str(dup)], clips, split)
    with pytest.raises(SystemExit, match="listed twice"):
        extra_labelled_clips([str(new), str(new)], clips, split)
    assert extra_labelled_clips([], clips, split) == []


def test_the_extra_ffpp_manifest_shows_no_person_of_the_committed_split() -> None:
    """The 36 clips of ``ffpp_more.tsv`` are new people: every one may train."""
    from cre_models.training.cli import extra_labelled_clips

    more = Path(__file__).parents[1] / "cre_models/training/ffpp_more.tsv"
    split = load_split()
    committed = [Clip(f, 0, "youtube") for f in split]
    clips = extra_labelled_clips([str(more)], committed, split)
    assert len(clips) == 36 and sum(c.label for c in clips) == 27
    people = {i for c in committed for i in identities(c.file)}
    assert not people & {i for c in clips for i in identities(c.file)}


def test_degraded_versions_are_named_and_seeded_apart() -> None:
    from cre_models.training.cache import _check_version, _deg_seed, degraded_versions

    assert degraded_versions(0) == ()
    assert degraded_versions(3) == ("deg", "deg2", "deg3")
    with pytest.raises(ValueError):
        degraded_versions(-1)
    for ok in degraded_versions(4):
        _check_version(ok)
    for bad in ("orig2", "deg1", "deg0", "degx", "de", "deg-2", "deg02"):
        with pytest.raises(ValueError, match="unknown version"):
            _check_version(bad)
    clip = Clip("a/000.mp4", 0, "youtube")
    seeds = {_deg_seed(0, clip, v) for v in degraded_versions(3)}
    assert len(seeds) == 3  # each copy is its own draw
    assert _deg_seed(0, clip, "deg") == _deg_seed(0, clip, "deg")


def test_read_labels_rejects_bad_files(tmp_path: Path) -> None:
    bad = tmp_path / "l.tsv"
    bad.write_text("file\tlabel\nx.mp4\tmaybe\n")
    with pytest.raises(ValueError, match="real or fake"):
        read_labels(bad)
    bad.write_text("name\tclass\nx.mp4\treal\n")
    with pytest.raises(ValueError, match="'file' and 'label'"):
        read_labels(bad)


def test_metrics_match_hand_computed_values() -> None:
    y = [0, 0, 1, 1]
    assert auc(y, [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert balanced_accuracy(y, [0.1, 0.4, 0.35, 0.8], 0.5) == pytest.approx(0.75)
    assert np.isnan(auc([1, 1], [0.2, 0.3]))
    t = choose_threshold(y, [0.1, 0.2, 0.7, 0.9])
    assert 0.2 < t < 0.7
    assert expected_calibration_error([0, 1], [0.0, 1.0]) == pytest.approx(0.0)
    assert expected_calibration_error([0, 0], [0.95, 0.95]) == pytest.approx(0.95)


def test_auc_interval_brackets_the_auc_and_narrows_with_more_videos() -> None:
    from cre_models.evaluation.metrics import auc_interval

    rng = np.random.default_rng(1)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.repeat([0, 1], n)
        return y, rng.normal(y * 1.0, 1.0)  # a real separation, not a perfect one

    y, s = draw(12)
    lo, hi = auc_interval(y, s)
    assert lo < auc(y, s) < hi
    assert auc_interval(y, s) == (lo, hi)  # seeded
    y2, s2 = draw(400)
    lo2, hi2 = auc_interval(y2, s2, n_boot=400)
    assert hi2 - lo2 < (hi - lo) / 2  # 33x the videos: a much narrower interval
    assert lo2 < auc(y2, s2) < hi2
    # perfect separation: every resample is perfect too
    assert auc_interval([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == (1.0, 1.0)
    assert all(np.isnan(auc_interval([1, 1], [0.2, 0.3])))
    with pytest.raises(ValueError, match="level"):
        auc_interval(y, s, level=1.5)


def test_platt_fixes_an_overconfident_score() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    # true P(fake) is 0.3 / 0.7, but the score says 0.05 / 0.95
    true_p = np.where(rng.random(400) < 0.5, 0.3, 0.7)
    y = (rng.random(400) < true_p).astype(int)
    score = np.where(true_p > 0.5, 0.95, 0.05)
    cal = fit_platt(y.tolist(), score.tolist())
    assert cal(0.95) == pytest.approx(0.7, abs=0.08)
    assert cal(0.05) == pytest.approx(0.3, abs=0.08)
    before = expected_calibration_error(y.tolist(), score.tolist())
    after = expected_calibration_error(y.tolist(), [cal(s) for s in score])
    assert after < before / 3
    with pytest.raises(ValueError, match="both classes"):
        fit_platt([1, 1], [0.2, 0.4])


def test_landmark_mask_covers_the_face_and_not_the_corners() -> None:
    lm = np.array([[44, 50], [84, 50], [64, 70], [48, 90], [80, 90]], np.float32)
    rng = np.random.default_rng(1)
    params = sample_sbi_params(rng, 0.1)
    mask = landmark_face_mask((128, 128), lm, params, rng)
    assert mask[70, 64] == pytest.approx(params.blend_ratio, abs=0.05)
    assert mask[0, 0] == 0 and mask[127, 127] == 0 and mask[0, 127] == 0


def test_make_sbi_with_landmarks_changes_only_inside_its_mask() -> None:
    rng = np.random.default_rng(3)
    img = rng.integers(0, 255, (128, 128, 3), dtype=np.uint8)
    lm = np.array([[44, 50], [84, 50], [64, 70], [48, 90], [80, 90]], np.float32)
    fake, mask = make_sbi(img, np.random.default_rng(5), 0.1, landmarks=lm)
    assert fake.dtype == np.uint8 and fake.shape == img.shape
    assert np.array_equal(fake[mask == 0], img[mask == 0])
    assert (fake != img).any()
    again, _ = make_sbi(img, np.random.default_rng(5), 0.1, landmarks=lm)
    assert np.array_equal(fake, again)
