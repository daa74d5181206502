"""The store prong's pace under load (issue 7): one list request per table per poll, the cycle
leaving redemptions to their own job, emails beside the Airtable writes, several chunks of a
bulk request written at once. Behaviour only — the timings belong to scripts/bench."""
from __future__ import annotations

import threading
from decimal import Decimal

from giftsync.domain.emails import Metric
from giftsync.ports import FormTable

R = FormTable.REDEMPTIONS
Q = FormTable.CARD_REQUESTS


def names(world, since: int = 0) -> list[str]:
    return [name for name, _ in world.book.calls[since:]]


def test_a_cycle_lists_each_table_once_and_resends_from_those_lists(world):
    """The unnotified records come with each table's pending list (one request), and the
    cycle's resend step uses them: no list of their own."""
    code, _, _ = world.card("50")
    new = world.book.add_redemption(code, "5", world.store)
    unsent = world.book.add_redemption("•••• •••• •••• ABCD", "5", world.store, Status="Done",
                                       Outcome="Redeemed", **{"Balance After": Decimal("45")})
    world.book.calls.clear()
    world.run()
    calls = names(world)
    assert "unnotified" not in calls
    assert calls.count("pending_redemptions") == 1 and calls.count("pending_card_requests") == 1
    assert calls.count("pending_balance_checks") == 1
    assert world.form(R, new)["Status"] == "Done" and world.form(R, new)["Notified"] is True
    assert world.form(R, unsent)["Notified"] is True
    assert f"redemption:{unsent}:store" in [e.unique_id for e in world.events(Metric.STORE_REDEMPTION_PROCESSED)]


def test_the_cycle_leaves_redemptions_to_their_job_while_it_polls(world):
    """With the redemption job polling (the daemon), a store cycle polling as well would only
    split the job's batches; without it (``giftsync once``) the cycle polls itself."""
    prong = world.prong
    prong.redemptions_have_own_job = True
    prong.run_once()                                  # the job has not polled: the cycle does
    assert "pending_redemptions" in names(world)
    prong.poll_redemptions()                          # the job's poll
    code, _, _ = world.card("50")
    rid = world.book.add_redemption(code, "5", world.store)
    before = len(world.book.calls)
    world.clock.advance(1)
    prong.run_once()
    assert "pending_redemptions" not in names(world, before)
    assert world.form(R, rid).get("Status") is None   # left to the job's next poll
    prong.poll_redemptions()
    assert world.form(R, rid)["Status"] == "Done"
    world.clock.advance(60)                           # the job stopped polling: the cycle takes over
    before = len(world.book.calls)
    prong.run_once()
    assert "pending_redemptions" in names(world, before)


def test_store_emails_go_out_while_the_receipts_are_written(world):
    """A poll's store emails run beside its receipts and balances writes (then the final write
    with Notified): the email below is still in flight when the receipts are written."""
    code, _, _ = world.card("50")
    rid = world.book.add_redemption(code, "5", world.store)
    receipts_written = threading.Event()
    seen_in_flight: list[bool] = []
    send, append = world.messenger.send, world.book.append_receipts

    def slow_send(event):
        if event.unique_id == f"redemption:{rid}:store":
            seen_in_flight.append(receipts_written.wait(5))
        return send(event)

    def append_receipts(rows):
        result = append(rows)
        receipts_written.set()
        return result
    world.messenger.send, world.book.append_receipts = slow_send, append_receipts
    assert world.prong.redemptions.run() == 1
    assert seen_in_flight == [True]
    f = world.form(R, rid)
    assert f["Status"] == "Done" and f["Notified"] is True


def test_receipts_failing_while_emails_go_out_leaves_the_batch_for_the_next_poll(world):
    from giftsync.errors import AmbiguousError
    code, shop, _ = world.card("50")
    rid = world.book.add_redemption(code, "5", world.store)
    world.book.fail_next("append_receipts", AmbiguousError("airtable", "timeout"))
    assert world.prong.redemptions.run() == 0
    assert world.form(R, rid)["Status"] == "Processing"
    assert world.prong.redemptions.run() == 1                 # read back: one debit, one email
    assert world.ledger.count("debit") == 1
    assert world.form(R, rid)["Status"] == "Done" and world.form(R, rid)["Notified"] is True
    # sent again by the second poll, dropped by its unique_id (as Klaviyo does)
    assert [e.unique_id for e in world.events(Metric.STORE_REDEMPTION_PROCESSED)] == [f"redemption:{rid}:store"]


def test_several_chunks_are_written_at_once_with_several_writers(world):
    """``card_writers`` = 2: chunk 1's Gift Cards save starts while chunk 0's delivery emails are
    still going out (one writer would finish chunk 0 first)."""
    world.prong = world.new_prong(card_create_workers=2, card_chunk=10, card_writers=2)
    rid = world.book.add_card_request(world.store, "10", 30, recipient_email="r@example.test")
    saves = []
    second_save = threading.Event()
    overlapped: list[bool] = []
    save, send = world.book.save_cards, world.messenger.send

    def save_cards(cards):
        saves.append(len(cards))
        if len(saves) == 2:
            second_save.set()
        return save(cards)

    def slow_send(event):
        if event.unique_id == f"request:{rid}:deliver:0":
            overlapped.append(second_save.wait(5))
        return send(event)
    world.book.save_cards, world.messenger.send = save_cards, slow_send
    world.run()
    f = world.form(Q, rid)
    assert f["Status"] == "Done" and len(f["Cards"]) == 30 and world.ledger.count("create_card") == 30
    assert overlapped == [True]
    deliveries = [e.unique_id for e in world.events(Metric.GIFT_CARD_DELIVERED)]
    assert len(deliveries) == 30 == len(set(deliveries))


def test_a_finished_request_is_written_once_with_done_and_notified(world):
    """The confirmations go out first, then ONE write carries Done and Notified (no separate
    Notified write): a request costs its claim and its final write on the Card Requests table."""
    rid = world.book.add_card_request(world.store, "10", 3, recipient_email="r@example.test")
    world.book.calls.clear()
    world.run()
    writes = [args[1] for name, args in world.book.calls if name == "update_forms" and args[0] is Q]
    assert len(writes) == 2
    assert writes[0][rid]["Status"] == "Processing"
    assert writes[1][rid]["Status"] == "Done" and writes[1][rid]["Notified"] is True
    assert f"request:{rid}:store" in [e.unique_id for e in world.events(Metric.STORE_REQUEST_PROCESSED)]
