"""``cre report``: write the pages (and the index) of records from Redis or a JSON Lines file.

Exit status: 0 when every requested record got a page; 1 when some were not found; 2 when
nothing could be done (no records, Redis unreachable, bad arguments).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from worker.report.evidence import Evidence, ReportOptions
from worker.report.examine import ModelHolder, build_evidence
from worker.report.index import INDEX_FILE, write_index
from worker.report.page import render_report
from worker.report.records import load_from_redis, load_jsonl, select_records
from worker.settings import Settings, get_settings

if TYPE_CHECKING:
    from worker.scoring import Scorer

__all__ = ["report_file_name", "write_report", "write_reports", "main"]

logger = logging.getLogger(__name__)


def report_file_name(record: Mapping[str, Any]) -> str:
    """``<file stem>-<8 id digits>.html``: readable, and unique per video."""
    source = str(record.get("source") or "video")
    tail = re.split(r"[/\\]", source.split("?", 1)[0].rstrip("/\\"))[-1] or "video"
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(tail).stem).strip("._-")[:60] or "video"
    vid = re.sub(r"[^A-Za-z0-9]", "", str(record.get("video_id") or ""))
    return f"{stem}-{vid[1:9] if len(vid) > 8 else vid or 'x'}.html"


def write_report(ev: Evidence, out: Path) -> Evidence:
    """Write the page of ``ev`` (from :func:`~worker.report.examine.build_evidence`) to ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(render_report(ev), encoding="utf-8")
    tmp.replace(out)
    logger.info("wrote %s (%.0f KB, %.2f s)", out, out.stat().st_size / 1024, ev.build_s or 0)
    return ev


def write_reports(
    records: Iterable[Mapping[str, Any]],
    folder: Path,
    settings: Settings | None = None,
    *,
    options: ReportOptions | None = None,
    scorer: Scorer | None = None,
) -> list[Path]:
    """A page per record in ``folder`` (named by :func:`report_file_name`), then its index.

    The model is loaded once for all of them.
    """
    settings = settings or get_settings()
    model = ModelHolder(settings, scorer)
    paths = []
    for record in records:
        path = folder / report_file_name(record)
        write_report(build_evidence(record, settings, options=options, _model=model), path)
        paths.append(path)
    write_index(folder)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``cre report``; see the module docstring."""
    parser = argparse.ArgumentParser(
        prog="cre report",
        description="Write a self-contained HTML page per video showing why it got its score.",
    )
    parser.add_argument(
        "items",
        nargs="*",
        metavar="VIDEO_ID_OR_SOURCE",
        help="video ids, submitted paths/URLs, or (with --json) file names; all when none",
    )
    parser.add_argument(
        "--json", metavar="FILE", help="read records from this JSON Lines file, not Redis"
    )
    parser.add_argument(
        "--out",
        metavar="PATH",
        help="the page (one record, ends in .html) or a folder (several; gets an index.html)",
    )
    parser.add_argument(
        "--index", metavar="DIR", help="write DIR/index.html listing the reports in DIR"
    )
    parser.add_argument("--video", metavar="PATH", help="read this file instead of the source")
    parser.add_argument("--top", type=int, default=3, help="faces pictured per track (3)")
    parser.add_argument("--max-tracks", type=int, default=6, help="tracks pictured (6)")
    parser.add_argument(
        "--no-heatmaps", action="store_true", help="skip Grad-CAM (does not load the model)"
    )
    args = parser.parse_args(argv)
    try:
        options = ReportOptions(
            top=args.top, max_tracks=args.max_tracks, heatmaps=not args.no_heatmaps
        )
    except ValueError as e:
        parser.error(str(e))
    settings = get_settings()

    if args.index and not args.items and not args.json:
        out = write_index(Path(args.index))
        print(f"wrote {out}")
        return 0

    if args.json:
        try:
            records, missing = select_records(load_jsonl(Path(args.json)), args.items)
        except OSError as e:
            print(f"cre report: {e}", file=sys.stderr)
            return 2
    else:
        import redis

        from worker.security import redact_url

        try:
            records, missing = load_from_redis(args.items, settings)
        except redis.exceptions.ConnectionError as e:
            url = redact_url(settings.redis_url_or_default())
            print(
                f"cre report: cannot reach Redis at {url}: {e} "
                "(`cre run` keeps no Redis: use --json FILE with the file `cre run --json` wrote)",
                file=sys.stderr,
            )
            return 2
    for item in missing:
        print(f"cre report: no result for {item!r}", file=sys.stderr)
    if not records:
        print("cre report: no records to report on", file=sys.stderr)
        return 2
    if args.video and len(records) != 1:
        parser.error("--video needs exactly one record")

    single = len(records) == 1 and not args.index and (not args.out or args.out.endswith(".html"))
    if single:
        out = Path(args.out) if args.out else Path(report_file_name(records[0]))
        video = Path(args.video) if args.video else None
        ev = write_report(build_evidence(records[0], settings, options=options, video=video), out)
        size_kb = out.stat().st_size / 1024
        print(f"wrote {out} ({size_kb:.0f} KB, {ev.build_s or 0:.1f} s)")
        for note in ev.notes:
            print(f"  note: {note}")
    else:
        folder = Path(args.out or args.index or "reports")
        t0 = time.perf_counter()
        paths = write_reports(records, folder, settings, options=options)
        print(
            f"wrote {len(paths)} report(s) and {folder / INDEX_FILE} "
            f"in {time.perf_counter() - t0:.1f} s"
        )
        if args.index and Path(args.index) != folder:
            print(f"wrote {write_index(Path(args.index))}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
