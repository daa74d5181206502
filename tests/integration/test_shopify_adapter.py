"""ShopifyGiftCardLedger through the real gql client against the Shopify twin."""
from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
import requests

from giftsync.adapters.shopify import ShopifyGiftCardLedger
from giftsync.domain.money import Money
from giftsync.errors import AmbiguousError, FatalError, RetriableError
from giftsync.runtime.budget import RateBudget
from giftsync.sandbox import start_twin

TOKEN = "shpat_adapter_test_token"
SHOP = "giftsync-test"                       # a label only: admin_url points at the twin
USD = "USD"

SEED = {
    "customers": [{"email": "holder@example.com", "firstName": "Hol", "lastName": "Der"},
                  {"email": "buyer@example.com", "firstName": "Bea", "lastName": "Buyer"}],
    "products": [{"sku": "GS-DIGITAL-25", "title": "giftsync card 25", "price": "25.00", "giftsync": True},
                 {"sku": "NATIVE-50", "title": "Gift card 50", "price": "50.00", "isGiftCard": True}],
    "giftCards": [
        {"code": "AAAA1111BBBB2222", "initialValue": "50.00"},
        {"code": "XAAAA1111BBBB2222", "initialValue": "10.00"},
        {"code": "CCCC3333DDDD4444", "initialValue": "30.00", "customer": "holder@example.com"},
        {"code": "PAYX5555WITH6666", "initialValue": "100.00"},
    ],
}


def money(amount: str) -> Money:
    return Money.of(amount, USD)


@pytest.fixture(scope="module")
def twin():
    server = start_twin("shopify", seed=SEED, tokens={
        TOKEN: ["read_gift_cards", "write_gift_cards", "read_gift_card_transactions", "write_gift_card_transactions",
                "read_orders", "write_orders", "read_customers", "write_customers"],
        "shpat_readonly": ["read_gift_cards", "read_customers", "read_orders"]})
    yield server
    server.stop()


pytestmark = pytest.mark.usefixtures("no_faults")


@pytest.fixture
def ledger(twin):
    adapter = ShopifyGiftCardLedger(SHOP, TOKEN, admin_url=twin.url, timeout=1)
    adapter.gql._sleep = lambda s: None       # retries without waiting in tests
    yield adapter
    adapter.close()


def control(twin, method: str, path: str, body: dict | None = None) -> dict:
    resp = requests.request(method, f"{twin.url}/__sandbox/shopify/{path}", json=body, timeout=5)
    assert resp.status_code < 300, resp.text
    return resp.json()


def new_card(ledger, code: str, amount: str = "40.00", note: str = "giftsync:test"):
    result = ledger.create_card(code=code, amount=money(amount), note=note)
    assert result.card is not None, result
    return result.card


# -- cards ----------------------------------------------------------------------------------

def test_create_get_and_duplicate_code(ledger, caplog):
    caplog.set_level(logging.DEBUG)
    card = new_card(ledger, "NEWC7777CARD8888", "25.00", "giftsync:recCreate")
    assert card.id.startswith("gid://shopify/GiftCard/") and card.last4 == "8888"
    assert card.balance == money("25") and card.initial_value == money("25")
    assert card.note == "giftsync:recCreate" and card.enabled
    again = ledger.get_card(card.id)
    assert again is not None and again.balance == money("25")
    dup = ledger.create_card(code="NEWC7777CARD8888", amount=money("25.00"), note="giftsync:recCreate")
    assert dup.code_taken and dup.card is None
    assert "NEWC7777CARD8888" not in caplog.text.upper() and TOKEN not in caplog.text


def test_create_refusals_are_results(ledger):
    too_short = ledger.create_card(code="AB12", amount=money("10"), note="x")
    assert too_short.card is None and not too_short.code_taken and too_short.error
    zero = ledger.create_card(code="ZERO1234VALUE567", amount=money("0"), note="x")
    assert zero.error and zero.card is None


def test_unknown_card_is_none(ledger):
    assert ledger.get_card("gid://shopify/GiftCard/999999999999") is None
    assert ledger.transactions("gid://shopify/GiftCard/999999999999") == []


def test_debit_credit_and_transactions_with_notes(ledger):
    card = new_card(ledger, "MOVE1234MONY5678", "40.00")
    when = datetime.now(timezone.utc) - timedelta(minutes=5)
    debit = ledger.debit(card.id, money("12.50"), note="giftsync:recD1:a1", processed_at=when)
    assert not debit.error_code and debit.balance == money("27.50")
    assert debit.transaction.amount == money("-12.50") and debit.transaction.kind == "debit"
    assert debit.transaction.note == "giftsync:recD1:a1"
    assert debit.transaction.processed_at == when.replace(microsecond=0)
    credit = ledger.credit(card.id, money("2.50"), note="giftsync:recC1:a1")
    assert credit.balance == money("30.00") and credit.transaction.kind == "credit"
    txns = ledger.transactions(card.id)
    assert [(t.kind, t.note, t.amount) for t in txns] == [
        ("debit", "giftsync:recD1:a1", money("-12.50")), ("credit", "giftsync:recC1:a1", money("2.50"))]
    assert ledger.get_card(card.id).balance == money("30.00")


def test_insufficient_funds_and_deactivated(twin, ledger):
    card = new_card(ledger, "POOR1234CARD0001", "5.00")
    result = ledger.debit(card.id, money("5.01"), note="giftsync:recPoor")
    assert result.error_code == "INSUFFICIENT_FUNDS" and result.transaction is None and result.error
    assert ledger.get_card(card.id).balance == money("5.00")
    control(twin, "POST", f"cards/{card.id.rsplit('/', 1)[1]}/deactivate")
    gone = ledger.debit(card.id, money("1.00"), note="giftsync:recOff")
    assert gone.error_code == "GIFT_CARD_DEACTIVATED"
    assert ledger.credit(card.id, money("1.00"), note="giftsync:recOff2").error_code == "GIFT_CARD_DEACTIVATED"
    off = ledger.get_card(card.id)
    assert not off.enabled and off.deactivated_at is not None
    assert ledger.transactions(card.id) == []


def test_find_by_code_accepts_only_an_exact_match(ledger):
    exact = ledger.find_by_code("cccc-3333 dddd-4444")
    assert exact is not None and exact.last4 == "4444" and exact.customer_email == "holder@example.com"
    # a prefix of a code matches by search, but its last characters do not agree
    assert ledger.find_by_code("CCCC3333") is None
    # two cards contain this code and end alike: no exact match is possible
    assert ledger.find_by_code("AAAA1111BBBB2222") is None
    assert ledger.find_by_code("NOPE0000NOPE0000") is None
    assert ledger.find_by_code("bad!") is None


def test_cards_updated_newest_first_with_cursor(ledger):
    new_card(ledger, "PAGE0001CARD0001", "1.00")
    newest = new_card(ledger, "PAGE0002CARD0002", "2.00")
    page, cursor = ledger.cards_updated(page_size=2)
    assert len(page) == 2 and page[0].id == newest.id and cursor
    assert page[0].updated_at >= page[1].updated_at
    rest, _ = ledger.cards_updated(after_cursor=cursor, page_size=2)
    assert rest and not {c.id for c in rest} & {c.id for c in page}


# -- faults -----------------------------------------------------------------------------------

@pytest.mark.parametrize("fault", [dict(kind="reset"), dict(kind="status", status=503),
                                   dict(kind="hang", delay=2.5)])
def test_fault_after_debit_is_ambiguous_and_readable_back(twin, ledger, fault):
    card = new_card(ledger, f"AMBI{fault['kind'].upper()[:4]:0<4}CARD9{len(fault)}99", "20.00")
    twin.inject(route="giftCardDebit", when="after", count=1, **fault)
    note = f"giftsync:recAmb:{fault['kind']}"
    with pytest.raises(AmbiguousError):
        ledger.debit(card.id, money("7.00"), note=note)
    # the read-back rule: the debit happened, exactly once, and carries our key
    assert [t.note for t in ledger.transactions(card.id)] == [note]
    assert ledger.get_card(card.id).balance == money("13.00")


def test_fault_before_mutation_with_refused_connection_is_retriable():
    dead = ShopifyGiftCardLedger(SHOP, TOKEN, admin_url="http://127.0.0.1:9", timeout=0.5)
    with pytest.raises(RetriableError) as err:
        dead.debit("gid://shopify/GiftCard/1", money("1"), note="x")
    assert not isinstance(err.value, AmbiguousError)


def test_queries_are_retried_a_bounded_number_of_times(twin, ledger):
    card = new_card(ledger, "RTRY1234QURY5678", "9.00")
    twin.clear_requests()
    twin.inject(kind="status", status=503, route="giftCard", count=2)
    assert ledger.get_card(card.id).balance == money("9.00")
    assert len(twin.requests("giftCard")) == 3
    twin.inject(kind="status", status=502, route="giftCard")
    with pytest.raises(RetriableError) as err:
        ledger.get_card(card.id)
    assert err.value.status == 502 and not isinstance(err.value, AmbiguousError)


def test_mutations_are_never_retried(twin, ledger):
    card = new_card(ledger, "ONCE1234ONLY5678", "9.00")
    twin.clear_requests()
    twin.inject(kind="status", status=503, route="giftCardCredit", count=1)
    with pytest.raises(AmbiguousError):
        ledger.credit(card.id, money("1.00"), note="giftsync:recOnce")
    assert len(twin.requests("giftCardCredit")) == 1


def test_429_on_a_query_pauses_the_budget(twin):
    budget = RateBudget("shopify", rate=1000, capacity=2000)
    adapter = ShopifyGiftCardLedger(SHOP, TOKEN, admin_url=twin.url, timeout=1, budget=budget, query_attempts=1)
    twin.inject(kind="status", status=429, route="giftCard", count=1)
    with pytest.raises(RetriableError) as err:
        adapter.get_card("gid://shopify/GiftCard/1")
    assert err.value.status == 429 and err.value.retry_after == 1
    assert not budget.acquire(1, timeout=0.3)


def test_wrong_token_is_fatal(twin):
    adapter = ShopifyGiftCardLedger(SHOP, "shpat_wrong", admin_url=twin.url, timeout=1)
    with pytest.raises(FatalError) as err:
        adapter.get_card("gid://shopify/GiftCard/1")
    assert err.value.status == 401 and "shpat_wrong" not in str(err.value)


def test_missing_scope_is_fatal_and_named(twin):
    adapter = ShopifyGiftCardLedger(SHOP, "shpat_readonly", admin_url=twin.url, timeout=1)
    with pytest.raises(FatalError) as err:
        adapter.debit("gid://shopify/GiftCard/1", money("1"), note="x")
    assert "ACCESS_DENIED" in err.value.reason and "write_gift_card_transactions" in err.value.reason
    assert "write_gift_card_transactions" not in adapter.access_scopes()


def test_throttled_with_a_tiny_bucket():
    server = start_twin("shopify", seed={"giftCards": [{"code": "TINY1234BUCK5678", "initialValue": "50"}]},
                        bucket_size=40, restore_rate=1)
    try:
        # no budget: nothing paces us, so Shopify's bucket runs dry and answers THROTTLED
        adapter = ShopifyGiftCardLedger(SHOP, "shpat_sandbox", admin_url=server.url, timeout=1)
        card = adapter.find_by_code("TINY1234BUCK5678")
        assert card is not None
        applied = 0
        with pytest.raises(RetriableError) as err:
            for _ in range(10):
                adapter.debit(card.id, money("1.00"), note=f"giftsync:tiny:{applied}")
                applied += 1
        assert "THROTTLED" in err.value.reason and err.value.retry_after >= 1
        assert not isinstance(err.value, AmbiguousError)        # nothing was executed
        cards = requests.get(f"{server.url}/__sandbox/shopify/cards", timeout=5).json()["cards"]
        balance = Decimal(next(c for c in cards if c["id"] == card.id)["balance"])
        assert balance == Decimal(50 - applied)                   # the throttled debit did not apply

        # with a budget: a query bigger than the bucket is throttled, the budget learns the
        # bucket from throttleStatus and pauses; the long wait is handed back, not slept
        budget = RateBudget("shopify", rate=1000, capacity=2000)
        adapter = ShopifyGiftCardLedger(SHOP, "shpat_sandbox", admin_url=server.url, timeout=1, budget=budget)
        started = time.monotonic()
        with pytest.raises(RetriableError) as err:
            adapter.cards_updated(page_size=50)
        assert "THROTTLED" in err.value.reason and err.value.retry_after > 5
        assert time.monotonic() - started < 2
        assert budget.capacity == 40 and budget.rate == 1
        assert not budget.acquire(1, timeout=0.2)
    finally:
        server.stop()


def test_budget_follows_throttle_status(twin):
    budget = RateBudget("shopify", rate=5, capacity=10)
    adapter = ShopifyGiftCardLedger(SHOP, TOKEN, admin_url=twin.url, timeout=1, budget=budget)
    adapter.access_scopes()
    assert budget.capacity == 2000 and budget.rate == 100


# -- orders -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def orders(twin):
    before = datetime.now(timezone.utc) - timedelta(seconds=2)
    purchase = control(twin, "POST", "orders", {
        "customer": {"email": "buyer@example.com"},
        "lines": [{"sku": "GS-DIGITAL-25", "quantity": 3,
                   "properties": [{"key": "Recipient Email", "value": "friend@example.com"}]},
                  {"sku": "NATIVE-50", "quantity": 2}]})
    paid = control(twin, "POST", "orders", {
        "customer": {"email": "holder@example.com"},
        "lines": [{"title": "Shoes", "price": "80.00"}],
        "gift_card_payments": [{"code": "PAYX5555WITH6666", "amount": "30.00"}]})
    pending = control(twin, "POST", "orders", {"customer": {"email": "buyer@example.com"},
                                               "lines": [{"sku": "NATIVE-50"}], "financialStatus": "PENDING"})
    return {"before": before, "purchase": purchase, "paid": paid, "pending": pending}


def test_paid_orders_with_lines_and_payments(ledger, orders):
    found, _ = ledger.orders(updated_after=orders["before"], without_tag="giftsync-done")
    ids = [o.id for o in found]
    assert orders["purchase"]["id"] in ids and orders["paid"]["id"] in ids and orders["pending"]["id"] not in ids
    purchase = next(o for o in found if o.id == orders["purchase"]["id"])
    assert purchase.customer_email == "buyer@example.com" and purchase.financial_status == "PAID"
    digital = next(l for l in purchase.lines if l.sku == "GS-DIGITAL-25")
    assert digital.quantity == 3 and not digital.is_gift_card and digital.unit_price == money("25")
    assert digital.properties == {"Recipient Email": "friend@example.com"}
    assert any(l.is_gift_card and l.quantity == 2 for l in purchase.lines)


def test_gift_card_payments_name_the_card(ledger, orders):
    found, _ = ledger.orders(updated_after=orders["before"], gift_card_payments_only=True)
    assert [o.id for o in found] == [orders["paid"]["id"]]
    payment = next(p for p in found[0].payments if p.gateway == "gift_card")
    card = ledger.find_by_code("PAYX5555WITH6666")
    assert payment.gift_card_id == card.id and payment.gift_card_last4 == "6666"
    assert payment.amount == money("30") and payment.kind == "SALE" and payment.status == "SUCCESS"
    assert card.balance == money("70")


def test_orders_paginate(ledger, orders):
    first, cursor = ledger.orders(updated_after=orders["before"], page_size=1)
    assert len(first) == 1 and cursor
    second, _ = ledger.orders(updated_after=orders["before"], page_size=1, after_cursor=cursor)
    assert second and second[0].id != first[0].id


def test_tags_add_and_the_tag_filter(ledger, orders):
    order_id = orders["paid"]["id"]
    tags = ledger.tags_add(order_id, ["giftsync-done"])
    assert "giftsync-done" in tags
    assert ledger.tags_add(order_id, ["giftsync-done"]) == tags        # naturally idempotent
    found, _ = ledger.orders(updated_after=orders["before"], without_tag="giftsync-done")
    assert order_id not in [o.id for o in found]
    assert "giftsync-done" in ledger.order(order_id).tags
    with pytest.raises(FatalError):
        ledger.tags_add("gid://shopify/Order/999999999999", ["x"])


def test_native_cards_for_an_order(ledger, orders):
    order = ledger.order(orders["purchase"]["id"])
    native_line = next(l for l in order.lines if l.is_gift_card)
    cards = ledger.cards_for_order(order.id, order.created_at - timedelta(minutes=5))
    assert len(cards) == 2
    assert {c.line_item_id for c in cards} == {native_line.id}
    assert all(c.order_id == order.id and c.card.balance == money("50") for c in cards)
    assert all(c.card.order_name == order.name for c in cards)


def test_unknown_order_is_none(ledger):
    assert ledger.order("gid://shopify/Order/999999999999") is None


def test_access_scopes(ledger):
    scopes = ledger.access_scopes()
    assert "write_gift_card_transactions" in scopes and "read_orders" in scopes


def test_requests_carry_version_and_token_header_only(twin, ledger):
    twin.clear_requests()
    ledger.access_scopes()
    entry = twin.requests()[-1]
    assert entry["path"] == "/admin/api/2026-07/graphql.json"
    assert entry["headers"]["x-shopify-access-token"] == "***"



def test_threads_share_one_adapter(ledger):
    card = new_card(ledger, "THRD1234SAFE5678", "50.00")
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(3):
                assert ledger.get_card(card.id) is not None
            ledger.debit(card.id, money("1.00"), note=f"giftsync:thread:{i}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not errors
    assert ledger.get_card(card.id).balance == money("45.00")
    assert sorted(t.note for t in ledger.transactions(card.id)) == [f"giftsync:thread:{i}" for i in range(5)]
