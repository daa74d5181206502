"""The online half of the store day, end to end: the twins, the daemon as a separate process
(``python -m giftsync run`` with short intervals), customers buying and paying on Shopify,
an admin adjusting a card, and staff redeeming the same cards in shops (Airtable form records
through pyairtable) — interleaved.

Online: giftsync SKU lines (one of quantity 3, one a gift addressed to someone else),
a Shopify-native card that Shopify issues late, payments with one card and with two cards,
a payment with a card giftsync never mirrored, a refund back to a card, an admin adjustment,
and an admin adjustment right before an online payment on the same card (the payment's
balance-after already holds it: docs/adr/0004-online-ledger.md).

At the end: every balance equal in both systems; for every card the last Balance After in
Receipts equals Shopify's balance and the amounts add up to it (each movement once); every
order handled once (registry Done, tag set); no card created twice; each email once by
unique_id; no whole code outside delivery emails — logs and Airtable included.
Conditions are awaited by polling with a deadline; nothing asserts on elapsed time.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from decimal import Decimal

import pytest
from staff_day import StaffDay, d, when

from giftsync.sandbox.world import SandboxWorld

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]

STAFF_AGENT = "giftsync-e2e-online-staff"
REQUEST_GAP = 0.3                # staff + observer: at most ~3 Airtable requests/s
CLAIM = 4                        # order overlap = the window in which an order claims a movement
RED = "Store Redemptions"
DELIVERED = "Gift Card Delivered"


def num(gid: str) -> str:
    return gid.rsplit("/", 1)[-1]


class Day(StaffDay):
    label = "online day"

    def __init__(self, world: SandboxWorld) -> None:
        super().__init__(world, gap=REQUEST_GAP, agent=STAFF_AGENT)
        self.daemon = None

    def daemon_down(self) -> str | None:
        return "the daemon exited" if self.daemon is not None and not self.daemon.alive() else None

    def tail(self, n: int = 80) -> str:
        return "\n".join(self.daemon.output()[-n:]) if self.daemon else ""

    # -- the world as the test observes it --------------------------------------------------
    def shop_cards(self) -> dict[str, dict]:
        return {c["id"]: c for c in self.world.control("shopify", "GET",
                                                       "/__sandbox/shopify/cards?include_codes=1")["cards"]}

    def delivered(self, to: str) -> list[str]:
        return [m["properties"]["Code"] for m in self.world.outbox(to=to, metric=DELIVERED)]

    def redemptions_done(self, rids) -> dict | None:
        rows = self.rows(RED)
        ok = all(rows.get(r, {}).get("Status") in ("Done", "Rejected") and rows[r].get("Notified") for r in rids)
        return rows if ok else None

    def registry(self) -> dict[str, dict]:
        return {f["Order Key"]: f for f in self.rows("Online Orders").values()}

    def orders_done(self, keys) -> bool:
        reg = self.registry()
        return all(reg.get(k, {}).get("Status") == "Done" for k in keys)

    def ledger_settled(self) -> list[str]:
        """What still differs (empty when every mirrored card agrees in balance and ledger)."""
        shop = self.shop_cards()
        cards = self.rows("Gift Cards")
        by_card = receipts_by_card(self.rows("Receipts").values())
        wrong = []
        for rid, f in cards.items():
            real = d(shop[f["Shopify ID"]]["balance"])
            problem = ledger_problem(f, real, by_card.get(rid, []))
            if problem:
                wrong.append(problem)
        return wrong


def receipts_by_card(receipts) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for x in receipts:
        for rid in x.get("Card", []):
            out.setdefault(rid, []).append(x)
    for rows in out.values():
        rows.sort(key=lambda x: when(x["Time"]))
    return out


def ledger_problem(card: dict, real: Decimal, rows: list[dict]) -> str:
    name = card.get("Card", "?")
    if d(card["Balance"]) != real:
        return f"{name}: Airtable {card['Balance']} != Shopify {real}"
    shown = [x for x in rows if "Balance After" in x]
    if not shown or d(shown[-1]["Balance After"]) != real:
        return f"{name}: last Balance After {shown[-1]['Balance After'] if shown else None} != Shopify {real}"
    opening = [x for x in rows if x.get("Activity") in ("ISSUE", "ACTIVATE", "MIRROR") and "Balance After" in x]
    if not opening:
        return f"{name}: no opening receipt"
    start = opening[0]
    moved = sum((d(x.get("Amount", 0)) for x in rows if x.get("Activity") in ("REDEEM", "CREDIT", "ADJUST")),
                Decimal(0))
    if d(start["Balance After"]) + moved != real:
        return f"{name}: opening {start['Balance After']} + movements {moved} != Shopify {real}"
    return ""


@pytest.fixture
def day(tmp_path):
    with SandboxWorld(tmp_path / "world", processes=False, airtable_options={"requests_per_second": 10},
                      shopify_options={"bump_updated_at_on_transactions": True}) as world:
        the_day = Day(world)
        try:
            yield the_day
        finally:
            if the_day.daemon is not None:
                the_day.daemon.kill()


def test_online_shop_day(day: Day):
    w = day.world
    harbour, market, station = w.stores
    ada, grace, kath, edsger = w.customers
    card0, card1, card2, card3, card4, card5 = w.cards
    store = lambda s: [s.record_id]      # noqa: E731
    hank = "hank@example.com"

    day.daemon = w.start_daemon(
        interval=2, lease_seconds=10, GIFTSYNC_SHOPIFY_PURCHASES_INTERVAL="2",
        GIFTSYNC_SHOPIFY_REDEMPTIONS_INTERVAL="2", GIFTSYNC_ORDER_OVERLAP_SECONDS=str(CLAIM),
        GIFTSYNC_RECONCILE_SCHEDULE="off", GIFTSYNC_REDEMPTION_POLL_SECONDS="2", GIFTSYNC_LOG_LEVEL="INFO")
    day.until(lambda: day.daemon.wait_for_output("lease taken", timeout=0.5), "the daemon to take the lease")
    day.mark("daemon up")

    # -- morning: cards bought online; a seeded card used in a shop and online at once ---------
    o = {}
    o["three"] = w.buy_online(ada.email, [{"sku": "GS-CARD-25", "quantity": 3}])
    o["gift"] = w.buy_online(grace.email, [{"sku": "GS-CARD-50", "quantity": 1, "properties": {
        "Recipient email": hank, "Recipient name": "Hank Hill", "Message": "Happy birthday"}}])
    o["native"] = w.buy_online(kath.email, [{"sku": "SHOP-GIFT-CARD", "quantity": 1}],
                               native_delay_seconds=10, include_codes=True)
    [native] = o["native"]["issuedGiftCards"]
    r = {"card0": day.submit(RED, {"Code": card0.code, "Amount": 10, "Store": store(harbour), "Staff": "Ann"})}
    o["pay_card0"] = w.pay_online(ada.email, card0.code, "20.00", sku="SCARF-01")
    o["pay_unmirrored"] = w.pay_online(edsger.email, card5.code, "10.00", sku="MUG-01")
    day.until(lambda: len(day.delivered(ada.email)) >= 3 and len(day.delivered(hank)) >= 1,
              "the delivery emails of the giftsync cards")
    a1, a2, a3 = day.delivered(ada.email)
    [h] = day.delivered(hank)
    day.mark("giftsync cards delivered")

    # -- midday: the same cards in shops and online, interleaved ------------------------------
    r["a1"] = day.submit(RED, {"Code": a1, "Amount": 5, "Store": store(market)})
    o["pay_a1"] = w.pay_online(ada.email, a1, "10.00", sku="MUG-01")
    o["two_cards"] = w.buy_online(grace.email, [{"sku": "SCARF-01"}], gift_card_payments=[
        {"code": a2, "amount": "12.00"}, {"code": h, "amount": "20.00"}])
    r["a2"] = day.submit(RED, {"Code": a2, "Amount": 3, "Store": store(station)})
    w.adjust_balance(a3, "-2.00", note="scratched card, goodwill rounding")
    o["pay_a3"] = w.pay_online(ada.email, a3, "5.00", sku="MUG-01")     # its balance-after holds the -2.00
    w.adjust_balance(card2.shopify_id, "7.50", note="goodwill top-up")
    day.until(lambda: day.orders_done([f"redemption:{num(o['two_cards']['id'])}"]), "the two-card order")
    w.refund_online(o["two_cards"]["id"], h, "5.00")
    day.mark("interleaved movements sent")

    # -- afternoon: the native card appears late; used in a shop, then online --------------------
    day.until(lambda: day.orders_done([f"purchase:{num(o['native']['id'])}"]), "the native card to be mirrored")
    r["native"] = day.submit(RED, {"Code": native["code"], "Amount": 10, "Store": store(harbour)})
    day.until(lambda: day.redemptions_done([r["native"]]), "the native card's shop redemption")
    o["pay_native"] = w.pay_online(kath.email, native["code"], "15.00", sku="MUG-01")

    purchases = [f"purchase:{num(o[k]['id'])}" for k in ("three", "gift", "native")]
    paid = [f"redemption:{num(o[k]['id'])}" for k in ("pay_card0", "pay_unmirrored", "pay_a1", "two_cards",
                                                       "pay_a3", "pay_native")]
    day.until(lambda: day.redemptions_done(r.values()) and day.orders_done(purchases + paid),
              "every shop redemption and every order")
    day.until(lambda: not day.ledger_settled(), "every balance and ledger to agree with Shopify", interval=2)
    day.mark("settled")
    day.daemon.stop()
    assert day.daemon.returncode == 0
    check_the_day(day, o, r, {"a1": a1, "a2": a2, "a3": a3, "h": h, "native": native["code"]}, purchases, paid)


def check_the_day(day: Day, o: dict, r: dict, codes_of: dict, purchases: list[str], paid: list[str]) -> None:
    w = day.world
    card0, card1, card2, card3, card4, card5 = w.cards
    shop = day.shop_cards()
    by_code = {c["code"].upper(): c for c in shop.values()}
    cards = day.rows("Gift Cards")
    receipts = list(day.rows("Receipts").values())
    by_card = receipts_by_card(receipts)
    reds = day.rows(RED)

    # -- balances: both systems, the expected figures, and a ledger that adds up in amounts ------
    expected = {card0.shopify_id: "70.00", card1.shopify_id: "32.50", card2.shopify_id: "32.50",
                card3.shopify_id: "200.00", card4.shopify_id: "40.00", card5.shopify_id: "65.00",
                by_code[codes_of["a1"].upper()]["id"]: "10.00", by_code[codes_of["a2"].upper()]["id"]: "10.00",
                by_code[codes_of["a3"].upper()]["id"]: "18.00", by_code[codes_of["h"].upper()]["id"]: "35.00",
                by_code[codes_of["native"].upper()]["id"]: "25.00"}
    for sid, amount in expected.items():
        assert d(shop[sid]["balance"]) == d(amount), (shop[sid]["maskedCode"], shop[sid]["balance"], amount)
    assert len(cards) == 5 + 4 + 1                        # seeded, issued (3 + gift), native mirrored
    assert len({f["Shopify ID"] for f in cards.values()}) == len(cards)
    assert card5.shopify_id not in {f["Shopify ID"] for f in cards.values()}   # never mirrored: skipped
    for rid, f in cards.items():
        real = d(shop[f["Shopify ID"]]["balance"])
        assert not ledger_problem(f, real, by_card.get(rid, [])), ledger_problem(f, real, by_card.get(rid, []))
        if f.get("Source") in ("Online purchase", "Shopify native"):
            moved = sum((d(x.get("Amount", 0)) for x in by_card[rid]
                         if x.get("Activity") in ("REDEEM", "CREDIT", "ADJUST")), Decimal(0))
            assert moved == real - d(shop[f["Shopify ID"]]["initialValue"]), f["Card"]
    # each movement once: one REDEEM per online gift-card payment of a mirrored card, one CREDIT
    online = Counter(x["Receipt ID"] for x in receipts if x.get("Channel") == "Online"
                     and x.get("Activity") in ("REDEEM", "CREDIT"))
    assert len(online) == 1 + 1 + 2 + 1 + 1 + 1
    assert sorted(d(x["Amount"]) for x in receipts if x.get("Activity") == "ADJUST" and d(x.get("Amount", 0))) \
        == [d("-2.00"), d("7.50")]                        # the two admin changes, nothing else
    assert len([x["Receipt ID"] for x in receipts]) == len({x["Receipt ID"] for x in receipts})

    # -- shop redemptions --------------------------------------------------------------------
    for key, rid in r.items():
        f = reds[rid]
        assert (f["Status"], f["Outcome"]) == ("Done", "Redeemed"), (key, f)
        assert f["Code"].startswith("•••• •••• •••• "), key

    # -- every order handled once: registry Done, tag set ----------------------------------------
    registry = list(day.rows("Online Orders").values())
    keys = Counter(f["Order Key"] for f in registry)
    assert not [k for k, n in keys.items() if n > 1]
    assert {f["Status"] for f in registry} <= {"Done", "Skipped"}
    reg = {f["Order Key"]: f for f in registry}
    for key in purchases + paid:
        assert reg[key]["Status"] == "Done", (key, reg[key])
        assert not reg[key].get("Attempt", "").startswith("nonce:")
    assert "1 skipped" in reg[f"redemption:{num(o['pay_unmirrored']['id'])}"]["Details"]
    tags = {x["id"]: x["tags"] for x in w.control("shopify", "GET", "/__sandbox/shopify/orders")["orders"]}
    for k in ("three", "gift", "native"):
        assert "giftsync-done" in tags[o[k]["id"]], k
    for k in ("pay_card0", "pay_unmirrored", "pay_a1", "two_cards", "pay_a3", "pay_native"):
        assert "giftsync-redeemed" in tags[o[k]["id"]], k

    # -- cards never created twice ---------------------------------------------------------------
    issued = [c for c in shop.values() if (c["note"] or "").startswith("giftsync:")]
    assert len(issued) == 4 and len({c["note"] for c in issued}) == 4

    # -- emails: each once; the right deliveries, the purchaser's confirmation ---------------------
    outbox = w.outbox()
    uids = Counter(m["unique_id"] for m in outbox)
    assert not [u for u, n in uids.items() if n > 1], "duplicate emails"
    delivered = Counter(m["to"] for m in outbox if m["metric"] == DELIVERED)
    assert delivered == {w.customers[0].email: 3, "hank@example.com": 1}
    confirmed = [m for m in outbox if m["metric"] == "Gift Card Purchase Confirmed"]
    assert [m["to"] for m in confirmed] == [w.customers[1].email]
    assert not [m for m in outbox if m["metric"] == "giftsync Alert"]
    crm = [e for e in w.control("klaviyo", "GET", "/__sandbox/events?metric=Gift%20Card%20Issued")["events"]
           if not e["dropped"]]
    assert len(crm) == 4 + 1

    # -- whole codes: only in delivery emails; never in logs, the base or sent to Airtable --------
    codes = set(by_code)
    for m in outbox:
        text = (m["subject"] + m["body"] + json.dumps(m["properties"], ensure_ascii=False)).upper()
        leaked = {c for c in codes if c in text}
        if m["metric"] == DELIVERED:
            assert leaked == {m["properties"]["Code"].upper()}
        else:
            assert not leaked, (m["unique_id"], [c[-4:] for c in leaked])
    text = "\n".join(day.daemon.output()).upper()
    assert not [c[-4:] for c in codes if c in text], "whole code in the daemon's output"
    for table in day.api.base(w.base_id).tables():
        text = json.dumps([x["fields"] for x in table.all()], ensure_ascii=False).upper()
        assert not [c[-4:] for c in codes if c in text], f"whole code in table {table.name}"
    calls = [x for x in w.twin("airtable").requests() if x["headers"].get("user-agent") != STAFF_AGENT]
    assert calls
    for x in calls:
        text = (x["path"] + json.dumps(x["query"]) + x["body"]).upper()
        assert not [c[-4:] for c in codes if c in text], (x["route"], x["path"])
    assert not re.search(r"Traceback", "\n".join(day.daemon.output()))
    day.mark("checked")
