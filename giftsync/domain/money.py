"""Money as Decimal with its currency; parsing of amounts typed into forms."""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

# ISO 4217 minor units for the currencies a shop is likely to use; others default to 2.
MINOR_UNITS = {"JPY": 0, "KRW": 0, "ISK": 0, "HUF": 2, "BHD": 3, "KWD": 3, "JOD": 3, "OMR": 3, "TND": 3}
_AMOUNT_TEXT = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,12})?$")   # ASCII digits only (\d matches "٥")


def minor_units(currency: str) -> int:
    return MINOR_UNITS.get(currency.upper(), 2)


class InvalidAmount(ValueError):
    """An amount that cannot be used; ``reason`` is shown to the store."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Money:
    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount, Decimal):
            raise TypeError("Money.amount must be a Decimal (never a float)")
        if not self.amount.is_finite():
            raise ValueError("Money.amount must be finite")

    @classmethod
    def of(cls, amount: str | int | Decimal, currency: str) -> "Money":
        if isinstance(amount, float):
            raise TypeError("use a string or Decimal for money, never a float")
        return cls(Decimal(str(amount)), currency.upper())

    @classmethod
    def zero(cls, currency: str) -> "Money":
        return cls(Decimal(0), currency.upper())

    def quantize(self) -> "Money":
        exp = Decimal(1).scaleb(-minor_units(self.currency))
        return Money(self.amount.quantize(exp, rounding=ROUND_HALF_EVEN), self.currency)

    def _same(self, other: "Money") -> None:
        if other.currency != self.currency:
            raise ValueError(f"currency mismatch: {self.currency} vs {other.currency}")

    def __add__(self, other: "Money") -> "Money":
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: "Money") -> "Money":
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> "Money":
        return Money(-self.amount, self.currency)

    def __lt__(self, other: "Money") -> bool:
        self._same(other)
        return self.amount < other.amount

    def __le__(self, other: "Money") -> bool:
        self._same(other)
        return self.amount <= other.amount

    @property
    def is_positive(self) -> bool:
        return self.amount > 0

    def plain(self) -> str:
        """Fixed-point text with the currency's minor units, e.g. ``"12.50"`` (for APIs)."""
        return f"{self.quantize().amount:f}"

    def __str__(self) -> str:
        return f"{self.plain()} {self.currency}"


def parse_amount(raw: object, currency: str, *, maximum: Decimal | None = None) -> Money:
    """Turn what a form holds into a positive Money, or raise InvalidAmount with a reason.

    Accepts numbers and plain decimal text with at most the currency's minor units; refuses
    floats that are not finite, signs, thousands or decimal commas, currency symbols,
    exponents, zero, negatives, more decimals than the currency has, and amounts above
    ``maximum``. Nothing is rounded: an amount that would need rounding is refused.
    """
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise InvalidAmount("Amount is missing")
    if isinstance(raw, bool):
        raise InvalidAmount("Amount is not a number")
    if isinstance(raw, float):
        if raw != raw or raw in (float("inf"), float("-inf")):
            raise InvalidAmount("Amount is not a number")
        text = repr(raw)
        if "e" in text or "E" in text:
            text = f"{Decimal(text):f}"
    elif isinstance(raw, (int, Decimal)):
        text = str(raw)
    elif isinstance(raw, str):
        text = raw.strip()
    else:
        raise InvalidAmount("Amount is not a number")
    if text.startswith("-"):
        raise InvalidAmount("Amount must be greater than zero")
    if not _AMOUNT_TEXT.match(text):
        raise InvalidAmount(f"Amount {text[:30]!r} is not a plain number like 12.50")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise InvalidAmount("Amount is not a number") from None
    if value <= 0:
        raise InvalidAmount("Amount must be greater than zero")
    places = minor_units(currency)
    if -value.as_tuple().exponent > places and value != value.quantize(Decimal(1).scaleb(-places)):
        raise InvalidAmount(f"Amount has more than {places} decimal places")
    if maximum is not None and value > maximum:
        raise InvalidAmount(f"Amount is above the maximum of {maximum}")
    return Money(value, currency.upper()).quantize()
