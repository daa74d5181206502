"""Validation and error bodies of the Klaviyo twin (no HTTP)."""
from __future__ import annotations

import copy
import uuid

import pytest

from giftsync.sandbox.klaviyo.profiles import ProfileStore
from giftsync.sandbox.klaviyo.query import decode_cursor, encode_cursor, parse_filter
from giftsync.sandbox.klaviyo.ratelimit import RateLimiter, parse_limit
from giftsync.sandbox.klaviyo.validation import (ApiError, parse_body, validate_bulk_create,
                                                 validate_event_create, validate_profile_create,
                                                 validate_profile_import, validate_profile_update)

EVENT = {"data": {"type": "event", "attributes": {
    "properties": {"Code": "X"}, "time": "2026-03-01T12:34:56.789+02:00", "value": 5, "value_currency": "USD",
    "unique_id": "u1", "backfill": False,
    "metric": {"data": {"type": "metric", "attributes": {"name": "Gift Card Delivered"}}},
    "profile": {"data": {"type": "profile", "attributes": {"email": "a@example.com", "first_name": "A"},
                         "meta": {"patch_properties": {"append": {"ids": "1"}}}}}}}}


def error_of(fn, *args):
    with pytest.raises(ApiError) as exc:
        fn(*args)
    err = exc.value
    body = err.body()
    assert list(body) == ["errors"] and len(body["errors"]) == 1
    e = body["errors"][0]
    uuid.UUID(e["id"])
    assert all(isinstance(e[k], str) for k in ("id", "code", "title", "detail"))
    assert e["status"] == err.status and e["meta"] == {} or "duplicate_profile_id" in e["meta"]
    return err.status, e


def mutate(path, value=..., base=EVENT):
    body = copy.deepcopy(base)
    node = body
    for key in path[:-1]:
        node = node[key]
    if value is ...:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return body


def test_valid_event_is_normalised():
    ev = validate_event_create(EVENT)
    assert ev["metric"] == "Gift Card Delivered" and ev["unique_id"] == "u1" and ev["value"] == 5
    assert ev["time"].isoformat() == "2026-03-01T12:34:56+02:00"  # truncated to the second
    assert ev["profile"] == {"id": None, "attributes": {"email": "a@example.com", "first_name": "A"},
                             "meta": {"patch_properties": {"append": {"ids": "1"}}}}


def test_event_meta_in_attributes_is_accepted_too():
    body = mutate(["data", "attributes", "profile", "data", "attributes", "meta"], {"patch_properties": {"unset": "x"}})
    assert validate_event_create(body)["profile"]["meta"] == {"patch_properties": {"append": {"ids": "1"}}}
    body = mutate(["data", "attributes", "profile", "data", "meta"], base=body)
    assert validate_event_create(body)["profile"]["meta"] == {"patch_properties": {"unset": "x"}}


A = ["data", "attributes"]
P = A + ["profile", "data", "attributes"]


@pytest.mark.parametrize("path, value, pointer", [
    (A + ["properties"], ..., "/data/attributes/properties"),
    (A + ["properties"], [], "/data/attributes/properties"),
    (A + ["metric"], ..., "/data/attributes/metric"),
    (A + ["metric", "data", "type"], "metrics", "/data/attributes/metric/data/type"),
    (A + ["metric", "data", "attributes", "name"], "", "/data/attributes/metric/data/attributes/name"),
    (A + ["metric", "data", "attributes", "name"], "x" * 128, "/data/attributes/metric/data/attributes/name"),
    (A + ["value"], "5.00", "/data/attributes/value"),
    (A + ["value"], True, "/data/attributes/value"),
    (A + ["backfill"], "no", "/data/attributes/backfill"),
    (A + ["time"], "yesterday", "/data/attributes/time"),
    (A + ["time"], "1989-01-01T00:00:00Z", "/data/attributes/time"),
    (A + ["time"], "2099-01-01T00:00:00Z", "/data/attributes/time"),
    (A + ["unique_id"], 7, "/data/attributes/unique_id"),
    (A + ["valu"], 5, "/data/attributes/valu"),
    (["data", "type"], "profile", "/data/type"),
    (["data", "id"], "x", "/data/id"),
    (["data"], ..., "/data"),
    (P + ["email"], "not-an-email", "/data/attributes/profile/data/attributes/email"),
    (P + ["phone_number"], "5551234", "/data/attributes/profile/data/attributes/phone_number"),
    (P + ["nickname"], "x", "/data/attributes/profile/data/attributes/nickname"),
    (P + ["location"], {"planet": "Mars"}, "/data/attributes/profile/data/attributes/location/planet"),
    (P + ["properties"], {"big": "x" * (100 * 1024 + 1)}, "/data/attributes/profile/data/attributes/properties/big"),
    (A + ["profile", "data", "type"], "person", "/data/attributes/profile/data/type"),
])
def test_event_errors(path, value, pointer):
    status, err = error_of(validate_event_create, mutate(path, value))
    assert status == 400 and err["code"] == "invalid" and err["title"] == "Invalid input."
    assert err["source"] == {"pointer": pointer}


def test_event_needs_a_profile_identifier_and_400_properties_at_most():
    body = mutate(P, {"first_name": "A"})
    assert error_of(validate_event_create, body)[1]["source"]["pointer"] == "/data/attributes/profile/data/attributes"
    ok = mutate(P, {"external_id": "shopify:1"})
    assert validate_event_create(ok)["profile"]["attributes"] == {"external_id": "shopify:1"}
    too_many = mutate(A + ["properties"], {f"k{i}": i for i in range(401)})
    assert error_of(validate_event_create, too_many)[1]["source"]["pointer"] == "/data/attributes/properties"


@pytest.mark.parametrize("raw", [b"", b"{", b"NaN", b"\xff\xfe", b'{"a": Infinity}'])
def test_unparseable_bodies(raw):
    status, err = error_of(parse_body, raw)
    assert status == 400 and err["detail"] == "The payload provided in the request is invalid."
    assert err["source"] == {"pointer": "/data"}


def bulk(*entries):
    return {"data": {"type": "event-bulk-create-job", "attributes": {"events-bulk-create": {"data": list(entries)}}}}


def entry(email, *events, backfill=None):
    attrs = {"profile": {"data": {"type": "profile", "attributes": {"email": email}}},
             "events": {"data": [{"type": "event", "attributes": {
                 "properties": {}, "metric": {"data": {"type": "metric", "attributes": {"name": m}}}, **extra}}
                 for m, extra in events]}}
    if backfill is not None:
        attrs["backfill"] = backfill
    return {"type": "event-bulk-create", "attributes": attrs}


def test_bulk_flattens_events_with_their_profile():
    evs = validate_bulk_create(bulk(entry("a@example.com", ("M1", {}), ("M2", {"unique_id": "u"})),
                                    entry("b@example.com", ("M1", {}), backfill=True)))
    assert [(e["metric"], e["profile"]["attributes"]["email"], e["backfill"]) for e in evs] == [
        ("M1", "a@example.com", False), ("M2", "a@example.com", False), ("M1", "b@example.com", True)]


def test_bulk_errors():
    status, err = error_of(validate_bulk_create, bulk())
    assert status == 400
    bad = bulk(entry("a@example.com", ("M1", {"value": "x"})))
    assert error_of(validate_bulk_create, bad)[1]["source"]["pointer"] == \
        "/data/attributes/events-bulk-create/data/0/attributes/events/data/0/attributes/value"
    too_many = bulk(*[entry(f"u{i}@example.com", *[("M", {})] * 100) for i in range(11)])
    assert "1000" in error_of(validate_bulk_create, too_many)[1]["detail"]
    wrong = copy.deepcopy(bulk(entry("a@example.com", ("M", {}))))
    wrong["data"]["type"] = "event"
    assert error_of(validate_bulk_create, wrong)[1]["source"] == {"pointer": "/data/type"}


def test_profile_bodies():
    assert validate_profile_create({"data": {"type": "profile", "attributes": {"email": "a@example.com"}}})
    status, err = error_of(validate_profile_create, {"data": {"type": "profile", "attributes": {"first_name": "A"}}})
    assert status == 400 and err["source"] == {"pointer": "/data/attributes"}
    status, err = error_of(validate_profile_create,
                           {"data": {"type": "profile", "attributes": {"email": "a@example.com", "_kx": "k"}}})
    assert err["source"] == {"pointer": "/data/attributes/_kx"}  # _kx only on import and events
    assert validate_profile_import({"data": {"type": "profile", "attributes": {"_kx": "k"}}})
    status, err = error_of(validate_profile_update,
                           {"data": {"type": "profile", "id": "B", "attributes": {}}}, "A")
    assert err["source"] == {"pointer": "/data/id"}
    status, err = error_of(validate_profile_update, {"data": {"type": "profile", "attributes": {}}}, "A")
    assert err["source"] == {"pointer": "/data/id"}


def test_profile_store_merge_and_conflicts():
    store = ProfileStore()
    a = store.create({"email": "A@example.com", "properties": {"x": 1}, "location": {"city": "Oslo"}})
    with pytest.raises(ApiError) as exc:
        store.create({"email": "a@EXAMPLE.com"})
    assert exc.value.status == 409 and exc.value.errors[0]["meta"] == {"duplicate_profile_id": a["id"]}
    store.update(a["id"], {"properties": {"y": 2}, "location": {"city": None, "zip": "1"}},
                 {"patch_properties": {"append": {"tags": ["t1", "t2"]}, "unset": ["x"]}})
    assert a["properties"] == {"y": 2, "tags": ["t1", "t2"]} and a["location"] == {"zip": "1"}
    store.update(a["id"], {}, {"patch_properties": {"unappend": {"tags": "t1"}}})
    assert a["properties"]["tags"] == ["t2"]
    b, created = store.upsert(None, {"phone_number": "+15005550006"}, None)
    assert created
    with pytest.raises(ApiError) as exc:  # email and phone belong to two profiles
        store.upsert(None, {"email": "a@example.com", "phone_number": "+15005550006"}, None)
    assert exc.value.status == 409
    with pytest.raises(ApiError) as exc:
        store.upsert("01JNOPE", {"email": "z@example.com"}, None)
    assert exc.value.status == 404
    # an event never moves an identifier away from its owner
    p = store.from_event(None, {"email": "a@example.com", "phone_number": "+15005550006", "first_name": "A"}, None)
    assert p is a and a["phone_number"] is None and a["first_name"] == "A"


def test_filters_cursors_and_limits():
    assert parse_filter('equals(email,"a@b.c")') == [("equals", "email", "a@b.c")]
    assert parse_filter('and(equals(email,"a,b"),any(id,["1","2"]))') == [
        ("equals", "email", "a,b"), ("any", "id", ["1", "2"])]
    assert parse_filter("greater-than(created,2026-01-01T00:00:00Z)") == [
        ("greater-than", "created", "2026-01-01T00:00:00Z")]
    for bad in ("equals(email", "equals email", 'equals(email,"x")junk'):
        with pytest.raises(ApiError) as exc:
            parse_filter(bad)
        assert exc.value.errors[0]["source"] == {"parameter": "filter"}
    token = encode_cursor(40)
    assert decode_cursor(token) == 40 and decode_cursor("=" + token) == 40
    assert decode_cursor(f"http://127.0.0.1:1/api/profiles?page%5Bcursor%5D={token}&page%5Bsize%5D=20") == 40
    with pytest.raises(ApiError):
        decode_cursor("garbage!")
    assert parse_limit("XS") == (1, 15) and parse_limit([2, 3]) == (2, 3)
    assert parse_limit({"burst": 4, "steady": 5}) == (4, 5)
    with pytest.raises(ValueError):
        parse_limit("XXL")


def test_rate_limiter_windows():
    now = [100.0]
    rl = RateLimiter({"events.create": [2, 3]}, clock=lambda: now[0])
    assert rl.check("a", "events.create")[0] is None
    assert rl.check("a", "events.create")[1]["RateLimit-Remaining"] == "1"
    assert rl.check("a", "events.create")[0] == 1          # burst window full
    now[0] += 1.0
    assert rl.check("a", "events.create")[0] is None       # new second, third of the minute
    now[0] += 1.0
    assert rl.check("a", "events.create")[0] == 58         # steady window full
    assert rl.check("a", "unknown.route") == (None, {})
    assert RateLimiter(enabled=False).check("a", "events.create") == (None, {})
