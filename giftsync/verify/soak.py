"""The fault soak: a simulated shop day against three twins that fail ~20 % of the calls.

All three twins inject 429s, 5xx, hangs past the daemon's timeout and connection resets —
before the call takes effect and after it (the dangerous kind) — with a fixed, printed seed,
plus latency on every call, while ``ops`` operations run: store redemptions (some mistyped,
some for more than the balance), balance checks, card requests (digital, gifts, physical),
online purchases (giftsync SKUs and Shopify-native cards), online payments with gift cards,
refunds to cards and admin adjustments. Then the faults stop, the daemon settles (every record
terminal, two more cycles) and the invariants of giftsync/verify/invariants.py are checked.

Form records are put straight into the Airtable twin's store (a shop assistant's form goes
through Airtable's UI, not through our API budget), so the faults hit only the daemon.
Deviation from the real services, for time: the Airtable twin answers a 429 with
``Retry-After: 1`` (real Airtable asks for 30 s) and has no per-base rate limit (the daemon's
own budget still paces it), and the Shopify twin has a Plus-sized cost bucket and moves a card's
updatedAt on every balance change (so the cheap reconcile walk sees admin adjustments; the nightly
full pass, run at the end, must then find nothing left to correct).
"""
from __future__ import annotations

import random
import re
import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..domain.codes import normalise_code
from ..sandbox.world import DaemonProcess
from . import invariants
from .crashtest import start_daemon, CYCLE_LINES, SHOPIFY_OPTIONS, daemon_env
from ..sandbox.world import SandboxWorld

HTTP_TIMEOUT = 0.5
CLAIM_WINDOW = 120.0            # GIFTSYNC_ORDER_OVERLAP_SECONDS in the soak
HANG = 0.8                      # past the daemon's read timeout
# (phase, kind, status, share of all calls); before-faults first, the rest applied after the effect
FAULT_MIX = (
    ("before", "status", 429, 0.015),
    ("before", "status", 503, 0.025),
    ("before", "status", 500, 0.015),
    ("before", "status", 502, 0.015),
    ("before", "reset", 0, 0.05),
    ("before", "hang", 0, 0.025),
    ("after", "status", 500, 0.02),
    ("after", "reset", 0, 0.02),
    ("after", "hang", 0, 0.015),
)
LATENCY = {"kind": "latency", "delay": 0.002, "jitter": 0.02}
RETRY_PATTERNS = {
    "adapter retries (airtable)": re.compile(r"giftsync\.adapters\.airtable: .*; retrying"),
    "failed calls (shopify)": re.compile(r"giftsync\.adapters\.shopify: shopify \w+ failed"),
    "failed calls (klaviyo)": re.compile(r"giftsync\.adapters\.klaviyo: klaviyo .* failed"),
    "email retries": re.compile(r"email retry "),
    "read-backs after an ambiguous answer": re.compile(r"ambiguous .*reading back"),
    "records left for the next cycle": re.compile(r"left for the next cycle"),
    "failed steps (poll failed)": re.compile(r"step failed"),
    "lease calls failed": re.compile(r"lease call failed"),
}
CODE_IN_EMAIL = re.compile(r"gift card code:\s*([A-Za-z0-9 -]{8,30})", re.IGNORECASE)
CENT = Decimal("0.01")


def fault_rules(seed: int, rate: float = 0.20) -> list[dict]:
    """The FAULT_MIX scaled to ``rate``, as conditional probabilities in rule order (the plan
    stops at the first rule that fires, so each rule's share of all calls is as listed)."""
    scale = rate / sum(share for *_, share in FAULT_MIX)
    rules: list[dict] = [dict(LATENCY)]
    for phase in ("before", "after"):
        left = 1.0
        for when, kind, status, share in FAULT_MIX:
            if when != phase:
                continue
            p = share * scale / left
            left -= share * scale
            rule = {"kind": kind, "when": when, "probability": round(min(1.0, p), 6)}
            if kind == "status":
                rule["status"] = status
            if kind == "hang":
                rule["delay"] = HANG
            rules.append(rule)
    return rules


@dataclass
class SoakResult:
    ok: bool
    ops: Counter = field(default_factory=Counter)
    faults: dict = field(default_factory=dict)
    calls: dict = field(default_factory=dict)
    retries: Counter = field(default_factory=Counter)
    violations: list = field(default_factory=list)
    seconds: float = 0.0


class ShopDay:
    """The day's operations, drawn from one seeded generator."""

    def __init__(self, world: SandboxWorld, rng: random.Random) -> None:
        self.world = world
        self.rng = rng
        self.codes: dict[str, Decimal] = {}          # code → what we believe Shopify holds
        self.extra_codes: set[str] = set()
        self.ops: Counter = Counter()
        self.serial = 0
        self.emails = [f"customer{n}@example.com" for n in range(60)] + [c.email for c in world.customers]
        self._outbox_seen = 0
        self.orders: list[tuple[str, str, Decimal]] = []   # (order id, card code, amount paid)

    # -- Airtable forms: straight into the twin's store (not through the faulted API) -----------
    def form(self, table: str, fields: dict) -> str:
        twin = self.world.twin("airtable")
        app = twin.app
        with app.lock:
            base = app.store.base(self.world.base_id)
            t = app.store.table(base, table)
            rec = app.store.create(base, t, app.store.prepare(base, t, fields, False))
            app.dirty = True
        return rec["id"]

    def pending(self) -> int:
        app = self.world.twin("airtable").app
        n = 0
        with app.lock:
            base = app.store.base(self.world.base_id)
            for name in ("Store Redemptions", "Card Requests", "Balance Checks"):
                t = app.store.table(base, name)
                status = app.store.find_field(t, "Status")
                for rec in t["records"].values() if isinstance(t["records"], dict) else t["records"]:
                    cells = rec.get("cells") or rec.get("fields") or {}
                    value = cells.get(status["id"]) if status else None
                    if value not in ("Done", "Rejected"):
                        n += 1
        return n

    # -- the cards we know ----------------------------------------------------------------------
    def seed_cards(self, n: int) -> None:
        for c in self.world.cards:
            if c.enabled:
                self.codes[c.code] = c.balance
        for i in range(n):
            answer = self.world.control("shopify", "POST", "/__sandbox/shopify/cards",
                                        {"amount": "500.00", "note": f"issued at the till {i}"})
            code = normalise_code(answer.get("code") or answer.get("card", {}).get("code"))
            self.codes[code] = Decimal("500.00")
        self.extra_codes |= set(self.codes)

    def learn_codes(self) -> None:
        items = self.world.twin("klaviyo").app.outbox_items(metric="Gift Card Delivered")
        for item in items[self._outbox_seen:]:
            code = (item.get("properties") or {}).get("Code")
            if code:
                self.codes.setdefault(normalise_code(code), Decimal("0"))
        self._outbox_seen = len(items)

    def refresh_balances(self) -> None:
        cards = self.world.control("shopify", "GET", "/__sandbox/shopify/cards?include_codes=1")["cards"]
        for c in cards:
            code = normalise_code(c.get("code") or "")
            if code in self.codes:
                self.codes[code] = Decimal(c["balance"]) if c.get("enabled") else Decimal("0")

    def some_code(self, *, funded: bool = True) -> str | None:
        pool = [c for c, b in self.codes.items() if b > 1] if funded else list(self.codes)
        return self.rng.choice(pool) if pool else None

    def amount(self, top: Decimal) -> Decimal:
        top = min(top, Decimal("40"))
        if top < 1:
            return Decimal("1.00")
        return (Decimal(self.rng.randint(100, int(top * 100))) / 100).quantize(CENT)

    # -- one operation ----------------------------------------------------------------------------
    def step(self) -> None:
        r = self.rng.random()
        store = self.rng.choice(self.world.stores).record_id
        if r < 0.36:
            code = self.some_code()
            if code is None:
                return
            amount = self.amount(self.codes[code])
            typed = code
            if self.rng.random() < 0.15:
                typed = " ".join(code[i:i + 4] for i in range(0, len(code), 4)).lower()
            if self.rng.random() < 0.05:
                amount = self.codes[code] + Decimal("50")           # more than the card holds
            if self.rng.random() < 0.03:
                typed = code[:-1] + ("X" if code[-1] != "X" else "Y")   # a typo
            self.form("Store Redemptions", {"Code": typed, "Amount": float(amount), "Store": [store],
                                            "Staff": "soak"})
            self.codes[code] = max(Decimal("0"), self.codes[code] - amount)
            self.ops["store redemption"] += 1
        elif r < 0.50:
            code = self.some_code(funded=False) if self.rng.random() < 0.9 else "UNKNOWN" + str(self.rng.randint(10**8, 10**9))
            self.form("Balance Checks", {"Code": code, "Email": self.rng.choice(self.emails)})
            self.ops["balance check"] += 1
        elif r < 0.60:
            if self.rng.random() < 0.25:
                self.serial += 1
                serial = f"SOAK{self.rng.randint(10**7, 10**8 - 1)}S{self.serial:05d}"
                self.extra_codes.add(serial)
                self.form("Card Requests", {"Request": "soak physical", "Store": [store], "Amount": 20, "Quantity": 1,
                                            "Kind": "Physical", "Physical Serials": serial, "Staff": "soak"})
                self.codes[serial] = Decimal("20")
            else:
                gift = self.rng.random() < 0.4
                fields = {"Request": "soak digital", "Store": [store], "Amount": self.rng.choice([25, 50, 75]),
                          "Quantity": self.rng.randint(1, 2), "Kind": "Digital",
                          "Recipient Name": "Rita R", "Recipient Email": self.rng.choice(self.emails), "Staff": "soak"}
                if gift:
                    fields.update({"Is Gift": True, "Purchaser Email": self.rng.choice(self.emails),
                                   "Purchaser Name": "Paul P"})
                self.form("Card Requests", fields)
            self.ops["card request"] += 1
        elif r < 0.72:
            buyer = self.rng.choice(self.world.customers).email
            lines = [{"sku": self.rng.choice(self.world.giftsync_skus), "quantity": self.rng.randint(1, 2),
                      "properties": {"Recipient email": self.rng.choice(self.emails)}
                      if self.rng.random() < 0.5 else {}}]
            if self.rng.random() < 0.3:
                lines.append({"sku": "SHOP-GIFT-CARD", "quantity": 1})
            if self.rng.random() < 0.3:
                lines.append({"sku": "MUG-01", "quantity": 1})
            self.world.buy_online(buyer, lines)
            self.ops["online purchase"] += 1
        elif r < 0.93:
            code = self.some_code()
            if code is None:
                return
            amount = self.amount(self.codes[code])
            try:
                order = self.world.pay_online(self.rng.choice(self.world.customers).email, code, amount, sku="MUG-01")
            except RuntimeError:
                self.refresh_balances()
                return
            self.codes[code] -= amount
            self.orders.append((order["id"], code, amount))
            self.ops["online payment"] += 1
        elif r < 0.97:
            if not self.orders:
                return
            order_id, code, paid = self.orders.pop(self.rng.randrange(len(self.orders)))
            back = min(paid, Decimal("5.00"))
            try:
                self.world.refund_online(order_id, code, back, "soak refund")
            except RuntimeError:
                return
            self.codes[code] += back
            self.ops["online refund to a card"] += 1
        else:
            code = self.some_code()
            if code is None:
                return
            delta = Decimal(self.rng.choice(["-2.00", "3.50", "-1.25", "10.00"]))
            if self.codes[code] + delta <= 0:
                return
            try:
                self.world.adjust_balance(code, delta, "soak admin adjustment")
            except RuntimeError:
                return
            self.codes[code] += delta
            self.ops["admin adjustment"] += 1


def _faults(world: SandboxWorld) -> tuple[dict, dict]:
    injected, calls = {}, {}
    for name in ("airtable", "shopify", "klaviyo"):
        data = world.control(name, "GET", "/__sandbox/faults")
        injected[name] = data.get("injected", {})
        calls[name] = data.get("calls", 0)
    return injected, calls


def soak(workdir: Path, *, ops: int = 2000, seed: int = 6006, rate: float = 0.20, cards: int = 40,
         backlog: int = 150, drain_seconds: float = 900.0, claim_window: float = CLAIM_WINDOW,
         out=sys.stdout) -> SoakResult:
    t0 = time.time()
    shutil.rmtree(workdir, ignore_errors=True)
    # persist=False: a twin that saves its whole state after every write turns a long soak quadratic
    world = SandboxWorld(workdir, processes=False, persist=False,
                         airtable_options={"rate_limit": False, "retry_after": 1},
                         shopify_options={**SHOPIFY_OPTIONS, "bump_updated_at_on_transactions": True},
                         klaviyo_options={"rate_limit": False}).start()
    print(f"\nfault soak: {ops} operations, faults on {rate:.0%} of calls, seed {seed}, "
          f"timeout {HTTP_TIMEOUT:g} s, hangs {HANG:g} s", file=out, flush=True)
    rng = random.Random(seed)
    day = ShopDay(world, rng)
    day.seed_cards(cards)
    rules = fault_rules(seed, rate)
    for n, name in enumerate(("airtable", "shopify", "klaviyo")):
        world.control(name, "POST", "/__sandbox/faults", {"seed": seed + n, "rules": rules})
    env = daemon_env(world, interval=1.0, lease=10.0, GIFTSYNC_HTTP_TIMEOUT_SECONDS=f"{HTTP_TIMEOUT:g}",
                     GIFTSYNC_AIRTABLE_RATE="60", GIFTSYNC_KLAVIYO_RATE="100",
                     GIFTSYNC_BALANCE_CHECK_LIMIT="100000", GIFTSYNC_LEASE_SETTLE_SECONDS="0.3",
                     # the claim window of ADR 0004 must outlast how late an order is recorded under
                     # faults (minutes); the settle waits it out so admin adjustments get recorded
                     GIFTSYNC_ORDER_OVERLAP_SECONDS=f"{claim_window:g}")
    logs = [workdir / "daemon-1.log"]
    daemon = start_daemon(env, workdir, logs[0])
    result = SoakResult(ok=False)
    try:
        last_learn = 0.0
        printed = 0
        while sum(day.ops.values()) < ops:
            if not daemon.alive():
                # a crash is a finding: restart and go on (the invariants judge the outcome)
                print(f"  daemon exited ({daemon.returncode}); restarting", file=out, flush=True)
                logs.append(workdir / f"daemon-{len(logs) + 1}.log")
                daemon = start_daemon(env, workdir, logs[-1])
            if day.pending() >= backlog:
                time.sleep(0.2)
                continue
            day.step()
            if time.time() - last_learn > 5:
                day.learn_codes()
                last_learn = time.time()
            n = sum(day.ops.values())
            if n % 250 == 0 and n and n != printed:
                printed = n
                print(f"  {n} operations submitted after {time.time() - t0:.0f} s", file=out, flush=True)
        print(f"  all {sum(day.ops.values())} operations submitted after {time.time() - t0:.0f} s; draining",
              file=out, flush=True)
        deadline = time.time() + drain_seconds
        while day.pending() and time.time() < deadline:
            time.sleep(1)
        injected, calls = _faults(world)
        for name in ("airtable", "shopify", "klaviyo"):
            world.control(name, "DELETE", "/__sandbox/faults")
        # settle: records terminal, then two full cycles of every prong with the faults off
        mark = logs[-1].stat().st_size if logs[-1].exists() else 0
        quiet_from = time.time() + claim_window + 10      # the last admin adjustment is then recorded
        settle_deadline = time.time() + claim_window + 300
        while time.time() < settle_deadline:
            with open(logs[-1], "rb") as fh:
                fh.seek(mark)
                tail = fh.read().decode("utf-8", "replace")
            if not day.pending() and time.time() >= quiet_from and all(tail.count(k) >= 3 for k in CYCLE_LINES):
                break
            time.sleep(0.5)
        daemon.stop(60)
        snap = invariants.collect_world(world, log_files=logs, extra_codes=day.extra_codes)
        result.violations = invariants.check(snap)
        # then the nightly full reconcile pass: it must find nothing the cycles left behind
        logs.append(workdir / "reconcile-full-pass.log")
        full = DaemonProcess(env, args=("once", "--prong", "reconcile"), cwd=workdir, log_file=logs[-1]).start()
        full.proc.wait(300)
        text = logs[-1].read_text(errors="replace")
        summary = re.findall(r"reconcile full pass (checked=.*)", text)
        print(f"  full reconcile pass afterwards (giftsync once --prong reconcile): exit {full.returncode}, "
              f"{summary[-1] if summary else 'no summary'}", file=out, flush=True)
        for line in text.splitlines():
            if "reconcile adjusted" in line or "reconcile status" in line:
                result.violations.append(invariants.Violation("full-pass", "reconcile", line.split("giftsync.reconcile: ")[-1]))
        if full.returncode != 0 or not summary:
            result.violations.append(invariants.Violation("full-pass", "reconcile", f"exit {full.returncode}"))
        text = "\n".join(Path(p).read_text(errors="replace") for p in logs if Path(p).exists())
        result.retries = Counter({k: len(rx.findall(text)) for k, rx in RETRY_PATTERNS.items()})
        result.ops, result.faults, result.calls = day.ops, injected, calls
        result.seconds = time.time() - t0
        result.ok = not result.violations and sum(day.ops.values()) >= ops
        print_soak(result, seed, out)
        return result
    finally:
        daemon.kill()
        world.stop()


def print_soak(r: SoakResult, seed: int, out=sys.stdout) -> None:
    print(f"\nsoak (seed {seed}) finished in {r.seconds:.0f} s", file=out)
    print(f"operations: {sum(r.ops.values())}", file=out)
    for k, n in sorted(r.ops.items(), key=lambda kv: -kv[1]):
        print(f"  {k:28} {n}", file=out)
    total_faults = 0
    kinds: Counter = Counter()
    for twin, counters in r.faults.items():
        n = sum(counters.values())
        total_faults += n
        calls = r.calls.get(twin) or 0
        print(f"faults injected in {twin}: {n} of {calls} calls ({(n / calls if calls else 0):.1%})", file=out)
        for k, v in sorted(counters.items()):
            kinds[k.split(":")[0] if not k.startswith("status") else k.split("/")[0]] += v
            print(f"  {k:24} {v}", file=out)
    print(f"faults injected in all: {total_faults} of {sum(r.calls.values())} calls "
          f"({total_faults / max(1, sum(r.calls.values())):.1%})", file=out)
    print("retries (from the daemon's logs):", file=out)
    for k, v in r.retries.items():
        print(f"  {k:40} {v}", file=out)
    print(invariants.report(r.violations), file=out, flush=True)
