"""A store day, end to end: the twins, the daemon as a separate process (``python -m giftsync
run``), and staff, customers and an outage driving it through the real APIs.

Staff submit forms with pyairtable (as a form submission would); the Shopify and Klaviyo twins
are steered through their control endpoints (an expired card, faults on events). The day:

- morning: redemptions with every outcome (the first store email fails twice, then goes out),
  small card requests (physical gifted, digital not gifted, one rejected), balance checks with
  a throttled one; a second daemon is refused by the lease;
- midday: a 30-card request (Shopify takes a second per card) while redemptions keep
  arriving; the daemon is stopped (SIGTERM) and started again, then killed (SIGKILL) and
  started again: it resumes the request, and each redemption is served before it ends;
- afternoon: a Klaviyo outage; the emails go out by resend once it is over;

then checks every record's final state, every balance in both systems, the Receipts ledger,
the outbox (exactly the expected emails; whole codes only in delivery emails) and that no
whole code is in the daemon's output, in any Airtable cell or in what the daemon sent Airtable.

Conditions are awaited by polling with a deadline; nothing asserts on elapsed time. Staff and
this test's observer reach Airtable through the API, which real form submissions do not, so
the twin allows 10 requests/s; the daemon's own share is checked against Airtable's 5/s.
"""
from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections import Counter
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from staff_day import StaffDay, d, when

from giftsync.sandbox.world import DaemonProcess, SandboxWorld

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(420)]

STAFF_AGENT = "giftsync-e2e-staff"
REQUEST_GAP = 0.4                # staff + observer: at most 2.5 Airtable requests/s
BULK = 30


class Day(StaffDay):
    """The world, the staff's Airtable client and the daemons started so far."""

    label = "store day"

    def __init__(self, world: SandboxWorld, root: Path) -> None:
        super().__init__(world, gap=REQUEST_GAP, agent=STAFF_AGENT)
        self.root = root
        # Short intervals and a short lease; the lease is renewed every 2 s (read + write) so
        # that it does not take half of the daemon's Airtable budget.
        self.env = world.daemon_env(
            interval=1, lease_seconds=6, GIFTSYNC_LEASE_RENEW_SECONDS="2", GIFTSYNC_LEASE_MARGIN_SECONDS="1.5",
            GIFTSYNC_SHOPIFY_PURCHASES_INTERVAL="10", GIFTSYNC_SHOPIFY_REDEMPTIONS_INTERVAL="10",
            GIFTSYNC_RECONCILE_SCHEDULE="off", GIFTSYNC_REDEMPTION_POLL_SECONDS="2",
            GIFTSYNC_BALANCE_CHECK_LIMIT="2", GIFTSYNC_LOG_LEVEL="INFO")
        self.daemons: list[DaemonProcess] = []      # daemons of the day (`run`)
        self.others: list[DaemonProcess] = []       # refused ones: their output is scanned too
        self.overlap = (0.0, 0.0)                   # while the refused daemon ran next to the first

    # -- daemons ------------------------------------------------------------------------------
    def start_daemon(self, *args: str) -> DaemonProcess:
        n = len(self.daemons) + len(self.others) + 1
        daemon = DaemonProcess(self.env, args=args or ("run",), cwd=self.root,
                               log_file=self.root / f"daemon-{n}.log", keep_lines=100000).start()
        (self.others if args else self.daemons).append(daemon)
        return daemon

    def all_daemons(self) -> list[DaemonProcess]:
        return self.daemons + self.others

    def holder(self, daemon: DaemonProcess) -> str:
        self.until(lambda: daemon.wait_for_output("lease taken", timeout=0.5), f"daemon pid {daemon.pid} takes the lease")
        for line in daemon.output():
            m = re.search(r"lease taken.* holder=(\S+)", line)
            if m:
                return m.group(1)
        raise AssertionError("no holder id in the daemon's output")

    def wait_exit(self, daemon: DaemonProcess, what: str) -> int:
        self.until(lambda: not daemon.alive(), what, check_daemons=False)
        return daemon.returncode

    def daemon_down(self) -> str | None:
        return "no daemon running" if self.daemons and not any(dm.alive() for dm in self.daemons) else None

    def tail(self, n: int = 60) -> str:
        out = []
        for i, dm in enumerate(self.all_daemons(), 1):
            out.append(f"--- daemon {i} (pid {dm.pid}, rc {dm.returncode})")
            out.extend(dm.output()[-n:])
        return "\n".join(out)

    def finished(self, table: str, rids, *, notified: bool | None = True):
        """The rows when every one of ``rids`` is Done/Rejected (and Notified as asked), else None."""
        rows = self.rows(table)
        for rid in rids:
            f = rows.get(rid, {})
            if f.get("Status") not in ("Done", "Rejected"):
                return None
            if notified is not None and bool(f.get("Notified")) is not notified:
                return None
        return rows

    def cards_of(self, request: str) -> int:
        return len(self.table("Gift Cards").all(formula=f"{{Source Record}}='{request}'", fields=["Card"]))


@pytest.fixture
def day(tmp_path):
    with SandboxWorld(tmp_path / "world", processes=False, airtable_options={"requests_per_second": 10}) as world:
        the_day = Day(world, tmp_path)
        try:
            yield the_day
        finally:
            for daemon in the_day.all_daemons():
                daemon.kill()


def test_store_day(day: Day, tmp_path):
    w = day.world
    harbour, market, station = w.stores
    card0, card1, card2, card3, card4, card5 = w.cards
    klaviyo = w.twin("klaviyo")
    airtable = w.twin("airtable")
    RED, REQ, CHK = "Store Redemptions", "Card Requests", "Balance Checks"
    expired = w.control("shopify", "POST", "/__sandbox/shopify/cards", {
        "amount": "30.00", "code": "EXPD2345EXPD2345", "note": "expired card",
        "expiresOn": (date.today() - timedelta(days=30)).isoformat()})

    # -- the daemon starts; a second one is refused while the first holds the lease ------------
    day.mark("twins up")
    first = day.start_daemon()
    holder_a = day.holder(first)
    refused = day.start_daemon("run", "--no-wait")
    assert day.wait_exit(refused, "the second daemon to exit") == 3
    day.overlap = (refused.started_at, time.time())
    assert any("lease held by another process" in line and holder_a in line for line in refused.output()), \
        refused.output()[-10:]

    day.mark("second daemon refused")
    # -- morning: one redemption of each outcome; the first email fails twice, then goes out ----
    klaviyo.inject(kind="status", status=503, route="events.create", count=2)
    store = lambda s: [s.record_id]      # noqa: E731
    r = {}
    r["not_found"] = day.submit(RED, {"Code": "NOPE2345NOPE2345", "Amount": 5, "Store": store(harbour)})
    day.until(lambda: day.finished(RED, [r["not_found"]]), "the first redemption and its email")
    sent = klaviyo.requests("events.create")
    assert [(json.loads(x["body"])["data"]["attributes"]["unique_id"], x["status"]) for x in sent] == \
        [(f"redemption:{r['not_found']}:store", status) for status in (503, 503, 202)]
    r["redeemed"] = day.submit(RED, {"Code": " " + "-".join(re.findall(".{4}", card0.code.lower())) + " ",
                                     "Amount": 10, "Store": store(harbour), "Staff": "Ann"})
    r["format"] = day.submit(RED, {"Code": "12-AB", "Amount": 5, "Store": store(market)})
    r["insufficient"] = day.submit(RED, {"Code": card2.code, "Amount": 30, "Store": store(station)})
    r["disabled"] = day.submit(RED, {"Code": card4.code, "Amount": 5, "Store": store(market)})
    r["expired"] = day.submit(RED, {"Code": expired["code"], "Amount": 5, "Store": store(market)})
    r["amount"] = day.submit(RED, {"Code": card3.code, "Amount": 0, "Store": store(harbour)})
    r["no_store"] = day.submit(RED, {"Code": card3.code, "Amount": 5})
    r["native"] = day.submit(RED, {"Code": card5.code, "Amount": 20, "Store": store(station)})
    r["all_of_it"] = day.submit(RED, {"Code": card1.code, "Amount": 32.5, "Store": store(market)})
    q = {}
    q["physical_gift"] = day.submit(REQ, {
        "Store": store(market), "Amount": 25, "Quantity": 2, "Kind": "Physical",
        "Physical Serials": "PHYS0001AAAA\nPHYS0002BBBB", "Recipient Name": "Rita Ray",
        "Recipient Email": "rita@example.com", "Purchaser Name": "Paul Poe", "Purchaser Email": "paul@example.com",
        "Is Gift": True, "Message": "Happy birthday", "Staff": "Ben"})
    q["digital"] = day.submit(REQ, {
        "Store": store(harbour), "Amount": 15, "Quantity": 2, "Kind": "Digital", "Recipient Name": "Dora Diaz",
        "Recipient Email": "dora@example.com", "Staff": "Ann"})
    q["bad"] = day.submit(REQ, {
        "Store": store(station), "Amount": 25, "Quantity": 2, "Kind": "Physical", "Physical Serials": "PHYS0003CCCC",
        "Recipient Email": "rita@example.com"})
    b = {}
    b["answered"] = day.submit(CHK, {"Code": card3.code, "Email": "katherine@example.com"})
    b["unknown"] = day.submit(CHK, {"Code": "ZZZZ2345ZZZZ", "Email": "edsger@example.com"})
    b["disabled"] = day.submit(CHK, {"Code": card4.code, "Email": "edsger@example.com"})
    b["throttled"] = day.submit(CHK, {"Code": card3.code, "Email": "edsger@example.com"})    # 3rd of 2/window
    day.until(lambda: day.finished(RED, r.values()) and day.finished(REQ, q.values())
              and day.finished(CHK, b.values()), "the morning's records to finish")
    day.mark("morning done")

    # -- midday: a 30-card request; redemptions keep arriving; SIGTERM and SIGKILL restarts -----
    # Each card creation takes 2.5 s in Shopify (8 in flight, StoreOptions.card_create_workers):
    # the request lasts, whatever the machine's speed, while the redemptions do not wait for it.
    w.twin("shopify").inject(kind="latency", route="giftCardCreate", delay=2.5)
    q["bulk"] = day.submit(REQ, {
        "Store": store(harbour), "Amount": 10, "Quantity": BULK, "Kind": "Digital", "Recipient Name": "Team Lead",
        "Recipient Email": "team@example.com", "Purchaser Name": "Olga Owner", "Purchaser Email": "olga@example.com",
        "Is Gift": True, "Message": "Thank you all", "Staff": "Ann"})
    day.until(lambda: day.rows(REQ)[q["bulk"]].get("Status") == "Processing", "the bulk request to be claimed")
    r["mid1"] = day.submit(RED, {"Code": card3.code, "Amount": 20, "Store": store(harbour)})
    day.until(lambda: day.finished(RED, [r["mid1"]]), "a redemption during the bulk request")
    day.mark("SIGTERM")
    first.proc.send_signal(signal.SIGTERM)
    assert day.wait_exit(first, "the daemon to stop on SIGTERM") == 0
    assert first.wait_for_output("lease released", timeout=1)
    assert day.rows(REQ)[q["bulk"]]["Status"] == "Processing", "the bulk request ended before the restart"

    second = day.start_daemon()
    holder_b = day.holder(second)
    before = day.cards_of(q["bulk"])
    r["mid2"] = day.submit(RED, {"Code": card0.code, "Amount": 5, "Store": store(market)})
    day.until(lambda: day.finished(RED, [r["mid2"]]), "a redemption after the restart")
    day.until(lambda: day.cards_of(q["bulk"]) > before, "the restarted daemon to resume the bulk request")
    day.mark("SIGKILL")
    second.kill()
    assert day.rows(REQ)[q["bulk"]]["Status"] == "Processing", "the bulk request ended before the crash"
    r["mid3"] = day.submit(RED, {"Code": card5.code, "Amount": 10, "Store": store(station)})
    third = day.start_daemon()
    holder_c = day.holder(third)         # after the killed daemon's lease expired
    day.until(lambda: day.finished(RED, [r["mid3"]]) and day.finished(REQ, [q["bulk"]]),
              "the bulk request to finish after the crash")

    w.twin("shopify").faults.clear()
    day.mark("bulk request done")
    # -- afternoon: Klaviyo is down; the emails go out by resend once it is back --------------
    klaviyo.inject(kind="status", status=503, route="events.create")
    out = {"redeemed": day.submit(RED, {"Code": card3.code, "Amount": 7, "Store": store(station)})}
    r.update({f"out_{k}": v for k, v in out.items()})
    failed = [f"crm:redeemed:{out['redeemed']}", f"redemption:{out['redeemed']}:store"]
    for uid in failed:
        day.until(lambda uid=uid: third.wait_for_output(f"alert could not be sent key=email-failed:{uid}", timeout=0.1),
                  f"the failed email {uid} and its alert")
    day.until(lambda: day.finished(RED, out.values(), notified=False), "the record of the outage to finish unnotified")
    assert [x for x in day.rows("Receipts").values() if x.get("Activity") == "EMAIL_FAILED"
            and x.get("Correlation ID") == failed[1]]
    day.mark("outage seen")
    klaviyo.faults.clear()
    day.until(lambda: day.finished(RED, r.values()) and day.finished(CHK, b.values()),
              "the emails of the outage to go out by resend")

    # -- closing time ----------------------------------------------------------------------
    third.proc.send_signal(signal.SIGTERM)
    assert day.wait_exit(third, "the last daemon to stop") == 0
    assert not any(dm.alive() for dm in day.all_daemons())

    day.mark("day over")
    check_the_day(day, r, q, b, failed, expired, (holder_a, holder_b, holder_c))


def check_the_day(day: Day, r: dict, q: dict, b: dict, failed: list[str], expired: dict, holders: tuple) -> None:
    w = day.world
    airtable = w.twin("airtable")
    harbour, market, station = w.stores
    card0, card1, card2, card3, card4, card5 = w.cards
    reds, reqs, chks = day.rows("Store Redemptions"), day.rows("Card Requests"), day.rows("Balance Checks")
    gift_cards = day.rows("Gift Cards")
    receipts = list(day.rows("Receipts").values())
    status = {f.get("Name"): f for f in day.rows("Status").values()}

    # -- every record's final state ------------------------------------------------------------
    expected = {   # record: (Status, Outcome, Balance After, store)
        "not_found": ("Rejected", "Code not found", None, harbour),
        "redeemed": ("Done", "Redeemed", "90.00", harbour),
        "format": ("Rejected", "Code format incorrect", None, market),
        "insufficient": ("Rejected", "Insufficient balance", "25.00", station),
        "disabled": ("Rejected", "Card disabled or expired", None, market),
        "expired": ("Rejected", "Card disabled or expired", None, market),
        "amount": ("Rejected", "Invalid amount", None, harbour),
        "no_store": ("Rejected", "Store missing or inactive", None, None),
        "native": ("Done", "Redeemed", "55.00", station),
        "all_of_it": ("Done", "Redeemed", "0.00", market),
        "mid1": ("Done", "Redeemed", "180.00", harbour),
        "mid2": ("Done", "Redeemed", "85.00", market),
        "mid3": ("Done", "Redeemed", "45.00", station),
        "out_redeemed": ("Done", "Redeemed", "173.00", station),
    }
    assert set(expected) == set(r)
    for key, (state, outcome, after, _) in expected.items():
        f = reds[r[key]]
        assert (f.get("Status"), f.get("Outcome"), f.get("Notified")) == (state, outcome, True), (key, f)
        assert (d(f["Balance After"]) if "Balance After" in f else None) == (d(after) if after else None), (key, f)
        assert f.get("Processed At"), key
        code = f.get("Code", "")
        assert code == "(invalid code removed)" if key == "format" else code.startswith("•••• •••• •••• "), (key, code)
    assert reds[r["insufficient"]]["Reason"] == "Available balance is 25.00 USD"
    assert reds[r["redeemed"]]["Card"] == [card0.record_id]

    assert (reqs[q["physical_gift"]]["Status"], reqs[q["physical_gift"]]["Outcome"]) == ("Done", "Cards issued")
    assert reqs[q["physical_gift"]]["Physical Serials"] == "•••• •••• •••• AAAA\n•••• •••• •••• BBBB"
    assert (reqs[q["digital"]]["Status"], len(reqs[q["digital"]]["Cards"])) == ("Done", 2)
    assert (reqs[q["bad"]]["Status"], reqs[q["bad"]]["Outcome"]) == ("Rejected", "Rejected")
    assert "one serial per card" in reqs[q["bad"]]["Reason"]
    bulk = reqs[q["bulk"]]
    assert (bulk["Status"], bulk["Outcome"], len(bulk["Cards"])) == ("Done", "Cards issued", BULK)
    for f in reqs.values():
        assert f.get("Notified") is True and not f.get("Attempt", "").startswith("nonce:"), f

    answers = {k: chks[v] for k, v in b.items()}
    assert {k: (f["Status"], f["Outcome"]) for k, f in answers.items()} == {
        "answered": ("Done", "Balance sent"), "unknown": ("Done", "No active card matches"),
        "disabled": ("Done", "No active card matches"), "throttled": ("Done", "Throttled")}

    # -- redemptions were served while the bulk request went on ----------------------------------
    bulk_issues = sorted(when(x["Time"]) for x in receipts
                         if x.get("Activity") == "ISSUE" and x.get("Source") == f"Card Requests/{q['bulk']}")
    assert len(bulk_issues) == BULK
    for key in ("mid1", "mid2", "mid3"):
        served = when(reds[r[key]]["Processed At"])
        assert served < when(bulk["Processed At"]), key
        assert any(t > served for t in bulk_issues), (key, "no card of the request was issued after it")

    # -- the lease: refused, released on SIGTERM, taken over after SIGKILL, Offline at the end ---
    assert status["lease"]["State"] == "Offline"
    holder_a, holder_b, holder_c = holders
    assert len(set(holders)) == 3
    [takeover] = [x for x in receipts if x.get("Activity") == "TAKEOVER"]   # only the crash needed one
    assert f"lease of {holder_b} expired" in takeover["Details"] and holder_c in takeover["Details"]

    # -- balances: Airtable = Shopify = the last Balance After of the card's receipts -------------
    shop = {c["id"]: c for c in w.control("shopify", "GET", "/__sandbox/shopify/cards?include_codes=1")["cards"]}
    expected_balances = {card0.shopify_id: "85.00", card1.shopify_id: "0.00", card2.shopify_id: "25.00",
                         card3.shopify_id: "173.00", card4.shopify_id: "40.00", card5.shopify_id: "45.00",
                         expired["id"]: "30.00"}
    for sid, amount in expected_balances.items():
        assert d(shop[sid]["balance"]) == d(amount), sid
    issued = [c for c in shop.values() if c["note"] and c["note"].startswith("giftsync:")]
    assert len(issued) == 2 + 2 + BULK and len({c["note"] for c in issued}) == len(issued)   # once, ever
    by_card: dict[str, list[dict]] = {}
    for x in receipts:
        for rid in x.get("Card", []):
            by_card.setdefault(rid, []).append(x)
    assert len(gift_cards) == 5 + 2 + 2 + 2 + BULK       # seeded, mirrored (native, expired), issued
    for rid, f in gift_cards.items():
        sid = f["Shopify ID"]
        assert d(f["Balance"]) == d(shop[sid]["balance"]), (f["Card"], f["Balance"], shop[sid]["balance"])
        rows = sorted((x for x in by_card.get(rid, []) if "Balance After" in x), key=lambda x: when(x["Time"]))
        assert rows, f["Card"]
        assert d(rows[-1]["Balance After"]) == d(shop[sid]["balance"]), (f["Card"], rows[-1])
        moved = sum((d(x["Amount"]) for x in by_card[rid] if x.get("Activity") in ("REDEEM", "CREDIT", "ADJUST")),
                    Decimal(0))
        start = [x for x in rows if x.get("Activity") in ("MIRROR", "ISSUE", "ACTIVATE")][0]
        assert d(start["Balance After"]) + moved == d(shop[sid]["balance"]), f["Card"]
    assert gift_cards[next(k for k, f in gift_cards.items() if f["Shopify ID"] == expired["id"])]["Status"] == "Expired"

    # -- the outbox: exactly the expected emails, each once ------------------------------------
    admin = w.admin_email
    want: dict[str, str] = {}
    for key, (_, _, _, st) in expected.items():
        want[f"redemption:{r[key]}:store"] = st.email if st else admin
    for key, to in (("physical_gift", "rita@example.com"), ("digital", "dora@example.com"),
                    ("bulk", "team@example.com")):
        kind = "activate" if key == "physical_gift" else "deliver"
        for i in range(len(reqs[q[key]]["Cards"])):
            want[f"request:{q[key]}:{kind}:{i}"] = to
    want[f"request:{q['physical_gift']}:store"] = market.email
    want[f"request:{q['physical_gift']}:purchaser"] = "paul@example.com"
    want[f"request:{q['digital']}:store"] = harbour.email
    want[f"request:{q['bad']}:store"] = station.email
    want[f"request:{q['bulk']}:store"] = harbour.email
    want[f"request:{q['bulk']}:purchaser"] = "olga@example.com"
    for key, rid in b.items():
        want[f"check:{rid}:answer"] = chks[rid]["Email"]
    outbox = w.outbox()
    uids = [m["unique_id"] for m in outbox]
    assert not [u for u, n in Counter(uids).items() if n > 1], "duplicate emails"
    # An alert may only be one for an email that failed in the outage (it can go out once the
    # outage ends); the outage's alerts themselves could not be sent.
    alerts = {m["unique_id"] for m in outbox if m["metric"] == "giftsync Alert"}
    assert alerts <= {f"alert:email-failed:{u}" for u in failed}, alerts
    assert {m["unique_id"]: m["to"] for m in outbox if m["metric"] != "giftsync Alert"} == want
    mails = {m["unique_id"]: m for m in outbox}
    assert "Balance after: 90.00 USD" in mails[f"redemption:{r['redeemed']}:store"]["body"]
    assert "Available balance: 25.00 USD" in mails[f"redemption:{r['insufficient']}:store"]["body"]
    assert "Balance: 200.00 USD" in mails[f"check:{b['answered']}:answer"]["body"]
    throttled = mails[f"check:{b['throttled']}:answer"]
    assert throttled["properties"] == mails[f"check:{b['unknown']}:answer"]["properties"]   # one uniform answer
    crm = [e for e in w.control("klaviyo", "GET", "/__sandbox/events?metric=Gift%20Card%20Issued")["events"]
           if not e["dropped"]]
    assert len(crm) == 2 + 2 + BULK

    # -- whole codes: only in delivery emails; never in logs, in the base or sent to Airtable ----
    codes = {c["code"].upper() for c in shop.values()} | {"NOPE2345NOPE2345", "ZZZZ2345ZZZZ"}
    assert len(codes) == 7 + 2 + 2 + BULK + 2
    assert {c.upper() for c in w.demo_codes} <= codes
    delivered = {m["properties"]["Code"].upper() for m in outbox if m["metric"] == "Gift Card Delivered"}
    assert len(delivered) == 2 + BULK and delivered <= codes
    for m in outbox:
        text = (m["subject"] + m["body"] + json.dumps(m["properties"], ensure_ascii=False)).upper()
        leaked = {c for c in codes if c in text}
        if m["metric"] == "Gift Card Delivered":
            assert leaked == {m["properties"]["Code"].upper()} and m["properties"]["Code"] in m["body"]
        else:
            assert not leaked, (m["unique_id"], [c[-4:] for c in leaked])
    for dm in day.all_daemons():
        text = "\n".join(dm.output()).upper()
        assert not [c[-4:] for c in codes if c in text], f"whole code in the output of daemon pid {dm.pid}"
    for table in day.api.base(w.base_id).tables():
        text = json.dumps([x["fields"] for x in table.all()], ensure_ascii=False).upper()
        assert not [c[-4:] for c in codes if c in text], f"whole code in table {table.name}"
    daemon_calls = [x for x in airtable.requests() if x["headers"].get("user-agent") != STAFF_AGENT]
    assert daemon_calls
    for x in daemon_calls:
        text = (x["path"] + json.dumps(x["query"]) + x["body"]).upper()
        assert not [c[-4:] for c in codes if c in text], (x["route"], x["path"])

    # -- the daemon stayed within Airtable's 5 requests/s and never met a 429 -------------------
    # (but for the moment the refused daemon ran next to the first: two processes, two budgets)
    assert not [x for x in airtable.requests() if x["status"] == 429]
    start, end = day.overlap
    daemon_calls = [x for x in daemon_calls if not start - 1.0 <= x["time"] <= end + 1.0]
    # The budget (4/s, no burst) allows 4·T + 1 requests in any T seconds. The twin logs a call
    # when it has answered it and answers one at a time, so a slow answer can bunch the logged
    # times: one request of slack.
    times = sorted(x["time"] for x in daemon_calls)
    for span, most in ((1.0, 5 + 1), (5.0, 21 + 1)):
        worst, j, at = 0, 0, 0
        for i, t in enumerate(times):
            while times[j] <= t - span:
                j += 1
            if i - j + 1 > worst:
                worst, at = i - j + 1, j
        window = [(round(x["time"] - times[at], 3), x["method"], x["route"])
                  for x in daemon_calls if times[at] <= x["time"] < times[at] + span]
        assert worst <= most, f"{worst} daemon requests to Airtable within {span:g} s: {window}"
    day.mark("checked")
