"""Store redemptions: one outcome per record, money moved at most once (docs/adr/0001).

claim (Processing, Attempt, Card link, Code masked) → debit with note ``giftsync:<record>`` →
on AmbiguousError read the card's transactions for the note before any resend → REDEEM
receipt (``redeem:<record>``) → card balance from Shopify's figure → Done → store email →
Notified. A record found in Processing is resumed with a read-back first.
"""
from __future__ import annotations

import dataclasses
import logging
from decimal import Decimal

from ..crashpoints import reach
from ..domain.cards import CardStatus, MirrorCard
from ..domain.codes import is_valid_code, last4, mask, normalise_code
from ..domain.emails import EmailEvent, Metric, valid_email
from ..domain.forms import RedemptionForm, Store
from ..domain.ledger import Activity
from ..domain.money import InvalidAmount, Money, parse_amount
from ..domain.outcomes import FormStatus, RedemptionOutcome
from ..errors import AmbiguousError, RetriableError
from ..ports import FormTable, MoveResult
from ..runtime.budget import URGENT, priority
from .context import INVALID_CODE_NOTE, StoreContext, new_attempt_id, safe_call
from .mirror import mirror_shopify_card

log = logging.getLogger("giftsync.redemptions")

TABLE = FormTable.REDEMPTIONS
DEBIT_SENDS = 3          # a debit is sent at most this often per cycle (each after a read-back)
_DISABLED_CODES = {"GIFT_CARD_DEACTIVATED", "GIFT_CARD_EXPIRED"}


class _Rejection(Exception):
    def __init__(self, outcome: RedemptionOutcome, reason: str) -> None:
        super().__init__(outcome.value)
        self.outcome = outcome
        self.reason = reason


def note_for(record_id: str) -> str:
    return f"giftsync:{record_id}"


def amount_text(raw: object) -> str:
    text = "" if raw is None else str(raw)
    return text[:30]


class Redemptions:
    def __init__(self, ctx: StoreContext) -> None:
        self.ctx = ctx
        self.last_poll: float | None = None

    # -- the poll -----------------------------------------------------------------------------
    def run(self, stop=lambda: False) -> int:
        """Process every pending redemption (new and Processing). Returns how many were handled."""
        done = 0
        with priority(URGENT):
            self.last_poll = self.ctx.clock.monotonic()
            forms = self.ctx.book.pending_redemptions(self.ctx.options.batch_size)
            if not forms:
                return 0
            stores = self.ctx.book.stores()
            for form in forms:
                if stop():
                    break
                code = normalise_code(form.code_raw)
                if safe_call(log, "redemption", form.record_id, lambda f=form: self.process(f, stores), [code]):
                    done += 1
        return done

    # -- one record ---------------------------------------------------------------------------
    def process(self, form: RedemptionForm, stores: dict[str, Store]) -> None:
        if form.status == FormStatus.PROCESSING.value and form.card_ids:
            self._resume(form, stores)
            return
        rid = form.record_id
        code = normalise_code(form.code_raw)
        if not is_valid_code(code):
            self._reject(form, RedemptionOutcome.CODE_FORMAT, "The code must be 8 to 20 letters and digits",
                         code_field=INVALID_CODE_NOTE, store=self._any_store(form, stores))
            return
        masked = mask(last4(code))
        store = self._store(form, stores)
        if store is None:
            self._reject(form, RedemptionOutcome.INVALID_STORE, "The store is missing or not active",
                         code_field=masked, store=self._any_store(form, stores))
            return
        try:
            amount = parse_amount(form.amount_raw, self.ctx.options.currency)
        except InvalidAmount as exc:
            self._reject(form, RedemptionOutcome.INVALID_AMOUNT, exc.reason, code_field=masked, store=store)
            return
        card = self.ctx.book.card_by_hash(self.ctx.hasher.hash(code))
        if card is None:
            shop = self.ctx.ledger.find_by_code(code)
            if shop is None:
                self._reject(form, RedemptionOutcome.NOT_FOUND, "No card has this code", code_field=masked, store=store)
                return
            card = mirror_shopify_card(self.ctx, shop, code, point="redeem.mirror",
                                       source=f"{TABLE.value}/{rid}", store_record_id=store.record_id)
        try:
            amount = self._in_card_currency(form, amount, card)
        except InvalidAmount as exc:
            self._reject(form, RedemptionOutcome.INVALID_AMOUNT, exc.reason, code_field=masked, store=store, card=card)
            return
        if card.status is CardStatus.DISABLED:
            self._reject(form, RedemptionOutcome.DISABLED, "The card is disabled", code_field=masked,
                         store=store, card=card)
            return
        reach("redeem.claim")
        self.ctx.book.update_forms(TABLE, {rid: {
            "Status": FormStatus.PROCESSING.value, "Attempt": new_attempt_id(),
            "Card": [card.record_id], "Code": masked}})
        log.info("redemption claimed record=%s card=%s amount=%s", rid, masked, amount)
        self._debit_and_finish(form, store, card, amount, resumed=False)

    def _resume(self, form: RedemptionForm, stores: dict[str, Store]) -> None:
        rid = form.record_id
        card = self.ctx.book.card(form.card_ids[0])
        store = self._store(form, stores) or self._any_store(form, stores)
        if card is None:
            self._reject(form, RedemptionOutcome.FAILED, "The linked card no longer exists",
                         code_field=self._masked_field(form), store=store)
            return
        log.info("redemption resumed record=%s card=%s", rid, card.masked)
        try:
            amount = self._in_card_currency(form, parse_amount(form.amount_raw, card.balance.currency), card)
        except InvalidAmount as exc:
            # The amount was edited after the claim: read back first, money may have moved.
            if self._find_tx(card, rid) is None:
                self._reject(form, RedemptionOutcome.INVALID_AMOUNT, exc.reason, code_field=card.masked,
                             store=store, card=card)
                return
            raise
        self._debit_and_finish(form, store, card, amount, resumed=True)

    # -- the money ----------------------------------------------------------------------------
    def _debit_and_finish(self, form: RedemptionForm, store: Store | None, card: MirrorCard, amount: Money,
                          *, resumed: bool) -> None:
        rid = form.record_id
        result: MoveResult | None = None
        if resumed:
            tx = self._find_tx(card, rid)
            if tx is not None:
                log.info("redemption read-back found the debit record=%s tx=%s", rid, tx.id)
                result = MoveResult(transaction=tx)
        if result is None:
            result = self._debit(card, amount, rid)
        if result.transaction is None:
            self._refused(form, store, card, amount, result)
            return
        balance = result.balance
        if balance is None:
            shop = self.ctx.ledger.get_card(card.shopify_id)
            if shop is None:
                raise RetriableError("shopify", "card vanished after its debit")
            balance = shop.balance
        debited = Money(-result.transaction.amount.amount, result.transaction.amount.currency) \
            if result.transaction.amount.amount < 0 else amount
        now = self.ctx.clock.now()
        self.ctx.write_receipts("redeem.receipt", [self.ctx.receipt(
            f"redeem:{rid}", Activity.REDEEM, card_record_id=card.record_id, card_masked=card.masked,
            amount=-debited, balance_after=balance, store_record_id=store.record_id if store else None,
            source=f"{TABLE.value}/{rid}", outcome=RedemptionOutcome.REDEEMED.value, correlation_id=note_for(rid),
            details=f"shopify_tx={result.transaction.id}" + (f" staff={form.staff}" if form.staff else ""))])
        reach("redeem.balance")
        self.ctx.book.set_balances({card.record_id: (balance, now)})
        fields = {"Status": FormStatus.DONE.value, "Outcome": RedemptionOutcome.REDEEMED.value, "Reason": "",
                  "Balance After": balance.amount, "Processed At": now}
        reach("redeem.finish")
        self.ctx.book.update_forms(TABLE, {rid: fields})
        log.info("redemption done record=%s card=%s amount=%s balance_after=%s", rid, card.masked, debited, balance)
        finished = dataclasses.replace(form, status=FormStatus.DONE.value, outcome=RedemptionOutcome.REDEEMED.value,
                                       reason="", balance_after=balance.amount, code_raw=card.masked,
                                       card_ids=[card.record_id], processed_at=now)
        self._crm_redeemed(finished, store, card, debited, balance)
        self.notify(finished, store, card)

    def _debit(self, card: MirrorCard, amount: Money, rid: str) -> MoveResult:
        note = note_for(rid)
        for _ in range(DEBIT_SENDS):
            reach("redeem.debit")
            try:
                return self.ctx.ledger.debit(card.shopify_id, amount, note=note, processed_at=self.ctx.clock.now())
            except AmbiguousError as exc:
                log.warning("debit ambiguous record=%s card=%s reason=%r; reading back", rid, card.masked, exc.reason)
                tx = self._find_tx(card, rid)
                if tx is not None:
                    return MoveResult(transaction=tx)
                log.info("debit not applied record=%s; sending again", rid)
        raise RetriableError("shopify", f"debit still ambiguous after {DEBIT_SENDS} sends; record left in Processing")

    def _find_tx(self, card: MirrorCard, rid: str):
        note = note_for(rid)
        for tx in self.ctx.ledger.transactions(card.shopify_id):
            if tx.note == note:
                return tx
        return None

    def _refused(self, form: RedemptionForm, store: Store | None, card: MirrorCard, amount: Money,
                 result: MoveResult) -> None:
        code = result.error_code
        text = result.error.lower()
        balance = result.balance
        if code == "INSUFFICIENT_FUNDS":
            if balance is None:
                shop = self.ctx.ledger.get_card(card.shopify_id)
                balance = shop.balance if shop else None
            reason = f"Available balance is {balance}" if balance else "Insufficient balance"
            self._reject(form, RedemptionOutcome.INSUFFICIENT, reason, code_field=card.masked, store=store,
                         card=card, balance=balance)
        elif code in _DISABLED_CODES or (code == "INVALID" and ("deactivated" in text or "expired" in text)):
            self._reject(form, RedemptionOutcome.DISABLED, result.error or "The card is disabled or expired",
                         code_field=card.masked, store=store, card=card)
        elif code == "GIFT_CARD_NOT_FOUND":
            self._reject(form, RedemptionOutcome.NOT_FOUND, "The card no longer exists in Shopify",
                         code_field=card.masked, store=store, card=card)
        else:
            self._reject(form, RedemptionOutcome.FAILED, f"Shopify refused: {code} {result.error}".strip()[:300],
                         code_field=card.masked, store=store, card=card)
            self.ctx.notifier.alert(f"redemption-failed:{form.record_id}", "Redemption refused by Shopify",
                                    f"record={form.record_id} card={card.masked} code={code}",
                                    source=f"{TABLE.value}/{form.record_id}")

    # -- endings ------------------------------------------------------------------------------
    def _reject(self, form: RedemptionForm, outcome: RedemptionOutcome, reason: str, *, code_field: str,
                store: Store | None = None, card: MirrorCard | None = None, balance: Money | None = None) -> None:
        rid = form.record_id
        now = self.ctx.clock.now()
        self.ctx.write_receipts("redeem.receipt", [self.ctx.receipt(
            f"reject:{rid}", Activity.REJECT, card_record_id=card.record_id if card else None,
            card_masked=card.masked if card else (code_field if code_field != INVALID_CODE_NOTE else None),
            balance_after=balance, store_record_id=store.record_id if store else None,
            source=f"{TABLE.value}/{rid}", outcome=outcome.value, correlation_id=note_for(rid),
            details=f"{reason}; amount typed: {amount_text(form.amount_raw)!r}")])
        fields: dict = {"Status": FormStatus.REJECTED.value, "Outcome": outcome.value, "Reason": reason,
                        "Code": code_field, "Processed At": now}
        if card is not None:
            fields["Card"] = [card.record_id]
        if balance is not None:
            fields["Balance After"] = balance.amount
        reach("redeem.finish")
        self.ctx.book.update_forms(TABLE, {rid: fields})
        log.info("redemption rejected record=%s outcome=%r reason=%r", rid, outcome.value, reason)
        finished = dataclasses.replace(form, status=FormStatus.REJECTED.value, outcome=outcome.value, reason=reason,
                                       code_raw=code_field, balance_after=balance.amount if balance else None,
                                       card_ids=[card.record_id] if card else form.card_ids, processed_at=now)
        self.notify(finished, store, card)

    # -- emails -------------------------------------------------------------------------------
    def email_for(self, form: RedemptionForm, store: Store | None, card: MirrorCard | None) -> EmailEvent | None:
        """The store email, built from the finished record alone (so a resend is identical)."""
        to = store.email if store and store.active and valid_email(store.email) else self.ctx.options.admin_email
        if not valid_email(to):
            return None
        currency = card.balance.currency if card else self.ctx.options.currency
        balance = ""
        if form.balance_after is not None:
            balance = Money(Decimal(str(form.balance_after)), currency).plain()
        try:
            amount = parse_amount(form.amount_raw, currency).plain()
        except InvalidAmount:
            amount = amount_text(form.amount_raw)
        props = {"Record": form.record_id, "Outcome": form.outcome, "Reason": form.reason,
                 "Card": str(form.code_raw or ""), "Amount": amount, "Currency": currency,
                 "Balance After": balance, "Store": store.name if store else "", "Staff": form.staff,
                 "Processed At": form.processed_at.isoformat() if form.processed_at else ""}
        return EmailEvent(metric=Metric.STORE_REDEMPTION_PROCESSED, email=to.strip(),
                          unique_id=f"redemption:{form.record_id}:store", properties=props)

    def notify(self, form: RedemptionForm, store: Store | None, card: MirrorCard | None) -> bool:
        self.ctx.notified_this_cycle.add(form.record_id)
        event = self.email_for(form, store, card)
        ok = True
        if event is not None:
            reach("redeem.email")
            ok = self.ctx.notifier.send(event, source=f"{TABLE.value}/{form.record_id}",
                                        store_record_id=store.record_id if store else None,
                                        card_record_id=card.record_id if card else None,
                                        card_masked=card.masked if card else None)
        if ok:
            reach("redeem.notified")
            self.ctx.book.update_forms(TABLE, {form.record_id: {"Notified": True}})
        return ok

    def resend(self, stop=lambda: False) -> int:
        """Done/Rejected records whose Notified box is unticked: send their store email again."""
        forms = self.ctx.book.unnotified(TABLE, self.ctx.options.batch_size)
        if not forms:
            return 0
        stores = self.ctx.book.stores()
        sent = 0
        for form in forms:
            if stop():
                break
            if form.record_id in self.ctx.notified_this_cycle:
                continue

            def again(f: RedemptionForm = form) -> None:
                card = self.ctx.book.card(f.card_ids[0]) if f.card_ids else None
                if self.notify(f, self._any_store(f, stores), card):
                    nonlocal sent
                    sent += 1
            safe_call(log, "redemption email resend", form.record_id, again)
        return sent

    def _crm_redeemed(self, form: RedemptionForm, store: Store | None, card: MirrorCard, amount: Money,
                      balance: Money) -> None:
        """CRM relay: a redemption on the card holder's profile when an identity is known."""
        holder = card.recipient_email or card.purchaser_email
        if not valid_email(holder):
            return
        event = EmailEvent(metric=Metric.GIFT_CARD_REDEEMED, email=holder.strip(),
                           unique_id=f"crm:redeemed:{form.record_id}",
                           properties={"Card": card.masked, "Channel": "Store", "Store": store.name if store else "",
                                       "Amount": amount.plain(), "Currency": amount.currency,
                                       "Balance After": balance.plain(), "Source": f"{TABLE.value}/{form.record_id}"},
                           value=amount.amount, value_currency=amount.currency)
        reach("redeem.crm")
        self.ctx.notifier.send(event, source=f"{TABLE.value}/{form.record_id}",
                               store_record_id=store.record_id if store else None,
                               card_record_id=card.record_id, card_masked=card.masked)

    # -- helpers ------------------------------------------------------------------------------
    @staticmethod
    def _store(form: RedemptionForm, stores: dict[str, Store]) -> Store | None:
        store = stores.get(form.store_ids[0]) if form.store_ids else None
        return store if store is not None and store.active else None

    @staticmethod
    def _any_store(form: RedemptionForm, stores: dict[str, Store]) -> Store | None:
        return stores.get(form.store_ids[0]) if form.store_ids else None

    def _in_card_currency(self, form: RedemptionForm, amount: Money, card: MirrorCard) -> Money:
        currency = card.balance.currency
        if currency == amount.currency:
            return amount
        return parse_amount(form.amount_raw, currency)

    @staticmethod
    def _masked_field(form: RedemptionForm) -> str:
        code = normalise_code(form.code_raw)
        if is_valid_code(code):
            return mask(last4(code))
        text = str(form.code_raw or "")
        return text if text.startswith("••••") else INVALID_CODE_NOTE
