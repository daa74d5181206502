"""Pure parts of the Klaviyo adapter: the event body and error classification (no HTTP)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pydantic
import pytest
import urllib3
from openapi_client.exceptions import ApiException

from giftsync.adapters.klaviyo import (SDK_REVISION, KlaviyoMessenger, classify_exception, event_body, json_safe,
                                       scrub)
from giftsync.domain.emails import EmailEvent, Metric
from giftsync.errors import FatalError, RetriableError

WHEN = datetime(2026, 11, 21, 14, 3, 7, 123456, tzinfo=timezone(timedelta(hours=1)))


def delivery(**kw) -> EmailEvent:
    base = dict(metric=Metric.GIFT_CARD_DELIVERED, email=" ann@example.com ", unique_id="deliver:rec1:0",
                properties={"Code": "ABCDEFGH23456789", "Balance": Decimal("25.00"), "Masked": "•••• 6789"},
                first_name="Ann", last_name="Lee", carries_code=True)
    base.update(kw)
    return EmailEvent(**base)


def test_event_body_shape():
    body = event_body(delivery(value=Decimal("25.00"), value_currency="USD"), WHEN)
    attrs = body["data"]["attributes"]
    assert body["data"]["type"] == "event"
    assert attrs["metric"] == {"data": {"type": "metric", "attributes": {"name": "Gift Card Delivered"}}}
    assert attrs["profile"]["data"]["attributes"] == {"email": "ann@example.com", "first_name": "Ann",
                                                      "last_name": "Lee"}
    assert attrs["unique_id"] == "deliver:rec1:0"
    assert attrs["time"] == "2026-11-21T13:03:07+00:00"
    assert attrs["value"] == 25.0 and attrs["value_currency"] == "USD"
    assert attrs["properties"]["Balance"] == 25.0


def test_value_only_when_set_and_names_optional():
    attrs = event_body(delivery(first_name="", last_name=""), WHEN)["data"]["attributes"]
    assert "value" not in attrs and "value_currency" not in attrs
    assert attrs["profile"]["data"]["attributes"] == {"email": "ann@example.com"}


def test_naive_time_refused():
    with pytest.raises(ValueError):
        event_body(delivery(), datetime(2026, 1, 1))


def test_json_safe():
    assert json_safe({"a": Decimal("10"), "b": Decimal("1.50"), "c": [Decimal("2")],
                      "d": datetime(2026, 1, 1, tzinfo=timezone.utc)}) == \
        {"a": 10, "b": 1.5, "c": [2], "d": "2026-01-01T00:00:00+00:00"}


def api_exception(status: int, body: str = "", headers: dict | None = None) -> ApiException:
    exc = ApiException(status=status, reason="x", body=body)
    exc.headers = headers or {}
    return exc


@pytest.mark.parametrize("status, cls", [
    (400, FatalError), (401, FatalError), (403, FatalError), (404, FatalError), (409, FatalError),
    (413, FatalError), (415, FatalError), (429, RetriableError), (500, RetriableError), (502, RetriableError),
    (503, RetriableError), (504, RetriableError),
])
def test_status_classification(status, cls):
    assert type(classify_exception(api_exception(status))) is cls


def test_429_retry_after_from_header_or_detail():
    body = '{"errors":[{"id":"1","status":429,"code":"throttled","title":"t","detail":"Request was throttled. Expected available in 7 seconds."}]}'
    assert classify_exception(api_exception(429, body, {"Retry-After": "3"})).retry_after == 3
    assert classify_exception(api_exception(429, body)).retry_after == 7


def test_html_403_is_an_edge_challenge():
    err = classify_exception(api_exception(403, "<html>", {"Content-Type": "text/html"}))
    assert type(err) is RetriableError


def test_reasons_never_carry_property_values():
    event = delivery()
    body = ('{"errors":[{"id":"1","status":400,"code":"invalid","title":"Invalid input.",'
            '"detail":"bad value ABCDEFGH23456789","source":{"pointer":"/data/attributes/properties"}}]}')
    err = classify_exception(api_exception(400, body), event)
    assert "ABCDEFGH23456789" not in err.reason and "/data/attributes/properties" in err.reason
    assert scrub("x ABCDEFGH23456789 y", event) == "x [redacted] y"


def test_validation_error_is_our_bug_and_hides_input():
    class M(pydantic.BaseModel):
        value: float
    with pytest.raises(pydantic.ValidationError) as info:
        M(value="ABCDEFGH23456789")
    err = classify_exception(info.value, delivery())
    assert type(err) is FatalError and "bug" in err.reason and "ABCDEFGH23456789" not in err.reason


def test_network_errors_are_retriable():
    assert type(classify_exception(urllib3.exceptions.ReadTimeoutError(None, "/", "slow"))) is RetriableError
    assert type(classify_exception(urllib3.exceptions.ProtocolError("reset"))) is RetriableError
    assert type(classify_exception(ValueError("invalid literal for int()"))) is RetriableError


def test_constructor_defaults_and_repr_hide_the_key():
    m = KlaviyoMessenger("pk_secret_value")
    assert m.revision == SDK_REVISION and m.timeout == (3.0, 15.0)
    assert "pk_secret_value" not in repr(m)
    # the SDK's default host is left alone when no api_url is given
    assert m._client.test_host == ""
    with pytest.raises(ValueError):
        KlaviyoMessenger("")
