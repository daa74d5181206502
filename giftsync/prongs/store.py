"""The store prong: one cycle = redemptions, card requests (serving new redemptions between
cards), balance checks, then the emails of finished records that did not go out.

The runtime builds it once and calls ``run_once()`` from its interval job::

    prong = StoreProng(book, ledger, messenger, clock, CodeHasher(secret), StoreOptions(...),
                       stop=lambda: stopping.is_set() or not lease.valid())
    report = prong.run_once()

``stop`` is checked between records (and between the cards of a bulk request): the record in
hand is finished, nothing new starts.

Redemption cadence: the daemon runs ``poll_redemptions()`` as a job of its own every
``redemption_poll_seconds`` (5 s by default) on its own thread (bootstrap: the store prong's
companion job ``store-redemptions``), so redemptions are served at that pace whether the rest
of the prong is idle (15 s cycle) or busy with a bulk card request, and the cycle itself does
not poll them (its resend step uses the unnotified records the last poll listed); without the job (``giftsync once``, the unit tests) it also polls
between the cards of a bulk request when the last poll is older than the interval; one poll runs at
a time (``Redemptions.run`` holds a lock and a second caller returns at once), so two
threads never claim the same record. A failing poll (an outside service down) is logged and
the cycle goes on with the next step; one bad record never stops the job.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from ..domain.codes import CodeHasher
from ..ports import CardBook, Clock, GiftCardLedger, Messenger
from .balance_checks import BalanceChecks
from .card_requests import CardRequests
from .context import StoreContext
from .options import StoreOptions
from .redemptions import Redemptions

log = logging.getLogger("giftsync.store")


@dataclass
class CycleReport:
    redemptions: int = 0
    card_requests: int = 0
    balance_checks: int = 0
    resent: int = 0
    interleaved_polls: int = 0
    errors: int = 0


@dataclass
class PollReport:
    redemptions: int = 0
    errors: int = 0


class StoreProng:
    name = "store"

    def __init__(self, book: CardBook, ledger: GiftCardLedger, messenger: Messenger, clock: Clock,
                 hasher: CodeHasher, options: StoreOptions | None = None, *,
                 stop: Callable[[], bool] = lambda: False) -> None:
        self.ctx = StoreContext(book=book, ledger=ledger, messenger=messenger, clock=clock, hasher=hasher,
                                options=options or StoreOptions())
        self.stop = stop
        self.redemptions = Redemptions(self.ctx)
        self.card_requests = CardRequests(self.ctx)
        self.balance_checks = BalanceChecks(self.ctx)
        self._report = CycleReport()
        # Set by bootstrap when the daemon runs poll_redemptions() as a job of its own: the cards
        # of a bulk request then never stop for a redemption poll (that thread serves them).
        self.redemptions_have_own_job = False
        # Set by bootstrap when the store job runs every redemption poll interval (5 s) so new card
        # requests are picked up within that: the other steps (redemptions, balance checks,
        # resends) still run once every ``full_cycle_seconds`` (the store interval, 15 s).
        self.full_cycle_seconds: float | None = None
        self._last_full: float | None = None
        self._last_job_poll: float | None = None     # the redemption job's last poll (monotonic)

    def run_once(self) -> CycleReport:
        report = self._report = CycleReport()
        self.ctx.notified_this_cycle.clear()
        steps: list[tuple[str, Callable[[], int]]] = [
            ("redemptions", lambda: self.redemptions.run(self.stop)),
            ("card_requests", lambda: self.card_requests.run(self.between_cards, self.stop)),
            ("balance_checks", lambda: self.balance_checks.run(self.stop)),
            ("resent", self._resend),
        ]
        now = self.ctx.clock.monotonic()
        last_poll = self._last_job_poll
        if self.redemptions_have_own_job and last_poll is not None \
                and now - last_poll < self.ctx.options.redemption_poll_seconds + 1.0:
            # The redemption job polls on its own grid; a poll here as well would only split its
            # batches (one more list request, fewer records per poll). Without a recent poll of
            # the job (``giftsync once``, the job not running) the cycle polls itself.
            steps = [s for s in steps if s[0] != "redemptions"]
        if self.full_cycle_seconds and self._last_full is not None \
                and now - self._last_full < self.full_cycle_seconds - 0.5:
            steps = [s for s in steps if s[0] == "card_requests"]    # a short cycle: new requests only
        else:
            self._last_full = now
        for name, step in steps:
            if self.stop():
                break
            try:
                count = step()
                setattr(report, name, getattr(report, name) + count)
            except Exception as exc:  # noqa: BLE001 — a poll failing (service down) ends this step only
                report.errors += 1
                log.warning("store step failed step=%s error=%s reason=%r", name, type(exc).__name__,
                            getattr(exc, "reason", "")[:200])
        log.info("store cycle redemptions=%d card_requests=%d balance_checks=%d resent=%d interleaved=%d errors=%d",
                 report.redemptions, report.card_requests, report.balance_checks, report.resent,
                 report.interleaved_polls, report.errors)
        return report

    def poll_redemptions(self, stop: Callable[[], bool] | None = None) -> PollReport:
        """One redemption poll (the daemon's ``store-redemptions`` job)."""
        report = PollReport()
        self._last_job_poll = self.ctx.clock.monotonic()
        try:
            report.redemptions = self.redemptions.run(stop or self.stop)
        except Exception as exc:  # noqa: BLE001 — a failing poll (service down): the next one retries
            report.errors += 1
            log.warning("redemption poll failed error=%s reason=%r", type(exc).__name__,
                        str(getattr(exc, "reason", ""))[:200])
        return report

    def between_cards(self) -> None:
        """Called between two card creations: serve new redemptions first when it is time
        (unless the redemption job of the daemon serves them on its own thread)."""
        if self.redemptions_have_own_job:
            return
        last = self.redemptions.last_poll
        if last is not None and self.ctx.clock.monotonic() - last < self.ctx.options.redemption_poll_seconds:
            return
        try:
            self._report.interleaved_polls += 1
            self._report.redemptions += self.redemptions.run(self.stop)
        except Exception as exc:  # noqa: BLE001 — never break the request in hand
            self._report.errors += 1
            log.warning("interleaved redemption poll failed error=%s", type(exc).__name__)

    def _resend(self) -> int:
        """Finished records whose emails did not go out, from the lists the polls brought (the
        pending list of each table carries them: no request of its own)."""
        return (self.redemptions.resend(self.stop) + self.card_requests.resend(self.stop)
                + self.balance_checks.resend(self.stop))
