"""The Shopify purchase prong: paid orders that sell gift cards, each handled once, ever.

Two kinds of line:

- **giftsync SKUs** (``OnlineOptions.skus``): one card per unit, created by giftsync with a
  code derived from a nonce (docs/adr/0002): ``code_i = HMAC(secret, nonce:i)`` where the
  nonce sits in the registry row's Attempt while the order is Processing. Per unit:
  reach("purchase.create") → giftCardCreate (note ``giftsync:order:<id>:<i>``; ambiguous or
  "code taken" → ``find_by_code`` and adopt it if the note is ours) → Gift Cards row
  (hash, last 4, Shopify id, order, purchaser, recipient from the line-item properties, else
  the customer) → delivery email (the whole code: only there) → CRM relay. The order's
  receipts go in one write after its emails (also when they failed, and before a Skipped
  row): one ISSUE row per card with its CRM outcome folded in (``crm.fold_into_openings``).
  If the recipient is someone else, the purchaser gets one confirmation per order.
- **Shopify-native gift cards** (``isGiftCard``): Shopify issues and emails them. giftsync
  mirrors each card it can see (last 4 + Shopify id; the code cannot be read back), writes
  its ISSUE receipt and relays it to the CRM. Issuance lags payment: until every card of
  every native line is visible the order stays **Waiting** and is retried each cycle.

The registry row (Online Orders, key ``purchase:<order id>``) is written *before* any card
and before the order is tagged; Done / Skipped rows are never worked on again. A resumed
row recomputes the codes from its nonce and adopts what exists (mirrors by code hash, cards
in Shopify by ``find_by_code``): a crash between creating a card and recording it never
makes a second card. Bad data on one order ends that order **Skipped** with the reason and
an admin alert; the run goes on.
"""
from __future__ import annotations

import hashlib
import logging
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

from ..crashpoints import reach
from ..domain.cards import CardKind, CardSource, MirrorCard, ShopifyCard
from ..domain.codes import CodeHasher, last4, mask
from ..domain.emails import EmailEvent, Metric, valid_email
from ..domain.ledger import Activity, Channel, Receipt
from ..domain.money import Money
from ..errors import AmbiguousError, RetriableError
from ..ports import (CardBook, Clock, GiftCardLedger, Messenger, OrderEntry, OrderKind, OrderLine, OrderStatus,
                     ShopifyOrder, ShopifyOrders)
from ..runtime.budget import ONLINE, priority
from . import crm
from .context import StoreContext, safe_call
from .online import (KnownEntries, OnlineOptions, Watermark, numeric, order_key, order_source, poll_orders,
                     resume_entries, run_steps, tag_order)
from .options import StoreOptions

log = logging.getLogger("giftsync.shopify_purchases")

NONCE_PREFIX = "nonce:"
DONE_PREFIX = "done:"
CREATE_SENDS = 3
WATERMARK = "watermark:shopify-purchases"
PURCHASE_STATUSES = ("paid", "partially_refunded")

RECIPIENT_KEYS = {"recipient email": "email", "recipient_email": "email", "recipient e-mail": "email",
                  "recipient name": "name", "recipient_name": "name", "message": "message",
                  "recipient message": "message", "gift message": "message"}


class Invalid(Exception):
    """Bad order data: the order is Skipped with this reason."""


class CreationRefused(Exception):
    """Shopify refused a card mid-order."""


@dataclass
class Recipient:
    email: str = ""
    name: str = ""
    message: str = ""


@dataclass
class Unit:
    """One card to issue for a giftsync SKU line."""
    index: int                # across the order's giftsync units: the code index
    line: OrderLine
    amount: Money
    recipient: Recipient


@dataclass
class PurchaseReport:
    orders: int = 0
    cards_issued: int = 0
    cards_mirrored: int = 0
    waiting: int = 0
    skipped: int = 0
    errors: int = 0


class _Finishing:
    """The Done rows of one page's orders, added from the page's threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: list[OrderEntry] = []
        self._orders: list[ShopifyOrder] = []

    def add(self, row: OrderEntry, order: ShopifyOrder) -> None:
        with self._lock:
            self._rows.append(row)
            self._orders.append(order)

    def take(self) -> tuple[list[OrderEntry], list[ShopifyOrder]]:
        with self._lock:
            rows, orders = self._rows, self._orders
            self._rows, self._orders = [], []
        return rows, orders


def note_for(order_id: str, index: int) -> str:
    return f"giftsync:order:{numeric(order_id)}:{index}"


def done_attempt(nonce: str) -> str:
    return DONE_PREFIX + hashlib.sha256(nonce.encode()).hexdigest()[:12]


def recipient_of(line: OrderLine) -> Recipient:
    found = Recipient()
    for key, value in (line.properties or {}).items():
        name = RECIPIENT_KEYS.get(str(key).strip().lower())
        if name and value:
            setattr(found, name, str(value).strip())
    return found


def purchaser_of(order: ShopifyOrder) -> tuple[str, str]:
    email = (order.customer_email or order.email or "").strip()
    name = " ".join(p for p in (order.customer_first_name, order.customer_last_name) if p).strip()
    return email, name


class ShopifyPurchases:
    name = "shopify-purchases"

    def __init__(self, book: CardBook, ledger: GiftCardLedger, orders: ShopifyOrders, messenger: Messenger,
                 clock: Clock, hasher: CodeHasher, options: StoreOptions | None = None,
                 online: OnlineOptions | None = None, *, stop: Callable[[], bool] = lambda: False) -> None:
        self.ctx = StoreContext(book=book, ledger=ledger, messenger=messenger, clock=clock, hasher=hasher,
                                options=options or StoreOptions())
        self.orders = orders
        self.online = online or OnlineOptions()
        self.stop = stop
        self.watermark = Watermark(book, WATERMARK, "purchase.cursor")
        self._report = PurchaseReport()
        self._finished: set[str] = set()      # Done/Skipped here: no Airtable read when seen again
        self._count_lock = threading.Lock()   # orders of a page are handled concurrently
        self._pool: ThreadPoolExecutor | None = None
        self._known = KnownEntries()          # a page's registry rows, read in one request

    # -- the cycle ----------------------------------------------------------------------------
    def run_once(self) -> PurchaseReport:
        report = self._report = PurchaseReport()
        started = self.ctx.clock.now()
        failed = run_steps((self._resume_open, lambda: self._poll(started)), self.stop, log, "purchases")
        report.errors += failed
        log.info("shopify purchases cycle orders=%d issued=%d mirrored=%d waiting=%d skipped=%d errors=%d",
                 report.orders, report.cards_issued, report.cards_mirrored, report.waiting, report.skipped,
                 report.errors)
        return report

    def _count(self, what: str, n: int = 1) -> None:
        with self._count_lock:
            setattr(self._report, what, getattr(self._report, what) + n)

    def _pool_(self) -> ThreadPoolExecutor | None:
        """The orders of one page in flight (``OnlineOptions.purchase_workers``); orders are
        independent (each its own registry row, nonce and cards), so one slow order no longer
        holds up the others. None: one at a time."""
        if self.online.purchase_workers <= 1:
            return None
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.online.purchase_workers, thread_name_prefix="purchases")
        return self._pool

    def _resume_open(self) -> None:
        """Rows left Processing (a crash, a failed email) or Waiting (native cards late)."""
        with priority(ONLINE):
            def again(e: OrderEntry) -> None:
                order = self.orders.order(e.shopify_id)
                if order is None:
                    self._alert_once(e, "Order no longer visible in Shopify",
                                     f"order={e.order} registry row {e.order_key} is {e.status.value}")
                    return
                self.process(order, e)
            failed = resume_entries(self.ctx.book.open_order_entries(OrderKind.PURCHASE), self.stop, again, log,
                                    "online purchase (resume)")
            self._report.errors += failed

    def _poll(self, started: datetime) -> None:
        with priority(ONLINE):
            self.watermark.load()
            since = self.watermark.since(self.online.overlap_seconds)

            def fetch(cursor: str | None):
                return self.orders.orders(updated_after=since, financial_statuses=PURCHASE_STATUSES,
                                          without_tag=self.online.order_tag, after_cursor=cursor,
                                          page_size=self.online.page_size)

            def handle(order: ShopifyOrder) -> bool | None:
                if not self.sells_gift_cards(order):
                    return None
                ok = safe_call(log, "online purchase", order.name or order.id,
                               lambda: self.process(order, finishing=finishing))
                if not ok:
                    self._count("errors")
                return ok
            finishing = _Finishing()

            def prefetch(orders: list[ShopifyOrder]) -> None:
                wanted = [o for o in orders if self.sells_gift_cards(o)
                          and order_key(OrderKind.PURCHASE, o.id) not in self._finished]
                self._known.load(self.ctx.book, [order_key(OrderKind.PURCHASE, o.id) for o in wanted])
                self._register_page(wanted)
            try:
                newest = poll_orders(fetch, handle, max_pages=self.online.max_pages, stop=self.stop,
                                     pool=self._pool_(), prefetch=prefetch,
                                     after_page=lambda _orders: self._finish_page(finishing))
            finally:
                self._known.clear()
            self.watermark.advance(newest, started, now=self.ctx.clock.now(),
                                   details=f"orders={self._report.orders} errors={self._report.errors}")

    def sells_gift_cards(self, order: ShopifyOrder) -> bool:
        return any(l.is_gift_card or self.online.is_giftsync_sku(l.sku) for l in order.lines)

    def _register_page(self, orders: list[ShopifyOrder]) -> None:
        """The Processing rows (each with its nonce) of the page's new orders that validate, in
        one write before any of their cards; an order that does not validate is left to
        ``process`` (Skipped there). If the write fails nothing is known: each order reads and
        writes its own row (a row this write did make holds a nonce no card was made with)."""
        rows = []
        for order in orders:
            key = order_key(OrderKind.PURCHASE, order.id)
            if not self._known.absent(key):
                continue
            sku_lines, native_lines = self._lines(order)
            try:
                units = self.plan(order, sku_lines)
            except Invalid:
                continue
            rows.append(self._claim(order, units, native_lines, secrets.token_hex(16)))
        if not rows:
            return
        reach("purchase.register")
        try:
            saved = self.ctx.book.save_order_entries(rows)
        except Exception:
            self._known.clear()
            raise
        self._known.registered(saved)

    def _lines(self, order: ShopifyOrder) -> tuple[list[OrderLine], list[OrderLine]]:
        """(giftsync SKU lines, Shopify-native gift-card lines)."""
        return ([l for l in order.lines if not l.is_gift_card and self.online.is_giftsync_sku(l.sku)],
                [l for l in order.lines if l.is_gift_card])

    def _claim(self, order: ShopifyOrder, units: list[Unit], native_lines: list[OrderLine], nonce: str) -> OrderEntry:
        return OrderEntry(order_key=order_key(OrderKind.PURCHASE, order.id), order=order.name, shopify_id=order.id,
                          kind=OrderKind.PURCHASE, status=OrderStatus.PROCESSING, attempt=NONCE_PREFIX + nonce,
                          details=f"claimed: {len(units)} giftsync card(s), "
                                  f"{sum(l.quantity for l in native_lines)} Shopify card(s)")

    # -- one order ----------------------------------------------------------------------------
    def process(self, order: ShopifyOrder, entry: OrderEntry | None = None, *,
                finishing: "_Finishing | None" = None) -> None:
        """One order. ``finishing``: the Done row (and the tag after it) is left there for its
        page's one write (``_finish_page``) instead of a write of its own."""
        key = order_key(OrderKind.PURCHASE, order.id)
        if entry is None and key in self._finished:
            self._tag(order)
            return
        registered = False                  # its row written with its page's, just now
        if entry is None:
            known, entry = self._known.take(key)
            registered = self._known.take_registered(key)
            if not known:
                entry = self.ctx.book.order_entry(key)
        if entry is not None and entry.status in (OrderStatus.DONE, OrderStatus.SKIPPED):
            self._finished.add(key)
            self._tag(order)            # a crash between the registry and the tag: finish the tag
            return
        sku_lines, native_lines = self._lines(order)
        if not sku_lines and not native_lines:
            return
        self._count("orders")
        source = order_source(order.name)
        try:
            units = self.plan(order, sku_lines)
        except Invalid as exc:
            if entry is not None and entry.status is OrderStatus.PROCESSING and entry.attempt.startswith(NONCE_PREFIX):
                # cards may exist already: never skip blindly; an admin must look
                self._alert_once(entry, "Online order stuck in Processing",
                                 f"order={order.name} no longer validates after its claim: {exc}")
                return
            self._skip(order, entry, str(exc))
            return

        nonce = ""
        resumed = entry is not None and not registered
        if entry is None or registered:
            if entry is None:
                nonce = secrets.token_hex(16)
                reach("purchase.register")
                entry = self.ctx.book.save_order_entries([self._claim(order, units, native_lines, nonce)])[0]
            else:
                nonce = entry.attempt[len(NONCE_PREFIX):]
            existing: list[MirrorCard] = []
            log.info("online order claimed order=%s giftsync_cards=%d native_lines=%d",
                     order.name, len(units), len(native_lines))
        else:
            if entry.attempt.startswith(NONCE_PREFIX):
                nonce = entry.attempt[len(NONCE_PREFIX):]
            existing = self.ctx.book.cards_by_source_record(key)
            log.info("online order resumed order=%s status=%s", order.name, entry.status.value)

        by_hash = {c.code_hash: c for c in existing if c.code_hash}
        by_shopify = {c.shopify_id: c for c in existing}
        purchaser, _ = purchaser_of(order)
        # The order's receipts go in one write once its emails are out, each card's CRM outcome
        # folded into its ISSUE row (crm.fold_into_openings): before any registry write, and
        # also when the order stops half-way (a resume finds what was written).
        pending: list[Receipt] = []

        def flush() -> None:
            rows = crm.fold_into_openings(pending)
            pending.clear()
            self.ctx.write_receipts("purchase.receipt", rows)

        try:
            cards, seen, expected = self._issue(order, entry, units, native_lines, nonce, key, source, resumed,
                                                existing, by_hash, by_shopify, pending, flush)
        finally:
            flush()
        if seen is None:
            return

        attempt = done_attempt(nonce) if nonce else entry.attempt
        now = self.ctx.clock.now()
        if seen < expected:
            waiting = OrderEntry(order_key=key, order=order.name, shopify_id=order.id, kind=OrderKind.PURCHASE,
                                 status=OrderStatus.WAITING, card_ids=[c.record_id for c in cards], attempt=attempt,
                                 details=f"{seen} of {expected} Shopify gift card(s) issued so far; retried every "
                                         f"cycle (giftsync cards: {len(units)})")
            reach("purchase.finish")
            self.ctx.book.save_order_entries([waiting])
            self._count("waiting")
            log.info("online order waiting order=%s native_seen=%d expected=%d", order.name, seen, expected)
            return
        done = OrderEntry(order_key=key, order=order.name, shopify_id=order.id, kind=OrderKind.PURCHASE,
                          status=OrderStatus.DONE, card_ids=[c.record_id for c in cards], attempt=attempt,
                          processed_at=now,
                          details=f"{len(units)} giftsync card(s) issued, {seen} Shopify card(s) mirrored: "
                                  + ", ".join(c.masked for c in cards))
        if finishing is not None:
            finishing.add(done, order)
            return
        reach("purchase.finish")
        self.ctx.book.save_order_entries([done])
        self._finished.add(key)
        log.info("online order done order=%s cards=%d purchaser_known=%s", order.name, len(cards), bool(purchaser))
        self._tag(order)

    def _finish_page(self, finishing: "_Finishing") -> list[str]:
        """The Done rows of a page's orders in one write, then each order's tag. If the write
        fails the orders stay Processing and are resumed next cycle (their cards are found by
        hash, nothing is made twice). The ids of the orders whose tag did not go on (counted as
        errors: the watermark stays before them and the next poll tags them)."""
        rows, orders = finishing.take()
        if not rows:
            return []
        reach("purchase.finish")
        try:
            self.ctx.book.save_order_entries(rows)
        except Exception:
            self._count("errors", len(rows))
            raise
        for row, order in zip(rows, orders):
            self._finished.add(row.order_key)
            log.info("online order done order=%s cards=%d", order.name, len(row.card_ids))
        untagged = [order.id for order in orders
                    if not safe_call(log, "online purchase tag", order.name or order.id, lambda o=order: self._tag(o))]
        self._count("errors", len(untagged))
        return untagged

    def _issue(self, order: ShopifyOrder, entry: OrderEntry, units: list[Unit], native_lines: list[OrderLine],
               nonce: str, key: str, source: str, resumed: bool, existing: list[MirrorCard],
               by_hash: dict[str, MirrorCard], by_shopify: dict[str, MirrorCard], pending: list[Receipt],
               flush: Callable[[], None]) -> tuple[list[MirrorCard], int | None, int]:
        """The order's cards: giftsync's (created or adopted, delivered, relayed to the CRM) and
        Shopify's (mirrored, relayed). Receipts go to ``pending``; ``flush`` writes them (before a
        Skipped row). (cards, native cards seen — None when the order stops here —, expected)."""
        cards: list[MirrorCard] = []
        if units and entry.status is OrderStatus.PROCESSING:
            if not nonce:
                self._skip(order, entry, "the order was claimed but its nonce is missing; check Shopify for "
                                         f"cards with note {note_for(order.id, 0)[:-2]}:…")
                return cards, None, 0
            delivered_all = True
            for unit in units:
                code = self.ctx.hasher.derive(nonce, unit.index)
                try:
                    card, crm_recorded = self._sku_card(order, unit, code, by_hash.get(self.ctx.hasher.hash(code)),
                                                        key, source, pending, resumed=resumed)
                except CreationRefused as exc:
                    flush()           # the cards made so far keep their receipts before the row ends
                    self._skip(order, entry, f"card {unit.index + 1} of {len(units)}: {exc}", cards=cards,
                               nonce=nonce)
                    return cards, None, 0
                cards.append(card)
                if not self._deliver(order, unit, code, card, source):
                    delivered_all = False
                if not crm_recorded:
                    self._crm(order, card, unit.amount, unit.recipient, source, pending)
            if not delivered_all:
                log.warning("online order kept in Processing order=%s: delivery emails failed", order.name)
                return cards, None, 0
            if not self._confirm(order, units, cards, source):
                log.warning("online order kept in Processing order=%s: purchaser confirmation failed", order.name)
                return cards, None, 0
        elif units:
            # Waiting: the giftsync cards were finished before; keep them linked.
            cards.extend(c for c in existing if c.source is CardSource.ONLINE_PURCHASE)

        expected = sum(l.quantity for l in native_lines)
        seen = 0
        if native_lines:
            created_after = (order.created_at or self.ctx.clock.now()) - timedelta(
                seconds=self.online.native_lookback_seconds)
            read_at = self.ctx.clock.now()      # the balances below were read after this
            issued = self.orders.cards_for_order(order.id, created_after)
            lines = {l.id: l for l in native_lines}
            for item in issued:
                line = lines.get(item.line_item_id or "") or (native_lines[0] if len(native_lines) == 1 else None)
                recipient = recipient_of(line) if line else Recipient()
                card, crm_recorded = self._native_card(order, item.card, recipient, by_shopify.get(item.card.id),
                                                       key, source, pending, read_at=read_at)
                cards.append(card)
                if not crm_recorded:
                    self._crm(order, card, card.initial_value or card.balance, recipient, source, pending)
            seen = len(issued)
        return cards, seen, expected

    # -- validation ---------------------------------------------------------------------------
    def plan(self, order: ShopifyOrder, sku_lines: list[OrderLine]) -> list[Unit]:
        purchaser, _ = purchaser_of(order)
        units: list[Unit] = []
        for line in sku_lines:
            if line.quantity < 1:
                continue
            if line.quantity > self.ctx.options.max_quantity:
                raise Invalid(f"line {line.name!r}: quantity {line.quantity} is above the maximum "
                              f"{self.ctx.options.max_quantity}")
            price = line.unit_price
            if price is None or not price.is_positive:
                raise Invalid(f"line {line.name!r} (SKU {line.sku}) has no positive unit price")
            if price.amount > self.ctx.options.max_card_amount:
                raise Invalid(f"line {line.name!r}: {price} is above the maximum card amount "
                              f"{self.ctx.options.max_card_amount}")
            recipient = recipient_of(line)
            if recipient.email and not valid_email(recipient.email):
                raise Invalid(f"line {line.name!r}: the recipient email is not a valid address")
            if not recipient.email:
                if not valid_email(purchaser):
                    raise Invalid(f"line {line.name!r}: no recipient email and no customer email to "
                                  "deliver the code to")
                recipient = Recipient(email=purchaser, name=" ".join(
                    p for p in (order.customer_first_name, order.customer_last_name) if p), message=recipient.message)
            for _ in range(line.quantity):
                units.append(Unit(index=len(units), line=line, amount=price.quantize(), recipient=recipient))
        return units

    # -- one card -----------------------------------------------------------------------------
    def _sku_card(self, order: ShopifyOrder, unit: Unit, code: str, mirror: MirrorCard | None, key: str,
                  source: str, pending: list[Receipt], *, resumed: bool) -> tuple[MirrorCard, bool]:
        """(the card, whether its CRM outcome is recorded already); its ISSUE row into ``pending``
        unless written before."""
        rid = f"issue:{key}:{unit.index}"
        if mirror is not None:
            receipts = self.ctx.book.receipts_for_card(mirror.record_id)
            if not any(r.receipt_id == rid for r in receipts):
                pending.append(self._issue_row(rid, order, mirror, unit.amount, mirror.balance, source,
                                               f"giftsync card {unit.index + 1}, SKU {unit.line.sku}"))
            return mirror, crm.issued_link(receipts, mirror.shopify_id) is not None
        shop = self._adopt(code, order.id, unit.index) if resumed else None
        if shop is None:
            shop = self._create(code, unit.amount, order.id, unit.index)
        else:
            log.info("online card adopted order=%s index=%d card=%s", order.name, unit.index, mask(shop.last4))
        purchaser, purchaser_name = purchaser_of(order)
        now = self.ctx.clock.now()
        card = MirrorCard(
            record_id=None, shopify_id=shop.id, last4=shop.last4, balance=shop.balance,
            code_hash=self.ctx.hasher.hash(code), initial_value=shop.initial_value or unit.amount,
            kind=CardKind.DIGITAL, source=CardSource.ONLINE_PURCHASE, recipient_name=unit.recipient.name,
            recipient_email=unit.recipient.email, purchaser_name=purchaser_name, purchaser_email=purchaser,
            order=order.name, expires_on=shop.expires_on, created=shop.created_at or now, last_synced=now,
            opened_at=now, source_record=key)
        reach("purchase.mirror")
        saved = self.ctx.book.save_cards([card])[0]
        self._count("cards_issued")
        pending.append(self._issue_row(rid, order, saved, unit.amount, shop.balance, source,
                                       f"giftsync card {unit.index + 1}, SKU {unit.line.sku}"))
        return saved, False

    def _native_card(self, order: ShopifyOrder, shop: ShopifyCard, recipient: Recipient,
                     mirror: MirrorCard | None, key: str, source: str, pending: list[Receipt], *,
                     read_at: datetime) -> tuple[MirrorCard, bool]:
        """Mirror a Shopify-native card; it opens with the balance read at ``read_at`` (ADR 0004).
        (the card, whether its CRM outcome is recorded already); its ISSUE row into ``pending``."""
        rid = f"issue:{shop.id}"
        if mirror is None:
            mirror = self.ctx.book.card_by_shopify_id(shop.id)     # mirrored by a shop redemption first?
        if mirror is not None:
            receipts = self.ctx.book.receipts_for_card(mirror.record_id)
            if not any(r.receipt_id == rid for r in receipts):
                # mirrored before (a shop or a balance check met it first): that MIRROR receipt
                # opened the card's ledger, so this one carries no amount (ADR 0004)
                opened_before = mirror.opened_at is not None
                value = None if opened_before else shop.initial_value or shop.balance
                pending.append(self._issue_row(
                    rid, order, mirror, value, shop.balance, source,
                    "Shopify-native card (issued and emailed by Shopify)"
                    + ("; its ledger was opened when it was first mirrored" if opened_before else "")))
            return mirror, crm.issued_link(receipts, mirror.shopify_id) is not None
        purchaser, purchaser_name = purchaser_of(order)
        now = self.ctx.clock.now()
        card = MirrorCard(
            record_id=None, shopify_id=shop.id, last4=shop.last4, balance=shop.balance, code_hash=None,
            initial_value=shop.initial_value, status=shop.status_on(now.date()), kind=CardKind.DIGITAL,
            source=CardSource.SHOPIFY_NATIVE, recipient_name=recipient.name,
            recipient_email=recipient.email if valid_email(recipient.email) else "",
            purchaser_name=purchaser_name, purchaser_email=purchaser, order=order.name,
            expires_on=shop.expires_on, created=shop.created_at or now, last_synced=now,
            opened_at=min(read_at, now), source_record=key)
        reach("purchase.mirror")
        saved = self.ctx.book.save_cards([card])[0]
        self._count("cards_mirrored")
        pending.append(self._issue_row(rid, order, saved, shop.initial_value or shop.balance, shop.balance, source,
                                       "Shopify-native card (issued and emailed by Shopify)"))
        log.info("native card mirrored order=%s card=%s", order.name, saved.masked)
        return saved, False

    def _issue_row(self, receipt_id: str, order: ShopifyOrder, card: MirrorCard, amount: Money | None,
                   balance: Money, source: str, details: str) -> Receipt:
        return self.ctx.receipt(
            receipt_id, Activity.ISSUE, channel=Channel.ONLINE, card_record_id=card.record_id,
            card_masked=card.masked,
            amount=amount if amount is not None and amount.currency == balance.currency else None,
            balance_after=balance, source=source, outcome="Issued online", correlation_id=order.id,
            details=details)

    def _adopt(self, code: str, order_id: str, index: int) -> ShopifyCard | None:
        shop = self.ctx.ledger.find_by_code(code)
        if shop is None:
            return None
        if shop.note != note_for(order_id, index):
            raise CreationRefused(f"code {mask(last4(code))} already belongs to another card")
        return shop

    def _create(self, code: str, amount: Money, order_id: str, index: int) -> ShopifyCard:
        note = note_for(order_id, index)
        for _ in range(CREATE_SENDS):
            reach("purchase.create")
            try:
                result = self.ctx.ledger.create_card(code=code, amount=amount, note=note)
            except AmbiguousError as exc:
                log.warning("online card create ambiguous order=%s index=%d reason=%r; reading back",
                            numeric(order_id), index, exc.reason)
                shop = self._adopt(code, order_id, index)
                if shop is not None:
                    return shop
                continue
            if result.card is not None:
                log.info("online card created order=%s index=%d card=%s", numeric(order_id), index,
                         mask(result.card.last4))
                return result.card
            if result.code_taken:
                shop = self._adopt(code, order_id, index)
                if shop is not None:
                    return shop
                raise RetriableError("shopify", "code reported taken but not found yet")
            raise CreationRefused(result.error or "Shopify refused the card")
        raise RetriableError("shopify", f"card create still ambiguous after {CREATE_SENDS} sends")

    # -- emails and CRM -----------------------------------------------------------------------
    def _deliver(self, order: ShopifyOrder, unit: Unit, code: str, card: MirrorCard, source: str) -> bool:
        _, purchaser_name = purchaser_of(order)
        gift = unit.recipient.email.lower() != purchaser_of(order)[0].lower()
        event = EmailEvent(
            metric=Metric.GIFT_CARD_DELIVERED, email=unit.recipient.email,
            unique_id=f"order:{numeric(order.id)}:deliver:{unit.index}", carries_code=True,
            properties={"Code": code, "Card": card.masked, "Amount": unit.amount.plain(),
                        "Currency": unit.amount.currency, "Recipient Name": unit.recipient.name,
                        "Purchaser Name": purchaser_name if gift else "", "Message": unit.recipient.message,
                        "Order": order.name, "Store": "",
                        "Expires On": card.expires_on.isoformat() if card.expires_on else ""},
            first_name=unit.recipient.name.split(" ")[0] if unit.recipient.name else "")
        reach("purchase.deliver")
        return self.ctx.notifier.send(event, source=source, card_record_id=card.record_id, card_masked=card.masked)

    def _confirm(self, order: ShopifyOrder, units: list[Unit], cards: list[MirrorCard], source: str) -> bool:
        """One confirmation to the purchaser when some card went to someone else."""
        purchaser, purchaser_name = purchaser_of(order)
        gifts = [(u, c) for u, c in zip(units, cards) if u.recipient.email.lower() != purchaser.lower()]
        if not gifts or not valid_email(purchaser):
            return True
        total = gifts[0][0].amount
        for u, _ in gifts[1:]:
            total = total + u.amount if u.amount.currency == total.currency else total
        event = EmailEvent(
            metric=Metric.PURCHASE_CONFIRMED, email=purchaser, unique_id=f"order:{numeric(order.id)}:purchaser",
            properties={"Recipient Email": gifts[0][0].recipient.email, "Recipient Name": gifts[0][0].recipient.name,
                        "Recipients": sorted({u.recipient.email for u, _ in gifts}),
                        "Purchaser Name": purchaser_name, "Amount": total.plain(), "Currency": total.currency,
                        "Quantity": len(gifts), "Kind": CardKind.DIGITAL.value, "Cards": [c.masked for _, c in gifts],
                        "Message": gifts[0][0].recipient.message, "Order": order.name, "OrderName": order.name,
                        "Store": ""},
            first_name=order.customer_first_name)
        reach("purchase.email")
        return self.ctx.notifier.send(event, source=source)

    def _crm(self, order: ShopifyOrder, card: MirrorCard, amount: Money, recipient: Recipient, source: str,
             pending: list[Receipt]) -> None:
        purchaser, purchaser_name = purchaser_of(order)
        crm.relay_issued(self.ctx, crm.Issue(
            shopify_id=card.shopify_id, card_record_id=card.record_id, card_masked=card.masked, amount=amount,
            channel=Channel.ONLINE, source=source, purchaser_email=purchaser, purchaser_name=purchaser_name,
            recipient_email=recipient.email, recipient_name=recipient.name, order=order.name,
            kind=card.kind.value), point="purchase.crm", receipt_point="purchase.receipt", receipts=pending)

    # -- endings ------------------------------------------------------------------------------
    def _skip(self, order: ShopifyOrder, entry: OrderEntry | None, reason: str, *,
              cards: list[MirrorCard] = (), nonce: str = "") -> None:
        key = order_key(OrderKind.PURCHASE, order.id)
        attempt = done_attempt(nonce) if nonce else (entry.attempt if entry and not entry.attempt.startswith(
            NONCE_PREFIX) else "")
        row = OrderEntry(order_key=key, order=order.name, shopify_id=order.id, kind=OrderKind.PURCHASE,
                         status=OrderStatus.SKIPPED, card_ids=[c.record_id for c in cards], attempt=attempt,
                         processed_at=self.ctx.clock.now(), details=f"Skipped: {reason}"[:1000])
        reach("purchase.finish")
        self.ctx.book.save_order_entries([row])
        self._finished.add(key)
        self._count("skipped")
        log.warning("online order skipped order=%s reason=%r", order.name, reason[:300])
        self.ctx.notifier.alert(f"order-skipped:{key}", "Online order skipped",
                                f"order={order.name}: {reason}", source=order_source(order.name))
        self._tag(order)

    def _tag(self, order: ShopifyOrder) -> None:
        tag_order(self.orders, order, self.online.order_tag, "purchase.tag")

    def _alert_once(self, entry: OrderEntry, subject: str, details: str) -> None:
        self.ctx.notifier.alert(f"order-stuck:{entry.order_key}", subject, details,
                                source=order_source(entry.order))
        log.warning("%s key=%s", subject, entry.order_key)
