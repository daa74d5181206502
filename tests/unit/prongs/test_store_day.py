"""A compressed store day against the fakes: every outcome, then the global invariants."""
from __future__ import annotations

from giftsync.domain.emails import Metric
from giftsync.domain.ledger import Activity
from giftsync.errors import AmbiguousError, RetriableError
from giftsync.ports import FormTable

from .conftest import assert_ledger_adds_up, assert_no_whole_codes


def test_store_day_keeps_codes_out_and_the_ledger_adding_up(world, caplog):
    caplog.set_level("DEBUG", logger="giftsync")
    a, _, _ = world.card("100", recipient_email="holder@example.test")
    b, _, _ = world.card("20")
    native, _, _ = world.card("60", mirrored=False)
    off, _, _ = world.card("30", enabled=False)
    book = world.book
    first = book.add_redemption(a, "10", world.store)
    book.add_redemption(b, "25", world.store)                         # insufficient
    book.add_redemption(native, "5", world.store)
    book.add_redemption(off, "5", world.store)
    book.add_redemption(a[:-1] + "!", "5", world.store)               # code format
    book.add_redemption(a, "12,50", world.store)                       # amount
    book.add_card_request(world.store, "50", 4, recipient_email="r@example.test",
                          purchaser_email="p@example.test", is_gift=True)
    book.add_card_request(world.store, "25", 2, kind="Physical", serials="SERIALAAAA01\nSERIALAAAA02",
                          recipient_email="r2@example.test")
    book.add_balance_check(a, "c@example.test")
    book.add_balance_check("NOPE2345NOPE", "c@example.test")
    # debits and emails run concurrently: the failures are aimed at the first redemption's debit
    # (applied, answer lost) and store email (fails twice, then goes out), not at whichever comes first
    world.ledger.fail_next("debit", AmbiguousError("shopify", "timeout"), applied=True,
                           when=lambda card_id, amount, note: note == f"giftsync:{first}")
    world.messenger.fail_next("send", RetriableError("klaviyo", "503"), times=2,
                              when=lambda e: e.unique_id == f"redemption:{first}:store")
    world.run()
    book.add_redemption(native, "5", world.store)
    world.clock.advance(15)
    world.run()

    for table in FormTable:
        for rid, f in book.forms[table].items():
            assert f.get("Status") in ("Done", "Rejected"), (table, rid, f.get("Status"))
            assert f.get("Notified") or f.get("Outcome") == "Email missing or invalid"
    codes = [a, b, native, off, "SERIALAAAA01", "SERIALAAAA02"]
    codes += [e.properties["Code"] for e in world.events(Metric.GIFT_CARD_DELIVERED)]
    assert len(world.events(Metric.GIFT_CARD_DELIVERED)) == 4
    assert_no_whole_codes(world, codes)
    log_text = caplog.text.upper()
    for code in codes:
        assert code not in log_text
    assert_ledger_adds_up(world)
    kinds = {r.activity for r in book.all_receipts()}
    assert {Activity.REDEEM, Activity.REJECT, Activity.MIRROR, Activity.ISSUE, Activity.ACTIVATE, Activity.CHECK} <= kinds
