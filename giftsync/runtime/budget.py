"""Rate budgets shared by the prong threads, serving store redemptions first.

One ``RateBudget`` per outside service (Airtable: 5 requests/s per base; Shopify: the cost
bucket; Klaviyo: its tier). Adapters call ``budget.acquire(cost)`` before each request. The
priority of the calling thread comes from the ``priority(...)`` context the prong sets, so an
adapter needs no knowledge of who calls it: while a redemption waits for a token, card
requests and polls of lower priority wait behind it.
"""
from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from typing import Callable, Iterator

URGENT = 0        # store redemptions: a customer is at the counter
NORMAL = 10       # card requests, online orders
BACKGROUND = 20   # balance checks, reconciliation, housekeeping

_priority: contextvars.ContextVar[int] = contextvars.ContextVar("giftsync_priority", default=NORMAL)


@contextlib.contextmanager
def priority(level: int) -> Iterator[None]:
    token = _priority.set(level)
    try:
        yield
    finally:
        _priority.reset(token)


def current_priority() -> int:
    return _priority.get()


class RateBudget:
    """Token bucket (``rate`` tokens/s, at most ``capacity``) with priority-ordered waiting."""

    def __init__(self, name: str, rate: float, capacity: float, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or capacity <= 0:
            raise ValueError("rate and capacity must be positive")
        self.name = name
        self.rate = float(rate)
        self.capacity = float(capacity)
        self._tokens = float(capacity)
        self._clock = clock
        self._stamp = clock()
        self._cond = threading.Condition()
        self._waiting: dict[int, int] = {}   # priority -> number of waiters
        self.waited_seconds = 0.0
        self.acquired = 0
        self._paused_until = 0.0
        # Cost acquired for requests still awaiting their answer (one per thread: a thread sends
        # one request at a time), so that a figure the service reports (``observe``) is not
        # taken as room that those requests have already been given.
        self._mine = threading.local()
        self._in_flight = 0.0

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def acquire(self, cost: float = 1.0, *, timeout: float | None = None) -> bool:
        """Wait for ``cost`` tokens; False if ``timeout`` ran out first."""
        cost = min(float(cost), self.capacity)
        level = current_priority()
        start = self._clock()
        deadline = None if timeout is None else start + timeout
        with self._cond:
            self._waiting[level] = self._waiting.get(level, 0) + 1
            try:
                while True:
                    self._refill()
                    now = self._clock()
                    ahead = any(p < level and n for p, n in self._waiting.items())
                    if not ahead and now >= self._paused_until and self._tokens >= cost:
                        self._tokens -= cost
                        self._in_flight += cost - getattr(self._mine, "cost", 0.0)
                        self._mine.cost = cost
                        self.acquired += 1
                        self.waited_seconds += now - start
                        self._cond.notify_all()
                        return True
                    need = max((cost - self._tokens) / self.rate, self._paused_until - now, 0.005)
                    if deadline is not None:
                        if now >= deadline:
                            return False
                        need = min(need, deadline - now)
                    self._cond.wait(min(need, 0.25) if ahead else need)
            finally:
                self._waiting[level] -= 1
                self._cond.notify_all()

    def pause(self, seconds: float) -> None:
        """The service asked us to back off (429 Retry-After / THROTTLED): nobody starts for a while."""
        with self._cond:
            self._paused_until = max(self._paused_until, self._clock() + seconds)

    def observe(self, available: float, capacity: float | None = None, rate: float | None = None) -> None:
        """Align with what the service reports (Shopify's throttleStatus), from the thread whose
        request brought the figure."""
        with self._cond:
            self._refill()
            if capacity:
                self.capacity = float(capacity)
            if rate:
                self.rate = float(rate)
            mine = getattr(self._mine, "cost", 0.0)
            self._mine.cost = 0.0
            self._in_flight = max(0.0, self._in_flight - mine)
            # The service's figure is the truth at the moment it answered: follow it both ways
            # (down when others spent from the same bucket, up when it refilled faster than we
            # assumed) — less what our other requests in flight were already given (the answer
            # may predate their charge). Over-estimating costs at most a THROTTLED answer, which
            # is never applied.
            self._tokens = max(0.0, min(self.capacity, float(available) - self._in_flight))
            self._stamp = self._clock()
            self._cond.notify_all()


class Unlimited:
    """A budget that never waits (tests, one-off commands)."""
    name = "unlimited"
    acquired = 0
    waited_seconds = 0.0

    def acquire(self, cost: float = 1.0, *, timeout: float | None = None) -> bool:
        return True

    def pause(self, seconds: float) -> None:
        pass

    def observe(self, available: float, capacity: float | None = None, rate: float | None = None) -> None:
        pass
