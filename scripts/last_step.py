"""Write a training run's last step (its ``resume.pt``) as a checkpoint.

``cre train-videos`` keeps the step with the best validation score on the cached crops
(``best_state.pt`` -> ``checkpoint/``). This writes the weights the run ended with instead
(the weight average with ``--ema``, as the loop validates and keeps it), with the run
checkpoint's architecture, input contract and training record (plus ``kept`` = ``last`` and
the step), so both can be scored through the worker's path:

    python scripts/last_step.py runs/p224 runs/p224/last
    cre eval --videos ... --weights runs/p224/last ...
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from cre_models.weights import DecisionSpec, load_pretrained, save_pretrained

logger = logging.getLogger("last_step")


def write_last_step(run: Path, out: Path) -> int:
    """Write ``run``'s last-step weights to ``out``; return that step.

    Raises:
        FileNotFoundError: the run has no ``checkpoint/`` or no ``resume.pt``.
    """
    for need in (run / "checkpoint" / "config.json", run / "resume.pt"):
        if not need.exists():
            raise FileNotFoundError(f"{need} is missing: is {run} a finished cre train-videos run?")
    model, cfg = load_pretrained(run / "checkpoint")
    state = torch.load(run / "resume.pt", weights_only=True)
    model.load_state_dict(state["ema"] if "ema" in state else state["model"], strict=True)
    step = int(state["step"])
    summary = {**cfg.training.get("summary", {}), "kept": "last", "kept_step": step}
    save_pretrained(
        model,
        out,
        name=cfg.name,
        version=cfg.version,
        input_spec=cfg.input,
        decision=DecisionSpec(threshold=0.5, aggregation="mean"),
        training={**cfg.training, "summary": summary},
        include_denoiser=cfg.network.get("denoiser") is not None,
    )
    logger.info("%s: step %d written to %s", run, step, out)
    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, help="a cre train-videos --out folder")
    p.add_argument("out", type=Path, help="checkpoint folder to write")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        write_last_step(args.run, args.out)
    except FileNotFoundError as e:
        raise SystemExit(f"error: {e}") from e


if __name__ == "__main__":
    main()
