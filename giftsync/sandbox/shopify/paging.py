"""Cursor pagination shared by every connection: base64-JSON cursors {"last_id", "last_value"}."""
from __future__ import annotations

import base64
import json
from typing import Any, Callable

from .context import bad_request

MAX_PAGE = 250
BIG = 9223372036854775807
SMALL = -9223372036854775808


def encode_cursor(last_id: int, last_value: Any) -> str:
    raw = json.dumps({"last_id": last_id, "last_value": last_value}, separators=(",", ":"))
    return base64.b64encode(raw.encode()).decode()


def decode_cursor(cursor: str) -> tuple[Any, int] | None:
    try:
        data = json.loads(base64.b64decode(cursor.encode(), validate=False).decode())
        return data.get("last_value"), int(data["last_id"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None


def paginate(info, items: list, *, id_of: Callable[[Any], int], value_of: Callable[[Any], Any],
             first: int | None = None, last: int | None = None, after: str | None = None,
             before: str | None = None, reverse: bool = False, wrap: Callable[[Any], Any] = lambda x: x,
             require_page_size: bool = True) -> dict:
    """A connection dict (edges, nodes, pageInfo); ``value_of`` may return None (sorted last both ways)."""
    if require_page_size:
        if first is None and last is None:
            raise bad_request(info, "you must provide one of first or last")
        if first is not None and last is not None:
            raise bad_request(info, "providing both first and last is not supported")
    for n in (first, last):
        if n is not None and n < 0:
            raise bad_request(info, "first and last must be non-negative")

    def key(item):
        v = value_of(item)
        if v is None:
            v = SMALL if reverse else BIG
        return (v, id_of(item))

    ordered = sorted(items, key=key, reverse=reverse)
    keys = [key(it) for it in ordered]

    def after_key(k, ck):
        return k < ck if reverse else k > ck

    def before_key(k, ck):
        return k > ck if reverse else k < ck

    lo, hi = 0, len(ordered)
    if after:
        c = decode_cursor(after)
        if c is not None:
            ck = (c[0], c[1])
            lo = next((i for i, k in enumerate(keys) if _safe_after(after_key, k, ck)), len(ordered))
    if before:
        c = decode_cursor(before)
        if c is not None:
            ck = (c[0], c[1])
            hi = next((i for i, k in enumerate(keys) if not _safe_after(before_key, k, ck)), len(ordered))
            hi = max(hi, lo)
    window = list(range(lo, hi))
    if first is not None:
        window = window[:min(first, MAX_PAGE)]
    elif last is not None:
        n = min(last, MAX_PAGE)
        window = window[-n:] if n else []
    edges = []
    for i in window:
        item = ordered[i]
        edges.append({"cursor": encode_cursor(keys[i][1], keys[i][0]), "node": wrap(item)})
    page_info = {
        "hasNextPage": bool(window) and window[-1] < len(ordered) - 1,
        "hasPreviousPage": bool(window) and window[0] > 0,
        "startCursor": edges[0]["cursor"] if edges else None,
        "endCursor": edges[-1]["cursor"] if edges else None,
    }
    return {"edges": edges, "nodes": [e["node"] for e in edges], "pageInfo": page_info}


def _safe_after(fn, k, ck) -> bool:
    try:
        return fn(k, ck)
    except TypeError:       # cursor value of another sort key: fall back to ids
        return fn((0, k[1]), (0, ck[1]))


def count_payload(n: int, limit: int | None) -> dict:
    """A ``…Count`` answer: exact, or ``limit`` AT_LEAST once ``n`` reaches it."""
    if limit is not None and n >= limit:
        return {"count": limit, "precision": "AT_LEAST"}
    return {"count": n, "precision": "EXACT"}
