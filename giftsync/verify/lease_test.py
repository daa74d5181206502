"""Two daemons on one base and shop (docs/adr/0003-lease.md).

1. Daemon A takes the lease; daemon B (its own credentials, so the twins' request logs tell
   the two apart by the credential's fingerprint) stands by. While A works, B sends nothing
   but reads of the Status table.
2. A is SIGKILLed; B takes over within the lease length plus one interval.
3. B is cut off from the Status table (every Status call fails) for longer than its lease:
   it cannot renew, and it stops claiming new records before its lease ends (the last claim is
   compared with the ``Lease Until`` of its last successful renewal). With the faults gone its
   lease has ended, so it must take it again through the full protocol — not renew in place:
   its log says the lease ran out and then ``lease taken`` (not ``renewed``), and the Airtable
   twin's request log shows, after the faults are lifted, B's write of the lease row, then a
   re-read of it, and only then B's next claim. Then it finishes everything.
4. The invariants of giftsync/verify/invariants.py hold at the end.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ..sandbox.world import AIRTABLE_TOKEN, SHOPIFY_ACCESS_TOKEN, SHOPIFY_SCOPES, DaemonProcess, SandboxWorld
from . import invariants
from .crashtest import CYCLE_LINES, SHOPIFY_OPTIONS, daemon_env, settle, start_daemon
from .scenarios import balance_check, card_request, redemption

INTERVAL = 1.0
LEASE = 4.0
TOKEN_B = "patSandboxGiftsyncB.0123456789abcdef0123456789abcdef"
SHOP_TOKEN_B = "shpat_sandbox_giftsync_b_0123456789abcdef"
KLAVIYO_A = "pk_sandbox_daemon_a_0123456789"
KLAVIYO_B = "pk_sandbox_daemon_b_0123456789"


def fingerprint(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:8]


@dataclass
class TwoDaemonResult:
    ok: bool
    takeover_seconds: float = -1.0
    bound_seconds: float = LEASE + INTERVAL
    standby_writes: list = field(default_factory=list)
    standby_reads: int = 0
    cutoff_margin_seconds: float | None = None
    claims_after_cutoff: int = 0
    lease_ended_before_lift: float | None = None   # seconds B's lease had been over when the faults went
    retaken: bool = False                          # full protocol after the cut (log and twin agree)
    retake_seconds: float | None = None            # faults lifted → B's re-read confirmed the lease
    retake_pause_seconds: float | None = None      # B's write of the lease row → its re-read
    claims_before_retake: int = 0                  # B's claims between its lease end and the re-read
    violations: list = field(default_factory=list)
    problems: list = field(default_factory=list)


def _line_time(daemon: DaemonProcess, text: str, timeout: float) -> float | None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any(text in line for line in daemon.output()):
            return time.time()
        time.sleep(0.02)
    return None


def _lease_call(q: dict) -> str:
    """'read' / 'write' for a successful call on the lease row of the Status table, else ''."""
    if "/Status" not in q["path"] or q.get("fault") or q["status"] != 200:
        return ""
    if q["method"] == "GET" and any("'lease'" in v for v in q.get("query", {}).get("filterByFormula", [])):
        return "read"
    if q["route"] == "records.upsert" and '"lease"' in q["body"]:
        return "write"
    return ""


def _is_claim(q: dict) -> bool:
    return (q["route"] == "records.update" and "/Store Redemptions" in q["path"] and "Processing" in q["body"]
            and not q.get("fault") and q["status"] == 200)


def retake_protocol(log: list[dict], client: set, lifted: float, until: float) -> dict:
    """B's calls after the faults were lifted: its first successful write of the lease row, the
    first successful re-read after it, and its first claim. The full protocol means write, then
    re-read, and no claim before the re-read (none since the lease ended, either)."""
    mine = [q for q in log if q.get("client") in client and q["time"] >= lifted]
    write = next((q for q in mine if _lease_call(q) == "write"), None)
    reread = None if write is None else next(
        (q for q in mine if q["time"] > write["time"] and _lease_call(q) == "read"), None)
    claims = [q for q in log if q.get("client") in client and _is_claim(q)]
    early = [q for q in claims if q["time"] >= until and (reread is None or q["time"] < reread["time"])]
    first_claim = next((q for q in claims if reread is not None and q["time"] > reread["time"]), None)
    return {"write": write, "reread": reread, "early_claims": early, "first_claim": first_claim}


def _ran_out_then_taken(text: str, start: int) -> int | None:
    """End of B's ``lease taken`` line that follows a ``lease ran out`` line after ``start``."""
    ran_out = text.find("giftsync.lease: lease ran out ", start)
    if ran_out < 0:
        return None
    taken = text.find("giftsync.lease: lease taken holder=", ran_out)
    if taken < 0:
        return None
    end = text.find("\n", taken)
    return len(text) if end < 0 else end


def two_daemons(workdir: Path, out=sys.stdout) -> TwoDaemonResult:
    shutil.rmtree(workdir, ignore_errors=True)
    world = SandboxWorld(workdir, processes=False,
                         airtable_options={"rate_limit": False, "token": [AIRTABLE_TOKEN, TOKEN_B]},
                         shopify_options={**SHOPIFY_OPTIONS, "tokens": {SHOPIFY_ACCESS_TOKEN: list(SHOPIFY_SCOPES),
                                                                         SHOP_TOKEN_B: list(SHOPIFY_SCOPES)}},
                         klaviyo_options={"rate_limit": False, "api_key": None}).start()
    r = TwoDaemonResult(ok=False)
    print(f"\ntwo daemons: lease {LEASE:g} s, interval {INTERVAL:g} s", file=out, flush=True)
    common = dict(interval=INTERVAL, lease=LEASE, GIFTSYNC_LEASE_MARGIN_SECONDS="1.5")
    env_a = daemon_env(world, KLAVIYO_API_KEY=KLAVIYO_A, **common)
    env_b = daemon_env(world, AIRTABLE_TOKEN=TOKEN_B, SHOPIFY_ACCESS_TOKEN=SHOP_TOKEN_B, KLAVIYO_API_KEY=KLAVIYO_B,
                       **common)
    fp_b = {fingerprint(f"Bearer {TOKEN_B}"), fingerprint(SHOP_TOKEN_B), fingerprint(f"Klaviyo-API-Key {KLAVIYO_B}")}
    a = b = None
    codes = [c.code for c in world.cards]
    try:
        for i in range(3):
            redemption(world, world.card(3).code, 2 + i)
        card_request(world, quantity=2, amount=25, recipient="rita@example.com")
        balance_check(world, world.card(0).code, "ada@example.com")
        a = start_daemon(env_a, workdir, workdir / "daemon-a.log")
        if _line_time(a, "lease taken", 30) is None:
            r.problems.append("daemon A never took the lease")
            return r
        b = start_daemon(env_b, workdir, workdir / "daemon-b.log")
        if _line_time(b, "standing by", 30) is None:
            r.problems.append("daemon B did not stand by")
        # more work while both run: only A may act
        for i in range(4):
            redemption(world, world.card(0).code, 1 + i, store=1)
            time.sleep(0.5)
        settle(a, cycles=2, timeout=60)
        for name in ("airtable", "shopify", "klaviyo"):
            for req in world.twin(name).requests():
                if req.get("client") not in fp_b:
                    continue
                if name == "airtable" and req["method"] == "GET" and "/Status" in req["path"]:
                    r.standby_reads += 1
                else:
                    r.standby_writes.append(f"{name} {req['method']} {req['path']} ({req['route']})")
        print(f"  standby B while A held the lease: {r.standby_reads} Status reads, "
              f"{len(r.standby_writes)} other calls", file=out, flush=True)
        # SIGKILL the holder: B takes over
        killed = time.time()
        a.kill()
        taken = _line_time(b, "lease taken over", LEASE + INTERVAL + 20)
        if taken is None:
            r.problems.append("B never took over")
        else:
            r.takeover_seconds = taken - killed
            print(f"  A SIGKILLed; B took over after {r.takeover_seconds:.2f} s "
                  f"(bound: lease {LEASE:g} s + interval {INTERVAL:g} s = {r.bound_seconds:g} s)", file=out, flush=True)
        redemption(world, world.card(1).code, 1.5)
        settle(b, cycles=2, timeout=60)
        # cut B off from the Status table, for longer than its lease: it cannot renew
        log_b = workdir / "daemon-b.log"
        mark = len(log_b.read_text(errors="replace"))
        cut = time.time()
        world.control("airtable", "POST", "/__sandbox/faults",
                      {"rules": [{"kind": "status", "status": 503, "match": r"/Status\b"}]})
        stop_feed = cut + LEASE + 2 * INTERVAL + 2
        n = 0
        while time.time() < stop_feed:
            redemption(world, world.card(3).code, 1, store=2, staff=f"cutoff-{n}")
            n += 1
            time.sleep(0.25)
        log = world.twin("airtable").requests()
        renewals = [q for q in log if q.get("client") in fp_b and _lease_call(q) == "write" and q["time"] < cut + 0.5]
        claims = [q for q in log if q.get("client") in fp_b and _is_claim(q) and q["time"] >= cut]
        until = None
        if renewals:
            body = json.loads(renewals[-1]["body"])
            until_text = body["records"][0]["fields"].get("Lease Until")
            until = datetime.fromisoformat(until_text.replace("Z", "+00:00")).timestamp()
            last_claim = max((q["time"] for q in claims), default=None)
            r.claims_after_cutoff = len(claims)
            if last_claim is not None:
                r.cutoff_margin_seconds = until - last_claim
            print(f"  B cut off from Status at +0: {len(claims)} claim(s) afterwards, the last "
                  + (f"{r.cutoff_margin_seconds:.2f} s before its lease ended" if last_claim is not None else "-")
                  + f"; no claim after the lease end: {last_claim is None or last_claim < until}",
                  file=out, flush=True)
            if last_claim is not None and last_claim >= until:
                r.problems.append("B claimed a record after its lease ended")
        else:
            r.problems.append("no successful lease renewal of B found before the cut")
        world.control("airtable", "DELETE", "/__sandbox/faults")
        lifted = time.time()
        if until is not None:
            r.lease_ended_before_lift = lifted - until
            if lifted <= until:
                r.problems.append(f"the cut ended {until - lifted:.2f} s before B's lease did: the re-take "
                                  "after a lease that ran out was not exercised")
        # B's lease has ended: it takes it again through the full protocol (write, pause, re-read),
        # never a renewal in place, and claims nothing before the re-read; then it finishes the rest
        retake_at = None
        deadline = time.time() + LEASE + 10 * INTERVAL
        while time.time() < deadline and retake_at is None:
            retake_at = _ran_out_then_taken(log_b.read_text(errors="replace"), mark)
            time.sleep(0.1)
        if retake_at is not None:
            deadline = time.time() + 90
            while time.time() < deadline:
                tail = log_b.read_text(errors="replace")[retake_at:]
                if all(tail.count(k) >= 2 for k in CYCLE_LINES):
                    break
                time.sleep(0.2)
        logged = retake_at is not None
        seen = retake_protocol(world.twin("airtable").requests(), fp_b, lifted, until if until is not None else cut)
        r.claims_before_retake = len(seen["early_claims"])
        if seen["reread"] is not None:
            r.retake_seconds = seen["reread"]["time"] - lifted
            r.retake_pause_seconds = seen["reread"]["time"] - seen["write"]["time"]
        r.retaken = logged and seen["reread"] is not None and not seen["early_claims"]
        if seen["reread"] is not None:
            claim = seen["first_claim"]
            how = (f"write, re-read {r.retake_pause_seconds:.2f} s later, {r.retake_seconds:.2f} s after the lift, "
                   + (f"first claim {claim['time'] - seen['reread']['time']:.2f} s after the re-read" if claim
                      else "no claim since"))
        else:
            how = "no write then re-read of the lease row"
        print(f"  faults lifted {r.lease_ended_before_lift or 0:.2f} s after B's lease ended; B took it again: "
              f"{'yes' if r.retaken else 'NO'} (log: {'ran out, then taken' if logged else 'no re-take'}; "
              f"twin: {how}); claims between its lease end and the re-read: {r.claims_before_retake}",
              file=out, flush=True)
        if not logged:
            r.problems.append("B did not take the lease again after the cut (no 'lease ran out' then "
                              "'lease taken' in its log)")
        if seen["write"] is None or seen["reread"] is None:
            r.problems.append("B's re-take after the cut is not in the Airtable log as a write then a re-read "
                              "of the lease row")
        if seen["early_claims"]:
            r.problems.append(f"B claimed {len(seen['early_claims'])} record(s) after its lease ended, before "
                              "the re-read of its re-take")
        deadline = time.time() + 60
        while time.time() < deadline:
            snap = invariants.collect_world(world, extra_codes=codes)
            if not [v for v in invariants.check(snap) if v.check == "terminal"]:
                break
            time.sleep(1)
        b.stop(30)
        snap = invariants.collect_world(world, log_files=[workdir / "daemon-a.log", workdir / "daemon-b.log"],
                                        extra_codes=codes)
        r.violations = invariants.check(snap)
        if r.standby_writes:
            r.problems.append(f"standby B made {len(r.standby_writes)} calls besides Status reads: "
                              + "; ".join(r.standby_writes[:5]))
        if r.takeover_seconds < 0 or r.takeover_seconds > r.bound_seconds + 0.5:
            r.problems.append(f"takeover took {r.takeover_seconds:.2f} s (bound {r.bound_seconds:g} s)")
        r.ok = not r.violations and not r.problems
        print(invariants.report(r.violations), file=out)
        for p in r.problems:
            print(f"  PROBLEM: {p}", file=out)
        print(f"two daemons: {'pass' if r.ok else 'FAIL'}", file=out, flush=True)
        return r
    finally:
        for d in (a, b):
            if d is not None:
                d.kill()
        world.stop()
