"""The store prong's events, as the Klaviyo twin's flows render them (templates.json).

The prong's builders are the contract (README, "Emails (Klaviyo metrics)"): every property a
template reads must be one the prong sends, so each email reads well — masked code, amounts,
balance after, outcome, store — and only the delivery email shows the whole code.
"""
from __future__ import annotations

from datetime import datetime, timezone

from giftsync.adapters.klaviyo import event_body
from giftsync.domain.emails import Metric
from giftsync.errors import RetriableError
from giftsync.sandbox.klaviyo.outbox import Outbox
from giftsync.sandbox.klaviyo.templates import TemplateSet

from .conftest import ADMIN


def render_all(world) -> list[dict]:
    """Every event the messenger accepted, through the twin's outbox (as the twin would)."""
    box = Outbox(TemplateSet())
    when = datetime(2026, 5, 1, 12, tzinfo=timezone.utc)
    for n, event in enumerate(world.messenger.sent):
        attrs = event_body(event, when)["data"]["attributes"]
        profile = {"id": f"P{n}", "email": event.email, "first_name": event.first_name or None, "properties": {}}
        box.deliver({"id": f"E{n}", "metric": event.metric.value, "properties": attrs["properties"],
                     "unique_id": event.unique_id, "value": attrs.get("value")}, profile)
    return box.items


def by_uid(items: list[dict], prefix: str) -> dict:
    [item] = [i for i in items if i["unique_id"].startswith(prefix)]
    return item


def test_every_store_email_reads_well_from_the_prongs_properties(world):
    a, _, _ = world.card("100", recipient_email="holder@example.test")
    low, _, _ = world.card("20")
    store_rid = world.store
    book = world.book
    ok = book.add_redemption(a, "12.5", store_rid, Staff="Jo")
    short = book.add_redemption(low, "25", store_rid)
    bad = book.add_redemption("AB-1", "5", store_rid)
    orphan = book.add_redemption(a, "5", None)
    gift = book.add_card_request(store_rid, "50", 2, recipient_email="rita@example.test", recipient_name="Rita Ray",
                                 purchaser_email="paul@example.test", purchaser_name="Paul Poe", is_gift=True,
                                 message="Happy birthday")
    phys = book.add_card_request(store_rid, "25", 1, kind="Physical", serials="SERIALAAAA01",
                                 recipient_email="pat@example.test", recipient_name="Pat Park")
    rejected = book.add_card_request(store_rid, "25", 2, kind="Physical", serials="SERIALBBBB01",
                                     recipient_email="pat@example.test")
    check = book.add_balance_check(a, "carl@example.test")
    miss = book.add_balance_check("NOPE2345NOPE", "carl@example.test")
    world.run()

    items = render_all(world)
    assert not [i for i in items if i.get("error")]
    for item in items:
        text = item["subject"] + "\n" + item["body"]
        assert "{{" not in text and "{%" not in text and "  " not in item["subject"]

    mail = by_uid(items, f"redemption:{ok}:store")
    assert mail["to"] == "main@shop.test"
    assert mail["subject"] == f"Redemption redeemed: •••• •••• •••• {a[-4:]}, 12.50 USD"
    for line in ("Store: Main Street", f"Card: •••• •••• •••• {a[-4:]}", "Amount: 12.50 USD", "Outcome: Redeemed",
                 "Balance after: 87.50 USD", "Staff: Jo", f"Record: {ok} at 20"):
        assert line in mail["body"], (line, mail["body"])
    mail = by_uid(items, f"redemption:{short}:store")
    assert "Outcome: Insufficient balance" in mail["body"] and "Available balance: 20.00 USD" in mail["body"]
    assert "Balance after" not in mail["body"]
    mail = by_uid(items, f"redemption:{bad}:store")
    assert "Outcome: Code format incorrect" in mail["body"] and "Card: (invalid code removed)" in mail["body"]
    mail = by_uid(items, f"redemption:{orphan}:store")
    assert mail["to"] == ADMIN and "Store: (missing)" in mail["body"]

    delivered = [i for i in items if i["metric"] == "Gift Card Delivered"]
    assert len(delivered) == 2
    for mail in delivered:
        code = mail["properties"]["Code"]
        assert mail["subject"] == "Paul Poe sent you a 50.00 USD gift card"
        assert f"Your gift card code: {code}" in mail["body"]
        assert "Hello Rita," in mail["body"] and "worth 50.00 USD from our Main Street shop" in mail["body"]
        assert "Message: Happy birthday" in mail["body"]
    mail = by_uid(items, f"request:{gift}:purchaser")
    assert mail["to"] == "paul@example.test" and "Gift cards: 2 × 50.00 USD (digital)" in mail["body"]
    assert "Hello Paul," in mail["body"]          # the purchaser's first name goes with the event
    assert "The card was sent to Rita Ray <rita@example.test>." in mail["body"]
    mail = by_uid(items, f"request:{gift}:store")
    assert mail["subject"] == "Card request cards issued: 2 × 50.00 USD (digital)"
    assert "Recipient: Rita Ray <rita@example.test>" in mail["body"] and mail["body"].count("- •••• •••• •••• ") == 2
    mail = by_uid(items, f"request:{phys}:activate:0")
    assert mail["subject"] == "Your gift card •••• •••• •••• AA01 is active"
    assert "activated at our Main Street shop with 25.00 USD" in mail["body"]
    mail = by_uid(items, f"request:{rejected}:store")
    assert "Outcome: Rejected" in mail["body"] and "Reason: A physical request needs one serial per card" in mail["body"]
    assert "Issued:" not in mail["body"]

    mail = by_uid(items, f"check:{check}:answer")
    assert mail["to"] == "carl@example.test"
    assert f"Card: •••• •••• •••• {a[-4:]}" in mail["body"] and "Balance: 87.50 USD" in mail["body"]
    mail = by_uid(items, f"check:{miss}:answer")
    assert "could not find an active gift card" in mail["body"] and "Balance:" not in mail["body"]

    whole = [a, low, "SERIALAAAA01"] + [m["properties"]["Code"] for m in delivered]
    for item in items:
        if item["metric"] != "Gift Card Delivered":
            text = (item["subject"] + item["body"] + repr(item["properties"])).upper()
            assert not [c for c in whole if c.upper() in text], item["unique_id"]
    crm = {e.metric for e in world.messenger.sent} - {Metric(i["metric"]) for i in items}
    assert crm == {Metric.GIFT_CARD_ISSUED, Metric.GIFT_CARD_REDEEMED}     # CRM only: no email


def test_alert_email_reads_its_subject_and_details(world):
    low, _, _ = world.card("20")
    world.book.add_redemption(low, "5", world.store)
    world.messenger.fail_next("send", RetriableError("klaviyo", "503"), times=3)
    world.run()
    [alert] = [i for i in render_all(world) if i["metric"] == "giftsync Alert"]
    assert alert["to"] == ADMIN and alert["subject"] == "[giftsync] Email failed"
    assert "Store Redemption Processed to main@shop.test failed" in alert["body"]
    assert "Source: Store Redemptions/" in alert["body"]
