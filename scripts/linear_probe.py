"""Second experiment (not the shipped recipe): a linear probe on frozen ImageNet features.

Fits an L2-regularised logistic regression on frozen EfficientNet-Lite0 ImageNet features
(global-average-pooled, 1280-d) of the *labelled* DFDC train crops, and reports AUC on
valid and test at each input size. It tells how much in-domain labelled data would buy
compared with the real-only, self-blended recipe.

``python scripts/linear_probe.py [--data ../shared/data/dev/dfdc_face_crops]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from cre_models.efficientnet_lite import EfficientNetLite0, load_imagenet_weights
from cre_models.evaluation.metrics import auc
from cre_models.training.data import load_face_samples
from cre_models.transforms import to_tensor


def _features(trunk: EfficientNetLite0, root: Path, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    samples = load_face_samples([root], margin=0.3, size=224, faces="crops", drop_gray=False)
    with torch.no_grad():
        x = to_tensor([s.image for s in samples], size)
        feats = trunk(x).mean((2, 3))
    return feats, torch.tensor([s.label for s in samples], dtype=torch.float32)


def fit_probe(x: torch.Tensor, y: torch.Tensor, l2: float) -> tuple[torch.Tensor, torch.Tensor]:
    """L2-regularised logistic regression with L-BFGS; returns ``(weights, bias)``."""
    w = torch.zeros(x.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=200)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ w + b, y)
        loss = loss + l2 * (w**2).sum() / len(y)
        loss.backward()
        return loss

    opt.step(closure)  # type: ignore[no-untyped-call]
    return w.detach(), b.detach()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="../shared/data/dev/dfdc_face_crops")
    p.add_argument("--sizes", default="128,224")
    p.add_argument("--l2", type=float, default=0.1)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    trunk = EfficientNetLite0().eval()
    load_imagenet_weights(trunk)
    root = Path(args.data)
    print("| input px | train crops | valid AUC | test AUC |")
    print("| --- | --- | --- | --- |")
    for size in (int(s) for s in args.sizes.split(",")):
        xtr, ytr = _features(trunk, root / "train", size)
        mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
        w, b = fit_probe((xtr - mu) / sd, ytr, args.l2)
        aucs = []
        for split in ("valid", "test"):
            x, y = _features(trunk, root / split, size)
            with torch.no_grad():
                aucs.append(auc(y.numpy(), (((x - mu) / sd) @ w + b).numpy()))
        print(f"| {size} | {len(ytr)} | {aucs[0]:.3f} | {aucs[1]:.3f} |")


if __name__ == "__main__":
    main()
