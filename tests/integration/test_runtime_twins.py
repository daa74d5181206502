"""The runtime wired by bootstrap.build_app over the real adapters against the three twins:
``giftsync once`` redeems through pyairtable/gql/klaviyo-api, and the lease works on the
Airtable twin's Status table (a second daemon is refused, an expired one taken over)."""
from __future__ import annotations

import io
from datetime import timedelta

import pytest
from twins import running_twins, twin_settings

from giftsync import cli
from giftsync.bootstrap import build_app
from giftsync.ports import StatusRow
from giftsync.runtime.lease import LEASE_ROW, OFFLINE, ONLINE
from giftsync.sandbox.airtable.seed import base_seed_from_schema, load_base_schema

TOKEN = "patRuntimeTwin000.0123456789abcdef0123456789abcdef"
BASE = "appGiftsyncSandbx"
SHOP_TOKEN = "shpat_0123456789abcdef0123456789abcdef"
KEY = "pk_runtime_0123456789abcdefghij"
STORE = "recStoreA00000001"
CODE = "AAAA1111BBBB2222"

pytestmark = pytest.mark.usefixtures("clean_giftsync_logging")


@pytest.fixture
def twins():
    seed = base_seed_from_schema(load_base_schema(), base_id=BASE)
    tables = {t["name"]: t for t in seed["bases"][0]["tables"]}
    tables["Stores"]["records"] = [{"id": STORE, "fields": {"Name": "Main St", "Email": "main@example.test",
                                                             "Active": True}}]
    tables["Store Redemptions"]["records"] = [{"fields": {"Code": "aaaa-1111-bbbb-2222", "Amount": 10,
                                                          "Store": [STORE]}}]
    with running_twins(seed, token=TOKEN, shop_seed={"giftCards": [{"code": CODE, "initialValue": "50.00"}]},
                       shop_token=SHOP_TOKEN, key=KEY) as servers:
        yield servers


@pytest.fixture
def settings(twins):
    return twin_settings(twins, token=TOKEN, base=BASE, shop="runtime-test", shop_token=SHOP_TOKEN, key=KEY,
                         secret="z" * 40)


def test_once_redeems_through_the_real_adapters(settings):
    out = io.StringIO()
    assert cli.main(["once"], settings=settings, log_stream=out) == 0
    app = build_app(settings)
    try:
        assert app.ledger.find_by_code(CODE).balance.amount == 40
        assert app.book.read_status(LEASE_ROW).state == OFFLINE
        assert app.book.read_status("cursor:store").last_run is not None
        assert not app.book.pending_redemptions()
    finally:
        app.close()
    text = out.getvalue()
    for secret in (TOKEN, SHOP_TOKEN, KEY, "z" * 40, CODE, "aaaa-1111-bbbb-2222"):
        assert secret not in text


def test_the_lease_on_the_twin_refuses_a_live_holder_and_takes_over_an_expired_one(settings):
    first, second = build_app(settings, holder="one:1:1"), build_app(settings, holder="two:2:2")
    try:
        assert first.lease.acquire().reason == "taken"
        outcome = second.lease.acquire()
        assert outcome.reason == "held" and outcome.other == "one:1:1"
        assert cli.main(["once"], settings=settings, log_stream=io.StringIO()) == 3
        row = first.book.read_status(LEASE_ROW)
        first.book.write_status(StatusRow(name=LEASE_ROW, record_id=row.record_id, state=ONLINE, holder="one:1:1",
                                          heartbeat=row.heartbeat - timedelta(seconds=200),
                                          lease_until=row.heartbeat - timedelta(seconds=110)))
        outcome = second.lease.acquire()
        assert outcome.reason == "takeover" and outcome.other == "one:1:1"
        assert second.lease._pending_receipts == []          # the TAKEOVER receipt went to the twin
        assert first.lease.renew().reason == "lost"
        assert second.lease.release().reason == "released"
    finally:
        first.close()
        second.close()
