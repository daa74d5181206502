"""The lease on the Status record: one active daemon at a time (docs/adr/0003-lease.md).

Airtable has no compare-and-set, so the ``lease`` row of the Status table is a lease:

- ``Holder`` is ``host:pid:random``; ``Heartbeat`` the last renewal; ``Lease Until`` when the
  lease ends unless renewed.
- ``acquire()`` takes it only when it is Offline or expired: it writes our holder id, pauses
  (``settle``), re-reads, and holds the lease only if the row still names us. Taking over an
  expired lease of another holder appends a ``TAKEOVER`` receipt naming that holder.
- ``renew()`` runs every cycle (the scheduler's lease job); it first re-reads the row and
  gives the lease up if someone else holds it now. It renews in place only while our lease is
  still running by our own clock, checked just before the write and again when the write has
  answered. Once the lease has run out — another process may have taken it meanwhile — it is
  taken again through the full protocol (read, write, pause, re-read), never renewed in place;
  effects start again only after the re-read.
- ``may_start_effects()`` is what prongs ask before each run and between records: false
  unless we hold the lease *and* it still has more than ``margin`` seconds to run by our own
  monotonic clock (counted from before the write that set it). A daemon that cannot renew
  therefore stops starting effects ``margin`` seconds before another process may take over.
- ``release()`` writes Offline on a clean stop.

``end_lease()`` is what ``giftsync unlock`` does: end a stale lease, refusing while the
holder's lease is still running unless forced.

Written against ``CardBook`` and ``Clock`` only. The lease keeps overlap rare; it is not
what keeps money safe (each effect is idempotent on its own).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import socket
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from .. import crashpoints
from ..domain.ledger import Activity, Channel, Receipt
from ..ports import CardBook, Clock, StatusRow

log = logging.getLogger("giftsync.lease")

LEASE_ROW = "lease"
ONLINE = "Online"
OFFLINE = "Offline"


def make_holder_id() -> str:
    """``host:pid:random`` — unique per process start, readable by an operator."""
    host = socket.gethostname().split(".")[0] or "host"
    return f"{host}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass(frozen=True)
class LeaseView:
    """The lease row as an operator sees it (``giftsync status``, ``unlock``)."""
    state: str                  # Online / Offline / "" (no row yet)
    holder: str
    heartbeat: datetime | None
    lease_until: datetime | None
    expires_at: datetime | None  # lease_until, or heartbeat + length when Lease Until is blank
    active: bool                 # Online and not yet expired: a live holder may be acting
    details: str = ""

    @property
    def expired(self) -> bool:
        return self.state == ONLINE and not self.active

    def as_dict(self) -> dict:
        return {
            "state": self.state or "Offline",
            "holder": self.holder,
            "heartbeat": self.heartbeat.isoformat() if self.heartbeat else None,
            "lease_until": self.lease_until.isoformat() if self.lease_until else None,
            "active": self.active,
            "expired": self.expired,
            "details": self.details,
        }


def view(row: StatusRow | None, now: datetime, length: float) -> LeaseView:
    if row is None:
        return LeaseView("", "", None, None, None, False)
    expires = row.lease_until
    if expires is None and row.heartbeat is not None:
        expires = row.heartbeat + timedelta(seconds=length)
    active = row.state == ONLINE and bool(row.holder) and expires is not None and expires > now
    return LeaseView(row.state, row.holder, row.heartbeat, row.lease_until, expires, active, row.details)


@dataclass(frozen=True)
class LeaseOutcome:
    ok: bool
    reason: str          # taken, takeover, renewed, held, race, lost, error, released, not-held
    other: str = ""      # the other holder (held / race / lost / takeover)
    until: datetime | None = None


class Lease:
    def __init__(self, book: CardBook, clock: Clock, *, holder: str | None = None,
                 length: float = 90.0, margin: float = 15.0, settle: float = 2.0,
                 name: str = LEASE_ROW) -> None:
        if length <= 0 or margin < 0 or settle < 0 or margin >= length:
            raise ValueError("lease length must be > margin >= 0 and settle >= 0")
        self.book = book
        self.clock = clock
        self.holder_id = holder or make_holder_id()
        self.length = float(length)
        self.margin = float(margin)
        self.settle = float(settle)
        self.name = name
        self._state = threading.Lock()     # quick: guards the fields below
        self._io = threading.RLock()       # serialises acquire/renew/release (no effect checks wait on it)
        self._held = False
        self._deadline: float | None = None     # monotonic time the lease we wrote ends
        self._until: datetime | None = None
        self._pending_receipts: list[Receipt] = []
        self.last_outcome: LeaseOutcome | None = None

    # -- what prongs ask -------------------------------------------------------------------
    @property
    def held(self) -> bool:
        with self._state:
            return self._held

    @property
    def until(self) -> datetime | None:
        with self._state:
            return self._until if self._held else None

    def remaining(self) -> float | None:
        """Seconds until our lease ends (by the monotonic clock), or None when not held."""
        with self._state:
            if not self._held or self._deadline is None:
                return None
            return self._deadline - self.clock.monotonic()

    def may_start_effects(self) -> bool:
        remaining = self.remaining()
        return remaining is not None and remaining > self.margin

    # -- the lease job -----------------------------------------------------------------------
    def tick(self) -> bool:
        """One lease cycle: renew when held, otherwise try to take. True when held afterwards."""
        with self._io:
            outcome = self.renew() if self.held else self.acquire()
            self._flush_receipts()
            return outcome.ok and self.held

    def acquire(self) -> LeaseOutcome:
        with self._io:
            mono0 = self.clock.monotonic()
            now = self.clock.now()
            try:
                row = self.book.read_status(self.name)
            except Exception as exc:  # noqa: BLE001 — any failure: not taken, try next tick
                return self._record(LeaseOutcome(False, "error"), exc=exc)
            current = view(row, now, self.length)
            if current.active and current.holder != self.holder_id:
                return self._record(LeaseOutcome(False, "held", current.holder, current.expires_at))
            # A running lease in our own name (an earlier write of ours whose answer was lost, or a
            # take whose re-read failed): no other process takes a running lease, so none has since
            # that write — but our clock does not vouch for when it was written, so it is not
            # adopted: it is taken again like any other, write, pause, re-read.
            previous = current.holder if (current.state == ONLINE and current.holder
                                          and current.holder != self.holder_id) else ""
            until = now + timedelta(seconds=self.length)
            new = dataclasses.replace(row) if row is not None else StatusRow(name=self.name)
            new.state, new.holder, new.heartbeat, new.lease_until = ONLINE, self.holder_id, now, until
            new.details = (f"taken over from {previous} (lease ended {_iso(current.expires_at)})"
                           if previous else "started")
            try:
                crashpoints.reach("lease.take")
                self.book.write_status(new)
                self.clock.sleep(self.settle)
                check = self.book.read_status(self.name)
            except Exception as exc:  # noqa: BLE001
                return self._record(LeaseOutcome(False, "error"), exc=exc)
            if check is None or check.holder != self.holder_id or check.state != ONLINE:
                other = check.holder if check is not None else ""
                return self._record(LeaseOutcome(False, "race", other))
            with self._state:
                self._held = True
                self._deadline = mono0 + self.length
                self._until = until
            if previous:
                self._pending_receipts.append(self._takeover_receipt(now, previous, current))
                self._flush_receipts()
                return self._record(LeaseOutcome(True, "takeover", previous, until))
            return self._record(LeaseOutcome(True, "taken", "", until))

    def renew(self) -> LeaseOutcome:
        """Renew in place while our lease still runs; once it has run out, take it again.

        The deadline is checked before the read, just before the write (the read may have taken
        retries) and after the write answered (it may have landed after the lease ended, i.e.
        after a successor's take). Past the deadline another process may hold the lease, so the
        row is never overwritten in place: ``acquire()`` reads it, stands by if someone else
        holds it, and otherwise writes, pauses and re-reads before effects start again."""
        with self._io:
            if not self.held:
                return self._record(LeaseOutcome(False, "not-held"))
            if self._ran_out():
                return self._take_again("before it could be renewed")
            try:
                row = self.book.read_status(self.name)
            except Exception as exc:  # noqa: BLE001
                return self._record(LeaseOutcome(False, "error"), exc=exc)
            if row is None or row.holder != self.holder_id or row.state != ONLINE:
                self._drop()
                other = row.holder if row is not None else ""
                return self._record(LeaseOutcome(False, "lost", other))
            mono0 = self.clock.monotonic()      # the new lease is counted from before its write
            now = self.clock.now()
            if self._ran_out(mono0):
                return self._take_again("while its renewal was being read")
            until = now + timedelta(seconds=self.length)
            try:
                crashpoints.reach("lease.renew")
                self.book.write_status(dataclasses.replace(row, heartbeat=now, lease_until=until))
            except Exception as exc:  # noqa: BLE001 — the deadline stays where it was
                return self._record(LeaseOutcome(False, "error"), exc=exc)
            if self._ran_out():
                return self._take_again("while its renewal was being written")
            with self._state:
                if self._held:
                    self._deadline = mono0 + self.length
                    self._until = until
            return self._record(LeaseOutcome(True, "renewed", "", until))

    def release(self) -> LeaseOutcome:
        """Clean stop: stop effects at once, then write Offline if the row still names us."""
        with self._io:
            if not self.held:
                return self._record(LeaseOutcome(False, "not-held"))
            self._drop()
            self._flush_receipts()
            now = self.clock.now()
            try:
                row = self.book.read_status(self.name)
                if row is None or row.holder != self.holder_id:
                    return self._record(LeaseOutcome(False, "lost", row.holder if row else ""))
                crashpoints.reach("lease.release")
                self.book.write_status(dataclasses.replace(
                    row, state=OFFLINE, heartbeat=now, lease_until=now, details="stopped cleanly"))
            except Exception as exc:  # noqa: BLE001 — the lease will expire on its own
                return self._record(LeaseOutcome(False, "error"), exc=exc)
            return self._record(LeaseOutcome(True, "released"))

    # -- internals ---------------------------------------------------------------------------
    def _ran_out(self, mono: float | None = None) -> bool:
        """Our lease has ended by our own monotonic clock (held, and past its deadline)."""
        mono = self.clock.monotonic() if mono is None else mono
        with self._state:
            return self._held and self._deadline is not None and mono >= self._deadline

    def _take_again(self, when: str) -> LeaseOutcome:
        """Our lease ran out: effects are off from here; take it through the full protocol."""
        self._drop()
        log.warning(f"lease ran out {when}; taking it again (write, pause, re-read)",
                    extra={"holder": self.holder_id})
        return self.acquire()

    def _drop(self) -> None:
        with self._state:
            self._held = False
            self._deadline = None
            self._until = None

    def _takeover_receipt(self, now: datetime, previous: str, current: LeaseView) -> Receipt:
        return Receipt(
            receipt_id=f"takeover:{self.holder_id}:{previous}",
            time=now,
            activity=Activity.TAKEOVER,
            channel=Channel.SYSTEM,
            source=f"Status/{self.name}",
            outcome="Taken over",
            correlation_id=self.holder_id,
            details=(f"lease of {previous} expired at {_iso(current.expires_at)} "
                     f"(last heartbeat {_iso(current.heartbeat)}); taken over by {self.holder_id}"),
            extra={"previous_holder": previous, "holder": self.holder_id},
        )

    def _flush_receipts(self) -> None:
        if not self._pending_receipts:
            return
        pending = list(self._pending_receipts)
        try:
            self.book.append_receipts(pending)
        except Exception as exc:  # noqa: BLE001 — kept and retried on the next tick
            log.warning("takeover receipt not written yet; will retry",
                        extra={"error": type(exc).__name__, "receipts": len(pending)})
            return
        del self._pending_receipts[:len(pending)]

    def _record(self, outcome: LeaseOutcome, *, exc: BaseException | None = None) -> LeaseOutcome:
        previous = self.last_outcome
        self.last_outcome = outcome
        fields = {"holder": self.holder_id, "outcome": outcome.reason}
        if outcome.other:
            fields["other"] = outcome.other
        if outcome.until:
            fields["until"] = outcome.until.isoformat()
        if exc is not None:
            fields["error"] = f"{type(exc).__name__}: {exc}"
            log.warning("lease call failed", extra=fields)
        elif outcome.reason == "renewed":
            log.debug("lease renewed", extra=fields)
        elif outcome.reason == "held":
            # Standby: say it once, not every tick.
            if previous is None or previous.reason != "held" or previous.other != outcome.other:
                log.info("lease held by another process; standing by", extra=fields)
        elif outcome.reason in ("lost", "race"):
            log.error("lease lost to another process; effects stopped", extra=fields)
        elif outcome.reason == "takeover":
            log.warning("lease taken over from an expired holder", extra=fields)
        elif outcome.reason in ("taken", "released"):
            log.info(f"lease {outcome.reason}", extra=fields)
        return outcome


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value else "unknown"


# -- giftsync unlock ----------------------------------------------------------------------------

@dataclass(frozen=True)
class UnlockResult:
    ended: bool
    reason: str            # ended, offline, fresh, error
    before: LeaseView
    message: str

    def as_dict(self) -> dict:
        return {"ended": self.ended, "reason": self.reason, "message": self.message,
                "before": self.before.as_dict()}


def end_lease(book: CardBook, clock: Clock, *, force: bool = False, by: str = "",
              length: float = 90.0, name: str = LEASE_ROW,
              alive: Callable[[LeaseView], bool] | None = None) -> UnlockResult:
    """End the lease (write Offline). Refuses while the holder's lease is still running —
    its heartbeat is fresh — unless ``force``. A Receipts row records who ended it."""
    now = clock.now()
    row = book.read_status(name)
    before = view(row, now, length)
    if row is None or before.state != ONLINE:
        return UnlockResult(False, "offline", before, "the lease is not held (Offline); nothing to do")
    fresh = before.active if alive is None else alive(before)
    if fresh and not force:
        return UnlockResult(False, "fresh", before,
                            f"refused: {before.holder} renewed its lease at {_iso(before.heartbeat)} and it "
                            f"runs until {_iso(before.expires_at)}; stop that daemon, wait for the lease "
                            f"to expire, or use --force if you know it is dead")
    by = by or make_holder_id()
    crashpoints.reach("lease.release")
    book.write_status(dataclasses.replace(
        row, state=OFFLINE, heartbeat=row.heartbeat, lease_until=now,
        details=f"ended by giftsync unlock{' --force' if force else ''} ({by}) at {now.isoformat()}; "
                f"previous holder {before.holder}"))
    book.append_receipts([Receipt(
        receipt_id=f"unlock:{by}:{before.holder}",
        time=now,
        activity=Activity.TAKEOVER,
        channel=Channel.ADMIN,
        source=f"Status/{name}",
        outcome="Unlocked (forced)" if fresh else "Unlocked",
        correlation_id=by,
        details=(f"lease of {before.holder} ended by giftsync unlock{' --force' if force else ''}; "
                 f"its lease {'was still running until' if fresh else 'had expired at'} "
                 f"{_iso(before.expires_at)}"),
        extra={"previous_holder": before.holder, "holder": by, "forced": bool(force and fresh)},
    )])
    state = "was still running" if fresh else "had expired"
    return UnlockResult(True, "ended", before, f"lease of {before.holder} ended (it {state})")
