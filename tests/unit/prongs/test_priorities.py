"""Whose requests go first when a budget is short (giftsync/runtime/budget.py): a store
redemption, then a card request from a shop, then the online orders, then background work.
Each prong's calls are recorded with the priority they were made at."""
from __future__ import annotations

import threading

from giftsync.adapters.fakes import FakeCardBook, FakeClock, FakeShopifyOrders
from giftsync.runtime.budget import NORMAL, ONLINE, URGENT, current_priority

from .conftest import new_world
from .online_world import SKU, online  # noqa: F401 — the fixture


class RecordingBook(FakeCardBook):
    """The fake base, each call recorded with the priority of the thread that made it."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.levels: list[tuple[str, int]] = []
        self._levels_lock = threading.Lock()

    def _enter(self, method: str, *args):
        with self._levels_lock:
            self.levels.append((method, current_priority()))
        return super()._enter(method, *args)


def test_online_orders_run_below_card_requests(online):
    book = RecordingBook(online.clock)
    online.book = book
    online.orders = FakeShopifyOrders(online.ledger, online.clock)
    online.rebuild(book=book, orders=online.orders)
    _, card_id, _ = online.mirrored("80.00")
    book.levels.clear()                  # the test's own setup
    for who in ("ann", "cy"):          # two orders on a page: handled on the purchase pool's threads
        online.orders.purchase([{"sku": SKU, "quantity": 2, "price": "25.00"}], email=f"{who}@example.test")
    assert online.purchases.run_once().orders == 2
    online.orders.purchase([{"sku": "MUG", "quantity": 1, "price": "30"}], email="bo@example.test",
                           gift_card_payments=[(card_id, "30.00")])
    assert online.redemptions.run_once().redeemed == 1
    calls = [(m, level) for m, level in book.levels if m in ("order_entry", "save_order_entries", "save_cards",
                                                            "append_receipts", "open_order_entries")]
    assert {m for m, _ in calls} >= {"save_order_entries", "save_cards", "append_receipts"}
    assert {level for _, level in calls} == {ONLINE}, [c for c in calls if c[1] != ONLINE]


def test_card_requests_and_redemptions_keep_their_places():
    book = RecordingBook(FakeClock())
    world = new_world(book)
    code, _, _ = world.card("50")
    world.book.add_redemption(code, "5", world.store)
    world.book.add_card_request(world.store, "10", 3, recipient_email="r@example.test")
    world.run()
    levels = dict.fromkeys(m for m, _ in book.levels)
    by_method = {m: {lvl for mm, lvl in book.levels if mm == m} for m in levels}
    assert by_method["pending_redemptions"] == {URGENT}
    assert NORMAL in by_method["save_cards"] and ONLINE not in by_method["save_cards"]
    assert URGENT < NORMAL < ONLINE
