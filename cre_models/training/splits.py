"""Identity-disjoint train / validation / test splits of the labelled FaceForensics++ clips.

FaceForensics++ names a manipulated clip ``TTT_SSS.mp4``: the face of source ``SSS`` put
into target video ``TTT``. Both ids are people, so a fake links two identities, and a real
clip ``TTT.mp4`` is one identity. The rule (``make_split``):

1. group every clip by the connected component of the identities it shows (an id and
   every id it was swapped with, transitively);
2. order the components by ``sha256(salt + sorted ids)``: a fixed, data-independent
   shuffle;
3. walk that order and put a component in ``test`` while test holds fewer than
   ``test_fraction`` of the clips, then in ``validation`` likewise, the rest in ``train``;
4. if ``test`` or ``validation`` lacks one of the FF++ methods (Deepfakes, Face2Face,
   FaceSwap) present in the data, retry
   with the next salt (``cre-split-1``, ``cre-split-2``, ...).

So no person appears in two splits. Clips with no FF++ id (the talking heads of other
people) go to ``train``: they are real faces for self-blending. The committed split file
(``ffpp_split.json`` beside this module) records the salt and every clip's split; tests
check that it equals what the rule produces from the manifest.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Clip",
    "SPLITS",
    "EXTRA_METHOD",
    "identities",
    "identity_groups",
    "read_labels",
    "make_split",
    "load_split",
    "split_file",
]

SPLITS = ("train", "validation", "test")
EXTRA_METHOD = "extra"
"""``Clip.method`` of real photos and videos added with ``cre train-videos --extra-reals``:
always training, in the loop's "other" domain, never in a split file."""
FFPP_METHODS = ("Deepfakes", "Face2Face", "FaceSwap")
"""Manipulation methods that test and validation must each contain."""
_FFPP_NAME = re.compile(r"^(\d{3})(?:_(\d{3}))?$")


@dataclass(frozen=True)
class Clip:
    """One labelled clip of the manifest (``file`` is relative to the data root)."""

    file: str
    label: int  # 1 = fake
    method: str  # Deepfakes / Face2Face / FaceSwap / youtube / none ...

    @property
    def stem(self) -> str:
        return Path(self.file).stem


def identities(file: str) -> tuple[str, ...]:
    """The FF++ person ids a clip shows (``()`` for clips that are not FF++ clips)."""
    m = _FFPP_NAME.match(Path(file).stem)
    if m is None:
        return ()
    return tuple(i for i in m.groups() if i is not None)


def read_labels(path: str | Path) -> list[Clip]:
    """Clips of a ``labels.tsv`` / ``MANIFEST.tsv`` (columns ``file``, ``label``, ``method``)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if not rows or not {"file", "label"} <= set(rows[0]):
        raise ValueError(f"{path}: expected a TSV with 'file' and 'label' columns")
    clips = []
    for r in rows:
        if r["label"] not in ("real", "fake"):
            raise ValueError(f"{path}: label must be real or fake, got {r['label']!r}")
        clips.append(Clip(r["file"], int(r["label"] == "fake"), r.get("method") or "none"))
    return clips


def _components(clips: Sequence[Clip]) -> list[list[Clip]]:
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for c in clips:
        ids = identities(c.file)
        for a in ids[1:]:
            parent[find(a)] = find(ids[0])
    groups: dict[str, list[Clip]] = {}
    for c in clips:
        ids = identities(c.file)
        if ids:
            groups.setdefault(find(ids[0]), []).append(c)
    return list(groups.values())


def identity_groups(clips: Sequence[Clip]) -> list[list[Clip]]:
    """Clips grouped so that no person is in two groups (the split's rule, step 1).

    FF++ clips go by the connected component of the ids they show; a clip without an FF++
    id (another person's video) is a group of its own.
    """
    groups = _components(clips)
    groups += [[c] for c in clips if not identities(c.file)]
    return groups


def _key(salt: str, comp: Iterable[Clip]) -> str:
    ids = sorted({i for c in comp for i in identities(c.file)})
    return hashlib.sha256((salt + ":" + ",".join(ids)).encode()).hexdigest()


def make_split(
    clips: Sequence[Clip],
    test_fraction: float = 0.2,
    val_fraction: float = 0.2,
    max_tries: int = 100,
) -> dict[str, object]:
    """Apply the module's rule; return ``{"salt", "rule", "clips": {file: split}}``."""
    comps = _components(clips)
    n = sum(len(c) for c in comps)
    methods = {c.method for comp in comps for c in comp if c.label == 1} & set(FFPP_METHODS)
    for attempt in range(1, max_tries + 1):
        salt = f"cre-split-{attempt}"
        order = sorted(comps, key=lambda comp: _key(salt, comp))
        assign: dict[str, str] = {}
        counts = {s: 0 for s in SPLITS}
        for comp in order:
            if counts["test"] < test_fraction * n:
                split = "test"
            elif counts["validation"] < val_fraction * n:
                split = "validation"
            else:
                split = "train"
            counts[split] += len(comp)
            for c in comp:
                assign[c.file] = split
        ok = all(
            methods <= {c.method for c in clips if c.label == 1 and assign.get(c.file) == s}
            for s in ("test", "validation")
        )
        if ok:
            break
    else:
        raise ValueError(f"no salt in {max_tries} tries puts every method in test and validation")
    for c in clips:
        assign.setdefault(c.file, "train")  # not an FF++ clip: another person, train only
    return {
        "salt": salt,
        "rule": "cre_models.training.splits.make_split",
        "test_fraction": test_fraction,
        "val_fraction": val_fraction,
        "clips": dict(sorted(assign.items())),
    }


def split_file() -> Path:
    """The committed split of ``shared/data/external`` (see the module docstring)."""
    return Path(__file__).with_name("ffpp_split.json")


def load_split(path: str | Path | None = None) -> dict[str, str]:
    """``{file: split}`` from a split file (the committed one by default)."""
    data = json.loads(Path(path or split_file()).read_text())
    clips = data["clips"]
    bad = {s for s in clips.values() if s not in SPLITS}
    if bad:
        raise ValueError(f"unknown split names {sorted(bad)}")
    return dict(clips)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cre_models.training.splits LABELS.tsv [OUT.json]``: write the split."""
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("labels", help="labels.tsv / MANIFEST.tsv")
    p.add_argument("out", nargs="?", default=str(split_file()))
    a = p.parse_args(argv)
    clips = read_labels(a.labels)
    split = make_split(clips)
    Path(a.out).write_text(json.dumps(split, indent=1) + "\n")
    by = {s: [c for c in clips if split["clips"][c.file] == s] for s in SPLITS}  # type: ignore[index]
    for s, cs in by.items():
        fakes = sum(c.label for c in cs)
        print(f"{s:10s} {len(cs):3d} clips ({len(cs) - fakes} real, {fakes} fake)")  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
