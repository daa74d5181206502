"""What the end-to-end days share: staff reaching Airtable through pyairtable at a paced rate,
progress notes, and conditions awaited by polling with a deadline (never asserting on elapsed time)."""
from __future__ import annotations

import threading
import time
from datetime import datetime
from decimal import Decimal

import pytest
from requests.adapters import HTTPAdapter

WAIT = 90.0                      # deadline of one awaited condition (seconds)


class Paced(HTTPAdapter):
    """Keeps a test's own Airtable traffic at most one request per ``gap`` seconds."""

    def __init__(self, gap: float) -> None:
        super().__init__()
        self.gap = gap
        self._lock = threading.Lock()
        self._last = 0.0

    def send(self, request, **kwargs):
        with self._lock:
            pause = self._last + self.gap - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            self._last = time.monotonic()
        return super().send(request, **kwargs)


def d(value) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class StaffDay:
    """The world and the staff's paced Airtable client. Subclasses say when their daemons are
    down (``daemon_down``) and what to show on failure (``tail``)."""

    label = "day"

    def __init__(self, world, *, gap: float, agent: str) -> None:
        self.world = world
        self.api = world.airtable_api(timeout=(3, 15), retry_strategy=None)
        self.api.session.mount("http://", Paced(gap))
        self.api.session.headers["User-Agent"] = agent
        self.started = time.monotonic()

    # -- Airtable, as staff and customers use it --------------------------------------------
    def table(self, name: str):
        return self.api.table(self.world.base_id, name)

    def submit(self, table: str, fields: dict) -> str:
        return self.table(table).create(fields, typecast=True)["id"]

    def rows(self, table: str) -> dict[str, dict]:
        return {r["id"]: r["fields"] for r in self.table(table).all()}

    # -- progress and waiting -------------------------------------------------------------------
    def mark(self, phase: str) -> None:
        """A progress note (shown with the test's output when it fails)."""
        print(f"[{self.label} +{time.monotonic() - self.started:6.1f}s] {phase}", flush=True)

    def daemon_down(self) -> str | None:
        """Why waiting is pointless (no daemon left running), else None."""
        return None

    def tail(self, n: int = 60) -> str:
        return ""

    def until(self, predicate, what: str, timeout: float = WAIT, interval: float = 0.5, check_daemons: bool = True):
        """Poll ``predicate`` until it returns something truthy; fail with the daemon's output tail."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            down = self.daemon_down() if check_daemons else None
            if down:
                pytest.fail(f"{down} while waiting for {what}:\n" + self.tail())
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}:\n" + self.tail())
            time.sleep(interval)
