"""The Klaviyo twin: routes, auth, revision header, scopes, rate limits, state.

Route keys (for faults, the request log and rate limits):

  events.create     POST  /api/events
  events.bulk       POST  /api/event-bulk-create-jobs
  events.list       GET   /api/events
  profiles.create   POST  /api/profiles
  profiles.update   PATCH /api/profiles/{id}
  profiles.import   POST  /api/profile-import
  profiles.list     GET   /api/profiles
  profiles.get      GET   /api/profiles/{id}
  metrics.list      GET   /api/metrics
  accounts.list     GET   /api/accounts

Inspection (no auth, no faults): GET /__sandbox/outbox, DELETE /__sandbox/outbox,
GET /__sandbox/events, /__sandbox/profiles, /__sandbox/metrics, /__sandbox/templates.
"""
from __future__ import annotations

import copy
import json
import re
from typing import Any, Callable

from ..twin import Route, TwinApp, TwinRequest, TwinResponse, json_response
from .events import EventStore, event_value
from .ids import ulid
from .outbox import Outbox
from .profiles import ProfileStore, now_iso
from .query import apply_filter, decode_cursor, encode_cursor, page_size, sort_items
from .ratelimit import RateLimiter
from .templates import TemplateSet, load_templates_file
from .validation import (EVENT_PROFILE_FIELDS, MAX_EVENT_PAYLOAD, MAX_PROFILE_PAYLOAD, PROFILE_FIELDS,
                         ApiError, error_object, event_attributes, parse_body, profile_attributes,
                         validate_bulk_create, validate_event_create, validate_profile_create,
                         validate_profile_import, validate_profile_update)

JSONAPI = "application/vnd.api+json"
CURRENT_REVISION = "2026-10-15"          # what klaviyo-api 25.0.0 sends
DEFAULT_MIN_REVISION = "2024-10-15"      # revisions are supported ~2 years
# Klaviyo links its rate-limit docs page here; the twin keeps the member but names no real host
RATE_LIMIT_DOCS = "/docs/rate_limits_and_error_handling#rate-limits"
REVISION_RX = re.compile(r"^(\d{4}-\d{2}-\d{2})(\.pre)?$")

SCOPES = {
    "events.create": "events:write", "events.bulk": "events:write", "events.list": "events:read",
    "profiles.create": "profiles:write", "profiles.update": "profiles:write", "profiles.import": "profiles:write",
    "profiles.list": "profiles:read", "profiles.get": "profiles:read",
    "metrics.list": "metrics:read", "accounts.list": "accounts:read",
}

DEFAULT_ACCOUNT = {
    "id": "Sbx6Kq",
    "test_account": True,
    "organization_name": "giftsync sandbox",
    "default_sender_name": "giftsync sandbox",
    "default_sender_email": "giftcards@example.com",
    "website_url": "https://shop.example.com",
    "street_address": {"address1": "1 Example Street", "address2": None, "city": "Springfield",
                       "region": None, "country": "US", "zip": "00000"},
    "industry": "Retail",
    "timezone": "UTC",
    "preferred_currency": "USD",
    "locale": "en-US",
}

PROFILE_FILTERS = {"id": ("equals", "any"), "email": ("equals", "any"), "phone_number": ("equals", "any"),
                   "external_id": ("equals", "any"), "_kx": ("equals",),
                   "created": ("greater-than", "less-than"), "updated": ("greater-than", "less-than")}
EVENT_FILTERS = {"metric_id": ("equals",), "profile_id": ("equals",),
                 "datetime": ("greater-or-equal", "greater-than", "less-or-equal", "less-than"),
                 "timestamp": ("greater-or-equal", "greater-than", "less-or-equal", "less-than")}
METRIC_FILTERS = {"integration.name": ("equals",), "integration.category": ("equals",)}


def _api_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> TwinResponse:
    h = dict(headers or {})
    if payload is None:
        return TwinResponse(status, b"", h)
    h["Content-Type"] = JSONAPI
    return TwinResponse(status, json.dumps(payload, separators=(",", ":")).encode(), h)


def error_response(err: ApiError, headers: dict[str, str] | None = None) -> TwinResponse:
    h = dict(headers or {})
    h.update(err.headers)
    return _api_response(err.status, err.body(), h)


def throttled(retry_after: int) -> ApiError:
    unit = "second" if retry_after == 1 else "seconds"
    return ApiError(429, [error_object(
        429, f"Request was throttled. Expected available in {retry_after} {unit}.", pointer="/data",
        links={"type": RATE_LIMIT_DOCS})],
        headers={"Retry-After": str(retry_after)})


class KlaviyoTwin(TwinApp):
    name = "klaviyo"

    def __init__(self, seed: dict | None = None, *, api_key: str | None = None,
                 scopes: list[str] | None = None, access_token: str | None = None,
                 rate_limit: bool = True, tiers: dict | None = None,
                 revision_check: bool = True, min_revision: str = DEFAULT_MIN_REVISION,
                 templates: dict | None = None, templates_path: str | None = None,
                 outbox_unknown_metrics: bool = False, bulk_job_body: bool = False,
                 dedupe_by_time: bool = True, account: dict | None = None) -> None:
        super().__init__()
        self.api_key = api_key
        self.scopes = None if scopes is None else set(scopes)
        self.access_token = access_token
        self.revision_check = bool(revision_check)
        if not REVISION_RX.match(min_revision):
            raise ValueError(f"min_revision {min_revision!r} is not YYYY-MM-DD")
        self.min_revision = min_revision
        self.bulk_job_body = bool(bulk_job_body)
        self.limiter = RateLimiter(tiers, enabled=bool(rate_limit))
        self._template_file = load_templates_file(templates_path)
        self.extra_templates: dict = {}
        self.templates = TemplateSet(self._template_file)
        self.profiles = ProfileStore()
        self.outbox = Outbox(self.templates, unknown_metrics=bool(outbox_unknown_metrics))
        self.events = EventStore(self.profiles, self.outbox, dedupe_by_time=bool(dedupe_by_time))
        self.account = dict(DEFAULT_ACCOUNT)
        if account:
            self.account.update(account)
        if templates:
            self.add_templates(templates)
        if seed:
            self.load_seed(seed)
        self._routes = self._build_routes()

    # -- routes --------------------------------------------------------------------------
    def _build_routes(self) -> list[Route]:
        a = self._api
        return [
            Route("POST", r"/api/events/?", a(self.create_event), "events.create"),
            Route("GET", r"/api/events/?", a(self.list_events), "events.list"),
            Route("POST", r"/api/event-bulk-create-jobs/?", a(self.bulk_create_events), "events.bulk"),
            Route("POST", r"/api/profiles/?", a(self.create_profile), "profiles.create"),
            Route("GET", r"/api/profiles/?", a(self.list_profiles), "profiles.list"),
            Route("PATCH", r"/api/profiles/(?P<id>[^/]+)/?", a(self.update_profile), "profiles.update"),
            Route("GET", r"/api/profiles/(?P<id>[^/]+)/?", a(self.get_profile), "profiles.get"),
            Route("POST", r"/api/profile-import/?", a(self.import_profile), "profiles.import"),
            Route("GET", r"/api/metrics/?", a(self.list_metrics), "metrics.list"),
            Route("GET", r"/api/accounts/?", a(self.list_accounts), "accounts.list"),
            Route("GET", r"/__sandbox/outbox/?", self.sandbox_outbox, "sandbox.outbox"),
            Route("DELETE", r"/__sandbox/outbox/?", self.sandbox_outbox_clear, "sandbox.outbox.clear"),
            Route("GET", r"/__sandbox/events/?", self.sandbox_events, "sandbox.events"),
            Route("GET", r"/__sandbox/profiles/?", self.sandbox_profiles, "sandbox.profiles"),
            Route("GET", r"/__sandbox/metrics/?", self.sandbox_metrics, "sandbox.metrics"),
            Route("GET", r"/__sandbox/templates/?", self.sandbox_templates, "sandbox.templates"),
        ]

    def routes(self) -> list[Route]:
        return self._routes

    def route_key(self, req: TwinRequest) -> str:
        return req.route

    def _api(self, fn: Callable[[TwinRequest], TwinResponse]) -> Callable[[TwinRequest], TwinResponse]:
        def handler(req: TwinRequest) -> TwinResponse:
            extra = getattr(req, "klaviyo_headers", {})
            try:
                resp = fn(req)
            except ApiError as err:
                return error_response(err, extra)
            resp.headers.update(extra)
            return resp
        handler.__name__ = fn.__name__
        return handler

    # -- gate: auth, revision, scope, rate limit ----------------------------------------
    def gate(self, req: TwinRequest) -> TwinResponse | None:
        if not req.path.startswith("/api/"):
            return None
        try:
            self._authenticate(req)
            self._check_revision(req)
            scope = SCOPES.get(req.route)
            if self.scopes is not None and scope and scope not in self.scopes:
                raise ApiError.one(403, f"Your API key is missing required scopes: {scope}.", pointer=None)
            retry_after, headers = self.limiter.check("account", req.route)
            if retry_after is not None:
                raise throttled(retry_after)
            req.klaviyo_headers = headers  # type: ignore[attr-defined]
            if req.method in ("POST", "PATCH", "PUT"):
                self._check_content_type(req)
        except ApiError as err:
            return error_response(err)
        return None

    def _authenticate(self, req: TwinRequest) -> None:
        value = (req.header("authorization") or "").strip()
        if not value:
            raise ApiError.one(401, "Authentication credentials were not provided.", pointer=None)
        scheme, _, token = value.partition(" ")
        token = token.strip()
        ok = False
        if scheme == "Klaviyo-API-Key":
            ok = token == self.api_key if self.api_key is not None else (token.startswith("pk_") and len(token) > 3)
        elif scheme == "Bearer":
            ok = self.access_token is not None and token == self.access_token
        if not ok:
            raise ApiError.one(401, "Incorrect authentication credentials.", code="authentication_failed",
                               title="Incorrect authentication credentials.", pointer=None)

    def _check_revision(self, req: TwinRequest) -> None:
        if not self.revision_check:
            return
        rev = req.header("revision")
        if rev is None or not rev.strip():
            raise ApiError.one(400, "Missing required header 'revision'.", parameter="revision")
        m = REVISION_RX.match(rev.strip())
        if not m:
            raise ApiError.one(400, f"Invalid revision '{rev}'; expected YYYY-MM-DD or YYYY-MM-DD.pre.",
                               parameter="revision")
        if m.group(1) < self.min_revision:
            raise ApiError.one(404, "No valid revisions found for method", parameter="revision")

    @staticmethod
    def _check_content_type(req: TwinRequest) -> None:
        ct = req.header("content-type")
        if ct is None:
            return
        base = ct.split(";", 1)[0].strip().lower()
        if base not in (JSONAPI, "application/json"):
            raise ApiError.one(415, f'Unsupported media type "{ct}" in request.', pointer=None)

    # -- service errors ------------------------------------------------------------------
    def fault_response(self, status: int, req: TwinRequest) -> TwinResponse:
        if status == 429:
            return error_response(throttled(1))
        detail = {500: "A server error occurred.", 502: "Bad gateway.", 503: "Service unavailable.",
                  504: "Gateway timeout."}.get(status, "A server error occurred.")
        return error_response(ApiError.one(status, detail, pointer=None))

    def not_found(self, req: TwinRequest) -> TwinResponse:
        if req.path.startswith("/api/"):
            allowed = sorted({r.method for r in self._routes if r.match(r.method, req.raw_path) is not None})
            if allowed:
                return error_response(ApiError.one(405, f'Method "{req.method}" not allowed.', pointer=None),
                                      {"Allow": ", ".join(allowed)})
        return error_response(ApiError.one(404, "Not found.", pointer=None))

    def internal_error(self, req: TwinRequest, exc: BaseException) -> TwinResponse:
        return error_response(ApiError.one(500, "A server error occurred.", pointer=None))

    # -- helpers -------------------------------------------------------------------------
    @staticmethod
    def base(req: TwinRequest) -> str:
        return f"http://{req.header('host') or '127.0.0.1'}"

    @staticmethod
    def _body(req: TwinRequest, limit: int) -> Any:
        if len(req.body) > limit:
            raise ApiError.one(413, f"The request payload is larger than the {limit // 1024} KB allowed.",
                               pointer="/data")
        return parse_body(req.body)

    def _collection(self, req: TwinRequest, items: list[dict], size: int | None) -> dict:
        base = self.base(req)
        path = req.raw_path.rstrip("/")
        self_link = base + path + ("?" + "&".join(f"{k}={v}" for k, vs in req.query.items() for v in vs)
                                   if req.query else "")
        if size is None:
            return {"data": items, "links": {"self": self_link, "next": None, "prev": None}}
        offset = decode_cursor(req.arg("page[cursor]"))
        page = items[offset:offset + size]
        nxt = f"{base}{path}?page%5Bcursor%5D={encode_cursor(offset + size)}&page%5Bsize%5D={size}" \
            if offset + size < len(items) else None
        prev = f"{base}{path}?page%5Bcursor%5D={encode_cursor(max(0, offset - size))}&page%5Bsize%5D={size}" \
            if offset > 0 else None
        return {"data": page, "links": {"self": self_link, "next": nxt, "prev": prev}}

    # -- /api handlers -------------------------------------------------------------------
    def create_event(self, req: TwinRequest) -> TwinResponse:
        event = validate_event_create(self._body(req, MAX_EVENT_PAYLOAD))
        self.events.process(event, source="events.create")
        self.dirty = True
        return _api_response(202, None)

    def bulk_create_events(self, req: TwinRequest) -> TwinResponse:
        events = validate_bulk_create(self._body(req, MAX_EVENT_PAYLOAD))
        EventStore.check_bulk_duplicates(events)
        job_id = ulid()
        processed = [self.events.process(ev, source="events.bulk", job_id=job_id) for ev in events]
        job = {"id": job_id, "created": now_iso(), "events": len(processed),
               "recorded": sum(1 for e in processed if not e["dropped"]), "status": "complete"}
        self.events.jobs.append(job)
        self.dirty = True
        if not self.bulk_job_body:
            return _api_response(202, None)
        return _api_response(202, {"data": {
            "type": "event-bulk-create-job", "id": job_id,
            "attributes": {"status": "complete", "created_at": job["created"], "total_count": len(processed),
                           "completed_count": len(processed), "failed_count": 0},
            "links": {"self": f"{self.base(req)}/api/event-bulk-create-jobs/{job_id}/"}}})

    def list_events(self, req: TwinRequest) -> TwinResponse:
        items = [e for e in self.events.events if not e["dropped"]]

        def get(e: dict, field: str) -> Any:
            return {"metric_id": e["metric_id"], "profile_id": e["profile"], "datetime": e["datetime"],
                    "timestamp": e["timestamp"]}.get(field)

        items = apply_filter(items, req.arg("filter"), EVENT_FILTERS, get, "event")
        items = sort_items(items, req.arg("sort"), ("datetime", "timestamp"), get)
        base = self.base(req)
        resources = [self.events.event_resource(e, base) for e in items]
        return _api_response(200, self._collection(req, resources, page_size(req.arg("page[size]"), 200, 200)))

    def create_profile(self, req: TwinRequest) -> TwinResponse:
        data = validate_profile_create(self._body(req, MAX_PROFILE_PAYLOAD))
        p = self.profiles.create(data["attributes"])
        self.dirty = True
        return self._profile_doc(req, p, 201)

    def update_profile(self, req: TwinRequest) -> TwinResponse:
        pid = req.params["id"]
        data = validate_profile_update(self._body(req, MAX_PROFILE_PAYLOAD), pid)
        p = self.profiles.update(pid, data["attributes"], data.get("meta"))
        self.dirty = True
        return self._profile_doc(req, p, 200)

    def import_profile(self, req: TwinRequest) -> TwinResponse:
        data = validate_profile_import(self._body(req, MAX_PROFILE_PAYLOAD))
        p, created = self.profiles.upsert(data.get("id"), data["attributes"], data.get("meta"))
        self.dirty = True
        return self._profile_doc(req, p, 201 if created else 200)

    def get_profile(self, req: TwinRequest) -> TwinResponse:
        p = self.profiles.get(req.params["id"])
        if p is None:
            raise ApiError.one(404, f"A profile with id {req.params['id']} does not exist.", pointer=None,
                               parameter="id")
        return _api_response(200, {"data": ProfileStore.resource(p, self.base(req)),
                                   "links": {"self": f"{self.base(req)}/api/profiles/{p['id']}/"}})

    def _profile_doc(self, req: TwinRequest, p: dict, status: int) -> TwinResponse:
        base = self.base(req)
        return _api_response(status, {"data": ProfileStore.resource(p, base),
                                      "links": {"self": f"{base}/api/profiles/{p['id']}/"}})

    def list_profiles(self, req: TwinRequest) -> TwinResponse:
        items = list(self.profiles.profiles.values())

        def get(p: dict, field: str) -> Any:
            return p.get(field)

        items = apply_filter(items, req.arg("filter"), PROFILE_FILTERS, get, "profile")
        items = sort_items(items, req.arg("sort"), ("id", "created", "updated", "email"), get)
        size = page_size(req.arg("page[size]"))
        base = self.base(req)
        return _api_response(200, self._collection(req, [ProfileStore.resource(p, base) for p in items], size))

    def list_metrics(self, req: TwinRequest) -> TwinResponse:
        items = list(self.events.metrics.values())

        def get(m: dict, field: str) -> Any:
            return {"integration.name": "API", "integration.category": "API"}.get(field)

        items = apply_filter(items, req.arg("filter"), METRIC_FILTERS, get, "metric")
        base = self.base(req)
        return _api_response(200, self._collection(req, [EventStore.metric_resource(m, base) for m in items], 200))

    def list_accounts(self, req: TwinRequest) -> TwinResponse:
        a = self.account
        resource = {
            "type": "account", "id": a["id"],
            "attributes": {
                "test_account": bool(a["test_account"]),
                "contact_information": {
                    "default_sender_name": a["default_sender_name"],
                    "default_sender_email": a["default_sender_email"],
                    "website_url": a.get("website_url"),
                    "organization_name": a["organization_name"],
                    "street_address": dict(a["street_address"]),
                },
                "industry": a.get("industry"),
                "timezone": a["timezone"],
                "preferred_currency": a["preferred_currency"],
                "public_api_key": a.get("public_api_key") or a["id"],
                "locale": a["locale"],
            },
            "links": {"self": f"{self.base(req)}/api/accounts/{a['id']}/"},
        }
        return _api_response(200, self._collection(req, [resource], None))

    # -- /__sandbox inspection ----------------------------------------------------------
    def outbox_items(self, to: str | None = None, metric: str | None = None) -> list[dict]:
        return [copy.deepcopy(i) for i in self.outbox.items
                if (to is None or (i["to"] or "").lower() == to.lower()) and (metric is None or i["metric"] == metric)]

    def event_items(self, metric: str | None = None, email: str | None = None,
                    include_dropped: bool = True) -> list[dict]:
        return [copy.deepcopy(e) for e in self.events.events
                if (metric is None or e["metric"] == metric)
                and (email is None or (e["email"] or "").lower() == email.lower())
                and (include_dropped or not e["dropped"])]

    def profile_items(self, email: str | None = None) -> list[dict]:
        out = []
        for p in self.profiles.profiles.values():
            if email is not None and (p.get("email") or "").lower() != email.lower():
                continue
            evs = self.events.for_profile(p["id"])
            values = [v for v in (event_value(e) for e in evs) if v is not None]
            item = copy.deepcopy(p)
            item["events"] = [{"id": e["id"], "metric": e["metric"], "datetime": e["datetime"],
                               "unique_id": e["unique_id"], "value": event_value(e),
                               "value_currency": e["value_currency"], "properties": copy.deepcopy(e["properties"])}
                              for e in evs]
            item["lifetime_value"] = round(sum(values), 2)
            out.append(item)
        return out

    def sandbox_outbox(self, req: TwinRequest) -> TwinResponse:
        return json_response(200, {"outbox": self.outbox_items(req.arg("to"), req.arg("metric"))})

    def sandbox_outbox_clear(self, req: TwinRequest) -> TwinResponse:
        self.outbox.items.clear()
        self.dirty = True
        return json_response(200, {"ok": True})

    def sandbox_events(self, req: TwinRequest) -> TwinResponse:
        include = (req.arg("dropped") or "true").lower() != "false"
        return json_response(200, {"events": self.event_items(req.arg("metric"), req.arg("email"), include)})

    def sandbox_profiles(self, req: TwinRequest) -> TwinResponse:
        return json_response(200, {"profiles": self.profile_items(req.arg("email"))})

    def sandbox_metrics(self, req: TwinRequest) -> TwinResponse:
        return json_response(200, {"metrics": [dict(m) for m in self.events.metrics.values()]})

    def sandbox_templates(self, req: TwinRequest) -> TwinResponse:
        return json_response(200, {"templates": {name: {k: v for k, v in spec.items()}
                                                 for name, spec in self.templates.sources.items()},
                                   "outbox_unknown_metrics": self.outbox.unknown_metrics})

    # -- seed, templates, state ----------------------------------------------------------
    def add_templates(self, templates: dict) -> None:
        self.templates.update(templates)
        self.extra_templates.update(copy.deepcopy(templates))

    def load_seed(self, seed: dict) -> None:
        """Seed format: docs/twins/klaviyo.md (account, templates, metrics, profiles, events)."""
        if not isinstance(seed, dict):
            raise ValueError("a Klaviyo seed must be a JSON object")
        unknown = set(seed) - {"account", "templates", "metrics", "profiles", "events", "_doc", "_comment"}
        if unknown:
            raise ValueError(f"unknown seed keys {sorted(unknown)}")
        try:
            if seed.get("account"):
                self.account.update(seed["account"])
            if seed.get("templates"):
                self.add_templates(seed["templates"])
            for m in seed.get("metrics") or []:
                self.events.metric(m if isinstance(m, str) else m["name"])
                if isinstance(m, dict) and m.get("id"):
                    self.events.metrics[m["name"]]["id"] = m["id"]
            for i, raw in enumerate(seed.get("profiles") or []):
                raw = copy.deepcopy(raw)
                pid = raw.pop("id", None)
                attrs = profile_attributes(raw, f"/profiles/{i}", PROFILE_FIELDS + ("anonymous_id", "_kx"))
                if self.profiles.owners(attrs):
                    raise ValueError(f"seed profile {i}: an identifier is used twice")
                self.profiles.new(attrs, profile_id=pid)
            for i, raw in enumerate(seed.get("events") or []):
                raw = copy.deepcopy(raw)
                profile = raw.pop("profile", None) or {}
                raw.setdefault("properties", {})
                raw.setdefault("backfill", True)
                raw["metric"] = {"data": {"type": "metric", "attributes": {"name": raw.get("metric")}}}
                pid = profile.pop("id", None) if isinstance(profile, dict) else None
                raw["profile"] = {"data": {"type": "profile", **({"id": pid} if pid else {}), "attributes": profile}}
                ev = event_attributes(raw, f"/events/{i}")
                self.events.process(ev, source="seed")
        except ApiError as err:
            raise ValueError(f"bad Klaviyo seed: {err.errors[0]['detail']} at "
                             f"{err.errors[0]['source'].get('pointer')}") from None

    def snapshot(self) -> dict:
        data = {"version": 1, "account": copy.deepcopy(self.account), "templates": copy.deepcopy(self.extra_templates),
                "profiles": self.profiles.snapshot(), "outbox": copy.deepcopy(self.outbox.items)}
        data.update(self.events.snapshot())
        return data

    def restore(self, data: dict) -> None:
        self.account.update(data.get("account") or {})
        if data.get("templates"):
            self.add_templates(data["templates"])
        self.profiles.restore(data.get("profiles") or [])
        self.events.restore(data)
        self.outbox.items = copy.deepcopy(data.get("outbox") or [])

    def reset(self) -> None:
        """Empty data (profiles, events, metrics, outbox, rate windows); keep account and templates."""
        self.profiles.restore([])
        self.events.restore({})
        self.outbox.items = []
        self.limiter.reset()


# EVENT_PROFILE_FIELDS re-exported for tests that build raw bodies
__all__ = ["KlaviyoTwin", "EVENT_PROFILE_FIELDS", "CURRENT_REVISION"]
