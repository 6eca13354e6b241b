"""Face -> crop -> model tensor: the one input contract, read from the checkpoint.

A checkpoint's ``config.json`` says what its model expects (``input``: side, face-crop
margin, eye alignment, normalisation); :class:`FaceTransform` is that contract as code.
The worker's scorer, training (the crop cache and the loops) and evaluation all cut and
convert faces through it, so what a model was trained on is what it is scored on.

Tensors are ``(B, 3, S, S)`` float32, RGB, ``(x / 255 - mean) / std`` per channel; with the
default ``mean = std = 0.5`` that is ``x / 127.5 - 1``, i.e. ``[-1, 1]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .faces import FaceBox, crop_face_with_landmarks
from .images import check_image, resize_square

if TYPE_CHECKING:
    import torch

    from .weights import InputSpec

__all__ = ["DEFAULT_MEAN", "DEFAULT_STD", "FaceTransform", "to_tensor"]

Triple = tuple[float, float, float]

DEFAULT_MEAN: Triple = (0.5, 0.5, 0.5)
"""Per-channel mean of the model input (on 0-1): with :data:`DEFAULT_STD`, ``[-1, 1]``."""
DEFAULT_STD: Triple = (0.5, 0.5, 0.5)
"""Per-channel standard deviation of the model input (on 0-1)."""


def to_tensor(
    images: Any,
    size: int | None = None,
    mean: Sequence[float] = DEFAULT_MEAN,
    std: Sequence[float] = DEFAULT_STD,
) -> torch.Tensor:
    """``uint8`` RGB image(s) -> float ``(B, 3, H, W)``, normalised with ``mean`` and ``std``.

    Accepts one ``HxWx3`` array, a ``BxHxWx3`` array or a sequence of ``HxWx3`` arrays
    (or PIL images). Images of different sizes need ``size`` (each is resized to
    ``size x size``, :func:`~cre_models.images.resize_square`). A float tensor is returned
    unchanged: it must already follow the model's input contract.

    Raises:
        ValueError: no images, a bad image (named by its position), mixed sizes, a uint8
            tensor (ambiguous: HWC or CHW).
    """
    import torch

    if isinstance(images, torch.Tensor):
        if images.dtype == torch.uint8:
            raise ValueError("uint8 tensors are ambiguous (HWC or CHW); pass numpy HxWx3 arrays")
        return images
    if isinstance(images, np.ndarray) and images.ndim == 3:
        images = [images]
    arrays = [check_image(a, f"image {i}") for i, a in enumerate(images)]
    if not arrays:
        raise ValueError("no images given")
    if size is not None:
        arrays = [resize_square(a, size) for a in arrays]
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ValueError(f"images have different sizes {sorted(shapes)}; pass a size to resize")
    # divide by 255 * std and subtract mean / std: for 0.5 that is x / 127.5 - 1 exactly
    scale = torch.tensor([255.0 * s for s in std]).view(1, 3, 1, 1)
    shift = torch.tensor([m / s for m, s in zip(mean, std, strict=True)]).view(1, 3, 1, 1)
    batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float()
    return batch.div_(scale).sub_(shift)


@dataclass(frozen=True)
class FaceTransform:
    """How a face becomes a model input: a square crop, then a normalised tensor.

    Attributes:
        size: side of the crop and of the model input, in pixels.
        margin: the crop's side is ``max(w, h) * (1 + margin)`` of the face box.
        align: rotate the crop so that the eyes are level (needs landmarks).
        mean, std: per-channel normalisation (on 0-1) of :func:`to_tensor`.
    """

    size: int
    margin: float
    align: bool = False
    mean: Triple = DEFAULT_MEAN
    std: Triple = DEFAULT_STD

    def __post_init__(self) -> None:
        if self.size < 1 or self.margin < 0:
            raise ValueError(f"size must be >= 1 and margin >= 0, got {self.size}, {self.margin}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"mean and std need three values, std > 0: {self.mean}, {self.std}")

    @classmethod
    def from_spec(cls, spec: InputSpec) -> FaceTransform:
        """The transform a checkpoint's ``config.json`` ``input`` describes."""
        return cls(spec.size, spec.crop_margin, spec.align, spec.mean, spec.std)

    def crop(self, image: np.ndarray, box: FaceBox) -> np.ndarray:
        """The ``size x size`` uint8 RGB crop of one face of an upright RGB frame."""
        return self.crop_with_landmarks(image, box)[0]

    def crop_with_landmarks(
        self, image: np.ndarray, box: FaceBox
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The crop and the face's five landmarks in crop pixels (``None`` without them)."""
        return crop_face_with_landmarks(image, box, self.margin, self.size, align=self.align)

    def to_tensor(self, crops: Any) -> torch.Tensor:
        """Crops (resized to ``size`` when they are not) -> ``(B, 3, size, size)`` input."""
        return to_tensor(crops, self.size, self.mean, self.std)
