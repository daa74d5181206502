"""The pyairtable client as giftsync configures it, and how its failures are classified.

Request kinds (decided per HTTP request from method and path):

=============  ========================================  ==================================
kind           requests                                  after a 5xx / timeout / reset
=============  ========================================  ==================================
``read``       GET, POST …/listRecords                   retried here (bounded), then
                                                         ``RetriableError``
``idempotent`` PATCH/PUT/DELETE — giftsync only sends    retried here (bounded), then
               updates of absolute values and upserts    ``AmbiguousError``
               on a key, which land the same however
               often they are applied
``create``     any other POST (record creates, metadata  never retried; ``AmbiguousError``
               creates)                                  (``RetriableError`` if the
                                                         connection was never made)
=============  ========================================  ==================================

Every attempt first takes a token from the rate budget. A 429 is never retried here: the
budget is paused (Retry-After, else Airtable's documented 30 s) so every thread backs off,
and the caller gets ``RetriableError``. 401/403/404/422 and other 4xx are ``FatalError``
carrying Airtable's error type and message (never the token, never the query string, which
may hold looked-up values).

urllib3's own retry is limited to ``retry_strategy(read=0, status_forcelist=(),
respect_retry_after_header=False)``: it may
re-open a connection that was refused (nothing was sent) but it never re-sends a request
after a read timeout or a reset — pyairtable's default re-sends POSTs (reference §9.4).
"""
from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any, Callable
from urllib.parse import unquote, urlsplit

import pydantic
import requests
from pyairtable import Api, retry_strategy
from pyairtable.api import retrying
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError

from ...errors import AmbiguousError, FatalError, RetriableError, ServiceError

log = logging.getLogger("giftsync.adapters.airtable")

SERVICE = "airtable"
READ, IDEMPOTENT, CREATE = "read", "idempotent", "create"
TRANSIENT_STATUSES = (500, 502, 503, 504)
DEFAULT_RATE_LIMIT_PAUSE = 30.0   # Airtable: "wait 30 seconds" after a 429
MAX_RETRY_AFTER = 5.0             # a longer Retry-After on a 5xx is left to the caller
_TOKENISH = re.compile(r"\b(pat|key)[A-Za-z0-9._-]{8,}")


def request_kind(method: str, url: str) -> str:
    method = method.upper()
    path = urlsplit(str(url)).path
    if method in ("GET", "HEAD") or (method == "POST" and path.rstrip("/").endswith("/listRecords")):
        return READ
    if method in ("PATCH", "PUT", "DELETE"):
        return IDEMPOTENT
    return CREATE


def _retry_after(response: requests.Response | None) -> float | None:
    if response is None:
        return None
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _never_connected(exc: BaseException) -> bool:
    """True when the request certainly never reached the server (refused, connect timeout)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    for arg in getattr(exc, "args", ()):
        reason = getattr(arg, "reason", None) if isinstance(arg, MaxRetryError) else arg
        if isinstance(reason, (NewConnectionError, ConnectTimeoutError)):
            return True
    return False


TRANSPORT_ERRORS = (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                    requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)


class BudgetedSession(retrying._RetryingSession):
    """A requests session that takes a budget token before each attempt and retries
    reads and idempotent writes after transient failures (see the module docstring)."""

    def __init__(self, budget: Any, *, retries: int = 2, backoff: float = 0.2,
                 rate_limit_pause: float = DEFAULT_RATE_LIMIT_PAUSE,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        # urllib3 would still honour Retry-After on 413/429/503 for any method: switched off
        super().__init__(retry_strategy(read=0, status_forcelist=(), total=1, connect=1, backoff_factor=0.1,
                                        respect_retry_after_header=False))
        self.budget = budget
        self.retries = retries
        self.backoff = backoff
        self.rate_limit_pause = rate_limit_pause
        self._sleep = sleep
        self._count_lock = threading.Lock()
        self.sent = 0            # attempts made through this session (for figures and tests)

    def _wait(self, attempt: int, retry_after: float | None) -> None:
        delay = self.backoff * (2 ** attempt)
        if retry_after is not None:
            delay = max(delay, retry_after)
        self._sleep(delay)

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kind = request_kind(method, url)
        attempts = 1 if kind == CREATE else 1 + max(0, self.retries)
        for attempt in range(attempts):
            last = attempt == attempts - 1
            self.budget.acquire()
            with self._count_lock:
                self.sent += 1
            try:
                response = super().request(method, url, *args, **kwargs)
            except TRANSPORT_ERRORS as exc:
                if last or (kind == CREATE and not _never_connected(exc)):
                    raise
                log.warning("airtable %s %s failed (%s); retrying", method.upper(), _path(url), type(exc).__name__)
                self._wait(attempt, None)
                continue
            if response.status_code == 429:
                pause = _retry_after(response)
                self.budget.pause(self.rate_limit_pause if pause is None else pause)
                return response
            if response.status_code in TRANSIENT_STATUSES and not last and kind != CREATE:
                retry_after = _retry_after(response)
                if retry_after is not None and retry_after > MAX_RETRY_AFTER:
                    return response
                log.warning("airtable %s %s answered %s; retrying", method.upper(), _path(url), response.status_code)
                response.close()
                self._wait(attempt, retry_after)
                continue
            return response
        raise AssertionError("unreachable")  # pragma: no cover


class GiftsyncApi(Api):
    """pyairtable's Api over a :class:`BudgetedSession`."""

    def __init__(self, token: str, *, endpoint_url: str | None, timeout: tuple[float, float],
                 session: BudgetedSession) -> None:
        kwargs: dict[str, Any] = {"timeout": timeout, "retry_strategy": None}
        if endpoint_url:
            kwargs["endpoint_url"] = endpoint_url
        super().__init__(token, **kwargs)
        self.session = session
        self.api_key = token      # puts the Authorization header on this session

    def __repr__(self) -> str:  # never the token
        return f"<GiftsyncApi endpoint={self.endpoint_url!s}>"


def _path(url: Any) -> str:
    return unquote(urlsplit(str(url)).path) if url else "?"


def _error_body(response: requests.Response) -> tuple[str, str]:
    try:
        body = response.json()
    except ValueError:
        return "", ""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, str):
        return error, ""
    if isinstance(error, dict):
        return str(error.get("type") or ""), str(error.get("message") or "")
    return "", ""


def _scrub(text: str, token: str | None) -> str:
    if token:
        text = text.replace(token, "***")
    return _TOKENISH.sub("***", text)[:400]


def classify(exc: BaseException, *, token: str | None = None, what: str = "") -> ServiceError:
    """Map an exception raised by pyairtable/requests to a giftsync error."""
    if isinstance(exc, ServiceError):
        return exc
    prefix = f"{what}: " if what else ""
    request = getattr(exc, "request", None)
    response = getattr(exc, "response", None)
    if request is None and response is not None:
        request = response.request
    method = (getattr(request, "method", None) or "").upper()
    url = getattr(request, "url", None)
    where = f"{method} {_path(url)}" if method else "request"
    kind = request_kind(method, url or "") if method else READ

    if isinstance(exc, requests.exceptions.RetryError):
        return RetriableError(SERVICE, f"{prefix}rate limited ({where})", status=429)
    if isinstance(exc, requests.exceptions.HTTPError) and response is not None:
        status = response.status_code
        etype, message = _error_body(response)
        detail = _scrub(f"{etype}: {message}" if message else (etype or response.reason or ""), token)
        reason = f"{prefix}{where} → {status} {detail}".rstrip()
        if status == 429:
            return RetriableError(SERVICE, reason, status=status, retry_after=_retry_after(response))
        if status in TRANSIENT_STATUSES or status >= 500:
            cls = RetriableError if kind == READ else AmbiguousError
            return cls(SERVICE, reason, status=status, retry_after=_retry_after(response))
        error = FatalError(SERVICE, reason, status=status)
        error.error_type = etype  # type: ignore[attr-defined]
        error.error_message = _scrub(message, token)  # type: ignore[attr-defined]
        return error
    if isinstance(exc, TRANSPORT_ERRORS):
        label = "timed out" if isinstance(exc, requests.exceptions.Timeout) or "timed out" in str(exc).lower() \
            else "connection failed"
        reason = f"{prefix}{where} {label} ({type(exc).__name__})"
        if kind == READ or _never_connected(exc):
            return RetriableError(SERVICE, reason)
        return AmbiguousError(SERVICE, reason)
    if isinstance(exc, pydantic.ValidationError):
        return FatalError(SERVICE, f"{prefix}unexpected response shape ({exc.error_count()} problems)")
    if isinstance(exc, requests.exceptions.RequestException):
        return FatalError(SERVICE, f"{prefix}{where} {type(exc).__name__}")
    raise TypeError(f"not a service failure: {type(exc).__name__}")


CLASSIFIED = (requests.exceptions.RequestException, pydantic.ValidationError)
