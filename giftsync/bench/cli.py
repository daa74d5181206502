"""python -m giftsync.bench [--quick] [--sizes 0,100,500,1000] [--modes giftsync,baseline] …"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from .report import table, targets
from .runner import MODES, Scenario, ScenarioConfig

FULL = dict(sizes=[0, 100, 500, 1000], orders=200, window=180.0, max_load=1500.0, drain=60.0, warmup=20.0, idle=30.0,
            idle_settle=45.0)
QUICK = dict(sizes=[0, 100], orders=20, window=30.0, max_load=35.0, drain=10.0, warmup=5.0, idle=10.0,
             idle_settle=15.0)


def machine() -> dict:
    load = os.getloadavg()
    return {"host": platform.node(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "loadavg": [round(x, 2) for x in load], "platform": platform.platform()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scripts/bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="a small version (B = 0 and 100, 20 orders, short windows)")
    p.add_argument("--sizes", help="bulk request sizes, comma-separated (default 0,100,500,1000)")
    p.add_argument("--modes", default=",".join(MODES), help="giftsync,baseline (default both)")
    p.add_argument("--orders", type=int, help="online gift-card orders per scenario (default 200)")
    p.add_argument("--rate", type=float, default=1.0, help="store redemptions per second (default 1)")
    p.add_argument("--window", type=float, help="minimum load window in seconds")
    p.add_argument("--max-load", type=float, help="the load window ends by then even if the bulk is not done (s)")
    p.add_argument("--drain", type=float, help="seconds open redemptions get after the load window")
    p.add_argument("--idle", type=float, help="idle-CPU window in seconds (first scenario of each mode)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", default="bench-results", help="directory for the JSON and the work files")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                   help="extra daemon setting for the giftsync mode (e.g. GIFTSYNC_REDEMPTION_POLL_SECONDS=3)")
    args = p.parse_args(argv)
    preset = dict(QUICK if args.quick else FULL)
    sizes = [int(x) for x in args.sizes.split(",")] if args.sizes else preset["sizes"]
    modes = [m for m in args.modes.split(",") if m]
    for m in modes:
        if m not in MODES:
            p.error(f"unknown mode {m!r}")
    extra = dict(kv.split("=", 1) for kv in args.env)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    started = time.time()
    report = {"started": stamp, "quick": args.quick, "machine_before": machine(), "results": []}
    print(f"giftsync bench{' --quick' if args.quick else ''}: sizes={sizes} modes={modes} "
          f"load avg {report['machine_before']['loadavg']}", flush=True)
    for b in sizes:
        for mode in modes:
            first = not any(r["mode"] == mode for r in report["results"])
            cfg = ScenarioConfig(
                mode=mode, bulk=b, orders=args.orders if args.orders is not None else preset["orders"],
                rate=args.rate, window=args.window or preset["window"], max_load=args.max_load or preset["max_load"],
                drain=args.drain or preset["drain"], warmup=preset["warmup"], idle_settle=preset["idle_settle"],
                idle_seconds=(args.idle if args.idle is not None else preset["idle"]) if first else 0.0,
                seed=args.seed + b, root=str(out / "work"),
                daemon_env=extra if mode == "giftsync" else {})
            t = time.time()
            result = Scenario(cfg, echo=sys.stdout).run()
            result["wall_seconds"] = time.time() - t
            report["results"].append(result)
            print(f"  [{mode} B={b}] done in {result['wall_seconds']:.0f}s: p95="
                  f"{_f(result['redemptions']['p95'])}s redemptions={result['redemptions']['finished']}"
                  f"/{result['redemptions']['submitted']}", flush=True)
    report["machine_after"] = machine()
    report["seconds"] = time.time() - started
    report["targets"] = targets(report["results"])
    text = table(report)
    print(text)
    name = f"bench-{'quick-' if args.quick else ''}{stamp}.json"
    for path in (out / name, out / ("latest-quick.json" if args.quick else "latest.json")):
        path.write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
    (out / ("latest-quick.txt" if args.quick else "latest.txt")).write_text(text + "\n", encoding="utf-8")
    print(f"written: {out / name}")
    return 0


def _f(x) -> str:
    return "-" if x is None else f"{x:.1f}"
