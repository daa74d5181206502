"""Airtable's per-base limit: 5 requests per second; over it, 429 for a penalty period."""
from __future__ import annotations

import time
from collections import deque
from typing import Callable


class RateLimiter:
    """Sliding one-second window per key; a request over the limit starts a penalty during
    which every request of that key is refused (the real service: 30 s)."""

    def __init__(self, per_second: int = 5, penalty_seconds: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_second = per_second
        self.penalty_seconds = penalty_seconds
        self.clock = clock
        self._hits: dict[str, deque] = {}
        self._blocked_until: dict[str, float] = {}

    def allow(self, key: str) -> bool:
        now = self.clock()
        if self._blocked_until.get(key, 0.0) > now:
            return False
        hits = self._hits.setdefault(key, deque())
        while hits and now - hits[0] >= 1.0:
            hits.popleft()
        if len(hits) >= self.per_second:
            self._blocked_until[key] = now + self.penalty_seconds
            hits.clear()
            return False
        hits.append(now)
        return True

    def reset(self) -> None:
        self._hits.clear()
        self._blocked_until.clear()
