"""Reconciliation: balance changes that come with no order (admin adjustments in Shopify,
anything giftsync did not see) and card status changes (disabled, expired).

- ``walk()`` — cheap, every cycle of the redemptions prong (after its orders, so that a
  redemption is recorded as REDEEM, not as an adjustment): cards by ``UPDATED_AT`` newest
  first, down to the watermark in Status (``watermark:reconcile``) minus an overlap; the
  watermark never passes the walk's start time. The first walk only sets the watermark (at
  this process's first walk attempt, so first walks that failed leave no gap): history is the
  full pass's job.
- ``full_pass()`` — every mirrored card re-read from Shopify (``giftsync once --prong
  reconcile``, and on ``GIFTSYNC_RECONCILE_SCHEDULE``, daily by default); the time of the
  last full pass is kept in ``watermark:reconcile-full``. Shopify's ``updatedAt`` is not
  known to move on credits/debits, so only the full pass is sure to see every change.

The comparison is against the ledger, not the mirror: what the card's receipts add up to
(``ledger_balance``). A difference is left alone while it may still be recorded by the flow
that owns it — a giftsync-keyed movement that no receipt carries the key of yet (a store
redemption in flight on another thread) for ``inflight_seconds``, and any movement without a
giftsync key newer than ``claim_seconds`` (an online order's payment or refund whose order
the redemption prong has not seen yet: orders search lags; default the order overlap). A
deferred card holds the walk's watermark, so the walk sees it again. What is still
unexplained after that is set in Airtable from Shopify with an ADJUST receipt carrying the
delta, the balance after and the reason (the notes of the card's newest transactions). Each
balance movement is then in Receipts exactly once: for each card the amounts add up to
Shopify's balance and the last balance-after equals it (docs/adr/0004-online-ledger.md).
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from ..crashpoints import reach
from ..domain.cards import CardSource, MirrorCard, ShopifyCard
from ..domain.codes import CodeHasher
from ..domain.ledger import MOVEMENTS, OPENINGS, Activity, Channel, ledger_balance
from ..domain.money import Money
from ..ports import CardBook, Clock, GiftCardLedger, Messenger, StatusRow
from ..runtime.budget import BACKGROUND, priority
from .context import StoreContext, safe_call
from .online import OnlineOptions, Watermark, numeric
from .options import StoreOptions

log = logging.getLogger("giftsync.reconcile")

WALK_WATERMARK = "watermark:reconcile"
FULL_PASS_ROW = "watermark:reconcile-full"
GIFTSYNC_NOTE = "giftsync:"


@dataclass
class ReconcileReport:
    checked: int = 0
    adjusted: int = 0
    status_changed: int = 0
    deferred: int = 0
    not_mirrored: int = 0
    missing_in_shopify: int = 0
    errors: int = 0


class Reconciler:
    def __init__(self, ctx: StoreContext, online: OnlineOptions | None = None, *,
                 inflight_seconds: float = 900.0, claim_seconds: float | None = None) -> None:
        self.ctx = ctx
        self.online = online or OnlineOptions()
        self.inflight_seconds = inflight_seconds
        self.claim_seconds = self.online.overlap_seconds if claim_seconds is None else claim_seconds
        self.watermark = Watermark(ctx.book, WALK_WATERMARK, "reconcile.cursor")
        # The walk re-meets a card on every cycle of the overlap window: a card whose ledger was
        # found to add up is not read again until its balance or updatedAt moves (the full pass
        # never skips).
        self._settled: dict[str, tuple[Money, datetime | None]] = {}
        self._polled_at: datetime | None = None
        # When this process first tried to walk (or the order poll before it began): the first walk
        # that gets through sets the watermark there, not at its own start, so cards that changed
        # while the first walks failed (a throttled Status read) are still walked.
        self._first_try: datetime | None = None

    # -- the two passes -----------------------------------------------------------------------
    def walk(self, report: ReconcileReport | None = None, stop: Callable[[], bool] = lambda: False, *,
             orders_polled_at: datetime | None = None) -> ReconcileReport:
        """``orders_polled_at``: when the order poll that ran just before began. A movement is an
        order's to claim while it is newer than that minus the claim window (the poll cannot have
        seen an order updated after it began, however long the cycle took)."""
        report = report or ReconcileReport()
        started = self.ctx.clock.now()
        if self._first_try is None:
            self._first_try = min(started, orders_polled_at) if orders_polled_at is not None else started
        self._polled_at = orders_polled_at
        try:
            return self._walk(report, stop, started)
        finally:
            self._polled_at = None

    def _walk(self, report: ReconcileReport, stop: Callable[[], bool], started: datetime) -> ReconcileReport:
        self.watermark.load()
        if self.watermark.value is None:
            first = min(started, self._first_try or started)
            self.watermark.advance(first, started, now=started, details="first walk: watermark set")
            return report
        floor = self.watermark.since(self.online.overlap_seconds)
        cursor: str | None = None
        newest: datetime | None = None
        failed_at: datetime | None = None
        done = False
        for _ in range(self.online.max_pages):
            cards, cursor = self.ctx.ledger.cards_updated(cursor, self.online.card_page_size)
            for shop in cards:
                if stop():
                    done = True
                    break
                if shop.updated_at is not None and floor is not None and shop.updated_at < floor:
                    done = True
                    break
                if self._settled.get(shop.id) == (shop.balance, shop.updated_at):
                    # re-met in the overlap, unchanged since its ledger added up: no Airtable read
                    report.checked += 1
                    if shop.updated_at is not None:
                        newest = shop.updated_at if newest is None else max(newest, shop.updated_at)
                    continue
                mirror = self.ctx.book.card_by_shopify_id(shop.id)
                deferred = report.deferred
                if mirror is None:
                    report.not_mirrored += 1
                elif not safe_call(log, "reconcile", shop.id,
                                   lambda m=mirror, s=shop: self.check(m, s, report, walk=True)):
                    report.errors += 1
                    if shop.updated_at is not None:
                        failed_at = shop.updated_at if failed_at is None else min(failed_at, shop.updated_at)
                elif report.deferred > deferred and shop.updated_at is not None:
                    # left to its flow for now: the watermark must not pass it
                    failed_at = shop.updated_at if failed_at is None else min(failed_at, shop.updated_at)
                if shop.updated_at is not None:
                    newest = shop.updated_at if newest is None else max(newest, shop.updated_at)
            if done or not cursor:
                break
        if failed_at is not None and newest is not None:
            newest = min(newest, failed_at - timedelta(microseconds=1))
        self.watermark.advance(newest, started, now=self.ctx.clock.now(),
                               details=f"checked={report.checked} adjusted={report.adjusted}")
        return report

    def full_pass(self, stop: Callable[[], bool] = lambda: False) -> ReconcileReport:
        report = ReconcileReport()
        started = self.ctx.clock.now()
        for mirror in self.ctx.book.iter_cards():
            if stop():
                break
            if not mirror.shopify_id:
                continue

            def one(m: MirrorCard = mirror) -> None:
                shop = self.ctx.ledger.get_card(m.shopify_id)
                if shop is None:
                    report.missing_in_shopify += 1
                    log.warning("mirrored card not found in Shopify card=%s shopify_id=%s", m.masked, m.shopify_id)
                    return
                self.check(m, shop, report)
            if not safe_call(log, "reconcile (full pass)", mirror.shopify_id, one):
                report.errors += 1
        row = self.ctx.book.read_status(FULL_PASS_ROW) or StatusRow(name=FULL_PASS_ROW)
        row.cursor = started.isoformat()
        row.last_run = self.ctx.clock.now()
        row.details = (f"checked={report.checked} adjusted={report.adjusted} status={report.status_changed} "
                       f"deferred={report.deferred} missing={report.missing_in_shopify} errors={report.errors}")
        reach("reconcile.cursor")
        self.ctx.book.write_status(row)
        log.info("reconcile full pass %s", row.details)
        return report

    # -- one card -----------------------------------------------------------------------------
    def check(self, mirror: MirrorCard, shop: ShopifyCard, report: ReconcileReport, *, walk: bool = False) -> None:
        report.checked += 1
        now = self.ctx.clock.now()
        key = (shop.balance, shop.updated_at)
        same = mirror.balance.currency == shop.balance.currency and mirror.balance.amount == shop.balance.amount
        if not (walk and same and self._settled.get(shop.id) == key):
            self._settled.pop(shop.id, None)
            receipts = self.ctx.book.receipts_for_card(mirror.record_id)
            if self._opening_lost(mirror, receipts):
                restored = self._restore_opening(mirror, shop, receipts, now, report)
                if restored is None:
                    return
                shop, receipts = restored
            expected = ledger_balance(receipts, shop.initial_value or mirror.initial_value)
            if expected is None:        # nothing tells where the card started: the mirror does
                expected = mirror.balance
            if expected.currency != shop.balance.currency or expected.amount != shop.balance.amount:
                # the balance in hand was read before the receipts (the walk's list, the full pass's
                # read): a movement recorded in between is in the receipts but not in it. Read it
                # again — every movement the receipts hold has happened in Shopify by now.
                fresh = self.ctx.ledger.get_card(shop.id)
                if fresh is not None:
                    shop = fresh
                    same = mirror.balance.currency == shop.balance.currency and mirror.balance.amount == shop.balance.amount
            if expected.currency != shop.balance.currency or expected.amount != shop.balance.amount:
                txs = self.ctx.ledger.transactions(shop.id, last=20)
                reason = self._wait_reason(mirror, txs, now, receipts)
                if reason:
                    report.deferred += 1
                    log.info("reconcile deferred card=%s: %s", mirror.masked, reason)
                    return
                self._adjust(mirror, expected, shop, txs, now)
                report.adjusted += 1
                mirror = dataclasses.replace(mirror, balance=shop.balance, last_synced=now)
            else:
                self._restate(mirror, shop, receipts, same, now)
                mirror = dataclasses.replace(mirror, balance=shop.balance, last_synced=now)
            self._settled[shop.id] = key
        status = shop.status_on(now.date())
        if status is not mirror.status:
            previous = mirror.status
            reach("reconcile.status")
            self.ctx.book.save_cards([dataclasses.replace(mirror, status=status, balance=shop.balance,
                                                          last_synced=now)])
            self.ctx.write_receipts("reconcile.receipt", [self.ctx.receipt(
                f"status:{numeric(shop.id)}:{status.value.lower()}", Activity.ADJUST, channel=Channel.ADMIN,
                card_record_id=mirror.record_id, card_masked=mirror.masked, balance_after=shop.balance,
                source="Shopify", outcome=f"Status {status.value}", correlation_id=shop.id,
                details=f"status {previous.value} → {status.value} in Shopify")])
            report.status_changed += 1
            log.info("reconcile status card=%s %s -> %s", mirror.masked, previous.value, status.value)

    @staticmethod
    def _opening_lost(mirror: MirrorCard, receipts) -> bool:
        """A Shopify card mirrored (``Opened At`` set) whose MIRROR row is not in Receipts: the flow
        that mirrored it failed between the Gift Cards save and that row, and a later flow found
        the card by its hash and never mirrors it again."""
        return (mirror.source is CardSource.SHOPIFY_NATIVE and mirror.opened_at is not None
                and not any(r.activity in OPENINGS for r in receipts))

    def _restore_opening(self, mirror: MirrorCard, shop: ShopifyCard, receipts, now: datetime,
                         report: "ReconcileReport") -> tuple[ShopifyCard, list] | None:
        """Write the lost MIRROR row (its own id, ``mirror:<shopify id>``: the mirroring flow writing
        it late only overwrites it) dated at ``Opened At``, with the opening balance the recorded
        movements imply: Shopify's balance now minus every amount the receipts hold. Never while a
        movement may still be recorded by its flow (it would be counted in the opening and again
        on its own row): then the card is deferred. (Shopify's card, receipts) after, or None."""
        fresh = self.ctx.ledger.get_card(shop.id) or shop
        txs = self.ctx.ledger.transactions(shop.id, last=20)
        reason = self._wait_reason(mirror, txs, now, receipts)
        if reason:
            report.deferred += 1
            log.info("reconcile deferred card=%s (opening row lost): %s", mirror.masked, reason)
            return None
        currency = fresh.balance.currency
        opening = fresh.balance
        for r in receipts:
            if r.activity in MOVEMENTS and r.amount is not None and r.amount.currency == currency:
                opening = opening - r.amount
        row = dataclasses.replace(self.ctx.receipt(
            f"mirror:{shop.id}", Activity.MIRROR, channel=Channel.SYSTEM, card_record_id=mirror.record_id,
            card_masked=mirror.masked, balance_after=opening, source="Shopify", outcome="Mirrored",
            correlation_id=shop.id,
            details=f"opening row restored by the reconciler (lost after the card was saved): Shopify's "
                    f"{fresh.balance} less the {len([r for r in receipts if r.activity in MOVEMENTS])} "
                    "movement(s) recorded since"), time=min(mirror.opened_at, now))
        self.ctx.write_receipts("reconcile.receipt", [row])
        log.warning("reconcile restored the opening row card=%s opening=%s", mirror.masked, opening)
        return fresh, [row, *receipts]        # first: it sorts before a movement of the same time

    def _restate(self, mirror: MirrorCard, shop: ShopifyCard, receipts, same: bool, now: datetime) -> None:
        """Every movement is in Receipts. The mirror's cell may lag (a flow stopped between its
        receipt and the balance): set it, no money receipt. The last balance-after may be stale
        (two prongs wrote out of order, the later one with an earlier read): a zero ADJUST
        restates it, so the last balance-after equals Shopify's again."""
        shown = [r for r in sorted(receipts, key=lambda r: r.time) if r.balance_after is not None]
        last = shown[-1] if shown else None
        if last is not None and last.balance_after != shop.balance:
            self.ctx.write_receipts("reconcile.receipt", [self.ctx.receipt(
                f"restate:{numeric(shop.id)}:{last.receipt_id}"[:200], Activity.ADJUST, channel=Channel.SYSTEM,
                card_record_id=mirror.record_id, card_masked=mirror.masked, amount=Money.zero(shop.balance.currency),
                balance_after=shop.balance, source="Shopify", outcome="Balance after restated",
                correlation_id=shop.id,
                details=f"receipts add up to Shopify's {shop.balance}; the last balance-after read "
                        f"{last.balance_after} (written out of order)")])
        if not same or (last is not None and last.balance_after != shop.balance):
            reach("reconcile.balance")
            self.ctx.book.set_balances({mirror.record_id: (shop.balance, now)})

    def _wait_reason(self, mirror: MirrorCard, txs, now: datetime, receipts=()) -> str:
        """Why a difference is not adjusted yet ("" = adjust it now).

        A giftsync-keyed movement (a store debit, note ``giftsync:<record>``) is in flight until a
        receipt carries its key (``Correlation ID``): a batch writes its receipts after all its
        debits, and other prongs set the card's balance and Last Synced meanwhile, so Last Synced
        says nothing about whether that debit is recorded."""
        recorded = {r.correlation_id for r in receipts if r.correlation_id}
        claim_from = min(now, self._polled_at) if self._polled_at is not None else now
        for t in txs:
            if t.processed_at is None:
                continue
            if t.note.startswith(GIFTSYNC_NOTE):
                if t.note not in recorded and t.processed_at > now - timedelta(seconds=self.inflight_seconds):
                    return "a giftsync movement is being recorded"
            elif t.processed_at > claim_from - timedelta(seconds=self.claim_seconds):
                return "a recent movement may belong to an online order not recorded yet"
        return ""

    def _adjust(self, mirror: MirrorCard, expected: Money, shop: ShopifyCard, txs, now: datetime) -> None:
        same = expected.currency == shop.balance.currency
        delta: Money | None = shop.balance - expected if same else None
        synced = mirror.last_synced
        outside = [t for t in txs if not t.note.startswith(GIFTSYNC_NOTE)
                   and (synced is None or t.processed_at is None or t.processed_at >= synced - timedelta(seconds=1))]
        notes = "; ".join(f"{t.kind or 'tx'} {t.amount.plain()}" + (f" '{t.note[:60]}'" if t.note else "")
                          for t in outside[-5:])
        reason = ("Shopify balance changed outside giftsync (admin adjustment or a change giftsync did not see)"
                  + (f": {notes}" if notes else ""))
        last_tx = numeric(txs[-1].id) if txs else (shop.updated_at.isoformat() if shop.updated_at else "0")
        receipt_id = f"adjust:{numeric(shop.id)}:{last_tx}:{expected.amount}:{shop.balance.amount}"
        self.ctx.write_receipts("reconcile.receipt", [self.ctx.receipt(
            receipt_id, Activity.ADJUST, channel=Channel.ADMIN, card_record_id=mirror.record_id,
            card_masked=mirror.masked, amount=delta, balance_after=shop.balance, source="Shopify",
            outcome="Adjusted from Shopify", correlation_id=shop.id,
            details=(f"Receipts {expected} → Shopify {shop.balance}"
                     + (f" (delta {delta.plain()})" if delta is not None else " (currency changed)")
                     + f". {reason}")[:1000])])
        reach("reconcile.balance")
        self.ctx.book.set_balances({mirror.record_id: (shop.balance, now)})
        log.info("reconcile adjusted card=%s from=%s to=%s", mirror.masked, expected, shop.balance)


class ReconcileProng:
    """``giftsync once --prong reconcile`` and the scheduled full pass."""
    name = "reconcile"

    def __init__(self, book: CardBook, ledger: GiftCardLedger, messenger: Messenger, clock: Clock,
                 hasher: CodeHasher, options: StoreOptions | None = None, online: OnlineOptions | None = None,
                 *, stop: Callable[[], bool] = lambda: False) -> None:
        self.ctx = StoreContext(book=book, ledger=ledger, messenger=messenger, clock=clock, hasher=hasher,
                                options=options or StoreOptions())
        self.reconciler = Reconciler(self.ctx, online)
        self.stop = stop

    def run_once(self) -> ReconcileReport:
        with priority(BACKGROUND):
            return self.reconciler.full_pass(self.stop)
