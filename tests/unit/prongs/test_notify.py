from __future__ import annotations

from giftsync.domain.emails import Metric
from giftsync.domain.ledger import Activity
from giftsync.errors import FatalError, RetriableError
from giftsync.ports import FormTable

from .conftest import ADMIN

R = FormTable.REDEMPTIONS


def test_email_fails_twice_then_succeeds_with_growing_wait(world):
    code, _, _ = world.card("50")
    rid = world.book.add_redemption(code, "5", world.store)
    world.messenger.fail_next("send", RetriableError("klaviyo", "503"), times=2)
    world.run()
    assert world.clock.slept == [0.5, 1.0]
    assert len(world.events(Metric.STORE_REDEMPTION_PROCESSED)) == 1
    assert world.form(R, rid)["Notified"] is True
    assert not [r for r in world.book.all_receipts() if r.activity is Activity.EMAIL_FAILED]


def test_final_failure_writes_receipt_alerts_and_resends_next_cycle(world):
    code, _, _ = world.card("50")
    rid = world.book.add_redemption(code, "5", world.store)
    world.messenger.fail_next("send", RetriableError("klaviyo", "503"), times=3)
    world.run()
    f = world.form(R, rid)
    assert f["Status"] == "Done" and not f.get("Notified")
    [failed] = [r for r in world.book.all_receipts() if r.activity is Activity.EMAIL_FAILED]
    assert failed.correlation_id == f"redemption:{rid}:store"
    [alert] = world.events(Metric.ALERT)
    assert alert.email == ADMIN
    [alert_row] = [r for r in world.book.all_receipts() if r.activity is Activity.ALERT]
    assert alert_row.outcome == "Email failed" and alert_row.correlation_id == alert.unique_id.removeprefix("alert:")
    world.run()                                             # next cycle: Done but not notified → resent
    assert world.form(R, rid)["Notified"] is True
    assert [e.unique_id for e in world.events(Metric.STORE_REDEMPTION_PROCESSED)] == [f"redemption:{rid}:store"]


def test_fatal_email_error_is_not_retried(world):
    code, _, _ = world.card("50")
    world.book.add_redemption(code, "5", world.store)
    world.messenger.fail_next("send", FatalError("klaviyo", "400 invalid"))
    world.run()
    assert world.clock.slept == []
    assert [r for r in world.book.all_receipts() if r.activity is Activity.EMAIL_FAILED]


def test_resend_after_crash_before_notified_is_deduplicated(world):
    # Notified travels in the final write with Done (batched): a failure of that write after the
    # email went out leaves the record Processing; the next run reads back (one debit), sends
    # the email again (dropped by unique_id) and writes Done + Notified.
    code, shop, _ = world.card("50")
    rid = world.book.add_redemption(code, "5", world.store)
    original = world.book.update_forms

    def update_forms(table, updates):
        if any(v.get("Notified") for v in updates.values()) and not getattr(update_forms, "done", False):
            update_forms.done = True
            raise RetriableError("airtable", "503")
        return original(table, updates)
    world.book.update_forms = update_forms
    world.run()
    assert world.form(R, rid)["Status"] == "Processing" and not world.form(R, rid).get("Notified")
    world.run()
    f = world.form(R, rid)
    assert f["Status"] == "Done" and f["Notified"] is True
    assert world.ledger.count("debit") == 1 and len(world.ledger.transactions(shop.id)) == 1
    assert len(world.events(Metric.STORE_REDEMPTION_PROCESSED)) == 1 and len(world.messenger.dropped) == 1


def test_request_confirmation_resent_when_unnotified(world):
    rid = world.book.add_card_request(world.store, "10", 1, recipient_email="r@example.test",
                                      purchaser_email="p@example.test", is_gift=True)
    world.run()
    world.book.update_forms(FormTable.CARD_REQUESTS, {rid: {"Notified": False}})   # e.g. crash before the tick
    world.run()
    assert world.form(FormTable.CARD_REQUESTS, rid)["Notified"] is True
    ids = [e.unique_id for e in world.messenger.sent + world.messenger.dropped
           if e.metric in (Metric.STORE_REQUEST_PROCESSED, Metric.PURCHASE_CONFIRMED)]
    assert sorted(ids) == sorted([f"request:{rid}:store", f"request:{rid}:purchaser"] * 2)
    assert len(world.events(Metric.GIFT_CARD_DELIVERED)) == 1


def test_uniform_check_answer_resent(world):
    rid = world.book.add_balance_check("UNKNOWNCODE23456", "me@example.test")
    world.messenger.fail_next("send", RetriableError("klaviyo", "503"), times=3)
    world.run()
    assert not world.form(FormTable.BALANCE_CHECKS, rid).get("Notified")
    world.run()
    assert world.form(FormTable.BALANCE_CHECKS, rid)["Notified"] is True
    assert len(world.events(Metric.BALANCE_CHECK_ANSWERED)) == 1
