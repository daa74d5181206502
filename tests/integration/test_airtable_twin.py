"""The Airtable twin driven by unmodified pyairtable: records, formulas, field types, errors, metadata."""
from __future__ import annotations

import pytest
import requests
from pyairtable import Api, retry_strategy
from pyairtable.formulas import AND, EQ, Field, match

from giftsync.sandbox import start_twin
from giftsync.sandbox.airtable.seed import base_seed_from_schema, load_base_schema

BASE = "appTestBase000001"
TOKEN = "patTestToken.secret"
STORES = "tblStores00000001"
STORE_A = "recStoreA00000001"


def seed() -> dict:
    s = base_seed_from_schema(load_base_schema(), base_id="appGiftsyncSandbx")
    s["bases"].append({
        "id": BASE, "name": "test",
        "tables": [
            {"id": STORES, "name": "Stores", "fields": [
                {"id": "fldStoreName00001", "name": "Name", "type": "singleLineText"},
                {"name": "Active", "type": "checkbox"}],
             "records": [{"id": STORE_A, "fields": {"Name": "Main St", "Active": True}},
                         {"id": "recStoreB00000001", "fields": {"Name": "Harbour"}}]},
            {"name": "Items", "description": "all types", "fields": [
                {"id": "fldItemName000001", "name": "Name", "type": "singleLineText"},
                {"name": "Notes", "type": "multilineText"},
                {"name": "Email", "type": "email"},
                {"name": "Site", "type": "url"},
                {"name": "Phone", "type": "phoneNumber"},
                {"name": "Count", "type": "number", "options": {"precision": 0}},
                {"name": "Price", "type": "currency", "options": {"precision": 2, "symbol": "$"}},
                {"name": "Share", "type": "percent", "options": {"precision": 1}},
                {"name": "Done", "type": "checkbox"},
                {"name": "Status", "type": "singleSelect", "options": {"choices": [{"name": "New"}, {"name": "Done"}]}},
                {"name": "Tags", "type": "multipleSelects", "options": {"choices": ["a", "b"]}},
                {"name": "Due", "type": "date", "options": {"dateFormat": {"name": "iso"}}},
                {"name": "When", "type": "dateTime", "options": {"timeZone": "utc"}},
                {"name": "Local", "type": "dateTime", "options": {"timeZone": "Europe/Berlin"}},
                {"name": "Created", "type": "createdTime"},
                {"name": "Number", "type": "autoNumber"},
                {"name": "Store", "type": "multipleRecordLinks", "options": {"linkedTable": "Stores"}},
            ], "views": [{"name": "Grid view"},
                         {"name": "Open", "filterByFormula": "{Status}='New'",
                          "sort": [{"field": "Name", "direction": "desc"}]}],
             "records": [{"id": "recItem0000000001", "fields": {"Name": "first", "Count": 3, "Status": "New",
                                                                 "Store": ["Main St"]}}]},
        ]})
    return s


@pytest.fixture(scope="module")
def twin():
    server = start_twin("airtable", seed=seed(), token=TOKEN, rate_limit=False)
    yield server
    server.stop()


@pytest.fixture
def api(twin):
    twin.app.reset()
    twin.clear_requests()
    return Api(TOKEN, endpoint_url=twin.url, timeout=(2, 5), retry_strategy=retry_strategy(read=0))


@pytest.fixture
def items(api):
    return api.table(BASE, "Items")


def error_of(call, *args, **kwargs) -> tuple[int, dict]:
    with pytest.raises(requests.HTTPError) as exc:
        call(*args, **kwargs)
    return exc.value.response.status_code, exc.value.response.json()


# -- records -----------------------------------------------------------------------------
def test_create_get_and_record_shape(items):
    rec = items.create({"Name": "x", "Count": 0, "Done": False, "Notes": "", "Tags": []})
    assert rec["id"].startswith("rec") and len(rec["id"]) == 17
    assert rec["createdTime"].endswith("Z") and len(rec["createdTime"]) == 24
    # empty cells omitted, 0 kept, computed fields evaluated
    assert rec["fields"]["Count"] == 0 and "Done" not in rec["fields"] and "Notes" not in rec["fields"]
    assert "Tags" not in rec["fields"]
    assert rec["fields"]["Number"] == 2 and rec["fields"]["Created"] == rec["createdTime"]
    assert items.get(rec["id"]) == rec


def test_cells_of_every_type(items):
    fields = {"Name": "n", "Notes": "l1\nl2", "Email": "a@b.c", "Site": "https://x.test", "Phone": "+1 555",
              "Count": 7, "Price": 12.5, "Share": 0.25, "Done": True, "Status": "Done", "Tags": ["a", "b"],
              "Due": "2024-05-01", "When": "2024-05-01T12:00:00Z", "Local": "2024-05-01T12:00", "Store": [STORE_A]}
    rec = items.create(fields)
    f = rec["fields"]
    assert f["When"] == "2024-05-01T12:00:00.000Z"
    assert f["Local"] == "2024-05-01T10:00:00.000Z"          # offset-less → the field's time zone
    assert {k: f[k] for k in fields if k not in ("When", "Local")} == {k: v for k, v in fields.items()
                                                                     if k not in ("When", "Local")}


def test_links_are_two_way_in_the_giftsync_base(api):
    stores, cards = api.table("appGiftsyncSandbx", "Stores"), api.table("appGiftsyncSandbx", "Gift Cards")
    a, b = stores.batch_create([{"Name": "A"}, {"Name": "B"}])
    card = cards.create({"Card": "c1", "Store": [a["id"]]})
    assert stores.get(a["id"])["fields"]["Gift Cards"] == [card["id"]]
    cards.update(card["id"], {"Store": [b["id"]]})
    assert "Gift Cards" not in stores.get(a["id"])["fields"]
    assert stores.get(b["id"])["fields"]["Gift Cards"] == [card["id"]]
    stores.delete(b["id"])
    assert "Store" not in cards.get(card["id"])["fields"]


def test_field_ids_on_write_and_read(items):
    rec = items.create({"fldItemName000001": "by id"}, use_field_ids=True)
    assert rec["fields"] == {"fldItemName000001": "by id", **{k: v for k, v in rec["fields"].items()
                                                               if k != "fldItemName000001"}}
    assert all(k.startswith("fld") for k in rec["fields"])
    got = items.get(rec["id"], use_field_ids=True)
    assert got["fields"]["fldItemName000001"] == "by id"
    assert items.all(fields=["fldItemName000001"], formula=match({"Name": "by id"}))[0]["fields"] == {"Name": "by id"}


def test_table_by_id_and_name(api):
    by_name = api.table(BASE, "stores").all()   # case-insensitive fallback
    by_id = api.table(BASE, STORES).all()
    assert by_name == by_id and len(by_id) == 2


def test_batch_create_update_put_delete(items):
    recs = items.batch_create([{"Name": f"b{i}", "Count": i} for i in range(12)])
    assert [r["fields"]["Name"] for r in recs] == [f"b{i}" for i in range(12)]
    upd = items.batch_update([{"id": r["id"], "fields": {"Count": 100}} for r in recs[:3]])
    assert all(r["fields"]["Count"] == 100 and r["fields"]["Name"].startswith("b") for r in upd)
    rep = items.update(recs[0]["id"], {"Count": 2}, replace=True)
    assert {k: v for k, v in rep["fields"].items() if k not in ("Created", "Number")} == {"Count": 2}
    rep = items.batch_update([{"id": recs[1]["id"], "fields": {"Name": "only"}}], replace=True)
    assert "Count" not in rep[0]["fields"]
    deleted = items.batch_delete([r["id"] for r in recs])
    assert deleted == [{"id": r["id"], "deleted": True} for r in recs]
    assert items.delete("recItem0000000001") == {"id": "recItem0000000001", "deleted": True}
    assert items.all() == []


def test_upsert(items):
    first = items.batch_upsert([{"fields": {"Name": "u1", "Count": 1}}, {"fields": {"Name": "first", "Count": 9}}],
                               key_fields=["Name"])
    assert first["updatedRecords"] == ["recItem0000000001"]
    assert len(first["createdRecords"]) == 1
    assert [r["fields"]["Name"] for r in first["records"]] == ["u1", "first"]
    assert items.get("recItem0000000001")["fields"]["Count"] == 9
    again = items.batch_upsert([{"fields": {"Name": "u1", "Status": "Done"}}], key_fields=["Name"], replace=True)
    assert again["createdRecords"] == [] and again["updatedRecords"] == first["createdRecords"]
    assert "Count" not in again["records"][0]["fields"]             # PUT semantics per record
    with_id = items.batch_upsert([{"id": "recItem0000000001", "fields": {"Count": 1}}], key_fields=["Name"])
    assert with_id["updatedRecords"] == ["recItem0000000001"]


def test_upsert_multiple_matches_fails(items):
    items.batch_create([{"Name": "dup"}, {"Name": "dup"}])
    status, body = error_of(items.batch_upsert, [{"fields": {"Name": "dup"}}], key_fields=["Name"])
    assert status == 422 and body["error"]["type"] == "INVALID_RECORDS"


def test_typecast(items, api):
    rec = items.create({"Status": "Brand new", "Tags": ["a", "zz"], "Count": "42", "Done": "true",
                        "Store": ["Harbour", "Brand new store"]}, typecast=True)
    f = rec["fields"]
    assert f["Status"] == "Brand new" and f["Tags"] == ["a", "zz"] and f["Count"] == 42 and f["Done"] is True
    stores = api.table(BASE, "Stores").all()
    assert {s["fields"]["Name"] for s in stores} == {"Main St", "Harbour", "Brand new store"}
    assert f["Store"][0] == "recStoreB00000001"
    choices = [c.name for c in api.base(BASE).table("Items").schema(force=True).field("Status").options.choices]
    assert choices == ["New", "Done", "Brand new"]


def test_get_ignores_table_quirk(api):
    assert api.table(BASE, "Items").get(STORE_A)["fields"]["Name"] == "Main St"


# -- listing ---------------------------------------------------------------------------------
def test_pagination_sort_fields_over_100_records(items, twin):
    for chunk in range(0, 230, 10):
        items.batch_create([{"Name": f"r{i:03d}", "Count": i % 7} for i in range(chunk, chunk + 10)])
    pages = list(items.iterate(page_size=100))
    assert [len(p) for p in pages] == [100, 100, 31]
    names = [r["fields"].get("Name") for p in pages for r in p]
    assert names[0] == "first" and names[1:] == [f"r{i:03d}" for i in range(230)]
    recs = items.all(sort=["-Count", "Name"], fields=["Name", "Count"], max_records=150)
    assert len(recs) == 150
    keys = [(-r["fields"].get("Count", 0), r["fields"]["Name"]) for r in recs]
    assert keys == sorted(keys)
    assert set().union(*(r["fields"] for r in recs)) <= {"Name", "Count"}
    sizes = [len(p) for p in items.iterate(page_size=10, max_records=25)]
    assert sizes == [10, 10, 5]
    assert items.first(formula=match({"Name": "r042"}))["fields"]["Count"] == 0
    offsets = [r["query"].get("offset") for r in twin.requests("records.list")]
    assert offsets[1][0].startswith("itr") and "/rec" in offsets[1][0]


def test_list_via_post_when_url_is_long(items, twin):
    recs = items.batch_create([{"Name": f"p{i}"} for i in range(5)])
    formula = "OR(" + ", ".join(f"RECORD_ID()='{r['id']}'" for r in recs) + ", " + \
        ", ".join(f"RECORD_ID()='rec{i:014d}'" for i in range(499)) + ")"
    found = items.all(formula=formula, page_size=2, time_zone="UTC", user_locale="en-gb")
    assert sorted(r["id"] for r in found) == sorted(r["id"] for r in recs)
    methods = [(r["method"], r["path"].endswith("/listRecords")) for r in twin.requests("records.list")]
    assert methods == [("POST", True)] * 3


def test_views(items):
    items.batch_create([{"Name": "a", "Status": "New"}, {"Name": "z", "Status": "New"}, {"Name": "m"}])
    assert [r["fields"]["Name"] for r in items.all(view="Open")] == ["z", "first", "a"]
    assert len(items.all(view="Grid view")) == 4
    status, body = error_of(items.all, view="Nope")
    assert (status, body) == (422, {"error": {"type": "VIEW_NAME_NOT_FOUND", "message": "View Nope not found"}})


def test_formula_filters_through_the_wire(items):
    items.batch_create([{"Name": "Ann's", "Done": True, "Count": 5, "When": "2024-05-01T12:00:00.000Z"},
                        {"Name": 'say "hi"', "Count": 0, "Store": [STORE_A]}])
    assert [r["fields"]["Name"] for r in items.all(formula=match({"Name": "Ann's"}))] == ["Ann's"]
    assert [r["fields"]["Name"] for r in items.all(formula=match({"Name": 'say "hi"'}))] == ['say "hi"']
    assert len(items.all(formula=AND(EQ(Field("Done"), False), Field("Count").eq(0)))) == 1
    assert len(items.all(formula="{Store}='Main St'")) == 2          # links compare by primary value
    assert items.all(formula=f"{{Store}}='{STORE_A}'") == []
    assert len(items.all(formula="FIND('2024-05-01', {When})")) == 1
    assert len(items.all(formula="IS_BEFORE({When}, NOW())")) == 1


def test_cell_format_string(items):
    items.create({"Name": "s", "Price": 1234.5, "Share": 0.5, "Done": True, "Due": "2024-05-01",
                  "When": "2024-05-01T12:00:00.000Z", "Store": [STORE_A], "Tags": ["a", "b"]})
    rec = items.first(formula="{Name}='s'", cell_format="string", time_zone="Europe/Berlin", user_locale="en-gb")
    f = rec["fields"]
    assert f["Price"] == "$1,234.50" and f["Share"] == "50.0%" and f["Store"] == "Main St"
    assert f["Tags"] == "a, b" and f["Due"] == "2024-05-01" and f["Done"] == "checked"
    assert f["When"] == "1/5/2024 12:00pm"      # field time zone utc, locale en-gb, default formats
    status, body = error_of(items.all, cell_format="string")
    assert status == 422 and body["error"]["type"] == "INVALID_REQUEST_UNKNOWN"


def test_expired_offset(items, twin):
    items.batch_create([{"Name": f"e{i}"} for i in range(3)])
    it = items.iterate(page_size=2)
    next(it)
    assert requests.post(twin.url + "/__sandbox/airtable/expire-offsets").json()["expired"] == 1
    with pytest.raises(requests.HTTPError) as exc:
        next(it)
    assert exc.value.response.status_code == 422
    assert exc.value.response.json() == {"error": {"type": "LIST_RECORDS_ITERATOR_NOT_AVAILABLE"}}


# -- errors ---------------------------------------------------------------------------------
def test_error_bodies(items, api, twin):
    assert error_of(items.get, "recNope0000000000") == (
        404, {"error": {"type": "MODEL_ID_NOT_FOUND", "message": "Record not found"}})
    assert error_of(items.create, {"Nope": 1}) == (
        422, {"error": {"type": "UNKNOWN_FIELD_NAME", "message": 'Unknown field name: "Nope"'}})
    assert error_of(items.create, {"Number": 1}) == (422, {"error": {
        "type": "INVALID_VALUE_FOR_COLUMN", "message": 'Field "Number" cannot accept a value because the field is computed'}})
    assert error_of(items.create, {"Created": "2024-01-01"})[1]["error"]["type"] == "INVALID_VALUE_FOR_COLUMN"
    assert error_of(items.create, {"Count": "three"}) == (422, {"error": {
        "type": "INVALID_VALUE_FOR_COLUMN", "message": 'Field "Count" cannot accept the provided value'}})
    assert error_of(items.create, {"Store": STORE_A}) == (422, {"error": {
        "type": "INVALID_VALUE_FOR_COLUMN", "message": "Value is not an array of record IDs."}})
    assert error_of(items.create, {"Status": "Foo"}) == (422, {"error": {
        "type": "INVALID_MULTIPLE_CHOICE_OPTIONS", "message": 'Insufficient permissions to create new select option ""Foo""'}})
    assert error_of(items.batch_update, [{"id": "recMissing0000000", "fields": {}}]) == (422, {"error": {
        "type": "ROW_DOES_NOT_EXIST", "message": "Record ID recMissing0000000 does not exist in this table"}})
    assert error_of(items.all, formula="{id}='x'") == (422, {"error": {
        "type": "INVALID_FILTER_BY_FORMULA",
        "message": "The formula for filtering records is invalid: Unknown field names: id"}})
    assert error_of(items.all, formula="AND(") == (422, {"error": {
        "type": "INVALID_FILTER_BY_FORMULA",
        "message": "The formula for filtering records is invalid: Invalid formula. Please check your formula text."}})
    assert error_of(items.all, formula="NOSUCH(1)")[1]["error"]["type"] == "INVALID_FILTER_BY_FORMULA"
    assert error_of(items.all, fields=["Nope"])[1]["error"]["type"] == "UNKNOWN_FIELD_NAME"
    status, body = error_of(api.table(BASE, "Nope").all)
    assert status == 403 and body["error"]["type"] == "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND"
    assert error_of(api.table("appNope0000000000", "Items").all)[0] == 403
    bad = Api("wrong", endpoint_url=twin.url, timeout=(2, 5), retry_strategy=retry_strategy(read=0))
    assert error_of(bad.table(BASE, "Items").all) == (
        401, {"error": {"type": "AUTHENTICATION_REQUIRED", "message": "Authentication required"}})
    assert items.all() and len(items.all()) == 1      # nothing was written by the failures


def test_over_size_batches_and_raw_bodies(twin, items):
    url = f"{twin.url}/v0/{BASE}/Items"
    h = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    r = requests.post(url, json={"records": [{"fields": {}}] * 11}, headers=h)
    assert (r.status_code, r.json()) == (422, {"error": {"type": "INVALID_RECORDS", "message":
        "A maximum of 10 records can be created per request but you have provided 11."}})
    r = requests.delete(url, params={"records[]": [f"rec{i:014d}" for i in range(11)]}, headers=h)
    assert r.json()["error"]["type"] == "INVALID_RECORDS"
    cases = [
        (b"{not json", 422, "INVALID_REQUEST_BODY"),
        (b'{"fields": {"Count": NaN}}', 422, "INVALID_REQUEST_BODY"),
        (b'{"fields": {}, "bogus": 1}', 422, "INVALID_REQUEST_UNKNOWN"),
        (b'{"fields": "x"}', 422, "INVALID_REQUEST_UNKNOWN"),
        (b'{"records": "x"}', 422, "INVALID_REQUEST_UNKNOWN"),
        (b'[1, 2]', 422, "INVALID_REQUEST_UNKNOWN"),
        (b'{}', 422, "INVALID_REQUEST_MISSING_FIELDS"),
        (b'{"fields": {}, "typecast": "yes"}', 422, "INVALID_REQUEST_UNKNOWN"),
        (b"\xff\xfe", 422, "INVALID_REQUEST_BODY"),
        (b"[" * 50000, 422, "INVALID_REQUEST_BODY"),
    ]
    for body, status, kind in cases:
        r = requests.post(url, data=body, headers=h)
        assert (r.status_code, r.json()["error"]["type"]) == (status, kind), body[:40]
    r = requests.get(url, params={"pageSize": 101}, headers=h)
    assert r.status_code == 422
    r = requests.get(url, params={"pageSize": "x", "maxRecords": "-1"}, headers=h)
    assert r.status_code == 422
    r = requests.get(url, params={"offset": "garbage"}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["type"] == "INVALID_OFFSET_VALUE"
    r = requests.get(url, params={"offset": ""}, headers=h)
    assert r.status_code == 200
    r = requests.get(url + "/", headers=h)
    assert r.status_code == 200
    r = requests.get(url, params={"sort[0][field]": "Name", "sort[0][direction]": "sideways"}, headers=h)
    assert r.status_code == 422
    r = requests.get(f"{twin.url}/v1/whatever", headers=h)
    assert (r.status_code, r.json()) == (404, {"error": "NOT_FOUND"})
    r = requests.patch(url + "/recNope0000000000", json={"fields": {}}, headers=h)
    assert (r.status_code, r.json()["error"]["type"]) == (404, "MODEL_ID_NOT_FOUND")
    r = requests.delete(url + "/recNope0000000000", headers=h)
    assert r.status_code == 404
    assert all(e["status"] < 500 for e in twin.requests())


# -- metadata ---------------------------------------------------------------------------------
def test_metadata_bases_schema_whoami(api):
    assert {b.id for b in api.bases()} == {"appGiftsyncSandbx", BASE}
    assert api.whoami()["id"].startswith("usr")
    schema = api.base(BASE).schema()
    items = schema.table("Items")
    assert items.description == "all types"
    assert items.primary_field_id == "fldItemName000001"
    assert [v.name for v in items.views] == ["Grid view", "Open"]
    assert items.views[0].visible_field_ids
    types = {f.name: type(f).__name__ for f in items.fields}
    assert "UnknownFieldSchema" not in types.values()
    link = items.field("Store")
    assert link.options.linked_table_id == STORES


def test_metadata_create_table_and_fields(api):
    base = api.base(BASE)
    table = base.create_table("Ledger", [{"name": "Entry", "type": "singleLineText"},
                                         {"name": "Amount", "type": "currency", "options": {"precision": 2, "symbol": "$"}},
                                         {"name": "Store", "type": "multipleRecordLinks",
                                          "options": {"linkedTableId": STORES}}], description="money")
    assert table.id.startswith("tbl")
    by_name = base.table("Ledger")
    field = by_name.create_field("Kind", "singleSelect", options={"choices": [{"name": "A"}]})
    assert field.id.startswith("fld") and field.options.choices[0].name == "A"
    field2 = base.table(table.id).create_field("Done", "checkbox", description="d",
                                               options={"icon": "check", "color": "greenBright"})
    assert field2.options.icon == "check"
    schema = base.schema(force=True).table("Ledger")
    assert [f.name for f in schema.fields] == ["Entry", "Amount", "Store", "Kind", "Done"]
    assert schema.primary_field_id == schema.fields[0].id and schema.views[0].name == "Grid view"
    inverse = base.schema().table(STORES).field("Ledger")
    assert inverse.options.inverse_link_field_id == schema.field("Store").id
    # write through the new table, link both ways
    rec = by_name.create({"Entry": "e1", "Amount": 5, "Store": [STORE_A]})
    assert api.table(BASE, STORES).get(STORE_A)["fields"]["Ledger"] == [rec["id"]]
    # rename via schema save (PATCH)
    schema.name = "Ledger 2"
    schema.save()
    fs = base.schema(force=True).table("Ledger 2").field("Kind")
    fs.name = "Type"
    fs.save()
    assert base.schema(force=True).table("Ledger 2").field("Type").id == fs.id
    # errors
    status, body = error_of(base.create_table, "ledger 2", [{"name": "x", "type": "singleLineText"}])
    assert status == 422 and body["error"]["type"] == "DUPLICATE_TABLE_NAME"
    assert error_of(base.create_table, "T", [])[0] == 422
    assert error_of(base.create_table, "T", [{"name": "x", "type": "bogus"}])[0] == 422
    assert error_of(base.table("Ledger 2").create_field, "type", "singleLineText")[1]["error"]["type"] == \
        "DUPLICATE_OR_EMPTY_FIELD_NAME"
    assert "T" not in [t.name for t in base.schema(force=True).tables]


def test_init_base_from_schema_against_empty_base(twin):
    """What `giftsync init-base` does: build config/base_schema.json with create_table/create_field."""
    server = start_twin("airtable", seed={"bases": [{"id": "appEmpty000000001", "name": "empty", "tables": []}]},
                        rate_limit=False)
    try:
        api = Api("any", endpoint_url=server.url, timeout=(2, 5), retry_strategy=retry_strategy(read=0))
        base = api.base("appEmpty000000001")
        schema = load_base_schema()
        ids: dict[str, str] = {}
        for t in schema["tables"]:
            plain = [f for f in t["fields"] if f["type"] != "multipleRecordLinks"]
            ids[t["name"]] = base.create_table(t["name"], plain, description=t.get("description")).id
        for t in schema["tables"]:
            for f in t["fields"]:
                if f["type"] == "multipleRecordLinks":
                    base.table(t["name"]).create_field(f["name"], f["type"], options={
                        "linkedTableId": ids[f["options"]["linkedTable"]]})
        built = base.schema(force=True)
        for t in schema["tables"]:
            got = {f.name: f for f in built.table(t["name"]).fields}
            for f in t["fields"]:
                assert got[f["name"]].type == f["type"]
                if f["type"] == "multipleRecordLinks":
                    assert got[f["name"]].options.linked_table_id == ids[f["options"]["linkedTable"]]
        # the seed helper builds the same shape (incl. inverse link fields) as init-base does
        twin_schema = Api(TOKEN, endpoint_url=twin.url, timeout=(2, 5)).base("appGiftsyncSandbx")
        for t in built.tables:
            assert sorted(f.name for f in t.fields) == \
                sorted(f.name for f in twin_schema.schema().table(t.name).fields)
    finally:
        server.stop()
