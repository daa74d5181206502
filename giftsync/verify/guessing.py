"""Balance-check guessing: 1,000 random codes from one address, then 1,000 from 1,000
addresses, against a daemon with the default throttle. What the guesser gets back must be
one uniform answer (the same properties for every guess, whatever happened inside), and the
guessing must be throttled (most guesses answered without a lookup).
"""
from __future__ import annotations

import json
import random
import secrets
import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..domain.codes import ALPHABET
from ..sandbox.world import DaemonProcess, SandboxWorld
from . import invariants
from .crashtest import start_daemon, SHOPIFY_OPTIONS, daemon_env

GUESSES = 1000


@dataclass
class GuessResult:
    ok: bool
    outcomes: dict = field(default_factory=dict)       # phase → Counter of Outcome
    answers: dict = field(default_factory=dict)        # phase → number of distinct answer bodies
    lookups: dict = field(default_factory=dict)        # phase → Shopify code searches made
    violations: list = field(default_factory=list)


def random_code(rng: random.Random) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(16))


def _insert(world: SandboxWorld, fields: dict) -> str:
    app = world.twin("airtable").app
    with app.lock:
        base = app.store.base(world.base_id)
        t = app.store.table(base, "Balance Checks")
        rec = app.store.create(base, t, app.store.prepare(base, t, fields, False))
        app.dirty = True
    return rec["id"]


def guess_run(workdir: Path, *, guesses: int = GUESSES, seed: int = 66, out=sys.stdout) -> GuessResult:
    shutil.rmtree(workdir, ignore_errors=True)
    world = SandboxWorld(workdir, processes=False, persist=False, airtable_options={"rate_limit": False},
                         shopify_options=dict(SHOPIFY_OPTIONS), klaviyo_options={"rate_limit": False}).start()
    rng = random.Random(seed)
    result = GuessResult(ok=False)
    env = daemon_env(world, GIFTSYNC_AIRTABLE_RATE="100", GIFTSYNC_KLAVIYO_RATE="200")
    print(f"\nbalance-check guessing: {guesses} random codes from one address, {guesses} from {guesses} "
          f"addresses (limit {env.get('GIFTSYNC_BALANCE_CHECK_LIMIT', '5 (default)')} per address and per code)",
          file=out, flush=True)
    daemon = start_daemon(env, workdir, workdir / "daemon.log")
    try:
        phases = {
            "one address": [(_insert(world, {"Code": random_code(rng), "Email": "guesser@example.net"}))
                            for _ in range(guesses)],
        }
        phases["many addresses"] = [
            _insert(world, {"Code": random_code(rng), "Email": f"guesser{n}-{secrets.token_hex(2)}@example.net"})
            for n in range(guesses)]
        wanted = {rid for ids in phases.values() for rid in ids}
        deadline = time.time() + 900
        while time.time() < deadline:
            app = world.twin("airtable").app
            with app.lock:
                base = app.store.base(world.base_id)
                t = app.store.table(base, "Balance Checks")
                status = app.store.find_field(t, "Status")["id"]
                done = sum(1 for rid in wanted if t["records"][rid]["fields"].get(status) in ("Done", "Rejected"))
            if done == len(wanted):
                break
            time.sleep(1)
        time.sleep(2)
        daemon.stop(60)
        events = world.twin("klaviyo").app.event_items(metric="Balance Check Answered", include_dropped=False)
        by_record = {e["unique_id"].split(":")[1]: e for e in events if e.get("unique_id", "").startswith("check:")}
        records = {r["id"]: r["fields"] for r in invariants.airtable_records(
            world.airtable_url, world.airtable_token, world.base_id, "Balance Checks")}
        searches = [q for q in world.twin("shopify").requests() if q["route"] in ("giftCards",)]
        for phase, ids in phases.items():
            result.outcomes[phase] = Counter(records.get(rid, {}).get("Outcome", "(none)") for rid in ids)
            bodies = {json.dumps((by_record.get(rid) or {}).get("properties"), sort_keys=True) for rid in ids}
            result.answers[phase] = len(bodies)
        result.lookups["all"] = len(searches)
        snap = invariants.collect_world(world, log_files=[workdir / "daemon.log"])
        result.violations = invariants.check(snap)
        for phase in phases:
            outcomes = result.outcomes[phase]
            print(f"  {phase:15} outcomes {dict(outcomes)}; distinct answers sent: {result.answers[phase]}",
                  file=out, flush=True)
        print(f"  Shopify code lookups for {2 * guesses} guesses: {result.lookups['all']}", file=out)
        throttled = {p: result.outcomes[p].get("Throttled", 0) for p in phases}
        uniform = all(n == 1 for n in result.answers.values())
        result.ok = uniform and all(throttled[p] >= guesses // 2 for p in phases) and not result.violations
        print(invariants.report(result.violations), file=out)
        print(f"guessing: {'pass' if result.ok else 'FAIL'} (uniform answer: {uniform}; throttled: {throttled})",
              file=out, flush=True)
        return result
    finally:
        daemon.kill()
        world.stop()
