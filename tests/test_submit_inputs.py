"""What a submitted folder turns into (``worker.submit.expand_inputs``)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from worker.submit import expand_inputs, read_source_list


def test_a_folder_gives_its_videos_and_names_the_files_it_leaves_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / ".cache").mkdir()
    for name in ("b.MP4", "sub/a.webm", "clip.gif", "notes.txt", ".DS_Store", ".cache/x.bin"):
        (tmp_path / name).write_bytes(b"x")
    url = "https://example.com/v.mp4"
    with caplog.at_level(logging.INFO, logger="worker.submit"):
        got = expand_inputs([str(tmp_path), url, str(tmp_path / "clip.gif")])
    assert got == [
        str(tmp_path / "b.MP4"),
        str(tmp_path / "sub/a.webm"),
        url,
        str(tmp_path / "clip.gif"),
    ]
    (line,) = [r.getMessage() for r in caplog.records if "not submitted" in r.getMessage()]
    assert "2 other file(s)" in line and "clip.gif, notes.txt" in line
    assert ".DS_Store" not in line and "x.bin" not in line  # hidden files stay quiet


def test_a_folder_without_videos_says_so_and_long_lists_are_cut(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for i in range(7):
        (tmp_path / f"photo{i}.jpg").write_bytes(b"x")
    with caplog.at_level(logging.INFO, logger="worker.submit"):
        assert expand_inputs([str(tmp_path)]) == []
    messages = [r.getMessage() for r in caplog.records]
    assert any("no video files" in m for m in messages)
    assert any("7 other file(s)" in m and "and 2 more" in m for m in messages)


def test_a_missing_path_passes_through_for_enqueue_to_refuse(tmp_path: Path) -> None:
    gone = str(tmp_path / "gone.mp4")
    assert expand_inputs([gone]) == [gone]


def test_a_source_list_skips_comments_and_blank_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    listing = tmp_path / "batch.txt"
    listing.write_text("# header\n\n  /videos/a.mp4 \nhttps://example.com/b.mp4\r\n# end\n")
    assert read_source_list(str(listing)) == ["/videos/a.mp4", "https://example.com/b.mp4"]
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("/videos/c.mp4\n"))
    assert read_source_list("-") == ["/videos/c.mp4"]


@pytest.mark.parametrize("content", [None, b"\xff\xfe not utf-8", b"/a.mp4\n/b\x00.mp4\n"])
def test_an_unreadable_source_list_is_refused_with_the_reason(
    tmp_path: Path, content: bytes | None
) -> None:
    listing = tmp_path / "batch.txt"
    if content is not None:
        listing.write_bytes(content)
    with pytest.raises(ValueError, match="batch.txt"):
        read_source_list(str(listing))


def test_a_linked_folder_is_followed_once_and_a_loop_ends(tmp_path: Path) -> None:
    store = tmp_path / "store"
    (store / "deep").mkdir(parents=True)
    (store / "deep" / "a.mp4").write_bytes(b"x")
    (store / "deep" / "up").symlink_to(store, target_is_directory=True)  # a loop
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "b.mp4").write_bytes(b"x")
    (inbox / "linked").symlink_to(store, target_is_directory=True)
    (inbox / "again").symlink_to(store, target_is_directory=True)  # the same folder twice
    got = expand_inputs([str(inbox)])
    assert got == sorted(got) and str(inbox / "b.mp4") in got
    assert len(got) == 2  # store's video once, through one of the two links
    assert [Path(p).resolve() for p in got if p.endswith("a.mp4")] == [store / "deep" / "a.mp4"]
