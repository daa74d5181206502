"""The machinery shared by the three twins: routing, faults before/after the effect,
the request log, state kept across restarts, and the control endpoints."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests

from giftsync.sandbox.twin import FaultPlan, FaultRule, Route, TwinApp, TwinServer, json_response


class CounterApp(TwinApp):
    """A tiny twin: POST /count increments, GET /count reads; secret token required."""
    name = "counter"

    def __init__(self) -> None:
        super().__init__()
        self.value = 0

    def routes(self):
        return [Route("POST", r"/count", self.bump, "count.bump"),
                Route("GET", r"/count", self.read, "count.read"),
                Route("GET", r"/items/(?P<item>[^/]+)", self.item, "items.get")]

    def gate(self, req):
        if req.header("authorization") != "Bearer s3cret":
            return json_response(401, {"error": "AUTH"})
        return None

    def bump(self, req):
        self.value += 1
        self.dirty = True
        return json_response(200, {"value": self.value})

    def read(self, req):
        return json_response(200, {"value": self.value})

    def item(self, req):
        return json_response(200, {"item": req.params["item"]})

    def fault_response(self, status, req):
        return json_response(status, {"error": f"injected {status}"})

    def snapshot(self):
        return {"value": self.value}

    def restore(self, data):
        self.value = data["value"]

    def reset(self):
        self.value = 0


AUTH = {"Authorization": "Bearer s3cret"}


@pytest.fixture
def twin():
    server = TwinServer(CounterApp(), seed=7)
    server.start()
    yield server
    server.stop()


def test_routes_params_and_unknown_routes(twin):
    assert requests.get(f"{twin.url}/items/a%20b", headers=AUTH, timeout=5).json() == {"item": "a b"}
    r = requests.get(f"{twin.url}/nope", headers=AUTH, timeout=5)
    assert r.status_code == 404 and r.json() == {"error": "NOT_FOUND"}
    assert requests.get(f"{twin.url}/count", timeout=5).status_code == 401


def test_status_fault_before_effect_changes_nothing(twin):
    twin.inject(kind="status", status=503, route="count.bump", count=1)
    r = requests.post(f"{twin.url}/count", headers=AUTH, timeout=5)
    assert r.status_code == 503 and r.json() == {"error": "injected 503"}
    assert requests.get(f"{twin.url}/count", headers=AUTH, timeout=5).json() == {"value": 0}
    assert requests.post(f"{twin.url}/count", headers=AUTH, timeout=5).json() == {"value": 1}


@pytest.mark.parametrize("kind", ["reset", "hang", "status"])
def test_fault_after_effect_applies_then_fails(twin, kind):
    twin.inject(kind=kind, route="count.bump", when="after", count=1, delay=1.0, status=502)
    with pytest.raises(requests.RequestException) if kind != "status" else _no_raise():
        r = requests.post(f"{twin.url}/count", headers=AUTH, timeout=0.5)
        assert r.status_code == 502
    # the client saw a failure, yet the effect happened
    assert requests.get(f"{twin.url}/count", headers=AUTH, timeout=5).json() == {"value": 1}


class _no_raise:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_scripted_sequence_and_probability_are_reproducible():
    def run(seed):
        plan = FaultPlan(seed)
        plan.add(FaultRule(kind="status", status=429, probability=0.3))
        return [plan.decide("x", "before").fault is not None for _ in range(50)]
    assert run(1) == run(1)
    assert 5 < sum(run(1)) < 30
    plan = FaultPlan()
    plan.add({"kind": "reset", "route": "giftCardDebit", "when": "after", "count": 2})
    fired = [plan.decide("giftCardDebit", "after").fault is not None for _ in range(4)]
    assert fired == [True, True, False, False]
    assert plan.decide("other", "after").fault is None
    assert plan.counters() == {"reset/after": 2}


def test_bad_rules_are_refused(twin):
    with pytest.raises(ValueError):
        FaultRule(kind="explode")
    r = requests.post(f"{twin.url}/__sandbox/faults", json={"rules": [{"kind": "status", "bogus": 1}]}, timeout=5)
    assert r.status_code == 400
    r = requests.post(f"{twin.url}/__sandbox/faults", data=b"{not json", timeout=5)
    assert r.status_code == 400


def test_latency_rule_delays_but_succeeds(twin):
    twin.inject(kind="latency", delay=0.2)
    r = requests.get(f"{twin.url}/count", headers=AUTH, timeout=5)
    assert r.status_code == 200
    assert r.elapsed.total_seconds() >= 0.2


def test_request_log_masks_secrets_and_records_faults(twin):
    twin.inject(kind="status", status=500, route="count.bump", count=1)
    requests.post(f"{twin.url}/count?x=1", headers=AUTH, json={"a": 1}, timeout=5)
    requests.post(f"{twin.url}/count", headers=AUTH, timeout=5)
    log = requests.get(f"{twin.url}/__sandbox/requests", timeout=5).json()["requests"]
    bumps = [e for e in log if e["route"] == "count.bump"]
    assert [e["status"] for e in bumps] == [500, 200]
    assert bumps[0]["fault"] == {"kind": "status", "when": "before", "status": 500}
    assert bumps[0]["query"] == {"x": ["1"]} and json.loads(bumps[0]["body"]) == {"a": 1}
    assert "s3cret" not in json.dumps(log)
    assert bumps[0]["headers"]["authorization"] == "***"
    requests.delete(f"{twin.url}/__sandbox/requests", timeout=5)
    assert twin.requests() == []


def test_control_endpoints_list_and_clear_faults(twin):
    requests.post(f"{twin.url}/__sandbox/faults", json={"seed": 3, "rules": [{"kind": "reset", "count": 1}]}, timeout=5)
    body = requests.get(f"{twin.url}/__sandbox/faults", timeout=5).json()
    assert body["seed"] == 3 and body["rules"][0]["kind"] == "reset"
    requests.delete(f"{twin.url}/__sandbox/faults", timeout=5)
    assert requests.get(f"{twin.url}/__sandbox/faults", timeout=5).json()["rules"] == []
    assert requests.get(f"{twin.url}/__sandbox/health", timeout=5).json() == {"ok": True, "twin": "counter"}


def test_state_survives_restart_and_reset(tmp_path):
    path = tmp_path / "state.json"
    server = TwinServer(CounterApp(), state_path=str(path))
    server.start()
    for _ in range(3):
        requests.post(f"{server.url}/count", headers=AUTH, timeout=5)
    server.stop()
    again = TwinServer(CounterApp(), state_path=str(path))
    url = again.start()
    try:
        assert requests.get(f"{url}/count", headers=AUTH, timeout=5).json() == {"value": 3}
        requests.post(f"{url}/__sandbox/reset", timeout=5)
        assert requests.get(f"{url}/count", headers=AUTH, timeout=5).json() == {"value": 0}
    finally:
        again.stop()
    assert json.loads(path.read_text()) == {"value": 0}


def test_fault_command_line_talks_to_a_running_twin(twin):
    out = subprocess.run([sys.executable, "-m", "giftsync.sandbox", "fault", twin.url, "--kind", "status",
                          "--status", "429", "--route", "count.read", "--count", "1"],
                         capture_output=True, text=True, timeout=30, check=True)
    assert "count.read" in out.stdout
    assert requests.get(f"{twin.url}/count", headers=AUTH, timeout=5).status_code == 429
    subprocess.run([sys.executable, "-m", "giftsync.sandbox", "fault", twin.url, "--clear"],
                   capture_output=True, timeout=30, check=True)
    assert twin.faults.rules() == []
