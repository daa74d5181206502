"""Sliding-window throttle (pure: the caller passes the time)."""
from __future__ import annotations

from collections import defaultdict, deque


class SlidingWindow:
    def __init__(self, limit: int, window_seconds: float) -> None:
        if limit < 1 or window_seconds <= 0:
            raise ValueError("limit must be >= 1 and window > 0")
        self.limit = limit
        self.window = window_seconds
        self._hits: dict[str, deque[float]] = defaultdict(deque)

    def _trim(self, key: str, now: float) -> deque[float]:
        hits = self._hits[key]
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        return hits

    def allow(self, key: str, now: float) -> bool:
        """Count one attempt for ``key``; False when it is over the limit (it still counts)."""
        hits = self._trim(key, now)
        hits.append(now)
        return len(hits) <= self.limit

    def count(self, key: str, now: float) -> int:
        """Attempts for ``key`` within the window (nothing is counted)."""
        return len(self._trim(key, now))

    def seed(self, key: str, times: list[float]) -> None:
        """Load past attempts (e.g. from the Balance Checks table after a restart)."""
        self._hits[key].extend(sorted(times))
