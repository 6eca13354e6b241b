"""Benchmark scripts rewrite only their own block of docs/BENCHMARKS.md."""

from __future__ import annotations

from pathlib import Path

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

    from benchmarks.__main__ import BENCHMARKS, main

    folder = Path(__file__).resolve().parents[1] / "benchmarks"
    assert {p.stem for p in folder.glob("bench_*.py")} == {f"bench_{n}" for n in BENCHMARKS}
    for name in BENCHMARKS:
        assert callable(importlib.import_module(f"benchmarks.bench_{name}").main)
    assert main(["nothing"]) == 2


def test_a_section_is_a_title_an_intro_a_table_and_a_note() -> None:
    from benchmarks.benchdoc import section

    text = section("## T", "intro", "| a | b |", ["| 1 | 2 |"], "note")
    assert text == "## T\n\nintro\n\n| a | b |\n| --- | --- |\n| 1 | 2 |\n\nnote"
    assert section("## T", "i", "| a |", [], align="| ---: |").endswith("| a |\n| ---: |")
