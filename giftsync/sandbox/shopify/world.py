"""World controls: what happens in the shop outside the Admin API (customers buying online, paying with
gift cards, refunds, admin adjustments). Reached as Python methods on the app and as JSON endpoints
under /__sandbox/shopify/… — never through the Admin API itself.
"""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from .giftcards import card_summary, is_expired
from .orders import order_summary, order_totals
from .store import normalise_code
from .values import gid, iso, parse_datetime, split_gid, to_decimal


class WorldError(ValueError):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


RECIPIENT_KEYS = {"recipient email": "email", "recipient_email": "email", "recipient name": "name",
                  "recipient_name": "name", "message": "message", "recipient message": "message",
                  "send on": "send_on", "send_on": "send_on"}


class World:
    def __init__(self, app) -> None:
        self.app = app

    @property
    def store(self):
        return self.app.store

    # -- lookups ---------------------------------------------------------------------------
    def _card(self, ref: Any, *, include_hidden: bool = True) -> dict:
        if isinstance(ref, dict):
            ref = ref.get("id") or ref.get("code")
        parts = split_gid(ref) if isinstance(ref, str) else None
        if parts and parts[0] == "GiftCard":
            rec = self.store.card(parts[1], include_hidden=include_hidden)
        elif isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit() and len(ref) >= 12
                                      and self.store.card(int(ref), include_hidden=True)):
            rec = self.store.card(int(ref), include_hidden=include_hidden)
        elif isinstance(ref, str):
            rec = self.store.card_by_code(ref, include_hidden=include_hidden)
        else:
            rec = None
        if rec is None:
            raise WorldError(f"gift card not found: {_mask(ref)}", 404)
        return rec

    def _order(self, ref: Any) -> dict:
        parts = split_gid(ref) if isinstance(ref, str) else None
        num = parts[1] if parts and parts[0] == "Order" else (int(ref) if str(ref).isdigit() else None)
        rec = self.store.order(num)
        if rec is None:
            for o in self.store.orders():
                if o["name"] == ref or o["name"] == f"#{ref}":
                    rec = o
        if rec is None:
            raise WorldError(f"order not found: {ref}", 404)
        return rec

    def _customer_ref(self, ref: Any, create: bool = True) -> dict | None:
        if ref is None:
            return None
        if isinstance(ref, dict):
            if ref.get("id"):
                return self._customer_ref(ref["id"], create)
            if ref.get("email"):
                found = self.store.customer_by_email(ref["email"])
                if found or not create:
                    return found
                return self.store.add_customer(email=ref["email"], first_name=ref.get("firstName"),
                                               last_name=ref.get("lastName"), phone=ref.get("phone"))
            if create and (ref.get("firstName") or ref.get("lastName")):
                return self.store.add_customer(first_name=ref.get("firstName"), last_name=ref.get("lastName"),
                                               phone=ref.get("phone"))
            return None
        parts = split_gid(ref) if isinstance(ref, str) else None
        if parts and parts[0] == "Customer":
            c = self.store.customer(parts[1])
            if c is None:
                raise WorldError(f"customer not found: {ref}", 404)
            return c
        if isinstance(ref, str) and "@" in ref:
            return self._customer_ref({"email": ref}, create)
        raise WorldError(f"bad customer reference: {ref!r}")

    # -- customers -------------------------------------------------------------------------
    def create_customer(self, email: str | None = None, firstName: str | None = None, lastName: str | None = None,
                        phone: str | None = None, note: str | None = None, tags: list | None = None,
                        id: Any = None) -> dict:
        num = None
        if id is not None:
            parts = split_gid(id) if isinstance(id, str) else None
            num = parts[1] if parts else int(id)
        if email and self.store.customer_by_email(email):
            raise WorldError(f"a customer with email {email} already exists")
        rec = self.store.add_customer(email=email, first_name=firstName, last_name=lastName, phone=phone,
                                      note=note, tags=tags, num=num)
        self.app.dirty = True
        return customer_summary(rec)

    # -- purchases -------------------------------------------------------------------------
    def purchase(self, body: dict) -> dict:
        """A customer buys online: an order with lines (giftsync SKUs, native gift cards, anything),
        optionally paid partly or wholly with gift cards; native gift-card lines issue cards."""
        if not isinstance(body, dict):
            raise WorldError("body must be an object")
        lines_in = body.get("lines") or []
        if not lines_in:
            raise WorldError("an order needs at least one line")
        currency = body.get("currency") or self.app.shop_currency
        customer = self._customer_ref(body.get("customer") or (body.get("email") and {"email": body["email"]}))
        when = iso(parse_datetime(body["createdAt"])) if body.get("createdAt") else self.store.now()
        lines = []
        for raw in lines_in:
            if not isinstance(raw, dict):
                raise WorldError("each line must be an object")
            product = self.store.product(raw.get("sku")) or {}
            price = raw.get("price", product.get("price"))
            if price is None:
                raise WorldError(f"line {raw.get('sku') or raw.get('title')!r} has no price and no seeded product")
            qty = int(raw.get("quantity", 1))
            if qty < 1:
                raise WorldError("quantity must be at least 1")
            is_gc = bool(raw.get("isGiftCard", raw.get("gift_card", product.get("isGiftCard", False))))
            title = raw.get("title") or product.get("title") or (raw.get("sku") or "Item")
            lines.append({"num": None, "title": title, "name": raw.get("name") or title,
                          "sku": raw.get("sku") if raw.get("sku") is not None else product.get("sku"),
                          "quantity": qty, "price": str(to_decimal(price)), "isGiftCard": is_gc,
                          "attributes": _attributes(raw.get("properties") or raw.get("customAttributes")),
                          "requiresShipping": bool(raw.get("requiresShipping", product.get("requiresShipping",
                                                                                          not is_gc)))})
        total = sum((to_decimal(l["price"]) * l["quantity"] for l in lines), Decimal(0))
        payments = self._check_payments(body.get("gift_card_payments") or body.get("giftCardPayments") or [],
                                         currency, total)
        status = (body.get("financialStatus") or body.get("financial_status") or "PAID").upper()
        # -- nothing is changed above this line; from here on everything applies -----------------
        num = None
        if body.get("id") is not None:
            parts = split_gid(body["id"]) if isinstance(body["id"], str) else None
            num = parts[1] if parts else int(body["id"])
            self.store.reserve_id("Order", num)
        else:
            num = self.store.new_id("Order")
        for l in lines:
            l["num"] = self.store.new_id("LineItem")
        order = {"num": num, "name": body.get("name") or self.store.next_order_name(),
                 "email": body.get("email") or (customer or {}).get("email"),
                 "phone": body.get("phone"), "note": body.get("note"),
                 "customer": customer["num"] if customer else None, "createdAt": when, "updatedAt": when,
                 "processedAt": when, "cancelledAt": None, "closedAt": None, "financialStatus": status,
                 "tags": sorted(body.get("tags") or [], key=str.lower), "test": bool(body.get("test", False)),
                 "sourceName": body.get("sourceName", "web"), "currency": currency, "lines": lines,
                 "transactions": [], "confirmationNumber": None}
        self.store.data["orders"][str(num)] = order
        paid_by_cards = self._apply_payments(order, payments, when)
        rest = total - paid_by_cards
        if rest > 0 and status in ("PAID", "PARTIALLY_REFUNDED", "REFUNDED"):
            self._order_tx(order, "SALE", body.get("gateway", "bogus"), rest, when, {})
        issued = self._issue_native_cards(order, body)
        self.app.dirty = True
        out = order_summary(self.app, order)
        out["issuedGiftCards"] = [card_summary(c, include_code=bool(body.get("include_codes"))) for c in issued]
        return out

    def pay(self, order_ref: Any, body: dict) -> dict:
        """Add gift-card payments (and optionally a gateway payment) to an existing order."""
        order = self._order(order_ref)
        t = order_totals(order)
        outstanding = t["total"] - t["paid"]
        payments = self._check_payments(body.get("gift_card_payments") or body.get("giftCardPayments") or [],
                                        order["currency"], outstanding)
        now = self.store.now()
        paid = self._apply_payments(order, payments, now)
        if body.get("gateway_amount"):
            self._order_tx(order, "SALE", body.get("gateway", "bogus"), to_decimal(body["gateway_amount"]), now, {})
        t = order_totals(order)
        order["financialStatus"] = "PAID" if t["paid"] >= t["total"] else ("PARTIALLY_PAID" if t["paid"] > 0
                                                                            else order["financialStatus"])
        order["updatedAt"] = now
        self.app.dirty = True
        return order_summary(self.app, order)

    def _check_payments(self, payments: list, currency: str, limit: Decimal) -> list[tuple[dict, Decimal]]:
        out = []
        total = Decimal(0)
        for p in payments:
            if not isinstance(p, dict) or "amount" not in p:
                raise WorldError("a gift-card payment needs a card (code or id) and an amount")
            card = self._card(p.get("id") or p.get("code") or p.get("gift_card"), include_hidden=False)
            amount = to_decimal(p["amount"])
            if amount <= 0:
                raise WorldError("gift-card payment amounts must be positive")
            if not card["enabled"]:
                raise WorldError(f"gift card {_mask(card['code'])} is deactivated", 409)
            if is_expired(self.app, card):
                raise WorldError(f"gift card {_mask(card['code'])} has expired", 409)
            if card["currency"] != currency:
                raise WorldError("gift card currency does not match the order currency", 409)
            already = sum((a for c, a in out if c is card), Decimal(0))
            if amount + already > to_decimal(card["balance"]):
                raise WorldError(f"gift card {_mask(card['code'])} has insufficient funds", 409)
            total += amount
            out.append((card, amount))
        if total > limit:
            raise WorldError(f"gift-card payments ({total}) exceed what is due ({limit})")
        return out

    def _apply_payments(self, order: dict, payments: list, when: str) -> Decimal:
        paid = Decimal(0)
        for card, amount in payments:
            self.store.add_card_transaction(card, kind="debit", amount=-amount, note=None, processed_at=when,
                                            order=order["num"], bump_updated_at=self.app.bump_updated_at_on_transactions)
            self._order_tx(order, "SALE", "gift_card", amount, when,
                           {"gift_card_id": card["num"], "gift_card_last_characters": card["code"][-4:]})
            paid += amount
        return paid

    def _order_tx(self, order: dict, kind: str, gateway: str, amount: Decimal, when: str, receipt: dict,
                  parent: int | None = None) -> dict:
        tx = {"num": self.store.new_id("OrderTransaction"), "kind": kind, "status": "SUCCESS", "gateway": gateway,
              "amount": str(amount), "processedAt": when, "createdAt": when, "receipt": receipt, "parent": parent,
              "test": order.get("test", False)}
        order["transactions"].append(tx)
        return tx

    def _issue_native_cards(self, order: dict, body: dict) -> list[dict]:
        delay_s = body.get("native_delay_seconds", self.app.native_delay_seconds) or 0
        delay_n = body.get("native_delay_requests", 0) or 0
        hidden = None
        if delay_s or delay_n:
            until = iso(self.app.clock() + timedelta(seconds=float(delay_s))) if delay_s else None
            hidden = {"until": until, "requests": int(delay_n) if delay_n else None}
        issued = []
        for line in order["lines"]:
            if not line["isGiftCard"]:
                continue
            recipient = self._recipient_from_attributes(line.get("attributes") or [])
            for _ in range(line["quantity"]):
                card = self.store.add_card(amount=line["price"], currency=order["currency"], source="purchased",
                                           customer=order["customer"], recipient=recipient, order=order["num"],
                                           line_item=line["num"], hidden=dict(hidden) if hidden else None,
                                           created_at=order["createdAt"])
                issued.append(card)
        return issued

    def _recipient_from_attributes(self, attrs: list[dict]) -> dict | None:
        found: dict[str, str] = {}
        for a in attrs:
            k = RECIPIENT_KEYS.get(str(a.get("key", "")).strip().lower())
            if k and a.get("value"):
                found[k] = a["value"]
        if not found.get("email"):
            return None
        cust = self.store.customer_by_email(found["email"])
        if cust is None:
            name = (found.get("name") or "").split(" ", 1)
            cust = self.store.add_customer(email=found["email"], first_name=name[0] or None,
                                           last_name=name[1] if len(name) > 1 else None)
        send = found.get("send_on")
        return {"customer": cust["num"], "preferredName": found.get("name"), "message": found.get("message"),
                "sendNotificationAt": iso(parse_datetime(send)) if send else None}

    def release_pending_cards(self) -> list[dict]:
        released = []
        for c in self.store.cards(include_hidden=True):
            if c.get("hidden"):
                c["hidden"] = None
                released.append(card_summary(c))
        self.app.dirty = True
        return released

    # -- refunds and adjustments -----------------------------------------------------------------
    def refund(self, order_ref: Any, body: dict) -> dict:
        """Refund part of an order back onto a gift card: a credit on the card and a REFUND transaction."""
        order = self._order(order_ref)
        amount = to_decimal(body.get("amount"))
        if amount <= 0:
            raise WorldError("refund amount must be positive")
        card = self._card(body.get("gift_card") or body.get("id") or body.get("code"))
        if card["currency"] != order["currency"]:
            raise WorldError("gift card currency does not match the order currency", 409)
        t = order_totals(order)
        if t["refunded"] + amount > t["paid"]:
            raise WorldError(f"refund exceeds what was paid ({t['paid'] - t['refunded']} left)", 409)
        now = self.store.now()
        parent = next((x["num"] for x in order["transactions"] if x["gateway"] == "gift_card"
                       and (x.get("receipt") or {}).get("gift_card_id") == card["num"]), None)
        self.store.add_card_transaction(card, kind="credit", amount=amount, note=body.get("note"), processed_at=now,
                                        order=order["num"], bump_updated_at=self.app.bump_updated_at_on_transactions)
        self._order_tx(order, "REFUND", "gift_card", amount, now,
                       {"gift_card_id": card["num"], "gift_card_last_characters": card["code"][-4:]}, parent)
        t = order_totals(order)
        order["financialStatus"] = "REFUNDED" if t["refunded"] >= t["paid"] else "PARTIALLY_REFUNDED"
        order["updatedAt"] = now
        self.app.dirty = True
        return order_summary(self.app, order)

    def adjust(self, card_ref: Any, body: dict) -> dict:
        """An admin changes a card's balance in the Shopify admin: credit (+) or debit (-), no order."""
        card = self._card(card_ref)
        amount = to_decimal(body.get("amount"))
        if amount == 0:
            raise WorldError("amount must not be zero")
        if amount < 0 and -amount > to_decimal(card["balance"]):
            raise WorldError("INSUFFICIENT_FUNDS: the card's balance is lower than the debit", 409)
        if amount > 0 and to_decimal(card["balance"]) + amount > to_decimal(self.app.issue_limit):
            raise WorldError("GIFT_CARD_LIMIT_EXCEEDED: the card's value would exceed the issue limit", 409)
        self.store.add_card_transaction(card, kind="credit" if amount > 0 else "debit", amount=amount,
                                        note=body.get("note"), processed_at=None,
                                        bump_updated_at=self.app.bump_updated_at_on_transactions)
        self.app.dirty = True
        return card_summary(card)

    def issue_card(self, body: dict) -> dict:
        """An admin issues a card by hand in the Shopify admin (source: manual); the answer shows the code."""
        amount = to_decimal(body.get("amount", body.get("initialValue")))
        if amount <= 0:
            raise WorldError("amount must be positive")
        code = body.get("code")
        if code is not None:
            code = normalise_code(code)
            if not (8 <= len(code) <= 20 and code.isalnum()):
                raise WorldError("code must be 8-20 letters and digits")
            if self.store.code_taken(code):
                raise WorldError("Code has already been taken", 409)
        customer = self._customer_ref(body.get("customer"), create=True) if body.get("customer") else None
        card = self.store.add_card(amount=amount, currency=body.get("currency") or self.app.shop_currency, code=code,
                                   source=body.get("source", "manual"), note=body.get("note"),
                                   expires_on=body.get("expiresOn"), customer=customer["num"] if customer else None)
        self.app.dirty = True
        return card_summary(card, include_code=True)

    def deactivate_card(self, card_ref: Any) -> dict:
        card = self._card(card_ref)
        if card["enabled"]:
            now = self.store.now()
            card.update(enabled=False, deactivatedAt=now, updatedAt=now)
            self.app.dirty = True
        return card_summary(card)

    # -- reading the world ---------------------------------------------------------------------
    def cards(self, include_codes: bool = False) -> list[dict]:
        return [card_summary(c, include_code=include_codes)
                for c in sorted(self.store.cards(include_hidden=True), key=lambda c: c["num"])]

    def orders(self) -> list[dict]:
        return [order_summary(self.app, o) for o in sorted(self.store.orders(), key=lambda o: o["num"])]

    def customers(self) -> list[dict]:
        return [customer_summary(c) for c in sorted(self.store.data["customers"].values(), key=lambda c: c["num"])]


def customer_summary(rec: dict) -> dict:
    return {"id": gid("Customer", rec["num"]), "email": rec.get("email"), "firstName": rec.get("firstName"),
            "lastName": rec.get("lastName"), "phone": rec.get("phone"), "tags": rec.get("tags") or []}


def _attributes(value: Any) -> list[dict]:
    if not value:
        return []
    if isinstance(value, dict):
        return [{"key": str(k), "value": None if v is None else str(v)} for k, v in value.items()]
    return [{"key": str(a["key"]), "value": None if a.get("value") is None else str(a["value"])} for a in value]


def _mask(ref: Any) -> str:
    text = str(ref)
    if text.startswith("gid://"):
        return text
    return "…" + text[-4:] if len(text) > 4 else "…"
