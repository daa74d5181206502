"""Hand-written in-memory fakes of every port (cosmicpython style: no ``mock.patch``).

They keep the semantics the prongs rely on (upserts, exact code lookup, Shopify's refusals,
Klaviyo's de-duplication by ``unique_id``) and can be told to fail::

    ledger.fail_next("debit", AmbiguousError("shopify", "timeout"), applied=True)

``applied=True`` performs the call and then raises (the answer was lost); ``applied=False``
raises without doing anything. ``times=n`` repeats the failure for the next n calls.
``when=predicate`` targets the failure at the calls whose recorded args match (the args as in
``.calls``), e.g. one email where the prongs send several concurrently and a bare count would
land on whichever call came first::

    messenger.fail_next("send", RetriableError("klaviyo", "503"), times=3,
                        when=lambda event: event.unique_id == f"request:{rid}:deliver:0")

Every call is recorded in ``.calls`` as ``(method, args)`` for assertions.

Values written with ``FakeCardBook.update_forms`` are kept as given (the prongs pass str,
bool, int, Decimal for currency fields, aware datetimes, lists of record ids); field names
and single-select choices are checked against ``config/base_schema.json`` like Airtable's
``UNKNOWN_FIELD_NAME`` / ``INVALID_MULTIPLE_CHOICE_OPTIONS`` would.
"""
from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import threading
from collections import deque
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable, Iterator

from ..domain.cards import CardStatus, CardTransaction, MirrorCard, ShopifyCard
from ..domain.codes import is_valid_code, last4 as code_last4, normalise_code
from ..domain.emails import EmailEvent
from ..domain.forms import BalanceCheckForm, CardRequestForm, RedemptionForm, Store
from ..domain.ledger import Receipt
from ..domain.money import Money
from ..errors import FatalError
from ..ports import (CreateCardResult, FormTable, IssuedCard, MoveResult, OrderEntry, OrderKind, OrderLine,
                     OrderPayment, OrderStatus, ShopifyOrder, StatusRow)
from ..base_schema import schema_path

SCHEMA_PATH = schema_path()
EPOCH = datetime(2025, 1, 6, 9, 0, tzinfo=timezone.utc)


# -- failure injection -------------------------------------------------------------------------

@dataclass(eq=False)      # removed from its queue by identity
class _Failure:
    error: BaseException
    applied: bool
    times: int
    when: Callable[..., bool] | None = None


class _Failing:
    """Mixin: ``fail_next(method, error, applied=False, times=1, when=None)`` and a call log.
    Thread-safe: the prongs call the fakes from their worker pools."""

    def __init__(self) -> None:
        self._failures: dict[str, deque[_Failure]] = {}
        self._failures_lock = threading.Lock()
        self.calls: list[tuple[str, tuple]] = []

    def fail_next(self, method: str, error: BaseException, *, applied: bool = False, times: int = 1,
                  when: Callable[..., bool] | None = None) -> None:
        if not hasattr(self, method):
            raise AttributeError(f"{type(self).__name__} has no method {method!r}")
        with self._failures_lock:
            self._failures.setdefault(method, deque()).append(_Failure(error, applied, times, when))

    def clear_failures(self) -> None:
        self._failures.clear()

    def count(self, method: str) -> int:
        return sum(1 for name, _ in self.calls if name == method)

    def _enter(self, method: str, *args: Any) -> _Failure | None:
        """Record the call; return a pending failure (already consumed) or None. The first
        queued failure that applies to these args (no ``when``, or ``when(*args)`` true) is taken."""
        with self._failures_lock:
            self.calls.append((method, args))
            queue = self._failures.get(method)
            failure = next((f for f in queue if f.when is None or f.when(*args)), None) if queue else None
            if failure is None:
                return None
            failure.times -= 1
            if failure.times <= 0:
                queue.remove(failure)
        if not failure.applied:
            raise failure.error
        return failure

    @staticmethod
    def _exit(failure: _Failure | None, result: Any) -> Any:
        if failure is not None:
            raise failure.error
        return result


# -- clock ------------------------------------------------------------------------------------

class FakeClock:
    """Settable time; ``sleep`` advances it instantly."""

    def __init__(self, start: datetime = EPOCH) -> None:
        self._now = start
        self._mono = 1000.0
        self.slept: list[float] = []

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time does not go back")
        self._now += timedelta(seconds=seconds)
        self._mono += seconds

    def set(self, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("use an aware datetime")
        delta = (when - self._now).total_seconds()
        self.advance(max(delta, 0.0))
        self._now = when

    def today(self) -> date:
        return self._now.date()


# -- messenger --------------------------------------------------------------------------------

class FakeMessenger(_Failing):
    """Klaviyo: accepted events in ``sent``; a second event with the same ``unique_id`` is dropped."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[EmailEvent] = []
        self._ids: set[str] = set()
        self.dropped: list[EmailEvent] = []

    def send(self, event: EmailEvent) -> None:
        failure = self._enter("send", event)
        if event.unique_id in self._ids:
            self.dropped.append(event)
        else:
            self._ids.add(event.unique_id)
            self.sent.append(event)
        return self._exit(failure, None)

    # helpers for tests
    def to(self, email: str) -> list[EmailEvent]:
        return [e for e in self.sent if e.email.lower() == email.lower()]

    def of(self, metric: Any) -> list[EmailEvent]:
        return [e for e in self.sent if e.metric == metric]

    def by_id(self, unique_id: str) -> EmailEvent | None:
        return next((e for e in self.sent if e.unique_id == unique_id), None)


# -- Shopify ----------------------------------------------------------------------------------

@dataclass
class _LedgerCard:
    card: ShopifyCard
    code: str
    customer_id: str | None
    transactions: list[CardTransaction]


class FakeGiftCardLedger(_Failing):
    """Shopify gift cards: codes unique (case-insensitive), overdrafts refused, notes kept."""

    def __init__(self, clock: FakeClock | None = None, currency: str = "USD") -> None:
        super().__init__()
        self.clock = clock or FakeClock()
        self.currency = currency.upper()
        self._cards: dict[str, _LedgerCard] = {}
        self._ids = itertools.count(663920574770)
        self._tx_ids = itertools.count(300000000001)

    # -- test helpers -------------------------------------------------------------------------
    def add_card(self, code: str, balance: str | Decimal | Money, *, currency: str | None = None,
                 enabled: bool = True, expires_on: date | None = None, note: str = "",
                 customer_email: str = "", order_name: str = "") -> ShopifyCard:
        """A card that exists in Shopify (e.g. issued natively, before giftsync)."""
        money = balance if isinstance(balance, Money) else Money.of(balance, currency or self.currency)
        card = self._new_card(normalise_code(code), money, note, None, expires_on)
        card.card.customer_email = customer_email
        card.card.order_name = order_name
        if not enabled:
            self.deactivate(card.card.id)
        return copy.deepcopy(card.card)

    def deactivate(self, card_id: str) -> None:
        c = self._cards[card_id]
        c.card.enabled = False
        c.card.deactivated_at = c.card.deactivated_at or self.clock.now()
        c.card.updated_at = self.clock.now()

    def adjust(self, card_id: str, delta: str | Decimal, note: str = "admin") -> None:
        """An admin change made in Shopify's own UI."""
        c = self._cards[card_id]
        amount = Money(Decimal(str(delta)), c.card.balance.currency)
        self._move(c, amount, note, None, "credit" if amount.amount > 0 else "debit")

    def code_of(self, card_id: str) -> str:
        return self._cards[card_id].code

    def all_cards(self) -> list[ShopifyCard]:
        return [copy.deepcopy(c.card) for c in self._cards.values()]

    def balance_of(self, card_id: str) -> Money:
        return self._cards[card_id].card.balance

    # -- internals ----------------------------------------------------------------------------
    def _new_card(self, code: str, amount: Money, note: str, customer_id: str | None,
                  expires_on: date | None) -> _LedgerCard:
        now = self.clock.now()
        card_id = f"gid://shopify/GiftCard/{next(self._ids)}"
        card = ShopifyCard(id=card_id, last4=code_last4(code), balance=amount, initial_value=amount,
                           enabled=True, expires_on=expires_on, note=note, created_at=now, updated_at=now)
        entry = _LedgerCard(card, code, customer_id, [])
        self._cards[card_id] = entry
        return entry

    def _move(self, c: _LedgerCard, amount: Money, note: str, processed_at: datetime | None, kind: str) -> CardTransaction:
        tx_kind = "GiftCardCreditTransaction" if kind == "credit" else "GiftCardDebitTransaction"
        tx = CardTransaction(id=f"gid://shopify/{tx_kind}/{next(self._tx_ids)}", amount=amount, note=note,
                             processed_at=processed_at or self.clock.now(), kind=kind)
        c.transactions.append(tx)
        c.card.balance = c.card.balance + amount
        c.card.updated_at = self.clock.now()
        return tx

    def _refusal(self, c: _LedgerCard | None, amount: Money) -> MoveResult | None:
        if c is None:
            return MoveResult(error_code="GIFT_CARD_NOT_FOUND", error="The gift card could not be found.")
        if not c.card.enabled or c.card.deactivated_at is not None:
            return MoveResult(error_code="GIFT_CARD_DEACTIVATED", error="The gift card is deactivated.",
                              balance=c.card.balance)
        if c.card.expires_on is not None and c.card.expires_on < self.clock.now().date():
            return MoveResult(error_code="GIFT_CARD_EXPIRED", error="The gift card has expired.",
                              balance=c.card.balance)
        if amount.amount <= 0:
            return MoveResult(error_code="NEGATIVE_OR_ZERO_AMOUNT", error="A positive amount must be used.")
        if amount.currency != c.card.balance.currency:
            return MoveResult(error_code="MISMATCHING_CURRENCY", error="The currency does not match.")
        return None

    # -- port ---------------------------------------------------------------------------------
    def get_card(self, card_id: str) -> ShopifyCard | None:
        failure = self._enter("get_card", card_id)
        c = self._cards.get(card_id)
        return self._exit(failure, copy.deepcopy(c.card) if c else None)

    def find_by_code(self, code: str) -> ShopifyCard | None:
        failure = self._enter("find_by_code", code_last4(normalise_code(code)))   # log no whole code
        wanted = normalise_code(code)
        hits = [c for c in self._cards.values() if c.code.upper() == wanted]
        return self._exit(failure, copy.deepcopy(hits[0].card) if len(hits) == 1 else None)

    def create_card(self, *, code: str, amount: Money, note: str, customer_id: str | None = None,
                    expires_on: date | None = None) -> CreateCardResult:
        failure = self._enter("create_card", code_last4(code), amount, note)
        code = normalise_code(code)
        if not is_valid_code(code):
            result = CreateCardResult(error="Code is invalid")
        elif any(c.code.upper() == code for c in self._cards.values()):
            result = CreateCardResult(code_taken=True, error="Code has already been taken")
        elif amount.amount <= 0:
            result = CreateCardResult(error="Initial value must be greater than 0")
        else:
            result = CreateCardResult(card=copy.deepcopy(self._new_card(code, amount, note, customer_id, expires_on).card))
        return self._exit(failure, result)

    def debit(self, card_id: str, amount: Money, *, note: str, processed_at: datetime | None = None) -> MoveResult:
        failure = self._enter("debit", card_id, amount, note)
        c = self._cards.get(card_id)
        result = self._refusal(c, amount)
        if result is None and c is not None:
            if c.card.balance.amount < amount.amount:
                result = MoveResult(error_code="INSUFFICIENT_FUNDS", balance=c.card.balance,
                                    error="The gift card does not have sufficient funds to satisfy the request.")
            else:
                tx = self._move(c, -amount, note, processed_at, "debit")
                result = MoveResult(transaction=tx, balance=c.card.balance)
        return self._exit(failure, result)

    def credit(self, card_id: str, amount: Money, *, note: str, processed_at: datetime | None = None) -> MoveResult:
        failure = self._enter("credit", card_id, amount, note)
        c = self._cards.get(card_id)
        result = self._refusal(c, amount)
        if result is None and c is not None:
            tx = self._move(c, amount, note, processed_at, "credit")
            result = MoveResult(transaction=tx, balance=c.card.balance)
        return self._exit(failure, result)

    def transactions(self, card_id: str, last: int = 50) -> list[CardTransaction]:
        failure = self._enter("transactions", card_id)
        c = self._cards.get(card_id)
        return self._exit(failure, list(c.transactions[-last:]) if c else [])

    def cards_updated(self, after_cursor: str | None = None, page_size: int = 100) -> tuple[list[ShopifyCard], str | None]:
        failure = self._enter("cards_updated", after_cursor)
        ordered = sorted(self._cards.values(), key=lambda c: (c.card.updated_at or EPOCH, c.card.id), reverse=True)
        start = int(after_cursor) if after_cursor else 0
        page = [copy.deepcopy(c.card) for c in ordered[start:start + page_size]]
        nxt = str(start + page_size) if start + page_size < len(ordered) else None
        return self._exit(failure, (page, nxt))


# -- Airtable ---------------------------------------------------------------------------------

def _load_schema() -> dict[str, dict[str, dict]]:
    try:
        data = json.loads(SCHEMA_PATH.read_text())
    except OSError:   # installed without the config directory: accept any field
        return {}
    return {t["name"]: {f["name"]: f for f in t["fields"]} for t in data["tables"]}


_SCHEMA = _load_schema()
_DONE = {"Done", "Rejected"}
_CARD_LINKS = {FormTable.REDEMPTIONS: ("Card",), FormTable.CARD_REQUESTS: ("Cards",)}   # links to Gift Cards
_PENDING = {"", "New", "Processing"}


def _empty_cell(value: Any) -> bool:
    """What Airtable leaves out of a record (a 0 is kept)."""
    return value is None or value is False or (isinstance(value, (str, list)) and not value)


def _when(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) else None


class FakeCardBook(_Failing):
    """The Airtable base in dicts. Form records are kept as Airtable field dicts."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        super().__init__()
        self.clock = clock or FakeClock()
        self._ids = itertools.count(1)
        self.store_rows: dict[str, Store] = {}
        self.forms: dict[FormTable, dict[str, dict[str, Any]]] = {t: {} for t in FormTable}
        self.cards: dict[str, MirrorCard] = {}
        self.receipts: dict[str, Receipt] = {}          # by receipt_id, in first-write order
        self.status: dict[str, StatusRow] = {}
        self.order_rows: dict[str, OrderEntry] = {}     # the Online Orders registry by Order Key

    def new_id(self) -> str:
        return f"rec{next(self._ids):014d}"

    # -- test helpers -------------------------------------------------------------------------
    def add_store(self, name: str, email: str = "", active: bool = True) -> str:
        rid = self.new_id()
        self.store_rows[rid] = Store(record_id=rid, name=name, email=email or f"{name.lower().replace(' ', '')}@shop.test", active=active)
        return rid

    def add_form(self, table: FormTable, fields: dict[str, Any]) -> str:
        self._check_fields(table.value, fields)
        rid = self.new_id()
        self.forms[table][rid] = {"_created": self.clock.now(), **fields}
        self.clock.advance(0.001)    # keep creation order strict
        return rid

    def add_redemption(self, code: Any, amount: Any, store: str | None, **extra: Any) -> str:
        fields = {"Code": code, "Amount": amount, **extra}
        if store:
            fields["Store"] = [store]
        return self.add_form(FormTable.REDEMPTIONS, fields)

    def add_card_request(self, store: str | None, amount: Any, quantity: Any = 1, **extra: Any) -> str:
        fields: dict[str, Any] = {"Amount": amount, "Quantity": quantity}
        if store:
            fields["Store"] = [store]
        names = {"kind": "Kind", "serials": "Physical Serials", "recipient_name": "Recipient Name",
                 "recipient_email": "Recipient Email", "purchaser_name": "Purchaser Name",
                 "purchaser_email": "Purchaser Email", "is_gift": "Is Gift", "message": "Message", "staff": "Staff"}
        for key, value in extra.items():
            fields[names.get(key, key)] = value
        return self.add_form(FormTable.CARD_REQUESTS, fields)

    def add_balance_check(self, code: Any, email: Any) -> str:
        return self.add_form(FormTable.BALANCE_CHECKS, {"Code": code, "Email": email})

    def fields(self, table: FormTable, record_id: str) -> dict[str, Any]:
        return dict(self.forms[table][record_id])

    def all_receipts(self) -> list[Receipt]:
        return list(self.receipts.values())

    # -- internals ----------------------------------------------------------------------------
    @staticmethod
    def _check_fields(table: str, fields: dict[str, Any], *, written_by_giftsync: bool = False) -> None:
        schema = _SCHEMA.get(table)
        if not schema:
            return
        for name, value in fields.items():
            spec = schema.get(name)
            if spec is None:
                raise FatalError("airtable", f"UNKNOWN_FIELD_NAME: Unknown field name: {name!r} in {table}", status=422)
            if spec["type"] == "singleSelect" and value not in (None, ""):
                choices = {c["name"] for c in spec["options"]["choices"]}
                if value not in choices:
                    raise FatalError("airtable", f"INVALID_MULTIPLE_CHOICE_OPTIONS: {name}={value!r}", status=422)
            if spec["type"] == "multipleRecordLinks" and value is not None and not (
                    isinstance(value, list) and all(isinstance(v, str) and v.startswith("rec") for v in value)):
                raise FatalError("airtable", f"INVALID_VALUE_FOR_COLUMN: {name} wants record ids", status=422)
            if written_by_giftsync and spec["type"] == "currency" and isinstance(value, float):
                raise FatalError("airtable", f"floats are not allowed for money ({name})", status=422)

    def _form(self, table: FormTable, rid: str, f: dict[str, Any]):
        created = f.get("_created")
        if table is FormTable.REDEMPTIONS:
            return RedemptionForm(record_id=rid, code_raw=f.get("Code"), amount_raw=f.get("Amount"),
                                  store_ids=list(f.get("Store") or []), staff=f.get("Staff") or "",
                                  note=f.get("Note") or "", status=f.get("Status") or "",
                                  attempt=f.get("Attempt") or "", card_ids=list(f.get("Card") or []),
                                  outcome=f.get("Outcome") or "", notified=bool(f.get("Notified")),
                                  created=created, reason=f.get("Reason") or "",
                                  balance_after=f.get("Balance After"), processed_at=_when(f.get("Processed At")))
        if table is FormTable.CARD_REQUESTS:
            return CardRequestForm(record_id=rid, amount_raw=f.get("Amount"), quantity_raw=f.get("Quantity"),
                                   kind=f.get("Kind") or "", serials_raw=f.get("Physical Serials") or "",
                                   store_ids=list(f.get("Store") or []), recipient_name=f.get("Recipient Name") or "",
                                   recipient_email=f.get("Recipient Email") or "",
                                   purchaser_name=f.get("Purchaser Name") or "",
                                   purchaser_email=f.get("Purchaser Email") or "", is_gift=bool(f.get("Is Gift")),
                                   message=f.get("Message") or "", staff=f.get("Staff") or "",
                                   status=f.get("Status") or "", attempt=f.get("Attempt") or "",
                                   card_ids=list(f.get("Cards") or []), outcome=f.get("Outcome") or "",
                                   notified=bool(f.get("Notified")), created=created, reason=f.get("Reason") or "",
                                   processed_at=_when(f.get("Processed At")))
        return BalanceCheckForm(record_id=rid, code_raw=f.get("Code"), email_raw=f.get("Email"),
                                status=f.get("Status") or "", outcome=f.get("Outcome") or "",
                                notified=bool(f.get("Notified")), created=created,
                                processed_at=_when(f.get("Processed At")))

    def _pending(self, table: FormTable, limit: int, with_unnotified: bool = False) -> list:
        rows = [(rid, f) for rid, f in self.forms[table].items() if (f.get("Status") or "") in _PENDING]
        rows.sort(key=lambda r: r[1]["_created"])
        out = [self._form(table, rid, f) for rid, f in rows[:limit]]
        return out + (self._unnotified(table, limit) if with_unnotified else [])

    def _unnotified(self, table: FormTable, limit: int) -> list:
        rows = [(rid, f) for rid, f in self.forms[table].items()
                if (f.get("Status") or "") in _DONE and not f.get("Notified")]
        rows.sort(key=lambda r: r[1]["_created"])
        return [self._form(table, rid, f) for rid, f in rows[:limit]]

    # -- forms (port) -------------------------------------------------------------------------
    # ``with_unnotified``: the unnotified records (Done/Rejected, Notified unticked) come in the
    # same call, after the pending ones (one list request in the Airtable adapter).
    def pending_redemptions(self, limit: int = 100, *, with_unnotified: bool = False) -> list[RedemptionForm]:
        failure = self._enter("pending_redemptions")
        return self._exit(failure, self._pending(FormTable.REDEMPTIONS, limit, with_unnotified))

    def pending_card_requests(self, limit: int = 100, *, with_unnotified: bool = False) -> list[CardRequestForm]:
        failure = self._enter("pending_card_requests")
        return self._exit(failure, self._pending(FormTable.CARD_REQUESTS, limit, with_unnotified))

    def pending_balance_checks(self, limit: int = 100, *, with_unnotified: bool = False) -> list[BalanceCheckForm]:
        failure = self._enter("pending_balance_checks")
        return self._exit(failure, self._pending(FormTable.BALANCE_CHECKS, limit, with_unnotified))

    def unnotified(self, table: FormTable, limit: int = 100) -> list:
        failure = self._enter("unnotified", table)
        return self._exit(failure, self._unnotified(table, limit))

    def update_forms(self, table: FormTable, updates: dict[str, dict]) -> dict[str, dict]:
        """Like Airtable: a link to a card record that does not exist fails the whole request
        (422 ROW_DOES_NOT_EXIST, nothing written); the answer is every updated record's fields,
        empty cells left out."""
        failure = self._enter("update_forms", table, copy.deepcopy(updates))
        for rid, fields in updates.items():
            if rid not in self.forms[table]:
                raise FatalError("airtable", f"NOT_FOUND: record {rid} not in {table.value}", status=404)
            self._check_fields(table.value, fields, written_by_giftsync=True)
            for name in _CARD_LINKS.get(table, ()):
                for card_id in fields.get(name) or []:
                    if card_id not in self.cards:
                        raise FatalError("airtable", f"ROW_DOES_NOT_EXIST: Record ID {card_id} does not exist "
                                         "in this table", status=422)
        answer: dict[str, dict] = {}
        for rid, fields in updates.items():
            self.forms[table][rid].update(copy.deepcopy(fields))
            answer[rid] = {k: copy.deepcopy(v) for k, v in self.forms[table][rid].items()
                           if not k.startswith("_") and not _empty_cell(v)}
        return self._exit(failure, answer)

    def recent_balance_checks(self, since: datetime) -> list[BalanceCheckForm]:
        failure = self._enter("recent_balance_checks", since)
        out = []
        for rid, f in self.forms[FormTable.BALANCE_CHECKS].items():
            when = _when(f.get("Processed At"))
            if (f.get("Status") or "") in _DONE and when is not None and when >= since:
                out.append(self._form(FormTable.BALANCE_CHECKS, rid, f))
        return self._exit(failure, out)

    # -- cards (port) -------------------------------------------------------------------------
    def card_by_hash(self, code_hash: str) -> MirrorCard | None:
        failure = self._enter("card_by_hash", code_hash)
        hit = next((c for c in self.cards.values() if c.code_hash and c.code_hash == code_hash), None)
        return self._exit(failure, copy.deepcopy(hit))

    def cards_by_hashes(self, code_hashes) -> dict[str, MirrorCard]:
        wanted = [h for h in dict.fromkeys(code_hashes) if h]
        failure = self._enter("cards_by_hashes", tuple(wanted))
        out: dict[str, MirrorCard] = {}
        for card in self.cards.values():
            if card.code_hash and card.code_hash in wanted and card.code_hash not in out:
                out[card.code_hash] = copy.deepcopy(card)
        return self._exit(failure, out)

    def card_by_shopify_id(self, shopify_id: str) -> MirrorCard | None:
        failure = self._enter("card_by_shopify_id", shopify_id)
        hit = next((c for c in self.cards.values() if c.shopify_id == shopify_id), None)
        return self._exit(failure, copy.deepcopy(hit))

    def card(self, record_id: str) -> MirrorCard | None:
        failure = self._enter("card", record_id)
        return self._exit(failure, copy.deepcopy(self.cards.get(record_id)))

    def cards_by_source_record(self, source_record: str) -> list[MirrorCard]:
        failure = self._enter("cards_by_source_record", source_record)
        return self._exit(failure, [copy.deepcopy(c) for c in self.cards.values() if c.source_record == source_record])

    def save_cards(self, cards: list[MirrorCard]) -> list[MirrorCard]:
        failure = self._enter("save_cards", [c.shopify_id for c in cards])
        out = []
        for card in cards:
            if card.balance is not None and not isinstance(card.balance.amount, Decimal):
                raise FatalError("airtable", "balance must be Decimal", status=422)
            existing = next((c for c in self.cards.values() if c.shopify_id == card.shopify_id), None)
            rid = existing.record_id if existing else (card.record_id if card.record_id in self.cards else self.new_id())
            saved = dataclasses.replace(card, record_id=rid)
            if existing is not None:
                # like the adapter: empty values are left out, so saving never clears a cell
                for f in dataclasses.fields(MirrorCard):
                    if getattr(saved, f.name) in (None, "", []) and getattr(existing, f.name) not in (None, "", []):
                        setattr(saved, f.name, getattr(existing, f.name))
            if saved.created is None:
                saved.created = existing.created if existing and existing.created else self.clock.now()
            self.cards[rid] = copy.deepcopy(saved)
            out.append(copy.deepcopy(saved))
        return self._exit(failure, out)

    def set_balances(self, balances: dict[str, tuple[Money, datetime]]) -> None:
        failure = self._enter("set_balances", copy.deepcopy(balances))
        for rid in balances:
            if rid not in self.cards:
                raise FatalError("airtable", f"NOT_FOUND: card {rid}", status=404)
        for rid, (balance, synced) in balances.items():
            self.cards[rid].balance = balance
            self.cards[rid].last_synced = synced
        return self._exit(failure, None)

    def iter_cards(self) -> Iterator[MirrorCard]:
        failure = self._enter("iter_cards")
        cards = [copy.deepcopy(c) for c in self.cards.values()]
        self._exit(failure, None)
        return iter(cards)

    def set_card_status(self, record_id: str, status: CardStatus) -> None:
        """Test helper (staff edit)."""
        self.cards[record_id].status = status

    # -- stores (port) ------------------------------------------------------------------------
    def stores(self) -> dict[str, Store]:
        failure = self._enter("stores")
        return self._exit(failure, copy.deepcopy(self.store_rows))

    # -- ledger (port) ------------------------------------------------------------------------
    def append_receipts(self, receipts: list[Receipt]) -> None:
        failure = self._enter("append_receipts", [r.receipt_id for r in receipts])
        for r in receipts:
            if not r.receipt_id:
                raise FatalError("airtable", "Receipt ID is required", status=422)
            self.receipts[r.receipt_id] = r
        return self._exit(failure, None)

    def receipts_for_card(self, card_record_id: str) -> list[Receipt]:
        failure = self._enter("receipts_for_card", card_record_id)
        rows = [r for r in self.receipts.values() if r.card_record_id == card_record_id]
        rows.sort(key=lambda r: r.time)
        return self._exit(failure, rows)

    # -- status (port) ------------------------------------------------------------------------
    def read_status(self, name: str) -> StatusRow | None:
        failure = self._enter("read_status", name)
        return self._exit(failure, copy.deepcopy(self.status.get(name)))

    def write_status(self, row: StatusRow) -> StatusRow:
        failure = self._enter("write_status", row.name)
        existing = self.status.get(row.name)
        saved = dataclasses.replace(row, record_id=existing.record_id if existing else (row.record_id or self.new_id()))
        self.status[row.name] = copy.deepcopy(saved)
        return self._exit(failure, copy.deepcopy(saved))

    # -- online orders registry (port) --------------------------------------------------------
    def order_entry(self, order_key: str) -> OrderEntry | None:
        failure = self._enter("order_entry", order_key)
        return self._exit(failure, copy.deepcopy(self.order_rows.get(order_key)))

    def order_entries(self, order_keys: list[str]) -> dict[str, OrderEntry]:
        failure = self._enter("order_entries", list(order_keys))
        return self._exit(failure, {k: copy.deepcopy(self.order_rows[k]) for k in order_keys if k in self.order_rows})

    def open_order_entries(self, kind: OrderKind, limit: int = 100) -> list[OrderEntry]:
        failure = self._enter("open_order_entries", kind)
        rows = [copy.deepcopy(e) for e in self.order_rows.values()
                if e.kind == kind and e.status in (OrderStatus.PROCESSING, OrderStatus.WAITING)]
        return self._exit(failure, rows[:limit])

    def save_order_entries(self, entries: list[OrderEntry]) -> list[OrderEntry]:
        failure = self._enter("save_order_entries", [e.order_key for e in entries])
        out = []
        for entry in entries:
            if not entry.order_key:
                raise FatalError("airtable", "Order Key is required", status=422)
            for rid in entry.card_ids:
                if rid not in self.cards:
                    raise FatalError("airtable", f"INVALID_VALUE_FOR_COLUMN: Cards wants card ids ({rid})", status=422)
            existing = self.order_rows.get(entry.order_key)
            saved = dataclasses.replace(entry, record_id=existing.record_id if existing else self.new_id(),
                                        card_ids=list(entry.card_ids), transactions=list(entry.transactions))
            self.order_rows[entry.order_key] = copy.deepcopy(saved)
            out.append(copy.deepcopy(saved))
        return self._exit(failure, out)


# -- Shopify orders -----------------------------------------------------------------------------

@dataclass
class _FakeOrder:
    order: ShopifyOrder
    issued: list[tuple[str, str, bool]]     # (card id, line id, visible)


class FakeShopifyOrders(_Failing):
    """Shopify orders over a ``FakeGiftCardLedger`` (the cards live there). Test helpers play
    the world: ``purchase`` (native gift-card lines issue cards, ``native_hidden`` keeps them
    invisible until ``release_native``), gift-card payments debit the cards, ``refund``
    credits one back. Every change bumps the order's ``updated_at``."""

    def __init__(self, ledger: FakeGiftCardLedger, clock: FakeClock | None = None) -> None:
        super().__init__()
        self.ledger = ledger
        self.clock = clock or ledger.clock
        self._orders: dict[str, _FakeOrder] = {}
        self._ids = itertools.count(820982911946154508)
        self._line_ids = itertools.count(466157049)
        self._tx_ids = itertools.count(389404469)
        self._number = itertools.count(1001)
        self.scopes = ["read_gift_cards", "write_gift_cards", "read_gift_card_transactions",
                       "write_gift_card_transactions", "read_orders", "write_orders"]

    # -- test helpers -------------------------------------------------------------------------
    def purchase(self, lines: list[dict], *, email: str = "", first_name: str = "", last_name: str = "",
                 gift_card_payments: list[tuple[str, str | Decimal]] = (), financial_status: str = "PAID",
                 native_hidden: bool = False, name: str | None = None, currency: str | None = None) -> ShopifyOrder:
        """``lines``: dicts with sku, quantity, price, is_gift_card, properties (line-item properties)."""
        now = self.clock.now()
        currency = (currency or self.ledger.currency).upper()
        oid = f"gid://shopify/Order/{next(self._ids)}"
        order = ShopifyOrder(id=oid, name=name or f"#{next(self._number)}", email=email,
                             financial_status=financial_status, customer_id=(
                                 f"gid://shopify/Customer/{abs(hash(email)) % 10**12}" if email else None),
                             customer_email=email, customer_first_name=first_name, customer_last_name=last_name,
                             created_at=now, updated_at=now)
        for raw in lines:
            price = raw.get("price")
            order.lines.append(OrderLine(
                id=f"gid://shopify/LineItem/{next(self._line_ids)}", name=raw.get("name") or raw.get("sku") or "Item",
                sku=raw.get("sku") or "", quantity=int(raw.get("quantity", 1)),
                is_gift_card=bool(raw.get("is_gift_card", False)),
                unit_price=None if price is None else Money.of(price, currency),
                properties=dict(raw.get("properties") or {})))
        entry = _FakeOrder(order, [])
        self._orders[oid] = entry
        for card_id, amount in gift_card_payments:
            self._pay(entry, card_id, Money.of(amount, currency))
        for line in order.lines:
            if line.is_gift_card and line.unit_price is not None:
                for _ in range(line.quantity):
                    card = self.ledger._new_card(_native_code(), line.unit_price, "", None, None)
                    card.card.customer_email = email
                    card.card.order_name = order.name
                    entry.issued.append((card.card.id, line.id, not native_hidden))
        return copy.deepcopy(order)

    def _pay(self, entry: _FakeOrder, card_id: str, amount: Money) -> None:
        c = self.ledger._cards[card_id]
        if c.card.balance.amount < amount.amount:
            raise ValueError("insufficient funds")
        self.ledger._move(c, -amount, "", None, "debit")
        self._tx(entry, "SALE", amount, card_id)

    def _tx(self, entry: _FakeOrder, kind: str, amount: Money, card_id: str | None) -> OrderPayment:
        payment = OrderPayment(id=f"gid://shopify/OrderTransaction/{next(self._tx_ids)}", kind=kind, status="SUCCESS",
                               gateway="gift_card" if card_id else "bogus", amount=amount, gift_card_id=card_id,
                               gift_card_last4=self.ledger._cards[card_id].card.last4 if card_id else "",
                               processed_at=self.clock.now())
        entry.order.payments.append(payment)
        if card_id and "gift_card" not in entry.order.gateways:
            entry.order.gateways.append("gift_card")
        entry.order.updated_at = self.clock.now()
        return payment

    def pay(self, order_id: str, card_id: str, amount: str | Decimal) -> None:
        entry = self._orders[order_id]
        self._pay(entry, card_id, Money.of(amount, self.ledger._cards[card_id].card.balance.currency))

    def refund(self, order_id: str, card_id: str, amount: str | Decimal) -> None:
        """A refund back onto a gift card: a credit on the card and a REFUND transaction."""
        entry = self._orders[order_id]
        c = self.ledger._cards[card_id]
        money = Money.of(amount, c.card.balance.currency)
        self.ledger._move(c, money, "", None, "credit")
        self._tx(entry, "REFUND", money, card_id)
        entry.order.financial_status = "PARTIALLY_REFUNDED"

    def release_native(self, order_id: str | None = None) -> None:
        for oid, entry in self._orders.items():
            if order_id is None or oid == order_id:
                entry.issued = [(cid, lid, True) for cid, lid, _ in entry.issued]

    def native_cards(self, order_id: str) -> list[str]:
        return [cid for cid, _, _ in self._orders[order_id].issued]

    def edit(self, order_id: str, **changes: Any) -> None:
        """Change fields of an order (bad data, status)."""
        entry = self._orders[order_id]
        for key, value in changes.items():
            setattr(entry.order, key, value)
        entry.order.updated_at = self.clock.now()

    def tags_of(self, order_id: str) -> list[str]:
        return list(self._orders[order_id].order.tags)

    # -- port ---------------------------------------------------------------------------------
    def orders(self, *, updated_after: datetime | None = None, financial_statuses=("paid",),
               without_tag: str | None = None, gift_card_payments_only: bool = False,
               after_cursor: str | None = None, page_size: int = 10) -> tuple[list[ShopifyOrder], str | None]:
        failure = self._enter("orders", updated_after, without_tag, gift_card_payments_only, after_cursor)
        statuses = {s.lower() for s in financial_statuses}
        rows = []
        for entry in self._orders.values():
            o = entry.order
            if updated_after is not None and o.updated_at < updated_after:
                continue
            if statuses and o.financial_status.lower() not in statuses:
                continue
            if without_tag and without_tag.lower() in {t.lower() for t in o.tags}:
                continue
            if gift_card_payments_only and "gift_card" not in o.gateways:
                continue
            rows.append(o)
        rows.sort(key=lambda o: (o.updated_at, o.id))
        start = int(after_cursor) if after_cursor else 0
        page = [copy.deepcopy(o) for o in rows[start:start + page_size]]
        nxt = str(start + page_size) if start + page_size < len(rows) else None
        return self._exit(failure, (page, nxt))

    def order(self, order_id: str) -> ShopifyOrder | None:
        failure = self._enter("order", order_id)
        entry = self._orders.get(order_id)
        return self._exit(failure, copy.deepcopy(entry.order) if entry else None)

    def tags_add(self, order_id: str, tags: list[str]) -> list[str]:
        failure = self._enter("tags_add", order_id, tuple(tags))
        entry = self._orders.get(order_id)
        if entry is None:
            raise FatalError("shopify", "tagsAdd refused: Order does not exist")
        for tag in tags:
            if tag.lower() not in {t.lower() for t in entry.order.tags}:
                entry.order.tags.append(tag)
        entry.order.tags.sort(key=str.lower)
        entry.order.updated_at = self.clock.now()
        return self._exit(failure, list(entry.order.tags))

    def cards_for_order(self, order_id: str, created_after: datetime) -> list[IssuedCard]:
        failure = self._enter("cards_for_order", order_id)
        entry = self._orders.get(order_id)
        out = []
        for cid, lid, visible in (entry.issued if entry else []):
            if visible:
                out.append(IssuedCard(card=copy.deepcopy(self.ledger._cards[cid].card), order_id=order_id,
                                      line_item_id=lid))
        return self._exit(failure, out)

    def access_scopes(self) -> list[str]:
        failure = self._enter("access_scopes")
        return self._exit(failure, sorted(self.scopes))


_native_counter = itertools.count(1)


def _native_code() -> str:
    """Shopify's own code for a card sold through checkout (never shown to giftsync)."""
    return f"NATIVE{next(_native_counter):010d}"


__all__ = ["FakeCardBook", "FakeClock", "FakeGiftCardLedger", "FakeMessenger", "FakeShopifyOrders"]
