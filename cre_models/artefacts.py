"""Six compression artefacts: pure functions, and the parameter records that replay them.

Every artefact is a frozen parameter dataclass with ``sample(rng, ...)`` (draws the
parameters from an explicit ``numpy.random.Generator``) and ``apply(img)``, which calls a
pure function ``apply_<artefact>(img, ...)`` (torchvision's ``get_params`` / functional
split). Parameters are drawn first and applied second, so what was applied can be
logged (``to_dict()``) and replayed (:func:`cre_models.augmentation.apply_params`).

=================== ==================================== ===========================================
artefact            parameters (standalone range)        pure function
=================== ==================================== ===========================================
JPEG                quality 30-90                        :func:`apply_jpeg` (libjpeg, 4:2:0 chroma)
Gaussian blur       kernel 3x3, 5x5, 7x7                 :func:`apply_blur` (sigma from the kernel)
downscale-upscale   factor 0.5-0.9                       :func:`apply_resize` (area/bilinear down,
                                                         bilinear/bicubic up)
colour shift        per-channel RGB offsets, +-20        :func:`apply_color_shift`
Gaussian noise      sigma 5-15 (on 0-255), per channel   :func:`apply_noise` (seeded by the params)
8x8 block artefacts quantiser scale 1-4 x JPEG's tables  :func:`apply_block`: DCT-domain
                                                         quantisation of 8x8 blocks of Y, Cr, Cb
=================== ==================================== ===========================================

:func:`apply_augment` (flip and colour jitter, :class:`AugmentParams`) is the training
augmentation, built the same way. Contract: inputs are ``uint8`` RGB ``HxWx3`` arrays (PIL
images are converted, :func:`cre_models.images.check_image`); every ``apply_*`` returns a
new ``uint8`` RGB array of the input's shape, never swapping colour order (OpenCV's BGR is
handled inside). The same parameters give bit-identical output. Bad input raises
``ValueError``. Speed: single-threaded OpenCV is fastest per core; in DataLoader workers
call ``cv2.setNumThreads(1)``. ``docs/BENCHMARKS.md`` has the measured throughput.
"""

from __future__ import annotations

import functools
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import cv2
import numpy as np

from .images import check_image

__all__ = [
    "ArtefactParams",
    "JpegParams",
    "BlurParams",
    "ResizeParams",
    "ColorShiftParams",
    "NoiseParams",
    "BlockParams",
    "AugmentParams",
    "apply_jpeg",
    "apply_blur",
    "apply_resize",
    "apply_color_shift",
    "apply_noise",
    "gaussian_noise",
    "apply_block",
    "apply_augment",
]

JPEG_QUALITY = (30, 90)
"""Standalone JPEG quality range (inclusive)."""
BLUR_KERNELS = (3, 5, 7)
"""Gaussian blur kernel sizes."""
RESIZE_FACTOR = (0.5, 0.9)
"""Downscale factor range before upscaling back."""
COLOR_SHIFT = 20
"""Largest absolute per-channel colour offset (on 0-255)."""
NOISE_SIGMA = (5.0, 15.0)
"""Gaussian noise standard deviation range (on 0-255)."""
BLOCK_SCALE = (1.0, 4.0)
"""Multiplier range of the JPEG (quality 50) quantisation tables for the block artefact."""

_INTERP = {"area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC}


def _range(lo_hi: Sequence[float], what: str) -> tuple[float, float]:
    lo, hi = lo_hi
    if lo > hi:
        raise ValueError(f"{what}: empty range {tuple(lo_hi)}")
    return lo, hi


# --------------------------------------------------------------------------------------
# Pure artefact functions


def _check_jpeg(quality: int) -> None:
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")


def apply_jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """JPEG-encode and decode (libjpeg via OpenCV, 4:2:0 chroma subsampling)."""
    img = check_image(img)
    _check_jpeg(quality)
    bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - libjpeg does not fail on valid uint8 input
        raise RuntimeError("JPEG encoding failed")
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if decoded is None:  # pragma: no cover
        raise RuntimeError("JPEG decoding failed")
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)


def _check_blur(kernel_size: int, sigma: float = 0.0) -> None:
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"blur kernel size must be odd and positive, got {kernel_size}")


def apply_blur(img: np.ndarray, kernel_size: int, sigma: float = 0.0) -> np.ndarray:
    """Gaussian blur with a ``kernel_size`` square kernel (``sigma=0``: OpenCV's default for it)."""
    img = check_image(img)
    _check_blur(kernel_size, sigma)
    return cv2.GaussianBlur(
        img, (kernel_size, kernel_size), sigma, borderType=cv2.BORDER_REFLECT_101
    )


def _check_resize(factor: float, down: str = "area", up: str = "linear") -> None:
    if not 0.0 < factor <= 1.0:
        raise ValueError(f"resize factor must be in (0, 1], got {factor}")
    if down not in _INTERP or up not in _INTERP:
        raise ValueError(f"interpolation must be one of {sorted(_INTERP)}, got {down!r}, {up!r}")


def apply_resize(
    img: np.ndarray, factor: float, down: str = "area", up: str = "linear"
) -> np.ndarray:
    """Downscale by ``factor`` (0 < factor <= 1) and upscale back to the original size."""
    img = check_image(img)
    _check_resize(factor, down, up)
    h, w = img.shape[:2]
    sw, sh = max(1, round(w * factor)), max(1, round(h * factor))
    small = cv2.resize(img, (sw, sh), interpolation=_INTERP[down])
    return cv2.resize(small, (w, h), interpolation=_INTERP[up])


def _check_color_shift(shifts: Sequence[int]) -> None:
    if len(shifts) != 3 or any(abs(s) > 255 for s in shifts):
        raise ValueError(f"expected three channel shifts (R, G, B) in -255..255, got {shifts!r}")


def apply_color_shift(img: np.ndarray, shifts: Sequence[int]) -> np.ndarray:
    """Add a per-channel offset ``(dR, dG, dB)`` with saturation at 0 and 255."""
    img = check_image(img)
    _check_color_shift(shifts)
    lut = np.clip(np.arange(256, dtype=np.int16)[:, None] + np.asarray(shifts, np.int16), 0, 255)
    return cv2.LUT(img, lut.astype(np.uint8).reshape(1, 256, 3))


@functools.cache
def _normal_table() -> np.ndarray:
    # Quantiles of N(0, 1) at the midpoints of 65536 equal-probability bins: indexing it
    # with uniform 16-bit integers gives Gaussian samples (tails cut at +-4.3 sigma) about
    # 5x faster than Generator.standard_normal, which dominated the heavy severity's cost.
    inv = statistics.NormalDist().inv_cdf
    return np.array([inv((i + 0.5) / 65536) for i in range(65536)], dtype=np.float32)


def gaussian_noise(shape: tuple[int, ...], sigma: float, seed: int) -> np.ndarray:
    """Zero-mean Gaussian samples of std ``sigma`` (float32), a pure function of ``seed``."""
    n = int(np.prod(shape))
    idx = np.frombuffer(np.random.default_rng(seed).bytes(2 * n), dtype=np.uint16)
    return np.take(_normal_table() * np.float32(sigma), idx).reshape(shape)


def _check_noise(sigma: float, seed: int) -> None:
    if sigma < 0:
        raise ValueError(f"noise sigma must be >= 0, got {sigma}")


def apply_noise(img: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """Add zero-mean Gaussian noise of std ``sigma`` (on 0-255), independent per pixel and channel.

    The noise is a pure function of ``seed`` (:func:`gaussian_noise`); the sum is rounded
    and saturated to 0-255.
    """
    img = check_image(img)
    _check_noise(sigma, seed)
    return cv2.add(img, gaussian_noise(img.shape, sigma, seed), dtype=cv2.CV_8U)


# JPEG's example quantisation tables (ITU-T T.81, Annex K), i.e. quality 50.
_Q_LUMA = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=np.float32,
)
_Q_CHROMA = np.full((8, 8), 99, dtype=np.float32)
_Q_CHROMA[:4, :4] = [[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]]
_Q_YCRCB = np.stack([_Q_LUMA, _Q_CHROMA, _Q_CHROMA])  # (3, 8, 8), cv2's order: Y, Cr, Cb


def _dct_rows_t(blocks: np.ndarray, inverse: bool = False) -> np.ndarray:
    """``(..., 8, 8)`` -> the transposed 2-D (inverse) DCT of every block.

    ``cv2.dct`` with ``DCT_ROWS`` transforms each 8-sample row: ``B -> B D^T``. Doing it,
    transposing each block and doing it again gives ``(D B D^T)^T``; the inverse undoes it
    the same way. OpenCV runs single-threaded under ``cv2.setNumThreads(1)``, whereas a
    NumPy/BLAS matrix product spins threads and slowed this 10x on a loaded machine.
    """
    flags = cv2.DCT_ROWS | (cv2.DCT_INVERSE if inverse else 0)
    shape = blocks.shape
    rows = cv2.dct(np.ascontiguousarray(blocks).reshape(-1, 8), flags=flags).reshape(shape)
    cols = np.ascontiguousarray(rows.swapaxes(-1, -2)).reshape(-1, 8)
    return cv2.dct(cols, flags=flags).reshape(shape)


def _check_block(scale: float) -> None:
    if not scale > 0:
        raise ValueError(f"block quantisation scale must be > 0, got {scale}")


def apply_block(img: np.ndarray, scale: float) -> np.ndarray:
    """Quantise the DCT of every 8x8 block, as JPEG / H.264 intra coding do.

    The image goes to YCrCb; each 8x8 block of each channel is transformed with the 2-D
    DCT-II, its coefficients are quantised with JPEG's example tables (luma for Y, chroma
    for Cr and Cb) multiplied by ``scale``, and transformed back. The grid starts at the
    top-left pixel; partial blocks at the right and bottom edges are padded by replication.
    ``scale`` 1 is roughly JPEG quality 50 without chroma subsampling; 4 is roughly 12.
    """
    img = check_image(img)
    _check_block(scale)
    h, w = img.shape[:2]
    ph, pw = -h % 8, -w % 8
    padded = cv2.copyMakeBorder(img, 0, ph, 0, pw, cv2.BORDER_REPLICATE) if ph or pw else img
    ycc = cv2.cvtColor(padded, cv2.COLOR_RGB2YCrCb).astype(np.float32)
    ycc -= 128.0
    hh, ww = ycc.shape[:2]
    by, bx = hh // 8, ww // 8
    blocks = ycc.reshape(by, 8, bx, 8, 3).transpose(0, 2, 4, 1, 3)  # (by, bx, C, 8, 8)
    coef_t = _dct_rows_t(blocks)  # transposed coefficients, so quantise with Q^T
    q_t = (_Q_YCRCB * np.float32(scale)).swapaxes(-1, -2)
    coef_t /= q_t
    np.rint(coef_t, out=coef_t)
    coef_t *= q_t
    rec = _dct_rows_t(coef_t, inverse=True).transpose(0, 3, 1, 4, 2).reshape(hh, ww, 3)
    rec += 128.0
    np.clip(rec, 0, 255, out=rec)
    out = cv2.cvtColor(np.rint(rec).astype(np.uint8), cv2.COLOR_YCrCb2RGB)
    return np.ascontiguousarray(out[:h, :w]) if ph or pw else out


def _check_augment(
    flip: bool = False, brightness: float = 1.0, contrast: float = 1.0, saturation: float = 1.0
) -> None:
    if min(brightness, contrast, saturation) < 0:
        raise ValueError("brightness, contrast and saturation factors must be >= 0")


def apply_augment(
    img: np.ndarray, flip: bool, brightness: float, contrast: float, saturation: float
) -> np.ndarray:
    """Training augmentation: horizontal flip, then brightness, contrast, saturation factors.

    Factors are multiplicative (1 = unchanged); contrast scales around the mean grey level,
    saturation blends with the greyscale image (as torchvision's ``ColorJitter`` does).
    """
    img = check_image(img)
    _check_augment(flip, brightness, contrast, saturation)
    out = cv2.flip(img, 1) if flip else img
    if brightness != 1.0 or contrast != 1.0:
        mean = cv2.mean(cv2.cvtColor(out, cv2.COLOR_RGB2GRAY))[0]
        lut = ((np.arange(256, dtype=np.float32) - mean) * contrast + mean) * brightness
        out = cv2.LUT(out, np.rint(np.clip(lut, 0, 255)).astype(np.uint8))
    if saturation != 1.0:
        grey = cv2.cvtColor(cv2.cvtColor(out, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
        out = cv2.addWeighted(out, saturation, grey, 1.0 - saturation, 0.0)
    return out if out is not img else img.copy()


# --------------------------------------------------------------------------------------
# Parameter dataclasses


@dataclass(frozen=True)
class ArtefactParams:
    """Base of the parameter records: ``apply(img)`` runs the artefact, ``to_dict()`` logs it.

    A record names its pure function and the check of that function's arguments in its
    header, ``class JpegParams(ArtefactParams, function=apply_jpeg, check=_check_jpeg)``:
    both take the record's fields as keywords, so a record is checked on construction
    exactly as its function checks a call, and ``name`` is the function's less ``apply_``.
    """

    name: ClassVar[str] = "artefact"
    function: ClassVar[Callable[..., np.ndarray]]
    """The pure function that applies the artefact; it takes the fields as keywords."""
    check: ClassVar[Callable[..., None]]
    """Raises ``ValueError`` for fields the function would refuse."""

    def __init_subclass__(
        cls,
        function: Callable[..., np.ndarray] | None = None,
        check: Callable[..., None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        if function is not None:
            cls.function = function
            cls.name = function.__name__.removeprefix("apply_")
        if check is not None:
            cls.check = check

    def __post_init__(self) -> None:
        type(self).check(**asdict(self))

    def apply(self, img: np.ndarray) -> np.ndarray:
        """Apply the artefact with these parameters (a pure function of ``img``)."""
        return type(self).function(img, **asdict(self))

    def to_dict(self) -> dict[str, Any]:
        return {"artefact": self.name, **asdict(self)}


def _uniform(rng: np.random.Generator, lo_hi: Sequence[float], what: str) -> float:
    """A value drawn uniformly from the range ``lo_hi``, to 4 decimals (as logged)."""
    lo, hi = _range(lo_hi, what)
    return round(float(rng.uniform(lo, hi)), 4)


@dataclass(frozen=True)
class JpegParams(ArtefactParams, function=apply_jpeg, check=_check_jpeg):
    """JPEG quality (1-100)."""

    quality: int

    @classmethod
    def sample(cls, rng: np.random.Generator, quality: Sequence[int] = JPEG_QUALITY) -> JpegParams:
        lo, hi = _range(quality, "JPEG quality")
        return cls(int(rng.integers(int(lo), int(hi) + 1)))


@dataclass(frozen=True)
class BlurParams(ArtefactParams, function=apply_blur, check=_check_blur):
    """Gaussian blur kernel size and the sigma used (OpenCV's default for that kernel)."""

    kernel_size: int
    sigma: float = 0.0

    @classmethod
    def sample(cls, rng: np.random.Generator, kernels: Sequence[int] = BLUR_KERNELS) -> BlurParams:
        if not kernels:
            raise ValueError("no blur kernel sizes to choose from")
        k = int(kernels[int(rng.integers(len(kernels)))])
        return cls(k, round(0.3 * ((k - 1) * 0.5 - 1) + 0.8, 4))  # cv2.getGaussianKernel's rule


@dataclass(frozen=True)
class ResizeParams(ArtefactParams, function=apply_resize, check=_check_resize):
    """Downscale-upscale factor and the interpolations used each way."""

    factor: float
    down: str = "area"
    up: str = "linear"

    @classmethod
    def sample(
        cls, rng: np.random.Generator, factor: Sequence[float] = RESIZE_FACTOR
    ) -> ResizeParams:
        f = _uniform(rng, factor, "resize factor")
        down = ("area", "linear")[int(rng.integers(2))]
        up = ("linear", "cubic")[int(rng.integers(2))]
        return cls(f, down, up)


@dataclass(frozen=True)
class ColorShiftParams(ArtefactParams, function=apply_color_shift, check=_check_color_shift):
    """Per-channel offsets ``(dR, dG, dB)`` on 0-255."""

    shifts: tuple[int, int, int]

    @classmethod
    def sample(cls, rng: np.random.Generator, max_shift: int = COLOR_SHIFT) -> ColorShiftParams:
        if max_shift < 0:
            raise ValueError(f"max_shift must be >= 0, got {max_shift}")
        s = rng.integers(-max_shift, max_shift + 1, size=3)
        return cls((int(s[0]), int(s[1]), int(s[2])))


@dataclass(frozen=True)
class NoiseParams(ArtefactParams, function=apply_noise, check=_check_noise):
    """Gaussian noise std (on 0-255) and the seed of the noise itself."""

    sigma: float
    seed: int

    @classmethod
    def sample(cls, rng: np.random.Generator, sigma: Sequence[float] = NOISE_SIGMA) -> NoiseParams:
        return cls(_uniform(rng, sigma, "noise sigma"), int(rng.integers(2**63 - 1)))


@dataclass(frozen=True)
class BlockParams(ArtefactParams, function=apply_block, check=_check_block):
    """Scale of the 8x8 DCT quantisation tables (see :func:`apply_block`)."""

    scale: float

    @classmethod
    def sample(cls, rng: np.random.Generator, scale: Sequence[float] = BLOCK_SCALE) -> BlockParams:
        return cls(_uniform(rng, scale, "block scale"))


@dataclass(frozen=True)
class AugmentParams(ArtefactParams, function=apply_augment, check=_check_augment):
    """Training augmentation: flip and colour-jitter factors (see :func:`apply_augment`)."""

    flip: bool = False
    brightness: float = 1.0
    contrast: float = 1.0
    saturation: float = 1.0

    @classmethod
    def sample(
        cls,
        rng: np.random.Generator,
        flip_p: float = 0.5,
        brightness: float = 0.1,
        contrast: float = 0.1,
        saturation: float = 0.1,
    ) -> AugmentParams:
        flip = bool(rng.random() < flip_p)
        b, c, s = (
            round(float(rng.uniform(1 - j, 1 + j)), 4) for j in (brightness, contrast, saturation)
        )
        return cls(flip, b, c, s)
