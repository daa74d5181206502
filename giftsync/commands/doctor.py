"""``giftsync doctor``: check the settings, the three accounts, the base's schema and the lease.

One line per check — ``ok``, ``warn``, ``FAIL`` or ``skip`` — and a fix for each problem.
Settings are checked one by one (a missing setting does not stop the other checks: each
service is checked when its own settings are valid). Nothing is written anywhere; the
requests are: Airtable whoami, the base schema and the lease row; Shopify's
``currentAppInstallation``; Klaviyo's ``GET /api/accounts``. Secrets are never printed:
a failing token is named by its setting.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable

from ..errors import FatalError, ServiceError
from . import EXIT_FAILED, EXIT_OK, add_command, setup_logging

log = logging.getLogger("giftsync.doctor")

# What giftsync asks of each service (README "Production setup").
SHOPIFY_SCOPES = ("read_gift_cards", "write_gift_cards", "read_gift_card_transactions",
                  "write_gift_card_transactions", "read_orders", "write_orders", "read_customers")
SHOPIFY_SCOPE_USES = {
    "read_gift_cards": "read cards",
    "write_gift_cards": "create cards",
    "read_gift_card_transactions": "read a card's transactions (read-back before a retry)",
    "write_gift_card_transactions": "debit and credit cards",
    "read_orders": "read online orders",
    "write_orders": "tag handled orders",
    "read_customers": "read the buyer and card owner",
}
AIRTABLE_SCOPES = ("data.records:read", "data.records:write", "schema.bases:read")
AIRTABLE_INIT_SCOPE = "schema.bases:write"
KLAVIYO_SCOPES = ("events:write", "accounts:read")   # create_event; get_accounts (doctor)

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
_MARK = {OK: "ok  ", WARN: "warn", FAIL: "FAIL", SKIP: "skip"}

EPILOG = """exit codes:
  0    every check passed (warnings allowed)
  1    at least one check failed (each FAIL line says how to fix it); settings are checked
       here one by one, so a missing setting is a failed check, not exit 78
  2    bad command line
  78   the file given to --env-file does not exist"""


@dataclass
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{_MARK[self.status]}  {self.name}: {self.detail}"
        if self.fix and self.status in (FAIL, WARN):
            text += f" — fix: {self.fix}"
        return text


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = add_command(subparsers, "doctor", help="check settings, tokens and scopes, the base's schema and the lease",
                    description=(
                        "Checks, one line each with a fix for every problem: each setting (present and "
                        "well-formed); the Airtable token (whoami) and its access to the base (schema "
                        "read); the base's tables and fields against config/base_schema.json; the Shopify "
                        "token and its granted access scopes against the ones giftsync needs; the Klaviyo "
                        "private key (GET /api/accounts); the lease (holder, fresh or stale). Read-only and "
                        "safe next to a running daemon. Secrets are never printed: a failing token is named "
                        "by its setting."),
                    epilog=EPILOG)
    p.add_argument("--json", action="store_true",
                   help='print one JSON object: {"ok": bool, "checks": [{name, status, detail, fix}]}')
    return p


def run(args: argparse.Namespace) -> int:
    checks = diagnose(args)
    ok = not any(c.status == FAIL for c in checks)
    from ..runtime.logs import redact
    for c in checks:    # belt and braces: no secret or whole code in any line
        c.detail, c.fix = redact(c.detail), redact(c.fix)
    if args.json:
        print(json.dumps({"ok": ok, "checks": [asdict(c) for c in checks]}, indent=2))
    else:
        for c in checks:
            print(c.line())
        failed = sum(c.status == FAIL for c in checks)
        warned = sum(c.status == WARN for c in checks)
        print(f"doctor: {'all checks passed' if ok else f'{failed} check(s) failed'}"
              f"{f', {warned} warning(s)' if warned else ''}")
    return EXIT_OK if ok else EXIT_FAILED


# -- the checks ------------------------------------------------------------------------------

def diagnose(args: argparse.Namespace) -> list[Check]:
    settings, checks = _settings(args)
    if not getattr(args, "log_level", None):
        args.log_level = "ERROR"    # the report says it all; retries' warnings are noise here
    setup_logging(args, settings if _complete(settings) else None)
    _register_secrets(settings)
    factory = getattr(args, "_app_factory", None)
    app = factory(settings) if factory is not None else None
    checks += _airtable(settings, app)
    checks += _shopify(settings, app)
    checks += _klaviyo(settings, app)
    if app is not None:
        app.close()
    return checks


def _settings(args: argparse.Namespace) -> tuple[Any, list[Check]]:
    """Every setting checked on its own; a Settings object with None for the invalid ones
    (defaults standing in for invalid optional ones) so the other checks can still run."""
    from ..config import Settings, check_each, default_value, setting_hint
    given = getattr(args, "_settings", None)
    if given is not None:
        values = {f.name: getattr(given, f.name) for f in fields(Settings)}
        problems: dict[str, str] = {}
        raw_env: dict[str, str] = {}
    else:
        overrides = {}
        if getattr(args, "log_format", None):
            overrides["GIFTSYNC_LOG_FORMAT"] = args.log_format
        if getattr(args, "log_level", None):
            overrides["GIFTSYNC_LOG_LEVEL"] = args.log_level
        raw_env = Settings.gather(env_file=getattr(args, "env_file", None), overrides=overrides)
        values, problems = check_each(raw_env)
    checks = []
    where = getattr(args, "env_file", None) or "the environment or .env (systemd: the EnvironmentFile)"
    for f in fields(Settings):
        name, secret = f.metadata["env"], f.metadata["secret"]
        if name in problems:
            hint = setting_hint(name)
            fix = f"set {name} in {where}" + (f" ({hint})" if hint and hint not in problems[name] else "") \
                + "; see config/example.env"
            checks.append(Check(f"setting {name}", FAIL, problems[name], fix))
            if f.name not in values or values.get(f.name) is None:
                values[f.name] = default_value(f.name)
            continue
        value = values.get(f.name)
        if secret:
            detail = "set (secret, not shown)"
        elif value is None or value == "" or value == ():
            detail = "not set (" + ("the real service)" if name.endswith("_URL") else "default)")
        else:
            shown = ",".join(value) if isinstance(value, tuple) else str(value)
            detail = f"= {shown}"
        checks.append(Check(f"setting {name}", OK, detail))
    return Settings(**values), checks


def _complete(settings: Any) -> bool:
    return all(getattr(settings, n) for n in ("airtable_token", "airtable_base_id", "shopify_shop",
                                              "shopify_access_token", "klaviyo_api_key", "code_secret"))


def _register_secrets(settings: Any) -> None:
    from ..config import secret_env_names, env_names
    from ..runtime.logs import register_secret
    by_env = {v: k for k, v in env_names().items()}
    for env in secret_env_names():
        value = getattr(settings, by_env[env], None)
        if value:
            register_secret(value.reveal(), env)


def _attempt(name: str, call: Callable[[], Any], *, service: str, failure: Callable[[ServiceError], Check]) -> tuple[Any, Check | None]:
    """Run one request; a ServiceError becomes a FAIL check (unreachable → a network fix)."""
    try:
        return call(), None
    except FatalError as exc:
        return None, failure(exc)
    except ServiceError as exc:
        return None, Check(name, FAIL, f"could not reach {service}: {exc.reason}",
                           f"check the network and {service.upper()}_{'API' if service != 'shopify' else 'ADMIN'}_URL "
                           f"(empty for the real service); try again")
    except Exception as exc:  # noqa: BLE001 — a doctor reports, it does not crash
        return None, Check(name, FAIL, f"unexpected error {type(exc).__name__}: {exc}",
                           "run with --log-level DEBUG and report it")


# -- Airtable --------------------------------------------------------------------------------

def _airtable(settings: Any, app: Any) -> list[Check]:
    if not settings.airtable_token or not settings.airtable_base_id:
        return [Check("airtable", SKIP, "not checked: AIRTABLE_TOKEN / AIRTABLE_BASE_ID invalid (see above)")]
    if app is not None:
        book = app.book
    else:
        from ..bootstrap import build_card_book, make_budgets
        book = build_card_book(settings, make_budgets(settings, one_off=True)["airtable"])
    checks: list[Check] = []
    try:
        if hasattr(book, "whoami"):
            def token_refused(exc: ServiceError) -> Check:
                return Check("airtable token", FAIL, f"AIRTABLE_TOKEN refused: {exc.reason}",
                             "create a personal access token at airtable.com/create/tokens with scopes "
                             f"{', '.join(AIRTABLE_SCOPES)}, {AIRTABLE_INIT_SCOPE} and put it in AIRTABLE_TOKEN")
            me, failed = _attempt("airtable token", book.whoami, service="airtable", failure=token_refused)
            if failed:
                return checks + [failed, Check("airtable base", SKIP, "not checked: the token failed")]
            checks.append(_airtable_scopes(me))
        checks += _airtable_base(settings, book)
    finally:
        closer = getattr(book, "close", None)
        if app is None and callable(closer):
            closer()
    return checks


def _airtable_scopes(me: dict) -> Check:
    user = me.get("id") or "?"
    scopes = me.get("scopes")
    if scopes is None:   # personal access tokens: Airtable does not list scopes
        return Check("airtable token", OK, f"valid (user {user}); scopes are checked by the requests below")
    missing = [s for s in AIRTABLE_SCOPES if s not in scopes]
    if missing:
        return Check("airtable token", FAIL, f"valid (user {user}) but lacks scope(s) {', '.join(missing)}",
                     "edit the token at airtable.com/create/tokens and add " + ", ".join(missing))
    if AIRTABLE_INIT_SCOPE not in scopes:
        return Check("airtable token", OK, f"valid (user {user}), scopes {', '.join(AIRTABLE_SCOPES)} "
                                            f"(no {AIRTABLE_INIT_SCOPE}: init-base cannot create tables)")
    return Check("airtable token", OK, f"valid (user {user}), scopes {', '.join(sorted(scopes))}")


def _airtable_base(settings: Any, book: Any) -> list[Check]:
    base = settings.airtable_base_id

    def base_refused(exc: ServiceError) -> Check:
        return Check("airtable base", FAIL, f"base {base} not readable with AIRTABLE_TOKEN: {exc.reason}",
                     "check AIRTABLE_BASE_ID (the appXXXXXXXXXXXXXX in the base's URL) and add the base to the "
                     "token's access list (and the schema.bases:read scope)")
    report, failed = _attempt("airtable base", book.check_schema, service="airtable", failure=base_refused)
    if failed:
        return [failed, Check("airtable schema", SKIP, "not checked: the base is not readable"),
                Check("lease", SKIP, "not checked: the base is not readable")]
    checks = [Check("airtable base", OK, f"base {base} readable ({len(report.present_tables)} of the configured "
                                         f"tables present)")]
    missing_fields = [f"{t}.{f}" for t, f in report.missing_fields if t not in report.missing_tables]
    if report.missing_tables:
        checks.append(Check("airtable schema", FAIL, "missing table(s): " + ", ".join(report.missing_tables),
                            "run `giftsync init-base` (the token needs schema.bases:write)"))
    if missing_fields:
        checks.append(Check("airtable schema", FAIL, "missing field(s): " + ", ".join(missing_fields),
                            "run `giftsync init-base` (the token needs schema.bases:write)"))
    for d in report.differences:
        where = f"{d.table}.{d.field}" if d.field else d.table
        checks.append(Check("airtable schema", FAIL,
                            f"{where}: {d.problem} (expected {d.expected!r}, found {d.actual!r})",
                            f"change {where} by hand in Airtable to match config/base_schema.json"))
    if report.ok:
        extra = len(report.extra_tables) + len(report.extra_fields)
        checks.append(Check("airtable schema", OK, "every configured table and field is there"
                            + (f" ({extra} extra tables/fields ignored)" if extra else "")))
        checks.append(_lease(settings, book))
    else:
        checks.append(Check("lease", SKIP, "not checked: fix the schema first"))
    return checks


def _lease(settings: Any, book: Any) -> Check:
    from ..runtime.clock import SystemClock
    from ..runtime.lease import LEASE_ROW, ONLINE, view
    row, failed = _attempt("lease", lambda: book.read_status(LEASE_ROW), service="airtable",
                           failure=lambda exc: Check("lease", FAIL, f"the Status table is not readable: {exc.reason}",
                                                     "check the token's data.records:read scope"))
    if failed:
        return failed
    now = SystemClock().now()
    lease = view(row, now, settings.lease_seconds or 90.0)
    if row is None or lease.state != ONLINE:
        last = f" (last holder {lease.holder})" if lease.holder else ""
        return Check("lease", OK, f"free{last}: no daemon running")
    beat = f"heartbeat {int((now - lease.heartbeat).total_seconds())} s ago" if lease.heartbeat else "no heartbeat"
    if lease.active:
        return Check("lease", OK, f"held by {lease.holder}, fresh ({beat})")
    return Check("lease", WARN, f"stale: held by {lease.holder} whose lease ran out ({beat})",
                 "nothing needed — the next daemon takes it over (a TAKEOVER receipt); `giftsync unlock` ends it now; "
                 "if a daemon should be running, check `systemctl status giftsync`")


# -- Shopify ---------------------------------------------------------------------------------

def _shopify(settings: Any, app: Any) -> list[Check]:
    if not settings.shopify_shop or not settings.shopify_access_token:
        return [Check("shopify", SKIP, "not checked: SHOPIFY_SHOP / SHOPIFY_ACCESS_TOKEN invalid (see above)")]
    if app is not None:
        ledger = app.ledger
    else:
        from ..bootstrap import build_ledger
        ledger = build_ledger(settings)
    try:
        def refused(exc: ServiceError) -> Check:
            return Check("shopify token", FAIL, f"SHOPIFY_ACCESS_TOKEN refused by {settings.shopify_shop}: {exc.reason}",
                         "copy the Admin API access token of the shop's custom app (Settings → Apps → Develop "
                         "apps → giftsync → API credentials) into SHOPIFY_ACCESS_TOKEN, and check SHOPIFY_SHOP")
        granted, failed = _attempt("shopify token", ledger.access_scopes, service="shopify", failure=refused)
    finally:
        closer = getattr(ledger, "close", None)
        if app is None and callable(closer):
            closer()
    if failed:
        return [failed, Check("shopify scopes", SKIP, "not checked: the token failed")]
    checks = [Check("shopify token", OK, f"valid for {settings.shopify_shop} (API {settings.shopify_api_version})")]
    missing = missing_shopify_scopes(granted)
    if missing:
        uses = "; ".join(f"{s} ({SHOPIFY_SCOPE_USES[s]})" for s in missing)
        checks.append(Check("shopify scopes", FAIL, f"missing {uses}",
                            "in the shop admin: Settings → Apps → Develop apps → giftsync → Configuration → "
                            f"Admin API access scopes, tick {', '.join(missing)}, save and reinstall the app "
                            "(the token stays the same)"))
    else:
        checks.append(Check("shopify scopes", OK, "granted " + ", ".join(SHOPIFY_SCOPES)))
    return checks


def missing_shopify_scopes(granted: list[str]) -> list[str]:
    """The needed scopes not granted (a ``write_x`` scope implies ``read_x``)."""
    have = set(granted)
    have |= {"read_" + s[len("write_"):] for s in granted if s.startswith("write_")}
    return [s for s in SHOPIFY_SCOPES if s not in have]


# -- Klaviyo ---------------------------------------------------------------------------------

def _klaviyo(settings: Any, app: Any) -> list[Check]:
    if not settings.klaviyo_api_key:
        return [Check("klaviyo", SKIP, "not checked: KLAVIYO_API_KEY invalid (see above)")]
    if app is not None:
        messenger = app.messenger
    else:
        from ..bootstrap import build_messenger
        messenger = build_messenger(settings)
    if not hasattr(messenger, "check_key"):
        return [Check("klaviyo key", SKIP, "not checkable with this messenger")]
    try:
        def refused(exc: ServiceError) -> Check:
            if exc.status == 403:
                return Check("klaviyo key", FAIL, "KLAVIYO_API_KEY lacks the accounts:read scope",
                             "in Klaviyo: Settings → API keys → edit the private key: give it "
                             + ", ".join(KLAVIYO_SCOPES))
            return Check("klaviyo key", FAIL, f"KLAVIYO_API_KEY refused: {exc.reason}",
                         "create a private API key (Settings → API keys → Create private API key) with scopes "
                         + ", ".join(KLAVIYO_SCOPES) + " and put it in KLAVIYO_API_KEY")
        account, failed = _attempt("klaviyo key", messenger.check_key, service="klaviyo", failure=refused)
    finally:
        closer = getattr(messenger, "close", None)
        if app is None and callable(closer):
            closer()
    if failed:
        return [failed]
    org = account.get("organization") or account.get("account_id") or "?"
    return [Check("klaviyo key", OK, f"valid (account {org}); accounts:read granted"),
            Check("klaviyo scopes", SKIP, "events:write cannot be checked without sending an event; a key "
                                          "without it fails the first email (an EMAIL_FAILED "
                                          "receipt in Receipts)")]
