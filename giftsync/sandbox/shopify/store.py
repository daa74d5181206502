"""The Shopify twin's state: customers, products, gift cards (with their transactions), orders.

Everything is plain JSON-able dicts so ``snapshot()``/``restore()`` are a copy. Amounts are
decimal strings, times ISO-8601 UTC strings (second precision), ids the numeric tails of GIDs.
Callers hold the app lock (the TwinServer runs every handler under it).
"""
from __future__ import annotations

import copy
import secrets
import string
from datetime import datetime
from decimal import Decimal
from typing import Any, Callable

from .values import iso, to_decimal

# Where each id sequence starts: 12-14 digit numbers like the real ones, increasing per type.
ID_BASES = {
    "GiftCard": 700000000001,
    "GiftCardCreditTransaction": 250000000001,
    "GiftCardDebitTransaction": 250000000001,   # shares the sequence with credits (one history)
    "Customer": 11000000000001,
    "Order": 7000000000001,
    "LineItem": 17000000000001,
    "OrderTransaction": 11000000000001,
    "Notification": 1,
}
SHARED_SEQUENCE = {"GiftCardDebitTransaction": "GiftCardCreditTransaction"}
CODE_ALPHABET = string.ascii_lowercase + string.digits


def empty_state() -> dict:
    return {
        "version": 1,
        "next_ids": {},
        "next_order_number": 1001,
        "customers": {},
        "products": {},
        "cards": {},
        "orders": {},
        "notifications": [],
        "graphql_requests": 0,
    }


class Store:
    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.clock = clock
        self.data = empty_state()

    # -- housekeeping -------------------------------------------------------------------
    def reset(self) -> None:
        self.data = empty_state()

    def snapshot(self) -> dict:
        return copy.deepcopy(self.data)

    def restore(self, data: dict) -> None:
        fresh = empty_state()
        fresh.update(copy.deepcopy(data or {}))
        self.data = fresh

    def now(self) -> str:
        return iso(self.clock())

    def new_id(self, kind: str) -> int:
        key = SHARED_SEQUENCE.get(kind, kind)
        ids = self.data["next_ids"]
        n = ids.get(key, ID_BASES.get(key, 100000000001))
        ids[key] = n + 1
        return n

    def reserve_id(self, kind: str, num: int) -> None:
        """Make sure generated ids of ``kind`` stay above a seeded one."""
        key = SHARED_SEQUENCE.get(kind, kind)
        ids = self.data["next_ids"]
        ids[key] = max(ids.get(key, ID_BASES.get(key, 100000000001)), num + 1)

    # -- customers ----------------------------------------------------------------------
    def customer(self, num: int | None) -> dict | None:
        return None if num is None else self.data["customers"].get(str(num))

    def add_customer(self, *, email: str | None = None, first_name: str | None = None,
                     last_name: str | None = None, phone: str | None = None, note: str | None = None,
                     tags: list[str] | None = None, num: int | None = None) -> dict:
        if num is None:
            num = self.new_id("Customer")
        else:
            self.reserve_id("Customer", num)
        now = self.now()
        rec = {"num": num, "email": email, "firstName": first_name, "lastName": last_name, "phone": phone,
               "note": note, "tags": sorted(tags or [], key=str.lower), "createdAt": now, "updatedAt": now}
        self.data["customers"][str(num)] = rec
        return rec

    def customer_by_email(self, email: str) -> dict | None:
        e = email.strip().lower()
        for c in self.data["customers"].values():
            if (c.get("email") or "").lower() == e:
                return c
        return None

    # -- gift cards ---------------------------------------------------------------------
    def card(self, num: int | None, *, include_hidden: bool = False) -> dict | None:
        if num is None:
            return None
        rec = self.data["cards"].get(str(num))
        if rec is None or (rec.get("hidden") and not include_hidden):
            return None
        return rec

    def cards(self, *, include_hidden: bool = False) -> list[dict]:
        return [c for c in self.data["cards"].values() if include_hidden or not c.get("hidden")]

    def code_taken(self, code: str) -> bool:
        c = code.lower()
        return any(rec["code"] == c for rec in self.data["cards"].values())

    def card_by_code(self, code: str, *, include_hidden: bool = True) -> dict | None:
        c = normalise_code(code)
        for rec in self.data["cards"].values():
            if rec["code"] == c and (include_hidden or not rec.get("hidden")):
                return rec
        return None

    def random_code(self) -> str:
        while True:
            code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(16))
            if not self.code_taken(code):
                return code

    def add_card(self, *, amount: Any, currency: str, code: str | None = None, source: str = "api_client",
                 note: str | None = None, expires_on: str | None = None, customer: int | None = None,
                 recipient: dict | None = None, template_suffix: str | None = None, order: int | None = None,
                 line_item: int | None = None, strategy: str = "MARKET_FX", hidden: dict | None = None,
                 num: int | None = None, created_at: str | None = None) -> dict:
        if num is None:
            num = self.new_id("GiftCard")
        else:
            self.reserve_id("GiftCard", num)
        now = created_at or self.now()
        value = str(to_decimal(amount))
        rec = {
            "num": num, "code": (code or self.random_code()).lower(), "currency": currency,
            "initial": value, "balance": value, "enabled": True, "deactivatedAt": None,
            "expiresOn": expires_on, "note": note, "templateSuffix": template_suffix,
            "customer": customer, "recipient": recipient, "order": order, "lineItem": line_item,
            "source": source, "strategy": strategy, "createdAt": now, "updatedAt": now,
            "hidden": hidden, "transactions": [],
        }
        self.data["cards"][str(num)] = rec
        return rec

    def add_card_transaction(self, card: dict, *, kind: str, amount: Decimal, note: str | None,
                             processed_at: str | None = None, order: int | None = None,
                             bump_updated_at: bool = True) -> dict:
        """Apply a credit (amount > 0) or debit (amount < 0) and record it; no checks here."""
        type_name = "GiftCardCreditTransaction" if kind == "credit" else "GiftCardDebitTransaction"
        now = self.now()
        tx = {"num": self.new_id(type_name), "kind": kind, "amount": str(amount),
              "processedAt": processed_at or now, "createdAt": now, "note": note, "order": order}
        card["balance"] = str(to_decimal(card["balance"]) + amount)
        card["transactions"].append(tx)
        if bump_updated_at:
            card["updatedAt"] = now
        return tx

    def find_card_transaction(self, kind: str, num: int) -> tuple[dict, dict] | None:
        for card in self.data["cards"].values():
            for tx in card["transactions"]:
                if tx["num"] == num and tx["kind"] == kind:
                    return card, tx
        return None

    def release_hidden_cards(self, *, count_request: bool) -> None:
        """Native cards bought online become visible after their delay (seconds or API requests)."""
        if count_request:
            self.data["graphql_requests"] += 1
        now = self.now()
        for card in self.data["cards"].values():
            h = card.get("hidden")
            if not h:
                continue
            if h.get("requests") is not None and count_request:
                h["requests"] -= 1
            due_time = h.get("until") is None or h["until"] <= now
            due_reqs = h.get("requests") is None or h["requests"] <= 0
            if due_time and due_reqs:
                card["hidden"] = None

    # -- orders -------------------------------------------------------------------------
    def order(self, num: int | None) -> dict | None:
        return None if num is None else self.data["orders"].get(str(num))

    def orders(self) -> list[dict]:
        return list(self.data["orders"].values())

    def next_order_name(self) -> str:
        n = self.data["next_order_number"]
        self.data["next_order_number"] = n + 1
        return f"#{n}"

    def find_line_item(self, num: int) -> tuple[dict, dict] | None:
        for order in self.data["orders"].values():
            for line in order["lines"]:
                if line["num"] == num:
                    return order, line
        return None

    def find_order_transaction(self, num: int) -> tuple[dict, dict] | None:
        for order in self.data["orders"].values():
            for tx in order["transactions"]:
                if tx["num"] == num:
                    return order, tx
        return None

    # -- products -----------------------------------------------------------------------
    def product(self, sku: str | None) -> dict | None:
        return None if not sku else self.data["products"].get(sku)


def normalise_code(code: str) -> str:
    return "".join(ch for ch in str(code) if ch not in " -").lower()
