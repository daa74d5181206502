"""Bases, tables, fields, views and records of the Airtable twin, as plain JSON-able dicts.

  base   {"id", "name", "permissionLevel", "tables": [table, ...]}
  table  {"id", "name", "description"?, "primaryFieldId", "fields": [field], "views": [view],
          "records": {recId: record}, "nextAutoNumber": n}
  field  {"id", "name", "type", "description"?, "options"?}
  view   {"id", "name", "type", "filterByFormula"?, "sort"?: [{"field", "direction"}], "visibleFieldIds"?}
  record {"id", "createdTime", "modifiedTime", "fields": {fieldId: stored cell}}

Records keep creation order (dict order). Cells are stored by field id in REST JSON form;
empty cells are not stored. Every method raises :class:`~.errors.ApiError` on bad input.
"""
from __future__ import annotations

import random
import string
import time
from datetime import datetime, timezone
from typing import Any, Callable

from . import errors, fields as F
from .formula import (ERROR, Context, FormulaError, FormulaValueError, compile_filter, evaluate, iso,
                      matches, parse, parse_datetime, to_text)

ID_CHARS = string.ascii_letters + string.digits
MAX_ITERATORS = 2000


class Store:
    def __init__(self, *, id_seed: int | None = None, clock: Callable[[], datetime] | None = None,
                 offset_ttl: float = 600.0) -> None:
        self.bases: list[dict] = []
        self._rng = random.Random(id_seed) if id_seed is not None else random.SystemRandom()
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.offset_ttl = offset_ttl
        self.iterators: dict[str, dict] = {}
        self._formula_cache: dict[tuple[str, str], Any] = {}

    # -- ids, time ------------------------------------------------------------------------
    def new_id(self, prefix: str) -> str:
        return prefix + "".join(self._rng.choice(ID_CHARS) for _ in range(14))

    def now_iso(self) -> str:
        return iso(self.clock())

    # -- snapshot -------------------------------------------------------------------------
    def snapshot(self) -> dict:
        return {"bases": self.bases}

    def restore(self, data: dict) -> None:
        self.bases = list(data.get("bases", []))
        self.iterators.clear()
        self._formula_cache.clear()

    def reset(self) -> None:
        self.bases = []
        self.iterators.clear()
        self._formula_cache.clear()

    # -- lookups --------------------------------------------------------------------------
    def base(self, base_id: str) -> dict:
        for b in self.bases:
            if b["id"] == base_id:
                return b
        raise errors.not_permitted()

    def table(self, base: dict, key: str) -> dict:
        t = self.find_table(base, key)
        if t is None:
            raise errors.not_permitted()
        return t

    @staticmethod
    def find_table(base: dict, key: str) -> dict | None:
        for t in base["tables"]:
            if t["id"] == key:
                return t
        for t in base["tables"]:
            if t["name"] == key:
                return t
        low = key.lower()
        for t in base["tables"]:
            if t["name"].lower() == low:
                return t
        return None

    def table_by_id(self, base: dict, table_id: str) -> dict | None:
        for t in base["tables"]:
            if t["id"] == table_id:
                return t
        return None

    @staticmethod
    def find_field(table: dict, key: str, *, loose: bool = False) -> dict | None:
        for f in table["fields"]:
            if f["id"] == key or f["name"] == key:
                return f
        if loose:
            low = key.strip().lower()
            for f in table["fields"]:
                if f["name"].lower() == low:
                    return f
        return None

    def field_or_422(self, table: dict, key: Any) -> dict:
        if not isinstance(key, str):
            raise errors.invalid_request()
        f = self.find_field(table, key)
        if f is None:
            raise errors.unknown_field(key)
        return f

    @staticmethod
    def find_view(table: dict, key: str) -> dict | None:
        for v in table["views"]:
            if v["id"] == key or v["name"] == key:
                return v
        return None

    # -- schema ---------------------------------------------------------------------------
    def add_base(self, name: str, base_id: str | None = None) -> dict:
        base = {"id": base_id or self.new_id("app"), "name": name, "permissionLevel": "create", "tables": []}
        self.bases.append(base)
        return base

    def add_table(self, base: dict, name: Any, description: Any = None, table_id: str | None = None,
                  views: list | None = None) -> dict:
        if not isinstance(name, str) or not name.strip():
            raise errors.invalid_request()
        name = name.strip()
        if any(t["name"].lower() == name.lower() for t in base["tables"]):
            raise errors.ApiError(422, "DUPLICATE_TABLE_NAME", f'Table name "{name}" already exists in base')
        if description is not None and (not isinstance(description, str) or len(description) > 20000):
            raise errors.invalid_request()
        table = {"id": table_id or self.new_id("tbl"), "name": name, "primaryFieldId": "", "fields": [],
                 "views": [], "records": {}, "nextAutoNumber": 1}
        if description:
            table["description"] = description
        for v in views or [{"name": "Grid view", "type": "grid"}]:
            if not isinstance(v, dict) or not isinstance(v.get("name"), str):
                raise errors.invalid_request()
            view = {"id": v.get("id") or self.new_id("viw"), "name": v["name"], "type": v.get("type", "grid")}
            for k in ("filterByFormula", "sort", "visibleFieldIds"):
                if k in v:
                    view[k] = v[k]
            table["views"].append(view)
        base["tables"].append(table)
        return table

    def add_field(self, base: dict, table: dict, spec: Any, *, api: bool = True,
                  create_inverse: bool = True) -> dict:
        """Add a field from a create-field body (or a seed entry when ``api`` is False)."""
        if not isinstance(spec, dict):
            raise errors.invalid_request()
        allowed = {"name", "type", "description", "options"} | (set() if api else {"id"})
        if set(spec) - allowed:
            raise errors.invalid_request()
        name, ftype = spec.get("name"), spec.get("type")
        if not isinstance(name, str) or not name.strip():
            raise errors.invalid_request()
        name = name.strip()
        if not isinstance(ftype, str) or (api and ftype not in F.KNOWN):
            raise errors.invalid_request()
        if api and ftype in F.NOT_CREATABLE:
            raise errors.ApiError(422, "UNSUPPORTED_FIELD_TYPE_FOR_CREATE",
                                  f'Field type "{ftype}" cannot be created through the API')
        if any(f["name"].lower() == name.lower() for f in table["fields"]):
            raise errors.ApiError(422, "DUPLICATE_OR_EMPTY_FIELD_NAME", f'Field name "{name}" already exists')
        description = spec.get("description")
        if description is not None and not isinstance(description, str):
            raise errors.invalid_request()
        field: dict = {"id": spec.get("id") or self.new_id("fld"), "name": name, "type": ftype}
        if description:
            field["description"] = description
        if ftype == "multipleRecordLinks":
            opts = self._link_options(base, table, spec.get("options"), field)
            field["options"] = opts
        else:
            opts = F.full_options(ftype, spec.get("options"), self.new_id)
            if opts is not None:
                field["options"] = opts
        if not table["fields"]:
            if api and ftype not in F.PRIMARY_OK:
                raise errors.invalid_request()
            table["primaryFieldId"] = field["id"]
        table["fields"].append(field)
        if ftype == "multipleRecordLinks":
            self._pair_link(base, table, field, create_inverse)
        self._formula_cache.clear()
        return field

    def _link_options(self, base: dict, table: dict, options: Any, field: dict) -> dict:
        if not isinstance(options, dict):
            raise errors.invalid_request()
        target_key = options.get("linkedTableId") or options.get("linkedTable")
        target = None
        if isinstance(target_key, str):
            target = self.table_by_id(base, target_key) or self.find_table(base, target_key)
        if target is None:
            raise errors.ApiError(422, "INVALID_REQUEST_UNKNOWN",
                                  f"Invalid options for field: linked table {target_key!r} not found")
        opts = {"linkedTableId": target["id"], "isReversed": bool(options.get("isReversed", False)),
                "prefersSingleRecordLink": bool(options.get("prefersSingleRecordLink", False))}
        if isinstance(options.get("viewIdForRecordSelection"), str):
            opts["viewIdForRecordSelection"] = options["viewIdForRecordSelection"]
        return opts

    def _pair_link(self, base: dict, table: dict, field: dict, create_inverse: bool) -> None:
        target = self.table_by_id(base, field["options"]["linkedTableId"])
        if target is None or target is table:
            return
        for g in target["fields"]:   # an existing unpaired link back (seeds list both sides)
            if (g["type"] == "multipleRecordLinks" and g["options"].get("linkedTableId") == table["id"]
                    and not g["options"].get("inverseLinkFieldId")):
                g["options"]["inverseLinkFieldId"] = field["id"]
                field["options"]["inverseLinkFieldId"] = g["id"]
                return
        if not create_inverse:
            return
        name, n = table["name"], 2
        while any(f["name"].lower() == name.lower() for f in target["fields"]):
            name, n = f"{table['name']} {n}", n + 1
        inverse = {"id": self.new_id("fld"), "name": name, "type": "multipleRecordLinks",
                   "options": {"linkedTableId": table["id"], "isReversed": False,
                               "prefersSingleRecordLink": False, "inverseLinkFieldId": field["id"]}}
        field["options"]["inverseLinkFieldId"] = inverse["id"]
        target["fields"].append(inverse)

    def update_meta(self, obj: dict, body: Any, siblings: list[dict], kind: str) -> dict:
        if not isinstance(body, dict) or not body or set(body) - {"name", "description"}:
            raise errors.invalid_request()
        if "name" in body:
            name = body["name"]
            if not isinstance(name, str) or not name.strip():
                raise errors.invalid_request()
            name = name.strip()
            if any(o is not obj and o["name"].lower() == name.lower() for o in siblings):
                code = "DUPLICATE_TABLE_NAME" if kind == "table" else "DUPLICATE_OR_EMPTY_FIELD_NAME"
                raise errors.ApiError(422, code, f'{kind.capitalize()} name "{name}" already exists')
            obj["name"] = name
        if "description" in body:
            d = body["description"]
            if d is not None and (not isinstance(d, str) or len(d) > 20000):
                raise errors.invalid_request()
            if d:
                obj["description"] = d
            else:
                obj.pop("description", None)
        self._formula_cache.clear()
        return obj

    def table_schema(self, table: dict, include_visible: bool = False) -> dict:
        out = {"id": table["id"], "name": table["name"], "primaryFieldId": table["primaryFieldId"]}
        if table.get("description"):
            out["description"] = table["description"]
        out["fields"] = [self.field_schema(f) for f in table["fields"]]
        views = []
        for v in table["views"]:
            vs = {"id": v["id"], "name": v["name"], "type": v["type"]}
            if include_visible:
                vs["visibleFieldIds"] = v.get("visibleFieldIds") or [f["id"] for f in table["fields"]]
            views.append(vs)
        out["views"] = views
        return out

    @staticmethod
    def field_schema(field: dict) -> dict:
        out = {"type": field["type"], "id": field["id"], "name": field["name"]}
        if field.get("description"):
            out["description"] = field["description"]
        if field.get("options") is not None:
            out["options"] = field["options"]
        return out

    # -- formula values -----------------------------------------------------------------
    def primary_text(self, table: dict, rec: dict) -> str:
        pf = self.find_field(table, table["primaryFieldId"])
        if pf is None:
            return ""
        return to_text(self.formula_cell(table, pf, rec))

    def formula_cell(self, table: dict, field: dict, rec: dict, depth: int = 0) -> Any:
        """The value of one cell as filterByFormula sees it."""
        ftype = field["type"]
        if ftype == "multipleRecordLinks":
            ids = rec["fields"].get(field["id"]) or []
            target = self._table_of_link(field)
            if target is None:
                return None
            names = [self.primary_text(target, target["records"][i]) for i in ids if i in target["records"]]
            return ", ".join(names) if names else None
        value = self.cell(table, field, rec, depth)
        if ftype in ("formula", "rollup", "multipleLookupValues"):
            if isinstance(value, list):
                return ", ".join(to_text(v) for v in value) or None
            if isinstance(value, dict):
                return ERROR
            if isinstance(value, str) and parse_datetime(value) and "T" in value:
                return parse_datetime(value)
            return value
        return F.formula_value(field, value)

    def _table_of_link(self, field: dict) -> dict | None:
        tid = (field.get("options") or {}).get("linkedTableId")
        for b in self.bases:
            for t in b["tables"]:
                if t["id"] == tid:
                    return t
        return None

    def cell(self, table: dict, field: dict, rec: dict, depth: int = 0) -> Any:
        """A cell's REST JSON value, computing computed fields (None = empty)."""
        ftype = field["type"]
        if ftype == "createdTime":
            return rec["createdTime"]
        if ftype == "lastModifiedTime":
            return rec.get("modifiedTime") or rec["createdTime"]
        if ftype == "formula" and depth < 5:
            node = self._compiled(field)
            if node is None:
                return {"error": "#ERROR!"}
            value = evaluate(node, self.context(table, rec, depth + 1))
            if isinstance(value, FormulaValueError):
                return {"error": "#ERROR!"}
            if isinstance(value, datetime):
                return iso(value)
            if isinstance(value, bool):
                return 1 if value else 0
            if isinstance(value, float) and value != value:
                return {"specialValue": "NaN"}
            return None if value == "" else value
        if ftype == "count":
            link = self.find_field(table, (field.get("options") or {}).get("recordLinkFieldId", ""))
            return len(rec["fields"].get(link["id"]) or []) if link else 0
        if ftype == "multipleLookupValues":
            opts = field.get("options") or {}
            link = self.find_field(table, opts.get("recordLinkFieldId", ""))
            target = self._table_of_link(link) if link else None
            if not target:
                return None
            tf = self.find_field(target, opts.get("fieldIdInLinkedTable", ""))
            out = []
            for rid in rec["fields"].get(link["id"]) or []:
                r = target["records"].get(rid)
                if r and tf:
                    v = self.cell(target, tf, r, depth + 1)
                    if v is not None:
                        out.extend(v if isinstance(v, list) else [v])
            return out or None
        return rec["fields"].get(field["id"])

    def _compiled(self, field: dict) -> Any:
        key = (field["id"], str((field.get("options") or {}).get("formula", "")))
        if key not in self._formula_cache:
            try:
                self._formula_cache[key] = parse(key[1])
            except FormulaError:
                self._formula_cache[key] = None
        return self._formula_cache[key]

    def context(self, table: dict, rec: dict, depth: int = 0) -> Context:
        def resolve(name: str) -> Any:
            f = self.find_field(table, name, loose=True)
            return None if f is None else self.formula_cell(table, f, rec, depth)

        return Context(rec["id"], resolve, now=self.clock(), created_time=parse_datetime(rec["createdTime"]),
                       modified_time=parse_datetime(rec.get("modifiedTime") or rec["createdTime"]))

    def compile_filter(self, table: dict, text: Any) -> Any:
        if text is None or text == "":
            return None
        if not isinstance(text, str):
            raise errors.invalid_request()
        try:
            return compile_filter(text, lambda n: self.find_field(table, n, loose=True) is not None)
        except FormulaError as exc:
            raise errors.ApiError(422, "INVALID_FILTER_BY_FORMULA", exc.message) from None

    # -- rendering ------------------------------------------------------------------------
    def render(self, table: dict, rec: dict, *, by_id: bool = False, only: list[dict] | None = None,
               cell_format: str = "json", time_zone: str = "UTC", locale: str = "en-us",
               comment_count: bool = False) -> dict:
        out: dict = {}
        for f in only if only is not None else table["fields"]:
            v = self.cell(table, f, rec)
            if F.is_empty(v):
                continue
            if cell_format == "string":
                if f["type"] == "multipleRecordLinks":
                    target = self._table_of_link(f)
                    v = ", ".join(self.primary_text(target, target["records"][i])
                                  for i in v if target and i in target["records"])
                else:
                    v = F.string_value(f, v, time_zone, locale)
                if v == "":
                    continue
            out[f["id"] if by_id else f["name"]] = v
        record = {"id": rec["id"], "createdTime": rec["createdTime"], "fields": out}
        if comment_count:
            record["commentCount"] = 0
        return record

    # -- writes ---------------------------------------------------------------------------
    def prepare(self, base: dict, table: dict, cells: Any, typecast: bool) -> dict[str, Any]:
        """Validate a ``fields`` object; returns {fieldId: stored value or None}."""
        if not isinstance(cells, dict):
            raise errors.invalid_request()
        out: dict[str, Any] = {}
        for key, value in cells.items():
            field = self.find_field(table, key)
            if field is None:
                raise errors.unknown_field(key)
            if field["type"] == "multipleRecordLinks":
                out[field["id"]] = self._link_value(base, field, value, typecast)
            else:
                out[field["id"]] = F.normalize(field, value, typecast, self.new_id)
        return out

    def _link_value(self, base: dict, field: dict, value: Any, typecast: bool) -> list[str] | None:
        if value is None:
            return None
        if typecast and isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise errors.ApiError(422, "INVALID_VALUE_FOR_COLUMN", "Value is not an array of record IDs.")
        target = self._table_of_link(field)
        if target is None:
            raise errors.bad_value(field["name"])
        out: list[str] = []
        for v in value:
            if isinstance(v, dict) and typecast and isinstance(v.get("id"), str):
                v = v["id"]
            if not isinstance(v, str):
                raise errors.ApiError(422, "INVALID_VALUE_FOR_COLUMN", "Value is not an array of record IDs.")
            if v in target["records"]:
                rid = v
            elif typecast and not (v.startswith("rec") and len(v) == 17):
                rid = next((r["id"] for r in target["records"].values() if self.primary_text(target, r) == v), "")
                if not rid:
                    pf = self.find_field(target, target["primaryFieldId"])
                    init = {} if pf is None or pf["type"] in F.COMPUTED else {pf["id"]: F.normalize(pf, v, True, self.new_id)}
                    rid = self._insert(target, init)["id"]
            elif v.startswith("rec") and len(v) == 17:
                raise errors.row_missing(v)
            else:
                raise errors.ApiError(422, "INVALID_VALUE_FOR_COLUMN", "Value is not an array of record IDs.")
            if rid not in out:
                out.append(rid)
        return out or None

    def _insert(self, table: dict, cells: dict, record_id: str | None = None,
                created: str | None = None) -> dict:
        now = created or self.now_iso()
        rec = {"id": record_id or self.new_id("rec"), "createdTime": now, "modifiedTime": now, "fields": {}}
        for f in table["fields"]:
            if f["type"] == "autoNumber":
                rec["fields"][f["id"]] = table["nextAutoNumber"]
        table["nextAutoNumber"] = table.get("nextAutoNumber", 1) + 1
        table["records"][rec["id"]] = rec
        self._apply(table, rec, cells, replace=False)
        return rec

    def create(self, base: dict, table: dict, prepared: dict) -> dict:
        return self._insert(table, prepared)

    def update(self, table: dict, rec: dict, prepared: dict, replace: bool) -> dict:
        self._apply(table, rec, prepared, replace)
        rec["modifiedTime"] = self.now_iso()
        return rec

    def _apply(self, table: dict, rec: dict, prepared: dict, replace: bool) -> None:
        if replace:
            for f in table["fields"]:
                if f["type"] not in F.COMPUTED and f["id"] not in prepared:
                    prepared = {**prepared, f["id"]: None}
        for fid, value in prepared.items():
            field = self.find_field(table, fid)
            if field is None:
                continue
            if field["type"] == "multipleRecordLinks":
                self._set_link(table, rec, field, value or [])
            elif value is None:
                rec["fields"].pop(fid, None)
            else:
                rec["fields"][fid] = value

    def _set_link(self, table: dict, rec: dict, field: dict, new: list[str]) -> None:
        old = rec["fields"].get(field["id"]) or []
        if new:
            rec["fields"][field["id"]] = list(new)
        else:
            rec["fields"].pop(field["id"], None)
        inv_id = field["options"].get("inverseLinkFieldId")
        target = self._table_of_link(field)
        if not inv_id or target is None:
            return
        for rid in old:
            if rid not in new and rid in target["records"]:
                cell = target["records"][rid]["fields"].get(inv_id) or []
                cell = [x for x in cell if x != rec["id"]]
                if cell:
                    target["records"][rid]["fields"][inv_id] = cell
                else:
                    target["records"][rid]["fields"].pop(inv_id, None)
        for rid in new:
            if rid not in old and rid in target["records"]:
                cell = target["records"][rid]["fields"].setdefault(inv_id, [])
                if rec["id"] not in cell:
                    cell.append(rec["id"])

    def delete(self, base: dict, table: dict, record_id: str) -> None:
        table["records"].pop(record_id, None)
        for t in base["tables"]:
            for f in t["fields"]:
                if f["type"] == "multipleRecordLinks" and f["options"].get("linkedTableId") == table["id"]:
                    for r in t["records"].values():
                        cell = r["fields"].get(f["id"])
                        if cell and record_id in cell:
                            cell.remove(record_id)
                            if not cell:
                                del r["fields"][f["id"]]

    # -- listing --------------------------------------------------------------------------
    def select(self, table: dict, view: dict | None, node: Any, sort: list[tuple[dict, bool]]) -> list[str]:
        records = list(table["records"].values())
        view_sort: list[tuple[dict, bool]] = []
        view_node = None
        if view is not None:
            if view.get("filterByFormula"):
                try:
                    view_node = parse(view["filterByFormula"])
                except FormulaError:
                    view_node = None
            for s in view.get("sort") or []:
                f = self.find_field(table, s.get("field", ""), loose=True)
                if f is not None:
                    view_sort.append((f, s.get("direction") == "desc"))
        kept = []
        for r in records:
            if view_node is not None or node is not None:
                ctx = self.context(table, r)
                if view_node is not None and not matches(view_node, ctx):
                    continue
                if node is not None and not matches(node, ctx):
                    continue
            kept.append(r)
        for field, desc in reversed(sort or view_sort):
            kept.sort(key=lambda r: self._sort_key(table, field, r), reverse=desc)
        return [r["id"] for r in kept]

    def _sort_key(self, table: dict, field: dict, rec: dict) -> tuple:
        v = self.formula_cell(table, field, rec)
        if v is None or v == "":
            return (0, 0, "")
        if isinstance(v, bool):
            return (1, int(v), "")
        if isinstance(v, (int, float)):
            return (1, v, "")
        if isinstance(v, datetime):
            return (1, v.timestamp(), "")
        return (2, 0, to_text(v).casefold())

    def new_iterator(self, table: dict, ids: list[str]) -> str:
        now = time.monotonic()
        if len(self.iterators) >= MAX_ITERATORS:
            oldest = min(self.iterators, key=lambda k: self.iterators[k]["touched"])
            del self.iterators[oldest]
        itr = self.new_id("itr")
        self.iterators[itr] = {"table": table["id"], "ids": ids, "touched": now}
        return itr

    def iterator(self, table: dict, offset: str) -> tuple[str, list[str], int]:
        itr, _, rec_id = offset.partition("/")
        if not (itr.startswith("itr") and len(itr) == 17 and rec_id.startswith("rec") and len(rec_id) == 17):
            raise errors.ApiError(422, "INVALID_OFFSET_VALUE", f"The value of offset {offset} is invalid")
        state = self.iterators.get(itr)
        now = time.monotonic()
        if state is None or state["table"] != table["id"] or now - state["touched"] > self.offset_ttl:
            self.iterators.pop(itr, None)
            raise errors.ApiError(422, "LIST_RECORDS_ITERATOR_NOT_AVAILABLE")
        state["touched"] = now
        try:
            pos = state["ids"].index(rec_id)
        except ValueError:
            raise errors.ApiError(422, "LIST_RECORDS_ITERATOR_NOT_AVAILABLE") from None
        return itr, state["ids"], pos

    def expire_iterators(self) -> int:
        n = len(self.iterators)
        self.iterators.clear()
        return n
