"""Settings: every missing/malformed setting named at once; secrets never shown."""
from __future__ import annotations

import io
import logging
from decimal import Decimal

import pytest

from giftsync.config import SHOP_DOMAIN_SUFFIX, Secret, Settings, env_names, secret_env_names
from giftsync.errors import ConfigError
from giftsync.runtime import logs

TOKEN = "patAbCdEfGhIjKlMn0.0123456789abcdef0123456789abcdef"
SHOP_TOKEN = "shpat_0123456789abcdef0123456789abcdef"
KLAVIYO = "pk_abcdefghijklmnopqrstuvwxyz0123456789"
CODE_SECRET = "s3cr3t-" + "q" * 40

VALID = {
    "AIRTABLE_TOKEN": TOKEN,
    "AIRTABLE_BASE_ID": "appAbCdEfGhIjKlMn",
    "SHOPIFY_SHOP": "demo-shop" + SHOP_DOMAIN_SUFFIX,
    "SHOPIFY_ACCESS_TOKEN": SHOP_TOKEN,
    "KLAVIYO_API_KEY": KLAVIYO,
    "GIFTSYNC_CODE_SECRET": CODE_SECRET,
    "GIFTSYNC_ADMIN_EMAIL": "admin@example.com",
}
SECRETS = [TOKEN, SHOP_TOKEN, KLAVIYO, CODE_SECRET]


def load(**changes):
    env = dict(VALID)
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return Settings.from_mapping(env)


def problems(**changes) -> str:
    with pytest.raises(ConfigError) as info:
        load(**changes)
    return str(info.value)


def test_defaults():
    s = load()
    assert s.shopify_api_version == "2026-07"
    assert (s.store_interval, s.shopify_purchases_interval, s.shopify_redemptions_interval) == (15, 15, 15)
    assert s.lease_seconds == 90 and s.lease_renew_seconds == 15 and s.lease_margin_seconds == 15
    assert s.max_card_amount == Decimal("1000") and s.max_quantity == 50 and s.default_currency == "USD"
    assert (s.balance_check_limit, s.balance_check_window_seconds) == (5, 3600)
    assert s.airtable_api_url is None and s.shopify_admin_url is None and s.klaviyo_api_url is None
    assert s.log_format == "text" and s.log_level == "INFO"
    assert s.reconcile_schedule == "30 3 * * *"
    assert s.interval("shopify-purchases") == 15


@pytest.mark.parametrize("name", ["AIRTABLE_TOKEN", "AIRTABLE_BASE_ID", "SHOPIFY_SHOP", "SHOPIFY_ACCESS_TOKEN",
                                  "KLAVIYO_API_KEY", "GIFTSYNC_CODE_SECRET", "GIFTSYNC_ADMIN_EMAIL"])
def test_each_required_setting_is_named_when_missing(name):
    assert f"{name}: missing" in problems(**{name: None})
    assert f"{name}: missing" in problems(**{name: "  "})


@pytest.mark.parametrize("name,value", [
    ("AIRTABLE_BASE_ID", "base123"),
    ("SHOPIFY_SHOP", "shop.example.com"),
    ("SHOPIFY_API_VERSION", "2026-05"),
    ("GIFTSYNC_ADMIN_EMAIL", "not-an-email"),
    ("AIRTABLE_API_URL", "localhost:8787"),
    ("SHOPIFY_ADMIN_URL", "ftp://x"),
    ("KLAVIYO_API_URL", "http://"),
    ("GIFTSYNC_STORE_INTERVAL", "fast"),
    ("GIFTSYNC_SHOPIFY_PURCHASES_INTERVAL", "0"),
    ("GIFTSYNC_SHOPIFY_REDEMPTIONS_INTERVAL", "-3"),
    ("GIFTSYNC_REDEMPTION_POLL_SECONDS", "nan"),
    ("GIFTSYNC_LEASE_SECONDS", "ninety"),
    ("GIFTSYNC_MAX_CARD_AMOUNT", "12.345"),
    ("GIFTSYNC_MAX_CARD_AMOUNT", "-5"),
    ("GIFTSYNC_MAX_QUANTITY", "2.5"),
    ("GIFTSYNC_DEFAULT_CURRENCY", "dollars"),
    ("GIFTSYNC_BALANCE_CHECK_LIMIT", "0"),
    ("GIFTSYNC_BALANCE_CHECK_WINDOW_SECONDS", "x"),
    ("GIFTSYNC_RECONCILE_SCHEDULE", "every day"),
    ("GIFTSYNC_LOG_FORMAT", "xml"),
    ("GIFTSYNC_LOG_LEVEL", "LOUD"),
])
def test_each_malformed_setting_is_named(name, value):
    message = problems(**{name: value})
    assert f"{name}:" in message


def test_every_problem_is_reported_at_once():
    message = problems(AIRTABLE_TOKEN=None, AIRTABLE_BASE_ID="nope", GIFTSYNC_LEASE_SECONDS="x",
                       GIFTSYNC_LOG_FORMAT="xml")
    for name in ("AIRTABLE_TOKEN", "AIRTABLE_BASE_ID", "GIFTSYNC_LEASE_SECONDS", "GIFTSYNC_LOG_FORMAT"):
        assert name in message


def test_the_lease_must_outlast_renewal_and_margin():
    message = problems(GIFTSYNC_LEASE_SECONDS="20", GIFTSYNC_LEASE_RENEW_SECONDS="15",
                       GIFTSYNC_LEASE_MARGIN_SECONDS="10")
    assert "GIFTSYNC_LEASE_SECONDS" in message


def test_code_secret_too_short_is_named_without_its_value():
    short = "tooShortSecret-xyz"
    message = problems(GIFTSYNC_CODE_SECRET=short)
    assert "GIFTSYNC_CODE_SECRET" in message and "32" in message
    assert short not in message


def test_malformed_secret_values_never_appear_in_the_error():
    bad = {"AIRTABLE_TOKEN": "has space inside", "SHOPIFY_ACCESS_TOKEN": "shp4Xq",
           "KLAVIYO_API_KEY": "pk no", "GIFTSYNC_CODE_SECRET": "x y" * 20}
    message = problems(**bad)
    for name, value in bad.items():
        assert name in message
        assert value not in message


def test_secrets_never_in_str_repr_or_redacted():
    s = load()
    for text in (str(s), repr(s), str(s.redacted()), repr(s.airtable_token), f"{s.code_secret}"):
        for secret in SECRETS:
            assert secret not in text
    assert s.redacted()["AIRTABLE_TOKEN"] == "********"
    assert s.airtable_token.reveal() == TOKEN
    assert set(secret_env_names()) == {"AIRTABLE_TOKEN", "SHOPIFY_ACCESS_TOKEN", "KLAVIYO_API_KEY",
                                       "GIFTSYNC_CODE_SECRET"}


def test_secrets_never_in_log_output():
    s = load()
    stream = io.StringIO()
    logs.setup(fmt="text", level="DEBUG", stream=stream)
    try:
        logs.register_settings_secrets(s)
        log = logging.getLogger("giftsync.test.config")
        log.info("settings %s %r", s, s, extra={"settings": s.redacted()})
        log.info("oops, raw: " + s.airtable_token.reveal(), extra={"key": s.klaviyo_api_key.reveal()})
        log.info("%s", s.code_secret.reveal())
    finally:
        logs.clear_sensitive()
    out = stream.getvalue()
    assert "[REDACTED:AIRTABLE_TOKEN]" in out and "[REDACTED:GIFTSYNC_CODE_SECRET]" in out
    for secret in SECRETS:
        assert secret not in out


def test_shop_is_normalised():
    assert load(SHOPIFY_SHOP="Demo-Shop").shopify_shop == "demo-shop" + SHOP_DOMAIN_SUFFIX
    assert load(SHOPIFY_SHOP=f"https://demo{SHOP_DOMAIN_SUFFIX}/").shopify_shop == "demo" + SHOP_DOMAIN_SUFFIX


def test_twin_urls_are_kept_without_trailing_slash():
    s = load(AIRTABLE_API_URL="http://127.0.0.1:8787/", KLAVIYO_API_URL="http://127.0.0.1:9000")
    assert s.airtable_api_url == "http://127.0.0.1:8787"
    assert s.uses_twins == {"airtable": True, "shopify": False, "klaviyo": True}


def test_reconcile_can_be_switched_off():
    assert load(GIFTSYNC_RECONCILE_SCHEDULE="off").reconcile_schedule is None


def test_env_file_is_read_and_the_environment_wins(tmp_path):
    env_file = tmp_path / "giftsync.env"
    lines = [f"{k}={v}" for k, v in VALID.items()] + ["GIFTSYNC_STORE_INTERVAL=7", "GIFTSYNC_MAX_QUANTITY=9"]
    env_file.write_text("# comment\n" + "\n".join(lines) + "\n")
    s = Settings.load({"GIFTSYNC_MAX_QUANTITY": "12"}, env_file=env_file)
    assert s.store_interval == 7 and s.max_quantity == 12
    s = Settings.load({}, env_file=env_file, overrides={"GIFTSYNC_LOG_FORMAT": "json"})
    assert s.log_format == "json"


def test_a_missing_env_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="env file not found"):
        Settings.load({}, env_file=tmp_path / "nope.env")


def test_example_env_documents_every_setting():
    from pathlib import Path
    text = (Path(__file__).resolve().parents[2] / "config" / "example.env").read_text()
    for name in env_names().values():
        assert f"{name}=" in text, name


def test_secret_wrapper():
    secret = Secret("abcdefgh")
    assert str(secret) == "********" and "abcdefgh" not in repr(secret)
    assert secret == Secret("abcdefgh") and secret.reveal() == "abcdefgh"
    with pytest.raises(AttributeError):
        secret._value = "x"
