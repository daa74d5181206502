"""Pure parts of the Shopify adapter: mapping and error classification (no HTTP)."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
import requests
from gql.transport.exceptions import TransportConnectionFailed, TransportProtocolError
from urllib3.exceptions import MaxRetryError, NewConnectionError

from giftsync.adapters.shopify import admin_graphql_url, mapping
from giftsync.adapters.shopify.client import (HttpStatus, _version_watch, classify_exception, classify_graphql_errors,
                                              classify_http, throttle_wait)
from giftsync.adapters.shopify.documents import DOCUMENTS, MUTATIONS, estimated_cost
from giftsync.domain.money import Money
from giftsync.errors import AmbiguousError, FatalError, RetriableError

CARD = {
    "id": "gid://shopify/GiftCard/663920574770", "lastCharacters": "7369", "enabled": True,
    "deactivatedAt": None, "expiresOn": "2027-04-26", "note": "giftsync:rec9aXk",
    "createdAt": "2026-07-14T16:22:47Z", "updatedAt": "2026-07-14T16:22:47Z",
    "initialValue": {"amount": "5.0", "currencyCode": "CAD"}, "balance": {"amount": "4.5", "currencyCode": "CAD"},
    "customer": {"id": "gid://shopify/Customer/1", "defaultEmailAddress": {"emailAddress": "a@example.com"}},
    "order": {"id": "gid://shopify/Order/5", "name": "#1001"},
}


# -- URLs and scalars ---------------------------------------------------------------------

def test_admin_url_from_shop_domain_or_override():
    assert admin_graphql_url("shop.example", "2026-07") == "https://shop.example/admin/api/2026-07/graphql.json"
    assert admin_graphql_url("x", "2026-07", "http://127.0.0.1:8000/") == \
        "http://127.0.0.1:8000/admin/api/2026-07/graphql.json"
    with pytest.raises(ValueError):
        admin_graphql_url("", "2026-07")


def test_money_is_decimal_with_currency():
    m = mapping.money({"amount": "-3.0", "currencyCode": "usd"})
    assert m == Money(Decimal("-3.0"), "USD") and isinstance(m.amount, Decimal)
    assert mapping.money_input(Money.of("12.5", "EUR")) == {"amount": "12.50", "currencyCode": "EUR"}


def test_datetimes_are_utc_and_inputs_must_be_aware():
    assert mapping.parse_datetime("2026-07-14T16:22:47Z") == datetime(2026, 7, 14, 16, 22, 47, tzinfo=timezone.utc)
    aware = datetime(2026, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    assert mapping.format_datetime(aware) == "2026-01-01T10:00:00Z"
    with pytest.raises(ValueError):
        mapping.format_datetime(datetime(2026, 1, 1))


def test_gid_and_shopify_code():
    assert mapping.gid("GiftCard", 12) == "gid://shopify/GiftCard/12"
    assert mapping.gid("GiftCard", "gid://shopify/GiftCard/12") == "gid://shopify/GiftCard/12"
    with pytest.raises(ValueError):
        mapping.gid("GiftCard", "abc")
    assert mapping.shopify_code("ABCD-EFGH 2345") == "abcdefgh2345"
    assert mapping.shopify_code("short") is None
    assert mapping.shopify_code("bad!code99") is None


# -- cards and transactions ---------------------------------------------------------------

def test_card_mapping():
    card = mapping.card(CARD)
    assert card.id == CARD["id"] and card.last4 == "7369"
    assert card.balance == Money.of("4.5", "CAD") and card.initial_value == Money.of("5", "CAD")
    assert card.expires_on == date(2027, 4, 26) and card.enabled and card.deactivated_at is None
    assert card.customer_email == "a@example.com" and card.order_name == "#1001"
    assert card.note == "giftsync:rec9aXk"
    bare = mapping.card({**CARD, "customer": None, "order": None, "note": None, "lastCharacters": "2b5a"})
    assert bare.customer_email == "" and bare.order_name == "" and bare.note == "" and bare.last4 == "2B5A"


def test_transaction_kind_from_typename_or_sign():
    debit = mapping.transaction({"__typename": "GiftCardDebitTransaction", "id": "gid://shopify/GiftCardDebitTransaction/1",
                                 "amount": {"amount": "-3.0", "currencyCode": "CAD"}, "note": "k",
                                 "processedAt": "2026-07-14T16:22:48Z"})
    assert debit.kind == "debit" and debit.amount.amount == Decimal("-3.0") and debit.note == "k"
    credit = mapping.transaction({"id": "x", "amount": {"amount": "2.0", "currencyCode": "CAD"}, "note": None,
                                  "processedAt": None})
    assert credit.kind == "credit" and credit.note == ""


@pytest.mark.parametrize("error, expected", [
    ({"field": ["debitInput", "debitAmount", "amount"], "code": "INSUFFICIENT_FUNDS",
      "message": "The gift card does not have sufficient funds to satisfy the request."}, "INSUFFICIENT_FUNDS"),
    ({"field": ["id"], "code": "INVALID", "message": "The gift card is deactivated."}, "GIFT_CARD_DEACTIVATED"),
    ({"field": ["id"], "code": "INVALID", "message": "The gift card has expired."}, "GIFT_CARD_EXPIRED"),
    ({"field": ["id"], "code": "GIFT_CARD_NOT_FOUND", "message": "The gift card could not be found."},
     "GIFT_CARD_NOT_FOUND"),
    ({"field": ["x"], "code": "MISMATCHING_CURRENCY", "message": "..."}, "MISMATCHING_CURRENCY"),
    ({"field": ["x"], "code": None, "message": "Something else"}, "INVALID"),
])
def test_move_error_codes(error, expected):
    assert mapping.move_error_code([error]) == expected


def test_code_taken_comes_with_a_null_code():
    assert mapping.code_taken([{"field": ["input", "code"], "code": None, "message": "Code has already been taken"}])
    assert mapping.code_taken([{"field": ["input", "code"], "code": "TAKEN", "message": "x"}])
    assert not mapping.code_taken([{"field": ["input", "code"], "code": "TOO_SHORT",
                                    "message": "Code must be at least 8 characters long"}])


# -- orders -------------------------------------------------------------------------------

ORDER = {
    "id": "gid://shopify/Order/8", "name": "#1718", "email": "buyer@example.com",
    "createdAt": "2026-11-20T10:00:00Z", "updatedAt": "2026-11-20T10:01:00Z",
    "displayFinancialStatus": "PAID", "tags": ["wholesale"], "paymentGatewayNames": ["gift_card", "shopify_payments"],
    "customer": {"id": "gid://shopify/Customer/3", "firstName": "Bo", "lastName": "Lee",
                 "defaultEmailAddress": {"emailAddress": "bo@example.com"}},
    "lineItems": {"nodes": [{"id": "gid://shopify/LineItem/1", "name": "Gift card", "sku": "GS-25", "quantity": 3,
                             "isGiftCard": False,
                             "originalUnitPriceSet": {"shopMoney": {"amount": "25.0", "currencyCode": "USD"}},
                             "customAttributes": [{"key": "Recipient Email", "value": "r@example.com"}]}],
                  "pageInfo": {"hasNextPage": False, "endCursor": None}},
    "transactions": [
        {"id": "gid://shopify/OrderTransaction/1", "kind": "SALE", "status": "SUCCESS", "gateway": "gift_card",
         "receiptJson": "{\"gift_card_id\":663920574770,\"gift_card_last_characters\":\"7369\"}",
         "processedAt": "2026-11-20T10:01:00Z", "amountSet": {"shopMoney": {"amount": "25.0", "currencyCode": "USD"}}},
        {"id": "gid://shopify/OrderTransaction/2", "kind": "SALE", "status": "SUCCESS", "gateway": "shopify_payments",
         "receiptJson": "{}", "processedAt": None, "amountSet": {"shopMoney": {"amount": "50.0", "currencyCode": "USD"}}},
    ],
}


def test_order_mapping():
    order = mapping.order(ORDER)
    assert order.name == "#1718" and order.financial_status == "PAID"
    assert order.customer_email == "bo@example.com" and order.customer_first_name == "Bo"
    line = order.lines[0]
    assert line.quantity == 3 and line.sku == "GS-25" and line.unit_price == Money.of("25", "USD")
    assert line.properties == {"Recipient Email": "r@example.com"}
    gift, other = order.payments
    assert gift.gift_card_id == "gid://shopify/GiftCard/663920574770" and gift.gift_card_last4 == "7369"
    assert gift.amount == Money.of("25", "USD")
    assert other.gift_card_id is None


def test_orders_query_and_client_side_recheck():
    after = datetime(2026, 11, 20, tzinfo=timezone.utc)
    q = mapping.orders_query(updated_after=after, financial_statuses=["paid", "partially_refunded"],
                             without_tag="giftsync-done", gift_card_payments_only=True)
    assert q == ("updated_at:>='2026-11-20T00:00:00Z' (financial_status:paid OR financial_status:partially_refunded)"
                 " gateway:gift_card -tag:giftsync-done")
    assert mapping.search_value("has space") == '"has space"'
    order = mapping.order(ORDER)
    kw = dict(updated_after=after, financial_statuses=["paid"], without_tag="giftsync-done",
              gift_card_payments_only=True)
    assert mapping.order_matches(order, **kw)
    order.tags.append("GiftSync-Done")
    assert not mapping.order_matches(order, **kw)
    assert not mapping.order_matches(mapping.order({**ORDER, "displayFinancialStatus": "PENDING"}), **kw)


# -- error classification -----------------------------------------------------------------

@pytest.mark.parametrize("status, mutation, cls", [
    (401, False, FatalError), (403, True, FatalError), (404, False, FatalError), (400, True, FatalError),
    (429, False, RetriableError), (503, False, RetriableError), (500, False, RetriableError),
    (429, True, AmbiguousError), (502, True, AmbiguousError),
    (402, True, RetriableError), (423, False, RetriableError),
])
def test_http_classification(status, mutation, cls):
    err = classify_http(status, '{"errors":"x"}', mutation=mutation)
    assert type(err) is cls and err.status == status


def test_http_429_carries_retry_after():
    assert classify_http(429, "", mutation=False, retry_after=3).retry_after == 3
    assert classify_http(429, "", mutation=False).retry_after == 2.0
    assert "Invalid API key" in classify_http(401, '{"errors":"[API] Invalid API key or access token"}',
                                              mutation=False).reason


def test_transport_exceptions():
    refused = requests.exceptions.ConnectionError(MaxRetryError(None, "/", NewConnectionError(None, "refused")))
    assert type(classify_exception(refused, mutation=True)) is RetriableError
    wrapped = TransportConnectionFailed("x")
    wrapped.__cause__ = requests.exceptions.ReadTimeout("slow")
    assert type(classify_exception(wrapped, mutation=True)) is AmbiguousError
    assert type(classify_exception(wrapped, mutation=False)) is RetriableError
    reset = requests.exceptions.ConnectionError("Connection aborted")
    assert type(classify_exception(reset, mutation=True)) is AmbiguousError
    status = TransportConnectionFailed("x")
    status.__cause__ = HttpStatus(401, '{"errors":"bad token"}', None, "req-1")
    err = classify_exception(status, mutation=False)
    assert type(err) is FatalError and "req-1" in err.reason
    assert type(classify_exception(TransportProtocolError("html"), mutation=True)) is AmbiguousError


def test_graphql_error_layers():
    throttled = classify_graphql_errors(
        [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
        {"cost": {"requestedQueryCost": 752, "actualQueryCost": None,
                  "throttleStatus": {"maximumAvailable": 2000, "currentlyAvailable": 141, "restoreRate": 100}}},
        mutation=True)
    assert type(throttled) is RetriableError and throttled.retry_after == 7
    denied = classify_graphql_errors([{"message": "Access denied for giftCards field.",
                                       "extensions": {"code": "ACCESS_DENIED", "requiredAccess": "`read_gift_cards`"}}],
                                     mutation=False)
    assert type(denied) is FatalError and "read_gift_cards" in denied.reason
    cost = classify_graphql_errors([{"message": "Query cost is 1066", "extensions": {"code": "MAX_COST_EXCEEDED"}}],
                                   mutation=False)
    assert type(cost) is FatalError and "bug" in cost.reason
    undefined = classify_graphql_errors([{"message": "Field 'x' doesn't exist", "extensions": {"code": "undefinedField"}}],
                                        mutation=False)
    assert type(undefined) is FatalError
    internal = classify_graphql_errors([{"message": "Internal error", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}],
                                       mutation=True)
    assert type(internal) is AmbiguousError


def test_throttle_wait_defaults():
    assert throttle_wait(None) == 1.0
    assert throttle_wait({"cost": {"requestedQueryCost": 10, "throttleStatus": {"currentlyAvailable": 50,
                                                                               "restoreRate": 10}}}) == 1.0


def test_documents_are_named_and_costed_under_the_limit():
    for name, doc in DOCUMENTS.items():
        assert f" {name}" in doc.split("{", 1)[0], name
        assert estimated_cost(name, first=10) <= 1000
    assert MUTATIONS <= set(DOCUMENTS)


def test_fall_forward_version_is_reported_once(caplog):
    hook = _version_watch("2026-07")
    response = requests.Response()
    response.headers["X-Shopify-API-Version"] = "2026-10"
    with caplog.at_level("WARNING", logger="giftsync.adapters.shopify"):
        hook(response)
        hook(response)
    assert caplog.text.count("2026-10") == 1
