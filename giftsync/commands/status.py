"""``giftsync status``: the lease holder, the last run of each prong, the backlog per form table."""
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime

from ..config import PRONGS
from ..ports import FormTable
from ..runtime.lease import LEASE_ROW, view
from . import EXIT_OK, add_command, make_app, settings_and_logging

LIMIT = 100


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = add_command(subparsers, "status", help="show the lease holder, each prong's last run and the backlog",
                    description=(
                        "Reads the Status table and the form tables (it does not take the lease): who "
                        "holds the lease and until when, when each prong last ran and how, and per form "
                        f"table how many records wait to be processed and how many emails wait to be "
                        f"sent (counted up to {LIMIT}; more shows as {LIMIT}+)."))
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def collect(book, clock, *, lease_length: float = 90.0) -> dict:
    now = clock.now()
    lease = view(book.read_status(LEASE_ROW), now, lease_length)
    out: dict = {"now": now.isoformat(), "lease": lease.as_dict(), "prongs": {}, "backlog": {}}
    for name in PRONGS:
        row = book.read_status(f"cursor:{name}")
        out["prongs"][name] = {
            "last_run": row.last_run.isoformat() if row and row.last_run else None,
            "details": row.details if row else "",
            "cursor": bool(row and row.cursor),
        }
    pending = {
        FormTable.REDEMPTIONS: book.pending_redemptions,
        FormTable.CARD_REQUESTS: book.pending_card_requests,
        FormTable.BALANCE_CHECKS: book.pending_balance_checks,
    }
    for table, reader in pending.items():
        waiting = len(reader(limit=LIMIT))
        unsent = len(book.unnotified(table, limit=LIMIT))
        out["backlog"][table.value] = {"pending": waiting, "unnotified": unsent,
                                       "more": waiting >= LIMIT or unsent >= LIMIT}
    return out


def _ago(text: str | None, now: datetime) -> str:
    if not text:
        return "never"
    when = datetime.fromisoformat(text)
    seconds = int((now - when).total_seconds())
    rel = f"{seconds} s ago" if seconds >= 0 else f"in {-seconds} s"
    return f"{when.strftime('%Y-%m-%d %H:%M:%S')}Z ({rel})"


def render(data: dict) -> str:
    now = datetime.fromisoformat(data["now"])
    lease = data["lease"]
    lines = []
    if lease["state"] == "Online" and lease["active"]:
        lines.append(f"Lease:   held by {lease['holder']} — heartbeat {_ago(lease['heartbeat'], now)}, "
                     f"until {_ago(lease['lease_until'], now)}")
    elif lease["state"] == "Online":
        lines.append(f"Lease:   EXPIRED — last holder {lease['holder']}, heartbeat {_ago(lease['heartbeat'], now)}; "
                     f"the next daemon takes it over (or: giftsync unlock)")
    else:
        last = f" (last holder {lease['holder']})" if lease["holder"] else ""
        lines.append(f"Lease:   Offline{last} — no daemon running")
    lines.append("Prongs:")
    for name, p in data["prongs"].items():
        details = f"  {p['details']}" if p["details"] else ""
        lines.append(f"  {name:<21} last run {_ago(p['last_run'], now)}{details}")
    lines.append("Backlog:")
    for table, b in data["backlog"].items():
        plus = "+" if b["more"] else ""
        lines.append(f"  {table:<21} {b['pending']}{plus} to process, {b['unnotified']}{plus} emails to send")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    settings = settings_and_logging(args)
    app = make_app(args, settings, one_off=True)
    try:
        data = collect(app.book, app.clock, lease_length=app.lease.length)
    finally:
        app.close()
    print(json.dumps(data, indent=2) if args.json else render(data), file=sys.stdout)
    return EXIT_OK
