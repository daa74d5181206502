"""The invariants checker catches what it is for (a clean world passes; each break is named)."""
from __future__ import annotations

import copy

from giftsync.verify.invariants import Snapshot, check

CODE = "ABCDEFGHJKMNPQRS"
CARD = "gid://shopify/GiftCard/1"


def world() -> Snapshot:
    rid = "recRedemption0001"
    return Snapshot(
        tables={
            "Gift Cards": [{"id": "recCard0000000001", "fields": {
                "Card": "•••• •••• •••• PQRS", "Shopify ID": CARD, "Balance": 40, "Code Hash": "h1"}}],
            "Store Redemptions": [{"id": rid, "fields": {
                "Code": "•••• •••• •••• PQRS", "Amount": 10, "Status": "Done", "Outcome": "Redeemed",
                "Notified": True, "Attempt": "att-1"}}],
            "Receipts": [
                {"id": "recR1", "fields": {"Receipt ID": "seed:1", "Time": "2026-01-01T00:00:00Z", "Activity": "MIRROR",
                                           "Card": ["recCard0000000001"], "Balance After": 50}},
                {"id": "recR2", "fields": {"Receipt ID": f"redeem:{rid}", "Time": "2026-01-02T00:00:00Z",
                                           "Activity": "REDEEM", "Card": ["recCard0000000001"], "Amount": -10,
                                           "Balance After": 40}}],
        },
        cards=[{"id": CARD, "code": CODE.lower(), "balance": "40.00", "note": "imported",
                "transactions": [{"id": "gid://shopify/GiftCardDebitTransaction/1", "amount": "-10.00",
                                  "note": f"giftsync:{rid}"}]}],
        orders=[],
        events=[{"id": "e1", "metric": "Store Redemption Processed", "unique_id": f"redemption:{rid}:store",
                 "properties": {"Card": "•••• •••• •••• PQRS"}, "dropped": False}],
        outbox=[{"id": "o1", "event": "e1", "metric": "Store Redemption Processed", "to": "shop@example.com",
                 "unique_id": f"redemption:{rid}:store", "body": "Card •••• PQRS"}],
        logs={"daemon.log": "redemption done record=recRedemption0001 card=•••• •••• •••• PQRS\n"},
        secrets={"airtable token": "patSecretToken.0123456789"},
    )


def kinds(s: Snapshot) -> set[str]:
    return {v.check for v in check(s)}


def test_a_clean_world_passes():
    assert check(world()) == []


def test_a_second_debit_with_the_same_key():
    s = world()
    s.cards[0]["transactions"].append(dict(s.cards[0]["transactions"][0], id="tx2"))
    s.cards[0]["balance"] = "30.00"
    assert "money-once" in kinds(s)


def test_a_rejected_record_whose_money_moved():
    s = world()
    s.tables["Store Redemptions"][0]["fields"].update(Status="Rejected", Outcome="Insufficient", Reason="x")
    assert "money-once" in kinds(s)


def test_a_record_left_in_processing_and_an_email_not_sent():
    s = world()
    s.tables["Store Redemptions"][0]["fields"]["Status"] = "Processing"
    assert "terminal" in kinds(s)
    s = world()
    s.events.clear()
    s.outbox.clear()
    assert "email-lost" in kinds(s)


def test_an_email_sent_twice():
    s = world()
    s.outbox.append(copy.deepcopy(s.outbox[0]))
    assert "email-once" in kinds(s)


def test_balances_that_disagree_and_a_ledger_that_does_not_add_up():
    s = world()
    s.tables["Gift Cards"][0]["fields"]["Balance"] = 50
    assert "balance" in kinds(s)
    s = world()
    s.tables["Receipts"].append({"id": "recR3", "fields": {"Receipt ID": "online:1:1", "Time": "2026-01-03T00:00:00Z",
                                                           "Activity": "REDEEM", "Card": ["recCard0000000001"],
                                                           "Amount": -10, "Balance After": 40}})
    assert "ledger-sum" in kinds(s)


def test_a_card_created_twice():
    s = world()
    s.cards += [{"id": "gid://shopify/GiftCard/2", "code": "X" * 16, "balance": "5", "note": "giftsync:recReq:0"},
                {"id": "gid://shopify/GiftCard/3", "code": "Y" * 16, "balance": "5", "note": "giftsync:recReq:0"}]
    assert "card-once" in kinds(s)


def test_whole_codes_and_secrets_anywhere_but_delivery():
    s = world()
    s.logs["daemon.log"] += f"oops {CODE[:4]}-{CODE[4:8]} {CODE[8:]}\n"
    assert "code-leak" in kinds(s)
    s = world()
    s.tables["Store Redemptions"][0]["fields"]["Code"] = CODE.lower()
    assert "code-leak" in kinds(s)
    s = world()
    s.events.append({"id": "e2", "metric": "Gift Card Delivered", "unique_id": "request:r:deliver:0",
                     "properties": {"Code": CODE}, "dropped": False})
    assert "code-leak" not in kinds(s)            # the one place a whole code belongs
    s = world()
    s.logs["daemon.log"] += "token patSecretToken.0123456789\n"
    assert "secret-leak" in kinds(s)
