"""``AirtableCardBook``: the CardBook port over pyairtable 3.5.

Requests per operation (n = records written):

- ``pending_*``, ``unnotified``, ``recent_balance_checks``, ``cards_by_source_record``:
  one list request (one more per further 100 matching records); ``pending_*(...,
  with_unnotified=True)`` brings the unnotified records in the same request;
- ``card_by_hash``, ``card_by_shopify_id``, ``card``, ``read_status``: one request;
- ``cards_by_hashes``: one list request per ``HASHES_PER_LOOKUP`` (50) hashes;
- ``update_forms``, ``set_balances``, ``save_cards``, ``append_receipts``: ⌈n/10⌉ requests;
- ``write_status``: one request (an upsert on Name);
- ``stores``: one request per ``stores_ttl`` seconds (cached);
- ``receipts_for_card``: two (the card's masked code, then the receipts filtered by it).

Retries (see ``client``): reads and the idempotent writes — updates of absolute values
(``update_forms``, ``set_balances``, ``write_status``) and upserts on a key (``save_cards``
on Shopify ID, ``append_receipts`` on Receipt ID) — are retried by the adapter a bounded
number of times (``retries``, default 2, with backoff 0.2 s, 0.4 s) after a 5xx, a timeout or
a reset; only then do they raise ``RetriableError`` (reads) or ``AmbiguousError``
(writes). Creates of records are never retried blindly — and this adapter creates records
only through upserts, so nothing it sends is unsafe to repeat. A 429 pauses the shared
budget and raises ``RetriableError`` at once.
"""
from __future__ import annotations

import contextlib
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Iterator

from pyairtable.formulas import AND, BLANK, EQ, IS_AFTER, NOT, OR, RECORD_ID, Field, Formula

from ...domain.cards import MirrorCard
from ...domain.forms import BalanceCheckForm, CardRequestForm, RedemptionForm, Store
from ...domain.ledger import Receipt
from ...domain.money import Money
from ...domain.outcomes import FormStatus
from ...errors import FatalError
from ...ports import FormTable, OrderEntry, OrderKind, OrderStatus, StatusRow
from . import mapping, names
from .client import CLASSIFIED, BudgetedSession, GiftsyncApi, classify
from .names import CardF, FormF, OrderF, ReceiptF, StatusF

PAGE = 100
BATCH = 10
HASHES_PER_LOOKUP = 50     # one OR(...) formula of 50 hashes stays far below URL/formula limits
KEYS_PER_LOOKUP = 50       # the same for registry keys (``purchase:<order id>``: shorter still)

_READERS: dict[FormTable, Callable[[dict], Any]] = {
    FormTable.REDEMPTIONS: mapping.redemption_from_record,
    FormTable.CARD_REQUESTS: mapping.card_request_from_record,
    FormTable.BALANCE_CHECKS: mapping.balance_check_from_record,
}


def _default_budget() -> Any:
    from ...runtime.budget import RateBudget
    return RateBudget("airtable", rate=5, capacity=5)


def _is_record_id(value: str) -> bool:
    return isinstance(value, str) and len(value) == 17 and value.startswith("rec") and value.isalnum()


def pending_formula() -> Formula:
    status = Field(FormF.STATUS)
    return OR(EQ(status, BLANK()), EQ(status, FormStatus.NEW.value), EQ(status, FormStatus.PROCESSING.value))


def unnotified_formula() -> Formula:
    status = Field(FormF.STATUS)
    return AND(OR(EQ(status, FormStatus.DONE.value), EQ(status, FormStatus.REJECTED.value)),
               NOT(Field(FormF.NOTIFIED)))


def pending_or_unnotified_formula() -> Formula:
    """One list request for a poll: the records to process and the finished ones whose email
    did not go out."""
    return OR(pending_formula(), unnotified_formula())


def _is_pending(record: dict) -> bool:
    return (record.get("fields", {}).get(FormF.STATUS) or "") in ("", FormStatus.NEW.value,
                                                                   FormStatus.PROCESSING.value)


def _oldest_first(records: list[dict]) -> list[dict]:
    """By creation time; stable, so records of the same millisecond keep the server's order."""
    return sorted(records, key=lambda r: r.get("createdTime") or "")


class AirtableCardBook:
    """The Airtable base through pyairtable (see the module docstring for request counts
    and retries). Thread-safe: one instance serves every prong thread.

    ``schema`` is the parsed config/base_schema.json (default: that file); form updates are
    checked against it before anything is sent.
    """

    def __init__(self, token: str, base_id: str, *, endpoint_url: str | None = None,
                 timeout: tuple[float, float] = (3.05, 15), budget: Any = None, schema: dict | None = None,
                 currency: str = "USD", retries: int = 2, backoff: float = 0.2,
                 rate_limit_pause: float = 30.0, stores_ttl: float = 30.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if not token:
            raise ValueError("an Airtable token is required")
        if not base_id:
            raise ValueError("an Airtable base id is required")
        from .schema import load_base_schema
        self._token = token
        self.base_id = base_id
        self.currency = currency.upper()
        self.budget = budget if budget is not None else _default_budget()
        self.session = BudgetedSession(self.budget, retries=retries, backoff=backoff,
                                       rate_limit_pause=rate_limit_pause)
        self.api = GiftsyncApi(token, endpoint_url=endpoint_url, timeout=timeout, session=self.session)
        self.schema = schema if schema is not None else load_base_schema()
        self._fields = {t["name"]: {f["name"] for f in t["fields"]} for t in self.schema["tables"]}
        self._tables: dict[str, Any] = {}
        self._stores_ttl = stores_ttl
        self._monotonic = monotonic
        self._stores_lock = threading.Lock()
        self._stores: tuple[float, dict[str, Store]] | None = None

    def __repr__(self) -> str:
        return f"<AirtableCardBook base={self.base_id}>"

    # -- plumbing ---------------------------------------------------------------------------
    def table(self, name: str):
        table = self._tables.get(name)
        if table is None:
            table = self._tables[name] = self.api.table(self.base_id, name)
        return table

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except CLASSIFIED as exc:
            raise classify(exc, token=self._token, what=what) from None

    def _all(self, table: str, what: str, **options: Any) -> list[dict]:
        with self._errors(what):
            return self.table(table).all(page_size=PAGE, **options)

    def _first(self, table: str, what: str, formula: Formula) -> dict | None:
        with self._errors(what):
            return self.table(table).first(formula=formula)

    def _check_fields(self, table: str, fields: Iterable[str]) -> None:
        known = self._fields.get(table, set())
        unknown = sorted(set(fields) - known)
        if unknown:   # what Airtable would answer, without spending a request on it
            raise FatalError("airtable", f"UNKNOWN_FIELD_NAME: {table} has no field(s) {unknown} "
                             "in config/base_schema.json", status=422)

    # -- forms ------------------------------------------------------------------------------
    def _pending(self, table: FormTable, limit: int, with_unnotified: bool = False) -> list:
        if not with_unnotified:
            records = _oldest_first(self._all(table.value, f"pending {table.value}", formula=pending_formula()))
            return [_READERS[table](r) for r in records[:limit]]
        records = _oldest_first(self._all(table.value, f"pending {table.value}",
                                          formula=pending_or_unnotified_formula()))
        pending = [r for r in records if _is_pending(r)][:limit]
        finished = [r for r in records if not _is_pending(r)][:limit]
        return [_READERS[table](r) for r in pending + finished]

    def pending_redemptions(self, limit: int = 100, *, with_unnotified: bool = False) -> list[RedemptionForm]:
        """Records with Status blank/New or Processing (to resume), oldest first: one list
        request (a further one per 100 more), sorted here by creation time. ``with_unnotified``:
        the same request also brings the Done/Rejected records whose Notified box is unticked
        (after the pending ones; up to ``limit`` of each)."""
        return self._pending(FormTable.REDEMPTIONS, limit, with_unnotified)

    def pending_card_requests(self, limit: int = 100, *, with_unnotified: bool = False) -> list[CardRequestForm]:
        return self._pending(FormTable.CARD_REQUESTS, limit, with_unnotified)

    def pending_balance_checks(self, limit: int = 100, *, with_unnotified: bool = False) -> list[BalanceCheckForm]:
        return self._pending(FormTable.BALANCE_CHECKS, limit, with_unnotified)

    def unnotified(self, table: FormTable, limit: int = 100) -> list:
        table = FormTable(table)
        records = _oldest_first(self._all(table.value, f"unnotified {table.value}", formula=unnotified_formula()))
        return [_READERS[table](r) for r in records[:limit]]

    def update_forms(self, table: FormTable, updates: dict[str, dict]) -> dict[str, dict]:
        """{record_id: {field name: value}}; values may be domain types (Money, datetime,
        enums, lists of record ids); ``None`` clears a cell. Batched by 10; an update of
        absolute values, hence retried after an ambiguous failure. Returns Airtable's answer,
        {record_id: fields} (JSON values by field name; links as lists of record ids)."""
        table = FormTable(table)
        records = []
        for record_id, values in updates.items():
            self._check_fields(table.value, values)
            records.append({"id": record_id, "fields": mapping.cells(values)})
        if not records:
            return {}
        with self._errors(f"update {table.value}"):
            answer = self.table(table.value).batch_update(records)
        return {r["id"]: dict(r.get("fields") or {}) for r in answer or []}

    def recent_balance_checks(self, since: datetime) -> list[BalanceCheckForm]:
        """Checks Done/Rejected with Processed At >= ``since`` (one list request). Airtable
        keeps milliseconds, so ">= since" is sent as "after since minus 1 ms"."""
        since = since.astimezone(timezone.utc)
        since = since.replace(microsecond=since.microsecond // 1000 * 1000) - timedelta(milliseconds=1)
        status = Field(FormF.STATUS)
        formula = AND(OR(EQ(status, FormStatus.DONE.value), EQ(status, FormStatus.REJECTED.value)),
                      IS_AFTER(Field(FormF.PROCESSED_AT), since))
        records = _oldest_first(self._all(names.BALANCE_CHECKS, "recent balance checks", formula=formula))
        return [mapping.balance_check_from_record(r) for r in records]

    # -- cards ------------------------------------------------------------------------------
    def _card(self, record: dict | None) -> MirrorCard | None:
        return None if record is None else mapping.card_from_record(record, self.currency)

    def card_by_hash(self, code_hash: str) -> MirrorCard | None:
        if not code_hash:
            return None
        return self._card(self._first(names.CARDS, "card by hash", EQ(Field(CardF.CODE_HASH), code_hash)))

    def cards_by_hashes(self, code_hashes: Iterable[str]) -> dict[str, MirrorCard]:
        """{hash: card} for the hashes that have a card: one list request per 50 hashes, the
        formula ``OR({Code Hash}='…', …)`` built and escaped by pyairtable.formulas. When two
        rows carry the same hash the oldest wins (as ``card_by_hash`` would pick one)."""
        return self._by_keys(names.CARDS, "cards by hash", CardF.CODE_HASH, code_hashes, HASHES_PER_LOOKUP,
                             lambda record: mapping.card_from_record(record, self.currency),
                             lambda card: card.code_hash)

    def card_by_shopify_id(self, shopify_id: str) -> MirrorCard | None:
        if not shopify_id:
            return None
        return self._card(self._first(names.CARDS, "card by Shopify ID", EQ(Field(CardF.SHOPIFY_ID), shopify_id)))

    def card(self, record_id: str) -> MirrorCard | None:
        """By record id, through a filter on RECORD_ID() so that an id of another table is
        not returned (a GET of one record does not check its table)."""
        if not _is_record_id(record_id):
            return None
        return self._card(self._first(names.CARDS, "card", EQ(RECORD_ID(), record_id)))

    def cards_by_source_record(self, source_record: str) -> list[MirrorCard]:
        if not source_record:
            return []
        records = self._all(names.CARDS, "cards by source record",
                            formula=EQ(Field(CardF.SOURCE_RECORD), source_record))
        return [mapping.card_from_record(r, self.currency) for r in _oldest_first(records)]

    def save_cards(self, cards: list[MirrorCard]) -> list[MirrorCard]:
        """Upsert on Shopify ID, 10 a request (``record_id`` is not needed: the key finds the
        row, and a row deleted by staff is simply created again). Empty values are not sent,
        so saving never clears a cell. Idempotent."""
        if not cards:
            return []
        records = [{"fields": mapping.card_fields(card)} for card in cards]
        with self._errors("save cards"):
            result = self.table(names.CARDS).batch_upsert(records, key_fields=[CardF.SHOPIFY_ID])
        return [mapping.card_from_record(r, self.currency) for r in result["records"]]

    def set_balances(self, balances: dict[str, tuple[Money, datetime]]) -> None:
        """Balance, Currency and Last Synced of each card; 10 a request; idempotent."""
        records = [{"id": rid, "fields": mapping.balance_fields(money, at)} for rid, (money, at) in balances.items()]
        if not records:
            return
        with self._errors("set balances"):
            self.table(names.CARDS).batch_update(records)

    def iter_cards(self) -> Iterator[MirrorCard]:
        """Every card, one request per 100."""
        pages = self.table(names.CARDS).iterate(page_size=PAGE)
        while True:
            with self._errors("iterate cards"):
                page = next(pages, None)
            if page is None:
                return
            for record in page:
                yield mapping.card_from_record(record, self.currency)

    # -- stores -----------------------------------------------------------------------------
    def stores(self) -> dict[str, Store]:
        """All stores by record id; cached for ``stores_ttl`` seconds (one request then)."""
        with self._stores_lock:
            now = self._monotonic()
            if self._stores is not None and now - self._stores[0] < self._stores_ttl:
                return dict(self._stores[1])
            records = self._all(names.STORES, "stores")
            stores = {r["id"]: mapping.store_from_record(r) for r in records}
            self._stores = (now, stores)
            return dict(stores)

    def forget_stores(self) -> None:
        with self._stores_lock:
            self._stores = None

    # -- ledger -----------------------------------------------------------------------------
    def append_receipts(self, receipts: list[Receipt]) -> None:
        """Upsert on Receipt ID, 10 a request: writing the same receipts again changes
        nothing (and a retry after an ambiguous failure is therefore safe)."""
        unique: dict[str, dict] = {}
        for receipt in receipts:
            unique[receipt.receipt_id] = mapping.receipt_fields(receipt)
        if not unique:
            return
        records = [{"fields": fields} for fields in unique.values()]
        with self._errors("append receipts"):
            self.table(names.RECEIPTS).batch_upsert(records, key_fields=[ReceiptF.RECEIPT_ID])

    def receipts_for_card(self, card_record_id: str) -> list[Receipt]:
        """The card's receipts, oldest first. A link cell evaluates to the linked record's
        primary value in formulas (not its id), so the list is filtered on the card's masked
        code and then exactly on the link here: two requests."""
        card = self.card(card_record_id)
        if card is None:
            return []
        masked = card.masked
        formula = OR(EQ(Field(ReceiptF.CARD), masked), EQ(Field(ReceiptF.CARD_MASKED), masked))
        records = self._all(names.RECEIPTS, "receipts for card", formula=formula)
        receipts = [mapping.receipt_from_record(r, self.currency) for r in records
                    if card_record_id in (r.get("fields", {}).get(ReceiptF.CARD) or [])]
        return sorted(receipts, key=lambda r: r.time)

    # -- status -----------------------------------------------------------------------------
    def read_status(self, name: str) -> StatusRow | None:
        record = self._first(names.STATUS, "read status", EQ(Field(StatusF.NAME), name))
        return None if record is None else mapping.status_from_record(record)

    def write_status(self, row: StatusRow) -> StatusRow:
        """One request, an upsert on Name: never a second row, whether or not ``record_id`` is
        known. Every cell is written (empty ones cleared)."""
        fields = mapping.status_fields(row)
        with self._errors("write status"):
            result = self.table(names.STATUS).batch_upsert([{"fields": fields}], key_fields=[StatusF.NAME])
        record = result["records"][0]
        return mapping.status_from_record(record)

    # -- online orders registry -----------------------------------------------------------
    def order_entry(self, order_key: str) -> OrderEntry | None:
        """One request (a formula on Order Key, escaped by pyairtable)."""
        if not order_key:
            return None
        record = self._first(names.ONLINE_ORDERS, "order entry", EQ(Field(OrderF.ORDER_KEY), order_key))
        return None if record is None else mapping.order_entry_from_record(record)

    def order_entries(self, order_keys: list[str]) -> dict[str, OrderEntry]:
        """One list request per 50 keys, the formula ``OR({Order Key}='…', …)`` escaped by
        pyairtable.formulas. Two rows of one key (never written so: the key is the upsert key):
        the oldest wins, as ``order_entry`` would pick one."""
        return self._by_keys(names.ONLINE_ORDERS, "order entries", OrderF.ORDER_KEY, order_keys, KEYS_PER_LOOKUP,
                             mapping.order_entry_from_record, lambda entry: entry.order_key)

    def _by_keys(self, table: str, what: str, field: str, keys: Iterable[str], per_request: int,
                 parse: Callable[[dict], Any], key_of: Callable[[Any], str]) -> dict[str, Any]:
        """{key: parsed row} for the keys that have a row in ``table``: one list request per
        ``per_request`` keys, ``OR({field}='…', …)`` built and escaped by pyairtable.formulas; of
        two rows with one key the oldest wins."""
        wanted = [k for k in dict.fromkeys(keys) if k]
        out: dict[str, Any] = {}
        for start in range(0, len(wanted), per_request):
            chunk = wanted[start:start + per_request]
            terms = [EQ(Field(field), k) for k in chunk]
            formula = terms[0] if len(terms) == 1 else OR(*terms)
            for record in _oldest_first(self._all(table, what, formula=formula)):
                item = parse(record)
                key = key_of(item)
                if key in chunk and key not in out:
                    out[key] = item
        return out

    def open_order_entries(self, kind: OrderKind, limit: int = 100) -> list[OrderEntry]:
        """Rows of ``kind`` in Processing or Waiting, oldest first (one list request per 100)."""
        status = Field(OrderF.STATUS)
        formula = AND(EQ(Field(OrderF.KIND), OrderKind(kind).value),
                      OR(EQ(status, OrderStatus.PROCESSING.value), EQ(status, OrderStatus.WAITING.value)))
        records = _oldest_first(self._all(names.ONLINE_ORDERS, "open order entries", formula=formula))
        return [mapping.order_entry_from_record(r) for r in records[:limit]]

    def save_order_entries(self, entries: list[OrderEntry]) -> list[OrderEntry]:
        """Upsert on Order Key, 10 a request; every cell written. Idempotent."""
        if not entries:
            return []
        unique: dict[str, dict] = {}
        for entry in entries:
            unique[entry.order_key] = mapping.order_entry_fields(entry)
        records = [{"fields": fields} for fields in unique.values()]
        with self._errors("save order entries"):
            result = self.table(names.ONLINE_ORDERS).batch_upsert(records, key_fields=[OrderF.ORDER_KEY])
        return [mapping.order_entry_from_record(r) for r in result["records"]]

    # -- schema (doctor / init-base) --------------------------------------------------------
    def base(self):
        return self.api.base(self.base_id)

    def check_schema(self):
        """Compare the base with the configured schema (one request)."""
        from .schema import check_schema
        return check_schema(self.base(), self.schema, token=self._token)

    def init_base(self, progress=None):
        """Create what the base lacks of the configured schema; safe to run again.
        ``progress(step, total, message)`` after each creation."""
        from .schema import ensure_schema
        return ensure_schema(self.base(), self.schema, token=self._token, progress=progress)

    def whoami(self) -> dict:
        """The token's user id (and scopes, which Airtable lists for OAuth tokens only)."""
        with self._errors("whoami"):
            return dict(self.api.whoami())

    # -- housekeeping -----------------------------------------------------------------------
    @property
    def requests_sent(self) -> int:
        """HTTP attempts made so far (retries included)."""
        return self.session.sent
