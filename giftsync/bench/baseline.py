"""The benchmark's baseline: the seed's way of working, reproduced over giftsync's real adapters.

Not part of the product. The seed ran the whole store prong on one thread every 15 s:
redemptions, then card requests, then balance checks — one record and one API call at a
time, no batching, and no look at new redemptions while a bulk card request is in hand (a
customer at the counter waits for every card of a company order). This module does exactly
that over the same clients (pyairtable, gql, klaviyo-api) and the same rate budgets as the
daemon, so that the benchmark measures the scheduling, not the clients or the limiter; the
Shopify prongs and the lease are giftsync's own, as the seed had them on their own threads.

It writes what giftsync writes (claim, debit note, receipts, balance mirror, Done, the same
email metrics and ``unique_id`` s) so the benchmark measures both modes the same way.

    python -m giftsync.bench.baseline        # environment as for ``python -m giftsync run``
"""
from __future__ import annotations

import logging
import secrets
import sys
from typing import Callable

from ..domain.cards import CardKind, CardSource, CardStatus, MirrorCard
from ..domain.codes import CodeHasher, is_valid_code, last4, mask, normalise_code
from ..domain.emails import EmailEvent, Metric
from ..domain.forms import CardRequestForm, RedemptionForm, Store
from ..domain.ledger import Activity, Channel, Receipt
from ..domain.money import InvalidAmount, Money, parse_amount
from ..domain.outcomes import FormStatus, RedemptionOutcome, RequestOutcome
from ..ports import CardBook, Clock, FormTable, GiftCardLedger, Messenger

log = logging.getLogger("giftsync.bench.baseline")

SEED_INTERVAL = 15.0


class SeedStoreProng:
    """One cycle: every pending redemption, then every pending card request (all its cards),
    then balance checks are left alone (the benchmark submits none). One call at a time."""

    def __init__(self, book: CardBook, ledger: GiftCardLedger, messenger: Messenger, clock: Clock,
                 hasher: CodeHasher, *, currency: str = "USD", admin_email: str = "") -> None:
        self.book, self.ledger, self.messenger, self.clock, self.hasher = book, ledger, messenger, clock, hasher
        self.currency = currency
        self.admin_email = admin_email
        self.cycles = 0

    def run_once(self, should_continue: Callable[[], bool] = lambda: True) -> dict:
        self.cycles += 1
        done = {"redemptions": 0, "card_requests": 0}
        stores = self.book.stores()
        for form in self.book.pending_redemptions(100):
            if not should_continue():
                return done
            self._guard(self.redeem, form, stores)
            done["redemptions"] += 1
        for form in self.book.pending_card_requests(100):
            if not should_continue():
                return done
            self._guard(self.issue, form, stores)
            done["card_requests"] += 1
        return done

    @staticmethod
    def _guard(fn, form, stores) -> None:
        try:
            fn(form, stores)
        except Exception as exc:  # noqa: BLE001 — the seed logged and went on
            log.warning("baseline record failed record=%s error=%s", form.record_id, type(exc).__name__)

    def _receipt(self, receipt_id: str, activity: Activity, **kw) -> Receipt:
        return Receipt(receipt_id=receipt_id, time=self.clock.now(), activity=activity, channel=Channel.STORE, **kw)

    def _send(self, event: EmailEvent) -> bool:
        try:
            self.messenger.send(event)
            return True
        except Exception as exc:  # noqa: BLE001
            log.warning("baseline email failed uid=%s error=%s", event.unique_id, type(exc).__name__)
            return False

    # -- redemptions: one record, one call at a time ---------------------------------------------
    def redeem(self, form: RedemptionForm, stores: dict[str, Store]) -> None:
        rid = form.record_id
        table = FormTable.REDEMPTIONS
        store = stores.get(form.store_ids[0]) if form.store_ids else None
        code = normalise_code(form.code_raw)
        card = self.book.card_by_hash(self.hasher.hash(code)) if is_valid_code(code) else None
        try:
            amount = parse_amount(form.amount_raw, self.currency)
        except InvalidAmount:
            amount = None
        if card is None or amount is None or store is None:
            outcome = RedemptionOutcome.NOT_FOUND if card is None else RedemptionOutcome.INVALID_AMOUNT
            self.book.update_forms(table, {rid: {"Status": FormStatus.REJECTED.value, "Outcome": outcome.value,
                                                 "Code": mask(last4(code)) if is_valid_code(code) else "(invalid)",
                                                 "Processed At": self.clock.now()}})
            self._store_email(form, store, outcome.value, None, card)
            return
        self.book.update_forms(table, {rid: {"Status": FormStatus.PROCESSING.value, "Attempt": "seed-" + secrets.token_hex(4),
                                             "Card": [card.record_id], "Code": card.masked}})
        result = self.ledger.debit(card.shopify_id, amount, note=f"giftsync:{rid}", processed_at=self.clock.now())
        if result.transaction is None:
            self.book.update_forms(table, {rid: {"Status": FormStatus.REJECTED.value,
                                                 "Outcome": RedemptionOutcome.INSUFFICIENT.value,
                                                 "Processed At": self.clock.now()}})
            self._store_email(form, store, RedemptionOutcome.INSUFFICIENT.value, None, card)
            return
        balance = result.balance or self.ledger.get_card(card.shopify_id).balance
        self.book.append_receipts([self._receipt(
            f"redeem:{rid}", Activity.REDEEM, card_record_id=card.record_id, card_masked=card.masked,
            amount=-amount, balance_after=balance, store_record_id=store.record_id,
            source=f"{table.value}/{rid}", outcome=RedemptionOutcome.REDEEMED.value, correlation_id=f"giftsync:{rid}")])
        now = self.clock.now()
        self.book.set_balances({card.record_id: (balance, now)})
        self.book.update_forms(table, {rid: {"Status": FormStatus.DONE.value, "Outcome": RedemptionOutcome.REDEEMED.value,
                                             "Balance After": balance.amount, "Processed At": now}})
        if self._store_email(form, store, RedemptionOutcome.REDEEMED.value, balance, card):
            self.book.update_forms(table, {rid: {"Notified": True}})

    def _store_email(self, form: RedemptionForm, store: Store | None, outcome: str, balance: Money | None,
                     card: MirrorCard | None) -> bool:
        to = store.email if store and store.email else self.admin_email
        if not to:
            return False
        return self._send(EmailEvent(
            metric=Metric.STORE_REDEMPTION_PROCESSED, email=to, unique_id=f"redemption:{form.record_id}:store",
            properties={"Record": form.record_id, "Outcome": outcome, "Card": card.masked if card else "",
                        "Amount": str(form.amount_raw), "Balance After": balance.plain() if balance else "",
                        "Store": store.name if store else ""}))

    # -- card requests: every card of the request before anything else ---------------------------
    def issue(self, form: CardRequestForm, stores: dict[str, Store]) -> None:
        rid = form.record_id
        table = FormTable.CARD_REQUESTS
        store = stores.get(form.store_ids[0]) if form.store_ids else None
        amount = parse_amount(form.amount_raw, self.currency)
        quantity = int(float(str(form.quantity_raw)))
        nonce = secrets.token_hex(16)
        self.book.update_forms(table, {rid: {"Status": FormStatus.PROCESSING.value, "Attempt": "nonce:" + nonce}})
        cards: list[MirrorCard] = []
        for i in range(quantity):
            code = self.hasher.derive(nonce, i)
            result = self.ledger.create_card(code=code, amount=amount, note=f"giftsync:{rid}:{i}")
            shop = result.card
            if shop is None:
                raise RuntimeError(f"card {i} refused: {result.error}")
            now = self.clock.now()
            card = self.book.save_cards([MirrorCard(
                record_id=None, shopify_id=shop.id, last4=shop.last4, balance=shop.balance,
                code_hash=self.hasher.hash(code), initial_value=amount, status=CardStatus.ACTIVE,
                kind=CardKind.DIGITAL, source=CardSource.STORE_REQUEST, recipient_name=form.recipient_name,
                recipient_email=form.recipient_email.strip(), store_record_id=store.record_id if store else None,
                created=now, last_synced=now, source_record=rid)])[0]
            self.book.append_receipts([self._receipt(
                f"issue:{rid}:{i}", Activity.ISSUE, card_record_id=card.record_id, card_masked=card.masked,
                amount=amount, balance_after=shop.balance, store_record_id=store.record_id if store else None,
                source=f"{table.value}/{rid}", outcome=RequestOutcome.ISSUED.value,
                correlation_id=f"giftsync:{rid}:{i}")])
            self._send(EmailEvent(
                metric=Metric.GIFT_CARD_DELIVERED, email=form.recipient_email.strip(),
                unique_id=f"request:{rid}:deliver:{i}", carries_code=True,
                properties={"Code": code, "Card": card.masked, "Amount": amount.plain(), "Currency": amount.currency}))
            cards.append(card)
        self.book.update_forms(table, {rid: {"Status": FormStatus.DONE.value, "Outcome": RequestOutcome.ISSUED.value,
                                             "Cards": [c.record_id for c in cards], "Attempt": "done",
                                             "Processed At": self.clock.now()}})
        if store is not None and self._send(EmailEvent(
                metric=Metric.STORE_REQUEST_PROCESSED, email=store.email, unique_id=f"request:{rid}:store",
                properties={"Record": rid, "Outcome": RequestOutcome.ISSUED.value, "Quantity": len(cards),
                            "Amount": amount.plain(), "Currency": amount.currency})):
            self.book.update_forms(table, {rid: {"Notified": True}})


def main(argv: list[str] | None = None) -> int:
    from ..bootstrap import build_app
    from ..config import Settings
    from ..runtime.budget import NORMAL
    from ..runtime.scheduler import ProngSpec

    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    settings = Settings.load()
    app = build_app(settings)
    seed = SeedStoreProng(app.book, app.ledger, app.messenger, app.clock, app.hasher,
                          currency=settings.default_currency, admin_email=settings.admin_email)
    store = ProngSpec("store", seed.run_once, interval=SEED_INTERVAL, priority=NORMAL)
    app.prongs = [store] + [p for p in app.prongs if p.name != "store"]
    try:
        return app.daemon().run_forever()
    finally:
        app.close()


if __name__ == "__main__":
    sys.exit(main())
