from __future__ import annotations

from decimal import Decimal

import pytest

from giftsync.adapters.fakes import FakeGiftCardLedger
from giftsync.domain.codes import mask
from giftsync.domain.emails import Metric
from giftsync.domain.ledger import Activity
from giftsync.errors import AmbiguousError, RetriableError
from giftsync.ports import FormTable
from giftsync.prongs import crm

from .conftest import ADMIN, assert_ledger_adds_up, assert_no_whole_codes, usd

Q = FormTable.CARD_REQUESTS


def delivered_codes(world, rid):
    return {e.unique_id: e.properties["Code"] for e in world.events(Metric.GIFT_CARD_DELIVERED)
            if e.unique_id.startswith(f"request:{rid}:")}


def test_digital_request_not_gift(world):
    rid = world.book.add_card_request(world.store, "25.00", 3, kind="Digital", recipient_name="Rita Reed",
                                      recipient_email="rita@example.test", staff="Ann")
    world.run()
    f = world.form(Q, rid)
    assert f["Status"] == "Done" and f["Outcome"] == "Cards issued" and f["Notified"] is True
    assert f["Attempt"].startswith("done:") and len(f["Cards"]) == 3
    codes = delivered_codes(world, rid)
    assert len(codes) == 3 and len(set(codes.values())) == 3
    for i, cid in enumerate(f["Cards"]):
        card = world.book.cards[cid]
        code = codes[f"request:{rid}:deliver:{i}"]
        assert card.code_hash == world.hasher.hash(code) and card.last4 == code[-4:]
        assert card.balance == usd("25.00") and card.source_record == rid and card.store_record_id == world.store
        assert world.ledger.code_of(card.shopify_id) == code
        assert world.book.receipts[f"issue:{rid}:{i}"].balance_after == usd("25.00")
    for e in world.events(Metric.GIFT_CARD_DELIVERED):
        assert e.carries_code and e.email == "rita@example.test"
    crm = world.events(Metric.GIFT_CARD_ISSUED)
    assert len(crm) == 3 and {e.email for e in crm} == {"rita@example.test"}
    assert crm[0].value == Decimal("25.00") and crm[0].value_currency == "USD"
    [store_mail] = world.events(Metric.STORE_REQUEST_PROCESSED)
    assert store_mail.email == "main@shop.test" and len(store_mail.properties["Cards"]) == 3
    assert world.events(Metric.PURCHASE_CONFIRMED) == []
    assert_ledger_adds_up(world)
    assert_no_whole_codes(world, codes.values())


def test_delivery_happens_before_done(world):
    rid = world.book.add_card_request(world.store, "10", 2, recipient_email="r@example.test")
    seen = []
    original = world.messenger.send

    # record the request's status at every delivery (the code must be sent while Processing)
    def send(event):
        if event.metric is Metric.GIFT_CARD_DELIVERED:
            seen.append(world.form(Q, rid).get("Status"))
        return original(event)
    world.messenger.send = send
    world.run()
    assert seen == ["Processing", "Processing"]


def test_gift_request_confirms_to_purchaser(world):
    rid = world.book.add_card_request(world.store, "40", 1, recipient_name="Kim", recipient_email="kim@example.test",
                                      purchaser_name="Pat Buyer", purchaser_email="pat@example.test", is_gift=True,
                                      message="Happy birthday")
    world.run()
    [conf] = world.events(Metric.PURCHASE_CONFIRMED)
    assert conf.email == "pat@example.test" and conf.properties["Recipient Email"] == "kim@example.test"
    assert "Code" not in conf.properties
    [crm] = world.events(Metric.GIFT_CARD_ISSUED)
    assert crm.email == "pat@example.test" and crm.properties["Identity"] == "purchaser"
    assert world.form(Q, rid)["Status"] == "Done"


def test_physical_request_uses_serials_and_masks_them(world):
    serials = ["PHYS1234ABCD", "PHYS5678EFGH"]
    rid = world.book.add_card_request(world.store, "30", 2, kind="Physical", serials="phys-1234-abcd\nPHYS 5678 EFGH")
    world.run()
    f = world.form(Q, rid)
    assert f["Status"] == "Done"
    assert f["Physical Serials"] == f"{mask('ABCD')}\n{mask('EFGH')}"
    for i, serial in enumerate(serials):
        card = world.book.cards[f["Cards"][i]]
        assert world.ledger.code_of(card.shopify_id) == serial and card.kind.value == "Physical"
        assert world.book.receipts[f"activate:{rid}:{i}"].activity is Activity.ACTIVATE
    assert world.events(Metric.GIFT_CARD_DELIVERED) == [] and world.events(Metric.GIFT_CARD_ACTIVATED) == []
    # no purchaser and no recipient: the CRM outcome on each card's ACTIVATE row (one row per
    # card, no CRM row of its own) and an alert
    assert [r for r in world.book.all_receipts() if r.activity is Activity.CRM] == []
    for i in range(2):
        row = world.book.receipts[f"activate:{rid}:{i}"]
        assert row.extra["crm"]["outcome"] == "No customer identity"
        assert "CRM: No customer identity" in row.details
    assert len([e for e in world.events(Metric.ALERT) if e.email == ADMIN]) == 2
    assert_no_whole_codes(world, serials)


def test_physical_with_recipient_gets_activation_notice(world):
    rid = world.book.add_card_request(world.store, "30", 1, kind="Physical", serials="SERIAL888888",
                                      recipient_email="r@example.test")
    world.run()
    [act] = world.events(Metric.GIFT_CARD_ACTIVATED)
    assert act.email == "r@example.test" and not act.carries_code and "Code" not in act.properties
    assert world.form(Q, rid)["Status"] == "Done"


@pytest.mark.parametrize("fields,reason", [
    (dict(amount="600"), "maximum"),
    (dict(amount="0"), "greater than zero"),
    (dict(amount="abc"), "plain number"),
    (dict(quantity=0), "between 1 and"),
    (dict(quantity=41), "between 1 and"),
    (dict(quantity="2.5"), "whole number"),
    (dict(quantity=2.5), "whole number"),
    (dict(recipient_email="not-an-email"), "Recipient Email"),
    (dict(recipient_email=""), "Recipient Email"),
    (dict(is_gift=True), "Purchaser Email"),
    (dict(purchaser_email="x@"), "Purchaser Email"),
    (dict(kind="Physical", serials="GOODSERIAL1"), "one serial per card"),
    (dict(kind="Physical", serials="SHORT1\nGOODSERIAL2"), "Serial 1"),
    (dict(kind="Physical", serials="GOODSERIAL1\ngoodserial1"), "twice"),
    (dict(store=None), "store"),
])
def test_invalid_requests_are_rejected(world, fields, reason):
    base = dict(amount="20", quantity=2, recipient_email="r@example.test", store=world.store)
    base.update(fields)
    store = base.pop("store")
    amount, quantity = base.pop("amount"), base.pop("quantity")
    rid = world.book.add_card_request(store, amount, quantity, **base)
    world.run()
    f = world.form(Q, rid)
    assert f["Status"] == "Rejected" and reason.lower() in f["Reason"].lower()
    assert world.book.receipts[f"reject:{rid}"].activity is Activity.REJECT
    assert world.ledger.count("create_card") == 0 and world.book.cards == {}
    assert world.events(Metric.STORE_REQUEST_PROCESSED)[0].properties["Outcome"] == "Rejected"
    assert "GOODSERIAL" not in repr(f)


def test_serial_already_used_is_rejected(world):
    code, _, _ = world.card("10", code="USEDSERIAL99")
    rid = world.book.add_card_request(world.store, "20", 1, kind="Physical", serials="usedserial99")
    world.run()
    assert "already used" in world.form(Q, rid)["Reason"]
    code2, _, _ = world.card("10", code="SHOPONLY9999", mirrored=False)
    rid2 = world.book.add_card_request(world.store, "20", 1, kind="Physical", serials="SHOPONLY9999")
    world.run()
    assert "already used" in world.form(Q, rid2)["Reason"]
    assert world.ledger.count("create_card") == 0


def test_crash_mid_request_resumes_without_duplicates(world):
    world.prong = world.new_prong(card_create_workers=1)   # one create at a time: the test counts calls
    rid = world.book.add_card_request(world.store, "15", 5, recipient_email="r@example.test")
    original = world.ledger.create_card

    def create_card(**kw):
        result = original(**kw)
        if world.ledger.count("create_card") == 3:
            raise RuntimeError("killed")       # applied in Shopify, the process died before hearing back
        return result
    world.ledger.create_card = create_card
    world.run()
    f = world.form(Q, rid)
    assert f["Status"] == "Processing" and f["Attempt"].startswith("nonce:")
    assert len(world.ledger.all_cards()) == 3 and len(world.book.cards) == 2
    first = delivered_codes(world, rid)
    assert len(first) == 2
    del world.ledger.create_card
    world.prong = world.new_prong()              # a restarted daemon
    world.run()
    f = world.form(Q, rid)
    assert f["Status"] == "Done" and len(f["Cards"]) == 5
    assert len(world.ledger.all_cards()) == 5 and len(world.book.cards) == 5
    codes = delivered_codes(world, rid)
    assert len(codes) == 5 and all(codes[k] == v for k, v in first.items())
    deliveries = [e.unique_id for e in world.messenger.sent if e.metric is Metric.GIFT_CARD_DELIVERED]
    assert len(deliveries) == len(set(deliveries)) == 5
    assert len(world.events(Metric.GIFT_CARD_ISSUED)) == 5
    # every card's CRM event is on record once: folded into its ISSUE row, or (its opening written
    # before the crash, the event relayed again on resume) a CRM row of its own
    receipts = world.book.all_receipts()
    for card in world.book.cards.values():
        mine = [r for r in receipts if r.card_record_id == card.record_id]
        assert crm.issued_link(mine, card.shopify_id) is not None
        assert len([r for r in mine if r.activity is Activity.CRM or "crm" in r.extra]) == 1
    assert_ledger_adds_up(world)
    assert_no_whole_codes(world, codes.values())


def test_a_chunk_writes_one_receipt_row_per_card_with_its_crm_outcome(world):
    """The bulk pace rests on it: ten cards, one receipts request (10 rows), not two."""
    rid = world.book.add_card_request(world.store, "20", 10, recipient_email="r@example.test",
                                      purchaser_email="buyer@example.test")
    world.run()
    assert world.form(Q, rid)["Status"] == "Done"
    writes = [args[0] for name, args in world.book.calls if name == "append_receipts"]   # receipt ids
    assert [ids for ids in writes if any(i.startswith("issue:") for i in ids)] == [[f"issue:{rid}:{i}" for i in range(10)]]
    assert not [i for ids in writes for i in ids if i.startswith("crm:")]
    issued = [world.book.receipts[f"issue:{rid}:{i}"] for i in range(10)]
    for row in issued:
        card = world.book.cards[row.card_record_id]
        assert row.extra["crm"] == {"outcome": "Sent", "receipt": f"crm:issued:{card.shopify_id}",
                                    "event": f"crm:issued:{card.shopify_id}", "identity": "buyer@example.test",
                                    "identity_role": "purchaser"}
        assert row.amount == usd("20") and "CRM: Gift Card Issued sent on the purchaser's profile" in row.details
        link = crm.issued_link(world.book.all_receipts(), card.shopify_id)
        assert (link.outcome, link.identity, link.identity_role) == ("Sent", "buyer@example.test", "purchaser")
    assert len(world.events(Metric.GIFT_CARD_ISSUED)) == 10
    assert_ledger_adds_up(world)


def test_ambiguous_create_is_adopted(world):
    rid = world.book.add_card_request(world.store, "15", 2, recipient_email="r@example.test")
    # the first card's create (the two are created concurrently): made, but the answer lost
    world.ledger.fail_next("create_card", AmbiguousError("shopify", "timeout"), applied=True,
                           when=lambda last4, amount, note: note == f"giftsync:{rid}:0")
    world.run()
    assert world.form(Q, rid)["Status"] == "Done"
    assert len(world.ledger.all_cards()) == 2 and world.ledger.count("create_card") == 2


def test_ambiguous_create_not_applied_is_sent_again(world):
    rid = world.book.add_card_request(world.store, "15", 1, recipient_email="r@example.test")
    world.ledger.fail_next("create_card", AmbiguousError("shopify", "reset"), applied=False)
    world.run()
    assert world.form(Q, rid)["Status"] == "Done"
    assert len(world.ledger.all_cards()) == 1 and world.ledger.count("create_card") == 2


def test_crash_between_create_and_mirror(world):
    rid = world.book.add_card_request(world.store, "15", 2, recipient_email="r@example.test")
    world.book.fail_next("save_cards", RetriableError("airtable", "503"))
    world.run()
    # both cards of the chunk were made before its one (failed) Gift Cards save
    assert world.form(Q, rid)["Status"] == "Processing" and len(world.ledger.all_cards()) == 2
    assert len(world.book.cards) == 0 and not world.events(Metric.GIFT_CARD_DELIVERED)
    world.run()                                  # resumed: adopted by code and note, none created twice
    assert world.form(Q, rid)["Status"] == "Done"
    assert len(world.ledger.all_cards()) == 2 and len(world.book.cards) == 2
    assert world.ledger.count("create_card") == 2


def test_physical_card_mirrored_by_a_shop_while_its_save_failed_is_adopted_on_resume(world):
    """The card is made in Shopify but the request's Gift Cards save fails; before the resume the
    serial is redeemed in a shop, which mirrors the card as one it does not know (found by
    the fault soak). The resume recognises the card by its Shopify note and adopts the row;
    the shop's mirror opened the ledger, so the request's receipt adds no amount: the debit
    counts once and the request ends Done (it used to stay in Processing with an alert on
    every cycle: "Serial 1 is already used by a card")."""
    rid = world.book.add_card_request(world.store, "20", 1, kind="Physical", serials="SOAKSERIAL01")
    world.book.fail_next("save_cards", RetriableError("airtable", "429"))
    world.run()
    assert world.form(Q, rid)["Status"] == "Processing" and len(world.book.cards) == 0
    world.clock.advance(30)
    red = world.book.add_redemption("soakserial01", "5.00", world.store)
    world.run()
    assert world.form(FormTable.REDEMPTIONS, red)["Status"] == "Done"
    f = world.form(Q, rid)
    assert f["Status"] == "Done", f
    [card] = world.book.cards.values()
    assert card.source_record == rid and card.kind.value == "Physical" and card.balance == usd("15.00")
    assert world.ledger.count("create_card") == 1
    assert not [e for e in world.events(Metric.ALERT) if "stuck" in str(e.properties)]
    # the shop's MIRROR receipt opened the card's ledger (20.00, before the debit); the request's
    # ACTIVATE receipt, written after, carries no amount, or the 20.00 would count twice
    [mirror] = [r for r in world.book.receipts.values() if r.activity is Activity.MIRROR]
    assert mirror.balance_after == usd("20.00") and mirror.time <= world.book.receipts[f"redeem:{red}"].time
    activate = world.book.receipts[f"activate:{rid}:0"]
    assert activate.amount is None and activate.balance_after == usd("15.00")
    assert_ledger_adds_up(world)


def test_bulk_request_serves_redemptions_between_cards(world):
    world.prong = world.new_prong(card_create_workers=1)   # one create at a time: the test counts calls
    code, shop, _ = world.card("50")
    rid = world.book.add_card_request(world.store, "10", 30, recipient_email="r@example.test")
    original = world.ledger.create_card
    arrivals = {}

    def create_card(**kw):
        n = world.ledger.count("create_card")
        if n in (5, 17):                        # customers arrive at the counter mid-request
            arrivals[n] = world.book.add_redemption(code, "1", world.store)
        world.clock.advance(2.0)                # each card takes two seconds
        return original(**kw)
    world.ledger.create_card = create_card
    report = world.run()
    for n, red in arrivals.items():
        f = world.form(FormTable.REDEMPTIONS, red)
        assert f["Status"] == "Done"
        waited = (f["Processed At"] - f["_created"]).total_seconds()
        assert waited <= world.options.redemption_poll_seconds + 2.0   # at most one card's work past the poll
    # each redemption was finished while the request was still Processing
    writes = [(args[0], args[1]) for name, args in world.book.calls if name == "update_forms"]
    req_done = next(i for i, (t, u) in enumerate(writes) if t is Q and u.get(rid, {}).get("Status") == "Done")
    red_done = [i for i, (t, u) in enumerate(writes) if t is FormTable.REDEMPTIONS
                and any(v.get("Status") == "Done" for v in u.values())]
    assert len(red_done) == 2 and max(red_done) < req_done
    assert report.redemptions == 2 and report.interleaved_polls >= 2
    assert world.form(Q, rid)["Status"] == "Done" and len(world.ledger.all_cards()) == 31
    assert world.ledger.balance_of(shop.id) == usd("48")


def test_delivery_failure_keeps_request_processing_then_completes(world):
    from giftsync.errors import RetriableError as RE
    rid = world.book.add_card_request(world.store, "15", 2, recipient_email="r@example.test")
    # the first card's delivery fails 3 times, whichever thread sends it (deliveries are concurrent)
    world.messenger.fail_next("send", RE("klaviyo", "503"), times=3,
                              when=lambda e: e.unique_id == f"request:{rid}:deliver:0")
    world.run()
    f = world.form(Q, rid)
    assert f["Status"] == "Processing" and f["Attempt"].startswith("nonce:")
    failed = [r for r in world.book.all_receipts() if r.activity is Activity.EMAIL_FAILED]
    assert len(failed) == 1 and failed[0].correlation_id == f"request:{rid}:deliver:0"
    assert world.events(Metric.ALERT)
    world.run()
    f = world.form(Q, rid)
    assert f["Status"] == "Done" and len(world.ledger.all_cards()) == 2
    assert len(world.events(Metric.GIFT_CARD_DELIVERED)) == 2


def test_serial_taken_mid_request_fails_and_keeps_issued_cards(world):
    world.prong = world.new_prong(card_create_workers=1)   # one create at a time: the test counts calls
    rid = world.book.add_card_request(world.store, "20", 2, kind="Physical", serials="RACESERIAL01\nRACESERIAL02")
    original = world.ledger.create_card

    def create_card(**kw):
        if world.ledger.count("create_card") == 1:
            world.ledger.add_card("RACESERIAL02", "5", note="someone else")   # activated elsewhere meanwhile
        return original(**kw)
    world.ledger.create_card = create_card
    world.run()
    f = world.form(Q, rid)
    assert (f["Status"], f["Outcome"]) == ("Rejected", "Failed") and len(f["Cards"]) == 1
    assert "1 card(s) issued" in f["Reason"] and f["Attempt"].startswith("done:")
    assert any("Card request failed" == e.properties.get("Subject") for e in world.events(Metric.ALERT))
    assert_no_whole_codes(world, ["RACESERIAL01", "RACESERIAL02"])


def test_resumed_request_that_no_longer_validates_is_left_with_an_alert(world):
    rid = world.book.add_card_request(world.store, "20", 1, recipient_email="r@example.test")
    world.book.update_forms(Q, {rid: {"Status": "Processing", "Attempt": "nonce:abc"}})
    world.book.store_rows[world.store].active = False
    world.run()
    assert world.form(Q, rid)["Status"] == "Processing"
    assert world.events(Metric.ALERT) and world.ledger.count("create_card") == 0


def test_error_log_masks_derived_codes(world, caplog):
    rid = world.book.add_card_request(world.store, "15", 1, recipient_email="r@example.test")
    original = world.ledger.create_card

    def create_card(**kw):
        raise RuntimeError(f"GraphQL error for code {kw['code']}")
    world.ledger.create_card = create_card
    with caplog.at_level("DEBUG", logger="giftsync"):
        world.run()
    del world.ledger.create_card
    world.run()
    [code] = delivered_codes(world, rid).values()
    assert "GraphQL error" in caplog.text and code not in caplog.text.upper()


def test_chunk_writes_overlap_the_next_chunks_creates(world):
    """Chunk k's Gift Cards save waits until chunk k+1's creates have begun: only possible when
    the writes run beside the creates. At most one chunk's writes are outstanding."""
    import threading
    world.prong = world.new_prong(card_create_workers=1, card_chunk=10)
    rid = world.book.add_card_request(world.store, "10", 30, recipient_email="r@example.test")
    next_chunk_started = {10: threading.Event(), 20: threading.Event()}
    trace = []
    create, save, append = world.ledger.create_card, world.book.save_cards, world.book.append_receipts

    def create_card(**kw):
        n = world.ledger.count("create_card")
        if n in next_chunk_started:
            next_chunk_started[n].set()
        trace.append("create")
        return create(**kw)

    def save_cards(cards):
        first = len(world.book.cards)           # 0, 10, 20: the chunk being saved
        trace.append("save")
        if first + 10 in next_chunk_started:    # not the last chunk: its writes run beside the next creates
            assert next_chunk_started[first + 10].wait(10), "writes did not overlap the next chunk's creates"
        return save(cards)

    def append_receipts(rows):
        trace.append("receipts")
        return append(rows)
    world.ledger.create_card, world.book.save_cards, world.book.append_receipts = create_card, save_cards, append_receipts
    world.run()
    f = world.form(Q, rid)
    assert f["Status"] == "Done" and len(f["Cards"]) == 30 and world.ledger.count("create_card") == 30
    writes = [t for t in trace if t != "create"]
    # one save and one receipts write per chunk, in order: never two chunks' writes at once
    assert writes[:6] == ["save", "receipts"] * 3
    assert len(world.events(Metric.GIFT_CARD_DELIVERED)) == 30
    deliveries = [e.unique_id for e in world.events(Metric.GIFT_CARD_DELIVERED)]
    assert len(set(deliveries)) == 30


def test_pipelined_chunk_write_error_keeps_request_processing_then_resumes(world):
    from giftsync.errors import RetriableError as RE
    world.prong = world.new_prong(card_create_workers=1, card_chunk=5)
    rid = world.book.add_card_request(world.store, "10", 15, recipient_email="r@example.test")
    world.book.fail_next("append_receipts", RE("airtable", "503"),           # chunk 1's receipts write (the
                         when=lambda ids: f"issue:{rid}:0" in ids)           # writer thread's, beside chunk 2)
    world.run()
    f = world.form(Q, rid)
    assert f["Status"] == "Processing" and "Notified" not in f or not f.get("Notified")
    assert world.ledger.count("create_card") == 10       # chunk 2 was created beside chunk 1's writes
    assert len(world.book.cards) == 10                   # … and mirrored before the error was raised
    assert not world.events(Metric.STORE_REQUEST_PROCESSED)
    world.run()
    f = world.form(Q, rid)
    assert f["Status"] == "Done" and len(f["Cards"]) == 15
    assert len(world.ledger.all_cards()) == 15 and len(world.book.cards) == 15
    assert {r.receipt_id for r in world.book.all_receipts() if r.receipt_id.startswith("issue:")} == \
        {f"issue:{rid}:{i}" for i in range(15)}


def test_stop_between_pipelined_chunks_waits_for_the_writes(world):
    world.prong = world.new_prong(card_create_workers=1, card_chunk=5)
    rid = world.book.add_card_request(world.store, "10", 15, recipient_email="r@example.test")
    saves = []
    original = world.book.save_cards

    def save_cards(cards):
        saves.append(len(cards))
        return original(cards)
    world.book.save_cards = save_cards
    calls = {"n": 0}

    def stop():
        calls["n"] += 1
        return world.ledger.count("create_card") >= 10     # stop once two chunks are made
    world.prong.stop = stop
    world.run()
    f = world.form(Q, rid)
    assert f["Status"] == "Processing"
    assert world.ledger.count("create_card") == 10 and saves == [5, 5] and len(world.book.cards) == 10
    world.prong.stop = lambda: False
    world.run()
    assert world.form(Q, rid)["Status"] == "Done" and len(world.ledger.all_cards()) == 15
