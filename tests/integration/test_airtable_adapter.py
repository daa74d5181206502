"""AirtableCardBook through the real pyairtable against the Airtable twin: every CardBook
method, request counts (batching), idempotent rewrites, formula injection, error
classification with injected faults, and init-base / doctor on the metadata API."""
from __future__ import annotations

import copy
import json
import time
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from giftsync.adapters.airtable import AirtableCardBook, compare_schema, ensure_schema
from giftsync.domain.cards import CardKind, CardSource, CardStatus, MirrorCard
from giftsync.domain.ledger import Activity, Channel, Receipt
from giftsync.domain.money import Money
from giftsync.errors import AmbiguousError, FatalError, RetriableError
from giftsync.ports import FormTable, OrderEntry, OrderKind, OrderStatus, StatusRow
from giftsync.runtime.budget import RateBudget, Unlimited
from giftsync.sandbox import start_twin
from giftsync.sandbox.airtable.seed import base_seed_from_schema, load_base_schema

TOKEN = "patAdapterTest.0123456789secret"
BASE = "appGiftsyncSandbx"
SCHEMA = load_base_schema()
STORE_A, STORE_B = "recStoreA00000001", "recStoreB00000001"
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def seed(records: dict[str, list[dict]] | None = None) -> dict:
    s = base_seed_from_schema(SCHEMA, base_id=BASE)
    tables = {t["name"]: t for t in s["bases"][0]["tables"]}
    tables["Stores"]["records"] = [
        {"id": STORE_A, "fields": {"Name": "Main St", "Email": "main@example.test", "Active": True}},
        {"id": STORE_B, "fields": {"Name": "Harbour"}}]
    for name, recs in (records or {}).items():
        tables[name].setdefault("records", []).extend(recs)
    return s


class RecordingBudget(Unlimited):
    """A budget that counts what the adapter asks of it."""

    def __init__(self) -> None:
        self.acquires = 0
        self.pauses: list[float] = []

    def acquire(self, cost: float = 1.0, *, timeout: float | None = None) -> bool:
        self.acquires += 1
        return True

    def pause(self, seconds: float) -> None:
        self.pauses.append(seconds)


@pytest.fixture
def make():
    servers = []

    def _make(records=None, *, seed_data=None, **book_options):
        twin_options = book_options.pop("twin_options", {})
        base_id = book_options.pop("base_id", BASE)
        twin = start_twin("airtable", seed=seed_data or seed(records), rate_limit=twin_options.pop("rate_limit", False),
                          token=TOKEN, **twin_options)
        servers.append(twin)
        options = dict(budget=RecordingBudget(), timeout=(1.0, 2.0), backoff=0.01)
        options.update(book_options)
        book = AirtableCardBook(TOKEN, base_id, endpoint_url=twin.url, **options)
        twin.clear_requests()
        return twin, book

    yield _make
    for server in servers:
        server.stop()


def data_requests(twin) -> list[dict]:
    return [r for r in twin.requests() if not r["route"].startswith("sandbox")]


def card(i: int, **kw) -> MirrorCard:
    values = dict(record_id=None, shopify_id=f"gid://shopify/GiftCard/{i}", last4=f"A{i:03d}"[-4:],
                  balance=Money.of("50.00", "EUR"), code_hash=f"hash{i:04d}", initial_value=Money.of("50", "EUR"),
                  kind=CardKind.DIGITAL, source=CardSource.STORE_REQUEST, store_record_id=STORE_A,
                  created=NOW, source_record="Card Requests/recReq")
    values.update(kw)
    return MirrorCard(**values)


def receipt(i: int, card_id: str | None, **kw) -> Receipt:
    values = dict(receipt_id=f"redeem:rec{i:05d}", time=NOW + timedelta(seconds=i), activity=Activity.REDEEM,
                  channel=Channel.STORE, card_record_id=card_id, card_masked="•••• •••• •••• A001",
                  amount=Money.of("-1.25", "EUR"), balance_after=Money.of("48.75", "EUR"), store_record_id=STORE_A,
                  source=f"Store Redemptions/rec{i:05d}", outcome="Redeemed", correlation_id=f"c{i}")
    values.update(kw)
    return Receipt(**values)


# -- forms -----------------------------------------------------------------------------------
def _redemptions():
    t = NOW
    return [
        {"id": "recRedeem0000003", "createdTime": _iso(t + timedelta(minutes=3)), "fields": {"Code": "CCCC-3333", "Amount": 3, "Store": [STORE_A]}},
        {"id": "recRedeem0000001", "createdTime": _iso(t + timedelta(minutes=1)),
         "fields": {"Code": "aaaa aaaa", "Amount": 12.5, "Store": [STORE_A], "Staff": "Ann", "Note": "n", "Status": "New"}},
        {"id": "recRedeem0000002", "createdTime": _iso(t + timedelta(minutes=2)),
         "fields": {"Code": "BBBB", "Amount": 1, "Status": "Processing", "Attempt": "att-1"}},
        {"id": "recRedeem0000004", "createdTime": _iso(t), "fields": {"Code": "•••• •••• •••• DDDD", "Status": "Done", "Outcome": "Redeemed"}},
        {"id": "recRedeem0000005", "createdTime": _iso(t), "fields": {"Status": "Rejected", "Notified": True}},
    ]


def test_pending_redemptions_is_one_request_oldest_first(make):
    twin, book = make({"Store Redemptions": [r for r in _redemptions()]})
    forms = book.pending_redemptions()
    assert [f.record_id for f in forms] == ["recRedeem0000001", "recRedeem0000002", "recRedeem0000003"]
    first = forms[0]
    assert first.code_raw == "aaaa aaaa" and first.amount_raw == Decimal("12.5") and first.store_ids == [STORE_A]
    assert (first.staff, first.note, first.status) == ("Ann", "n", "New")
    assert forms[1].attempt == "att-1" and forms[2].status == ""
    assert len(data_requests(twin)) == 1
    assert [f.record_id for f in book.pending_redemptions(limit=1)] == ["recRedeem0000001"]
    assert book.session.budget.acquires == 2


def test_pending_card_requests_and_balance_checks(make):
    twin, book = make({
        "Card Requests": [{"id": "recRequest000001", "fields": {
            "Request": "R1", "Store": [STORE_B], "Amount": 25, "Quantity": 2, "Kind": "Physical",
            "Physical Serials": "SERIAL0001\nSERIAL0002", "Recipient Email": "r@example.test", "Is Gift": True,
            "Purchaser Email": "p@example.test", "Message": "Happy birthday"}},
            {"id": "recRequest000002", "fields": {"Request": "R2", "Status": "Done"}}],
        "Balance Checks": [{"id": "recCheck00000001", "fields": {"Code": "X", "Email": "c@example.test"}},
                           {"id": "recCheck00000002", "fields": {"Code": "Y", "Status": "Done"}}]})
    [req] = book.pending_card_requests()
    assert (req.record_id, req.amount_raw, req.quantity_raw, req.kind, req.is_gift) == ("recRequest000001", 25, 2, "Physical", True)
    assert req.serials_raw == "SERIAL0001\nSERIAL0002" and req.store_ids == [STORE_B] and req.message == "Happy birthday"
    [check] = book.pending_balance_checks()
    assert (check.record_id, check.code_raw, check.email_raw) == ("recCheck00000001", "X", "c@example.test")
    assert len(data_requests(twin)) == 2


def test_a_poll_brings_pending_and_unnotified_records_in_one_request(make):
    twin, book = make({"Store Redemptions": _redemptions()})
    forms = book.pending_redemptions(with_unnotified=True)
    assert [f.record_id for f in forms] == ["recRedeem0000001", "recRedeem0000002", "recRedeem0000003",
                                            "recRedeem0000004"]
    assert forms[-1].status == "Done" and not forms[-1].notified
    assert len(data_requests(twin)) == 1


def test_unnotified_lists_finished_records_without_the_box(make):
    twin, book = make({"Store Redemptions": _redemptions()})
    assert [f.record_id for f in book.unnotified(FormTable.REDEMPTIONS)] == ["recRedeem0000004"]
    assert len(data_requests(twin)) == 1


def test_update_forms_batches_by_ten_and_writes_domain_values(make):
    recs = [{"id": f"recRedeemB{i:06d}", "fields": {"Code": f"CODE{i:04d}", "Amount": 1}} for i in range(23)]
    twin, book = make({"Store Redemptions": recs})
    updates = {r["id"]: {"Status": "Done", "Outcome": "Redeemed", "Code": "•••• •••• •••• 0001",
                         "Balance After": Money.of("9.90", "EUR"), "Processed At": NOW, "Notified": True,
                         "Attempt": None}
               for r in recs}
    book.update_forms(FormTable.REDEMPTIONS, updates)
    writes = data_requests(twin)
    assert [r["route"] for r in writes] == ["records.update"] * 3
    assert [len(json.loads(r["body"])["records"]) for r in writes] == [10, 10, 3]
    assert book.pending_redemptions() == []
    [done] = [f for f in book.unnotified(FormTable.REDEMPTIONS)] or [None]
    assert done is None  # Notified ticked
    record = book.api.table(BASE, "Store Redemptions").get(recs[0]["id"])
    assert record["fields"]["Balance After"] == 9.9 and record["fields"]["Processed At"] == "2024-05-01T12:00:00.000Z"
    assert record["fields"]["Code"] == "•••• •••• •••• 0001"
    book.update_forms(FormTable.REDEMPTIONS, {recs[0]["id"]: {"Notified": False, "Reason": "Card disabled",
                                                              "Balance After": Decimal("9.95")}})
    [again] = book.unnotified(FormTable.REDEMPTIONS)
    assert (again.reason, again.balance_after, again.processed_at) == ("Card disabled", Decimal("9.95"), NOW)


def test_update_forms_refuses_unknown_fields_before_any_request(make):
    twin, book = make()
    with pytest.raises(FatalError) as info:
        book.update_forms(FormTable.BALANCE_CHECKS, {"recX": {"Balance After": Money.of("1", "EUR")}})
    assert "UNKNOWN_FIELD_NAME" in info.value.reason
    assert data_requests(twin) == []


def test_recent_balance_checks(make):
    twin, book = make({"Balance Checks": [
        {"id": "recCheckOld00001", "fields": {"Code": "A", "Status": "Done", "Processed At": _iso(NOW - timedelta(hours=2))}},
        {"id": "recCheckNew00001", "fields": {"Code": "B", "Email": "c@example.test", "Status": "Done",
                                              "Processed At": _iso(NOW - timedelta(minutes=5))}},
        {"id": "recCheckNew00002", "fields": {"Code": "C"}},
        {"id": "recCheckEdge0001", "fields": {"Code": "D", "Status": "Rejected", "Processed At": _iso(NOW - timedelta(hours=1))}},
        {"id": "recCheckProc0001", "fields": {"Code": "E", "Status": "Processing", "Processed At": _iso(NOW)}}]})
    recent = book.recent_balance_checks(NOW - timedelta(hours=1))
    assert sorted(c.record_id for c in recent) == ["recCheckEdge0001", "recCheckNew00001"]
    assert {c.processed_at for c in recent} == {NOW - timedelta(hours=1), NOW - timedelta(minutes=5)}
    assert len(data_requests(twin)) == 1


# -- cards -----------------------------------------------------------------------------------
def test_save_cards_upserts_on_shopify_id_ten_per_request(make):
    twin, book = make()
    saved = book.save_cards([card(i) for i in range(25)])
    assert len(saved) == 25 and all(c.record_id for c in saved)
    assert [c.shopify_id for c in saved] == [f"gid://shopify/GiftCard/{i}" for i in range(25)]
    assert saved[3].balance == Money(Decimal("50"), "EUR") and saved[3].store_record_id == STORE_A
    assert [r["route"] for r in data_requests(twin)] == ["records.upsert"] * 3

    # saving again (e.g. after an ambiguous failure) updates the same rows: no duplicates
    again = book.save_cards([card(i, balance=Money.of("45.55", "EUR")) for i in range(25)])
    assert [c.record_id for c in again] == [c.record_id for c in saved]
    assert len(list(book.iter_cards())) == 25
    assert book.card_by_shopify_id("gid://shopify/GiftCard/7").balance == Money(Decimal("45.55"), "EUR")
    # a stale record id does not matter: the Shopify ID finds (or recreates) the row
    [stale] = book.save_cards([card(7, record_id="recDeletedRow0001")])
    assert stale.record_id == saved[7].record_id


def test_card_lookups(make):
    twin, book = make()
    saved = book.save_cards([card(1), card(2, source_record="Card Requests/recOther"),
                             card(3, status=CardStatus.DISABLED, expires_on=date(2030, 1, 31))])
    twin.clear_requests()
    found = book.card_by_hash("hash0003")
    assert found.record_id == saved[2].record_id and found.status is CardStatus.DISABLED
    assert found.expires_on == date(2030, 1, 31)
    assert book.card_by_hash("nope") is None
    assert book.card_by_shopify_id("gid://shopify/GiftCard/2").record_id == saved[1].record_id
    assert book.card(saved[0].record_id).shopify_id == "gid://shopify/GiftCard/1"
    assert len(data_requests(twin)) == 4      # one request per lookup
    assert book.card(STORE_A) is None          # an id of another table is not a card
    assert book.card("not-an-id") is None
    assert [c.record_id for c in book.cards_by_source_record("Card Requests/recReq")] == [saved[0].record_id, saved[2].record_id]


def test_registry_rows_of_a_page_in_one_request(make):
    twin, book = make()
    rows = [OrderEntry(order_key=f"purchase:{i}", order=f"#{1000 + i}", shopify_id=f"gid://shopify/Order/{i}",
                       kind=OrderKind.PURCHASE, status=OrderStatus.DONE if i % 2 else OrderStatus.PROCESSING,
                       attempt=f"nonce:{i}") for i in range(1, 56)]
    book.save_order_entries(rows)
    twin.clear_requests()
    wanted = [f"purchase:{i}" for i in (3, 8, 55)] + ["purchase:999", "payment:3", "purchase:3' OR TRUE() OR '"]
    found = book.order_entries(wanted)
    assert sorted(found) == ["purchase:3", "purchase:55", "purchase:8"]
    assert found["purchase:8"].status is OrderStatus.PROCESSING and found["purchase:8"].attempt == "nonce:8"
    assert found["purchase:3"].shopify_id == "gid://shopify/Order/3"
    assert len(data_requests(twin)) == 1
    twin.clear_requests()
    assert len(book.order_entries([f"purchase:{i}" for i in range(1, 56)])) == 55
    assert len(data_requests(twin)) == 2              # 50 keys a request
    assert book.order_entries([]) == {}


@pytest.mark.parametrize("evil", [
    "x' OR TRUE() OR 'x",
    "x\\' OR TRUE() OR \\'x",
    "') , TRUE()) & ('",
    "{Code Hash}",
    "x\" OR TRUE() OR \"x",
    "\\",
])
def test_looked_up_values_stay_literal(make, evil):
    twin, book = make()
    book.save_cards([card(1), card(2), card(3, code_hash=evil, source_record=evil)])
    assert book.card_by_hash(evil).shopify_id == "gid://shopify/GiftCard/3"
    assert book.card_by_hash(evil + " ") is None
    assert book.card_by_hash("nothing" + evil) is None
    assert book.card_by_shopify_id(evil) is None
    assert [c.shopify_id for c in book.cards_by_source_record(evil)] == ["gid://shopify/GiftCard/3"]
    assert book.read_status(evil) is None


def test_set_balances_batches_and_iter_cards_pages(make):
    twin, book = make()
    saved = book.save_cards([card(i) for i in range(230)])
    twin.clear_requests()
    synced = NOW + timedelta(hours=1)
    book.set_balances({c.record_id: (Money.of("12.34", "EUR"), synced) for c in saved[:12]})
    assert [r["route"] for r in data_requests(twin)] == ["records.update"] * 2
    twin.clear_requests()
    cards = list(book.iter_cards())
    assert len(cards) == 230 and len(data_requests(twin)) == 3
    by_id = {c.record_id: c for c in cards}
    assert by_id[saved[0].record_id].balance == Money(Decimal("12.34"), "EUR")
    assert by_id[saved[0].record_id].last_synced == synced
    assert by_id[saved[20].record_id].balance == Money(Decimal("50"), "EUR")


# -- stores ----------------------------------------------------------------------------------
def test_stores_are_cached_for_a_short_time(make):
    clock = [100.0]
    twin, book = make(stores_ttl=30.0, monotonic=lambda: clock[0])
    stores = book.stores()
    assert stores[STORE_A].name == "Main St" and stores[STORE_A].active and stores[STORE_A].email == "main@example.test"
    assert not stores[STORE_B].active
    book.stores()
    clock[0] += 29
    book.stores()
    assert len(data_requests(twin)) == 1
    clock[0] += 2
    book.stores()
    assert len(data_requests(twin)) == 2


# -- receipts --------------------------------------------------------------------------------
def test_receipts_are_idempotent_on_receipt_id(make):
    twin, book = make()
    [c1, c2] = book.save_cards([card(1, last4="A001"), card(2, last4="A001")])   # same last 4 on purpose
    twin.clear_requests()
    batch = [receipt(i, c1.record_id) for i in range(15)] + [receipt(100, c2.record_id)]
    book.append_receipts(batch)
    assert [r["route"] for r in data_requests(twin)] == ["records.upsert"] * 2
    book.append_receipts(batch)                    # a rewrite after a crash or an ambiguous failure
    book.append_receipts(batch[:1] + batch[:1])   # duplicates in one call
    rows = book.api.table(BASE, "Receipts").all()
    assert len(rows) == 16
    twin.clear_requests()
    mine = book.receipts_for_card(c1.record_id)
    assert [r.receipt_id for r in mine] == [f"redeem:rec{i:05d}" for i in range(15)]
    assert mine[0] == batch[0]
    assert len(data_requests(twin)) == 2
    assert [r.receipt_id for r in book.receipts_for_card(c2.record_id)] == ["redeem:rec00100"]


# -- status ----------------------------------------------------------------------------------
def test_status_rows_upsert_on_name_and_clear_cells(make):
    twin, book = make()
    assert book.read_status("lease") is None
    until = NOW + timedelta(minutes=2)
    row = book.write_status(StatusRow("lease", state="Online", holder="host:1:abc", heartbeat=NOW, lease_until=until))
    assert row.record_id and row.holder == "host:1:abc" and row.lease_until == until
    again = book.write_status(StatusRow("lease", state="Online", holder="host:2:def", heartbeat=NOW))
    assert again.record_id == row.record_id and again.lease_until is None
    released = book.write_status(StatusRow("lease", record_id="recStaleStatus001", state="Offline"))
    assert released.record_id == row.record_id
    assert released.holder == "" and released.state == "Offline"
    book.write_status(StatusRow("cursor:shopify", cursor="abc", last_run=NOW))
    assert book.read_status("cursor:shopify").cursor == "abc"
    assert book.read_status("lease") == released
    assert len(book.api.table(BASE, "Status").all()) == 2


# -- errors ----------------------------------------------------------------------------------
def test_validation_errors_are_fatal_with_airtables_type(make):
    twin, book = make({"Store Redemptions": _redemptions()})
    with pytest.raises(FatalError) as info:
        book.update_forms(FormTable.REDEMPTIONS, {"recRedeem0000001": {"Status": "Bogus"}})
    assert info.value.status == 422 and "INVALID_MULTIPLE_CHOICE_OPTIONS" in info.value.reason
    with pytest.raises(FatalError) as info:
        book.update_forms(FormTable.REDEMPTIONS, {"recRedeemMissing1": {"Status": "Done"}})
    assert info.value.status in (404, 422)
    assert len(data_requests(twin)) == 2      # fatal errors are not retried


def test_auth_and_unknown_base_are_fatal_and_never_show_the_token(make):
    twin, book = make()
    bad = AirtableCardBook("patWrongToken.9876543210", BASE, endpoint_url=twin.url, budget=Unlimited())
    with pytest.raises(FatalError) as info:
        bad.stores()
    assert info.value.status == 401 and "AUTHENTICATION_REQUIRED" in str(info.value)
    assert "patWrongToken" not in str(info.value) and "patWrongToken" not in repr(bad) + repr(bad.api)
    other = AirtableCardBook(TOKEN, "appNoSuchBase0001", endpoint_url=twin.url, budget=Unlimited())
    with pytest.raises(FatalError) as info:
        other.pending_redemptions()
    assert info.value.status in (403, 404)
    assert TOKEN not in str(info.value)


def test_503_on_reads_is_retried_then_retriable(make):
    twin, book = make({"Store Redemptions": _redemptions()})
    twin.inject(kind="status", status=503, route="records.list", count=1)
    assert len(book.pending_redemptions()) == 3          # one retry heals a single 503
    assert [r["status"] for r in data_requests(twin)] == [503, 200]
    twin.clear_requests()
    twin.inject(kind="status", status=503, route="records.list")
    with pytest.raises(RetriableError) as info:
        book.pending_redemptions()
    assert type(info.value) is RetriableError and info.value.status == 503
    assert len(data_requests(twin)) == 3                  # 1 + 2 bounded retries


def test_503_after_an_upsert_is_retried_safely_then_ambiguous(make):
    twin, book = make()
    [c1] = book.save_cards([card(1)])
    twin.clear_requests()
    twin.inject(kind="status", status=503, route="records.upsert", when="after", count=1)
    book.append_receipts([receipt(1, c1.record_id)])      # applied, 503, retried: still one row
    assert [bool(r["fault"]) for r in data_requests(twin)] == [True, False]
    twin.inject(kind="status", status=502, route="records.upsert", when="after")
    with pytest.raises(AmbiguousError):
        book.append_receipts([receipt(2, c1.record_id)])
    assert sorted(r["fields"]["Receipt ID"] for r in book.api.table(BASE, "Receipts").all()) == \
        ["redeem:rec00001", "redeem:rec00002"]


def test_resets_and_hangs(make):
    twin, book = make({"Store Redemptions": _redemptions()}, timeout=(0.5, 0.3), retries=1)
    twin.inject(kind="reset", route="records.list")
    with pytest.raises(RetriableError) as info:
        book.pending_redemptions()
    assert not isinstance(info.value, AmbiguousError)
    twin.faults.clear()
    twin.inject(kind="reset", route="records.update")
    with pytest.raises(AmbiguousError):
        book.update_forms(FormTable.REDEMPTIONS, {"recRedeem0000001": {"Status": "Processing"}})
    twin.faults.clear()
    twin.inject(kind="hang", delay=1.0, route="records.get")
    with pytest.raises(RetriableError) as info:
        with book._errors("get store"):
            book.api.table(BASE, "Stores").get(STORE_A)
    assert "timed out" in info.value.reason


def test_a_create_is_never_resent_after_a_read_timeout(make):
    twin, book = make(timeout=(0.5, 0.3))
    twin.inject(kind="hang", delay=0.8, route="records.create", when="after", count=1)
    with pytest.raises(AmbiguousError):
        with book._errors("create"):
            book.api.table(BASE, "Stores").create({"Name": "Pier"})
    posts = [r for r in data_requests(twin) if r["method"] == "POST"]
    assert len(posts) == 1
    assert [s["fields"]["Name"] for s in book.api.table(BASE, "Stores").all()].count("Pier") == 1


def test_429_pauses_the_budget_and_is_retriable(make):
    twin, book = make({"Store Redemptions": _redemptions()}, twin_options={"rate_limit": True, "penalty_seconds": 0.3,
                                                                           "requests_per_second": 2},
                      rate_limit_pause=0.3)
    with pytest.raises(RetriableError) as info:
        for _ in range(5):
            book.pending_redemptions()
    assert info.value.status == 429 and not isinstance(info.value, AmbiguousError)
    assert book.budget.pauses == [0.3]
    assert sum(1 for r in data_requests(twin) if r["status"] == 429) == 1   # no hammering
    time.sleep(0.35)
    assert len(book.pending_redemptions()) == 3


def test_429_with_retry_after_pauses_a_real_budget(make):
    budget = RateBudget("airtable", rate=1000, capacity=1000)
    twin, book = make(budget=budget)
    twin.app.retry_after = 1
    twin.inject(kind="status", status=429, route="records.list", count=1)
    with pytest.raises(RetriableError) as info:
        book.stores()
    assert info.value.retry_after == 1.0
    started = time.monotonic()
    book.stores()
    assert time.monotonic() - started >= 0.9   # the next request waited for the pause


# -- init-base / doctor -------------------------------------------------------------------------
EMPTY_BASE = "appEmptyBase00001"


def _empty_seed() -> dict:
    s = seed()
    s["bases"].append({"id": EMPTY_BASE, "name": "empty", "tables": []})
    return s


def test_init_base_creates_exactly_the_configured_schema_and_is_idempotent(make):
    twin, book = make(seed_data=_empty_seed(), base_id=EMPTY_BASE)
    book = AirtableCardBook(TOKEN, EMPTY_BASE, endpoint_url=twin.url, budget=Unlimited())
    before = book.check_schema()
    assert before.missing_tables == [t["name"] for t in SCHEMA["tables"]]
    first = book.init_base()
    assert first.created_tables == [t["name"] for t in SCHEMA["tables"]]
    assert first.report.ok, first.report.lines()
    assert first.report.extra_tables == [] and first.created_fields == []
    # every configured field exists with its type; what else exists is only Airtable's inverse links
    actual = book.base().schema(force=True)
    for want in SCHEMA["tables"]:
        have = actual.table(want["name"])
        assert have.primary_field_id == have.field(want["fields"][0]["name"]).id
        for f in want["fields"]:
            assert have.field(f["name"]).type == f["type"]
    assert all(book.base().schema().table(t).field(f).type == "multipleRecordLinks" for t, f in first.report.extra_fields)
    twin.clear_requests()
    second = book.init_base()
    assert second.created_tables == [] and second.created_fields == [] and second.report.ok
    assert all(r["method"] == "GET" for r in data_requests(twin))
    # the adapter works on the new base
    [c] = book.save_cards([card(1, store_record_id=None)])
    assert book.card_by_hash("hash0001").record_id == c.record_id


def test_init_base_adds_missing_fields_and_reports_what_it_cannot_fix(make):
    s = _empty_seed()
    partial = copy.deepcopy(SCHEMA)
    tables = {t["name"]: t for t in partial["tables"]}
    tables["Gift Cards"]["fields"] = [f for f in tables["Gift Cards"]["fields"] if f["name"] not in ("Code Hash", "Store")]
    for f in tables["Gift Cards"]["fields"]:
        if f["name"] == "Balance":
            f["type"], f["options"] = "number", {"precision": 2}
    partial["tables"] = [t for t in partial["tables"] if t["name"] not in ("Receipts", "Status")]
    s["bases"][1]["tables"] = base_seed_from_schema(partial)["bases"][0]["tables"]
    twin, _ = make(seed_data=s)
    book = AirtableCardBook(TOKEN, EMPTY_BASE, endpoint_url=twin.url, budget=Unlimited())
    result = book.init_base()
    assert result.created_tables == ["Receipts", "Status"]
    assert sorted(result.created_fields) == [("Gift Cards", "Code Hash"), ("Gift Cards", "Store")]
    assert not result.report.ok
    assert [(d.table, d.field, d.problem) for d in result.report.differences] == [("Gift Cards", "Balance", "type")]
    again = book.init_base()
    assert again.created_tables == [] and again.created_fields == []


def test_a_failed_table_create_is_not_resent(make):
    twin, _ = make(seed_data=_empty_seed())
    book = AirtableCardBook(TOKEN, EMPTY_BASE, endpoint_url=twin.url, budget=Unlimited(), backoff=0.01)
    twin.inject(kind="status", status=503, route="meta.tables.create", when="after", count=1)
    with pytest.raises(AmbiguousError):
        book.init_base()
    assert len(twin.requests("meta.tables.create")) == 1
    result = book.init_base()            # run again: Stores exists now, the rest is created
    assert "Stores" not in result.created_tables and result.report.ok
    assert compare_schema(book.base().schema(force=True)).ok
    assert ensure_schema(book.base()).created_tables == []
