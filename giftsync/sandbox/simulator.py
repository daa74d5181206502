"""``giftsync sandbox --simulate``: a steady, bounded stream of shop and online activity.

Every few seconds one thing happens, as a person would do it: a shop redeems a card
(a Store Redemptions record through the Airtable API), a customer pays online with a card
or buys gift cards (Shopify world controls), a customer asks for a balance, a shop requests
cards. Now and then someone mistypes a code or asks for too much, so rejections show up
too. The stream stops after ``max_actions`` (bounded), and never spends a card below zero
on purpose: it reads balances from the Shopify twin first.

It knows the demo codes and learns the codes of new cards from the delivery emails in the
Klaviyo outbox (what a recipient would do); it never shows or logs a whole code.
"""
from __future__ import annotations

import random
import re
import threading
from collections import Counter
from decimal import ROUND_DOWN, Decimal
from typing import Any

from ..domain.codes import last4, normalise_code

CODE_IN_EMAIL = re.compile(r"gift card code:\s*([A-Za-z0-9 -]{8,30})", re.IGNORECASE)
CENT = Decimal("0.01")


class Simulator:
    def __init__(self, world: Any, *, every: float = 4.0, max_actions: int = 300, seed: int | None = None,
                 api: Any = None) -> None:
        from .console.server import ConsoleApi
        self.world = world
        self.api = api or ConsoleApi(world)
        self.every = float(every)
        self.max_actions = int(max_actions)
        self.rng = random.Random(seed)
        self.codes: set[str] = {normalise_code(c.code) for c in world.cards}
        self.counts: Counter[str] = Counter()
        self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> "Simulator":
        self._thread = threading.Thread(target=self._loop, name="sandbox-simulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        parts = ", ".join(f"{n} {k}" for k, n in sorted(self.counts.items()))
        state = "finished" if self.done >= self.max_actions else ("stopped" if self._stop.is_set() else "running")
        return f"{state}: {self.done}/{self.max_actions} actions ({parts or 'none yet'}), one every ~{self.every:g}s"

    def _loop(self) -> None:
        self._stop.wait(min(self.every, 3.0))
        while not self._stop.is_set() and self.done < self.max_actions:
            try:
                self.step()
            except Exception:  # noqa: BLE001 - a busy twin (429) or a refused action: try something else next time
                self.errors += 1
            self._stop.wait(self.every * self.rng.uniform(0.6, 1.4))

    # -- one action -----------------------------------------------------------------------
    def step(self) -> str:
        self._learn_codes()
        action = self.rng.choices(
            ["redemption", "online payment", "online purchase", "balance check", "card request"],
            weights=[40, 22, 18, 12, 8])[0]
        getattr(self, "_" + action.replace(" ", "_"))()
        self.counts[action] += 1
        return action

    def _balances(self) -> list[tuple[str, Decimal]]:
        """(code, balance) for the usable cards whose code the simulator knows."""
        by_last4 = {last4(c): c for c in self.codes}
        out = []
        for card in self.api.shopify_cards()["cards"]:
            code = by_last4.get(str(card.get("lastCharacters", "")).upper())
            if code and card.get("enabled") and not card.get("deactivatedAt") and card.get("visible", True):
                bal = Decimal(str(card["balance"]))
                if bal > 0:
                    out.append((code, bal))
        return out

    def _amount(self, cap: Decimal, low: str = "1") -> Decimal:
        hi = min(cap, Decimal("45"))
        if hi <= Decimal(low):
            return hi.quantize(CENT, ROUND_DOWN)
        value = Decimal(str(self.rng.uniform(float(low), float(hi))))
        if self.rng.random() < 0.5:
            value = value.quantize(Decimal("1"), ROUND_DOWN)
        return max(CENT, value.quantize(CENT, ROUND_DOWN))

    def _typed(self, code: str) -> str:
        """As staff type it: sometimes in groups of four, sometimes lower case."""
        if self.rng.random() < 0.4:
            code = " ".join(code[i:i + 4] for i in range(0, len(code), 4))
        return code.lower() if self.rng.random() < 0.2 else code

    def _redemption(self) -> None:
        store = self.rng.choice(self.world.stores)
        cards = self._balances()
        staff = self.rng.choice(["Sam", "Priya", "Jonas", "Mei", "Tom"])
        roll = self.rng.random()
        if not cards or roll < 0.06:       # a mistyped code
            code = normalise_code(self.rng.choice(sorted(self.codes)))
            code = code[:-1] + ("Z" if code[-1] != "Z" else "Y")
            amount = Decimal(self.rng.randint(5, 20))
        else:
            code, bal = self.rng.choice(cards)
            # at most half of what is left: cards wear down slowly and stay usable for a person trying things
            amount = bal + Decimal(self.rng.randint(1, 10)) if roll < 0.12 else self._amount(bal / 2)
        self.api.submit_redemption({"store": store.record_id, "code": self._typed(code), "amount": str(amount),
                                    "staff": staff, "note": "simulated"})

    def _online_payment(self) -> None:
        cards = [(c, b) for c, b in self._balances() if b >= 1]
        if not cards:
            return self._online_purchase()
        code, bal = self.rng.choice(cards)
        goods = [p for p in self.world.catalogue if not p.giftsync and not p.gift_card]
        product = self.rng.choice(goods)
        # part of the price with the card (at most half its balance), the rest by bank card
        share = Decimal(str(self.rng.uniform(0.2, 1.0)))
        amount = max(CENT, min(product.price * share, bal / 2).quantize(CENT, ROUND_DOWN))
        customer = self.rng.choice(self.world.customers)
        self.api.shopify_pay({"email": customer.email, "sku": product.sku, "code": code, "amount": str(amount)})

    def _online_purchase(self) -> None:
        customer = self.rng.choice(self.world.customers)
        products = [p for p in self.world.catalogue if p.giftsync or p.gift_card]
        product = self.rng.choice(products)
        line: dict[str, Any] = {"sku": product.sku, "quantity": 1 if self.rng.random() < 0.8 else 2}
        if self.rng.random() < 0.4:
            friend = self.rng.choice([c for c in self.world.customers if c is not customer])
            line.update(recipient_email=friend.email, recipient_name=friend.name, message="Happy birthday!")
        self.api.shopify_buy({"email": customer.email, "lines": [line]})

    def _balance_check(self) -> None:
        customer = self.rng.choice(self.world.customers)
        code = self.rng.choice(sorted(self.codes))
        self.api.submit_balance_check({"code": self._typed(code), "email": customer.email})

    def _card_request(self) -> None:
        store = self.rng.choice(self.world.stores)
        recipient = self.rng.choice(self.world.customers)
        self.api.submit_card_request({"store": store.record_id, "amount": self.rng.choice(["25", "50", "75"]),
                                      "quantity": "1", "kind": "Digital", "recipient_name": recipient.name,
                                      "recipient_email": recipient.email, "staff": "Sam"})

    def _learn_codes(self) -> None:
        try:
            emails = self.api.outbox()["emails"]
        except Exception:  # noqa: BLE001
            return
        for m in emails:
            if m.get("metric") != "Gift Card Delivered":
                continue
            found = CODE_IN_EMAIL.search(m.get("body") or "")
            if found:
                code = normalise_code(found.group(1))
                if 8 <= len(code) <= 20:
                    self.codes.add(code)
