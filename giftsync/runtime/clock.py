"""The real clock (``giftsync.ports.Clock``): aware UTC wall time, monotonic time, sleep."""
from __future__ import annotations

import time
from datetime import datetime, timezone


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)
