"""KlaviyoMessenger through the real klaviyo-api SDK against the Klaviyo twin."""
from __future__ import annotations

import logging
import time
from decimal import Decimal

import pytest

from giftsync.adapters.klaviyo import KlaviyoMessenger
from giftsync.domain.emails import EmailEvent, Metric
from giftsync.errors import FatalError, RetriableError
from giftsync.runtime.budget import RateBudget
from giftsync.sandbox import start_twin

KEY = "pk_test_adapter_0123456789"
CODE = "KQ7M2XPA9TRB4WZ8"


@pytest.fixture(scope="module")
def twin():
    server = start_twin("klaviyo", api_key=KEY, rate_limit=False)
    yield server
    server.stop()


pytestmark = pytest.mark.usefixtures("no_faults")


def messenger(twin, **kw) -> KlaviyoMessenger:
    kw.setdefault("timeout", (1, 2))
    kw.setdefault("sleep", lambda s: None)
    return KlaviyoMessenger(kw.pop("key", KEY), api_url=twin.url, **kw)


def delivery(unique_id: str, email: str = "ann@example.com") -> EmailEvent:
    return EmailEvent(Metric.GIFT_CARD_DELIVERED, email, unique_id,
                      {"Code": CODE, "Masked": "•••• •••• •••• WZ8", "Balance": Decimal("25.00"), "Currency": "USD"},
                      first_name="Ann", last_name="Lee", carries_code=True)


def test_event_reaches_outbox_and_profile(twin, caplog):
    caplog.set_level(logging.DEBUG)
    m = messenger(twin)
    m.send(delivery("deliver:recA:0", "reach@example.com"))
    events = twin.app.event_items(email="reach@example.com")
    assert len(events) == 1 and events[0]["metric"] == "Gift Card Delivered"
    assert events[0]["unique_id"] == "deliver:recA:0" and events[0]["properties"]["Balance"] == 25.0
    outbox = twin.app.outbox_items(to="reach@example.com")
    assert len(outbox) == 1 and CODE in outbox[0]["body"]
    profile = twin.app.profile_items(email="reach@example.com")[0]
    assert profile["first_name"] == "Ann" and profile["last_name"] == "Lee"
    sent = twin.requests("events.create")[-1]
    assert sent["headers"]["revision"] == m.revision
    # neither the key nor the code in our logs
    assert KEY not in caplog.text and CODE not in caplog.text


def test_value_and_currency_on_crm_event(twin):
    event = EmailEvent(Metric.GIFT_CARD_ISSUED, "buyer@example.com", "issued:gid1",
                       {"Masked": "•••• •••• •••• WZ8", "Channel": "Store"}, value=Decimal("40.00"),
                       value_currency="EUR")
    messenger(twin).send(event)
    ev = twin.app.event_items(metric="Gift Card Issued", email="buyer@example.com")[0]
    assert ev["value"] == 40.0 and ev["value_currency"] == "EUR"
    assert twin.app.profile_items(email="buyer@example.com")[0]["lifetime_value"] == 40.0


def test_resend_is_deduplicated_by_unique_id(twin):
    m = messenger(twin)
    m.send(delivery("deliver:recB:0", "dedupe@example.com"))
    m.send(delivery("deliver:recB:0", "dedupe@example.com"))
    events = twin.app.event_items(email="dedupe@example.com")
    assert len(events) == 2 and [e["dropped"] for e in events] == [False, True]
    assert len(twin.app.outbox_items(to="dedupe@example.com")) == 1


def test_check_key(twin):
    info = messenger(twin).check_key()
    assert info["account_id"] and info["revision"]


def test_wrong_key_is_fatal(twin):
    with pytest.raises(FatalError) as err:
        messenger(twin, key="pk_wrong_key_000").send(delivery("deliver:recC:0"))
    assert err.value.status == 401 and "pk_wrong" not in str(err.value)
    with pytest.raises(FatalError):
        messenger(twin, key="pk_wrong_key_000").check_key()


def test_400_is_fatal_and_does_not_leak_the_code(twin):
    bad = EmailEvent(Metric.GIFT_CARD_DELIVERED, "not-an-email", "deliver:recD:0", {"Code": CODE},
                     carries_code=True)
    with pytest.raises(FatalError) as err:
        messenger(twin).send(bad)
    assert err.value.status == 400 and CODE not in str(err.value)


def test_injected_400_is_fatal(twin):
    twin.inject(kind="status", status=400, route="events.create", count=1)
    with pytest.raises(FatalError) as err:
        messenger(twin).send(delivery("deliver:recE:0"))
    assert err.value.status == 400


def test_429_is_retriable_and_pauses_the_budget(twin):
    twin.inject(kind="status", status=429, route="events.create")
    budget = RateBudget("klaviyo", rate=100, capacity=10)
    m = messenger(twin, budget=budget, attempts=1)
    with pytest.raises(RetriableError) as err:
        m.send(delivery("deliver:recF:0"))
    assert err.value.status == 429 and err.value.retry_after == 1
    assert not budget.acquire(1, timeout=0.3)     # paused for the Retry-After
    assert len(twin.requests("events.create")) >= 1


def test_sdk_does_not_retry_behind_our_back(twin):
    twin.clear_requests()
    twin.inject(kind="status", status=503, route="events.create")
    with pytest.raises(RetriableError) as err:
        messenger(twin, attempts=1).send(delivery("deliver:recG:0"))
    assert err.value.status == 503
    assert len(twin.requests("events.create")) == 1


def test_one_503_is_absorbed_by_a_bounded_retry(twin):
    twin.inject(kind="status", status=503, route="events.create", count=1)
    messenger(twin, attempts=2).send(delivery("deliver:recH:0", "retry@example.com"))
    assert len(twin.app.outbox_items(to="retry@example.com")) == 1


def test_long_retry_after_is_not_waited_for(twin):
    waits: list[float] = []
    twin.inject(kind="status", status=429, route="events.create", count=1)
    m = messenger(twin, attempts=3, max_wait=0.5, sleep=waits.append)
    with pytest.raises(RetriableError):
        m.send(delivery("deliver:recI:0"))
    assert waits == []          # Retry-After 1 s > max_wait: handed back to the caller at once


def test_network_failure_is_retriable(twin):
    twin.inject(kind="reset", route="events.create", count=2)
    with pytest.raises(RetriableError):
        messenger(twin, attempts=2).send(delivery("deliver:recJ:0"))
    started = time.monotonic()
    twin.inject(kind="hang", route="events.create", delay=3, count=1)
    with pytest.raises(RetriableError):
        messenger(twin, attempts=1, timeout=(1, 0.5)).send(delivery("deliver:recK:0"))
    assert time.monotonic() - started < 2.5


def test_refused_connection_is_retriable():
    m = KlaviyoMessenger(KEY, api_url="http://127.0.0.1:9", timeout=(0.5, 0.5), attempts=1)
    with pytest.raises(RetriableError):
        m.send(delivery("deliver:recL:0"))
