"""``giftsync once [--prong NAME]``: one cycle of each prong (or one), then exit."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import threading

from ..config import PRONGS
from . import (EXIT_FAILED, EXIT_LEASE_HELD, EXIT_OK, EXIT_UNAVAILABLE, add_command, make_app,
               settings_and_logging)

log = logging.getLogger("giftsync.once")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = add_command(subparsers, "once", help="run one cycle of each prong (or of one) and exit",
                    description=(
                        "Takes the lease (exit 3 when another live daemon holds it), runs one cycle of "
                        "each interval prong in order — store, shopify-purchases, shopify-redemptions — "
                        "or of the one named by --prong, releases the lease and exits: 0 when every cycle "
                        "completed, 1 when one failed. The full reconciliation pass (on its daily "
                        "schedule in the daemon) runs only with --prong reconcile. Ctrl-C stops after "
                        "the record in hand."))
    p.add_argument("--prong", choices=PRONGS, help="run only this prong")
    return p


def run(args: argparse.Namespace) -> int:
    settings = settings_and_logging(args)
    app = make_app(args, settings)
    daemon = app.daemon(heartbeat=lambda: None)
    signals = [0]

    def on_signal(signum, frame):
        signals[0] += 1
        if signals[0] > 1:
            os._exit(128 + signum)
        log.info("signal received: stopping after the record in hand")
        app.stop.set()

    previous = _install(on_signal)
    try:
        outcome = app.lease.acquire()
        if not outcome.ok:
            if outcome.reason == "error":
                log.error("could not take the lease: the Status table is unreachable")
                return EXIT_UNAVAILABLE
            log.error("the lease is held by another daemon; nothing run", extra={"other": outcome.other})
            return EXIT_LEASE_HELD
        # Without --prong: the interval prongs (not the cron-scheduled / on-demand full passes).
        names = [args.prong] if args.prong else [p.name for p in app.prongs if not p.cron and p.scheduled]
        failed = []
        # Renew while the cycle runs (a full reconcile pass can outlast the lease): without this,
        # should_continue() turns false a margin before the lease ends and the cycle stops early.
        renewing = threading.Event()

        def renew() -> None:
            while not renewing.wait(app.renew_interval):
                daemon.lease_job()

        renewer = threading.Thread(target=renew, name="lease", daemon=True)
        renewer.start()
        try:
            for name in names:
                if app.stop.is_set():
                    break
                spec = app.prong(name)
                if not spec.installed:
                    log.info("prong not installed yet; nothing to do", extra={"prong": name})
                    continue
                log.info("running one cycle", extra={"prong": name})
                if not daemon.run_prong(spec):
                    failed.append(name)
        finally:
            renewing.set()
            renewer.join()
            app.lease.release()
        if failed:
            log.error("cycle failed", extra={"prongs": ",".join(failed)})
            return EXIT_FAILED
        return EXIT_OK
    finally:
        _restore(previous)
        app.close()


def _install(handler):
    try:
        return {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    except ValueError:       # not the main thread (embedded use): no signal handling
        return {}


def _restore(previous):
    for s, h in previous.items():
        signal.signal(s, h)
