"""Train a :class:`~cre_models.model.CompressionResilientNetwork` on cached video crops.

Each training item is drawn in one place from an explicit generator seeded by
``(seed, step)``: a class (real or fake, half each) and, independently, a domain (FF++
clips or the other real clips, see :func:`draw_item`), then for a fake either a
labelled FaceForensics++ fake or a self-blended fake made from a real crop with its
landmarks (:func:`cre_models.training.sbi.make_sbi`), then a video uniformly (long videos
do not dominate), then a crop of it and of its version (as delivered or the re-encoded copy of
:mod:`cre_models.training.cache`). A small jitter (flip, +-4 % shift and scale) and the
compression simulator (``light``..``heavy``, half of the items) come last, so a
self-blended fake is compressed after blending, as a real fake is.

With ``identity_adversary`` > 0 a training-only person classifier reads the embedding through
gradient reversal (:mod:`cre_models.training.adversary`), so that the embedding is pushed not
to tell the training people apart; the checkpoint does not include it.

Validation: every validation video's cached crops (both versions) are scored; a video's
score is the mean of its frames; the checkpoint kept as ``best`` maximises the mean video
AUC over the two versions (with ``ema`` set, the moving average of the weights is what is
validated and kept, see :func:`ema_update`). Progress, metrics (``metrics.csv``) and
``resume.pt`` are written every ``eval_every`` steps so an interrupted run loses little and
``--resume`` continues it.
"""

from __future__ import annotations

import copy
import csv
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..conditions import apply_condition
from ..evaluation.metrics import auc
from ..model import (
    LITE0_DEPTH,
    CompressionResilientNetwork,
    DenoiserConfig,
    EmbedderConfig,
    NetworkConfig,
    count_parameters,
)
from ..transforms import to_tensor
from .adversary import IdentityAdversary, dann_weight, identity_index, identity_of
from .cache import CachedVideo
from .detail import detail_range, draw_detail_target, match_detail
from .masks import FeatureTap, MapHead, labelled_maps, map_head_for, map_loss
from .parts import cutout_part
from .sbi import make_sbi
from .splits import EXTRA_METHOD, identities

__all__ = [
    "LoopConfig",
    "build_network",
    "draw_item",
    "draw_pair",
    "draw_sourced",
    "draw_mapped",
    "LabelledMaps",
    "draw_twins",
    "twin_index",
    "train_loop",
    "score_videos",
    "ema_update",
    "soften",
    "SOFTEN_SCALES",
    "SHARES",
]

logger = logging.getLogger(__name__)


SHARES = (
    "sbi_share",
    "ffpp_share",
    "simulate_prob",
    "soften_reals",
    "part_cutout",
    "match_detail",
)
"""The :class:`LoopConfig` fields that are shares, each checked to lie in [0, 1]."""

SBI_MASKS = ("five", "dense")
"""Self-blend masks: from the detector's five landmarks, or the hull of FaceMesh's 468 points
(:mod:`cre_models.training.facemesh`; a crop without them falls back to the five)."""

KEEP = ("best", "last")
"""What a run keeps: the step with the best validation score on the cached crops (the first
recipes' rule), or the step it ends with (docs/EVALUATION.md, fifteenth session: on the 60
validation clips the last step of four runs that had kept an earlier one scored 0.022 higher
on average, from -0.015 to +0.065)."""


@dataclass
class LoopConfig:
    """Training hyper-parameters (saved as ``loop_config.json`` beside the run)."""

    out: str = "runs/videos"  # run folder: metrics.csv, resume.pt, best_state.pt, checkpoint/
    rgb_stream: str = "efficientnet_lite0"  # or "seed" (the small CNN of the first recipe)
    residual: str = "srm"  # noise-residual filter of the second stream ("constrained", ...)
    residual_norm: str = "none"  # "rms": each crop's residual divided by its own RMS
    rgb_blocks: int = LITE0_DEPTH  # EfficientNet stream: MBConv blocks kept (fewer: local)
    detail_px: int = 0  # > 0: the model sees each crop shrunk to this side and enlarged back
    pretrained: bool = True  # ImageNet weights for an EfficientNet RGB stream
    embedding_dim: int = 512  # fused embedding (half from each stream)
    head_hidden: int = 256  # classifier head's hidden units
    size: int = 128  # crop side in pixels, the model's input (and the crop cache's)
    margin: float = 0.25  # crop margin around the face box (the crop cache's)
    steps: int = 2000  # optimiser steps
    batch_size: int = 32  # images per step (twin pairs included)
    lr: float = 3e-4  # peak learning rate (AdamW), after a linear warm-up, cosine decay
    weight_decay: float = 1e-4
    warmup: int = 100  # warm-up steps
    freeze_blocks: int = 6  # EfficientNet stream: stem + this many blocks keep ImageNet weights
    sbi_share: float = 0.5  # of the FF++-domain fakes: self-blended (the rest: labelled)
    soften_reals: float = 0.0  # share of crops from real clips resampled at 0.5-0.9x first
    ffpp_share: float = 0.75  # items drawn from FF++ clips (the rest: other real clips)
    simulate_prob: float = 0.5
    severities: tuple[str, ...] = ("light", "medium", "heavy")
    eval_every: int = 200
    log_every: int = 25  # a progress line (loss, seconds per step, time left) every N steps
    seed: int = 0
    threads: int = 2
    denoiser: bool = False  # the classifier reads the denoiser's reconstruction (see below)
    recon_weight: float = 1.0  # L1 reconstruction weight beside the cross-entropy
    denoiser_warmup: int = 150  # denoiser-only steps (reconstruction loss) before the joint ones
    twin_pairs: int = 0  # per batch: the same face as delivered and re-encoded (replace 2 items)
    twin_weight: float = 1.0  # weight of the squared score difference between the twins
    ema: float = 0.0  # weight moving average's decay (0: off); validated and kept: the average
    identity_adversary: float = 0.0  # > 0: gradient-reversed person classifier (adversary.py)
    part_cutout: float = 0.0  # share of crops with one facial part hidden (parts.py)
    mask_loss: float = 0.0  # > 0: weight of a training-only "where manipulated" map (masks.py)
    match_detail: float = 0.0  # share of crops moved to a label-blind detail level (detail.py)
    detail_range: tuple[float, float] = (0.0, 0.0)  # its targets; (0, 0): measured at the start
    keep: str = "best"  # the checkpoint: the best validated step, or the "last" one
    sbi_mask: str = "five"  # self-blend masks: "five" landmarks, or "dense" (facemesh.py)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in SHARES:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if self.identity_adversary < 0:
            raise ValueError(f"identity_adversary must be >= 0, got {self.identity_adversary}")
        if self.identity_adversary and (self.denoiser or self.twin_pairs):
            raise ValueError("identity_adversary is not combined with denoiser or twin_pairs")
        if self.keep not in KEEP:
            raise ValueError(f"keep must be one of {', '.join(KEEP)}, got {self.keep!r}")
        if self.sbi_mask not in SBI_MASKS:
            raise ValueError(
                f"sbi_mask must be one of {', '.join(SBI_MASKS)}, got {self.sbi_mask!r}"
            )
        if self.mask_loss < 0:
            raise ValueError(f"mask_loss must be >= 0, got {self.mask_loss}")
        if self.mask_loss and (self.denoiser or self.identity_adversary):
            raise ValueError("mask_loss is not combined with denoiser or identity_adversary")


DENOISER = DenoiserConfig(latent_dim=256, channels=(32, 64, 128, 256))
"""The denoiser of ``--denoiser`` runs: half the image recipe's widths, for the CPU."""


def build_network(cfg: LoopConfig) -> CompressionResilientNetwork:
    """The network ``cfg`` describes (ImageNet weights in an EfficientNet RGB stream).

    With ``cfg.denoiser`` the embedder reads the :class:`~cre_models.model.DenoisingAutoencoder`'s
    reconstruction (``classifier_input="denoised"``), trained on the L1 distance to the crop
    before the simulated degradation plus the classification loss through it.
    """
    net = NetworkConfig(
        embedder=EmbedderConfig(
            embedding_dim=cfg.embedding_dim,
            residual=cfg.residual,
            residual_norm=cfg.residual_norm,
            rgb_blocks=cfg.rgb_blocks,
            detail_px=cfg.detail_px,
            rgb_stream=cfg.rgb_stream,
            rgb_pretrained=cfg.pretrained and cfg.rgb_stream == "efficientnet_lite0",
        ),
        denoiser=DENOISER if cfg.denoiser else None,
        head_hidden=cfg.head_hidden,
        classifier_input="denoised" if cfg.denoiser else "input",
    )
    return CompressionResilientNetwork(config=net)


def freeze_early_layers(model: CompressionResilientNetwork, blocks: int) -> int:
    """Keep the stem and the first ``blocks`` MBConv blocks of an EfficientNet RGB stream at
    their ImageNet weights (and batch statistics); return the parameters frozen.

    On the 2-core CPU the backward pass of the early, high-resolution depthwise convolutions
    is most of a step's time (measured: 3.7 vs 10 crops/s for the RGB stream with 6 blocks
    frozen), and low-level ImageNet features need little change for a few dozen videos.
    """
    trunk = model.embedder.rgb_trunk
    if trunk is None or blocks <= 0:
        return 0
    frozen = [trunk.stem, *list(trunk.blocks)[:blocks]]
    n = 0
    for module in frozen:
        module.eval()
        for p in module.parameters():
            p.requires_grad_(False)
            n += p.numel()
    return n


def _set_train(model: CompressionResilientNetwork, cfg: LoopConfig) -> None:
    model.train()
    freeze_early_layers(model, cfg.freeze_blocks)  # frozen BatchNorms stay in eval mode


def _jitter(img: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    return _jitter_with(img, None, rng, size)[0]


def _jitter_with(
    img: np.ndarray, other: np.ndarray | None, rng: np.random.Generator, size: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """The jitter (scale, shift, flip, resize) of ``img``, and the same geometry applied to
    ``other`` (a map of ``img``'s pixels), drawing the same random numbers either way."""
    h, w = img.shape[:2]
    s = float(rng.uniform(0.96, 1.04))
    dx, dy = rng.uniform(-0.04, 0.04, size=2) * w
    m = np.array([[s, 0, (1 - s) * w / 2 + dx], [0, s, (1 - s) * h / 2 + dy]], np.float64)
    flip = rng.random() < 0.5
    outs: list[np.ndarray | None] = []
    for x in (img, other):
        if x is None:
            outs.append(None)
            continue
        out = cv2.warpAffine(x, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        if flip:
            out = out[:, ::-1]
        if out.shape[0] != size:
            out = cv2.resize(out, (size, size), interpolation=cv2.INTER_AREA)
        outs.append(np.ascontiguousarray(out))
    assert outs[0] is not None
    return outs[0], outs[1]


SOFTEN_SCALES = (0.5, 0.9)
"""Range of the down-and-up resampling factor of ``--soften-reals``."""


def soften(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``img`` shrunk by a factor drawn from :data:`SOFTEN_SCALES` (area) and enlarged back
    (linear): the same face, geometry and landmarks, with less fine detail.

    Labelled FaceForensics++ fakes are blurrier than the real clips they come from (their
    generated faces are resampled; inner-face Laplacian variance of the cached training
    crops, median per clip: reals 93, Deepfakes 38, docs/EVALUATION.md), so "soft face =
    fake" is a shortcut in the data, and a re-encoded real face takes it.
    """
    h, w = img.shape[:2]
    f = float(rng.uniform(*SOFTEN_SCALES))
    small = cv2.resize(
        img, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA
    )
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _domain(video: CachedVideo) -> str:
    """``ffpp`` for FaceForensics++ clips; ``other`` for the rest (talking heads, and the
    ``--extra-reals`` photos and videos, whatever their file names)."""
    if video.clip.method == EXTRA_METHOD:
        return "other"
    return "ffpp" if identities(video.clip.file) else "other"


def draw_item(
    reals: Sequence[CachedVideo],
    fakes: Sequence[CachedVideo],
    cfg: LoopConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, int, str]:
    """One training image, its label and its kind (``real``, ``sbi``, ``labelled``)."""
    img, _, label, kind = draw_pair(reals, fakes, cfg, rng)
    return img, label, kind


def draw_pair(
    reals: Sequence[CachedVideo],
    fakes: Sequence[CachedVideo],
    cfg: LoopConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, int, str]:
    """:func:`draw_item` plus the image before the simulated degradation (the denoiser's
    target): ``(image, clean, label, kind)``; the two are equal when none was drawn.

    The domain (FF++ clips, or the other real clips) is drawn independently of the label,
    so the label never follows from the look of a source: the other clips are all real, and
    drawn as they come they taught a first run "FF++ look = fake" (real FF++ validation
    videos scored 0.9). Their fakes are self-blends of themselves.

    With ``cfg.soften_reals`` > 0, that share of the crops drawn from real clips (reals and
    self-blend sources alike, so that softness tells neither apart) is :func:`soften`-ed
    first; labelled fakes are left as they are. At 0 the draws are those of before.

    With ``cfg.part_cutout`` > 0, that share of the crops with landmarks (any label or kind)
    has one facial part hidden (:func:`~cre_models.training.parts.cutout_part`) before the
    jitter; at 0 no random number is drawn for it, so the draws are again those of before.

    With ``cfg.match_detail`` > 0, that share of the crops (any label or kind; a self-blend's
    source before the blend) has its detail level moved to a target drawn from
    ``cfg.detail_range`` (:mod:`cre_models.training.detail`); at 0 nothing is drawn for it.
    """
    img, clean, label, kind, _ = draw_sourced(reals, fakes, cfg, rng)
    return img, clean, label, kind


def draw_sourced(
    reals: Sequence[CachedVideo],
    fakes: Sequence[CachedVideo],
    cfg: LoopConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, int, str, CachedVideo]:
    """:func:`draw_pair` plus the video the crop came from (a self-blend's source clip)."""
    return draw_mapped(reals, fakes, cfg, rng, None)[:5]


LabelledMaps = dict[tuple[str, str], dict[int, np.ndarray]]
"""Difference maps of labelled fakes' crops (:func:`~cre_models.training.masks.labelled_maps`)."""


def draw_mapped(
    reals: Sequence[CachedVideo],
    fakes: Sequence[CachedVideo],
    cfg: LoopConfig,
    rng: np.random.Generator,
    maps: LabelledMaps | None,
) -> tuple[np.ndarray, np.ndarray, int, str, CachedVideo, np.ndarray | None]:
    """:func:`draw_sourced` plus, with ``maps``, the crop's map target (``--mask-loss``,
    :mod:`cre_models.training.masks`) jittered with it: zeros for a real crop, the blend
    mask for a self-blend, the difference map of ``maps`` for a labelled fake (``None``
    where it has none). Without ``maps`` the target is ``None``; the random draws are the
    same either way."""
    is_fake = rng.random() < 0.5
    by_domain = {d: [v for v in reals if _domain(v) == d] for d in ("ffpp", "other")}
    domain = "ffpp" if (rng.random() < cfg.ffpp_share or not by_domain["other"]) else "other"
    if not by_domain[domain]:
        domain = "other"
    sbi = is_fake and (domain == "other" or not fakes or rng.random() < cfg.sbi_share)
    pool = by_domain[domain] if (not is_fake or sbi) else fakes
    video = pool[int(rng.integers(len(pool)))]
    k = int(rng.integers(video.n))
    img = video.crops[k]
    kind = "real"
    if cfg.soften_reals > 0 and (not is_fake or sbi) and rng.random() < cfg.soften_reals:
        img = soften(img, rng)
    if cfg.match_detail > 0 and rng.random() < cfg.match_detail:
        img = match_detail(img, draw_detail_target(rng, cfg.detail_range))
    target: np.ndarray | None = None
    if maps is not None and not is_fake:
        target = np.zeros(img.shape[:2], np.float32)
    if sbi:
        dense = video.dense[k] if cfg.sbi_mask == "dense" and video.dense is not None else None
        img, mask = make_sbi(img, rng, cfg.margin, landmarks=video.landmarks[k], dense=dense)
        kind = "sbi"
        if maps is not None:
            target = mask / max(float(mask.max()), 1e-6)
    elif is_fake:
        kind = "labelled"
        found = None if maps is None else maps.get((video.clip.file, video.version), {}).get(k)
        if found is not None:
            target = found.astype(np.float32) / 255.0
    if cfg.part_cutout > 0 and np.any(video.landmarks[k]) and rng.random() < cfg.part_cutout:
        img, _ = cutout_part(img, video.landmarks[k], rng)
    img, target = _jitter_with(img, target, rng, cfg.size)
    clean = img
    if rng.random() < cfg.simulate_prob:
        img = apply_condition(img, str(rng.choice(list(cfg.severities))), rng)
    return img, clean, int(is_fake), kind, video, target


def twin_index(videos: Sequence[CachedVideo]) -> list[tuple[CachedVideo, CachedVideo]]:
    """Pairs of cached versions of one clip (as delivered, re-encoded), for twin items."""
    by_clip: dict[str, dict[str, CachedVideo]] = {}
    for v in videos:
        if v.n:
            by_clip.setdefault(v.clip.file, {})[v.version] = v
    return [(d["orig"], d["deg"]) for d in by_clip.values() if "orig" in d and "deg" in d]


def draw_twins(
    pairs: Sequence[tuple[CachedVideo, CachedVideo]],
    cfg: LoopConfig,
    rng: np.random.Generator,
    max_gap_s: float = 0.25,
) -> tuple[np.ndarray, np.ndarray, int] | None:
    """One face at one moment of a clip in two versions: ``(as_delivered, re_encoded, label)``.

    The re-encoded copy's crop nearest in time (within ``max_gap_s``) is its twin; each gets
    its own jitter. Training the two to the same score asks for what the product promises:
    a score that follows the face, not the codec. ``None`` when the drawn moment has no twin.
    """
    orig, deg = pairs[int(rng.integers(len(pairs)))]
    k = int(rng.integers(orig.n))
    gaps = np.abs(deg.times - orig.times[k])
    j = int(np.argmin(gaps))
    if gaps[j] > max_gap_s:
        return None
    return (
        _jitter(orig.crops[k], rng, cfg.size),
        _jitter(deg.crops[j], rng, cfg.size),
        orig.clip.label,
    )


def _twin_batch(
    pairs: Sequence[tuple[CachedVideo, CachedVideo]], cfg: LoopConfig, rng: np.random.Generator
) -> tuple[list[np.ndarray], list[np.ndarray], list[int]]:
    a: list[np.ndarray] = []
    b: list[np.ndarray] = []
    y: list[int] = []
    for _ in range(4 * cfg.twin_pairs):  # a few misses (no twin at that moment) are expected
        if len(y) == cfg.twin_pairs:
            break
        twin = draw_twins(pairs, cfg, rng)
        if twin is not None:
            a.append(twin[0])
            b.append(twin[1])
            y.append(twin[2])
    return a, b, y


@torch.inference_mode()
def score_videos(
    model: CompressionResilientNetwork, videos: Sequence[CachedVideo], size: int, batch: int = 64
) -> list[np.ndarray]:
    """Frame probabilities of every cached video."""
    model.eval()
    out = []
    for v in videos:
        probs = [
            model.predict_proba(to_tensor(v.crops[i : i + batch], size)).numpy()
            for i in range(0, len(v.crops), batch)
        ]
        out.append(np.concatenate(probs) if probs else np.zeros(0))
    return out


def _validate(
    model: CompressionResilientNetwork, val: Sequence[CachedVideo], cfg: LoopConfig
) -> dict[str, float]:
    probs = score_videos(model, val, cfg.size)
    row: dict[str, float] = {}
    for version in sorted({v.version for v in val}):
        scored = [(v, p) for v, p in zip(val, probs, strict=True) if v.version == version]
        videos = [(v.clip.label, float(p.mean())) for v, p in scored if len(p)]
        row[f"val_auc_{version}"] = auc([y for y, _ in videos], [s for _, s in videos])
        frames_y = [v.clip.label for v, p in scored for _ in range(len(p))]
        frames_p = [float(x) for _, p in scored for x in p]
        row[f"val_frame_auc_{version}"] = auc(frames_y, frames_p)
    aucs = [v for k, v in row.items() if k.startswith("val_auc_")]
    row["val_score"] = float(np.mean(aucs)) if aucs else float("nan")
    return row


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """``ema <- decay * ema + (1 - decay) * model``, parameters and BatchNorm statistics alike
    (integer buffers such as batch counters are copied). The loop ramps the decay up as
    ``min(ema, (1 + step) / (10 + step))`` so the first steps do not drag the initial weights."""
    for e, m in zip(ema.state_dict().values(), model.state_dict().values(), strict=True):
        if e.dtype.is_floating_point:
            e.lerp_(m, 1.0 - decay)
        else:
            e.copy_(m)


def _lr(cfg: LoopConfig, step: int) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def _log_progress(done: int, step: int, steps: int, elapsed: float, sums: dict[str, float]) -> None:
    """One progress line: where the run is, the loss since the last validation, its pace
    (validations included) and the time left at that pace."""
    per_step = elapsed / max(done, 1)
    left = per_step * (steps - step)
    logger.info(
        "step %d/%d: train loss %.4f, %.1f s/step, about %d min left",
        step,
        steps,
        sums["loss"] / max(sums["n"], 1.0),
        per_step,
        round(left / 60),
    )


def train_loop(
    cfg: LoopConfig,
    train: Sequence[CachedVideo],
    val: Sequence[CachedVideo],
    resume: bool = False,
) -> tuple[CompressionResilientNetwork, dict[str, Any]]:
    """Train; return the best model (by ``val_score``) and a summary of the run."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    reals = [v for v in train if v.clip.label == 0 and v.n]
    fakes = [v for v in train if v.clip.label == 1 and v.n]
    if not reals:
        raise ValueError("no real training crops: self-blending needs real faces")
    if cfg.match_detail and cfg.detail_range == (0.0, 0.0):
        span = detail_range([*reals, *fakes], np.random.default_rng([cfg.seed, 7]))
        cfg = replace(cfg, detail_range=span)
        logger.info("detail targets: %.2f-%.2f (training crops, both labels)", *span)
    model = build_network(cfg)
    frozen = freeze_early_layers(model, cfg.freeze_blocks)
    params = [p for p in model.parameters() if p.requires_grad]
    adversary, people = None, {}
    if cfg.identity_adversary:
        people = identity_index([*reals, *fakes])
        adversary = IdentityAdversary(model.embedder.embedding_dim, len(people))
        params += list(adversary.parameters())
        logger.info(
            "identity adversary over %d people (weight %g)", len(people), cfg.identity_adversary
        )
    ema = copy.deepcopy(model).eval() if cfg.ema else None  # before the map tap's hook
    tap: FeatureTap | None = None
    map_head: MapHead | None = None
    maps: LabelledMaps | None = None
    if cfg.mask_loss:
        tap, map_head = map_head_for(model)
        params += list(map_head.parameters())
        maps = labelled_maps(fakes, reals)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    (out / "loop_config.json").write_text(json.dumps(asdict(cfg), indent=1) + "\n")
    logger.info(
        "%d parameters (%d frozen); %d real + %d fake training videos (%d crops); "
        "%d validation videos",
        count_parameters(model),
        frozen,
        len(reals),
        len(fakes),
        sum(v.n for v in train),
        len(val),
    )
    start, best, best_step, seconds = 0, -1.0, -1, 0.0
    state_file = out / "resume.pt"
    if resume and state_file.exists():
        state = torch.load(state_file, weights_only=True)
        model.load_state_dict(state["model"], strict=True)
        for part, key, what, option in (
            (adversary, "adversary", "identity adversary", "--identity-adversary"),
            (ema, "ema", "weight average", "--ema"),
            (map_head, "map_head", "map head", "--mask-loss"),
        ):
            if part is not None:
                if key not in state:
                    raise ValueError(f"{state_file} has no {what}: resume with the run's {option}")
                part.load_state_dict(state[key], strict=True)
        opt.load_state_dict(state["optimizer"])
        start, best, best_step = int(state["step"]), float(state["best"]), int(state["best_step"])
        seconds = float(state["seconds"])
        logger.info("resuming at step %d (best %.4f at %d)", start, best, best_step)
    elif (out / "metrics.csv").exists():
        (out / "metrics.csv").unlink()
    sums = _zero_sums()
    t0 = time.time()
    _set_train(model, cfg)
    if cfg.denoiser and start == 0:
        _pretrain_denoiser(model, reals, fakes, cfg)
    pairs = twin_index(train) if cfg.twin_pairs else []
    if cfg.twin_pairs and not pairs:
        raise ValueError("twin_pairs needs clips cached in both versions (orig and deg)")
    t_start = time.time()
    for step in range(start, cfg.steps):
        rng = np.random.default_rng([cfg.seed, step])
        a, b, ty = _twin_batch(pairs, cfg, rng) if pairs else ([], [], [])
        n_items = cfg.batch_size - 2 * len(ty)
        items = [draw_mapped(reals, fakes, cfg, rng, maps) for _ in range(n_items)]
        x = to_tensor([it[0] for it in items] + a + b, cfg.size)
        y = torch.tensor([it[2] for it in items] + ty + ty)
        for g in opt.param_groups:
            g["lr"] = _lr(cfg, step)
        if cfg.denoiser:
            logits, recon = model(x, return_reconstruction=True)
            clean = to_tensor([it[1] for it in items] + a + b, cfg.size)  # twins: as is
            loss = F.cross_entropy(logits, y) + cfg.recon_weight * F.l1_loss(recon, clean)
        elif adversary is not None:
            feats = model.forward_features(x)
            logits = model.forward_head(feats)
            who = torch.tensor([people[identity_of(it[4])] for it in items])
            id_logits = adversary(feats, dann_weight(cfg.identity_adversary, step, cfg.steps))
            loss = F.cross_entropy(logits, y) + F.cross_entropy(id_logits, who)
            sums["id_correct"] += float((id_logits.argmax(1) == who).sum())
        else:
            logits = model(x)
            loss = F.cross_entropy(logits, y)
        if tap is not None and map_head is not None and tap.output is not None:
            targets = [it[5] for it in items] + [None] * (2 * len(ty))  # twins: no map
            m_loss = map_loss(map_head(tap.output), targets)
            loss = loss + cfg.mask_loss * m_loss
            sums["map_loss"] += float(m_loss.detach()) * len(y)
        if ty:
            p = torch.softmax(logits[n_items:], dim=1)[:, 1]
            loss = loss + cfg.twin_weight * (p[: len(ty)] - p[len(ty) :]).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if ema is not None:
            ema_update(ema, model, min(cfg.ema, (1 + step) / (10 + step)))
        sums["loss"] += float(loss.detach()) * len(y)
        sums["correct"] += float((logits.argmax(1) == y).sum())
        sums["n"] += len(y)
        if cfg.log_every > 0 and (step + 1) % cfg.log_every == 0:
            _log_progress(step + 1 - start, step + 1, cfg.steps, time.time() - t_start, sums)
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            seconds += time.time() - t0
            row: dict[str, Any] = {
                "step": step + 1,
                "lr": _lr(cfg, step),
                "train_loss": sums["loss"] / sums["n"],
                "train_acc": sums["correct"] / sums["n"],
            }
            if adversary is not None:  # how well the person can still be read from the embedding
                row["train_id_acc"] = sums["id_correct"] / sums["n"]
            if map_head is not None:
                row["train_map_loss"] = sums["map_loss"] / sums["n"]
            judged = model if ema is None else ema  # the weights that would ship
            row.update(_validate(judged, val, cfg) if val else {})
            row["seconds"] = round(seconds, 1)
            _set_train(model, cfg)
            score = row.get("val_score", float("nan"))
            if score == score and score > best:
                best, best_step = float(score), step + 1
                torch.save(judged.state_dict(), out / "best_state.pt")
            _append_csv(out / "metrics.csv", row)
            logger.info("step %d: %s", step + 1, {k: round(float(v), 4) for k, v in row.items()})
            torch.save(
                {
                    "model": model.state_dict(),
                    **({} if ema is None else {"ema": ema.state_dict()}),
                    **({} if adversary is None else {"adversary": adversary.state_dict()}),
                    **({} if map_head is None else {"map_head": map_head.state_dict()}),
                    "optimizer": opt.state_dict(),
                    "step": step + 1,
                    "best": best,
                    "best_step": best_step,
                    "seconds": seconds,
                },
                state_file,
            )
            sums = _zero_sums()
            t0 = time.time()
    if tap is not None:
        tap.remove()  # the model returned scores exactly as one trained without the map
    if cfg.keep == "last":
        if ema is not None:  # the weights that are validated are the ones kept
            model.load_state_dict(ema.state_dict(), strict=True)
    elif (out / "best_state.pt").exists():
        model.load_state_dict(torch.load(out / "best_state.pt", weights_only=True), strict=True)
    model.eval()
    summary: dict[str, Any] = {
        "best_val_score": best,
        "best_step": best_step,
        "train_seconds": seconds,
    }
    if cfg.keep == "last":
        summary.update(kept="last", kept_step=cfg.steps)
    if cfg.match_detail:
        summary["detail_range"] = list(cfg.detail_range)
    return model, summary


def _zero_sums() -> dict[str, float]:
    return {"loss": 0.0, "correct": 0.0, "id_correct": 0.0, "map_loss": 0.0, "n": 0.0}


def _pretrain_denoiser(
    model: CompressionResilientNetwork,
    reals: Sequence[CachedVideo],
    fakes: Sequence[CachedVideo],
    cfg: LoopConfig,
) -> None:
    """Train the denoiser alone (L1 to the undegraded crop) for ``cfg.denoiser_warmup`` steps,
    so the embedder's first joint steps see reconstructions rather than noise."""
    assert model.denoiser is not None
    opt = torch.optim.AdamW(model.denoiser.parameters(), lr=1e-3, weight_decay=cfg.weight_decay)
    model.denoiser.train()
    t0, total = time.time(), 0.0
    for step in range(cfg.denoiser_warmup):
        rng = np.random.default_rng([cfg.seed, step, 1])
        items = [draw_pair(reals, fakes, cfg, rng) for _ in range(cfg.batch_size)]
        x = to_tensor([im for im, _, _, _ in items], cfg.size)
        clean = to_tensor([c for _, c, _, _ in items], cfg.size)
        loss = F.l1_loss(model.reconstruct(x), clean)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += float(loss.detach())
        if (step + 1) % 50 == 0:
            logger.info(
                "denoiser step %d: L1 %.4f (%.0f s)", step + 1, total / 50, time.time() - t0
            )
            total = 0.0


def _append_csv(path: Path, row: dict[str, Any]) -> None:
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(row))
        if new:
            w.writeheader()
        w.writerow(row)
