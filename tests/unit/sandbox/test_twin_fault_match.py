"""Fault rules narrowed by ``match``; the request log's credential fingerprint and call counter."""
from __future__ import annotations

import requests

from giftsync.sandbox import start_twin
from giftsync.sandbox.twin.faults import FaultPlan, FaultRule


def test_match_narrows_a_rule_to_calls_whose_text_matches():
    plan = FaultPlan(seed=1)
    plan.add({"kind": "status", "status": 500, "route": "records.update", "match": r"/Store Redemptions\n",
              "count": 1})
    assert plan.decide("records.update", "before", "PATCH /v0/app/Status\n{}").fault is None
    assert plan.decide("records.update", "before", None).fault is None
    assert plan.decide("records.update", "before", "PATCH /v0/app/Store Redemptions\n{}").fault is not None
    assert plan.decide("records.update", "before", "PATCH /v0/app/Store Redemptions\n{}").fault is None  # count


def test_rules_without_match_are_listed_as_before():
    assert "match" not in FaultRule(kind="reset").to_dict()
    assert FaultRule.from_dict({"kind": "hang", "match": "x"}).to_dict()["match"] == "x"


def test_after_fault_with_match_over_http_and_client_fingerprint():
    twin = start_twin("airtable", rate_limit=False, token=["patA.0123456789", "patB.0123456789"])
    try:
        base = twin.app.store.add_base("b")
        twin.app.store.add_table(base, "Status")
        twin.app.store.add_field(base, base["tables"][0], {"name": "Name", "type": "singleLineText"})
        url = f"{twin.url}/v0/{base['id']}/Status"
        r = requests.post(f"{twin.url}/__sandbox/faults", json={"rules": [
            {"kind": "status", "status": 502, "when": "after", "route": "records.create", "match": "lease"}]})
        assert r.status_code == 200
        ok = requests.post(url, json={"fields": {"Name": "cursor"}}, headers={"Authorization": "Bearer patA.0123456789"})
        assert ok.status_code == 200
        bad = requests.post(url, json={"fields": {"Name": "lease"}}, headers={"Authorization": "Bearer patB.0123456789"})
        assert bad.status_code == 502
        names = sorted(rec["fields"]["Name"] for rec in requests.get(
            url, headers={"Authorization": "Bearer patA.0123456789"}).json()["records"])
        assert names == ["cursor", "lease"]          # applied, then the client saw the 502
        log = twin.requests()
        clients = {e["client"] for e in log}
        assert len(clients) == 2 and all(len(c) == 8 for c in clients)
        assert all("patA" not in str(e) and "patB" not in str(e) for e in log)
        faults = requests.get(f"{twin.url}/__sandbox/faults").json()
        assert faults["calls"] == 3 and faults["injected"] == {"status:502/after": 1}
    finally:
        twin.stop()
