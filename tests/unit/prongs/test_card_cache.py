"""The card cache (giftsync/prongs/card_cache.py, docs/adr/0006-card-identity-cache.md): a
redemption poll skips the card lookup for codes the daemon knows, and a stale entry never
moves money on a card record that cannot be finished."""
from __future__ import annotations

import dataclasses

from giftsync.adapters.fakes import FakeCardBook, FakeClock
from giftsync.domain.cards import CardStatus, MirrorCard
from giftsync.domain.emails import Metric
from giftsync.domain.outcomes import RedemptionOutcome as O
from giftsync.errors import FatalError, RetriableError
from giftsync.ports import FormTable
from giftsync.prongs.card_cache import DEFAULT_MAX_AGE, CardCache

from .conftest import assert_ledger_adds_up, new_world, usd

R = FormTable.REDEMPTIONS


def _card(n: int, status: CardStatus = CardStatus.ACTIVE, record_id: str | None = "auto") -> MirrorCard:
    return MirrorCard(record_id=f"rec{n:014d}" if record_id == "auto" else record_id,
                      shopify_id=f"gid://shopify/GiftCard/{n}", last4=f"{n:04d}", balance=usd("10"),
                      code_hash=f"hash{n}", status=status)


def cache_of(world) -> CardCache:
    return world.prong.redemptions.ctx.cards


def poll(world) -> int:
    return world.prong.redemptions.run()


def lookups(world) -> list[tuple]:
    """The hashes each card lookup asked for."""
    return [set(args[0]) for name, args in world.book.calls if name == "cards_by_hashes"]


# -- the cache on its own --------------------------------------------------------------------

def test_lru_bound_evicts_the_least_recently_used():
    cache = CardCache(size=3, monotonic=FakeClock().monotonic)
    cache.put([_card(1), _card(2), _card(3)])
    assert set(cache.get_many(["hash1"])) == {"hash1"}          # 1 is now the most recent
    cache.put([_card(4)])
    assert len(cache) == 3
    assert set(cache.get_many(["hash1", "hash2", "hash3", "hash4"])) == {"hash1", "hash3", "hash4"}
    cache.drop(record_ids=[_card(2).record_id])                  # evicted: no stale reverse entry left
    cache.put([_card(5), _card(6)])
    assert len(cache) == 3


def test_entries_older_than_max_age_count_as_absent():
    clock = FakeClock()
    cache = CardCache(monotonic=clock.monotonic)
    assert cache.max_age == DEFAULT_MAX_AGE == 6 * 3600
    cache.put([_card(1)])
    clock.advance(DEFAULT_MAX_AGE - 1)
    assert set(cache.get_many(["hash1"])) == {"hash1"}
    clock.advance(1)
    assert cache.get_many(["hash1"]) == {} and len(cache) == 0


def test_only_active_cards_with_record_id_and_hash_are_kept():
    cache = CardCache(monotonic=FakeClock().monotonic)
    cache.put([_card(1, CardStatus.DISABLED), _card(2, CardStatus.EXPIRED), _card(3, record_id=None),
               dataclasses.replace(_card(4), code_hash=None), None])
    assert len(cache) == 0
    cache.put([_card(5)])
    cache.put([_card(5, CardStatus.DISABLED)])                   # a card disabled since: forgotten
    assert cache.get_many(["hash5"]) == {}


def test_drop_by_hash_or_record_id_and_clear():
    cache = CardCache(monotonic=FakeClock().monotonic)
    cache.put([_card(1), _card(2), _card(3)])
    cache.drop(hashes=["hash1"], record_ids=[_card(2).record_id, None])
    assert set(cache.get_many(["hash1", "hash2", "hash3"])) == {"hash3"}
    cache.clear()
    assert len(cache) == 0


def test_cards_come_out_as_copies():
    cache = CardCache(monotonic=FakeClock().monotonic)
    card = _card(1)
    cache.put([card])
    card.recipient_email = "changed@example.test"
    got = cache.get_many(["hash1"])["hash1"]
    got.last4 = "9999"
    assert cache.get_many(["hash1"])["hash1"].recipient_email == ""
    assert cache.get_many(["hash1"])["hash1"].last4 == "0001"


# -- redemption polls ------------------------------------------------------------------------

def test_a_second_poll_with_known_codes_makes_no_card_lookup(world):
    cards = [world.card("50") for _ in range(3)]
    for code, _, _ in cards:
        world.book.add_redemption(code, "5", world.store)
    assert poll(world) == 3
    assert len(lookups(world)) == 1 and len(cache_of(world)) == 3
    world.book.calls.clear()
    rids = [world.book.add_redemption(code, "2", world.store) for code, _, _ in cards]
    assert poll(world) == 3
    assert all(world.form(R, r)["Outcome"] == O.REDEEMED.value for r in rids)
    names = [n for n, _ in world.book.calls if n != "stores"]
    assert "cards_by_hashes" not in names and "card_by_hash" not in names
    # list, claim, receipts, balances, final: 5 requests for the poll
    assert names == ["pending_redemptions", "update_forms", "append_receipts", "set_balances", "update_forms"]
    for _, shop, _ in cards:
        assert world.ledger.balance_of(shop.id) == usd("43")
    assert_ledger_adds_up(world)


def test_unknown_codes_in_the_same_poll_are_looked_up_once(world):
    known, _, _ = world.card("50")
    world.book.add_redemption(known, "5", world.store)
    poll(world)
    new1, _, _ = world.card("50")
    new2, _, _ = world.card("50")
    world.book.calls.clear()
    rids = [world.book.add_redemption(c, "1", world.store) for c in (known, new1, new2, new1)]
    assert poll(world) == 4
    assert lookups(world) == [{world.hasher.hash(new1), world.hasher.hash(new2)}]
    assert [world.form(R, r)["Outcome"] for r in rids] == [O.REDEEMED.value] * 4


def test_a_mirrored_shopify_card_is_known_to_the_next_poll(world):
    code, shop, _ = world.card("50", mirrored=False)
    world.book.add_redemption(code, "5", world.store)
    poll(world)
    assert world.ledger.count("find_by_code") == 1
    world.book.calls.clear()
    rid = world.book.add_redemption(code, "5", world.store)
    poll(world)
    assert lookups(world) == [] and world.ledger.count("find_by_code") == 1
    assert world.form(R, rid)["Outcome"] == O.REDEEMED.value
    assert world.ledger.balance_of(shop.id) == usd("40")


def test_cards_issued_by_a_card_request_are_known_to_the_next_poll(world):
    world.book.add_card_request(world.store, "20", 2, recipient_email="r@example.test")
    world.run()
    code = next(e.properties["Code"] for e in world.messenger.sent if e.metric is Metric.GIFT_CARD_DELIVERED)
    world.book.calls.clear()
    rid = world.book.add_redemption(code, "5", world.store)
    poll(world)
    assert lookups(world) == []
    assert world.form(R, rid)["Outcome"] == O.REDEEMED.value


def test_a_deleted_card_row_never_gets_a_debit_on_a_dangling_link(world):
    code, shop, mirror = world.card("50")
    other, other_shop, _ = world.card("50")
    for c in (code, other):
        world.book.add_redemption(c, "5", world.store)
    poll(world)
    del world.book.cards[mirror.record_id]                      # staff deleted the Gift Cards row
    debits = world.ledger.count("debit")
    r1 = world.book.add_redemption(code, "7", world.store)
    r2 = world.book.add_redemption(other, "3", world.store)
    assert poll(world) == 0
    # the claim linked a record that does not exist: Airtable refused the whole write
    assert world.ledger.count("debit") == debits
    assert [world.form(R, r).get("Status") for r in (r1, r2)] == [None, None]
    assert cache_of(world).get_many([world.hasher.hash(code), world.hasher.hash(other)]) == {}
    assert poll(world) == 2                                      # looked up, mirrored again, redeemed
    assert world.ledger.count("debit") == debits + 2
    [new] = [c for c in world.book.cards.values() if c.shopify_id == shop.id]
    assert new.record_id != mirror.record_id
    assert world.form(R, r1)["Status"] == "Done" and world.form(R, r1)["Card"] == [new.record_id]
    assert world.ledger.balance_of(shop.id) == usd("38") and world.ledger.balance_of(other_shop.id) == usd("42")
    assert len(cache_of(world)) == 2


class LinkDroppingBook(FakeCardBook):
    """An Airtable that would drop a link to a missing record and keep the rest of the write
    (not what the twin or, by what is known, Airtable do — the claim's answer guards it)."""

    def update_forms(self, table, updates):
        kept = {rid: {k: ([c for c in v if c in self.cards] if k == "Card" else v) for k, v in fields.items()}
                for rid, fields in updates.items()}
        return super().update_forms(table, kept)


def test_a_claim_whose_answer_lacks_the_card_is_not_debited_and_is_claimed_again():
    world = new_world(LinkDroppingBook(FakeClock()))
    code, shop, mirror = world.card("50")
    world.book.add_redemption(code, "5", world.store)
    poll(world)
    del world.book.cards[mirror.record_id]
    claims: list[dict] = []
    debit = world.ledger.debit

    def watched_debit(card_id, amount, **kw):                   # what the record said when money moved
        claims.append(world.form(R, rid).get("Card"))
        return debit(card_id, amount, **kw)
    world.ledger.debit = watched_debit
    world.book.calls.clear()
    rid = world.book.add_redemption(code, "7", world.store)
    assert poll(world) == 1
    [new] = [c for c in world.book.cards.values() if c.shopify_id == shop.id]
    assert new.record_id != mirror.record_id
    assert claims == [[new.record_id]]                          # one debit, on a confirmed link only
    assert lookups(world) == [{world.hasher.hash(code)}]        # the cache entry was dropped
    assert [n for n, a in world.book.calls if n == "update_forms" and a[0] is R
            and any(f.get("Status") == "Processing" for f in a[1].values())] == ["update_forms"] * 2
    assert world.form(R, rid)["Status"] == "Done" and world.form(R, rid)["Card"] == [new.record_id]
    assert world.ledger.balance_of(shop.id) == usd("38")
    assert cache_of(world).get_many([world.hasher.hash(code)])[world.hasher.hash(code)].record_id == new.record_id


def test_a_failed_claim_drops_the_entries(world):
    cards = [world.card("50") for _ in range(2)]
    for code, _, _ in cards:
        world.book.add_redemption(code, "5", world.store)
    poll(world)
    hashes = [world.hasher.hash(code) for code, _, _ in cards]
    assert len(cache_of(world).get_many(hashes)) == 2
    world.book.fail_next("update_forms", RetriableError("airtable", "503"),
                         when=lambda table, updates: any(f.get("Status") == "Processing" for f in updates.values()))
    rids = [world.book.add_redemption(code, "1", world.store) for code, _, _ in cards]
    assert poll(world) == 0
    assert cache_of(world).get_many(hashes) == {}
    world.book.calls.clear()
    assert poll(world) == 2
    assert lookups(world) == [set(hashes)]
    assert all(world.form(R, r)["Status"] == "Done" for r in rids)


def test_a_failed_finishing_write_drops_the_entries(world):
    code, _, _ = world.card("50")
    world.book.add_redemption(code, "5", world.store)
    poll(world)
    world.book.fail_next("append_receipts", RetriableError("airtable", "503"))
    rid = world.book.add_redemption(code, "1", world.store)
    assert poll(world) == 0
    assert cache_of(world).get_many([world.hasher.hash(code)]) == {}
    assert poll(world) == 1 and world.form(R, rid)["Status"] == "Done"


def test_a_card_shopify_no_longer_has_is_forgotten(world):
    code, shop, _ = world.card("50")
    world.book.add_redemption(code, "5", world.store)
    poll(world)
    del world.ledger._cards[shop.id]                            # gone from Shopify
    rid = world.book.add_redemption(code, "1", world.store)
    poll(world)
    assert world.form(R, rid)["Outcome"] == O.NOT_FOUND.value
    assert cache_of(world).get_many([world.hasher.hash(code)]) == {}


def test_a_cached_card_deactivated_in_shopify_is_rejected_without_money_moving(world):
    code, shop, _ = world.card("50")
    world.book.add_redemption(code, "5", world.store)
    poll(world)
    world.ledger.deactivate(shop.id)                            # in Shopify's admin; the mirror still says Active
    world.book.calls.clear()
    debits = len(world.ledger.transactions(shop.id))
    rid = world.book.add_redemption(code, "5", world.store)
    poll(world)
    assert lookups(world) == []                                 # the cached entry served the poll
    assert world.form(R, rid)["Outcome"] == O.DISABLED.value and world.form(R, rid)["Status"] == "Rejected"
    assert world.ledger.balance_of(shop.id) == usd("45") and len(world.ledger.transactions(shop.id)) == debits


def test_a_resumed_record_whose_card_is_gone_drops_its_entry(world):
    code, _, mirror = world.card("50")
    world.book.add_redemption(code, "5", world.store)
    poll(world)
    rid = world.book.add_redemption(code, "5", world.store, Status="Processing", Card=[mirror.record_id],
                                    Attempt="att-1")
    del world.book.cards[mirror.record_id]
    poll(world)
    assert world.form(R, rid)["Outcome"] == O.FAILED.value
    assert cache_of(world).get_many([world.hasher.hash(code)]) == {}


def test_entries_age_out_and_holder_emails_are_read_again(world):
    code, _, mirror = world.card("50", recipient_email="old@example.test")
    world.book.add_redemption(code, "5", world.store)
    poll(world)
    world.book.cards[mirror.record_id].recipient_email = "new@example.test"    # staff edit in Airtable
    world.clock.advance(DEFAULT_MAX_AGE)
    world.book.calls.clear()
    world.book.add_redemption(code, "5", world.store)
    poll(world)
    assert len(lookups(world)) == 1
    assert [e.email for e in world.events(Metric.GIFT_CARD_REDEEMED)] == ["old@example.test", "new@example.test"]


def test_a_claim_refused_for_a_missing_card_record_is_whole():
    """The fake answers like the twin: a link to a missing card fails the write, nothing kept."""
    book = FakeCardBook(FakeClock())
    a = book.add_redemption("CODE1234ABCD", "1", None)
    b = book.add_redemption("CODE5678ABCD", "1", None)
    try:
        book.update_forms(R, {a: {"Status": "Processing"}, b: {"Status": "Processing", "Card": ["recMissing0000000"]}})
    except FatalError as exc:
        assert "ROW_DOES_NOT_EXIST" in str(exc) and exc.status == 422
    else:
        raise AssertionError("a link to a missing record was accepted")
    assert not book.fields(R, a).get("Status") and not book.fields(R, b).get("Status")
