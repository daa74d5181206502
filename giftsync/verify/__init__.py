"""Evidence that money never moves twice (issue 6).

- ``invariants``: read everything giftsync wrote or said (the twins' state, the daemon's logs)
  and check the rules of docs/adr/0001-0003 — one module shared by the crash matrix, the
  fault soak, the end-to-end tests and a future ``giftsync audit``.
- ``crashtest``: the crash matrix over every point of ``giftsync.crashpoints.POINTS``, the
  fault soak, the two-daemon lease test and the balance-check guessing run
  (``scripts/crashtest``).
"""
from .invariants import Snapshot, Violation, check, collect

__all__ = ["Snapshot", "Violation", "check", "collect"]
