"""The Shopify purchase prong against the fakes: giftsync SKUs, native cards, the registry,
crashes between creating a card and recording it, bad data, the watermark."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from giftsync.adapters.fakes import FakeCardBook, FakeGiftCardLedger
from giftsync.domain.cards import CardSource
from giftsync.domain.emails import Metric
from giftsync.domain.ledger import Activity
from giftsync.errors import AmbiguousError, RetriableError
from giftsync.ports import CreateCardResult, OrderStatus, ShopifyOrder
from giftsync.prongs import crm as crm_relay
from giftsync.prongs.online import order_key, poll_orders
from giftsync.ports import OrderKind

from .online_world import SKU, Online, assert_ledger_adds_up, online, written_text  # noqa: F401


def key(order) -> str:
    return order_key(OrderKind.PURCHASE, order.id)


def codes_delivered(world: Online) -> list[str]:
    return [e.properties["Code"] for e in world.events(Metric.GIFT_CARD_DELIVERED)]


def test_one_line_quantity_three_issues_three_cards_once(online):
    order = online.orders.purchase([{"sku": SKU, "quantity": 3, "price": "25.00"}], email="ann@example.test",
                                   first_name="Ann", last_name="Lee")
    report = online.purchases.run_once()
    assert report.cards_issued == 3 and report.errors == 0
    entry = online.registry(key(order))
    assert entry.status is OrderStatus.DONE and len(entry.card_ids) == 3
    assert not entry.attempt.startswith("nonce:")           # no way left to rebuild the codes
    assert online.orders.tags_of(order.id) == ["giftsync-done"]
    delivered = online.events(Metric.GIFT_CARD_DELIVERED)
    assert [e.email for e in delivered] == ["ann@example.test"] * 3
    assert len(set(codes_delivered(online))) == 3
    cards = [online.book.cards[rid] for rid in entry.card_ids]
    assert {c.source for c in cards} == {CardSource.ONLINE_PURCHASE}
    assert all(c.order == order.name and c.purchaser_email == "ann@example.test" for c in cards)
    assert all(c.balance.amount == Decimal("25.00") for c in cards)
    assert not online.events(Metric.PURCHASE_CONFIRMED)      # the purchaser is the recipient
    crm = online.events(Metric.GIFT_CARD_ISSUED)
    assert len(crm) == 3 and {e.email for e in crm} == {"ann@example.test"}
    assert crm[0].value == Decimal("25.00") and crm[0].properties["Channel"] == "Online"
    assert crm[0].properties["Order"] == order.name
    assert_ledger_adds_up(online)
    text = written_text(online)
    for code in codes_delivered(online):
        assert code not in text
    # again: nothing new
    online.clock.advance(15)
    online.purchases.run_once()
    assert online.ledger.count("create_card") == 3
    assert len(online.events(Metric.GIFT_CARD_DELIVERED)) == 3


def test_gift_to_someone_else_delivers_to_recipient_and_confirms_to_purchaser(online):
    order = online.orders.purchase([{"sku": SKU, "quantity": 1, "price": "40.00",
                                     "properties": {"Recipient email": "bob@example.test", "Recipient name": "Bob Ray",
                                                    "Message": "Happy birthday"}}],
                                   email="ann@example.test", first_name="Ann")
    online.purchases.run_once()
    [delivery] = online.events(Metric.GIFT_CARD_DELIVERED)
    assert delivery.email == "bob@example.test" and delivery.properties["Message"] == "Happy birthday"
    [confirm] = online.events(Metric.PURCHASE_CONFIRMED)
    assert confirm.email == "ann@example.test" and confirm.properties["Recipient Email"] == "bob@example.test"
    assert delivery.properties["Code"].upper() not in repr(confirm.properties).upper()
    [crm] = online.events(Metric.GIFT_CARD_ISSUED)
    assert crm.email == "ann@example.test" and crm.properties["Recipient Email"] == "bob@example.test"
    card = online.book.cards[online.registry(key(order)).card_ids[0]]
    assert card.recipient_email == "bob@example.test" and card.purchaser_email == "ann@example.test"


def test_native_cards_late_wait_then_done(online):
    order = online.orders.purchase([{"sku": "NATIVE-50", "quantity": 2, "price": "50.00", "is_gift_card": True}],
                                   email="cy@example.test", native_hidden=True)
    online.purchases.run_once()
    assert online.registry(key(order)).status is OrderStatus.WAITING
    assert online.orders.tags_of(order.id) == []
    online.clock.advance(15)
    online.purchases.run_once()                          # second cycle: still nothing visible
    assert online.registry(key(order)).status is OrderStatus.WAITING
    online.orders.release_native(order.id)
    online.clock.advance(15)
    report = online.purchases.run_once()
    entry = online.registry(key(order))
    assert entry.status is OrderStatus.DONE and len(entry.card_ids) == 2 and report.cards_mirrored == 2
    cards = [online.book.cards[r] for r in entry.card_ids]
    assert {c.source for c in cards} == {CardSource.SHOPIFY_NATIVE} and all(c.code_hash is None for c in cards)
    assert not online.events(Metric.GIFT_CARD_DELIVERED)          # Shopify emails native cards itself
    assert len(online.events(Metric.GIFT_CARD_ISSUED)) == 2
    assert online.orders.tags_of(order.id) == ["giftsync-done"]
    assert_ledger_adds_up(online)


def test_native_cards_partly_visible_mirror_what_is_there_and_wait(online):
    order = online.orders.purchase([{"sku": "NATIVE-50", "quantity": 2, "price": "50.00", "is_gift_card": True}],
                                   email="cy@example.test", native_hidden=True)
    first = online.orders.native_cards(order.id)[0]
    entry = online.orders._orders[order.id]
    entry.issued = [(cid, lid, cid == first) for cid, lid, _ in entry.issued]
    online.purchases.run_once()
    row = online.registry(key(order))
    assert row.status is OrderStatus.WAITING and len(row.card_ids) == 1 and "1 of 2" in row.details
    online.orders.release_native()
    online.purchases.run_once()
    assert online.registry(key(order)).status is OrderStatus.DONE
    assert len(online.book.cards) == 2
    assert len(online.events(Metric.GIFT_CARD_ISSUED)) == 2        # no duplicate CRM event


class CrashAfterCreate(FakeGiftCardLedger):
    """Shopify creates the card, then the process dies before anything is recorded."""

    def __init__(self, inner: FakeGiftCardLedger) -> None:
        self.__dict__.update(inner.__dict__)

    def create_card(self, **kw):
        result = super().create_card(**kw)
        raise SystemExit("power cut after giftCardCreate")


def test_crash_between_create_and_record_never_makes_a_second_card(online):
    order = online.orders.purchase([{"sku": SKU, "quantity": 2, "price": "30.00"}], email="dee@example.test")
    crashing = CrashAfterCreate(online.ledger)
    online.rebuild(ledger=crashing)
    with pytest.raises(SystemExit):
        online.purchases.run_once()
    assert len(crashing.all_cards()) == 1 and not online.book.cards
    assert online.registry(key(order)).status is OrderStatus.PROCESSING
    online.ledger.__dict__.update(crashing.__dict__)        # the same Shopify, a new process
    online.rebuild()
    online.clock.advance(30)
    online.purchases.run_once()
    assert len(online.ledger.all_cards()) == 2               # the first one adopted, one more created
    entry = online.registry(key(order))
    assert entry.status is OrderStatus.DONE and len(entry.card_ids) == 2
    assert len(online.events(Metric.GIFT_CARD_DELIVERED)) == 2
    assert_ledger_adds_up(online)


def test_ambiguous_create_reads_back_and_adopts(online):
    online.orders.purchase([{"sku": SKU, "quantity": 1, "price": "10.00"}], email="eve@example.test")
    online.ledger.fail_next("create_card", AmbiguousError("shopify", "timeout"), applied=True)
    online.purchases.run_once()
    assert len(online.ledger.all_cards()) == 1 and len(online.book.cards) == 1


def test_failed_delivery_keeps_processing_then_finishes(online):
    order = online.orders.purchase([{"sku": SKU, "quantity": 1, "price": "10.00"}], email="fay@example.test")
    online.messenger.fail_next("send", RetriableError("klaviyo", "503"), times=3,    # the card's delivery,
                               when=lambda e: e.metric is Metric.GIFT_CARD_DELIVERED)  # not CRM/confirmation
    online.purchases.run_once()
    entry = online.registry(key(order))
    assert entry.status is OrderStatus.PROCESSING and entry.attempt.startswith("nonce:")
    assert any(r.activity is Activity.EMAIL_FAILED for r in online.book.all_receipts())
    assert online.orders.tags_of(order.id) == []
    online.clock.advance(15)
    online.purchases.run_once()
    assert online.registry(key(order)).status is OrderStatus.DONE
    assert online.ledger.count("create_card") == 1
    assert len(online.events(Metric.GIFT_CARD_DELIVERED)) == 1


@pytest.mark.parametrize("line,email,reason", [
    ({"sku": SKU, "quantity": 1, "price": "0"}, "a@example.test", "no positive unit price"),
    ({"sku": SKU, "quantity": 1, "price": "900"}, "a@example.test", "above the maximum"),
    ({"sku": SKU, "quantity": 1, "price": "10", "properties": {"Recipient email": "not-an-email"}},
     "a@example.test", "recipient email"),
    ({"sku": SKU, "quantity": 1, "price": "10"}, "", "no recipient email and no customer email"),
])
def test_bad_data_skips_the_order_and_the_run_goes_on(online, line, email, reason):
    bad = online.orders.purchase([line], email=email)
    good = online.orders.purchase([{"sku": SKU, "quantity": 1, "price": "10"}], email="ok@example.test")
    report = online.purchases.run_once()
    entry = online.registry(key(bad))
    assert entry.status is OrderStatus.SKIPPED and reason in entry.details
    assert online.registry(key(good)).status is OrderStatus.DONE and report.errors == 0
    assert online.messenger.by_id(f"alert:order-skipped:{key(bad)}") is not None
    assert online.ledger.count("create_card") == 1


def test_orders_without_gift_cards_are_left_alone(online):
    order = online.orders.purchase([{"sku": "MUG", "quantity": 1, "price": "12"}], email="g@example.test")
    online.purchases.run_once()
    assert online.registry(key(order)) is None and online.orders.tags_of(order.id) == []


def test_registry_written_before_tag_and_tag_finished_after_a_crash(online):
    order = online.orders.purchase([{"sku": SKU, "quantity": 1, "price": "10"}], email="h@example.test")
    online.orders.fail_next("tags_add", RetriableError("shopify", "503"))
    online.purchases.run_once()
    assert online.registry(key(order)).status is OrderStatus.DONE and online.orders.tags_of(order.id) == []
    online.purchases.run_once()
    assert online.orders.tags_of(order.id) == ["giftsync-done"]
    assert online.ledger.count("create_card") == 1


def test_watermark_never_passes_the_poll_start_and_failures_hold_it(online):
    online.orders.purchase([{"sku": SKU, "quantity": 1, "price": "10"}], email="i@example.test")
    started = online.clock.now()
    online.purchases.run_once()
    row = online.book.read_status("watermark:shopify-purchases")
    assert row is not None and datetime.fromisoformat(row.cursor) <= started
    online.clock.advance(60)
    failing = online.orders.purchase([{"sku": SKU, "quantity": 1, "price": "10"}], email="j@example.test")
    online.book.fail_next("save_order_entries", RetriableError("airtable", "503"), times=2)  # page's, order's
    report = online.purchases.run_once()
    assert report.errors == 1
    assert datetime.fromisoformat(online.book.read_status("watermark:shopify-purchases").cursor) < failing.updated_at
    online.clock.advance(15)
    online.purchases.run_once()
    assert online.registry(key(failing)).status is OrderStatus.DONE


def test_no_identity_at_all_is_a_crm_receipt_and_an_alert(online):
    order = online.orders.purchase([{"sku": "NATIVE-25", "quantity": 1, "price": "25", "is_gift_card": True}])
    online.purchases.run_once()
    card = online.book.cards[online.registry(key(order)).card_ids[0]]
    [row] = online.book.receipts_for_card(card.record_id)       # one row: the CRM outcome on the ISSUE row
    assert row.activity is Activity.ISSUE and row.extra["crm"]["outcome"] == "No customer identity"
    assert crm_relay.issued_link([row], card.shopify_id).outcome == "No customer identity"
    assert online.messenger.by_id(f"alert:crm:{card.shopify_id}") is not None
    assert not online.events(Metric.GIFT_CARD_ISSUED)


def test_mixed_order_giftsync_and_native_lines(online):
    order = online.orders.purchase([{"sku": SKU, "quantity": 1, "price": "20"},
                                    {"sku": "NATIVE-50", "quantity": 1, "price": "50", "is_gift_card": True}],
                                   email="k@example.test", native_hidden=True)
    online.purchases.run_once()
    entry = online.registry(key(order))
    assert entry.status is OrderStatus.WAITING and len(entry.card_ids) == 1
    assert not entry.attempt.startswith("nonce:")
    online.orders.release_native()
    online.purchases.run_once()
    entry = online.registry(key(order))
    assert entry.status is OrderStatus.DONE and len(entry.card_ids) == 2
    assert online.ledger.count("create_card") == 1 and len(online.events(Metric.GIFT_CARD_DELIVERED)) == 1
    assert_ledger_adds_up(online)


def test_native_card_met_in_a_shop_before_its_order_keeps_one_opening(online):
    """A native card bought online is checked (mirrored: the MIRROR receipt opens its ledger)
    and spent online before the purchase prong sees it issued. The late ISSUE receipt carries
    no amount: with one it would be a second opening and the ledger would count 50.00 twice."""
    from giftsync.prongs.context import StoreContext
    from giftsync.prongs.mirror import mirror_shopify_card
    order = online.orders.purchase([{"sku": "NATIVE-50", "quantity": 1, "price": "50.00", "is_gift_card": True}],
                                   email="cy@example.test", native_hidden=True)
    online.purchases.run_once()
    assert online.registry(key(order)).status is OrderStatus.WAITING
    [card_id] = online.orders.native_cards(order.id)
    ctx = StoreContext(book=online.book, ledger=online.ledger, messenger=online.messenger, clock=online.clock,
                       hasher=online.hasher, options=online.options)
    online.clock.advance(5)
    mirror = mirror_shopify_card(ctx, online.ledger.get_card(card_id), online.ledger.code_of(card_id),
                                 point="check.mirror", source="Balance Checks/recX")
    assert mirror.opened_at is not None and mirror.balance.amount == Decimal("50.00")
    online.clock.advance(5)
    online.orders.purchase([{"sku": "MUG", "quantity": 1, "price": "12"}], email="cy@example.test",
                           gift_card_payments=[(card_id, "12.00")])
    online.redemptions.run_once()
    online.orders.release_native(order.id)
    online.clock.advance(15)
    online.purchases.run_once()
    assert online.registry(key(order)).status is OrderStatus.DONE
    receipts = online.book.receipts_for_card(mirror.record_id)
    [issue] = [r for r in receipts if r.activity is Activity.ISSUE]
    assert issue.amount is None and "first mirrored" in issue.details
    assert issue.balance_after.amount == Decimal("38.00")
    assert_ledger_adds_up(online)
    online.clock.advance(online.online.overlap_seconds + 1)
    assert online.reconcile.run_once().adjusted == 0


def test_the_orders_of_a_page_are_handled_at_once(online):
    """Three orders on one page: their cards are created together (one slow order no longer holds
    up the others). Handled one at a time, the barrier would break and the orders fail."""
    barrier = threading.Barrier(3, timeout=10)
    original = online.ledger.create_card

    def create_card(**kw):
        barrier.wait()                 # passes only with three creates in flight at once
        return original(**kw)
    online.ledger.create_card = create_card
    orders = [online.orders.purchase([{"sku": SKU, "quantity": 1, "price": "10.00"}], email=f"c{i}@example.test")
              for i in range(3)]
    report = online.purchases.run_once()
    assert (report.orders, report.cards_issued, report.errors) == (3, 3, 0)
    for order in orders:
        assert online.registry(key(order)).status is OrderStatus.DONE
    assert len(online.events(Metric.GIFT_CARD_DELIVERED)) == 3
    assert_ledger_adds_up(online)


def test_poll_orders_with_a_pool_never_moves_the_watermark_over_a_failed_order():
    t0 = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)
    orders = [ShopifyOrder(id=f"gid://shopify/Order/{i}", name=f"#{i}", updated_at=t0 + timedelta(seconds=i))
              for i in range(5)]

    def handle(order: ShopifyOrder) -> bool:
        if order.name == "#3":
            raise RuntimeError("not caught by its handler")
        return order.name != "#2"
    with ThreadPoolExecutor(5) as pool:
        newest = poll_orders(lambda cursor: (orders, None), handle, max_pages=1, stop=lambda: False, pool=pool)
    assert newest == orders[2].updated_at - timedelta(microseconds=1)
    with ThreadPoolExecutor(5) as pool:
        assert poll_orders(lambda cursor: (orders, None), lambda o: True, max_pages=1, stop=lambda: False,
                           pool=pool) == orders[4].updated_at


def test_a_pages_registry_rows_are_read_and_written_in_one_request_each(online):
    orders = [online.orders.purchase([{"sku": SKU, "quantity": 1, "price": "10"}], email=f"p{i}@example.test")
              for i in range(4)]
    bad = online.orders.purchase([{"sku": SKU, "quantity": 1, "price": "0"}], email="p9@example.test")
    report = online.purchases.run_once()
    assert report.cards_issued == 4 and report.errors == 0 and report.skipped == 1
    assert online.book.count("order_entries") == 1 and online.book.count("order_entry") == 0
    [(_, (keys,))] = [c for c in online.book.calls if c[0] == "order_entries"]
    assert sorted(keys) == sorted(key(o) for o in [*orders, bad])
    saves = [args[0] for name, args in online.book.calls if name == "save_order_entries"]
    assert sorted(saves[0]) == sorted(key(o) for o in orders)          # one Processing write for the page
    assert saves[1:] == [[key(bad)], saves[-1]]                          # the bad one Skipped, then
    assert sorted(saves[-1]) == sorted(key(o) for o in orders)           # the page's Done rows in one write
    assert all(online.orders.tags_of(o.id) == ["giftsync-done"] for o in orders)
    for o in orders:
        entry = online.registry(key(o))
        assert entry.status is OrderStatus.DONE and len(entry.card_ids) == 1
    assert online.registry(key(bad)).status is OrderStatus.SKIPPED
    assert online.ledger.count("create_card") == 4
    assert online.ledger.count("find_by_code") == 0                      # a new order, not a resumed one
    assert_ledger_adds_up(online)


def test_a_page_whose_done_write_fails_is_resumed_without_a_second_card(online):
    orders = [online.orders.purchase([{"sku": SKU, "quantity": 1, "price": "10"}], email=f"x{i}@example.test")
              for i in range(3)]
    online.book.fail_next("save_order_entries", RetriableError("airtable", "503"),
                          when=lambda keys: len(keys) == 3 and all(online.registry(k) is not None for k in keys))
    started = online.clock.now()
    report = online.purchases.run_once()
    assert report.errors == 3 and online.ledger.count("create_card") == 3
    assert all(online.registry(key(o)).status is OrderStatus.PROCESSING for o in orders)
    assert all(online.orders.tags_of(o.id) == [] for o in orders)
    assert online.book.read_status("watermark:shopify-purchases") is None or \
        datetime.fromisoformat(online.book.read_status("watermark:shopify-purchases").cursor) < started
    online.clock.advance(15)
    online.purchases.run_once()
    assert all(online.registry(key(o)).status is OrderStatus.DONE for o in orders)
    assert online.ledger.count("create_card") == 3
    assert len(online.events(Metric.GIFT_CARD_ISSUED)) == 3
    assert_ledger_adds_up(online)


def test_an_order_done_whose_tag_failed_holds_the_watermark_and_is_tagged_next_cycle(online):
    """The Done rows go in the page's one write, the tags after it: a tag that does not go on
    counts as an error and keeps the watermark before that order, so the next poll finds it
    (still untagged) and tags it — even once the overlap window has passed (found in the fault
    soak: an order Done in Airtable but never tagged)."""
    orders = [online.orders.purchase([{"sku": SKU, "quantity": 1, "price": "10"}], email=f"g{i}@example.test")
              for i in range(3)]
    online.clock.advance(1)
    online.orders.fail_next("tags_add", RetriableError("shopify", "503"),
                            when=lambda order_id, tags: order_id == orders[1].id)
    report = online.purchases.run_once()
    assert report.errors == 1 and report.cards_issued == 3
    assert all(online.registry(key(o)).status is OrderStatus.DONE for o in orders)
    assert online.orders.tags_of(orders[1].id) == []
    assert online.orders.tags_of(orders[0].id) == online.orders.tags_of(orders[2].id) == ["giftsync-done"]
    mark = online.book.read_status("watermark:shopify-purchases")
    assert mark is None or datetime.fromisoformat(mark.cursor) < orders[1].updated_at
    online.clock.advance(online.online.overlap_seconds + 60)     # well past the overlap window
    report = online.purchases.run_once()
    assert report.errors == 0
    assert online.orders.tags_of(orders[1].id) == ["giftsync-done"]
    assert online.ledger.count("create_card") == 3                # nothing made twice


def test_a_page_write_that_fails_leaves_each_order_to_register_itself(online):
    orders = [online.orders.purchase([{"sku": SKU, "quantity": 1, "price": "10"}], email=f"t{i}@example.test")
              for i in range(3)]
    online.book.fail_next("save_order_entries", AmbiguousError("airtable", "timeout"), applied=True)
    report = online.purchases.run_once()
    assert report.errors == 0 and online.ledger.count("create_card") == 3
    assert online.book.count("order_entry") == 3                         # each read its own row again
    for o in orders:
        entry = online.registry(key(o))
        assert entry.status is OrderStatus.DONE and len(entry.card_ids) == 1
    assert_ledger_adds_up(online)


def test_a_page_read_that_fails_leaves_each_order_to_read_its_own_row(online):
    orders = [online.orders.purchase([{"sku": SKU, "quantity": 1, "price": "10"}], email=f"q{i}@example.test")
              for i in range(3)]
    online.book.fail_next("order_entries", RetriableError("airtable", "503"))
    report = online.purchases.run_once()
    assert report.errors == 0 and online.book.count("order_entry") == 3
    assert all(online.registry(key(o)).status is OrderStatus.DONE for o in orders)
    assert online.ledger.count("create_card") == 3


def test_the_page_read_asks_only_for_orders_that_sell_cards_and_keeps_nothing(online):
    card = online.orders.purchase([{"sku": SKU, "quantity": 1, "price": "10"}], email="r@example.test")
    online.orders.purchase([{"sku": "MUG", "quantity": 1, "price": "12"}], email="s@example.test")
    online.purchases.run_once()
    [(_, (keys,))] = [c for c in online.book.calls if c[0] == "order_entries"]
    assert keys == [key(card)]
    assert online.purchases._known.take(key(card)) == (False, None)    # nothing left over after the poll


def test_an_orders_receipts_are_one_write_one_row_per_card_with_its_crm_outcome(online):
    order = online.orders.purchase([{"sku": SKU, "quantity": 3, "price": "15"}], email="una@example.test")
    online.purchases.run_once()
    assert online.book.count("append_receipts") == 1
    entry = online.registry(key(order))
    for rid in entry.card_ids:
        [row] = online.book.receipts_for_card(rid)
        assert row.activity is Activity.ISSUE and row.amount.amount == Decimal("15")
        assert row.extra["crm"]["outcome"] == "Sent" and row.extra["crm"]["identity"] == "una@example.test"
        assert "CRM: Gift Card Issued sent" in row.details
    assert_ledger_adds_up(online)


def test_a_failed_delivery_still_records_the_card_and_its_crm_event_once(online):
    order = online.orders.purchase([{"sku": SKU, "quantity": 1, "price": "10.00"}], email="vic@example.test")
    online.messenger.fail_next("send", RetriableError("klaviyo", "503"), times=3,
                               when=lambda e: e.metric is Metric.GIFT_CARD_DELIVERED)
    online.purchases.run_once()
    assert online.registry(key(order)).status is OrderStatus.PROCESSING
    [card] = online.book.cards.values()
    [issue] = [r for r in online.book.receipts_for_card(card.record_id) if r.activity is Activity.ISSUE]
    assert issue.extra["crm"]["outcome"] == "Sent"          # recorded although the delivery failed
    online.clock.advance(15)
    online.purchases.run_once()
    assert online.registry(key(order)).status is OrderStatus.DONE
    assert len(online.events(Metric.GIFT_CARD_ISSUED)) == 1  # the resume sends no second CRM event
    rows = online.book.receipts_for_card(card.record_id)
    assert [r.activity for r in rows].count(Activity.ISSUE) == 1
    assert not [r for r in rows if r.activity is Activity.CRM]


class RefuseSecondCreate(FakeGiftCardLedger):
    """Shopify makes the first card of an order and refuses the second."""

    def __init__(self, inner: FakeGiftCardLedger) -> None:
        self.__dict__.update(inner.__dict__)

    def create_card(self, **kw):
        if self.count("create_card") >= 1:
            self._enter("create_card", "refused")
            return CreateCardResult(error="Initial value is above the shop's limit")
        return super().create_card(**kw)


def test_a_refusal_mid_order_records_the_cards_made_before_the_row_is_skipped(online):
    order = online.orders.purchase([{"sku": SKU, "quantity": 2, "price": "40"}], email="wes@example.test")
    online.rebuild(ledger=RefuseSecondCreate(online.ledger))
    online.purchases.run_once()
    entry = online.registry(key(order))
    assert entry.status is OrderStatus.SKIPPED and "card 2 of 2" in entry.details
    [card] = online.book.cards.values()
    [issue] = online.book.receipts_for_card(card.record_id)
    assert issue.activity is Activity.ISSUE and issue.amount.amount == Decimal("40")
    writes = [name for name, _ in online.book.calls if name in ("append_receipts", "save_order_entries")]
    # registered, the card's receipt, then Skipped (then the alert's row)
    assert writes == ["save_order_entries", "append_receipts", "save_order_entries", "append_receipts"]
    assert_ledger_adds_up(online)
