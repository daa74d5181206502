"""The three twins (Airtable, Shopify, Klaviyo) on local ports, and giftsync Settings pointing at them."""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

from giftsync.config import Settings
from giftsync.sandbox import start_twin

SHOP_SCOPES = ["read_gift_cards", "write_gift_cards", "read_gift_card_transactions", "write_gift_card_transactions",
               "read_orders", "write_orders", "read_customers", "write_customers"]


@contextlib.contextmanager
def running_twins(airtable_seed: dict, *, token: str, shop_seed: dict, shop_token: str, key: str,
                  **shop_options: Any) -> Iterator[list]:
    """[airtable, shopify, klaviyo] servers (no rate limits on Airtable and Klaviyo), stopped afterwards."""
    servers = [start_twin("airtable", seed=airtable_seed, rate_limit=False, token=token),
               start_twin("shopify", seed=shop_seed, tokens={shop_token: SHOP_SCOPES}, **shop_options),
               start_twin("klaviyo", api_key=key, rate_limit=False)]
    try:
        yield servers
    finally:
        for s in servers:
            s.stop()


def twin_settings(twins: list, *, token: str, base: str, shop: str, shop_token: str, key: str, secret: str,
                  **extra: str) -> Settings:
    """Settings for the twins of ``running_twins`` (a short lease settle, a fast Airtable rate) plus ``extra``."""
    at, sh, kl = twins
    return Settings.from_mapping({
        "AIRTABLE_TOKEN": token, "AIRTABLE_BASE_ID": base, "SHOPIFY_SHOP": shop,
        "SHOPIFY_ACCESS_TOKEN": shop_token, "KLAVIYO_API_KEY": key, "GIFTSYNC_CODE_SECRET": secret,
        "GIFTSYNC_ADMIN_EMAIL": "admin@example.test", "AIRTABLE_API_URL": at.url, "SHOPIFY_ADMIN_URL": sh.url,
        "KLAVIYO_API_URL": kl.url, "GIFTSYNC_LEASE_SETTLE_SECONDS": "0.1", "GIFTSYNC_AIRTABLE_RATE": "50",
        **extra,
    })
