"""Rate budgets: token bucket, priority order, pauses, following the service's figures."""
from __future__ import annotations

import threading

import pytest

from giftsync.runtime.budget import BACKGROUND, NORMAL, ONLINE, URGENT, RateBudget, priority


class Ticks:
    """A clock the test moves by hand."""
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_bucket_spends_and_refills():
    clock = Ticks()
    b = RateBudget("t", rate=2, capacity=4, clock=clock)
    assert all(b.acquire(1, timeout=0) for _ in range(4))
    assert b.acquire(1, timeout=0) is False
    clock.t = 1.0
    assert b.acquire(2, timeout=0) and not b.acquire(1, timeout=0)


def test_observe_follows_the_service_both_ways():
    clock = Ticks()
    b = RateBudget("shopify", rate=50, capacity=1000, clock=clock)
    b.acquire(900, timeout=0)
    b.observe(available=1990, capacity=2000, rate=100)     # Shopify says the bucket is nearly full
    assert b.capacity == 2000 and b.rate == 100
    assert b.acquire(1900, timeout=0)
    b.observe(available=10)                                 # someone else spent from the same bucket
    assert not b.acquire(50, timeout=0)


def test_pause_holds_everyone():
    clock = Ticks()
    b = RateBudget("t", rate=10, capacity=10, clock=clock)
    b.pause(5)
    assert not b.acquire(1, timeout=0)
    clock.t = 5.0
    assert b.acquire(1, timeout=0)


@pytest.mark.parametrize("high, low", [(URGENT, BACKGROUND), (NORMAL, ONLINE), (ONLINE, BACKGROUND)])
def test_higher_priority_waiter_goes_first(high, low):
    """A store redemption before all; a shop's card request before online orders; online orders
    before background work."""
    b = RateBudget("t", rate=20, capacity=1)
    b.acquire(1)
    order: list[str] = []
    ready = threading.Barrier(3)

    def take(level: int, name: str) -> None:
        with priority(level):
            ready.wait()
            if name == "high":         # let the low thread start waiting first
                while b._waiting.get(low, 0) == 0:
                    pass
            b.acquire(1)
            order.append(name)

    threads = [threading.Thread(target=take, args=(low, "low")),
               threading.Thread(target=take, args=(high, "high"))]
    for t in threads:
        t.start()
    ready.wait()
    for t in threads:
        t.join(timeout=10)
    assert order == ["high", "low"]


def test_observe_leaves_out_what_requests_in_flight_on_other_threads_were_given():
    """A figure the service reports may predate the charge of our other requests still in
    flight: taking it as room would overspend the bucket (THROTTLED answers)."""
    clock = Ticks()
    b = RateBudget("shopify", rate=100, capacity=2000, clock=clock)
    others = [threading.Thread(target=lambda: b.acquire(600, timeout=0)) for _ in range(3)]
    for t in others:
        t.start()
    for t in others:
        t.join()                                  # three requests of 600 points in flight
    assert b.acquire(200, timeout=0)              # this thread's own request (answered below)
    b.observe(available=2000)                     # the answer came back before the others were charged
    assert not b.acquire(300, timeout=0)          # 2000 − 3 × 600 in flight = 200 points of room
    assert b.acquire(200, timeout=0)


def test_an_urgent_hold_keeps_lower_priorities_off_a_held_budget_between_the_polls_requests():
    """A redemption poll in progress holds the Airtable budget: a card request may not take the
    token while the poll's thread is at Shopify (its next request would wait for a new one)."""
    from giftsync.runtime.budget import LEASE, urgent_hold
    clock = Ticks()
    airtable = RateBudget("airtable", rate=4, capacity=1, clock=clock, hold_for_urgent=True)
    shopify = RateBudget("shopify", rate=4, capacity=1, clock=clock)
    with urgent_hold():
        assert not airtable.acquire(1, timeout=0)            # NORMAL waits, a token there or not
        with priority(LEASE):
            assert not airtable.acquire(1, timeout=0)
        assert shopify.acquire(1, timeout=0)                 # budgets without the flag are not held
        with priority(URGENT):
            assert airtable.acquire(1, timeout=0)
    clock.t = 1.0
    assert airtable.acquire(1, timeout=0)                    # the poll finished


def test_an_urgent_hold_lapses_after_its_maximum():
    from giftsync.runtime.budget import HOLD_MAX_SECONDS, urgent_hold
    airtable = RateBudget("airtable", rate=4, capacity=1, hold_for_urgent=True)
    with urgent_hold(clock=lambda: -HOLD_MAX_SECONDS - 1e9):   # started long ago (a hung call)
        assert airtable.acquire(1, timeout=0)


def test_a_held_waiter_sleeps_until_the_hold_ends_instead_of_polling():
    """Lower priorities held back by a redemption poll are woken when it ends (not every few
    milliseconds while it lasts)."""
    import time as _time
    from giftsync.runtime.budget import urgent_hold
    airtable = RateBudget("airtable", rate=4, capacity=1, hold_for_urgent=True)
    wakeups = []
    original = airtable._cond.wait

    def counting_wait(timeout=None):
        wakeups.append(timeout)
        return original(timeout)
    airtable._cond.wait = counting_wait
    got = []
    with urgent_hold():
        waiter = threading.Thread(target=lambda: got.append(airtable.acquire(1, timeout=5)))
        waiter.start()
        _time.sleep(0.3)
        assert not got                                     # still held
    waiter.join(2)
    assert got == [True]
    assert len(wakeups) <= 3, wakeups                      # one sleep for the hold, not one per 5 ms
