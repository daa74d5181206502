"""``GiftCardLedger`` and ``ShopifyOrders`` over the Shopify Admin GraphQL API."""
from __future__ import annotations

import logging
from datetime import date, datetime
from typing import Any, Iterable

from ...domain.cards import ShopifyCard
from ...domain.money import Money
from ...errors import FatalError
from ...ports import CreateCardResult, IssuedCard, MoveResult, ShopifyOrder
from . import mapping
from .client import SERVICE, ShopifyGraphQL
from .documents import ORDER_COST

log = logging.getLogger("giftsync.adapters.shopify")

MAX_QUERY_COST = 1000
FIND_FIRST = 10                  # candidates read by find_by_code
ORDER_CARD_PAGES = 20            # at most 20 × 50 cards scanned for one order


def admin_graphql_url(shop: str, api_version: str, admin_url: str | None = None) -> str:
    """``{admin_url or https://{shop}}/admin/api/{version}/graphql.json``.

    ``shop`` is the permanent shop domain from the settings (e.g. ``my-shop.<shopify domain>``);
    a bare scheme-less value gets ``https://``.
    """
    base = (admin_url or "").strip().rstrip("/")
    if not base:
        shop = (shop or "").strip().rstrip("/")
        if not shop:
            raise ValueError("the shop domain is required when no admin URL is set")
        base = shop if "://" in shop else f"https://{shop}"
    return f"{base}/admin/api/{api_version}/graphql.json"


class ShopifyGiftCardLedger:
    """Shopify gift cards (``GiftCardLedger``) and orders (``ShopifyOrders``), API 2026-07.

    ``budget`` is the Shopify ``RateBudget`` shared by the prong threads (cost points);
    ``timeout`` is the per-request timeout in seconds.
    """

    def __init__(self, shop: str, access_token: str, *, api_version: str = "2026-07",
                 admin_url: str | None = None, timeout: float = 10, budget: Any = None,
                 query_attempts: int = 3) -> None:
        if not access_token:
            raise ValueError("a Shopify access token is required")
        self.api_version = api_version
        self.url = admin_graphql_url(shop, api_version, admin_url)
        self.gql = ShopifyGraphQL(self.url, access_token, timeout=timeout, budget=budget,
                                  query_attempts=query_attempts)

    def __repr__(self) -> str:
        return f"ShopifyGiftCardLedger({self.url!r})"

    def close(self) -> None:
        self.gql.close()

    # -- GiftCardLedger -----------------------------------------------------------------
    def get_card(self, card_id: str) -> ShopifyCard | None:
        data = self.gql.run("GetGiftCard", {"id": mapping.gid("GiftCard", card_id)}).data
        node = data.get("giftCard")
        return mapping.card(node) if node else None

    def find_by_code(self, code: str) -> ShopifyCard | None:
        """Exact match only: Shopify's default search is fuzzy (code fragments, customer text)."""
        wanted = mapping.shopify_code(code)
        if wanted is None:
            return None
        data = self.gql.run("FindGiftCards", {"query": wanted, "first": FIND_FIRST}, first=FIND_FIRST).data
        nodes = ((data.get("giftCards") or {}).get("nodes")) or []
        candidates = [n for n in nodes if str(n.get("lastCharacters") or "").lower() == wanted[-4:]]
        if len(candidates) != 1:
            if len(candidates) > 1:
                log.warning("shopify find_by_code: %d cards share the last characters; no exact match",
                            len(candidates))
            return None
        return mapping.card(candidates[0])

    def create_card(self, *, code: str, amount: Money, note: str, customer_id: str | None = None,
                    expires_on: date | None = None) -> CreateCardResult:
        payload: dict[str, Any] = {"initialAmount": mapping.money_input(amount), "code": code, "note": note}
        if customer_id:
            payload["customerId"] = mapping.gid("Customer", customer_id)
        if expires_on is not None:
            payload["expiresOn"] = expires_on.isoformat()
        data = self.gql.run("CreateGiftCard", {"input": payload}).data
        result = data.get("giftCardCreate") or {}
        errors = result.get("userErrors") or []
        if errors:
            if mapping.code_taken(errors):
                return CreateCardResult(code_taken=True)
            return CreateCardResult(error=mapping.user_error_text(errors))
        node = result.get("giftCard")
        if not node:
            raise FatalError(SERVICE, "giftCardCreate returned neither a card nor userErrors")
        return CreateCardResult(card=mapping.card(node))

    def debit(self, card_id: str, amount: Money, *, note: str, processed_at: datetime | None = None) -> MoveResult:
        return self._move("DebitGiftCard", "giftCardDebit", "giftCardDebitTransaction", "debitAmount",
                          card_id, amount, note, processed_at)

    def credit(self, card_id: str, amount: Money, *, note: str, processed_at: datetime | None = None) -> MoveResult:
        return self._move("CreditGiftCard", "giftCardCredit", "giftCardCreditTransaction", "creditAmount",
                          card_id, amount, note, processed_at)

    def _move(self, document: str, field: str, txn_field: str, amount_key: str, card_id: str,
              amount: Money, note: str, processed_at: datetime | None) -> MoveResult:
        payload: dict[str, Any] = {amount_key: mapping.money_input(amount), "note": note}
        if processed_at is not None:
            payload["processedAt"] = mapping.format_datetime(processed_at)
        data = self.gql.run(document, {"id": mapping.gid("GiftCard", card_id), "input": payload}).data
        result = data.get(field) or {}
        errors = result.get("userErrors") or []
        if errors:
            return MoveResult(error_code=mapping.move_error_code(errors), error=mapping.user_error_text(errors))
        node = result.get(txn_field)
        if not node:
            raise FatalError(SERVICE, f"{field} returned neither a transaction nor userErrors")
        balance = mapping.money(((node.get("giftCard") or {}).get("balance")))
        return MoveResult(transaction=mapping.transaction(node), balance=balance)

    def transactions(self, card_id: str, last: int = 50):
        """The card's newest ``last`` transactions, oldest first; [] for an unknown card."""
        last = max(1, min(int(last), 250))
        data = self.gql.run("GiftCardTransactions", {"id": mapping.gid("GiftCard", card_id), "last": last},
                            first=last).data
        node = data.get("giftCard")
        if not node:
            return []
        return [mapping.transaction(t) for t in ((node.get("transactions") or {}).get("nodes") or [])]

    def cards_updated(self, after_cursor: str | None = None, page_size: int = 100) -> tuple[list[ShopifyCard], str | None]:
        page_size = max(1, min(int(page_size), 200))
        data = self.gql.run("GiftCardsByUpdated", {"first": page_size, "after": after_cursor},
                            first=page_size).data
        conn = data.get("giftCards") or {}
        info = conn.get("pageInfo") or {}
        cards = [mapping.card(n) for n in conn.get("nodes") or []]
        return cards, (info.get("endCursor") if info.get("hasNextPage") else None)

    # -- ShopifyOrders ------------------------------------------------------------------
    def orders(self, *, updated_after: datetime | None = None, financial_statuses: Iterable[str] = ("paid",),
               without_tag: str | None = None, gift_card_payments_only: bool = False,
               after_cursor: str | None = None, page_size: int = 10) -> tuple[list[ShopifyOrder], str | None]:
        statuses = [str(s) for s in financial_statuses]
        # keep the requested cost under Shopify's 1000-point single-query limit
        page_size = max(1, min(int(page_size), (MAX_QUERY_COST - 2) // ORDER_COST))
        query = mapping.orders_query(updated_after=updated_after, financial_statuses=statuses,
                                     without_tag=without_tag, gift_card_payments_only=gift_card_payments_only)
        data = self.gql.run("Orders", {"query": query, "first": page_size, "after": after_cursor},
                            first=page_size).data
        conn = data.get("orders") or {}
        info = conn.get("pageInfo") or {}
        found: list[ShopifyOrder] = []
        for node in conn.get("nodes") or []:
            order = self._complete(node)
            if mapping.order_matches(order, updated_after=updated_after, financial_statuses=statuses,
                                     without_tag=without_tag, gift_card_payments_only=gift_card_payments_only):
                found.append(order)
        return found, (info.get("endCursor") if info.get("hasNextPage") else None)

    def order(self, order_id: str) -> ShopifyOrder | None:
        node = self.gql.run("GetOrder", {"id": mapping.gid("Order", order_id)}).data.get("order")
        return self._complete(node) if node else None

    def _complete(self, node: dict) -> ShopifyOrder:
        """Map an order, fetching the rest of its lines when it has more than one page."""
        order = mapping.order(node)
        info = ((node.get("lineItems") or {}).get("pageInfo")) or {}
        cursor = info.get("endCursor") if info.get("hasNextPage") else None
        while cursor:
            data = self.gql.run("OrderLineItems", {"id": order.id, "after": cursor}).data
            conn = ((data.get("order") or {}).get("lineItems")) or {}
            order.lines.extend(mapping.line(n) for n in conn.get("nodes") or [])
            page = conn.get("pageInfo") or {}
            cursor = page.get("endCursor") if page.get("hasNextPage") else None
        return order

    def tags_add(self, order_id: str, tags: list[str]) -> list[str]:
        data = self.gql.run("TagsAdd", {"id": mapping.gid("Order", order_id), "tags": list(tags)}).data
        result = data.get("tagsAdd") or {}
        errors = result.get("userErrors") or []
        if errors:
            raise FatalError(SERVICE, f"tagsAdd refused: {mapping.user_error_text(errors)}")
        node = result.get("node")
        if not node:
            raise FatalError(SERVICE, "tagsAdd returned no node")
        return list(node.get("tags") or [])

    def cards_for_order(self, order_id: str, created_after: datetime) -> list[IssuedCard]:
        order_gid = mapping.gid("Order", order_id)
        query = f"source:purchased created_at:>={mapping.search_datetime(created_after)}"
        found: list[IssuedCard] = []
        cursor: str | None = None
        for _ in range(ORDER_CARD_PAGES):
            data = self.gql.run("GiftCardsForOrder", {"query": query, "first": 50, "after": cursor}, first=50).data
            conn = data.get("giftCards") or {}
            for node in conn.get("nodes") or []:
                if ((node.get("order") or {}).get("id")) == order_gid:
                    found.append(mapping.issued_card(node))
            info = conn.get("pageInfo") or {}
            cursor = info.get("endCursor") if info.get("hasNextPage") else None
            if not cursor:
                break
        else:
            log.warning("shopify cards_for_order: stopped after %d pages", ORDER_CARD_PAGES)
        return found

    def access_scopes(self) -> list[str]:
        data = self.gql.run("AccessScopes").data
        scopes = ((data.get("currentAppInstallation") or {}).get("accessScopes")) or []
        return sorted(str(s.get("handle")) for s in scopes if s.get("handle"))
