"""Result records for ``cre report``: from a JSON Lines file or from Redis, as plain dicts.

Records are read as plain JSON dicts, never re-validated strictly, so records written by
an older or newer ``cre`` (extra fields such as ``tracks``) still make a page.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from worker.settings import Settings

__all__ = ["load_jsonl", "select_records", "load_from_redis", "soft_check"]

logger = logging.getLogger(__name__)


def load_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON Lines file (``cre run --json``); lines that are not objects
    are skipped with a warning."""
    records = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                logger.warning("%s:%d: not JSON (%s); skipped", path, n, e)
                continue
            if isinstance(obj, dict) and "status" in obj:
                records.append(obj)
            else:
                logger.warning("%s:%d: not a result record; skipped", path, n)
    return records


def _matches(record: Mapping[str, Any], item: str) -> bool:
    vid = str(record.get("video_id") or "")
    source = str(record.get("source") or "")
    if item in (vid, source) or (len(item) >= 6 and vid.startswith(item)):
        return True
    tail = re.split(r"[/\\]", source.split("?", 1)[0].rstrip("/\\"))[-1]
    if item == tail:
        return True
    try:
        from worker.ids import normalise_source

        return normalise_source(item) == source
    except (OSError, ValueError):
        return False


def select_records(
    records: Sequence[dict[str, Any]], items: Sequence[str]
) -> tuple[list[dict[str, Any]], list[str]]:
    """The records matching ``items`` (all when empty), and the items that matched none.

    An item matches a record by video id (or a prefix of 6+ characters), by source as
    stored, by the source's file name, or by a path that resolves to the source.
    """
    if not items:
        return list(records), []
    chosen: list[dict[str, Any]] = []
    missing = []
    for item in items:
        found = [r for r in records if _matches(r, item)]
        if not found:
            missing.append(item)
        chosen += [r for r in found if not any(r is c for c in chosen)]
    return chosen, missing


def load_from_redis(
    items: Sequence[str], settings: Settings
) -> tuple[list[dict[str, Any]], list[str]]:
    """Records from Redis as dicts: the given ids or sources, or all of them.

    Raises:
        redis.exceptions.ConnectionError: Redis cannot be reached.
    """
    import redis

    from worker.ids import looks_like_video_id, video_id
    from worker.results import result_key

    conn = redis.Redis.from_url(settings.redis_url_or_default())
    if items:
        ids = [i if looks_like_video_id(i) else video_id(i) for i in items]
    else:
        ids = [
            i.decode() if isinstance(i, bytes) else str(i)
            for i in conn.zrange(settings.result_index_key, 0, -1)
        ]
    raws = conn.mget([result_key(i, settings) for i in ids]) if ids else []
    records, missing = [], []
    for item, raw in zip(items or ids, raws, strict=True):
        if raw is None:
            missing.append(item)
            continue
        try:
            records.append(json.loads(raw))
        except json.JSONDecodeError:
            missing.append(item)
    return records, missing


def soft_check(record: Mapping[str, Any]) -> None:
    """Log (never raise) when a record does not validate as this version's ResultRecord."""
    from pydantic import ValidationError

    from worker.results import ResultRecord

    try:
        ResultRecord.model_validate(dict(record))
    except ValidationError as e:
        logger.debug("record %s is not a %s: %s", record.get("video_id"), ResultRecord, e)
