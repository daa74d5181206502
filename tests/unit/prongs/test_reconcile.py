"""Reconciliation against the fakes: admin adjustments found by the walk and by the full
pass, status changes, the watermark, and a store redemption in flight left alone."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from giftsync.domain.cards import CardKind, CardSource, CardStatus, MirrorCard
from giftsync.domain.codes import generate_code
from giftsync.domain.ledger import Activity, Channel, Receipt
from giftsync.domain.money import Money
from giftsync.prongs.reconcile import FULL_PASS_ROW, WALK_WATERMARK

from .online_world import assert_ledger_adds_up, online  # noqa: F401


def adjustments(world):
    return [r for r in world.book.all_receipts() if r.activity is Activity.ADJUST]


def past_claim(world):
    """Past the window in which a movement may still be claimed by an online order."""
    world.clock.advance(world.online.overlap_seconds + 1)


def test_full_pass_catches_an_admin_adjustment(online):
    _, card_id, mirror = online.mirrored("50.00")
    online.ledger.adjust(card_id, "-7.50", note="goodwill correction")
    past_claim(online)
    report = online.reconcile.run_once()
    assert report.adjusted == 1 and report.checked == 1
    [adj] = adjustments(online)
    assert adj.amount.amount == Decimal("-7.50") and adj.balance_after.amount == Decimal("42.50")
    assert adj.channel is Channel.ADMIN and "goodwill correction" in adj.details
    assert online.book.cards[mirror.record_id].balance.amount == Decimal("42.50")
    assert online.book.read_status(FULL_PASS_ROW).last_run is not None
    assert_ledger_adds_up(online)
    online.reconcile.run_once()                             # nothing new: no second receipt
    assert len(adjustments(online)) == 1


def test_walk_finds_recent_changes_and_keeps_its_watermark(online):
    _, card_id, mirror = online.mirrored("50.00")
    online.redemptions.run_once()                           # first walk: sets the watermark only
    first = datetime.fromisoformat(online.book.read_status(WALK_WATERMARK).cursor)
    online.clock.advance(60)
    online.ledger.adjust(card_id, "10.00", note="admin top-up")
    report = online.redemptions.run_once()
    assert report.adjusted == 0                             # an order may still claim it: left alone ...
    assert datetime.fromisoformat(online.book.read_status(WALK_WATERMARK).cursor) < online.clock.now()
    past_claim(online)
    started = online.clock.now()
    report = online.redemptions.run_once()                  # ... and seen again by the next walks
    assert report.adjusted == 1
    mark = datetime.fromisoformat(online.book.read_status(WALK_WATERMARK).cursor)
    assert first < mark <= started
    assert online.book.cards[mirror.record_id].balance.amount == Decimal("60.00")
    assert_ledger_adds_up(online)


def test_status_changes_are_mirrored(online):
    _, card_id, mirror = online.mirrored("20.00")
    online.ledger.deactivate(card_id)
    report = online.reconcile.run_once()
    assert report.status_changed == 1
    assert online.book.cards[mirror.record_id].status is CardStatus.DISABLED
    assert any(r.outcome == "Status Disabled" for r in adjustments(online))


def test_a_store_redemption_in_flight_is_left_to_its_flow(online):
    _, card_id, mirror = online.mirrored("50.00")
    online.clock.advance(5)
    from giftsync.domain.money import Money
    online.ledger.debit(card_id, Money.of("5", "USD"), note="giftsync:recInFlight", processed_at=online.clock.now())
    report = online.reconcile.run_once()
    assert report.deferred == 1 and not adjustments(online)
    online.clock.advance(3600)                              # the flow never finished: now it is drift
    report = online.reconcile.run_once()
    assert report.adjusted == 1
    assert_ledger_adds_up(online)


def test_cards_missing_in_shopify_are_counted_not_fatal(online):
    from giftsync.domain.cards import MirrorCard
    from giftsync.domain.money import Money
    online.book.save_cards([MirrorCard(record_id=None, shopify_id="gid://shopify/GiftCard/1", last4="ZZZZ",
                                       balance=Money.of("5", "USD"))])
    _, card_id, _ = online.mirrored("10.00")
    online.ledger.adjust(card_id, "1")
    past_claim(online)
    report = online.reconcile.run_once()
    assert report.missing_in_shopify == 1 and report.adjusted == 1 and report.errors == 0


# -- the search-lag race: a movement is in Receipts exactly once (docs/adr/0004-online-ledger.md) ------------

def movements(world, record_id):
    return [r for r in world.book.receipts_for_card(record_id) if r.amount is not None]


def test_walk_before_the_redemption_prong_leaves_an_order_payment_to_it(online):
    _, card_id, mirror = online.mirrored("50.00")
    online.redemptions.run_once()                           # first walk: watermark
    online.clock.advance(30)
    online.orders.purchase([{"sku": "MUG", "price": "12.00"}], email="ann@example.test",
                           gift_card_payments=[(card_id, "12.00")])
    report = online.redemptions.reconciler.walk()           # the order is not in search yet
    assert report.deferred == 1 and report.adjusted == 0 and not adjustments(online)
    assert online.reconcile.run_once().adjusted == 0        # nor does the full pass take it
    online.clock.advance(5)
    assert online.redemptions.run_once().redeemed == 1      # the order shows up: REDEEM, once
    past_claim(online)
    online.redemptions.run_once()
    online.reconcile.run_once()
    assert [r.activity for r in movements(online, mirror.record_id)] == [Activity.REDEEM]
    assert sum(r.amount.amount for r in movements(online, mirror.record_id)) == Decimal("-12.00")
    assert_ledger_adds_up(online)


def test_an_adjustment_absorbed_by_a_later_redemption_is_still_recorded(online):
    """The other side of the race: an admin change, then an online payment recorded first
    (its balance-after already holds both). The ledger, not the mirror, shows what is missing."""
    _, card_id, mirror = online.mirrored("50.00")
    online.redemptions.run_once()
    online.clock.advance(30)
    online.ledger.adjust(card_id, "5.00", note="goodwill")
    online.orders.purchase([{"sku": "MUG", "price": "12.00"}], email="ann@example.test",
                           gift_card_payments=[(card_id, "12.00")])
    report = online.redemptions.run_once()
    assert report.redeemed == 1 and report.adjusted == 0    # within the claim window: left alone
    assert online.book.cards[mirror.record_id].balance.amount == Decimal("43.00")
    past_claim(online)
    assert online.redemptions.run_once().adjusted == 1
    amounts = sorted(r.amount.amount for r in movements(online, mirror.record_id))
    assert amounts == [Decimal("-12.00"), Decimal("5.00")]
    online.reconcile.run_once()                             # nothing left for the full pass
    assert len(adjustments(online)) == 1
    assert_ledger_adds_up(online)


def test_a_refund_seen_by_the_walk_first_is_one_credit(online):
    _, card_id, mirror = online.mirrored("50.00")
    order = online.orders.purchase([{"sku": "MUG", "price": "12.00"}], email="ann@example.test",
                                   gift_card_payments=[(card_id, "12.00")])
    online.redemptions.run_once()
    online.clock.advance(30)
    online.orders.refund(order.id, card_id, "4.00")
    assert online.redemptions.reconciler.walk().adjusted == 0
    assert online.redemptions.run_once().credited == 1
    past_claim(online)
    online.redemptions.run_once()
    online.reconcile.run_once()
    assert sorted(r.amount.amount for r in movements(online, mirror.record_id)) == [Decimal("-12.00"),
                                                                                   Decimal("4.00")]
    assert not adjustments(online)
    assert_ledger_adds_up(online)


def test_mirror_behind_a_complete_ledger_is_set_without_a_receipt(online):
    """A flow wrote its receipt and stopped before the balance cell: no ADJUST for it."""
    from giftsync.domain.ledger import Receipt
    from giftsync.domain.money import Money
    _, card_id, mirror = online.mirrored("50.00")
    online.ledger.debit(card_id, Money.of("5", "USD"), note="giftsync:recDone", processed_at=online.clock.now())
    online.book.append_receipts([Receipt("redeem:recDone", online.clock.now(), Activity.REDEEM, Channel.STORE,
                                         card_record_id=mirror.record_id, card_masked=mirror.masked,
                                         amount=Money.of("-5", "USD"), balance_after=Money.of("45", "USD"))])
    report = online.reconcile.run_once()
    assert report.adjusted == 0 and not adjustments(online)
    assert online.book.cards[mirror.record_id].balance.amount == Decimal("45.00")


def test_a_stale_last_balance_after_is_restated_without_money(online):
    """Two prongs wrote out of order (the later row from an earlier read): amounts add up, the
    last balance-after does not; a zero ADJUST restates it."""
    from datetime import timedelta
    from giftsync.domain.ledger import Receipt
    from giftsync.domain.money import Money
    _, card_id, mirror = online.mirrored("50.00")
    now = online.clock.now()
    online.ledger.debit(card_id, Money.of("5", "USD"), note="giftsync:recA", processed_at=now)
    online.ledger.debit(card_id, Money.of("3", "USD"), note="giftsync:recB", processed_at=now)
    online.book.append_receipts([
        Receipt("redeem:recB", now, Activity.REDEEM, Channel.STORE, card_record_id=mirror.record_id,
                amount=Money.of("-3", "USD"), balance_after=Money.of("42", "USD")),
        Receipt("redeem:recA", now + timedelta(seconds=1), Activity.REDEEM, Channel.STORE,
                card_record_id=mirror.record_id, amount=Money.of("-5", "USD"), balance_after=Money.of("45", "USD"))])
    online.clock.advance(5)
    report = online.reconcile.run_once()
    assert report.adjusted == 0
    [restated] = adjustments(online)
    assert restated.amount.amount == 0 and restated.balance_after.amount == Decimal("42.00")
    assert_ledger_adds_up(online)
    online.clock.advance(5)
    online.reconcile.run_once()
    assert len(adjustments(online)) == 1


def test_a_slow_cycle_still_leaves_a_payment_made_after_its_poll_to_the_order(online):
    """The claim window counts from when the order poll began, not from when the walk runs."""
    _, card_id, mirror = online.mirrored("50.00")
    online.redemptions.run_once()
    online.clock.advance(30)
    polled_at = online.clock.now()                          # the poll begins (and finds nothing) ...
    online.clock.advance(1)
    online.orders.purchase([{"sku": "MUG", "price": "12.00"}], email="ann@example.test",
                           gift_card_payments=[(card_id, "12.00")])
    past_claim(online)                                      # ... the cycle is slow: the walk comes late
    report = online.redemptions.reconciler.walk(orders_polled_at=polled_at)
    assert report.deferred == 1 and not adjustments(online)
    assert online.redemptions.run_once().redeemed == 1
    assert [r.activity for r in movements(online, mirror.record_id)] == [Activity.REDEEM]
    assert_ledger_adds_up(online)


def test_the_walk_reads_no_airtable_for_a_card_unchanged_since_it_added_up(online):
    _, card_id, mirror = online.mirrored("50.00")
    online.redemptions.run_once()
    online.clock.advance(30)
    online.ledger.adjust(card_id, "1.00", note="top-up")
    past_claim(online)
    assert online.redemptions.reconciler.walk().adjusted == 1
    online.redemptions.reconciler.walk()                    # settles (ledger adds up)
    calls = online.book.count("card_by_shopify_id")
    report = online.redemptions.reconciler.walk()           # re-met in the overlap, unchanged
    assert report.checked == 1 and online.book.count("card_by_shopify_id") == calls
    online.ledger.adjust(card_id, "1.00", note="again")     # changed: read again
    online.redemptions.reconciler.walk()
    assert online.book.count("card_by_shopify_id") == calls + 1


def test_first_walk_that_failed_leaves_no_gap(online):
    """The first walks of a process fail (Status throttled under faults); a card changed in
    between is still walked once a walk gets through (it used to set the watermark at its own
    start, and the change was left to the nightly full pass)."""
    from giftsync.errors import RetriableError
    _, card_id, mirror = online.mirrored("50.00")
    online.book.fail_next("read_status", RetriableError("airtable", "429 RATE_LIMIT_REACHED"), times=50)
    online.redemptions.run_once()                           # the walk step fails: no watermark
    online.book.clear_failures()
    assert online.book.read_status(WALK_WATERMARK) is None
    online.clock.advance(30)
    online.ledger.adjust(card_id, "3.50", note="admin top-up")
    online.clock.advance(online.online.overlap_seconds + 30)   # the walks keep failing a while
    online.redemptions.run_once()                           # first walk that gets through: watermark
    past_claim(online)
    report = online.redemptions.run_once()
    assert report.adjusted == 1
    assert online.book.cards[mirror.record_id].balance.amount == Decimal("53.50")
    assert_ledger_adds_up(online)
    assert online.reconcile.run_once().adjusted == 0


def test_a_store_debit_is_in_flight_until_its_receipt_even_after_another_prong_synced_the_card(online):
    """A store batch's debit is done but its receipts are written after every debit of the
    batch; meanwhile an online payment's receipt sets the card's balance and Last Synced. The
    debit is still in flight (no receipt carries its key): no ADJUST for its money (it used to
    be adjusted, then the store REDEEM counted it a second time)."""
    from giftsync.domain.money import Money
    _, card_id, mirror = online.mirrored("50.00")
    online.clock.advance(5)
    online.ledger.debit(card_id, Money.of("5", "USD"), note="giftsync:recStoreBatch01", processed_at=online.clock.now())
    online.clock.advance(2)
    online.book.set_balances({mirror.record_id: (online.ledger.balance_of(card_id), online.clock.now())})
    report = online.reconcile.run_once()
    assert report.deferred == 1 and report.adjusted == 0 and not adjustments(online)
    online.book.append_receipts([online.reconcile.ctx.receipt(
        "redeem:recStoreBatch01", Activity.REDEEM, card_record_id=mirror.record_id, card_masked=mirror.masked,
        amount=Money.of("-5", "USD"), balance_after=online.ledger.balance_of(card_id),
        correlation_id="giftsync:recStoreBatch01")])
    report = online.reconcile.run_once()
    assert report.adjusted == 0 and report.deferred == 0 and not adjustments(online)
    assert_ledger_adds_up(online)


def test_a_balance_read_before_a_recorded_debit_is_read_again_not_adjusted(online):
    """The walk lists a card (balance 25.00); a store debit of 20.28 then happens and its
    REDEEM receipt is written; then the walk reaches the card and reads its receipts. The
    receipts hold the debit, the listed balance does not: the card is read again instead of
    adjusted (an ADJUST of +20.28 from the stale figure was found by the full fault soak)."""
    from giftsync.domain.money import Money
    _, card_id, mirror = online.mirrored("25.00")
    listed = online.ledger.get_card(card_id)                  # the walk's page, read first
    online.clock.advance(3)
    online.ledger.debit(card_id, Money.of("20.28", "USD"), note="giftsync:recStoreDebit01",
                        processed_at=online.clock.now())
    online.book.append_receipts([online.reconcile.ctx.receipt(
        "redeem:recStoreDebit01", Activity.REDEEM, card_record_id=mirror.record_id, card_masked=mirror.masked,
        amount=Money.of("-20.28", "USD"), balance_after=online.ledger.balance_of(card_id),
        correlation_id="giftsync:recStoreDebit01")])
    past_claim(online)
    from giftsync.prongs.reconcile import ReconcileReport
    report = ReconcileReport()
    online.reconcile.reconciler.check(online.book.card(mirror.record_id), listed, report, walk=True)
    assert report.adjusted == 0 and report.deferred == 0 and not adjustments(online)
    assert online.book.cards[mirror.record_id].balance.amount == Decimal("4.72")
    assert_ledger_adds_up(online)


def lost_opening(world, *, paid_before: str = "1.39"):
    """A Shopify card paid online, then mirrored by a balance check whose MIRROR row was lost
    (the receipts write failed after the Gift Cards save; the retry found the card by hash)."""
    code = generate_code()
    shop = world.ledger.add_card(code, "500.00")
    world.ledger.adjust(shop.id, f"-{paid_before}", note="")      # an online payment before the mirror
    world.clock.advance(5)
    opened = world.clock.now()
    balance = world.ledger.get_card(shop.id).balance
    mirror = world.book.save_cards([MirrorCard(
        record_id=None, shopify_id=shop.id, last4=shop.last4, balance=balance, code_hash=world.hasher.hash(code),
        initial_value=Money.of("500.00", "USD"), kind=CardKind.DIGITAL, source=CardSource.SHOPIFY_NATIVE,
        last_synced=opened, opened_at=opened)])[0]
    return shop, mirror, opened


def test_a_lost_opening_row_is_restored_not_adjusted(online):
    shop, mirror, opened = lost_opening(online)
    online.clock.advance(2)                                             # redeemed in a shop after the mirror
    online.ledger.debit(shop.id, Money.of("10.00", "USD"), note="giftsync:recStoreRedeem1")
    online.book.append_receipts([Receipt(
        receipt_id="redeem:recStoreRedeem1", time=online.clock.now(), activity=Activity.REDEEM, channel=Channel.STORE,
        card_record_id=mirror.record_id, card_masked=mirror.masked, amount=Money.of("-10.00", "USD"),
        balance_after=Money.of("488.61", "USD"), correlation_id="giftsync:recStoreRedeem1")])
    past_claim(online)
    report = online.reconcile.run_once()
    assert report.adjusted == 0 and adjustments(online) == []
    [opening] = [r for r in online.book.receipts_for_card(mirror.record_id) if r.activity is Activity.MIRROR]
    assert opening.receipt_id == f"mirror:{shop.id}" and opening.balance_after.amount == Decimal("498.61")
    assert opening.amount is None and opening.time == opened          # dated at the opening read
    assert_ledger_adds_up(online)
    online.reconcile.run_once()                                         # nothing more
    assert len(online.book.receipts_for_card(mirror.record_id)) == 2 and adjustments(online) == []


def test_a_lost_opening_waits_while_a_movement_may_still_be_recorded(online):
    shop, mirror, _ = lost_opening(online)
    online.ledger.adjust(shop.id, "-3.00", note="")                   # an order's payment, its order not seen yet
    online.reconcile.run_once()
    assert online.book.receipts_for_card(mirror.record_id) == []       # neither restored nor adjusted
