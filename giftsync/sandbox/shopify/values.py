"""Wire formats of the Shopify twin: GIDs, Decimal strings, DateTime/Date, money objects."""
from __future__ import annotations

import re
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

GID_RE = re.compile(r"^gid://shopify/([A-Za-z]+)/(\d+)$")
UTC = timezone.utc


def gid(kind: str, num: int | str) -> str:
    return f"gid://shopify/{kind}/{num}"


def split_gid(value: Any) -> tuple[str, int] | None:
    """('GiftCard', 123) for a well-formed GID, else None."""
    if not isinstance(value, str):
        return None
    m = GID_RE.match(value.strip())
    if not m:
        return None
    return m.group(1), int(m.group(2))


def to_decimal(value: Any) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise ValueError(f"not a decimal: {value!r}")
    if isinstance(value, float):
        value = repr(value)
    try:
        d = Decimal(str(value).strip())
    except (InvalidOperation, ValueError) as exc:
        raise ValueError(f"not a decimal: {value!r}") from exc
    if not d.is_finite():
        raise ValueError(f"not a decimal: {value!r}")
    return d


def fmt_decimal(value: Any) -> str:
    """Shopify's Decimal output: trailing zeros stripped, at least one decimal ("10.0", "-0.01")."""
    d = to_decimal(value)
    s = format(d, "f")
    if "." in s:
        s = s.rstrip("0")
        if s.endswith("."):
            s += "0"
    else:
        s += ".0"
    if s in ("-0.0",):
        s = "0.0"
    return s


def money(amount: Any, currency: str) -> dict:
    return {"amount": to_decimal(amount), "currencyCode": currency}


def money_bag(amount: Any, currency: str) -> dict:
    m = money(amount, currency)
    return {"shopMoney": m, "presentmentMoney": dict(m)}


def format_limit(amount: Any, currency: str) -> str:
    """'$3,000.00 CAD' as in Shopify's GIFT_CARD_LIMIT_EXCEEDED message."""
    d = to_decimal(amount).quantize(Decimal("0.01"))
    return f"${d:,.2f} {currency}"


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_datetime(value: Any) -> datetime:
    """ISO-8601 date-time (offset or Z; a bare date means midnight UTC) -> aware UTC, second precision."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith("Z") or text.endswith("z"):
            text = text[:-1] + "+00:00"
        try:
            dt = datetime.fromisoformat(text)
        except ValueError as exc:
            raise ValueError(f"not a DateTime: {value!r}") from exc
    else:
        raise ValueError(f"not a DateTime: {value!r}")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).replace(microsecond=0)


def parse_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        return date.fromisoformat(value.strip())
    raise ValueError(f"not a Date: {value!r}")


def epoch_ms(iso_text: str) -> int:
    return int(parse_datetime(iso_text).timestamp() * 1000)
