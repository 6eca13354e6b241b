"""Write a checkpoint's MODEL_CARD.md from its config.json and ``cre eval --videos`` results.

    python scripts/model_card.py CHECKPOINT --validation EVAL_DIR --test EVAL_DIR

Every number in the card is read from ``CHECKPOINT/config.json`` (architecture, input
contract, decision, training summary) or from the ``metrics.json`` that ``cre eval
--videos`` wrote for the validation and the test split, so the card cannot drift from them.
The card itself is :func:`cre_models.training.card.video_model_card`.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from cre_models.training.card import EvalTable, video_model_card
from worker.evaluate import format_report

logger = logging.getLogger("model_card")


def _table(eval_dir: Path) -> EvalTable:
    data = json.loads((eval_dir / "metrics.json").read_text())
    meta = data["meta"]
    return EvalTable(meta["clips"], format_report(data["table"], meta["threshold"]))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--validation", type=Path, required=True)
    p.add_argument("--test", type=Path, default=None)
    a = p.parse_args()
    test = None if a.test is None else _table(a.test)
    text = video_model_card(a.checkpoint, _table(a.validation), test)
    (a.checkpoint / "MODEL_CARD.md").write_text(text)
    logger.info("wrote %s", a.checkpoint / "MODEL_CARD.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
