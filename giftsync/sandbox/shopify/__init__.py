"""Local twin of the Shopify Admin GraphQL API (gift cards, orders, tags) — see docs/twins/shopify.md."""
from .app import ShopifyTwin, create_app

__all__ = ["ShopifyTwin", "create_app"]
