"""``giftsync run``: the daemon."""
from __future__ import annotations

import argparse
import logging

from .. import __version__
from . import EXIT_OK, add_command, make_app, settings_and_logging

log = logging.getLogger("giftsync.run")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = add_command(subparsers, "run", help="run the daemon (the store and Shopify prongs on a schedule)",
                    description=(
                        "Runs the daemon: takes the lease on the Status record (standing by while another "
                        "live daemon holds it), then runs the store prong and the two Shopify prongs on "
                        "their own threads every GIFTSYNC_*_INTERVAL seconds, renewing the lease every "
                        "GIFTSYNC_LEASE_RENEW_SECONDS. SIGTERM/SIGINT: finish the record in hand, release "
                        "the lease, exit 0; a second signal exits at once. Under systemd (Type=notify) it "
                        "sends READY=1, WATCHDOG=1 after each lease renewal and STOPPING=1."))
    p.add_argument("--no-wait", action="store_true",
                   help="exit with code 3 when another live daemon holds the lease instead of standing by")
    return p


def run(args: argparse.Namespace) -> int:
    settings = settings_and_logging(args)
    log.info("giftsync starting", extra={"version": __version__, **{
        f"{k}_url": "twin" if v else "real" for k, v in settings.uses_twins.items()}})
    log.debug("settings", extra={"settings": settings.redacted()})
    app = make_app(args, settings)
    try:
        daemon = app.daemon()
        code = daemon.run_forever(wait_for_lease=not args.no_wait)
    finally:
        app.close()
    if code == EXIT_OK:
        log.info("giftsync stopped")
    return code
