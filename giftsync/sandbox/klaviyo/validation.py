"""JSON:API request validation and Klaviyo's error bodies.

Every error the twin returns has the shape of reference §4.1::

    {"errors": [{"id": "<uuid4>", "status": 400, "code": "invalid", "title": "Invalid input.",
                 "detail": "...", "source": {"pointer": "/data/attributes/..."}, "meta": {}}]}

``id``, ``code``, ``title`` and ``detail`` are always strings, so the SDK can parse the
body into ``GetAccounts4XXResponse``. The validators below raise :class:`ApiError`; they
check required members, resource ``type`` values, member types, unknown members (Klaviyo
rejects them; the SDK drops them before sending, raw clients do not), identifiers, E.164
phone numbers, event times and size limits.
"""
from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

# -- error bodies ------------------------------------------------------------------------

TITLES = {
    400: ("invalid", "Invalid input."),
    401: ("not_authenticated", "Authentication credentials were not provided."),
    403: ("permission_denied", "You do not have permission to perform this action."),
    404: ("not_found", "Not found."),
    405: ("method_not_allowed", "Method not allowed."),
    409: ("conflict", "Conflict."),
    413: ("payload_too_large", "Payload too large."),
    415: ("unsupported_media_type", "Unsupported media type."),
    429: ("throttled", "Request was throttled."),
    500: ("error", "A server error occurred."),
    502: ("bad_gateway", "Bad gateway."),
    503: ("service_unavailable", "Service unavailable."),
    504: ("gateway_timeout", "Gateway timeout."),
}

INVALID_PAYLOAD = "The payload provided in the request is invalid."


def error_object(status: int, detail: str, *, code: str | None = None, title: str | None = None,
                 pointer: str | None = "/data", parameter: str | None = None,
                 meta: dict | None = None, links: dict | None = None) -> dict:
    default_code, default_title = TITLES.get(status, ("error", "Error."))
    source: dict[str, str] = {}
    if parameter is not None:
        source["parameter"] = parameter
    elif pointer is not None:
        source["pointer"] = pointer
    err = {"id": str(uuid.uuid4()), "status": status, "code": code or default_code,
           "title": title or default_title, "detail": detail, "source": source}
    if links is not None:
        err["links"] = links
    err["meta"] = meta or {}
    return err


class ApiError(Exception):
    """An error answer: ``status`` plus one or more JSON:API error objects."""

    def __init__(self, status: int, errors: list[dict], headers: dict[str, str] | None = None) -> None:
        super().__init__(errors[0]["detail"] if errors else str(status))
        self.status = status
        self.errors = errors
        self.headers = headers or {}

    @classmethod
    def one(cls, status: int, detail: str, **kw: Any) -> "ApiError":
        headers = kw.pop("headers", None)
        return cls(status, [error_object(status, detail, **kw)], headers)

    def body(self) -> dict:
        return {"errors": self.errors}


def invalid(detail: str, pointer: str = "/data") -> ApiError:
    return ApiError.one(400, detail, pointer=pointer)


# -- limits (reference §2.1, §2.5, §3) ----------------------------------------------------

MAX_EVENT_PAYLOAD = 5 * 1024 * 1024
MAX_PROFILE_PAYLOAD = 100 * 1024
MAX_STRING = 100 * 1024
MAX_EVENT_PROPERTIES = 400
MAX_BULK_EVENTS = 1000
MAX_METRIC_NAME = 128

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PHONE_DETAIL = "Invalid phone number format (Example of a valid phone number format: +12345678901)"
PROFILE_IDENTIFIERS = ("email", "phone_number", "external_id", "anonymous_id", "_kx")

LOCATION_FIELDS = ("address1", "address2", "city", "country", "latitude", "longitude", "region",
                   "zip", "timezone", "ip")
PROFILE_FIELDS = ("email", "phone_number", "external_id", "first_name", "last_name", "organization",
                  "locale", "title", "image", "location", "properties")
EVENT_PROFILE_FIELDS = PROFILE_FIELDS + ("anonymous_id", "_kx", "meta")
UPSERT_PROFILE_FIELDS = PROFILE_FIELDS + ("_kx",)
EVENT_FIELDS = ("properties", "time", "value", "value_currency", "unique_id", "backfill", "metric", "profile")

_TYPE_NAMES = {str: "string", dict: "object", list: "array", bool: "boolean"}


# -- helpers -----------------------------------------------------------------------------

def parse_body(raw: bytes) -> Any:
    if not raw:
        raise invalid(INVALID_PAYLOAD)

    def _no_constants(token: str) -> Any:
        raise ValueError(token)

    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_no_constants)
    except (ValueError, UnicodeDecodeError):
        raise invalid(INVALID_PAYLOAD) from None


def _shown(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _required(obj: dict, key: str, pointer: str) -> Any:
    if key not in obj:
        raise invalid(f"'{key}' is a required property", f"{pointer.rstrip('/')}/{key}")
    return obj[key]


def _object(value: Any, pointer: str, *, nullable: bool = False) -> dict | None:
    if value is None and nullable:
        return None
    if not isinstance(value, dict):
        raise invalid(f"{_shown(value)} is not of type 'object'", pointer)
    return value


def _string(value: Any, pointer: str, *, nullable: bool = True) -> str | None:
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        raise invalid(f"{_shown(value)} is not of type 'string'", pointer)
    if len(value.encode("utf-8")) > MAX_STRING:
        raise invalid("String values may not be longer than 100 KB.", pointer)
    return value


def _number(value: Any, pointer: str) -> float | int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid(f"{_shown(value)} is not of type 'number'", pointer)
    return value


def _boolean(value: Any, pointer: str) -> bool | None:
    if value is None:
        return None
    if not isinstance(value, bool):
        raise invalid(f"{_shown(value)} is not of type 'boolean'", pointer)
    return value


def _only(obj: dict, allowed: tuple[str, ...], pointer: str, resource: str) -> None:
    for key in obj:
        if key not in allowed:
            raise invalid(f"'{key}' is not a valid field for the resource '{resource}'.", f"{pointer}/{key}")


def _type(data: dict, expected: str, pointer: str) -> None:
    value = _required(data, "type", pointer)
    if value != expected:
        raise invalid(f"{_shown(value)} is not one of ['{expected}']", f"{pointer}/type")


def _data(body: Any) -> dict:
    if not isinstance(body, dict):
        raise invalid(f"{_shown(body)} is not of type 'object'", "/")
    return _object(_required(body, "data", "/"), "/data")  # type: ignore[return-value]


def _deep_strings(value: Any, pointer: str, depth: int = 0) -> None:
    """Strings inside free-form properties: ≤100 KB each; nesting ≤10 levels."""
    if depth > 10:
        raise invalid("Properties may not be nested more than 10 levels deep.", pointer)
    if isinstance(value, str):
        if len(value.encode("utf-8")) > MAX_STRING:
            raise invalid("String values may not be longer than 100 KB.", pointer)
    elif isinstance(value, dict):
        for k, v in value.items():
            _deep_strings(v, f"{pointer}/{k}", depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _deep_strings(v, f"{pointer}/{i}", depth + 1)


def parse_time(value: str, pointer: str, now: datetime | None = None) -> datetime:
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise invalid(f"{_shown(value)} is not a valid 'date-time'", pointer) from None
    if dt.tzinfo is None:  # Klaviyo reads naive times as UTC
        dt = dt.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    if dt <= datetime(1990, 1, 1, tzinfo=timezone.utc) or dt > now + timedelta(days=365):
        raise invalid("Event time must be after 1990 and no more than 1 year in the future.", pointer)
    return dt.replace(microsecond=0)


# -- profiles ----------------------------------------------------------------------------

def _location(value: Any, pointer: str) -> dict | None:
    loc = _object(value, pointer, nullable=True)
    if loc is None:
        return None
    _only(loc, LOCATION_FIELDS, pointer, "profile")
    for key, v in loc.items():
        if key in ("latitude", "longitude"):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (str, int, float))):
                raise invalid(f"{_shown(v)} is not of type 'string', 'number'", f"{pointer}/{key}")
        else:
            _string(v, f"{pointer}/{key}")
    return loc


def _patch_meta(value: Any, pointer: str) -> dict | None:
    meta = _object(value, pointer, nullable=True)
    if meta is None:
        return None
    _only(meta, ("patch_properties", "patch_identifiers"), pointer, "profile")
    pp = _object(meta.get("patch_properties"), f"{pointer}/patch_properties", nullable=True)
    if pp is not None:
        _only(pp, ("append", "unappend", "unset"), f"{pointer}/patch_properties", "profile")
        for k in ("append", "unappend"):
            _object(pp.get(k), f"{pointer}/patch_properties/{k}", nullable=True)
        unset = pp.get("unset")
        if unset is not None and not isinstance(unset, str) and not (
                isinstance(unset, list) and all(isinstance(u, str) for u in unset)):
            raise invalid(f"{_shown(unset)} is not of type 'string', 'array'", f"{pointer}/patch_properties/unset")
    pi = _object(meta.get("patch_identifiers"), f"{pointer}/patch_identifiers", nullable=True)
    if pi is not None:
        _only(pi, ("append", "unappend"), f"{pointer}/patch_identifiers", "profile")
    return meta


def profile_attributes(attrs: Any, pointer: str, allowed: tuple[str, ...]) -> dict:
    """Validate a profile's ``attributes`` object; returns it (unchanged)."""
    attrs = _object(attrs, pointer)
    assert attrs is not None
    _only(attrs, allowed, pointer, "profile")
    for key, value in attrs.items():
        p = f"{pointer}/{key}"
        if key == "location":
            _location(value, p)
        elif key == "properties":
            props = _object(value, p, nullable=True)
            if props is not None:
                _deep_strings(props, p)
        elif key == "meta":
            _patch_meta(value, p)
        else:
            _string(value, p)
    email = attrs.get("email")
    if email is not None and not EMAIL.match(email):
        raise invalid("Invalid email address", f"{pointer}/email")
    phone = attrs.get("phone_number")
    if phone is not None and not E164.match(phone):
        raise invalid(PHONE_DETAIL, f"{pointer}/phone_number")
    return attrs


def _has_identifier(attrs: dict, profile_id: Any, identifiers: tuple[str, ...]) -> bool:
    return bool(profile_id) or any(attrs.get(k) for k in identifiers)


def validate_profile_create(body: Any) -> dict:
    data = _data(body)
    _only(data, ("type", "attributes"), "/data", "profile")
    _type(data, "profile", "/data")
    attrs = profile_attributes(_required(data, "attributes", "/data"), "/data/attributes", PROFILE_FIELDS)
    if not _has_identifier(attrs, None, ("email", "phone_number", "external_id")):
        raise invalid("One of 'email', 'phone_number' or 'external_id' is required to create a profile.",
                      "/data/attributes")
    return data


def validate_profile_update(body: Any, path_id: str) -> dict:
    data = _data(body)
    _only(data, ("type", "id", "attributes", "meta"), "/data", "profile")
    _type(data, "profile", "/data")
    pid = _string(_required(data, "id", "/data"), "/data/id", nullable=False)
    if pid != path_id:
        raise invalid("The id in the request body does not match the id in the URL.", "/data/id")
    profile_attributes(_required(data, "attributes", "/data"), "/data/attributes", PROFILE_FIELDS)
    _patch_meta(data.get("meta"), "/data/meta")
    return data


def validate_profile_import(body: Any) -> dict:
    data = _data(body)
    _only(data, ("type", "id", "attributes", "meta"), "/data", "profile")
    _type(data, "profile", "/data")
    _string(data.get("id"), "/data/id")
    attrs = profile_attributes(_required(data, "attributes", "/data"), "/data/attributes", UPSERT_PROFILE_FIELDS)
    _patch_meta(data.get("meta"), "/data/meta")
    if not _has_identifier(attrs, data.get("id"), ("email", "phone_number", "external_id", "_kx")):
        raise invalid("One of 'id', 'email', 'phone_number', 'external_id' or '_kx' is required.",
                      "/data/attributes")
    return data


# -- events ------------------------------------------------------------------------------

def _event_profile(value: Any, pointer: str) -> dict:
    """``{"data": {"type": "profile", "id"?, "attributes": {...}, "meta"?}}`` → a flat dict."""
    wrapper = _object(value, pointer)
    assert wrapper is not None
    _only(wrapper, ("data",), pointer, "profile")
    data = _object(_required(wrapper, "data", pointer), f"{pointer}/data")
    assert data is not None
    p = f"{pointer}/data"
    _only(data, ("type", "id", "attributes", "meta"), p, "profile")
    _type(data, "profile", p)
    pid = _string(data.get("id"), f"{p}/id")
    attrs = profile_attributes(_required(data, "attributes", p), f"{p}/attributes", EVENT_PROFILE_FIELDS)
    meta = _patch_meta(data.get("meta"), f"{p}/meta")
    if meta is None and isinstance(attrs.get("meta"), dict):  # 2026-07-15 placement (reference §2.1)
        meta = attrs["meta"]
    if not _has_identifier(attrs, pid, PROFILE_IDENTIFIERS):
        raise invalid("One of 'id', 'email', 'phone_number', 'external_id', 'anonymous_id' or '_kx' "
                      "is required to identify a profile.", f"{p}/attributes")
    fields = {k: v for k, v in attrs.items() if k != "meta"}
    return {"id": pid, "attributes": fields, "meta": meta or {}}


def _metric(value: Any, pointer: str) -> str:
    wrapper = _object(value, pointer)
    assert wrapper is not None
    _only(wrapper, ("data",), pointer, "metric")
    data = _object(_required(wrapper, "data", pointer), f"{pointer}/data")
    assert data is not None
    p = f"{pointer}/data"
    _only(data, ("type", "attributes"), p, "metric")
    _type(data, "metric", p)
    attrs = _object(_required(data, "attributes", p), f"{p}/attributes")
    assert attrs is not None
    _only(attrs, ("name", "service"), f"{p}/attributes", "metric")
    name = _string(_required(attrs, "name", f"{p}/attributes"), f"{p}/attributes/name", nullable=False)
    assert name is not None
    if not name.strip() or len(name) >= MAX_METRIC_NAME:
        raise invalid("Metric name must be between 1 and 127 characters.", f"{p}/attributes/name")
    _string(attrs.get("service"), f"{p}/attributes/service")
    return name


def event_attributes(attrs: Any, pointer: str, *, with_profile: bool = True) -> dict:
    """Validate one event's ``attributes``; returns a normalised event dict."""
    allowed = EVENT_FIELDS if with_profile else tuple(f for f in EVENT_FIELDS if f != "profile")
    attrs = _object(attrs, pointer)
    assert attrs is not None
    _only(attrs, allowed, pointer, "event")
    props = _object(_required(attrs, "properties", pointer), f"{pointer}/properties")
    assert props is not None
    if len(props) > MAX_EVENT_PROPERTIES:
        raise invalid(f"Events may not have more than {MAX_EVENT_PROPERTIES} properties.", f"{pointer}/properties")
    _deep_strings(props, f"{pointer}/properties")
    event = {
        "properties": props,
        "metric": _metric(_required(attrs, "metric", pointer), f"{pointer}/metric"),
        "time": None,
        "value": _number(attrs.get("value"), f"{pointer}/value"),
        "value_currency": _string(attrs.get("value_currency"), f"{pointer}/value_currency"),
        "unique_id": _string(attrs.get("unique_id"), f"{pointer}/unique_id"),
        "backfill": bool(_boolean(attrs.get("backfill"), f"{pointer}/backfill")),
    }
    t = _string(attrs.get("time"), f"{pointer}/time")
    if t is not None:
        event["time"] = parse_time(t, f"{pointer}/time")
    if with_profile:
        event["profile"] = _event_profile(_required(attrs, "profile", pointer), f"{pointer}/profile")
    return event


def validate_event_create(body: Any) -> dict:
    data = _data(body)
    _only(data, ("type", "attributes"), "/data", "event")
    _type(data, "event", "/data")
    return event_attributes(_required(data, "attributes", "/data"), "/data/attributes")


def validate_bulk_create(body: Any) -> list[dict]:
    """Returns the flat list of events (each with its entry's profile); whole request fails on any error."""
    data = _data(body)
    _only(data, ("type", "attributes"), "/data", "event-bulk-create-job")
    _type(data, "event-bulk-create-job", "/data")
    attrs = _object(_required(data, "attributes", "/data"), "/data/attributes")
    assert attrs is not None
    _only(attrs, ("events-bulk-create",), "/data/attributes", "event-bulk-create-job")
    p = "/data/attributes/events-bulk-create"
    wrapper = _object(_required(attrs, "events-bulk-create", "/data/attributes"), p)
    assert wrapper is not None
    _only(wrapper, ("data",), p, "event-bulk-create-job")
    entries = _required(wrapper, "data", p)
    if not isinstance(entries, list):
        raise invalid(f"{_shown(entries)} is not of type 'array'", f"{p}/data")
    if not entries:
        raise invalid("At least one event is required.", f"{p}/data")
    events: list[dict] = []
    for i, entry in enumerate(entries):
        ep = f"{p}/data/{i}"
        entry = _object(entry, ep)
        assert entry is not None
        _only(entry, ("type", "attributes"), ep, "event-bulk-create")
        _type(entry, "event-bulk-create", ep)
        ea = _object(_required(entry, "attributes", ep), f"{ep}/attributes")
        assert ea is not None
        _only(ea, ("backfill", "profile", "events"), f"{ep}/attributes", "event-bulk-create")
        entry_backfill = bool(_boolean(ea.get("backfill"), f"{ep}/attributes/backfill"))
        profile = _event_profile(_required(ea, "profile", f"{ep}/attributes"), f"{ep}/attributes/profile")
        evp = f"{ep}/attributes/events"
        ev_wrapper = _object(_required(ea, "events", f"{ep}/attributes"), evp)
        assert ev_wrapper is not None
        _only(ev_wrapper, ("data",), evp, "event")
        items = _required(ev_wrapper, "data", evp)
        if not isinstance(items, list):
            raise invalid(f"{_shown(items)} is not of type 'array'", f"{evp}/data")
        for j, item in enumerate(items):
            ip = f"{evp}/data/{j}"
            item = _object(item, ip)
            assert item is not None
            _only(item, ("type", "attributes"), ip, "event")
            _type(item, "event", ip)
            ev = event_attributes(_required(item, "attributes", ip), f"{ip}/attributes", with_profile=False)
            ev["backfill"] = ev["backfill"] or entry_backfill
            ev["profile"] = profile
            ev["pointer"] = ip
            events.append(ev)
            if len(events) > MAX_BULK_EVENTS:
                raise invalid(f"A bulk request may not contain more than {MAX_BULK_EVENTS} events.", f"{p}/data")
    return events
