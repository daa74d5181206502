"""Routes and handlers of the Airtable twin (Records API v0 and the Metadata API).

Route keys (for faults and the request log):
  records.list     GET /v0/{base}/{table} and POST /v0/{base}/{table}/listRecords
  records.get      GET /v0/{base}/{table}/{recordId}
  records.create   POST /v0/{base}/{table}
  records.update   PATCH|PUT /v0/{base}/{table}[/{recordId}] (without performUpsert)
  records.upsert   PATCH|PUT /v0/{base}/{table} with performUpsert
  records.delete   DELETE /v0/{base}/{table}/{recordId} and DELETE /v0/{base}/{table}?records[]=…
  meta.bases       GET /v0/meta/bases
  meta.schema      GET /v0/meta/bases/{base}/tables
  meta.tables.create / meta.tables.update    POST …/tables, PATCH …/tables/{table}
  meta.fields.create / meta.fields.update    POST …/tables/{table}/fields, PATCH …/fields/{field}
  meta.whoami      GET /v0/meta/whoami
Twin control (no auth, no faults, no rate limit, not in the request log):
  POST /__sandbox/airtable/expire-offsets
  POST /__sandbox/airtable/forms/{base}/{table}     a form submission (body as records.create);
                                                    Airtable forms do not count against the API limit
  GET  /__sandbox/airtable/records/{base}/{table}   read records (query as records.list)
"""
from __future__ import annotations

import copy
import json
import re
from typing import Any, Callable

from ..twin import Route, TwinApp, TwinRequest, TwinResponse, json_response
from . import errors
from .errors import ApiError
from .fields import COMPUTED
from .ratelimit import RateLimiter
from .seed import load_seed
from .store import Store

_SEG = r"[^/]+"
_BASE = r"/v0/(?!(?:meta|bases)/)(?P<base>[^/]+)"
_TABLE = _BASE + r"/(?P<table>[^/]+)"
_META_BASE = r"/v0/meta/bases/(?P<base>[^/]+)"
_SORT_RX = re.compile(r"^sort\[(\d+)\]\[(field|direction)\]$")
_MERGE_TYPES = {"singleLineText", "multilineText", "richText", "email", "url", "phoneNumber", "number",
                "currency", "percent", "duration", "rating", "singleSelect", "multipleSelects", "date",
                "dateTime", "checkbox"}
LIST_BODY_KEYS = {"filterByFormula", "fields", "sort", "view", "pageSize", "maxRecords", "offset", "cellFormat",
                  "returnFieldsByFieldId", "recordMetadata", "timeZone", "userLocale"}
MAX_BATCH = 10


def _truthy_param(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if v is None:
        return False
    if isinstance(v, (int, float)):
        return bool(v)
    if isinstance(v, str) and v.lower() in ("1", "true", "yes"):
        return True
    if isinstance(v, str) and v.lower() in ("0", "false", "no", ""):
        return False
    raise errors.invalid_request()


def _int_param(v: Any, name: str) -> int | None:
    if v is None or v == "":
        return None
    if isinstance(v, bool):
        raise errors.invalid_request()
    if isinstance(v, str):
        if not re.fullmatch(r"\s*-?\d+\s*", v):
            raise errors.invalid_request()
        v = int(v)
    if not isinstance(v, int):
        raise errors.invalid_request()
    return v


class AirtableTwin(TwinApp):
    name = "airtable"

    def __init__(self, seed: dict | None = None, *, token: str | list[str] | None = None,
                 rate_limit: bool = True, penalty_seconds: float = 30.0, retry_after: int | None = None,
                 requests_per_second: int = 5, id_seed: int | None = None, offset_ttl: float = 600.0,
                 user_id: str = "usrGiftsyncSandbx") -> None:
        super().__init__()
        if isinstance(token, str):
            self.tokens: set[str] | None = {token}
        elif token is None:
            self.tokens = None
        else:
            self.tokens = set(token)
        self.rate_limit = bool(rate_limit)
        self.limiter = RateLimiter(int(requests_per_second), float(penalty_seconds))
        self.retry_after = retry_after
        self.user_id = user_id
        self.store = Store(id_seed=id_seed, offset_ttl=float(offset_ttl))
        if seed:
            load_seed(self.store, seed)
        self._initial = copy.deepcopy(self.store.snapshot())
        self._routes = self._build_routes()

    # -- TwinApp --------------------------------------------------------------------------
    def _build_routes(self) -> list[Route]:
        w = self._wrap
        return [
            Route("POST", r"/__sandbox/airtable/expire-offsets", self._expire_offsets, "sandbox.airtable.expire-offsets"),
            Route("POST", r"/__sandbox/airtable/forms/(?P<base>[^/]+)/(?P<table>[^/]+)/?", w(self.create_records, True),
                  "sandbox.airtable.form"),
            Route("GET", r"/__sandbox/airtable/records/(?P<base>[^/]+)/(?P<table>[^/]+)/?", w(self.list_records),
                  "sandbox.airtable.records"),
            Route("GET", r"/v0/meta/whoami/?", w(self.whoami), "meta.whoami"),
            Route("GET", r"/v0/meta/bases/?", w(self.list_bases), "meta.bases"),
            Route("GET", _META_BASE + r"/tables/?", w(self.get_schema), "meta.schema"),
            Route("POST", _META_BASE + r"/tables/?", w(self.create_table, True), "meta.tables.create"),
            Route("PATCH", _META_BASE + r"/tables/(?P<table>[^/]+)/?", w(self.update_table, True), "meta.tables.update"),
            Route("POST", _META_BASE + r"/tables/(?P<table>[^/]+)/fields/?", w(self.create_field, True),
                  "meta.fields.create"),
            Route("PATCH", _META_BASE + r"/tables/(?P<table>[^/]+)/fields/(?P<field>[^/]+)/?",
                  w(self.update_field, True), "meta.fields.update"),
            Route("POST", _TABLE + r"/listRecords/?", w(self.list_records_post), "records.list"),
            Route("GET", _TABLE + r"/?", w(self.list_records), "records.list"),
            Route("POST", _TABLE + r"/?", w(self.create_records, True), "records.create"),
            Route("PATCH", _TABLE + r"/?", w(self.update_records, True), "records.update"),
            Route("PUT", _TABLE + r"/?", w(self.update_records, True), "records.update"),
            Route("DELETE", _TABLE + r"/?", w(self.delete_records, True), "records.delete"),
            Route("GET", _TABLE + r"/(?P<record>[^/]+)/?", w(self.get_record), "records.get"),
            Route("PATCH", _TABLE + r"/(?P<record>[^/]+)/?", w(self.update_record, True), "records.update"),
            Route("PUT", _TABLE + r"/(?P<record>[^/]+)/?", w(self.update_record, True), "records.update"),
            Route("DELETE", _TABLE + r"/(?P<record>[^/]+)/?", w(self.delete_record, True), "records.delete"),
        ]

    def routes(self) -> list[Route]:
        return self._routes

    def route_key(self, req: TwinRequest) -> str:
        if req.route == "records.update" and "record" not in req.params and b"performUpsert" in req.body:
            try:
                body = req.json()
            except (ValueError, RecursionError):
                return req.route
            if isinstance(body, dict) and "performUpsert" in body:
                return "records.upsert"
        return req.route

    def gate(self, req: TwinRequest) -> TwinResponse | None:
        auth = req.header("authorization") or ""
        scheme, _, token = auth.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or (self.tokens is not None and token not in self.tokens):
            return ApiError(401, "AUTHENTICATION_REQUIRED", "Authentication required").response()
        base = req.params.get("base")
        if self.rate_limit and base and not self.limiter.allow(base):
            return self._rate_limited()
        return None

    def _rate_limited(self) -> TwinResponse:
        resp = ApiError(429, "RATE_LIMIT_REACHED", "Rate limit exceeded. Please try again later").response()
        if self.retry_after is not None:
            resp.headers["Retry-After"] = str(int(self.retry_after))
        return resp

    def fault_response(self, status: int, req: TwinRequest) -> TwinResponse:
        if status == 429:
            return self._rate_limited()
        if status == 503:
            return ApiError(503, "RETRIABLE_ERROR", "Server encountered an error while processing your request, "
                            "and it is safe to retry the request").response()
        if status == 404:
            return json_response(404, {"error": "NOT_FOUND"})
        if status >= 500:
            return ApiError(status, "SERVER_ERROR", "Server error").response()
        return ApiError(status, "INJECTED_FAULT", f"Injected fault {status}").response()

    def internal_error(self, req: TwinRequest, exc: BaseException) -> TwinResponse:
        return ApiError(500, "SERVER_ERROR", "Server error").response()

    def snapshot(self) -> dict:
        return {"version": 1, **self.store.snapshot(), "seed": self._initial}

    def restore(self, data: dict) -> None:
        data = copy.deepcopy(data)
        if isinstance(data.get("seed"), dict):
            self._initial = data.pop("seed")
        self.store.restore(data)

    def reset(self) -> None:
        """Back to the seed the twin was created with (same ids); empty without a seed."""
        self.store.restore(copy.deepcopy(self._initial))
        self.limiter.reset()

    # -- plumbing ---------------------------------------------------------------------------
    def _wrap(self, fn: Callable[[TwinRequest], Any], writes: bool = False) -> Callable[[TwinRequest], TwinResponse]:
        def handler(req: TwinRequest) -> TwinResponse:
            try:
                result = fn(req)
            except ApiError as exc:
                return exc.response()
            except RecursionError:
                return errors.invalid_request().response()
            if writes:
                self.dirty = True
            return result if isinstance(result, TwinResponse) else json_response(200, result)
        handler.__name__ = fn.__name__
        return handler

    @staticmethod
    def _body(req: TwinRequest) -> Any:
        try:
            return req.json()
        except (ValueError, RecursionError):
            raise ApiError(422, "INVALID_REQUEST_BODY", "Could not parse request body") from None

    def _base_table(self, req: TwinRequest) -> tuple[dict, dict]:
        base = self.store.base(req.params["base"])
        return base, self.store.table(base, req.params["table"])

    def _expire_offsets(self, req: TwinRequest) -> TwinResponse:
        with self.lock:
            n = self.store.expire_iterators()
        return json_response(200, {"ok": True, "expired": n})

    # -- records: read ------------------------------------------------------------------------
    def list_records(self, req: TwinRequest) -> dict:
        q = req.query
        opts: dict[str, Any] = {}
        for key in ("filterByFormula", "view", "pageSize", "maxRecords", "offset", "cellFormat",
                    "returnFieldsByFieldId", "timeZone", "userLocale"):
            if key in q:
                opts[key] = q[key][0]
        if "fields[]" in q or "fields" in q:
            opts["fields"] = q.get("fields[]", []) + q.get("fields", [])
        meta = q.get("recordMetadata[]", []) + q.get("recordMetadata", [])
        if meta:
            opts["recordMetadata"] = meta
        sorts: dict[int, dict] = {}
        for key, values in q.items():
            m = _SORT_RX.match(key)
            if m:
                sorts.setdefault(int(m.group(1)), {})[m.group(2)] = values[0]
        if sorts:
            opts["sort"] = [sorts[i] for i in sorted(sorts)]
        return self._list(req, opts)

    def list_records_post(self, req: TwinRequest) -> dict:
        body = self._body(req) if req.body else {}
        if not isinstance(body, dict) or set(body) - LIST_BODY_KEYS:
            raise errors.invalid_request()
        opts = dict(body)
        for key in ("timeZone", "userLocale"):
            if key in req.query:
                opts[key] = req.query[key][0]
        return self._list(req, opts)

    def _list(self, req: TwinRequest, opts: dict) -> dict:
        base, table = self._base_table(req)
        store = self.store
        view = None
        if opts.get("view") not in (None, ""):
            if not isinstance(opts["view"], str):
                raise errors.invalid_request()
            view = store.find_view(table, opts["view"])
            if view is None:
                raise ApiError(422, "VIEW_NAME_NOT_FOUND", f"View {opts['view']} not found")
        only = None
        if opts.get("fields") is not None:
            if not isinstance(opts["fields"], list):
                raise errors.invalid_request()
            only = []
            for key in opts["fields"]:
                f = store.field_or_422(table, key)
                if f not in only:
                    only.append(f)
        sort = []
        sort_spec = opts.get("sort")
        if sort_spec is not None:
            if not isinstance(sort_spec, list):
                raise errors.invalid_request()
            for s in sort_spec:
                if not isinstance(s, dict) or set(s) - {"field", "direction"} or "field" not in s:
                    raise errors.invalid_request()
                direction = s.get("direction", "asc")
                if direction not in ("asc", "desc"):
                    raise errors.invalid_request()
                sort.append((store.field_or_422(table, s["field"]), direction == "desc"))
        page_size = _int_param(opts.get("pageSize"), "pageSize")
        if page_size is None:
            page_size = 100
        if not 1 <= page_size <= 100:
            raise errors.invalid_request()
        max_records = _int_param(opts.get("maxRecords"), "maxRecords")
        if max_records is not None and max_records < 0:
            raise errors.invalid_request()
        cell_format = opts.get("cellFormat") or "json"
        tz, locale = opts.get("timeZone"), opts.get("userLocale")
        if cell_format not in ("json", "string"):
            raise errors.invalid_request()
        if cell_format == "string" and (not tz or not locale):
            raise errors.invalid_request('The "timeZone" and "userLocale" parameters are required when using '
                                         '"string" as "cellFormat".')
        by_id = _truthy_param(opts.get("returnFieldsByFieldId"))
        meta = opts.get("recordMetadata") or []
        if not isinstance(meta, list) or any(m != "commentCount" for m in meta):
            raise errors.invalid_request()
        node = store.compile_filter(table, opts.get("filterByFormula"))
        offset = opts.get("offset")
        if offset not in (None, ""):
            if not isinstance(offset, str):
                raise errors.invalid_request()
            itr, ids, pos = store.iterator(table, offset)
        else:
            ids = store.select(table, view, node, sort)
            if max_records:
                ids = ids[:max_records]
            itr, pos = None, 0
        page = ids[pos:pos + page_size]
        records = [store.render(table, table["records"][i], by_id=by_id, only=only, cell_format=cell_format,
                                time_zone=tz or "UTC", locale=locale or "en-us", comment_count=bool(meta))
                   for i in page if i in table["records"]]
        out: dict = {"records": records}
        nxt = pos + page_size
        if nxt < len(ids):
            if itr is None:
                itr = store.new_iterator(table, ids)
            out["offset"] = f"{itr}/{ids[nxt]}"
        return out

    def get_record(self, req: TwinRequest) -> dict:
        base, table = self._base_table(req)
        rid = req.params["record"]
        rec = table["records"].get(rid)
        owner = table
        if rec is None:   # Airtable's quirk: any table of the base will do
            for t in base["tables"]:
                if rid in t["records"]:
                    rec, owner = t["records"][rid], t
                    break
        if rec is None:
            raise errors.record_not_found()
        cell_format = req.arg("cellFormat") or "json"
        tz, locale = req.arg("timeZone"), req.arg("userLocale")
        if cell_format not in ("json", "string"):
            raise errors.invalid_request()
        if cell_format == "string" and (not tz or not locale):
            raise errors.invalid_request('The "timeZone" and "userLocale" parameters are required when using '
                                         '"string" as "cellFormat".')
        return self.store.render(owner, rec, by_id=_truthy_param(req.arg("returnFieldsByFieldId")),
                                 cell_format=cell_format, time_zone=tz or "UTC", locale=locale or "en-us")

    # -- records: write -----------------------------------------------------------------------
    @staticmethod
    def _flags(body: dict) -> tuple[bool, bool]:
        typecast = body.get("typecast", False)
        if not isinstance(typecast, bool) and typecast is not None:
            raise errors.invalid_request()
        return bool(typecast), _truthy_param(body.get("returnFieldsByFieldId"))

    @staticmethod
    def _records_list(body: dict, verb: str) -> list:
        records = body["records"]
        if not isinstance(records, list) or not records:
            raise errors.invalid_request()
        if len(records) > MAX_BATCH:
            raise ApiError(422, "INVALID_RECORDS", f"A maximum of {MAX_BATCH} records can be {verb} per request "
                                                   f"but you have provided {len(records)}.")
        for r in records:
            if not isinstance(r, dict):
                raise errors.invalid_request()
        return records

    @staticmethod
    def _missing_fields() -> ApiError:
        return ApiError(422, "INVALID_REQUEST_MISSING_FIELDS", 'Could not find field "fields" in the request body')

    def create_records(self, req: TwinRequest) -> dict:
        base, table = self._base_table(req)
        body = self._body(req)
        if not isinstance(body, dict) or set(body) - {"fields", "records", "typecast", "returnFieldsByFieldId"}:
            raise errors.invalid_request()
        typecast, by_id = self._flags(body)
        store = self.store
        if "records" in body:
            if "fields" in body:
                raise errors.invalid_request()
            items = self._records_list(body, "created")
            for r in items:
                if set(r) - {"fields"}:
                    raise errors.invalid_request()
                if "fields" not in r:
                    raise self._missing_fields()
            prepared = [store.prepare(base, table, r["fields"], typecast) for r in items]
            recs = [store.create(base, table, p) for p in prepared]
            return {"records": [store.render(table, r, by_id=by_id) for r in recs]}
        if "fields" not in body:
            raise self._missing_fields()
        rec = store.create(base, table, store.prepare(base, table, body["fields"], typecast))
        return store.render(table, rec, by_id=by_id)

    def update_record(self, req: TwinRequest) -> dict:
        base, table = self._base_table(req)
        body = self._body(req)
        if not isinstance(body, dict) or set(body) - {"fields", "typecast", "returnFieldsByFieldId"}:
            raise errors.invalid_request()
        if "fields" not in body:
            raise self._missing_fields()
        typecast, by_id = self._flags(body)
        rec = table["records"].get(req.params["record"])
        if rec is None:
            raise errors.record_not_found()
        prepared = self.store.prepare(base, table, body["fields"], typecast)
        self.store.update(table, rec, prepared, replace=req.method == "PUT")
        return self.store.render(table, rec, by_id=by_id)

    def update_records(self, req: TwinRequest) -> dict:
        base, table = self._base_table(req)
        body = self._body(req)
        if not isinstance(body, dict) or set(body) - {"records", "typecast", "returnFieldsByFieldId", "performUpsert"}:
            raise errors.invalid_request()
        if "records" not in body:
            raise ApiError(422, "INVALID_REQUEST_MISSING_FIELDS", 'Could not find field "records" in the request body')
        typecast, by_id = self._flags(body)
        replace = req.method == "PUT"
        store = self.store
        upsert = body.get("performUpsert")
        merge: list[dict] = []
        if "performUpsert" in body:
            if not isinstance(upsert, dict) or set(upsert) != {"fieldsToMergeOn"}:
                raise errors.invalid_request()
            keys = upsert["fieldsToMergeOn"]
            if not isinstance(keys, list) or not 1 <= len(keys) <= 3:
                raise errors.invalid_request()
            for k in keys:
                f = store.field_or_422(table, k)
                if f["type"] not in _MERGE_TYPES or f["type"] in COMPUTED:
                    raise errors.invalid_request(f'Field "{f["name"]}" cannot be used in fieldsToMergeOn')
                merge.append(f)
        items = self._records_list(body, "updated")
        plan = []
        for r in items:
            if set(r) - {"id", "fields"}:
                raise errors.invalid_request()
            if "fields" not in r:
                raise self._missing_fields()
            rid = r.get("id")
            if rid is None and not merge:
                raise errors.invalid_request()
            if rid is not None:
                if not isinstance(rid, str):
                    raise errors.invalid_request()
                if rid not in table["records"]:
                    raise errors.row_missing(rid)
            prepared = store.prepare(base, table, r["fields"], typecast)
            if rid is None and any(f["id"] not in prepared for f in merge):
                raise errors.invalid_request()
            plan.append((rid, prepared))
        out, created, updated = [], [], []
        for rid, prepared in plan:
            if rid is None:
                matches = [rec for rec in table["records"].values()
                           if all(prepared[f["id"]] is not None and rec["fields"].get(f["id"]) == prepared[f["id"]]
                                  for f in merge)]
                if len(matches) > 1:
                    raise ApiError(422, "INVALID_RECORDS",
                                   "Cannot update more than one record with the same fieldsToMergeOn values")
                if not matches:
                    rec = store.create(base, table, prepared)
                    created.append(rec["id"])
                    out.append(rec)
                    continue
                rid = matches[0]["id"]
            rec = store.update(table, table["records"][rid], prepared, replace)
            if merge:
                updated.append(rid)
            out.append(rec)
        result: dict = {"records": [store.render(table, r, by_id=by_id) for r in out]}
        if merge:
            result = {"createdRecords": created, "updatedRecords": updated, **result}
        return result

    def delete_record(self, req: TwinRequest) -> dict:
        base, table = self._base_table(req)
        rid = req.params["record"]
        if rid not in table["records"]:
            raise errors.record_not_found()
        self.store.delete(base, table, rid)
        return {"id": rid, "deleted": True}

    def delete_records(self, req: TwinRequest) -> dict:
        base, table = self._base_table(req)
        ids = req.query.get("records[]", []) + req.query.get("records", [])
        if not ids:
            raise errors.invalid_request()
        if len(ids) > MAX_BATCH:
            raise ApiError(422, "INVALID_RECORDS", f"A maximum of {MAX_BATCH} records can be deleted per request "
                                                   f"but you have provided {len(ids)}.")
        for rid in ids:
            if rid not in table["records"]:
                raise errors.row_missing(rid)
        for rid in ids:
            self.store.delete(base, table, rid)
        return {"records": [{"id": rid, "deleted": True} for rid in ids]}

    # -- metadata ------------------------------------------------------------------------------
    def whoami(self, req: TwinRequest) -> dict:
        return {"id": self.user_id, "scopes": ["data.records:read", "data.records:write",
                                               "schema.bases:read", "schema.bases:write"]}

    def list_bases(self, req: TwinRequest) -> dict:
        return {"bases": [{"id": b["id"], "name": b["name"], "permissionLevel": b.get("permissionLevel", "create")}
                          for b in self.store.bases]}

    def get_schema(self, req: TwinRequest) -> dict:
        base = self.store.base(req.params["base"])
        include = req.query.get("include", []) + req.query.get("include[]", [])
        visible = "visibleFieldIds" in include
        return {"tables": [self.store.table_schema(t, visible) for t in base["tables"]]}

    def create_table(self, req: TwinRequest) -> dict:
        base = self.store.base(req.params["base"])
        body = self._body(req)
        if not isinstance(body, dict) or set(body) - {"name", "description", "fields"}:
            raise errors.invalid_request()
        fields = body.get("fields")
        if not isinstance(fields, list) or not fields:
            raise errors.invalid_request()
        before = copy.deepcopy(base["tables"])
        try:
            table = self.store.add_table(base, body.get("name"), body.get("description"))
            for spec in fields:
                self.store.add_field(base, table, spec)
        except ApiError:
            base["tables"] = before
            raise
        return self.store.table_schema(table)

    def _meta_table(self, req: TwinRequest) -> tuple[dict, dict]:
        base = self.store.base(req.params["base"])
        return base, self.store.table(base, req.params["table"])

    def update_table(self, req: TwinRequest) -> dict:
        base, table = self._meta_table(req)
        self.store.update_meta(table, self._body(req), base["tables"], "table")
        return self.store.table_schema(table)

    def create_field(self, req: TwinRequest) -> dict:
        base, table = self._meta_table(req)
        field = self.store.add_field(base, table, self._body(req))
        return self.store.field_schema(field)

    def update_field(self, req: TwinRequest) -> dict:
        base, table = self._meta_table(req)
        field = next((f for f in table["fields"] if f["id"] == req.params["field"]), None)
        if field is None:
            raise errors.not_permitted()
        self.store.update_meta(field, self._body(req), table["fields"], "field")
        return self.store.field_schema(field)


def create_app(seed: dict | None = None, **options: Any) -> AirtableTwin:
    """The Airtable twin; see docs/twins/airtable.md for ``seed`` and ``options``."""
    return AirtableTwin(seed, **options)
