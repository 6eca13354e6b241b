"""Benchmark scripts rewrite only their own block of docs/BENCHMARKS.md."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.benchdoc import write_section


def test_append_replace_and_keep_other_blocks(tmp_path: Path) -> None:
    doc = tmp_path / "docs" / "BENCHMARKS.md"
    write_section(doc, "a", "first A")
    write_section(doc, "b", "only B", heading="## B")
    write_section(doc, "a", "second A\nwith $1 and \\1 kept literally")
    text = doc.read_text()
    assert text.startswith("# Benchmarks\n")
    assert "first A" not in text
    assert "second A\nwith $1 and \\1 kept literally" in text
    assert "## B\n\n<!-- BEGIN b -->\nonly B\n<!-- END b -->" in text
    assert text.count("<!-- BEGIN a -->") == 1 and text.count("<!-- END a -->") == 1
    assert text.index("<!-- BEGIN a -->") < text.index("<!-- BEGIN b -->")


def test_every_benchmark_is_run_by_make_bench() -> None:
    """``python -m benchmarks`` (``make bench``) knows every ``bench_*.py``; each imports."""
    import importlib

    from benchmarks.__main__ import BENCHMARKS, GPU, main

    folder = Path(__file__).resolve().parents[1] / "benchmarks"
    every = (*BENCHMARKS, *GPU)
    assert {p.stem for p in folder.glob("bench_*.py")} == {f"bench_{n}" for n in every}
    for name in every:
        assert callable(importlib.import_module(f"benchmarks.bench_{name}").main)
    assert main(["nothing"]) == 2


def test_a_section_is_a_title_an_intro_a_table_and_a_note() -> None:
    from benchmarks.benchdoc import section

    text = section("## T", "intro", "| a | b |", ["| 1 | 2 |"], "note")
    assert text == "## T\n\nintro\n\n| a | b |\n| --- | --- |\n| 1 | 2 |\n\nnote"
    assert section("## T", "i", "| a |", [], align="| ---: |").endswith("| a |\n| ---: |")


def test_worker_benchmark_picks_480p_and_up_and_reports_the_median_ratio(tmp_path: Path) -> None:
    from benchmarks.bench_worker import find_clips, render, summarise
    from tests.synth import write_video

    write_video(tmp_path / "small.mp4", width=320, height=240, seconds=0.5, fps=10)
    (tmp_path / "sub").mkdir()
    write_video(tmp_path / "sub" / "big.mp4", width=640, height=480, seconds=0.5, fps=10)
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    clips, skipped = find_clips(tmp_path)
    assert [c.label for c in clips] == ["sub/big.mp4"]
    assert (clips[0].width, clips[0].height) == (640, 480)
    assert any("small.mp4" in s and "320x240" in s for s in skipped)
    assert any("broken.mp4" in s for s in skipped)

    def clip(total: float, floor: float, decode: float, detect: float, infer: float) -> dict:
        return {
            "total": total,
            "decode_floor": floor,
            "ratio": total / floor,
            "decode": decode,
            "detect": detect,
            "infer": infer,
            "largest": "decode",
            "frames": 32,
            "faces": 32,
            "size": "640x480, 10.0 s",
        }

    per_clip = {
        "a": clip(1.2, 1.0, 0.8, 0.3, 0.2),
        "b": clip(3.0, 1.0, 0.1, 1.5, 0.2),
        "c": clip(1.4, 1.0, 0.9, 0.3, 0.3),
    }
    s = summarise(per_clip)
    assert s["median_ratio"] == 1.4 and s["largest"] == "detect"
    results = {
        "clips": per_clip,
        "summary": s,
        "real": True,
        "skipped": skipped,
        "date": "2026-01-01",
        "machine": "m",
        "load": "0",
        "load_end": "0",
        "weights": "w",
        "input_size": 128,
        "batch_size": 8,
        "threads": 2,
        "detection": "d",
        "repeats": 3,
        "crops_per_s": 100.0,
        "crops_per_s_1t": 61.5,
        "batch_sweep": {"4": {"1": 66.2, "2": 109.3}, "8": {"1": 53.1, "2": 90.6}},
        "rss_10s": {"rss_mb": 600.0, "rss_source": "VmHWM"},
        "rss_3min": {"rss_mb": 600.0},
    }
    text = render(results)
    assert "over the 3 clips: 1.40** (meets target <= 1.5" in text
    assert "the largest is **detect** (misses target" in text
    assert "the largest stage of a clip: decode in 3, detect in 0, infer in 0" in text
    assert "`sub/big.mp4`" not in text and "| `a` |" in text
    assert "| batch size | 1 torch thread(s) | 2 torch thread(s) |" in text
    assert "| 4 | 66.2 | 109.3 |" in text and "| 8 | 53.1 | 90.6 |" in text
    assert "one video; VmHWM) | 600 MB | meets target <= 1536 |" in text
    assert "one video; ru_maxrss) | 600 MB" in text  # a result without the source
    assert "| the same on one torch thread (a batch while the decoder thread works) | 61.5" in text


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs Linux /proc")
def test_a_child_reports_its_own_peak_memory_not_its_parents() -> None:
    """The worker benchmark's peak RSS comes from a child process; ``ru_maxrss`` there carries
    the parent's peak across ``exec`` (the bug behind the twentieth session's figures)."""
    import subprocess
    import sys

    import numpy as np

    from benchmarks.common import ROOT, peak_rss_mb

    held = np.ones((300, 1024, 1024), dtype=np.uint8)  # 300 MB resident in this process
    mine, source = peak_rss_mb()
    assert source == "VmHWM" and mine >= 300
    code = (
        "import json, resource; from benchmarks.common import peak_rss_mb; "
        "print(json.dumps([peak_rss_mb()[0], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    own_mb, maxrss_kib = json.loads(out.stdout)
    # a bare interpreter, far below this process's 300 MB (ru_maxrss read maxrss_kib)
    assert own_mb < 200, (own_mb, maxrss_kib)
    assert held.sum() > 0
