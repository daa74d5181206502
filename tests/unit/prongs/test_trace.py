"""``giftsync trace`` over the fakes: a store-issued card, an online card, a card whose CRM
event is missing, and a code that is never printed whole."""
from __future__ import annotations

import dataclasses

import contextlib
import io
import json

import pytest

from giftsync import cli
from giftsync.bootstrap import build_fakes
from giftsync.domain.emails import Metric
from giftsync.ports import FormTable

from fake_settings import fake_settings


pytestmark = pytest.mark.usefixtures("clean_giftsync_logging")


def trace(app, settings, ref):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["trace", ref, "--json"], app_factory=lambda s: app, settings=settings,
                        log_stream=io.StringIO())
    return code, json.loads(out.getvalue())


def test_trace_store_and_online_cards_and_a_missing_crm_event():
    settings = fake_settings(GIFTSYNC_GIFT_CARD_SKUS="GS-CARD")
    app = build_fakes(settings)
    store = app.book.add_store("Downtown", "downtown@example.com")
    app.book.add_card_request(store, "30", 1, recipient_email="rae@example.com", purchaser_email="pat@example.com")
    app.prong("store").run(lambda: True)
    [store_card] = app.book.cards.values()
    code, data = trace(app, settings, store_card.record_id)
    assert code == 0 and data["cards"][0]["first_missing"] is None
    assert "pat@example.com" in data["cards"][0]["chain"][2]["detail"]

    order = app.orders.purchase([{"sku": "GS-CARD", "quantity": 1, "price": "20"}], email="oli@example.com")
    app.prong("shopify-purchases").run(lambda: True)
    whole = app.messenger.of(Metric.GIFT_CARD_DELIVERED)[-1].properties["Code"]
    code, data = trace(app, settings, whole.lower())
    assert code == 0 and data["ref"].endswith(whole[-4:]) and whole not in json.dumps(data)
    assert data["cards"][0]["order"] == order.name
    code, data = trace(app, settings, order.id)
    assert code == 0 and len(data["cards"]) == 1

    # the CRM link broken: its receipt gone (as if the relay never ran)
    online_card = next(c for c in app.book.cards.values() if c.order == order.name)
    [issue] = [r for r in app.book.receipts.values() if r.card_record_id == online_card.record_id]
    assert issue.extra["crm"]["receipt"] == f"crm:issued:{online_card.shopify_id}"   # folded into ISSUE
    app.book.receipts[issue.receipt_id] = dataclasses.replace(
        issue, extra={k: v for k, v in issue.extra.items() if k != "crm"})
    code, data = trace(app, settings, online_card.shopify_id)
    assert code == 1 and data["cards"][0]["first_missing"] == "CRM event sent"
    code, data = trace(app, settings, "NOSUCHCARD23")
    assert code == 1 and data["cards"] == []
    assert app.book.fields(FormTable.CARD_REQUESTS, next(iter(app.book.forms[FormTable.CARD_REQUESTS])))["Status"] == "Done"
