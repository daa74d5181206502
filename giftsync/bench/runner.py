"""One benchmark scenario: fresh twins (separate processes, realistic latency and limits), one
daemon process (giftsync as built, or the seed baseline), one workload, then the figures.

Workload: a bulk card request of B cards submitted at t0, store redemptions arriving at random
(Poisson, ``rate`` per second) for the load window, and ``orders`` online gift-card orders
spread over the window. The load window lasts at least ``window`` seconds and until the bulk
request is finished (at most ``max_load`` seconds); then redemptions still open get ``drain``
seconds to finish. Form submissions go through the Airtable twin's form route (real Airtable
forms do not count against the API's 5 requests/s); online orders through the Shopify twin's
world route (a customer's checkout is not the app's API traffic).

Measured, all from outside the daemon:
- redemption latency: the form record's submission → the store email accepted by Klaviyo
  (``redemption:<rec>:store`` in the Klaviyo twin's request log; giftsync sends it after the
  record is Done); unfinished ones are counted apart;
- bulk time: submission → the store confirmation ``request:<rec>:store`` accepted and the
  record written Done, whichever is later;
- online purchases Done at the end, and Done by a mark at the same time after t0 in every
  scenario (``window + drain``: a run whose window went on behind an unfinished bulk request
  had longer to finish them), from the Done writes in the Airtable twin's request log;
- requests per service from the twins' request logs, sorted into redemption / bulk / other
  work by table and body (see ``classify``); 429s (and Shopify's THROTTLED answers);
- the daemon's peak RSS (``VmHWM``) and CPU (``utime + stime``) from /proc; idle CPU over a
  window with nothing to do, once start-up is over (``idle_settle`` after the start; measured
  once per mode, before the workload).
"""
from __future__ import annotations

import json
import os
import random
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from ..domain.codes import derive_code
from ..ports import OrderKind, OrderStatus
from ..prongs.online import order_key
from ..sandbox.world import DaemonProcess, SandboxWorld

MODES = ("giftsync", "baseline")

# Per-call latency of the real services (mean ≈ delay + jitter/2) and their real limits.
LATENCY = {
    "airtable": {"delay": 0.10, "jitter": 0.10},   # ≈150 ms
    "shopify": {"delay": 0.15, "jitter": 0.10},    # ≈200 ms
    "klaviyo": {"delay": 0.05, "jitter": 0.10},    # ≈100 ms
}
TWIN_OPTIONS = {
    "airtable": {"rate_limit": True, "requests_per_second": 5, "penalty_seconds": 30.0},
    "shopify": {"bucket_size": 2000, "restore_rate": 100},
    "klaviyo": {"rate_limit": True},                # the published tiers
}
BENCH_CARDS = 40
BENCH_CARD_BALANCE = Decimal("100000.00")
CARD_AMOUNT = "25"


@dataclass
class ScenarioConfig:
    mode: str
    bulk: int
    orders: int = 200
    rate: float = 1.0                 # redemptions per second
    window: float = 120.0             # minimum load window (s)
    max_load: float = 1800.0          # the load window ends by then even if the bulk is not done
    drain: float = 60.0               # after the load window, for open redemptions
    warmup: float = 20.0
    idle_seconds: float = 0.0         # 0 = do not measure idle CPU in this scenario
    idle_settle: float = 45.0         # idle is measured from this long after the start (start-up is not idle)
    seed: int = 7
    root: str = "bench-results/work"
    daemon_env: dict = field(default_factory=dict)


def _tables(seed: dict) -> dict:
    return {t["name"]: t for t in seed["bases"][0]["tables"]}


def bench_codes(n: int = BENCH_CARDS) -> list[str]:
    return [derive_code(b"giftsync-bench", "bench-card", i) for i in range(n)]


def add_bench_cards(world: SandboxWorld, n: int = BENCH_CARDS) -> list[str]:
    """Cards with a large balance for the redemptions, in both seeds (mirrored)."""
    codes = bench_codes(n)
    cards = _tables(world.demo.airtable)["Gift Cards"]["records"]
    shop = world.demo.shopify["giftCards"]
    for i, code in enumerate(codes):
        num = 710000000000 + i
        cards.append({"id": f"recBenchCard{i:05d}", "fields": {
            "Card": "•••• •••• •••• " + code[-4:], "Last 4": code[-4:], "Code Hash": world.hasher.hash(code),
            "Shopify ID": f"gid://shopify/GiftCard/{num}", "Balance": float(BENCH_CARD_BALANCE),
            "Initial Value": float(BENCH_CARD_BALANCE), "Currency": "USD", "Status": "Active", "Kind": "Digital",
            "Source": "Imported", "Source Record": "bench seed"}})
        shop.append({"id": num, "code": code.lower(), "initialValue": str(BENCH_CARD_BALANCE), "currency": "USD",
                     "note": "bench card"})
    return codes


def purchases_done(registry_rows: list[dict], *, done_at: dict[str, float] | None = None,
                   by: float | None = None) -> int:
    """Online purchases finished (Done) among the Online Orders registry rows (Airtable records);
    with ``done_at`` (record id or order key → when it was written Done) and ``by``, only those
    written Done by then (one whose Done write is not in the log does not count)."""
    prefix = order_key(OrderKind.PURCHASE, "0").split(":", 1)[0] + ":"
    done_at = done_at or {}
    n = 0
    for rec in registry_rows:
        fields = rec.get("fields", {})
        key = str(fields.get("Order Key", ""))
        if not key.startswith(prefix) or fields.get("Status") != OrderStatus.DONE.value:
            continue
        if by is not None:
            times = [t for t in (done_at.get(rec.get("id", "")), done_at.get(key)) if t is not None]
            if not times or min(times) > by:
                continue
        n += 1
    return n


def written_with_status(airtable_log: list[dict], tables: tuple[str, ...], statuses: tuple[str, ...],
                        key_field: str | None = None) -> dict[str, float]:
    """When each record of ``tables`` was first written (2xx) with a Status in ``statuses``, from
    the Airtable twin's request log: by record id, and by ``key_field`` for rows written by upsert."""
    out: dict[str, float] = {}
    for entry in airtable_log:
        if entry.get("method") not in ("PATCH", "POST", "PUT") or not 200 <= entry.get("status", 0) < 300 \
                or not any(t in (entry.get("path") or "") for t in tables):
            continue
        try:
            records = json.loads(entry.get("body") or "").get("records") or []
        except (ValueError, AttributeError):
            continue
        for rec in records:
            fields = rec.get("fields") or {}
            if fields.get("Status") not in statuses:
                continue
            for key in (rec.get("id"), fields.get(key_field) if key_field else None):
                if key:
                    out.setdefault(str(key), entry["time"])
    return out


def orders_finished_at(airtable_log: list[dict]) -> dict[str, float]:
    """When each Online Orders row was first written Done (by record id or order key)."""
    return written_with_status(airtable_log, ("/Online Orders",), (OrderStatus.DONE.value,), "Order Key")


class Proc:
    """/proc figures of one process."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.tick = os.sysconf("SC_CLK_TCK")

    def cpu_seconds(self) -> float:
        try:
            text = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return float("nan")
        fields_ = text.rsplit(")", 1)[1].split()
        return (int(fields_[11]) + int(fields_[12])) / self.tick     # utime, stime

    def status(self, key: str) -> float:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0                # kB → MB
        except OSError:
            pass
        return float("nan")


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


class Scenario:
    def __init__(self, cfg: ScenarioConfig, *, echo=None) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.echo = echo
        self.root = Path(cfg.root) / f"{cfg.mode}-B{cfg.bulk}"
        self.world: SandboxWorld | None = None
        self.daemon: DaemonProcess | None = None
        self.redemptions: dict[str, float] = {}     # record id -> submitted (epoch)
        self.bulk_id: str | None = None
        self.bulk_submitted = 0.0
        self.submit_errors = 0
        self.orders_placed = 0

    def say(self, text: str) -> None:
        if self.echo is not None:
            print(f"  [{self.cfg.mode} B={self.cfg.bulk}] {text}", file=self.echo, flush=True)

    # -- the world ---------------------------------------------------------------------------
    def start_world(self) -> SandboxWorld:
        if self.root.exists():
            import shutil
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True)
        world = SandboxWorld(self.root, processes=True, persist=False,
                             airtable_options=TWIN_OPTIONS["airtable"], shopify_options=TWIN_OPTIONS["shopify"],
                             klaviyo_options=TWIN_OPTIONS["klaviyo"])
        self.codes = add_bench_cards(world)
        world.start()
        for n, name in enumerate(("airtable", "shopify", "klaviyo")):
            world.control(name, "POST", "/__sandbox/faults", {
                "seed": self.cfg.seed + n, "rules": [{"kind": "latency", "route": "*", **LATENCY[name]}]})
        self.world = world
        return world

    def start_daemon(self) -> DaemonProcess:
        assert self.world is not None
        env = self.world.daemon_env(interval=None, GIFTSYNC_MAX_QUANTITY="1000",
                                    GIFTSYNC_GIFT_CARD_SKUS=",".join(self.world.giftsync_skus),
                                    **self.cfg.daemon_env)
        daemon = DaemonProcess(env, cwd=self.root, log_file=self.root / "daemon.log")
        if self.cfg.mode == "baseline":
            daemon.cmd = [sys.executable, "-m", "giftsync.bench.baseline"]
        daemon.start()
        self.daemon = daemon
        return daemon

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.stop(timeout=10)   # the baseline finishes a whole bulk request first: not waited for
        if self.world is not None:
            self.world.stop()

    # -- workload ----------------------------------------------------------------------------
    def _form(self, table: str, fields: dict) -> dict:
        w = self.world
        r = requests.post(f"{w.airtable_url}/__sandbox/airtable/forms/{w.base_id}/{quote(table)}",
                          json={"records": [{"fields": fields}], "typecast": True}, timeout=10)
        r.raise_for_status()
        return r.json()["records"][0]

    def records(self, table: str, formula: str | None = None) -> list[dict]:
        w = self.world
        out: list[dict] = []
        params: dict[str, Any] = {"pageSize": 100}
        if formula:
            params["filterByFormula"] = formula
        while True:
            r = requests.get(f"{w.airtable_url}/__sandbox/airtable/records/{w.base_id}/{quote(table)}",
                             params=params, timeout=30)
            r.raise_for_status()
            body = r.json()
            out += body.get("records", [])
            if not body.get("offset"):
                return out
            params["offset"] = body["offset"]

    def submit_bulk(self) -> None:
        store = self.world.stores[0]
        rec = self._form("Card Requests", {
            "Store": [store.record_id], "Amount": float(CARD_AMOUNT), "Quantity": self.cfg.bulk, "Kind": "Digital",
            "Recipient Name": "Bench Company", "Recipient Email": "hr@company.example.com", "Staff": "Bench"})
        self.bulk_id = rec["id"]
        self.bulk_submitted = time.time()

    def submit_redemption(self) -> None:
        store = self.rng.choice(self.world.stores)
        code = self.rng.choice(self.codes)
        try:
            rec = self._form("Store Redemptions", {"Store": [store.record_id], "Code": code, "Amount": 1.0,
                                                   "Staff": "Bench"})
            self.redemptions[rec["id"]] = time.time()
        except Exception:  # noqa: BLE001
            self.submit_errors += 1

    def place_order(self) -> None:
        customer = self.rng.choice(self.world.customers)
        sku = self.rng.choice(self.world.giftsync_skus)
        try:
            self.world.buy_online(customer.email, [{"sku": sku, "quantity": 1}])
            self.orders_placed += 1
        except Exception:  # noqa: BLE001
            self.submit_errors += 1

    def bulk_done(self) -> bool:
        if not self.bulk_id:
            return True
        recs = self.records("Card Requests", f"RECORD_ID()='{self.bulk_id}'")
        return bool(recs) and recs[0]["fields"].get("Status") in ("Done", "Rejected")

    def open_redemptions(self) -> int:
        recs = self.records("Store Redemptions", "AND({Status}!='Done',{Status}!='Rejected')")
        return sum(1 for r in recs if r["id"] in self.redemptions)

    def run_load(self) -> tuple[float, float]:
        cfg = self.cfg
        t0 = time.time()
        if cfg.bulk:
            self.submit_bulk()
        order_times = sorted(self.rng.uniform(0, cfg.window) for _ in range(cfg.orders))
        next_red = t0 + self.rng.expovariate(cfg.rate)
        next_check = t0 + 2.0
        done_bulk = not cfg.bulk
        while True:
            now = time.time()
            while order_times and t0 + order_times[0] <= now:
                order_times.pop(0)
                self.place_order()
            if now >= next_red:
                self.submit_redemption()
                next_red += self.rng.expovariate(cfg.rate)
            if now >= next_check:
                next_check = now + 2.0
                if not done_bulk:
                    done_bulk = self.bulk_done()
                elapsed = now - t0
                if elapsed >= cfg.max_load or (elapsed >= cfg.window and done_bulk and not order_times):
                    break
                if not self.daemon.alive():
                    self.say("daemon exited!")
                    break
            time.sleep(max(0.0, min(next_red, next_check) - time.time(), 0.01))
        t_end = time.time()
        deadline = t_end + cfg.drain
        while time.time() < deadline:
            if self.open_redemptions() == 0:
                break
            time.sleep(1.0)
        time.sleep(2.0)             # the last store emails
        return t0, t_end

    # -- the run -----------------------------------------------------------------------------
    def run(self) -> dict:
        cfg = self.cfg
        self.say("starting twins")
        self.start_world()
        try:
            self.say("starting daemon")
            daemon = self.start_daemon()
            proc = Proc(daemon.pid)
            time.sleep(cfg.warmup)
            idle = None
            if cfg.idle_seconds:
                # the first cycles (first walk, first Status rows, the Shopify prongs' first pass)
                # are start-up work: idle is what the daemon costs once it has nothing to do
                time.sleep(max(0.0, cfg.idle_settle - cfg.warmup))
                c0, w0 = proc.cpu_seconds(), time.time()
                time.sleep(cfg.idle_seconds)
                idle = 100.0 * (proc.cpu_seconds() - c0) / (time.time() - w0)
                self.say(f"idle CPU {idle:.2f} %")
            for name in ("airtable", "shopify", "klaviyo"):
                self.world.control(name, "DELETE", "/__sandbox/requests")
            throttled0 = self.world.control("shopify", "GET", "/__sandbox/shopify/throttled")["throttled"]
            cpu0 = proc.cpu_seconds()
            self.say("load")
            t0, t_end = self.run_load()
            cpu1, t1 = proc.cpu_seconds(), time.time()
            result = self.collect(t0, t_end, t1)
            result["daemon"] = {"pid": daemon.pid, "peak_rss_mb": proc.status("VmHWM"),
                                "rss_mb_end": proc.status("VmRSS"), "cpu_seconds": cpu1 - cpu0,
                                "cpu_percent": 100.0 * (cpu1 - cpu0) / max(1e-9, t1 - t0),
                                "idle_cpu_percent": idle, "alive": daemon.alive()}
            result["shopify_throttled"] = (self.world.control("shopify", "GET", "/__sandbox/shopify/throttled")
                                           ["throttled"] - throttled0)
            result["429s"] = result["requests"]["status_429"] + result["shopify_throttled"]
            return result
        finally:
            self.stop()

    # -- figures -----------------------------------------------------------------------------
    def collect(self, t0: float, t_end: float, t1: float) -> dict:
        logs = {name: self.world.control(name, "GET", "/__sandbox/requests")["requests"]
                for name in ("airtable", "shopify", "klaviyo")}
        accepted: dict[str, float] = {}
        for entry in logs["klaviyo"]:
            if 200 <= entry["status"] < 300 and entry["route"].startswith("events"):
                for uid in _unique_ids(entry["body"]):
                    accepted.setdefault(uid, entry["time"])
        # the request log keeps 64 KB of a body: a big confirmation (1,000 cards listed) is cut and
        # its unique_id lost there; the twin's event store has it (received, whole seconds)
        for event in self.world.control("klaviyo", "GET", "/__sandbox/events")["events"]:
            uid = event.get("unique_id")
            if uid and uid not in accepted and event.get("received"):
                accepted[uid] = datetime.fromisoformat(event["received"]).timestamp()
        # the write that set the record Done/Rejected
        finished_at = written_with_status(logs["airtable"], ("/Store Redemptions", "/Card Requests"),
                                          ("Done", "Rejected"))
        latencies, unfinished = [], 0
        ages: list[float] = []          # unfinished: their age at the end, a lower bound of their latency
        now = time.time()
        forms = {r["id"]: r["fields"] for r in self.records("Store Redemptions")}
        outcomes: dict[str, int] = {}
        for rid, submitted in self.redemptions.items():
            f = forms.get(rid, {})
            status = f.get("Status", "")
            outcomes[f.get("Outcome") or status or "open"] = outcomes.get(f.get("Outcome") or status or "open", 0) + 1
            sent = accepted.get(f"redemption:{rid}:store")
            if status in ("Done", "Rejected") and sent is not None:
                # both the store email accepted and the record written Done/Rejected (the email
                # goes out just before the final write)
                latencies.append(max(sent, finished_at.get(rid, sent)) - submitted)
            else:
                unfinished += 1
                ages.append(now - submitted)
        everyone = latencies + ages     # percentiles over every submitted redemption
        bulk = None
        if self.bulk_id:
            recs = self.records("Card Requests", f"RECORD_ID()='{self.bulk_id}'")
            f = recs[0]["fields"] if recs else {}
            sent = accepted.get(f"request:{self.bulk_id}:store")
            if sent is not None:      # the confirmation accepted and the record written Done, whichever is later
                sent = max(sent, finished_at.get(self.bulk_id, sent))
            issued = len(f.get("Cards") or []) or len(
                self.records("Gift Cards", f"{{Source Record}}='{self.bulk_id}'"))
            bulk = {"record": self.bulk_id, "status": f.get("Status", ""), "cards_issued": issued,
                    "seconds": (sent - self.bulk_submitted) if sent else None,
                    "cards_per_second": issued / ((sent or now) - self.bulk_submitted) if issued else None,
                    "bucket_bound_seconds": self.cfg.bulk / 10.0}
        # online purchases finished by the end (they wait behind a bulk request: ADR 0007), and by
        # a mark at the same time after t0 in every scenario (window + drain): a scenario whose
        # load window ran on behind an unfinished bulk request had longer to finish orders
        registry = self.records("Online Orders")
        orders_done = purchases_done(registry)
        mark = t0 + self.cfg.window + self.cfg.drain
        orders_done_by_mark = purchases_done(registry, done_at=orders_finished_at(logs["airtable"]), by=mark)
        classes = classify(logs, self.bulk_id)
        self._dump(logs)
        n_red = len(latencies)
        issued = bulk["cards_issued"] if bulk else 0
        per = {}
        for svc, counts in classes.items():
            per[svc] = {"total": sum(counts.values()), **counts,
                        "per_redemption": counts["redemption"] / n_red if n_red else None,
                        "per_card": counts["bulk"] / issued if issued else None}
        status_429 = sum(1 for entries in logs.values() for e in entries if e["status"] == 429)
        per["airtable"]["breakdown"] = breakdown(logs["airtable"], self.bulk_id)
        return {
            "mode": self.cfg.mode, "bulk": self.cfg.bulk, "config": asdict(self.cfg),
            "load_seconds": t_end - t0, "run_seconds": t1 - t0,
            "redemptions": {"submitted": len(self.redemptions), "finished": n_red, "unfinished": unfinished,
                            "outcomes": outcomes,
                            # over every submitted one; an unfinished one counts with its age at the
                            # end (a lower bound), so with unfinished > 0 these are lower bounds
                            "p50": percentile(everyone, 0.5), "p95": percentile(everyone, 0.95),
                            "max": max(everyone) if everyone else None,
                            "finished_p95": percentile(latencies, 0.95),
                            "mean": statistics.fmean(everyone) if everyone else None},
            "bulk_request": bulk,
            "orders_placed": self.orders_placed, "orders_done": orders_done,
            "orders_done_by_mark": orders_done_by_mark, "orders_mark_seconds": self.cfg.window + self.cfg.drain,
            "submit_errors": self.submit_errors,
            "requests": {"by_service": per, "status_429": status_429,
                         "log_truncated": any(len(v) >= 20000 for v in logs.values())},
        }


    def _dump(self, logs: dict[str, list[dict]]) -> None:
        """The twins' request logs (time, method, path/route, status) next to the daemon log, for
        a closer look at where requests and waits went."""
        try:
            with open(self.root / "requests.jsonl", "w", encoding="utf-8") as fh:
                for name, entries in logs.items():
                    for e in entries:
                        fh.write(json.dumps({"service": name, "time": e.get("time"), "method": e.get("method"),
                                             "path": e.get("path") or e.get("route"), "status": e.get("status"),
                                             "query": e.get("query"), "body": (e.get("body") or "")[:300]}) + "\n")
        except OSError:
            pass


def breakdown(entries: list[dict], bulk_id: str | None) -> dict[str, int]:
    """Airtable requests by kind of work, method and table (``redemption GET Store Redemptions``)."""
    out: dict[str, int] = {}
    for e in entries:
        kind = next(k for k, n in classify({"airtable": [e], "shopify": [], "klaviyo": []}, bulk_id)["airtable"].items()
                    if n)
        table = (e.get("path") or "").rstrip("/").split("/")
        table = next((t for t in reversed(table) if t and not t.startswith(("rec", "listRecords"))), "?")
        key = f"{kind} {e.get('method')} {table}"
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def _unique_ids(body: str) -> list[str]:
    out = []
    try:
        data = json.loads(body)
    except ValueError:
        return out

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "unique_id" and isinstance(v, str):
                    out.append(v)
                else:
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(data)
    return out


def _updates_by_id(body: str) -> bool:
    """A PATCH naming its records by id (a balances write), not an upsert on a key (a card
    mirrored, whose fields include its Code Hash): the twins log the first part of a body only,
    so ``performUpsert`` (at its end) may be cut off."""
    return body.replace(" ", "").startswith('{"records":[{"id":')


def classify(logs: dict[str, list[dict]], bulk_id: str | None) -> dict[str, dict[str, int]]:
    """Sort each request into the work it served: ``redemption`` (store redemptions), ``bulk``
    (the bulk card request), ``other`` (online orders, lease, polls of other tables, …)."""
    out = {name: {"redemption": 0, "bulk": 0, "other": 0} for name in logs}
    bulk = bulk_id or "\0"
    for e in logs["airtable"]:
        path, body = e["path"], e["body"]
        query = json.dumps(e.get("query") or {})
        if "/Store Redemptions" in path or "Store Redemptions/" in body:
            kind = "redemption"
        elif "/Card Requests" in path and e["method"] == "GET":
            kind = "other"      # the store job's list of new requests, every 5 s whether or not one waits
        elif "/Card Requests" in path or bulk in body or "Store request" in body:
            kind = "bulk"
        elif "/Gift Cards" in path and (_updates_by_id(body) if e["method"] == "PATCH"
                                          else ("Code Hash" in query or "Code Hash" in body)):
            kind = "redemption"
        else:
            kind = "other"
        out["airtable"][kind] += 1
    for e in logs["shopify"]:
        body = e["body"]
        if e["route"] == "giftCardDebit" or "giftsync:rec" in body and "giftCardDebit" in body:
            kind = "redemption"
        elif bulk in body:
            kind = "bulk"
        else:
            kind = "other"
        out["shopify"][kind] += 1
    for e in logs["klaviyo"]:
        body = e["body"]
        if "redemption:rec" in body or "crm:redeemed:" in body:
            kind = "redemption"
        elif bulk in body:
            kind = "bulk"
        else:
            kind = "other"
        out["klaviyo"][kind] += 1
    return out
