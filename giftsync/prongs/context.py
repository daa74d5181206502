"""What every store-prong module needs: the ports, the hasher, the options, the notifier,
plus the small helpers they share (receipts, attempt ids, safe per-record processing)."""
from __future__ import annotations

import logging
import os
import secrets
import traceback
from dataclasses import dataclass, field
from typing import Callable, Iterable, TypeVar

from ..crashpoints import reach
from ..domain.codes import CodeHasher, mask_text_codes
from ..domain.ledger import Activity, Channel, Receipt
from ..ports import CardBook, Clock, GiftCardLedger, Messenger
from .card_cache import CardCache
from .notify import Notifier
from .options import StoreOptions

INVALID_CODE_NOTE = "(invalid code removed)"
FINISHED = ("Done", "Rejected")          # FormStatus values of a finished form record
F = TypeVar("F")


@dataclass
class StoreContext:
    book: CardBook
    ledger: GiftCardLedger
    messenger: Messenger
    clock: Clock
    hasher: CodeHasher
    options: StoreOptions = field(default_factory=StoreOptions)
    notifier: Notifier = field(init=False)
    # Records whose emails were attempted in this cycle: the resend pass leaves them to the next.
    notified_this_cycle: set[str] = field(default_factory=set)
    # The cards met so far, by code hash (docs/adr/0006-card-identity-cache.md); by default on
    # this context's clock.
    cards: CardCache = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.notifier = Notifier(self.messenger, self.book, self.clock, self.options)
        if self.cards is None:
            self.cards = CardCache(monotonic=self.clock.monotonic)

    def receipt(self, receipt_id: str, activity: Activity, *, channel: Channel = Channel.STORE, **kw) -> Receipt:
        return Receipt(receipt_id=receipt_id, time=self.clock.now(), activity=activity, channel=channel, **kw)

    def write_receipts(self, point: str, receipts: Iterable[Receipt]) -> None:
        rows = list(receipts)
        if rows:
            reach(point)
            self.book.append_receipts(rows)


def new_attempt_id() -> str:
    """A non-secret id of one processing attempt (for Attempt fields and correlation)."""
    return "att-" + secrets.token_hex(6)


def safe_call(log: logging.Logger, what: str, record_id: str, fn: Callable[[], object],
              codes: Iterable[str] | Callable[[], Iterable[str]] = ()) -> bool:
    """Run one record's work; an unexpected error is logged (codes masked, no traceback text
    that could carry them) and the record is left for the next cycle. Never raises."""
    try:
        fn()
        return True
    except Exception as exc:  # noqa: BLE001 — one bad record never stops the job
        where = ""
        tb = traceback.extract_tb(exc.__traceback__)
        if tb:
            frame = tb[-1]
            where = f"{os.path.basename(frame.filename)}:{frame.lineno}"
        known = codes() if callable(codes) else codes
        message = mask_text_codes(str(exc), [c for c in known if c])[:300]
        log.warning("%s failed record=%s error=%s where=%s message=%r; left for the next cycle",
                    what, record_id, type(exc).__name__, where, message)
        return False


def split_finished(forms: Iterable[F]) -> tuple[list[F], list[F]]:
    """A poll's list (``pending_*(..., with_unnotified=True)``) split into the records to
    process and the finished ones whose email did not go out."""
    pending, finished = [], []
    for form in forms:
        (finished if getattr(form, "status", "") in FINISHED else pending).append(form)
    return pending, finished


def resend_each(ctx: StoreContext, log: logging.Logger, what: str, forms: Iterable[F],
                again: Callable[[F], bool], stop: Callable[[], bool] = lambda: False) -> int:
    """The resend loop of every form table: for each finished record whose Notified box is
    unticked, ``again(form)`` rebuilds its email(s) from the record alone and sends them (True
    when they went out and Notified was ticked). Records whose emails were attempted in this
    cycle are left to the next; one record's failure is logged and never stops the loop; no
    new send starts once ``stop()``. Returns how many were sent."""
    sent = 0
    for form in forms:
        if stop():
            break
        rid = form.record_id  # type: ignore[attr-defined]
        if rid in ctx.notified_this_cycle:
            continue
        result: list[bool] = []
        if safe_call(log, what, rid, lambda f=form: result.append(bool(again(f)))) and result and result[0]:
            sent += 1
    return sent
