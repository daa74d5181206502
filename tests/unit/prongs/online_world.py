"""A small world of fakes for the Shopify prongs (purchases, redemptions, reconcile)."""
from __future__ import annotations

from giftsync.domain.ledger import ledger_balance

from dataclasses import dataclass, field
from decimal import Decimal

import pytest

from giftsync.adapters.fakes import FakeCardBook, FakeClock, FakeGiftCardLedger, FakeMessenger, FakeShopifyOrders
from giftsync.domain.cards import CardKind, CardSource, MirrorCard
from giftsync.domain.codes import CodeHasher, generate_code
from giftsync.domain.emails import EmailEvent, Metric
from giftsync.prongs.online import OnlineOptions
from giftsync.prongs.options import StoreOptions
from giftsync.prongs.reconcile import ReconcileProng
from giftsync.prongs.shopify_purchases import ShopifyPurchases
from giftsync.prongs.shopify_redemptions import ShopifyRedemptions

SECRET = b"unit-test-secret-0123456789abcdef"
ADMIN = "admin@giftsync.test"
SKU = "GS-CARD"


@dataclass
class Online:
    clock: FakeClock
    book: FakeCardBook
    ledger: FakeGiftCardLedger
    orders: FakeShopifyOrders
    messenger: FakeMessenger
    hasher: CodeHasher
    options: StoreOptions
    online: OnlineOptions
    purchases: ShopifyPurchases = field(init=False)
    redemptions: ShopifyRedemptions = field(init=False)
    reconcile: ReconcileProng = field(init=False)

    def __post_init__(self) -> None:
        self.rebuild()

    def rebuild(self, book=None, ledger=None, orders=None, messenger=None) -> None:
        book = book or self.book
        ledger = ledger or self.ledger
        orders = orders or self.orders
        messenger = messenger or self.messenger
        args = (self.clock, self.hasher, self.options, self.online)
        self.purchases = ShopifyPurchases(book, ledger, orders, messenger, *args)
        self.redemptions = ShopifyRedemptions(book, ledger, orders, messenger, *args)
        self.reconcile = ReconcileProng(book, ledger, messenger, *args)

    def events(self, metric: Metric | None = None) -> list[EmailEvent]:
        return [e for e in self.messenger.sent if metric is None or e.metric == metric]

    def mirrored(self, balance: str = "50.00", *, recipient_email: str = "") -> tuple[str, str, MirrorCard]:
        """A card giftsync issued earlier (in Shopify and mirrored)."""
        code = generate_code()
        shop = self.ledger.add_card(code, balance)
        mirror = self.book.save_cards([MirrorCard(
            record_id=None, shopify_id=shop.id, last4=shop.last4, balance=shop.balance,
            code_hash=self.hasher.hash(code), initial_value=shop.balance, kind=CardKind.DIGITAL,
            source=CardSource.STORE_REQUEST, recipient_email=recipient_email, last_synced=self.clock.now())])[0]
        return code, shop.id, mirror

    def registry(self, key: str):
        return self.book.order_rows.get(key)


@pytest.fixture
def online() -> Online:
    clock = FakeClock()
    ledger = FakeGiftCardLedger(clock)
    return Online(clock=clock, book=FakeCardBook(clock), ledger=ledger, orders=FakeShopifyOrders(ledger, clock),
                  messenger=FakeMessenger(), hasher=CodeHasher(SECRET),
                  options=StoreOptions(admin_email=ADMIN, max_card_amount=Decimal("500"), email_backoff_seconds=0.1),
                  online=OnlineOptions(skus=(SKU,)))


def assert_ledger_adds_up(world: Online) -> None:
    for card in world.book.cards.values():
        shop = world.ledger.balance_of(card.shopify_id)
        assert card.balance == shop, f"mirror {card.balance} != shopify {shop}"
        rows = [r for r in world.book.receipts_for_card(card.record_id) if r.balance_after is not None]
        assert rows, f"no receipt for {card.masked}"
        assert rows[-1].balance_after == shop
        added = ledger_balance(world.book.receipts_for_card(card.record_id), card.initial_value)
        assert added == shop, f"receipts add up to {added}, shopify {shop} ({card.masked})"


def written_text(world: Online) -> str:
    parts = [repr(c) for c in world.book.cards.values()]
    parts += [repr(r) for r in world.book.receipts.values()]
    parts += [repr(e) for e in world.book.order_rows.values()]
    parts += [repr(s) for s in world.book.status.values()]
    parts += [repr(e) for e in world.messenger.sent if not e.carries_code]
    return "\n".join(parts).upper()
