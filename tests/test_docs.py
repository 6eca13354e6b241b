"""The docs cannot drift from the code: settings, commands, make targets, checkpoint numbers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cre_models.weights import CheckpointConfig, default_weights_dir, load_checkpoint_config
from worker.cli import COMMANDS
from worker.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_every_setting_is_documented() -> None:
    missing = [
        f"CRE_{n.upper()}" for n in Settings.model_fields if f"`CRE_{n.upper()}`" not in README
    ]
    assert not missing, f"settings missing from README.md: {missing}"


def test_every_cre_command_is_documented() -> None:
    missing = [name for name in COMMANDS if f"cre {name}" not in README]
    assert not missing, f"`cre` commands missing from README.md: {missing}"


def test_two_commands_and_ci_agree() -> None:
    assert "make run" in README and "make test" in README
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
    makefile = (ROOT / "Makefile").read_text()
    assert "torch==2.13.0" in makefile, "the CPU torch pin must be installed before the project"


# --- numbers from one place: the shipped checkpoint's config.json --------------------------

CHECKPOINT_HEADER = (
    "| checkpoint | input | crop margin | eye-aligned crops | threshold | aggregation "
    "| calibration | training crops |"
)


def checkpoint_row(cfg: CheckpointConfig) -> str:
    """The facts row README.md and docs/EVALUATION.md show, as ``config.json`` says it.

    Training crops: ``training.provenance.faces`` (``cre train``) or ``.crops``
    (``cre train-videos``).
    """
    cal = cfg.decision.calibration
    prov = cfg.training.get("provenance", {})
    crops = prov.get("faces", prov.get("crops", "?"))
    calibration = "none" if cal is None else f"Platt a {cal['a']:.3f}, b {cal['b']:.3f}"
    return (
        f"| `{cfg.name}` v{cfg.version} | {cfg.input.size} px | {cfg.input.crop_margin:g} "
        f"| {'yes' if cfg.input.align else 'no'} | {cfg.decision.threshold:.3f} "
        f"| `{cfg.decision.aggregation}` | {calibration} | {crops} |"
    )


@pytest.mark.parametrize("doc", ["README.md", "docs/EVALUATION.md"])
def test_the_shipped_checkpoints_numbers_match_its_config(doc: str) -> None:
    cfg = load_checkpoint_config(default_weights_dir())
    text = (ROOT / doc).read_text()
    want = checkpoint_row(cfg)
    assert CHECKPOINT_HEADER in text, f"{doc} lost the checkpoint table"
    row = text.split(CHECKPOINT_HEADER, 1)[1].split("\n")[2]
    assert row == want, f"{doc} says\n{row}\nconfig.json says\n{want}"


def test_the_readme_example_record_comes_from_the_shipped_checkpoint() -> None:
    cfg = load_checkpoint_config(default_weights_dir())
    example = README.split("## Results schema", 1)[1].split("```json\n", 1)[1].split("```")[0]
    rec = json.loads(example)
    assert rec["model"] == {
        "name": cfg.name,
        "version": cfg.version,
        "weights_sha256": cfg.weights_sha256,
    }
    assert rec["threshold"] == cfg.decision.threshold == rec["options"]["threshold"]
    assert rec["aggregation"] == cfg.decision.aggregation == rec["options"]["aggregation"]
    assert rec["options"]["frames"] == cfg.input.frames_per_video


@pytest.mark.parametrize("name", ["default", "fast"])
def test_the_shipped_model_card_is_what_the_card_writer_makes_of_its_config(name: str) -> None:
    """Re-rendered from ``config.json`` (and its own evaluation tables), the card is unchanged."""
    from cre_models.training.card import EvalTable, video_model_card
    from cre_models.weights import shipped_weights_dir

    folder = shipped_weights_dir(name)
    card = (folder / "MODEL_CARD.md").read_text()
    split = (
        r"(Validation|Test) split \((\d+) clips; [^)]*\):\n\n(.*?)(?=\nTest split|\nConditions:)"
    )
    tables = {m[1]: EvalTable(int(m[2]), m[3]) for m in re.finditer(split, card, re.S)}
    assert set(tables) == {"Validation", "Test"}
    assert video_model_card(folder, tables["Validation"], tables["Test"]) == card


@pytest.mark.parametrize("name", ["default", "fast"])
def test_the_shipped_model_cards_state_the_measured_limits(name: str) -> None:
    """An analyst reading a card learns where its scores stop meaning much."""
    from cre_models.training.card import KNOWN_LIMITS
    from cre_models.weights import shipped_weights_dir

    card = (shipped_weights_dir(name) / "MODEL_CARD.md").read_text()
    limits = card[card.index("## Known limits") :]
    assert limits.rstrip("\n") == "\n".join(KNOWN_LIMITS).rstrip("\n")
    for fact in ("NeuralTextures and FaceShifter", "DFDC", "CRE_MIN_FACE_PX", "`no_face`"):
        assert fact in limits
    from worker.settings import Settings

    assert f"`CRE_MIN_FACE_PX` ({Settings.model_fields['min_face_px'].default})" in limits


def _fast_card_with(tmp_path: Path, **provenance: object) -> str:
    """The card of the shipped ``fast`` config with ``provenance`` keys added."""
    from cre_models.training.card import EvalTable, video_model_card
    from cre_models.weights import shipped_weights_dir

    cfg = json.loads((shipped_weights_dir("fast") / "config.json").read_text())
    cfg["training"]["provenance"].update(provenance)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    return video_model_card(tmp_path, EvalTable(24, "| condition |\n"))


def test_the_model_card_names_extra_real_faces_and_their_terms(tmp_path: Path) -> None:
    assert "--extra-reals" not in _fast_card_with(tmp_path)
    card = _fast_card_with(tmp_path, extra_reals={"/x/shared/data/faces": 126})
    assert "`--extra-reals`, 126 files): `data/faces` (126)" in card
    assert "S-Lab non-commercial" in card


def test_the_model_card_names_extra_labelled_clips(tmp_path: Path) -> None:
    assert "labels_more.tsv" not in _fast_card_with(tmp_path)
    card = _fast_card_with(tmp_path, extra_labelled={"labels_more.tsv": 36})
    assert "`labels_more.tsv` (36 clips)" in card and "scripts/restore_more_ffpp.sh" in card


def test_the_model_card_names_the_self_blend_mask_landmarks(tmp_path: Path) -> None:
    from cre_models.training.card import EvalTable, video_model_card
    from cre_models.weights import shipped_weights_dir

    assert "the five RetinaFace landmarks (SBI" in _fast_card_with(tmp_path)
    cfg = json.loads((shipped_weights_dir("fast") / "config.json").read_text())
    cfg["training"]["loop"]["sbi_mask"] = "dense"
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    card = video_model_card(tmp_path, EvalTable(24, "| condition |\n"))
    assert "468 MediaPipe FaceMesh landmarks (Apache-2.0" in card
