"""SandboxWorld: the three twins seeded with one consistent demo world, in-process and as processes.

Consistency: every Gift Cards record's hash is the hash of a demo code whose Shopify card has
the record's Shopify ID, last 4 and balance. Credentials: the world's tokens work with the
real clients (pyairtable, gql, klaviyo-api, and giftsync's own adapters built from
``daemon_env()``), and wrong ones are refused.
"""
from __future__ import annotations

import time
from decimal import Decimal

import pytest
import requests

from giftsync.config import Settings
from giftsync.domain.codes import CodeHasher, normalise_code
from giftsync.sandbox.world import SandboxWorld

CARDS_QUERY = """
query Cards($q: String) {
  giftCards(first: 50, query: $q) {
    nodes { id lastCharacters enabled balance { amount currencyCode } initialValue { amount } }
  }
}"""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    # these tests read much faster than the daemon's 5 requests/s budget: no Airtable rate limit here
    with SandboxWorld(tmp_path_factory.mktemp("world"), processes=False,
                      airtable_options={"rate_limit": False}) as w:
        yield w


def shopify_cards(world, query=None) -> list[dict]:
    body = world.shopify_graphql(CARDS_QUERY, {"q": query})
    assert "errors" not in body, body
    return body["data"]["giftCards"]["nodes"]


def test_urls_and_settings(world):
    for url in (world.airtable_url, world.shopify_url, world.klaviyo_url):
        assert url.startswith("http://127.0.0.1:")
        assert requests.get(url + "/__sandbox/health", timeout=5).json()["ok"] is True
    env = world.daemon_env(interval=0.5)
    settings = Settings.from_mapping(env)          # every setting the daemon needs, valid
    assert settings.airtable_api_url == world.airtable_url
    assert settings.shopify_admin_url == world.shopify_url
    assert settings.klaviyo_api_url == world.klaviyo_url
    assert settings.store_interval == 0.5
    assert settings.code_secret.reveal() == world.code_secret
    assert all(isinstance(v, str) for v in env.values())
    # the lease is short enough for tests and consistent (config cross-checks passed above)
    assert settings.lease_seconds <= 15


def test_airtable_base_matches_schema(world):
    api = world.airtable_api()
    schema = api.base(world.base_id).schema()
    tables = {t.name: {f.name for f in t.fields} for t in schema.tables}
    for t in world.schema["tables"]:
        assert t["name"] in tables
        assert {f["name"] for f in t["fields"]} <= tables[t["name"]]
    stores = world.airtable_table("Stores").all()
    assert {r["fields"]["Name"] for r in stores} == {s.name for s in world.stores}
    assert all(r["fields"].get("Email") and r["fields"].get("Active") for r in stores)


def test_every_mirrored_card_matches_its_shopify_card(world):
    hasher = CodeHasher(world.code_secret.encode())
    by_hash = {hasher.hash(c.code): c for c in world.cards}
    records = world.airtable_table("Gift Cards").all()
    assert len(records) == len(world.mirrored_cards) >= 4
    shop = {c["id"]: c for c in shopify_cards(world)}
    for rec in records:
        f = rec["fields"]
        demo = by_hash.get(f["Code Hash"])
        assert demo is not None, f"no demo code hashes to the hash of {f['Card']}"
        assert f["Shopify ID"] == demo.shopify_id
        card = shop[f["Shopify ID"]]
        assert card["lastCharacters"].upper() == f["Last 4"] == normalise_code(demo.code)[-4:]
        assert Decimal(card["balance"]["amount"]) == Decimal(str(f["Balance"])) == demo.balance
        assert Decimal(card["initialValue"]["amount"]) == Decimal(str(f["Initial Value"]))
        assert card["enabled"] == (f["Status"] == "Active")
        assert f["Card"].endswith(f["Last 4"]) and demo.code not in str(f)   # no whole code in the base
        # the code a shop types finds exactly this card in Shopify too
        found = shopify_cards(world, demo.code.lower())
        assert [c["id"] for c in found] == [demo.shopify_id]


def test_ledger_starts_consistent(world):
    receipts = world.airtable_table("Receipts").all()
    by_card = {r["fields"]["Card"][0]: r["fields"] for r in receipts}
    for c in world.mirrored_cards:
        assert Decimal(str(by_card[c.record_id]["Balance After"])) == c.balance


def test_shopify_only_card_and_catalogue(world):
    unmirrored = [c for c in world.cards if not c.mirrored]
    assert unmirrored
    mirrored_ids = {r["fields"]["Shopify ID"] for r in world.airtable_table("Gift Cards").all()}
    for c in unmirrored:
        assert c.shopify_id not in mirrored_ids
        assert [x["id"] for x in shopify_cards(world, c.code.lower())] == [c.shopify_id]
    assert world.giftsync_skus and all(s.startswith("GS-") for s in world.giftsync_skus)
    assert world.daemon_env()["GIFTSYNC_GIFT_CARD_SKUS"] == ",".join(world.giftsync_skus)
    assert any(p.gift_card for p in world.catalogue)


def test_world_controls_buy_and_pay(world):
    ada = world.customers[0]
    card = world.card(3)                     # the $200 card
    order = world.pay_online(ada.email, card.code, "18.00", sku="MUG-01")
    assert "gift_card" in order["paymentGatewayNames"]
    node = [c for c in shopify_cards(world) if c["id"] == card.shopify_id][0]
    assert Decimal(node["balance"]["amount"]) == card.balance - Decimal("18.00")
    # put the world back as it was for the other tests
    world.adjust_balance(card.shopify_id, "18.00")
    assert Decimal(world.shopify_card(card.shopify_id)["balance"]) == card.balance


def test_real_clients_and_wrong_tokens(world):
    # pyairtable
    from pyairtable import Api
    assert len(world.airtable_table("Stores").all()) == len(world.stores)
    bad = Api("patWrongToken.0000000000", endpoint_url=world.airtable_url).table(world.base_id, "Stores")
    with pytest.raises(requests.HTTPError) as exc:
        bad.all()
    assert exc.value.response.status_code == 401
    # gql over requests
    from gql import Client, gql
    from gql.transport.requests import RequestsHTTPTransport
    transport = RequestsHTTPTransport(url=world.shopify_graphql_url,
                                      headers={"X-Shopify-Access-Token": world.shopify_access_token}, timeout=10)
    with Client(transport=transport) as session:
        result = session.execute(gql("{ giftCardsCount { count } }"))
    assert result["giftCardsCount"]["count"] == len(world.cards)
    r = requests.post(world.shopify_graphql_url, json={"query": "{ giftCardsCount { count } }"},
                      headers={"X-Shopify-Access-Token": "shpat_wrong_token_000"}, timeout=10)
    assert r.status_code == 401
    # klaviyo-api
    from klaviyo_api import KlaviyoAPI
    client = KlaviyoAPI(world.klaviyo_api_key, max_delay=1, max_retries=0, test_host=world.klaviyo_url)
    store = world.stores[0]
    client.Events.create_event({"data": {"type": "event", "attributes": {
        "properties": {"Outcome": "Redeemed", "Last4": "ABCD"},
        "metric": {"data": {"type": "metric", "attributes": {"name": "Store Redemption Processed"}}},
        "profile": {"data": {"type": "profile", "attributes": {"email": store.email}}},
        "unique_id": "sandbox-world-test-1"}}})
    mail = world.wait_for(lambda: world.outbox(to=store.email), timeout=5, what="the store's email")
    assert mail[-1]["metric"] == "Store Redemption Processed"
    r = requests.post(world.klaviyo_url + "/api/events", json={},
                      headers={"Authorization": "Klaviyo-API-Key pk_wrong_key_0000", "revision": "2026-10-15"},
                      timeout=10)
    assert r.status_code in (401, 403)


def test_giftsync_adapters_from_daemon_env(world):
    from giftsync.bootstrap import build_card_book, build_ledger
    settings = Settings.from_mapping(world.daemon_env())
    book = build_card_book(settings)
    ledger = build_ledger(settings)
    hasher = CodeHasher(world.code_secret.encode())
    try:
        for demo in world.mirrored_cards:
            mirror = book.card_by_hash(hasher.hash(demo.code))
            assert mirror is not None and mirror.shopify_id == demo.shopify_id
            card = ledger.get_card(demo.shopify_id)
            assert card is not None and card.balance.amount == mirror.balance.amount == demo.balance
            assert card.last4.upper() == mirror.last4 == demo.last4
    finally:
        for x in (book, ledger):
            close = getattr(x, "close", None)
            if close:
                close()


@pytest.mark.slow
def test_world_as_processes_survives_a_twin_crash(tmp_path):
    with SandboxWorld(tmp_path, processes=True) as world:
        pids = {n: world.twin(n).pid for n in ("airtable", "shopify", "klaviyo")}
        assert len(set(pids.values())) == 3
        url = world.shopify_url
        card = world.card(0)
        world.adjust_balance(card.shopify_id, "-10")
        world.airtable_table("Store Redemptions").create({"Code": "TEST", "Amount": 1})
        world.kill_twin("shopify")
        with pytest.raises(requests.RequestException):
            requests.get(url + "/__sandbox/health", timeout=2)
        assert world.restart_twin("shopify") == url                 # same address after the crash
        assert world.twin("shopify").pid != pids["shopify"]
        node = [c for c in shopify_cards(world) if c["id"] == card.shopify_id][0]
        assert Decimal(node["balance"]["amount"]) == card.balance - 10   # its state survived
        world.restart_twin("airtable")                               # a clean stop and start
        assert len(world.airtable_table("Store Redemptions").all()) == 1
        assert len(world.airtable_table("Gift Cards").all()) == len(world.mirrored_cards)
        all_pids = set(pids.values()) | {world.twin(n).pid for n in ("airtable", "shopify", "klaviyo")}
    for pid in all_pids:                  # stop() leaves no twin process behind
        with pytest.raises(ProcessLookupError):
            _wait_gone(pid)


def _wait_gone(pid: int) -> None:
    import os
    deadline = time.time() + 5
    while time.time() < deadline:
        os.kill(pid, 0)          # raises once the process is gone
        time.sleep(0.05)
