"""A two-epoch training run on generated images: artefacts, reloading, resume, reproducibility."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from cre_models.training.data import discover_media, load_face_samples
from cre_models.training.images_cli import config_from_args
from cre_models.training.stages import train
from cre_models.transforms import to_tensor
from cre_models.weights import create_model, load_checkpoint_config
from tests.train_helpers import labelled_crops_dir, real_frames_dir, tiny_config


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("data")
    return real_frames_dir(root / "real_faces"), labelled_crops_dir(root / "labelled")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, dirs: tuple[Path, Path]) -> Path:
    tmp = tmp_path_factory.mktemp("train")
    cfg = tiny_config(tmp, *dirs)
    best = train(cfg)
    assert best == Path(cfg.out) / "best"
    return Path(cfg.out)


def test_two_epoch_run_writes_every_artefact(trained: Path) -> None:
    for name in ("metrics.csv", "curves.png", "resume.pt", "train_config.json"):
        assert (trained / name).is_file(), name
    with (trained / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["stage"], r["epoch"]) for r in rows] == [("1", "1"), ("2", "1"), ("2", "2")]
    assert all(float(r["train_loss"]) > 0 for r in rows)
    assert all(0 <= float(r["val_auc_none"]) <= 1 for r in rows if r["stage"] == "2")
    for tag in ("best", "last"):
        for name in ("model.safetensors", "config.json", "MODEL_CARD.md"):
            assert (trained / tag / name).is_file(), f"{tag}/{name}"
    card = (trained / "best" / "MODEL_CARD.md").read_text()
    assert "| condition | frame AUC" in card and "ladder-5" in card and "provenance" in card.lower()


def test_checkpoint_loads_and_scores_like_the_worker(
    trained: Path, dirs: tuple[Path, Path]
) -> None:
    model, cfg = create_model(trained / "best")
    assert cfg.input.size == 32 and cfg.input.frames_per_video == 2
    assert 0.0 <= cfg.decision.threshold <= 1.0
    assert model.denoiser is None  # inference checkpoint: embedder + head only
    assert not any(
        k.startswith("denoiser.") for k in load_file(str(trained / "best" / "model.safetensors"))
    )
    faces = load_face_samples(
        [dirs[1]], margin=cfg.input.crop_margin, size=64, cache_dir=trained / "c2"
    )
    p = model.predict_proba(to_tensor([f.image for f in faces], cfg.input.size))
    assert p.shape == (len(faces),) and bool(((p >= 0) & (p <= 1)).all())
    assert load_checkpoint_config(trained / "best").training["provenance"]["real_faces"] > 0


def test_resume_reproduces_an_uninterrupted_run(
    tmp_path: Path, trained: Path, dirs: tuple[Path, Path]
) -> None:
    cfg = tiny_config(tmp_path, *dirs, stage2_epochs=1, report=[])
    train(cfg)
    cfg.stage2_epochs = 2
    train(cfg)  # resume.pt in cfg.out: continues after 2 of 3 epochs
    with (Path(cfg.out) / "metrics.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 3
    a = load_file(str(trained / "last" / "model.safetensors"))
    b = load_file(str(Path(cfg.out) / "last" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_cli_arguments_map_to_the_config() -> None:
    cfg, resume = config_from_args(
        [
            "--data",
            "x",
            "--rgb-stream",
            "efficientnet_lite0",
            "--channels",
            "8,8,8,8",
            "--stage1-epochs",
            "0",
            "--resume",
        ]
    )
    assert resume and cfg.rgb_stream == "efficientnet_lite0" and cfg.channels == (8, 8, 8, 8)
    d, _ = config_from_args(["--data", "x"])
    assert (d.stage1_epochs, d.stage1_lr, d.stage2_epochs, d.stage2_lr) == (10, 1e-3, 20, 1e-4)
    assert (d.ce_weight, d.recon_weight) == (1.0, 0.1)


def test_both_training_commands_read_a_config_field_the_same_way() -> None:
    from cre_models.training.cli import _parser as videos_parser

    cfg, _ = config_from_args(
        ["--data", "x", "--no-pretrained", "--zoom", "0.5", "0.9", "--severities", "light, heavy"]
    )
    assert not cfg.pretrained and cfg.zoom == (0.5, 0.9) and cfg.severities == ("light", "heavy")
    assert config_from_args(["--data", "x", "--keep-gray"])[0].drop_gray is False
    a = videos_parser().parse_args(["--data", "d", "--labels", "l", "--no-pretrained"])
    assert a.pretrained is False and a.severities == ("light", "medium", "heavy")
    a = videos_parser().parse_args(["--data", "d", "--labels", "l", "--severities", "heavy"])
    assert a.pretrained is True and a.severities == ("heavy",)
    for given, value in ((["--pretrained", "false"], False), (["--pretrained"], True)):
        assert (
            videos_parser().parse_args(["--data", "d", "--labels", "l", *given]).pretrained is value
        )
        assert config_from_args(["--data", "x", *given])[0].pretrained is value


def test_a_field_without_a_command_line_form_is_refused() -> None:
    import argparse

    from cre_models.training.images import TrainConfig
    from cre_models.training.options import add_option

    with pytest.raises(TypeError, match="data"):
        add_option(argparse.ArgumentParser(), TrainConfig(), "data")  # list[str]


def test_layouts_give_labels(tmp_path: Path, dirs: tuple[Path, Path]) -> None:
    items = discover_media(dirs[1])
    assert {i.label for i in items} == {0, 1}
    assert all(i.label == 0 for i in discover_media(dirs[0]))
    ff = tmp_path / "ff"
    (ff / "original_sequences" / "c23").mkdir(parents=True)
    (ff / "manipulated_sequences" / "Deepfakes").mkdir(parents=True)
    (ff / "original_sequences" / "c23" / "a.mp4").write_bytes(b"")
    (ff / "manipulated_sequences" / "Deepfakes" / "b.mp4").write_bytes(b"")
    assert [(i.path.name, i.label) for i in discover_media(ff)] == [("a.mp4", 0), ("b.mp4", 1)]


def test_threshold_maximises_balanced_accuracy() -> None:
    """`cre train` picks its threshold with the evaluation's rule (the median of the ties)."""
    from cre_models.evaluation.metrics import choose_threshold

    labels = np.array([0, 0, 0, 1, 1, 1])
    probs = np.array([0.1, 0.2, 0.35, 0.3, 0.6, 0.9])
    t = choose_threshold(labels, probs)
    pred = probs >= t
    assert 0.35 < t <= 0.6 and pred.tolist() == [False, False, False, False, True, True]
    json.dumps(t)


def test_small_square_images_are_crops_and_frames_are_searched(dirs: tuple[Path, Path]) -> None:
    from cre_models.faces import FaceDetector
    from cre_models.images import read_image
    from cre_models.training.data import extract_faces
    from cre_models.transforms import FaceTransform

    det = FaceDetector()
    t48 = FaceTransform(size=48, margin=0.3)
    crop = read_image(sorted((dirs[1] / "real").glob("*.png"))[0])  # 96x96: used whole
    out = extract_faces(crop, det, t48)
    assert len(out) == 1 and out[0].shape == (48, 48, 3)
    frame = read_image(sorted(dirs[0].glob("*.png"))[0])  # 320x240 frame: detector runs
    faces = extract_faces(frame, det, t48)
    assert len(faces) >= 1
    blank = np.zeros((240, 320, 3), np.uint8)
    assert extract_faces(blank, det, t48) == []


def test_a_face_cache_file_cut_short_is_extracted_again(
    tmp_path: Path, dirs: tuple[Path, Path]
) -> None:
    """Two evaluations sharing the face cache once crashed with ``EOFError``: one read a
    file the other was still writing. Writes are now atomic, and a file that is unreadable
    anyway (cut short by a crash, or written by an older version) is re-extracted."""
    cache = tmp_path / "cache"
    first = load_face_samples([dirs[1]], margin=0.1, size=32, cache_dir=cache)
    files = sorted((cache / "faces").iterdir())
    assert files and all(f.suffix == ".npz" and ".tmp" not in f.name for f in files)
    files[0].write_bytes(files[0].read_bytes()[:40])  # a half-written file
    again = load_face_samples([dirs[1]], margin=0.1, size=32, cache_dir=cache)
    assert len(again) == len(first)
    for a, b in zip(first, again, strict=True):
        assert a.group == b.group and np.array_equal(a.image, b.image)
    assert sorted((cache / "faces").iterdir()) == files  # rewritten, no temporary left
    with np.load(files[0]) as z:
        assert "crops" in z
