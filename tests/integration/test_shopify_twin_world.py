"""Orders, tags and the world controls of the Shopify twin, read back through unmodified gql."""
from __future__ import annotations

import json

import pytest
import requests
from gql import Client, gql
from gql.transport.requests import RequestsHTTPTransport

from giftsync.sandbox.shopify import create_app
from giftsync.sandbox.twin import TwinServer

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
TOKEN = "shpat_sandbox"
SEED = {
    "customers": [{"email": "ann@example.com", "firstName": "Ann", "lastName": "Lee"}],
    "products": [
        {"sku": "GS-GIFT-25", "title": "Store gift card 25", "price": "25.00", "giftsync": True},
        {"sku": "NATIVE-50", "title": "Online gift card 50", "price": "50.00", "isGiftCard": True},
        {"sku": "MUG", "title": "Mug", "price": "12.00"},
    ],
    "giftCards": [{"code": "paywith00000001", "initialValue": "40.00", "note": "seeded"},
                  {"code": "paywith00000002", "initialValue": "10.00"}],
}
ORDERS = gql("""
query Orders($q: String, $after: String) {
  orders(first: 10, after: $after, sortKey: UPDATED_AT, query: $q) {
    nodes { id name email updatedAt displayFinancialStatus tags paymentGatewayNames
            customer { id firstName lastName defaultEmailAddress { emailAddress } }
            lineItems(first: 20) { nodes { id isGiftCard sku quantity name
                                           originalUnitPriceSet { shopMoney { amount currencyCode } }
                                           customAttributes { key value } } }
            transactions(first: 20) { id kind status gateway receiptJson processedAt
                                      amountSet { shopMoney { amount currencyCode } } } }
    pageInfo { hasNextPage endCursor }
  }
}""")
PURCHASED_CARDS = gql("""
query Bought($q: String!) {
  giftCards(first: 20, query: $q, sortKey: CREATED_AT) {
    nodes { id lastCharacters balance { amount } order { id name } lineItem { id sku }
            customer { id } recipientAttributes { preferredName message recipient { id } } }
  }
}""")
CARD = gql("""
query Card($id: ID!) { giftCard(id: $id) { balance { amount } transactions(last: 10) {
  nodes { __typename amount { amount } note } } } }""")
TAGS_ADD = gql("""
mutation Tag($id: ID!, $tags: [String!]!) {
  tagsAdd(id: $id, tags: $tags) { node { ... on Order { id tags } } userErrors { field message } }
}""")


@pytest.fixture
def twin():
    server = TwinServer(create_app(seed=SEED))
    server.start()
    yield server
    server.stop()


def gq(server):
    return Client(transport=RequestsHTTPTransport(url=f"{server.url}/admin/api/2026-07/graphql.json",
                                                  headers={"X-Shopify-Access-Token": TOKEN}, timeout=5, retries=0))


def world(server, method, path, body=None):
    r = requests.request(method, f"{server.url}/__sandbox/shopify/{path}", json=body, timeout=5)
    return r.status_code, r.json()


def test_purchase_with_giftsync_and_native_lines_native_cards_appear_late(twin):
    status, order = world(twin, "POST", "orders", {
        "customer": {"email": "ann@example.com"},
        "lines": [{"sku": "GS-GIFT-25", "quantity": 2,
                   "properties": {"Recipient email": "bob@example.com", "Recipient name": "Bob"}},
                  {"sku": "NATIVE-50", "quantity": 1,
                   "properties": {"Recipient email": "cy@example.com", "Recipient name": "Cy",
                                  "Message": "Happy birthday"}}],
        "native_delay_requests": 2})
    assert status == 201 and order["financialStatus"] == "PAID" and order["total"] == "100.00"
    assert [c["visible"] for c in order["issuedGiftCards"]] == [False]
    assert "code" not in order["issuedGiftCards"][0]
    c = gq(twin)
    q = {"q": "source:purchased"}
    assert c.execute(PURCHASED_CARDS, variable_values=q)["giftCards"]["nodes"] == []        # request 1
    [o] = c.execute(ORDERS, variable_values={"q": "financial_status:paid"})["orders"]["nodes"]  # request 2
    lines = {l["sku"]: l for l in o["lineItems"]["nodes"]}
    assert lines["GS-GIFT-25"]["isGiftCard"] is False and lines["GS-GIFT-25"]["quantity"] == 2
    assert {"key": "Recipient email", "value": "bob@example.com"} in lines["GS-GIFT-25"]["customAttributes"]
    assert lines["NATIVE-50"]["isGiftCard"] is True
    assert lines["NATIVE-50"]["originalUnitPriceSet"]["shopMoney"] == {"amount": "50.0", "currencyCode": "USD"}
    assert o["customer"]["defaultEmailAddress"]["emailAddress"] == "ann@example.com"
    assert o["paymentGatewayNames"] == ["bogus"]
    [card] = c.execute(PURCHASED_CARDS, variable_values=q)["giftCards"]["nodes"]               # now visible
    assert card["order"]["id"] == o["id"] and card["lineItem"]["sku"] == "NATIVE-50"
    assert card["balance"]["amount"] == "50.0" and card["customer"]["id"] == o["customer"]["id"]
    assert card["recipientAttributes"]["preferredName"] == "Cy"
    assert card["recipientAttributes"]["message"] == "Happy birthday"
    # the console never shows whole codes unless a test asks
    status, cards = world(twin, "GET", "cards")
    assert all("code" not in x for x in cards["cards"])
    status, cards = world(twin, "GET", "cards?include_codes=1")
    assert all(len(x["code"]) >= 8 for x in cards["cards"])


def test_native_cards_can_wait_seconds_or_be_released(twin):
    app = twin.app
    out = app.purchase(customer={"email": "dee@example.com"}, lines=[{"sku": "NATIVE-50"}], native_delay_seconds=60)
    assert out["issuedGiftCards"][0]["visible"] is False
    c = gq(twin)
    assert c.execute(PURCHASED_CARDS, variable_values={"q": "source:purchased"})["giftCards"]["nodes"] == []
    status, released = world(twin, "POST", "cards/release")
    assert status == 200 and len(released["released"]) == 1
    assert len(c.execute(PURCHASED_CARDS, variable_values={"q": "source:purchased"})["giftCards"]["nodes"]) == 1


def test_order_paid_partly_with_gift_cards_then_refunded_to_a_card(twin):
    status, order = world(twin, "POST", "orders", {
        "email": "ann@example.com", "lines": [{"sku": "MUG", "quantity": 3}],
        "gift_card_payments": [{"code": "PAYWITH00000001", "amount": "30.00"}], "gateway": "shopify_payments"})
    assert status == 201, order
    c = gq(twin)
    [o] = c.execute(ORDERS, variable_values={"q": "gateway:gift_card"})["orders"]["nodes"]
    assert o["paymentGatewayNames"] == ["gift_card", "shopify_payments"]
    gc_tx = [t for t in o["transactions"] if t["gateway"] == "gift_card"]
    assert [(t["kind"], t["status"], t["amountSet"]["shopMoney"]["amount"]) for t in gc_tx] == [("SALE", "SUCCESS",
                                                                                                 "30.0")]
    receipt = json.loads(gc_tx[0]["receiptJson"])
    card_id = f"gid://shopify/GiftCard/{receipt['gift_card_id']}"
    assert receipt["gift_card_last_characters"] == "0001"
    card = c.execute(CARD, variable_values={"id": card_id})["giftCard"]
    assert card["balance"]["amount"] == "10.0"
    assert [(n["__typename"], n["amount"]["amount"]) for n in card["transactions"]["nodes"]] == [
        ("GiftCardDebitTransaction", "-30.0")]
    # refund 5 back onto the card
    status, refunded = world(twin, "POST", f"orders/{o['id'].rsplit('/', 1)[1]}/refunds",
                             {"gift_card": card_id, "amount": "5.00", "note": "refund r1"})
    assert status == 200 and refunded["financialStatus"] == "PARTIALLY_REFUNDED"
    [o] = c.execute(ORDERS, variable_values={"q": "financial_status:partially_refunded"})["orders"]["nodes"]
    refund = [t for t in o["transactions"] if t["kind"] == "REFUND"]
    assert refund and refund[0]["gateway"] == "gift_card"
    assert json.loads(refund[0]["receiptJson"])["gift_card_id"] == receipt["gift_card_id"]
    card = c.execute(CARD, variable_values={"id": card_id})["giftCard"]
    assert card["balance"]["amount"] == "15.0" and card["transactions"]["nodes"][-1]["note"] == "refund r1"
    # paying more than a card holds is refused and changes nothing
    status, err = world(twin, "POST", "orders", {"lines": [{"sku": "MUG"}],
                                                 "gift_card_payments": [{"code": "paywith00000002", "amount": "11"}]})
    assert status == 409 and "insufficient" in err["error"]
    assert "paywith" not in json.dumps(err)            # never echo a whole code
    assert len(world(twin, "GET", "orders")[1]["orders"]) == 1


def test_admin_adjustment_and_manual_card(twin):
    status, card = world(twin, "POST", "cards", {"amount": "20.00", "code": "manual00000001", "note": "by hand"})
    assert status == 201 and card["code"] == "manual00000001"
    status, after = world(twin, "POST", f"cards/{card['id'].rsplit('/', 1)[1]}/adjust",
                          {"amount": "-7.50", "note": "admin fix"})
    assert status == 200 and after["balance"] == "12.50"
    status, after = world(twin, "POST", "cards/manual00000001/adjust", {"amount": "2.50"})
    assert after["balance"] == "15.00"
    status, err = world(twin, "POST", f"cards/{card['id'].rsplit('/', 1)[1]}/adjust", {"amount": "-100"})
    assert status == 409
    c = gq(twin)
    read = c.execute(CARD, variable_values={"id": card["id"]})["giftCard"]
    assert [(n["__typename"], n["amount"]["amount"], n["note"]) for n in read["transactions"]["nodes"]] == [
        ("GiftCardDebitTransaction", "-7.5", "admin fix"), ("GiftCardCreditTransaction", "2.5", None)]
    manual = c.execute(gql("{ giftCards(first: 5, query: \"source:manual\") { nodes { id } } }"))
    assert [n["id"] for n in manual["giftCards"]["nodes"]] == [card["id"]]


def test_orders_search_tags_and_tags_add(twin):
    app = twin.app
    a = app.purchase(email="ann@example.com", lines=[{"sku": "MUG"}], tags=["wholesale"])
    b = app.purchase(email="ann@example.com", lines=[{"sku": "GS-GIFT-25"}])
    app.purchase(email="zed@example.com", lines=[{"sku": "MUG"}], financialStatus="PENDING")
    c = gq(twin)

    def names(q):
        return [o["name"] for o in c.execute(ORDERS, variable_values={"q": q})["orders"]["nodes"]]

    assert names("tag:wholesale") == [a["name"]]
    assert sorted(names("financial_status:paid -tag:giftsync-done")) == sorted([a["name"], b["name"]])
    out = c.execute(TAGS_ADD, variable_values={"id": b["id"], "tags": ["giftsync-done", " Giftsync-Done ,extra"]})
    assert out["tagsAdd"]["node"]["tags"] == ["extra", "giftsync-done"] and out["tagsAdd"]["userErrors"] == []
    assert names("financial_status:paid -tag:giftsync-done") == [a["name"]]
    assert names("financial_status:paid tag_not:giftsync-done") == [a["name"]]
    assert names("status:open email:zed@example.com") == [names("financial_status:pending")[0]]
    assert names(f"sku:GS-GIFT-25 AND name:{b['name'].lstrip('#')}") == [b["name"]]
    assert sorted(names("updated_at:>'2000-01-01T00:00:00Z' created_at:<=now")) == sorted(names(""))
    removed = c.execute(gql("mutation R($id: ID!) { tagsRemove(id: $id, tags: [\"EXTRA\"]) { node { ... on Order "
                            "{ tags } } userErrors { message } } }"), variable_values={"id": b["id"]})
    assert removed["tagsRemove"]["node"]["tags"] == ["giftsync-done"]
    missing = c.execute(TAGS_ADD, variable_values={"id": "gid://shopify/Order/1", "tags": ["x"]})
    assert missing["tagsAdd"] == {"node": None, "userErrors": [{"field": ["id"], "message": "Order does not exist"}]}
    count = c.execute(gql("{ ordersCount(query: \"tag:giftsync-done\") { count precision } }"))
    assert count["ordersCount"] == {"count": 1, "precision": "EXACT"}
    one = c.execute(gql("query O($id: ID!) { order(id: $id) { name displayFinancialStatus } }"),
                    variable_values={"id": a["id"]})
    assert one["order"] == {"name": a["name"], "displayFinancialStatus": "PAID"}


def test_seeded_orders_pay_with_seeded_cards_and_reset_returns_to_the_seed():
    seed = dict(SEED, orders=[{"email": "ann@example.com", "lines": [{"sku": "MUG"}],
                               "gift_card_payments": [{"code": "paywith00000002", "amount": "10"}]}])
    server = TwinServer(create_app(seed=seed))
    server.start()
    try:
        cards = {c["lastCharacters"]: c for c in world(server, "GET", "cards")[1]["cards"]}
        assert cards["0002"]["balance"] == "0.00" and cards["0002"]["transactions"][0]["order"]
        gq(server).execute(gql("mutation { giftCardCreate(input: {initialValue: \"5\"}) { giftCard { id } } }"))
        assert len(world(server, "GET", "cards")[1]["cards"]) == 3
        assert world(server, "POST", "reset")[0] == 200
        assert len(world(server, "GET", "cards")[1]["cards"]) == 2
        assert len(world(server, "GET", "orders")[1]["orders"]) == 1
        status, cust = world(server, "POST", "customers", {"email": "new@example.com", "firstName": "N"})
        assert status == 201 and cust["id"].startswith("gid://shopify/Customer/")
        assert world(server, "POST", "customers", {"email": "new@example.com"})[0] == 400
    finally:
        server.stop()


def test_world_controls_refuse_bad_input_cleanly(twin):
    assert world(twin, "POST", "orders", {"lines": []})[0] == 400
    assert world(twin, "POST", "orders", {"lines": [{"sku": "NOPE"}]})[0] == 400
    assert world(twin, "POST", "orders/999/refunds", {"gift_card": "x", "amount": "1"})[0] == 404
    r = requests.post(f"{twin.url}/__sandbox/shopify/orders", data=b"{oops", timeout=5)
    assert r.status_code == 400 and "error" in r.json()
