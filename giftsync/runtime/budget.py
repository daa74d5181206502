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
import weakref
from typing import Callable, Iterator

URGENT = 0        # store redemptions: a customer is at the counter
LEASE = 5         # the lease renewal: ahead of all other work, behind a redemption poll in progress
NORMAL = 10       # card requests: a clerk (and a business customer) waiting on a form
ONLINE = 15       # online orders: the customer hears by email; a bulk card request in a shop goes
                  # first and the orders take the requests it leaves (docs/adr/0007-rate-priorities.md)
BACKGROUND = 20   # balance checks, reconciliation, housekeeping

HOLD_MAX_SECONDS = 4.0    # an urgent hold stops counting after this long (a hung call never starves the rest)

_priority: contextvars.ContextVar[int] = contextvars.ContextVar("giftsync_priority", default=NORMAL)

_hold_lock = threading.Lock()
_holds: dict[int, float] = {}          # hold id → monotonic start
_hold_ids = iter(range(1, 1 << 62))
_held_budgets: "weakref.WeakSet[RateBudget]" = weakref.WeakSet()    # woken when a hold ends


@contextlib.contextmanager
def urgent_hold(clock: Callable[[], float] = time.monotonic) -> Iterator[None]:
    """While a redemption poll is in progress (its list to its final write), budgets made with
    ``hold_for_urgent`` give no token to lower priorities, even between its requests: with a
    bucket of one token (Airtable), a request slipping in while the poll's thread is at Shopify
    would delay the poll's next request by up to a token's time. At most ``HOLD_MAX_SECONDS``."""
    with _hold_lock:
        hold = next(_hold_ids)
        _holds[hold] = clock()
    try:
        yield
    finally:
        with _hold_lock:
            _holds.pop(hold, None)
            budgets = list(_held_budgets)
        for budget in budgets:          # the waiters held back go at once
            budget.wake()


def _held(now: float) -> float:
    """Seconds the current urgent holds still count for (0: none)."""
    with _hold_lock:
        return max([0.0] + [HOLD_MAX_SECONDS - (now - start) for start in _holds.values()])


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
                 clock: Callable[[], float] = time.monotonic, hold_for_urgent: bool = False) -> None:
        if rate <= 0 or capacity <= 0:
            raise ValueError("rate and capacity must be positive")
        self.name = name
        self.rate = float(rate)
        self.capacity = float(capacity)
        self._tokens = float(capacity)
        self._clock = clock
        self.hold_for_urgent = hold_for_urgent     # lower priorities wait while an urgent_hold() is on
        if hold_for_urgent:
            with _hold_lock:
                _held_budgets.add(self)
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
                    held = self.hold_for_urgent and level > URGENT and bool(_holds) and _held(time.monotonic())
                    if held and not ahead:
                        # held back by a redemption poll: sleep until it ends (wake()) or lapses,
                        # not in token-sized steps
                        if deadline is not None:
                            if now >= deadline:
                                return False
                            held = min(held, deadline - now)
                        self._cond.wait(held)
                        continue
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

    def wake(self) -> None:
        """Let the waiters look again (an urgent hold ended)."""
        with self._cond:
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

    def wake(self) -> None:
        pass

    def pause(self, seconds: float) -> None:
        pass

    def observe(self, available: float, capacity: float | None = None, rate: float | None = None) -> None:
        pass
