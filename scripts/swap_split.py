"""Write a split in which other people's clips are validation and the split's validation trains.

The committed split (``cre_models/training/ffpp_split.json``) holds out 10 FF++ people for
validation and 10 for test. To ask whether training on more people helps on people nobody
trained on, this script moves the validation clips to ``train`` and makes the clips of a
second labels file (e.g. ``labels_more.tsv`` of ``scripts/restore_more_ffpp.sh``: 9 other
people) the validation set. ``test`` is left exactly as it is.

It writes ``OUT/split.json`` and ``OUT/labels.tsv`` (the two labels files, concatenated), the
pair ``cre train-videos --labels ... --split ...`` and ``cre eval --videos --subset
validation --split ...`` take:

    python scripts/swap_split.py ../data-external/labels.tsv \\
        ../data-external/labels_more.tsv runs/wide

Refused: a clip of the second file that is already labelled, or one that shows a person
(an FF++ id) of the first file's clips: that person would then sit in two splits.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from cre_models.training.splits import identities, load_split, read_labels, split_file

logger = logging.getLogger("swap_split")


def swap_split(
    split: dict[str, str], labelled: Sequence[str], others: Sequence[str]
) -> dict[str, str]:
    """``{file: split}``: ``split``'s validation clips in train, ``others`` as validation.

    Args:
        split: the split's ``{file: split}`` (every file of ``labelled`` must be in it).
        labelled: the files of the split's labels file.
        others: the files that become validation.

    Raises:
        ValueError: a file of ``labelled`` missing from ``split``, a file of ``others``
            already labelled or listed twice, or one showing a person of ``labelled``.
    """
    missing = [f for f in labelled if f not in split]
    if missing:
        raise ValueError(f"{len(missing)} labelled clips are not in the split, e.g. {missing[0]}")
    out = {f: ("train" if s == "validation" else s) for f, s in split.items()}
    people = {i for f in labelled for i in identities(f)}
    for f in others:
        if f in out:
            raise ValueError(f"{f} is already in the split (or listed twice)")
        shared = [i for i in identities(f) if i in people]
        if shared:
            raise ValueError(f"{f} shows person {shared[0]}, who is in the labelled set")
        out[f] = "validation"
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("labels", help="the split's labels.tsv")
    p.add_argument("others", help="labels.tsv of the clips that become validation")
    p.add_argument("out", help="folder for split.json and labels.tsv")
    p.add_argument("--split", default=str(split_file()), help="split JSON to start from")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    base = json.loads(Path(a.split).read_text())
    try:
        labelled = [c.file for c in read_labels(a.labels)]
        others = [c.file for c in read_labels(a.others)]
    except ValueError as e:
        logger.error("%s", e)
        return 2
    lines = Path(a.labels).read_text().splitlines()
    extra = Path(a.others).read_text().splitlines()
    if extra[0] != lines[0]:
        logger.error("%s and %s have different header lines", a.labels, a.others)
        return 2
    try:
        clips = swap_split(load_split(a.split), labelled, others)
    except ValueError as e:
        logger.error("%s", e)
        return 2
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rule = (
        f"{Path(a.split).name} with its validation clips moved to train and the clips of "
        f"{Path(a.others).name} as validation; test unchanged (scripts/swap_split.py)"
    )
    data = {**base, "salt": f"{base.get('salt', '')}+swap", "rule": rule, "clips": clips}
    (out / "split.json").write_text(json.dumps(data, indent=1) + "\n")
    (out / "labels.tsv").write_text("\n".join([*lines, *extra[1:]]) + "\n")
    counts = {s: sum(v == s for v in clips.values()) for s in ("train", "validation", "test")}
    logger.info("wrote %s and %s: %s", out / "split.json", out / "labels.tsv", counts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
