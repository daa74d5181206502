"""Balance-check guessing (issue 6), fast, over the fakes: 1,000 random codes from one address
and 1,000 from 1,000 addresses. The guesser gets one uniform answer and is throttled; the
full version against the twins is part of scripts/crashtest (giftsync/verify/guessing.py)."""
from __future__ import annotations

import json
import random
from collections import Counter

from giftsync.domain.codes import ALPHABET
from giftsync.domain.emails import Metric
from giftsync.domain.outcomes import CheckOutcome
from giftsync.ports import FormTable

GUESSES = 1000


def _codes(seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(ALPHABET) for _ in range(16)) for _ in range(GUESSES)]


def _answers(world, rids):
    by_uid = {e.unique_id: e for e in world.events(Metric.BALANCE_CHECK_ANSWERED)}
    return {json.dumps(by_uid[f"check:{rid}:answer"].properties, sort_keys=True) for rid in rids}


def _run_all(world, rids):
    prong = world.new_prong(batch_size=GUESSES * 2)
    prong.run_once()
    return Counter(world.form(FormTable.BALANCE_CHECKS, rid)["Outcome"] for rid in rids)


def test_guessing_from_one_address_is_throttled_with_one_uniform_answer(world):
    real, _, _ = world.card("80.00")
    rids = [world.book.add_balance_check(code, "guesser@example.net") for code in _codes(1)]
    outcomes = _run_all(world, rids)
    assert outcomes[CheckOutcome.THROTTLED.value] >= GUESSES - world.options.check_limit
    assert set(outcomes) <= {CheckOutcome.NO_MATCH.value, CheckOutcome.THROTTLED.value}
    assert len(_answers(world, rids)) == 1


def test_guessing_from_many_addresses_is_throttled_with_one_uniform_answer(world):
    rids = [world.book.add_balance_check(code, f"guesser{n}@example.net") for n, code in enumerate(_codes(2))]
    outcomes = _run_all(world, rids)
    limit = world.options.check_miss_limit
    assert outcomes[CheckOutcome.NO_MATCH.value] == limit
    assert outcomes[CheckOutcome.THROTTLED.value] == GUESSES - limit
    assert len(_answers(world, rids)) == 1
    alerts = [e for e in world.events(Metric.ALERT) if e.unique_id.startswith("alert:balance-check-misses:")]
    assert len(alerts) == 1


def test_a_customer_with_a_real_code_is_answered_until_the_guessing_starts_and_after_the_window(world):
    code, _, _ = world.card("42.00")
    first = world.book.add_balance_check(code, "ann@example.test")
    for n, guess in enumerate(_codes(3)[:world.options.check_miss_limit + 5]):
        world.book.add_balance_check(guess, f"g{n}@example.net")
    during = world.book.add_balance_check(code, "bob@example.test")
    world.new_prong(batch_size=GUESSES).run_once()
    f = lambda rid: world.form(FormTable.BALANCE_CHECKS, rid)["Outcome"]  # noqa: E731
    assert f(first) == CheckOutcome.ANSWERED.value
    assert f(during) == CheckOutcome.THROTTLED.value
    world.clock.advance(world.options.check_window_seconds + 1)
    after = world.book.add_balance_check(code, "cy@example.test")
    world.new_prong().run_once()
    assert f(after) == CheckOutcome.ANSWERED.value


def test_the_all_addresses_window_survives_a_restart(world):
    rids = [world.book.add_balance_check(code, f"g{n}@example.net")
            for n, code in enumerate(_codes(4)[:world.options.check_miss_limit])]
    world.new_prong(batch_size=GUESSES).run_once()
    code, _, _ = world.card("10.00")
    later = world.book.add_balance_check(code, "dee@example.test")
    world.new_prong().run_once()                    # a new prong = a restarted daemon: seeded from the table
    assert world.form(FormTable.BALANCE_CHECKS, later)["Outcome"] == CheckOutcome.THROTTLED.value
    assert rids
