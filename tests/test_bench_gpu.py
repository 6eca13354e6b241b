"""The GPU benchmark's steps on the CPU, its section, and the GPU settings it measured.

The measurements themselves need a CUDA GPU (``python -m benchmarks.bench_gpu``); here
every step runs with the CPU in the GPU's place, and the section is rendered from that
output. One test runs only where CUDA is: the GPU path's scores against the CPU's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from pydantic import ValidationError

from worker.settings import Settings


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    from tests.synth import write_video

    folder = tmp_path_factory.mktemp("gpuclips")
    return [
        write_video(folder / f"c{i}.mp4", width=320, height=240, seconds=1.0, fps=8, seed=i)
        for i in range(2)
    ]


def _cpu(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "device": "cpu", "detect_device": "cpu", **extra}


def _result(clips: list[Path], e2e: dict[str, Any], parity: dict[str, Any]) -> dict[str, Any]:
    return {
        "date": "2026-12-04 18:00 UTC",
        "dry_run": False,
        "gpu": "a test GPU",
        "cpu": "a test CPU",
        "torch": torch.__version__,
        "cuda": None,
        "tf32": {"cudnn": True, "matmul": False},
        "weights": "cre-ffpp v0",
        "input_size": 224,
        "clips": [c.name for c in clips],
        "repeats": 1,
        "crops": [
            {
                "what": "predict",
                "device": "cuda",
                "batch": 8,
                "precision": "float32",
                "crops_per_s": 1234.5,
            },
            {
                "what": "network",
                "device": "cuda",
                "batch": 128,
                "precision": "bfloat16",
                "crops_per_s": 9999.0,
            },
        ],
        "configs": [
            _cpu("cpu"),
            {"name": "gpu", "device": "cuda", "detect_device": "cpu", "tf32": False},
        ],
        "parity_configs": [{"name": "old", "device": "cuda", "detect_device": "cuda"}],
        "e2e": e2e,
        "parity": parity,
        "queue": [
            {
                "command": "cre run CLIPS --workers 1 --json FILE",
                "rc": 0,
                "wall_s": 3.25,
                "records": {clips[0].name: ["done", 0.5], clips[1].name: ["failed", None]},
            }
        ],
    }


def test_steps_run_on_the_cpu_and_the_section_shows_their_numbers(clips: list[Path]) -> None:
    from benchmarks.bench_gpu import first_pass, render, score_clips

    base = score_clips(clips, _cpu("cpu"), threads=1, repeats=1)
    assert set(base) == {c.name for c in clips}
    for m in base.values():
        assert m["faces"] > 0 and len(m["frames"]) > 0 and 0.0 <= m["score"] <= 1.0
        assert m["total"] > 0
    again = score_clips(clips, _cpu("again"), threads=1, repeats=1)
    # a shifted copy: the parity table must report exactly this difference
    shifted = {
        k: {**v, "score": v["score"] + 0.25, "frames": [f - 0.125 for f in v["frames"]]}
        for k, v in again.items()
    }
    fresh = first_pass(clips[:1], _cpu("gpu"))
    assert fresh["config"]["name"] == "gpu" and fresh["load_s"] > 0
    passes = fresh["clips"][clips[0].name]
    assert len(passes) == 3 and all(
        p[3] == pytest.approx(base[clips[0].name]["score"]) for p in passes
    )

    res = _result(clips, {"cpu": base, "gpu": again}, {"old": shifted})
    res["first_pass"] = [fresh]
    text = render(res)
    assert "| `gpu` | 0.0e+00 | 0.0e+00 | 0 of 2 |" in text  # the same code on the same CPU
    assert "| `old` | 2.5e-01 | 1.2e-01 |" in text
    assert "| `gpu` | model on cuda, detector on cpu, float32, TF32 off |" in text
    assert "TF32 as PyTorch leaves it (cuDNN True, matmul False)" in text  # no "tf32" key
    assert "| predict" not in text and "| 1,234 |" in text and "| 9,999 |" in text
    assert f"`{clips[0].name}` done 0.500, `{clips[1].name}` failed -" in text
    first = " / ".join(f"{p[0]:.2f} ({p[1]:.2f})" for p in passes)
    assert first in text


def test_a_dry_run_is_never_written(tmp_path: Path) -> None:
    from benchmarks.bench_gpu import render

    with pytest.raises(SystemExit, match="dry run"):
        render({"dry_run": True})


def test_without_cuda_the_benchmark_says_so(tmp_path: Path) -> None:
    from benchmarks.bench_gpu import main

    if torch.cuda.is_available():
        pytest.skip("CUDA is here")
    (tmp_path / "a.mp4").write_bytes(b"")
    with pytest.raises(SystemExit, match="CUDA is not available"):
        main(["--videos", str(tmp_path), "--no-write"])


def test_gpu_settings_defaults_and_bad_values() -> None:
    s = Settings()
    assert s.detect_device == "cpu" and s.cuda_tf32 is False
    with pytest.raises(ValidationError):
        Settings(detect_device="tpu")
    with pytest.raises(ValidationError):
        Settings(cuda_tf32="sometimes")


def test_the_detector_runs_on_the_device_it_is_given() -> None:
    from cre_models.faces import FaceDetector
    from tests.synth import synth_frames

    frame = synth_frames(1, 320, 240)[0]
    det = FaceDetector(device="cpu")
    assert "device='cpu'" in repr(det)
    assert next(det.model.parameters()).device.type == "cpu"
    assert det.detect(frame)
    with pytest.raises(RuntimeError):
        FaceDetector(device="no-such-device")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_scores_match_the_cpu(clips: list[Path]) -> None:
    """With TF32 off (the default), the GPU's scores are the CPU's (1e-6 on the benchmark's
    real clips); the detector on the GPU too."""
    from benchmarks.bench_gpu import score_clips

    cpu = score_clips(clips, _cpu("cpu"), threads=1, repeats=1)
    for detect in ("cpu", "cuda"):
        gpu = score_clips(
            clips, {"name": "gpu", "device": "cuda", "detect_device": detect}, threads=1, repeats=1
        )
        assert not torch.backends.cudnn.allow_tf32
        for k in cpu:
            assert gpu[k]["score"] == pytest.approx(cpu[k]["score"], abs=1e-4)


def test_warm_up_runs_the_model_once_per_batch_size(monkeypatch: pytest.MonkeyPatch) -> None:
    from worker.scoring import Scorer

    scorer = Scorer(Settings(batch_size=3, torch_threads=1))
    seen: list[tuple[int, tuple[int, ...]]] = []
    real = scorer.predict

    def predict(crops: list[Any], threads: int = 0) -> Any:
        seen.append((len(crops), crops[0].shape))
        return real(crops, threads)

    monkeypatch.setattr(scorer, "predict", predict)
    assert scorer.warm_up() > 0
    size = scorer.transform.size
    assert seen == [(1, (size, size, 3)), (2, (size, size, 3)), (3, (size, size, 3))]


@pytest.mark.parametrize(
    ("device", "warm", "expected"),
    [("cuda", True, 1), ("cuda", False, 0), ("cpu", True, 0)],
)
def test_only_a_non_forking_worker_on_a_gpu_warms_up(
    monkeypatch: pytest.MonkeyPatch, device: str, warm: bool, expected: int
) -> None:
    import worker.scoring
    from worker import workers

    calls: list[int] = []

    class Stub:
        model_name, model_version, batch_size, aggregation = "m", "0", 8, "mean"

        def __init__(self) -> None:
            self.device = torch.device(device)

        def warm_up(self) -> float:
            calls.append(1)
            return 0.0

    monkeypatch.setattr(worker.scoring, "get_scorer", lambda settings: Stub())
    workers._load_model(warm_up=warm)
    assert len(calls) == expected
    assert workers.WarmWorker.warm_up_model and not workers.ForkWarmWorker.warm_up_model


def test_configurations_become_the_workers_settings() -> None:
    from benchmarks.bench_gpu import _config_settings, configs, describe

    timed, parity = configs("cuda")
    names = [c["name"] for c in (*timed, *parity)]
    assert len(set(names)) == len(names) and names[:2] == ["cpu", "gpu"]
    by_name = {c["name"]: c for c in (*timed, *parity)}
    gpu = _config_settings(by_name["gpu"], threads=3)
    default = Settings()
    assert (gpu.device, gpu.detect_device, gpu.cuda_tf32) == ("cuda", "cpu", False)
    assert (gpu.detect_device, gpu.cuda_tf32) == (default.detect_device, default.cuda_tf32)
    assert gpu.decode_threads == default.decode_threads and gpu.torch_threads == 3
    auto = _config_settings(by_name["gpu-decode-auto"], threads=3)
    assert auto.decode_threads == 0
    res = {"tf32": {"cudnn": True, "matmul": False}}
    assert "`CRE_DECODE_THREADS=0`" in describe(by_name["gpu-decode-auto"], res)
    assert describe(by_name["gpu-tf32"], res).endswith("TF32 on")
    assert _config_settings(by_name["gpu-bf16"], threads=1).precision == "bfloat16"


@pytest.fixture()
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A process whose torch sees no CUDA GPU (whatever this machine has)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    return monkeypatch


def test_a_cuda_device_without_a_gpu_is_one_clear_line(no_gpu: pytest.MonkeyPatch) -> None:
    from cre_models.inference import check_device

    assert check_device("cpu") == "cpu"
    no_gpu.setattr(torch.version, "cuda", None)
    with pytest.raises(ValueError, match=r"this torch \(.*\) is a CPU-only build"):
        check_device("cuda")
    no_gpu.setattr(torch.version, "cuda", "13.0")
    with pytest.raises(ValueError, match="built for CUDA 13.0 but sees no GPU"):
        check_device("cuda:0")


def test_scoring_on_a_missing_gpu_is_a_failed_record(no_gpu: pytest.MonkeyPatch) -> None:
    from worker.jobs import score_video
    from worker.scoring import device_problem

    assert device_problem(Settings()) is None
    problem = device_problem(Settings(detect_device="cuda"))
    assert problem is not None and problem.startswith("CRE_DETECT_DEVICE=cuda, but")
    rec = score_video("never-read.mp4", Settings(device="cuda"))
    assert rec.status == "failed" and rec.error is not None
    assert rec.error.code == "model_unavailable"
    assert rec.error.message.startswith("CRE_DEVICE=cuda, but this torch")


@pytest.mark.parametrize("command", ["run", "worker"])
def test_cre_run_and_cre_worker_refuse_a_missing_gpu_before_starting(
    no_gpu: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    from worker import run, serve
    from worker.settings import get_settings

    no_gpu.setenv("CRE_DEVICE", "cuda")
    get_settings.cache_clear()
    try:
        if command == "run":
            assert run.main(["never-read.mp4"]) == 2
        else:
            with pytest.raises(SystemExit) as e:
                serve.main(["--burst"])
            assert e.value.code == 2
    finally:
        get_settings.cache_clear()
    assert "CRE_DEVICE=cuda, but this torch" in capsys.readouterr().err
