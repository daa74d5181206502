"""Unit tests of the Shopify twin's pieces: search syntax, cost rules, Decimal formatting, cursors."""
from __future__ import annotations

import pytest
from graphql import parse

from giftsync.sandbox.shopify import search as S
from giftsync.sandbox.shopify.app import load_schema
from giftsync.sandbox.shopify.cost import CostCalculator, LeakyBucket, list_factor
from giftsync.sandbox.shopify.paging import decode_cursor, encode_cursor
from giftsync.sandbox.shopify.values import fmt_decimal, format_limit, parse_datetime


@pytest.mark.parametrize("value,text", [("5.00", "5.0"), ("41.01", "41.01"), ("3000", "3000.0"), (-3, "-3.0"),
                                        ("-0.01", "-0.01"), ("0", "0.0"), ("1E+3", "1000.0")])
def test_decimal_output(value, text):
    assert fmt_decimal(value) == text


def test_limit_message_and_datetimes():
    assert format_limit("3000", "CAD") == "$3,000.00 CAD"
    assert parse_datetime("2024-09-09T12:48:33-04:00").strftime("%Y-%m-%dT%H:%M:%SZ") == "2024-09-09T16:48:33Z"


RECORDS = [{"name": "a", "tags": ["x", "y"], "n": 1}, {"name": "b", "tags": ["y"], "n": 2},
           {"name": "c", "tags": [], "n": 3}]
FIELDS = {"tag": lambda r, t: (bool(r["tags"]) if t.exists else t.value.lower() in r["tags"]),
          "n": lambda r, t: S.compare(r["n"], t.op, int(t.value))}


def run(q):
    res = S.compile_query(q, FIELDS, lambda r, t: t.value.lower() in r["name"])
    return [r["name"] for r in RECORDS if res.matches(r)], res.warnings


@pytest.mark.parametrize("query,names", [
    ("tag:y", ["a", "b"]), ("-tag:x", ["b", "c"]), ("NOT tag:x", ["b", "c"]), ("tag:y AND -tag:x", ["b"]),
    ("tag:x OR n:>=3", ["a", "c"]), ("(tag:x OR tag:y) n:<2", ["a"]), ("tag:*", ["a", "b"]), ("-tag:*", ["c"]),
    ("b", ["b"]), ("'b'", ["b"]), ("n:<=2 AND", ["a", "b"]), ("", ["a", "b", "c"]),
])
def test_search_syntax(query, names):
    assert run(query)[0] == names


def test_unknown_fields_are_dropped_with_a_warning():
    names, warnings = run("tag:y bogus:1")
    assert names == ["a", "b"]
    assert warnings == [{"field": "bogus", "message": "Invalid search field for this query.", "code": "invalid_field"}]
    assert run("-bogus:1")[0] == ["a", "b", "c"]
    node = S.parse("id:123 AND updated_at:>=2026-07-14")
    assert S.to_parsed(node) == {"and": [{"field": "updated_at", "range_gte": "2026-07-14"},
                                         {"field": "id", "match_all": "123"}]}


def test_quoted_values_and_escapes():
    t = S.parse("created_at:>'2025-01-01T00:00:00Z'").term
    assert (t.field, t.op, t.value) == ("created_at", ">", "2025-01-01T00:00:00Z")
    t = S.parse(r'note:"a b\"c"').term
    assert t.value == 'a b"c'
    t = S.parse("tag:gift*").term
    assert t.prefix and t.value == "gift"


def cost(query, variables=None):
    doc = parse(query)
    return CostCalculator(load_schema(), {}, variables).requested(doc.definitions[0])


def test_cost_rules_match_the_captured_figures():
    assert [list_factor(n) for n in (1, 2, 3, 5, 10, 50, 250)] == [1, 1, 2, 3, 4, 6, 8]
    assert cost("{ giftCardConfiguration { issueLimit { amount } } }") == 1
    assert cost("{ giftCard(id: 1) { id customer { id } recipientAttributes { recipient { id } } "
                "transactions(first: 5) { nodes { id amount { amount } } pageInfo { hasNextPage } } } }") == 9
    assert cost("{ giftCards(first: 2) { nodes { id } edges { cursor node { id } } pageInfo { endCursor } } "
                "giftCardsCount { count } }") == 14
    assert cost("mutation { giftCardCreate(input: {initialValue: 1}) { giftCard { id customer { id } "
                "recipientAttributes { recipient { id } } } giftCardCode userErrors { code } } }") == 13
    assert cost("mutation($id: ID!) { giftCardDebit(id: $id, debitInput: {debitAmount: {amount: 1, "
                "currencyCode: USD}}) { giftCardDebitTransaction { id giftCard { id } } userErrors { code } } }") == 11
    assert cost("{ a: orders(first: 10) { nodes { email totalPriceSet { shopMoney { amount } } } } "
                "b: orders(first: 1) { nodes { id } } }") == 9
    assert cost("query($n: Int) { giftCards(first: $n) { nodes { id } } }", {"n": 10}) == 6


def test_leaky_bucket_refills_and_refunds():
    now = [0.0]
    b = LeakyBucket(100, 10, clock=lambda: now[0])
    assert b.take(80) and not b.take(30)
    now[0] += 1.0
    assert b.take(30)
    b.refund(1000)
    assert b.status() == {"maximumAvailable": 100, "currentlyAvailable": 100, "restoreRate": 10}


def test_cursors_round_trip():
    c = encode_cursor(663920607538, 663920607538)
    assert c == "eyJsYXN0X2lkIjo2NjM5MjA2MDc1MzgsImxhc3RfdmFsdWUiOjY2MzkyMDYwNzUzOH0="
    assert decode_cursor(c) == (663920607538, 663920607538)
    assert decode_cursor("not a cursor") is None
