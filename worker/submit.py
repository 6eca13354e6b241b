"""``python scripts/submit.py PATH_OR_URL... [--wait] [--force] [--json]``: enqueue videos.

Files, folders (searched recursively for video file extensions) and URLs go onto the
``cre`` queue at ``CRE_REDIS_URL`` (default ``redis://localhost:6379/0``). One line per
input: what happened (``queued``, ``skipped_done``, ``skipped_pending``, ``rejected``),
the job id and the source. ``--wait`` then waits for the jobs and prints their results.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from pathlib import Path

import redis

from worker.security import redact_url, tool_connection
from worker.settings import Settings, get_settings

__all__ = [
    "VIDEO_EXTENSIONS",
    "add_list_argument",
    "read_source_list",
    "read_source_lists",
    "expand_inputs",
    "wait_for",
    "main",
]

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = frozenset(
    {
        ".mp4",
        ".m4v",
        ".mov",
        ".mkv",
        ".webm",
        ".avi",
        ".ts",
        ".mts",
        ".flv",
        ".3gp",
        ".3g2",
        ".mpg",
        ".mpeg",
    }
)
"""File extensions picked up when a folder is submitted (case-insensitive)."""


def read_source_list(path: str) -> list[str]:
    """The sources listed in a text file (``-``: standard input), one per line: paths, folders
    or URLs; blank lines and lines starting with ``#`` are skipped, surrounding whitespace is
    dropped (a path with leading or trailing spaces cannot be listed).

    Raises:
        ValueError: the file cannot be read, is not UTF-8 text, or has a line with a NUL.
    """
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read the list {path!r}: {e}") from e
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        item = line.strip()
        if not item or item.startswith("#"):
            continue
        if "\x00" in item:
            raise ValueError(f"{path}:{number}: a NUL byte in the line")
        out.append(item)
    return out


def read_source_lists(paths: Iterable[str]) -> list[str]:
    """:func:`read_source_list` of each list, in order (``--from`` may be given several times)."""
    return [item for path in paths for item in read_source_list(path)]


def add_list_argument(parser: argparse.ArgumentParser) -> None:
    """``--from FILE``, repeatable, into ``args.lists`` (read with :func:`read_source_lists`):
    the same option for ``cre run``, ``cre results`` and ``scripts/submit.py``."""
    parser.add_argument(
        "--from",
        dest="lists",
        action="append",
        default=[],
        metavar="FILE",
        help="also the sources listed in FILE, one per line (- = stdin; # comments)",
    )


def _folder_files(folder: Path) -> list[Path]:
    """Every file under ``folder``, sorted, following linked folders (a folder of links to
    where the videos are is common) but entering each real folder once, so a link that
    loops back ends."""
    seen: set[tuple[int, int]] = set()
    files: list[Path] = []
    for root, dirs, names in os.walk(folder, followlinks=True):
        try:
            st = os.stat(root)
        except OSError:
            dirs[:] = []
            continue
        if (st.st_dev, st.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        files += [p for p in (Path(root) / n for n in names) if p.is_file()]
    return sorted(files)


def expand_inputs(items: Iterable[str]) -> list[str]:
    """URLs and files as given; folders replaced by their video files (recursive, sorted).

    A folder without videos contributes nothing (and is logged); the other files of a
    folder (not hidden ones) are named in one log line, since a clip with an unusual
    extension would otherwise go unscored without a word; name such a file on its own to
    submit it. Paths that do not exist are passed through so that
    :func:`worker.queue.enqueue` rejects them with a reason.
    """
    from worker.fetch import is_url

    out: list[str] = []
    for item in items:
        if is_url(item):
            out.append(item)
            continue
        path = Path(item).expanduser()
        if path.is_dir():
            files = _folder_files(path)
            found = sorted(str(p) for p in files if p.suffix.lower() in VIDEO_EXTENSIONS)
            others = [
                p.relative_to(path).as_posix()
                for p in files
                if p.suffix.lower() not in VIDEO_EXTENSIONS
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            ]
            if not found:
                logger.warning("%s: no video files (%s)", item, ", ".join(sorted(VIDEO_EXTENSIONS)))
            if others:
                shown = ", ".join(others[:5]) + (
                    f" and {len(others) - 5} more" if len(others) > 5 else ""
                )
                logger.warning(
                    "%s: %d other file(s) not submitted (not a video file extension): %s; "
                    "name a file on its own to submit it anyway",
                    item,
                    len(others),
                    shown,
                )
            out.extend(found)
        else:
            out.append(item)
    return out


def wait_for(
    conn: redis.Redis,
    video_ids: Sequence[str],
    settings: Settings,
    timeout_s: float | None = None,
    poll_s: float = 0.5,
    on_done: Callable[[str], None] | None = None,
) -> set[str]:
    """Wait until no job of ``video_ids`` is queued, scheduled or running.

    A job that returned a retry is still pending. Jobs write their result record before
    they finish, so a final job has a record unless its process was killed outright.
    ``on_done(video_id)`` is called once per id as it becomes final.

    Returns:
        The ids still pending when ``timeout_s`` ran out (empty when all finished).
    """
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    from worker.queue import PENDING_STATUSES, SERIALIZER

    waiting = list(dict.fromkeys(video_ids))
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while waiting:
        still = []
        for vid in waiting:
            try:
                pending = (
                    Job.fetch(vid, connection=conn, serializer=SERIALIZER).get_status()
                    in PENDING_STATUSES
                )
            except NoSuchJobError:
                pending = False
            if pending:
                still.append(vid)
            elif on_done is not None:
                on_done(vid)
        waiting = still
        if not waiting or (deadline is not None and time.monotonic() > deadline):
            break
        time.sleep(poll_s)
    return set(waiting)


def _rq_failure(conn: redis.Redis, vid: str) -> str:
    """Why RQ says a job without a record failed, with a hint for the usual cause."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    from worker.payloads import PayloadError
    from worker.queue import SERIALIZER

    try:
        result = Job.fetch(vid, connection=conn, serializer=SERIALIZER).latest_result()
    except NoSuchJobError:
        return "the job is gone"
    except PayloadError as e:  # e.g. a pickled rq.Retry as the latest return value
        return f"RQ's result for the job is unreadable here ({e})"
    text = (result.exc_string or "") if result is not None else ""
    if "DeserializationError" in text:
        return "the worker could not read the job's payload"
    return text.strip().splitlines()[-1] if text.strip() else "the job's process died"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``scripts/submit.py``; see the module docstring."""
    parser = argparse.ArgumentParser(prog="submit.py", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "inputs", nargs="*", metavar="PATH_OR_URL", help="video files, folders or URLs"
    )
    add_list_argument(parser)
    parser.add_argument(
        "--wait", action="store_true", help="wait for the jobs and print their results"
    )
    parser.add_argument("--force", action="store_true", help="score again even if a result exists")
    parser.add_argument(
        "--retry-failed", action="store_true", help="score again the videos whose result is failed"
    )
    parser.add_argument("--json", action="store_true", help="JSON lines instead of text")
    parser.add_argument(
        "--timeout", type=float, default=None, help="with --wait: give up after this many seconds"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from worker.queue import enqueue
    from worker.results import format_table, load_results, record_to_json

    settings = get_settings()
    try:
        listed = read_source_lists(args.lists)
    except ValueError as e:
        print(f"submit.py: {e}", file=sys.stderr)
        return 2
    if not args.inputs and not args.lists:
        parser.error("give files, folders or URLs, or --from FILE")
    sources = expand_inputs([*args.inputs, *listed])
    if not sources:
        print("submit.py: no video files found", file=sys.stderr)
        return 2
    shown = redact_url(settings.redis_url_or_default())
    try:
        conn = tool_connection(settings.redis_url_or_default())
    except ValueError as e:  # the URL (never quoted: it holds the password)
        print(f"submit.py: {e}", file=sys.stderr)
        return 2
    try:
        subs = enqueue(
            sources, settings, force=args.force, conn=conn, retry_failed=args.retry_failed
        )
    except redis.exceptions.RedisError as e:
        print(f"submit.py: cannot use Redis at {shown}: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    for s in subs:
        if args.json:
            print(json.dumps(asdict(s)))
        else:
            print(
                f"{s.status:<15} {s.video_id or '-':<33} {s.source}"
                + (f"  ({s.reason})" if s.reason else "")
            )
    rejected = [s for s in subs if s.status == "rejected"]
    if args.wait:
        ids = list(dict.fromkeys(s.video_id for s in subs if s.video_id is not None))
        done = 0

        def progress(vid: str) -> None:
            nonlocal done
            done += 1
            print(f"[{done}/{len(ids)}] {vid} finished", file=sys.stderr, flush=True)

        try:
            left = wait_for(conn, ids, settings, timeout_s=args.timeout, on_done=progress)
            records = load_results(conn, [i for i in ids if i not in left], settings)
        except KeyboardInterrupt:
            print(
                f"\nsubmit.py: stopped waiting with {len(ids) - done} of {len(ids)} job(s) not "
                "finished; they stay queued: read them later with cre results",
                file=sys.stderr,
            )
            return 130
        except redis.exceptions.RedisError as e:
            print(
                f"submit.py: lost Redis at {shown} while waiting ({type(e).__name__}: {e}); "
                "the jobs stay queued: read them later with cre results",
                file=sys.stderr,
            )
            return 2
        if args.json:
            for r in records:
                print(record_to_json(r))
        else:
            print(format_table(records))
        have = {r.video_id for r in records}
        for vid in ids:
            if vid not in have and vid not in left:
                print(
                    f"submit.py: {vid}: no result record ({_rq_failure(conn, vid)})",
                    file=sys.stderr,
                )
        if left:
            print(
                f"submit.py: {len(left)} job(s) unfinished after {args.timeout} s", file=sys.stderr
            )
            return 1
    return 2 if rejected else 0
