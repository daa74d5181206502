"""The sandbox's demo world: shops, cards, customers and an online catalogue, consistent
across the three twins.

``build_demo(secret)`` returns a :class:`DemoWorld` holding the three seeds (Airtable,
Shopify, Klaviyo) and the demo card codes. The same codes are in the Shopify twin (as the
cards' codes) and in the Airtable base (as keyed hashes computed with ``secret`` — the
daemon's ``GIFTSYNC_CODE_SECRET`` — plus the last 4 characters), so the daemon finds every
mirrored card by the code a shop types. Whole codes appear only here, for the console's
"demo cards" list and for tests.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from ..domain.codes import CodeHasher, derive_code, last4, mask

BASE_ID = "appGiftsyncSandbx"
BASE_NAME = "giftsync (sandbox)"
CURRENCY = "USD"
SEEDED_AT = "2026-01-05T09:00:00.000Z"
SHOP_CREATED_AT = "2026-01-05T09:00:00Z"
# Demo codes are fixed (they do not depend on the world's secret), so a note on paper or a
# test can name them; their hashes do depend on the secret.
_CODE_KEY = b"giftsync-sandbox-demo-codes"

GIFTSYNC_SKUS = ("GS-CARD-25", "GS-CARD-50", "GS-CARD-100")
NATIVE_GIFT_CARD_SKU = "SHOP-GIFT-CARD"


@dataclass(frozen=True)
class DemoStore:
    record_id: str
    name: str
    email: str
    active: bool = True


@dataclass(frozen=True)
class DemoCustomer:
    num: int
    first_name: str
    last_name: str
    email: str

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    @property
    def gid(self) -> str:
        return f"gid://shopify/Customer/{self.num}"


@dataclass(frozen=True)
class DemoCard:
    """One demo card. ``code`` is the whole code: for the console's demo list and tests only."""
    code: str
    initial: Decimal
    balance: Decimal
    shopify_num: int
    label: str
    mirrored: bool = True            # False: exists in Shopify only (issued before giftsync)
    enabled: bool = True
    store: str | None = None         # store record id
    recipient: str | None = None     # customer email
    record_id: str | None = None     # Gift Cards record id (mirrored cards)
    currency: str = CURRENCY
    spent: tuple[Decimal, ...] = ()  # debits already on the card in Shopify

    @property
    def last4(self) -> str:
        return last4(self.code)

    @property
    def masked(self) -> str:
        return mask(self.last4)

    @property
    def shopify_id(self) -> str:
        return f"gid://shopify/GiftCard/{self.shopify_num}"

    @property
    def status(self) -> str:
        return "Active" if self.enabled else "Disabled"

    def to_json(self) -> dict:
        d = asdict(self)
        d.update(initial=str(self.initial), balance=str(self.balance), spent=[str(s) for s in self.spent],
                 last4=self.last4, masked=self.masked, shopify_id=self.shopify_id, status=self.status)
        return d


@dataclass(frozen=True)
class DemoProduct:
    sku: str
    title: str
    price: Decimal
    gift_card: bool = False          # a Shopify-native gift card product (isGiftCard lines)
    giftsync: bool = False           # a giftsync gift-card product (SKU in GIFTSYNC_GIFT_CARD_SKUS)

    def to_json(self) -> dict:
        return {"sku": self.sku, "title": self.title, "price": str(self.price), "gift_card": self.gift_card,
                "giftsync": self.giftsync, "currency": CURRENCY}


STORES = (
    DemoStore("recStoreHarbour01", "Harbour Street", "harbour.street@shops.example.com"),
    DemoStore("recStoreMarket002", "Market Square", "market.square@shops.example.com"),
    DemoStore("recStoreStation03", "Station Road", "station.road@shops.example.com"),
)

CUSTOMERS = (
    DemoCustomer(11000000000101, "Ada", "Lovelace", "ada@example.com"),
    DemoCustomer(11000000000102, "Grace", "Hopper", "grace@example.com"),
    DemoCustomer(11000000000103, "Katherine", "Johnson", "katherine@example.com"),
    DemoCustomer(11000000000104, "Edsger", "Dijkstra", "edsger@example.com"),
)

CATALOGUE = (
    DemoProduct("GS-CARD-25", "Gift card $25", Decimal("25.00"), giftsync=True),
    DemoProduct("GS-CARD-50", "Gift card $50", Decimal("50.00"), giftsync=True),
    DemoProduct("GS-CARD-100", "Gift card $100", Decimal("100.00"), giftsync=True),
    DemoProduct(NATIVE_GIFT_CARD_SKU, "Shopify gift card $50", Decimal("50.00"), gift_card=True),
    DemoProduct("TOTE-01", "Canvas tote bag", Decimal("35.00")),
    DemoProduct("MUG-01", "Stoneware mug", Decimal("18.00")),
    DemoProduct("CANDLE-01", "Beeswax candle", Decimal("24.00")),
    DemoProduct("SCARF-01", "Wool scarf", Decimal("64.00")),
)


def demo_code(index: int) -> str:
    return derive_code(_CODE_KEY, "sandbox-demo", index)


def _cards() -> tuple[DemoCard, ...]:
    d = Decimal
    return (
        DemoCard(demo_code(0), d("100.00"), d("100.00"), 700000000101, "Full $100 card", store=STORES[0].record_id,
                 recipient=CUSTOMERS[0].email, record_id="recCardDemo000001"),
        DemoCard(demo_code(1), d("50.00"), d("32.50"), 700000000102, "$50 card, $17.50 already spent",
                 store=STORES[1].record_id, recipient=CUSTOMERS[1].email, record_id="recCardDemo000002",
                 spent=(d("17.50"),)),
        DemoCard(demo_code(2), d("25.00"), d("25.00"), 700000000103, "Small $25 card", store=STORES[2].record_id,
                 recipient=CUSTOMERS[2].email, record_id="recCardDemo000003"),
        DemoCard(demo_code(3), d("200.00"), d("200.00"), 700000000104, "Large $200 card", store=STORES[0].record_id,
                 recipient=CUSTOMERS[3].email, record_id="recCardDemo000004"),
        DemoCard(demo_code(4), d("40.00"), d("40.00"), 700000000105, "Disabled card (refused)",
                 enabled=False, store=STORES[1].record_id, record_id="recCardDemo000005"),
        DemoCard(demo_code(5), d("75.00"), d("75.00"), 700000000106,
                 "Shopify-only card, not in Airtable yet", mirrored=False, recipient=CUSTOMERS[0].email),
    )


CARDS = _cards()


@dataclass
class DemoWorld:
    airtable: dict
    shopify: dict
    klaviyo: dict
    stores: tuple[DemoStore, ...] = STORES
    customers: tuple[DemoCustomer, ...] = CUSTOMERS
    cards: tuple[DemoCard, ...] = CARDS
    catalogue: tuple[DemoProduct, ...] = CATALOGUE
    extra: dict = field(default_factory=dict)


def _money(value: Decimal) -> float:
    # Airtable currency cells are JSON numbers; the demo amounts are exact in binary to the cent.
    return float(value)


def airtable_seed(schema: dict, hasher: CodeHasher, *, base_id: str = BASE_ID) -> dict:
    from .airtable.seed import base_seed_from_schema

    seed = base_seed_from_schema(schema, base_id, BASE_NAME)
    tables = {t["name"]: t for t in seed["bases"][0]["tables"]}
    tables["Stores"]["records"] = [
        {"id": s.record_id, "createdTime": SEEDED_AT, "fields": {"Name": s.name, "Email": s.email, "Active": s.active}}
        for s in STORES]
    cards, receipts = [], []
    customers = {c.email: c for c in CUSTOMERS}
    for n, c in enumerate(x for x in CARDS if x.mirrored):
        fields: dict[str, Any] = {
            "Card": c.masked, "Last 4": c.last4, "Code Hash": hasher.hash(c.code), "Shopify ID": c.shopify_id,
            "Balance": _money(c.balance), "Initial Value": _money(c.initial), "Currency": c.currency,
            "Status": c.status, "Kind": "Digital", "Source": "Imported", "Created": SEEDED_AT,
            "Last Synced": SEEDED_AT, "Source Record": "sandbox seed",
        }
        if c.store:
            fields["Store"] = [c.store]
        if c.recipient:
            fields["Recipient Name"] = customers[c.recipient].name
            fields["Recipient Email"] = c.recipient
        cards.append({"id": c.record_id, "createdTime": SEEDED_AT, "fields": fields})
        receipts.append({"createdTime": SEEDED_AT, "fields": {
            "Receipt ID": f"seed:{c.record_id}", "Time": SEEDED_AT, "Activity": "MIRROR", "Card": [c.record_id],
            "Card (masked)": c.masked, "Amount": _money(c.balance), "Balance After": _money(c.balance),
            "Currency": c.currency, "Channel": "System", "Source": "sandbox seed",
            "Outcome": "Mirrored", "Correlation ID": f"seed-{n + 1}",
            "Details": "Card imported into the sandbox base with its Shopify balance."}})
    tables["Gift Cards"]["records"] = cards
    tables["Receipts"]["records"] = receipts
    return seed


def shopify_seed() -> dict:
    """Seed of the Shopify twin (format: giftsync/sandbox/shopify/seed.py, docs/twins/shopify.md)."""
    customers = [{"id": c.num, "email": c.email, "firstName": c.first_name, "lastName": c.last_name}
                 for c in CUSTOMERS]
    cards = []
    for c in CARDS:
        card: dict[str, Any] = {
            "id": c.shopify_num, "code": c.code.lower(), "initialValue": str(c.initial), "currency": c.currency,
            "createdAt": SHOP_CREATED_AT, "note": "sandbox demo card",
        }
        if c.recipient:
            card["customer"] = c.recipient
        if not c.enabled:
            card["enabled"] = False
        if c.spent:
            card["transactions"] = [{"amount": str(-s), "note": "in-store purchase before giftsync",
                                     "processedAt": SHOP_CREATED_AT} for s in c.spent]
        cards.append(card)
    products = [{"sku": p.sku, "title": p.title, "price": str(p.price), "isGiftCard": p.gift_card,
                 "giftsync": p.giftsync} for p in CATALOGUE]
    return {"shop": {"currency": CURRENCY}, "customers": customers, "products": products, "giftCards": cards}


def klaviyo_seed() -> dict:
    profiles = [{"email": s.email, "first_name": s.name, "organization": s.name,
                 "properties": {"giftsync_role": "store"}} for s in STORES]
    profiles += [{"email": c.email, "first_name": c.first_name, "last_name": c.last_name} for c in CUSTOMERS]
    return {"profiles": profiles}


def build_demo(secret: bytes | str, schema: dict) -> DemoWorld:
    if isinstance(secret, str):
        secret = secret.encode()
    hasher = CodeHasher(secret)
    return DemoWorld(airtable=airtable_seed(schema, hasher), shopify=shopify_seed(), klaviyo=klaviyo_seed())
