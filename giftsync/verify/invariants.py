"""The invariants of issue 6, checked against what the services hold.

``collect(...)`` reads a :class:`Snapshot` over HTTP from the three twins (every Airtable table,
every Shopify card with its code and transactions, every order, every Klaviyo event and outbox
email) plus the daemon's log files; ``check(snapshot)`` returns a list of :class:`Violation`
(empty = all rules hold). The checks:

``money-once``     no Shopify movement keyed by giftsync (note ``giftsync:…``) twice; a store
                   redemption Done/Redeemed has exactly one debit with its key, a Rejected one none;
                   every online gift-card transaction on a mirrored card has exactly one receipt
``receipt-once``   no Receipt ID twice (receipts are upserted on it)
``card-once``      no card created twice: Shopify cards by note, Gift Cards by Shopify ID and by
                   code hash; a Done card request has exactly Quantity cards (Shopify, Gift Cards,
                   links); every card giftsync created is mirrored
``terminal``       every form record Done/Rejected with an Outcome (and a Reason when rejected),
                   Notified; every Online Orders row Done/Skipped; every paid order that sells or
                   spends a gift card has its row; no nonce left in an Attempt
``email-once``     no unique_id kept twice, no outbox email twice for one event
``email-lost``     every email the finished records call for was accepted (by unique_id)
``balance``        for every mirrored card: Airtable balance = Shopify balance = the last
                   Balance After in Receipts
``ledger-sum``     for every mirrored card: the opening Balance After plus every later REDEEM /
                   CREDIT / ADJUST amount = Shopify's balance (no movement recorded twice or lost)
``code-leak``      no whole code anywhere but delivery emails: Airtable cells, Klaviyo events and
                   outbox (except Gift Card Delivered), Shopify notes and tags, the daemon logs
``secret-leak``    no token or secret (Airtable token, Shopify token, Klaviyo key, code secret) in
                   Airtable cells, Klaviyo events or the daemon logs

The rules come from docs/adr/0001-money-protocol.md, 0002-card-codes.md and 0003-lease.md.
"""
from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Iterable

import requests

FORM_TABLES = ("Store Redemptions", "Card Requests", "Balance Checks")
TABLES = ("Stores", "Gift Cards", "Store Redemptions", "Card Requests", "Balance Checks", "Online Orders",
          "Receipts", "Status")
TERMINAL_FORM = {"Done", "Rejected"}
TERMINAL_ORDER = {"Done", "Skipped"}
DELIVERY_METRIC = "Gift Card Delivered"
_SEP = re.compile(r"[\s\-]+")
_ORDER_NOTE = re.compile(r"^giftsync:order:(\d+):(\d+)$")
_REQUEST_NOTE = re.compile(r"^giftsync:(rec[A-Za-z0-9]{14}):(\d+)$")


@dataclass(frozen=True)
class Violation:
    check: str
    subject: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.check}] {self.subject}: {self.detail}"


@dataclass
class Snapshot:
    tables: dict[str, list[dict]]                 # Airtable table → records ({id, createdTime, fields})
    cards: list[dict]                             # Shopify cards with "code" and "transactions"
    orders: list[dict]                            # Shopify orders (lines, transactions, tags)
    events: list[dict]                            # Klaviyo events, duplicates included (dropped)
    outbox: list[dict]                            # Klaviyo outbox emails
    logs: dict[str, str] = field(default_factory=dict)   # name → text (daemon logs)
    secrets: dict[str, str] = field(default_factory=dict)  # name → a secret that must not leak
    extra_codes: set[str] = field(default_factory=set)     # whole codes known to the caller (inputs)
    skus: tuple[str, ...] = ()                    # giftsync gift-card SKUs
    order_tag: str = "giftsync-done"
    redemption_tag: str = "giftsync-redeemed"

    def fields(self, table: str) -> list[tuple[str, dict]]:
        return [(r["id"], r.get("fields", {})) for r in self.tables.get(table, [])]


# -- collecting ------------------------------------------------------------------------------------

def _get(url: str, *, headers: dict | None = None, params: Any = None, attempts: int = 20) -> Any:
    import time
    last: Exception | None = None
    for i in range(attempts):
        try:
            r = requests.get(url, headers=headers, params=params, timeout=30)
            if r.status_code == 429 or r.status_code >= 500:
                time.sleep(min(2.0, 0.2 * (i + 1)))
                continue
            r.raise_for_status()
            return r.json()
        except requests.RequestException as exc:
            last = exc
            time.sleep(min(2.0, 0.2 * (i + 1)))
    raise RuntimeError(f"could not read {url}: {last!r}")


def airtable_records(url: str, token: str, base: str, table: str) -> list[dict]:
    out: list[dict] = []
    offset = None
    while True:
        params = {"pageSize": 100}
        if offset:
            params["offset"] = offset
        page = _get(f"{url}/v0/{base}/{requests.utils.quote(table, safe='')}",
                    headers={"Authorization": f"Bearer {token}"}, params=params)
        out.extend(page.get("records", []))
        offset = page.get("offset")
        if not offset:
            return out


def collect(*, airtable_url: str, airtable_token: str, base_id: str, shopify_url: str, klaviyo_url: str,
            log_files: Iterable[str | Path] = (), secrets: dict[str, str] | None = None,
            extra_codes: Iterable[str] = (), skus: Iterable[str] = (), order_tag: str = "giftsync-done",
            redemption_tag: str = "giftsync-redeemed") -> Snapshot:
    tables = {t: airtable_records(airtable_url, airtable_token, base_id, t) for t in TABLES}
    cards = _get(f"{shopify_url}/__sandbox/shopify/cards", params={"include_codes": "1"})["cards"]
    orders = _get(f"{shopify_url}/__sandbox/shopify/orders")["orders"]
    events = _get(f"{klaviyo_url}/__sandbox/events")["events"]
    outbox = _get(f"{klaviyo_url}/__sandbox/outbox")["outbox"]
    logs = {}
    for f in log_files:
        p = Path(f)
        if p.exists():
            logs[str(p)] = p.read_text(encoding="utf-8", errors="replace")
    return Snapshot(tables=tables, cards=cards, orders=orders, events=events, outbox=outbox, logs=logs,
                    secrets=dict(secrets or {}), extra_codes={c for c in extra_codes if c},
                    skus=tuple(skus), order_tag=order_tag, redemption_tag=redemption_tag)


def collect_world(world: Any, *, log_files: Iterable[str | Path] = (), extra_codes: Iterable[str] = ()) -> Snapshot:
    """``collect`` for a giftsync.sandbox.world.SandboxWorld (its URLs, tokens and secrets)."""
    return collect(airtable_url=world.airtable_url, airtable_token=world.airtable_token, base_id=world.base_id,
                   shopify_url=world.shopify_url, klaviyo_url=world.klaviyo_url, log_files=log_files,
                   secrets={"airtable token": world.airtable_token, "shopify token": world.shopify_access_token,
                            "klaviyo key": world.klaviyo_api_key, "code secret": world.code_secret},
                   extra_codes=list(extra_codes) + list(world.demo_codes), skus=world.giftsync_skus)


# -- checking --------------------------------------------------------------------------------------

def _dec(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value)).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        return None


def _ts(value: Any) -> float:
    from datetime import datetime
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _num(gid: Any) -> str:
    s = str(gid or "")
    return s.rsplit("/", 1)[-1] if s.startswith("gid://") else s


def check(s: Snapshot) -> list[Violation]:
    out: list[Violation] = []
    for fn in (_money_once, _receipt_once, _card_once, _terminal, _emails, _balances, _code_leaks, _secret_leaks):
        try:
            out.extend(fn(s))
        except Exception as exc:  # noqa: BLE001 — a checker bug must show, not hide the rest
            out.append(Violation("checker", fn.__name__, f"{type(exc).__name__}: {exc}"))
    return out


def _giftsync_txs(s: Snapshot) -> dict[str, list[tuple[dict, dict]]]:
    by_note: dict[str, list[tuple[dict, dict]]] = defaultdict(list)
    for card in s.cards:
        for tx in card.get("transactions") or []:
            note = tx.get("note") or ""
            if note.startswith("giftsync:"):
                by_note[note].append((card, tx))
    return by_note


def _money_once(s: Snapshot) -> list[Violation]:
    out = []
    by_note = _giftsync_txs(s)
    for note, txs in by_note.items():
        if len(txs) > 1:
            out.append(Violation("money-once", note, "moved %d times: %s" % (len(txs), ", ".join(
                f"{_num(c['id'])} {t['amount']} ({_num(t['id'])})" for c, t in txs))))
    for rid, f in s.fields("Store Redemptions"):
        txs = by_note.get(f"giftsync:{rid}", [])
        status, outcome = f.get("Status"), f.get("Outcome")
        if status == "Done" and outcome == "Redeemed" and len(txs) != 1:
            out.append(Violation("money-once", f"Store Redemptions/{rid}",
                                 f"Done/Redeemed but {len(txs)} debit(s) keyed giftsync:{rid} in Shopify"))
        if status == "Done" and outcome == "Redeemed" and len(txs) == 1:
            amount = _dec(txs[0][1]["amount"])
            typed = _dec(f.get("Amount"))
            if typed is not None and amount is not None and -amount != typed:
                out.append(Violation("money-once", f"Store Redemptions/{rid}",
                                     f"debited {amount} but the record says {typed}"))
        if status == "Rejected" and txs:
            out.append(Violation("money-once", f"Store Redemptions/{rid}",
                                 f"Rejected ({outcome}) but Shopify has its debit {txs[0][1]['amount']}"))
    # online gift-card transactions of mirrored cards: one receipt each (a card mirrored after the
    # transaction starts from a balance that already holds it: its MIRROR receipt says so)
    by_sid = {f.get("Shopify ID"): rid for rid, f in s.fields("Gift Cards") if f.get("Shopify ID")}
    mirrored = set(by_sid)
    first_receipt: dict[str, str] = {}
    for _, f in s.fields("Receipts"):
        for card in f.get("Card") or []:
            t = str(f.get("Time") or "")
            if t and (card not in first_receipt or t < first_receipt[card]):
                first_receipt[card] = t
    receipts = Counter(f.get("Receipt ID") for _, f in s.fields("Receipts"))
    rows = {f.get("Order Key"): f for _, f in s.fields("Online Orders")}
    for order in s.orders:
        for tx in order.get("transactions") or []:
            if tx.get("gateway") != "gift_card" or tx.get("status") != "SUCCESS":
                continue
            card_num = (tx.get("receipt") or {}).get("gift_card_id")
            sid = f"gid://shopify/GiftCard/{card_num}"
            if not card_num or sid not in mirrored:
                continue
            since = first_receipt.get(by_sid[sid], "")
            if since and _ts(since) > _ts(tx.get("processedAt")):
                continue
            row = rows.get(f"redemption:{_num(order['id'])}")
            if row is None or row.get("Status") != "Done":
                continue   # reported by the terminal check
            rid = f"online:{_num(order['id'])}:{_num(tx['id'])}"
            if receipts.get(rid, 0) != 1:
                out.append(Violation("money-once", f"order {order.get('name')}",
                                     f"gift-card transaction {_num(tx['id'])} has {receipts.get(rid, 0)} receipt(s) {rid}"))
    return out


def _receipt_once(s: Snapshot) -> list[Violation]:
    counts = Counter(f.get("Receipt ID") for _, f in s.fields("Receipts"))
    return [Violation("receipt-once", str(k), f"written {n} times") for k, n in counts.items() if k and n > 1]


def _card_once(s: Snapshot) -> list[Violation]:
    out = []
    notes = Counter(c.get("note") for c in s.cards if (c.get("note") or "").startswith("giftsync:"))
    for note, n in notes.items():
        if n > 1:
            out.append(Violation("card-once", note, f"{n} Shopify cards carry this note"))
    gift = s.fields("Gift Cards")
    for key in ("Shopify ID", "Code Hash"):
        counts = Counter(f.get(key) for _, f in gift if f.get(key))
        for value, n in counts.items():
            if n > 1:
                out.append(Violation("card-once", f"Gift Cards {key}={str(value)[:24]}", f"{n} rows"))
    mirrored = {f.get("Shopify ID") for _, f in gift}
    for c in s.cards:
        if (c.get("note") or "").startswith("giftsync:") and c["id"] not in mirrored:
            out.append(Violation("card-once", c["id"], f"created by giftsync ({c.get('note')}) but not in Gift Cards"))
    by_source = Counter(f.get("Source Record") for _, f in gift if f.get("Source Record"))
    shop_by_request = Counter()
    for c in s.cards:
        m = _REQUEST_NOTE.match(c.get("note") or "")
        if m:
            shop_by_request[m.group(1)] += 1
    for rid, f in s.fields("Card Requests"):
        if f.get("Status") == "Done":
            q = int(f.get("Quantity") or 0)
            links = len(f.get("Cards") or [])
            if not (by_source.get(rid, 0) == q and links == q):
                out.append(Violation("card-once", f"Card Requests/{rid}",
                                     f"quantity {q}: {by_source.get(rid, 0)} Gift Cards rows, {links} linked"))
            if (f.get("Kind") or "Digital") == "Digital" and shop_by_request.get(rid, 0) != q:
                out.append(Violation("card-once", f"Card Requests/{rid}",
                                     f"quantity {q}: {shop_by_request.get(rid, 0)} Shopify cards with its note"))
        elif f.get("Status") == "Rejected" and (by_source.get(rid) or shop_by_request.get(rid)):
            out.append(Violation("card-once", f"Card Requests/{rid}",
                                 f"Rejected but {shop_by_request.get(rid, 0)} card(s) exist for it"))
    # online purchases: one card per giftsync SKU unit
    units = {}
    skus = {k.upper() for k in s.skus}
    for order in s.orders:
        n = sum(int(line.get("quantity") or 0) for line in order.get("lines") or []
                if str(line.get("sku") or "").upper() in skus)
        if n:
            units[_num(order["id"])] = (n, order)
    made = Counter()
    for c in s.cards:
        m = _ORDER_NOTE.match(c.get("note") or "")
        if m:
            made[m.group(1)] += 1
    rows = {f.get("Order Key"): f for _, f in s.fields("Online Orders")}
    for num, (n, order) in units.items():
        row = rows.get(f"purchase:{num}")
        if made.get(num, 0) > n:
            out.append(Violation("card-once", f"order {order.get('name')}", f"{n} units but {made[num]} cards"))
        if row is not None and row.get("Status") == "Done" and made.get(num, 0) != n:
            out.append(Violation("card-once", f"order {order.get('name')}",
                                 f"Done with {n} units but {made.get(num, 0)} cards"))
    return out


def _order_sells_cards(order: dict, skus: set[str]) -> bool:
    return any(line.get("isGiftCard") or str(line.get("sku") or "").upper() in skus for line in order.get("lines") or [])


def _order_spends_cards(order: dict) -> bool:
    return any(tx.get("gateway") == "gift_card" and tx.get("status") == "SUCCESS"
               for tx in order.get("transactions") or [])


def _terminal(s: Snapshot) -> list[Violation]:
    out = []
    for table in FORM_TABLES:
        for rid, f in s.fields(table):
            status = f.get("Status") or "New"
            subject = f"{table}/{rid}"
            if status not in TERMINAL_FORM:
                out.append(Violation("terminal", subject, f"left in {status!r} (Attempt {str(f.get('Attempt'))[:12]!r})"))
                continue
            if not f.get("Outcome"):
                out.append(Violation("terminal", subject, f"{status} without an Outcome"))
            if status == "Rejected" and table != "Balance Checks" and not f.get("Reason"):
                out.append(Violation("terminal", subject, "Rejected without a Reason"))
            if not f.get("Notified"):
                out.append(Violation("terminal", subject, f"{status} but Notified is not ticked"))
            if str(f.get("Attempt") or "").startswith("nonce:"):
                out.append(Violation("terminal", subject, "finished with its nonce still in Attempt"))
    for rid, f in s.fields("Online Orders"):
        if f.get("Status") not in TERMINAL_ORDER:
            out.append(Violation("terminal", f"Online Orders/{f.get('Order Key')}", f"left in {f.get('Status')!r}"))
        if str(f.get("Attempt") or "").startswith("nonce:") and f.get("Status") in TERMINAL_ORDER:
            out.append(Violation("terminal", f"Online Orders/{f.get('Order Key')}", "finished with its nonce"))
    rows = {f.get("Order Key"): f for _, f in s.fields("Online Orders")}
    skus = {k.upper() for k in s.skus}
    for order in s.orders:
        if order.get("financialStatus") not in ("PAID", "PARTIALLY_REFUNDED", "REFUNDED"):
            continue
        num, name = _num(order["id"]), order.get("name")
        tags = {t.lower() for t in order.get("tags") or []}
        if _order_sells_cards(order, skus):
            row = rows.get(f"purchase:{num}")
            if row is None:
                out.append(Violation("terminal", f"order {name}", "sells gift cards but has no purchase row"))
            elif row.get("Status") == "Done" and s.order_tag and s.order_tag.lower() not in tags:
                out.append(Violation("terminal", f"order {name}", f"purchase Done but not tagged {s.order_tag}"))
        if _order_spends_cards(order):
            row = rows.get(f"redemption:{num}")
            if row is None:
                out.append(Violation("terminal", f"order {name}", "paid with a gift card but has no redemption row"))
            elif row.get("Status") == "Done" and s.redemption_tag and s.redemption_tag.lower() not in tags:
                out.append(Violation("terminal", f"order {name}", f"redemption Done but not tagged {s.redemption_tag}"))
    return out


def _expected_uids(s: Snapshot) -> dict[str, str]:
    """unique_id → what asks for it, from the finished records alone."""
    want: dict[str, str] = {}
    for rid, f in s.fields("Store Redemptions"):
        if f.get("Status") in TERMINAL_FORM and f.get("Notified"):
            want[f"redemption:{rid}:store"] = f"Store Redemptions/{rid}"
    for rid, f in s.fields("Card Requests"):
        if f.get("Status") == "Done":
            kind = (f.get("Kind") or "Digital")
            q = int(f.get("Quantity") or 0)
            if f.get("Recipient Email"):
                for i in range(q):
                    want[f"request:{rid}:{'deliver' if kind == 'Digital' else 'activate'}:{i}"] = f"Card Requests/{rid}"
            if f.get("Notified"):
                want[f"request:{rid}:store"] = f"Card Requests/{rid}"
                if f.get("Is Gift") and f.get("Purchaser Email"):
                    want[f"request:{rid}:purchaser"] = f"Card Requests/{rid}"
        elif f.get("Status") == "Rejected" and f.get("Notified"):
            want[f"request:{rid}:store"] = f"Card Requests/{rid}"
    for rid, f in s.fields("Balance Checks"):
        if f.get("Status") == "Done" and f.get("Notified") and f.get("Email"):
            want[f"check:{rid}:answer"] = f"Balance Checks/{rid}"
    rows = {f.get("Order Key"): f for _, f in s.fields("Online Orders")}
    for c in s.cards:
        m = _ORDER_NOTE.match(c.get("note") or "")
        if m and (rows.get(f"purchase:{m.group(1)}") or {}).get("Status") == "Done":
            want[f"order:{m.group(1)}:deliver:{m.group(2)}"] = f"order {m.group(1)}"
    return want


def _emails(s: Snapshot) -> list[Violation]:
    out = []
    kept = [e for e in s.events if not e.get("dropped")]
    counts = Counter(e.get("unique_id") for e in kept if e.get("unique_id"))
    for uid, n in counts.items():
        if n > 1:
            out.append(Violation("email-once", uid, f"accepted {n} times (not deduplicated)"))
    sent = Counter()
    by_event = {e.get("id"): e for e in s.events}
    for item in s.outbox:
        uid = item.get("unique_id") or (by_event.get(item.get("event")) or {}).get("unique_id")
        if uid:
            sent[(uid, item.get("to"))] += 1
    for (uid, to), n in sent.items():
        if n > 1:
            out.append(Violation("email-once", uid, f"{n} emails to {to}"))
    have = set(counts)
    for uid, subject in _expected_uids(s).items():
        if uid not in have:
            out.append(Violation("email-lost", subject, f"no event {uid} accepted by Klaviyo"))
    return out


def _balances(s: Snapshot) -> list[Violation]:
    out = []
    shop = {c["id"]: c for c in s.cards}
    last: dict[str, tuple[str, int, Decimal, str]] = {}
    for n, (rid, f) in enumerate(s.fields("Receipts")):
        after = _dec(f.get("Balance After"))
        if after is None:
            continue
        for card in f.get("Card") or []:
            key = (str(f.get("Time") or ""), n)
            if card not in last or key > last[card][:2]:
                last[card] = (key[0], key[1], after, str(f.get("Receipt ID")))
    # the ledger adds up: the first Balance After (MIRROR / ISSUE / import) plus every later
    # movement's Amount equals Shopify's balance — a movement recorded twice shows here
    moves: dict[str, list[tuple[tuple[str, int], str, Decimal | None, Decimal | None, str]]] = defaultdict(list)
    for n, (rid, f) in enumerate(s.fields("Receipts")):
        for card in f.get("Card") or []:
            moves[card].append(((str(f.get("Time") or ""), n), str(f.get("Activity") or ""),
                                _dec(f.get("Amount")), _dec(f.get("Balance After")), str(f.get("Receipt ID"))))
    for rid, f in s.fields("Gift Cards"):
        sid = f.get("Shopify ID")
        if not sid:
            continue
        c = shop.get(sid)
        subject = f"Gift Cards/{rid} ({f.get('Card')})"
        rows = sorted(moves.get(rid, []))
        opening = next((i for i, r in enumerate(rows) if r[3] is not None), None)
        if c is not None and opening is not None:
            total = rows[opening][3]
            for _, activity, amount, _after, _id in rows[opening + 1:]:
                if activity in ("REDEEM", "CREDIT", "ADJUST") and amount is not None:
                    total += amount
            if total != _dec(c.get("balance")):
                # the card's receipts in order, so the row counted twice (or missing) can be found
                trail = "; ".join(f"{t[0][11:23]} {a} {am} → {af} [{i}]" for (t, _n), a, am, af, i in rows[-12:])
                out.append(Violation("ledger-sum", subject, f"opening {rows[opening][3]} + movements = {total} "
                                     f"≠ Shopify {_dec(c.get('balance'))}; receipts: {trail}"))
        if c is None:
            out.append(Violation("balance", subject, f"Shopify has no card {sid}"))
            continue
        sb, ab = _dec(c.get("balance")), _dec(f.get("Balance"))
        if sb != ab:
            out.append(Violation("balance", subject, f"Airtable {ab} ≠ Shopify {sb}"))
        if rid not in last:
            out.append(Violation("balance", subject, "no receipt with a Balance After"))
        elif last[rid][2] != sb:
            out.append(Violation("balance", subject,
                                 f"last Balance After {last[rid][2]} ({last[rid][3]}) ≠ Shopify {sb}"))
    return out


def _texts(s: Snapshot, *, with_delivery: bool = False) -> Iterable[tuple[str, str]]:
    for table, records in s.tables.items():
        for r in records:
            for k, v in (r.get("fields") or {}).items():
                if isinstance(v, (str, list, dict)):
                    yield f"Airtable {table}/{r['id']}.{k}", v if isinstance(v, str) else json.dumps(v)
    for e in s.events:
        if e.get("metric") == DELIVERY_METRIC and not with_delivery:
            continue
        yield f"Klaviyo event {e.get('metric')} {e.get('unique_id')}", json.dumps(
            {k: e.get(k) for k in ("properties", "unique_id", "email")})
    for item in s.outbox:
        if item.get("metric") == DELIVERY_METRIC and not with_delivery:
            continue
        yield f"Klaviyo outbox {item.get('metric')} {item.get('unique_id')}", json.dumps(
            {k: item.get(k) for k in ("subject", "body", "properties")})
    for c in s.cards:
        yield f"Shopify card {c['id']} note", str(c.get("note") or "")
        for tx in c.get("transactions") or []:
            yield f"Shopify tx {tx.get('id')} note", str(tx.get("note") or "")
    for o in s.orders:
        yield f"Shopify order {o.get('name')} tags", " ".join(o.get("tags") or [])
    for name, text in s.logs.items():
        for n, line in enumerate(text.splitlines(), 1):
            yield f"log {Path(name).name}:{n}", line


def _code_leaks(s: Snapshot) -> list[Violation]:
    codes = {str(c.get("code") or "").upper() for c in s.cards} | {c.upper() for c in s.extra_codes}
    codes = {c for c in codes if len(c) >= 8}
    if not codes:
        return []
    rx = re.compile("|".join(sorted(map(re.escape, codes), key=len, reverse=True)))
    out = []
    for where, text in _texts(s):
        up = text.upper()
        m = rx.search(up) or rx.search(_SEP.sub("", up))
        if m:
            code = m.group(0)
            out.append(Violation("code-leak", where, f"whole code …{code[-4:]} in: "
                                 + _SEP.sub(" ", up.replace(code, "<CODE>"))[:160]))
    return out


def _secret_leaks(s: Snapshot) -> list[Violation]:
    out = []
    secrets = {k: v for k, v in s.secrets.items() if v and len(v) >= 8}
    if not secrets:
        return out
    for where, text in _texts(s, with_delivery=True):
        for name, value in secrets.items():
            if value in text:
                out.append(Violation("secret-leak", where, f"the {name} appears"))
    return out


def report(violations: list[Violation], limit: int = 40) -> str:
    if not violations:
        return "violations: 0"
    by = Counter(v.check for v in violations)
    lines = [f"violations: {len(violations)} (" + ", ".join(f"{k} {n}" for k, n in sorted(by.items())) + ")"]
    lines += [f"  {v}" for v in violations[:limit]]
    if len(violations) > limit:
        lines.append(f"  … {len(violations) - limit} more")
    return "\n".join(lines)
