"""The fakes keep the semantics the prongs rely on."""
from __future__ import annotations

from decimal import Decimal

import pytest

from giftsync.adapters.fakes import FakeCardBook, FakeClock, FakeGiftCardLedger, FakeMessenger
from giftsync.domain.cards import MirrorCard
from giftsync.domain.emails import EmailEvent, Metric
from giftsync.domain.ledger import Activity, Channel, Receipt
from giftsync.domain.money import Money
from giftsync.errors import AmbiguousError, FatalError, RetriableError
from giftsync.ports import FormTable, StatusRow

CODE = "ABCDEFGHJKMNPQRS"


def usd(x: str) -> Money:
    return Money.of(x, "USD")


def test_clock_sleep_advances_time():
    clock = FakeClock()
    start, mono = clock.now(), clock.monotonic()
    clock.sleep(2.5)
    assert (clock.now() - start).total_seconds() == 2.5
    assert clock.monotonic() - mono == 2.5


def test_ledger_debit_refuses_overdraft_and_keeps_note():
    ledger = FakeGiftCardLedger()
    card = ledger.add_card(CODE, "20.00")
    assert ledger.debit(card.id, usd("25"), note="x").error_code == "INSUFFICIENT_FUNDS"
    res = ledger.debit(card.id, usd("5"), note="giftsync:rec1")
    assert res.balance == usd("15.00")
    assert [t.note for t in ledger.transactions(card.id)] == ["giftsync:rec1"]


def test_ledger_disabled_and_expired_cards_refuse():
    clock = FakeClock()
    ledger = FakeGiftCardLedger(clock)
    off = ledger.add_card("DISABLED22", "10", enabled=False)
    old = ledger.add_card("EXPIRED222", "10", expires_on=clock.today().replace(year=2020))
    assert ledger.debit(off.id, usd("1"), note="n").error_code == "GIFT_CARD_DEACTIVATED"
    assert ledger.debit(old.id, usd("1"), note="n").error_code == "GIFT_CARD_EXPIRED"


def test_ledger_create_duplicate_code_and_exact_find():
    ledger = FakeGiftCardLedger()
    first = ledger.create_card(code=CODE, amount=usd("10"), note="a")
    assert first.card and first.card.last4 == "PQRS"
    again = ledger.create_card(code=CODE.lower(), amount=usd("10"), note="b")
    assert again.code_taken and again.card is None
    assert ledger.find_by_code("abcd-efgh jkmn-pqrs").id == first.card.id
    assert ledger.find_by_code(CODE[:-1]) is None


def test_fail_next_applied_and_not_applied():
    ledger = FakeGiftCardLedger()
    card = ledger.add_card(CODE, "20")
    ledger.fail_next("debit", AmbiguousError("shopify", "timeout"), applied=True)
    with pytest.raises(AmbiguousError):
        ledger.debit(card.id, usd("5"), note="k")
    assert ledger.balance_of(card.id) == usd("15")
    ledger.fail_next("debit", RetriableError("shopify", "throttled"), applied=False, times=2)
    for _ in range(2):
        with pytest.raises(RetriableError):
            ledger.debit(card.id, usd("5"), note="k2")
    assert ledger.balance_of(card.id) == usd("15")
    ledger.debit(card.id, usd("5"), note="k2")
    assert ledger.balance_of(card.id) == usd("10")
    assert ledger.count("debit") == 4


def test_fail_next_when_targets_matching_calls_only():
    m = FakeMessenger()
    a, b = (EmailEvent(Metric.ALERT, "a@b.test", uid, {}) for uid in ("a", "b"))
    m.fail_next("send", RetriableError("klaviyo", "503"), times=2, when=lambda e: e.unique_id == "b")
    m.fail_next("send", FatalError("klaviyo", "400"))          # untargeted: the next call of any args
    with pytest.raises(FatalError):
        m.send(a)                                               # the targeted failure lets "a" pass by …
    m.send(a)
    for _ in range(2):
        with pytest.raises(RetriableError):
            m.send(b)                                           # … and waits for "b", twice
    m.send(b)
    assert [e.unique_id for e in m.sent] == ["a", "b"] and m.count("send") == 5


def test_messenger_dedupes_by_unique_id():
    m = FakeMessenger()
    e = EmailEvent(Metric.ALERT, "a@b.test", "u1", {})
    m.send(e)
    m.send(e)
    assert len(m.sent) == 1 and len(m.dropped) == 1


def test_book_forms_receipts_cards_status():
    clock = FakeClock()
    book = FakeCardBook(clock)
    store = book.add_store("Main")
    rid = book.add_redemption(CODE, "5", store)
    assert [f.record_id for f in book.pending_redemptions()] == [rid]
    with pytest.raises(FatalError):
        book.update_forms(FormTable.REDEMPTIONS, {rid: {"Status": "Bogus"}})
    with pytest.raises(FatalError):
        book.update_forms(FormTable.REDEMPTIONS, {rid: {"Nope": 1}})
    book.update_forms(FormTable.REDEMPTIONS, {rid: {"Status": "Done", "Balance After": Decimal("5")}})
    assert book.pending_redemptions() == []
    assert [f.record_id for f in book.unnotified(FormTable.REDEMPTIONS)] == [rid]
    assert book.unnotified(FormTable.REDEMPTIONS)[0].balance_after == Decimal("5")

    saved = book.save_cards([MirrorCard(None, "gid://1", "PQRS", usd("10"), code_hash="h")])[0]
    again = book.save_cards([MirrorCard(None, "gid://1", "PQRS", usd("9"), code_hash="h")])[0]
    assert saved.record_id == again.record_id and len(book.cards) == 1
    assert book.card_by_hash("h").balance == usd("9")

    r = Receipt("redeem:x", clock.now(), Activity.REDEEM, Channel.STORE, card_record_id=saved.record_id)
    book.append_receipts([r, r])
    assert len(book.receipts_for_card(saved.record_id)) == 1

    row = book.write_status(StatusRow(name="lease", holder="me"))
    assert row.record_id and book.read_status("lease").holder == "me"
