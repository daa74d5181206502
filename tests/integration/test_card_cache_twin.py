"""The card cache's safety rests on what Airtable does with a claim write that links a Gift
Cards record deleted since it was cached (docs/adr/0006-card-identity-cache.md): the real
pyairtable through AirtableCardBook against the Airtable twin — the whole write is refused
(422 ROW_DOES_NOT_EXIST), nothing of it is kept; a write that is kept answers with the link;
and a redemption poll on a stale entry moves no money until the card is found again."""
from __future__ import annotations

import pytest

from giftsync.adapters.fakes import FakeClock, FakeGiftCardLedger, FakeMessenger
from giftsync.domain.cards import CardKind, CardSource, MirrorCard
from giftsync.domain.codes import CodeHasher
from giftsync.domain.money import Money
from giftsync.errors import FatalError
from giftsync.ports import FormTable
from giftsync.prongs.options import StoreOptions
from giftsync.prongs.store import StoreProng

from .test_airtable_adapter import BASE, STORE_A, data_requests, make  # noqa: F401 — fixture

R = FormTable.REDEMPTIONS
CODES = ["CACHE0000TWIN0001", "CACHE0000TWIN0002"]


def _card(book, code: str, hasher: CodeHasher, shop_id: str) -> MirrorCard:
    return book.save_cards([MirrorCard(record_id=None, shopify_id=shop_id, last4=code[-4:],
                                       balance=Money.of("50", "USD"), code_hash=hasher.hash(code),
                                       kind=CardKind.DIGITAL, source=CardSource.IMPORTED)])[0]


def test_a_claim_linking_a_deleted_card_is_refused_whole(make):
    twin, book = make({"Store Redemptions": [
        {"id": "recRedeemC000001", "fields": {"Code": CODES[0], "Amount": 1, "Store": [STORE_A]}},
        {"id": "recRedeemC000002", "fields": {"Code": CODES[1], "Amount": 1, "Store": [STORE_A]}}]})
    hasher = CodeHasher(b"twin-cache-secret-0123456789abcd")
    kept = _card(book, CODES[0], hasher, "gid://shopify/GiftCard/1")
    gone = _card(book, CODES[1], hasher, "gid://shopify/GiftCard/2")
    book.api.table(BASE, "Gift Cards").delete(gone.record_id)             # staff deleted the row
    twin.clear_requests()
    claim = {"recRedeemC000001": {"Status": "Processing", "Attempt": "att-1", "Card": [kept.record_id]},
             "recRedeemC000002": {"Status": "Processing", "Attempt": "att-2", "Card": [gone.record_id]}}
    with pytest.raises(FatalError) as info:
        book.update_forms(R, claim)
    assert info.value.status == 422 and "ROW_DOES_NOT_EXIST" in info.value.reason
    assert len(data_requests(twin)) == 1                                  # fatal: not retried
    for rid in claim:                                                     # nothing of the write kept
        fields = book.api.table(BASE, "Store Redemptions").get(rid)["fields"]
        assert "Status" not in fields and "Card" not in fields and "Attempt" not in fields
    # the same write without the stale link is kept, and its answer carries the link sent
    answer = book.update_forms(R, {"recRedeemC000001": claim["recRedeemC000001"]})
    assert answer["recRedeemC000001"]["Card"] == [kept.record_id]
    assert answer["recRedeemC000001"]["Status"] == "Processing"


def test_a_poll_on_a_stale_entry_moves_no_money_until_the_card_is_found_again(make):
    twin, book = make()
    clock = FakeClock()
    ledger = FakeGiftCardLedger(clock)
    hasher = CodeHasher(b"twin-cache-secret-0123456789abcd")
    shop = ledger.add_card(CODES[0], "50")
    old = _card(book, CODES[0], hasher, shop.id)
    prong = StoreProng(book, ledger, FakeMessenger(), clock, hasher,
                       StoreOptions(admin_email="admin@example.test", redemption_workers=1))
    forms = book.api.table(BASE, "Store Redemptions")
    forms.create({"Code": CODES[0], "Amount": 5, "Store": [STORE_A]})
    assert prong.redemptions.run() == 1                                   # the card is cached now
    book.api.table(BASE, "Gift Cards").delete(old.record_id)
    rid = forms.create({"Code": CODES[0], "Amount": 7, "Store": [STORE_A]})["id"]
    debits = ledger.count("debit")
    assert prong.redemptions.run() == 0
    assert ledger.count("debit") == debits                                # no debit on the dangling link
    assert "Status" not in forms.get(rid)["fields"]
    assert prong.redemptions.run() == 1                                   # looked up, mirrored again
    fields = forms.get(rid)["fields"]
    [new] = book.api.table(BASE, "Gift Cards").all()
    assert fields["Status"] == "Done" and fields["Card"] == [new["id"]] and new["id"] != old.record_id
    assert ledger.count("debit") == debits + 1 and ledger.balance_of(shop.id) == Money.of("38", "USD")
