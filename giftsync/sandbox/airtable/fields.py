"""Field types: full schema options, cell validation/normalisation on write, cell rendering.

Cells are stored in their REST (V1) JSON form, keyed by field id; an empty cell is not
stored at all. Links are handled by the store (they need other tables); everything else
is here.
"""
from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from typing import Any, Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import errors
from .formula import fmt_number, iso, parse_datetime

COMPUTED = {"formula", "rollup", "multipleLookupValues", "count", "autoNumber", "createdTime",
            "lastModifiedTime", "createdBy", "lastModifiedBy", "button", "aiText", "externalSyncSource"}
TEXT = {"singleLineText", "multilineText", "richText", "email", "url", "phoneNumber", "barcode"}
NUMERIC = {"number", "currency", "percent", "duration", "rating"}
SELECTS = {"singleSelect", "multipleSelects"}
KNOWN = TEXT | NUMERIC | SELECTS | COMPUTED | {
    "checkbox", "date", "dateTime", "multipleRecordLinks", "multipleAttachments",
    "singleCollaborator", "multipleCollaborators"}
# types the metadata API refuses to create (their options are read-only) [U for each]
NOT_CREATABLE = COMPUTED - {"autoNumber", "createdTime"} | {"externalSyncSource"}
PRIMARY_OK = TEXT | NUMERIC | {"date", "dateTime", "autoNumber", "createdTime", "formula", "singleSelect"}

COLORS = ["blueLight2", "cyanLight2", "tealLight2", "greenLight2", "yellowLight2", "orangeLight2",
          "redLight2", "pinkLight2", "purpleLight2", "grayLight2"]

_DATE_FORMATS = {"local": "l", "friendly": "LL", "us": "M/D/YYYY", "european": "D/M/YYYY", "iso": "YYYY-MM-DD"}
_TIME_FORMATS = {"12hour": "h:mma", "24hour": "HH:mm"}


def _date_format(opt: Any) -> dict:
    if isinstance(opt, dict) and opt.get("name") in _DATE_FORMATS:
        return {"name": opt["name"], "format": _DATE_FORMATS[opt["name"]]}
    return {"name": "local", "format": "l"}


def _time_format(opt: Any) -> dict:
    if isinstance(opt, dict) and opt.get("name") in _TIME_FORMATS:
        return {"name": opt["name"], "format": _TIME_FORMATS[opt["name"]]}
    return {"name": "12hour", "format": "h:mma"}


def _int_option(options: dict, key: str, default: int, lo: int, hi: int) -> int:
    v = options.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise errors.invalid_request(f"Invalid options for field: {key} must be an integer between {lo} and {hi}")
    return v


def full_options(ftype: str, options: Any, new_id: Callable[[str], str]) -> dict | None:
    """The options as the schema endpoint returns them (every key pyairtable's models need).

    ``multipleRecordLinks`` is completed by the store (it knows the tables)."""
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise errors.invalid_request()
    if ftype in ("number", "percent"):
        return {"precision": _int_option(options, "precision", 0, 0, 8)}
    if ftype == "currency":
        symbol = options.get("symbol", "$")
        if not isinstance(symbol, str):
            raise errors.invalid_request()
        return {"precision": _int_option(options, "precision", 2, 0, 7), "symbol": symbol}
    if ftype == "checkbox":
        return {"icon": str(options.get("icon", "check")), "color": str(options.get("color", "greenBright"))}
    if ftype == "rating":
        return {"icon": str(options.get("icon", "star")), "color": str(options.get("color", "yellowBright")),
                "max": _int_option(options, "max", 5, 1, 10)}
    if ftype == "duration":
        return {"durationFormat": str(options.get("durationFormat", "h:mm"))}
    if ftype in SELECTS:
        choices = options.get("choices", [])
        if not isinstance(choices, list):
            raise errors.invalid_request()
        out, seen = [], set()
        for i, c in enumerate(choices):
            if isinstance(c, str):
                c = {"name": c}
            if not isinstance(c, dict) or not isinstance(c.get("name"), str) or not c["name"].strip():
                raise errors.invalid_request()
            if c["name"] in seen:
                raise errors.invalid_request()
            seen.add(c["name"])
            out.append({"id": c.get("id") or new_id("sel"), "name": c["name"],
                        "color": c.get("color") or COLORS[i % len(COLORS)]})
        return {"choices": out}
    if ftype == "date":
        return {"dateFormat": _date_format(options.get("dateFormat"))}
    if ftype in ("dateTime",):
        tz = options.get("timeZone", "client")
        if not isinstance(tz, str) or not _valid_tz(tz):
            raise errors.invalid_request(f"Invalid options for field: unknown timeZone {tz!r}")
        return {"timeZone": tz, "dateFormat": _date_format(options.get("dateFormat")),
                "timeFormat": _time_format(options.get("timeFormat"))}
    if ftype in ("createdTime", "lastModifiedTime"):
        result = options.get("result") or {"type": "dateTime", "options": {"timeZone": "utc"}}
        rtype = result.get("type", "dateTime") if isinstance(result, dict) else "dateTime"
        rtype = rtype if rtype in ("date", "dateTime") else "dateTime"
        ropts = full_options(rtype, result.get("options") if isinstance(result, dict) else None, new_id)
        out = {"result": {"type": rtype, "options": ropts}}
        if ftype == "lastModifiedTime":
            out.update({"isValid": True, "referencedFieldIds": options.get("referencedFieldIds", [])})
        return out
    if ftype == "multipleAttachments":
        return {"isReversed": bool(options.get("isReversed", False))}
    if ftype in TEXT or ftype in ("autoNumber", "createdBy", "lastModifiedBy", "singleCollaborator",
                                  "multipleCollaborators"):
        return None
    # other (formula, rollup, lookups, …): kept as given
    return dict(options) if options else None


def _valid_tz(tz: str) -> bool:
    if tz in ("utc", "client", "UTC"):
        return True
    try:
        ZoneInfo(tz)
        return True
    except (ZoneInfoNotFoundError, ValueError):
        return False


def _zone(tz: str | None) -> Any:
    if not tz or tz in ("utc", "client", "UTC"):
        return timezone.utc
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        return timezone.utc


def is_empty(value: Any) -> bool:
    return value is None or value is False or value == "" or (isinstance(value, (list, dict)) and not value)


def _clean_number(v: float | int) -> float | int:
    if isinstance(v, float) and v.is_integer() and abs(v) < 2 ** 53:
        return int(v)
    return v


_TRUE = {"true", "1", "yes", "y", "checked", "on", "x"}
_FALSE = {"false", "0", "no", "n", "unchecked", "off", ""}
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def normalize(field: dict, value: Any, typecast: bool, new_id: Callable[[str], str]) -> Any:
    """The stored form of ``value`` for ``field`` (None = empty); raises ApiError.

    With ``typecast`` unknown select options are added to ``field["options"]``."""
    ftype, name = field["type"], field["name"]
    if ftype in COMPUTED:
        raise errors.computed(name)
    if value is None:
        return None
    if ftype in TEXT:
        if isinstance(value, str):
            return value or None
        if typecast and isinstance(value, (int, float)) and not isinstance(value, bool):
            return fmt_number(value)
        if typecast and isinstance(value, bool):
            return "true" if value else "false"
        if typecast and isinstance(value, list) and all(isinstance(x, (str, int, float)) for x in value):
            return ", ".join(str(x) for x in value) or None
        raise errors.bad_value(name)
    if ftype in NUMERIC:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if isinstance(value, float) and not math.isfinite(value):
                raise errors.bad_value(name)
            return _clean_number(value)
        if typecast and isinstance(value, str):
            s = value.strip().replace(",", "")
            if ftype == "currency":
                s = s.lstrip(field.get("options", {}).get("symbol", "$") or "$")
            pct = ftype == "percent" and s.endswith("%")
            if pct:
                s = s[:-1]
            if s == "":
                return None
            try:
                f = float(s)
            except ValueError:
                raise errors.bad_value(name) from None
            if not math.isfinite(f):
                raise errors.bad_value(name)
            return _clean_number(f / 100 if pct else f)
        raise errors.bad_value(name)
    if ftype == "checkbox":
        if isinstance(value, bool):
            return True if value else None
        if typecast:
            if isinstance(value, (int, float)):
                return True if value else None
            if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
                return True if value.strip().lower() in _TRUE else None
        raise errors.bad_value(name)
    if ftype == "singleSelect":
        if typecast and not isinstance(value, str) and isinstance(value, (int, float, bool)):
            value = fmt_number(value) if not isinstance(value, bool) else ("true" if value else "false")
        if not isinstance(value, str):
            raise errors.bad_value(name)
        if value == "":
            return None
        return _choice(field, value, typecast, new_id)
    if ftype == "multipleSelects":
        if typecast and isinstance(value, str):
            value = [p.strip() for p in value.split(",") if p.strip()]
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            raise errors.bad_value(name)
        out: list[str] = []
        for v in value:
            if v == "":
                continue
            c = _choice(field, v, typecast, new_id)
            if c not in out:
                out.append(c)
        return out or None
    if ftype == "date":
        if not isinstance(value, str):
            raise errors.bad_value(name)
        if value == "":
            return None
        if _ISO_DATE.match(value):
            try:
                datetime.strptime(value, "%Y-%m-%d")
                return value
            except ValueError:
                raise errors.bad_value(name) from None
        dt = parse_datetime(value)
        if dt is None:
            raise errors.bad_value(name)
        return dt.strftime("%Y-%m-%d")
    if ftype == "dateTime":
        if not isinstance(value, str):
            raise errors.bad_value(name)
        if value == "":
            return None
        return normalize_datetime(value, field.get("options", {}).get("timeZone"), name)
    if ftype == "multipleAttachments":
        if not isinstance(value, list):
            raise errors.bad_value(name)
        out_att = []
        for att in value:
            if not isinstance(att, dict) or not (isinstance(att.get("url"), str) or isinstance(att.get("id"), str)):
                raise errors.bad_value(name)
            url = att.get("url", "")
            filename = att.get("filename") or (url.rsplit("/", 1)[-1] if url else "file")
            out_att.append({"id": att.get("id") or new_id("att"), "url": url, "filename": filename,
                            "size": int(att.get("size", 0) or 0), "type": att.get("type", "application/octet-stream")})
        return out_att or None
    # collaborators and anything else: stored as given
    return value


def normalize_datetime(value: str, tz: str | None, name: str) -> str:
    text = value.strip()
    naive = not re.search(r"(Z|z|[+-]\d{2}:?\d{2})$", text) or _ISO_DATE.match(text)
    t = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    try:
        dt = datetime.fromisoformat(t)
    except ValueError:
        parsed = parse_datetime(text)
        if parsed is None:
            raise errors.bad_value(name) from None
        dt = parsed.replace(tzinfo=None) if naive else parsed
    if dt.tzinfo is None or naive:
        dt = dt.replace(tzinfo=_zone(tz))
    return iso(dt)


def _choice(field: dict, value: str, typecast: bool, new_id: Callable[[str], str]) -> str:
    options = field.setdefault("options", {"choices": []})
    choices = options.setdefault("choices", [])
    for c in choices:
        if c["name"] == value:
            return c["name"]
    for c in choices:   # a choice id is accepted too [U]
        if c.get("id") == value:
            return c["name"]
    if not typecast:
        raise errors.ApiError(422, "INVALID_MULTIPLE_CHOICE_OPTIONS",
                              f'Insufficient permissions to create new select option ""{value}""')
    choices.append({"id": new_id("sel"), "name": value, "color": COLORS[len(choices) % len(COLORS)]})
    return value


# -- values inside formulas -----------------------------------------------------------
def formula_value(field: dict, value: Any) -> Any:
    """A stored cell as the formula evaluator sees it (links are resolved by the store)."""
    if value is None:
        return None
    ftype = field["type"]
    if ftype in ("date", "dateTime", "createdTime", "lastModifiedTime"):
        return parse_datetime(value) if isinstance(value, str) else None
    if ftype == "checkbox":
        return True if value else None
    if ftype == "multipleSelects" and isinstance(value, list):
        return ", ".join(value)
    if ftype == "multipleAttachments" and isinstance(value, list):
        return ", ".join(f"{a.get('filename', '')} ({a.get('url', '')})" for a in value)
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return str(value.get("name") or value.get("email") or "")
    return value


# -- cellFormat=string ----------------------------------------------------------------
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December"]


def _fmt_date(dt: datetime, fmt: str, locale: str) -> str:
    if fmt == "l":
        fmt = "M/D/YYYY" if locale.lower() in ("en", "en-us", "") else "D/M/YYYY"
    if fmt == "LL":
        return f"{_MONTHS[dt.month - 1]} {dt.day}, {dt.year}"
    out = fmt.replace("YYYY", f"{dt.year:04d}")
    out = re.sub(r"MM|M|DD|D", lambda m: {"MM": f"{dt.month:02d}", "M": str(dt.month),
                                          "DD": f"{dt.day:02d}", "D": str(dt.day)}[m.group(0)], out)
    return out


def _fmt_time(dt: datetime, name: str) -> str:
    if name == "24hour":
        return f"{dt.hour:02d}:{dt.minute:02d}"
    h = dt.hour % 12 or 12
    return f"{h}:{dt.minute:02d}{'am' if dt.hour < 12 else 'pm'}"


def string_value(field: dict, value: Any, time_zone: str, locale: str) -> str:
    """A stored cell rendered for cellFormat=string (links are rendered by the store)."""
    ftype, options = field["type"], field.get("options") or {}
    if ftype in ("number", "percent", "currency") and isinstance(value, (int, float)):
        p = options.get("precision", 0)
        if ftype == "percent":
            return f"{value * 100:.{p}f}%"
        if ftype == "currency":
            sign = "-" if value < 0 else ""
            return f"{sign}{options.get('symbol', '$')}{abs(value):,.{p}f}"
        return f"{value:.{p}f}"
    if ftype == "checkbox":
        return "checked" if value else ""
    if ftype in ("date", "dateTime", "createdTime", "lastModifiedTime") and isinstance(value, str):
        dt = parse_datetime(value)
        if dt is None:
            return value
        if ftype == "date":
            return _fmt_date(dt, _date_format(options.get("dateFormat"))["format"], locale)
        if ftype in ("createdTime", "lastModifiedTime"):
            result = options.get("result") or {}
            if result.get("type") == "date":
                return _fmt_date(dt, _date_format((result.get("options") or {}).get("dateFormat"))["format"], locale)
            options = result.get("options") or {}
        tz = options.get("timeZone", "client")
        local = dt.astimezone(_zone(time_zone if tz == "client" else tz))
        return (_fmt_date(local, _date_format(options.get("dateFormat"))["format"], locale) + " "
                + _fmt_time(local, _time_format(options.get("timeFormat"))["name"]))
    if isinstance(value, list):
        return ", ".join(v if isinstance(v, str) else str(v.get("filename") or v.get("name") or v.get("id", ""))
                         if isinstance(v, dict) else fmt_number(v) if isinstance(v, (int, float)) else str(v)
                         for v in value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return fmt_number(value)
    if isinstance(value, dict):
        return str(value.get("name") or value.get("email") or "")
    return "" if value is None else str(value)
