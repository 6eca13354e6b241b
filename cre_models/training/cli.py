"""``cre train-videos``: crop cache, training and a checkpoint from labelled videos.

    cre train-videos --data ../data-external --labels ../data-external/labels.tsv \\
        --out runs/ffpp --steps 3000

Reads the identity split (:mod:`cre_models.training.splits`; the committed one by default),
caches the crops of the ``train`` and ``validation`` clips (as delivered and a re-encoded
copy), trains (:mod:`cre_models.training.loop`) and writes ``--out/checkpoint`` (model +
``config.json`` with the crop contract). Threshold, aggregation and calibration are then
chosen on validation video scores of the worker's own path with ``cre eval --videos ...
--fit CHECKPOINT``. The ``test`` split is never read here.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import platform
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..evaluation.metrics import require_train_extra
from ..model import EmbedderConfig
from ..weights import DecisionSpec, InputSpec, save_pretrained
from .cache import CachedVideo, CacheSpec, build_cache, degraded_versions, load_cached
from .facemesh import FACEMESH_MEMBER, FaceMesh, attach_dense, build_dense, read_model
from .loop import SHARES, LoopConfig, train_loop
from .options import add_options
from .splits import EXTRA_METHOD, Clip, identities, load_split, read_labels, split_file

__all__ = ["main", "extra_real_clips", "extra_labelled_clips"]

logger = logging.getLogger(__name__)

EARLY_CHECKED = ("denoiser", "twin_pairs", "identity_adversary", "mask_loss", "keep", "sbi_mask")
"""Loop options (beside the shares) whose values and combinations are checked before caching."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cre train-videos", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="root the labels' file paths are relative to")
    p.add_argument("--labels", required=True, help="labels.tsv (file, label, method)")
    p.add_argument("--split", default=str(split_file()), help="identity split JSON")
    p.add_argument("--out", default="runs/videos")
    p.add_argument("--cache-dir", default=".cache/crops")
    p.add_argument(
        "--cache-only",
        action="store_true",
        help="build the crop cache (with --sbi-mask dense, its landmarks too) and stop",
    )
    p.add_argument("--frames", type=int, default=32, help="frames sampled per training video")
    p.add_argument("--align", action="store_true", help="eye-levelled crops")
    p.add_argument(
        "--deg-copies",
        type=int,
        default=1,
        help="re-encoded copies per training clip, each one more video in the draw (so "
        "N/(N+1) of the items are re-encoded); validation always scores orig + deg",
    )
    p.add_argument(
        "--extra-reals",
        action="append",
        default=[],
        metavar="DIR",
        help="a folder of real photos and/or videos of other people (repeatable): their "
        "faces join training as reals and self-blend sources, in the domain of the "
        "non-FF++ clips; never validation",
    )
    p.add_argument(
        "--extra-labelled",
        action="append",
        default=[],
        metavar="TSV",
        help="more labelled clips (a labels.tsv, files relative to --data; repeatable) that "
        "join training only: refused if a clip is already in --labels or shows a person of "
        "the split's validation or test clips (e.g. labels_more.tsv of "
        "scripts/restore_more_ffpp.sh)",
    )
    p.add_argument(
        "--facemesh",
        metavar="PATH",
        help="with --sbi-mask dense: MediaPipe's face_landmark.tflite, or the "
        "mediapipe==0.10.21 wheel that holds it (pip download mediapipe==0.10.21 --no-deps); "
        "needs the dense extra (ai-edge-litert); training time only",
    )
    p.add_argument("--resume", action="store_true")
    p.add_argument("--name", default="cre-ffpp")
    p.add_argument("--version", default="0.2.0")
    fields = [f.name for f in dataclasses.fields(LoopConfig) if f.name not in ("out", "extra")]
    add_options(p, LoopConfig(), fields)
    return p


def _facemesh(path: str | None) -> FaceMesh:
    """The dense-landmark model of ``--facemesh``, checked before any caching."""
    if not path:
        raise SystemExit(
            "--sbi-mask dense needs --facemesh PATH (face_landmark.tflite or the "
            "mediapipe==0.10.21 wheel)"
        )
    try:
        return FaceMesh(read_model(path))
    except (OSError, ValueError, ImportError) as e:
        raise SystemExit(f"--facemesh {path}: {e}") from None


def _with_dense(
    videos: Sequence[CachedVideo], cache: Path, spec: CacheSpec, mesh: FaceMesh
) -> list[CachedVideo]:
    """``videos`` with FaceMesh's points on the real ones (self-blends are made from real
    crops only), computed first where they are not stored yet."""
    build_dense([v for v in videos if v.clip.label == 0], cache, spec, mesh)
    return [attach_dense([v], cache, spec)[0] if v.clip.label == 0 else v for v in videos]


def _dense_provenance(videos: Sequence[CachedVideo]) -> dict[str, object]:
    """Where the self-blend masks' dense points came from, and how many crops have them."""
    with_points = [v.dense for v in videos if v.dense is not None]
    return {
        "model": f"{FACEMESH_MEMBER} of mediapipe 0.10.21 (Apache-2.0)",
        "real_crops": sum(len(d) for d in with_points),
        "real_crops_with_points": sum(
            int(np.isfinite(d).all(axis=(1, 2)).sum()) for d in with_points
        ),
    }


def _files_per_folder(folders: Sequence[str], extra: Sequence[Clip]) -> dict[str, int]:
    """How many of the ``extra`` clips each folder added: a file under two of them counts
    for the first, as :func:`extra_real_clips` adds it once."""
    roots = [(str(Path(d)), str(Path(d).resolve()) + "/") for d in folders]
    counts = dict.fromkeys((name for name, _ in roots), 0)
    for clip in extra:
        counts[next(name for name, root in roots if clip.file.startswith(root))] += 1
    return counts


def extra_labelled_clips(
    tables: Sequence[str], clips: Sequence[Clip], split: dict[str, str]
) -> list[Clip]:
    """The clips of ``tables`` (labels files), for training only.

    Raises:
        SystemExit: a clip already in the labelled set or listed twice, or one that shows an
            FF++ person of a validation or test clip (that would leak the person into
            training and make the split's numbers optimistic).
    """
    held_out = {
        i: split[c.file]
        for c in clips
        if split.get(c.file) in ("validation", "test")
        for i in identities(c.file)
    }
    seen = {c.file for c in clips}
    out: list[Clip] = []
    for table in tables:
        for clip in read_labels(table):
            if clip.file in seen:
                raise SystemExit(f"--extra-labelled {table}: {clip.file} is listed twice")
            leaks = [i for i in identities(clip.file) if i in held_out]
            if leaks:
                raise SystemExit(
                    f"--extra-labelled {table}: {clip.file} shows person {leaks[0]}, who is in "
                    f"the {held_out[leaks[0]]} split; it cannot train"
                )
            seen.add(clip.file)
            out.append(clip)
    if tables:
        n_fake = sum(c.label for c in out)
        logger.info(
            "%d extra labelled clips (%d real, %d fake) from %d file(s)",
            len(out),
            len(out) - n_fake,
            n_fake,
            len(tables),
        )
    return out


def extra_real_clips(folders: Sequence[str], labelled: Sequence[Path] = ()) -> list[Clip]:
    """Every image and video under ``folders`` as a real clip (absolute paths, sorted; a file
    under two of the folders counts once).

    Raises:
        SystemExit: a folder that does not exist or holds no image or video, or one that
            holds a file of the labelled set (``labelled``): a fake there would train as real.
    """
    from .data import media_under

    known = {p.resolve() for p in labelled}
    out: list[Clip] = []
    seen: set[Path] = set()
    for folder in folders:
        root = Path(folder)
        if not root.is_dir():
            raise SystemExit(f"--extra-reals {folder}: not a folder")
        found = [item.path.resolve() for item in media_under(root, 0)]
        if not found:
            raise SystemExit(f"--extra-reals {folder}: no image or video in it")
        listed = [p for p in found if p in known]
        if listed:
            raise SystemExit(
                f"--extra-reals {folder}: {len(listed)} file(s) of the labelled set, e.g. "
                f"{listed[0]}; give a folder of real media that --labels does not list"
            )
        out += [Clip(str(p), 0, EXTRA_METHOD) for p in found if p not in seen]
        seen.update(found)
    logger.info("%d extra real files from %d folder(s)", len(out), len(folders))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    require_train_extra("cre train-videos")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    data = Path(args.data)
    clips = read_labels(args.labels)
    split = load_split(args.split)
    missing = [c.file for c in clips if c.file not in split]
    if missing:
        raise SystemExit(f"{len(missing)} clips are not in {args.split}, e.g. {missing[0]}")
    more = extra_labelled_clips(args.extra_labelled, clips, split)
    train = [c for c in clips if split[c.file] == "train"] + more
    val = [c for c in clips if split[c.file] == "validation"]
    extra = extra_real_clips(args.extra_reals, [data / c.file for c in [*clips, *more]])
    train += extra
    spec = CacheSpec(size=args.size, margin=args.margin, align=args.align, frames=args.frames)
    cache = Path(args.cache_dir)
    if args.deg_copies < 1:
        raise SystemExit(f"--deg-copies must be >= 1, not {args.deg_copies}")
    try:  # the embedder's own checks, before minutes of crop caching
        EmbedderConfig(
            rgb_stream=args.rgb_stream,
            residual=args.residual,
            residual_norm=args.residual_norm,
            rgb_blocks=args.rgb_blocks,
            detail_px=args.detail_px,
        )
    except ValueError as e:
        raise SystemExit(
            f"--rgb-stream / --rgb-blocks / --residual / --residual-norm / --detail-px: {e}"
        ) from None
    try:  # the loop's own checks, before the caching too
        LoopConfig(**{name: getattr(args, name) for name in (*SHARES, *EARLY_CHECKED)})
    except ValueError as e:
        raise SystemExit(f"--{str(e).split()[0].replace('_', '-')}: {e}") from None
    mesh = _facemesh(args.facemesh) if args.sbi_mask == "dense" else None
    train_versions = ("orig", *degraded_versions(args.deg_copies))
    val_versions = ("orig", *degraded_versions(1))  # runs stay comparable whatever N
    build_cache(train, data, cache, spec, versions=train_versions)
    build_cache(val, data, cache, spec, versions=val_versions)
    if args.cache_only:
        if mesh is not None:
            reals = [c for c in train if c.label == 0]
            _with_dense(load_cached(reals, cache, spec, train_versions), cache, spec, mesh)
        return 0
    cfg = LoopConfig(
        out=args.out,
        # the crops trained on
        extra={
            "frames": args.frames,
            "deg_copies": args.deg_copies,
            "align": args.align,
            **({"extra_reals": len(extra)} if extra else {}),
            **({"extra_labelled": len(more)} if more else {}),
        },
        **{
            f.name: getattr(args, f.name)
            for f in dataclasses.fields(LoopConfig)
            if f.name not in ("out", "extra")
        },
    )
    train_v = load_cached(train, cache, spec, train_versions)
    val_v = load_cached(val, cache, spec, val_versions)
    if mesh is not None:
        train_v = _with_dense(train_v, cache, spec, mesh)
    model, summary = train_loop(cfg, train_v, val_v, resume=args.resume)
    n_real = sum(1 for c in train if c.label == 0) - len(extra)
    save_pretrained(
        model,
        Path(args.out) / "checkpoint",
        name=args.name,
        version=args.version,
        input_spec=InputSpec(
            size=cfg.size, crop_margin=cfg.margin, frames_per_video=32, align=args.align
        ),
        decision=DecisionSpec(threshold=0.5, aggregation="mean"),
        training={
            "loop": {**dataclasses.asdict(cfg), "out": f"runs/{Path(cfg.out).name}"},
            "summary": summary,
            "split": Path(args.split).name,
            "provenance": {
                "labels": Path(args.labels).name,
                "train_clips": len(train) - len(extra),
                "extra_reals": _files_per_folder(args.extra_reals, extra),
                "extra_labelled": {Path(t).name: len(read_labels(t)) for t in args.extra_labelled},
                "train_real_clips": n_real,
                "train_fake_clips": len(train) - len(extra) - n_real,
                "validation_clips": len(val),
                "crops": sum(v.n for v in train_v),
                "frames_per_video": args.frames,
                "reencoded_copies": args.deg_copies,
                "cache_spec": dataclasses.asdict(spec),
                **({"dense_landmarks": _dense_provenance(train_v)} if mesh is not None else {}),
            },
            "machine": f"{platform.machine()}, {platform.python_version()}",
        },
        include_denoiser=cfg.denoiser,  # a denoised-input classifier needs it at inference
    )
    logger.info("checkpoint written to %s", Path(args.out) / "checkpoint")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
