"""Airtable records ↔ domain objects. Pure functions, no I/O.

Cell conventions (REST "V1" cell format, see reference/airtable.md §6):
- currency/number cells are JSON numbers: read as ``Decimal(str(x))`` with the currency
  from the row's Currency field; written as an int or a float whose shortest repr is the
  exact decimal (checked — a value that would not survive the trip raises ValueError);
- dates are ``YYYY-MM-DD``; dateTimes are UTC ISO with milliseconds and ``Z``;
- links are lists of record ids; a checkbox is ``True`` or absent;
- Airtable omits empty cells, so every read has a default; on write the card and receipt
  mappings omit empty values (they never clear a cell), while form and status updates
  send ``None`` for what the caller wants cleared.
"""
from __future__ import annotations

import json
from datetime import date, datetime, timezone
from decimal import Decimal
from enum import Enum
from typing import Any, Mapping

from ...domain.cards import CardKind, CardSource, CardStatus, MirrorCard
from ...domain.codes import mask
from ...domain.forms import BalanceCheckForm, CardRequestForm, RedemptionForm, Store
from ...domain.ledger import Activity, Channel, Receipt
from ...domain.money import Money
from ...ports import OrderEntry, OrderKind, OrderStatus, StatusRow
from .names import CardF, FormF, OrderF, ReceiptF, StatusF, StoreF

EXTRA_PREFIX = "extra: "


# -- cells -------------------------------------------------------------------------------
def number_cell(value: Decimal | Money | int) -> int | float:
    """A Decimal as a JSON number that reads back as the same Decimal."""
    if isinstance(value, Money):
        value = value.amount
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        raise TypeError(f"expected a Decimal, got {type(value).__name__}")
    value = Decimal(value)
    if not value.is_finite():
        raise ValueError("amount must be finite")
    if value == value.to_integral_value():
        return int(value)
    as_float = float(value)
    if Decimal(repr(as_float)) != value.normalize():
        raise ValueError(f"amount {value} cannot be sent as a JSON number without loss")
    return as_float


def decimal_from_cell(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float, Decimal)):
        return Decimal(str(value))
    if isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except ArithmeticError:
            return None
        return result if result.is_finite() else None
    return None


def money_from_cell(value: Any, currency: str) -> Money | None:
    amount = decimal_from_cell(value)
    return None if amount is None else Money(amount, currency.upper())


def datetime_cell(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("datetimes written to Airtable must be timezone-aware")
    value = value.astimezone(timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def datetime_from_cell(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def date_from_cell(value: Any) -> date | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def cell(value: Any) -> Any:
    """A Python/domain value as a cell value (for fields the caller names itself)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (Money, Decimal)):
        return number_cell(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        raise TypeError("floats are not written to Airtable; use Decimal or Money")
    if isinstance(value, datetime):
        return datetime_cell(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [cell(v) for v in value]
    raise TypeError(f"cannot write a {type(value).__name__} to Airtable")


def cells(values: Mapping[str, Any]) -> dict[str, Any]:
    return {name: cell(v) for name, v in values.items()}


def _text(fields: Mapping[str, Any], name: str) -> str:
    value = fields.get(name)
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def _links(fields: Mapping[str, Any], name: str) -> list[str]:
    value = fields.get(name)
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _raw_number(value: Any) -> Any:
    """Form amounts stay untrusted but never become floats in the domain."""
    if isinstance(value, float):
        return Decimal(str(value)) if value == value and abs(value) != float("inf") else value
    return value


def _enum(kind: type[Enum], value: Any, blank: Enum, unknown: Enum) -> Any:
    if value in (None, ""):
        return blank
    try:
        return kind(value)
    except ValueError:
        return unknown


def _put(out: dict[str, Any], name: str, value: Any) -> None:
    """Set a cell unless the value is empty (Airtable would read it back as absent anyway)."""
    if value is None or value == "" or value == []:
        return
    out[name] = cell(value)


def created_time(record: Mapping[str, Any]) -> datetime | None:
    return datetime_from_cell(record.get("createdTime"))


# -- stores --------------------------------------------------------------------------------
def store_from_record(record: Mapping[str, Any]) -> Store:
    f = record.get("fields", {})
    return Store(record_id=record["id"], name=_text(f, StoreF.NAME), email=_text(f, StoreF.EMAIL).strip(),
                 active=bool(f.get(StoreF.ACTIVE, False)))


# -- cards ---------------------------------------------------------------------------------
def card_from_record(record: Mapping[str, Any], default_currency: str) -> MirrorCard:
    f = record.get("fields", {})
    currency = (_text(f, CardF.CURRENCY).strip() or default_currency).upper()
    stores = _links(f, CardF.STORE)
    return MirrorCard(
        record_id=record["id"],
        shopify_id=_text(f, CardF.SHOPIFY_ID),
        last4=_text(f, CardF.LAST4),
        balance=money_from_cell(f.get(CardF.BALANCE), currency) or Money.zero(currency),
        code_hash=_text(f, CardF.CODE_HASH) or None,
        initial_value=money_from_cell(f.get(CardF.INITIAL_VALUE), currency),
        # a status nobody knows must not look redeemable
        status=_enum(CardStatus, f.get(CardF.STATUS), CardStatus.ACTIVE, CardStatus.DISABLED),
        kind=_enum(CardKind, f.get(CardF.KIND), CardKind.DIGITAL, CardKind.DIGITAL),
        source=_enum(CardSource, f.get(CardF.SOURCE), CardSource.STORE_REQUEST, CardSource.IMPORTED),
        recipient_name=_text(f, CardF.RECIPIENT_NAME),
        recipient_email=_text(f, CardF.RECIPIENT_EMAIL),
        purchaser_name=_text(f, CardF.PURCHASER_NAME),
        purchaser_email=_text(f, CardF.PURCHASER_EMAIL),
        store_record_id=stores[0] if stores else None,
        order=_text(f, CardF.ORDER),
        expires_on=date_from_cell(f.get(CardF.EXPIRES_ON)),
        created=datetime_from_cell(f.get(CardF.CREATED)),
        last_synced=datetime_from_cell(f.get(CardF.LAST_SYNCED)),
        opened_at=datetime_from_cell(f.get(CardF.OPENED_AT)),
        source_record=_text(f, CardF.SOURCE_RECORD),
    )


def card_fields(card: MirrorCard) -> dict[str, Any]:
    """The cells of a card row. Empty values are left out: saving never clears a cell."""
    if not card.shopify_id:
        raise ValueError("a card needs its Shopify ID (the upsert key)")
    if card.initial_value is not None and card.initial_value.currency != card.balance.currency:
        raise ValueError("initial value and balance must have the same currency")
    out: dict[str, Any] = {}
    _put(out, CardF.CARD, mask(card.last4) if card.last4 else "")
    _put(out, CardF.LAST4, card.last4.upper())
    _put(out, CardF.CODE_HASH, card.code_hash)
    _put(out, CardF.SHOPIFY_ID, card.shopify_id)
    out[CardF.BALANCE] = number_cell(card.balance)
    _put(out, CardF.INITIAL_VALUE, card.initial_value)
    _put(out, CardF.CURRENCY, card.balance.currency)
    _put(out, CardF.STATUS, card.status)
    _put(out, CardF.KIND, card.kind)
    _put(out, CardF.SOURCE, card.source)
    _put(out, CardF.RECIPIENT_NAME, card.recipient_name)
    _put(out, CardF.RECIPIENT_EMAIL, card.recipient_email)
    _put(out, CardF.PURCHASER_NAME, card.purchaser_name)
    _put(out, CardF.PURCHASER_EMAIL, card.purchaser_email)
    _put(out, CardF.STORE, [card.store_record_id] if card.store_record_id else None)
    _put(out, CardF.ORDER, card.order)
    _put(out, CardF.EXPIRES_ON, card.expires_on)
    _put(out, CardF.CREATED, card.created)
    _put(out, CardF.LAST_SYNCED, card.last_synced)
    _put(out, CardF.OPENED_AT, card.opened_at)
    _put(out, CardF.SOURCE_RECORD, card.source_record)
    return out


def balance_fields(balance: Money, synced_at: datetime) -> dict[str, Any]:
    return {CardF.BALANCE: number_cell(balance), CardF.CURRENCY: balance.currency,
            CardF.LAST_SYNCED: datetime_cell(synced_at)}


# -- forms ---------------------------------------------------------------------------------
def _form_cells(record: Mapping[str, Any]) -> dict[str, Any]:
    """What every form row has: its id, Status, Outcome, Notified, created and Processed At."""
    f = record.get("fields", {})
    return dict(record_id=record["id"], status=_text(f, FormF.STATUS), outcome=_text(f, FormF.OUTCOME),
                notified=bool(f.get(FormF.NOTIFIED, False)), created=created_time(record),
                processed_at=datetime_from_cell(f.get(FormF.PROCESSED_AT)))


def _claimed_form_cells(record: Mapping[str, Any], cards: str) -> dict[str, Any]:
    """A form worked on under a claim (redemption, card request): the common cells plus Attempt,
    Reason, card and store links, Staff and the raw Amount."""
    f = record.get("fields", {})
    return dict(_form_cells(record), attempt=_text(f, FormF.ATTEMPT), reason=_text(f, FormF.REASON),
                card_ids=_links(f, cards), store_ids=_links(f, FormF.STORE), staff=_text(f, FormF.STAFF),
                amount_raw=_raw_number(f.get(FormF.AMOUNT)))


def redemption_from_record(record: Mapping[str, Any]) -> RedemptionForm:
    f = record.get("fields", {})
    return RedemptionForm(
        **_claimed_form_cells(record, FormF.CARD),
        code_raw=f.get(FormF.CODE),
        note=_text(f, FormF.NOTE),
        balance_after=decimal_from_cell(f.get(FormF.BALANCE_AFTER)),
    )


def card_request_from_record(record: Mapping[str, Any]) -> CardRequestForm:
    f = record.get("fields", {})
    return CardRequestForm(
        **_claimed_form_cells(record, FormF.CARDS),
        quantity_raw=f.get(FormF.QUANTITY),
        kind=_text(f, FormF.KIND),
        serials_raw=_text(f, FormF.SERIALS),
        recipient_name=_text(f, FormF.RECIPIENT_NAME),
        recipient_email=_text(f, FormF.RECIPIENT_EMAIL),
        purchaser_name=_text(f, FormF.PURCHASER_NAME),
        purchaser_email=_text(f, FormF.PURCHASER_EMAIL),
        is_gift=bool(f.get(FormF.IS_GIFT, False)),
        message=_text(f, FormF.MESSAGE),
    )


def balance_check_from_record(record: Mapping[str, Any]) -> BalanceCheckForm:
    f = record.get("fields", {})
    return BalanceCheckForm(
        **_form_cells(record),
        code_raw=f.get(FormF.CODE),
        email_raw=f.get(FormF.EMAIL),
    )


# -- receipts ------------------------------------------------------------------------------
def receipt_fields(receipt: Receipt) -> dict[str, Any]:
    if not receipt.receipt_id:
        raise ValueError("a receipt needs its Receipt ID (the idempotency key)")
    if receipt.amount and receipt.balance_after and receipt.amount.currency != receipt.balance_after.currency:
        raise ValueError("amount and balance after must have the same currency")
    out: dict[str, Any] = {ReceiptF.RECEIPT_ID: receipt.receipt_id, ReceiptF.TIME: datetime_cell(receipt.time),
                           ReceiptF.ACTIVITY: cell(receipt.activity), ReceiptF.CHANNEL: cell(receipt.channel)}
    _put(out, ReceiptF.CARD, [receipt.card_record_id] if receipt.card_record_id else None)
    _put(out, ReceiptF.CARD_MASKED, receipt.card_masked)
    if receipt.amount is not None:
        out[ReceiptF.AMOUNT] = number_cell(receipt.amount)
    if receipt.balance_after is not None:
        out[ReceiptF.BALANCE_AFTER] = number_cell(receipt.balance_after)
    _put(out, ReceiptF.CURRENCY, receipt.currency)
    _put(out, ReceiptF.STORE, [receipt.store_record_id] if receipt.store_record_id else None)
    _put(out, ReceiptF.SOURCE, receipt.source)
    _put(out, ReceiptF.OUTCOME, receipt.outcome)
    _put(out, ReceiptF.CORRELATION_ID, receipt.correlation_id)
    details = receipt.details
    if receipt.extra:
        details = _with_last_line(details, EXTRA_PREFIX + json.dumps(receipt.extra, sort_keys=True, default=str,
                                                                     ensure_ascii=False))
    _put(out, ReceiptF.DETAILS, details)
    return out


def _with_last_line(details: str, line: str) -> str:
    """``details`` with ``line`` appended as its last line (``line`` alone when there are none)."""
    return f"{details}\n{line}" if details else line


def _last_line(text: str, prefix: str) -> tuple[str, str | None]:
    """(the text before, what follows ``prefix``) when the last line starts with ``prefix``; else (text, None)."""
    head, sep, last = text.rpartition("\n")
    candidate = last if sep else text
    if candidate.startswith(prefix):
        return (head if sep else ""), candidate[len(prefix):]
    return text, None


def _split_details(text: str) -> tuple[str, dict]:
    head, payload = _last_line(text, EXTRA_PREFIX)
    if payload is not None:
        try:
            extra = json.loads(payload)
        except ValueError:
            return text, {}
        if isinstance(extra, dict):
            return head, extra
    return text, {}


def receipt_from_record(record: Mapping[str, Any], default_currency: str) -> Receipt:
    f = record.get("fields", {})
    currency = (_text(f, ReceiptF.CURRENCY).strip() or default_currency).upper()
    cards = _links(f, ReceiptF.CARD)
    stores = _links(f, ReceiptF.STORE)
    details, extra = _split_details(_text(f, ReceiptF.DETAILS))
    return Receipt(
        receipt_id=_text(f, ReceiptF.RECEIPT_ID),
        time=datetime_from_cell(f.get(ReceiptF.TIME)) or created_time(record) or datetime.fromtimestamp(0, timezone.utc),
        activity=_enum(Activity, f.get(ReceiptF.ACTIVITY), Activity.ALERT, Activity.ALERT),
        channel=_enum(Channel, f.get(ReceiptF.CHANNEL), Channel.SYSTEM, Channel.SYSTEM),
        card_record_id=cards[0] if cards else None,
        card_masked=_text(f, ReceiptF.CARD_MASKED) or None,
        amount=money_from_cell(f.get(ReceiptF.AMOUNT), currency),
        balance_after=money_from_cell(f.get(ReceiptF.BALANCE_AFTER), currency),
        store_record_id=stores[0] if stores else None,
        source=_text(f, ReceiptF.SOURCE),
        outcome=_text(f, ReceiptF.OUTCOME),
        correlation_id=_text(f, ReceiptF.CORRELATION_ID),
        details=details,
        extra=extra,
    )


# -- status --------------------------------------------------------------------------------
def status_from_record(record: Mapping[str, Any]) -> StatusRow:
    f = record.get("fields", {})
    return StatusRow(
        name=_text(f, StatusF.NAME),
        record_id=record["id"],
        state=_text(f, StatusF.STATE),
        holder=_text(f, StatusF.HOLDER),
        heartbeat=datetime_from_cell(f.get(StatusF.HEARTBEAT)),
        lease_until=datetime_from_cell(f.get(StatusF.LEASE_UNTIL)),
        cursor=_text(f, StatusF.CURSOR),
        last_run=datetime_from_cell(f.get(StatusF.LAST_RUN)),
        details=_text(f, StatusF.DETAILS),
    )


def status_fields(row: StatusRow) -> dict[str, Any]:
    """Every cell of the row, ``None`` for empty ones: the row is written whole (a lease
    released must lose its holder and lease-until)."""
    if not row.name:
        raise ValueError("a status row needs its name")
    return {
        StatusF.NAME: row.name,
        StatusF.STATE: row.state or None,
        StatusF.HOLDER: row.holder or None,
        StatusF.HEARTBEAT: datetime_cell(row.heartbeat) if row.heartbeat else None,
        StatusF.LEASE_UNTIL: datetime_cell(row.lease_until) if row.lease_until else None,
        StatusF.CURSOR: row.cursor or None,
        StatusF.LAST_RUN: datetime_cell(row.last_run) if row.last_run else None,
        StatusF.DETAILS: row.details or None,
    }


# -- online orders registry ----------------------------------------------------------------
TRANSACTIONS_PREFIX = "Transactions: "


def _split_transactions(text: str) -> tuple[str, list[str]]:
    head, payload = _last_line(text, TRANSACTIONS_PREFIX)
    if payload is not None:
        return head, [t for t in payload.split() if t]
    return text, []


def order_entry_from_record(record: Mapping[str, Any]) -> OrderEntry:
    f = record.get("fields", {})
    details, transactions = _split_transactions(_text(f, OrderF.DETAILS))
    return OrderEntry(
        order_key=_text(f, OrderF.ORDER_KEY),
        order=_text(f, OrderF.ORDER),
        shopify_id=_text(f, OrderF.SHOPIFY_ID),
        kind=_enum(OrderKind, f.get(OrderF.KIND), OrderKind.PURCHASE, OrderKind.PURCHASE),
        # an unknown status must not look finished: resume it
        status=_enum(OrderStatus, f.get(OrderF.STATUS), OrderStatus.PROCESSING, OrderStatus.PROCESSING),
        card_ids=_links(f, OrderF.CARDS),
        attempt=_text(f, OrderF.ATTEMPT),
        processed_at=datetime_from_cell(f.get(OrderF.PROCESSED_AT)),
        details=details,
        transactions=transactions,
        record_id=record.get("id"),
    )


def order_entry_fields(entry: OrderEntry) -> dict[str, Any]:
    """Every cell of the row (``None`` clears): a finished row must lose its nonce."""
    if not entry.order_key:
        raise ValueError("a registry row needs its Order Key (the upsert key)")
    details = entry.details or ""
    if entry.transactions:
        details = _with_last_line(details, TRANSACTIONS_PREFIX + " ".join(entry.transactions))
    return {
        OrderF.ORDER_KEY: entry.order_key,
        OrderF.ORDER: entry.order or None,
        OrderF.SHOPIFY_ID: entry.shopify_id or None,
        OrderF.KIND: cell(entry.kind),
        OrderF.STATUS: cell(entry.status),
        OrderF.CARDS: list(entry.card_ids),
        OrderF.ATTEMPT: entry.attempt or None,
        OrderF.PROCESSED_AT: datetime_cell(entry.processed_at) if entry.processed_at else None,
        OrderF.DETAILS: details or None,
    }
