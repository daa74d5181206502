"""The base's schema against config/base_schema.json: the engine of ``giftsync doctor``
(:func:`compare_schema`) and ``giftsync init-base`` (:func:`ensure_schema`).

``ensure_schema`` is safe to run again: it only creates tables and fields that are missing
and reports what differs and cannot be fixed through the metadata API (a field of another
type, select choices missing, a link to another table, a currency's precision — renaming or
retyping staff's data is left to a human).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

from .client import CLASSIFIED, classify

log = logging.getLogger("giftsync.adapters.airtable")

LINK = "multipleRecordLinks"
from ...base_schema import load_base_schema, schema_path  # noqa: E402,F401

SCHEMA_PATH = schema_path()


# -- normalising what the API / pyairtable returns -----------------------------------------
def _plain(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(by_alias=True, exclude_none=True, mode="json")
    return value


def _tables_of(actual: Any) -> list[dict]:
    """Accepts pyairtable's ``BaseSchema`` or the JSON of GET …/meta/bases/{id}/tables."""
    data = _plain(actual)
    tables = data.get("tables", []) if isinstance(data, dict) else []
    out = []
    for t in tables:
        t = _plain(t)
        fields = []
        for f in t.get("fields", []):
            f = _plain(f)
            ftype = f.get("type")
            fields.append({"id": f.get("id"), "name": f.get("name"), "type": getattr(ftype, "value", ftype),
                           "options": f.get("options") or {}})
        out.append({"id": t.get("id"), "name": t.get("name"), "primaryFieldId": t.get("primaryFieldId"),
                    "fields": fields})
    return out


# -- the report ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Difference:
    table: str
    field: str | None
    problem: str
    expected: Any = None
    actual: Any = None

    def __str__(self) -> str:
        where = f"{self.table}.{self.field}" if self.field else self.table
        return f"{where}: {self.problem} (expected {self.expected!r}, found {self.actual!r})"


@dataclass
class SchemaReport:
    present_tables: list[str] = field(default_factory=list)
    missing_tables: list[str] = field(default_factory=list)
    present_fields: list[tuple[str, str]] = field(default_factory=list)
    missing_fields: list[tuple[str, str]] = field(default_factory=list)   # in tables that exist or not
    differences: list[Difference] = field(default_factory=list)
    extra_tables: list[str] = field(default_factory=list)
    extra_fields: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Everything giftsync needs exists as it expects (extras are fine)."""
        return not (self.missing_tables or self.missing_fields or self.differences)

    def lines(self) -> list[str]:
        out = [f"missing table: {t}" for t in self.missing_tables]
        out += [f"missing field: {t}.{f}" for t, f in self.missing_fields if t not in self.missing_tables]
        out += [f"differs: {d}" for d in self.differences]
        out += [f"extra table (ignored): {t}" for t in self.extra_tables]
        out += [f"extra field (ignored): {t}.{f}" for t, f in self.extra_fields]
        return out or ["the base matches config/base_schema.json"]


@dataclass
class InitResult:
    created_tables: list[str] = field(default_factory=list)
    created_fields: list[tuple[str, str]] = field(default_factory=list)
    report: SchemaReport = field(default_factory=SchemaReport)


def _compare_field(table: str, want: dict, have: dict, ids_to_names: dict[str, str]) -> list[Difference]:
    name = want["name"]
    if have["type"] != want["type"]:
        return [Difference(table, name, "type", want["type"], have["type"])]
    diffs = []
    wopt, hopt = want.get("options") or {}, have.get("options") or {}
    if want["type"] in ("singleSelect", "multipleSelects"):
        wanted = [c["name"] for c in wopt.get("choices", [])]
        present = {c.get("name") for c in hopt.get("choices", [])}
        missing = [c for c in wanted if c not in present]
        if missing:
            diffs.append(Difference(table, name, "select choices missing", wanted, sorted(present)))
    elif want["type"] == LINK:
        target = ids_to_names.get(hopt.get("linkedTableId"), hopt.get("linkedTableId"))
        if target != wopt.get("linkedTable"):
            diffs.append(Difference(table, name, "links to another table", wopt.get("linkedTable"), target))
    elif want["type"] in ("currency", "number", "percent") and "precision" in wopt:
        if hopt.get("precision") != wopt["precision"]:
            diffs.append(Difference(table, name, "precision", wopt["precision"], hopt.get("precision")))
    return diffs


def compare_schema(actual: Any, expected: dict | None = None) -> SchemaReport:
    """What exists, what is missing and what differs. Table and field names match exactly
    first, then case-insensitively (Airtable refuses two names differing only in case)."""
    expected = expected if expected is not None else load_base_schema()
    tables = _tables_of(actual)
    ids_to_names = {t["id"]: t["name"] for t in tables}
    report = SchemaReport()
    matched_tables: set[str] = set()
    for want in expected["tables"]:
        have = _find(tables, want["name"])
        if have is None:
            report.missing_tables.append(want["name"])
            report.missing_fields += [(want["name"], f["name"]) for f in want["fields"]]
            continue
        matched_tables.add(have["name"])
        report.present_tables.append(want["name"])
        matched_fields: set[str] = set()
        for fwant in want["fields"]:
            fhave = _find(have["fields"], fwant["name"])
            if fhave is None:
                report.missing_fields.append((want["name"], fwant["name"]))
                continue
            matched_fields.add(fhave["name"])
            report.present_fields.append((want["name"], fwant["name"]))
            if fhave["name"] != fwant["name"]:
                report.differences.append(Difference(want["name"], fwant["name"], "name differs in case",
                                                     fwant["name"], fhave["name"]))
            report.differences += _compare_field(want["name"], fwant, fhave, ids_to_names)
        primary = next((f["name"] for f in have["fields"] if f["id"] == have.get("primaryFieldId")), None)
        if want["fields"] and primary is not None and primary.lower() != want["fields"][0]["name"].lower():
            report.differences.append(Difference(want["name"], None, "primary field", want["fields"][0]["name"], primary))
        report.extra_fields += [(want["name"], f["name"]) for f in have["fields"] if f["name"] not in matched_fields]
    report.extra_tables = [t["name"] for t in tables if t["name"] not in matched_tables]
    return report


def _find(items: list[dict], name: str) -> dict | None:
    for item in items:
        if item["name"] == name:
            return item
    lower = name.lower()
    return next((item for item in items if str(item["name"]).lower() == lower), None)


# -- creating what is missing --------------------------------------------------------------
def _field_payload(f: dict, table_ids: dict[str, str]) -> dict:
    payload: dict[str, Any] = {"name": f["name"], "type": f["type"]}
    if f.get("description"):
        payload["description"] = f["description"]
    options = dict(f.get("options") or {})
    if f["type"] == LINK:
        target = options.pop("linkedTable", None)
        if target not in table_ids:
            raise KeyError(target)
        options = {"linkedTableId": table_ids[target], **options}
    if options:
        payload["options"] = options
    return payload


Progress = Callable[[int, int, str], None]   # (step, total steps, what was just done)


def ensure_schema(base: Any, expected: dict | None = None, *, token: str | None = None,
                  progress: Progress | None = None) -> InitResult:
    """Create the tables and fields of ``expected`` that ``base`` (a pyairtable ``Base``)
    lacks; never changes or deletes anything. A table is created with every field whose
    link target exists already; links to tables created later are added once those exist.
    ``progress(step, total, message)`` is called after each creation (one request each).
    Returns what was created and the report of a fresh comparison (``report.ok``)."""
    expected = expected if expected is not None else load_base_schema()
    try:
        return _ensure(base, expected, progress or (lambda step, total, message: None))
    except CLASSIFIED as exc:
        raise classify(exc, token=token, what="init-base") from None


def _planned_steps(tables: list[dict], expected: dict, known: set[str]) -> int:
    """How many creations ``_ensure`` will make: each missing table, each missing field of a
    table that exists, each link of a new table to a table created after it."""
    known = {name.lower() for name in known}
    steps = 0
    for want in expected["tables"]:
        have = _find(tables, want["name"])
        if have is not None:
            steps += sum(1 for f in want["fields"] if _find(have["fields"], f["name"]) is None
                         and (f["type"] != LINK or _target_known(f, expected, tables)))
            continue
        steps += 1
        steps += sum(1 for f in want["fields"]
                     if f["type"] == LINK and str((f.get("options") or {}).get("linkedTable")).lower() not in known
                     and _target_known(f, expected, tables))
        known.add(want["name"].lower())
    return steps


def _target_known(f: dict, expected: dict, tables: list[dict]) -> bool:
    target = (f.get("options") or {}).get("linkedTable")
    return any(t["name"] == target for t in expected["tables"]) or _find(tables, str(target)) is not None


def _ensure(base: Any, expected: dict, progress: Progress) -> InitResult:
    result = InitResult()
    tables = _tables_of(base.schema(force=True))
    total = _planned_steps(tables, expected, {t["name"] for t in tables})
    step = 0
    table_ids = {t["name"]: t["id"] for t in tables}
    for t in tables:   # expected names resolve case-insensitively too
        for want in expected["tables"]:
            if want["name"].lower() == t["name"].lower():
                table_ids.setdefault(want["name"], t["id"])
    deferred: list[tuple[str, dict]] = []

    for want in expected["tables"]:
        have = _find(tables, want["name"])
        if have is not None:
            for f in want["fields"]:
                if _find(have["fields"], f["name"]) is None:
                    deferred.append((want["name"], f))
            continue
        fields, later = [], []
        for f in want["fields"]:
            if f["type"] == LINK and (f.get("options") or {}).get("linkedTable") not in table_ids:
                later.append(f)
            else:
                fields.append(_field_payload(f, table_ids))
        if not fields or fields[0]["name"] != want["fields"][0]["name"]:
            raise ValueError(f"table {want['name']}: its first (primary) field cannot be a link")
        payload: dict[str, Any] = {"name": want["name"], "fields": fields}
        if want.get("description"):
            payload["description"] = want["description"]
        created = base.api.post(base.urls.tables, json=payload)   # one request (create_table re-reads the schema)
        table_ids[want["name"]] = created["id"]
        result.created_tables.append(want["name"])
        log.info("init-base: created table %s", want["name"])
        step += 1
        progress(step, max(total, step), f"created table {want['name']} ({len(fields)} fields)")
        deferred += [(want["name"], f) for f in later]

    for table_name, f in deferred:
        try:
            payload = _field_payload(f, table_ids)
        except KeyError:
            continue   # its target table is not in the config: the report says so
        table = base.table(table_ids[table_name])
        table.create_field(payload["name"], payload["type"], description=payload.get("description"),
                           options=payload.get("options"))
        result.created_fields.append((table_name, f["name"]))
        log.info("init-base: created field %s.%s", table_name, f["name"])
        step += 1
        progress(step, max(total, step), f"created field {table_name}.{f['name']}")

    result.report = compare_schema(base.schema(force=True), expected)
    return result


def check_schema(base: Any, expected: dict | None = None, *, token: str | None = None) -> SchemaReport:
    """``giftsync doctor``: one schema request, compared with ``expected``."""
    try:
        return compare_schema(base.schema(force=True), expected)
    except CLASSIFIED as exc:
        raise classify(exc, token=token, what="doctor") from None
