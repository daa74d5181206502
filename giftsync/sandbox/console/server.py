"""The sandbox console's HTTP server: the static page and a small JSON API over the twins.

Endpoints (all JSON unless noted):

  GET  /                               the page (static/index.html); /static/* its files
  GET  /api/info                       stores, customers, catalogue, demo cards (whole codes:
                                       the demo list is the one place the console shows them),
                                       form choices, twin URLs
  GET  /api/daemon                     the daemon child process (running, pid, last log lines)
                                       and the lease from the Status table
  GET  /api/airtable/<table>           records of a table, newest first; <table> is one of
                                       receipts, store-redemptions, card-requests, balance-checks,
                                       gift-cards, stores, online-orders, status. Typed codes
                                       (Code, Physical Serials) are masked.
  GET  /api/airtable/<table>/<record>  one record, masked the same way
  POST /api/forms/store-redemption     {store, code, amount, staff, note}
  POST /api/forms/card-request         {store, amount, quantity, kind, serials, recipient_name,
                                        recipient_email, purchaser_name, purchaser_email,
                                        is_gift, message, staff}
  POST /api/forms/balance-check        {code, email}
                                       each creates the record through the Airtable twin's
                                       records API, exactly what an Airtable form submission
                                       creates; answers 201 {"id": "rec…"} or the API's error
  GET  /api/shopify/cards              the Shopify twin's gift cards (masked codes)
  GET  /api/shopify/orders             the Shopify twin's orders, newest first
  POST /api/shopify/buy                a customer buys online: {email, lines:[{sku, quantity,
                                       recipient_email?, recipient_name?, message?}],
                                       pay_with?: {code, amount}}
  POST /api/shopify/pay                a customer pays online with a gift card:
                                       {email, sku, quantity?, code, amount?}
  POST /api/shopify/adjust             an admin adjusts a balance: {card (GID), amount (signed), note}
  GET  /api/outbox                     the Klaviyo outbox, newest first: each email as its
                                       recipient reads it
"""
from __future__ import annotations

import json
import mimetypes
import threading
import time
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import unquote, urlsplit

import requests

from ...domain.codes import last4, mask, normalise_code

STATIC = Path(__file__).resolve().parent / "static"

TABLES = {
    "receipts": "Receipts",
    "store-redemptions": "Store Redemptions",
    "card-requests": "Card Requests",
    "balance-checks": "Balance Checks",
    "gift-cards": "Gift Cards",
    "stores": "Stores",
    "online-orders": "Online Orders",
    "status": "Status",
}
# Fields that may hold a whole code typed by staff or customers: masked before display.
CODE_FIELDS = {"Code"}
SERIAL_FIELDS = {"Physical Serials"}
MAX_RECORDS = 300
CACHE_SECONDS = 1.0

# The Shopify twin's world controls (docs/twins/shopify.md).
SHOPIFY_CONTROL = {
    "cards": ("GET", "/__sandbox/shopify/cards"),
    "orders": ("GET", "/__sandbox/shopify/orders"),
    "purchase": ("POST", "/__sandbox/shopify/orders"),
    "adjust": ("POST", "/__sandbox/shopify/cards/{card}/adjust"),
}


class ApiProblem(Exception):
    def __init__(self, status: int, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.detail = detail


def mask_typed(value: Any) -> Any:
    """A code as staff typed it → its masked form (already-masked values are left alone)."""
    if not isinstance(value, str) or not value.strip():
        return value
    if "•" in value:
        return value
    norm = normalise_code(value)
    if len(norm) < 4:
        return "••••"
    return mask(last4(norm))


def mask_record(rec: dict) -> dict:
    fields = dict(rec.get("fields") or {})
    for name in CODE_FIELDS:
        if name in fields:
            fields[name] = mask_typed(fields[name])
    for name in SERIAL_FIELDS:
        if isinstance(fields.get(name), str):
            fields[name] = "\n".join(mask_typed(line) for line in fields[name].splitlines() if line.strip())
    return {"id": rec.get("id"), "createdTime": rec.get("createdTime"), "fields": fields}


def _sort_key(rec: dict) -> str:
    f = rec.get("fields") or {}
    return str(f.get("Time") or rec.get("createdTime") or "")


class ConsoleApi:
    """What the page's JSON API does, independent of HTTP (tests call it directly too)."""

    def __init__(self, world: Any, *, daemon: Any = None, simulator: Any = None, timeout: float = 10.0) -> None:
        self.world = world
        self.daemon = daemon
        self.simulator = simulator
        self.timeout = timeout
        self._http = requests.Session()
        self._cache: dict[str, tuple[float, Any]] = {}
        self._cache_lock = threading.Lock()

    # -- plumbing -------------------------------------------------------------------------
    def _cached(self, key: str, fn: Callable[[], Any]) -> Any:
        now = time.monotonic()
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit and now - hit[0] < CACHE_SECONDS:
                return hit[1]
        value = fn()
        with self._cache_lock:
            self._cache[key] = (time.monotonic(), value)
        return value

    def _forget(self, prefix: str) -> None:
        with self._cache_lock:
            for k in [k for k in self._cache if k.startswith(prefix)]:
                del self._cache[k]

    def _airtable(self, method: str, path: str, **kwargs: Any) -> Any:
        url = f"{self.world.airtable_url}/v0/{self.world.base_id}/{requests.utils.quote(path)}"
        try:
            r = self._http.request(method, url, headers={"Authorization": f"Bearer {self.world.airtable_token}"},
                                   timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise ApiProblem(502, f"Airtable twin unreachable: {exc.__class__.__name__}") from None
        body = _json(r)
        if r.status_code == 429:
            raise ApiProblem(503, "Airtable is rate limiting (5 requests/s per base); the view will catch up.")
        if r.status_code >= 400:
            err = (body or {}).get("error") if isinstance(body, dict) else None
            msg = err.get("message") if isinstance(err, dict) else (err or r.text[:300])
            raise ApiProblem(r.status_code if r.status_code < 500 else 502, f"Airtable: {msg}", body)
        return body

    def _control(self, twin: str, method: str, path: str, body: Any = None) -> Any:
        try:
            r = self._http.request(method, f"{self.world.url(twin)}{path}", json=body, timeout=self.timeout)
        except requests.RequestException as exc:
            raise ApiProblem(502, f"{twin} twin unreachable: {exc.__class__.__name__}") from None
        data = _json(r)
        if r.status_code >= 400:
            msg = (data or {}).get("error") if isinstance(data, dict) else None
            raise ApiProblem(r.status_code if r.status_code < 500 else 502, msg or f"{twin}: HTTP {r.status_code}",
                             data)
        return data

    # -- info -----------------------------------------------------------------------------
    def info(self) -> dict:
        w = self.world
        return {
            "base_id": w.base_id,
            "currency": "USD",
            "stores": [{"id": s.record_id, "name": s.name, "email": s.email} for s in w.stores],
            "customers": [{"email": c.email, "name": c.name, "id": c.gid} for c in w.customers],
            "catalogue": [p.to_json() for p in w.catalogue],
            "demo_cards": [{"code": c.code, "masked": c.masked, "last4": c.last4, "label": c.label,
                            "initial": str(c.initial), "mirrored": c.mirrored, "enabled": c.enabled,
                            "shopify_id": c.shopify_id} for c in w.cards],
            "kinds": ["Digital", "Physical"],
            "twins": {"airtable": w.airtable_url, "shopify": w.shopify_url, "klaviyo": w.klaviyo_url},
            "admin_email": w.admin_email,
            "simulate": bool(self.simulator is not None),
        }

    def daemon_status(self) -> dict:
        d = self.daemon
        out: dict[str, Any] = {"state": "not started", "pid": None, "returncode": None, "log": []}
        if d is not None:
            out.update(state="running" if d.alive() else "stopped", pid=d.pid, returncode=d.returncode,
                       log=[_scrub(line, self.world) for line in d.output()[-200:]])
        try:
            status = self.table("status")["records"]
        except ApiProblem:
            status = []
        out["status"] = status
        if self.simulator is not None:
            out["simulator"] = self.simulator.summary()
        return out

    # -- Airtable -------------------------------------------------------------------------
    def _table_name(self, slug: str) -> str:
        if slug not in TABLES:
            raise ApiProblem(404, f"unknown table {slug!r}; one of {sorted(TABLES)}")
        return TABLES[slug]

    def table(self, slug: str) -> dict:
        name = self._table_name(slug)

        def load() -> dict:
            records: list[dict] = []
            offset = None
            while len(records) < MAX_RECORDS:
                params: dict[str, Any] = {"pageSize": 100}
                if offset:
                    params["offset"] = offset
                page = self._airtable("GET", name, params=params)
                records.extend(page.get("records") or [])
                offset = page.get("offset")
                if not offset:
                    break
            records.sort(key=_sort_key, reverse=True)
            return {"table": name, "records": [mask_record(r) for r in records]}

        return self._cached(f"table:{slug}", load)

    def record(self, slug: str, record_id: str) -> dict:
        name = self._table_name(slug)
        return mask_record(self._airtable("GET", f"{name}/{record_id}"))

    def _create(self, slug: str, fields: dict) -> dict:
        fields = {k: v for k, v in fields.items() if v not in (None, "", [])}
        body = self._airtable("POST", self._table_name(slug), json={"records": [{"fields": fields}]})
        self._forget(f"table:{slug}")
        rec = (body.get("records") or [{}])[0]
        return {"id": rec.get("id"), "createdTime": rec.get("createdTime")}

    def submit_redemption(self, data: dict) -> dict:
        fields = {
            "Store": _store_link(data.get("store")),
            "Code": _text(data.get("code")),
            "Amount": _number(data.get("amount"), "Amount"),
            "Staff": _text(data.get("staff")),
            "Note": _text(data.get("note")),
        }
        return self._create("store-redemptions", fields)

    def submit_card_request(self, data: dict) -> dict:
        fields = {
            "Store": _store_link(data.get("store")),
            "Amount": _number(data.get("amount"), "Amount"),
            "Quantity": _number(data.get("quantity"), "Quantity"),
            "Kind": _text(data.get("kind")),
            "Physical Serials": _text(data.get("serials")),
            "Recipient Name": _text(data.get("recipient_name")),
            "Recipient Email": _text(data.get("recipient_email")),
            "Purchaser Name": _text(data.get("purchaser_name")),
            "Purchaser Email": _text(data.get("purchaser_email")),
            "Is Gift": bool(data.get("is_gift")) or None,
            "Message": _text(data.get("message")),
            "Staff": _text(data.get("staff")),
        }
        return self._create("card-requests", fields)

    def submit_balance_check(self, data: dict) -> dict:
        return self._create("balance-checks", {"Code": _text(data.get("code")), "Email": _text(data.get("email"))})

    # -- Shopify --------------------------------------------------------------------------
    def shopify_cards(self) -> dict:
        def load() -> dict:
            method, path = SHOPIFY_CONTROL["cards"]
            data = self._control("shopify", method, path)
            cards = data.get("cards", data) if isinstance(data, dict) else data
            for c in cards:
                c.pop("code", None)        # never a whole code in the console's card list
                if c.get("lastCharacters"):
                    c["maskedCode"] = mask(c["lastCharacters"])
            cards.sort(key=lambda c: c.get("updatedAt") or "", reverse=True)
            return {"cards": cards}
        return self._cached("shopify:cards", load)

    def shopify_orders(self) -> dict:
        def load() -> dict:
            method, path = SHOPIFY_CONTROL["orders"]
            data = self._control("shopify", method, path)
            orders = data.get("orders", data) if isinstance(data, dict) else data
            orders.sort(key=lambda o: o.get("createdAt") or "", reverse=True)
            return {"orders": orders}
        return self._cached("shopify:orders", load)

    def _purchase(self, body: dict) -> dict:
        method, path = SHOPIFY_CONTROL["purchase"]
        out = self._control("shopify", method, path, body)
        self._forget("shopify:")
        if isinstance(out, dict):
            for c in out.get("issuedGiftCards") or []:
                c.pop("code", None)
        return out

    def shopify_buy(self, data: dict) -> dict:
        """A customer buys products online (gift cards or anything), optionally paying with a card."""
        email = _text(data.get("email"))
        if not email:
            raise ApiProblem(400, "choose the customer who buys")
        lines = []
        for raw in data.get("lines") or []:
            sku = _text(raw.get("sku"))
            if not sku:
                continue
            line: dict[str, Any] = {"sku": sku, "quantity": int(_number(raw.get("quantity"), "Quantity") or 1)}
            props = {}
            if _text(raw.get("recipient_email")):
                props["Recipient email"] = _text(raw.get("recipient_email"))
            if _text(raw.get("recipient_name")):
                props["Recipient name"] = _text(raw.get("recipient_name"))
            if _text(raw.get("message")):
                props["Message"] = _text(raw.get("message"))
            if props:
                line["properties"] = props
            lines.append(line)
        if not lines:
            raise ApiProblem(400, "choose at least one product")
        body: dict[str, Any] = {"email": email, "customer": {"email": email}, "lines": lines}
        pay = data.get("pay_with") or {}
        if _text(pay.get("code")):
            body["gift_card_payments"] = [{"code": normalise_code(pay["code"]),
                                           "amount": str(_number(pay.get("amount"), "Amount"))}]
        return self._purchase(body)

    def shopify_pay(self, data: dict) -> dict:
        """A customer buys a product online and pays (part of) it with a gift card."""
        email = _text(data.get("email"))
        sku = _text(data.get("sku"))
        code = _text(data.get("code"))
        if not (email and sku and code):
            raise ApiProblem(400, "choose a customer, a product and type the gift card code")
        qty = int(_number(data.get("quantity"), "Quantity") or 1)
        product = next((p for p in self.world.catalogue if p.sku == sku), None)
        if product is None:
            raise ApiProblem(400, f"unknown product {sku}")
        total = product.price * qty
        amount = _number(data.get("amount"), "Amount")
        amount = total if amount in (None, "") else Decimal(str(amount))
        if amount <= 0 or amount > total:
            raise ApiProblem(400, f"the gift card can pay between 0.01 and {total}")
        return self._purchase({"email": email, "customer": {"email": email},
                               "lines": [{"sku": sku, "quantity": qty}],
                               "gift_card_payments": [{"code": normalise_code(code), "amount": str(amount)}]})

    def shopify_adjust(self, data: dict) -> dict:
        card = _text(data.get("card"))
        if not card or not card.startswith("gid://shopify/GiftCard/"):
            raise ApiProblem(400, "choose a card")
        amount = _number(data.get("amount"), "Amount")
        if amount in (None, "") or Decimal(str(amount)) == 0:
            raise ApiProblem(400, "type a non-zero amount (negative to take money off the card)")
        method, path = SHOPIFY_CONTROL["adjust"]
        out = self._control("shopify", method, path.format(card=requests.utils.quote(card, safe="")),
                            {"amount": str(amount), "note": _text(data.get("note")) or "Adjusted in the Shopify admin"})
        self._forget("shopify:")
        if isinstance(out, dict):
            out.pop("code", None)
            if out.get("lastCharacters"):
                out["maskedCode"] = mask(out["lastCharacters"])
        return out

    # -- Klaviyo --------------------------------------------------------------------------
    def outbox(self) -> dict:
        def load() -> dict:
            data = self._control("klaviyo", "GET", "/__sandbox/outbox")
            items = list(data.get("outbox") or [])
            items.reverse()
            return {"emails": [{k: i.get(k) for k in ("id", "time", "metric", "to", "subject", "body",
                                                       "audience", "error")} for i in items]}
        return self._cached("klaviyo:outbox", load)


def _scrub(line: str, world: Any) -> str:
    """Daemon log lines never carry a whole code; belt and braces for the demo codes anyway."""
    from ...domain.codes import mask_text_codes
    return mask_text_codes(line, [c.code for c in world.cards])


def _json(r: requests.Response) -> Any:
    try:
        return r.json() if r.content else None
    except ValueError:
        return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _number(value: Any, name: str) -> Any:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ApiProblem(400, f"{name}: not a number")
    if isinstance(value, (int, float)):
        return value
    try:
        d = Decimal(str(value).strip())
    except InvalidOperation:
        raise ApiProblem(400, f"{name}: not a number") from None
    if not d.is_finite():
        raise ApiProblem(400, f"{name}: not a number")
    return int(d) if d == d.to_integral_value() and "." not in str(value) else float(d)


def _store_link(value: Any) -> list[str] | None:
    text = _text(value)
    return [text] if text else None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        path = unquote(urlsplit(self.path).path)
        api: ConsoleApi = self.server.api
        try:
            if method == "GET" and path in ("/", "/index.html"):
                return self._static("index.html")
            if method == "GET" and path.startswith("/static/"):
                return self._static(path[len("/static/"):])
            if not path.startswith("/api/"):
                raise ApiProblem(404, "not found")
            parts = [p for p in path[len("/api/"):].split("/") if p]
            body = self._body() if method == "POST" else None
            result, status = self._route(api, method, parts, body)
            self._send_json(status, result)
        except ApiProblem as exc:
            self._send_json(exc.status, {"error": exc.message, "detail": exc.detail})
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # noqa: BLE001 - the page shows the message, the console keeps running
            self._send_json(500, {"error": f"{exc.__class__.__name__}: {exc}"})

    def _route(self, api: ConsoleApi, method: str, parts: list[str], body: Any) -> tuple[Any, int]:
        if method == "GET":
            if parts == ["info"]:
                return api.info(), 200
            if parts == ["daemon"]:
                return api.daemon_status(), 200
            if len(parts) == 2 and parts[0] == "airtable":
                return api.table(parts[1]), 200
            if len(parts) == 3 and parts[0] == "airtable":
                return api.record(parts[1], parts[2]), 200
            if parts == ["shopify", "cards"]:
                return api.shopify_cards(), 200
            if parts == ["shopify", "orders"]:
                return api.shopify_orders(), 200
            if parts == ["outbox"]:
                return api.outbox(), 200
        elif method == "POST":
            if not isinstance(body, dict):
                raise ApiProblem(400, "send a JSON object")
            handlers = {
                ("forms", "store-redemption"): (api.submit_redemption, 201),
                ("forms", "card-request"): (api.submit_card_request, 201),
                ("forms", "balance-check"): (api.submit_balance_check, 201),
                ("shopify", "buy"): (api.shopify_buy, 200),
                ("shopify", "pay"): (api.shopify_pay, 200),
                ("shopify", "adjust"): (api.shopify_adjust, 200),
            }
            h = handlers.get(tuple(parts))
            if h:
                return h[0](body), h[1]
        raise ApiProblem(404, "not found")

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        if not raw:
            return {}
        try:
            return json.loads(raw.decode("utf-8"))
        except ValueError:
            raise ApiProblem(400, "the body is not JSON") from None

    def _static(self, name: str) -> None:
        target = (STATIC / name).resolve()
        if STATIC.resolve() not in target.parents or not target.is_file():
            raise ApiProblem(404, "not found")
        data = target.read_bytes()
        ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype in ("application/javascript",):
            ctype += "; charset=utf-8"
        self._send(200, data, ctype)

    def _send_json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload, default=str).encode("utf-8"), "application/json; charset=utf-8")

    def _send(self, status: int, data: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    api: ConsoleApi

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class ConsoleServer:
    """Serves the console on ``host:port`` (port 0 = any free port); ``start()`` returns the URL."""

    def __init__(self, world: Any, *, daemon: Any = None, simulator: Any = None) -> None:
        self.api = ConsoleApi(world, daemon=daemon, simulator=simulator)
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""
        self.port = 0

    def start(self, host: str = "127.0.0.1", port: int = 8080) -> str:
        self._httpd = _Server((host, port), _Handler)
        self._httpd.api = self.api
        self.port = self._httpd.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="sandbox-console", daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "ConsoleServer":
        if not self.url:
            self.start(port=0)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
