"""Form records as read from Airtable (raw, untrusted values) — validated by the prongs."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal


@dataclass
class RedemptionForm:
    record_id: str
    code_raw: object = None
    amount_raw: object = None
    store_ids: list[str] = field(default_factory=list)
    staff: str = ""
    note: str = ""
    status: str = ""              # "" / New / Processing / Done / Rejected
    attempt: str = ""
    card_ids: list[str] = field(default_factory=list)
    outcome: str = ""
    notified: bool = False
    created: datetime | None = None
    reason: str = ""                      # Reason (set by giftsync)
    balance_after: Decimal | None = None  # Balance After (set by giftsync)
    processed_at: datetime | None = None


@dataclass
class CardRequestForm:
    record_id: str
    amount_raw: object = None
    quantity_raw: object = None
    kind: str = ""
    serials_raw: str = ""
    store_ids: list[str] = field(default_factory=list)
    recipient_name: str = ""
    recipient_email: str = ""
    purchaser_name: str = ""
    purchaser_email: str = ""
    is_gift: bool = False
    message: str = ""
    staff: str = ""
    status: str = ""
    attempt: str = ""
    card_ids: list[str] = field(default_factory=list)
    outcome: str = ""
    notified: bool = False
    created: datetime | None = None
    reason: str = ""
    processed_at: datetime | None = None


@dataclass
class BalanceCheckForm:
    record_id: str
    code_raw: object = None
    email_raw: object = None
    status: str = ""
    outcome: str = ""
    notified: bool = False
    created: datetime | None = None
    processed_at: datetime | None = None


@dataclass
class Store:
    record_id: str
    name: str
    email: str = ""
    active: bool = True
