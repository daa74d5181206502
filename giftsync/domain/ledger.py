"""Receipts: one row per action and per balance change."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

from .money import Money


class Activity(str, Enum):
    ISSUE = "ISSUE"            # a card created (store request or online purchase)
    ACTIVATE = "ACTIVATE"      # a physical card activated at hand-over
    MIRROR = "MIRROR"          # a card that already existed in Shopify now mirrored in Airtable
    REDEEM = "REDEEM"          # balance down (store or online)
    CREDIT = "CREDIT"          # balance up (refund to a card)
    ADJUST = "ADJUST"          # Airtable corrected from Shopify (admin change or drift)
    REJECT = "REJECT"          # a form record refused; no balance change
    CHECK = "CHECK"            # a balance check answered (or throttled)
    EMAIL_FAILED = "EMAIL_FAILED"
    ALERT = "ALERT"
    TAKEOVER = "TAKEOVER"      # the lease taken over from a holder whose lease had expired
    CRM = "CRM"                # a CRM relay event without a customer identity


class Channel(str, Enum):
    STORE = "Store"
    ONLINE = "Online"
    ADMIN = "Admin"
    SYSTEM = "System"


@dataclass(frozen=True)
class Receipt:
    """A ledger row. ``receipt_id`` is its idempotency key: writing it twice keeps one row."""
    receipt_id: str
    time: datetime
    activity: Activity
    channel: Channel
    card_record_id: str | None = None
    card_masked: str | None = None
    amount: Money | None = None          # signed: negative for a redemption
    balance_after: Money | None = None
    store_record_id: str | None = None
    source: str = ""                     # e.g. "Store Redemptions/rec…", "Order #1001"
    outcome: str = ""
    correlation_id: str = ""
    details: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def currency(self) -> str | None:
        money = self.balance_after or self.amount
        return money.currency if money else None


# Activities that move (or open) a card's balance; the others only carry a balance for context.
MOVEMENTS = frozenset({Activity.ISSUE, Activity.ACTIVATE, Activity.MIRROR, Activity.REDEEM, Activity.CREDIT,
                       Activity.ADJUST})
OPENINGS = frozenset({Activity.ISSUE, Activity.ACTIVATE, Activity.MIRROR})


def ledger_balance(receipts: list[Receipt], initial: Money | None = None) -> Money | None:
    """The balance the card's receipts add up to (docs/adr/0004-online-ledger.md), or None when
    nothing tells where it starts.

    The opening receipt (ISSUE/ACTIVATE/MIRROR, the earliest) sets the start: its balance-after
    minus its own amount (0 for a card giftsync issued; the balance found for a card mirrored
    after it existed). Without one the card's ``initial`` value starts it, and without that the
    earliest movement with a balance-after anchors it. Then every movement's amount counts once,
    whatever order the rows were written in."""
    rows = sorted((r for r in receipts if r.activity in MOVEMENTS), key=lambda r: r.time)
    rows = [r for r in rows if r.amount is not None or r.balance_after is not None]
    opening = next((r for r in rows if r.activity in OPENINGS and r.balance_after is not None), None)
    if opening is not None:
        currency = opening.balance_after.currency
        own = opening.amount if opening.amount is not None and opening.amount.currency == currency else None
        start = opening.balance_after - own if own is not None else opening.balance_after
    elif initial is not None:
        currency, start = initial.currency, initial
    else:
        anchor = next((r for r in rows if r.balance_after is not None), None)
        if anchor is None:
            return None
        currency = anchor.balance_after.currency
        start = anchor.balance_after
        for r in rows[:rows.index(anchor) + 1]:     # amounts up to the anchor are inside its balance-after
            if r.amount is not None and r.amount.currency == currency:
                start = start - r.amount
    total = start
    for r in rows:
        if r.amount is not None and r.amount.currency == currency:
            total = total + r.amount
    return total
