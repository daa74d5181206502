from __future__ import annotations

from giftsync.errors import RetriableError
from giftsync.ports import FormTable


def test_a_failing_poll_does_not_stop_the_other_steps(world):
    code, _, _ = world.card("50")
    world.book.add_redemption(code, "5", world.store)
    chk = world.book.add_balance_check(code, "me@example.test")
    world.book.fail_next("pending_redemptions", RetriableError("airtable", "503"))
    report = world.run()
    assert report.errors == 1 and report.redemptions == 0 and report.balance_checks == 1
    assert world.form(FormTable.BALANCE_CHECKS, chk)["Status"] == "Done"
    report = world.run()
    assert report.redemptions == 1


def test_stop_is_honoured_between_records(world):
    # Redemptions go in batches: a stop asked after the batch's claim lets the record in hand
    # (the debit under way) finish and starts no further money movement; the claimed record
    # without a debit stays Processing and the next run reads back, then debits it once.
    code, shop, _ = world.card("50")
    r1 = world.book.add_redemption(code, "5", world.store)
    r2 = world.book.add_redemption(code, "5", world.store)
    def stop():                          # SIGTERM arrives while the first debit is in hand
        return world.ledger.count("debit") >= 1
    prong = world.new_prong()
    prong.stop = stop
    prong.run_once()
    assert world.form(FormTable.REDEMPTIONS, r1)["Status"] == "Done"
    assert world.form(FormTable.REDEMPTIONS, r2)["Status"] == "Processing"
    assert world.ledger.count("debit") == 1
    world.run()
    assert world.form(FormTable.REDEMPTIONS, r2)["Status"] == "Done"
    assert world.ledger.count("debit") == 2 and world.ledger.balance_of(shop.id).amount == 40


def test_stop_before_the_claim_starts_nothing(world):
    code, _, _ = world.card("50")
    r1 = world.book.add_redemption(code, "5", world.store)
    prong = world.new_prong()
    prong.stop = lambda: True
    prong.run_once()
    assert world.form(FormTable.REDEMPTIONS, r1).get("Status") is None and world.ledger.count("debit") == 0
