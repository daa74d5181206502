from __future__ import annotations

import pytest

from giftsync.domain.throttle import SlidingWindow


def test_limit_within_window_and_expiry():
    w = SlidingWindow(3, 60)
    assert [w.allow("a", t) for t in (0, 1, 2, 3)] == [True, True, True, False]
    assert w.allow("b", 3) is True                  # keys are independent
    assert w.allow("a", 60.5) is False             # 0 is out (window is (t-60, t]); 1, 2, 3 are in
    assert w.allow("a", 62.5) is True              # left in the window: 3, 60.5 (refused, still counted), 62.5


def test_refused_attempts_still_count():
    w = SlidingWindow(1, 10)
    assert w.allow("k", 0) and not w.allow("k", 5)
    assert not w.allow("k", 11)                     # the refused hit at 5 is still in the window
    assert w.allow("k", 30)


def test_seed_restores_state():
    w = SlidingWindow(2, 100)
    w.seed("k", [50.0, 10.0])
    assert not w.allow("k", 60)
    assert w.allow("z", 60)


def test_bad_parameters():
    with pytest.raises(ValueError):
        SlidingWindow(0, 10)
    with pytest.raises(ValueError):
        SlidingWindow(1, 0)
