"""The HTTP server every twin runs on.

A twin is a :class:`TwinApp` (routes, state, auth and limits) served by a
:class:`TwinServer` (a threaded stdlib HTTP server on loopback). The server owns what all
twins share: fault injection around each call, the request log, the control endpoints
under ``/__sandbox/`` and writing state to a file after each change.

Control endpoints (every twin):
  GET    /__sandbox/health       {"ok": true, "twin": name}
  GET    /__sandbox/requests     calls received (method, path, query, body, status, route, fault, client =
                                 a fingerprint of the credential); DELETE clears
  GET    /__sandbox/faults       rules and counters; POST {"rules":[...], "seed"?: n} adds; DELETE clears
  POST   /__sandbox/reset        empties the twin's state (and the request log)
"""
from __future__ import annotations

import hashlib
import json
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, unquote, urlsplit

from .faults import FaultPlan, FaultRule
from .state import StateFile

SECRET_HEADERS = ("authorization", "x-shopify-access-token")
MAX_LOG = 20000
MAX_BODY_LOG = 65536


@dataclass
class TwinRequest:
    method: str
    path: str               # percent-decoded path, no query
    raw_path: str           # as received (still percent-encoded), no query
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    params: dict[str, str] = field(default_factory=dict)   # named groups of the route pattern
    route: str = ""

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        """Parsed body; raises ValueError on anything that is not JSON (NaN included)."""
        if not self.body:
            raise ValueError("empty body")

        def _no_constants(token: str) -> Any:
            raise ValueError(f"invalid JSON constant {token}")

        return json.loads(self.body.decode("utf-8"), parse_constant=_no_constants)


@dataclass
class TwinResponse:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> TwinResponse:
    body = b"" if payload is None else json.dumps(payload, separators=(",", ":"), default=str).encode()
    h = {"Content-Type": "application/json; charset=utf-8"}
    if headers:
        h.update(headers)
    return TwinResponse(status, body, h)


@dataclass
class Route:
    method: str
    pattern: str
    handler: Callable[[TwinRequest], TwinResponse]
    name: str = ""

    def __post_init__(self) -> None:
        self._rx = re.compile("^" + self.pattern + "$")
        if not self.name:
            self.name = self.handler.__name__

    def match(self, method: str, raw_path: str) -> dict[str, str] | None:
        if method != self.method:
            return None
        m = self._rx.match(raw_path)
        return None if m is None else {k: unquote(v) for k, v in m.groupdict().items() if v is not None}


class TwinApp:
    """Base class of a twin. Subclasses set ``name``, return routes and own their state.

    Every handler runs under ``self.lock`` (so twins need no locking of their own) and may
    set ``self.dirty = True`` when it changed state, which makes the server save it.
    """

    name = "twin"

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.dirty = False

    # -- to override -------------------------------------------------------------------
    def routes(self) -> list[Route]:
        raise NotImplementedError

    def route_key(self, req: TwinRequest) -> str:
        """The name faults and the request log use for this call (default: the route's name)."""
        return req.route

    def gate(self, req: TwinRequest) -> TwinResponse | None:
        """Auth and rate limits, checked after 'before' faults; a response here ends the call."""
        return None

    def fault_response(self, status: int, req: TwinRequest) -> TwinResponse:
        """The service's own body for an injected 429 / 5xx."""
        return json_response(status, {"error": "injected"})

    def not_found(self, req: TwinRequest) -> TwinResponse:
        return json_response(404, {"error": "NOT_FOUND"})

    def internal_error(self, req: TwinRequest, exc: BaseException) -> TwinResponse:
        return json_response(500, {"error": "SERVER_ERROR"})

    def snapshot(self) -> dict:
        return {}

    def restore(self, data: dict) -> None:
        pass

    def reset(self) -> None:
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_HTTPServer"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _handle(self) -> None:
        self.server.twin._dispatch(self)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    twin: "TwinServer"

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys
        exc = sys.exc_info()[1]
        if isinstance(exc, (OSError, ValueError)):  # a connection we reset or the client dropped
            return
        super().handle_error(request, client_address)


class TwinServer:
    """Serves one TwinApp on 127.0.0.1; ``start()`` returns the base URL."""

    def __init__(self, app: TwinApp, *, state_path: str | None = None, seed: int | None = None) -> None:
        self.app = app
        self.faults = FaultPlan(seed)
        self.state = StateFile(state_path) if state_path else None
        self._log: list[dict] = []
        self._log_lock = threading.Lock()
        self.calls = 0              # service calls received (the log keeps only the last MAX_LOG)
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""
        self._control = [
            Route("GET", r"/__sandbox/health", self._health, "sandbox.health"),
            Route("GET", r"/__sandbox/requests", self._requests, "sandbox.requests"),
            Route("DELETE", r"/__sandbox/requests", self._clear_requests, "sandbox.requests.clear"),
            Route("GET", r"/__sandbox/faults", self._get_faults, "sandbox.faults"),
            Route("POST", r"/__sandbox/faults", self._add_faults, "sandbox.faults.add"),
            Route("DELETE", r"/__sandbox/faults", self._clear_faults, "sandbox.faults.clear"),
            Route("POST", r"/__sandbox/reset", self._reset, "sandbox.reset"),
        ]
        if self.state is not None:
            data = self.state.load()
            if data is not None:
                with app.lock:
                    app.restore(data)

    # -- lifecycle -----------------------------------------------------------------------
    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._stopping.clear()
        self._httpd = _HTTPServer((host, port), _Handler)
        self._httpd.twin = self
        self.port = self._httpd.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"twin-{self.app.name}", daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        self.save()

    def __enter__(self) -> "TwinServer":
        if not self.url:
            self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def save(self) -> None:
        if self.state is not None:
            with self.app.lock:
                self.state.save(self.app.snapshot())

    # -- Python control API -------------------------------------------------------------
    def inject(self, **rule: Any) -> FaultRule:
        return self.faults.add(FaultRule(**rule))

    def requests(self, route: str | None = None) -> list[dict]:
        with self._log_lock:
            return [dict(r) for r in self._log if route is None or r["route"] == route]

    def clear_requests(self) -> None:
        with self._log_lock:
            self._log.clear()

    # -- dispatch -----------------------------------------------------------------------
    def _dispatch(self, h: _Handler) -> None:
        split = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length > 0 else b""
        req = TwinRequest(
            method=h.command,
            path=unquote(split.path),
            raw_path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in h.headers.items()},
            body=body,
        )
        route, params = self._find(req)
        if route is None:
            req.route = "unknown"
            resp = self.app.not_found(req)
            self._record(req, resp.status, None)
            self._send(h, resp)
            return
        req.params = params
        req.route = route.name
        control = route in self._control or route.name.startswith("sandbox.")
        try:
            key = req.route if control else self.app.route_key(req)
        except Exception:
            key = req.route
        req.route = key

        text = None if control else f"{req.method} {req.path}\n" + req.body[:MAX_BODY_LOG].decode("utf-8", "replace")
        if not control:
            before = self.faults.decide(key, "before", text)
            if before.sleep:
                self._sleep(before.sleep)
            if before.fault is not None:
                self._record(req, before.fault.status if before.fault.kind == "status" else 0, before.fault, "before")
                self._apply_fault(h, req, before.fault)
                return
        try:
            with self.app.lock:
                resp = None if control else self.app.gate(req)
                if resp is None:
                    resp = route.handler(req)
                if self.app.dirty:
                    self.app.dirty = False
                    if self.state is not None:
                        self.state.save(self.app.snapshot())
        except Exception as exc:  # a twin bug must still answer like the service would
            resp = self.app.internal_error(req, exc)
        if not control:
            after = self.faults.decide(key, "after", text)
            if after.fault is not None:
                self._record(req, resp.status, after.fault, "after")
                self._apply_fault(h, req, after.fault)
                return
        if not control:  # the log shows what clients of the service sent, not test plumbing
            self._record(req, resp.status, None)
        self._send(h, resp)

    def _find(self, req: TwinRequest) -> tuple[Route | None, dict[str, str]]:
        for route in self._control + self.app.routes():
            params = route.match(req.method, req.raw_path)
            if params is not None:
                return route, params
        return None, {}

    def _apply_fault(self, h: _Handler, req: TwinRequest, rule: FaultRule) -> None:
        if rule.kind == "status":
            self._send(h, self.app.fault_response(rule.status, req))
        elif rule.kind == "hang":
            self._sleep(rule.delay)
            self._reset_connection(h)
        elif rule.kind == "reset":
            self._reset_connection(h)

    def _sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)

    @staticmethod
    def _reset_connection(h: _Handler) -> None:
        try:
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            # the file objects hold references to the socket: close them so close() is real
            h.rfile.close()
            h.wfile.close()
            h.connection.close()
        except OSError:
            pass
        h.close_connection = True

    @staticmethod
    def _send(h: _Handler, resp: TwinResponse) -> None:
        try:
            h.send_response(resp.status)
            headers = {"Content-Length": str(len(resp.body))}
            headers.update(resp.headers)
            for k, v in headers.items():
                h.send_header(k, v)
            h.end_headers()
            if resp.body and h.command != "HEAD":
                h.wfile.write(resp.body)
        except OSError:
            h.close_connection = True

    def _record(self, req: TwinRequest, status: int, fault: FaultRule | None, phase: str | None = None) -> None:
        headers = {k: ("***" if k in SECRET_HEADERS else v) for k, v in req.headers.items()
                   if k in SECRET_HEADERS or k in ("content-type", "revision", "user-agent")}
        secret = next((req.headers[k] for k in SECRET_HEADERS if req.headers.get(k)), "")
        entry = {
            "time": time.time(),
            # which credential sent it (a short fingerprint, never the token): tells two clients apart
            "client": hashlib.sha256(secret.encode()).hexdigest()[:8] if secret else "",
            "method": req.method,
            "path": req.path,
            "query": req.query,
            "headers": headers,
            "body": req.body[:MAX_BODY_LOG].decode("utf-8", "replace"),
            "route": req.route,
            "status": status,
            "fault": None if fault is None else {"kind": fault.kind, "when": phase, "status": fault.status},
        }
        with self._log_lock:
            self.calls += 1
            self._log.append(entry)
            if len(self._log) > MAX_LOG:
                del self._log[: len(self._log) - MAX_LOG]

    # -- control handlers ---------------------------------------------------------------
    def _health(self, req: TwinRequest) -> TwinResponse:
        return json_response(200, {"ok": True, "twin": self.app.name})

    def _requests(self, req: TwinRequest) -> TwinResponse:
        route = req.arg("route")
        since = float(req.arg("since") or 0)
        items = [r for r in self.requests(route) if r["time"] >= since]
        return json_response(200, {"requests": items})

    def _clear_requests(self, req: TwinRequest) -> TwinResponse:
        self.clear_requests()
        return json_response(200, {"ok": True})

    def _get_faults(self, req: TwinRequest) -> TwinResponse:
        return json_response(200, {"seed": self.faults.seed, "rules": self.faults.rules(),
                                   "injected": self.faults.counters(), "calls": self.calls})

    def _add_faults(self, req: TwinRequest) -> TwinResponse:
        try:
            data = req.json()
            if "seed" in data:
                self.faults.reseed(data["seed"])
            rules = [FaultRule.from_dict(r) for r in data.get("rules", [])]
        except (ValueError, TypeError, AttributeError) as exc:
            return json_response(400, {"error": f"bad fault rules: {exc}"})
        for r in rules:
            self.faults.add(r)
        return json_response(200, {"seed": self.faults.seed, "rules": self.faults.rules()})

    def _clear_faults(self, req: TwinRequest) -> TwinResponse:
        self.faults.clear()
        return json_response(200, {"ok": True})

    def _reset(self, req: TwinRequest) -> TwinResponse:
        self.app.reset()
        self.app.dirty = True
        self.clear_requests()
        return json_response(200, {"ok": True})
