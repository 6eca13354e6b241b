"""The faster inference copy of a network, and torch thread counts for a block."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cre_models.inference import channels_last, optimise_for_inference, torch_threads
from cre_models.model import CompressionResilientNetwork, EmbedderConfig, NetworkConfig


def _network(rgb_stream: str, residual: str) -> CompressionResilientNetwork:
    torch.manual_seed(0)
    net = CompressionResilientNetwork(
        config=NetworkConfig(
            embedder=EmbedderConfig(
                embedding_dim=32, channels=(8, 8, 16, 16), rgb_stream=rgb_stream, residual=residual
            ),
            denoiser=None,
            head_hidden=16,
        )
    )
    # batch norms with statistics other than 0/1, so that folding them is really tested
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return net.eval()


@pytest.mark.parametrize(
    ("rgb_stream", "residual"), [("seed", "srm"), ("efficientnet_lite0", "gaussian")]
)
def test_the_inference_copy_gives_the_same_outputs(rgb_stream: str, residual: str) -> None:
    net = _network(rgb_stream, residual)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    fast = optimise_for_inference(net)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in net.modules())  # the original is kept
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())
    x = torch.rand(5, 3, 64, 64) * 2 - 1
    with torch.inference_mode():
        want = net.predict_proba(x)
        got = fast.predict_proba(x.contiguous(memory_format=torch.channels_last))
        also = fast.predict_proba(x)  # any layout
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    torch.testing.assert_close(also, want, atol=1e-5, rtol=0)


def test_relu_before_a_max_pool_moves_after_it() -> None:
    seq = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2)).eval()
    fast = optimise_for_inference(seq)
    assert [type(m) for m in fast] == [nn.Conv2d, nn.Identity, nn.MaxPool2d, nn.ReLU]
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), seq(x), atol=1e-6, rtol=0)


def test_channels_last_changes_layout_not_outputs() -> None:
    conv = nn.Conv2d(3, 8, 3).eval()
    x = torch.randn(1, 3, 9, 9)
    with torch.no_grad():
        want = conv(x)
        assert channels_last(conv) is conv
        assert conv.weight.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(conv(x), want)


def test_torch_threads_sets_and_restores() -> None:
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with torch_threads(0):  # leave it alone
        assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), torch_threads(1):
        raise RuntimeError("restored on the way out too")
    assert torch.get_num_threads() == before


def test_precision_is_checked_and_emulated_bfloat16_warned(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from cre_models import inference

    assert inference.check_precision("float32", "cpu") == "float32"
    monkeypatch.setattr(inference, "native_bfloat16", lambda: True)
    assert inference.check_precision("bfloat16", "cpu") == "bfloat16"
    assert not caplog.records
    monkeypatch.setattr(inference, "native_bfloat16", lambda: False)
    assert inference.check_precision("bfloat16", "cpu") == "bfloat16"
    assert "slower than float32" in caplog.text
    with pytest.raises(ValueError, match="precision must be"):
        inference.check_precision("float16", "cpu")
