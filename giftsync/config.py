"""Settings from the environment and an optional ``.env`` file, validated, secrets redacted.

``Settings.load()`` reads ``os.environ`` over the values of a ``.env`` file (python-dotenv;
the environment wins), checks every setting and raises one ``ConfigError`` naming *every*
missing or malformed setting at once. Error messages never contain the value of a secret.

Secrets are held in ``Secret`` wrappers: ``str()``/``repr()`` of a secret, of the settings or
of ``Settings.redacted()`` never show them; the one place that needs the value
(``giftsync.bootstrap``) calls ``.reveal()``. ``config/example.env`` explains every setting.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import urlparse

from .errors import ConfigError

# Every shop's permanent admin domain ends with this; SHOPIFY_SHOP may name just the handle.
SHOP_DOMAIN_SUFFIX = ".myshopify.com"

DEFAULT_SHOPIFY_API_VERSION = "2026-07"
MIN_CODE_SECRET_LENGTH = 32
PRONGS = ("store", "shopify-purchases", "shopify-redemptions", "reconcile")
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class Secret:
    """A secret string that does not show itself. ``reveal()`` returns the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        object.__setattr__(self, "_value", value)

    def reveal(self) -> str:
        return self._value

    def __setattr__(self, name: str, value: object) -> None:  # immutable
        raise AttributeError("Secret is immutable")

    def __repr__(self) -> str:
        return "Secret('********')"

    def __str__(self) -> str:
        return "********"

    def __format__(self, spec: str) -> str:
        return "********"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self):  # never pickle a secret by accident
        raise TypeError("Secret values cannot be pickled")


def _env(name: str, *, secret: bool = False, doc: str = "") -> Any:
    return field(metadata={"env": name, "secret": secret, "doc": doc})


@dataclass(frozen=True)
class Settings:
    # --- accounts ------------------------------------------------------------------------
    airtable_token: Secret = _env("AIRTABLE_TOKEN", secret=True)
    airtable_base_id: str = _env("AIRTABLE_BASE_ID")
    shopify_shop: str = _env("SHOPIFY_SHOP")
    shopify_access_token: Secret = _env("SHOPIFY_ACCESS_TOKEN", secret=True)
    shopify_api_version: str = _env("SHOPIFY_API_VERSION")
    klaviyo_api_key: Secret = _env("KLAVIYO_API_KEY", secret=True)
    code_secret: Secret = _env("GIFTSYNC_CODE_SECRET", secret=True)
    admin_email: str = _env("GIFTSYNC_ADMIN_EMAIL")
    # --- service URLs (None = the real service; set = a twin) ------------------------------
    airtable_api_url: str | None = _env("AIRTABLE_API_URL")
    shopify_admin_url: str | None = _env("SHOPIFY_ADMIN_URL")
    klaviyo_api_url: str | None = _env("KLAVIYO_API_URL")
    # --- schedule ------------------------------------------------------------------------
    store_interval: float = _env("GIFTSYNC_STORE_INTERVAL")
    shopify_purchases_interval: float = _env("GIFTSYNC_SHOPIFY_PURCHASES_INTERVAL")
    shopify_redemptions_interval: float = _env("GIFTSYNC_SHOPIFY_REDEMPTIONS_INTERVAL")
    redemption_poll_seconds: float = _env("GIFTSYNC_REDEMPTION_POLL_SECONDS")
    reconcile_schedule: str | None = _env("GIFTSYNC_RECONCILE_SCHEDULE")
    misfire_grace_seconds: float = _env("GIFTSYNC_MISFIRE_GRACE_SECONDS")
    # --- online orders ---------------------------------------------------------------------
    gift_card_skus: tuple = _env("GIFTSYNC_GIFT_CARD_SKUS")
    order_tag: str = _env("GIFTSYNC_ORDER_TAG")
    redemption_tag: str = _env("GIFTSYNC_REDEMPTION_TAG")
    order_overlap_seconds: float = _env("GIFTSYNC_ORDER_OVERLAP_SECONDS")
    # --- lease ---------------------------------------------------------------------------
    lease_seconds: float = _env("GIFTSYNC_LEASE_SECONDS")
    lease_renew_seconds: float = _env("GIFTSYNC_LEASE_RENEW_SECONDS")
    lease_margin_seconds: float = _env("GIFTSYNC_LEASE_MARGIN_SECONDS")
    lease_settle_seconds: float = _env("GIFTSYNC_LEASE_SETTLE_SECONDS")
    # --- limits --------------------------------------------------------------------------
    max_card_amount: Decimal = _env("GIFTSYNC_MAX_CARD_AMOUNT")
    max_quantity: int = _env("GIFTSYNC_MAX_QUANTITY")
    default_currency: str = _env("GIFTSYNC_DEFAULT_CURRENCY")
    balance_check_limit: int = _env("GIFTSYNC_BALANCE_CHECK_LIMIT")
    balance_check_window_seconds: float = _env("GIFTSYNC_BALANCE_CHECK_WINDOW_SECONDS")
    # --- outside services ----------------------------------------------------------------
    http_timeout_seconds: float = _env("GIFTSYNC_HTTP_TIMEOUT_SECONDS")
    airtable_rate: float = _env("GIFTSYNC_AIRTABLE_RATE")
    klaviyo_rate: float = _env("GIFTSYNC_KLAVIYO_RATE")
    # --- logs ----------------------------------------------------------------------------
    log_format: str = _env("GIFTSYNC_LOG_FORMAT")
    log_level: str = _env("GIFTSYNC_LOG_LEVEL")

    # -- construction --------------------------------------------------------------------
    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, *, env_file: str | os.PathLike | None = None,
             use_default_env_file: bool = True, overrides: Mapping[str, str] | None = None) -> "Settings":
        """Read and validate. ``env`` defaults to ``os.environ``; ``env_file`` (or ``./.env`` when
        it exists and ``use_default_env_file``) fills in what the environment does not set.
        ``overrides`` (e.g. command-line options) win over both."""
        return cls.from_mapping(cls.gather(env, env_file=env_file, use_default_env_file=use_default_env_file,
                                           overrides=overrides))

    @staticmethod
    def gather(env: Mapping[str, str] | None = None, *, env_file: str | os.PathLike | None = None,
               use_default_env_file: bool = True, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
        """The raw values ``load`` would read (the .env file, then the environment, then
        ``overrides``), unvalidated — ``giftsync doctor`` checks them one by one."""
        merged: dict[str, str] = {}
        path: Path | None = Path(env_file) if env_file else None
        if path is None and use_default_env_file and Path(".env").is_file():
            path = Path(".env")
        if path is not None:
            if not path.is_file():
                raise ConfigError(f"env file not found: {path}")
            from dotenv import dotenv_values
            merged.update({k: v for k, v in dotenv_values(path).items() if v is not None})
        merged.update(os.environ if env is None else env)
        if overrides:
            merged.update({k: v for k, v in overrides.items() if v is not None})
        return merged

    @classmethod
    def from_mapping(cls, env: Mapping[str, str]) -> "Settings":
        values, problems = check_each(env)
        if problems:
            raise ConfigError("invalid configuration:\n  " + "\n  ".join(
                f"{name}: {problem}" for name, problem in problems.items()))
        return cls(**values)

    # -- views ---------------------------------------------------------------------------
    def interval(self, prong: str) -> float:
        return {
            "store": self.store_interval,
            "shopify-purchases": self.shopify_purchases_interval,
            "shopify-redemptions": self.shopify_redemptions_interval,
        }[prong]

    def secret_values(self) -> list[str]:
        """Every secret's value, for the log redaction filter."""
        return [getattr(self, f.name).reveal() for f in fields(self)
                if f.metadata["secret"] and getattr(self, f.name)]

    def redacted(self) -> dict[str, Any]:
        """Every setting by its environment name, secrets shown as ``********`` (for logs, doctor)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.metadata["secret"]:
                out[f.metadata["env"]] = "********" if value else ""
            elif isinstance(value, Decimal):
                out[f.metadata["env"]] = str(value)
            else:
                out[f.metadata["env"]] = value
        return out

    @property
    def uses_twins(self) -> dict[str, bool]:
        return {"airtable": bool(self.airtable_api_url), "shopify": bool(self.shopify_admin_url),
                "klaviyo": bool(self.klaviyo_api_url)}

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.redacted().items())
        return f"Settings({inner})"

    __str__ = __repr__


# -- parsing ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Spec:
    parse: Callable[[str], Any]
    default: str | None = None
    required: bool = False
    hint: str = ""


def _secret(min_len: int = 8) -> Callable[[str], Secret]:
    def parse(raw: str) -> Secret:
        if any(ch.isspace() for ch in raw):
            raise ValueError("must not contain spaces")
        if len(raw) < min_len:
            raise ValueError(f"too short: at least {min_len} characters required")
        return Secret(raw)
    return parse


def _pattern(regex: str, what: str, transform: Callable[[str], str] = lambda s: s) -> Callable[[str], str]:
    compiled = re.compile(regex)

    def parse(raw: str) -> str:
        value = transform(raw)
        if not compiled.fullmatch(value):
            raise ValueError(f"malformed: expected {what}, got {raw!r}")
        return value
    return parse


def _number(*, minimum: float | None = None, maximum: float | None = None, integer: bool = False,
            unit: str = "") -> Callable[[str], Any]:
    def parse(raw: str) -> Any:
        try:
            value: Any = int(raw) if integer else float(raw)
        except ValueError:
            raise ValueError(f"malformed: expected {'a whole number' if integer else 'a number'}"
                             f"{' of ' + unit if unit else ''}, got {raw!r}") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"malformed: expected a finite number, got {raw!r}")
        if minimum is not None and value < minimum:
            raise ValueError(f"must be at least {minimum:g}, got {raw!r}")
        if maximum is not None and value > maximum:
            raise ValueError(f"must be at most {maximum:g}, got {raw!r}")
        return value
    return parse


def _amount(raw: str) -> Decimal:
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ValueError(f"malformed: expected an amount like 500 or 500.00, got {raw!r}") from None
    if not value.is_finite() or value <= 0:
        raise ValueError(f"must be a positive amount, got {raw!r}")
    if value.as_tuple().exponent < -2:
        raise ValueError(f"at most 2 decimals, got {raw!r}")
    return value


def _url(raw: str) -> str:
    parsed = urlparse(raw)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"malformed: expected an http(s) URL such as http://127.0.0.1:8787, got {raw!r}")
    if parsed.query or parsed.fragment:
        raise ValueError(f"malformed: a base URL has no query or fragment, got {raw!r}")
    return raw.rstrip("/")


def _shop(raw: str) -> str:
    value = raw.strip().lower()
    value = re.sub(r"^https?://", "", value).rstrip("/")
    if re.fullmatch(r"[a-z0-9][a-z0-9-]*", value):
        value += SHOP_DOMAIN_SUFFIX
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*" + re.escape(SHOP_DOMAIN_SUFFIX), value):
        raise ValueError(f"malformed: expected your-shop.myshopify.com, got {raw!r}")
    return value


def _choice(options: tuple[str, ...], transform: Callable[[str], str] = str.lower) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = transform(raw)
        if value not in options:
            raise ValueError(f"must be one of {', '.join(options)}, got {raw!r}")
        return value
    return parse


def _cron(raw: str) -> str | None:
    if raw.lower() in ("off", "none", "disabled"):
        return None
    try:
        from apscheduler.triggers.cron import CronTrigger
        CronTrigger.from_crontab(raw, timezone="UTC")
    except ValueError as exc:
        raise ValueError(f"malformed crontab (minute hour day month weekday, UTC) {raw!r}: {exc}") from None
    return raw


def _skus(raw: str) -> tuple:
    items = [part.strip() for part in re.split(r"[,\s]+", raw) if part.strip()]
    for item in items:
        if len(item) > 255 or any(ch in item for ch in "\"'"):
            raise ValueError(f"malformed SKU {item[:40]!r}: no quotes, at most 255 characters")
    return tuple(items)


_TAG = r"[A-Za-z0-9][A-Za-z0-9 _.:-]{0,39}"
_EMAIL = r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}"
_SPECS: dict[str, _Spec] = {
    "airtable_token": _Spec(_secret(), required=True, hint="an Airtable personal access token"),
    "airtable_base_id": _Spec(_pattern(r"app[A-Za-z0-9]{14}", "an Airtable base id like appXXXXXXXXXXXXXX"),
                              required=True, hint="the base id, appXXXXXXXXXXXXXX"),
    "shopify_shop": _Spec(_shop, required=True, hint="your-shop.myshopify.com"),
    "shopify_access_token": _Spec(_secret(), required=True, hint="the Shopify app's Admin API access token"),
    "shopify_api_version": _Spec(_pattern(r"\d{4}-(01|04|07|10)|unstable", "an API version like 2026-07"),
                                 default=DEFAULT_SHOPIFY_API_VERSION),
    "klaviyo_api_key": _Spec(_secret(), required=True, hint="a Klaviyo private API key"),
    "code_secret": _Spec(_secret(MIN_CODE_SECRET_LENGTH), required=True,
                         hint=f"a random secret of at least {MIN_CODE_SECRET_LENGTH} characters, "
                              "e.g. python -c 'import secrets; print(secrets.token_urlsafe(48))'"),
    "admin_email": _Spec(_pattern(_EMAIL, "an email address"), required=True,
                         hint="where alerts go"),
    "airtable_api_url": _Spec(_url),
    "shopify_admin_url": _Spec(_url),
    "klaviyo_api_url": _Spec(_url),
    "store_interval": _Spec(_number(minimum=0.05, unit="seconds"), default="15"),
    "shopify_purchases_interval": _Spec(_number(minimum=0.05, unit="seconds"), default="15"),
    "shopify_redemptions_interval": _Spec(_number(minimum=0.05, unit="seconds"), default="15"),
    "redemption_poll_seconds": _Spec(_number(minimum=0, unit="seconds"), default="5"),
    "reconcile_schedule": _Spec(_cron, default="30 3 * * *"),
    "gift_card_skus": _Spec(_skus, default=""),
    "order_tag": _Spec(_pattern(_TAG, "a tag of letters, digits, - _ . : (at most 40)"), default="giftsync-done"),
    "redemption_tag": _Spec(_pattern(_TAG, "a tag of letters, digits, - _ . : (at most 40)"),
                            default="giftsync-redeemed"),
    "order_overlap_seconds": _Spec(_number(minimum=0, maximum=86400, unit="seconds"), default="600"),
    "misfire_grace_seconds": _Spec(_number(minimum=1, unit="seconds"), default="30"),
    "lease_seconds": _Spec(_number(minimum=1, unit="seconds"), default="90"),
    "lease_renew_seconds": _Spec(_number(minimum=0.05, unit="seconds"), default="15"),
    "lease_margin_seconds": _Spec(_number(minimum=0, unit="seconds"), default="15"),
    "lease_settle_seconds": _Spec(_number(minimum=0, maximum=60, unit="seconds"), default="2"),
    "max_card_amount": _Spec(_amount, default="1000"),
    "max_quantity": _Spec(_number(minimum=1, maximum=1000, integer=True), default="50"),
    "default_currency": _Spec(_pattern(r"[A-Z]{3}", "a 3-letter ISO currency code like USD", str.upper),
                              default="USD"),
    "balance_check_limit": _Spec(_number(minimum=1, integer=True), default="5"),
    "balance_check_window_seconds": _Spec(_number(minimum=1, unit="seconds"), default="3600"),
    "http_timeout_seconds": _Spec(_number(minimum=0.1, maximum=600, unit="seconds"), default="20"),
    "airtable_rate": _Spec(_number(minimum=0.1, maximum=100, unit="requests per second"), default="4"),
    "klaviyo_rate": _Spec(_number(minimum=0.1, maximum=1000, unit="requests per second"), default="40"),
    "log_format": _Spec(_choice(LOG_FORMATS), default="text"),
    "log_level": _Spec(_choice(LOG_LEVELS, str.upper), default="INFO"),
}


def _cross_checks(values: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    lease, renew, margin = values["lease_seconds"], values["lease_renew_seconds"], values["lease_margin_seconds"]
    settle = values["lease_settle_seconds"]
    if renew + margin >= lease:
        problems.append(
            f"GIFTSYNC_LEASE_SECONDS: must be longer than GIFTSYNC_LEASE_RENEW_SECONDS + "
            f"GIFTSYNC_LEASE_MARGIN_SECONDS ({renew:g} + {margin:g}), got {lease:g}")
    if settle * 2 >= lease:
        problems.append(f"GIFTSYNC_LEASE_SETTLE_SECONDS: must be less than half the lease, got {settle:g}")
    return problems


def check_each(env: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Parse every setting of ``env``: (field name → value, env name → problem). A setting
    with a problem has no value; the cross-checks (lease lengths) run when the settings
    they compare parsed. Problems never contain a secret's value."""
    problems: dict[str, str] = {}
    values: dict[str, Any] = {}
    for f in fields(Settings):
        name = f.metadata["env"]
        spec = _SPECS[f.name]
        raw = env.get(name)
        raw = raw.strip() if isinstance(raw, str) else raw
        if raw in (None, ""):
            if spec.required:
                problems[name] = f"missing ({spec.hint})"
                continue
            raw = spec.default
            if raw is None:
                values[f.name] = None
                continue
        try:
            values[f.name] = spec.parse(raw)
        except ValueError as exc:
            problems[name] = str(exc)  # secret parsers never put the value in exc
    if not problems:
        for problem in _cross_checks(values):
            name, _, text = problem.partition(": ")
            problems.setdefault(name, text)
    return values, problems


def setting_hint(env_name: str) -> str:
    """What a setting holds (for doctor's fixes): the hint of a required one, else ''."""
    for f in fields(Settings):
        if f.metadata["env"] == env_name:
            return _SPECS[f.name].hint
    return ""


def default_value(field_name: str) -> Any:
    """The parsed default of a setting (None when it has none)."""
    spec = _SPECS[field_name]
    return None if spec.default is None else spec.parse(spec.default)


def env_names() -> dict[str, str]:
    """Field name → environment variable name."""
    return {f.name: f.metadata["env"] for f in fields(Settings)}


def secret_env_names() -> list[str]:
    return [f.metadata["env"] for f in fields(Settings) if f.metadata["secret"]]
