"""Reconciliation against the fakes: admin adjustments found by the walk and by the full
pass, status changes, the watermark, and a store redemption in flight left alone."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from giftsync.domain.cards import CardStatus
from giftsync.domain.ledger import Activity, Channel
from giftsync.prongs.reconcile import FULL_PASS_ROW, WALK_WATERMARK

from .online_world import assert_ledger_adds_up, online  # noqa: F401


def adjustments(world):
    return [r for r in world.book.all_receipts() if r.activity is Activity.ADJUST]


def test_full_pass_catches_an_admin_adjustment(online):
    _, card_id, mirror = online.mirrored("50.00")
    online.ledger.adjust(card_id, "-7.50", note="goodwill correction")
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
    started = online.clock.now()
    report = online.redemptions.run_once()
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
    report = online.reconcile.run_once()
    assert report.missing_in_shopify == 1 and report.adjusted == 1 and report.errors == 0
