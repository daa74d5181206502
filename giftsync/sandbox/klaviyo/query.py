"""JSON:API query parameters: ``filter=equals(email,"a@x.com")`` style filters, ``page[size]``,
``page[cursor]`` (opaque offsets; a leading ``=`` or a whole ``links.next`` URL is tolerated,
reference §6.4) and ``sort``."""
from __future__ import annotations

import base64
import re
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from .validation import ApiError

_TOKEN = re.compile(r'''\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[(),\[\]]|[^\s(),\[\]"']+)''')


def bad_param(parameter: str, detail: str) -> ApiError:
    return ApiError.one(400, detail, parameter=parameter)


def parse_filter(text: str) -> list[tuple[str, str, Any]]:
    """``equals(email,"a@b.c")``, ``any(id,["a","b"])``, ``and(f1,f2)`` or ``f1,f2`` → [(op, field, value)]."""
    tokens = [t for t in _TOKEN.findall(text)]
    if "".join(tokens).replace(" ", "") != text.replace(" ", ""):
        raise bad_param("filter", f"Invalid filter provided: {text}")
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take(expected: str | None = None) -> str:
        nonlocal pos
        if pos >= len(tokens) or (expected is not None and tokens[pos] != expected):
            raise bad_param("filter", f"Invalid filter provided: {text}")
        pos += 1
        return tokens[pos - 1]

    def value() -> Any:
        tok = take()
        if tok == "[":
            items = []
            while peek() != "]":
                items.append(value())
                if peek() == ",":
                    take(",")
            take("]")
            return items
        if tok[0] in "\"'":
            return tok[1:-1].replace('\\"', '"').replace("\\'", "'").replace("\\\\", "\\")
        if tok in ("true", "false"):
            return tok == "true"
        if tok == "null":
            return None
        try:
            return float(tok) if "." in tok else int(tok)
        except ValueError:
            return tok  # unquoted dates and the like

    def term() -> list[tuple[str, str, Any]]:
        op = take()
        take("(")
        if op in ("and",):
            out = term()
            while peek() == ",":
                take(",")
                out += term()
            take(")")
            return out
        field = take()
        take(",")
        val = value()
        take(")")
        return [(op, field, val)]

    out = term()
    while peek() == ",":
        take(",")
        out += term()
    if pos != len(tokens):
        raise bad_param("filter", f"Invalid filter provided: {text}")
    return out


def apply_filter(items: list[dict], text: str | None, allowed: dict[str, tuple[str, ...]],
                 getter: Callable[[dict, str], Any], resource: str) -> list[dict]:
    if not text:
        return items
    for op, field, val in parse_filter(text):
        if field not in allowed:
            raise bad_param("filter", f"'{field}' is not a valid filter field for the resource '{resource}'.")
        if op not in allowed[field]:
            raise bad_param("filter", f"'{op}' is not a valid operator for the field '{field}'.")
        items = [it for it in items if _test(op, getter(it, field), val, field)]
    return items


def _norm(field: str, v: Any) -> Any:
    return v.lower() if field == "email" and isinstance(v, str) else v


def _test(op: str, have: Any, want: Any, field: str) -> bool:
    have = _norm(field, have)
    if op == "equals":
        if isinstance(want, list):
            return have in [_norm(field, w) for w in want]
        return have == _norm(field, want)
    if op == "any":
        return have in [_norm(field, w) for w in (want if isinstance(want, list) else [want])]
    if have is None:
        return False
    try:
        if op == "greater-than":
            return have > want
        if op == "greater-or-equal":
            return have >= want
        if op == "less-than":
            return have < want
        if op == "less-or-equal":
            return have <= want
    except TypeError:
        return False
    return False


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def decode_cursor(raw: str | None) -> int:
    if not raw:
        return 0
    token = raw
    if "page[cursor]=" in token or "page%5Bcursor%5D=" in token:
        qs = parse_qs(urlsplit(token).query)
        token = (qs.get("page[cursor]") or [""])[0]
    token = token.lstrip("=")
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        if not text.startswith("o:"):
            raise ValueError
        return max(0, int(text[2:]))
    except ValueError:
        raise bad_param("page[cursor]", "Invalid page cursor.") from None


def page_size(raw: str | None, default: int = 20, maximum: int = 100) -> int:
    if raw is None:
        return default
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if not 1 <= n <= maximum:
        raise bad_param("page[size]", f"Page size must be an integer between 1 and {maximum}.")
    return n


def sort_items(items: list[dict], raw: str | None, allowed: tuple[str, ...],
               getter: Callable[[dict, str], Any]) -> list[dict]:
    if not raw:
        return items
    reverse = raw.startswith("-")
    field = raw.lstrip("-")
    if field not in allowed:
        raise bad_param("sort", f"'{field}' is not a valid sort field.")
    return sorted(items, key=lambda it: (getter(it, field) is None, getter(it, field) or ""), reverse=reverse)
