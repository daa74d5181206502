"""The Shopify twin driven by unmodified gql (requests transport): gift cards, errors, cost, auth, faults."""
from __future__ import annotations

import json
import time

import pytest
import requests
from gql import Client, gql
from gql.transport.exceptions import TransportConnectionFailed, TransportQueryError
from gql.transport.requests import RequestsHTTPTransport

from giftsync.sandbox.shopify import create_app
from giftsync.sandbox.twin import TwinServer

TOKEN = "shpat_sandbox"
UNAUTHORIZED = "[API] Invalid API key or access token (unrecognized login or wrong password)"
# gql 4 prefers GraphQLRequest(variable_values=...); the keyword form used here is what giftsync's client uses
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CREATE_TEXT = """
mutation Create($input: GiftCardCreateInput!) {
  giftCardCreate(input: $input) {
    giftCard { id lastCharacters maskedCode enabled balance { amount currencyCode }
               initialValue { amount currencyCode } createdAt updatedAt note expiresOn customer { id } }
    giftCardCode
    userErrors { field code message }
  }
}"""
CREATE = gql(CREATE_TEXT)
CREDIT = gql("""
mutation Credit($id: ID!, $in: GiftCardCreditInput!) {
  giftCardCredit(id: $id, creditInput: $in) {
    giftCardCreditTransaction { id amount { amount currencyCode } processedAt note giftCard { id balance { amount } } }
    userErrors { field code message }
  }
}""")
DEBIT = gql("""
mutation Debit($id: ID!, $in: GiftCardDebitInput!) {
  giftCardDebit(id: $id, debitInput: $in) {
    giftCardDebitTransaction { id amount { amount currencyCode } processedAt note giftCard { id balance { amount } } }
    userErrors { field code message }
  }
}""")
CARD = gql("""
query Card($id: ID!) {
  giftCard(id: $id) {
    id enabled deactivatedAt balance { amount } note
    transactions(first: 20) { nodes { __typename id note amount { amount } processedAt } pageInfo { hasNextPage } }
  }
}""")
CARDS = gql("""
query Cards($q: String, $first: Int, $last: Int, $after: String, $before: String, $reverse: Boolean,
            $sort: GiftCardSortKeys) {
  giftCards(query: $q, first: $first, last: $last, after: $after, before: $before, reverse: $reverse,
            sortKey: $sort) {
    nodes { id lastCharacters note }
    edges { cursor node { id } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
  giftCardsCount(query: $q) { count precision }
}""")


def usd(amount):
    return {"amount": str(amount), "currencyCode": "USD"}


@pytest.fixture
def twin():
    server = TwinServer(create_app())
    server.start()
    yield server
    server.stop()


def client(server, token=TOKEN, version="2026-07"):
    transport = RequestsHTTPTransport(url=f"{server.url}/admin/api/{version}/graphql.json",
                                      headers={"X-Shopify-Access-Token": token}, timeout=5, retries=0)
    return Client(transport=transport)


def create(c, **input_):
    input_.setdefault("initialAmount", usd("25.00"))
    return c.execute(CREATE, variable_values={"input": input_})["giftCardCreate"]


def test_card_lifecycle_create_credit_debit_deactivate(twin):
    c = client(twin)
    out = create(c, code="GS7K2M9Q4X8PABCD", note="giftsync:recAbc")
    assert out["userErrors"] == []
    card = out["giftCard"]
    assert out["giftCardCode"] == "gs7k2m9q4x8pabcd"
    assert card["lastCharacters"] == "abcd" and card["maskedCode"] == "•••• •••• •••• abcd"
    assert card["balance"] == {"amount": "25.0", "currencyCode": "USD"} and card["createdAt"] == card["updatedAt"]
    assert card["customer"] is None and card["expiresOn"] is None and card["enabled"] is True

    credit = c.execute(CREDIT, variable_values={"id": card["id"], "in": {"creditAmount": usd("2.50"),
                                                                         "note": "giftsync:rec1:ev1"}})
    tx = credit["giftCardCredit"]["giftCardCreditTransaction"]
    assert tx["amount"]["amount"] == "2.5" and tx["giftCard"]["balance"]["amount"] == "27.5"
    debit = c.execute(DEBIT, variable_values={"id": card["id"], "in": {
        "debitAmount": usd("12.50"), "note": "giftsync:rec1:ev2", "processedAt": "2026-01-02T03:04:05+01:00"}})
    tx = debit["giftCardDebit"]["giftCardDebitTransaction"]
    assert tx["amount"]["amount"] == "-12.5" and tx["processedAt"] == "2026-01-02T02:04:05Z"
    assert tx["giftCard"]["balance"]["amount"] == "15.0"

    read = c.execute(CARD, variable_values={"id": card["id"]})["giftCard"]
    assert [(n["__typename"], n["note"], n["amount"]["amount"]) for n in read["transactions"]["nodes"]] == [
        ("GiftCardCreditTransaction", "giftsync:rec1:ev1", "2.5"),
        ("GiftCardDebitTransaction", "giftsync:rec1:ev2", "-12.5")]

    gone = c.execute(gql("mutation D($id: ID!) { giftCardDeactivate(id: $id) { giftCard { enabled deactivatedAt } "
                         "userErrors { code } } }"), variable_values={"id": card["id"]})["giftCardDeactivate"]
    assert gone["giftCard"]["enabled"] is False and gone["giftCard"]["deactivatedAt"]
    after = c.execute(DEBIT, variable_values={"id": card["id"], "in": {"debitAmount": usd(1)}})["giftCardDebit"]
    assert after["userErrors"] == [{"field": ["id"], "code": "INVALID", "message": "The gift card is deactivated."}]


def test_money_errors_insufficient_funds_limits_and_duplicate_codes(twin):
    c = client(twin)
    card = create(c, code="abcdefgh1234", initialAmount=usd(5))["giftCard"]
    over = c.execute(DEBIT, variable_values={"id": card["id"], "in": {"debitAmount": usd("5.01")}})["giftCardDebit"]
    assert over == {"giftCardDebitTransaction": None, "userErrors": [{
        "field": ["debitInput", "debitAmount", "amount"], "code": "INSUFFICIENT_FUNDS",
        "message": "The gift card does not have sufficient funds to satisfy the request."}]}
    assert c.execute(CARD, variable_values={"id": card["id"]})["giftCard"]["transactions"]["nodes"] == []
    limit = c.execute(CREDIT, variable_values={"id": card["id"], "in": {"creditAmount": usd(2996)}})
    assert limit["giftCardCredit"]["userErrors"][0]["code"] == "GIFT_CARD_LIMIT_EXCEEDED"
    zero = c.execute(CREDIT, variable_values={"id": card["id"], "in": {"creditAmount": usd(0)}})
    assert zero["giftCardCredit"]["userErrors"][0]["code"] == "NEGATIVE_OR_ZERO_AMOUNT"
    eur = c.execute(CREDIT, variable_values={"id": card["id"], "in": {"creditAmount": {"amount": "1",
                                                                                      "currencyCode": "EUR"}}})
    assert eur["giftCardCredit"]["userErrors"][0]["code"] == "MISMATCHING_CURRENCY"
    missing = c.execute(DEBIT, variable_values={"id": "gid://shopify/GiftCard/1", "in": {"debitAmount": usd(1)}})
    assert missing["giftCardDebit"]["userErrors"][0]["code"] == "GIFT_CARD_NOT_FOUND"
    # the same code twice (any case): code null, as captured; then the retry path finds the card by code
    dup = create(c, code="ABCDEFGH1234")
    assert dup["giftCard"] is None and dup["userErrors"] == [
        {"field": ["input", "code"], "code": None, "message": "Code has already been taken"}]
    found = c.execute(CARDS, variable_values={"q": "abcdefgh1234", "first": 5})["giftCards"]["nodes"]
    assert [n["id"] for n in found] == [card["id"]]
    assert create(c, code="short")["userErrors"][0]["code"] == "TOO_SHORT"
    assert create(c, code="x" * 21)["userErrors"][0]["code"] == "TOO_LONG"
    assert create(c, code="bad-code-1234")["userErrors"][0]["code"] == "INVALID"
    assert create(c, initialAmount=usd("3000.01"))["userErrors"][0] == {
        "field": ["input", "initialAmount", "amount"], "code": "GIFT_CARD_LIMIT_EXCEEDED",
        "message": "can't exceed $3,000.00 USD"}
    auto = create(c)
    assert len(auto["giftCardCode"]) == 16 and auto["giftCardCode"].isalnum()
    legacy = c.execute(CREATE, variable_values={"input": {"initialValue": "10.00"}})["giftCardCreate"]
    assert legacy["giftCard"]["initialValue"] == {"amount": "10.0", "currencyCode": "USD"}


def test_search_sort_and_cursor_pagination(twin):
    c = client(twin)
    ids = [create(c, code=f"pagecard{i:04d}", note=f"n{i}", initialAmount=usd(10 + i))["giftCard"]["id"]
           for i in range(5)]
    seen, after = [], None
    while True:
        page = c.execute(CARDS, variable_values={"q": "pagecard", "first": 2, "after": after})["giftCards"]
        seen += [n["id"] for n in page["nodes"]]
        assert [e["node"]["id"] for e in page["edges"]] == [n["id"] for n in page["nodes"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == ids
    rev = c.execute(CARDS, variable_values={"first": 5, "reverse": True, "sort": "UPDATED_AT"})["giftCards"]
    assert len(rev["nodes"]) == 5 and rev["pageInfo"]["hasPreviousPage"] is False
    last = c.execute(CARDS, variable_values={"last": 2, "before": page["edges"][-1]["cursor"]})["giftCards"]
    assert [n["id"] for n in last["nodes"]] == ids[2:4] and last["pageInfo"]["hasNextPage"] is True
    count = c.execute(CARDS, variable_values={"q": "status:enabled balance_status:full", "first": 1})
    assert count["giftCardsCount"] == {"count": 5, "precision": "EXACT"}
    one = c.execute(CARDS, variable_values={"q": f"id:{ids[1].rsplit('/', 1)[1]}", "first": 3})["giftCards"]
    assert [n["id"] for n in one["nodes"]] == [ids[1]]
    c.execute(DEBIT, variable_values={"id": ids[0], "in": {"debitAmount": usd(1)}})
    partial = c.execute(CARDS, variable_values={"q": "balance_status:partial OR source:manual", "first": 9})
    assert [n["id"] for n in partial["giftCards"]["nodes"]] == [ids[0]]
    # no page size: BAD_REQUEST, data null
    with pytest.raises(TransportQueryError) as err:
        c.execute(CARDS, variable_values={"first": None, "q": None})
    assert err.value.errors[0]["message"] == "you must provide one of first or last"
    assert err.value.errors[0]["extensions"]["code"] == "BAD_REQUEST"


def test_unknown_search_field_is_ignored_with_a_warning(twin):
    c = client(twin)
    create(c, code="warncard0001")
    result = c.execute(CARDS, variable_values={"q": "updated_at:>2099-01-01", "first": 5},
                       get_execution_result=True)
    assert len(result.data["giftCards"]["nodes"]) == 1          # the term was dropped, not applied
    warnings = {tuple(w["path"]): w for w in result.extensions["search"]}
    assert set(warnings) == {("giftCards",), ("giftCardsCount",)}
    assert warnings[("giftCards",)]["warnings"] == [
        {"field": "updated_at", "message": "Invalid search field for this query.", "code": "invalid_field"}]
    assert result.extensions["cost"]["throttleStatus"]["maximumAvailable"] == 2000


def test_validation_errors_are_shaped_like_shopify(twin):
    c = client(twin)
    with pytest.raises(TransportQueryError) as err:
        c.execute(gql("mutation M($id: ID!) { giftCardCredit(id: $id, creditInput: {creditAmount: "
                      "{amount: \"1\", currencyCode: USD}}) { giftCard { id } } }"), variable_values={"id": "x"})
    e = err.value.errors[0]
    assert e["message"] == "Field 'giftCard' doesn't exist on type 'GiftCardCreditPayload'"
    assert e["extensions"]["code"] == "undefinedField" and e["path"] == ["mutation M", "giftCardCredit", "giftCard"]
    with pytest.raises(TransportQueryError) as err:
        c.execute(CREATE, variable_values={"input": {"initialValue": "5", "notify": True}})
    assert err.value.errors[0]["extensions"]["code"] == "INVALID_VARIABLE"
    assert err.value.errors[0]["extensions"]["problems"] == [
        {"path": ["notify"], "explanation": "Field is not defined on GiftCardCreateInput"}]
    with pytest.raises(TransportQueryError) as err:
        c.execute(gql("{ giftCard(id: \"gid://shopify/Customer/abc\") { id } }"))
    assert err.value.errors[0]["extensions"]["code"] == "RESOURCE_NOT_FOUND"
    raw = requests.post(f"{twin.url}/admin/api/2026-07/graphql.json", data=b"{not json",
                        headers={"X-Shopify-Access-Token": TOKEN, "Content-Type": "application/json"}, timeout=5)
    assert raw.status_code == 400 and isinstance(raw.json()["errors"], str)
    syntax = requests.post(f"{twin.url}/admin/api/2026-07/graphql.json", json={"query": "{ giftCard(id: "},
                           headers={"X-Shopify-Access-Token": TOKEN}, timeout=5)
    assert syntax.status_code == 200 and syntax.json()["errors"][0]["extensions"]["code"] == "PARSE_ERROR"
    assert "data" not in syntax.json() and "extensions" not in syntax.json()
    lost = requests.get(f"{twin.url}/admin/api/2026-07/products.json", timeout=5)
    assert lost.status_code == 404 and lost.json() == {"errors": "Not Found"}


def test_bad_token_is_401_and_missing_scope_is_access_denied():
    server = TwinServer(create_app(tokens={"shpat_full": ["read_gift_cards", "write_gift_cards",
                                                         "read_gift_card_transactions",
                                                         "write_gift_card_transactions", "read_customers"],
                                           "shpat_reader": ["read_gift_cards"]}))
    server.start()
    try:
        # Shopify's 401 body is JSON {"errors": "<string>"}: unmodified gql hands it back as a query error
        with pytest.raises(TransportQueryError) as err:
            client(server, "shpat_nope").execute(CARDS, variable_values={"first": 1})
        assert err.value.errors == UNAUTHORIZED
        assert server.requests()[-1]["status"] == 401
        raw = requests.post(f"{server.url}/admin/api/2026-07/graphql.json", json={"query": "{ shop { id } }"},
                            headers={"Authorization": "Bearer shpat_full"}, timeout=5)
        assert raw.status_code == 401 and raw.json() == {
            "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}
        reader = client(server, "shpat_reader")
        with pytest.raises(TransportQueryError) as err:
            reader.execute(CREATE, variable_values={"input": {"initialAmount": usd(5)}})
        e = err.value.errors[0]
        assert e["extensions"]["code"] == "ACCESS_DENIED" and "write_gift_cards" in e["extensions"]["requiredAccess"]
        assert err.value.data == {"giftCardCreate": None}
        scopes = reader.execute(gql("{ currentAppInstallation { accessScopes { handle } } }"))
        assert scopes["currentAppInstallation"]["accessScopes"] == [{"handle": "read_gift_cards"}]
        full = client(server, "shpat_full")
        assert full.execute(CREATE, variable_values={"input": {"initialAmount": usd(5)}})["giftCardCreate"]["giftCard"]
    finally:
        server.stop()


def test_cost_extension_throttling_and_max_cost():
    server = TwinServer(create_app(bucket_size=30, restore_rate=1))
    server.start()
    try:
        c = client(server)
        r = c.execute(CREATE, variable_values={"input": {"initialAmount": usd(5)}}, get_execution_result=True)
        cost = r.extensions["cost"]
        assert cost["requestedQueryCost"] == 11 and cost["actualQueryCost"] == 11   # giftCard free, customer 1
        assert cost["throttleStatus"]["maximumAvailable"] == 30 and cost["throttleStatus"]["restoreRate"] == 1
        c.execute(CREATE, variable_values={"input": {"initialAmount": usd(5)}})
        with pytest.raises(TransportQueryError) as err:
            c.execute(CREATE, variable_values={"input": {"initialAmount": usd(5)}})
        assert err.value.errors == [{"message": "Throttled", "extensions": {"code": "THROTTLED",
                                                                           "documentation": "/api/usage/rate-limits"}}]
        raw = requests.post(f"{server.url}/admin/api/2026-07/graphql.json",
                            json={"query": CREATE_TEXT, "variables": {"input": {"initialAmount": usd(5)}}},
                            headers={"X-Shopify-Access-Token": TOKEN}, timeout=5).json()
        assert raw["extensions"]["cost"]["actualQueryCost"] is None and "data" not in raw
        assert len(client(server).execute(gql("{ giftCards(first: 2) { nodes { id } } }"))["giftCards"]["nodes"]) == 2
        with pytest.raises(TransportQueryError) as err:
            c.execute(gql("{ " + " ".join(f"c{i}: giftCardsCount {{ count }}" for i in range(101)) + " }"))
        e = err.value.errors[0]
        assert e["extensions"]["code"] == "MAX_COST_EXCEEDED" and e["extensions"]["maxCost"] == 1000
        assert e["message"].startswith("Query cost is 1010, which exceeds the single query max cost limit (1000).")
    finally:
        server.stop()


def test_debit_with_an_after_fault_errors_but_is_applied(twin):
    c = client(twin)
    card = create(c, code="faultcard0001", initialAmount=usd(20))["giftCard"]
    twin.inject(kind="status", status=503, route="giftCardDebit", when="after", count=1)
    with pytest.raises(TransportQueryError) as err:      # HTTP 503 with {"errors": "Service Unavailable"}
        c.execute(DEBIT, variable_values={"id": card["id"], "in": {"debitAmount": usd(5),
                                                                   "note": "giftsync:recF:ev1"}})
    assert err.value.errors == "Service Unavailable"
    assert twin.requests()[-1]["fault"] == {"kind": "status", "when": "after", "status": 503}
    # the read-back rule: the debit happened although the client saw a failure
    read = c.execute(CARD, variable_values={"id": card["id"]})["giftCard"]
    assert read["balance"]["amount"] == "15.0"
    assert [n["note"] for n in read["transactions"]["nodes"]] == ["giftsync:recF:ev1"]
    # a hang after the write: the client times out, the write stands
    twin.inject(kind="hang", delay=2, route="giftCardDebit", when="after", count=1)
    transport = RequestsHTTPTransport(url=f"{twin.url}/admin/api/2026-07/graphql.json",
                                      headers={"X-Shopify-Access-Token": TOKEN}, timeout=0.5, retries=0)
    with pytest.raises(TransportConnectionFailed):      # a read timeout underneath
        Client(transport=transport).execute(DEBIT, variable_values={"id": card["id"], "in": {
            "debitAmount": usd(5), "note": "giftsync:recF:ev2"}})
    read = c.execute(CARD, variable_values={"id": card["id"]})["giftCard"]
    assert read["balance"]["amount"] == "10.0"
    assert [r["route"] for r in twin.requests()].count("giftCardDebit") == 2
    # a fault before: nothing applied
    twin.inject(kind="status", status=502, route="giftCardCredit", when="before", count=1)
    with pytest.raises(TransportQueryError):
        c.execute(CREDIT, variable_values={"id": card["id"], "in": {"creditAmount": usd(1)}})
    assert c.execute(CARD, variable_values={"id": card["id"]})["giftCard"]["balance"]["amount"] == "10.0"


def test_route_keys_name_the_first_root_field(twin):
    c = client(twin)
    c.execute(CARDS, variable_values={"first": 1})
    c.execute(gql("mutation { tagsAdd(id: \"gid://shopify/Order/1\", tags: [\"x\"]) { userErrors { message } } }"))
    assert [r["route"] for r in twin.requests()][-2:] == ["giftCards", "tagsAdd"]
    logged = twin.requests()[-1]
    assert logged["headers"]["x-shopify-access-token"] == "***"


def test_restart_with_a_state_file_keeps_cards(tmp_path):
    state = tmp_path / "shopify.json"
    first = TwinServer(create_app(), state_path=str(state))
    first.start()
    c = client(first)
    card = create(c, code="keepme000001", initialAmount=usd(9))["giftCard"]
    c.execute(DEBIT, variable_values={"id": card["id"], "in": {"debitAmount": usd(4), "note": "k"}})
    first.stop()
    assert "keepme000001" in state.read_text()
    second = TwinServer(create_app(), state_path=str(state))
    second.start()
    try:
        read = client(second).execute(CARD, variable_values={"id": card["id"]})["giftCard"]
        assert read["balance"]["amount"] == "5.0" and read["transactions"]["nodes"][0]["note"] == "k"
        again = create(client(second), code="another00001")["giftCard"]["id"]
        assert again != card["id"]
    finally:
        second.stop()


def test_served_as_its_own_process(tmp_path):
    import subprocess
    import sys
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"giftCards": [{"code": "seeded000001", "initialValue": "15.00"}]}))
    proc = subprocess.Popen([sys.executable, "-m", "giftsync.sandbox", "serve", "shopify", "--seed", str(seed)],
                            stdout=subprocess.PIPE, text=True)
    try:
        t0 = time.monotonic()
        line = proc.stdout.readline().strip()
        assert line.startswith("ready http://127.0.0.1:") and time.monotonic() - t0 < 10
        url = line.split(" ", 1)[1]
        transport = RequestsHTTPTransport(url=f"{url}/admin/api/2026-07/graphql.json",
                                          headers={"X-Shopify-Access-Token": TOKEN}, timeout=5, retries=0)
        nodes = Client(transport=transport).execute(CARDS, variable_values={"q": "seeded", "first": 1})
        assert nodes["giftCards"]["nodes"][0]["lastCharacters"] == "0001"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
