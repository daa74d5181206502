"""``giftsync init-base`` and ``giftsync doctor`` through the CLI against the three twins.

init-base builds, on an empty base, the exact schema the daemon runs on (``giftsync once``
then redeems a card on it) and creates nothing the second time; doctor passes against a
healthy setup and names each problem of a broken one (missing setting, missing Shopify
scope, a missing table and field, a wrong base id, bad Klaviyo key) with its fix — without
ever printing a secret.
"""
from __future__ import annotations

import copy
import io
import json

import pytest

from giftsync import cli
from giftsync.adapters.airtable import AirtableCardBook
from giftsync.adapters.airtable.schema import compare_schema
from giftsync.bootstrap import build_app
from giftsync.config import Settings, env_names
from giftsync.sandbox import start_twin
from giftsync.sandbox.airtable.seed import base_seed_from_schema, load_base_schema

TOKEN = "patOperatorTwin00.0123456789abcdef0123456789abcdef"
BASE = "appOperatorBase01"
EMPTY = "appOperatorEmpty1"
SHOP_TOKEN = "shpat_0123456789abcdef0123456789abcd01"
NARROW_TOKEN = "shpat_0123456789abcdef0123456789abcd02"
KEY = "pk_operator_0123456789abcdefghij"
CODE_SECRET = "s" * 40
CODE = "AAAA1111BBBB2222"
ALL_SCOPES = ["read_gift_cards", "write_gift_cards", "read_gift_card_transactions", "write_gift_card_transactions",
              "read_orders", "write_orders", "read_customers", "write_customers"]
NARROW_SCOPES = ["read_gift_cards", "write_gift_cards", "read_gift_card_transactions", "read_orders", "write_orders"]
SECRETS = (TOKEN, SHOP_TOKEN, NARROW_TOKEN, KEY, CODE_SECRET)


def _seed(schema: dict | None = None) -> dict:
    full = base_seed_from_schema(schema or load_base_schema(), base_id=BASE)
    full["bases"].append({"id": EMPTY, "name": "empty", "tables": []})
    return full


@pytest.fixture
def twins():
    started = {}

    def _start(seed=None, klaviyo_scopes=None):
        started["airtable"] = start_twin("airtable", seed=seed or _seed(), rate_limit=False, token=TOKEN)
        started["shopify"] = start_twin("shopify", seed={"giftCards": [{"code": CODE, "initialValue": "50.00"}]},
                                        tokens={SHOP_TOKEN: ALL_SCOPES, NARROW_TOKEN: NARROW_SCOPES})
        started["klaviyo"] = start_twin("klaviyo", api_key=KEY, rate_limit=False, scopes=klaviyo_scopes)
        return started
    yield _start
    for server in started.values():
        server.stop()


def env_of(servers, **changes) -> dict[str, str]:
    env = {
        "AIRTABLE_TOKEN": TOKEN, "AIRTABLE_BASE_ID": BASE, "SHOPIFY_SHOP": "operator-test",
        "SHOPIFY_ACCESS_TOKEN": SHOP_TOKEN, "KLAVIYO_API_KEY": KEY, "GIFTSYNC_CODE_SECRET": CODE_SECRET,
        "GIFTSYNC_ADMIN_EMAIL": "admin@example.test", "AIRTABLE_API_URL": servers["airtable"].url,
        "SHOPIFY_ADMIN_URL": servers["shopify"].url, "KLAVIYO_API_URL": servers["klaviyo"].url,
        "GIFTSYNC_LEASE_SETTLE_SECONDS": "0.1", "GIFTSYNC_AIRTABLE_RATE": "50",
    }
    for k, v in changes.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


pytestmark = pytest.mark.usefixtures("clean_giftsync_logging")


@pytest.fixture
def env_file(tmp_path, monkeypatch):
    """Write an env file and clear the process environment of every setting (it would win)."""
    monkeypatch.chdir(tmp_path)
    for name in env_names().values():
        monkeypatch.delenv(name, raising=False)

    def _write(env: dict[str, str]) -> str:
        path = tmp_path / "giftsync.env"
        path.write_text("".join(f"{k}={v}\n" for k, v in env.items()), encoding="utf-8")
        return str(path)
    return _write


def run(argv, capsys, settings=None):
    logs_out = io.StringIO()
    code = cli.main(argv, settings=settings, log_stream=logs_out)
    out, err = capsys.readouterr()
    everything = out + err + logs_out.getvalue()
    for secret in SECRETS:
        assert secret not in everything, "a secret was printed"
    return code, out, err


# -- init-base ----------------------------------------------------------------------------------

def test_init_base_builds_the_schema_the_daemon_runs_on(twins, capsys):
    servers = twins()
    settings = Settings.from_mapping(env_of(servers, AIRTABLE_BASE_ID=EMPTY))
    code, out, err = run(["init-base"], capsys, settings)
    assert code == 0, out + err
    assert "created:  8 tables" in out and "the base is ready" in out
    assert "[1/8] created table Stores" in err and "[8/8] created table Status" in err     # progress

    # exactly the configured schema, the same as the twins' seeding builds
    book = AirtableCardBook(TOKEN, EMPTY, endpoint_url=servers["airtable"].url)
    report = compare_schema(book.base().schema(force=True))
    assert report.ok and report.extra_tables == [] and not report.differences
    seeded = servers["airtable"].app.store.base(BASE)
    built = servers["airtable"].app.store.base(EMPTY)
    shape = lambda base: {t["name"]: sorted(servers["airtable"].app.store.table_schema(t, False)["fields"],  # noqa: E731
                                            key=lambda f: f["name"]) for t in base["tables"]}
    strip = lambda fs: [(f["name"], f["type"]) for f in fs]                                              # noqa: E731
    assert {k: strip(v) for k, v in shape(built).items()} == {k: strip(v) for k, v in shape(seeded).items()}

    # the daemon runs on it: a store, a redemption, one cycle through the real adapters
    store = book.table("Stores").create({"Name": "Main St", "Email": "main@example.test", "Active": True})
    book.table("Store Redemptions").create({"Code": "aaaa-1111-bbbb-2222", "Amount": 10, "Store": [store["id"]]})
    assert run(["once", "--prong", "store"], capsys, settings)[0] == 0
    app = build_app(settings)
    try:
        assert app.ledger.find_by_code(CODE).balance.amount == 40
        [record] = book.table("Store Redemptions").all()
        assert record["fields"]["Status"] == "Done" and record["fields"]["Balance After"] == 40
        assert CODE not in json.dumps(record["fields"])
        assert {r["fields"]["Activity"] for r in book.table("Receipts").all()} >= {"REDEEM"}
    finally:
        app.close()

    # a second run creates nothing and only reads
    servers["airtable"].clear_requests()
    code, out, _ = run(["init-base", "--json"], capsys, settings)
    data = json.loads(out)
    assert code == 0 and data["ok"] and data["created_tables"] == [] and data["created_fields"] == []
    assert len(data["existing_tables"]) == 8
    assert all(r["method"] == "GET" for r in servers["airtable"].requests() if not r["route"].startswith("sandbox"))


def test_init_base_completes_a_partial_base_and_reports_what_needs_a_person(twins, capsys):
    schema = copy.deepcopy(load_base_schema())
    tables = {t["name"]: t for t in schema["tables"]}
    tables["Gift Cards"]["fields"] = [f for f in tables["Gift Cards"]["fields"] if f["name"] != "Last Synced"]
    for f in tables["Store Redemptions"]["fields"]:
        if f["name"] == "Amount":
            f["type"], f["options"] = "singleLineText", {}
    schema["tables"] = [t for t in schema["tables"] if t["name"] != "Receipts"]
    servers = twins(seed=_seed(schema))
    settings = Settings.from_mapping(env_of(servers))
    code, out, err = run(["init-base"], capsys, settings)
    assert code == 1
    assert "created:  1 tables: Receipts" in out and "Gift Cards.Last Synced" in out
    assert "DIFFERS:  Store Redemptions.Amount: type" in out and "by hand" in out
    code, out, _ = run(["init-base", "--json"], capsys, settings)
    data = json.loads(out)
    assert code == 1 and data["created_tables"] == [] and data["created_fields"] == []
    assert [d["field"] for d in data["differences"]] == ["Amount"]


def test_init_base_with_a_wrong_token_or_base_exits_2_naming_the_setting(twins, capsys):
    servers = twins()
    bad = Settings.from_mapping(env_of(servers, AIRTABLE_TOKEN="patWrongToken0000.ffffffffffffffffffffffffffffffff"))
    code, out, err = run(["init-base"], capsys, bad)
    assert code == 2 and "AIRTABLE_TOKEN" in err and "fix:" in err
    wrong_base = Settings.from_mapping(env_of(servers, AIRTABLE_BASE_ID="appNoSuchBase0000"))
    code, out, _ = run(["init-base", "--json"], capsys, wrong_base)
    assert code == 2 and "AIRTABLE_BASE_ID" in json.loads(out)["fix"]


# -- doctor -------------------------------------------------------------------------------------

def test_doctor_passes_against_healthy_twins(twins, capsys, env_file):
    servers = twins()
    code, out, err = run(["doctor", "--env-file", env_file(env_of(servers))], capsys)
    assert code == 0, out + err
    assert "\nFAIL " not in "\n" + out and out.rstrip().endswith("all checks passed")
    for line in ("ok    setting AIRTABLE_TOKEN: set (secret, not shown)", "ok    airtable token: valid",
                 "ok    airtable base: base appOperatorBase01 readable", "ok    airtable schema:",
                 "ok    shopify token: valid", "ok    shopify scopes: granted", "ok    klaviyo key: valid",
                 "ok    lease: free"):
        assert line in out, line
    code, out, _ = run(["doctor", "--json", "--env-file", env_file(env_of(servers))], capsys)
    data = json.loads(out)
    assert code == 0 and data["ok"]
    assert {c["name"] for c in data["checks"]} >= {"setting KLAVIYO_API_KEY", "airtable schema", "shopify scopes",
                                                   "klaviyo key", "lease"}


def test_doctor_names_each_problem_of_a_broken_setup_with_its_fix(twins, capsys, env_file):
    schema = copy.deepcopy(load_base_schema())
    tables = {t["name"]: t for t in schema["tables"]}
    tables["Gift Cards"]["fields"] = [f for f in tables["Gift Cards"]["fields"] if f["name"] != "Code Hash"]
    schema["tables"] = [t for t in schema["tables"] if t["name"] != "Receipts"]
    servers = twins(seed=_seed(schema))
    env = env_of(servers, GIFTSYNC_ADMIN_EMAIL=None, SHOPIFY_ACCESS_TOKEN=NARROW_TOKEN,
                 KLAVIYO_API_KEY="pk_notTheRightKey0123456789abc", GIFTSYNC_MAX_QUANTITY="lots")
    code, out, _ = run(["doctor", "--env-file", env_file(env)], capsys)
    assert code == 1
    lines = {line.split(":")[0] + ":" + line.split(":")[1]: line for line in out.splitlines() if line.startswith("FAIL")}
    fails = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert all(" — fix: " in line for line in fails), fails
    text = "\n".join(fails)
    assert "setting GIFTSYNC_ADMIN_EMAIL: missing" in text
    assert "setting GIFTSYNC_MAX_QUANTITY: malformed" in text
    assert "missing table(s): Receipts" in text and "giftsync init-base" in text
    assert "missing field(s): Gift Cards.Code Hash" in text
    scopes = next(line for line in fails if line.startswith("FAIL  shopify scopes"))
    assert "write_gift_card_transactions" in scopes and "read_customers" in scopes and "read_orders" not in scopes
    assert "Admin API access scopes" in scopes
    assert "FAIL  klaviyo key: KLAVIYO_API_KEY refused" in text and "private API key" in text
    assert "skip  lease" in out
    assert lines and out.rstrip().endswith(f"{len(fails)} check(s) failed")


def test_doctor_wrong_base_bad_airtable_token_and_klaviyo_scope(twins, capsys, env_file):
    servers = twins(klaviyo_scopes=["events:write", "profiles:write"])
    code, out, _ = run(["doctor", "--json", "--env-file", env_file(env_of(servers, AIRTABLE_BASE_ID="appNoSuchBase0000"))],
                       capsys)
    checks = {c["name"]: c for c in json.loads(out)["checks"]}
    assert code == 1
    assert checks["airtable base"]["status"] == "fail" and "AIRTABLE_BASE_ID" in checks["airtable base"]["fix"]
    assert checks["airtable schema"]["status"] == "skip"
    assert checks["klaviyo key"]["status"] == "fail" and "accounts:read" in checks["klaviyo key"]["detail"]
    assert checks["shopify scopes"]["status"] == "ok"

    code, out, _ = run(["doctor", "--env-file", env_file(env_of(
        servers, AIRTABLE_TOKEN="patWrongToken0000.ffffffffffffffffffffffffffffffff"))], capsys)
    assert code == 1
    assert "FAIL  airtable token: AIRTABLE_TOKEN refused" in out and "patWrongToken0000" not in out


def test_doctor_reports_a_live_and_a_stale_lease(twins, capsys):
    servers = twins()
    settings = Settings.from_mapping(env_of(servers))
    app = build_app(settings, holder="host-a:42:abcd")
    try:
        assert app.lease.acquire().ok
        code, out, _ = run(["doctor"], capsys, settings)
        assert code == 0 and "ok    lease: held by host-a:42:abcd, fresh" in out
        from datetime import timedelta
        from giftsync.ports import StatusRow
        from giftsync.runtime.lease import LEASE_ROW, ONLINE
        row = app.book.read_status(LEASE_ROW)
        app.book.write_status(StatusRow(name=LEASE_ROW, record_id=row.record_id, state=ONLINE, holder=row.holder,
                                        heartbeat=row.heartbeat - timedelta(seconds=300),
                                        lease_until=row.heartbeat - timedelta(seconds=210)))
        code, out, _ = run(["doctor"], capsys, settings)
        assert code == 0 and "warn  lease: stale: held by host-a:42:abcd" in out and "giftsync unlock" in out
    finally:
        app.close()


# -- logs of `once`: no whole code, no secret, in both formats ------------------------------------

@pytest.mark.parametrize("fmt", ["text", "json"])
def test_once_logs_no_code_and_no_secret(twins, capsys, fmt):
    servers = twins()
    settings = Settings.from_mapping(env_of(servers))
    book = AirtableCardBook(TOKEN, BASE, endpoint_url=servers["airtable"].url)
    store = book.table("Stores").create({"Name": "Main St", "Email": "main@example.test", "Active": True})
    for typed in ("aaaa-1111-bbbb-2222", "AAAA 1111 BBBB 2222 ", "ZZZZ9999YYYY8888"):
        book.table("Store Redemptions").create({"Code": typed, "Amount": 5, "Store": [store["id"]]})
    stream = io.StringIO()
    assert cli.main(["once", "--log-format", fmt, "--log-level", "DEBUG"], settings=settings, log_stream=stream) == 0
    text = stream.getvalue()
    assert text.strip()
    lines = text.strip().splitlines()
    if fmt == "json":
        events = [json.loads(line) for line in lines]
        assert all({"time", "level", "thread", "logger", "message"} <= set(e) for e in events)
    else:
        assert all(" [" in line and "]" in line for line in lines if line[:4].isdigit())
    flat = text.upper().replace(" ", "").replace("-", "")
    for code in (CODE, "ZZZZ9999YYYY8888"):
        assert code not in flat
    for secret in SECRETS:
        assert secret not in text
