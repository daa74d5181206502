"""Seeding the Airtable twin.

Seed format (JSON)::

    {"bases": [{
        "id": "appXXXXXXXXXXXXXX",            # optional: generated when absent
        "name": "giftsync",
        "tables": [{
            "id": "tblXXXXXXXXXXXXXX",        # optional
            "name": "Gift Cards",
            "description": "…",               # optional
            "fields": [                       # the first field is the primary field
                {"id"?: "fld…", "name": "Card", "type": "singleLineText"},
                {"name": "Store", "type": "multipleRecordLinks",
                 "options": {"linkedTable": "Stores"}},      # or {"linkedTableId": "tbl…"}
                ...],
            "views": [                        # optional; default: one "Grid view"
                {"id"?: "viw…", "name": "Pending", "type": "grid",
                 "filterByFormula"?: "{Status}='New'",
                 "sort"?: [{"field": "Created", "direction": "desc"}]}],
            "records": [                      # optional
                {"id"?: "rec…", "createdTime"?: "2024-05-01T12:00:00.000Z",
                 "fields": {"Card": "…", "Store": ["rec…"]}}]
        }]
    }]}

Record cells are written with ``typecast`` (so select options are created and links may
name the primary value of a linked record instead of its id). A link field pairs with an
existing link field of the target table that points back (both sides listed); no inverse
field is invented for seeds (the metadata API, like Airtable, does create one).
"""
from __future__ import annotations

from typing import Any

from . import errors
from .fields import COMPUTED
from .store import Store
from ...base_schema import load_base_schema  # noqa: F401  (re-exported for seeds and tests)

DEFAULT_BASE_ID = "appGiftsyncSandbx"


class SeedError(ValueError):
    pass


def load_seed(store: Store, seed: dict) -> None:
    """Add the bases of ``seed`` to ``store``; raises SeedError with the reason."""
    if not isinstance(seed, dict) or not isinstance(seed.get("bases", []), list):
        raise SeedError('a seed is an object {"bases": [...]}')
    try:
        for bspec in seed.get("bases", []):
            _load_base(store, bspec)
    except errors.ApiError as exc:
        raise SeedError(f"{exc.type}: {exc.message}") from None


def _load_base(store: Store, bspec: Any) -> None:
    if not isinstance(bspec, dict) or not isinstance(bspec.get("name", ""), str):
        raise SeedError("each base needs a name")
    if bspec.get("id") and any(b["id"] == bspec["id"] for b in store.bases):
        raise SeedError(f"base {bspec['id']} defined twice")
    base = store.add_base(bspec.get("name") or "Untitled Base", bspec.get("id"))
    tspecs = bspec.get("tables", [])
    if not isinstance(tspecs, list):
        raise SeedError("tables must be a list")
    tables = []
    for tspec in tspecs:   # pass 1: tables (so links can point anywhere)
        if not isinstance(tspec, dict):
            raise SeedError("each table is an object")
        tables.append(store.add_table(base, tspec.get("name"), tspec.get("description"), tspec.get("id"),
                                      tspec.get("views")))
    for table, tspec in zip(tables, tspecs):   # pass 2: fields
        fspecs = tspec.get("fields") or []
        if not isinstance(fspecs, list) or not fspecs:
            raise SeedError(f"table {table['name']!r} needs at least one field")
        for fspec in fspecs:
            store.add_field(base, table, fspec, api=False, create_inverse=False)
    pending = []
    for table, tspec in zip(tables, tspecs):   # pass 3: records, empty
        for rspec in tspec.get("records") or []:
            if not isinstance(rspec, dict) or not isinstance(rspec.get("fields", {}), dict):
                raise SeedError(f"bad record in table {table['name']!r}")
            rid = rspec.get("id")
            if rid is not None and (not isinstance(rid, str) or rid in table["records"]):
                raise SeedError(f"bad or duplicate record id {rid!r}")
            rec = store._insert(table, {}, rid, rspec.get("createdTime"))
            pending.append((table, rec, rspec.get("fields", {})))
    for links in (False, True):   # pass 4: plain cells, then links (which may name primary values)
        for table, rec, cells in pending:
            part = {}
            for k, v in cells.items():
                f = store.find_field(table, k)
                if f is None:
                    raise errors.unknown_field(k)
                if f["type"] in COMPUTED:
                    continue
                if (f["type"] == "multipleRecordLinks") == links:
                    part[k] = v
            if part:
                store._apply(table, rec, store.prepare(base, table, part, typecast=True), replace=False)




def base_seed_from_schema(schema: dict, base_id: str = DEFAULT_BASE_ID, name: str = "giftsync", *,
                          inverse_links: bool = True) -> dict:
    """A seed holding one empty base built from a base schema (config/base_schema.json).

    With ``inverse_links`` each link field gets its inverse field in the target table, named
    after the source table — what Airtable creates when init-base adds the link."""
    tables = []
    for t in schema.get("tables", []):
        tables.append({"name": t["name"], **({"description": t["description"]} if t.get("description") else {}),
                       "fields": [dict(f) for f in t["fields"]]})
    if inverse_links:
        by_name = {t["name"]: t for t in tables}
        for t in list(tables):
            for f in list(t["fields"]):
                if f["type"] != "multipleRecordLinks" or f.get("_inverse"):
                    continue
                target = by_name.get((f.get("options") or {}).get("linkedTable"))
                if target is None or target is t:
                    continue
                names = {g["name"].lower() for g in target["fields"]}
                inv, n = t["name"], 2
                while inv.lower() in names:
                    inv, n = f"{t['name']} {n}", n + 1
                target["fields"].append({"name": inv, "type": "multipleRecordLinks",
                                         "options": {"linkedTable": t["name"]}, "_inverse": True})
        for t in tables:
            for f in t["fields"]:
                f.pop("_inverse", None)
    return {"bases": [{"id": base_id, "name": name, "tables": tables}]}
