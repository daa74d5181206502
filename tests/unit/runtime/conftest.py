"""Fixtures of the runtime tests: a fake clock and a fake card book (the Status table) on it."""
from __future__ import annotations

import pytest

from giftsync.adapters.fakes import FakeCardBook, FakeClock


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def book(clock):
    return FakeCardBook(clock)
