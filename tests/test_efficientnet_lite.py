"""EfficientNet-Lite0: our architecture, the packaged ImageNet weights, strict key mapping."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest
import torch

from cre_models.efficientnet_lite import (
    LITE0_DEPTH,
    EfficientNetLite0,
    EfficientNetLite0Stream,
    load_imagenet_weights,
    pretrained_weights_path,
    remap_pretrained_keys,
)
from cre_models.model import (
    CompressionResilientNetwork,
    EmbedderConfig,
    NetworkConfig,
    ResilientEmbedder,
)
from cre_models.weights import load_pretrained, save_pretrained
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


def test_truncated_stream_keeps_the_imagenet_blocks_it_keeps() -> None:
    """``blocks=8``: the stem and first 8 blocks carry the packaged ImageNet weights, the
    deeper blocks are gone and a fresh 1x1 head maps the 80 channels at stride 16 to the
    usual 1280; the stream's output shape does not change."""
    full = EfficientNetLite0Stream(24, pretrained=True).eval()
    cut = EfficientNetLite0Stream(24, pretrained=True, blocks=8).eval()
    assert len(cut.trunk.blocks) == 8 and len(full.trunk.blocks) == LITE0_DEPTH == 16
    kept = {k: v for k, v in full.trunk.state_dict().items() if not k.startswith("head.")}
    kept = {
        k: v for k, v in kept.items() if not k.startswith("blocks.") or int(k.split(".")[1]) < 8
    }
    cut_state = cut.trunk.state_dict()
    assert set(cut_state) == set(kept) | {k for k in cut_state if k.startswith("head.")}
    for key, value in kept.items():
        assert torch.equal(cut_state[key], value), key
    assert cut.trunk.head[0].in_channels == 80
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert cut.trunk.forward_features(x).shape == (2, 1280, 4, 4)  # stride 16
        assert cut(x).shape == (2, 24)


def test_rgb_blocks_is_checked_and_reaches_the_stream() -> None:
    with pytest.raises(ValueError, match="rgb_blocks"):
        EmbedderConfig(rgb_stream="efficientnet_lite0", rgb_blocks=0)
    with pytest.raises(ValueError, match="rgb_blocks"):
        EmbedderConfig(rgb_stream="efficientnet_lite0", rgb_blocks=LITE0_DEPTH + 1)
    with pytest.raises(ValueError, match="efficientnet_lite0"):
        EmbedderConfig(rgb_stream="seed", rgb_blocks=8)
    emb = ResilientEmbedder(
        config=EmbedderConfig(
            embedding_dim=32, rgb_stream="efficientnet_lite0", channels=(8, 8), rgb_blocks=5
        )
    )
    assert isinstance(emb.rgb_stream, EfficientNetLite0Stream)
    assert len(emb.rgb_stream.trunk.blocks) == 5
    with pytest.raises(ValueError, match="blocks must be in"):
        EfficientNetLite0().truncate(17)


def test_truncated_checkpoint_round_trips(tmp_path: Path) -> None:
    """A checkpoint of a cut stream rebuilds the cut stream from its config.json; configs
    written before the option have no ``rgb_blocks`` and load whole."""
    net = NetworkConfig(
        embedder=EmbedderConfig(
            embedding_dim=32, rgb_stream="efficientnet_lite0", channels=(8, 8), rgb_blocks=6
        ),
        denoiser=None,
        head_hidden=16,
    )
    torch.manual_seed(0)
    model = CompressionResilientNetwork(config=net).eval()
    save_pretrained(model, tmp_path, include_denoiser=False)
    loaded, _ = load_pretrained(tmp_path)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    d = NetworkConfig().to_dict()
    del d["embedder"]["rgb_blocks"]
    assert NetworkConfig.from_dict(d).embedder.rgb_blocks == LITE0_DEPTH
