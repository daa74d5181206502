"""What the Shopify prongs share: their options, registry keys, and the updated-at watermark.

Watermarks live in the Status table (rows ``watermark:<prong>``, the time in ``Cursor``).
A poll asks for everything updated since ``watermark - overlap`` and afterwards moves the
watermark to the newest ``updated_at`` it handled — never past the poll's start time, and
never past an order that failed (singer-sdk's rule: a cursor only moves over what is done).
"""
from __future__ import annotations

import contextvars
import logging
import threading
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Iterable, Optional

from ..crashpoints import reach
from ..ports import CardBook, OrderEntry, OrderKind, ShopifyOrder, ShopifyOrders, StatusRow
from .context import safe_call

log = logging.getLogger("giftsync.online")


@dataclass(frozen=True)
class OnlineOptions:
    skus: tuple[str, ...] = ()               # SKUs of giftsync's own gift-card products
    order_tag: str = "giftsync-done"         # tag on an order whose purchase giftsync handled
    redemption_tag: str = "giftsync-redeemed"  # tag on an order whose gift-card payments were applied
    overlap_seconds: float = 600.0           # re-read this far behind the watermark (index lag, clock skew)
    page_size: int = 5                       # orders per request (each asks ~74 cost points)
    purchase_workers: int = 5                # purchase orders of a page handled at once (independent)
    max_pages: int = 20                      # pages per cycle (the rest next cycle)
    card_page_size: int = 50                 # cards per request in the reconcile walk
    native_lookback_seconds: float = 300.0   # native cards are searched from order.createdAt minus this
    currency: str = "USD"

    def __post_init__(self) -> None:
        if self.overlap_seconds < 0 or self.page_size < 1 or self.max_pages < 1 or self.card_page_size < 1 \
                or self.purchase_workers < 1:
            raise ValueError("overlap >= 0, page sizes, max pages and workers >= 1")

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


def run_steps(steps: Iterable[Callable[[], object]], stop: Callable[[], bool], logger: logging.Logger,
              what: str) -> int:
    """A prong's cycle: each step in turn until ``stop()``; a failing step is logged and counted
    (the next one still runs). The number of failed steps."""
    errors = 0
    for step in steps:
        if stop():
            break
        try:
            step()
        except Exception as exc:  # noqa: BLE001 — a failing poll ends this step only
            errors += 1
            logger.warning("%s step failed error=%s reason=%r", what, type(exc).__name__,
                           str(getattr(exc, "reason", ""))[:200])
    return errors


def resume_entries(entries: Iterable[OrderEntry], stop: Callable[[], bool], again: Callable[[OrderEntry], None],
                   logger: logging.Logger, what: str) -> int:
    """Work on each open registry row again (``again(entry)``) until ``stop()``; the number that failed."""
    errors = 0
    for entry in entries:
        if stop():
            break
        if not safe_call(logger, what, entry.order_key, lambda e=entry: again(e)):
            errors += 1
    return errors


Page = tuple[list[ShopifyOrder], Optional[str]]


class KnownEntries:
    """The registry rows of a page of orders, read in one request (``CardBook.order_entries``)
    before the page is handled; each order's handler takes its own in place of a read of its
    own (one request a page instead of one an order). A row is taken once: a second look, or a
    key never loaded, reads Airtable again. Rows a prong wrote for the page itself (its new
    orders' Processing rows, in one request) are marked ``registered``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[str, OrderEntry | None] = {}
        self._registered: set[str] = set()

    def load(self, book: CardBook, keys: list[str]) -> None:
        """Read the rows of ``keys`` (a key without a row is known to have none). On an error
        nothing is known: the handlers read their own rows."""
        self.clear()
        keys = [k for k in dict.fromkeys(keys) if k]
        if not keys:
            return
        rows = book.order_entries(keys)
        with self._lock:
            self._rows = {k: rows.get(k) for k in keys}

    def take(self, key: str) -> tuple[bool, OrderEntry | None]:
        """(True, row or None) when ``key`` was loaded and not taken yet; else (False, None)."""
        with self._lock:
            if key in self._rows:
                return True, self._rows.pop(key)
        return False, None

    def absent(self, key: str) -> bool:
        """Loaded, and Airtable has no row for it."""
        with self._lock:
            return key in self._rows and self._rows[key] is None

    def registered(self, rows: Iterable[OrderEntry]) -> None:
        """Rows just written for the page: each is its order's row, new in this poll."""
        with self._lock:
            for row in rows:
                self._rows[row.order_key] = row
                self._registered.add(row.order_key)

    def take_registered(self, key: str) -> bool:
        """True once when ``key``'s row was written for the page (see ``registered``)."""
        with self._lock:
            if key in self._registered:
                self._registered.discard(key)
                return True
        return False

    def clear(self) -> None:
        with self._lock:
            self._rows = {}
            self._registered = set()


def poll_orders(fetch: Callable[[str | None], Page], handle: Callable[[ShopifyOrder], bool | None], *,
                max_pages: int, stop: Callable[[], bool], pool: Executor | None = None,
                prefetch: Callable[[list[ShopifyOrder]], object] | None = None,
                after_page: Callable[[list[ShopifyOrder]], Iterable[str] | None] | None = None) -> datetime | None:
    """Page through ``fetch(cursor)`` (at most ``max_pages``), calling ``handle`` on each order until
    ``stop()``. ``handle`` answers False for an order that failed. The newest ``updated_at`` seen —
    held just before the oldest failed order's, so the watermark never moves over it. With a
    ``pool`` the orders of a page are handled at once (each in a copy of the caller's context, so
    its priority holds) and the page's results are all in before the next page is fetched.
    ``prefetch(orders)`` runs before a page's orders are handled (their registry rows in one
    read); if it raises, the page is handled all the same. ``after_page(orders)`` runs once a
    page's orders are handled (their Done rows in one write); if it raises, every order of the
    page counts as failed, and the orders whose ids it returns count as failed (an order written
    Done whose tag did not go on: the watermark stays before it, so it is seen, and tagged, again)."""
    cursor: str | None = None
    newest: datetime | None = None
    failed_at: datetime | None = None
    for _ in range(max_pages):
        page, cursor = fetch(cursor)
        taken: list[ShopifyOrder] = []
        for order in page:
            if stop():
                cursor = None
                break
            taken.append(order)
        if prefetch is not None and taken:
            try:
                prefetch(taken)
            except Exception as exc:  # noqa: BLE001 — each handler reads its own row instead
                log.warning("registry rows of a page not read at once error=%s reason=%r", type(exc).__name__,
                            str(getattr(exc, "reason", ""))[:200])
        results = _handle_all(taken, handle, pool)
        if after_page is not None and taken:
            try:
                unfinished = set(after_page(taken) or ())
            except Exception as exc:  # noqa: BLE001 — the page's orders stay open: resumed next cycle
                log.warning("page of orders not finished error=%s reason=%r", type(exc).__name__,
                            str(getattr(exc, "reason", ""))[:200])
                results = [False] * len(taken)
            else:
                results = [False if order.id in unfinished else r for order, r in zip(taken, results)]
        for order, result in zip(taken, results):
            if result is False and order.updated_at is not None:
                failed_at = order.updated_at if failed_at is None else min(failed_at, order.updated_at)
            if order.updated_at is not None:
                newest = order.updated_at if newest is None else max(newest, order.updated_at)
        if not cursor:
            break
    if failed_at is not None and newest is not None:
        newest = min(newest, failed_at - timedelta(microseconds=1))
    return newest


def _handle_all(orders: list[ShopifyOrder], handle: Callable[[ShopifyOrder], bool | None],
                pool: Executor | None) -> list[bool | None]:
    """``handle`` on each order, in order or on ``pool``; an order whose handling raised counts as
    failed (False)."""
    if pool is None or len(orders) <= 1:
        return [handle(order) for order in orders]
    futures = [pool.submit(contextvars.copy_context().run, handle, order) for order in orders]
    results: list[bool | None] = []
    for future in futures:
        try:
            results.append(future.result())
        except Exception as exc:  # noqa: BLE001 — handle() catches its own; anything else is a failed order
            log.warning("online order handling failed error=%s", type(exc).__name__)
            results.append(False)
    return results


def tag_order(orders: ShopifyOrders, order: ShopifyOrder, tag: str, point: str) -> None:
    """Add ``tag`` to the order unless it is empty or already there (``point``: the crash point before)."""
    if not tag or tag.lower() in {t.lower() for t in order.tags}:
        return
    reach(point)
    orders.tags_add(order.id, [tag])
