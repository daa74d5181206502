"""Store redemptions: one outcome per record, money moved at most once (docs/adr/0001),
handled in batches — every pending record of one poll goes through each step together.

One poll (``run``)::

    list pending (1 request) → validate each (pure) → the cards of codes met before from the
    card cache (``ctx.cards``, docs/adr/0006), ONE card lookup for the others (``cards_by_hashes``;
    none when every code is known) → reach("redeem.claim"), ONE claim write (Processing, Attempt,
    Card, Code masked; 10 records a request; a record whose answer does not link the card sent is
    not debited) → debits with note ``giftsync:<record>`` on a small pool,
    one card's redemptions in order on one worker (on AmbiguousError: read the card's
    transactions for the note before any resend; a record found in Processing is read back
    first) → store emails and CRM events (concurrent; Klaviyo drops a resend by ``unique_id``)
    while this thread writes ONE receipts upsert (REDEEM / REJECT) and ONE balances write (per
    card, the last balance Shopify reported) → reach("redeem.finish"), ONE final write per 10
    records once all of them are through: Done/Rejected,
    Outcome, Reason, Balance After, Processed At, and Notified when the email was accepted.

Rejections (code format, store, amount, not found, disabled, Shopify refusals) join the same
receipts and final writes. 5 Airtable requests per poll whatever its size up to 10 when every
code is a card met before (6 when some code is new to the daemon).

Crash or failure anywhere: a record not yet claimed stays New (nothing happened); a claimed one
stays Processing and the next poll reads back before any debit, so a crash after the email and
before Done resumes into one debit and one email (the resend has the same ``unique_id``). If
the receipts or balances write fails, no final write is made: every record of the batch is
taken again by the next poll (idempotent upserts, read-back, deduplicated emails).

One poll at a time: ``run`` holds a lock (the redemption job, the store cycle and the polls
between the cards of a bulk request may all ask); a caller that finds it held returns at once.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Callable, TypeVar

from ..crashpoints import reach
from ..domain.cards import CardStatus, MirrorCard
from ..domain.codes import is_valid_code, last4, mask, mask_text_codes, normalise_code
from ..domain.emails import EmailEvent, Metric, valid_email
from ..domain.forms import RedemptionForm, Store
from ..domain.ledger import Activity, Receipt
from ..domain.money import InvalidAmount, Money, parse_amount
from ..domain.outcomes import FormStatus, RedemptionOutcome
from ..errors import AmbiguousError, RetriableError
from ..ports import FormTable, MoveResult
from ..runtime.budget import URGENT, priority, urgent_hold
from .context import INVALID_CODE_NOTE, StoreContext, new_attempt_id, resend_each, safe_call, split_finished
from .mirror import mirror_shopify_card

log = logging.getLogger("giftsync.redemptions")

TABLE = FormTable.REDEMPTIONS
DEBIT_SENDS = 3          # a debit is sent at most this often per poll (each after a read-back)
_DISABLED_CODES = {"GIFT_CARD_DEACTIVATED", "GIFT_CARD_EXPIRED"}
T = TypeVar("T")


def note_for(record_id: str) -> str:
    return f"giftsync:{record_id}"


def amount_text(raw: object) -> str:
    text = "" if raw is None else str(raw)
    return text[:30]


@dataclass
class _Item:
    """One record of a batch and what became of it."""
    form: RedemptionForm
    store: Store | None                  # the record's store when active
    any_store: Store | None              # the record's store, active or not (who is told)
    code: str = ""
    masked: str = ""
    amount: Money | None = None
    card: MirrorCard | None = None
    resumed: bool = False
    # the outcome (None while the money is still to move)
    outcome: RedemptionOutcome | None = None
    reason: str = ""
    code_field: str = ""
    balance: Money | None = None         # Balance After
    debited: Money | None = None
    tx_id: str = ""
    code_hash: str = ""                  # the typed code's hash (the card cache's key)
    alert: bool = False
    left: bool = False                   # left for the next poll (Processing or New)
    extra_codes: list[str] = field(default_factory=list)

    @property
    def rid(self) -> str:
        return self.form.record_id

    def reject(self, outcome: RedemptionOutcome, reason: str, *, code_field: str, card: MirrorCard | None = None,
               balance: Money | None = None, store: Store | None = None) -> None:
        self.outcome, self.reason, self.code_field = outcome, reason, code_field
        if card is not None:
            self.card = card
        self.balance = balance
        if store is not None:
            self.store = store


class Redemptions:
    def __init__(self, ctx: StoreContext) -> None:
        self.ctx = ctx
        self.last_poll: float | None = None
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        # The unnotified records the last poll's list brought (one list request for both): the
        # store cycle resends them on its own thread, never holding up a poll.
        self._unnotified: list[RedemptionForm] | None = None
        self._stash_lock = threading.Lock()

    # -- the poll -----------------------------------------------------------------------------
    def run(self, stop=lambda: False) -> int:
        """Process every pending redemption (new and Processing) as one batch. Returns how many
        records were finished (Done/Rejected). Returns 0 at once while another thread polls."""
        if not self._lock.acquire(blocking=False):
            return 0
        try:
            with priority(URGENT):
                self.last_poll = self.ctx.clock.monotonic()
                forms, unnotified = split_finished(
                    self.ctx.book.pending_redemptions(self.ctx.options.batch_size, with_unnotified=True))
                with self._stash_lock:
                    self._unnotified = unnotified        # for resend() on the store cycle's thread
                if not forms or stop():
                    return 0
                with urgent_hold():                      # lower priorities wait until the final write
                    stores = self.ctx.book.stores()
                    return self.serve(forms, stores, stop)
        finally:
            self._lock.release()

    def process(self, form: RedemptionForm, stores: dict[str, Store]) -> None:
        """One record on its own (a batch of one)."""
        with priority(URGENT):
            self.serve([form], stores)

    # -- one batch ----------------------------------------------------------------------------
    def serve(self, forms: list[RedemptionForm], stores: dict[str, Store], stop=lambda: False) -> int:
        items: list[_Item] = []
        for form in forms:
            item = self._guard(form, lambda f=form: self._classify(f, stores))
            if item is not None:
                items.append(item)
        self._find_cards(items)
        for item in items:
            if item.outcome is None and not item.left and item.card is not None and not item.resumed:
                self._guard(item, lambda i=item: self._check_card(i))
        items = [i for i in items if not i.left]
        if stop():
            return 0                          # nothing claimed, nothing started
        unconfirmed = self._claim([i for i in items if i.outcome is None and not i.resumed])
        if unconfirmed and not stop():
            self._claim_again(unconfirmed)
        items = [i for i in items if not i.left]
        groups: OrderedDict[str, list[_Item]] = OrderedDict()
        for item in items:
            if item.outcome is None:
                groups.setdefault(item.card.record_id, []).append(item)
        balances: dict[str, Money] = {}
        for result in self._parallel([lambda g=g: self._debit_group(g, stop) for g in groups.values()]):
            if isinstance(result, dict):
                balances.update(result)
        finished = [i for i in items if i.outcome is not None and not i.left]
        if not finished:
            return 0
        return self._finish(finished, balances)

    def _guard(self, item_or_form, fn: Callable[[], T]) -> T | None:
        """Run one record's step; an unexpected error leaves the record for the next poll."""
        item = item_or_form if isinstance(item_or_form, _Item) else None
        form = item.form if item else item_or_form
        result: list = []
        codes = [normalise_code(form.code_raw)] + (item.extra_codes if item else [])
        if not safe_call(log, "redemption", form.record_id, lambda: result.append(fn()), codes):
            if item is not None:
                item.left = True
            return None
        return result[0] if result else None

    def _classify(self, form: RedemptionForm, stores: dict[str, Store]) -> _Item:
        """Pure: the typed code, store and amount (no request)."""
        item = _Item(form=form, store=self._store(form, stores), any_store=self._any_store(form, stores))
        if form.status == FormStatus.PROCESSING.value and form.card_ids:
            item.resumed = True
            return item
        code = normalise_code(form.code_raw)
        if not is_valid_code(code):
            item.reject(RedemptionOutcome.CODE_FORMAT, "The code must be 8 to 20 letters and digits",
                        code_field=INVALID_CODE_NOTE, store=item.any_store)
            return item
        item.code, item.masked = code, mask(last4(code))
        if item.store is None:
            item.reject(RedemptionOutcome.INVALID_STORE, "The store is missing or not active",
                        code_field=item.masked, store=item.any_store)
            return item
        try:
            item.amount = parse_amount(form.amount_raw, self.ctx.options.currency)
        except InvalidAmount as exc:
            item.reject(RedemptionOutcome.INVALID_AMOUNT, exc.reason, code_field=item.masked)
        return item

    def _find_cards(self, items: list[_Item]) -> None:
        """The cards met before from the cache; ONE lookup for every other valid code (none when
        all are known); Shopify (and a mirror) only for codes not found."""
        wanted = [i for i in items if i.outcome is None and not i.resumed]
        if wanted:
            for item in wanted:
                item.code_hash = self.ctx.hasher.hash(item.code)
            hashes = {i.code_hash for i in wanted}
            known = self.ctx.cards.get_many(hashes)
            missing = hashes - known.keys()
            found = self.ctx.book.cards_by_hashes(missing) if missing else {}
            self.ctx.cards.put(found.values())
            for item in wanted:
                item.card = known.get(item.code_hash) or found.get(item.code_hash)
                if item.card is None:
                    self._guard(item, lambda i=item: self._from_shopify(i))
        for item in items:
            if item.resumed:
                self._guard(item, lambda i=item: self._resume(i))

    def _from_shopify(self, item: _Item) -> None:
        shop = self.ctx.ledger.find_by_code(item.code)
        if shop is None:
            item.reject(RedemptionOutcome.NOT_FOUND, "No card has this code", code_field=item.masked)
            return
        item.card = mirror_shopify_card(self.ctx, shop, item.code, point="redeem.mirror",
                                        source=f"{TABLE.value}/{item.rid}", store_record_id=item.store.record_id)

    def _check_card(self, item: _Item) -> None:
        card = item.card
        try:
            item.amount = self._in_card_currency(item.form, item.amount, card)
        except InvalidAmount as exc:
            item.reject(RedemptionOutcome.INVALID_AMOUNT, exc.reason, code_field=item.masked, card=card)
            return
        if card.status is CardStatus.DISABLED:
            item.reject(RedemptionOutcome.DISABLED, "The card is disabled", code_field=item.masked, card=card)

    def _resume(self, item: _Item) -> None:
        form = item.form
        item.store = item.store or item.any_store
        card = self.ctx.book.card(form.card_ids[0])
        if card is None:
            self.ctx.cards.drop(record_ids=form.card_ids)
            item.reject(RedemptionOutcome.FAILED, "The linked card no longer exists",
                        code_field=self._masked_field(form))
            return
        item.card, item.masked = card, card.masked
        log.info("redemption resumed record=%s card=%s", item.rid, card.masked)
        try:
            item.amount = self._in_card_currency(form, parse_amount(form.amount_raw, card.balance.currency), card)
        except InvalidAmount as exc:
            # The amount was edited after the claim: read back first, money may have moved.
            if self._find_tx(card, item.rid) is None:
                item.reject(RedemptionOutcome.INVALID_AMOUNT, exc.reason, code_field=card.masked, card=card)
                return
            raise

    def _claim(self, items: list[_Item]) -> list[_Item]:
        """ONE claim write (10 records a request). Returns the records whose answer does not
        link the card sent (claimed, but on no card: never debited on that claim)."""
        if not items:
            return []
        updates = {i.rid: {"Status": FormStatus.PROCESSING.value, "Attempt": new_attempt_id(),
                           "Card": [i.card.record_id], "Code": i.masked} for i in items}
        reach("redeem.claim")
        try:
            answer = self.ctx.book.update_forms(TABLE, updates)
        except Exception as exc:  # noqa: BLE001 — claimed or not, the next poll takes them again
            log.warning("redemption claim failed records=%d error=%s; left for the next poll",
                        len(items), type(exc).__name__)
            self._forget(items)     # a card row deleted since it was cached fails the write (422)
            for item in items:
                item.left = True
            return []
        unconfirmed = []
        for item in items:
            linked = ((answer or {}).get(item.rid) or {}).get("Card")
            if linked != [item.card.record_id]:
                # Not the card sent (a link Airtable did not keep, e.g. to a row deleted since it
                # was cached): no debit on this claim.
                log.warning("redemption claim not confirmed record=%s card=%s linked=%s", item.rid,
                            item.masked, linked)
                self._forget([item])
                item.left = True
                unconfirmed.append(item)
                continue
            log.info("redemption claimed record=%s card=%s amount=%s", item.rid, item.masked, item.amount)
        return unconfirmed

    def _claim_again(self, items: list[_Item]) -> None:
        """Records claimed on no card (their Code is masked by then, so the next poll could not
        look the card up): look the cards up afresh (their cache entries are gone) and claim once
        more. A record still unconfirmed stays Processing, never debited."""
        for item in items:
            item.card, item.left = None, False
        self._find_cards(items)
        for item in items:
            if item.outcome is None and not item.left and item.card is not None:
                self._guard(item, lambda i=item: self._check_card(i))
        self._claim([i for i in items if i.outcome is None and not i.left])

    def _forget(self, items: list[_Item]) -> None:
        """Drop the card cache's entries of these records' cards: the next poll looks them up."""
        self.ctx.cards.drop(hashes=[i.code_hash for i in items if i.code_hash],
                            record_ids=[i.card.record_id for i in items if i.card is not None])

    # -- the money ----------------------------------------------------------------------------
    def _debit_group(self, group: list[_Item], stop) -> dict[str, Money]:
        """The redemptions of one card, in order (one worker). Returns {card record id: the
        last balance Shopify reported}."""
        last: dict[str, Money] = {}
        for item in group:
            if stop():                 # no new money movement: the record stays Processing
                item.left = True
                continue
            self._guard(item, lambda i=item: self._move(i))
            if not item.left and item.outcome is RedemptionOutcome.REDEEMED:
                last[item.card.record_id] = item.balance
        return last

    def _move(self, item: _Item) -> None:
        card, rid = item.card, item.rid
        result: MoveResult | None = None
        if item.resumed:
            tx = self._find_tx(card, rid)
            if tx is not None:
                log.info("redemption read-back found the debit record=%s tx=%s", rid, tx.id)
                result = MoveResult(transaction=tx)
        if result is None:
            result = self._debit(card, item.amount, rid)
        if result.transaction is None:
            self._refused(item, result)
            return
        balance = result.balance
        if balance is None:
            shop = self.ctx.ledger.get_card(card.shopify_id)
            if shop is None:
                raise RetriableError("shopify", "card vanished after its debit")
            balance = shop.balance
        tx = result.transaction
        item.debited = Money(-tx.amount.amount, tx.amount.currency) if tx.amount.amount < 0 else item.amount
        item.outcome, item.reason, item.code_field = RedemptionOutcome.REDEEMED, "", card.masked
        item.balance, item.tx_id = balance, tx.id

    def _debit(self, card: MirrorCard, amount: Money, rid: str) -> MoveResult:
        note = note_for(rid)
        for _ in range(DEBIT_SENDS):
            reach("redeem.debit")
            try:
                return self.ctx.ledger.debit(card.shopify_id, amount, note=note, processed_at=self.ctx.clock.now())
            except AmbiguousError as exc:
                log.warning("debit ambiguous record=%s card=%s reason=%r; reading back", rid, card.masked, exc.reason)
                tx = self._find_tx(card, rid)
                if tx is not None:
                    return MoveResult(transaction=tx)
                log.info("debit not applied record=%s; sending again", rid)
        raise RetriableError("shopify", f"debit still ambiguous after {DEBIT_SENDS} sends; record left in Processing")

    def _find_tx(self, card: MirrorCard, rid: str):
        note = note_for(rid)
        for tx in self.ctx.ledger.transactions(card.shopify_id):
            if tx.note == note:
                return tx
        return None

    def _refused(self, item: _Item, result: MoveResult) -> None:
        card = item.card
        code = result.error_code
        text = result.error.lower()
        balance = result.balance
        if code == "INSUFFICIENT_FUNDS":
            if balance is None:
                shop = self.ctx.ledger.get_card(card.shopify_id)
                balance = shop.balance if shop else None
            reason = f"Available balance is {balance}" if balance else "Insufficient balance"
            item.reject(RedemptionOutcome.INSUFFICIENT, reason, code_field=card.masked, card=card, balance=balance)
        elif code in _DISABLED_CODES or (code == "INVALID" and ("deactivated" in text or "expired" in text)):
            item.reject(RedemptionOutcome.DISABLED, result.error or "The card is disabled or expired",
                        code_field=card.masked, card=card)
        elif code == "GIFT_CARD_NOT_FOUND":
            self._forget([item])
            item.reject(RedemptionOutcome.NOT_FOUND, "The card no longer exists in Shopify",
                        code_field=card.masked, card=card)
        else:
            item.reject(RedemptionOutcome.FAILED, f"Shopify refused: {code} {result.error}".strip()[:300],
                        code_field=card.masked, card=card)
            item.alert = True

    # -- the endings, batched -----------------------------------------------------------------
    def _finish(self, items: list[_Item], balances: dict[str, Money]) -> int:
        """Emails first (concurrent), then ONE receipts write, ONE balances write and ONE final
        write (10 records a request) with Notified for the emails accepted."""
        now = self.ctx.clock.now()
        finished = {i.rid: self._finished_form(i, now) for i in items}
        # The emails go out on the pool while this thread writes the receipts and balances (the
        # same effects in the same crash-safe set as one after the other: a record is finished by
        # the final write only, after all three).
        emails = self._start([lambda i=i: self._emails(i, finished[i.rid]) for i in items])
        receipts = [self._receipt_of(i) for i in items]
        try:
            try:
                self.ctx.write_receipts("redeem.receipt", receipts)
                if balances:
                    reach("redeem.balance")
                    self.ctx.book.set_balances({rid: (money, now) for rid, money in balances.items()})
            finally:
                notified = emails()
            updates: dict[str, dict] = {}
            for item, ok in zip(items, notified):
                fields = self._final_fields(item, now)
                if ok is True:
                    fields["Notified"] = True
                updates[item.rid] = fields
            reach("redeem.finish")
            if any(f.get("Notified") for f in updates.values()):
                reach("redeem.notified")       # Notified travels in the final write
            self.ctx.book.update_forms(TABLE, updates)
        except Exception as exc:  # noqa: BLE001 — everything is taken again by the next poll
            self._forget(items)     # e.g. a balances write to a card row deleted since
            log.warning("redemption batch not finished records=%d error=%s reason=%r; left for the next poll",
                        len(items), type(exc).__name__, str(getattr(exc, "reason", ""))[:200])
            return 0
        for item in items:
            if item.outcome is RedemptionOutcome.REDEEMED:
                log.info("redemption done record=%s card=%s amount=%s balance_after=%s", item.rid, item.masked,
                         item.debited, item.balance)
            else:
                log.info("redemption rejected record=%s outcome=%r reason=%r", item.rid, item.outcome.value,
                         item.reason)
        return len(items)

    def _final_fields(self, item: _Item, now) -> dict:
        if item.outcome is RedemptionOutcome.REDEEMED:
            return {"Status": FormStatus.DONE.value, "Outcome": item.outcome.value, "Reason": "",
                    "Balance After": item.balance.amount, "Processed At": now}
        fields: dict = {"Status": FormStatus.REJECTED.value, "Outcome": item.outcome.value, "Reason": item.reason,
                        "Code": item.code_field, "Processed At": now}
        if item.card is not None:
            fields["Card"] = [item.card.record_id]
        if item.balance is not None:
            fields["Balance After"] = item.balance.amount
        return fields

    def _finished_form(self, item: _Item, now) -> RedemptionForm:
        form = item.form
        if item.outcome is RedemptionOutcome.REDEEMED:
            return dataclasses.replace(form, status=FormStatus.DONE.value, outcome=item.outcome.value, reason="",
                                       balance_after=item.balance.amount, code_raw=item.card.masked,
                                       card_ids=[item.card.record_id], processed_at=now)
        return dataclasses.replace(form, status=FormStatus.REJECTED.value, outcome=item.outcome.value,
                                   reason=item.reason, code_raw=item.code_field,
                                   balance_after=item.balance.amount if item.balance else None,
                                   card_ids=[item.card.record_id] if item.card else form.card_ids, processed_at=now)

    def _receipt_of(self, item: _Item) -> Receipt:
        rid, card, store = item.rid, item.card, item.store
        if item.outcome is RedemptionOutcome.REDEEMED:
            return self.ctx.receipt(
                f"redeem:{rid}", Activity.REDEEM, card_record_id=card.record_id, card_masked=card.masked,
                amount=-item.debited, balance_after=item.balance, store_record_id=store.record_id if store else None,
                source=f"{TABLE.value}/{rid}", outcome=RedemptionOutcome.REDEEMED.value,
                correlation_id=note_for(rid),
                details=f"shopify_tx={item.tx_id}" + (f" staff={item.form.staff}" if item.form.staff else ""))
        return self.ctx.receipt(
            f"reject:{rid}", Activity.REJECT, card_record_id=card.record_id if card else None,
            card_masked=card.masked if card else (item.code_field if item.code_field != INVALID_CODE_NOTE else None),
            balance_after=item.balance, store_record_id=store.record_id if store else None,
            source=f"{TABLE.value}/{rid}", outcome=item.outcome.value, correlation_id=note_for(rid),
            details=f"{item.reason}; amount typed: {amount_text(item.form.amount_raw)!r}")

    def _emails(self, item: _Item, finished: RedemptionForm) -> bool:
        """The CRM event (a redemption with a known holder), an admin alert (a Shopify refusal
        of another kind) and the store email. True when the store email was accepted."""
        store, card = item.store, item.card
        if item.outcome is RedemptionOutcome.REDEEMED:
            self._crm_redeemed(finished, store, card, item.debited, item.balance)
        if item.alert:
            self.ctx.notifier.alert(f"redemption-failed:{item.rid}", "Redemption refused by Shopify",
                                    f"record={item.rid} card={card.masked} reason={item.reason}",
                                    source=f"{TABLE.value}/{item.rid}")
        return self.send_store_email(finished, store, card)

    def _parallel(self, fns: list[Callable[[], T]]) -> list[T | BaseException]:
        """Run on the pool (at URGENT priority: the budgets read it per thread), results in
        order; an exception is returned in place of its result (and logged)."""
        return self._start(fns)()

    def _start(self, fns: list[Callable[[], T]]) -> Callable[[], list[T | BaseException]]:
        """Start ``fns`` on the pool; returns the call that waits for their results (in order,
        an exception in place of its result). One function (or one worker) runs when collected."""
        def call(fn: Callable[[], T]) -> T | BaseException:
            try:
                with priority(URGENT):
                    return fn()
            except Exception as exc:  # noqa: BLE001 — one record's trouble stays its own
                log.warning("redemption step failed error=%s reason=%r", type(exc).__name__,
                            mask_text_codes(str(getattr(exc, "reason", "")), [])[:200])
                return exc
        workers = self.ctx.options.redemption_workers
        if not fns or workers <= 1:
            return lambda: [call(fn) for fn in fns]
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(workers, thread_name_prefix="redeem")
            pool = self._pool
        futures = [pool.submit(call, fn) for fn in fns]
        return lambda: [f.result() for f in futures]

    # -- emails -------------------------------------------------------------------------------
    def email_for(self, form: RedemptionForm, store: Store | None, card: MirrorCard | None) -> EmailEvent | None:
        """The store email, built from the finished record alone (so a resend is identical)."""
        to = store.email if store and store.active and valid_email(store.email) else self.ctx.options.admin_email
        if not valid_email(to):
            return None
        currency = card.balance.currency if card else self.ctx.options.currency
        balance = ""
        if form.balance_after is not None:
            balance = Money(Decimal(str(form.balance_after)), currency).plain()
        try:
            amount = parse_amount(form.amount_raw, currency).plain()
        except InvalidAmount:
            amount = amount_text(form.amount_raw)
        props = {"Record": form.record_id, "Outcome": form.outcome, "Reason": form.reason,
                 "Card": str(form.code_raw or ""), "Amount": amount, "Currency": currency,
                 "Balance After": balance, "Store": store.name if store else "", "Staff": form.staff,
                 "Processed At": form.processed_at.isoformat() if form.processed_at else ""}
        return EmailEvent(metric=Metric.STORE_REDEMPTION_PROCESSED, email=to.strip(),
                          unique_id=f"redemption:{form.record_id}:store", properties=props)

    def send_store_email(self, form: RedemptionForm, store: Store | None, card: MirrorCard | None) -> bool:
        """The store email of a finished record; True when accepted (or there is nobody to tell)."""
        self.ctx.notified_this_cycle.add(form.record_id)
        event = self.email_for(form, store, card)
        if event is None:
            return True
        reach("redeem.email")
        return self.ctx.notifier.send(event, source=f"{TABLE.value}/{form.record_id}",
                                      store_record_id=store.record_id if store else None,
                                      card_record_id=card.record_id if card else None,
                                      card_masked=card.masked if card else None)

    def notify(self, form: RedemptionForm, store: Store | None, card: MirrorCard | None) -> bool:
        """Resend path: the store email, then Notified on its own."""
        ok = self.send_store_email(form, store, card)
        if ok:
            reach("redeem.notified")
            self.ctx.book.update_forms(TABLE, {form.record_id: {"Notified": True}})
        return ok

    def resend(self, stop=lambda: False) -> int:
        """Done/Rejected records whose Notified box is unticked: send their store email again.
        The list is the one the last poll brought (taken once), else a request of its own."""
        with self._stash_lock:
            forms, self._unnotified = self._unnotified, None
        if forms is None:
            forms = self.ctx.book.unnotified(TABLE, self.ctx.options.batch_size)
        if not forms:
            return 0
        stores = self.ctx.book.stores()

        def again(f: RedemptionForm) -> bool:
            card = self.ctx.book.card(f.card_ids[0]) if f.card_ids else None
            return self.notify(f, self._any_store(f, stores), card)
        return resend_each(self.ctx, log, "redemption email resend", forms, again, stop)

    def _crm_redeemed(self, form: RedemptionForm, store: Store | None, card: MirrorCard, amount: Money,
                      balance: Money) -> None:
        """CRM relay: a redemption on the card holder's profile when an identity is known."""
        holder = card.recipient_email or card.purchaser_email
        if not valid_email(holder):
            return
        event = EmailEvent(metric=Metric.GIFT_CARD_REDEEMED, email=holder.strip(),
                           unique_id=f"crm:redeemed:{form.record_id}",
                           properties={"Card": card.masked, "Channel": "Store", "Store": store.name if store else "",
                                       "Amount": amount.plain(), "Currency": amount.currency,
                                       "Balance After": balance.plain(), "Source": f"{TABLE.value}/{form.record_id}"},
                           value=amount.amount, value_currency=amount.currency)
        reach("redeem.crm")
        self.ctx.notifier.send(event, source=f"{TABLE.value}/{form.record_id}",
                               store_record_id=store.record_id if store else None,
                               card_record_id=card.record_id, card_masked=card.masked)

    # -- helpers ------------------------------------------------------------------------------
    @staticmethod
    def _store(form: RedemptionForm, stores: dict[str, Store]) -> Store | None:
        store = stores.get(form.store_ids[0]) if form.store_ids else None
        return store if store is not None and store.active else None

    @staticmethod
    def _any_store(form: RedemptionForm, stores: dict[str, Store]) -> Store | None:
        return stores.get(form.store_ids[0]) if form.store_ids else None

    def _in_card_currency(self, form: RedemptionForm, amount: Money, card: MirrorCard) -> Money:
        currency = card.balance.currency
        if currency == amount.currency:
            return amount
        return parse_amount(form.amount_raw, currency)

    @staticmethod
    def _masked_field(form: RedemptionForm) -> str:
        code = normalise_code(form.code_raw)
        if is_valid_code(code):
            return mask(last4(code))
        text = str(form.code_raw or "")
        return text if text.startswith("••••") else INVALID_CODE_NOTE
