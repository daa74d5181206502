"""Shopify JSON ↔ giftsync domain objects (pure functions; reference/shopify.md §3)."""
from __future__ import annotations

import json
import re
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from ...domain.cards import CardTransaction, ShopifyCard
from ...domain.money import Money
from ...ports import IssuedCard, OrderLine, OrderPayment, ShopifyOrder

GID_PREFIX = "gid://shopify/"
_SHOPIFY_CODE = re.compile(r"^[a-z0-9]{8,20}$")
_SEARCH_PLAIN = re.compile(r"^[A-Za-z0-9_.@+-]+$")


# -- scalars ------------------------------------------------------------------------------

def money(node: dict | None) -> Money | None:
    if not node:
        return None
    try:
        return Money(Decimal(str(node["amount"])), str(node["currencyCode"]).upper())
    except (KeyError, InvalidOperation) as exc:
        raise ValueError(f"not a MoneyV2: {node!r}") from exc


def shop_money(bag: dict | None) -> Money | None:
    return money((bag or {}).get("shopMoney"))


def money_input(amount: Money) -> dict:
    return {"amount": amount.plain(), "currencyCode": amount.currency}


def parse_datetime(text: str | None) -> datetime | None:
    if not text:
        return None
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def parse_date(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


def format_datetime(value: datetime) -> str:
    """Shopify's DateTime input: UTC, seconds, ``Z``. Naive datetimes are refused."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("processed_at must be timezone-aware")
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def search_datetime(value: datetime) -> str:
    return "'" + format_datetime(value) + "'"


def search_value(value: str) -> str:
    """A value for Shopify's search syntax: bare when plain, else double-quoted with escapes."""
    if _SEARCH_PLAIN.match(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def gid(kind: str, ident: str | int) -> str:
    """``gid://shopify/<kind>/<n>``; an id that already is a GID is returned unchanged."""
    text = str(ident).strip()
    if text.startswith(GID_PREFIX):
        return text
    if not text.isdigit():
        raise ValueError(f"not a Shopify {kind} id: {text!r}")
    return f"{GID_PREFIX}{kind}/{text}"


def shopify_code(code: str) -> str | None:
    """A code as Shopify stores it (lower case, no separators), or None if it cannot be one."""
    text = "".join(ch for ch in str(code) if not (ch.isspace() or ch == "-")).lower()
    return text if _SHOPIFY_CODE.match(text) else None


# -- cards --------------------------------------------------------------------------------

def card(node: dict) -> ShopifyCard:
    customer = node.get("customer") or {}
    email = ((customer.get("defaultEmailAddress") or {}).get("emailAddress")) or ""
    balance = money(node.get("balance"))
    assert balance is not None, "GiftCard.balance is non-null"
    return ShopifyCard(
        id=node["id"],
        last4=str(node.get("lastCharacters") or "").upper(),
        balance=balance,
        initial_value=money(node.get("initialValue")),
        enabled=bool(node.get("enabled", True)),
        expires_on=parse_date(node.get("expiresOn")),
        deactivated_at=parse_datetime(node.get("deactivatedAt")),
        note=node.get("note") or "",
        customer_email=email,
        order_name=((node.get("order") or {}).get("name")) or "",
        created_at=parse_datetime(node.get("createdAt")),
        updated_at=parse_datetime(node.get("updatedAt")),
    )


def issued_card(node: dict) -> IssuedCard:
    return IssuedCard(card=card(node), order_id=((node.get("order") or {}).get("id")) or "",
                      line_item_id=((node.get("lineItem") or {}).get("id")))


def transaction(node: dict) -> CardTransaction:
    amount = money(node.get("amount"))
    assert amount is not None, "GiftCardTransaction.amount is non-null"
    typename = node.get("__typename") or ""
    if "Debit" in typename:
        kind = "debit"
    elif "Credit" in typename:
        kind = "credit"
    else:
        kind = "debit" if amount.amount < 0 else "credit"
    return CardTransaction(id=node["id"], amount=amount, note=node.get("note") or "",
                           processed_at=parse_datetime(node.get("processedAt")), kind=kind)


# -- userErrors ---------------------------------------------------------------------------

def user_error_text(errors: list[dict]) -> str:
    return "; ".join(str(e.get("message") or e.get("code") or "error") for e in errors)


def code_taken(errors: list[dict]) -> bool:
    """``Code has already been taken`` comes with ``code: null`` (not TAKEN) on real Shopify."""
    for e in errors:
        field = [str(f) for f in (e.get("field") or [])]
        message = str(e.get("message") or "").lower()
        if e.get("code") == "TAKEN" or ("code" in field and "taken" in message):
            return True
    return False


def move_error_code(errors: list[dict]) -> str:
    """A transaction userError → MoveResult.error_code (INVALID is split by its message)."""
    first = errors[0] if errors else {}
    code = str(first.get("code") or "")
    message = str(first.get("message") or "").lower()
    if code in ("", "INVALID"):
        if "deactivated" in message or "disabled" in message:
            return "GIFT_CARD_DEACTIVATED"
        if "expired" in message:
            return "GIFT_CARD_EXPIRED"
        if "sufficient funds" in message:
            return "INSUFFICIENT_FUNDS"
        if "not be found" in message:
            return "GIFT_CARD_NOT_FOUND"
    return code or "INVALID"


# -- orders -------------------------------------------------------------------------------

def _receipt(value: Any) -> dict:
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.strip():
        try:
            parsed = json.loads(value)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


def payment(node: dict) -> OrderPayment:
    gateway = node.get("gateway") or ""
    receipt = _receipt(node.get("receiptJson"))
    card_id = None
    last4 = ""
    if gateway == "gift_card":
        raw = receipt.get("gift_card_id")
        if raw not in (None, ""):
            try:
                card_id = gid("GiftCard", raw)
            except ValueError:
                card_id = None
        last4 = str(receipt.get("gift_card_last_characters") or "").upper()
    amount = shop_money(node.get("amountSet"))
    assert amount is not None, "OrderTransaction.amountSet is non-null"
    return OrderPayment(id=node["id"], kind=node.get("kind") or "", status=node.get("status") or "",
                        gateway=gateway, amount=amount, gift_card_id=card_id, gift_card_last4=last4,
                        processed_at=parse_datetime(node.get("processedAt")))


def line(node: dict) -> OrderLine:
    return OrderLine(
        id=node["id"], name=node.get("name") or "", sku=node.get("sku") or "",
        quantity=int(node.get("quantity") or 0), is_gift_card=bool(node.get("isGiftCard")),
        unit_price=shop_money(node.get("originalUnitPriceSet")),
        properties={str(a.get("key")): str(a.get("value") or "") for a in node.get("customAttributes") or []},
    )


def order(node: dict) -> ShopifyOrder:
    customer = node.get("customer") or {}
    return ShopifyOrder(
        id=node["id"], name=node.get("name") or "", email=node.get("email") or "",
        financial_status=node.get("displayFinancialStatus") or "",
        tags=list(node.get("tags") or []),
        gateways=list(node.get("paymentGatewayNames") or []),
        customer_id=customer.get("id"),
        customer_email=((customer.get("defaultEmailAddress") or {}).get("emailAddress")) or "",
        customer_first_name=customer.get("firstName") or "",
        customer_last_name=customer.get("lastName") or "",
        lines=[line(n) for n in ((node.get("lineItems") or {}).get("nodes") or [])],
        payments=[payment(t) for t in node.get("transactions") or []],
        created_at=parse_datetime(node.get("createdAt")),
        updated_at=parse_datetime(node.get("updatedAt")),
    )


def orders_query(*, updated_after: datetime | None, financial_statuses: list[str], without_tag: str | None,
                 gift_card_payments_only: bool) -> str:
    """The ``query:`` string of the order poll (reference §7.1)."""
    parts: list[str] = []
    if updated_after is not None:
        parts.append(f"updated_at:>={search_datetime(updated_after)}")
    statuses = [s.lower() for s in financial_statuses]
    if len(statuses) == 1:
        parts.append(f"financial_status:{search_value(statuses[0])}")
    elif statuses:
        parts.append("(" + " OR ".join(f"financial_status:{search_value(s)}" for s in statuses) + ")")
    if gift_card_payments_only:
        parts.append("gateway:gift_card")
    if without_tag:
        parts.append(f"-tag:{search_value(without_tag)}")
    return " ".join(parts)


def order_matches(o: ShopifyOrder, *, updated_after: datetime | None, financial_statuses: list[str],
                  without_tag: str | None, gift_card_payments_only: bool) -> bool:
    """Re-check what the search was asked for: Shopify's index lags and ignores unknown terms."""
    if updated_after is not None and o.updated_at is not None and o.updated_at < updated_after:
        return False
    if financial_statuses and o.financial_status.lower() not in {s.lower() for s in financial_statuses}:
        return False
    if without_tag and without_tag.lower() in {t.lower() for t in o.tags}:
        return False
    if gift_card_payments_only and "gift_card" not in o.gateways and not any(
            p.gateway == "gift_card" for p in o.payments):
        return False
    return True
