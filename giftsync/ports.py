"""The outside world as the prongs see it. Adapters implement these over pyairtable, gql and
klaviyo-api; ``giftsync.adapters.fakes`` implements them in memory for unit tests.

All methods may raise ``giftsync.errors.RetriableError`` / ``AmbiguousError`` / ``FatalError``.
Amounts are ``Money`` (Decimal); times are timezone-aware UTC datetimes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import Enum
from typing import Iterable, Iterator, Protocol

from .domain.cards import CardTransaction, MirrorCard, ShopifyCard
from .domain.emails import EmailEvent
from .domain.forms import BalanceCheckForm, CardRequestForm, RedemptionForm, Store
from .domain.ledger import Receipt
from .domain.money import Money


class FormTable(str, Enum):
    REDEMPTIONS = "Store Redemptions"
    CARD_REQUESTS = "Card Requests"
    BALANCE_CHECKS = "Balance Checks"


@dataclass
class StatusRow:
    """A row of the Status table: the lease ("lease") or a prong's cursor ("cursor:<prong>")."""
    name: str
    record_id: str | None = None
    state: str = ""                 # Online / Offline
    holder: str = ""
    heartbeat: datetime | None = None
    lease_until: datetime | None = None
    cursor: str = ""
    last_run: datetime | None = None
    details: str = ""


class OrderKind(str, Enum):
    PURCHASE = "Purchase"
    REDEMPTION = "Redemption"


class OrderStatus(str, Enum):
    PROCESSING = "Processing"      # claimed; cards may be half made (Attempt holds the nonce)
    WAITING = "Waiting"            # Shopify has not issued every native card yet: retried later
    DONE = "Done"
    SKIPPED = "Skipped"            # bad data: nothing more will be done (Details says why)


@dataclass
class OrderEntry:
    """A row of the Online Orders registry: an order giftsync has handled (or is handling).

    ``order_key`` is the upsert key, ``<kind>:<numeric order id>`` (an order can be both a
    purchase and a redemption). ``transactions`` are the order transactions already applied
    (redemptions and refunds); the adapter keeps them in Details on a line of their own.
    """
    order_key: str
    order: str                      # the order's name, e.g. "#1001"
    shopify_id: str
    kind: OrderKind
    status: OrderStatus
    card_ids: list[str] = field(default_factory=list)
    attempt: str = ""
    processed_at: datetime | None = None
    details: str = ""
    transactions: list[str] = field(default_factory=list)
    record_id: str | None = None


class CardBook(Protocol):
    """The Airtable base."""

    # -- forms ---------------------------------------------------------------------------
    def pending_redemptions(self, limit: int = 100, *, with_unnotified: bool = False) -> list[RedemptionForm]:
        """Records with Status blank/New or Processing (to resume), oldest first. With
        ``with_unnotified`` the records ``unnotified`` would list follow them, from the same
        request (up to ``limit`` of each)."""
    def pending_card_requests(self, limit: int = 100, *, with_unnotified: bool = False) -> list[CardRequestForm]: ...
    def pending_balance_checks(self, limit: int = 100, *, with_unnotified: bool = False) -> list[BalanceCheckForm]: ...
    def unnotified(self, table: FormTable, limit: int = 100) -> list[RedemptionForm | CardRequestForm | BalanceCheckForm]:
        """Done/Rejected records whose Notified box is not ticked (emails to resend)."""
    def update_forms(self, table: FormTable, updates: dict[str, dict]) -> dict[str, dict]:
        """Write giftsync's fields on form records: {record_id: {"Status": ..., ...}} (batched by 10).
        Returns the records as Airtable answered: {record_id: {field name: JSON value}} (links as
        lists of record ids, empty cells absent) — a caller can check what was stored.

        Keys are the field names of config/base_schema.json. Values as the prongs pass them:
        str (text, single select), bool (checkbox), int (number), Decimal (currency fields,
        e.g. "Balance After"), aware UTC datetime ("Processed At"), list[str] of record ids
        (links: "Card", "Cards"). The adapter serialises them.
        Form dataclasses read back: ``reason`` (Reason), ``balance_after`` (Balance After,
        Decimal), ``processed_at`` (Processed At) are filled by the adapter as well.
        """
    def recent_balance_checks(self, since: datetime) -> list[BalanceCheckForm]:
        """Checks Done/Rejected with Processed At >= ``since`` (to seed the throttle after a restart)."""

    # -- cards ---------------------------------------------------------------------------
    def card_by_hash(self, code_hash: str) -> MirrorCard | None: ...
    def cards_by_hashes(self, code_hashes: Iterable[str]) -> dict[str, MirrorCard]:
        """The cards of several code hashes at once, {hash: card} (hashes without a card are
        absent): one list request for up to 50 hashes (a formula ``OR({Code Hash}='…', …)``)."""
    def card_by_shopify_id(self, shopify_id: str) -> MirrorCard | None: ...
    def card(self, record_id: str) -> MirrorCard | None: ...
    def cards_by_source_record(self, source_record: str) -> list[MirrorCard]: ...
    def save_cards(self, cards: list[MirrorCard]) -> list[MirrorCard]:
        """Create or update (upsert on Shopify ID); returns them with record ids."""
    def set_balances(self, balances: dict[str, tuple[Money, datetime]]) -> None:
        """{card record_id: (balance, synced_at)} (batched by 10)."""
    def iter_cards(self) -> Iterator[MirrorCard]: ...

    # -- online orders registry ----------------------------------------------------------
    def order_entry(self, order_key: str) -> OrderEntry | None:
        """The registry row with this Order Key (one request)."""
    def order_entries(self, order_keys: list[str]) -> dict[str, OrderEntry]:
        """{Order Key: row} for the keys that have a row (absent keys are left out): one
        list request per 50 keys (a formula ``OR({Order Key}='…', …)``)."""
    def open_order_entries(self, kind: OrderKind, limit: int = 100) -> list[OrderEntry]:
        """Rows of this kind in Processing or Waiting (to resume), oldest first."""
    def save_order_entries(self, entries: list[OrderEntry]) -> list[OrderEntry]:
        """Upsert on Order Key (batched by 10); returns them with record ids. Every cell is
        written (a finished row loses its nonce)."""

    # -- stores --------------------------------------------------------------------------
    def stores(self) -> dict[str, Store]:
        """All stores by record id (small table; callers may cache per cycle)."""

    # -- ledger --------------------------------------------------------------------------
    def append_receipts(self, receipts: list[Receipt]) -> None:
        """Idempotent: upsert on Receipt ID, batched by 10."""
    def receipts_for_card(self, card_record_id: str) -> list[Receipt]: ...

    # -- status --------------------------------------------------------------------------
    def read_status(self, name: str) -> StatusRow | None: ...
    def write_status(self, row: StatusRow) -> StatusRow:
        """Create or update the row named ``row.name``; returns it with its record id."""


@dataclass
class CreateCardResult:
    card: ShopifyCard | None = None
    code_taken: bool = False          # Shopify says the code exists: look it up and adopt it
    error: str = ""                   # a refusal (validation) — the request cannot succeed


@dataclass
class MoveResult:
    """Result of a debit or credit."""
    transaction: CardTransaction | None = None
    balance: Money | None = None      # Shopify's balance after the move
    error_code: str = ""              # INSUFFICIENT_FUNDS, GIFT_CARD_DEACTIVATED/EXPIRED, ...
    error: str = ""


class GiftCardLedger(Protocol):
    """Shopify's gift cards (where the money is)."""

    def get_card(self, card_id: str) -> ShopifyCard | None: ...
    def find_by_code(self, code: str) -> ShopifyCard | None:
        """Exact match only (Shopify's search is fuzzy): last 4 must agree and only one card."""
    def create_card(self, *, code: str, amount: Money, note: str, customer_id: str | None = None,
                    expires_on: date | None = None) -> CreateCardResult:
        """Not idempotent. On AmbiguousError: ``find_by_code`` before trying again."""
    def debit(self, card_id: str, amount: Money, *, note: str, processed_at: datetime | None = None) -> MoveResult:
        """Not idempotent. On AmbiguousError: ``transactions`` and look for ``note`` first."""
    def credit(self, card_id: str, amount: Money, *, note: str, processed_at: datetime | None = None) -> MoveResult: ...
    def transactions(self, card_id: str, last: int = 50) -> list[CardTransaction]: ...
    def cards_updated(self, after_cursor: str | None = None, page_size: int = 100) -> tuple[list[ShopifyCard], str | None]:
        """Cards newest-updated first, one page; returns (cards, next cursor or None)."""


@dataclass
class OrderLine:
    """A line of a Shopify order (``properties`` = the line-item properties, e.g. recipient)."""
    id: str
    name: str
    sku: str
    quantity: int
    is_gift_card: bool
    unit_price: Money | None = None
    properties: dict[str, str] = field(default_factory=dict)


@dataclass
class OrderPayment:
    """A transaction of an order. Gift-card ones name the card (from ``receiptJson``)."""
    id: str
    kind: str                          # SALE, CAPTURE, REFUND, ...
    status: str                        # SUCCESS, FAILURE, ...
    gateway: str
    amount: Money
    gift_card_id: str | None = None    # GID, when the gateway is gift_card and the receipt names it
    gift_card_last4: str = ""
    processed_at: datetime | None = None


@dataclass
class ShopifyOrder:
    id: str
    name: str
    email: str = ""
    financial_status: str = ""         # PAID, PARTIALLY_REFUNDED, ...
    tags: list[str] = field(default_factory=list)
    gateways: list[str] = field(default_factory=list)
    customer_id: str | None = None
    customer_email: str = ""
    customer_first_name: str = ""
    customer_last_name: str = ""
    lines: list[OrderLine] = field(default_factory=list)
    payments: list[OrderPayment] = field(default_factory=list)
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass
class IssuedCard:
    """A card Shopify issued for an order line (native gift-card products)."""
    card: ShopifyCard
    order_id: str
    line_item_id: str | None = None


class ShopifyOrders(Protocol):
    """Shopify orders, as the purchase and redemption prongs poll them."""

    def orders(self, *, updated_after: datetime | None = None, financial_statuses: Iterable[str] = ("paid",),
               without_tag: str | None = None, gift_card_payments_only: bool = False,
               after_cursor: str | None = None, page_size: int = 10) -> tuple[list[ShopifyOrder], str | None]:
        """One page, oldest-updated first; returns (orders, next cursor or None). Search is only
        a pre-filter (Shopify's index lags): the statuses and tag are re-checked on each order."""
    def order(self, order_id: str) -> ShopifyOrder | None: ...
    def tags_add(self, order_id: str, tags: list[str]) -> list[str]:
        """Adds tags (naturally idempotent; resend after AmbiguousError); returns the order's tags."""
    def cards_for_order(self, order_id: str, created_after: datetime) -> list[IssuedCard]:
        """Cards Shopify issued for the order (``source:purchased`` created after ``created_after``)."""
    def access_scopes(self) -> list[str]:
        """The granted access scopes (``currentAppInstallation``), for ``doctor``."""


class Messenger(Protocol):
    """Klaviyo: events that flows turn into emails, and CRM events."""

    def send(self, event: EmailEvent) -> None:
        """Idempotent by ``event.unique_id`` (Klaviyo deduplicates); safe to resend."""


class Clock(Protocol):
    def now(self) -> datetime: ...
    def monotonic(self) -> float: ...
    def sleep(self, seconds: float) -> None: ...
