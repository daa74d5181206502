"""Redemptions in batches against the twins through the real adapters (pyairtable, gql,
klaviyo-api): the Airtable requests per redemption, counted from the Airtable twin's request log."""
from __future__ import annotations

from urllib.parse import quote

import pytest
import requests

from giftsync.bootstrap import build_app
from giftsync.domain.cards import CardKind, CardSource, MirrorCard
from giftsync.domain.money import Money

from .test_runtime_twins import BASE, STORE, settings, twins  # noqa: F401 — fixtures

pytestmark = pytest.mark.usefixtures("clean_giftsync_logging")

CODES = [f"BTCH{n:04d}QRST{n:04d}" for n in range(8)]


@pytest.fixture
def world(settings, twins):  # noqa: F811
    at, sh, _ = twins
    app = build_app(settings)
    hasher = app.hasher
    for code in CODES:   # cards in Shopify, mirrored in Airtable with their hash
        shop = app.ledger.create_card(code=code, amount=Money.of("50", "USD"), note="seed").card
        app.book.save_cards([MirrorCard(record_id=None, shopify_id=shop.id, last4=shop.last4, balance=shop.balance,
                                        code_hash=hasher.hash(code), initial_value=shop.balance,
                                        kind=CardKind.DIGITAL, source=CardSource.IMPORTED)])
    yield app, at
    app.close()


def _form(at, table: str, fields: dict) -> str:
    r = requests.post(f"{at.url}/__sandbox/airtable/forms/{BASE}/{quote(table)}",
                      json={"records": [{"fields": fields}], "typecast": True}, timeout=10)
    r.raise_for_status()
    return r.json()["records"][0]["id"]


def _records(at, table: str) -> dict[str, dict]:
    r = requests.get(f"{at.url}/__sandbox/airtable/records/{BASE}/{quote(table)}", params={"pageSize": 100},
                     timeout=10)
    r.raise_for_status()
    return {rec["id"]: rec["fields"] for rec in r.json()["records"]}


def test_a_poll_of_eight_redemptions_costs_at_most_one_request_each(world):
    app, at = world
    store = app.prong("store")
    [poll] = store.companions
    # the first run of the pending list (the seeded redemption) and the stores cache warm-up
    assert poll.run(lambda: True).errors == 0
    rids = [_form(at, "Store Redemptions", {"Store": [STORE], "Code": code.lower(), "Amount": 2.5})
            for code in CODES]
    rids += [_form(at, "Store Redemptions", {"Store": [STORE], "Code": "XX-1", "Amount": 1}),
             _form(at, "Store Redemptions", {"Store": [STORE], "Code": CODES[0], "Amount": 1000})]
    requests.delete(at.url + "/__sandbox/requests").raise_for_status()
    report = poll.run(lambda: True)
    assert report.redemptions == 10 and report.errors == 0
    forms = _records(at, "Store Redemptions")
    outcomes = [forms[r].get("Outcome") for r in rids]
    assert outcomes == ["Redeemed"] * 8 + ["Code format incorrect", "Insufficient balance"]
    assert all(forms[r].get("Notified") for r in rids)
    log = requests.get(at.url + "/__sandbox/requests").json()["requests"]
    api = [e for e in log if not e["path"].startswith("/__sandbox")]
    # list 1 + lookup 1 + claim 1 + receipts 1 + balances 1 + final (Done + Notified) 1
    assert len(api) <= 6, [(e["method"], e["path"]) for e in api]
    assert len(api) / len(rids) <= 1.0
    for code in CODES:
        assert app.ledger.find_by_code(code).balance.amount == 47.5
