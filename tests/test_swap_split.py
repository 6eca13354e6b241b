"""scripts/swap_split.py: other people's clips as validation, the split's validation in train."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import swap_split  # noqa: E402

HEADER = "file\tlabel\tmethod"
SPLIT = {
    "ffpp/100.mp4": "train",
    "ffpp/100_101.mp4": "train",
    "ffpp/200.mp4": "validation",
    "ffpp/200_201.mp4": "validation",
    "ffpp/300.mp4": "test",
    "heads/a.mp4": "train",
}


def _write(path: Path, rows: list[str], header: str = HEADER) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_validation_trains_the_others_validate_and_test_is_untouched() -> None:
    out = swap_split.swap_split(SPLIT, list(SPLIT), ["more/400.mp4", "more/400_401.mp4"])
    assert out["ffpp/200.mp4"] == out["ffpp/200_201.mp4"] == "train"
    assert out["more/400.mp4"] == out["more/400_401.mp4"] == "validation"
    assert out["ffpp/300.mp4"] == "test"
    assert [f for f, s in out.items() if s == "test"] == ["ffpp/300.mp4"]
    assert out["ffpp/100.mp4"] == out["heads/a.mp4"] == "train"


@pytest.mark.parametrize(
    ("others", "message"),
    [
        (["more/300_402.mp4"], "person 300"),  # the test person as a target
        (["more/402_200.mp4"], "person 200"),  # a validation person as a source
        (["ffpp/100.mp4"], "already in the split"),
        (["more/400.mp4", "more/400.mp4"], "listed twice"),
    ],
)
def test_refuses_a_person_in_two_splits_or_a_clip_twice(others: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        swap_split.swap_split(SPLIT, list(SPLIT), others)


def test_refuses_a_labelled_clip_the_split_does_not_list() -> None:
    with pytest.raises(ValueError, match="not in the split"):
        swap_split.swap_split(SPLIT, [*SPLIT, "ffpp/500.mp4"], [])


def test_cli_writes_the_split_and_the_joined_labels(tmp_path: Path) -> None:
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"salt": "s", "rule": "r", "clips": SPLIT}))
    labels = _write(tmp_path / "labels.tsv", [f"{f}\treal\tyoutube" for f in SPLIT])
    more = _write(
        tmp_path / "more.tsv", ["more/400.mp4\treal\tyoutube", "more/400_401.mp4\tfake\tDeepfakes"]
    )
    out = tmp_path / "out"
    assert swap_split.main([str(labels), str(more), str(out), "--split", str(split)]) == 0
    written = json.loads((out / "split.json").read_text())
    assert written["clips"]["more/400_401.mp4"] == "validation"
    assert written["clips"]["ffpp/200.mp4"] == "train"
    assert "swap_split" in written["rule"]
    lines = (out / "labels.tsv").read_text().splitlines()
    assert lines[0] == HEADER and lines.count(HEADER) == 1
    assert lines[1:] == [*labels.read_text().splitlines()[1:], *more.read_text().splitlines()[1:]]


def test_cli_refuses_a_leak_and_different_headers(tmp_path: Path) -> None:
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"clips": SPLIT}))
    labels = _write(tmp_path / "labels.tsv", [f"{f}\treal\tyoutube" for f in SPLIT])
    leak = _write(tmp_path / "leak.tsv", ["more/300_999.mp4\tfake\tDeepfakes"])
    assert (
        swap_split.main([str(labels), str(leak), str(tmp_path / "a"), "--split", str(split)]) == 2
    )
    assert not (tmp_path / "a").exists()
    other = _write(tmp_path / "o.tsv", ["more/400.mp4\treal"], header="file\tlabel")
    assert (
        swap_split.main([str(labels), str(other), str(tmp_path / "b"), "--split", str(split)]) == 2
    )


def test_cli_refuses_a_labels_file_without_labels(tmp_path: Path) -> None:
    labels = _write(tmp_path / "labels.tsv", [f"{f}\treal\tyoutube" for f in SPLIT])
    bad = _write(tmp_path / "bad.tsv", ["more/400.mp4\tmaybe\tyoutube"])
    assert swap_split.main([str(labels), str(bad), str(tmp_path / "c")]) == 2
    assert not (tmp_path / "c").exists()
