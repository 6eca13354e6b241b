"""scripts/hold_out.py: held people's clips on one side, everyone else's on the other."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import hold_out  # noqa: E402

V = "ffpp/c23/videos"
MORE = [
    f"{V}/100.mp4\treal\tyoutube",
    f"{V}/101.mp4\treal\tyoutube",
    f"{V}/200.mp4\treal\tyoutube",
    "Deepfakes/100_101.mp4\tfake\tDeepfakes",
    "Deepfakes/200_201.mp4\tfake\tDeepfakes",
]
UNSEEN = [
    f"{V}/100.mp4\treal\tyoutube\tabc",  # the same real clip, a manifest with one more column
    "NeuralTextures/100_101.mp4\tfake\tNeuralTextures\tabc",
    "NeuralTextures/201_200.mp4\tfake\tNeuralTextures\tabc",
]


def _write(path: Path, rows: list[str], header: str = "file\tlabel\tmethod") -> str:
    path.write_text("\n".join([header, *rows]) + "\n")
    return str(path)


def _rows(lines: list[str]) -> list[dict[str, str]]:
    return [dict(zip(("file", "label", "method"), r.split("\t")[:3], strict=True)) for r in lines]


def _files(path: Path) -> list[str]:
    return [line.split("\t")[0] for line in path.read_text().splitlines()[1:]]


def test_cli_writes_both_sides_and_keeps_every_real(tmp_path: Path) -> None:
    more = _write(tmp_path / "more.tsv", MORE)
    unseen = _write(tmp_path / "unseen.tsv", UNSEEN, "file\tlabel\tmethod\tcommit")
    out = tmp_path / "folds" / "A"
    args = [more, unseen, "--hold", "200,201", "--held-methods", "NeuralTextures"]
    assert hold_out.main([*args, "--out", str(out)]) == 0
    train = tmp_path / "folds" / "A_train.tsv"
    held = tmp_path / "folds" / "A_held.tsv"
    assert _files(train) == [
        f"{V}/100.mp4",
        f"{V}/101.mp4",
        "Deepfakes/100_101.mp4",
        "NeuralTextures/100_101.mp4",
    ]
    # the held side keeps its real clip and only the named method's fakes
    assert _files(held) == [f"{V}/200.mp4", "NeuralTextures/201_200.mp4"]
    # the first file's columns; the real clip listed by both files is written once
    assert train.read_text().splitlines()[0] == "file\tlabel\tmethod"
    assert not list(tmp_path.glob("folds/*.part"))


def test_train_methods_limit_the_training_fakes() -> None:
    train, held = hold_out.hold_out(
        _rows(MORE + UNSEEN[1:]), {"200", "201"}, train_methods={"Deepfakes"}
    )
    assert [r["file"] for r in train] == [
        f"{V}/100.mp4",
        f"{V}/101.mp4",
        "Deepfakes/100_101.mp4",
    ]
    assert {r["method"] for r in held} == {"youtube", "Deepfakes", "NeuralTextures"}


@pytest.mark.parametrize(
    ("rows", "hold", "message"),
    [
        (["Deepfakes/100_200.mp4\tfake\tDeepfakes"], {"200"}, "hold both or neither"),
        ([f"{V}/100.mp4\treal\tyoutube"], {"300"}, "no clip shows held id"),
        (["heads/anna.mp4\treal\tnone"], {"100"}, "its person is unknown"),
    ],
)
def test_refuses_a_person_on_both_sides_an_unknown_id_or_person(
    rows: list[str], hold: set[str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        hold_out.hold_out(_rows(rows), hold)


def test_cli_refuses_conflicting_rows_bad_labels_and_an_empty_hold(tmp_path: Path) -> None:
    more = _write(tmp_path / "more.tsv", MORE)
    clash = _write(tmp_path / "clash.tsv", [f"{V}/100.mp4\tfake\tDeepfakes"])
    bad = _write(tmp_path / "bad.tsv", [f"{V}/300.mp4\tmaybe\tyoutube"])
    nomethod = _write(tmp_path / "nomethod.tsv", [f"{V}/300.mp4\treal"], "file\tlabel")
    out = str(tmp_path / "o")
    assert hold_out.main([more, clash, "--hold", "200", "--out", out]) == 2
    assert hold_out.main([bad, "--hold", "300", "--out", out]) == 2
    assert hold_out.main([nomethod, "--hold", "300", "--out", out]) == 2
    assert hold_out.main([more, "--hold", " , ", "--out", out]) == 2
    assert hold_out.main([more, "--hold", "100", "--out", out]) == 2  # 100_101 crosses
    assert not list(tmp_path.glob("o_*"))
