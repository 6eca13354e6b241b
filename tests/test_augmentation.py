"""Tests for the compression simulator (cre_models.artefacts and cre_models.augmentation)."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch

from cre_models import artefacts as art
from cre_models import augmentation as A
from cre_models.augmentation import PreprocessingPipeline
from cre_models.transforms import to_tensor
from tests.conftest import SHARED_DATA, bad_images, psnr
from worker.demo import sample_photo

SIZE = 224


def _textures(n: int, seed: int = 0) -> list[np.ndarray]:
    """Smooth random colour textures with some fine detail (stand-ins for faces)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        coarse = rng.integers(0, 256, size=(7, 7, 3), dtype=np.uint8)
        img = cv2.resize(coarse, (SIZE, SIZE), interpolation=cv2.INTER_CUBIC).astype(np.int16)
        img += rng.integers(-12, 13, size=img.shape, dtype=np.int16)
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return out


@pytest.fixture(scope="module")
def faces() -> list[np.ndarray]:
    """Real faces at 224 px: ../shared/data/faces when present, otherwise the bundled
    astronaut plus generated textures (the monotonicity claims must hold on either)."""
    folder = SHARED_DATA / "faces" / "codeformer" / "cropped_faces"
    paths = sorted(folder.glob("0*.png"))[:10] if folder.is_dir() else []
    imgs = []
    for p in paths:
        bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)
        assert bgr is not None
        imgs.append(
            cv2.resize(
                cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (SIZE, SIZE), interpolation=cv2.INTER_AREA
            )
        )
    if not imgs:
        astronaut = cv2.resize(sample_photo(), (SIZE, SIZE), interpolation=cv2.INTER_AREA)
        imgs = [astronaut, *_textures(7)]
    return imgs


@pytest.fixture(scope="module")
def face(faces: list[np.ndarray]) -> np.ndarray:
    return faces[0]


# Each artefact at both ends of its standalone range: (mild end, strong end).
ENDS = {
    "jpeg": (art.JpegParams(art.JPEG_QUALITY[1]), art.JpegParams(art.JPEG_QUALITY[0])),
    "blur": (art.BlurParams(min(art.BLUR_KERNELS)), art.BlurParams(max(art.BLUR_KERNELS))),
    "resize": (art.ResizeParams(art.RESIZE_FACTOR[1]), art.ResizeParams(art.RESIZE_FACTOR[0])),
    "color_shift": (art.ColorShiftParams((1, -1, 1)), art.ColorShiftParams((20, -20, 20))),
    "noise": (
        art.NoiseParams(art.NOISE_SIGMA[0], seed=1),
        art.NoiseParams(art.NOISE_SIGMA[1], seed=1),
    ),
    "block": (art.BlockParams(art.BLOCK_SCALE[0]), art.BlockParams(art.BLOCK_SCALE[1])),
}


@pytest.mark.parametrize("name", sorted(ENDS))
def test_each_artefact_changes_the_image_at_both_ends_and_more_at_the_strong_end(
    name: str, face: np.ndarray
) -> None:
    mild, strong = ENDS[name]
    out_mild, out_strong = mild.apply(face), strong.apply(face)
    for out in (out_mild, out_strong):
        assert out.dtype == np.uint8 and out.shape == face.shape
        assert not np.array_equal(out, face)
    assert psnr(face, out_strong) < psnr(face, out_mild)


@pytest.mark.parametrize("name", sorted(ENDS))
def test_artefacts_are_pure_and_do_not_touch_their_input(name: str, face: np.ndarray) -> None:
    before = face.copy()
    first = ENDS[name][1].apply(face)
    assert np.array_equal(face, before)
    assert np.array_equal(first, ENDS[name][1].apply(face))


def test_sampled_parameters_stay_in_their_ranges() -> None:
    rng = np.random.default_rng(0)
    jpeg = [art.JpegParams.sample(rng).quality for _ in range(300)]
    assert min(jpeg) >= 30 and max(jpeg) <= 90 and len(set(jpeg)) > 30
    assert {art.BlurParams.sample(rng).kernel_size for _ in range(100)} == {3, 5, 7}
    factors = [art.ResizeParams.sample(rng).factor for _ in range(200)]
    assert 0.5 <= min(factors) < 0.55 and 0.85 < max(factors) <= 0.9
    sigmas = [art.NoiseParams.sample(rng).sigma for _ in range(200)]
    assert 5 <= min(sigmas) and max(sigmas) <= 15
    shifts = np.array([art.ColorShiftParams.sample(rng).shifts for _ in range(200)])
    assert np.abs(shifts).max() <= 20 and shifts.std(axis=0).min() > 5  # channels independent


def test_degradation_is_monotone_in_severity(faces: list[np.ndarray]) -> None:
    means = {}
    for severity in A.SEVERITIES:
        scores = [
            psnr(img, A.compress(img, severity, np.random.default_rng([7, i, s]))[0])
            for i, img in enumerate(faces)
            for s in range(3)
        ]
        means[severity] = float(np.mean(scores))
    assert means["none"] > means["light"] > means["medium"] > means["heavy"], means


def test_severities_apply_what_the_docstring_says() -> None:
    rng = np.random.default_rng(0)
    for severity, jpeg_range in [("light", (70, 90)), ("medium", (50, 70)), ("heavy", (30, 50))]:
        for _ in range(40):
            params = A.sample_severity(severity, rng)
            kinds = [p.name for p in params]
            jpeg = params[-1]
            assert (
                isinstance(jpeg, art.JpegParams) and jpeg_range[0] <= jpeg.quality <= jpeg_range[1]
            )
            assert ("noise" in kinds) == (severity == "heavy")
            assert ("resize" in kinds) == (severity != "light")
            for p in params:
                if isinstance(p, art.ResizeParams):
                    assert (
                        (0.7 <= p.factor <= 0.9)
                        if severity == "medium"
                        else (0.5 <= p.factor <= 0.7)
                    )
    assert A.sample_severity("none", rng) == []


def test_same_seed_gives_bit_identical_output_and_params_replay(face: np.ndarray) -> None:
    out1, params1 = A.compress(face, "heavy", 123)
    out2, params2 = A.compress(face, "heavy", np.random.default_rng(123))
    assert np.array_equal(out1, out2) and params1 == params2
    assert np.array_equal(A.apply_params(face, params1), out1)
    others = [A.compress(face, "heavy", s)[0] for s in range(124, 128)]
    assert not all(np.array_equal(out1, o) for o in others)
    logged = [p.to_dict() for p in params1]
    assert logged[-1]["artefact"] == "jpeg" and "quality" in logged[-1]


def test_noise_is_gaussian_with_the_requested_sigma() -> None:
    noise = art.gaussian_noise((200, 200, 3), 10.0, seed=3)
    assert noise.dtype == np.float32
    assert abs(float(noise.mean())) < 0.2 and abs(float(noise.std()) - 10.0) < 0.2
    inside = np.mean(np.abs(noise) < 10.0)
    assert abs(inside - 0.6827) < 0.01  # one-sigma mass of a normal distribution
    assert not np.array_equal(noise, art.gaussian_noise((200, 200, 3), 10.0, seed=4))


def _boundary_ratio(img: np.ndarray) -> float:
    """Mean |horizontal + vertical step| across 8-pixel block boundaries / inside blocks."""
    y = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
    dx = np.abs(np.diff(y, axis=1))  # dx[:, j] is the step between columns j and j+1
    dy = np.abs(np.diff(y, axis=0))
    on_x = (np.arange(dx.shape[1]) % 8) == 7
    on_y = (np.arange(dy.shape[0]) % 8) == 7
    boundary = (dx[:, on_x].mean() + dy[on_y, :].mean()) / 2
    inside = (dx[:, ~on_x].mean() + dy[~on_y, :].mean()) / 2
    return float(boundary / inside)


@pytest.mark.parametrize("scale", [art.BLOCK_SCALE[0], art.BLOCK_SCALE[1]])
def test_block_artefact_is_blocky_not_grey_squares(faces: list[np.ndarray], scale: float) -> None:
    for img in faces[:4]:
        out = art.apply_block(img, scale)
        assert _boundary_ratio(out) > 1.15 * _boundary_ratio(img)
        # The measure itself is specific: noise of similar strength leaves boundaries alone.
        assert _boundary_ratio(art.apply_noise(img, 15, 0)) < 1.05 * _boundary_ratio(img)
        assert psnr(img, out) > 22  # the picture survives: quantised, not painted over
        # Not painted squares: block means follow the picture, and many blocks keep detail.
        blocks_in = img.reshape(28, 8, 28, 8, 3).astype(np.float32)
        blocks_out = out.reshape(28, 8, 28, 8, 3).astype(np.float32)
        means_in, means_out = blocks_in.mean((1, 3)).ravel(), blocks_out.mean((1, 3)).ravel()
        assert np.corrcoef(means_in, means_out)[0, 1] > 0.98
        textured = blocks_out.std((1, 3)).max(-1) > 1.0
        assert textured.mean() > 0.1


def test_block_transform_is_an_invertible_dct(face: np.ndarray) -> None:
    # A vanishing quantiser returns the image (up to YCrCb rounding): the transform inverts.
    assert psnr(face, art.apply_block(face, 1e-3)) > 45
    # An image that is constant on each grid-aligned 8x8 block has only DC terms: it comes
    # back flat per block and within a quantiser step of itself (a misaligned grid rings).
    colours = np.random.default_rng(0).integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    img = cv2.resize(colours, (64, 64), interpolation=cv2.INTER_NEAREST)
    out = art.apply_block(img, 1.0).astype(np.int16)
    blocks = out.reshape(8, 8, 8, 8, 3)
    assert np.abs(blocks - blocks[:, :1, :, :1]).max() <= 1
    assert np.abs(out - img).max() <= 4
    shifted = np.roll(img, 4, axis=1)  # edges now inside blocks: quantisation rings
    assert np.abs(art.apply_block(shifted, 1.0).astype(np.int16) - shifted).max() > 8


def test_block_artefact_handles_sizes_not_multiple_of_8() -> None:
    img = _textures(1)[0][:37, :50]
    out = art.apply_block(img, 2.0)
    assert out.shape == img.shape and out.dtype == np.uint8


def test_colour_order_is_never_swapped() -> None:
    rng = np.random.default_rng(0)
    img = np.empty((64, 64, 3), np.uint8)
    img[..., 0] = rng.integers(180, 220, size=(64, 64))  # red
    img[..., 1] = rng.integers(90, 110, size=(64, 64))  # green
    img[..., 2] = rng.integers(20, 40, size=(64, 64))  # blue
    means = img.reshape(-1, 3).mean(0)
    for params in [
        art.JpegParams(30),
        art.BlurParams(7),
        art.ResizeParams(0.5),
        art.NoiseParams(15, 0),
        art.BlockParams(4),
    ]:
        out_means = params.apply(img).reshape(-1, 3).mean(0)
        assert np.all(np.abs(out_means - means) < 6), (params, means, out_means)
    shifted = art.apply_color_shift(img, (10, 0, -10)).reshape(-1, 3).mean(0)
    assert np.allclose(shifted - means, (10, 0, -10), atol=0.01)


def test_jpeg_matches_a_reference_encoder(face: np.ndarray) -> None:
    # Pillow's libjpeg at the same quality: agreement shows OpenCV's BGR order is handled.
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(face).save(buf, format="JPEG", quality=50)
    ref = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    ours = art.apply_jpeg(face, 50)
    assert psnr(ref, ours) > 40
    swapped = art.apply_jpeg(face[..., ::-1].copy(), 50)[..., ::-1]
    assert psnr(ref, ours) > psnr(ref, swapped)


@bad_images
def test_bad_images_raise_value_error(bad: object) -> None:
    with pytest.raises(ValueError):
        A.compress(bad, "light", 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        art.apply_jpeg(bad, 50)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        PreprocessingPipeline(seed=0).preprocess(bad)


def test_bad_parameters_raise_value_error(face: np.ndarray) -> None:
    with pytest.raises(ValueError, match="unknown severity"):
        A.compress(face, "extreme", 0)
    with pytest.raises(ValueError):
        A.compress(face, "light", None)  # type: ignore[arg-type]
    for make in [
        lambda: art.JpegParams(0),
        lambda: art.BlurParams(4),
        lambda: art.ResizeParams(1.5),
        lambda: art.ColorShiftParams((1, 2)),  # type: ignore[arg-type]
        lambda: art.NoiseParams(-1.0, 0),
        lambda: art.BlockParams(0.0),
        lambda: art.JpegParams.sample(np.random.default_rng(0), quality=(90, 30)),
        lambda: PreprocessingPipeline(image_size=16),
        lambda: PreprocessingPipeline(severity="extreme"),
        lambda: PreprocessingPipeline(severity_weights=(1, 1)),
        lambda: PreprocessingPipeline(codec_probability=0.5, codec_profile="nope"),
    ]:
        with pytest.raises(ValueError):
            make()
    with pytest.raises(dataclasses.FrozenInstanceError):
        art.JpegParams(50).quality = 10  # type: ignore[misc]


def test_pil_images_are_accepted(face: np.ndarray) -> None:
    from PIL import Image

    pil = Image.fromarray(face)
    out, _ = A.compress(pil, "medium", 1)  # type: ignore[arg-type]
    assert np.array_equal(out, A.compress(face, "medium", 1)[0])
    rgba = Image.fromarray(np.dstack([face, np.full(face.shape[:2], 255, np.uint8)]))
    assert PreprocessingPipeline(seed=0).preprocess(rgba).shape == (3, SIZE, SIZE)


# ---- PreprocessingPipeline ---------------------------------------------------------------


def test_seed_usage_snippet_works() -> None:
    image = sample_photo()  # 512x512 RGB
    pipeline = PreprocessingPipeline(image_size=224, augment=True)
    processed = pipeline.preprocess(image, apply_compression=True)
    assert isinstance(processed, torch.Tensor)
    assert processed.shape == (3, 224, 224) and processed.dtype == torch.float32
    assert processed.min() >= -1 and processed.max() <= 1
    images = [image, image[:300, :200], image[100:]]
    batch = pipeline.preprocess_batch(images, apply_compression=True)
    assert batch.shape == (3, 3, 224, 224) and batch.dtype == torch.float32
    array_batch = pipeline.preprocess_batch(np.stack([image, image]), apply_compression=True)
    assert array_batch.shape == (2, 3, 224, 224)


def test_pipeline_output_follows_the_model_input_contract(face: np.ndarray) -> None:
    plain = PreprocessingPipeline(image_size=SIZE, augment=False, severity="none", seed=0)
    x = plain.preprocess(face)
    assert torch.equal(x, to_tensor(face)[0])  # uint8 / 127.5 - 1, RGB, CHW
    assert torch.equal(plain.preprocess(face, apply_compression=False), x)


def test_pipeline_is_deterministic_per_seed_and_logs_what_it_did(face: np.ndarray) -> None:
    def run(seed: int) -> tuple[torch.Tensor, list[A.Applied]]:
        """The batch, and what each image got: drawn first, then applied."""
        p = PreprocessingPipeline(image_size=128, augment=True, seed=seed)
        records = [p.sample() for _ in range(6)]
        return to_tensor([p.apply(face, r) for r in records]), records

    (b1, r1), (b2, r2), (b3, _) = run(5), run(5), run(6)
    assert torch.equal(b1, b2) and r1 == r2
    assert not torch.equal(b1, b3)
    batch = PreprocessingPipeline(image_size=128, augment=True, seed=5).preprocess_batch([face] * 6)
    assert torch.equal(batch, b1)  # preprocess_batch = sample, then apply, image by image
    # Replaying the record on the resized image reproduces the output exactly.
    p = PreprocessingPipeline(image_size=128, augment=True, seed=0)
    img = p.resize(face)
    rec = r1[0]
    replay = A.apply_params(rec.augment.apply(img), rec.artefacts)  # type: ignore[union-attr]
    assert torch.equal(to_tensor(replay)[0], b1[0])
    d = rec.to_dict()
    assert d["severity"] in A.SEVERITIES and set(d) == {"severity", "augment", "artefacts"}


def test_call_rng_overrides_the_pipeline_generator(face: np.ndarray) -> None:
    p = PreprocessingPipeline(image_size=64, augment=True, seed=0)
    a = p.preprocess_uint8(face, rng=np.random.default_rng([1, 2, 3]))
    p.preprocess(face)  # advancing the pipeline's own generator changes nothing below
    b = p.preprocess_uint8(face, rng=np.random.default_rng([1, 2, 3]))
    assert isinstance(a, np.ndarray) and a.dtype == np.uint8 and a.shape == (64, 64, 3)
    assert np.array_equal(a, b)


def test_random_severity_draws_every_level_and_respects_weights(face: np.ndarray) -> None:
    p = PreprocessingPipeline(image_size=64, seed=0)
    seen = {p.sample().severity for _ in range(100)}
    assert seen == set(A.SEVERITIES)
    only_heavy = PreprocessingPipeline(image_size=64, seed=0, severity_weights=(0, 0, 0, 1))
    assert {only_heavy.sample().severity for _ in range(20)} == {"heavy"}
    fixed = PreprocessingPipeline(image_size=64, seed=0, severity="light")
    assert {fixed.sample().severity for _ in range(20)} == {"light"}


def test_augmentation_flips_and_jitters_only_when_enabled(face: np.ndarray) -> None:
    flipped = art.apply_augment(face, True, 1.0, 1.0, 1.0)
    assert np.array_equal(flipped, face[:, ::-1])
    jittered = art.apply_augment(face, False, 1.1, 0.9, 1.1)
    assert 25 < psnr(face, jittered) < 60
    no_aug = PreprocessingPipeline(image_size=SIZE, augment=False, severity="none", seed=0)
    assert all(no_aug.sample().augment is None for _ in range(5))
    aug = PreprocessingPipeline(image_size=SIZE, augment=True, severity="none", seed=0)
    flips = [aug.sample().augment.flip for _ in range(50)]  # type: ignore[union-attr]
    assert 0 < sum(flips) < 50


def test_degrade_keeps_the_image_size(face: np.ndarray) -> None:
    p = PreprocessingPipeline(image_size=SIZE, severity="heavy", seed=0)
    big = cv2.resize(face, (300, 260))
    out = p.degrade(big, rng=3)
    applied = p.sample(3)
    assert out.shape == big.shape and out.dtype == np.uint8 and applied.severity == "heavy"
    assert np.array_equal(out, A.apply_params(big, applied.artefacts))


def test_pipeline_real_codec_path(face: np.ndarray) -> None:
    p = PreprocessingPipeline(
        image_size=96, seed=0, codec_probability=1.0, codec_profile="ladder-3"
    )
    applied = p.sample()
    x = to_tensor(p.apply(face, applied))
    assert x.shape == (1, 3, 96, 96) and applied.severity == "codec"
    assert applied.to_dict()["artefacts"][0]["crf"] == 35


def test_batch_errors_name_the_bad_image(face: np.ndarray) -> None:
    p = PreprocessingPipeline(image_size=64, seed=0)
    with pytest.raises(ValueError, match="image 1"):
        p.preprocess_batch([face, face.astype(np.float32)])
    with pytest.raises(ValueError, match="no images"):
        p.preprocess_batch([])
