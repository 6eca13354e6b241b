"""The faster inference copy of a network, and torch thread counts for a block."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cre_models.inference import (
    CPU_BATCH_PIXELS,
    OneDnnConv2d,
    channels_last,
    default_batch_size,
    optimise_for_inference,
    torch_threads,
)
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
    assert [type(m) for m in fast][1:] == [nn.Identity, nn.MaxPool2d, nn.ReLU]
    assert isinstance(fast[0], nn.Conv2d)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), seq(x), atol=1e-6, rtol=0)


def _convolution_kernels(module: nn.Module, x: torch.Tensor) -> set[str]:
    from torch.profiler import profile

    with torch.inference_mode(), profile() as prof:
        module(x)
    return {e.name for e in prof.events() if "conv" in e.name and "slow" in e.name} | {
        e.name for e in prof.events() if e.name == "aten::mkldnn_convolution"
    }


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch without oneDNN")
def test_every_convolution_of_the_inference_copy_runs_onednn_on_one_thread() -> None:
    """The worker's one-thread batches: PyTorch sends a 1x1 convolution of a batch under 16
    to its generic kernel there; the inference copy's convolutions go to oneDNN, with the
    same outputs (any batch size, either layout)."""
    net = _network("efficientnet_lite0", "srm")
    fast = optimise_for_inference(net)
    convs = [m for m in fast.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(type(m) is OneDnnConv2d for m in convs)
    assert not any(type(m) is OneDnnConv2d for m in net.modules())  # the original is kept
    pointwise = nn.Conv2d(16, 16, 1).eval()
    x = torch.randn(2, 16, 8, 8).contiguous(memory_format=torch.channels_last)
    with torch_threads(1):
        assert "aten::_slow_conv2d_forward" in _convolution_kernels(pointwise, x)  # the reason
        fused = optimise_for_inference(nn.Sequential(pointwise))
        assert _convolution_kernels(fused, x) == {"aten::mkldnn_convolution"}
        for batch in (1, 3, 8):
            y = torch.rand(batch, 3, 64, 64) * 2 - 1
            with torch.inference_mode():
                want = net.predict_proba(y)
                for layout in (torch.contiguous_format, torch.channels_last):
                    got = fast.predict_proba(y.contiguous(memory_format=layout))
                    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_onednn_convolution_leaves_autocast_and_other_inputs_to_conv2d() -> None:
    conv = OneDnnConv2d(4, 4, 3, padding=1).eval()
    plain = nn.Conv2d(4, 4, 3, padding=1).eval()
    plain.load_state_dict(conv.state_dict())
    x = torch.randn(2, 4, 8, 8)
    with torch.inference_mode():
        with torch.autocast("cpu", dtype=torch.bfloat16):  # CRE_PRECISION=bfloat16
            assert conv(x).dtype == torch.bfloat16
        torch.testing.assert_close(conv(x), plain(x), atol=1e-6, rtol=0)
        same = OneDnnConv2d(4, 4, 3, padding="same").eval()  # a padding string
        same.load_state_dict(conv.state_dict())
        torch.testing.assert_close(same(x), plain(x), atol=1e-6, rtol=0)
        wide = x.double()  # another dtype
        torch.testing.assert_close(conv.double()(wide), plain.double()(wide))


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


def test_the_cpu_batch_fits_a_pixel_budget_and_a_gpu_gets_eight() -> None:
    """The CPU rule picked the fastest batch per crop at 128-320 px on our machine
    (docs/BENCHMARKS.md): 8 crops of 160 px, 5 of 224, 3 of 288, 2 of 320."""
    sizes = {128: 13, 160: 8, 192: 6, 224: 5, 256: 4, 288: 3, 320: 2, 1000: 1, 64: 16, 1: 16}
    assert {s: default_batch_size("cpu", s) for s in sizes} == sizes
    assert all(default_batch_size("cpu", s) * s * s >= CPU_BATCH_PIXELS for s in (160, 224, 320))
    assert default_batch_size("cuda", 224) == default_batch_size("cuda:1", 64) == 8
    with pytest.raises(ValueError, match="size"):
        default_batch_size("cpu", 0)
