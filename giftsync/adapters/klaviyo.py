"""``Messenger`` over the official klaviyo-api SDK: one ``create_event`` per EmailEvent.

reference/klaviyo.md §2 (event body), §4 (errors), §6 (the SDK). Choices:

- The SDK's own retry loop (§6.3) is switched off (``max_retries=1``): it sleeps inside the
  call for as long as a 429's ``Retry-After`` says, where neither the shared rate budget nor
  the caller can see it. Instead ``send`` makes at most ``attempts`` requests, waits only
  when the wait is short (≤ ``max_wait`` s) and otherwise raises ``RetriableError`` with
  ``retry_after`` after pausing the budget — so one ``send`` never blocks for minutes.
  Resending is safe: Klaviyo dedupes on (profile, metric, ``unique_id``).
- ``api_url`` set → ``test_host`` (the twin); unset → the SDK's default host, untouched.
- Responses are plain dicts (``USE_DICTIONARY_FOR_RESPONSE_DATA``).
- Never logged: the key, and the properties of any event (a delivery event holds a whole
  code). Error reasons are scrubbed of property values before they leave this module.
"""
from __future__ import annotations

import json
import logging
import random
import re
import time
from datetime import date, datetime, timezone
from decimal import Decimal
from enum import Enum
from typing import Any, Callable

import pydantic
import urllib3
from klaviyo_api import KlaviyoAPI
from openapi_client.exceptions import ApiException

from ..domain.emails import EmailEvent
from ..errors import FatalError, RetriableError, ServiceError
from ..runtime.budget import Unlimited

SERVICE = "klaviyo"
SDK_REVISION = KlaviyoAPI._REVISION
log = logging.getLogger("giftsync.adapters.klaviyo")

RETRIED_BY_KLAVIYO_ADVICE = {429, 500, 502, 503, 504, 524}
_EXPECTED_IN = re.compile(r"available in (\d+) second", re.I)


def json_safe(value: Any) -> Any:
    """Event properties as JSON the SDK can serialise: Decimal → number, dates → ISO text."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and value.as_tuple().exponent >= 0 else float(value)
    if isinstance(value, Enum):
        return json_safe(value.value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [json_safe(v) for v in value]
    return value


def event_body(event: EmailEvent, when: datetime) -> dict:
    """The ``POST /api/events`` body for one EmailEvent (reference §2.1)."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("event time must be timezone-aware")
    profile: dict[str, Any] = {"email": event.email.strip()}
    if event.first_name:
        profile["first_name"] = event.first_name
    if event.last_name:
        profile["last_name"] = event.last_name
    attributes: dict[str, Any] = {
        "properties": json_safe(dict(event.properties)),
        "time": when.astimezone(timezone.utc).replace(microsecond=0).isoformat(),
        "unique_id": event.unique_id,
        "metric": {"data": {"type": "metric", "attributes": {"name": event.metric.value}}},
        "profile": {"data": {"type": "profile", "attributes": profile}},
    }
    if event.value is not None:
        attributes["value"] = float(event.value)      # the SDK's model wants a number
        if event.value_currency:
            attributes["value_currency"] = event.value_currency
    return {"data": {"type": "event", "attributes": attributes}}


def _secrets_of(event: EmailEvent | None) -> list[str]:
    if event is None:
        return []
    found: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, str) and len(v) >= 4:
            found.append(v)
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x)

    walk(event.properties)
    return sorted(found, key=len, reverse=True)


def scrub(text: str, event: EmailEvent | None) -> str:
    for value in _secrets_of(event):
        text = text.replace(value, "[redacted]")
    return text


def parse_retry_after(headers: Any, body: str | None) -> float | None:
    value = None
    try:
        value = headers.get("Retry-After") if headers is not None else None
    except AttributeError:  # pragma: no cover
        value = None
    if value:
        try:
            seconds = float(value)
            if seconds >= 0:
                return seconds
        except ValueError:
            pass
    m = _EXPECTED_IN.search(body or "")
    return float(m.group(1)) if m else None


def _api_error_reason(exc: ApiException) -> str:
    status = exc.status
    text = exc.body if isinstance(exc.body, str) else (exc.body.decode("utf-8", "replace") if exc.body else "")
    try:
        errors = json.loads(text).get("errors") or []
        first = errors[0] if errors else {}
    except (ValueError, AttributeError):
        first = {}
    if first:
        pointer = (first.get("source") or {}).get("pointer") or (first.get("source") or {}).get("parameter")
        reason = f"HTTP {status} {first.get('code') or ''}: {first.get('detail') or first.get('title') or ''}".strip()
        if pointer:
            reason += f" (at {pointer})"
        return reason
    return f"HTTP {status} {exc.reason or ''}".strip()


def classify_api_exception(exc: ApiException, event: EmailEvent | None = None) -> ServiceError:
    """An HTTP error from Klaviyo → an error (reference §4.2, §6.5)."""
    status = int(exc.status or 0)
    reason = scrub(_api_error_reason(exc), event)
    headers = exc.headers
    if status in RETRIED_BY_KLAVIYO_ADVICE:
        return RetriableError(SERVICE, reason, status=status, retry_after=parse_retry_after(headers, exc.body))
    if status == 403:
        content_type = ""
        try:
            content_type = (headers.get("Content-Type") or "") if headers is not None else ""
        except AttributeError:  # pragma: no cover
            pass
        if "html" in content_type.lower():   # an edge (Cloudflare) challenge, not our key
            return RetriableError(SERVICE, "HTTP 403 from the edge (HTML challenge page)", status=status,
                                  retry_after=30.0)
        return FatalError(SERVICE, f"{reason} — the API key lacks a scope (events:write / accounts:read)",
                          status=status)
    if status == 401:
        return FatalError(SERVICE, f"{reason} — KLAVIYO_API_KEY is missing, wrong or revoked", status=status)
    if status >= 500:
        return RetriableError(SERVICE, reason, status=status)
    return FatalError(SERVICE, reason, status=status)


def classify_exception(exc: BaseException, event: EmailEvent | None = None) -> ServiceError:
    """Anything ``create_event`` / ``get_accounts`` may raise → an error."""
    if isinstance(exc, ApiException):
        return classify_api_exception(exc, event)
    if isinstance(exc, pydantic.ValidationError):   # before ValueError: it is one
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"
                             for e in exc.errors(include_url=False, include_input=False))
        return FatalError(SERVICE, f"giftsync bug: the SDK refused our request before sending it ({problems})")
    if isinstance(exc, urllib3.exceptions.HTTPError):
        return RetriableError(SERVICE, f"network: {type(exc).__name__}")
    if isinstance(exc, ValueError):   # the SDK's int() of a non-integer Retry-After
        return RetriableError(SERVICE, "unreadable Retry-After from Klaviyo", retry_after=1.0)
    if isinstance(exc, OSError):
        return RetriableError(SERVICE, f"network: {type(exc).__name__}")
    raise exc


class KlaviyoMessenger:
    """``Messenger`` over klaviyo-api. ``timeout`` is (connect, read) seconds per request."""

    def __init__(self, api_key: str, *, api_url: str | None = None, revision: str = SDK_REVISION,
                 timeout: tuple[float, float] | float = (3, 15), budget: Any = None,
                 attempts: int = 2, max_wait: float = 2.0, acquire_timeout: float = 30.0,
                 clock: Callable[[], datetime] | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not api_key:
            raise ValueError("a Klaviyo private API key is required")
        # max_retries=1: one request per SDK call — retrying and waiting are ours (see module doc)
        self._client = KlaviyoAPI(api_key, max_delay=1, max_retries=1, test_host=api_url or "",
                                  options={"USE_DICTIONARY_FOR_RESPONSE_DATA": True})
        if revision != SDK_REVISION:
            self._client.api_client.default_headers["revision"] = revision
        self.revision = revision
        self.api_url = api_url
        self.timeout = (tuple(float(t) for t in timeout) if isinstance(timeout, (tuple, list))
                        else float(timeout))
        self.budget = budget if budget is not None else Unlimited()
        self.attempts = max(1, int(attempts))
        self.max_wait = max_wait
        self.acquire_timeout = acquire_timeout
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        self._sleep = sleep
        self._events = self._client.Events      # each group access builds a new wrapped object
        self._accounts = self._client.Accounts

    def __repr__(self) -> str:  # never show the key
        return f"KlaviyoMessenger(api_url={self.api_url!r}, revision={self.revision!r})"

    def send(self, event: EmailEvent) -> None:
        """Create the event; idempotent by ``event.unique_id``. Raises Retriable/Fatal errors."""
        try:
            body = event_body(event, self._clock())
        except (TypeError, ValueError) as exc:
            raise FatalError(SERVICE, f"giftsync bug: cannot build the event ({type(exc).__name__})") from None
        self._call("create_event", lambda: self._events.create_event(body, _request_timeout=self.timeout), event)
        log.info("klaviyo event sent: %s (%s)", event.metric.value, event.unique_id)

    def check_key(self) -> dict:
        """For ``doctor``: the key works (GET /api/accounts). Returns the account id and name."""
        answer = self._call("get_accounts", lambda: self._accounts.get_accounts(_request_timeout=self.timeout), None)
        items = (answer or {}).get("data") or [] if isinstance(answer, dict) else []
        first = items[0] if items else {}
        attrs = first.get("attributes") or {}
        return {"account_id": first.get("id"),
                "organization": (attrs.get("contact_information") or {}).get("organization_name"),
                "revision": self.revision}

    def _call(self, what: str, fn: Callable[[], Any], event: EmailEvent | None) -> Any:
        for attempt in range(self.attempts):
            if not self.budget.acquire(1, timeout=self.acquire_timeout):
                raise RetriableError(SERVICE, f"rate budget: no room for {what} within {self.acquire_timeout:.0f}s")
            try:
                return fn()
            except Exception as exc:  # sorted below; anything unexpected is re-raised
                error = classify_exception(exc, event)
            if error.retry_after:
                self.budget.pause(error.retry_after)
            last = attempt == self.attempts - 1
            log.warning("klaviyo %s failed (%s: %s)%s", what, type(error).__name__, error.reason,
                        "" if last or not isinstance(error, RetriableError) else "; retrying")
            if last or not isinstance(error, RetriableError):
                raise error from None
            wait = max(error.retry_after or 0.0, 0.5 * (1 + random.random()))
            if wait > self.max_wait:
                raise error from None
            self._sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover
