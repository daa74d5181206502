"""Balance checks from customers: answer *that* address with the masked code and balance, or
one uniform "no active card matches" answer (unknown, disabled, expired, mistyped and
throttled look the same to the customer). Throttled per email address and per code.

The per-code throttle key is the code's last 4 characters: the base keeps only the masked
code once a check is processed, so this is the key that can be rebuilt from Balance Checks
after a restart (``CardBook.recent_balance_checks``). It is coarser than the code (two codes
sharing their last 4 share a budget), which only ever throttles more, never less.

Guessing from many addresses (each under its own limit, random codes) is caught by a third
window: checks that matched no card, from all addresses together (``check_miss_limit`` per
window). Past it every check gets the same uniform answer without a lookup, and the admin one
alert per window.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone

from ..crashpoints import reach
from ..domain.cards import CardStatus, MirrorCard, ShopifyCard
from ..domain.codes import MASK_PREFIX, is_valid_code, last4, mask, normalise_code
from ..domain.emails import EmailEvent, Metric, valid_email
from ..domain.forms import BalanceCheckForm
from ..domain.ledger import Activity, Channel
from ..domain.money import Money
from ..domain.outcomes import CheckOutcome, FormStatus
from ..domain.throttle import SlidingWindow
from ..ports import FormTable
from ..runtime.budget import BACKGROUND, priority
from .context import INVALID_CODE_NOTE, StoreContext, resend_each, safe_call, split_finished
from .mirror import mirror_shopify_card

log = logging.getLogger("giftsync.balance_checks")

TABLE = FormTable.BALANCE_CHECKS
MISSES = "*"            # the key of the all-addresses window of unmatched checks
NO_MATCH_TEXT = ("We could not find an active gift card with that code. Please check the code and try "
                 "again later, or contact the shop.")
ANSWER_TEXT = "Here is the balance of your gift card."


def no_match_properties() -> dict:
    """The one answer for unknown, disabled, expired, mistyped and throttled checks."""
    return {"Outcome": CheckOutcome.NO_MATCH.value, "Card": "", "Balance": "", "Currency": "",
            "Expires On": "", "Message": NO_MATCH_TEXT}


def answer_properties(card_masked: str, balance: Money, expires_on) -> dict:
    return {"Outcome": CheckOutcome.ANSWERED.value, "Card": card_masked, "Balance": balance.plain(),
            "Currency": balance.currency, "Expires On": expires_on.isoformat() if expires_on else "",
            "Message": ANSWER_TEXT}


class BalanceChecks:
    def __init__(self, ctx: StoreContext) -> None:
        self._unnotified: list[BalanceCheckForm] | None = None    # from the last poll, for resend()
        self.ctx = ctx
        self.by_email = SlidingWindow(ctx.options.check_limit, ctx.options.check_window_seconds)
        self.by_code = SlidingWindow(ctx.options.check_limit, ctx.options.check_window_seconds)
        # unmatched checks from every address together: guessing from many addresses is throttled too
        self.misses = SlidingWindow(ctx.options.check_miss_limit, ctx.options.check_window_seconds)
        self.seeded = False

    # -- throttle -----------------------------------------------------------------------------
    def seed(self) -> None:
        """Load the checks of the last window so a restart does not reset the throttle."""
        now = self.ctx.clock.now()
        since = now.timestamp() - self.ctx.options.check_window_seconds
        emails: dict[str, list[float]] = {}
        codes: dict[str, list[float]] = {}
        misses: list[float] = []
        for form in self.ctx.book.recent_balance_checks(datetime.fromtimestamp(since, tz=timezone.utc)):
            when = form.processed_at or form.created
            if when is None:
                continue
            t = when.timestamp()
            email = str(form.email_raw or "").strip().lower()
            if email:
                emails.setdefault(email, []).append(t)
            key = self._code_key_from_field(form.code_raw)
            if key:
                codes.setdefault(key, []).append(t)
            if form.outcome == CheckOutcome.NO_MATCH.value:
                misses.append(t)
        for key, times in emails.items():
            self.by_email.seed(key, times)
        for key, times in codes.items():
            self.by_code.seed(key, times)
        self.misses.seed(MISSES, misses)
        self.seeded = True
        log.info("balance-check throttle seeded emails=%d codes=%d", len(emails), len(codes))

    @staticmethod
    def _code_key_from_field(value: object) -> str:
        text = str(value or "")
        if text.startswith(MASK_PREFIX) and len(text) == len(MASK_PREFIX) + 4:
            return "last4:" + text[-4:].upper()
        code = normalise_code(value)
        return "last4:" + last4(code) if is_valid_code(code) else ""

    # -- the poll -----------------------------------------------------------------------------
    def run(self, stop=lambda: False) -> int:
        done = 0
        with priority(BACKGROUND):
            if not self.seeded:
                self.seed()
            self._unnotified = None
            forms, self._unnotified = split_finished(
                self.ctx.book.pending_balance_checks(self.ctx.options.batch_size, with_unnotified=True))
            for form in forms:
                if stop():
                    break
                code = normalise_code(form.code_raw)
                if safe_call(log, "balance check", form.record_id, lambda f=form: self.process(f), [code]):
                    done += 1
        return done

    # -- one check ----------------------------------------------------------------------------
    def process(self, form: BalanceCheckForm) -> None:
        rid = form.record_id
        now = self.ctx.clock.now()
        t = now.timestamp()
        email = str(form.email_raw or "").strip()
        code = normalise_code(form.code_raw)
        valid = is_valid_code(code)
        code_field = mask(last4(code)) if valid else (INVALID_CODE_NOTE if str(form.code_raw or "").strip() else "")

        if not valid_email(email):
            self._finish(form, CheckOutcome.INVALID_EMAIL, code_field, None, None, notified=True,
                         details="email missing or invalid: no answer sent", status=FormStatus.REJECTED)
            return

        email_ok = self.by_email.allow(email.lower(), t)
        code_ok = self.by_code.allow("last4:" + last4(code), t) if valid else True
        misses_ok = self.misses.count(MISSES, t) < self.misses.limit
        card: MirrorCard | None = None
        shop: ShopifyCard | None = None
        if not (email_ok and code_ok and misses_ok):
            outcome, details = CheckOutcome.THROTTLED, "throttled by " + (
                "email" if not email_ok else "code" if not code_ok else "unmatched checks from all addresses")
            if email_ok and code_ok:
                self._guessing_alert(t)
        elif not valid:
            outcome, details = CheckOutcome.NO_MATCH, "code format incorrect"
        else:
            card, shop, details = self._lookup(code, rid)
            outcome = CheckOutcome.ANSWERED if shop is not None else CheckOutcome.NO_MATCH
            if outcome is CheckOutcome.NO_MATCH:
                self.misses.allow(MISSES, t)

        if outcome is CheckOutcome.ANSWERED and card is not None and shop is not None:
            props = answer_properties(card.masked, shop.balance, shop.expires_on)
        else:
            props = no_match_properties()
        event = EmailEvent(metric=Metric.BALANCE_CHECK_ANSWERED, email=email, unique_id=f"check:{rid}:answer",
                           properties=props)
        reach("check.email")
        self.ctx.notified_this_cycle.add(rid)
        sent = self.ctx.notifier.send(event, source=f"{TABLE.value}/{rid}",
                                      card_record_id=card.record_id if card else None,
                                      card_masked=card.masked if card else None)
        self._finish(form, outcome, code_field, card, shop.balance if shop is not None and card else None,
                     notified=sent, details=details)

    def _guessing_alert(self, t: float) -> None:
        window = self.ctx.options.check_window_seconds
        self.ctx.notifier.alert(
            f"balance-check-misses:{int(t // window)}", "Balance checks throttled for everyone",
            f"more than {self.misses.limit} balance checks matched no card within {window:g} s (from all "
            "addresses together): someone may be guessing codes. Every check gets the uniform answer until "
            "the window passes.")

    def _lookup(self, code: str, rid: str) -> tuple[MirrorCard | None, ShopifyCard | None, str]:
        """(card, Shopify's card) when an active card matches, else (card?, None, why)."""
        today = self.ctx.clock.now().date()
        card = self.ctx.book.card_by_hash(self.ctx.hasher.hash(code))
        if card is None:
            shop = self.ctx.ledger.find_by_code(code)
            if shop is None:
                return None, None, "no card with this code"
            if not shop.usable_on(today):
                return None, None, "card disabled or expired (not mirrored)"
            card = mirror_shopify_card(self.ctx, shop, code, point="check.mirror", source=f"{TABLE.value}/{rid}")
            return card, shop, "Shopify card mirrored and answered"
        if card.status is CardStatus.DISABLED:
            return card, None, "card disabled"
        shop = self.ctx.ledger.get_card(card.shopify_id)
        if shop is None:
            return card, None, "card missing in Shopify"
        if not shop.usable_on(today):
            return card, None, "card disabled or expired"
        if shop.balance != card.balance:
            self._correct(card, shop, rid)
        return card, shop, "answered"

    def _correct(self, card: MirrorCard, shop: ShopifyCard, rid: str) -> None:
        """The mirror differs from Shopify (a change giftsync has not recorded yet): the answer
        comes from Shopify; the ledger is settled by the reconciler's rule, which leaves a
        movement an online order may still claim to that order (never counted twice)."""
        from .reconcile import ReconcileReport, Reconciler
        reach("check.balance")
        Reconciler(self.ctx, claim_seconds=self.ctx.options.order_overlap_seconds).check(
            card, shop, ReconcileReport())

    def _finish(self, form: BalanceCheckForm, outcome: CheckOutcome, code_field: str, card: MirrorCard | None,
                balance: Money | None, *, notified: bool, details: str,
                status: FormStatus = FormStatus.DONE) -> None:
        rid = form.record_id
        now = self.ctx.clock.now()
        self.ctx.write_receipts("check.receipt", [self.ctx.receipt(
            f"check:{rid}", Activity.CHECK, card_record_id=card.record_id if card else None,
            card_masked=card.masked if card else (code_field or None), balance_after=balance,
            source=f"{TABLE.value}/{rid}", outcome=outcome.value, correlation_id=rid,
            channel=Channel.ONLINE, details=details)])
        reach("check.finish")
        self.ctx.book.update_forms(TABLE, {rid: {"Status": status.value, "Outcome": outcome.value,
                                                 "Code": code_field, "Processed At": now, "Notified": notified}})
        log.info("balance check done record=%s outcome=%r card=%s", rid, outcome.value, code_field or "-")

    # -- resend ---------------------------------------------------------------------------------
    def resend(self, stop=lambda: False) -> int:
        """Unnotified checks: the uniform answer can be rebuilt and is sent again. An answer with a
        balance cannot (only the masked code is left): it is marked notified with an alert already
        raised when its email failed; the customer may simply ask again."""
        forms, self._unnotified = self._unnotified, None
        if forms is None:
            forms = self.ctx.book.unnotified(TABLE, self.ctx.options.batch_size)

        def again(f: BalanceCheckForm) -> bool:
            if f.outcome in (CheckOutcome.NO_MATCH.value, CheckOutcome.THROTTLED.value) and valid_email(f.email_raw):
                event = EmailEvent(metric=Metric.BALANCE_CHECK_ANSWERED, email=str(f.email_raw).strip(),
                                   unique_id=f"check:{f.record_id}:answer", properties=no_match_properties())
                reach("check.email")
                if not self.ctx.notifier.send(event, source=f"{TABLE.value}/{f.record_id}"):
                    return False
                sent = True
            else:
                sent = False
            reach("check.finish")
            self.ctx.book.update_forms(TABLE, {f.record_id: {"Notified": True}})
            return sent
        return resend_each(self.ctx, log, "balance check resend", forms, again, stop)
