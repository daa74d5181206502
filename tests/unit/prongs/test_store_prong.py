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


def test_short_cycles_list_only_card_requests_and_pick_new_requests_up(world):
    """With the store job every 5 s (full cycle every 15 s), a short cycle costs one list request
    (card requests) and serves a request submitted since the last cycle."""
    from giftsync.ports import FormTable
    world.prong.full_cycle_seconds = 15.0
    world.run()                                   # full cycle
    before = len(world.book.calls)
    world.clock.advance(5)
    rid = world.book.add_card_request(world.store, "10", 1, recipient_email="r@example.test")
    world.run()                                   # short cycle
    names = [name for name, _ in world.book.calls[before:]]
    assert names.count("pending_card_requests") == 1
    assert "pending_redemptions" not in names and "pending_balance_checks" not in names and "unnotified" not in names
    assert world.form(FormTable.CARD_REQUESTS, rid)["Status"] == "Done"
    before = len(world.book.calls)
    world.clock.advance(5)
    world.run()                                   # short, idle: one list request
    assert [name for name, _ in world.book.calls[before:]] == ["pending_card_requests"]
    before = len(world.book.calls)
    world.clock.advance(5)
    world.run()                                   # 15 s on: a full cycle again
    names = [name for name, _ in world.book.calls[before:]]
    assert "pending_redemptions" in names and "pending_balance_checks" in names
