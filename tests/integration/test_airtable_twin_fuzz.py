"""Malformed input never gets a stack trace or a 500 from the Airtable twin."""
from __future__ import annotations

import json

import pytest
import requests
from hypothesis import HealthCheck, given, settings, strategies as st

from giftsync.sandbox import start_twin
from giftsync.sandbox.airtable.seed import base_seed_from_schema, load_base_schema

BASE = "appGiftsyncSandbx"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12)
field_names = st.sampled_from(["Card", "Balance", "Status", "Store", "Expires On", "Created", "Nope", "fldX", ""])
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries({"fields": st.dictionaries(field_names, json_values, max_size=3)},
                          optional={"typecast": json_values, "returnFieldsByFieldId": json_values}),
    st.fixed_dictionaries({"records": st.lists(st.fixed_dictionaries(
        {"fields": st.dictionaries(field_names, json_values, max_size=3)}, optional={"id": json_values}), max_size=12)},
        optional={"typecast": st.booleans(), "performUpsert": json_values}),
)
targets = st.sampled_from([
    ("POST", "/v0/{b}/Gift%20Cards"), ("PATCH", "/v0/{b}/Gift%20Cards"), ("PUT", "/v0/{b}/Gift%20Cards"),
    ("POST", "/v0/{b}/Gift%20Cards/listRecords"), ("PATCH", "/v0/{b}/Gift%20Cards/recAAAAAAAAAAAAAA"),
    ("POST", "/v0/meta/bases/{b}/tables"), ("POST", "/v0/meta/bases/{b}/tables/Stores/fields"),
    ("PATCH", "/v0/meta/bases/{b}/tables/Stores"),
])


@pytest.fixture(scope="module")
def twin():
    server = start_twin("airtable", seed=base_seed_from_schema(load_base_schema()), rate_limit=False)
    yield server
    server.stop()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(target=targets, body=bodies)
def test_bodies_never_500(twin, target, body):
    method, path = target
    r = requests.request(method, twin.url + path.format(b=BASE), data=json.dumps(body),
                         headers={"Authorization": "Bearer t", "Content-Type": "application/json"}, timeout=5)
    assert r.status_code < 500, (r.status_code, r.text)
    r.json()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=st.dictionaries(st.sampled_from(["filterByFormula", "pageSize", "maxRecords", "offset", "view",
                                               "fields[]", "sort[0][field]", "sort[0][direction]", "cellFormat",
                                               "returnFieldsByFieldId", "timeZone", "userLocale"]),
                              st.text(max_size=40), max_size=5))
def test_list_params_never_500(twin, params):
    r = requests.get(f"{twin.url}/v0/{BASE}/Gift%20Cards", params=params, headers={"Authorization": "Bearer t"},
                     timeout=5)
    assert r.status_code < 500, (params, r.text)
    r.json()
