"""Orders, line items, order transactions, customers and tags: views, queries, tagsAdd/tagsRemove."""
from __future__ import annotations

import json
from decimal import Decimal

from graphql import GraphQLError

from . import search as S
from .context import RecordView, record_from_id, require, resource_not_found
from .giftcards import customer_id_field, id_field, run_search, time_field
from .paging import count_payload, paginate
from .values import epoch_ms, gid, money, money_bag, split_gid, to_decimal

PAYMENT_KINDS = ("SALE", "CAPTURE", "AUTHORIZATION")
GATEWAY_TITLES = {"gift_card": "Gift card", "shopify_payments": "Shopify Payments", "bogus": "Bogus",
                  "manual": "Manual", "cash": "Cash"}
TAGGABLE = {"Order", "Customer", "DraftOrder", "Product", "Article", "DiscountNode"}


class CustomerView(RecordView):
    typename = "Customer"

    @property
    def firstName(self):
        return self.rec.get("firstName")

    @property
    def lastName(self):
        return self.rec.get("lastName")

    @property
    def displayName(self):
        name = " ".join(x for x in (self.rec.get("firstName"), self.rec.get("lastName")) if x)
        return name or self.rec.get("email") or self.rec.get("phone") or ""

    @property
    def email(self):
        return self.rec.get("email")

    @property
    def phone(self):
        return self.rec.get("phone")

    @property
    def note(self):
        return self.rec.get("note")

    @property
    def tags(self):
        return list(self.rec.get("tags") or [])

    @property
    def defaultPhoneNumber(self):
        p = self.rec.get("phone")
        return {"phoneNumber": p} if p else None

    @property
    def defaultEmailAddress(self):
        e = self.rec.get("email")
        return {"emailAddress": e} if e else None


def order_totals(order: dict) -> dict:
    cur = order["currency"]
    total = sum((to_decimal(l["price"]) * l["quantity"] for l in order["lines"]), Decimal(0))
    paid = sum((to_decimal(t["amount"]) for t in order["transactions"]
                if t["kind"] in ("SALE", "CAPTURE") and t["status"] == "SUCCESS"), Decimal(0))
    refunded = sum((to_decimal(t["amount"]) for t in order["transactions"]
                    if t["kind"] == "REFUND" and t["status"] == "SUCCESS"), Decimal(0))
    return {"currency": cur, "total": total, "paid": paid, "refunded": refunded}


class OrderView(RecordView):
    typename = "Order"

    def __getattr__(self, name):
        simple = {"name", "email", "phone", "note", "processedAt", "cancelledAt", "closedAt", "test", "sourceName",
                  "confirmationNumber"}
        if name in simple:
            return self.rec.get(name)
        raise AttributeError(name)

    @property
    def closed(self):
        return self.rec.get("closedAt") is not None

    @property
    def displayFinancialStatus(self):
        return self.rec.get("financialStatus")

    @property
    def tags(self):
        return sorted(self.rec.get("tags") or [], key=str.lower)

    @property
    def paymentGatewayNames(self):
        names = []
        for t in self.rec["transactions"]:
            if t["kind"] in PAYMENT_KINDS and t["gateway"] not in names:
                names.append(t["gateway"])
        return names

    @property
    def currencyCode(self):
        return self.rec["currency"]

    @property
    def presentmentCurrencyCode(self):
        return self.rec["currency"]

    def _bag(self, key):
        t = order_totals(self.rec)
        return money_bag(t[key] if not callable(key) else key(t), t["currency"])

    @property
    def totalPriceSet(self):
        return self._bag("total")

    @property
    def currentTotalPriceSet(self):
        t = order_totals(self.rec)
        return money_bag(t["total"] - t["refunded"], t["currency"])

    @property
    def totalReceivedSet(self):
        return self._bag("paid")

    @property
    def netPaymentSet(self):
        t = order_totals(self.rec)
        return money_bag(t["paid"] - t["refunded"], t["currency"])

    @property
    def totalOutstandingSet(self):
        t = order_totals(self.rec)
        return money_bag(max(t["total"] - t["paid"], Decimal(0)), t["currency"])

    @property
    def totalRefundedSet(self):
        return self._bag("refunded")

    def customer(self, info):
        require(info, "read_customers")
        c = self.app.store.customer(self.rec.get("customer"))
        return CustomerView(self.app, c) if c else None

    def lineItems(self, info, first=None, after=None, last=None, before=None, reverse=False):
        lines = list(self.rec["lines"])
        return paginate(info, lines, id_of=lambda l: l["num"], value_of=lambda l: l["num"], first=first, last=last,
                        after=after, before=before, reverse=bool(reverse),
                        wrap=lambda l: LineItemView(self.app, self.rec, l))

    def transactions(self, info, first=None, capturable=None, manuallyResolvable=None):
        txs = [OrderTransactionView(self.app, self.rec, t) for t in self.rec["transactions"]]
        return txs[:first] if first is not None else txs


class LineItemView:
    typename = "LineItem"

    def __init__(self, app, order: dict, line: dict) -> None:
        self.app = app
        self.order = order
        self.line = line

    @property
    def id(self):
        return gid("LineItem", self.line["num"])

    @property
    def name(self):
        return self.line["name"]

    @property
    def title(self):
        return self.line["title"]

    @property
    def sku(self):
        return self.line.get("sku")

    @property
    def quantity(self):
        return self.line["quantity"]

    @property
    def currentQuantity(self):
        return self.line["quantity"]

    @property
    def isGiftCard(self):
        return bool(self.line.get("isGiftCard"))

    @property
    def requiresShipping(self):
        return bool(self.line.get("requiresShipping", not self.line.get("isGiftCard")))

    @property
    def originalUnitPriceSet(self):
        return money_bag(self.line["price"], self.order["currency"])

    @property
    def discountedUnitPriceSet(self):
        return money_bag(self.line["price"], self.order["currency"])

    @property
    def customAttributes(self):
        return [{"key": a["key"], "value": a.get("value")} for a in self.line.get("attributes") or []]


class OrderTransactionView:
    typename = "OrderTransaction"

    def __init__(self, app, order: dict, tx: dict) -> None:
        self.app = app
        self.order_rec = order
        self.tx = tx

    @property
    def id(self):
        return gid("OrderTransaction", self.tx["num"])

    @property
    def kind(self):
        return self.tx["kind"]

    @property
    def status(self):
        return self.tx["status"]

    @property
    def gateway(self):
        return self.tx["gateway"]

    @property
    def formattedGateway(self):
        g = self.tx["gateway"]
        return GATEWAY_TITLES.get(g, g.replace("_", " ").title() if g else g)

    @property
    def amountSet(self):
        return money_bag(self.tx["amount"], self.order_rec["currency"])

    @property
    def processedAt(self):
        return self.tx["processedAt"]

    @property
    def createdAt(self):
        return self.tx["createdAt"]

    @property
    def test(self):
        return bool(self.tx.get("test"))

    @property
    def receiptJson(self):
        return json.dumps(self.tx.get("receipt") or {}, separators=(",", ":"))

    def parentTransaction(self, info):
        p = self.tx.get("parent")
        if p is None:
            return None
        for t in self.order_rec["transactions"]:
            if t["num"] == p:
                return OrderTransactionView(self.app, self.order_rec, t)
        return None

    def order(self, info):
        return OrderView(self.app, self.order_rec)


# -- search ---------------------------------------------------------------------------------
def order_search_fields(app) -> dict:
    def tag(r, t):
        tags = [x.lower() for x in r.get("tags") or []]
        if t.exists:
            return bool(tags)
        v = t.value.lower()
        return any(x.startswith(v) for x in tags) if t.prefix else v in tags

    def tag_not(r, t):
        return not tag(r, t)

    def financial_status(r, t):
        return (r.get("financialStatus") or "").lower() == t.value.lower()

    def status(r, t):
        v = t.value.lower()
        closed, cancelled = r.get("closedAt") is not None, r.get("cancelledAt") is not None
        return {"open": not closed and not cancelled, "closed": closed, "cancelled": cancelled,
                "not_closed": not closed}.get(v, False)

    def gateway(r, t):
        return any(S.text_equals(x, t) for x in OrderView(app, r).paymentGatewayNames)

    def name(r, t):
        v = t.value if t.value.startswith("#") else "#" + t.value
        return S.text_equals(r.get("name"), S.Term(t.field, t.op, v, t.exists, t.prefix))

    def email(r, t):
        return S.text_equals(r.get("email"), t)

    def sku(r, t):
        return any(S.text_equals(l.get("sku"), t) for l in r["lines"])

    def test(r, t):
        return bool(r.get("test")) == (t.value.lower() == "true")

    def source_name(r, t):
        return S.text_equals(r.get("sourceName"), t)

    return {"tag": tag, "tag_not": tag_not, "financial_status": financial_status, "status": status,
            "gateway": gateway, "id": id_field, "name": name, "email": email, "customer_id": customer_id_field,
            "sku": sku, "test": test, "source_name": source_name, "created_at": time_field(app, "createdAt"),
            "updated_at": time_field(app, "updatedAt"), "processed_at": time_field(app, "processedAt")}


def order_text(app):
    def fn(r, t):
        v = t.value.lower()
        hay = [r.get("name") or "", r.get("email") or ""]
        c = app.store.customer(r.get("customer"))
        if c:
            hay += [c.get("firstName") or "", c.get("lastName") or "", c.get("email") or ""]
        return any(v in h.lower() for h in hay)
    return fn


def _order_number(r):
    try:
        return int(str(r.get("name", "")).lstrip("#"))
    except ValueError:
        return r["num"]


ORDER_SORTS = {
    "ID": lambda r: r["num"],
    "CREATED_AT": lambda r: epoch_ms(r["createdAt"]),
    "UPDATED_AT": lambda r: epoch_ms(r["updatedAt"]),
    "PROCESSED_AT": lambda r: epoch_ms(r["processedAt"]),
    "ORDER_NUMBER": _order_number,
    "TOTAL_PRICE": lambda r: float(order_totals(r)["total"]),
    "CURRENT_TOTAL_PRICE": lambda r: float(order_totals(r)["total"] - order_totals(r)["refunded"]),
    "FINANCIAL_STATUS": lambda r: r.get("financialStatus") or "",
    "TOTAL_ITEMS_QUANTITY": lambda r: sum(l["quantity"] for l in r["lines"]),
}


def resolve_orders(_root, info, first=None, after=None, last=None, before=None, reverse=False,
                   sortKey="PROCESSED_AT", query=None, savedSearchId=None):
    require(info, "read_orders")
    app = info.context.app
    items = run_search(info, app.store.orders(), query, order_search_fields(app), order_text(app))
    value_of = ORDER_SORTS.get(sortKey or "PROCESSED_AT", ORDER_SORTS["ID"])
    return paginate(info, items, id_of=lambda r: r["num"], value_of=value_of, first=first, last=last,
                    after=after, before=before, reverse=bool(reverse), wrap=lambda r: OrderView(app, r))


def resolve_orders_count(_root, info, query=None, savedSearchId=None, limit=10000):
    require(info, "read_orders")
    app = info.context.app
    return count_payload(len(run_search(info, app.store.orders(), query, order_search_fields(app),
                                        order_text(app))), limit)


def resolve_order(_root, info, id):
    require(info, "read_orders")
    _num, rec = record_from_id(info, id, "Order", info.context.app.store.order)
    return OrderView(info.context.app, rec) if rec else None


def resolve_customer(_root, info, id):
    require(info, "read_customers")
    _num, rec = record_from_id(info, id, "Customer", info.context.app.store.customer)
    return CustomerView(info.context.app, rec) if rec else None


def resolve_app_installation(_root, info):
    scopes = sorted(info.context.scopes)
    return {"id": gid("AppInstallation", 1),
            "accessScopes": [{"handle": s, "description": s.replace("_", " ")} for s in scopes]}


# -- tags -----------------------------------------------------------------------------------
def _clean_tags(tags) -> list[str]:
    out = []
    for item in tags or []:
        for part in str(item).split(","):
            p = part.strip()
            if p:
                out.append(p)
    return out


def _tags(info, id, tags, add: bool):
    app = info.context.app
    parts = split_gid(id)
    if parts is None or parts[0] not in TAGGABLE:
        raise resource_not_found(info, id, bare=True)
    kind, num = parts
    if kind == "Order":
        require(info, "write_orders", "tagsAdd" if add else "tagsRemove")
        rec = app.store.order(num)
    elif kind == "Customer":
        require(info, "write_customers", "tagsAdd" if add else "tagsRemove")
        rec = app.store.customer(num)
    else:
        rec = None
    if rec is None:
        return {"node": None, "userErrors": [{"field": ["id"], "message": f"{kind} does not exist"}]}
    current = list(rec.get("tags") or [])
    wanted = _clean_tags(tags)
    if add:
        lower = {t.lower() for t in current}
        for t in wanted:
            if t.lower() not in lower:
                current.append(t)
                lower.add(t.lower())
    else:
        drop = {t.lower() for t in wanted}
        current = [t for t in current if t.lower() not in drop]
    rec["tags"] = sorted(current, key=str.lower)
    rec["updatedAt"] = app.store.now()
    app.dirty = True
    view = OrderView(app, rec) if kind == "Order" else CustomerView(app, rec)
    return {"node": view, "userErrors": []}


def resolve_tags_add(_root, info, id, tags):
    return _tags(info, id, tags, True)


def resolve_tags_remove(_root, info, id, tags):
    return _tags(info, id, tags, False)


def order_summary(app, rec: dict) -> dict:
    t = order_totals(rec)
    return {"id": gid("Order", rec["num"]), "name": rec["name"], "email": rec.get("email"),
            "customer": gid("Customer", rec["customer"]) if rec.get("customer") else None,
            "financialStatus": rec.get("financialStatus"), "tags": sorted(rec.get("tags") or [], key=str.lower),
            "createdAt": rec["createdAt"], "updatedAt": rec["updatedAt"], "currency": rec["currency"],
            "total": str(t["total"]), "paid": str(t["paid"]), "refunded": str(t["refunded"]),
            "paymentGatewayNames": OrderView(app, rec).paymentGatewayNames,
            "lines": [{"id": gid("LineItem", l["num"]), "title": l["title"], "sku": l.get("sku"),
                       "quantity": l["quantity"], "price": l["price"], "isGiftCard": bool(l.get("isGiftCard")),
                       "attributes": l.get("attributes") or []} for l in rec["lines"]],
            "transactions": [{"id": gid("OrderTransaction", x["num"]), "kind": x["kind"], "status": x["status"],
                              "gateway": x["gateway"], "amount": x["amount"], "receipt": x.get("receipt") or {},
                              "processedAt": x["processedAt"]} for x in rec["transactions"]]}


__all__ = ["CustomerView", "OrderView", "LineItemView", "OrderTransactionView", "GraphQLError"]
