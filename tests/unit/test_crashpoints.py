"""The crash points are named in one place and the crash matrix covers all of them."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from giftsync import crashpoints
from giftsync.verify.scenarios import AFTER_FAULTS, scenario_for, unmapped_points

SRC = Path(crashpoints.__file__).resolve().parent


def _source() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in SRC.rglob("*.py")
                     if p.name != "crashpoints.py" and "verify" not in p.parts)


def test_every_registered_point_is_used_by_a_flow():
    text = _source()
    unused = [name for name in crashpoints.POINTS if f'"{name}"' not in text]
    assert unused == []


def test_every_reached_name_is_registered():
    text = _source()
    used = set(re.findall(r'reach\("([a-z_]+\.[a-z_]+)"\)', text))
    assert used - set(crashpoints.POINTS) == set()


def test_the_matrix_has_a_scenario_and_an_after_target_for_every_point():
    assert unmapped_points() == []
    assert set(AFTER_FAULTS) == set(crashpoints.POINTS)
    assert all(scenario_for(p) is not None for p in crashpoints.POINTS)


def test_unknown_point_is_refused():
    with pytest.raises(KeyError):
        crashpoints.reach("no.such.point")


def test_reach_does_nothing_without_the_setting(monkeypatch):
    monkeypatch.delenv("GIFTSYNC_CRASH_AT", raising=False)
    crashpoints.reach("redeem.debit")


def test_arm_asks_the_twin_for_an_after_fault_instead_of_killing(monkeypatch):
    from giftsync.sandbox import start_twin
    twin = start_twin("klaviyo", rate_limit=False)
    try:
        monkeypatch.setenv("GIFTSYNC_CRASH_AT", "redeem.email#2")
        monkeypatch.setenv("GIFTSYNC_CRASH_ARM", '{"url": "%s", "rule": {"kind": "hang", "route": "events.create", '
                                                 '"when": "after", "count": 1, "match": "Store Redemption"}}' % twin.url)
        monkeypatch.setattr(crashpoints, "_counts", {})
        crashpoints.reach("redeem.email")          # first time: not the one
        assert twin.faults.rules() == []
        crashpoints.reach("redeem.email")          # second: armed, and this process lives on
        rules = twin.faults.rules()
        assert len(rules) == 1 and rules[0]["when"] == "after" and rules[0]["match"] == "Store Redemption"
    finally:
        twin.stop()
