"""Suite-wide: plain helper modules in tests/helpers/ are importable by name (``import staff_day``;
the suite runs with --import-mode=importlib, so tests/ itself is not on sys.path), and fixtures
more than one test module uses."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from giftsync.runtime import logs

HELPERS = str(Path(__file__).with_name("helpers"))
if HELPERS not in sys.path:
    sys.path.insert(0, HELPERS)


@pytest.fixture
def clean_giftsync_logging():
    """After the test: forget the registered secrets and drop giftsync's root log handlers."""
    yield
    logs.clear_sensitive()
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_giftsync_handler", False):
            root.removeHandler(h)
