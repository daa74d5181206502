"""Scheduler semantics with fast intervals: no timed assertions, only waits for conditions."""
from __future__ import annotations

import os
import signal
import socket
import threading
import time

import pytest

from giftsync.ports import StatusRow
from giftsync.runtime.lease import LEASE_ROW, OFFLINE, ONLINE, Lease
from giftsync.runtime.scheduler import Daemon, Notifier, ProngSpec, noop_prong

FAST = 0.02


def wait_for(condition, timeout=10.0):
    """Wait until ``condition()`` holds (a generous limit only against hanging forever)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.005)


@pytest.fixture
def lease(book, clock):
    return Lease(book, clock, holder="test:1:aaaa", length=90, margin=15, settle=0)


@pytest.fixture
def daemons():
    started = []
    yield started
    for d in started:
        d.stop_event.set()
        d.stop()


def make_daemon(daemons, lease, prongs, **kw):
    kw.setdefault("renew_interval", FAST)
    d = Daemon(lease, prongs, **kw)
    daemons.append(d)
    return d


def test_a_slow_prong_is_never_run_twice_at_once(daemons, lease):
    release = threading.Event()
    active, peak, entered = [0], [0], threading.Event()
    guard = threading.Lock()

    def slow(should_continue):
        with guard:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        entered.set()
        release.wait(10)
        with guard:
            active[0] -= 1

    d = make_daemon(daemons, lease, [ProngSpec("store", slow, interval=FAST)])
    assert d.start()
    wait_for(entered.is_set)
    wait_for(lambda: d.stats["store"].skipped_busy >= 3)    # the scheduler tried again, and skipped
    assert peak[0] == 1 and d.stats["store"].runs == 1
    release.set()
    wait_for(lambda: d.stats["store"].runs >= 2)
    assert peak[0] == 1


def test_an_exception_in_a_prong_does_not_kill_the_scheduler(daemons, lease):
    calls = {"bad": 0, "good": 0}

    def bad(should_continue):
        calls["bad"] += 1
        raise RuntimeError("boom")

    def good(should_continue):
        calls["good"] += 1

    d = make_daemon(daemons, lease, [ProngSpec("store", bad, interval=FAST),
                                     ProngSpec("shopify-purchases", good, interval=FAST)])
    d.start()
    wait_for(lambda: calls["bad"] >= 3 and calls["good"] >= 3)
    assert d.stats["store"].failures >= 3 and d.stats["store"].last_error == "RuntimeError"
    assert d._scheduler.running


def test_stop_lets_the_record_in_hand_finish_then_releases_the_lease(daemons, lease, book):
    in_hand, finish = threading.Event(), threading.Event()
    order: list[str] = []

    def prong(should_continue):
        for record in ("rec1", "rec2", "rec3"):
            if not should_continue():
                order.append("stopped-between-records")
                return
            order.append(f"start {record}")
            if record == "rec1":
                in_hand.set()
                finish.wait(10)
            order.append(f"done {record}")

    d = make_daemon(daemons, lease, [ProngSpec("store", prong, interval=FAST)])
    d.start()
    wait_for(in_hand.is_set)
    stopper = threading.Thread(target=d.stop)
    stopper.start()
    wait_for(d.stop_event.is_set)
    assert not d.stopped and book.read_status(LEASE_ROW).state == ONLINE   # still in hand
    finish.set()
    stopper.join(10)
    assert d.stopped
    assert order == ["start rec1", "done rec1", "stopped-between-records"]
    assert book.read_status(LEASE_ROW).state == OFFLINE


def test_prongs_do_not_run_without_the_lease(daemons, lease, book, clock):
    from datetime import timedelta
    book.write_status(StatusRow(name=LEASE_ROW, state=ONLINE, holder="other:2:bbbb",
                                heartbeat=clock.now(), lease_until=clock.now() + timedelta(seconds=60)))
    ran = []
    d = make_daemon(daemons, lease, [ProngSpec("store", lambda sc: ran.append(1), interval=FAST)])
    assert not d.start()
    wait_for(lambda: d.stats["store"].skipped_no_lease >= 3 and d.stats["lease"].runs >= 3)
    assert ran == []
    assert book.read_status(LEASE_ROW).holder == "other:2:bbbb"


def test_lease_job_renews_and_calls_the_heartbeat_hook(daemons, lease, book):
    beats = []
    d = make_daemon(daemons, lease, [noop_prong("shopify-purchases")], heartbeat=lambda: beats.append(1))
    d.start()
    wait_for(lambda: len(beats) >= 3)
    assert lease.last_outcome.reason == "renewed"
    assert book.count("write_status") >= 3


def test_no_op_prongs_run_nothing_and_record_nothing(daemons, lease, book):
    d = make_daemon(daemons, lease, [noop_prong("shopify-redemptions", FAST)], book=book)
    d.start()
    wait_for(lambda: d.stats["lease"].runs >= 3)
    assert d.stats["shopify-redemptions"].runs == 0
    assert book.read_status("cursor:shopify-redemptions") is None


def test_each_run_records_its_last_run_and_keeps_the_cursor(daemons, lease, book, clock):
    book.write_status(StatusRow(name="cursor:store", cursor="abc"))
    d = make_daemon(daemons, lease, [ProngSpec("store", lambda sc: "3 records", interval=FAST)], book=book)
    d.start()
    wait_for(lambda: d.stats["store"].runs >= 2)
    d.stop()
    row = book.read_status("cursor:store")
    assert row.cursor == "abc" and row.last_run == clock.now() and row.details == "ok: 3 records"


def test_jobs_run_on_their_own_named_threads(daemons, lease):
    names = {}

    def record(name):
        def run(should_continue):
            names[name] = threading.current_thread().name
        return run

    d = make_daemon(daemons, lease, [ProngSpec("store", record("store"), interval=FAST),
                                     ProngSpec("shopify-purchases", record("shopify-purchases"), interval=FAST)])
    d.start()
    wait_for(lambda: len(names) == 2)
    assert names["store"].startswith("prong-store")
    assert names["shopify-purchases"].startswith("prong-shopify-purchases")


def test_sigterm_stops_run_forever_cleanly(lease, book):
    ran = threading.Event()
    d = Daemon(lease, [ProngSpec("store", lambda sc: ran.set(), interval=FAST)], renew_interval=FAST)
    old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

    def send():
        ran.wait(10)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=send, daemon=True).start()
    try:
        assert d.run_forever() == 0
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    assert d.stopped
    assert book.read_status(LEASE_ROW).state == OFFLINE


def test_run_forever_refuses_a_held_lease_when_told_not_to_wait(lease, book, clock):
    from datetime import timedelta
    book.write_status(StatusRow(name=LEASE_ROW, state=ONLINE, holder="other:2:bbbb",
                                heartbeat=clock.now(), lease_until=clock.now() + timedelta(seconds=60)))
    d = Daemon(lease, [], renew_interval=FAST)
    assert d.run_forever(wait_for_lease=False, install_signals=False) == 3


def test_notifier_sends_datagrams(tmp_path):
    path = str(tmp_path / "notify.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    try:
        n = Notifier(path)
        assert n.ready() and n.watchdog() and n.stopping()
        got = [server.recv(100) for _ in range(3)]
        assert got == [b"READY=1", b"WATCHDOG=1", b"STOPPING=1"]
    finally:
        server.close()
    assert Notifier("").ready() is False


SECOND_SIGNAL_SCRIPT = r"""
import sys, threading
from giftsync.adapters.fakes import FakeCardBook, FakeClock
from giftsync.runtime.lease import Lease
from giftsync.runtime.scheduler import Daemon, ProngSpec
from giftsync.runtime import logs

logs.setup(fmt="text", level="INFO", stream=sys.stderr)
clock = FakeClock()
book = FakeCardBook(clock)
never = threading.Event()

def stuck(should_continue):
    print("in-hand", flush=True)
    never.wait()          # a record that never finishes

lease = Lease(book, clock, holder="t:1:1", settle=0)
d = Daemon(lease, [ProngSpec("store", stuck, interval=0.02)], renew_interval=0.02)
sys.exit(d.run_forever())
"""


def test_a_second_signal_exits_at_once(tmp_path):
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[3]
    env = dict(os.environ, PYTHONPATH=str(root))
    proc = subprocess.Popen([sys.executable, "-c", SECOND_SIGNAL_SCRIPT], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=str(root))
    try:
        assert proc.stdout.readline().strip() == "in-hand"
        proc.send_signal(signal.SIGTERM)          # first: clean stop, waits for the record in hand
        for line in proc.stderr:                  # wait until the first signal was handled
            if "signal received" in line:
                break
        assert proc.poll() is None                # still waiting for the record in hand
        proc.send_signal(signal.SIGTERM)          # second: out at once
        assert proc.wait(20) == 128 + signal.SIGTERM
        assert "second SIGTERM" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_status_last_run_of_an_idle_prong_at_most_once_a_minute_but_every_working_cycle(lease, book, clock):
    from dataclasses import dataclass as _dc

    @_dc
    class Report:
        records: int = 0
        errors: int = 0
    results = iter([Report(), Report(), Report(records=2), Report(), Report(), Report(errors=1)])
    d = Daemon(lease, [ProngSpec("store", lambda sc: next(results), interval=5)], book=book, renew_interval=15)
    assert lease.tick()
    writes = lambda: sum(1 for name, args in book.calls if name == "write_status" and "cursor:store" in str(args))
    d.run_prong(d.jobs[0])                   # first idle run: recorded
    assert writes() == 1
    clock.advance(5)
    d.run_prong(d.jobs[0])                   # idle, 5 s later: not recorded
    assert writes() == 1
    clock.advance(5)
    d.run_prong(d.jobs[0])                   # did work: recorded
    assert writes() == 2
    clock.advance(5)
    d.run_prong(d.jobs[0])                   # idle again: not recorded
    assert writes() == 2
    clock.advance(60)
    assert lease.tick()
    d.run_prong(d.jobs[0])                   # idle, a minute on: recorded
    assert writes() == 3
    d.run_prong(d.jobs[0])                   # failed step: recorded at once
    assert writes() == 4


def test_lease_renew_costs_one_read_and_one_write(lease, book, clock):
    assert lease.tick()
    before = len(book.calls)
    clock.advance(15)
    assert lease.tick()
    names = [name for name, _ in book.calls[before:]]
    assert names.count("read_status") == 1 and names.count("write_status") == 1 and len(names) == 2


def test_status_last_run_reads_its_row_once_then_only_writes(lease, book, clock):
    from dataclasses import dataclass as _dc

    @_dc
    class Report:
        records: int = 1
    book.write_status(StatusRow(name="cursor:store", cursor="abc"))
    d = Daemon(lease, [ProngSpec("store", lambda sc: Report(), interval=5)], book=book, renew_interval=15)
    assert lease.tick()
    before = len(book.calls)
    for _ in range(3):
        d.run_prong(d.jobs[0])               # did work: recorded each time
        clock.advance(5)
    calls = [(name, args) for name, args in book.calls[before:] if "cursor:store" in str(args)]
    assert [name for name, _ in calls] == ["read_status", "write_status", "write_status", "write_status"]
    row = book.read_status("cursor:store")
    assert row.cursor == "abc" and row.details == "ok records=1"


def test_a_companion_job_can_start_half_an_interval_after_its_prong(lease, book):
    """bootstrap staggers the redemption job from the store job (first_delay): the store job's
    card-request list then falls between two redemption polls."""
    spec = ProngSpec("store", lambda sc: None, interval=5,
                     companions=[ProngSpec("store-redemptions", lambda sc: None, interval=5, first_delay=2.5)])
    scheduler = Daemon(lease, [spec], book=book).build_scheduler()
    jobs = {job.id: job for job in scheduler.get_jobs()}
    gap = (jobs["store-redemptions"].next_run_time - jobs["store"].next_run_time).total_seconds()
    assert 2.4 < gap < 2.6


def test_bootstrap_staggers_the_redemption_job():
    from giftsync.bootstrap import build_fakes
    app = build_fakes()
    [job] = app.prong("store").companions
    assert job.name == "store-redemptions" and job.first_delay == job.interval / 2 > 0
