"""Cards as giftsync sees them: the Airtable mirror and Shopify's record of the money."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import Enum

from .codes import mask
from .money import Money


class CardStatus(str, Enum):
    ACTIVE = "Active"
    DISABLED = "Disabled"
    EXPIRED = "Expired"


class CardKind(str, Enum):
    DIGITAL = "Digital"
    PHYSICAL = "Physical"


class CardSource(str, Enum):
    STORE_REQUEST = "Store request"
    ONLINE_PURCHASE = "Online purchase"
    SHOPIFY_NATIVE = "Shopify native"
    IMPORTED = "Imported"


@dataclass
class MirrorCard:
    """A row of the Gift Cards table."""
    record_id: str | None
    shopify_id: str
    last4: str
    balance: Money
    code_hash: str | None = None
    initial_value: Money | None = None
    status: CardStatus = CardStatus.ACTIVE
    kind: CardKind = CardKind.DIGITAL
    source: CardSource = CardSource.STORE_REQUEST
    recipient_name: str = ""
    recipient_email: str = ""
    purchaser_name: str = ""
    purchaser_email: str = ""
    store_record_id: str | None = None
    order: str = ""
    expires_on: date | None = None
    created: datetime | None = None
    last_synced: datetime | None = None
    source_record: str = ""              # the form record / order line that issued it
    # When the opening balance was read from Shopify. A card mirrored after it had been used opens
    # with the balance found then: a movement processed before this is inside it (ADR 0004).
    opened_at: datetime | None = None

    @property
    def masked(self) -> str:
        return mask(self.last4)


@dataclass
class ShopifyCard:
    """What Shopify reports about a card (the source of truth for money)."""
    id: str
    last4: str
    balance: Money
    initial_value: Money | None = None
    enabled: bool = True
    expires_on: date | None = None
    deactivated_at: datetime | None = None
    note: str = ""
    customer_email: str = ""
    order_name: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def usable_on(self, today: date) -> bool:
        return self.enabled and self.deactivated_at is None and (self.expires_on is None or self.expires_on >= today)

    def status_on(self, today: date) -> CardStatus:
        if not self.enabled or self.deactivated_at is not None:
            return CardStatus.DISABLED
        if self.expires_on is not None and self.expires_on < today:
            return CardStatus.EXPIRED
        return CardStatus.ACTIVE


@dataclass(frozen=True)
class CardTransaction:
    id: str
    amount: Money            # signed: debits negative
    note: str
    processed_at: datetime | None = None
    kind: str = ""           # "credit" / "debit"
