"""The lease on the Status record (docs/adr/0003-lease.md), against the fakes."""
from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from giftsync.adapters.fakes import FakeCardBook
from giftsync.domain.ledger import Activity, Channel
from giftsync.errors import RetriableError
from giftsync.ports import StatusRow
from giftsync.runtime.lease import LEASE_ROW, OFFLINE, ONLINE, Lease, end_lease, view


def make(book, clock, holder="h1:1:aaaa", **kw):
    kw.setdefault("length", 90)
    kw.setdefault("margin", 15)
    kw.setdefault("settle", 2)
    return Lease(book, clock, holder=holder, **kw)


def put(book, clock, *, state=ONLINE, holder="other:9:ffff", until_in=60.0, heartbeat_ago=0.0):
    now = clock.now()
    book.write_status(StatusRow(name=LEASE_ROW, state=state, holder=holder,
                                heartbeat=now - timedelta(seconds=heartbeat_ago),
                                lease_until=now + timedelta(seconds=until_in)))


def test_takes_a_missing_lease_and_writes_it(book, clock):
    lease = make(book, clock)
    outcome = lease.acquire()
    assert outcome.ok and outcome.reason == "taken"
    row = book.read_status(LEASE_ROW)
    assert row.state == ONLINE and row.holder == "h1:1:aaaa"
    assert row.lease_until == row.heartbeat + timedelta(seconds=90)
    assert clock.slept == [2]                       # paused before the re-read
    assert lease.held and lease.may_start_effects()
    assert book.all_receipts() == []                # no takeover, no receipt


def test_takes_an_offline_lease_without_a_takeover_receipt(book, clock):
    put(book, clock, state=OFFLINE, until_in=3600)
    assert make(book, clock).acquire().reason == "taken"
    assert book.all_receipts() == []


def test_refuses_a_lease_held_by_a_live_holder(book, clock):
    put(book, clock, until_in=30)
    lease = make(book, clock)
    outcome = lease.acquire()
    assert not outcome.ok and outcome.reason == "held" and outcome.other == "other:9:ffff"
    assert book.read_status(LEASE_ROW).holder == "other:9:ffff"   # untouched
    assert book.count("write_status") == 1                         # only the setup write
    assert not lease.may_start_effects()


def test_takes_over_an_expired_lease_with_a_receipt_naming_the_previous_holder(book, clock):
    put(book, clock, until_in=-1, heartbeat_ago=91)
    lease = make(book, clock)
    outcome = lease.acquire()
    assert outcome.ok and outcome.reason == "takeover" and outcome.other == "other:9:ffff"
    (receipt,) = book.all_receipts()
    assert receipt.activity is Activity.TAKEOVER and receipt.channel is Channel.SYSTEM
    assert "other:9:ffff" in receipt.details and "h1:1:aaaa" in receipt.details
    assert "other:9:ffff" in book.read_status(LEASE_ROW).details


def test_an_online_row_without_lease_until_expires_by_its_heartbeat(book, clock):
    book.write_status(StatusRow(name=LEASE_ROW, state=ONLINE, holder="old:1:1",
                                heartbeat=clock.now() - timedelta(seconds=30)))
    assert make(book, clock).acquire().reason == "held"
    clock.advance(61)
    assert make(book, clock).acquire().reason == "takeover"


class RacingBook(FakeCardBook):
    """Another daemon writes the lease while we pause between our write and our re-read."""

    def __init__(self, clock, rival):
        super().__init__(clock)
        self.rival = rival
        self.armed = True

    def write_status(self, row):
        saved = super().write_status(row)
        if self.armed and row.holder != self.rival:
            self.armed = False
            super().write_status(dataclasses.replace(row, holder=self.rival))
        return saved


def test_re_read_after_the_pause_loses_to_another_writer(clock):
    book = RacingBook(clock, rival="rival:2:bbbb")
    lease = make(book, clock)
    outcome = lease.acquire()
    assert not outcome.ok and outcome.reason == "race" and outcome.other == "rival:2:bbbb"
    assert not lease.held and not lease.may_start_effects()
    assert book.read_status(LEASE_ROW).holder == "rival:2:bbbb"


def test_renew_moves_heartbeat_and_lease_until(book, clock):
    lease = make(book, clock)
    lease.acquire()
    clock.advance(15)
    assert lease.renew().reason == "renewed"
    row = book.read_status(LEASE_ROW)
    assert row.heartbeat == clock.now()
    assert row.lease_until == clock.now() + timedelta(seconds=90)
    assert lease.remaining() == pytest.approx(90)


def test_may_start_effects_turns_false_a_margin_before_expiry_when_renew_fails(book, clock):
    lease = make(book, clock)
    lease.acquire()                                  # deadline counted from before the write (+2 s pause)
    book.fail_next("write_status", RetriableError("airtable", "503"), times=100)
    for _ in range(4):                               # 4 failed renewals, 15 s apart
        clock.advance(15)
        assert lease.renew().reason == "error"
        assert lease.may_start_effects()             # 62 s in: 28 s left > 15 s margin
    clock.advance(12)
    assert lease.may_start_effects()                 # 16 s left
    clock.advance(2)
    assert not lease.may_start_effects()             # 14 s left: inside the margin
    assert lease.held                                # still ours, but no new effects
    assert clock.now() < book.read_status(LEASE_ROW).lease_until


def test_a_lease_that_ran_out_is_taken_again_through_the_full_protocol(book, clock):
    lease = make(book, clock)
    lease.acquire()
    clock.advance(100)
    outcome = lease.renew()
    assert outcome.ok and outcome.reason == "taken"      # our own expired row: no takeover receipt
    assert book.all_receipts() == []
    assert lease.may_start_effects()


class SlowBook(FakeCardBook):
    """Status calls that take a while to answer (retries, a slow network): ``slow_next(method,
    seconds, then=...)`` makes the next such call take ``seconds`` by the clock — after the
    service applied it, as an answer that comes back late — and runs ``then`` meanwhile."""

    def __init__(self, clock):
        super().__init__(clock)
        self.clock = clock
        self._slow = {}

    def slow_next(self, method, seconds, then=None):
        self._slow[method] = (seconds, then)

    def _late(self, method):
        seconds, then = self._slow.pop(method, (0, None))
        if seconds:
            self.clock.advance(seconds)
        if then is not None:
            then()

    def read_status(self, name):
        row = super().read_status(name)
        self._late("read_status")
        return row

    def write_status(self, row):
        saved = super().write_status(row)
        self._late("write_status")
        return saved


def status_calls(book, since=0):
    return [name for name, _ in book.calls[since:] if name in ("read_status", "write_status")]


def test_status_unreachable_past_the_lease_end_means_taking_it_again_through_the_full_protocol(book, clock):
    # the two-daemon test's cut, on the fakes: every Status call fails for longer than the lease
    lease = make(book, clock, length=4, margin=1.5, settle=0.2)
    assert lease.tick()
    book.fail_next("read_status", RetriableError("airtable", "503"), times=1000)
    ticks = []
    for _ in range(8):                                # 8 ticks a second apart: the lease (4 s) ends
        clock.advance(1)
        ticks.append((lease.tick(), lease.last_outcome.reason, lease.may_start_effects()))
    assert [t[1] for t in ticks] == ["error"] * 8
    assert not any(t[2] for t in ticks[2:])           # effects off from 1.5 s before the end
    assert not lease.held                             # dropped once the lease ran out
    book.clear_failures()
    before, slept = len(book.calls), len(clock.slept)
    clock.advance(1)
    assert lease.tick() and lease.last_outcome.reason == "taken"
    assert status_calls(book, before) == ["read_status", "write_status", "read_status"]
    assert clock.slept[slept:] == [0.2]               # write, pause, re-read
    assert book.all_receipts() == []                  # our own row: no takeover receipt
    assert lease.may_start_effects()


def test_status_back_before_the_lease_ends_renews_in_place(book, clock):
    # inside the margin effects are off, but the lease never ended: nobody else may have taken
    # it, so a renewal in place (no pause) is enough to start effects again
    lease = make(book, clock, length=4, margin=1.5, settle=0.2)
    assert lease.tick()
    book.fail_next("read_status", RetriableError("airtable", "503"), times=3)
    for _ in range(3):
        clock.advance(1)
        lease.tick()
    assert lease.held and not lease.may_start_effects()     # 0.8 s left
    slept = len(clock.slept)
    assert lease.tick() and lease.last_outcome.reason == "renewed"
    assert clock.slept[slept:] == [] and lease.may_start_effects()


def test_a_renewal_read_that_outlasts_the_lease_does_not_renew_in_place(clock):
    book = SlowBook(clock)
    lease = make(book, clock)                         # 90 s lease, 15 s margin, 2 s pause
    lease.acquire()
    clock.advance(80)
    book.slow_next("read_status", 15)                 # the renewal's read answers at 97 s
    before = len(book.calls)
    outcome = lease.renew()
    assert outcome.ok and outcome.reason == "taken"
    # read (slow), then the full protocol — no write between the slow read and a fresh read
    assert status_calls(book, before) == ["read_status", "read_status", "write_status", "read_status"]
    assert clock.slept == [2, 2]
    row = book.read_status(LEASE_ROW)
    assert row.heartbeat == clock.now() - timedelta(seconds=2)


def test_a_renewal_that_answers_after_the_lease_ended_stands_by_for_a_successor(clock):
    book = SlowBook(clock)
    lease = make(book, clock)
    lease.acquire()
    clock.advance(80)
    # our renewal lands, but its answer comes back at 105 s; meanwhile our old lease (ended at
    # 90 s by our clock) was taken over by a successor whose write came after ours
    book.slow_next("write_status", 25, then=lambda: put(book, clock, holder="next:4:dddd", until_in=85))
    outcome = lease.renew()
    assert not outcome.ok and outcome.reason == "held" and outcome.other == "next:4:dddd"
    assert not lease.held and not lease.may_start_effects()
    assert book.read_status(LEASE_ROW).holder == "next:4:dddd"   # not overwritten


def test_our_own_running_row_after_the_lease_ran_out_is_taken_again_not_adopted(book, clock):
    lease = make(book, clock)
    lease.acquire()
    clock.advance(80)
    # the renewal is applied but its answer is lost: the row runs until 170 s, our clock says 90 s
    book.fail_next("write_status", RetriableError("airtable", "timeout"), applied=True)
    assert lease.renew().reason == "error"
    assert book.read_status(LEASE_ROW).lease_until > clock.now() + timedelta(seconds=80)
    clock.advance(12)                                 # 92 s: ours by the row, ended by our clock
    assert not lease.may_start_effects()
    before, slept = len(book.calls), len(clock.slept)
    outcome = lease.tick()
    assert outcome and lease.last_outcome.reason == "taken"
    assert status_calls(book, before) == ["read_status", "write_status", "read_status"]
    assert clock.slept[slept:] == [2]
    row = book.read_status(LEASE_ROW)
    assert row.lease_until == row.heartbeat + timedelta(seconds=90)   # a fresh lease, written now
    assert book.all_receipts() == []


def test_renew_notices_another_holder_and_stops_effects(book, clock):
    lease = make(book, clock)
    lease.acquire()
    put(book, clock, holder="usurper:3:cccc")
    outcome = lease.renew()
    assert not outcome.ok and outcome.reason == "lost" and outcome.other == "usurper:3:cccc"
    assert not lease.held and not lease.may_start_effects()
    assert book.read_status(LEASE_ROW).holder == "usurper:3:cccc"    # not overwritten


def test_tick_takes_then_renews_and_stands_by_while_held(book, clock):
    put(book, clock, until_in=20)
    lease = make(book, clock)
    assert not lease.tick()
    clock.advance(21)
    assert lease.tick()                  # expired: taken over
    clock.advance(15)
    assert lease.tick()                  # renewed
    assert lease.last_outcome.reason == "renewed"


def test_takeover_receipt_is_retried_when_the_ledger_write_fails(book, clock):
    put(book, clock, until_in=-5)
    book.fail_next("append_receipts", RetriableError("airtable", "429"))
    lease = make(book, clock)
    assert lease.acquire().reason == "takeover"
    assert book.all_receipts() == []
    lease.tick()
    assert [r.activity for r in book.all_receipts()] == [Activity.TAKEOVER]


def test_release_writes_offline_and_stops_effects(book, clock):
    lease = make(book, clock)
    lease.acquire()
    assert lease.release().reason == "released"
    row = book.read_status(LEASE_ROW)
    assert row.state == OFFLINE and row.holder == "h1:1:aaaa"
    assert not lease.held and not lease.may_start_effects()
    assert make(book, clock, holder="next:1:1").acquire().reason == "taken"


def test_release_does_not_overwrite_someone_elses_lease(book, clock):
    lease = make(book, clock)
    lease.acquire()
    put(book, clock, holder="usurper:3:cccc")
    assert lease.release().reason == "lost"
    assert book.read_status(LEASE_ROW).state == ONLINE


def test_read_failure_means_not_taken(book, clock):
    book.fail_next("read_status", RetriableError("airtable", "timeout"))
    lease = make(book, clock)
    assert lease.acquire().reason == "error"
    assert not lease.held


def test_lease_rejects_a_margin_not_shorter_than_the_lease(book, clock):
    with pytest.raises(ValueError):
        Lease(book, clock, length=10, margin=10)


# -- unlock -------------------------------------------------------------------------------------

def test_unlock_refuses_a_fresh_lease_unless_forced(book, clock):
    put(book, clock, until_in=60)
    result = end_lease(book, clock, by="admin:1:1")
    assert not result.ended and result.reason == "fresh"
    assert "--force" in result.message
    assert book.read_status(LEASE_ROW).state == ONLINE
    forced = end_lease(book, clock, force=True, by="admin:1:1")
    assert forced.ended
    assert book.read_status(LEASE_ROW).state == OFFLINE
    (receipt,) = book.all_receipts()
    assert receipt.activity is Activity.TAKEOVER and receipt.channel is Channel.ADMIN
    assert "other:9:ffff" in receipt.details and receipt.outcome == "Unlocked (forced)"


def test_unlock_ends_a_stale_lease(book, clock):
    put(book, clock, until_in=-30, heartbeat_ago=120)
    result = end_lease(book, clock, by="admin:1:1")
    assert result.ended and result.before.expired
    assert book.read_status(LEASE_ROW).state == OFFLINE
    assert make(book, clock).acquire().reason == "taken"


def test_unlock_on_an_offline_lease_does_nothing(book, clock):
    assert end_lease(book, clock).reason == "offline"
    put(book, clock, state=OFFLINE)
    assert end_lease(book, clock).reason == "offline"
    assert book.all_receipts() == []


def test_view_reports_active_and_expired(clock):
    now = clock.now()
    row = StatusRow(name=LEASE_ROW, state=ONLINE, holder="x", heartbeat=now,
                    lease_until=now + timedelta(seconds=5))
    assert view(row, now, 90).active
    assert view(row, now + timedelta(seconds=6), 90).expired
    assert not view(None, now, 90).active
