"""The Shopify redemption prong: orders paid partly or wholly with gift cards, and refunds
back to a card.

For each gift-card transaction of an order (``gateway: gift_card``, SUCCESS; SALE/CAPTURE
= a redemption, REFUND = a credit) not yet applied: if giftsync mirrors the card, re-read it
from Shopify, write a Receipts row (REDEEM or CREDIT, channel Online, the order's name, the
amount, the balance after; id ``online:<order>:<transaction>``), set the Airtable balance
from Shopify's figure, and relay a redemption to the CRM on the card holder's profile. Cards
giftsync never mirrored (issued before it, only ever used online) are skipped and counted
in the registry row's Details and in a log line.

The registry row (``redemption:<order id>``) lists the transactions already applied, so a
refund arriving days later is applied once, and a crash half-way re-applies nothing twice
(receipts upsert on their id, balances are set, CRM events carry a ``unique_id``). Each
cycle ends with the reconciliation walk (adjustments), after the orders.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Callable

from ..crashpoints import reach
from ..domain.cards import MirrorCard, ShopifyCard
from ..domain.codes import CodeHasher, mask
from ..domain.ledger import Activity, Channel, ledger_balance
from ..errors import RetriableError
from ..ports import (CardBook, Clock, GiftCardLedger, Messenger, OrderEntry, OrderKind, OrderPayment, OrderStatus,
                     ShopifyOrder, ShopifyOrders)
from ..runtime.budget import BACKGROUND, ONLINE, priority
from . import crm
from .context import StoreContext, safe_call
from .online import (KnownEntries, OnlineOptions, Watermark, numeric, order_key, order_source, poll_orders,
                     resume_entries, run_steps, tag_order)
from .options import StoreOptions
from .reconcile import ReconcileReport, Reconciler

log = logging.getLogger("giftsync.shopify_redemptions")

WATERMARK = "watermark:shopify-redemptions"
REDEMPTION_STATUSES = ("paid", "partially_paid", "partially_refunded", "refunded")
REDEEM_KINDS = {"SALE", "CAPTURE"}
REFUND_KINDS = {"REFUND"}


@dataclass
class RedemptionReport:
    orders: int = 0
    redeemed: int = 0
    credited: int = 0
    skipped_cards: int = 0
    adjusted: int = 0
    errors: int = 0


def gift_card_payments(order: ShopifyOrder) -> list[OrderPayment]:
    return [p for p in order.payments if p.gateway == "gift_card" and p.status.upper() == "SUCCESS"
            and p.kind.upper() in REDEEM_KINDS | REFUND_KINDS]


def in_opening_balance(mirror: MirrorCard, payment: OrderPayment) -> bool:
    """True when the payment or refund was processed before the card's opening balance was read
    (``Opened At``): a card mirrored after it was used online opens with that movement inside its
    balance, so the order's receipt must not count it again (docs/adr/0004-online-ledger.md).
    Shopify's processedAt has whole seconds: only a transaction of an earlier second than the
    opening read counts as inside it; one in the same second is counted as a movement of its own.
    A wrong call there (or clock skew between Shopify and giftsync) is not lost: the reconciler
    finds the ledger one movement off and records the difference as an adjustment, after the
    claim window."""
    return (mirror.opened_at is not None and payment.processed_at is not None
            and payment.processed_at < mirror.opened_at.replace(microsecond=0))


def already_in_ledger(receipts: list, mirror: MirrorCard, shop: ShopifyCard) -> bool:
    """True when the card's receipts already add up to Shopify's balance, this movement included:
    the reconciler recorded it as an adjustment because the order came later than the claim
    window (orders search lag, a backlog under faults). Counting it again would record the money
    twice (docs/adr/0004-online-ledger.md)."""
    total = ledger_balance(receipts, shop.initial_value or mirror.initial_value)
    return total is not None and total.currency == shop.balance.currency and total.amount == shop.balance.amount


class ShopifyRedemptions:
    name = "shopify-redemptions"

    def __init__(self, book: CardBook, ledger: GiftCardLedger, orders: ShopifyOrders, messenger: Messenger,
                 clock: Clock, hasher: CodeHasher, options: StoreOptions | None = None,
                 online: OnlineOptions | None = None, *, stop: Callable[[], bool] = lambda: False,
                 walk: bool = True) -> None:
        self.ctx = StoreContext(book=book, ledger=ledger, messenger=messenger, clock=clock, hasher=hasher,
                                options=options or StoreOptions())
        self.orders = orders
        self.online = online or OnlineOptions()
        self.stop = stop
        self.watermark = Watermark(book, WATERMARK, "online_redeem.cursor")
        self.reconciler = Reconciler(self.ctx, self.online) if walk else None
        self._report = RedemptionReport()
        # Orders finished by this process and their applied transactions: an order seen again
        # inside the overlap window (tags bump updatedAt) costs no Airtable read.
        self._finished: dict[str, frozenset[str]] = {}
        self._known = KnownEntries()          # a page's registry rows, read in one request

    def run_once(self) -> RedemptionReport:
        report = self._report = RedemptionReport()
        started = self.ctx.clock.now()
        steps: list[Callable[[], object]] = [self._resume_open, lambda: self._poll(started)]
        if self.reconciler is not None:
            steps.append(lambda: self._walk(started))
        failed = run_steps(steps, self.stop, log, "redemptions")
        report.errors += failed
        log.info("shopify redemptions cycle orders=%d redeemed=%d credited=%d skipped_cards=%d adjusted=%d errors=%d",
                 report.orders, report.redeemed, report.credited, report.skipped_cards, report.adjusted,
                 report.errors)
        return report

    def _walk(self, polled_at: datetime) -> None:
        with priority(BACKGROUND):
            result = self.reconciler.walk(ReconcileReport(), self.stop, orders_polled_at=polled_at)
        self._report.adjusted += result.adjusted + result.status_changed
        self._report.errors += result.errors

    def _resume_open(self) -> None:
        with priority(ONLINE):
            entries = self.ctx.book.open_order_entries(OrderKind.REDEMPTION)

        def again(e: OrderEntry) -> None:
            with priority(ONLINE):
                order = self.orders.order(e.shopify_id)
                if order is None:
                    log.warning("registry row open but order not visible key=%s", e.order_key)
                    return
                self.process(order, e)
        failed = resume_entries(entries, self.stop, again, log, "online redemption (resume)")
        self._report.errors += failed

    def _poll(self, started: datetime) -> None:
        with priority(ONLINE):
            self.watermark.load()
        since = self.watermark.since(self.online.overlap_seconds)

        def fetch(cursor: str | None):
            with priority(ONLINE):
                return self.orders.orders(updated_after=since, financial_statuses=REDEMPTION_STATUSES,
                                          gift_card_payments_only=True, after_cursor=cursor,
                                          page_size=self.online.page_size)

        def handle(order: ShopifyOrder) -> bool:
            ok = safe_call(log, "online redemption", order.name or order.id, lambda: self.process(order))
            if not ok:
                self._report.errors += 1
            return ok
        def prefetch(orders: list[ShopifyOrder]) -> None:
            with priority(ONLINE):
                self._known.load(self.ctx.book, [order_key(OrderKind.REDEMPTION, o.id) for o in orders
                                                 if not self._seen_all(o)])
        try:
            newest = poll_orders(fetch, handle, max_pages=self.online.max_pages, stop=self.stop, prefetch=prefetch)
        finally:
            self._known.clear()
        with priority(ONLINE):
            self.watermark.advance(newest, started, now=self.ctx.clock.now(),
                                   details=f"orders={self._report.orders} errors={self._report.errors}")

    def _seen_all(self, order: ShopifyOrder) -> bool:
        """Finished by this process with every gift-card payment it now shows: no read needed."""
        known = self._finished.get(order_key(OrderKind.REDEMPTION, order.id))
        return known is not None and {p.id for p in gift_card_payments(order)} <= known

    # -- one order ----------------------------------------------------------------------------
    def process(self, order: ShopifyOrder, entry: OrderEntry | None = None) -> None:
        key = order_key(OrderKind.REDEMPTION, order.id)
        if entry is None and self._seen_all(order):
            self._tag(order)
            return
        with priority(ONLINE):
            if entry is None:
                loaded, entry = self._known.take(key)
                if not loaded:
                    entry = self.ctx.book.order_entry(key)
            handled = set(entry.transactions) if entry else set()
            payments = gift_card_payments(order)
            new = [p for p in payments if p.id not in handled]
            if not new:
                if entry is not None and entry.status is not OrderStatus.DONE:
                    self._finish(order, entry, handled, [], [], entry.card_ids)
                else:
                    self._tag(order)
                return
            self._report.orders += 1
            source = order_source(order.name)
            if entry is None or entry.status is not OrderStatus.PROCESSING:
                entry = OrderEntry(order_key=key, order=order.name, shopify_id=order.id, kind=OrderKind.REDEMPTION,
                                   status=OrderStatus.PROCESSING, card_ids=list(entry.card_ids) if entry else [],
                                   transactions=sorted(handled),
                                   details=f"applying {len(new)} gift-card transaction(s)")
                reach("online_redeem.register")
                entry = self.ctx.book.save_order_entries([entry])[0]
            applied: list[str] = []
            skipped: list[str] = []
            cards = list(entry.card_ids)
            # per card, what this order's new payments and refunds move together (a sale and its
            # refund seen in one go cancel out: then nothing is "already in the ledger")
            moving: dict[str, Decimal] = {}
            for p in new:
                signed = p.amount.amount if p.kind.upper() in REFUND_KINDS else -p.amount.amount
                moving[p.gift_card_id] = moving.get(p.gift_card_id, Decimal(0)) + signed
            covered: dict[str, bool] = {}       # card → this order's movements already in its ledger
            for payment in new:
                card_record = self._apply(order, payment, source, moving, covered)
                if card_record is None:
                    skipped.append(mask(payment.gift_card_last4) if payment.gift_card_last4 else "unknown card")
                    continue
                applied.append(payment.id)
                if card_record not in cards:
                    cards.append(card_record)
            self._finish(order, entry, handled | {p.id for p in new}, applied, skipped, cards)

    def _apply(self, order: ShopifyOrder, payment: OrderPayment, source: str,
               moving: dict[str, Decimal], covered: dict[str, bool]) -> str | None:
        """Apply one gift-card transaction; the card's record id, or None when it is skipped."""
        refund = payment.kind.upper() in REFUND_KINDS
        if not payment.gift_card_id:
            self._report.skipped_cards += 1
            log.warning("online gift-card payment without a card id order=%s tx=%s; skipped",
                        order.name, numeric(payment.id))
            return None
        mirror = self.ctx.book.card_by_shopify_id(payment.gift_card_id)
        if mirror is None:
            self._report.skipped_cards += 1
            log.info("online %s of a card giftsync does not mirror order=%s card=%s amount=%s; skipped",
                     "refund" if refund else "redemption", order.name,
                     mask(payment.gift_card_last4) if payment.gift_card_last4 else "?", payment.amount)
            return None
        # the card's receipts before its Shopify balance: every movement recorded in them has
        # happened in Shopify by then, so the balance read after holds all of them
        receipts = self.ctx.book.receipts_for_card(mirror.record_id)
        shop = self.ctx.ledger.get_card(payment.gift_card_id)
        if shop is None:
            raise RetriableError("shopify", "a card paid with is not readable; retried next cycle")
        rid = f"online:{numeric(order.id)}:{numeric(payment.id)}"
        amount = payment.amount if refund else -payment.amount
        same = amount.currency == shop.balance.currency
        why_not = "" if same else f" amount {payment.amount} (order currency)"
        written = next((r for r in receipts if r.receipt_id == rid), None)
        if written is not None:         # a crash after its receipt: written again as it was
            counted, details = written.amount, written.details
        else:
            counted = amount if same else None
            if counted is not None and in_opening_balance(mirror, payment):
                counted, why_not = None, (f"; {payment.amount} is already in the card's opening balance "
                                          "(mirrored after this transaction), so no amount here")
            elif counted is not None and self._covered(payment.gift_card_id, receipts, mirror, shop,
                                                       moving, covered):
                counted, why_not = None, (f"; {payment.amount} is already in the ledger (an adjustment recorded "
                                          "it before this order was seen), so no amount here")
            details = f"order {order.name} transaction {numeric(payment.id)} {payment.kind}{why_not}"
        now = self.ctx.clock.now()
        self.ctx.write_receipts("online_redeem.receipt", [self.ctx.receipt(
            rid, Activity.CREDIT if refund else Activity.REDEEM,
            channel=Channel.ONLINE, card_record_id=mirror.record_id, card_masked=mirror.masked,
            amount=counted, balance_after=shop.balance, source=source,
            outcome="Refunded to card" if refund else "Redeemed online", correlation_id=payment.id,
            details=details)])
        reach("online_redeem.balance")
        self.ctx.book.set_balances({mirror.record_id: (shop.balance, now)})
        if refund:
            self._report.credited += 1
        else:
            self._report.redeemed += 1
            holder = order.customer_email or order.email or mirror.recipient_email or mirror.purchaser_email
            event = crm.redeemed_event(
                holder=holder, unique_id=f"crm:redeemed:online:{numeric(order.id)}:{numeric(payment.id)}",
                card_masked=mirror.masked, amount=payment.amount, balance=shop.balance, channel=Channel.ONLINE,
                source=source, order=order.name)
            if event is not None:
                reach("online_redeem.crm")
                self.ctx.notifier.send(event, source=source, card_record_id=mirror.record_id,
                                       card_masked=mirror.masked)
        log.info("online %s order=%s card=%s amount=%s balance_after=%s", "credit" if refund else "redemption",
                 order.name, mirror.masked, payment.amount, shop.balance)
        return mirror.record_id

    @staticmethod
    def _covered(card_id: str, receipts: list, mirror: MirrorCard, shop: ShopifyCard,
                 moving: dict[str, Decimal], covered: dict[str, bool]) -> bool:
        """Decided once per card for the order in hand, at its first movement there."""
        if card_id not in covered:
            covered[card_id] = moving.get(card_id, Decimal(0)) != 0 and already_in_ledger(receipts, mirror, shop)
        return covered[card_id]

    def _finish(self, order: ShopifyOrder, entry: OrderEntry, handled: set[str], applied: list[str],
                skipped: list[str], cards: list[str]) -> None:
        previous = entry.details if entry.status is OrderStatus.DONE else ""
        note = f"{len(applied)} gift-card transaction(s) applied"
        if skipped:
            note += f", {len(skipped)} skipped (cards giftsync does not mirror: {', '.join(skipped)})"
        details = (previous + "\n" if previous else "") + f"{self.ctx.clock.now():%Y-%m-%d %H:%M} {note}"
        row = OrderEntry(order_key=entry.order_key, order=order.name, shopify_id=order.id, kind=OrderKind.REDEMPTION,
                         status=OrderStatus.DONE, card_ids=cards, processed_at=self.ctx.clock.now(),
                         details=details[-900:], transactions=sorted(handled))
        reach("online_redeem.finish")
        self.ctx.book.save_order_entries([row])
        if len(self._finished) > 10000:
            self._finished.clear()
        self._finished[entry.order_key] = frozenset(handled)
        if skipped:
            log.info("online order done with skipped cards order=%s skipped=%d", order.name, len(skipped))
        self._tag(order)

    def _tag(self, order: ShopifyOrder) -> None:
        tag_order(self.orders, order, self.online.redemption_tag, "online_redeem.tag")
