"""Landmark part cutout: one facial part of a training crop hidden (``--part-cutout``).

The DFDC winner (Seferbekov, 2020) hid eyes, nose or mouth, found by landmarks, on a share of
its training crops, so that the classifier cannot lean on one region (a blending seam that is
only visible at the mouth, a person's eyes) and has to read the whole face. The part is chosen
and hidden whatever the label, so the cutout itself never tells real from fake.

Sizes follow the distance between the eyes, so a part covers the same share of every face.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["PARTS", "cutout_part", "part_mask"]

PARTS = ("left_eye", "right_eye", "eyes", "nose", "mouth")
"""The parts one cutout may hide (drawn uniformly)."""


def _band(mask: np.ndarray, a: np.ndarray, b: np.ndarray, extend: float, half: float) -> None:
    """Fills the rectangle along ``a``-``b`` (each end pushed out by ``extend`` pixels) that is
    ``2 * half`` pixels thick."""
    d = b - a
    length = float(np.hypot(*d))
    u = d / length if length > 1e-6 else np.array([1.0, 0.0])
    n = np.array([-u[1], u[0]])
    p, q = a - u * extend, b + u * extend
    corners = np.stack([p + n * half, q + n * half, q - n * half, p - n * half])
    cv2.fillConvexPoly(mask, np.round(corners).astype(np.int32), 1)


def part_mask(size: tuple[int, int], landmarks: np.ndarray, part: str) -> np.ndarray:
    """``(H, W)`` uint8 mask (1 = hidden) of one of :data:`PARTS` of the face that
    ``landmarks`` (``(5, 2)`` pixels: left eye, right eye, nose, left and right mouth corner)
    outline."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    lm = np.asarray(landmarks, np.float64).reshape(5, 2)
    iod = max(float(np.hypot(*(lm[1] - lm[0]))), 4.0)  # inter-ocular distance, pixels
    mask = np.zeros(size, np.uint8)
    if part in ("left_eye", "right_eye"):
        c = lm[0] if part == "left_eye" else lm[1]
        axes = (round(0.32 * iod), round(0.22 * iod))
        cv2.ellipse(mask, (round(c[0]), round(c[1])), axes, 0.0, 0.0, 360.0, 1, -1)
    elif part == "eyes":
        _band(mask, lm[0], lm[1], extend=0.32 * iod, half=0.22 * iod)
    elif part == "nose":
        eyes = lm[:2].mean(axis=0)
        top = eyes + 0.35 * (lm[2] - eyes)  # from between the eyes down to the tip
        _band(mask, top, lm[2], extend=0.1 * iod, half=0.22 * iod)
    else:  # mouth
        _band(mask, lm[3], lm[4], extend=0.2 * iod, half=0.2 * iod)
    return mask


def cutout_part(
    img: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, str]:
    """``img`` with one part (drawn from :data:`PARTS`) filled with the crop's mean colour,
    and the part's name. A copy: ``img`` is not changed."""
    part = PARTS[int(rng.integers(len(PARTS)))]
    mask = part_mask(img.shape[:2], landmarks, part).astype(bool)
    out = img.copy()
    out[mask] = img.reshape(-1, img.shape[-1]).mean(axis=0).round().astype(img.dtype)
    return out, part
