"""A small world of fakes for the store prong."""
from __future__ import annotations

from giftsync.domain.ledger import ledger_balance

import dataclasses
from dataclasses import dataclass, field
from decimal import Decimal

import pytest

from giftsync.adapters.fakes import FakeCardBook, FakeClock, FakeGiftCardLedger, FakeMessenger
from giftsync.domain.cards import CardKind, CardSource, MirrorCard, ShopifyCard
from giftsync.domain.codes import CodeHasher, generate_code
from giftsync.domain.emails import EmailEvent
from giftsync.domain.money import Money
from giftsync.ports import FormTable
from giftsync.prongs.options import StoreOptions
from giftsync.prongs.store import StoreProng

SECRET = b"unit-test-secret-0123456789abcdef"
ADMIN = "admin@giftsync.test"


@dataclass
class World:
    clock: FakeClock
    book: FakeCardBook
    ledger: FakeGiftCardLedger
    messenger: FakeMessenger
    hasher: CodeHasher
    options: StoreOptions
    store: str
    prong: StoreProng = field(init=False)
    codes: list[str] = field(default_factory=list)      # every whole code the test knows

    def __post_init__(self) -> None:
        self.prong = self.new_prong()

    def new_prong(self, **opts) -> StoreProng:
        options = dataclasses.replace(self.options, **opts) if opts else self.options
        return StoreProng(self.book, self.ledger, self.messenger, self.clock, self.hasher, options)

    def run(self):
        return self.prong.run_once()

    def card(self, balance: str = "50.00", *, code: str | None = None, mirrored: bool = True,
             recipient_email: str = "", enabled: bool = True, expires_on=None) -> tuple[str, ShopifyCard, MirrorCard | None]:
        code = code or generate_code()
        self.codes.append(code)
        shop = self.ledger.add_card(code, balance, enabled=enabled, expires_on=expires_on)
        mirror = None
        if mirrored:
            mirror = self.book.save_cards([MirrorCard(
                record_id=None, shopify_id=shop.id, last4=shop.last4, balance=shop.balance,
                code_hash=self.hasher.hash(code), initial_value=shop.balance, kind=CardKind.DIGITAL,
                source=CardSource.IMPORTED, recipient_email=recipient_email)])[0]
        return code, shop, mirror

    def form(self, table: FormTable, rid: str) -> dict:
        return self.book.fields(table, rid)

    def events(self, metric=None) -> list[EmailEvent]:
        return [e for e in self.messenger.sent if metric is None or e.metric == metric]


def usd(x: str) -> Money:
    return Money.of(x, "USD")


def new_world(book: FakeCardBook | None = None, **options) -> World:
    """Fakes on one clock (``book``'s, when a book is given) with one store, Main Street;
    ``options`` replace the suite's StoreOptions below."""
    book = book or FakeCardBook(FakeClock())
    clock = book.clock
    store = book.add_store("Main Street", "main@shop.test")
    options = {"admin_email": ADMIN, "max_card_amount": Decimal("500"), "max_quantity": 40,
               "email_backoff_seconds": 0.5, **options}
    return World(clock=clock, book=book, ledger=FakeGiftCardLedger(clock), messenger=FakeMessenger(),
                 hasher=CodeHasher(SECRET), options=StoreOptions(**options), store=store)


@pytest.fixture
def world() -> World:
    return new_world()


def all_text(world: World) -> str:
    """Everything giftsync wrote that must never hold a whole code (the delivery event excepted)."""
    parts: list[str] = []
    for table in world.book.forms.values():
        parts.extend(repr(f) for f in table.values())
    parts.extend(repr(c) for c in world.book.cards.values())
    parts.extend(repr(r) for r in world.book.receipts.values())
    parts.extend(repr(s) for s in world.book.status.values())
    parts.extend(repr(e) for e in world.messenger.sent if not e.carries_code)
    return "\n".join(parts).upper()


def assert_no_whole_codes(world: World, codes) -> None:
    text = all_text(world)
    for code in codes:
        assert code.upper() not in text, f"whole code ending {code[-4:]} found"


def assert_ledger_adds_up(world: World) -> None:
    for card in world.book.cards.values():
        shop = world.ledger.balance_of(card.shopify_id)
        assert card.balance == shop, f"mirror {card.balance} != shopify {shop}"
        rows = [r for r in world.book.receipts_for_card(card.record_id) if r.balance_after is not None]
        if rows:
            assert rows[-1].balance_after == shop
            added = ledger_balance(world.book.receipts_for_card(card.record_id))
            assert added in (None, shop), f"receipts add up to {added}, shopify {shop} ({card.masked})"
