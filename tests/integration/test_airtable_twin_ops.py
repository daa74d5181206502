"""The Airtable twin's operations: throttling, faults, state across restarts, reset, the CLI."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import requests
from pyairtable import Api, retry_strategy

from giftsync.sandbox import start_twin

BASE = "appOpsBase0000001"
OTHER = "appOpsOther000001"


def seed() -> dict:
    table = {"name": "Things", "fields": [{"name": "Name", "type": "singleLineText"},
                                          {"name": "Count", "type": "number", "options": {"precision": 0}}],
             "records": [{"id": "recSeeded00000001", "fields": {"Name": "seeded", "Count": 1}}]}
    return {"bases": [{"id": BASE, "name": "ops", "tables": [table]},
                      {"id": OTHER, "name": "other", "tables": [dict(table, records=[])]}]}


def make_api(url: str, **kw) -> Api:
    kw.setdefault("retry_strategy", retry_strategy(read=0))
    return Api("pat-any", endpoint_url=url, timeout=kw.pop("timeout", (2, 5)), **kw)


@pytest.fixture
def twin():
    server = start_twin("airtable", seed=seed(), rate_limit=False)
    yield server
    server.stop()


# -- throttling ------------------------------------------------------------------------------
def test_rate_limit_429_then_retry_error():
    server = start_twin("airtable", seed=seed(), penalty_seconds=5.0)
    try:
        api = make_api(server.url, retry_strategy=retry_strategy(total=2, backoff_factor=0.01))
        things = api.table(BASE, "Things")
        for _ in range(5):
            things.get("recSeeded00000001")
        with pytest.raises(requests.exceptions.RetryError, match="too many 429"):
            things.get("recSeeded00000001")
        log = server.requests("records.get")
        assert [e["status"] for e in log] == [200] * 5 + [429] * 3
        raw = requests.get(f"{server.url}/v0/{BASE}/Things", headers={"Authorization": "Bearer x"})
        assert (raw.status_code, raw.json()) == (429, {"error": {
            "type": "RATE_LIMIT_REACHED", "message": "Rate limit exceeded. Please try again later"}})
        assert "Retry-After" not in raw.headers
        # the limit is per base
        assert api.table(OTHER, "Things").all() == []
    finally:
        server.stop()


def test_penalty_ends_and_default_retries_get_through():
    server = start_twin("airtable", seed=seed(), penalty_seconds=0.3, retry_after=None)
    try:
        api = make_api(server.url)            # pyairtable's retries on 429 (0.2, 0.4 s …)
        things = api.table(BASE, "Things")
        t0 = time.monotonic()
        for _ in range(8):
            things.get("recSeeded00000001")
        assert time.monotonic() - t0 < 3
        statuses = [e["status"] for e in server.requests("records.get")]
        assert statuses.count(429) >= 1 and statuses.count(200) == 8
    finally:
        server.stop()


def test_retry_after_header_when_configured():
    server = start_twin("airtable", seed=seed(), penalty_seconds=0.2, retry_after=1)
    try:
        h = {"Authorization": "Bearer x"}
        codes = [requests.get(f"{server.url}/v0/{BASE}/Things", headers=h) for _ in range(6)]
        assert [r.status_code for r in codes] == [200] * 5 + [429]
        assert codes[-1].headers["Retry-After"] == "1"
    finally:
        server.stop()


# -- faults ---------------------------------------------------------------------------------
def test_injected_503_then_recovers(twin):
    things = make_api(twin.url).table(BASE, "Things")
    twin.inject(kind="status", status=503, route="records.list", count=2)
    for _ in range(2):
        with pytest.raises(requests.HTTPError) as exc:
            things.all()
        assert exc.value.response.status_code == 503
        assert exc.value.response.json()["error"]["type"] == "RETRIABLE_ERROR"
    assert len(things.all()) == 1
    faults = [e["fault"] for e in twin.requests("records.list")]
    assert faults[:2] == [{"kind": "status", "when": "before", "status": 503}] * 2 and faults[2] is None


def test_connection_reset(twin):
    things = make_api(twin.url, retry_strategy=None).table(BASE, "Things")
    twin.inject(kind="reset", route="records.get", count=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        things.get("recSeeded00000001")
    assert things.get("recSeeded00000001")["fields"]["Name"] == "seeded"


def test_hang_past_client_timeout(twin):
    things = make_api(twin.url, timeout=(1, 0.3)).table(BASE, "Things")
    twin.inject(kind="hang", delay=1.0, route="records.list", count=1)
    t0 = time.monotonic()
    with pytest.raises((requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
        things.all()
    assert time.monotonic() - t0 < 1.0
    assert len(things.all()) == 1


def test_fault_after_create_applies_the_write(twin):
    things = make_api(twin.url).table(BASE, "Things")
    twin.inject(kind="status", status=500, route="records.create", when="after", count=1)
    with pytest.raises(requests.HTTPError) as exc:
        things.create({"Name": "ghost"})
    assert exc.value.response.status_code == 500
    assert [r["fields"]["Name"] for r in things.all(formula="{Name}='ghost'")] == ["ghost"]
    entry = twin.requests("records.create")[0]
    assert entry["fault"] == {"kind": "status", "when": "after", "status": 500}
    assert json.loads(entry["body"]) == {"fields": {"Name": "ghost"}, "typecast": False,
                                         "returnFieldsByFieldId": False}


def test_fault_rules_over_http_and_upsert_route_key(twin):
    things = make_api(twin.url).table(BASE, "Things")
    r = requests.post(twin.url + "/__sandbox/faults",
                      json={"rules": [{"kind": "status", "status": 429, "route": "records.upsert", "count": 1}]})
    assert r.status_code == 200
    things.batch_update([{"id": "recSeeded00000001", "fields": {"Count": 2}}])      # records.update: untouched
    res = things.batch_upsert([{"fields": {"Name": "seeded", "Count": 3}}], key_fields=["Name"])
    assert res["updatedRecords"] == ["recSeeded00000001"]
    keys = [(e["route"], e["status"]) for e in twin.requests() if e["route"].startswith("records.")]
    assert keys == [("records.update", 200), ("records.upsert", 429), ("records.upsert", 200)]
    log = requests.get(twin.url + "/__sandbox/requests", params={"route": "records.upsert"}).json()["requests"]
    assert log[0]["headers"]["authorization"] == "***"


# -- state ----------------------------------------------------------------------------------
def test_state_file_keeps_data_across_restarts(tmp_path):
    state = tmp_path / "airtable.json"
    server = start_twin("airtable", seed=seed(), state=state, rate_limit=False)
    rec = make_api(server.url).table(BASE, "Things").create({"Name": "kept", "Count": 5})
    make_api(server.url).base(BASE).table("Things").create_field("Extra", "singleLineText")
    server.stop()
    server = start_twin("airtable", seed={"bases": []}, state=state, rate_limit=False)
    try:
        things = make_api(server.url).table(BASE, "Things")
        assert things.get(rec["id"]) == rec
        assert len(things.all()) == 2
        assert "Extra" in [f.name for f in make_api(server.url).base(BASE).schema().table("Things").fields]
        nxt = things.create({"Name": "after restart"})
        assert nxt["id"] != rec["id"]
        server.app.reset()                       # the seed is kept in the state file too
        assert [r["id"] for r in things.all()] == ["recSeeded00000001"]
    finally:
        server.stop()


def test_reset_returns_to_the_seed(twin):
    things = make_api(twin.url).table(BASE, "Things")
    things.create({"Name": "temp"})
    things.delete("recSeeded00000001")
    assert requests.post(twin.url + "/__sandbox/reset").json() == {"ok": True}
    assert [r["id"] for r in things.all()] == ["recSeeded00000001"]


def test_cli_serve_with_seed_file(tmp_path):
    seed_file = tmp_path / "seed.json"
    seed_file.write_text(json.dumps(seed()))
    proc = subprocess.Popen([sys.executable, "-m", "giftsync.sandbox", "serve", "airtable", "--seed", str(seed_file),
                             "--option", "token=tok1", "--option", "rate_limit=false"],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("ready http://127.0.0.1:")
        url = line.split(" ", 1)[1]
        assert Api("tok1", endpoint_url=url, timeout=(2, 5)).table(BASE, "Things").first()["id"] == "recSeeded00000001"
        with pytest.raises(requests.HTTPError):
            Api("tok2", endpoint_url=url, timeout=(2, 5)).table(BASE, "Things").first()
    finally:
        proc.terminate()
        proc.wait(5)


def test_threads_hammering_the_twin(twin):
    import threading
    things = make_api(twin.url).table(BASE, "Things")
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(5):
                things.batch_create([{"Name": f"t{n}-{i}-{j}"} for j in range(3)])
                things.all(formula=f"FIND('t{n}-', {{Name}})")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(things.all()) == 1 + 10 * 5 * 3
