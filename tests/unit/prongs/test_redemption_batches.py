"""Redemptions in batches (giftsync/prongs/redemptions.py): the Airtable requests per poll, one
card's redemptions in order, mixed batches, crash/resume, and a bulk request interleaved."""
from __future__ import annotations

import math
import threading
import time
from decimal import Decimal

from giftsync.domain.emails import Metric
from giftsync.domain.outcomes import RedemptionOutcome as O
from giftsync.errors import AmbiguousError, RetriableError
from giftsync.ports import FormTable

from .conftest import assert_ledger_adds_up, usd

R = FormTable.REDEMPTIONS
WRITES = {"update_forms": 1, "append_receipts": 0, "set_balances": 0, "save_cards": 0}


def airtable_requests(calls) -> int:
    """What the calls cost against the real adapter: a read is one request, a batched write
    one per 10 records (the stores table is cached by the adapter and not counted)."""
    total = 0
    for name, args in calls:
        if name == "stores":
            continue
        if name in WRITES:
            records = args[WRITES[name]]
            total += math.ceil(len(records) / 10)
        else:
            total += 1
    return total


def redemption_calls(world):
    return [(n, a) for n, a in world.book.calls
            if not (n == "update_forms" and a[0] is not R) and n not in ("pending_card_requests",
                                                                         "pending_balance_checks", "unnotified")]


def test_requests_per_poll(world):
    for n, limit in ((6, 6), (10, 6), (25, 14)):     # 1 list + 1 lookup + 4 × ⌈n/10⌉ writes
        rids = []
        for k in range(n):
            code, _, _ = world.card("50")
            rids.append(world.book.add_redemption(code, "5", world.store))
        world.book.calls.clear()
        done = world.prong.redemptions.run()
        assert done == n and all(world.form(R, r)["Status"] == "Done" for r in rids)
        assert all(world.form(R, r)["Notified"] is True for r in rids)
        calls = redemption_calls(world)
        names = [c[0] for c in calls]
        assert names.count("pending_redemptions") == 1 and names.count("cards_by_hashes") == 1
        assert names.count("update_forms") == 2           # the claim and the final write (Notified in it)
        assert names.count("append_receipts") == 1 and names.count("set_balances") == 1
        assert "card_by_hash" not in names
        cost = airtable_requests(calls)
        assert cost <= limit and cost / n <= 1.0, (n, cost)


def test_a_poll_of_one_costs_six_requests(world):
    code, _, _ = world.card("50")
    world.book.add_redemption(code, "5", world.store)
    world.book.calls.clear()
    world.prong.redemptions.run()
    assert airtable_requests(redemption_calls(world)) == 6


def test_mixed_batch_rejections_join_the_batched_writes(world):
    good1, s1, _ = world.card("50")
    good2, s2, _ = world.card("20")
    poor, s3, _ = world.card("3")
    closed = world.book.add_store("Closed", active=False)
    rids = {
        "good1": world.book.add_redemption(good1, "10", world.store),
        "bad_code": world.book.add_redemption("AB-1", "5", world.store),
        "bad_amount": world.book.add_redemption(good2, "abc", world.store),
        "not_found": world.book.add_redemption("ABCDEFGHJKMN2345", "5", world.store),
        "no_store": world.book.add_redemption(good2, "5", closed),
        "poor": world.book.add_redemption(poor, "5", world.store),
        "good2": world.book.add_redemption(good2, "7.50", world.store),
    }
    world.book.calls.clear()
    assert world.prong.redemptions.run() == 7
    expected = {"good1": O.REDEEMED, "bad_code": O.CODE_FORMAT, "bad_amount": O.INVALID_AMOUNT,
                "not_found": O.NOT_FOUND, "no_store": O.INVALID_STORE, "poor": O.INSUFFICIENT, "good2": O.REDEEMED}
    for key, outcome in expected.items():
        f = world.form(R, rids[key])
        assert f["Outcome"] == outcome.value and f["Notified"] is True, key
        assert f["Status"] == ("Done" if outcome is O.REDEEMED else "Rejected"), key
    writes = [a[1] for n, a in world.book.calls if n == "update_forms"]
    claim, final = writes
    assert set(claim) == {rids["good1"], rids["poor"], rids["good2"]}          # only what moves money
    assert set(final) == set(rids.values())
    [receipts] = [a[0] for n, a in world.book.calls if n == "append_receipts"]
    assert len(receipts) == 7
    assert world.ledger.count("debit") == 3 and world.ledger.count("find_by_code") == 1
    assert world.ledger.balance_of(s1.id) == usd("40") and world.ledger.balance_of(s2.id) == usd("12.50")
    assert len(world.events(Metric.STORE_REDEMPTION_PROCESSED)) == 7
    assert_ledger_adds_up(world)


def test_one_cards_redemptions_stay_in_order_others_overlap(world):
    cards = [world.card("100") for _ in range(3)]
    rids = []
    for round_ in range(3):
        for code, _, _ in cards:
            rids.append(world.book.add_redemption(code, str(round_ + 1), world.store))
    lock = threading.Lock()
    in_flight: dict[str, int] = {}
    peak = {"card": 0, "all": 0}
    original = world.ledger.debit

    def debit(card_id, amount, **kw):
        with lock:
            in_flight[card_id] = in_flight.get(card_id, 0) + 1
            peak["card"] = max(peak["card"], in_flight[card_id])
            peak["all"] = max(peak["all"], sum(in_flight.values()))
        time.sleep(0.03)
        try:
            return original(card_id, amount, **kw)
        finally:
            with lock:
                in_flight[card_id] -= 1
    world.ledger.debit = debit
    assert world.prong.redemptions.run() == 9
    assert peak["card"] == 1 and peak["all"] >= 2
    for code, shop, mirror in cards:
        notes = [t.note for t in world.ledger.transactions(shop.id)]
        mine = [r for r in rids if world.form(R, r)["Card"] == [mirror.record_id]]
        assert notes == [f"giftsync:{r}" for r in mine]            # in the order of the records
        assert world.ledger.balance_of(shop.id) == usd("94")
    [balances] = [a[0] for n, a in world.book.calls if n == "set_balances"]
    assert {rid: money for rid, (money, _) in balances.items()} == {m.record_id: usd("94") for _, _, m in cards}
    finals = [world.form(R, r)["Balance After"] for r in rids]
    assert finals == [Decimal("99")] * 3 + [Decimal("97")] * 3 + [Decimal("94")] * 3
    assert_ledger_adds_up(world)


def test_ambiguous_debit_applied_in_a_batch_is_not_sent_again(world):
    code, shop, _ = world.card("50")
    other, shop2, _ = world.card("50")
    r1 = world.book.add_redemption(code, "20", world.store)
    r2 = world.book.add_redemption(other, "5", world.store)
    r3 = world.book.add_redemption(code, "10", world.store)
    # r1's debit (r2's runs beside it on another worker): applied, but the answer lost; r3 follows on r1's card
    world.ledger.fail_next("debit", AmbiguousError("shopify", "read timeout"), applied=True,
                           when=lambda card_id, amount, note: note == f"giftsync:{r1}")
    world.prong.redemptions.run()
    assert [world.form(R, r)["Status"] for r in (r1, r2, r3)] == ["Done"] * 3
    assert world.ledger.count("debit") == 3 and len(world.ledger.transactions(shop.id)) == 2
    assert world.ledger.balance_of(shop.id) == usd("20") and world.ledger.balance_of(shop2.id) == usd("45")
    assert_ledger_adds_up(world)


def test_crash_after_the_emails_before_done_resumes_once(world):
    codes = [world.card("50") for _ in range(3)]
    rids = [world.book.add_redemption(c, "5", world.store) for c, _, _ in codes]
    original = world.book.update_forms
    state = {"failed": False}

    def update_forms(table, updates):
        if table is R and any(v.get("Status") == "Done" for v in updates.values()) and not state["failed"]:
            state["failed"] = True
            raise RetriableError("airtable", "killed before Done")
        return original(table, updates)
    world.book.update_forms = update_forms
    world.prong.redemptions.run()
    assert all(world.form(R, r)["Status"] == "Processing" for r in rids)
    assert len(world.events(Metric.STORE_REDEMPTION_PROCESSED)) == 3
    world.prong = world.new_prong()                                      # a restarted daemon
    world.prong.redemptions.run()
    assert all(world.form(R, r)["Status"] == "Done" and world.form(R, r)["Notified"] for r in rids)
    assert world.ledger.count("debit") == 3                                # read back, never sent again
    assert world.ledger.count("transactions") == 3
    ids = [e.unique_id for e in world.events(Metric.STORE_REDEMPTION_PROCESSED)]
    assert sorted(ids) == sorted(f"redemption:{r}:store" for r in rids)   # one email each
    assert len(world.messenger.dropped) == 3
    assert_ledger_adds_up(world)


def test_two_pollers_never_claim_the_same_record(world):
    code, shop, _ = world.card("50")
    rids = [world.book.add_redemption(code, "1", world.store) for _ in range(5)]
    original = world.ledger.debit

    def slow(card_id, amount, **kw):
        time.sleep(0.01)
        return original(card_id, amount, **kw)
    world.ledger.debit = slow
    threads = [threading.Thread(target=world.prong.redemptions.run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    world.prong.redemptions.run()
    assert all(world.form(R, r)["Status"] == "Done" for r in rids)
    assert len(world.ledger.transactions(shop.id)) == 5 and world.ledger.balance_of(shop.id) == usd("45")


def test_bulk_request_in_chunks_interleaved_with_redemptions(world):
    world.prong = world.new_prong(card_create_workers=3)
    code, shop, _ = world.card("50")
    rid = world.book.add_card_request(world.store, "10", 25, recipient_email="r@example.test")
    original = world.ledger.create_card
    arrivals = []
    lock = threading.Lock()

    def create_card(**kw):
        with lock:
            n = world.ledger.count("create_card")
            if n in (4, 14):
                arrivals.append(world.book.add_redemption(code, "1", world.store))
            world.clock.advance(0.7)
        return original(**kw)
    world.ledger.create_card = create_card
    report = world.run()
    f = world.form(FormTable.CARD_REQUESTS, rid)
    assert f["Status"] == "Done" and len(f["Cards"]) == 25 and report.redemptions == 2
    for red in arrivals:
        assert world.form(R, red)["Status"] == "Done"
    # three chunks: 10 + 10 + 5 cards, one Gift Cards save and one receipts write each
    saves = [a[0] for n, a in world.book.calls if n == "save_cards"][1:]   # [0]: the test card
    assert [len(s) for s in saves] == [10, 10, 5]
    request_receipts = [a[0] for n, a in world.book.calls if n == "append_receipts"
                        and any(r.startswith("issue:") for r in a[0])]
    # one row per card (the CRM outcome folded into the ISSUE row): 10 + 10 + 5 rows
    assert [len(r) for r in request_receipts] == [10, 10, 5]
    deliveries = [e.unique_id for e in world.events(Metric.GIFT_CARD_DELIVERED)]
    assert len(deliveries) == len(set(deliveries)) == 25
    writes = [(a[0], a[1]) for n, a in world.book.calls if n == "update_forms"]
    req_done = next(i for i, (t, u) in enumerate(writes) if t is FormTable.CARD_REQUESTS
                    and u.get(rid, {}).get("Status") == "Done")
    red_done = [i for i, (t, u) in enumerate(writes) if t is R and any(v.get("Status") == "Done" for v in u.values())]
    assert red_done and max(red_done) < req_done
    assert world.ledger.balance_of(shop.id) == usd("48") and len(world.ledger.all_cards()) == 26
    assert_ledger_adds_up(world)
