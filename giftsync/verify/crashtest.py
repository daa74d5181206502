"""The crash matrix, the fault soak, the two-daemon lease test and the guessing run.

``scripts/crashtest`` (``python -m giftsync.crashtest``) runs them all; ``--matrix``,
``--soak``, ``--two-daemons``, ``--guess`` pick some. Twins run in this process (their state in
files under the work directory); the daemon is always its own process.

Crash matrix: for every point of ``giftsync.crashpoints.POINTS`` (so the matrix cannot fall
behind the flows) and for both halves —

- **before**: the daemon runs with ``GIFTSYNC_CRASH_AT=<point>`` and SIGKILLs itself just before
  the call;
- **after**: the daemon runs with ``GIFTSYNC_CRASH_ARM``: at the point it asks the twin to apply
  the very next matching call and then hang (``when="after"``); this runner SIGKILLs the daemon
  while the twin holds the answer —

the flow's scenario (giftsync/verify/scenarios.py) is set up, the daemon started, the crash
awaited, a fresh daemon started without the crash setting and given two full cycles of every
prong once it holds the lease; then it is stopped cleanly and the invariants are checked
(giftsync/verify/invariants.py). A point no scenario reaches is a failure.
"""
from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..crashpoints import POINTS
from ..sandbox.world import DaemonProcess, SandboxWorld
from . import invariants
from .scenarios import after_rule, lease_taken, scenario_for, unmapped_points

INTERVAL = 1.0
KEEP = 500_000          # daemon output lines kept in memory (settle reads them)
LEASE = 3.0
CYCLE_LINES = ("store cycle ", "shopify purchases cycle ", "shopify redemptions cycle ")
# Shopify Plus-sized cost bucket: two order polls a second cost ~1,500 points (see the report).
SHOPIFY_OPTIONS = {"bucket_size": 20000, "restore_rate": 1000}


def world_for(root: Path, *, airtable_rate_limit: bool = False, shopify_options: dict | None = None,
              **kw: Any) -> SandboxWorld:
    return SandboxWorld(root, processes=False, airtable_options={"rate_limit": airtable_rate_limit},
                        shopify_options={**SHOPIFY_OPTIONS, **(shopify_options or {})},
                        klaviyo_options={"rate_limit": False}, **kw)


_started: list[DaemonProcess] = []


def start_daemon(env: dict, cwd: Path, log_file: Path) -> DaemonProcess:
    """A daemon process this runner kills at exit, whatever happens."""
    d = DaemonProcess(env, cwd=cwd, log_file=log_file, keep_lines=KEEP).start()
    _started.append(d)
    return d


def _kill_all(*_: Any) -> None:
    for d in _started:
        try:
            d.kill()
        except Exception:  # noqa: BLE001
            pass


def daemon_env(world: SandboxWorld, *, interval: float = INTERVAL, lease: float = LEASE, **extra: Any) -> dict:
    env = world.daemon_env(interval=interval, lease_seconds=lease)
    env.update({
        "GIFTSYNC_AIRTABLE_RATE": "25",
        "GIFTSYNC_KLAVIYO_RATE": "50",
        "GIFTSYNC_LEASE_RENEW_SECONDS": f"{min(interval, lease / 4):g}",
        "GIFTSYNC_LEASE_MARGIN_SECONDS": f"{lease / 4:g}",
        "GIFTSYNC_LEASE_SETTLE_SECONDS": "0.2",
        "GIFTSYNC_HTTP_TIMEOUT_SECONDS": "10",
        "GIFTSYNC_REDEMPTION_POLL_SECONDS": f"{interval:g}",
        "GIFTSYNC_ORDER_OVERLAP_SECONDS": "2",
    })
    env.update({k: str(v) for k, v in extra.items()})
    for k in ("GIFTSYNC_CRASH_AT", "GIFTSYNC_CRASH_ARM"):
        env.setdefault(k, "")
    return env


def cycles_after_lease(daemon: DaemonProcess) -> dict[str, int]:
    lines = daemon.output()
    start = next((i for i, line in enumerate(lines) if "lease taken" in line), None)
    counts = {k: 0 for k in CYCLE_LINES}
    if start is None:
        return counts
    for line in lines[start:]:
        for k in CYCLE_LINES:
            if k in line:
                counts[k] += 1
    return counts


def settle(daemon: DaemonProcess, cycles: int = 2, timeout: float = 90.0) -> tuple[bool, float]:
    """Wait until the daemon holds the lease and every prong finished ``cycles`` cycles after
    that. Returns (settled, seconds from start to the lease)."""
    t0 = time.time()
    deadline = t0 + timeout
    leased_at = None
    while time.time() < deadline and daemon.alive():
        if leased_at is None and lease_taken(daemon):
            leased_at = time.time() - t0
        if leased_at is not None and min(cycles_after_lease(daemon).values()) >= cycles:
            return True, leased_at
        time.sleep(0.1)
    return False, leased_at if leased_at is not None else -1.0


@dataclass
class RunResult:
    point: str
    mode: str
    ok: bool
    reached: bool
    violations: list = field(default_factory=list)
    note: str = ""
    seconds: float = 0.0

    @property
    def cell(self) -> str:
        if not self.reached:
            return "UNREACHED"
        if self.ok:
            return "pass"
        return f"FAIL({len(self.violations)})" if self.violations else "FAIL(run)"


def _after_fired(world: SandboxWorld, twin: str) -> bool:
    return any((r.get("fault") or {}).get("when") == "after" for r in world.twin(twin).requests())


def run_point(point: str, mode: str, workdir: Path, *, keep: bool = False) -> RunResult:
    t0 = time.time()
    root = workdir / f"{point}.{mode}"
    shutil.rmtree(root, ignore_errors=True)
    scenario = scenario_for(point)
    if scenario is None:
        return RunResult(point, mode, False, False, note="no scenario reaches this point")
    world = world_for(root, shopify_options=scenario.shopify_options).start()
    d1 = d2 = None
    ok = False
    try:
        codes = scenario.prepare(world)
        crash = {"GIFTSYNC_CRASH_AT": point}
        twin = None
        if mode == "after":
            twin, rule = after_rule(point)
            crash["GIFTSYNC_CRASH_ARM"] = json.dumps({"url": world.url(twin), "rule": rule})
        d1 = start_daemon(daemon_env(world, **crash), root, root / "daemon-1.log")
        helper = threading.Thread(target=scenario.during, args=(world, d1), daemon=True)
        helper.start()
        deadline = time.time() + 45
        reached = False
        while time.time() < deadline:
            if mode == "before" and not d1.alive():
                reached = d1.returncode == -9
                break
            if mode == "after" and _after_fired(world, twin):
                d1.kill()
                reached = True
                break
            if mode == "after" and not d1.alive():
                break
            time.sleep(0.05)
        d1.kill()
        helper.join(5)
        world.twin("airtable").faults.clear()
        for name in ("shopify", "klaviyo"):
            world.twin(name).faults.clear()
        note = "" if reached else f"not reached within 45 s (exit {d1.returncode})"
        d2 = start_daemon(daemon_env(world), root, root / "daemon-2.log")
        settled, _ = settle(d2)
        d2.stop(30)
        if not settled:
            note = (note + "; " if note else "") + "did not settle within 90 s of the restart"
        snap = invariants.collect_world(world, log_files=[root / "daemon-1.log", root / "daemon-2.log"],
                                        extra_codes=codes)
        violations = invariants.check(snap)
        ok = reached and settled and not violations
        return RunResult(point, mode, ok, reached, violations, note, time.time() - t0)
    except Exception as exc:  # noqa: BLE001 — a runner error is a failed cell, reported
        return RunResult(point, mode, False, True, note=f"runner error {type(exc).__name__}: {exc}",
                         seconds=time.time() - t0)
    finally:
        for d in (d1, d2):
            if d is not None:
                d.kill()
        world.stop()
        if ok and not keep:
            shutil.rmtree(root, ignore_errors=True)


def matrix(points: Iterable[str], workdir: Path, *, jobs: int = 2, modes: tuple[str, ...] = ("before", "after"),
           out=sys.stdout) -> list[RunResult]:
    points = list(points)
    missing = [p for p in points if p in unmapped_points()]
    runs = [(p, m) for p in points for m in modes if p not in missing]
    results: list[RunResult] = [RunResult(p, m, False, False, note="no scenario or after-target for this point")
                                for p in missing for m in modes]
    print(f"crash matrix: {len(points)} points × {len(modes)} = {len(runs) + len(results)} runs, {jobs} at a time",
          file=out, flush=True)
    with ThreadPoolExecutor(jobs) as pool:
        for r in pool.map(lambda pm: run_point(pm[0], pm[1], workdir), runs):
            results.append(r)
            print(f"  {r.point:24} {r.mode:6} {r.cell:12} {r.seconds:5.1f}s"
                  + (f"  {r.note}" if r.note else ""), file=out, flush=True)
            for v in r.violations[:8]:
                print(f"      {v}", file=out, flush=True)
    return results


def print_matrix(results: list[RunResult], out=sys.stdout) -> int:
    cells: dict[str, dict[str, RunResult]] = {}
    for r in results:
        cells.setdefault(r.point, {})[r.mode] = r
    order = [p for p in POINTS if p in cells] + [p for p in cells if p not in POINTS]
    print("\npoint                      before        after", file=out)
    print("-" * 50, file=out)
    for p in order:
        row = cells[p]
        print(f"{p:26} {row['before'].cell if 'before' in row else '-':13} "
              f"{row['after'].cell if 'after' in row else '-'}", file=out)
    passed = sum(r.ok for r in results)
    failed = len(results) - passed
    unreached = sum(not r.reached for r in results)
    violations = sum(len(r.violations) for r in results)
    print("-" * 50, file=out)
    print(f"matrix totals: {len(results)} runs, {passed} pass, {failed} fail ({unreached} unreached), "
          f"violations {violations}", file=out, flush=True)
    return failed


# -- entry point ---------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scripts/crashtest", description=__doc__.split("\n\n")[0])
    p.add_argument("--matrix", action="store_true", help="the crash matrix")
    p.add_argument("--soak", action="store_true", help="the fault soak")
    p.add_argument("--two-daemons", action="store_true", help="two daemons on one base and shop")
    p.add_argument("--guess", action="store_true", help="balance-check guessing (1,000 codes)")
    p.add_argument("--points", default="", help="comma-separated points or prefixes (default: all)")
    p.add_argument("--modes", default="before,after")
    p.add_argument("--jobs", type=int, default=int(os.environ.get("CRASHTEST_JOBS", "3")))
    p.add_argument("--ops", type=int, default=2000, help="soak: operations of the shop day")
    p.add_argument("--seed", type=int, default=6006, help="soak: fault and workload seed")
    p.add_argument("--rate", type=float, default=0.20, help="soak: share of calls faulted")
    p.add_argument("--workdir", default="", help="keep run directories here (default: a temp dir)")
    p.add_argument("--serial", action="store_true", help="run the soak after the matrix, not beside it")
    args = p.parse_args(argv)
    atexit.register(_kill_all)
    signal.signal(signal.SIGTERM, lambda *_: (_kill_all(), os._exit(143)))
    everything = not (args.matrix or args.soak or args.two_daemons or args.guess)
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="giftsync-crashtest-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"work directory: {workdir}", flush=True)
    t0 = time.time()
    failures = 0
    # The two-daemon case first and alone: it measures a takeover against a bound. Then the soak
    # (mostly waiting on its daemon: faults, hangs, the claim window) runs beside the matrix, its
    # report printed when it ends; --serial runs them one after the other.
    if args.two_daemons or everything:
        from .lease_test import two_daemons
        failures += 0 if two_daemons(workdir / "two-daemons").ok else 1
    soak_thread = None
    soak_ok: list[bool] = []
    if args.soak or everything:
        from .soak import soak
        with_matrix = (args.matrix or everything) and not args.serial
        report_file = workdir / "soak-report.txt"
        buffer = open(report_file, "w+", encoding="utf-8") if with_matrix else sys.stdout

        def run_soak() -> None:
            try:
                soak_ok.append(soak(workdir / "soak", ops=args.ops, seed=args.seed, rate=args.rate, out=buffer).ok)
            except Exception as exc:  # noqa: BLE001 — reported as a failure below
                print(f"soak crashed: {type(exc).__name__}: {exc}", file=buffer, flush=True)
                soak_ok.append(False)
        if with_matrix:
            print(f"fault soak started beside the matrix (its report follows the matrix; progress in "
                  f"{report_file})", flush=True)
            soak_thread = threading.Thread(target=run_soak, name="soak", daemon=True)
            soak_thread.start()
        else:
            run_soak()
    if args.matrix or everything:
        wanted = [w.strip() for w in args.points.split(",") if w.strip()]
        points = [pt for pt in POINTS if not wanted or any(pt == w or pt.startswith(w.rstrip(".") + ".") for w in wanted)]
        results = matrix(points, workdir / "matrix", jobs=args.jobs, modes=tuple(args.modes.split(",")))
        failures += print_matrix(results)
        print(f"matrix finished after {time.time() - t0:.0f} s", flush=True)
    if soak_thread is not None:
        soak_thread.join()
        buffer.seek(0)
        print(buffer.read(), end="", flush=True)
        buffer.close()
    if args.soak or everything:
        failures += 0 if soak_ok and soak_ok[0] else 1
    if args.guess or everything:
        from .guessing import guess_run
        failures += 0 if guess_run(workdir / "guess").ok else 1
    print(f"\ncrashtest finished in {time.time() - t0:.0f} s: {'ALL PASSED' if not failures else f'{failures} FAILURE(S)'}",
          flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
