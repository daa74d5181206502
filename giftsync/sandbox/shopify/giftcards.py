"""Gift cards: GraphQL views, queries and mutations (create, update, deactivate, credit, debit, notify)."""
from __future__ import annotations

import json
import re
from datetime import timedelta
from decimal import Decimal
from typing import Any

from graphql import GraphQLError

from . import search as S
from .context import Ctx, RecordView, record_from_id, require, resource_not_found
from .paging import count_payload, paginate
from .values import (epoch_ms, format_limit, gid, money, parse_date, parse_datetime, split_gid, to_decimal, iso)

MASK = "\u2022\u2022\u2022\u2022 \u2022\u2022\u2022\u2022 \u2022\u2022\u2022\u2022 "
CODE_RE = re.compile(r"^[A-Za-z0-9]+$")
HTML_RE = re.compile(r"<[^>]+>")
NOT_FOUND = "The gift card could not be found."


def ue(field, message, code=None, *, with_code=True) -> dict:
    out = {"field": field, "message": message}
    if with_code:
        out["code"] = code
    return out


# -- views ----------------------------------------------------------------------------------
class GiftCardView(RecordView):
    typename = "GiftCard"

    @property
    def balance(self):
        return money(self.rec["balance"], self.rec["currency"])

    @property
    def initialValue(self):
        return money(self.rec["initial"], self.rec["currency"])

    @property
    def deactivatedAt(self):
        return self.rec["deactivatedAt"]

    @property
    def enabled(self):
        return self.rec["enabled"]

    @property
    def expiresOn(self):
        return self.rec["expiresOn"]

    @property
    def lastCharacters(self):
        return self.rec["code"][-4:]

    @property
    def maskedCode(self):
        return MASK + self.rec["code"][-4:]

    @property
    def note(self):
        return self.rec["note"]

    @property
    def templateSuffix(self):
        return self.rec["templateSuffix"]

    @property
    def crossCurrencyRedemptionStrategy(self):
        return self.rec.get("strategy") or "MARKET_FX"

    @property
    def isRedeemable(self):
        return bool(self.rec["enabled"]) and not is_expired(self.app, self.rec)

    def customer(self, info):
        require(info, "read_customers")
        from .orders import CustomerView
        c = self.app.store.customer(self.rec.get("customer"))
        return CustomerView(self.app, c) if c else None

    def recipientAttributes(self, info):
        r = self.rec.get("recipient")
        return RecipientView(self.app, r) if r else None

    def order(self, info):
        require(info, "read_orders")
        from .orders import OrderView
        o = self.app.store.order(self.rec.get("order"))
        return OrderView(self.app, o) if o else None

    def lineItem(self, info):
        require(info, "read_orders")
        from .orders import LineItemView
        found = self.app.store.find_line_item(self.rec["lineItem"]) if self.rec.get("lineItem") else None
        return LineItemView(self.app, found[0], found[1]) if found else None

    def transactions(self, info, first=None, after=None, last=None, before=None, reverse=False):
        require(info, "read_gift_card_transactions")
        txs = list(self.rec["transactions"])
        pos = {id(t): i for i, t in enumerate(txs)}
        return paginate(info, txs, id_of=lambda t: t["num"], value_of=lambda t: pos[id(t)], first=first,
                        last=last, after=after, before=before, reverse=bool(reverse),
                        wrap=lambda t: TransactionView(self.app, self.rec, t), require_page_size=False)


class RecipientView:
    def __init__(self, app, r: dict) -> None:
        self.app = app
        self.r = r

    @property
    def message(self):
        return self.r.get("message")

    @property
    def preferredName(self):
        return self.r.get("preferredName")

    @property
    def sendNotificationAt(self):
        return self.r.get("sendNotificationAt")

    def recipient(self, info):
        from .orders import CustomerView
        c = self.app.store.customer(self.r.get("customer"))
        return CustomerView(self.app, c) if c else None


class TransactionView:
    def __init__(self, app, card: dict, tx: dict) -> None:
        self.app = app
        self.card = card
        self.tx = tx
        self.typename = "GiftCardCreditTransaction" if tx["kind"] == "credit" else "GiftCardDebitTransaction"

    @property
    def id(self):
        return gid(self.typename, self.tx["num"])

    @property
    def amount(self):
        return money(self.tx["amount"], self.card["currency"])

    @property
    def processedAt(self):
        return self.tx["processedAt"]

    @property
    def note(self):
        return self.tx["note"]

    def giftCard(self, info):
        return GiftCardView(self.app, self.card)


# -- helpers ----------------------------------------------------------------------------------
def is_expired(app, rec: dict) -> bool:
    exp = rec.get("expiresOn")
    return bool(exp) and parse_date(exp) < app.clock().date()


def card_from_id(info, value: Any, *, top_level_invalid: bool = True):
    """(num, record or None); a malformed or wrong-type id raises RESOURCE_NOT_FOUND."""
    return record_from_id(info, value, "GiftCard", info.context.app.store.card)


def customer_num(value: Any) -> int | None:
    parts = split_gid(value)
    return parts[1] if parts and parts[0] == "Customer" else None


def _amount_sort(rec):
    return float(to_decimal(rec["initial"]))


SORT_VALUES = {
    "ID": lambda r: r["num"],
    "CREATED_AT": lambda r: epoch_ms(r["createdAt"]),
    "UPDATED_AT": lambda r: epoch_ms(r["updatedAt"]),
    "DISABLED_AT": lambda r: epoch_ms(r["deactivatedAt"]) if r["deactivatedAt"] else None,
    "EXPIRES_ON": lambda r: epoch_ms(r["expiresOn"]) if r["expiresOn"] else None,
    "INITIAL_VALUE": _amount_sort,
    "BALANCE": lambda r: float(to_decimal(r["balance"])),
    "AMOUNT_SPENT": lambda r: float(to_decimal(r["initial"]) - to_decimal(r["balance"])),
    "CODE": lambda r: r["code"],
}


def _customer_name(app, num) -> str:
    c = app.store.customer(num)
    if not c:
        return ""
    return " ".join(x for x in (c.get("firstName"), c.get("lastName")) if x)


def time_field(app, key: str):
    """A search matcher comparing the record's ``key`` timestamp (``created_at:>2024-01-01`` …)."""
    return lambda r, t: _time_match(r.get(key), t, app)


def id_field(r, t) -> bool:
    """The ``id:`` search matcher (the numeric part of the gid)."""
    try:
        return S.compare(r["num"], t.op, int(t.value))
    except ValueError:
        return False


def customer_id_field(r, t) -> bool:
    return str(r.get("customer") or "") == t.value


def search_fields(app) -> dict:
    def status(r, t):
        v = t.value.lower()
        expired = is_expired(app, r)
        if v == "enabled":
            return r["enabled"] and not expired
        if v == "disabled":
            return not r["enabled"]
        if v == "expired":
            return expired
        if v == "expiring":
            exp = r.get("expiresOn")
            return bool(exp) and not expired and parse_date(exp) <= app.clock().date() + timedelta(days=30)
        return False

    def balance_status(r, t):
        bal, init = to_decimal(r["balance"]), to_decimal(r["initial"])
        v = t.value.lower()
        return {"full": bal == init, "partial": 0 < bal < init, "empty": bal == 0,
                "full_or_partial": bal > 0}.get(v, False)

    def decimal_field(key):
        def fn(r, t):
            try:
                return S.compare(to_decimal(r[key]), t.op, to_decimal(t.value))
            except ValueError:
                return False
        return fn

    def expires_on(r, t):
        if t.exists:
            return bool(r.get("expiresOn"))
        if not r.get("expiresOn"):
            return False
        try:
            return S.compare(parse_date(r["expiresOn"]), t.op, parse_date(t.value[:10]))
        except ValueError:
            return False

    def recipient_id(r, t):
        rec = r.get("recipient") or {}
        return str(rec.get("customer") or "") == t.value

    def source(r, t):
        return r.get("source") == t.value.lower()

    return {"id": id_field, "status": status, "balance_status": balance_status, "created_at": time_field(app, "createdAt"),
            "expires_on": expires_on, "initial_value": decimal_field("initial"), "customer_id": customer_id_field,
            "recipient_id": recipient_id, "source": source}


def _time_match(value: str | None, t: S.Term, app) -> bool:
    if t.exists:
        return bool(value)
    if not value:
        return False
    actual = parse_datetime(value)
    text = t.value.strip()
    try:
        wanted = app.clock() if text.lower() == "now" else parse_datetime(text)
    except ValueError:
        return False
    if t.op == "=" and len(text) == 10:           # a bare date: that whole day
        return wanted <= actual < wanted + timedelta(days=1)
    return S.compare(actual, t.op, wanted)


def text_match(app):
    def fn(r, t):
        v = t.value.lower()
        if not v:
            return True
        if v in r["code"]:
            return True
        c = app.store.customer(r.get("customer"))
        if c:
            hay = " ".join(str(c.get(k) or "") for k in ("firstName", "lastName", "email")).lower()
            return v in hay
        return False
    return fn


def run_search(info, items: list, query: str | None, fields: dict, text) -> list:
    result = S.compile_query(query, fields, text)
    if result.warnings:
        info.context.search.append({"path": list(info.path.as_list()), "query": query,
                                    "parsed": S.to_parsed(result.node), "warnings": result.warnings})
    return [it for it in items if result.matches(it)]


# -- queries ----------------------------------------------------------------------------------
def resolve_gift_card(_root, info, id):
    require(info, "read_gift_cards")
    num, rec = card_from_id(info, id)
    return GiftCardView(info.context.app, rec) if rec else None


def resolve_gift_cards(_root, info, first=None, after=None, last=None, before=None, reverse=False,
                       sortKey="ID", query=None, savedSearchId=None):
    require(info, "read_gift_cards")
    app = info.context.app
    items = run_search(info, app.store.cards(), query, search_fields(app), text_match(app))
    value_of = SORT_VALUES.get(sortKey or "ID")
    if value_of is None:
        value_of = SORT_VALUES["ID"] if sortKey != "CUSTOMER_NAME" else (lambda r: _customer_name(app, r["customer"]))
    return paginate(info, items, id_of=lambda r: r["num"], value_of=value_of, first=first, last=last,
                    after=after, before=before, reverse=bool(reverse), wrap=lambda r: GiftCardView(app, r))


def resolve_gift_cards_count(_root, info, query=None, savedSearchId=None, limit=10000):
    require(info, "read_gift_cards")
    app = info.context.app
    return count_payload(len(run_search(info, app.store.cards(), query, search_fields(app), text_match(app))), limit)


def resolve_configuration(_root, info):
    require(info, "read_gift_cards")
    app = info.context.app
    return {"issueLimit": money(app.issue_limit, app.shop_currency),
            "purchaseLimit": money(app.purchase_limit, app.shop_currency)}


# -- mutations ------------------------------------------------------------------------------
def _too_long_checks(info, recipient: dict | None) -> None:
    if not recipient:
        return
    if recipient.get("preferredName") is not None and len(recipient["preferredName"]) > 255:
        raise GraphQLError("preferredName is too long (maximum is 255)", info.field_nodes,
                           extensions={"code": "INVALID_FIELD_ARGUMENTS"})
    if recipient.get("message") is not None and len(recipient["message"]) > 200:
        raise GraphQLError("message is too long (maximum is 200)", info.field_nodes,
                           extensions={"code": "INVALID_FIELD_ARGUMENTS"})


def _recipient_errors(info, recipient: dict, with_code: bool) -> list[dict]:
    app = info.context.app
    base = ["input", "recipientAttributes"]
    rid = recipient.get("id")
    parts = split_gid(rid)
    if parts is None or parts[0] != "Customer":
        raise resource_not_found(info, rid)
    if app.store.customer(parts[1]) is None:
        return [ue(base + ["id"], "Recipient could not be found", "RECIPIENT_NOT_FOUND", with_code=with_code)]
    for key, label in (("preferredName", "Preferred name"), ("message", "Message")):
        v = recipient.get(key)
        if v is None:
            continue
        if not str(v).strip():
            return [ue(base + [key], f"{label} can't be blank", "INVALID", with_code=with_code)]
        if HTML_RE.search(str(v)):
            return [ue(base + [key], f"{label} cannot contain HTML tags", "INVALID", with_code=with_code)]
    at = recipient.get("sendNotificationAt")
    if at is not None:
        when = parse_datetime(at)
        now = app.clock()
        if when < now - timedelta(minutes=1) or when > now + timedelta(days=90):
            return [ue(base + ["sendNotificationAt"], "Send notification at must be within 90 days from now",
                       "INVALID", with_code=with_code)]
    return []


def _recipient_record(recipient: dict) -> dict:
    at = recipient.get("sendNotificationAt")
    return {"customer": split_gid(recipient["id"])[1], "preferredName": recipient.get("preferredName"),
            "message": recipient.get("message"), "sendNotificationAt": iso(parse_datetime(at)) if at else None}


def _suffix(value):
    if value is None:
        return None
    return value[len("gift_card."):] if value.startswith("gift_card.") else value


def resolve_create(_root, info, input):
    require(info, "write_gift_cards")
    ctx: Ctx = info.context
    app = ctx.app
    store = app.store
    fail = {"giftCard": None, "giftCardCode": None}
    recipient = input.get("recipientAttributes")
    _too_long_checks(info, recipient)
    if input.get("customerId") is not None:
        num = customer_num(input["customerId"])
        if split_gid(input["customerId"]) is None:
            raise resource_not_found(info, input["customerId"])
        if num is None or store.customer(num) is None:
            return {**fail, "userErrors": [ue(["input", "customerId"], "The customer could not be found.",
                                              "CUSTOMER_NOT_FOUND")]}
    if recipient:
        errs = _recipient_errors(info, recipient, True)
        if errs:
            return {**fail, "userErrors": errs}
    has_value = input.get("initialValue") is not None
    has_amount = input.get("initialAmount") is not None
    if has_value and has_amount:
        return {**fail, "userErrors": [ue(["input", "initialAmount"],
                                          "Only one of initialAmount or initialValue can be provided.", "INVALID")]}
    if not has_value and not has_amount:
        return {**fail, "userErrors": [ue(["input", "initialAmount"], "An initial amount is required.",
                                          "MISSING_ARGUMENT")]}
    if has_amount:
        amount = to_decimal(input["initialAmount"]["amount"])
        currency = input["initialAmount"]["currencyCode"]
        field = ["input", "initialAmount", "amount"]
    else:
        amount = to_decimal(input["initialValue"])
        currency = app.shop_currency
        field = ["input", "initialValue"]
    if amount <= 0:
        return {**fail, "userErrors": [ue(field, "must be greater than 0", "GREATER_THAN")]}
    if amount > to_decimal(app.issue_limit):
        return {**fail, "userErrors": [ue(field, f"can't exceed {format_limit(app.issue_limit, currency)}",
                                          "GIFT_CARD_LIMIT_EXCEEDED")]}
    code = input.get("code")
    if code is not None:
        if len(code) < 8:
            return {**fail, "userErrors": [ue(["input", "code"], "Code must be at least 8 characters long",
                                              "TOO_SHORT")]}
        if len(code) > 20:
            return {**fail, "userErrors": [ue(["input", "code"], "Code must be at most 20 characters long",
                                              "TOO_LONG")]}
        if not CODE_RE.match(code):
            return {**fail, "userErrors": [ue(["input", "code"],
                                              "Code can only contain letters(a-z) and numbers(0-9)", "INVALID")]}
        if store.code_taken(code):
            return {**fail, "userErrors": [ue(["input", "code"], "Code has already been taken", None)]}
    expires = input.get("expiresOn")
    rec = store.add_card(
        amount=amount, currency=currency, code=code, source="api_client", note=input.get("note"),
        expires_on=parse_date(expires).isoformat() if expires else None,
        customer=customer_num(input.get("customerId")) if input.get("customerId") else None,
        recipient=_recipient_record(recipient) if recipient else None,
        template_suffix=_suffix(input.get("templateSuffix")),
        strategy=input.get("crossCurrencyRedemptionStrategy") or
        ("MARKET_FX" if currency == app.shop_currency else "NONE"))
    app.dirty = True
    return {"giftCard": GiftCardView(app, rec), "giftCardCode": rec["code"], "userErrors": []}


def resolve_update(_root, info, id, input):
    require(info, "write_gift_cards")
    app = info.context.app
    store = app.store
    fail = {"giftCard": None}
    _too_long_checks(info, input.get("recipientAttributes"))
    num, rec = card_from_id(info, id)
    if rec is None:
        return {**fail, "userErrors": [ue(["id"], NOT_FOUND, with_code=False)]}
    if not input:
        return {**fail, "userErrors": [ue(["input"], "At least one argument is required in the input.",
                                          with_code=False)]}
    if not rec["enabled"]:
        for key in ("expiresOn", "customerId", "recipientAttributes"):
            if key in input:
                return {**fail, "userErrors": [ue(["input", key], "The gift card is deactivated.",
                                                  with_code=False)]}
    if input.get("customerId") is not None:
        if split_gid(input["customerId"]) is None:
            raise resource_not_found(info, input["customerId"])
        cnum = customer_num(input["customerId"])
        if cnum is None or store.customer(cnum) is None:
            return {**fail, "userErrors": [ue(["input", "customerId"], "The customer could not be found.",
                                              with_code=False)]}
        if rec.get("customer") not in (None, cnum):
            return {**fail, "userErrors": [ue(["input", "customerId"],
                                              "The customer of a gift card can't be changed once set.",
                                              with_code=False)]}
    if input.get("recipientAttributes"):
        errs = _recipient_errors(info, input["recipientAttributes"], False)
        if errs:
            return {**fail, "userErrors": errs}
    if "note" in input:
        rec["note"] = input["note"]
    if "expiresOn" in input:
        rec["expiresOn"] = parse_date(input["expiresOn"]).isoformat() if input["expiresOn"] else None
    if "templateSuffix" in input:
        rec["templateSuffix"] = _suffix(input["templateSuffix"])
    if input.get("customerId") is not None:
        rec["customer"] = customer_num(input["customerId"])
    if "recipientAttributes" in input:
        r = input["recipientAttributes"]
        rec["recipient"] = _recipient_record(r) if r else None
    if input.get("crossCurrencyRedemptionStrategy"):
        rec["strategy"] = input["crossCurrencyRedemptionStrategy"]
    rec["updatedAt"] = store.now()
    app.dirty = True
    return {"giftCard": GiftCardView(app, rec), "userErrors": []}


def resolve_deactivate(_root, info, id):
    require(info, "write_gift_cards")
    app = info.context.app
    num, rec = card_from_id(info, id)
    if rec is None:
        return {"giftCard": None, "userErrors": [ue(["id"], NOT_FOUND, "GIFT_CARD_NOT_FOUND")]}
    if rec["enabled"]:
        now = app.store.now()
        rec["enabled"] = False
        rec["deactivatedAt"] = now
        rec["updatedAt"] = now
        app.dirty = True
    return {"giftCard": GiftCardView(app, rec), "userErrors": []}


def check_transaction(app, rec: dict | None, kind: str, amount: Decimal, currency: str,
                      processed_at: Any, input_name: str) -> dict | None:
    """The first userError of a credit/debit, in Shopify's order; None when it may be applied."""
    amount_key = "creditAmount" if kind == "credit" else "debitAmount"
    if rec is None:
        return ue(["id"], NOT_FOUND, "GIFT_CARD_NOT_FOUND")
    if not rec["enabled"]:
        return ue(["id"], "The gift card is deactivated.", "INVALID")
    if is_expired(app, rec):
        return ue(["id"], "The gift card has expired.", "INVALID")
    if processed_at is not None:
        when = parse_datetime(processed_at)
        if when > app.clock():
            return ue([input_name, "processedAt"], "The processed date must not be in the future.", "INVALID")
        if when.year < 1970:
            return ue([input_name, "processedAt"], "A valid processed date must be used.", "INVALID")
    if amount <= 0:
        return ue([input_name, amount_key, "amount"], "A positive amount must be used.", "NEGATIVE_OR_ZERO_AMOUNT")
    if currency != rec["currency"]:
        return ue([input_name, amount_key, "currencyCode"],
                  "The currency provided does not match the currency of the gift card.", "MISMATCHING_CURRENCY")
    balance = to_decimal(rec["balance"])
    if kind == "credit" and balance + amount > to_decimal(app.issue_limit):
        return ue([input_name, amount_key, "amount"], "The gift card's value exceeds the allowed limits.",
                  "GIFT_CARD_LIMIT_EXCEEDED")
    if kind == "debit" and amount > balance:
        return ue([input_name, amount_key, "amount"],
                  "The gift card does not have sufficient funds to satisfy the request.", "INSUFFICIENT_FUNDS")
    return None


def _transaction(info, id, data: dict, kind: str):
    require(info, "write_gift_card_transactions")
    app = info.context.app
    input_name = "creditInput" if kind == "credit" else "debitInput"
    payload_key = "giftCardCreditTransaction" if kind == "credit" else "giftCardDebitTransaction"
    money_in = data["creditAmount" if kind == "credit" else "debitAmount"]
    amount = to_decimal(money_in["amount"])
    num, rec = card_from_id(info, id)
    err = check_transaction(app, rec, kind, amount, money_in["currencyCode"], data.get("processedAt"), input_name)
    if err:
        return {payload_key: None, "userErrors": [err]}
    processed = iso(parse_datetime(data["processedAt"])) if data.get("processedAt") else None
    tx = app.store.add_card_transaction(rec, kind=kind, amount=amount if kind == "credit" else -amount,
                                        note=data.get("note"), processed_at=processed,
                                        bump_updated_at=app.bump_updated_at_on_transactions)
    app.dirty = True
    return {payload_key: TransactionView(app, rec, tx), "userErrors": []}


def resolve_credit(_root, info, id, creditInput):
    return _transaction(info, id, creditInput, "credit")


def resolve_debit(_root, info, id, debitInput):
    return _transaction(info, id, debitInput, "debit")


def _notify(info, id, who: str):
    require(info, "write_gift_cards")
    app = info.context.app
    num, rec = card_from_id(info, id)
    if rec is None:
        return {"giftCard": None, "userErrors": [ue(["id"], NOT_FOUND, "GIFT_CARD_NOT_FOUND")]}
    if not rec["enabled"]:
        return {"giftCard": None, "userErrors": [ue(["id"], "The gift card is deactivated.", "INVALID")]}
    if is_expired(app, rec):
        return {"giftCard": None, "userErrors": [ue(["id"], "The gift card has expired.", "INVALID")]}
    if who == "customer":
        cust = app.store.customer(rec.get("customer"))
        if cust is None:
            return {"giftCard": None, "userErrors": [ue(None, "The gift card has no customer.", "INVALID")]}
    else:
        r = rec.get("recipient")
        cust = app.store.customer(r.get("customer")) if r else None
        if cust is None:
            return {"giftCard": None, "userErrors": [ue(None, "The gift card has no recipient.", "INVALID")]}
    if not (cust.get("email") or cust.get("phone")):
        label = "customer" if who == "customer" else "recipient"
        return {"giftCard": None, "userErrors": [ue(
            None, f"The {label} has no contact information (e.g. email address or phone number).", "INVALID")]}
    app.store.data["notifications"].append({"giftCard": rec["num"], "to": who, "customer": cust["num"],
                                            "email": cust.get("email"), "at": app.store.now()})
    app.dirty = True
    return {"giftCard": GiftCardView(app, rec), "userErrors": []}


def resolve_notify_customer(_root, info, id):
    return _notify(info, id, "customer")


def resolve_notify_recipient(_root, info, id):
    return _notify(info, id, "recipient")


def card_summary(rec: dict, *, include_code: bool = False) -> dict:
    """A card as the sandbox console sees it (masked unless a test asks for codes)."""
    out = {"id": gid("GiftCard", rec["num"]), "lastCharacters": rec["code"][-4:],
           "maskedCode": MASK + rec["code"][-4:], "balance": rec["balance"], "initialValue": rec["initial"],
           "currency": rec["currency"], "enabled": rec["enabled"], "deactivatedAt": rec["deactivatedAt"],
           "expiresOn": rec["expiresOn"], "note": rec["note"], "source": rec["source"],
           "customer": gid("Customer", rec["customer"]) if rec.get("customer") else None,
           "order": gid("Order", rec["order"]) if rec.get("order") else None,
           "createdAt": rec["createdAt"], "updatedAt": rec["updatedAt"], "visible": not rec.get("hidden"),
           "transactions": [{"id": gid("GiftCardCreditTransaction" if t["kind"] == "credit"
                                       else "GiftCardDebitTransaction", t["num"]),
                             "amount": t["amount"], "note": t["note"], "processedAt": t["processedAt"],
                             "order": gid("Order", t["order"]) if t.get("order") else None}
                            for t in rec["transactions"]]}
    if include_code:
        out["code"] = rec["code"]
    return out


__all__ = ["GiftCardView", "TransactionView", "card_summary", "json"]
