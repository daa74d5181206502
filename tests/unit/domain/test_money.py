from __future__ import annotations

from decimal import Decimal

import pytest

from giftsync.domain.money import InvalidAmount, Money, parse_amount


@pytest.mark.parametrize("raw,expected", [
    ("12.50", "12.50"), ("12.5", "12.50"), ("12", "12.00"), (" 7.25 ", "7.25"), (12, "12.00"),
    (Decimal("3.10"), "3.10"), (12.5, "12.50"), (0.1, "0.10"), ("0.01", "0.01"), ("5.000", "5.00"),
])
def test_valid_amounts(raw, expected):
    money = parse_amount(raw, "usd")
    assert money == Money(Decimal(expected), "USD") and money.plain() == expected


@pytest.mark.parametrize("raw", [
    None, "", "   ", "abc", "-5", "-0.01", "0", "0.00", "12,50", "1,000", "$5", "5$", "€5", "1e9", "1E2",
    float("nan"), float("inf"), float("-inf"), "nan", "NaN", "Infinity", "5.123", "0.001", True, False,
    "5 USD", "0x10", "٥", "５", "1_000", "+5", ".5", "5.", "1" * 13, [], {}, "12.50.1",
])
def test_hostile_amounts_refused(raw):
    with pytest.raises(InvalidAmount) as err:
        parse_amount(raw, "USD")
    assert err.value.reason


def test_maximum_and_minor_units():
    with pytest.raises(InvalidAmount, match="maximum"):
        parse_amount("500.01", "USD", maximum=Decimal("500"))
    assert parse_amount("500", "USD", maximum=Decimal("500")).plain() == "500.00"
    assert parse_amount("1500", "JPY").plain() == "1500"
    with pytest.raises(InvalidAmount):
        parse_amount("15.5", "JPY")
    assert parse_amount("1.125", "KWD").plain() == "1.125"


def test_money_refuses_floats_and_mixed_currencies():
    with pytest.raises(TypeError):
        Money.of(1.5, "USD")
    with pytest.raises(TypeError):
        Money(1.5, "USD")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Money(Decimal("NaN"), "USD")
    with pytest.raises(ValueError):
        Money.of("1", "USD") + Money.of("1", "EUR")
    assert Money.of("1.10", "usd") - Money.of("0.10", "USD") == Money.of("1.00", "USD")
    assert str(Money.of("3", "USD")) == "3.00 USD"
