"""Pure parts of the Airtable adapter: names vs config/base_schema.json, cell conversions,
record ↔ domain mappings, request kinds, failure classification, schema comparison."""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
import requests

from giftsync.adapters.airtable import mapping, names
from giftsync.adapters.airtable.client import classify, request_kind
from giftsync.adapters.airtable.schema import compare_schema, load_base_schema
from giftsync.domain.cards import CardKind, CardSource, CardStatus, MirrorCard
from giftsync.domain.ledger import Activity, Channel, Receipt
from giftsync.domain.money import Money
from giftsync.errors import AmbiguousError, FatalError, RetriableError
from giftsync.ports import FormTable, StatusRow

SCHEMA = load_base_schema()
FIELDS = {t["name"]: {f["name"]: f for f in t["fields"]} for t in SCHEMA["tables"]}


# -- names -----------------------------------------------------------------------------------
def test_every_table_and_field_the_adapter_uses_exists_in_the_base_schema():
    for table, fields in names.USED.items():
        assert table in FIELDS, table
        for name in fields:
            assert name in FIELDS[table], f"{table}.{name} is not in config/base_schema.json"


def test_form_tables_of_the_port_exist_in_the_base_schema():
    for table in FormTable:
        assert table.value in FIELDS


def test_written_select_values_are_choices_of_the_schema():
    def choices(table, field):
        return {c["name"] for c in FIELDS[table][field]["options"]["choices"]}
    assert {s.value for s in CardStatus} <= choices(names.CARDS, names.CardF.STATUS)
    assert {k.value for k in CardKind} <= choices(names.CARDS, names.CardF.KIND)
    assert {s.value for s in CardSource} <= choices(names.CARDS, names.CardF.SOURCE)
    assert {a.value for a in Activity} <= choices(names.RECEIPTS, names.ReceiptF.ACTIVITY)
    assert {c.value for c in Channel} <= choices(names.RECEIPTS, names.ReceiptF.CHANNEL)


def test_upsert_keys_are_mergeable_text_fields():
    for table, key in ((names.CARDS, names.CardF.SHOPIFY_ID), (names.RECEIPTS, names.ReceiptF.RECEIPT_ID),
                       (names.STATUS, names.StatusF.NAME)):
        assert FIELDS[table][key]["type"] == "singleLineText"


# -- cells -----------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["12.50", "0.10", "0.01", "99999999.99", "-3.30", "1234567.89"])
def test_money_survives_the_trip_through_a_json_number(text):
    sent = mapping.number_cell(Money.of(text, "USD"))
    received = json.loads(json.dumps(sent))
    assert mapping.money_from_cell(received, "usd") == Money(Decimal(text), "USD")


def test_integral_amounts_are_sent_as_ints():
    assert mapping.number_cell(Decimal("20.00")) == 20 and isinstance(mapping.number_cell(Decimal("20.00")), int)


def test_floats_and_lossy_amounts_are_refused():
    with pytest.raises(TypeError):
        mapping.number_cell(12.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        mapping.cell(0.1)
    with pytest.raises(ValueError):
        mapping.number_cell(Decimal("0.12345678901234567891"))


def test_datetimes_are_written_in_utc_iso_and_read_back_aware():
    cet = timezone(timedelta(hours=2))
    value = datetime(2024, 5, 1, 14, 0, 0, 123456, tzinfo=cet)
    assert mapping.datetime_cell(value) == "2024-05-01T12:00:00.123Z"
    assert mapping.datetime_from_cell("2024-05-01T12:00:00.123Z") == datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=timezone.utc)
    with pytest.raises(ValueError):
        mapping.datetime_cell(datetime(2024, 5, 1))
    assert mapping.datetime_from_cell("not a date") is None
    assert mapping.date_from_cell("2025-12-31") == date(2025, 12, 31)


def test_generic_cells():
    assert mapping.cells({"Status": CardStatus.DISABLED, "Card": ["recA"], "Notified": True, "Outcome": None,
                          "Balance After": Money.of("7.25", "EUR"), "Expires On": date(2026, 1, 2)}) == {
        "Status": "Disabled", "Card": ["recA"], "Notified": True, "Outcome": None, "Balance After": 7.25,
        "Expires On": "2026-01-02"}


# -- cards -----------------------------------------------------------------------------------
def _card(**kw) -> MirrorCard:
    base = dict(record_id=None, shopify_id="gid://shopify/GiftCard/1", last4="k7q2", balance=Money.of("40.00", "EUR"),
                code_hash="ab" * 32, initial_value=Money.of("50", "EUR"), status=CardStatus.ACTIVE,
                kind=CardKind.PHYSICAL, source=CardSource.STORE_REQUEST, recipient_email="r@example.test",
                store_record_id="recStore000000001", expires_on=date(2027, 1, 31),
                created=datetime(2024, 5, 1, 12, tzinfo=timezone.utc), source_record="Card Requests/recX",
                opened_at=datetime(2024, 5, 1, 12, 0, 1, 250000, tzinfo=timezone.utc))
    base.update(kw)
    return MirrorCard(**base)


def test_card_fields_omit_empty_cells_and_mask_the_card():
    fields = mapping.card_fields(_card())
    assert fields["Card"] == "•••• •••• •••• K7Q2"
    assert fields["Last 4"] == "K7Q2"
    assert fields["Balance"] == 40 and fields["Initial Value"] == 50 and fields["Currency"] == "EUR"
    assert fields["Store"] == ["recStore000000001"]
    assert fields["Expires On"] == "2027-01-31" and fields["Created"] == "2024-05-01T12:00:00.000Z"
    assert "Recipient Name" not in fields and "Order" not in fields and "Last Synced" not in fields
    with pytest.raises(ValueError):
        mapping.card_fields(_card(shopify_id=""))


def test_card_round_trip():
    card = _card()
    record = {"id": "recCard0000000001", "createdTime": "2024-05-01T12:00:00.000Z",
              "fields": json.loads(json.dumps(mapping.card_fields(card)))}
    back = mapping.card_from_record(record, "USD")
    assert back.record_id == "recCard0000000001"
    assert back.balance == Money(Decimal("40"), "EUR") and back.initial_value == Money(Decimal("50"), "EUR")
    for attr in ("shopify_id", "code_hash", "status", "kind", "source", "recipient_email", "store_record_id",
                 "expires_on", "created", "source_record", "opened_at"):
        assert getattr(back, attr) == getattr(card, attr), attr
    assert back.last4 == "K7Q2"


def test_card_read_defaults_and_unknown_status_is_not_redeemable():
    bare = mapping.card_from_record({"id": "recB", "createdTime": "2024-01-01T00:00:00.000Z", "fields": {}}, "JPY")
    assert bare.balance == Money.zero("JPY") and bare.status is CardStatus.ACTIVE and bare.code_hash is None
    odd = mapping.card_from_record({"id": "recC", "fields": {"Status": "Lost", "Balance": 0.1, "Currency": "usd"}}, "EUR")
    assert odd.status is CardStatus.DISABLED
    assert odd.balance == Money(Decimal("0.1"), "USD")


# -- forms -----------------------------------------------------------------------------------
def test_redemption_form_mapping_keeps_raw_values_without_floats():
    rec = {"id": "recR", "createdTime": "2024-05-01T12:00:00.000Z",
           "fields": {"Code": " abcd-efgh ", "Amount": 12.3, "Store": ["recS"], "Status": "Processing",
                      "Attempt": "a1", "Card": ["recC"], "Notified": True, "Reason": "r",
                      "Balance After": 7.1, "Processed At": "2024-05-01T12:05:00.000Z"}}
    form = mapping.redemption_from_record(rec)
    assert (form.reason, form.balance_after) == ("r", Decimal("7.1"))
    assert form.processed_at == datetime(2024, 5, 1, 12, 5, tzinfo=timezone.utc)
    assert form.code_raw == " abcd-efgh " and form.amount_raw == Decimal("12.3")
    assert form.store_ids == ["recS"] and form.card_ids == ["recC"] and form.notified
    assert form.created == datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
    empty = mapping.redemption_from_record({"id": "recE", "createdTime": "2024-05-01T12:00:00.000Z", "fields": {}})
    assert empty.code_raw is None and empty.amount_raw is None and empty.status == "" and not empty.notified
    assert empty.reason == "" and empty.balance_after is None and empty.processed_at is None


def test_card_request_and_balance_check_mapping():
    req = mapping.card_request_from_record({"id": "recQ", "createdTime": "2024-05-01T12:00:00.000Z", "fields": {
        "Amount": 25, "Quantity": 3, "Kind": "Physical", "Physical Serials": "AAAA1111\nBBBB2222",
        "Is Gift": True, "Cards": ["rec1", "rec2"], "Recipient Email": "r@example.test"}})
    assert (req.amount_raw, req.quantity_raw, req.kind, req.is_gift) == (25, 3, "Physical", True)
    assert req.card_ids == ["rec1", "rec2"] and req.serials_raw.splitlines() == ["AAAA1111", "BBBB2222"]
    check = mapping.balance_check_from_record({"id": "recK", "createdTime": "2024-05-01T12:00:00.000Z",
                                               "fields": {"Code": "X", "Email": "c@example.test", "Status": "Done"}})
    assert (check.code_raw, check.email_raw, check.status, check.notified) == ("X", "c@example.test", "Done", False)


# -- receipts and status ---------------------------------------------------------------------
def test_receipt_round_trip_with_extra():
    r = Receipt("redeem:recR", datetime(2024, 5, 1, 12, tzinfo=timezone.utc), Activity.REDEEM, Channel.STORE,
                card_record_id="recC", card_masked="•••• •••• •••• K7Q2", amount=Money.of("-12.50", "EUR"),
                balance_after=Money.of("37.50", "EUR"), store_record_id="recS", source="Store Redemptions/recR",
                outcome="Redeemed", correlation_id="c1", details="line one", extra={"attempt": "a1"})
    fields = json.loads(json.dumps(mapping.receipt_fields(r)))
    assert fields["Amount"] == -12.5 and fields["Currency"] == "EUR" and fields["Card"] == ["recC"]
    back = mapping.receipt_from_record({"id": "recX", "createdTime": "2024-05-01T12:00:01.000Z", "fields": fields}, "USD")
    assert back == r


def test_receipt_without_money_or_card():
    r = Receipt("takeover:1", datetime(2024, 5, 1, tzinfo=timezone.utc), Activity.TAKEOVER, Channel.SYSTEM)
    fields = mapping.receipt_fields(r)
    assert set(fields) == {"Receipt ID", "Time", "Activity", "Channel"}
    back = mapping.receipt_from_record({"id": "recX", "fields": fields}, "USD")
    assert back == r


def test_status_row_is_written_whole_with_none_for_empty_cells():
    row = StatusRow("lease", state="Offline")
    fields = mapping.status_fields(row)
    assert fields["Holder"] is None and fields["Lease Until"] is None and fields["State"] == "Offline"
    at = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
    back = mapping.status_from_record({"id": "recS", "fields": {
        "Name": "lease", "State": "Online", "Holder": "h:1:x", "Lease Until": mapping.datetime_cell(at)}})
    assert back == StatusRow("lease", "recS", "Online", "h:1:x", None, at)


# -- request kinds and classification ----------------------------------------------------------
def test_request_kinds():
    assert request_kind("GET", "http://t/v0/app/Gift%20Cards") == "read"
    assert request_kind("POST", "http://t/v0/app/Gift%20Cards/listRecords") == "read"
    assert request_kind("PATCH", "http://t/v0/app/Gift%20Cards") == "idempotent"
    assert request_kind("POST", "http://t/v0/app/Gift%20Cards") == "create"
    assert request_kind("POST", "http://t/v0/meta/bases/app/tables") == "create"


def _http_error(method: str, status: int, body: dict | str, headers: dict | None = None) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    response._content = (json.dumps(body) if not isinstance(body, str) else body).encode()
    response.headers.update(headers or {})
    response.request = requests.Request(method, "http://127.0.0.1:1/v0/appX/Receipts?filterByFormula=secret").prepare()
    return requests.HTTPError(f"{status} error", response=response)


def test_classification_of_http_errors():
    e422 = classify(_http_error("PATCH", 422, {"error": {"type": "UNKNOWN_FIELD_NAME", "message": 'Unknown field name: "X"'}}))
    assert isinstance(e422, FatalError) and e422.status == 422 and "UNKNOWN_FIELD_NAME" in e422.reason
    assert "secret" not in e422.reason   # no query string (it can hold looked-up values)
    assert isinstance(classify(_http_error("GET", 404, {"error": "NOT_FOUND"})), FatalError)
    e401 = classify(_http_error("GET", 401, {"error": {"type": "AUTHENTICATION_REQUIRED", "message": "bad patABCDEFGHIJKLMNOP"}}),
                    token="patABCDEFGHIJKLMNOP")
    assert isinstance(e401, FatalError) and "patABCDEFGHIJKLMNOP" not in str(e401)
    read_503 = classify(_http_error("GET", 503, {"error": {"type": "RETRIABLE_ERROR"}}))
    assert type(read_503) is RetriableError
    assert isinstance(classify(_http_error("PATCH", 502, "bad gateway")), AmbiguousError)
    assert isinstance(classify(_http_error("POST", 500, "")), AmbiguousError)
    e429 = classify(_http_error("PATCH", 429, {"error": {"type": "RATE_LIMIT_REACHED"}}, {"Retry-After": "2"}))
    assert type(e429) is RetriableError and e429.retry_after == 2.0


def test_classification_of_transport_errors():
    get = requests.Request("GET", "http://127.0.0.1:1/v0/appX/T").prepare()
    patch = requests.Request("PATCH", "http://127.0.0.1:1/v0/appX/T").prepare()
    assert type(classify(requests.ConnectionError("reset", request=get))) is RetriableError
    assert isinstance(classify(requests.ConnectionError("reset", request=patch)), AmbiguousError)
    assert isinstance(classify(requests.ReadTimeout("slow", request=patch)), AmbiguousError)
    assert type(classify(requests.ConnectTimeout("never connected", request=patch))) is RetriableError
    assert type(classify(requests.exceptions.RetryError("too many 429", request=patch))) is RetriableError
    with pytest.raises(TypeError):
        classify(ValueError("not ours"))


# -- schema comparison -------------------------------------------------------------------------
def _api_schema(expected: dict) -> dict:
    """The expected schema as the metadata API would return it."""
    ids = {t["name"]: f"tbl{i:014d}" for i, t in enumerate(expected["tables"])}
    tables = []
    for t in expected["tables"]:
        fields = []
        for j, f in enumerate(t["fields"]):
            options = dict(f.get("options") or {})
            if f["type"] == "multipleRecordLinks":
                options = {"linkedTableId": ids[options.pop("linkedTable")], "isReversed": False,
                           "prefersSingleRecordLink": False}
            fields.append({"id": f"fld{len(tables):07d}{j:07d}", "name": f["name"], "type": f["type"],
                           **({"options": options} if options else {})})
        tables.append({"id": ids[t["name"]], "name": t["name"], "primaryFieldId": fields[0]["id"], "fields": fields,
                       "views": [{"id": "viw00000000000001", "name": "Grid view", "type": "grid"}]})
    return {"tables": tables}


def test_schema_identical_to_config_is_ok():
    report = compare_schema(_api_schema(SCHEMA), SCHEMA)
    assert report.ok and not report.missing_tables and not report.extra_fields
    assert report.lines() == ["the base matches config/base_schema.json"]


def test_schema_missing_and_differing_things_are_reported():
    data = _api_schema(SCHEMA)
    data["tables"] = [t for t in data["tables"] if t["name"] != "Status"]
    cards = next(t for t in data["tables"] if t["name"] == "Gift Cards")
    cards["fields"] = [f for f in cards["fields"] if f["name"] != "Code Hash"]
    for f in cards["fields"]:
        if f["name"] == "Balance":
            f["type"] = "number"
            f["options"] = {"precision": 2}
        if f["name"] == "Status":
            f["options"]["choices"] = [{"name": "Active"}]
        if f["name"] == "Store":
            f["options"]["linkedTableId"] = next(t["id"] for t in data["tables"] if t["name"] == "Receipts")
        if f["name"] == "Initial Value":
            f["options"]["precision"] = 0
    cards["fields"].append({"id": "fldExtra000000001", "name": "Staff notes", "type": "multilineText"})
    report = compare_schema(data, SCHEMA)
    assert not report.ok
    assert report.missing_tables == ["Status"]
    assert ("Gift Cards", "Code Hash") in report.missing_fields
    problems = {(d.field, d.problem) for d in report.differences}
    assert problems == {("Balance", "type"), ("Status", "select choices missing"), ("Store", "links to another table"),
                        ("Initial Value", "precision")}
    assert report.extra_fields == [("Gift Cards", "Staff notes")]
    assert any(line.startswith("missing table: Status") for line in report.lines())
