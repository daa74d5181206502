"""``giftsync once`` keeps renewing the lease while its cycle runs: a full reconcile pass longer
than the lease must not be cut short (found by the issue 6 soak: the pass stopped after the
lease's margin and still reported success)."""
from __future__ import annotations

import io
import time

from giftsync import cli
from giftsync.bootstrap import build_fakes
from giftsync.runtime import logs
from giftsync.runtime.clock import SystemClock

from fake_settings import fake_settings


def test_once_renews_the_lease_during_a_cycle_longer_than_the_lease():
    settings = fake_settings(GIFTSYNC_LEASE_SECONDS="1", GIFTSYNC_LEASE_RENEW_SECONDS="0.1",
                             GIFTSYNC_LEASE_MARGIN_SECONDS="0.3")
    app = build_fakes(settings, clock=SystemClock())
    seen = {"steps": 0, "told_to_stop": False}

    def long_pass(should_continue):
        deadline = time.monotonic() + 2.5 * settings.lease_seconds
        while time.monotonic() < deadline:
            if not should_continue():
                seen["told_to_stop"] = True
                return None
            seen["steps"] += 1
            time.sleep(0.02)
        return None

    app.prong("reconcile").run = long_pass
    try:
        code = cli.main(["once", "--prong", "reconcile"], app_factory=lambda s: app, settings=settings,
                        log_stream=io.StringIO())
    finally:
        logs.clear_sensitive()
    assert code == 0
    assert seen["steps"] > 0 and not seen["told_to_stop"]
    assert not app.lease.held                    # released at the end
