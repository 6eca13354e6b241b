"""The image contract every step shares: ``uint8`` RGB ``HxWx3`` numpy arrays.

Frames from :mod:`cre_models.sampling`, face crops from :mod:`cre_models.faces`, and what
the compression simulator and the codecs take and return are all such arrays. This module
holds the one check of that contract, the one square resize and the one image reader.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

__all__ = ["check_image", "resize_square", "read_image"]


def check_image(image: Any, name: str = "image") -> np.ndarray:
    """Return ``image`` as a C-contiguous ``uint8`` RGB ``HxWx3`` array or raise ``ValueError``.

    PIL images are converted with ``.convert("RGB")``; numpy arrays must already be RGB.
    ``name`` starts the error message (``"image 3"``, ``"frame 0"``).
    """
    if not isinstance(image, np.ndarray):
        if hasattr(image, "convert") and hasattr(image, "mode"):  # PIL.Image.Image, no import
            image = np.asarray(image.convert("RGB"))
        else:
            raise ValueError(
                f"{name}: expected a numpy array or PIL image, got {type(image).__name__}"
            )
    if image.dtype != np.uint8:
        raise ValueError(f"{name}: expected dtype uint8 (0-255), got {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{name}: expected an HxWx3 RGB array, got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{name}: empty image of shape {image.shape}")
    return np.ascontiguousarray(image)


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """A new ``size x size`` image: area interpolation when shrinking, bilinear when enlarging.

    A non-square image is stretched (face crops are square already).
    """
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return np.array(image, copy=True, order="C")
    interp = cv2.INTER_AREA if min(h, w) > size else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interp)


def read_image(path: str | Path) -> np.ndarray:
    """An image file as ``uint8`` RGB; raises ``ValueError`` when it cannot be decoded."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{path}: cannot decode image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
