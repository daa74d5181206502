"""Email kinds: one Klaviyo metric each, with the properties its template may use.

Flows in Klaviyo turn these metrics into emails; the README lists every metric and its
properties. Only ``GIFT_CARD_DELIVERED`` ever carries a whole code (property ``Code``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
import re

EMAIL_RE = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")


def valid_email(value: object) -> bool:
    return isinstance(value, str) and len(value) <= 254 and bool(EMAIL_RE.match(value.strip()))


class Metric(str, Enum):
    GIFT_CARD_DELIVERED = "Gift Card Delivered"             # recipient: the whole code (digital)
    GIFT_CARD_ACTIVATED = "Gift Card Activated"             # recipient: physical card now active
    PURCHASE_CONFIRMED = "Gift Card Purchase Confirmed"     # purchaser of a gift
    STORE_REQUEST_PROCESSED = "Store Card Request Processed"  # store
    STORE_REDEMPTION_PROCESSED = "Store Redemption Processed"  # store
    BALANCE_CHECK_ANSWERED = "Balance Check Answered"       # customer who asked
    GIFT_CARD_ISSUED = "Gift Card Issued"                   # CRM: purchaser's profile, value
    GIFT_CARD_REDEEMED = "Gift Card Redeemed"               # CRM: card holder's profile
    ALERT = "giftsync Alert"                                # admin


@dataclass(frozen=True)
class EmailEvent:
    """One event for the messenger. ``unique_id`` makes a resend harmless."""
    metric: Metric
    email: str
    unique_id: str
    properties: dict
    value: Decimal | None = None
    value_currency: str | None = None
    first_name: str = ""
    last_name: str = ""
    carries_code: bool = False       # True only for the delivery email

    def __post_init__(self) -> None:
        if self.carries_code and self.metric is not Metric.GIFT_CARD_DELIVERED:
            raise ValueError("only the delivery email may carry a whole code")
