"""EfficientNet-Lite0: our architecture, the packaged ImageNet weights, strict key mapping."""

from __future__ import annotations

import cv2
import pytest
import torch

from cre_models.efficientnet_lite import (
    EfficientNetLite0,
    EfficientNetLite0Stream,
    load_imagenet_weights,
    pretrained_weights_path,
    remap_pretrained_keys,
)
from cre_models.model import EmbedderConfig, ResilientEmbedder
from worker.demo import sample_photo


@pytest.fixture(scope="module")
def packaged_state() -> dict[str, torch.Tensor]:
    return torch.load(str(pretrained_weights_path()), map_location="cpu", weights_only=True)


def test_stream_shape_and_range() -> None:
    torch.manual_seed(0)
    stream = EfficientNetLite0Stream(24, pretrained=False).eval()
    out = stream(torch.rand(2, 3, 64, 80) * 2 - 1)
    assert out.shape == (2, 24)
    assert torch.isfinite(out).all()


def test_packaged_weights_map_strictly(packaged_state: dict[str, torch.Tensor]) -> None:
    mapped = remap_pretrained_keys(packaged_state)
    trunk = EfficientNetLite0()
    assert set(mapped) == set(trunk.state_dict())
    trunk.load_state_dict(mapped, strict=True)
    assert sum(p.numel() for p in trunk.parameters()) == sum(
        v.numel()
        for k, v in packaged_state.items()
        if not k.startswith("_fc") and "running" not in k and "num_batches" not in k
    )


def test_unknown_keys_are_refused(packaged_state: dict[str, torch.Tensor]) -> None:
    bad = dict(packaged_state)
    bad["_blocks.0._se_reduce.weight"] = torch.zeros(1)
    with pytest.raises(KeyError, match="_se_reduce"):
        remap_pretrained_keys(bad)


def test_imagenet_weights_recognise_an_espresso(packaged_state: dict[str, torch.Tensor]) -> None:
    """Not just shape-compatible: the ImageNet classifier still works (class 967 = espresso)."""
    trunk = EfficientNetLite0().eval()
    load_imagenet_weights(trunk)
    img = cv2.resize(sample_photo("coffee"), (224, 224), interpolation=cv2.INTER_AREA)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.no_grad():
        feats = trunk(x).mean((2, 3))
        logits = feats @ packaged_state["_fc.weight"].T + packaged_state["_fc.bias"]
    assert int(logits.argmax()) == 967


def test_embedder_dispatches_to_efficientnet() -> None:
    emb = ResilientEmbedder(
        config=EmbedderConfig(
            embedding_dim=32, rgb_stream="efficientnet_lite0", channels=(8, 8, 8, 8)
        )
    )
    assert isinstance(emb.rgb_stream, EfficientNetLite0Stream)
    assert emb.eval()(torch.zeros(1, 3, 64, 64)).shape == (1, 32)
