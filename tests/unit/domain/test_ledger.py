"""ledger_balance: what a card's receipts add up to (docs/adr/0004-online-ledger.md)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from giftsync.domain.ledger import Activity, Channel, Receipt, ledger_balance
from giftsync.domain.money import Money

T0 = datetime(2025, 1, 6, 9, 0, tzinfo=timezone.utc)


def usd(v: str) -> Money:
    return Money.of(v, "USD")


def r(i: int, activity: Activity, amount: str | None, after: str | None, minutes: int | None = None) -> Receipt:
    return Receipt(f"r{i}", T0 + timedelta(minutes=i if minutes is None else minutes), activity, Channel.ONLINE,
                   amount=usd(amount) if amount is not None else None,
                   balance_after=usd(after) if after is not None else None)


def test_issued_card_counts_every_amount_once():
    rows = [r(0, Activity.ISSUE, "50", "50"), r(1, Activity.REDEEM, "-12", "38"), r(2, Activity.CREDIT, "4", "42"),
            r(3, Activity.ADJUST, "5", "47"), r(4, Activity.CHECK, None, "47"), r(5, Activity.REJECT, None, "47")]
    assert ledger_balance(rows) == usd("47")


def test_double_counted_movement_shows():
    """ADJUST and REDEEM for the same money: the last balance-after is right, the sum is not."""
    rows = [r(0, Activity.ISSUE, "50", "50"), r(1, Activity.ADJUST, "-12", "38"), r(2, Activity.REDEEM, "-12", "38")]
    assert ledger_balance(rows) == usd("26")


def test_mirrored_card_opens_at_the_balance_found():
    rows = [r(0, Activity.MIRROR, None, "40"), r(1, Activity.REDEEM, "-5", "35"), r(2, Activity.MIRROR, None, "35")]
    assert ledger_balance(rows) == usd("35")


def test_native_card_issued_after_it_was_spent_opens_at_its_balance():
    assert ledger_balance([r(0, Activity.ISSUE, "50", "30"), r(1, Activity.REDEEM, "-10", "20")]) == usd("20")


def test_opening_written_late_after_a_crash_still_opens():
    rows = [r(1, Activity.REDEEM, "-5", "20"), r(2, Activity.ISSUE, "25", "25")]
    assert ledger_balance(rows) == usd("20")


def test_without_an_opening_the_initial_value_or_the_first_balance_starts_it():
    rows = [r(1, Activity.REDEEM, "-12", "43")]
    assert ledger_balance(rows, usd("50")) == usd("38")       # 5 unaccounted for: shows against Shopify's 43
    assert ledger_balance(rows) == usd("43")
    assert ledger_balance([], usd("50")) == usd("50")
    assert ledger_balance([r(0, Activity.CHECK, None, "10")]) is None
