"""The GraphQL client giftsync uses for Shopify: gql 4 over RequestsHTTPTransport, plus the
sorting of every failure into Retriable / Ambiguous / Fatal (reference/shopify.md §1.3).

- The transport is built with ``retries=0``: requests never re-sends anything; this module
  decides. Queries (idempotent) are retried a bounded number of times with backoff;
  mutations never are.
- HTTP status is checked in a ``requests`` response hook, before gql looks at the body:
  Shopify answers 401/402/403/404/423/429/5xx with ``{"errors": "<string>"}``, which gql
  would otherwise hand back as if it were a GraphQL result.
- Each thread gets its own gql Client and HTTP session (the prong threads share the adapter).
- Nothing here logs variables, responses or the token: variables carry whole codes.
"""
from __future__ import annotations

import json
import logging
import math
import random
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import requests
from gql import Client, GraphQLRequest
from gql.transport.exceptions import (TransportConnectionFailed, TransportError, TransportProtocolError,
                                      TransportQueryError, TransportServerError)
from gql.transport.requests import RequestsHTTPTransport
from urllib3.exceptions import NewConnectionError

from ...errors import AmbiguousError, FatalError, RetriableError, ServiceError
from ...runtime.budget import Unlimited
from . import documents

SERVICE = "shopify"
log = logging.getLogger("giftsync.adapters.shopify")

# gql's transport logs whole request payloads (variables hold gift-card codes) and responses
# at DEBUG: keep that logger quiet whatever the root level is.
logging.getLogger("gql.transport.requests").setLevel(logging.WARNING)

DEFAULT_RETRY_AFTER = 2.0     # 429 without Retry-After (reference §1.5: 1–2 s)
LOCKED_RETRY_AFTER = 60.0     # 402 frozen / 423 locked shop: nothing happened, try much later


class HttpStatus(Exception):
    """Raised by the response hook for any HTTP status other than 200."""

    def __init__(self, status: int, body: str, retry_after: float | None, request_id: str | None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = body
        self.retry_after = retry_after
        self.request_id = request_id


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 and math.isfinite(seconds) else None


def _check_status(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    if response.status_code == 200:
        return
    _raise_status(response)


def _version_watch(pinned: str) -> Callable[..., None]:
    """A retired version is silently answered by a newer one ("fall forward", reference §0)."""
    warned: set[str] = set()

    def hook(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        served = response.headers.get("X-Shopify-API-Version")
        if served and served != pinned and served not in warned:
            warned.add(served)
            log.warning("shopify answered with API version %s, not the pinned %s: update SHOPIFY_API_VERSION",
                        served, pinned)

    return hook


def _raise_status(response: requests.Response) -> None:
    try:
        body = response.text[:300]
    except Exception:  # pragma: no cover - unreadable body
        body = ""
    raise HttpStatus(response.status_code, body, parse_retry_after(response.headers.get("Retry-After")),
                     response.headers.get("X-Request-Id"))


def _http_reason(body: str) -> str:
    """Shopify's ``{"errors": "<string>"}`` (or a list), else a short prefix of the text."""
    try:
        payload = json.loads(body)
    except ValueError:
        return body.strip()[:120]
    errors = payload.get("errors") if isinstance(payload, dict) else None
    if isinstance(errors, str):
        return errors
    if isinstance(errors, list) and errors:
        first = errors[0]
        return str(first.get("message") if isinstance(first, dict) else first)
    return body.strip()[:120]


# -- classification (pure) ----------------------------------------------------------------

def classify_http(status: int, body: str = "", *, mutation: bool, retry_after: float | None = None) -> ServiceError:
    """Transport layer (HTTP ≠ 200) → an error (reference §1.5)."""
    reason = f"HTTP {status}: {_http_reason(body)}" if body else f"HTTP {status}"
    if status in (401, 403):
        hint = "access token invalid or revoked" if status == 401 else "request refused (app permissions / store access)"
        return FatalError(SERVICE, f"{reason} — {hint}", status=status)
    if status in (402, 423):
        # frozen / locked shop: refused before anything ran
        return RetriableError(SERVICE, f"{reason} — shop unavailable or locked", status=status,
                              retry_after=retry_after or LOCKED_RETRY_AFTER)
    if status == 429 or status >= 500:
        wait = retry_after if retry_after is not None else (DEFAULT_RETRY_AFTER if status == 429 else None)
        cls = AmbiguousError if mutation else RetriableError
        return cls(SERVICE, reason, status=status, retry_after=wait)
    if status == 404:
        return FatalError(SERVICE, f"{reason} — wrong shop or API path (check SHOPIFY_SHOP / SHOPIFY_ADMIN_URL)",
                          status=status)
    return FatalError(SERVICE, reason, status=status)


def nothing_sent(exc: BaseException) -> bool:
    """True when the request cannot have reached the server (refused / connect timeout)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError):
        inner = exc.args[0] if exc.args else None
        reason = getattr(inner, "reason", None)
        return isinstance(inner, NewConnectionError) or isinstance(reason, NewConnectionError)
    return False


def classify_exception(exc: BaseException, *, mutation: bool) -> ServiceError:
    """A failure below HTTP (timeouts, resets, refused connections, garbage) → an error."""
    cause = exc.__cause__ if isinstance(exc, TransportConnectionFailed) and exc.__cause__ else exc
    if isinstance(cause, HttpStatus):
        err = classify_http(cause.status, cause.body, mutation=mutation, retry_after=cause.retry_after)
        if cause.request_id:
            err.reason += f" (X-Request-Id {cause.request_id})"
        return err
    if isinstance(cause, TransportServerError):   # gql's own >= 400 check (non-JSON body)
        return classify_http(cause.code or 500, mutation=mutation)
    if nothing_sent(cause):
        return RetriableError(SERVICE, f"cannot connect: {type(cause).__name__}")
    if isinstance(cause, requests.exceptions.Timeout):
        kind = "read timeout"
    elif isinstance(cause, (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        kind = "connection dropped"
    elif isinstance(cause, TransportProtocolError):
        kind = "answer was not a GraphQL result"
    else:
        kind = type(cause).__name__
    if mutation:
        return AmbiguousError(SERVICE, f"{kind}: the mutation may or may not have been applied")
    return RetriableError(SERVICE, kind)


def throttle_wait(extensions: dict | None) -> float:
    """Seconds until the bucket holds the requested cost (reference §2.4)."""
    cost = (extensions or {}).get("cost") or {}
    status = cost.get("throttleStatus") or {}
    try:
        requested = float(cost.get("requestedQueryCost") or 0)
        available = float(status.get("currentlyAvailable") or 0)
        rate = float(status.get("restoreRate") or 0)
    except (TypeError, ValueError):
        return 1.0
    if rate <= 0:
        return 1.0
    return max(0.0, math.ceil(max(requested - available, 0.0) / rate)) or 1.0


def classify_graphql_errors(errors: Any, extensions: dict | None = None, *, mutation: bool) -> ServiceError:
    """Top-level ``errors`` of an HTTP 200 answer → an error (reference §1.4)."""
    if isinstance(errors, str):
        return FatalError(SERVICE, errors[:200])
    entries = [e for e in (errors or []) if isinstance(e, dict)]
    codes = [str((e.get("extensions") or {}).get("code") or "") for e in entries]
    first = entries[0] if entries else {}
    message = str(first.get("message") or "unknown error")[:300]
    if "THROTTLED" in codes:
        # nothing was executed: safe to retry, mutations included
        return RetriableError(SERVICE, "THROTTLED: cost bucket empty", retry_after=throttle_wait(extensions))
    for entry, code in zip(entries, codes):
        ext = entry.get("extensions") or {}
        if code == "ACCESS_DENIED":
            scope = ext.get("requiredAccess") or entry.get("message")
            return FatalError(SERVICE, f"ACCESS_DENIED: the app lacks an access scope — {scope}")
        if code == "MAX_COST_EXCEEDED":
            return FatalError(SERVICE, f"MAX_COST_EXCEEDED (a giftsync bug: query too expensive): {entry.get('message')}")
        if code in ("INTERNAL_SERVER_ERROR", "INTERNAL_ERROR"):
            cls = AmbiguousError if mutation else RetriableError
            return cls(SERVICE, f"{code}: {entry.get('message')}")
    code = next((c for c in codes if c), "")
    return FatalError(SERVICE, f"{code or 'GraphQL error'}: {message}")


# -- the client ---------------------------------------------------------------------------

@dataclass
class Answer:
    data: dict
    extensions: dict


class ShopifyGraphQL:
    """Runs the named documents of :mod:`documents` against one shop."""

    def __init__(self, url: str, access_token: str, *, timeout: float = 10, budget: Any = None,
                 query_attempts: int = 3, max_wait: float = 5.0, acquire_timeout: float = 60.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.url = url
        self._token = access_token
        self.timeout = timeout
        self.budget = budget if budget is not None else Unlimited()
        self.query_attempts = max(1, query_attempts)
        self.max_wait = max_wait
        self.acquire_timeout = acquire_timeout
        self._sleep = sleep
        self._local = threading.local()
        self._clients: list[Client] = []
        self._lock = threading.Lock()
        version = re.search(r"/admin/api/([^/]+)/graphql\.json$", url)
        self._version_hook = _version_watch(version.group(1) if version else "")
        self._requests = {name: GraphQLRequest(doc, operation_name=name)
                          for name, doc in documents.DOCUMENTS.items()}

    def __repr__(self) -> str:  # never show the token
        return f"ShopifyGraphQL({self.url!r})"

    # -- sessions -----------------------------------------------------------------------
    def _session(self) -> Any:
        session = getattr(self._local, "session", None)
        if session is None:
            transport = RequestsHTTPTransport(
                url=self.url,
                headers={"X-Shopify-Access-Token": self._token, "Content-Type": "application/json",
                         "Accept": "application/json"},
                timeout=self.timeout,
                retries=0,
                hooks={"response": [self._version_hook, _check_status]},
            )
            client = Client(transport=transport, fetch_schema_from_transport=False)
            session = client.connect_sync()
            self._local.session = session
            with self._lock:
                self._clients.append(client)
        return session

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            try:
                client.close_sync()
            except Exception:  # pragma: no cover
                pass
        self._local = threading.local()

    # -- running ------------------------------------------------------------------------
    def run(self, name: str, variables: dict | None = None, *, first: int = 1) -> Answer:
        """Execute document ``name``; returns its data or raises a ServiceError subclass."""
        mutation = name in documents.MUTATIONS
        cost = documents.estimated_cost(name, first=first)
        attempts = 1 if mutation else self.query_attempts
        request = GraphQLRequest(self._requests[name], variable_values=variables or {})
        for attempt in range(attempts):
            if not self.budget.acquire(cost, timeout=self.acquire_timeout):
                raise RetriableError(SERVICE, f"rate budget: no room for {name} within {self.acquire_timeout:.0f}s")
            started = time.monotonic()
            try:
                result = self._session().execute(request, get_execution_result=True)
            except TransportQueryError as exc:
                self._observe(exc.extensions)
                error = classify_graphql_errors(exc.errors, exc.extensions, mutation=mutation)
            except TransportError as exc:
                error = classify_exception(exc, mutation=mutation)
            except requests.RequestException as exc:  # pragma: no cover - gql wraps these
                error = classify_exception(exc, mutation=mutation)
            else:
                self._observe(result.extensions)
                self._warn_search(name, result.extensions)
                log.debug("shopify %s ok in %.0f ms", name, (time.monotonic() - started) * 1000)
                return Answer(result.data or {}, result.extensions or {})
            if error.retry_after:
                self.budget.pause(error.retry_after)
            last = attempt == attempts - 1
            retriable = isinstance(error, RetriableError) and not isinstance(error, AmbiguousError)
            log.warning("shopify %s failed (%s: %s)%s", name, type(error).__name__, error.reason,
                        "" if last or not retriable else "; retrying")
            if last or not retriable:
                raise error
            wait = max(error.retry_after or 0.0, 0.2 * (2 ** attempt) * (1 + random.random()))
            if wait > self.max_wait:
                raise error
            self._sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _observe(self, extensions: dict | None) -> None:
        status = ((extensions or {}).get("cost") or {}).get("throttleStatus") or {}
        try:
            available = status.get("currentlyAvailable")
            if available is not None:
                self.budget.observe(float(available), float(status.get("maximumAvailable") or 0) or None,
                                    float(status.get("restoreRate") or 0) or None)
        except (TypeError, ValueError):  # pragma: no cover - odd numbers: ignore
            pass

    @staticmethod
    def _warn_search(name: str, extensions: dict | None) -> None:
        # a search term Shopify ignored means the results are NOT filtered by it
        for item in (extensions or {}).get("search") or []:
            for warning in item.get("warnings") or []:
                log.warning("shopify %s: search field %r ignored by Shopify (%s)", name,
                            warning.get("field"), warning.get("code") or warning.get("message"))
