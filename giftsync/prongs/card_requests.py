"""Card requests from shops: validate, claim with a nonce, create each card once ever
(docs/adr/0002), mirror it, deliver it, relay it to the CRM, then finish and confirm.

Per card i: code = CodeHasher.derive(nonce, i) (digital) or the printed serial (physical);
reach("request.create") → create_card (AmbiguousError or code taken → find_by_code and adopt
the card if its note is ours) → Gift Cards row → ISSUE/ACTIVATE receipt → delivery email
(whole code: only here) → CRM "Gift Card Issued". Then the request goes Done with its cards
linked and the nonce replaced by a non-secret id; store (and purchaser) confirmations follow.
A request whose delivery emails did not all go out stays in Processing (its codes are only
derivable while the nonce is there) and is resumed next cycle; Klaviyo drops duplicates.

At Shopify's pace: the cards go in chunks of ``card_chunk`` (10) — up to
``card_create_workers`` (3) creates in flight (the Shopify cost budget still governs: 10 points
a create, 100 points/s → 10 cards/s), new redemptions served before each create when due
(``between``), then ONE Gift Cards save for the chunk, the delivery emails and CRM events
concurrently, and ONE receipts write (an ISSUE/ACTIVATE row per card, the CRM outcome folded
into it: 10 rows, one request — ``crm.fold_into_openings``). Pipelined: a chunk's writes
(save, emails, receipts) run on a writer thread while the next chunk's cards are created; at most
one chunk's writes are outstanding, and they are waited for (their errors raised) before the next
chunk's writes, before a stop and before the request goes Done. A failure in a chunk still
mirrors, delivers and records the cards that were made; a refusal ends the request Failed with
every card issued, any other error leaves it Processing (resumed: mirrors reused, cards adopted
by code and note, nothing created twice).
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
import secrets
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Callable

from ..crashpoints import reach
from ..domain.cards import CardKind, CardSource, CardStatus, MirrorCard, ShopifyCard
from ..domain.codes import is_valid_code, last4, mask, normalise_code
from ..domain.emails import EmailEvent, Metric, valid_email
from ..domain.forms import CardRequestForm, Store
from ..domain.ledger import Activity, Channel, Receipt
from ..domain.money import InvalidAmount, Money, parse_amount
from ..domain.outcomes import FormStatus, RequestOutcome
from ..errors import AmbiguousError, RetriableError
from ..runtime.budget import NORMAL, priority
from ..ports import FormTable
from . import crm
from .context import StoreContext, resend_each, safe_call, split_finished
from .options import StoreOptions

log = logging.getLogger("giftsync.card_requests")

TABLE = FormTable.CARD_REQUESTS
CREATE_SENDS = 3
CARD_MAIL_WORKERS = 8     # delivery emails / CRM events in flight (40 events/s at ~100 ms each needs 4)
NONCE_PREFIX = "nonce:"
DONE_PREFIX = "done:"
_SERIAL_SPLIT = re.compile(r"[\n\r,;]+")
_QUANTITY_TEXT = re.compile(r"^\d{1,6}$")


class Invalid(Exception):
    """A request that cannot be served; the reason is shown to the store."""


class CreationRefused(Exception):
    """Shopify refused a card mid-request (e.g. a serial taken since validation)."""


@dataclass
class Plan:
    store: Store
    amount: Money
    quantity: int
    kind: CardKind
    serials: list[str]


@dataclass
class _Chunk:
    cards: dict[int, MirrorCard] = field(default_factory=dict)
    delivered_all: bool = True
    refused: tuple[int, CreationRefused] | None = None
    error: BaseException | None = None
    stopped: bool = False


@dataclass
class _Made:
    """A chunk whose cards exist in Shopify, its Airtable writes still to do."""
    form: CardRequestForm
    plan: Plan
    codes: dict[int, str]
    shops: dict[int, ShopifyCard]
    receipts: list[Receipt]
    out: _Chunk
    resumed: bool = False
    crm_recorded: set[str] = field(default_factory=set)   # CRM receipt ids already in Receipts (resumed)


def note_for(record_id: str, index: int) -> str:
    return f"giftsync:{record_id}:{index}"


def parse_quantity(raw: object, maximum: int) -> int:
    if raw is None or isinstance(raw, bool):
        raise Invalid("Quantity is missing")
    if isinstance(raw, int):
        q = raw
    elif isinstance(raw, (float, Decimal)):
        if raw != raw or raw in (float("inf"), float("-inf")) or int(raw) != raw:
            raise Invalid("Quantity must be a whole number")
        q = int(raw)
    elif isinstance(raw, str) and _QUANTITY_TEXT.match(raw.strip()):
        q = int(raw.strip())
    else:
        raise Invalid("Quantity must be a whole number")
    if q < 1 or q > maximum:
        raise Invalid(f"Quantity must be between 1 and {maximum}")
    return q


def split_serials(raw: object) -> list[str]:
    return [normalise_code(part) for part in _SERIAL_SPLIT.split(str(raw or "")) if normalise_code(part)]


def masked_serials(raw: object) -> str:
    return "\n".join(mask(last4(s)) if is_valid_code(s) else "(invalid serial removed)" for s in split_serials(raw))


def done_attempt(nonce: str) -> str:
    """A non-secret id for a finished request (the nonce itself must not stay in the base)."""
    return DONE_PREFIX + hashlib.sha256(nonce.encode()).hexdigest()[:12]


class CardRequests:
    def __init__(self, ctx: StoreContext) -> None:
        self.ctx = ctx
        self.in_hand: list[str] = []        # codes of the request in hand (to mask them in error logs)
        self._pool: ThreadPoolExecutor | None = None
        self._writer: ThreadPoolExecutor | None = None
        self._mail: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._unnotified: list[CardRequestForm] | None = None    # from the last poll, for resend()

    @property
    def options(self) -> StoreOptions:
        return self.ctx.options

    # -- the poll -----------------------------------------------------------------------------
    def run(self, between_cards: Callable[[], object] | None = None, stop=lambda: False) -> int:
        between = between_cards or (lambda: None)
        self._unnotified = None
        with priority(NORMAL):
            forms, self._unnotified = split_finished(
                self.ctx.book.pending_card_requests(self.options.batch_size, with_unnotified=True))
            if not forms:
                return 0
            stores = self.ctx.book.stores()
        done = 0
        for form in forms:
            if stop():
                break
            self.in_hand = split_serials(form.serials_raw)
            if safe_call(log, "card request", form.record_id,
                         lambda f=form: self.process(f, stores, between, stop), lambda: self.in_hand):
                done += 1
        return done

    # -- one request --------------------------------------------------------------------------
    def process(self, form: CardRequestForm, stores: dict[str, Store], between: Callable[[], object] = lambda: None,
                stop=lambda: False) -> None:
        rid = form.record_id
        resumed = form.status == FormStatus.PROCESSING.value
        with priority(NORMAL):
            try:
                plan = self.validate(form, stores, resumed=resumed)
            except Invalid as exc:
                if resumed:
                    # Cards may exist already: never reject blindly; an admin must look.
                    self.ctx.notifier.alert(f"request-stuck:{rid}", "Card request stuck in Processing",
                                            f"record={rid} no longer validates after its claim: {exc}",
                                            source=f"{TABLE.value}/{rid}")
                    log.warning("card request record=%s left in Processing: %s", rid, exc)
                    return
                self._reject(form, stores, str(exc))
                return
            if resumed:
                nonce = form.attempt[len(NONCE_PREFIX):] if form.attempt.startswith(NONCE_PREFIX) else ""
                if not nonce:
                    self._fail(form, plan, [], "The request was claimed but its attempt is missing; "
                                               "check Shopify for cards with note giftsync:" + rid)
                    return
                log.info("card request resumed record=%s quantity=%d", rid, plan.quantity)
            else:
                nonce = secrets.token_hex(16)
                reach("request.claim")
                self.ctx.book.update_forms(TABLE, {rid: {"Status": FormStatus.PROCESSING.value,
                                                         "Attempt": NONCE_PREFIX + nonce}})
                log.info("card request claimed record=%s quantity=%d kind=%s amount=%s",
                         rid, plan.quantity, plan.kind.value, plan.amount)
            existing = {c.code_hash: c for c in self.ctx.book.cards_by_source_record(rid)} if resumed else {}

        cards: dict[int, MirrorCard] = {}
        delivered_all = True
        size = self.options.card_chunk
        pending: deque[Future] = deque()     # chunks' writes in flight, oldest first
        writers = self.options.card_writers

        def settle(keep: int = 0) -> None:
            """Wait for the oldest chunks' writes until at most ``keep`` are in flight; fold them in."""
            nonlocal delivered_all
            while len(pending) > keep:
                done = pending.popleft().result()
                cards.update(done.cards)
                delivered_all = delivered_all and done.delivered_all
                if done.error is not None:
                    raise done.error

        try:
            for start in range(0, plan.quantity, size):
                if start and stop():
                    settle()
                    log.info("card request paused record=%s at card %d (stopping)", rid, start)
                    return
                made = self._chunk_creates(form, plan, nonce, list(range(start, min(start + size, plan.quantity))),
                                           existing, resumed, between, stop)
                last = start + size >= plan.quantity
                broken = made.out.refused is not None or made.out.error is not None or made.out.stopped
                try:
                    settle(0 if last or broken else writers - 1)   # earlier chunks' writes ran meanwhile
                except Exception:
                    self._chunk_writes(made)     # mirror and record the cards just made, then fail
                    raise
                if not (last or broken):
                    # Pipelined: this chunk's Gift Cards save, emails and receipts go on a writer
                    # thread while the next chunks' cards are created.
                    pending.append(self._writer_().submit(self._chunk_writes, made))
                    continue
                chunk = self._chunk_writes(made)      # the last or a broken chunk: written here
                cards.update(chunk.cards)
                delivered_all = delivered_all and chunk.delivered_all
                if chunk.refused is not None:
                    i, exc = chunk.refused
                    with priority(NORMAL):
                        self._fail(form, plan, [cards[k] for k in sorted(cards)],
                                   f"card {i + 1} of {plan.quantity}: {exc}", nonce=nonce)
                    return
                if chunk.error is not None:
                    raise chunk.error
                if chunk.stopped:
                    log.info("card request paused record=%s at card %d (stopping)", rid, len(cards))
                    return
            settle()
        finally:
            while pending:              # an error above: never leave writes running behind us
                try:
                    pending.popleft().result()
                except BaseException:  # noqa: BLE001 — the first error is the one raised
                    pass
        if not delivered_all:
            log.warning("card request record=%s kept in Processing: delivery emails failed; retried next cycle", rid)
            return
        with priority(NORMAL):
            self._finish(form, plan, [cards[i] for i in range(plan.quantity)], nonce)

    # -- one chunk of cards -------------------------------------------------------------------
    def _chunk(self, form: CardRequestForm, plan: Plan, nonce: str, indices: list[int],
               existing: dict[str, MirrorCard], resumed: bool, between: Callable[[], object], stop) -> _Chunk:
        """One chunk, creates then writes (the request loop pipelines the two halves)."""
        return self._chunk_writes(self._chunk_creates(form, plan, nonce, indices, existing, resumed, between, stop))

    def _chunk_creates(self, form: CardRequestForm, plan: Plan, nonce: str, indices: list[int],
                       existing: dict[str, MirrorCard], resumed: bool, between: Callable[[], object],
                       stop) -> _Made:
        """The Shopify half of a chunk: mirrors made before a crash reused, the other cards
        created (or adopted); nothing written to Airtable yet."""
        rid = form.record_id
        out = _Chunk()
        codes = {i: plan.serials[i] if plan.kind is CardKind.PHYSICAL else self.ctx.hasher.derive(nonce, i)
                 for i in indices}
        self.in_hand.extend(codes.values())
        receipts: list[Receipt] = []
        crm_recorded: set[str] = set()
        with priority(NORMAL):
            for i in indices:             # mirrored before a crash: reuse; its receipt only if missing
                mirror = existing.get(self.ctx.hasher.hash(codes[i]))
                if mirror is not None:
                    out.cards[i] = mirror
                    receipt_id = f"{self._activity(plan).value.lower()}:{rid}:{i}"
                    rows = self.ctx.book.receipts_for_card(mirror.record_id)
                    if crm.issued_link(rows, mirror.shopify_id) is not None:
                        crm_recorded.add(crm.receipt_id(mirror.shopify_id))   # the event is resent, not re-recorded
                    if not any(r.receipt_id == receipt_id for r in rows):
                        # dated when the card was made: the recipient may have spent it since, and a
                        # receipt dated now would put the opening balance after those movements
                        row = self._receipt_row(form, plan, i, mirror, plan.amount)
                        receipts.append(dataclasses.replace(row, time=mirror.created) if mirror.created else row)
        shops = self._make_cards(rid, plan, codes, [i for i in indices if i not in out.cards], resumed,
                                 between, stop, out)
        return _Made(form=form, plan=plan, codes=codes, shops=shops, receipts=receipts, out=out, resumed=resumed,
                     crm_recorded=crm_recorded)

    def _chunk_writes(self, made: _Made) -> _Chunk:
        """The Airtable/Klaviyo half of a chunk: ONE Gift Cards save, the delivery emails and
        CRM events concurrently, ONE receipts write. Errors are kept in the returned chunk."""
        form, plan, codes, out, receipts = made.form, made.plan, made.codes, made.out, made.receipts
        try:
            with priority(NORMAL):
                if made.shops:
                    now = self.ctx.clock.now()
                    new = [self._mirror_of(form, plan, codes[i], shop, now) for i, shop in made.shops.items()]
                    reach("request.mirror")
                    saved = {c.shopify_id: c for c in self.ctx.book.save_cards(new)}
                    self.ctx.cards.put(saved.values())     # known to the redemption polls (ADR 0006)
                    for i, shop in made.shops.items():
                        out.cards[i] = saved[shop.id]
                        # the opening: the balance the card was made with, dated when it was made (an
                        # adopted card may have been spent, or mirrored by another flow, since)
                        row = self._receipt_row(form, plan, i, out.cards[i], shop.initial_value or plan.amount)
                        if out.cards[i].opened_at is not None:
                            # another flow mirrored the card first (a shop redemption or a balance
                            # check of the serial): its MIRROR receipt opened the ledger, so this
                            # one carries no amount (docs/adr/0004-online-ledger.md)
                            row = dataclasses.replace(row, amount=None, balance_after=shop.balance,
                                                      details=row.details + "; the card's ledger was opened "
                                                                            "when it was first mirrored")
                        elif made.resumed and shop.created_at:
                            row = dataclasses.replace(row, time=min(row.time, shop.created_at))
                        receipts.append(row)
            order = sorted(out.cards)
            results = self._parallel([lambda i=i: self._deliver_and_relay(form, plan, i, codes[i], out.cards[i], receipts)
                                      for i in order])
            for result in results:
                if isinstance(result, BaseException):
                    out.error = out.error or result
                elif not result:
                    out.delivered_all = False
            with priority(NORMAL):
                # one row per card: each CRM row folded into its card's ISSUE/ACTIVATE row
                rows = [r for r in receipts if r.receipt_id not in made.crm_recorded]
                self.ctx.write_receipts("request.receipt", crm.fold_into_openings(rows))
        except BaseException as exc:  # noqa: BLE001 — surfaced by the request loop
            if not isinstance(exc, Exception):
                raise
            out.error = out.error or exc
        return out

    def _make_cards(self, rid: str, plan: Plan, codes: dict[int, str], todo: list[int], resumed: bool,
                    between: Callable[[], object], stop, out: _Chunk) -> dict[int, ShopifyCard]:
        """Create (or, resumed, adopt) the cards ``todo`` with up to ``card_create_workers`` in
        flight; ``between()`` before each create (new redemptions first). After a failure no
        further create starts; the ones made are returned (and mirrored by the caller)."""
        made: dict[int, ShopifyCard] = {}
        if not todo:
            return made
        failed = threading.Event()
        slots = threading.BoundedSemaphore(self.options.card_create_workers)
        lock = threading.Lock()

        def make(i: int) -> None:
            try:
                if failed.is_set():
                    return
                with priority(NORMAL):
                    shop = self._adopt(codes[i], rid, i) if resumed else None
                    if shop is None:
                        shop = self._create(codes[i], plan, rid, i)
                    else:
                        log.info("card adopted record=%s index=%d card=%s", rid, i, mask(shop.last4))
                with lock:
                    made[i] = shop
            except BaseException as exc:  # noqa: BLE001 — sorted by the caller
                failed.set()
                with lock:
                    if isinstance(exc, CreationRefused):
                        if out.refused is None or i < out.refused[0]:
                            out.refused = (i, exc)
                    elif out.error is None:
                        out.error = exc
            finally:
                slots.release()

        futures = []
        for n, i in enumerate(todo):
            if failed.is_set():
                break
            if (i or n) and stop():
                out.stopped = True
                break
            if i:
                between()               # serve shop customers waiting on a redemption first
            slots.acquire()
            if self.options.card_create_workers <= 1:
                make(i)
            else:
                futures.append(self._pool_().submit(make, i))
        for f in futures:
            f.result()
        return dict(sorted(made.items()))

    def _deliver_and_relay(self, form: CardRequestForm, plan: Plan, i: int, code: str, card: MirrorCard,
                           receipts: list[Receipt]) -> bool:
        with priority(NORMAL):
            ok = self._deliver(form, plan, i, code, card)
            self._crm(form, plan, card, receipts)
            return ok

    def _pool_(self) -> ThreadPoolExecutor:
        """The creates in flight."""
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.options.card_create_workers, thread_name_prefix="cards")
            return self._pool

    def _mail_pool(self) -> ThreadPoolExecutor:
        """The delivery emails and CRM events of the chunks being written (Klaviyo's budget
        governs); apart from the creates, so neither queues behind the other."""
        with self._pool_lock:
            if self._mail is None:
                self._mail = ThreadPoolExecutor(CARD_MAIL_WORKERS, thread_name_prefix="cards-mail")
            return self._mail

    def _writer_(self) -> ThreadPoolExecutor:
        """``card_writers`` threads: chunks' Airtable writes and emails while the next chunks
        are created (one chunk's emails overlap another's Airtable writes)."""
        with self._pool_lock:
            if self._writer is None:
                self._writer = ThreadPoolExecutor(self.options.card_writers, thread_name_prefix="cards-writer")
            return self._writer

    def _parallel(self, fns: list[Callable[[], object]]) -> list[object]:
        def call(fn):
            try:
                return fn()
            except Exception as exc:  # noqa: BLE001 — returned to the caller
                return exc
        if len(fns) <= 1:
            return [call(fn) for fn in fns]
        pool = self._mail_pool()
        return [f.result() for f in [pool.submit(call, fn) for fn in fns]]

    # -- validation ---------------------------------------------------------------------------
    def validate(self, form: CardRequestForm, stores: dict[str, Store], *, resumed: bool = False) -> Plan:
        store = stores.get(form.store_ids[0]) if form.store_ids else None
        if store is None or not store.active:
            raise Invalid("The store is missing or not active")
        try:
            amount = parse_amount(form.amount_raw, self.options.currency, maximum=self.options.max_card_amount)
        except InvalidAmount as exc:
            raise Invalid(exc.reason) from None
        quantity = parse_quantity(form.quantity_raw, self.options.max_quantity)
        kind_text = (form.kind or CardKind.DIGITAL.value).strip().capitalize()
        try:
            kind = CardKind(kind_text)
        except ValueError:
            raise Invalid("Kind must be Digital or Physical") from None
        recipient, purchaser = form.recipient_email.strip(), form.purchaser_email.strip()
        if recipient and not valid_email(recipient):
            raise Invalid("Recipient Email is not a valid address")
        if purchaser and not valid_email(purchaser):
            raise Invalid("Purchaser Email is not a valid address")
        if kind is CardKind.DIGITAL and not recipient:
            raise Invalid("A digital card needs a Recipient Email (the code is sent there)")
        if form.is_gift and not purchaser:
            raise Invalid("A gift needs a Purchaser Email (the purchaser gets a confirmation)")
        serials: list[str] = []
        if kind is CardKind.PHYSICAL:
            serials = split_serials(form.serials_raw)
            if len(serials) != quantity:
                raise Invalid(f"A physical request needs one serial per card: {quantity} card(s), "
                              f"{len(serials)} serial(s)")
            for n, serial in enumerate(serials, 1):
                if not is_valid_code(serial):
                    raise Invalid(f"Serial {n} must be 8 to 20 letters and digits")
            if len(set(serials)) != len(serials):
                raise Invalid("The same serial appears twice")
            for n, serial in enumerate(serials, 1):
                used = self.ctx.book.card_by_hash(self.ctx.hasher.hash(serial))
                if used is not None and not (resumed and self._ours(used, form.record_id, n - 1)):
                    raise Invalid(f"Serial {n} ({mask(last4(serial))}) is already used by a card")
                if not resumed and self.ctx.ledger.find_by_code(serial) is not None:
                    raise Invalid(f"Serial {n} ({mask(last4(serial))}) is already used by a card in Shopify")
        return Plan(store=store, amount=amount, quantity=quantity, kind=kind, serials=serials)

    # -- one card -----------------------------------------------------------------------------
    @staticmethod
    def _activity(plan: Plan) -> Activity:
        return Activity.ACTIVATE if plan.kind is CardKind.PHYSICAL else Activity.ISSUE

    def _mirror_of(self, form: CardRequestForm, plan: Plan, code: str, shop: ShopifyCard, now) -> MirrorCard:
        return MirrorCard(
            record_id=None, shopify_id=shop.id, last4=shop.last4, balance=shop.balance,
            code_hash=self.ctx.hasher.hash(code), initial_value=shop.initial_value or plan.amount,
            status=CardStatus.ACTIVE, kind=plan.kind, source=CardSource.STORE_REQUEST,
            recipient_name=form.recipient_name, recipient_email=form.recipient_email.strip(),
            purchaser_name=form.purchaser_name, purchaser_email=form.purchaser_email.strip(),
            store_record_id=plan.store.record_id, expires_on=shop.expires_on, created=shop.created_at or now,
            last_synced=now, source_record=form.record_id)

    def _receipt_row(self, form: CardRequestForm, plan: Plan, i: int, card: MirrorCard, balance: Money) -> Receipt:
        activity = self._activity(plan)
        return self.ctx.receipt(
            f"{activity.value.lower()}:{form.record_id}:{i}", activity, card_record_id=card.record_id,
            card_masked=card.masked, amount=plan.amount, balance_after=balance,
            store_record_id=plan.store.record_id, source=f"{TABLE.value}/{form.record_id}",
            outcome=RequestOutcome.ISSUED.value, correlation_id=note_for(form.record_id, i),
            details=f"card {i + 1} of {plan.quantity}, {plan.kind.value}" + (f", staff={form.staff}" if form.staff else ""))

    def _ours(self, card: MirrorCard, rid: str, i: int) -> bool:
        """A mirrored card that this request made: saved by it, or created by it in Shopify (its
        note) and mirrored by another flow (a shop redemption or a balance check of the serial)
        while this request's own save had failed; the resume adopts it."""
        if card.source_record == rid:
            return True
        shop = self.ctx.ledger.get_card(card.shopify_id) if card.shopify_id else None
        return shop is not None and shop.note == note_for(rid, i)

    def _adopt(self, code: str, rid: str, i: int) -> ShopifyCard | None:
        """The card with this code, if it is ours (note matches); None if there is none."""
        shop = self.ctx.ledger.find_by_code(code)
        if shop is None:
            return None
        if shop.note != note_for(rid, i):
            raise CreationRefused(f"code {mask(last4(code))} already belongs to another card")
        return shop

    def _create(self, code: str, plan: Plan, rid: str, i: int) -> ShopifyCard:
        note = note_for(rid, i)
        for _ in range(CREATE_SENDS):
            reach("request.create")
            try:
                result = self.ctx.ledger.create_card(code=code, amount=plan.amount, note=note)
            except AmbiguousError as exc:
                log.warning("card create ambiguous record=%s index=%d reason=%r; reading back", rid, i, exc.reason)
                shop = self._adopt(code, rid, i)
                if shop is not None:
                    return shop
                continue
            if result.card is not None:
                log.info("card created record=%s index=%d card=%s", rid, i, mask(result.card.last4))
                return result.card
            if result.code_taken:
                shop = self._adopt(code, rid, i)
                if shop is not None:
                    return shop
                raise RetriableError("shopify", "code reported taken but not found yet")
            raise CreationRefused(result.error or "Shopify refused the card")
        raise RetriableError("shopify", f"card create still ambiguous after {CREATE_SENDS} sends")

    # -- emails -------------------------------------------------------------------------------
    def _deliver(self, form: CardRequestForm, plan: Plan, i: int, code: str, card: MirrorCard) -> bool:
        to = form.recipient_email.strip()
        if not to:
            return True                 # a physical card handed over with no address given
        common = {"Card": card.masked, "Amount": plan.amount.plain(), "Currency": plan.amount.currency,
                  "Recipient Name": form.recipient_name, "Purchaser Name": form.purchaser_name,
                  "Message": form.message, "Store": plan.store.name,
                  "Expires On": card.expires_on.isoformat() if card.expires_on else ""}
        if plan.kind is CardKind.DIGITAL:
            event = EmailEvent(metric=Metric.GIFT_CARD_DELIVERED, email=to, unique_id=f"request:{form.record_id}:deliver:{i}",
                               properties={"Code": code, **common}, carries_code=True,
                               first_name=form.recipient_name.split(" ")[0] if form.recipient_name else "")
        else:
            event = EmailEvent(metric=Metric.GIFT_CARD_ACTIVATED, email=to, unique_id=f"request:{form.record_id}:activate:{i}",
                               properties=common,
                               first_name=form.recipient_name.split(" ")[0] if form.recipient_name else "")
        reach("request.deliver")
        return self.ctx.notifier.send(event, source=f"{TABLE.value}/{form.record_id}",
                                      store_record_id=plan.store.record_id, card_record_id=card.record_id,
                                      card_masked=card.masked)

    def _crm(self, form: CardRequestForm, plan: Plan, card: MirrorCard, receipts: list | None = None) -> None:
        """CRM relay (the builder shared with the online prongs, giftsync/prongs/crm.py): the
        issue on the purchaser's profile (else the recipient's), with its value; a CRM receipt
        records what was sent (or that no identity was known, with an admin alert) — folded into
        the card's opening row when both go in the same write."""
        crm.relay_issued(self.ctx, crm.Issue(
            shopify_id=card.shopify_id, card_record_id=card.record_id, card_masked=card.masked, amount=plan.amount,
            channel=Channel.STORE, source=f"{TABLE.value}/{form.record_id}",
            purchaser_email=form.purchaser_email.strip(), purchaser_name=form.purchaser_name,
            recipient_email=form.recipient_email.strip(), recipient_name=form.recipient_name,
            store_name=plan.store.name, store_record_id=plan.store.record_id, kind=plan.kind.value),
            point="request.crm", receipt_point="request.receipt", receipts=receipts)

    def confirmations(self, form: CardRequestForm, store: Store | None, cards: list[MirrorCard]) -> list[EmailEvent]:
        """Store confirmation and (gift) purchaser confirmation, from the finished record alone."""
        events = []
        currency = cards[0].balance.currency if cards else self.options.currency
        try:
            amount = parse_amount(form.amount_raw, currency).plain()
        except InvalidAmount:
            amount = str(form.amount_raw or "")[:30]
        masked = [c.masked for c in cards]
        to_store = store.email if store and store.active and valid_email(store.email) else self.options.admin_email
        if valid_email(to_store):
            events.append(EmailEvent(
                metric=Metric.STORE_REQUEST_PROCESSED, email=to_store.strip(), unique_id=f"request:{form.record_id}:store",
                properties={"Record": form.record_id, "Outcome": form.outcome, "Reason": form.reason,
                            "Quantity": len(cards) if cards else str(form.quantity_raw or "")[:10],
                            "Amount": amount, "Currency": currency, "Kind": form.kind or CardKind.DIGITAL.value,
                            "Cards": masked, "Recipient Email": form.recipient_email.strip(),
                            "Recipient Name": form.recipient_name, "Staff": form.staff,
                            "Store": store.name if store else ""}))
        if form.is_gift and cards and valid_email(form.purchaser_email):
            events.append(EmailEvent(
                metric=Metric.PURCHASE_CONFIRMED, email=form.purchaser_email.strip(),
                unique_id=f"request:{form.record_id}:purchaser",
                properties={"Recipient Email": form.recipient_email.strip(), "Recipient Name": form.recipient_name,
                            "Purchaser Name": form.purchaser_name, "Amount": amount, "Currency": currency,
                            "Quantity": len(cards), "Kind": form.kind or CardKind.DIGITAL.value, "Cards": masked,
                            "Message": form.message, "Store": store.name if store else ""},
                first_name=form.purchaser_name.strip().split(" ")[0] if form.purchaser_name.strip() else ""))
        return events

    def send_confirmations(self, form: CardRequestForm, store: Store | None, cards: list[MirrorCard]) -> bool:
        """The confirmations of a finished record; True when all were accepted."""
        self.ctx.notified_this_cycle.add(form.record_id)
        ok = True
        for event in self.confirmations(form, store, cards):
            reach("request.email")
            ok = self.ctx.notifier.send(event, source=f"{TABLE.value}/{form.record_id}",
                                        store_record_id=store.record_id if store else None) and ok
        return ok

    def notify(self, form: CardRequestForm, store: Store | None, cards: list[MirrorCard]) -> bool:
        """The confirmations, then Notified on its own (resends, rejections, failures)."""
        ok = self.send_confirmations(form, store, cards)
        if ok:
            reach("request.notified")
            self.ctx.book.update_forms(TABLE, {form.record_id: {"Notified": True}})
        return ok

    def resend(self, stop=lambda: False) -> int:
        """Finished requests whose confirmations did not go out: sent again. The list comes from
        this cycle's poll (``run``) when there was one, else from a request of its own."""
        forms, self._unnotified = self._unnotified, None
        if forms is None:
            forms = self.ctx.book.unnotified(TABLE, self.options.batch_size)
        if not forms:
            return 0
        stores = self.ctx.book.stores()

        def again(f: CardRequestForm) -> bool:
            cards = [c for c in (self.ctx.book.card(cid) for cid in f.card_ids) if c is not None]
            return self.notify(f, stores.get(f.store_ids[0]) if f.store_ids else None, cards)
        return resend_each(self.ctx, log, "card request email resend", forms, again, stop)

    # -- endings ------------------------------------------------------------------------------
    def _finish(self, form: CardRequestForm, plan: Plan, cards: list[MirrorCard], nonce: str) -> None:
        rid = form.record_id
        now = self.ctx.clock.now()
        fields: dict = {"Status": FormStatus.DONE.value, "Outcome": RequestOutcome.ISSUED.value, "Reason": "",
                        "Cards": [c.record_id for c in cards], "Attempt": done_attempt(nonce), "Processed At": now}
        if form.serials_raw:
            fields["Physical Serials"] = masked_serials(form.serials_raw)
        finished = dataclasses.replace(form, status=FormStatus.DONE.value, outcome=RequestOutcome.ISSUED.value,
                                       reason="", card_ids=[c.record_id for c in cards],
                                       serials_raw=fields.get("Physical Serials", ""), attempt=fields["Attempt"],
                                       processed_at=now)
        # The confirmations first, built from the finished record alone, then ONE write with
        # Done and Notified (as a redemption's final write): a crash between the two leaves the
        # request Processing, resumed into the same cards and the same (deduplicated) emails.
        sent = self.send_confirmations(finished, plan.store, cards)
        reach("request.finish")
        if sent:
            reach("request.notified")          # Notified travels in the final write
            fields["Notified"] = True
        self.ctx.book.update_forms(TABLE, {rid: fields})
        log.info("card request done record=%s cards=%d kind=%s", rid, len(cards), plan.kind.value)

    def _reject(self, form: CardRequestForm, stores: dict[str, Store], reason: str) -> None:
        rid = form.record_id
        now = self.ctx.clock.now()
        store = stores.get(form.store_ids[0]) if form.store_ids else None
        self.ctx.write_receipts("request.receipt", [self.ctx.receipt(
            f"reject:{rid}", Activity.REJECT, store_record_id=store.record_id if store else None,
            source=f"{TABLE.value}/{rid}", outcome=RequestOutcome.REJECTED.value, correlation_id=rid,
            details=reason[:500])])
        fields: dict = {"Status": FormStatus.REJECTED.value, "Outcome": RequestOutcome.REJECTED.value,
                        "Reason": reason, "Processed At": now}
        if form.serials_raw:
            fields["Physical Serials"] = masked_serials(form.serials_raw)
        if form.attempt.startswith(NONCE_PREFIX):
            fields["Attempt"] = done_attempt(form.attempt[len(NONCE_PREFIX):])
        reach("request.finish")
        self.ctx.book.update_forms(TABLE, {rid: fields})
        log.info("card request rejected record=%s reason=%r", rid, reason)
        finished = dataclasses.replace(form, status=FormStatus.REJECTED.value, outcome=RequestOutcome.REJECTED.value,
                                       reason=reason, serials_raw=fields.get("Physical Serials", ""), processed_at=now)
        self.notify(finished, store, [])

    def _fail(self, form: CardRequestForm, plan: Plan, cards: list[MirrorCard], reason: str, *, nonce: str = "") -> None:
        """Shopify refused a card mid-request: keep what was issued, end the request Rejected/Failed."""
        rid = form.record_id
        now = self.ctx.clock.now()
        self.ctx.write_receipts("request.receipt", [self.ctx.receipt(
            f"reject:{rid}", Activity.REJECT, store_record_id=plan.store.record_id, source=f"{TABLE.value}/{rid}",
            outcome=RequestOutcome.FAILED.value, correlation_id=rid,
            details=f"{reason}; {len(cards)} card(s) issued before the failure"[:500])])
        fields: dict = {"Status": FormStatus.REJECTED.value, "Outcome": RequestOutcome.FAILED.value,
                        "Reason": f"{reason}; {len(cards)} card(s) issued", "Processed At": now,
                        "Cards": [c.record_id for c in cards]}
        if nonce:
            fields["Attempt"] = done_attempt(nonce)
        if form.serials_raw:
            fields["Physical Serials"] = masked_serials(form.serials_raw)
        reach("request.finish")
        self.ctx.book.update_forms(TABLE, {rid: fields})
        self.ctx.notifier.alert(f"request-failed:{rid}", "Card request failed",
                                f"record={rid}: {fields['Reason']}", source=f"{TABLE.value}/{rid}")
        finished = dataclasses.replace(form, status=FormStatus.REJECTED.value, outcome=RequestOutcome.FAILED.value,
                                       reason=fields["Reason"], card_ids=fields["Cards"],
                                       serials_raw=fields.get("Physical Serials", ""), processed_at=now)
        self.notify(finished, plan.store, cards)
