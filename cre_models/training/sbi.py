"""Self-blended images (SBI): training fakes made from one real face.

Idea (Shiohara & Yamasaki, "Detecting Deepfakes with Self-Blended Images", CVPR 2022),
written here from its description: take a real face crop, make a slightly altered copy
(colour, sharpness or resolution changed, geometry warped a little) and alpha-blend the
copy back into the original through a soft face mask. The result differs from its source
only inside the mask, and the pair shares identity, pose, lighting and background, so a
classifier can separate them only by the blending boundary and the statistics mismatch
inside it: exactly the traces face swaps leave.

The original derives its mask from 81 facial landmarks. Here there are three masks, from
the most to the least face knowledge: the hull of 468 FaceMesh points
(:func:`dense_face_mask`, ``--sbi-mask dense``); the hull of the detector's five points
pushed outwards, with a forehead and a chin point (:func:`landmark_face_mask`, the
default); and, for a crop without landmarks, an ellipse fitted to the face box that the
crop was made around (crops from :func:`cre_models.faces.crop_face` put the face box in
the central ``1 / (1 + margin)`` of the crop), randomly shifted, scaled and rotated. Each
is eroded or dilated, Gaussian-blurred and scaled by a blend ratio.

Everything is pure: parameters are drawn in :func:`sample_sbi_params` from an explicit
``numpy.random.Generator`` and applied by :func:`self_blend`, so a fake can be reproduced
and logged from its parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..images import check_image

__all__ = [
    "SBIParams",
    "sample_sbi_params",
    "soft_face_mask",
    "alter_source",
    "self_blend",
    "make_sbi",
    "landmark_face_mask",
    "dense_face_mask",
    "DENSE_SHRINK",
]


@dataclass(frozen=True)
class SBIParams:
    """Everything that decides one self-blended fake (sizes are fractions of the crop side)."""

    # mask geometry
    center_dx: float
    center_dy: float
    axis_x: float  # ellipse semi-axes as fractions of the crop side
    axis_y: float
    angle_deg: float
    morph_px: int  # > 0 dilates, < 0 erodes, in pixels of the crop
    blur_sigma_px: float
    blend_ratio: float
    # source alteration
    hue_shift: float  # degrees on OpenCV's 0..180 hue scale
    sat_scale: float
    val_scale: float
    rgb_shift: tuple[float, float, float]
    contrast: float
    sharpen: float  # > 0 sharpens (unsharp mask amount), < 0 blurs (sigma = -sharpen)
    rescale: float  # 1.0 = none; < 1 down-scales and up-scales back
    # geometric warp of the altered copy
    warp_dx: float
    warp_dy: float
    warp_scale: float


def sample_sbi_params(rng: np.random.Generator, margin: float = 0.3) -> SBIParams:
    """Draw the parameters of one self-blended fake.

    Args:
        rng: the only source of randomness.
        margin: the crop margin the face crop was made with (the face box is the central
            ``1 / (1 + margin)`` of the crop).
    """
    face = 1.0 / (1.0 + margin)  # face-box side as a fraction of the crop side
    # Face swaps render the new face at a lower resolution than the frame and scale it up,
    # so the blended-in region is more often softer than its surroundings than sharper:
    # down-up-scaling half of the time, blur 40 %, sharpening only 10 %.
    rescale = float(rng.uniform(0.3, 0.8)) if rng.random() < 0.5 else 1.0
    u = rng.random()
    if u < 0.4:
        sharpen = -float(rng.uniform(0.5, 1.8))
    elif u < 0.5:
        sharpen = float(rng.uniform(0.3, 1.0))
    else:
        sharpen = 0.0
    return SBIParams(
        center_dx=float(rng.uniform(-0.04, 0.04)) * face,
        center_dy=float(rng.uniform(-0.02, 0.08))
        * face,  # face boxes sit a little high on the face
        axis_x=float(rng.uniform(0.30, 0.46)) * face,
        axis_y=float(rng.uniform(0.38, 0.56)) * face,
        angle_deg=float(rng.uniform(-12, 12)),
        morph_px=int(rng.integers(-6, 7)),
        blur_sigma_px=float(rng.uniform(2.0, 9.0)),
        blend_ratio=float(rng.choice([0.25, 0.5, 0.75, 1.0, 1.0, 1.0])),
        hue_shift=float(rng.uniform(-6, 6)),
        sat_scale=float(rng.uniform(0.8, 1.25)),
        val_scale=float(rng.uniform(0.85, 1.15)),
        rgb_shift=(
            float(rng.uniform(-12, 12)),
            float(rng.uniform(-12, 12)),
            float(rng.uniform(-12, 12)),
        ),
        contrast=float(rng.uniform(0.85, 1.15)),
        sharpen=sharpen,
        rescale=rescale,
        warp_dx=float(rng.uniform(-0.025, 0.025)),
        warp_dy=float(rng.uniform(-0.025, 0.025)),
        warp_scale=float(rng.uniform(0.95, 1.05)),
    )


def soft_face_mask(size: tuple[int, int], params: SBIParams) -> np.ndarray:
    """A soft face mask ``(H, W)`` float32 in ``[0, 1]``; exactly 0 far from the face.

    A filled ellipse, dilated or eroded, blurred with a finite Gaussian kernel (so its
    support is bounded) and scaled by the blend ratio.
    """
    h, w = size
    side = min(h, w)
    mask: np.ndarray = np.zeros((h, w), np.uint8)
    cx = w / 2 + params.center_dx * side
    cy = h / 2 + params.center_dy * side
    axes = (max(2, round(params.axis_x * side)), max(2, round(params.axis_y * side)))
    cv2.ellipse(mask, (round(cx), round(cy)), axes, params.angle_deg, 0, 360, 255, thickness=-1)
    if params.morph_px:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(params.morph_px) + 1,) * 2)
        mask = cv2.dilate(mask, k) if params.morph_px > 0 else cv2.erode(mask, k)
    return _soften(mask, params, side)


def _soften(mask: np.ndarray, params: SBIParams, side: int) -> np.ndarray:
    """A hard 0/255 mask -> blurred float32 weights in ``[0, blend_ratio]``."""
    soft: np.ndarray = mask.astype(np.float32) / 255.0
    sigma = max(0.5, params.blur_sigma_px * side / 256.0)
    ksize = 2 * int(3 * sigma) + 1
    soft = cv2.GaussianBlur(
        soft, (ksize, ksize), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_CONSTANT
    )
    soft[soft < 1e-3] = 0.0  # cut float noise so that "outside" is exactly zero
    return np.clip(soft * params.blend_ratio, 0.0, 1.0).astype(np.float32)


def alter_source(image: np.ndarray, params: SBIParams) -> np.ndarray:
    """The altered copy that gets blended in: colour, sharpness, resolution, small warp."""
    h, w = image.shape[:2]
    img: np.ndarray = image.astype(np.float32)
    # colour: HSV scale/shift, per-channel RGB shift, contrast around the mean
    hsv = cv2.cvtColor(np.clip(img, 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = np.mod(hsv[..., 0] + params.hue_shift, 180.0)
    hsv[..., 1] = np.clip(hsv[..., 1] * params.sat_scale, 0, 255)
    hsv[..., 2] = np.clip(hsv[..., 2] * params.val_scale, 0, 255)
    img = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
    img += np.asarray(params.rgb_shift, np.float32)
    mean = img.mean(axis=(0, 1), keepdims=True)
    img = (img - mean) * params.contrast + mean
    # sharpness
    if params.sharpen > 0:
        blurred = cv2.GaussianBlur(img, (0, 0), 1.0)
        img = img + params.sharpen * (img - blurred)
    elif params.sharpen < 0:
        img = cv2.GaussianBlur(img, (0, 0), -params.sharpen)
    # resolution
    if params.rescale < 1.0:
        sw, sh = max(8, round(w * params.rescale)), max(8, round(h * params.rescale))
        img = cv2.resize(
            cv2.resize(img, (sw, sh), interpolation=cv2.INTER_AREA),
            (w, h),
            interpolation=cv2.INTER_LINEAR,
        )
    # small warp (scale about the centre + translation)
    s = params.warp_scale
    m = np.array(
        [
            [s, 0, (1 - s) * w / 2 + params.warp_dx * w],
            [0, s, (1 - s) * h / 2 + params.warp_dy * h],
        ],
        np.float64,
    )
    img = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return np.clip(img, 0, 255).astype(np.float32)


def self_blend(image: np.ndarray, params: SBIParams) -> tuple[np.ndarray, np.ndarray]:
    """Blend an altered copy of ``image`` back into it; return ``(fake, mask)``.

    ``fake`` is uint8 RGB like ``image`` and equals it exactly wherever ``mask == 0``.
    """
    image = check_image(image)
    mask = soft_face_mask(image.shape[:2], params)
    return _blend(image, params, mask), mask


def _blend(image: np.ndarray, params: SBIParams, mask: np.ndarray) -> np.ndarray:
    source = alter_source(image, params)
    m = mask[..., None]
    fake = m * source + (1.0 - m) * image.astype(np.float32)
    out = np.clip(np.rint(fake), 0, 255).astype(np.uint8)
    out[mask == 0] = image[mask == 0]  # bit-exact outside the mask
    return out


def landmark_face_mask(
    size: tuple[int, int], landmarks: np.ndarray, params: SBIParams, rng: np.random.Generator
) -> np.ndarray:
    """A soft mask ``(H, W)`` over the face that five landmarks outline (as SBI does with 81).

    The hull of the two eyes, the nose and the mouth corners is pushed outwards from its
    centre (random 1.5-2.1x), a forehead point above the eyes and a chin point below the
    mouth are added, and the filled convex hull is dilated or eroded, blurred and scaled by
    the blend ratio like :func:`soft_face_mask`. ``landmarks`` is ``(5, 2)`` in pixels:
    left eye, right eye, nose, left and right mouth corner.
    """
    lm = np.asarray(landmarks, np.float64).reshape(5, 2)
    eyes, mouth = lm[:2].mean(axis=0), lm[3:].mean(axis=0)
    centre = lm.mean(axis=0)
    up = eyes - mouth
    grow = float(rng.uniform(1.5, 2.1))
    pts = [centre + (p - centre) * grow for p in lm]
    pts.append(eyes + up * float(rng.uniform(0.5, 0.9)))  # forehead
    pts.append(mouth - up * float(rng.uniform(0.4, 0.7)))  # chin
    return _hull_mask(size, np.asarray(pts), params)


def _hull_mask(size: tuple[int, int], points: np.ndarray, params: SBIParams) -> np.ndarray:
    """The filled convex hull of ``points`` (crop pixels), dilated or eroded by the
    parameters' ``morph_px`` (per 256 px of side), blurred and scaled by the blend ratio."""
    h, w = size
    hull = cv2.convexHull(np.round(points).astype(np.int32))
    mask: np.ndarray = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(mask, hull, 255)
    side = min(h, w)
    if params.morph_px:
        px = max(1, round(abs(params.morph_px) * side / 256))
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1,) * 2)
        mask = cv2.dilate(mask, k) if params.morph_px > 0 else cv2.erode(mask, k)
    return _soften(mask, params, side)


DENSE_SHRINK = (0.75, 1.0)
"""The dense hull is scaled about its centre by a factor drawn in this range: from the whole
face outline (SBI's face hull) to an inner face (where a swap's face usually ends)."""


def dense_face_mask(
    size: tuple[int, int], points: np.ndarray, params: SBIParams, rng: np.random.Generator
) -> np.ndarray:
    """A soft mask ``(H, W)`` over the face outlined by dense landmarks (as SBI does with 81).

    The convex hull of ``points`` (``(K, 2)`` crop pixels, K >= 3: FaceMesh's 468,
    :mod:`~cre_models.training.facemesh`), scaled about its centre by a factor drawn in
    :data:`DENSE_SHRINK`, filled, dilated or eroded, blurred and scaled by the blend ratio
    like :func:`landmark_face_mask`.
    """
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    if len(pts) < 3 or not np.all(np.isfinite(pts)):
        raise ValueError("dense_face_mask needs >= 3 finite points")
    centre = pts.mean(axis=0)
    pts = centre + (pts - centre) * float(rng.uniform(*DENSE_SHRINK))
    return _hull_mask(size, pts, params)


def make_sbi(
    image: np.ndarray,
    rng: np.random.Generator,
    margin: float = 0.3,
    landmarks: np.ndarray | None = None,
    dense: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw parameters and make one self-blended fake: ``(fake, mask)``.

    With ``dense`` points (``(K, 2)`` crop pixels, all finite) the mask is their hull
    (:func:`dense_face_mask`); else with ``landmarks`` (``(5, 2)``) it follows the face they
    outline (:func:`landmark_face_mask`); without either, an ellipse fitted to the crop's
    face box. The parameters are drawn the same way in all three cases.
    """
    params = sample_sbi_params(rng, margin)
    if dense is not None and len(dense) >= 3 and np.all(np.isfinite(dense)):
        mask = dense_face_mask(image.shape[:2], dense, params, rng)
        return _blend(image, params, mask), mask
    if landmarks is None or not np.any(landmarks):
        return self_blend(image, params)
    mask = landmark_face_mask(image.shape[:2], landmarks, params, rng)
    return _blend(image, params, mask), mask
