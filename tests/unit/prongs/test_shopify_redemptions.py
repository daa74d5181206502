"""The Shopify redemption prong against the fakes: one card, two cards, a card never
mirrored, refunds, crashes half-way, and the ledger adding up."""
from __future__ import annotations

from decimal import Decimal

from giftsync.domain.emails import Metric
from giftsync.domain.ledger import Activity, Channel
from giftsync.errors import RetriableError
from giftsync.ports import OrderKind, OrderStatus
from giftsync.prongs.online import numeric, order_key

from .online_world import Online, assert_ledger_adds_up, online  # noqa: F401


def key(order) -> str:
    return order_key(OrderKind.REDEMPTION, order.id)


def receipt_of(world: Online, order, payment) -> object:
    return world.book.receipts[f"online:{numeric(order.id)}:{numeric(payment.id)}"]


def test_one_card_pays_part_of_an_order(online):
    _, card_id, mirror = online.mirrored("50.00", recipient_email="holder@example.test")
    order = online.orders.purchase([{"sku": "MUG", "quantity": 1, "price": "30"}], email="buyer@example.test",
                                   gift_card_payments=[(card_id, "20.00")])
    report = online.redemptions.run_once()
    assert report.redeemed == 1 and report.errors == 0
    [payment] = order.payments
    receipt = receipt_of(online, order, payment)
    assert receipt.activity is Activity.REDEEM and receipt.channel is Channel.ONLINE
    assert receipt.amount.amount == Decimal("-20.00") and receipt.balance_after.amount == Decimal("30.00")
    assert order.name in receipt.source
    assert online.book.cards[mirror.record_id].balance.amount == Decimal("30.00")
    entry = online.registry(key(order))
    assert entry.status is OrderStatus.DONE and entry.transactions == [payment.id]
    assert online.orders.tags_of(order.id) == ["giftsync-redeemed"]
    [crm] = online.events(Metric.GIFT_CARD_REDEEMED)
    assert crm.email == "buyer@example.test" and crm.properties["Channel"] == "Online"
    assert_ledger_adds_up(online)
    online.redemptions.run_once()                           # seen again: nothing twice
    assert len(online.events(Metric.GIFT_CARD_REDEEMED)) == 1
    assert len([r for r in online.book.all_receipts() if r.activity is Activity.REDEEM]) == 1


def test_two_cards_on_one_order(online):
    _, a, ma = online.mirrored("10.00")
    _, b, mb = online.mirrored("40.00")
    order = online.orders.purchase([{"sku": "LAMP", "quantity": 1, "price": "35"}], email="two@example.test",
                                   gift_card_payments=[(a, "10.00"), (b, "25.00")])
    online.redemptions.run_once()
    assert online.book.cards[ma.record_id].balance.amount == 0
    assert online.book.cards[mb.record_id].balance.amount == Decimal("15.00")
    entry = online.registry(key(order))
    assert set(entry.card_ids) == {ma.record_id, mb.record_id} and len(entry.transactions) == 2
    assert_ledger_adds_up(online)


def test_card_never_mirrored_is_skipped_and_counted(online):
    native = online.ledger.add_card("ONLYONLINE0001", "60.00")
    _, mine, mirror = online.mirrored("20.00")
    order = online.orders.purchase([{"sku": "LAMP", "quantity": 1, "price": "50"}], email="x@example.test",
                                   gift_card_payments=[(native.id, "40.00"), (mine, "10.00")])
    report = online.redemptions.run_once()
    assert report.skipped_cards == 1 and report.redeemed == 1
    entry = online.registry(key(order))
    assert entry.status is OrderStatus.DONE and "1 skipped" in entry.details and "0001" in entry.details
    assert online.book.card_by_shopify_id(native.id) is None        # not mirrored by this prong
    assert len(online.book.cards) == 1
    assert_ledger_adds_up(online)


def test_refund_to_a_card_later_is_a_credit(online):
    _, card_id, mirror = online.mirrored("50.00")
    order = online.orders.purchase([{"sku": "LAMP", "quantity": 1, "price": "50"}], email="r@example.test",
                                   gift_card_payments=[(card_id, "50.00")])
    online.redemptions.run_once()
    online.clock.advance(3600)
    online.orders.refund(order.id, card_id, "15.00")
    online.redemptions.run_once()
    credit = [r for r in online.book.all_receipts() if r.activity is Activity.CREDIT]
    assert len(credit) == 1 and credit[0].amount.amount == Decimal("15.00")
    assert credit[0].balance_after.amount == Decimal("15.00")
    assert online.book.cards[mirror.record_id].balance.amount == Decimal("15.00")
    assert len(online.registry(key(order)).transactions) == 2
    assert len(online.events(Metric.GIFT_CARD_REDEEMED)) == 1       # no CRM redemption for a refund
    assert_ledger_adds_up(online)


def test_failure_half_way_resumes_without_doing_anything_twice(online):
    _, a, ma = online.mirrored("30.00")
    _, b, mb = online.mirrored("30.00")
    order = online.orders.purchase([{"sku": "LAMP", "quantity": 1, "price": "20"}], email="y@example.test",
                                   gift_card_payments=[(a, "10.00"), (b, "10.00")])
    online.ledger.fail_next("get_card", RetriableError("shopify", "503"))
    report = online.redemptions.run_once()
    assert report.errors >= 1
    assert online.registry(key(order)).status is OrderStatus.PROCESSING
    online.redemptions.run_once()
    assert online.registry(key(order)).status is OrderStatus.DONE
    assert online.book.cards[ma.record_id].balance.amount == Decimal("20.00")
    assert online.book.cards[mb.record_id].balance.amount == Decimal("20.00")
    assert len([r for r in online.book.all_receipts() if r.activity is Activity.REDEEM]) == 2
    assert_ledger_adds_up(online)


def test_redemption_of_an_online_bought_card_credits_crm_to_the_payer(online):
    from .online_world import SKU
    bought = online.orders.purchase([{"sku": SKU, "quantity": 1, "price": "25"}], email="gifter@example.test")
    online.purchases.run_once()
    card = next(iter(online.book.cards.values()))
    online.clock.advance(60)
    online.orders.purchase([{"sku": "MUG", "quantity": 1, "price": "12"}], email="gifter@example.test",
                           gift_card_payments=[(card.shopify_id, "12.00")])
    online.redemptions.run_once()
    assert online.book.cards[card.record_id].balance.amount == Decimal("13.00")
    assert_ledger_adds_up(online)
    assert bought.name


def test_payment_made_before_the_card_was_mirrored_is_not_counted_twice(online):
    """A Shopify-native card paid with online, then met in a shop (mirrored with the balance
    Shopify holds then, the payment included) before the order poll saw the order: the
    order's REDEEM receipt must not subtract the payment a second time (the soak's ledger-sum)."""
    from giftsync.prongs.context import StoreContext
    from giftsync.prongs.mirror import mirror_shopify_card
    from giftsync.domain.codes import generate_code
    code = generate_code()
    shop = online.ledger.add_card(code, "50.00")
    order = online.orders.purchase([{"sku": "MUG", "quantity": 1, "price": "20"}], email="buyer@example.test",
                                   gift_card_payments=[(shop.id, "20.00")])
    online.clock.advance(5)
    ctx = StoreContext(book=online.book, ledger=online.ledger, messenger=online.messenger, clock=online.clock,
                       hasher=online.hasher, options=online.options)
    mirror = mirror_shopify_card(ctx, online.ledger.get_card(shop.id), code, point="check.mirror",
                                 source="Balance Checks/recX")
    assert mirror.balance.amount == Decimal("30.00")
    online.clock.advance(5)
    online.orders.refund(order.id, shop.id, "4.00")       # after the mirror: a movement of its own
    report = online.redemptions.run_once()
    assert report.redeemed == 1 and report.credited == 1 and report.errors == 0
    sale, refund = order.payments[0], online.orders.order(order.id).payments[1]
    redeem = receipt_of(online, order, sale)
    assert redeem.activity is Activity.REDEEM and redeem.amount is None
    assert "opening balance" in redeem.details
    assert receipt_of(online, order, refund).amount.amount == Decimal("4.00")
    assert_ledger_adds_up(online)
    online.clock.advance(online.online.overlap_seconds + 1)
    assert online.reconcile.run_once().adjusted == 0     # the full pass finds nothing to correct


def test_order_seen_after_the_claim_window_is_not_counted_twice(online):
    """Under a backlog the order poll can reach an order later than the claim window; by then
    the reconciler has recorded its payment as an ADJUST. The order's REDEEM receipt keeps the
    trail (order, balance after) with no amount: the ledger counts the money once (the full
    fault soak found 56 cards counted twice this way)."""
    _, card_id, mirror = online.mirrored("50.00")
    order = online.orders.purchase([{"sku": "MUG", "quantity": 1, "price": "20"}], email="buyer@example.test",
                                   gift_card_payments=[(card_id, "20.00")])
    online.clock.advance(online.online.overlap_seconds + 1)
    assert online.reconcile.run_once().adjusted == 1          # nobody claimed the 20.00 in time
    report = online.redemptions.run_once()
    assert report.redeemed == 1 and report.errors == 0
    redeem = receipt_of(online, order, order.payments[0])
    assert redeem.amount is None and "already in the ledger" in redeem.details
    assert redeem.balance_after.amount == Decimal("30.00") and redeem.source == f"Order {order.name}"
    assert_ledger_adds_up(online)
    assert online.reconcile.run_once().adjusted == 0


def test_sale_and_refund_seen_together_both_count(online):
    """A payment and its refund reach the prong in one go: the card's receipts already equal
    Shopify's balance, but because the two cancel out, not because anything recorded them."""
    _, card_id, mirror = online.mirrored("50.00")
    order = online.orders.purchase([{"sku": "MUG", "quantity": 1, "price": "20"}], email="buyer@example.test",
                                   gift_card_payments=[(card_id, "20.00")])
    online.clock.advance(5)
    online.orders.refund(order.id, card_id, "20.00")
    report = online.redemptions.run_once()
    assert report.redeemed == 1 and report.credited == 1
    sale, refund = online.orders.order(order.id).payments[:2]
    assert receipt_of(online, order, sale).amount.amount == Decimal("-20.00")
    assert receipt_of(online, order, refund).amount.amount == Decimal("20.00")
    assert_ledger_adds_up(online)


def test_a_pages_registry_rows_are_read_in_one_request(online):
    _, card_id, _ = online.mirrored("100.00", recipient_email="holder@example.test")
    orders = [online.orders.purchase([{"sku": "MUG", "quantity": 1, "price": "10"}], email=f"b{i}@example.test",
                                     gift_card_payments=[(card_id, "5.00")]) for i in range(3)]
    report = online.redemptions.run_once()
    assert report.redeemed == 3 and report.errors == 0
    assert online.book.count("order_entries") == 1 and online.book.count("order_entry") == 0
    assert all(online.registry(key(o)).status is OrderStatus.DONE for o in orders)
    online.book.fail_next("order_entries", RetriableError("airtable", "503"))
    more = online.orders.purchase([{"sku": "MUG", "quantity": 1, "price": "10"}], email="b9@example.test",
                                  gift_card_payments=[(card_id, "5.00")])
    online.clock.advance(15)
    report = online.redemptions.run_once()
    assert report.errors == 0 and online.registry(key(more)).status is OrderStatus.DONE
    assert online.book.count("order_entry") >= 1
    assert_ledger_adds_up(online)
