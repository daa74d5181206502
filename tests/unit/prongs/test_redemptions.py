from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from giftsync.domain.codes import mask
from giftsync.domain.emails import Metric
from giftsync.domain.ledger import Activity
from giftsync.domain.outcomes import RedemptionOutcome as O
from giftsync.errors import AmbiguousError, RetriableError
from giftsync.ports import FormTable

from .conftest import ADMIN, assert_ledger_adds_up, assert_no_whole_codes, usd

R = FormTable.REDEMPTIONS


def spaced(code: str) -> str:
    return " ".join(code[i:i + 4] for i in range(0, len(code), 4)).lower()


def test_redeemed(world):
    code, shop, mirror = world.card("50.00")
    rid = world.book.add_redemption(spaced(code), "12.50", world.store, Staff="Ann")
    world.run()
    f = world.form(R, rid)
    assert f["Status"] == "Done" and f["Outcome"] == O.REDEEMED.value
    assert f["Balance After"] == Decimal("37.50") and f["Card"] == [mirror.record_id]
    assert f["Code"] == mask(code[-4:]) and f["Notified"] is True and f["Processed At"]
    assert [t.note for t in world.ledger.transactions(shop.id)] == [f"giftsync:{rid}"]
    receipt = world.book.receipts[f"redeem:{rid}"]
    assert receipt.activity is Activity.REDEEM and receipt.amount == usd("-12.50")
    assert receipt.balance_after == usd("37.50") and receipt.store_record_id == world.store
    [email] = world.events(Metric.STORE_REDEMPTION_PROCESSED)
    assert email.email == "main@shop.test" and email.unique_id == f"redemption:{rid}:store"
    assert email.properties["Card"] == mask(code[-4:]) and email.properties["Balance After"] == "37.50"
    assert_ledger_adds_up(world)
    assert_no_whole_codes(world, [code])


@pytest.mark.parametrize("typed", ["ABC", "ABCD-EFGH-ÖÖÖÖ", "", None, "A" * 21, "ＡＢＣＤＥＦＧＨＪＫ"])
def test_code_format_incorrect(world, typed):
    rid = world.book.add_redemption(typed, "5", world.store)
    world.run()
    f = world.form(R, rid)
    assert f["Status"] == "Rejected" and f["Outcome"] == O.CODE_FORMAT.value
    assert f["Code"] == "(invalid code removed)"
    assert world.book.receipts[f"reject:{rid}"].activity is Activity.REJECT
    assert world.events(Metric.STORE_REDEMPTION_PROCESSED)[0].properties["Outcome"] == O.CODE_FORMAT.value
    assert world.ledger.calls == [] and world.book.cards == {}


def test_code_format_incorrect_is_told_to_the_store(world):
    # The store that typed the code gets the answer (it went to the admin address before).
    rid = world.book.add_redemption("AB-12", "5", world.store)
    world.run()
    [email] = world.events(Metric.STORE_REDEMPTION_PROCESSED)
    assert email.email == "main@shop.test" and email.properties["Store"] == "Main Street"
    assert world.book.receipts[f"reject:{rid}"].store_record_id == world.store


def test_code_not_found(world):
    rid = world.book.add_redemption("ABCDEFGHJKMN2345", "5", world.store)
    world.run()
    f = world.form(R, rid)
    assert (f["Status"], f["Outcome"], f["Code"]) == ("Rejected", O.NOT_FOUND.value, mask("2345"))
    assert world.ledger.count("debit") == 0


def test_insufficient_balance_tells_the_available_balance(world):
    code, shop, _ = world.card("10.00")
    rid = world.book.add_redemption(code, "10.01", world.store)
    world.run()
    f = world.form(R, rid)
    assert (f["Status"], f["Outcome"]) == ("Rejected", O.INSUFFICIENT.value)
    assert "10.00 USD" in f["Reason"] and f["Balance After"] == Decimal("10.00")
    [email] = world.events(Metric.STORE_REDEMPTION_PROCESSED)
    assert email.properties["Balance After"] == "10.00" and "10.00" in email.properties["Reason"]
    assert world.ledger.balance_of(shop.id) == usd("10.00") and world.ledger.transactions(shop.id) == []
    assert_ledger_adds_up(world)


def test_disabled_and_expired_cards(world):
    c1, _, _ = world.card("10", enabled=False)
    c2, _, _ = world.card("10", expires_on=date(2024, 12, 31))
    r1 = world.book.add_redemption(c1, "1", world.store)
    r2 = world.book.add_redemption(c2, "1", world.store)
    world.run()
    for rid in (r1, r2):
        assert world.form(R, rid)["Outcome"] == O.DISABLED.value
        assert world.form(R, rid)["Status"] == "Rejected"


@pytest.mark.parametrize("amount", ["abc", "-5", "0", "12,50", "$5", "1e9", float("nan"), "5.123", None,
                                    float("inf"), True, "  ", "5 USD", "0x10", "٥"])
def test_invalid_amount(world, amount):
    code, shop, _ = world.card("50")
    rid = world.book.add_redemption(code, amount, world.store)
    world.run()
    f = world.form(R, rid)
    assert (f["Status"], f["Outcome"]) == ("Rejected", O.INVALID_AMOUNT.value)
    assert f["Code"] == mask(code[-4:]) and world.ledger.count("debit") == 0
    assert world.events(Metric.STORE_REDEMPTION_PROCESSED)


def test_store_missing_or_inactive_goes_to_admin(world):
    code, _, _ = world.card("50")
    closed = world.book.add_store("Closed", "closed@shop.test", active=False)
    r1 = world.book.add_redemption(code, "5", None)
    r2 = world.book.add_redemption(code, "5", closed)
    world.run()
    for rid in (r1, r2):
        assert world.form(R, rid)["Outcome"] == O.INVALID_STORE.value
        assert world.form(R, rid)["Notified"] is True
    assert {e.email for e in world.events(Metric.STORE_REDEMPTION_PROCESSED)} == {ADMIN}
    assert world.ledger.count("debit") == 0


def test_ambiguous_debit_applied_is_not_sent_again(world):
    code, shop, _ = world.card("50")
    rid = world.book.add_redemption(code, "20", world.store)
    world.ledger.fail_next("debit", AmbiguousError("shopify", "read timeout"), applied=True)
    world.run()
    assert world.ledger.count("debit") == 1
    assert len(world.ledger.transactions(shop.id)) == 1
    assert world.form(R, rid)["Status"] == "Done"
    assert world.form(R, rid)["Balance After"] == Decimal("30.00")
    assert_ledger_adds_up(world)


def test_ambiguous_debit_not_applied_is_sent_once_more(world):
    code, shop, _ = world.card("50")
    rid = world.book.add_redemption(code, "20", world.store)
    world.ledger.fail_next("debit", AmbiguousError("shopify", "reset"), applied=False)
    world.run()
    assert world.ledger.count("debit") == 2
    assert world.ledger.count("transactions") == 1          # read back before the resend
    assert len(world.ledger.transactions(shop.id)) == 1
    assert world.ledger.balance_of(shop.id) == usd("30")
    assert world.form(R, rid)["Status"] == "Done"


def test_resume_after_debit_applied_reads_back(world):
    code, shop, _ = world.card("50")
    rid = world.book.add_redemption(code, "20", world.store)
    world.book.fail_next("append_receipts", RetriableError("airtable", "503"))   # crash-like stop after the debit
    world.run()
    f = world.form(R, rid)
    assert f["Status"] == "Processing" and f["Code"] == mask(code[-4:])
    world.run()
    assert world.ledger.count("debit") == 1
    assert world.form(R, rid)["Status"] == "Done"
    assert world.ledger.balance_of(shop.id) == usd("30")
    assert_ledger_adds_up(world)


def test_resume_after_debit_not_applied_debits_once(world):
    code, shop, _ = world.card("50")
    rid = world.book.add_redemption(code, "20", world.store)
    world.ledger.fail_next("debit", RetriableError("shopify", "throttled"))
    world.run()
    assert world.form(R, rid)["Status"] == "Processing"
    world.run()
    assert world.ledger.count("debit") == 2 and len(world.ledger.transactions(shop.id)) == 1
    assert world.form(R, rid)["Status"] == "Done"


def test_shopify_native_card_is_mirrored_then_redeemed(world):
    code, shop, _ = world.card("40", mirrored=False)
    rid = world.book.add_redemption(code, "15", world.store)
    world.run()
    mirror = world.book.card_by_shopify_id(shop.id)
    assert mirror.code_hash == world.hasher.hash(code) and mirror.source.value == "Shopify native"
    assert world.book.receipts[f"mirror:{shop.id}"].activity is Activity.MIRROR
    assert world.form(R, rid)["Status"] == "Done" and mirror.balance == usd("25")
    assert_ledger_adds_up(world)
    assert_no_whole_codes(world, [code])


def test_one_bad_record_does_not_stop_the_loop(world):
    code, shop, _ = world.card("50")
    r1 = world.book.add_redemption(code, "5", world.store)
    r2 = world.book.add_redemption(code, "6", world.store)
    world.ledger.fail_next("debit", RuntimeError(f"unexpected {code}"))   # even an error text with a code
    world.run()
    assert world.form(R, r1)["Status"] == "Processing"
    assert world.form(R, r2)["Status"] == "Done"
    world.run()
    assert world.form(R, r1)["Status"] == "Done"
    assert world.ledger.balance_of(shop.id) == usd("39")


def test_error_log_has_no_whole_code(world, caplog):
    code, _, _ = world.card("50")
    world.book.add_redemption(code, "5", world.store)
    world.ledger.fail_next("debit", RuntimeError(f"boom {code}"))
    with caplog.at_level("DEBUG", logger="giftsync"):
        world.run()
    assert "boom" in caplog.text and code not in caplog.text.upper()


def test_crm_redeemed_on_holder_profile(world):
    code, _, mirror = world.card("50", recipient_email="holder@example.test")
    rid = world.book.add_redemption(code, "5", world.store)
    world.run()
    [crm] = world.events(Metric.GIFT_CARD_REDEEMED)
    assert crm.email == "holder@example.test" and crm.value == Decimal("5.00") and crm.value_currency == "USD"
    assert crm.unique_id == f"crm:redeemed:{rid}"


def test_mirror_disabled_refuses_without_shopify(world):
    from giftsync.domain.cards import CardStatus
    code, _, mirror = world.card("50")
    world.book.set_card_status(mirror.record_id, CardStatus.DISABLED)
    rid = world.book.add_redemption(code, "5", world.store)
    world.run()
    assert world.form(R, rid)["Outcome"] == O.DISABLED.value and world.ledger.count("debit") == 0
