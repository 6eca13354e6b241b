"""Average checkpoints trained from one initialisation into one (see cre_models.training.soup).

    python scripts/average_checkpoints.py OUT CKPT CKPT [CKPT ...] [--name N --version V]

Then ``cre eval --videos ... --subset validation --fit --weights OUT`` chooses its decision.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from cre_models.training.soup import average_checkpoints


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, help="checkpoint folder to write")
    p.add_argument("checkpoints", nargs="+", type=Path, help="checkpoint folders to average")
    p.add_argument("--name", default="cre-ffpp")
    p.add_argument("--version", default="0.0.0")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        average_checkpoints(args.checkpoints, args.out, args.name, args.version)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from e


if __name__ == "__main__":
    main()
