"""``giftsync init-base``: create every table and field of config/base_schema.json in the
Airtable base through the metadata API; safe to run again.

It only creates what is missing — never renames, retypes or deletes — and reports what
already existed, what it created, and what differs from the configuration and needs a
person (a field of another type, missing select choices, a link to another table…).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from ..errors import FatalError
from . import EXIT_FAILED, EXIT_OK, add_command, settings_and_logging

log = logging.getLogger("giftsync.init_base")

EXIT_ACCESS = 2   # Airtable refused: bad token, missing scope, base not found or not shared

EPILOG = """exit codes:
  0    the base has every table and field giftsync needs (created now or already there)
  1    the base differs from config/base_schema.json where only a person can fix it (listed)
  2    Airtable refused: the token is invalid or lacks schema.bases:write, or the base id is
       wrong / not in the token's access list
  75   Airtable could not be reached; try again (what was created stays; run again)
  78   configuration error: a setting is missing or malformed (the message names each)
  130  interrupted (Ctrl-C); run again to finish"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = add_command(subparsers, "init-base", help="create the Airtable base's tables and fields (safe to run again)",
                    description=(
                        "Creates every table and field of config/base_schema.json that the base "
                        "AIRTABLE_BASE_ID lacks, through Airtable's metadata API (the token needs "
                        "schema.bases:read and schema.bases:write, and access to the base). Run it once "
                        "on a new, empty base before the first `giftsync run`; running it again creates "
                        "only what is missing and never changes or deletes anything. Reports what "
                        "existed, what it created (progress on stderr) and what differs and needs a "
                        "person in Airtable's UI. Extra tables and fields are left alone."),
                    epilog=EPILOG)
    p.add_argument("--json", action="store_true", help="print one JSON object with the result on stdout")
    return p


def run(args: argparse.Namespace) -> int:
    if not getattr(args, "log_level", None):
        args.log_level = "WARNING"  # the progress lines already say what INFO would
    settings = settings_and_logging(args)
    book = _book(args, settings)
    quiet = bool(args.json)

    def progress(step: int, total: int, message: str) -> None:
        print(f"[{step}/{total}] {message}", file=sys.stderr, flush=True)

    if not quiet:
        print(f"init-base: base {settings.airtable_base_id} — reading its schema…", file=sys.stderr, flush=True)
    try:
        result = book.init_base(progress=progress)
    except FatalError as exc:
        if exc.status in (401, 403, 404):
            _refused(args, settings, exc)
            return EXIT_ACCESS
        raise
    finally:
        close = getattr(book, "close", None)
        if callable(close):
            close()
    data = as_dict(result)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(render(data))
    return EXIT_OK if result.report.ok else EXIT_FAILED


def _book(args: argparse.Namespace, settings: Any):
    factory = getattr(args, "_app_factory", None)
    if factory is not None:
        return factory(settings).book
    from ..bootstrap import build_card_book, make_budgets
    return build_card_book(settings, make_budgets(settings, one_off=True)["airtable"])


def _refused(args: argparse.Namespace, settings: Any, exc: FatalError) -> None:
    from ..runtime.logs import redact
    token = ("check AIRTABLE_TOKEN: a personal access token with scopes data.records:read, data.records:write, "
             "schema.bases:read, schema.bases:write")
    base = "check AIRTABLE_BASE_ID (the appXXXXXXXXXXXXXX in the base's URL)"
    fix = (token if exc.status == 401 else
           f"{base}, and that the base is in AIRTABLE_TOKEN's access list with scope schema.bases:write"
           if exc.status == 403 else base)
    problem = redact(exc.reason)
    if args.json:
        print(json.dumps({"ok": False, "error": problem, "fix": fix, "status": exc.status}, indent=2))
    else:
        print(f"init-base: Airtable refused (AIRTABLE_TOKEN on base {settings.airtable_base_id}): {problem}",
              file=sys.stderr)
        print(f"init-base: fix: {fix}", file=sys.stderr)


def as_dict(result: Any) -> dict:
    report = result.report
    created_tables = list(result.created_tables)
    created_fields = [f"{t}.{f}" for t, f in result.created_fields]
    new_tables = set(created_tables)
    return {
        "ok": report.ok,
        "existing_tables": [t for t in report.present_tables if t not in new_tables],
        "existing_fields": len([1 for t, f in report.present_fields
                                if t not in new_tables and (t, f) not in set(result.created_fields)]),
        "created_tables": created_tables,
        "created_fields": created_fields,
        "missing": ([f"table {t}" for t in report.missing_tables]
                    + [f"field {t}.{f}" for t, f in report.missing_fields if t not in report.missing_tables]),
        "differences": [{"table": d.table, "field": d.field, "problem": d.problem,
                         "expected": _plain(d.expected), "found": _plain(d.actual)} for d in report.differences],
        "extra_tables": list(report.extra_tables),
        "extra_fields": [f"{t}.{f}" for t, f in report.extra_fields],
    }


def _plain(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool, list, dict)) or value is None else str(value)


def render(data: dict) -> str:
    lines = []
    if data["existing_tables"]:
        lines.append(f"exists:   {len(data['existing_tables'])} tables ({', '.join(data['existing_tables'])}), "
                     f"{data['existing_fields']} of their fields")
    if data["created_tables"]:
        lines.append(f"created:  {len(data['created_tables'])} tables: {', '.join(data['created_tables'])}")
    if data["created_fields"]:
        lines.append(f"created:  {len(data['created_fields'])} fields: {', '.join(data['created_fields'])}")
    if not data["created_tables"] and not data["created_fields"]:
        lines.append("created:  nothing (every table and field was there)")
    for item in data["missing"]:
        lines.append(f"MISSING:  {item} (could not be created; see the differences)")
    for d in data["differences"]:
        where = f"{d['table']}.{d['field']}" if d["field"] else d["table"]
        lines.append(f"DIFFERS:  {where}: {d['problem']} — expected {d['expected']!r}, found {d['found']!r}; "
                     f"change it by hand in Airtable")
    if data["extra_tables"] or data["extra_fields"]:
        lines.append(f"ignored:  {len(data['extra_tables'])} extra tables, {len(data['extra_fields'])} extra fields "
                     f"(Airtable's inverse link fields among them)")
    lines.append("result:   the base is ready for giftsync" if data["ok"]
                 else "result:   the base needs a person: fix the lines above in Airtable, then run init-base again")
    return "\n".join(lines)
