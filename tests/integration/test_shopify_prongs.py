"""The Shopify prongs through the real adapters (pyairtable, gql, klaviyo-api) against the
three twins: online purchases of both kinds, online redemptions, an admin adjustment, a
refund to a card, a crash between creating a card and recording the order, and traces."""
from __future__ import annotations

import io
import json
import time
from decimal import Decimal

import pytest
from twins import running_twins, twin_settings

from giftsync import cli
from giftsync.bootstrap import build_app, online_options, store_options
from giftsync.domain.ledger import Activity, ledger_balance
from giftsync.ports import OrderKind, OrderStatus
from giftsync.prongs.online import order_key
from giftsync.prongs.shopify_purchases import ShopifyPurchases
from giftsync.sandbox.airtable.seed import base_seed_from_schema, load_base_schema

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.usefixtures("clean_giftsync_logging")]

TOKEN = "patShopifyProngs0.0123456789abcdef0123456789abcdef"
BASE = "appGiftsyncSandbx"
SHOP_TOKEN = "shpat_0123456789abcdef0123456789abcdef"
KEY = "pk_prongs_0123456789abcdefghijk"
SKU = "GS-GIFT-25"
SEED = {
    "customers": [{"email": "ann@example.com", "firstName": "Ann", "lastName": "Lee"}],
    "products": [
        {"sku": SKU, "title": "giftsync card 25", "price": "25.00", "giftsync": True},
        {"sku": "NATIVE-50", "title": "Online gift card 50", "price": "50.00", "isGiftCard": True},
        {"sku": "MUG", "title": "Mug", "price": "12.00"},
        {"sku": "LAMP", "title": "Lamp", "price": "60.00"},
    ],
    "giftCards": [{"code": "NEVERMIRRORED01", "initialValue": "40.00", "note": "issued before giftsync"}],
}
CLAIM_SECONDS = 2      # the order overlap, also the window in which an order may claim a movement


@pytest.fixture
def twins():
    seed = base_seed_from_schema(load_base_schema(), base_id=BASE)
    with running_twins(seed, token=TOKEN, shop_seed=SEED, shop_token=SHOP_TOKEN, key=KEY, restore_rate=5000,
                       bucket_size=20000) as servers:
        yield servers


@pytest.fixture
def settings(twins):
    return twin_settings(twins, token=TOKEN, base=BASE, shop="prongs-test", shop_token=SHOP_TOKEN, key=KEY,
                         secret="q" * 40, GIFTSYNC_GIFT_CARD_SKUS=SKU,
                         GIFTSYNC_ORDER_OVERLAP_SECONDS=str(CLAIM_SECONDS))


@pytest.fixture
def app(settings):
    app = build_app(settings)
    yield app
    app.close()


def cycle(app, name):
    return app.prong(name).run(lambda: True)


def shop(twins):
    return twins[1].app


def klaviyo(twins):
    return twins[2].app


def purchase_key(order: dict) -> str:
    return order_key(OrderKind.PURCHASE, order["id"])


def assert_ledger_adds_up(app) -> None:
    """Last balance-after = Shopify's balance, and the amounts add up to it (each movement once)."""
    for card in app.book.iter_cards():
        real = app.ledger.get_card(card.shopify_id)
        assert card.balance.amount == real.balance.amount, card.masked
        receipts = app.book.receipts_for_card(card.record_id)
        rows = [r for r in receipts if r.balance_after is not None]
        assert rows and rows[-1].balance_after.amount == real.balance.amount, card.masked
        added = ledger_balance(receipts, real.initial_value)
        assert added is not None and added.amount == real.balance.amount, (card.masked, added, real.balance)


def past_claim() -> None:
    """Wait out the window in which an online order may still claim a balance movement."""
    time.sleep(CLAIM_SECONDS + 1.2)


def trace(settings, app, ref):
    out = io.StringIO()
    import contextlib
    with contextlib.redirect_stdout(out):
        code = cli.main(["trace", ref, "--json"], settings=settings, log_stream=io.StringIO(),
                        app_factory=lambda s: build_app(s))
    return code, json.loads(out.getvalue())


# -- purchases ----------------------------------------------------------------------------------------

def test_giftsync_sku_quantity_three_and_a_gift(twins, app):
    mine = shop(twins).purchase({"customer": {"email": "ann@example.com"}, "lines": [{"sku": SKU, "quantity": 3}]})
    gift = shop(twins).purchase({"customer": {"email": "ann@example.com"},
                                 "lines": [{"sku": SKU, "quantity": 1,
                                            "properties": {"Recipient email": "bob@example.com",
                                                           "Recipient name": "Bob"}}]})
    report = cycle(app, "shopify-purchases")
    assert report.cards_issued == 4 and report.errors == 0
    entry = app.book.order_entry(purchase_key(mine))
    assert entry.status is OrderStatus.DONE and len(entry.card_ids) == 3 and not entry.attempt.startswith("nonce:")
    assert "giftsync-done" in shop(twins).world.orders()[0]["tags"]
    kl = klaviyo(twins)
    assert len(kl.event_items(metric="Gift Card Delivered", email="ann@example.com")) == 3
    assert len(kl.event_items(metric="Gift Card Delivered", email="bob@example.com")) == 1
    assert len(kl.event_items(metric="Gift Card Purchase Confirmed", email="ann@example.com")) == 1
    issued = kl.event_items(metric="Gift Card Issued", email="ann@example.com")
    assert len(issued) == 4                                   # CRM on the purchaser's profile, value counted
    assert kl.profile_items("ann@example.com")[0]["lifetime_value"] == 100.0
    codes = [e["properties"]["Code"] for e in kl.event_items(metric="Gift Card Delivered")]
    twin_codes = {c["code"].upper() for c in shop(twins).cards(include_codes=True)}
    assert {c.upper() for c in codes} <= twin_codes
    for item in kl.outbox_items():
        if item["metric"] != "Gift Card Delivered":
            assert not any(c.upper() in json.dumps(item).upper() for c in codes)
    cycle(app, "shopify-purchases")                            # nothing twice
    assert len(shop(twins).cards()) == 1 + 4
    assert app.book.order_entry(purchase_key(gift)).status is OrderStatus.DONE
    assert_ledger_adds_up(app)


def test_native_cards_two_cycles_late(twins, app):
    order = shop(twins).purchase({"customer": {"email": "ann@example.com"}, "native_delay_requests": 100000,
                                  "lines": [{"sku": "NATIVE-50", "quantity": 2,
                                             "properties": {"Recipient email": "cy@example.com"}}]})
    cycle(app, "shopify-purchases")
    cycle(app, "shopify-purchases")
    entry = app.book.order_entry(purchase_key(order))
    assert entry.status is OrderStatus.WAITING and not entry.card_ids
    assert "giftsync-done" not in shop(twins).world.orders()[0]["tags"]
    shop(twins).release_pending_cards()
    report = cycle(app, "shopify-purchases")
    entry = app.book.order_entry(purchase_key(order))
    assert entry.status is OrderStatus.DONE and len(entry.card_ids) == 2 and report.cards_mirrored == 2
    cards = [app.book.card(r) for r in entry.card_ids]
    assert all(c.code_hash is None and c.recipient_email == "cy@example.com" for c in cards)
    assert "giftsync-done" in shop(twins).world.orders()[0]["tags"]
    assert_ledger_adds_up(app)


class CrashAfterCreate:
    """The real Shopify adapter, but the process dies right after giftCardCreate returned."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def create_card(self, **kw):
        self.inner.create_card(**kw)
        raise SystemExit("power cut between creating the card and recording it")


def test_crash_between_create_and_record_makes_no_second_card(twins, app, settings):
    order = shop(twins).purchase({"customer": {"email": "ann@example.com"}, "lines": [{"sku": SKU, "quantity": 2}]})
    crashing = ShopifyPurchases(app.book, CrashAfterCreate(app.ledger), app.ledger, app.messenger, app.clock,
                                app.hasher, store_options(settings), online_options(settings))
    with pytest.raises(SystemExit):
        crashing.run_once()
    assert len(shop(twins).cards()) == 2                       # the seeded card + the one created
    assert app.book.order_entry(purchase_key(order)).status is OrderStatus.PROCESSING
    report = cycle(app, "shopify-purchases")                   # a new process resumes the order
    assert report.errors == 0
    assert len(shop(twins).cards()) == 3                       # adopted the first, created the second
    entry = app.book.order_entry(purchase_key(order))
    assert entry.status is OrderStatus.DONE and len(entry.card_ids) == 2
    assert len(klaviyo(twins).event_items(metric="Gift Card Delivered")) == 2
    assert_ledger_adds_up(app)


# -- redemptions, refunds, adjustments --------------------------------------------------------------------

def _buy_cards(twins, app, n):
    shop(twins).purchase({"customer": {"email": "ann@example.com"}, "lines": [{"sku": SKU, "quantity": n}]})
    cycle(app, "shopify-purchases")
    return [c for c in app.book.iter_cards()]


def test_online_redemptions_one_card_two_cards_and_one_never_mirrored(twins, app):
    a, b = _buy_cards(twins, app, 2)
    one = shop(twins).purchase({"customer": {"email": "ann@example.com"}, "lines": [{"sku": "MUG"}],
                                "gift_card_payments": [{"id": a.shopify_id, "amount": "12.00"}]})
    two = shop(twins).purchase({"customer": {"email": "ann@example.com"}, "lines": [{"sku": "LAMP"}],
                                "gift_card_payments": [{"id": a.shopify_id, "amount": "10.00"},
                                                       {"id": b.shopify_id, "amount": "25.00"}]})
    other = shop(twins).purchase({"email": "zed@example.com", "lines": [{"sku": "LAMP"}],
                                  "gift_card_payments": [{"code": "NEVERMIRRORED01", "amount": "30.00"}]})
    report = cycle(app, "shopify-redemptions")
    assert report.redeemed == 3 and report.skipped_cards == 1 and report.errors == 0
    assert app.book.card(a.record_id).balance.amount == Decimal("3.00")
    assert app.book.card(b.record_id).balance.amount == Decimal("0.00")
    rows = [r for r in app.book.receipts_for_card(a.record_id) if r.activity is Activity.REDEEM]
    assert {r.amount.amount for r in rows} == {Decimal("-12.00"), Decimal("-10.00")}
    assert all(r.source.startswith("Order #") for r in rows)
    skipped = app.book.order_entry(order_key(OrderKind.REDEMPTION, other["id"]))
    assert skipped.status is OrderStatus.DONE and "1 skipped" in skipped.details
    assert len(app.book.order_entry(order_key(OrderKind.REDEMPTION, two["id"])).transactions) == 2
    assert app.book.order_entry(order_key(OrderKind.REDEMPTION, one["id"])).status is OrderStatus.DONE
    assert len(klaviyo(twins).event_items(metric="Gift Card Redeemed", email="ann@example.com")) == 3
    cycle(app, "shopify-redemptions")                          # seen again (tags bump updatedAt): nothing twice
    assert len([r for r in app.book.receipts_for_card(a.record_id) if r.activity is Activity.REDEEM]) == 2
    assert_ledger_adds_up(app)


def test_refund_to_a_card_is_a_credit(twins, app):
    [card] = _buy_cards(twins, app, 1)
    order = shop(twins).purchase({"customer": {"email": "ann@example.com"}, "lines": [{"sku": "MUG"}],
                                  "gift_card_payments": [{"id": card.shopify_id, "amount": "12.00"}]})
    cycle(app, "shopify-redemptions")
    shop(twins).refund(order["id"], {"gift_card": card.shopify_id, "amount": "5.00"})
    cycle(app, "shopify-redemptions")
    credits = [r for r in app.book.receipts_for_card(card.record_id) if r.activity is Activity.CREDIT]
    assert len(credits) == 1 and credits[0].amount.amount == Decimal("5.00")
    assert app.book.card(card.record_id).balance.amount == Decimal("18.00")
    assert_ledger_adds_up(app)


def test_admin_adjustment_found_by_the_reconcile_pass(twins, app, settings):
    [card] = _buy_cards(twins, app, 1)
    shop(twins).adjust(card.shopify_id, "-4.00", note="damaged card goodwill")
    past_claim()
    out = io.StringIO()
    assert cli.main(["once", "--prong", "reconcile"], settings=settings, log_stream=out,
                    app_factory=lambda s: build_app(s)) == 0
    adj = [r for r in app.book.receipts_for_card(card.record_id) if r.activity is Activity.ADJUST]
    assert len(adj) == 1 and adj[0].amount.amount == Decimal("-4.00") and "goodwill" in adj[0].details
    assert app.book.card(card.record_id).balance.amount == Decimal("21.00")
    assert_ledger_adds_up(app)


def test_admin_adjustment_found_by_the_walk_when_updated_at_moves(twins, app):
    shop(twins).bump_updated_at_on_transactions = True
    [card] = _buy_cards(twins, app, 1)
    cycle(app, "shopify-redemptions")                          # first walk sets the watermark
    shop(twins).adjust(card.shopify_id, "5.00", note="top-up")
    assert cycle(app, "shopify-redemptions").adjusted == 0    # an order may still claim it
    past_claim()
    report = cycle(app, "shopify-redemptions")
    assert report.adjusted == 1
    assert app.book.card(card.record_id).balance.amount == Decimal("30.00")
    assert_ledger_adds_up(app)


def test_search_lag_race_walk_before_the_redemption_prong_counts_the_payment_once(twins, app, settings):
    """Payment made; the reconcile walk (and a full pass) run before the redemption prong has
    seen the order; then the prong. The ledger adds up in amounts, not only in the last
    balance-after: one REDEEM, no ADJUST (docs/adr/0004-online-ledger.md)."""
    from giftsync.prongs.shopify_redemptions import ShopifyRedemptions
    shop(twins).bump_updated_at_on_transactions = True
    [card] = _buy_cards(twins, app, 1)
    prong = ShopifyRedemptions(app.book, app.ledger, app.ledger, app.messenger, app.clock, app.hasher,
                               store_options(settings), online_options(settings))
    prong.reconciler.walk()                                     # first walk: the watermark
    time.sleep(1.1)
    shop(twins).purchase({"customer": {"email": "ann@example.com"}, "lines": [{"sku": "MUG"}],
                          "gift_card_payments": [{"id": card.shopify_id, "amount": "12.00"}]})
    walked = prong.reconciler.walk()                            # the order is not in our hands yet
    assert walked.checked == 1 and walked.deferred == 1 and walked.adjusted == 0
    assert cli.main(["once", "--prong", "reconcile"], settings=settings, log_stream=io.StringIO(),
                    app_factory=lambda s: build_app(s)) == 0
    report = prong.run_once()                                   # the redemption prong (then its walk)
    assert report.redeemed == 1 and report.adjusted == 0
    past_claim()
    assert prong.run_once().adjusted == 0                       # later walks: nothing unexplained
    assert cli.main(["once", "--prong", "reconcile"], settings=settings, log_stream=io.StringIO(),
                    app_factory=lambda s: build_app(s)) == 0
    receipts = app.book.receipts_for_card(card.record_id)
    moves = [r for r in receipts if r.amount is not None and r.activity is not Activity.ISSUE]
    assert [(r.activity, r.amount.amount) for r in moves] == [(Activity.REDEEM, Decimal("-12.00"))]
    real = app.ledger.get_card(card.shopify_id)
    assert sum(r.amount.amount for r in moves) == real.balance.amount - real.initial_value.amount
    assert_ledger_adds_up(app)


def test_adjustment_then_payment_recorded_first_keeps_both_amounts(twins, app, settings):
    shop(twins).bump_updated_at_on_transactions = True
    [card] = _buy_cards(twins, app, 1)
    cycle(app, "shopify-redemptions")                           # first walk: the watermark
    shop(twins).adjust(card.shopify_id, "3.00", note="goodwill")
    shop(twins).purchase({"customer": {"email": "ann@example.com"}, "lines": [{"sku": "MUG"}],
                          "gift_card_payments": [{"id": card.shopify_id, "amount": "12.00"}]})
    assert cycle(app, "shopify-redemptions").redeemed == 1      # REDEEM's balance-after holds both
    past_claim()
    assert cycle(app, "shopify-redemptions").adjusted == 1      # the ledger shows the 3.00 missing
    moves = [r for r in app.book.receipts_for_card(card.record_id)
             if r.amount is not None and r.activity is not Activity.ISSUE]
    assert sorted(r.amount.amount for r in moves) == [Decimal("-12.00"), Decimal("3.00")]
    assert_ledger_adds_up(app)


# -- trace --------------------------------------------------------------------------------------------

def test_trace_healthy_card_and_one_whose_crm_event_is_missing(twins, app, settings):
    shop(twins).purchase({"customer": {"email": "ann@example.com"}, "lines": [{"sku": SKU, "quantity": 1}]})
    cycle(app, "shopify-purchases")
    [card] = list(app.book.iter_cards())
    code, data = trace(settings, app, card.record_id)
    assert code == 0
    [chain] = data["cards"]
    assert chain["first_missing"] is None
    assert [l["status"] for l in chain["chain"]] == ["ok", "ok", "ok", "ok"]
    assert "ann@example.com" in chain["chain"][2]["detail"]
    code, data = trace(settings, app, card.order)
    assert code == 0 and len(data["cards"]) == 1
    # a card whose CRM event never went out: mirrored by hand, no relay
    from giftsync.domain.cards import CardSource, MirrorCard
    real = shop(twins).issue_card({"amount": "15.00"})
    app.book.save_cards([MirrorCard(record_id=None, shopify_id=real["id"], last4=real["lastCharacters"].upper(),
                                    balance=app.ledger.get_card(real["id"]).balance, source=CardSource.IMPORTED)])
    code, data = trace(settings, app, real["code"])
    assert code == 1
    [chain] = data["cards"]
    assert chain["first_missing"] == "CRM event sent"
    assert real["code"].upper() not in json.dumps(data).upper()


def test_card_paid_online_then_mirrored_by_a_balance_check_counts_the_payment_once(twins, app):
    """A card giftsync never mirrored pays part of an order; a customer checks its balance
    before the redemption prong has seen the order, so the card is mirrored with the balance
    Shopify holds then (payment included) and an ``Opened At``. The order's REDEEM receipt
    then carries no amount: the ledger adds up in amounts, not only in its last balance-after
    (docs/adr/0004-online-ledger.md)."""
    from pyairtable import Api
    order = shop(twins).purchase({"customer": {"email": "ann@example.com"}, "lines": [{"sku": "MUG"}],
                                  "gift_card_payments": [{"code": "NEVERMIRRORED01", "amount": "12.00"}]})
    time.sleep(1.05)        # Shopify's processedAt has whole seconds: the mirror comes a second later
    checks = Api(TOKEN, endpoint_url=twins[0].url).table(BASE, "Balance Checks")
    check = checks.create({"Code": "nevermirrored01", "Email": "zed@example.com"})
    cycle(app, "store")
    assert checks.get(check["id"])["fields"]["Status"] == "Done"
    [card] = [c for c in app.book.iter_cards() if c.last4 == "ED01"]
    assert card.balance.amount == Decimal("28.00") and card.opened_at is not None
    raw = Api(TOKEN, endpoint_url=twins[0].url).table(BASE, "Gift Cards").get(card.record_id)["fields"]
    assert raw["Opened At"]
    report = cycle(app, "shopify-redemptions")
    assert report.redeemed == 1 and report.errors == 0
    [redeem] = [r for r in app.book.receipts_for_card(card.record_id) if r.activity is Activity.REDEEM]
    assert redeem.amount is None and "opening balance" in redeem.details and redeem.source.startswith("Order #")
    assert redeem.balance_after.amount == Decimal("28.00")
    # a later payment is a movement of its own
    time.sleep(1.05)
    shop(twins).purchase({"customer": {"email": "ann@example.com"}, "lines": [{"sku": "MUG"}],
                          "gift_card_payments": [{"id": card.shopify_id, "amount": "8.00"}]})
    assert cycle(app, "shopify-redemptions").redeemed == 1
    amounts = sorted(r.amount.amount for r in app.book.receipts_for_card(card.record_id)
                     if r.activity is Activity.REDEEM and r.amount is not None)
    assert amounts == [Decimal("-8.00")]
    assert_ledger_adds_up(app)
    past_claim()
    assert cycle(app, "reconcile").adjusted == 0
    assert order["name"]
