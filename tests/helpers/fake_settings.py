"""Settings for tests that run giftsync over the in-memory fakes (``build_fakes``): well-formed
values of every required setting, none of which reaches a service."""
from __future__ import annotations

from giftsync.config import Settings

FAKE_ENV = {
    "AIRTABLE_TOKEN": "patAbCdEfGhIjKlMn0.0123456789abcdef0123456789abcdef",
    "AIRTABLE_BASE_ID": "appAbCdEfGhIjKlMn",
    "SHOPIFY_SHOP": "demo-shop",
    "SHOPIFY_ACCESS_TOKEN": "shpat_0123456789abcdef0123456789abcdef",
    "KLAVIYO_API_KEY": "pk_abcdefghijklmnopqrstuvwxyz0123456789",
    "GIFTSYNC_CODE_SECRET": "c" * 48,
    "GIFTSYNC_ADMIN_EMAIL": "admin@example.com",
    "GIFTSYNC_LEASE_SETTLE_SECONDS": "0",
}


def fake_settings(**extra: str) -> Settings:
    """Settings from ``FAKE_ENV`` with ``extra`` settings added or replaced."""
    return Settings.from_mapping({**FAKE_ENV, **extra})
