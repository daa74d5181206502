"""What the Shopify prongs share: their options, registry keys, and the updated-at watermark.

Watermarks live in the Status table (rows ``watermark:<prong>``, the time in ``Cursor``).
A poll asks for everything updated since ``watermark - overlap`` and afterwards moves the
watermark to the newest ``updated_at`` it handled — never past the poll's start time, and
never past an order that failed (singer-sdk's rule: a cursor only moves over what is done).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ..crashpoints import reach
from ..ports import CardBook, OrderKind, StatusRow

log = logging.getLogger("giftsync.online")


@dataclass(frozen=True)
class OnlineOptions:
    skus: tuple[str, ...] = ()               # SKUs of giftsync's own gift-card products
    order_tag: str = "giftsync-done"         # tag on an order whose purchase giftsync handled
    redemption_tag: str = "giftsync-redeemed"  # tag on an order whose gift-card payments were applied
    overlap_seconds: float = 600.0           # re-read this far behind the watermark (index lag, clock skew)
    page_size: int = 5                       # orders per request (each asks ~74 cost points)
    max_pages: int = 20                      # pages per cycle (the rest next cycle)
    card_page_size: int = 50                 # cards per request in the reconcile walk
    native_lookback_seconds: float = 300.0   # native cards are searched from order.createdAt minus this
    currency: str = "USD"

    def __post_init__(self) -> None:
        if self.overlap_seconds < 0 or self.page_size < 1 or self.max_pages < 1 or self.card_page_size < 1:
            raise ValueError("overlap >= 0, page sizes and max pages >= 1")

    def is_giftsync_sku(self, sku: str) -> bool:
        wanted = {s.strip().upper() for s in self.skus if s.strip()}
        return bool(sku) and sku.strip().upper() in wanted


def numeric(gid: str) -> str:
    """``gid://shopify/Order/123`` → ``123`` (anything else unchanged)."""
    return gid.rsplit("/", 1)[-1] if gid.startswith("gid://") else gid


def order_key(kind: OrderKind, order_id: str) -> str:
    return f"{kind.value.lower()}:{numeric(order_id)}"


def order_source(order_name: str) -> str:
    return f"Order {order_name}"


@dataclass
class Watermark:
    """An updated-at watermark kept in the Status row ``name``."""
    book: CardBook
    name: str
    point: str
    value: datetime | None = None
    _row: StatusRow | None = field(default=None, repr=False)

    def load(self) -> datetime | None:
        row = self.book.read_status(self.name)
        self._row = row
        self.value = None
        if row is not None and row.cursor:
            try:
                self.value = datetime.fromisoformat(row.cursor)
            except ValueError:
                log.warning("watermark unreadable; starting from the beginning name=%s", self.name)
        return self.value

    def since(self, overlap_seconds: float) -> datetime | None:
        return None if self.value is None else self.value - timedelta(seconds=overlap_seconds)

    def advance(self, newest: datetime | None, started: datetime, *, now: datetime, details: str = "") -> None:
        """Move to ``min(newest, started)`` if that is later than where it stands."""
        if newest is None:
            return
        target = min(newest, started)
        if self.value is not None and target <= self.value:
            return
        row = self._row or StatusRow(name=self.name)
        row.cursor = target.isoformat()
        row.last_run = now
        row.details = details[:500]
        reach(self.point)
        self._row = self.book.write_status(row)
        self.value = target
