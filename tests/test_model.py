"""Shapes, gradients, batch independence and input validation of the seed's models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cre_models.layers import ConstrainedConvResidual, GaussianResidual, SRMResidual
from cre_models.model import (
    MIN_DETAIL_PX,
    CompressionResilientNetwork,
    DenoiserConfig,
    DenoisingAutoencoder,
    EmbedderConfig,
    NetworkConfig,
    ResilientEmbedder,
    cap_detail,
    extract_resilient_features,
)
from cre_models.transforms import to_tensor


def tiny_network(**kw: object) -> CompressionResilientNetwork:
    """A small network for fast CPU tests: same structure, fewer channels."""
    emb = EmbedderConfig(
        embedding_dim=32, channels=(8, 8, 16, 16), residual=kw.pop("residual", "gaussian")
    )  # type: ignore[arg-type]
    den = DenoiserConfig(latent_dim=16, channels=(8, 8, 16, 16))
    return CompressionResilientNetwork(
        config=NetworkConfig(embedder=emb, denoiser=den, head_hidden=16, **kw)
    )  # type: ignore[arg-type]


def rand_images(b: int, h: int, w: int | None = None, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, h, w or h, generator=g) * 2 - 1


def test_seed_snippet_shapes() -> None:
    model = CompressionResilientNetwork(embedding_dim=512, num_classes=2)
    images = rand_images(2, 224)
    logits, reconstructed = model(images, return_reconstruction=True)
    assert logits.shape == (2, 2)
    assert reconstructed.shape == (2, 3, 224, 224)
    features = extract_resilient_features(ResilientEmbedder(embedding_dim=512), images)
    assert features.shape == (2, 512)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("size", [(32, 32), (45, 77), (128, 96)])
@pytest.mark.parametrize("residual", ["gaussian", "srm", "constrained"])
def test_embedder_any_size(batch: int, size: tuple[int, int], residual: str) -> None:
    emb = ResilientEmbedder(
        config=EmbedderConfig(embedding_dim=16, channels=(4, 4, 8, 8), residual=residual)
    )
    out = emb.eval()(rand_images(batch, *size))
    assert out.shape == (batch, 16)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("size", [(32, 32), (50, 70), (224, 224)])
def test_denoiser_shapes(size: tuple[int, int]) -> None:
    den = DenoisingAutoencoder(config=DenoiserConfig(latent_dim=8, channels=(4, 4, 8, 8))).eval()
    recon, latent = den(rand_images(2, *size))
    assert recon.shape == (2, 3, *size)
    assert latent.shape[:2] == (2, 8)
    assert recon.abs().max() <= 1.0  # Tanh output matches the [-1, 1] input contract


def test_seed_denoiser_latent_is_7x7_at_224() -> None:
    _, latent = DenoisingAutoencoder(latent_dim=256).eval()(rand_images(1, 224))
    assert latent.shape == (1, 256, 7, 7)


@pytest.mark.parametrize("classifier_input", ["input", "denoised"])
@pytest.mark.parametrize("residual", ["gaussian", "srm", "constrained"])
def test_gradients_reach_every_parameter(classifier_input: str, residual: str) -> None:
    torch.manual_seed(0)
    model = tiny_network(classifier_input=classifier_input, residual=residual).train()
    x = rand_images(4, 64)
    logits, recon = model(x, return_reconstruction=True)
    loss = (
        torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 0, 1]))
        + (recon - x).pow(2).mean()
    )
    loss.backward()
    missing = [
        n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)
    ]
    assert not missing, f"no gradient reached: {missing}"


def test_eval_output_does_not_depend_on_batch() -> None:
    torch.manual_seed(0)
    model = tiny_network().eval()
    x = rand_images(5, 64, seed=1)
    with torch.no_grad():
        alone = model(x[2:3])
        together = model(x)[2:3]
    torch.testing.assert_close(alone, together, rtol=1e-4, atol=1e-5)


def test_forward_features_head_split_matches_forward() -> None:
    model = tiny_network().eval()
    x = rand_images(2, 48)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_head(model.forward_features(x)), model(x))
        p = model.predict_proba(x)
    assert p.shape == (2,) and ((p >= 0) & (p <= 1)).all()


def test_input_skips_denoiser_unless_asked() -> None:
    model = tiny_network().eval()
    calls: list[int] = []
    assert model.denoiser is not None
    model.denoiser.register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        model(rand_images(1, 32))
        assert calls == []
        model(rand_images(1, 32), return_reconstruction=True)
    assert calls == [1]


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (torch.rand(2, 1, 64, 64), "3 \\(RGB\\) channels"),
        (torch.rand(2, 4, 64, 64), "3 \\(RGB\\) channels"),
        (torch.randint(0, 255, (2, 3, 64, 64), dtype=torch.uint8), "floating-point"),
        (torch.rand(2, 3, 31, 64), "at least 32x32"),
        (torch.rand(3, 64, 64), "shape \\(B, 3, H, W\\)"),
        (torch.full((1, 3, 64, 64), float("nan")), "NaN or infinite"),
        (torch.full((1, 3, 64, 64), float("inf")), "NaN or infinite"),
        (torch.rand(0, 3, 64, 64), "empty batch"),
    ],
)
def test_bad_inputs_raise_value_error(x: torch.Tensor, match: str) -> None:
    model = tiny_network().eval()
    with pytest.raises(ValueError, match=match):
        model(x)
    with pytest.raises(ValueError, match=match):
        model.embedder(x)
    with pytest.raises(ValueError, match=match):
        assert model.denoiser is not None
        model.denoiser(x)


def test_extract_features_accepts_uint8_arrays_lists_and_tensors() -> None:
    emb = ResilientEmbedder(config=EmbedderConfig(embedding_dim=16, channels=(4, 4, 8, 8)))
    emb.train()
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(3, 40, 40, 3), dtype=np.uint8)
    a = extract_resilient_features(emb, imgs, batch_size=2)
    b = extract_resilient_features(emb, list(imgs))
    c = extract_resilient_features(emb, imgs[0])
    d = extract_resilient_features(emb, to_tensor(imgs))
    assert a.shape == (3, 16) and c.shape == (1, 16)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a[:1], c)
    torch.testing.assert_close(a, d)
    assert emb.training, "the model's mode must be restored"
    mixed = [imgs[0], rng.integers(0, 256, size=(50, 60, 3), dtype=np.uint8)]
    with pytest.raises(ValueError, match="different sizes"):
        extract_resilient_features(emb, mixed)
    assert extract_resilient_features(emb, mixed, image_size=48).shape == (2, 16)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (np.zeros((40, 40, 3), dtype=np.float32), "uint8"),
        (np.zeros((40, 40), dtype=np.uint8), "HxWx3"),
        (np.zeros((40, 40, 4), dtype=np.uint8), "HxWx3"),
        ([], "no images"),
        (np.zeros((20, 20, 3), dtype=np.uint8), "at least 32x32"),
    ],
)
def test_extract_features_bad_inputs(bad: object, match: str) -> None:
    emb = ResilientEmbedder(config=EmbedderConfig(embedding_dim=16, channels=(4, 4, 8, 8)))
    with pytest.raises(ValueError, match=match):
        extract_resilient_features(emb, bad)  # type: ignore[arg-type]


def test_gaussian_residual_removes_flat_content() -> None:
    flat = torch.full((1, 3, 32, 32), 0.3)
    assert GaussianResidual()(flat).abs().max() < 1e-6
    assert SRMResidual()(flat).abs().max() < 1e-6
    noisy = flat + 0.1 * torch.randn(1, 3, 32, 32)
    assert GaussianResidual()(noisy).abs().mean() > 0.01


def test_constrained_conv_keeps_its_constraint() -> None:
    layer = ConstrainedConvResidual()
    w = layer.constrained_weight()
    c = layer.kernel_size // 2
    torch.testing.assert_close(w[:, :, c, c], torch.full(w.shape[:2], -1.0))
    torch.testing.assert_close(w.sum(dim=(2, 3)), torch.zeros(w.shape[:2]), atol=1e-5, rtol=0)
    flat = torch.full((1, 3, 32, 32), 0.7)
    assert layer(flat).abs().max() < 1e-4


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="residual"):
        EmbedderConfig(residual="wavelet")
    with pytest.raises(ValueError, match="rgb_stream"):
        EmbedderConfig(rgb_stream="resnet")
    with pytest.raises(ValueError, match="even"):
        EmbedderConfig(embedding_dim=33)
    with pytest.raises(ValueError, match="needs a denoiser"):
        NetworkConfig(denoiser=None, classifier_input="denoised")
    with pytest.raises(ValueError, match="residual_norm"):
        EmbedderConfig(residual_norm="l1")


@pytest.mark.parametrize("residual", ["gaussian", "srm"])
def test_rms_residual_norm_ignores_how_much_high_frequency_is_left(residual: str) -> None:
    """With ``residual_norm="rms"`` the noise stream sees each residual at unit RMS: the same
    face with its high frequencies scaled down (as a codec does, crudely) looks the same to
    it. Without it, the stream's input shrinks with them."""
    x = rand_images(2, 48)
    for norm in ("rms", "none"):
        emb = ResilientEmbedder(
            config=EmbedderConfig(
                embedding_dim=16, channels=(4, 8), residual=residual, residual_norm=norm
            )
        ).eval()
        r, r_weak = emb.noise_residual(x), emb.noise_residual(0.25 * x)  # linear filters
        if norm == "rms":
            torch.testing.assert_close(r, r_weak, atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(r.pow(2).mean(dim=(1, 2, 3)), torch.ones(2))
        else:
            torch.testing.assert_close(r_weak, 0.25 * r)
    flat = torch.full((1, 3, 32, 32), 0.3)  # no residual: the floor keeps it zero, not NaN
    emb = ResilientEmbedder(config=EmbedderConfig(embedding_dim=16, residual_norm="rms"))
    assert emb.noise_residual(flat).abs().max() < 1e-3


def test_configs_without_residual_norm_load_as_before() -> None:
    """Checkpoints written before the option have no ``residual_norm`` key: they load with
    the residual as filtered, which is what they were trained on."""
    d = NetworkConfig().to_dict()
    del d["embedder"]["residual_norm"]
    assert NetworkConfig.from_dict(d).embedder.residual_norm == "none"


def test_detail_px_is_checked_and_old_configs_load_without_a_cap() -> None:
    with pytest.raises(ValueError, match="detail_px"):
        EmbedderConfig(detail_px=MIN_DETAIL_PX - 1)
    assert EmbedderConfig(detail_px=0).detail_px == 0
    d = NetworkConfig().to_dict()
    del d["embedder"]["detail_px"]  # checkpoints written before the option
    assert NetworkConfig.from_dict(d).embedder.detail_px == 0


def test_cap_detail_keeps_size_and_coarse_content_and_drops_fine_detail() -> None:
    x = rand_images(2, 64)
    assert cap_detail(x, 0) is x and cap_detail(x, 64) is x  # off, or nothing to cap
    capped = cap_detail(x, 32)
    assert capped.shape == x.shape
    smooth = torch.nn.functional.interpolate(x[:, :, ::8, ::8], size=(64, 64), mode="bilinear")
    assert (cap_detail(smooth, 32) - smooth).abs().mean() < 0.1 * (capped - x).abs().mean()
    wide = rand_images(1, 96, 80)
    assert cap_detail(wide, 48).shape == wide.shape


def test_a_capped_embedder_does_not_see_detail_finer_than_its_cap() -> None:
    """With ``detail_px`` = half the input, a +-a checkerboard of 2x2 px cells averages to
    zero in every cell the input is shrunk by: the embedding cannot change. Without the
    cap it does: the cap is what the streams see, in training, evaluation and the worker."""
    x = rand_images(2, 64) * 0.5
    grid = torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).repeat(32, 32) * 0.2
    for detail_px, same in ((32, True), (0, False)):
        torch.manual_seed(0)
        emb = ResilientEmbedder(
            config=EmbedderConfig(embedding_dim=16, channels=(4, 8), detail_px=detail_px)
        ).eval()
        with torch.no_grad():
            a, b = emb(x), emb(x + grid)
        assert torch.allclose(a, b, atol=1e-5) is same, detail_px
