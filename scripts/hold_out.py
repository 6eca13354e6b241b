"""Split labelled clips into the people a run trains on and the people it is scored on.

To ask whether a manipulation method in training helps on *other people's* fakes of that
method, a run must train on some people's clips and be scored on the rest. This script
reads one or more labels files (e.g. ``labels_more.tsv`` and ``labels_unseen.tsv`` of
``scripts/restore_more_ffpp.sh``, which share their real clips), takes the FF++ ids named by
``--hold``, and writes two labels files:

* ``OUT_train.tsv``: every clip that shows none of the held people (for ``cre
  train-videos --extra-labelled``), its fakes limited to ``--train-methods`` if given;
* ``OUT_held.tsv``: every clip that shows only held people (for ``cre eval --videos
  --labels``), its fakes limited to ``--held-methods`` if given.

Real clips are always kept. A clip that shows a held and a kept person is refused: that
person pair would sit on both sides. So is a clip listed twice with a different label or
method, a clip without an FF++ id (its person is unknown), and a ``--hold`` id no clip
shows (all before anything is written)::

    python scripts/hold_out.py ../data-external/labels_more.tsv \\
        ../data-external/labels_unseen.tsv --hold 183,253,469,481,878,866 \\
        --held-methods NeuralTextures,FaceShifter --out runs/five/A
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from cre_models.training.splits import identities

logger = logging.getLogger("hold_out")


def read_rows(paths: Sequence[str | Path]) -> tuple[list[str], list[dict[str, str]]]:
    """The rows of every file, once each, and the columns of the first file.

    A clip in two files must have the same ``label`` and ``method`` in both (the other
    columns may differ, e.g. a ``commit`` column only one manifest has).
    """
    columns: list[str] = []
    rows: dict[str, dict[str, str]] = {}
    for path in paths:
        with open(path, newline="") as f:
            reader = csv.DictReader(f, delimiter="\t")
            have = list(reader.fieldnames or [])
            if not {"file", "label", "method"} <= set(have):
                raise ValueError(f"{path}: expected 'file', 'label' and 'method' columns")
            columns = columns or have
            for r in reader:
                if r["label"] not in ("real", "fake"):
                    raise ValueError(f"{path}: label must be real or fake, got {r['label']!r}")
                old = rows.get(r["file"])
                if old is not None and (old["label"], old["method"]) != (r["label"], r["method"]):
                    raise ValueError(f"{r['file']} is listed twice with different labels")
                rows.setdefault(r["file"], r)
    return columns, list(rows.values())


def hold_out(
    rows: Sequence[dict[str, str]],
    hold: set[str],
    train_methods: set[str] | None = None,
    held_methods: set[str] | None = None,
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """``(train rows, held rows)``; fakes of a side limited to its methods when given.

    Raises:
        ValueError: a clip without an FF++ id, a clip showing a held and a kept person, or
            a held id that no clip shows.
    """
    train: list[dict[str, str]] = []
    held: list[dict[str, str]] = []
    shown: set[str] = set()
    for r in rows:
        ids = set(identities(r["file"]))
        if not ids:
            raise ValueError(f"{r['file']}: not an FF++ clip name, its person is unknown")
        shown |= ids
        if ids & hold and ids - hold:
            raise ValueError(
                f"{r['file']} shows held person {sorted(ids & hold)[0]} and kept person "
                f"{sorted(ids - hold)[0]}: hold both or neither"
            )
        side, methods = (held, held_methods) if ids & hold else (train, train_methods)
        if r["label"] == "real" or methods is None or r["method"] in methods:
            side.append(r)
    missing = sorted(hold - shown)
    if missing:
        raise ValueError(f"no clip shows held id(s) {', '.join(missing)}")
    return train, held


def _write(path: Path, columns: Sequence[str], rows: Sequence[dict[str, str]]) -> None:
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(
            f, fieldnames=list(columns), delimiter="\t", extrasaction="ignore", lineterminator="\n"
        )
        w.writeheader()
        w.writerows(rows)
    tmp.replace(path)


def _names(text: str | None) -> set[str] | None:
    return None if text is None else {t.strip() for t in text.split(",") if t.strip()}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("labels", nargs="+", help="labels files (file, label, method columns)")
    p.add_argument("--hold", required=True, help="comma-separated FF++ ids of the held people")
    p.add_argument("--train-methods", help="comma-separated fake methods the train file keeps")
    p.add_argument("--held-methods", help="comma-separated fake methods the held file keeps")
    p.add_argument("--out", required=True, help="output prefix: OUT_train.tsv and OUT_held.tsv")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    hold = _names(a.hold) or set()
    if not hold:
        logger.error("--hold names no id")
        return 2
    try:
        columns, rows = read_rows(a.labels)
        train, held = hold_out(rows, hold, _names(a.train_methods), _names(a.held_methods))
    except (OSError, ValueError) as e:
        logger.error("%s", e)
        return 2
    prefix = Path(a.out)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    for side, side_rows in (("train", train), ("held", held)):
        path = prefix.with_name(f"{prefix.name}_{side}.tsv")
        _write(path, columns, side_rows)
        fakes = sum(r["label"] == "fake" for r in side_rows)
        logger.info("wrote %s: %d real, %d fake", path, len(side_rows) - fakes, fakes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
