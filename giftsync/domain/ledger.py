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
