"""Shopify Admin GraphQL adapter (gql 4 + requests): gift cards, their transactions, orders.

- :mod:`.documents` — every GraphQL document giftsync sends, as named constants
- :mod:`.client`    — transport setup, bounded retries of queries, error classification
- :mod:`.mapping`   — Shopify JSON ↔ domain objects
- :mod:`.ledger`    — :class:`ShopifyGiftCardLedger` (``GiftCardLedger`` + ``ShopifyOrders``)
"""
from .ledger import ShopifyGiftCardLedger, admin_graphql_url

__all__ = ["ShopifyGiftCardLedger", "admin_graphql_url"]
