from __future__ import annotations

from datetime import date

import pytest

from giftsync.domain.codes import mask
from giftsync.domain.emails import Metric
from giftsync.domain.ledger import Activity
from giftsync.domain.outcomes import CheckOutcome
from giftsync.ports import FormTable

from .conftest import assert_ledger_adds_up, assert_no_whole_codes, usd

B = FormTable.BALANCE_CHECKS


def answers(world):
    return world.events(Metric.BALANCE_CHECK_ANSWERED)


def test_answer_goes_to_that_address_with_masked_code(world):
    code, shop, mirror = world.card("42.50")
    rid = world.book.add_balance_check(code.lower(), "Ask@Example.test")
    world.run()
    [ans] = answers(world)
    assert ans.email == "Ask@Example.test" and ans.unique_id == f"check:{rid}:answer"
    assert ans.properties["Card"] == mask(code[-4:]) and ans.properties["Balance"] == "42.50"
    f = world.form(B, rid)
    assert (f["Status"], f["Outcome"], f["Code"], f["Notified"]) == ("Done", CheckOutcome.ANSWERED.value,
                                                                      mask(code[-4:]), True)
    r = world.book.receipts[f"check:{rid}"]
    assert r.activity is Activity.CHECK and r.card_record_id == mirror.record_id and r.balance_after == usd("42.50")
    assert_no_whole_codes(world, [code])


def test_uniform_answer_for_unknown_disabled_expired_mistyped_and_throttled(world):
    disabled, _, _ = world.card("10", enabled=False)
    expired, _, _ = world.card("10", expires_on=date(2024, 1, 1))
    native_disabled, _, _ = world.card("10", enabled=False, mirrored=False)
    good, _, _ = world.card("10")
    typed = ["UNKNOWNCODE23456", disabled, expired, native_disabled, "12-ab", "ÄÖÜÄÖÜÄÖÜ"]
    rids = [world.book.add_balance_check(c, f"c{i}@example.test") for i, c in enumerate(typed)]
    for _ in range(world.options.check_limit):
        world.book.add_balance_check(good, "greedy@example.test")
    throttled = world.book.add_balance_check(good, "greedy@example.test")
    world.run()
    by_rid = {e.unique_id.split(":")[1]: e for e in answers(world)}
    uniform = [by_rid[r] for r in rids + [throttled]]
    assert all(e.properties == uniform[0].properties for e in uniform)
    assert uniform[0].properties["Outcome"] == CheckOutcome.NO_MATCH.value
    assert set(uniform[0].properties) == set(answers(world)[-2].properties)     # same shape as a real answer
    assert world.form(B, throttled)["Outcome"] == CheckOutcome.THROTTLED.value
    assert world.book.receipts[f"check:{throttled}"].outcome == CheckOutcome.THROTTLED.value
    assert world.form(B, rids[4])["Code"] == "(invalid code removed)"
    assert_no_whole_codes(world, [disabled, expired, native_disabled, good, "UNKNOWNCODE23456"])


def test_throttle_per_code_across_emails(world):
    code, _, _ = world.card("10")
    rids = [world.book.add_balance_check(code, f"p{i}@example.test") for i in range(7)]
    world.run()
    outcomes = [world.form(B, r)["Outcome"] for r in rids]
    assert outcomes == [CheckOutcome.ANSWERED.value] * 5 + [CheckOutcome.THROTTLED.value] * 2
    assert all(f"check:{r}" in world.book.receipts for r in rids)


def test_throttle_window_passes_and_survives_a_restart(world):
    code, _, _ = world.card("10")
    for _ in range(5):
        world.book.add_balance_check(code, "me@example.test")
    world.run()
    world.prong = world.new_prong()                      # restart: the throttle is seeded from the base
    world.clock.advance(60)
    rid = world.book.add_balance_check(code, "me@example.test")
    world.run()
    assert world.form(B, rid)["Outcome"] == CheckOutcome.THROTTLED.value
    world.clock.advance(3600)
    rid = world.book.add_balance_check(code, "me@example.test")
    world.run()
    assert world.form(B, rid)["Outcome"] == CheckOutcome.ANSWERED.value


def test_invalid_email_gets_no_answer(world):
    code, _, _ = world.card("10")
    rid = world.book.add_balance_check(code, "nobody")
    world.run()
    f = world.form(B, rid)
    assert (f["Status"], f["Outcome"], f["Code"]) == ("Rejected", CheckOutcome.INVALID_EMAIL.value, mask(code[-4:]))
    assert answers(world) == [] and f"check:{rid}" in world.book.receipts


def test_native_card_is_mirrored_on_check(world):
    code, shop, _ = world.card("33", mirrored=False)
    world.book.add_balance_check(code, "me@example.test")
    world.run()
    assert world.book.card_by_shopify_id(shop.id).code_hash == world.hasher.hash(code)
    assert answers(world)[0].properties["Balance"] == "33.00"


def test_drifted_mirror_is_corrected_with_an_adjust_receipt(world):
    code, shop, mirror = world.card("50")
    world.ledger.adjust(shop.id, "-20", note="admin")
    world.book.add_balance_check(code, "me@example.test")
    world.run()
    assert answers(world)[0].properties["Balance"] == "30.00"     # the answer is Shopify's at once ...
    assert not [r for r in world.book.all_receipts() if r.activity is Activity.ADJUST]
    world.clock.advance(world.options.order_overlap_seconds + 1)  # ... the ledger waits for an order's claim
    world.book.add_balance_check(code, "me@example.test")
    world.run()
    [r] = [r for r in world.book.all_receipts() if r.activity is Activity.ADJUST]
    assert r.amount == usd("-20") and r.balance_after == usd("30")
    assert world.book.card(mirror.record_id).balance == usd("30")
    assert_ledger_adds_up(world)


def test_a_balance_check_right_after_an_online_payment_counts_it_once(world):
    """The search-lag race through a balance check: the order's REDEEM is the only record."""
    from giftsync.adapters.fakes import FakeShopifyOrders
    from giftsync.prongs.online import OnlineOptions
    from giftsync.prongs.shopify_redemptions import ShopifyRedemptions
    code, shop, mirror = world.card("50")
    orders = FakeShopifyOrders(world.ledger, world.clock)
    orders.purchase([{"sku": "MUG", "price": "12.00"}], email="me@example.test",
                    gift_card_payments=[(shop.id, "12.00")])
    world.book.add_balance_check(code, "me@example.test")
    world.run()                                                 # before the redemption prong saw the order
    assert answers(world)[0].properties["Balance"] == "38.00"
    ShopifyRedemptions(world.book, world.ledger, orders, world.messenger, world.clock, world.hasher,
                       world.options, OnlineOptions(), walk=False).run_once()
    world.clock.advance(world.options.order_overlap_seconds + 1)
    world.book.add_balance_check(code, "me@example.test")
    world.run()
    moves = [r for r in world.book.receipts_for_card(mirror.record_id) if r.amount is not None]
    assert [r.activity for r in moves] == [Activity.REDEEM] and moves[0].amount == usd("-12.00")
    assert_ledger_adds_up(world)
