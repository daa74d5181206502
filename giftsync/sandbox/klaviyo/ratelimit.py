"""Klaviyo's rate limits: per account, a 1-second *burst* window and a 1-minute *steady*
window per operation, both fixed windows (reference §5). Exceeding either gives 429 with an
integer ``Retry-After``; other answers carry ``RateLimit-Limit/Remaining/Reset``."""
from __future__ import annotations

import math
import threading
import time
from typing import Any, Callable

# Klaviyo's named tiers: (burst per second, steady per minute)
TIERS: dict[str, tuple[int, int]] = {
    "XS": (1, 15),
    "S": (3, 60),
    "M": (10, 150),
    "L": (75, 700),
    "XL": (350, 3500),
}

# per route key, from the spec's x-klaviyo-ratelimit
ROUTE_LIMITS: dict[str, tuple[int, int]] = {
    "events.create": (350, 3500),
    "events.bulk": (10, 150),
    "events.list": (350, 3500),
    "profiles.create": (75, 750),
    "profiles.update": (75, 750),
    "profiles.import": (75, 750),
    "profiles.list": (75, 750),
    "profiles.get": (75, 750),
    "metrics.list": (10, 150),
    "accounts.list": (1, 15),
}

BURST_WINDOW = 1.0
STEADY_WINDOW = 60.0


def parse_limit(value: Any) -> tuple[int, int]:
    """``"XS"`` | ``[burst, steady]`` | ``{"burst": n, "steady": m}`` → (burst, steady)."""
    if isinstance(value, str):
        if value.upper() not in TIERS:
            raise ValueError(f"unknown rate-limit tier {value!r}; expected one of {sorted(TIERS)}")
        return TIERS[value.upper()]
    if isinstance(value, dict):
        unknown = set(value) - {"burst", "steady"}
        if unknown:
            raise ValueError(f"unknown rate-limit fields {sorted(unknown)}")
        return int(value["burst"]), int(value["steady"])
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return int(value[0]), int(value[1])
    raise ValueError(f"bad rate limit {value!r}")


class _Window:
    __slots__ = ("length", "limit", "start", "count")

    def __init__(self, length: float, limit: int) -> None:
        self.length = length
        self.limit = limit
        self.start = 0.0
        self.count = 0

    def roll(self, now: float) -> None:
        if now - self.start >= self.length:
            self.start = now
            self.count = 0

    def wait(self, now: float) -> float:
        return max(0.0, self.start + self.length - now)


class RateLimiter:
    def __init__(self, overrides: dict | None = None, *, enabled: bool = True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.enabled = enabled
        self.clock = clock
        self.limits = dict(ROUTE_LIMITS)
        for key, value in (overrides or {}).items():
            self.limits[key] = parse_limit(value)
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str], tuple[_Window, _Window]] = {}

    def check(self, account: str, route: str) -> tuple[int | None, dict[str, str]]:
        """Count one call. Returns (retry_after or None, headers for the answer)."""
        if not self.enabled or route not in self.limits:
            return None, {}
        burst, steady = self.limits[route]
        with self._lock:
            key = (account, route)
            if key not in self._windows:
                self._windows[key] = (_Window(BURST_WINDOW, burst), _Window(STEADY_WINDOW, steady))
            windows = self._windows[key]
            now = self.clock()
            for w in windows:
                w.roll(now)
            full = [w for w in windows if w.count >= w.limit]
            if full:
                wait = max(w.wait(now) for w in full)
                return max(1, math.ceil(wait)), {}
            for w in windows:
                w.count += 1
            sw = windows[1]
            return None, {
                "RateLimit-Limit": str(sw.limit),
                "RateLimit-Remaining": str(max(0, sw.limit - sw.count)),
                "RateLimit-Reset": str(max(0, math.ceil(sw.wait(now)))),
            }

    def reset(self) -> None:
        with self._lock:
            self._windows.clear()
