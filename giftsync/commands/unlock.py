"""``giftsync unlock [--force]``: end a stale lease."""
from __future__ import annotations

import argparse
import json
import logging
import sys

from ..runtime.lease import end_lease
from . import EXIT_LEASE_HELD, EXIT_OK, add_command, make_app, settings_and_logging

log = logging.getLogger("giftsync.unlock")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = add_command(subparsers, "unlock", help="end a stale lease (refuses while its holder is alive)",
                    description=(
                        "Sets the lease on the Status record Offline so that a daemon can take it at "
                        "once, and writes a TAKEOVER receipt (channel Admin) naming the holder. Refuses "
                        "(exit 3) while the holder's lease is still running — it renewed within the "
                        "lease length — unless --force. A daemon whose lease ran out is taken over "
                        "automatically, so unlock is only needed to skip that wait."))
    p.add_argument("--force", action="store_true",
                   help="end the lease even though its holder renewed it recently (only if that daemon is dead)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def run(args: argparse.Namespace) -> int:
    settings = settings_and_logging(args)
    app = make_app(args, settings, one_off=True)
    try:
        result = end_lease(app.book, app.clock, force=args.force, length=app.lease.length,
                           by=app.lease.holder_id)
    finally:
        app.close()
    if result.ended:
        log.warning("lease ended by unlock", extra={"previous_holder": result.before.holder, "force": args.force})
    print(json.dumps(result.as_dict(), indent=2) if args.json else result.message, file=sys.stdout)
    return EXIT_LEASE_HELD if result.reason == "fresh" else EXIT_OK
