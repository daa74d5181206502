"""``giftsync sandbox``: the no-accounts demo.

Starts the three twins with a seeded world (giftsync/sandbox/world.py), the daemon against
them as a child process (``python -m giftsync run``), and the console on 127.0.0.1; prints
the console's address and stops everything cleanly on Ctrl-C / SIGTERM (the daemon first,
with one SIGTERM, so it releases its lease).
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from . import EXIT_FAILED, EXIT_OK, EXIT_USAGE, add_command

# The console's reads stand in for people looking at the base in Airtable's own UI, which
# does not count against the API's 5 requests/s; so the sandbox's Airtable twin allows more
# than the daemon's budget (GIFTSYNC_AIRTABLE_RATE stays 5) and forgives a burst quickly.
SANDBOX_AIRTABLE_OPTIONS = {"requests_per_second": 15, "penalty_seconds": 1}


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = add_command(subparsers, "sandbox", help="try giftsync with no accounts: local twins, the daemon and a web console",
                    description=(
                        "Starts local stand-ins ('twins') of Airtable, Shopify and Klaviyo on 127.0.0.1, "
                        "seeded with a few shops, gift cards, customers and an online catalogue; runs the "
                        "giftsync daemon against them; and serves a console at http://127.0.0.1:PORT with "
                        "the staff and customer forms, live views of the base, the Shopify store and the "
                        "emails Klaviyo would send. Ctrl-C stops everything (the daemon first, so it "
                        "releases its lease). Nothing touches a real account."))
    p.add_argument("--port", type=int, default=8080, help="console port on 127.0.0.1 (default 8080; 0 = any free port)")
    p.add_argument("--simulate", action="store_true",
                   help="add a steady, bounded stream of shop and online activity (redemptions, online "
                        "payments and purchases, balance checks, card requests)")
    p.add_argument("--simulate-every", type=float, default=4.0, metavar="S",
                   help="seconds between simulated actions (default 4)")
    p.add_argument("--simulate-max", type=int, default=300, metavar="N",
                   help="stop simulating after N actions (default 300)")
    p.add_argument("--interval", type=float, default=2.0, metavar="S",
                   help="seconds between the daemon's cycles (default 2; production default 15)")
    p.add_argument("--dir", metavar="DIR",
                   help="keep the twins' data in DIR (a later run with the same DIR carries on); "
                        "default: a temporary directory removed on exit")
    p.add_argument("--twin-processes", action="store_true",
                   help="run each twin as its own process instead of inside this one")
    p.add_argument("--no-daemon", action="store_true", help="start the twins and the console only")
    p.add_argument("--quiet", action="store_true", help="do not echo the daemon's log here (the console shows it)")
    return p


def run(args: argparse.Namespace) -> int:
    from ..sandbox.console import ConsoleServer
    from ..sandbox.world import SandboxWorld

    if args.interval <= 0 or args.simulate_every <= 0:
        print("giftsync sandbox: --interval and --simulate-every must be positive", file=sys.stderr)
        return EXIT_USAGE
    stop = threading.Event()
    signals_seen = []

    def on_signal(signum, frame):  # noqa: ARG001
        signals_seen.append(signum)
        stop.set()
        if len(signals_seen) > 1 and daemon is not None and daemon.alive():
            daemon.kill()   # a second Ctrl-C: do not wait for the daemon

    daemon = None
    old_handlers = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    temp = args.dir is None
    root = Path(tempfile.mkdtemp(prefix="giftsync-sandbox-")) if temp else Path(args.dir)
    world = SandboxWorld(root, processes=args.twin_processes, airtable_options=SANDBOX_AIRTABLE_OPTIONS)
    console = simulator = None
    code = EXIT_OK
    try:
        world.start()
        _say(f"twins: airtable {world.airtable_url} · shopify {world.shopify_url} · klaviyo {world.klaviyo_url}")
        if not args.no_daemon:
            daemon = world.start_daemon(interval=args.interval, echo=None if args.quiet else sys.stderr,
                                        GIFTSYNC_LOG_FORMAT="text")
            _say(f"daemon: python -m giftsync run (pid {daemon.pid}), every {args.interval:g}s")
        if args.simulate:
            from ..sandbox.simulator import Simulator
            simulator = Simulator(world, every=args.simulate_every, max_actions=args.simulate_max)
        console = ConsoleServer(world, daemon=daemon, simulator=simulator)
        try:
            url = console.start(port=args.port)
        except OSError as exc:
            print(f"giftsync sandbox: cannot serve the console on 127.0.0.1:{args.port} ({exc.strerror}); "
                  "try --port 0 for any free port", file=sys.stderr)
            return EXIT_USAGE
        if simulator is not None:
            simulator.start()
            _say(f"simulating: one action every ~{args.simulate_every:g}s, at most {args.simulate_max}")
        print(f"console: {url}", flush=True)
        _say("open the console in a browser; Ctrl-C stops everything")
        reported = False
        while not stop.wait(0.5):
            if daemon is not None and not daemon.alive() and not reported:
                reported = True
                _say(f"the daemon exited with code {daemon.returncode}; the console stays up (see its Log tab)")
    except Exception as exc:  # noqa: BLE001
        print(f"giftsync sandbox: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        code = EXIT_FAILED
    finally:
        _say("stopping…")
        if simulator is not None:
            simulator.stop()
        if daemon is not None:
            rc = daemon.stop(timeout=30)
            _say(f"daemon stopped (exit code {rc})")
        if console is not None:
            console.stop()
        world.stop()
        for s, h in old_handlers.items():
            signal.signal(s, h)
        if temp:
            shutil.rmtree(root, ignore_errors=True)
        else:
            _say(f"data kept in {root}")
        _say("stopped")
    return code


def _say(text: str) -> None:
    print(f"giftsync sandbox: {text}", file=sys.stderr, flush=True)
