"""The Klaviyo twin driven by the unmodified klaviyo-api SDK (only test_host changed, reference §6.2).

Raw HTTP (requests) is used only where the SDK cannot send the request at all: it validates
bodies client-side (reference §2.2), so malformed bodies and missing headers go through requests.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import pytest
import requests
import urllib3
from klaviyo_api import KlaviyoAPI
from openapi_client.exceptions import (ApiException, BadRequestException, ForbiddenException,
                                       NotFoundException, ServiceException, UnauthorizedException)

from giftsync.sandbox import start_twin

KEY = "pk_test_twin_0123456789"
REVISION = "2026-10-15"


@pytest.fixture
def twin():
    server = start_twin("klaviyo")
    yield server
    server.stop()


def client(server, key: str = KEY, max_retries: int = 1, max_delay: int = 2) -> KlaviyoAPI:
    return KlaviyoAPI(key, test_host=server.url, max_retries=max_retries, max_delay=max_delay)


def event_body(metric="Gift Card Delivered", email="ann@example.com", properties=None, value=None,
               unique_id=None, time_=None, **profile):
    attrs = {"properties": properties if properties is not None else {},
             "metric": {"data": {"type": "metric", "attributes": {"name": metric}}},
             "profile": {"data": {"type": "profile", "attributes": {"email": email, **profile}}}}
    if value is not None:
        attrs["value"] = value
    if unique_id is not None:
        attrs["unique_id"] = unique_id
    if time_ is not None:
        attrs["time"] = time_
    return {"data": {"type": "event", "attributes": attrs}}


def sandbox(server, what: str, **params) -> list:
    return requests.get(f"{server.url}/__sandbox/{what}", params=params, timeout=5).json()[what]


def raw(server, method: str, path: str, body=None, *, key: str | None = KEY, revision: str | None = REVISION,
        content_type: str = "application/vnd.api+json", data: bytes | None = None) -> requests.Response:
    headers = {"Accept": "application/vnd.api+json", "Content-Type": content_type}
    if key is not None:
        headers["Authorization"] = f"Klaviyo-API-Key {key}"
    if revision is not None:
        headers["revision"] = revision
    if data is None and body is not None:
        data = json.dumps(body).encode()
    return requests.request(method, server.url + path, data=data, headers=headers, timeout=5)


def assert_error(payload: dict, status: int, code: str, pointer: str | None = None, parameter: str | None = None):
    """The JSON:API error body of reference §4.1."""
    assert list(payload) == ["errors"]
    assert len(payload["errors"]) == 1
    err = payload["errors"][0]
    assert {"id", "status", "code", "title", "detail", "source", "meta"} <= set(err)
    assert set(err) <= {"id", "status", "code", "title", "detail", "source", "meta", "links"}
    uuid.UUID(err["id"])
    assert err["status"] == status and err["code"] == code
    assert isinstance(err["title"], str) and isinstance(err["detail"], str) and err["detail"]
    if pointer is not None:
        assert err["source"] == {"pointer": pointer}
    if parameter is not None:
        assert err["source"] == {"parameter": parameter}
    return err


# -- events ------------------------------------------------------------------------------

def test_create_event_reaches_profile_events_and_outbox(twin):
    k = client(twin)
    body = event_body(properties={"Code": "ABCD2345EFGH6789", "Purchaser Name": "Bob", "Amount": "50.00",
                                  "Currency": "USD", "Message": "Happy birthday"},
                      value=50.0, unique_id="gc-delivered:1", first_name="Ann")
    body["data"]["attributes"]["value_currency"] = "USD"
    assert k.Events.create_event(body) is None

    # the wire: 202, empty body, as the SDK sent it
    log = twin.requests("events.create")
    assert [r["status"] for r in log] == [202]
    assert log[0]["headers"]["revision"] == REVISION and log[0]["headers"]["authorization"] == "***"
    assert json.loads(log[0]["body"])["data"]["attributes"]["backfill"] is False

    events = sandbox(twin, "events")
    assert len(events) == 1 and events[0]["dropped"] is False
    assert events[0]["metric"] == "Gift Card Delivered" and events[0]["unique_id"] == "gc-delivered:1"

    [profile] = sandbox(twin, "profiles", email="ann@example.com")
    assert profile["first_name"] == "Ann" and profile["lifetime_value"] == 50.0
    assert [e["metric"] for e in profile["events"]] == ["Gift Card Delivered"]

    [mail] = sandbox(twin, "outbox")
    assert mail["to"] == "ann@example.com" and mail["metric"] == "Gift Card Delivered"
    assert mail["subject"] == "Bob sent you a 50.00 USD gift card"
    assert "Your gift card code: ABCD2345EFGH6789" in mail["body"]
    assert "Hello Ann," in mail["body"] and "Message: Happy birthday" in mail["body"]
    assert mail["unique_id"] == "gc-delivered:1" and mail["profile"] == profile["id"]
    assert mail["properties"]["Code"] == "ABCD2345EFGH6789"
    assert {"id", "time", "metric", "to", "subject", "body", "unique_id", "properties", "profile"} <= set(mail)

    # the metric exists and the SDK can read it (and the account, for a `doctor`)
    metrics = k.Metrics.get_metrics()
    assert [m.attributes.name for m in metrics.data] == ["Gift Card Delivered"]
    account = k.Accounts.get_accounts()
    assert account.data[0].attributes.contact_information.default_sender_email


def test_unique_id_deduplicated_per_profile_and_metric(twin):
    k = client(twin)
    props = {"Code": "X" * 16}
    k.Events.create_event(event_body(properties=props, unique_id="u-1"))
    k.Events.create_event(event_body(properties=props, unique_id="u-1"))          # duplicate: 202, dropped
    k.Events.create_event(event_body(metric="Gift Card Issued", unique_id="u-1"))  # other metric: kept
    k.Events.create_event(event_body(email="bob@example.com", properties=props, unique_id="u-1"))  # other profile

    assert [r["status"] for r in twin.requests("events.create")] == [202] * 4
    events = sandbox(twin, "events")
    assert [e["dropped"] for e in events] == [False, True, False, False]
    assert events[1]["duplicate_of"] == events[0]["id"]
    assert len(sandbox(twin, "events", dropped="false")) == 3
    assert [m["to"] for m in sandbox(twin, "outbox")] == ["ann@example.com", "bob@example.com"]


def test_events_without_unique_id_collapse_within_one_second(twin):
    k = client(twin)
    k.Events.create_event(event_body(metric="Gift Card Redeemed", time_="2026-01-02T03:04:05+00:00"))
    k.Events.create_event(event_body(metric="Gift Card Redeemed", time_="2026-01-02T03:04:05Z"))
    k.Events.create_event(event_body(metric="Gift Card Redeemed", time_="2026-01-02T03:04:06Z"))
    assert [e["dropped"] for e in sandbox(twin, "events")] == [False, True, False]


def test_bulk_create_processes_and_deduplicates(twin):
    k = client(twin)
    k.Events.create_event(event_body(metric="Gift Card Issued", unique_id="i-1"))

    def entry(email, events):
        return {"type": "event-bulk-create", "attributes": {
            "profile": {"data": {"type": "profile", "attributes": {"email": email}}},
            "events": {"data": [{"type": "event", "attributes": {
                "properties": props, "unique_id": uid, "value": value,
                "metric": {"data": {"type": "metric", "attributes": {"name": metric}}}}}
                for metric, uid, props, value in events]}}}

    body = {"data": {"type": "event-bulk-create-job", "attributes": {"events-bulk-create": {"data": [
        entry("ann@example.com", [("Gift Card Issued", "i-1", {}, 10),              # dup of the single event
                                  ("Gift Card Purchase Confirmed", "p-1", {"Order": "#1001", "Cards": ["•••• •••• •••• 6789"]}, 25)]),
        entry("bob@example.com", [("Balance Check Answered", "b-1", {"Outcome": "Balance sent", "Card": "•••• •••• •••• 1111",
                                                                    "Balance": "5.00", "Currency": "USD"}, None)]),
    ]}}}}
    assert k.Events.bulk_create_events(body) is None
    assert [r["status"] for r in twin.requests("events.bulk")] == [202]

    events = sandbox(twin, "events")
    assert [(e["metric"], e["dropped"], e["source"]) for e in events] == [
        ("Gift Card Issued", False, "events.create"),
        ("Gift Card Issued", True, "events.bulk"),
        ("Gift Card Purchase Confirmed", False, "events.bulk"),
        ("Balance Check Answered", False, "events.bulk")]
    outbox = sandbox(twin, "outbox")
    assert [(m["metric"], m["to"]) for m in outbox] == [("Gift Card Purchase Confirmed", "ann@example.com"),
                                                         ("Balance Check Answered", "bob@example.com")]
    assert "Card: •••• •••• •••• 1111\nBalance: 5.00 USD" in outbox[1]["body"]
    [ann] = sandbox(twin, "profiles", email="ann@example.com")
    assert ann["lifetime_value"] == 25  # the dropped duplicate's 10 does not count

    # a unique_id repeated for one profile+metric inside a request: 400, nothing stored
    dup = {"data": {"type": "event-bulk-create-job", "attributes": {"events-bulk-create": {"data": [
        entry("cy@example.com", [("Gift Card Issued", "z", {}, None), ("Gift Card Issued", "z", {}, None)])]}}}}
    with pytest.raises(BadRequestException) as exc:
        k.Events.bulk_create_events(dup)
    assert_error(json.loads(exc.value.body), 400, "invalid")
    assert exc.value.data.errors[0].code == "invalid"
    assert not sandbox(twin, "profiles", email="cy@example.com")
    assert len(sandbox(twin, "events")) == 4


def test_bulk_job_body_option():
    with start_twin("klaviyo", bulk_job_body=True) as server:
        body = {"data": {"type": "event-bulk-create-job", "attributes": {"events-bulk-create": {"data": [
            {"type": "event-bulk-create", "attributes": {
                "profile": {"data": {"type": "profile", "attributes": {"email": "a@example.com"}}},
                "events": {"data": [{"type": "event", "attributes": {
                    "properties": {}, "metric": {"data": {"type": "metric", "attributes": {"name": "M"}}}}}]}}}]}}}}
        r = raw(server, "POST", "/api/event-bulk-create-jobs", body)
        assert r.status_code == 202
        assert r.json()["data"]["type"] == "event-bulk-create-job"
        assert client(server).Events.bulk_create_events(body) is None  # the SDK ignores the body


# -- profiles ----------------------------------------------------------------------------

def test_profile_create_duplicate_update_import_and_list(twin):
    k = client(twin)
    created = k.Profiles.create_profile({"data": {"type": "profile", "attributes": {
        "email": "ann@example.com", "first_name": "Ann", "properties": {"tier": "gold"}}}})
    pid = created.data.id
    assert len(pid) == 26 and created.data.attributes.email == "ann@example.com"
    assert created.data.links.var_self.endswith(f"/api/profiles/{pid}/")

    with pytest.raises(ApiException) as exc:
        k.Profiles.create_profile({"data": {"type": "profile", "attributes": {"email": "ann@example.com"}}})
    assert exc.value.status == 409
    err = assert_error(json.loads(exc.value.body), 409, "duplicate_profile", pointer="/data/attributes")
    assert err["meta"] == {"duplicate_profile_id": pid}
    assert err["title"] == "Conflict." and err["detail"] == "A profile already exists with one of these identifiers."

    updated = k.Profiles.update_profile(pid, {"data": {"type": "profile", "id": pid, "attributes": {
        "last_name": "Lee", "first_name": None, "properties": {"cards": 1}},
        "meta": {"patch_properties": {"unset": "tier"}}}})
    attrs = updated.data.attributes
    assert (attrs.first_name, attrs.last_name, attrs.properties) == (None, "Lee", {"cards": 1})

    with pytest.raises(NotFoundException) as exc:
        k.Profiles.update_profile("01JNOSUCHPROFILE0000000000", {"data": {
            "type": "profile", "id": "01JNOSUCHPROFILE0000000000", "attributes": {"first_name": "X"}}})
    assert_error(json.loads(exc.value.body), 404, "not_found")

    profiles = k.Profiles
    resp = profiles.create_or_update_profile_with_http_info(
        {"data": {"type": "profile", "attributes": {"email": "ann@example.com", "title": "Buyer"}}})
    assert resp.status_code == 200 and resp.data.data.id == pid and resp.data.data.attributes.title == "Buyer"
    resp = profiles.create_or_update_profile_with_http_info(
        {"data": {"type": "profile", "attributes": {"email": "bob@example.com", "phone_number": "+15005550006"}}})
    assert resp.status_code == 201 and resp.data.data.id != pid

    found = k.Profiles.get_profiles(filter='equals(email,"ANN@example.com")')
    assert [p.id for p in found.data] == [pid]
    both = k.Profiles.get_profiles(filter='any(email,["ann@example.com","bob@example.com"])', page_size=1)
    assert len(both.data) == 1 and both.links.next
    assert k.Profiles.get_profile(pid).data.attributes.last_name == "Lee"

    # an email that belongs to another profile cannot be moved onto this one
    with pytest.raises(ApiException) as exc:
        k.Profiles.update_profile(pid, {"data": {"type": "profile", "id": pid,
                                                 "attributes": {"email": "bob@example.com"}}})
    assert exc.value.status == 409


def test_events_update_profiles_and_patch_properties(twin):
    k = client(twin)
    body = event_body(metric="Gift Card Issued", unique_id="i-9", first_name="Ann", properties={})
    body["data"]["attributes"]["profile"]["data"]["attributes"]["properties"] = {"cards": 1}
    body["data"]["attributes"]["profile"]["data"]["meta"] = {"patch_properties": {"append": {"ids": "gid://1"}}}
    k.Events.create_event(body)
    [p] = k.Profiles.get_profiles(filter='equals(email,"ann@example.com")').data
    assert p.attributes.properties == {"cards": 1, "ids": ["gid://1"]}
    assert p.attributes.last_event_date is not None


# -- errors ------------------------------------------------------------------------------

def test_validation_errors_are_jsonapi(twin):
    missing = event_body()
    del missing["data"]["attributes"]["properties"]
    r = raw(twin, "POST", "/api/events", missing)
    assert r.status_code == 400 and r.headers["Content-Type"] == "application/vnd.api+json"
    err = assert_error(r.json(), 400, "invalid", pointer="/data/attributes/properties")
    assert err["title"] == "Invalid input."

    unknown = event_body()
    unknown["data"]["attributes"]["valu"] = 5
    assert_error(raw(twin, "POST", "/api/events", unknown).json(), 400, "invalid", pointer="/data/attributes/valu")

    wrong_type = event_body()
    wrong_type["data"]["type"] = "events"
    assert_error(raw(twin, "POST", "/api/events", wrong_type).json(), 400, "invalid", pointer="/data/type")

    no_ident = event_body(email=None)
    del no_ident["data"]["attributes"]["profile"]["data"]["attributes"]["email"]
    assert_error(raw(twin, "POST", "/api/events", no_ident).json(), 400, "invalid",
                 pointer="/data/attributes/profile/data/attributes")

    for bad in (b"{not json", b"", b"NaN", b"[]"):
        r = raw(twin, "POST", "/api/events", data=bad)
        assert r.status_code == 400
        assert_error(r.json(), 400, "invalid")

    r = raw(twin, "POST", "/api/events", event_body(), content_type="text/plain")
    assert_error(r.json(), 415, "unsupported_media_type")
    r = raw(twin, "DELETE", "/api/events")
    assert_error(r.json(), 405, "method_not_allowed")
    r = raw(twin, "GET", "/api/nothing-here")
    assert_error(r.json(), 404, "not_found")
    r = raw(twin, "GET", "/api/profiles?filter=equals(city,%22x%22)")
    assert_error(r.json(), 400, "invalid", parameter="filter")
    assert not sandbox(twin, "events")

    # through the SDK: a non-E.164 phone passes the SDK's own checks and is refused by the twin
    k = client(twin)
    with pytest.raises(BadRequestException) as exc:
        k.Events.create_event(event_body(phone_number="555-1234"))
    err = exc.value.data.errors[0]
    assert err.code == "invalid" and err.source.pointer == "/data/attributes/profile/data/attributes/phone_number"
    with pytest.raises(BadRequestException) as exc:
        k.Events.create_event(event_body(time_="1989-12-31T00:00:00+00:00"))
    assert exc.value.data.errors[0].source.pointer == "/data/attributes/time"


def test_auth_key_scope_and_revision():
    with start_twin("klaviyo", api_key=KEY, scopes=["events:write", "profiles:read"]) as server:
        with pytest.raises(UnauthorizedException) as exc:
            client(server, key="pk_wrong").Events.create_event(event_body())
        assert_error(json.loads(exc.value.body), 401, "authentication_failed")
        r = raw(server, "POST", "/api/events", event_body(), key=None)
        assert_error(r.json(), 401, "not_authenticated")

        k = client(server)
        k.Events.create_event(event_body())
        with pytest.raises(ForbiddenException) as exc:
            k.Metrics.get_metrics()
        assert_error(json.loads(exc.value.body), 403, "permission_denied")

        assert_error(raw(server, "POST", "/api/events", event_body(), revision=None).json(),
                     400, "invalid", parameter="revision")
        assert_error(raw(server, "POST", "/api/events", event_body(), revision="yesterday").json(),
                     400, "invalid", parameter="revision")
        assert raw(server, "POST", "/api/events", event_body(unique_id="pre"), revision="2026-10-15.pre").status_code == 202

        old = client(server)
        old.api_client.default_headers["revision"] = "2023-02-22"  # documented global override (§1.3)
        with pytest.raises(NotFoundException) as exc:
            old.Events.create_event(event_body())
        err = assert_error(json.loads(exc.value.body), 404, "not_found")
        assert err["detail"] == "No valid revisions found for method"

    # any pk_ key is accepted by default; a public key is not
    with start_twin("klaviyo") as server:
        client(server, key="pk_anything").Events.create_event(event_body())
        with pytest.raises(UnauthorizedException):
            client(server, key="AbC123").Events.create_event(event_body())


# -- rate limits -------------------------------------------------------------------------

def test_rate_limit_429_retry_after_and_sdk_retry():
    with start_twin("klaviyo", tiers={"events.create": [1, 100], "accounts.list": "XS"}) as server:
        one_shot = client(server, max_retries=1)
        r = raw(server, "POST", "/api/events", event_body(unique_id="a"))
        assert r.status_code == 202
        assert r.headers["RateLimit-Limit"] == "100" and r.headers["RateLimit-Remaining"] == "99"
        with pytest.raises(ApiException) as exc:
            one_shot.Events.create_event(event_body(unique_id="b"))
        e = exc.value
        assert e.status == 429
        assert e.headers["Retry-After"] == str(int(e.headers["Retry-After"])) and int(e.headers["Retry-After"]) >= 1
        err = assert_error(json.loads(e.body), 429, "throttled", pointer="/data")
        assert err["title"] == "Request was throttled."
        assert err["detail"].startswith("Request was throttled. Expected available in ")

        # the SDK retries a 429 after Retry-After and gets through (total attempts = max_retries)
        time.sleep(1.05)
        retrying = client(server, max_retries=4, max_delay=1)
        start = time.monotonic()
        retrying.Events.create_event(event_body(unique_id="c"))
        retrying.Events.create_event(event_body(unique_id="d"))
        assert time.monotonic() - start >= 0.9
        statuses = [r["status"] for r in server.requests("events.create")]
        assert statuses[-1] == 202 and 429 in statuses[2:]
        assert [e["unique_id"] for e in sandbox(server, "events")] == ["a", "c", "d"]


# -- faults ------------------------------------------------------------------------------

def test_fault_503_is_retried_by_sdk(twin):
    twin.inject(kind="status", status=503, route="events.create", count=1)
    client(twin, max_retries=3, max_delay=1).Events.create_event(event_body(unique_id="f-1"))
    assert [r["status"] for r in twin.requests("events.create")] == [503, 202]
    assert len(sandbox(twin, "events")) == 1


def test_fault_after_effect_then_resend_is_deduplicated(twin):
    twin.inject(kind="status", status=500, route="events.create", when="after", count=1)
    k = client(twin, max_retries=3)
    body = event_body(properties={"Code": "ABCD2345EFGH6789"}, unique_id="gc-delivered:77")
    with pytest.raises(ServiceException) as exc:  # 500 is not retried by the SDK
        k.Events.create_event(body)
    assert exc.value.status == 500
    assert_error(json.loads(exc.value.body), 500, "error")
    assert len(sandbox(twin, "events")) == 1 and len(sandbox(twin, "outbox")) == 1  # the effect happened

    k.Events.create_event(body)  # the daemon resends with the same unique_id
    events = sandbox(twin, "events")
    assert [e["dropped"] for e in events] == [False, True]
    assert len(sandbox(twin, "outbox")) == 1  # one email, not two


def test_fault_reset_and_hang(twin):
    twin.inject(kind="reset", route="events.create", count=1)
    k = client(twin)
    with pytest.raises(urllib3.exceptions.HTTPError):
        k.Events.create_event(event_body(unique_id="r-1"))
    assert not sandbox(twin, "events")

    twin.inject(kind="hang", route="profiles.create", when="after", delay=2, count=1)
    with pytest.raises(urllib3.exceptions.HTTPError):
        k.Profiles.create_profile({"data": {"type": "profile", "attributes": {"email": "h@example.com"}}},
                                  _request_timeout=(1, 0.3))
    assert sandbox(twin, "profiles", email="h@example.com")  # applied although the client timed out
    k.Events.create_event(event_body(unique_id="r-1"))
    assert len(sandbox(twin, "events")) == 1


# -- outbox, seed, state -----------------------------------------------------------------

def test_outbox_templates_crm_only_unknown_and_backfill():
    seed = {"templates": {"Card Expiring": {"email": True, "subject": "{{ event.Last4 }} expires",
                                            "body": "Hi {{ person.first_name|default:'there' }}: {{ event|lookup:'Expires On' }}"}},
            "profiles": [{"email": "ann@example.com", "first_name": "Ann", "properties": {"vip": True}}]}
    with start_twin("klaviyo", seed=seed) as server:
        k = client(server)
        k.Events.create_event(event_body(metric="Gift Card Issued", unique_id="1"))          # CRM only
        k.Events.create_event(event_body(metric="Something Else", unique_id="2"))            # no template
        k.Events.create_event(event_body(metric="Card Expiring", unique_id="3",
                                         properties={"Last4": "4321", "Expires On": "2027-01-01"}))
        back = event_body(metric="Gift Card Delivered", unique_id="4", properties={"Code": "Q" * 16})
        back["data"]["attributes"]["backfill"] = True
        k.Events.create_event(back)
        k.Events.create_event(event_body(metric="giftsync Alert", email="admin@example.com", unique_id="5",
                                         properties={"Subject": "Lease lost", "Details": "Host h1", "Source": "lease"}))

        outbox = sandbox(server, "outbox")
        assert [(m["metric"], m["subject"]) for m in outbox] == [
            ("Card Expiring", "4321 expires"), ("giftsync Alert", "[giftsync] Lease lost")]
        assert outbox[0]["body"] == "Hi Ann: 2027-01-01"
        assert "Host h1" in outbox[1]["body"] and "Source: lease" in outbox[1]["body"]
        statuses = {e["metric"]: e["outbox_status"] for e in sandbox(server, "events")}
        assert statuses == {"Gift Card Issued": "metric sends no email", "Something Else": "no template for this metric",
                            "Card Expiring": "sent", "Gift Card Delivered": "backfill: flows not triggered",
                            "giftsync Alert": "sent"}
        assert sandbox(server, "outbox", to="ANN@example.com")[0]["metric"] == "Card Expiring"
        requests.delete(f"{server.url}/__sandbox/outbox", timeout=5)
        assert sandbox(server, "outbox") == []

    with start_twin("klaviyo", outbox_unknown_metrics=True) as server:
        client(server).Events.create_event(event_body(metric="Something Else", properties={"A": 1, "B": "two"}))
        [mail] = sandbox(server, "outbox")
        assert mail["subject"] == "Something Else" and "A: 1\nB: two" in mail["body"]


def test_state_file_survives_restart(tmp_path):
    state = tmp_path / "klaviyo.json"
    seed = {"templates": {"Custom": {"email": True, "subject": "custom {{ event.N }}", "body": "b"}}}
    server = start_twin("klaviyo", state=state, seed=seed)
    k = client(server)
    k.Events.create_event(event_body(metric="Custom", unique_id="s-1", properties={"N": 1}, value=12.5))
    pid = k.Profiles.create_profile({"data": {"type": "profile", "attributes": {"email": "z@example.com"}}}).data.id
    server.stop()

    server = start_twin("klaviyo", state=state, seed=seed)
    try:
        k = client(server)
        assert k.Profiles.get_profile(pid).data.attributes.email == "z@example.com"
        k.Events.create_event(event_body(metric="Custom", unique_id="s-1", properties={"N": 1}))
        k.Events.create_event(event_body(metric="Custom", unique_id="s-2", properties={"N": 2}))
        assert [e["dropped"] for e in sandbox(server, "events")] == [False, True, False]
        assert [m["subject"] for m in sandbox(server, "outbox")] == ["custom 1", "custom 2"]
        assert sandbox(server, "profiles", email="ann@example.com")[0]["lifetime_value"] == 12.5
        assert [m.attributes.name for m in k.Metrics.get_metrics().data] == ["Custom"]
        requests.post(f"{server.url}/__sandbox/reset", timeout=5)
        assert sandbox(server, "events") == [] and sandbox(server, "profiles") == []
    finally:
        server.stop()


def test_serve_command_line(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "giftsync.sandbox", "serve", "klaviyo", "--port", "0",
                             "--option", "rate_limit=false"], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().split()
        assert line[0] == "ready"
        url = line[1]
        KlaviyoAPI(KEY, test_host=url).Events.create_event(event_body(unique_id="cli"))
        assert len(requests.get(url + "/__sandbox/events", timeout=5).json()["events"]) == 1
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_documented_seed_format():
    seed = {
        "account": {"id": "Sbx6Kq", "organization_name": "Example Gifts",
                    "default_sender_email": "cards@example.com", "preferred_currency": "USD"},
        "templates": {"Card Expiring": {"email": True, "subject": "s", "body": "b"}},
        "metrics": ["Gift Card Issued", {"name": "Balance Check Answered", "id": "AbC123"}],
        "profiles": [{"id": "01JSEEDPROFILE000000000000", "email": "store-main@example.com",
                      "first_name": "Main", "organization": "Main Street store", "properties": {"store": "main"}}],
        "events": [{"metric": "Gift Card Issued", "profile": {"email": "ann@example.com"},
                    "properties": {"Last4": "1234"}, "value": 25, "unique_id": "seed-1",
                    "time": "2026-01-01T10:00:00Z"}],
    }
    original = json.dumps(seed)
    with start_twin("klaviyo", seed=seed) as server:
        k = client(server)
        assert k.Profiles.get_profile("01JSEEDPROFILE000000000000").data.attributes.organization == "Main Street store"
        assert {m.id for m in k.Metrics.get_metrics().data} >= {"AbC123"}
        acc = k.Accounts.get_accounts().data[0].attributes
        assert acc.contact_information.organization_name == "Example Gifts"
        [ann] = sandbox(server, "profiles", email="ann@example.com")
        assert ann["lifetime_value"] == 25 and sandbox(server, "outbox") == []
        k.Events.create_event(event_body(metric="Gift Card Issued", unique_id="seed-1"))
        assert sandbox(server, "events")[-1]["dropped"] is True
    assert json.dumps(seed) == original  # the seed is not modified
    with pytest.raises(ValueError):
        start_twin("klaviyo", seed={"profiles": [{"email": "x@example.com", "phone_number": "123"}]})
    with pytest.raises(ValueError):
        start_twin("klaviyo", seed={"templates": {"Bad": {"subject": "{{ event.X|nosuch }}"}}})
