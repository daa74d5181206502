"""A card request whose ISSUE receipts failed to write, resumed after the recipient already
spent a card: the late ISSUE receipt is dated when the card was made, so the ledger still ends
on Shopify's balance (found by the issue 6 soak: the late receipt, dated at the resume, became
the card's last receipt with the balance before the spend)."""
from __future__ import annotations

from decimal import Decimal

from giftsync.domain.codes import normalise_code
from giftsync.domain.emails import Metric
from giftsync.errors import RetriableError
from giftsync.ports import FormTable

from .conftest import assert_ledger_adds_up


def test_late_issue_receipt_is_dated_at_the_cards_creation(world):
    rid = world.book.add_card_request(world.store, "25", 1, recipient_email="r@example.test")
    world.book.fail_next("append_receipts", RetriableError("airtable", "429"), times=1)
    world.run()
    assert world.form(FormTable.CARD_REQUESTS, rid)["Status"] == "Processing"
    [delivered] = world.events(Metric.GIFT_CARD_DELIVERED)
    code = normalise_code(delivered.properties["Code"])
    world.clock.advance(60)
    spend = world.book.add_redemption(code, "14.41", world.store)   # the recipient spends it in a shop
    world.run()
    assert world.form(FormTable.REDEMPTIONS, spend)["Status"] == "Done"
    world.clock.advance(60)
    world.run()
    assert world.form(FormTable.CARD_REQUESTS, rid)["Status"] == "Done"
    [card] = world.book.cards.values()
    rows = [r for r in world.book.receipts_for_card(card.record_id) if r.balance_after is not None]
    rows.sort(key=lambda r: r.time)
    assert rows[0].receipt_id == f"issue:{rid}:0" and rows[-1].balance_after.amount == Decimal("10.59")
    assert_ledger_adds_up(world)
