"""The benchmark's machinery on a very small workload: the report's structure and that its
counts add up. No timing assertions (figures depend on the machine)."""
from __future__ import annotations

import json

import pytest

from giftsync.bench.report import table, targets
from giftsync.adapters.airtable.mapping import order_entry_fields
from giftsync.bench.runner import Scenario, ScenarioConfig, _unique_ids, classify, percentile, purchases_done
from giftsync.ports import OrderEntry, OrderKind, OrderStatus
from giftsync.prongs.online import order_key


def test_percentile_and_unique_ids():
    assert percentile([], 0.5) is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([5.0], 0.95) == 5.0
    body = json.dumps({"data": {"attributes": {"unique_id": "redemption:recA:store", "properties": {}}}})
    assert _unique_ids(body) == ["redemption:recA:store"]
    assert _unique_ids("not json") == []


def test_purchases_done_counts_finished_purchase_rows_as_the_adapter_writes_them():
    def row(kind: OrderKind, n: int, status: OrderStatus) -> dict:
        gid = f"gid://shopify/Order/{n}"
        return {"id": f"rec{n}", "fields": order_entry_fields(OrderEntry(
            order_key=order_key(kind, gid), order=f"#{n}", shopify_id=gid, kind=kind, status=status))}
    rows = [row(OrderKind.PURCHASE, 1, OrderStatus.DONE), row(OrderKind.PURCHASE, 2, OrderStatus.DONE),
            row(OrderKind.PURCHASE, 3, OrderStatus.PROCESSING), row(OrderKind.REDEMPTION, 4, OrderStatus.DONE)]
    assert purchases_done(rows) == 2


def test_classify_sorts_requests_by_the_work_they_served():
    logs = {
        "airtable": [
            {"path": "/v0/app/Store Redemptions", "body": "", "query": {}, "method": "GET"},
            {"path": "/v0/app/Gift Cards", "body": "", "query": {"filterByFormula": ["{Code Hash}='x'"]}, "method": "GET"},
            {"path": "/v0/app/Receipts", "body": '"Source": "Card Requests/recBulk"', "query": {}, "method": "PATCH"},
            {"path": "/v0/app/Status", "body": "", "query": {}, "method": "PATCH"},
            # the store job's list of new card requests runs every 5 s, bulk or not: not the bulk's
            {"path": "/v0/app/Card Requests", "body": "", "query": {}, "method": "GET"},
            {"path": "/v0/app/Card Requests", "body": '{"records": [{"id": "recBulk"}]}', "query": {},
             "method": "PATCH"},
        ],
        "shopify": [{"route": "giftCardDebit", "body": "giftsync:recR"},
                    {"route": "giftCardCreate", "body": "giftsync:recBulk:0"},
                    {"route": "orders", "body": ""}],
        "klaviyo": [{"body": "redemption:recR:store"}, {"body": "request:recBulk:deliver:0"}, {"body": "x"}],
    }
    out = classify(logs, "recBulk")
    assert out["airtable"] == {"redemption": 2, "bulk": 2, "other": 2}
    assert out["shopify"] == {"redemption": 1, "bulk": 1, "other": 1}
    assert out["klaviyo"] == {"redemption": 1, "bulk": 1, "other": 1}


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("mode", ["giftsync", "baseline"])
def test_bench_smoke(tmp_path, mode):
    cfg = ScenarioConfig(mode=mode, bulk=3, orders=1, rate=1.0, window=6.0, max_load=12.0, drain=10.0,
                         warmup=1.0, idle_seconds=1.0, root=str(tmp_path),
                         daemon_env={"GIFTSYNC_STORE_INTERVAL": "1", "GIFTSYNC_REDEMPTION_POLL_SECONDS": "1"})
    result = Scenario(cfg).run()

    red = result["redemptions"]
    assert red["submitted"] > 0
    assert red["finished"] + red["unfinished"] == red["submitted"]
    assert sum(red["outcomes"].values()) == red["submitted"]
    if red["finished"]:
        assert red["p50"] <= red["p95"] <= red["max"]
    assert result["orders_placed"] == 1 and result["submit_errors"] == 0 and 0 <= result["orders_done"] <= 1
    assert 0 <= result["orders_done_by_mark"] <= result["orders_done"] and result["orders_mark_seconds"] == 16.0
    bulk = result["bulk_request"]
    assert bulk["record"].startswith("rec") and 0 <= bulk["cards_issued"] <= 3
    for service, counts in result["requests"]["by_service"].items():
        assert counts["total"] == counts["redemption"] + counts["bulk"] + counts["other"], service
    assert result["requests"]["by_service"]["shopify"]["redemption"] >= red["finished"]   # a debit each
    assert result["429s"] == result["requests"]["status_429"] + result["shopify_throttled"]
    d = result["daemon"]
    assert d["peak_rss_mb"] > 0 and d["cpu_seconds"] >= 0 and d["idle_cpu_percent"] is not None

    report = {"started": "test", "quick": True, "machine_before": {}, "results": [result]}
    report["targets"] = targets(report["results"])
    text = table(report)
    assert mode in text and "p95 s" in text and "orders @mark" in text
    assert f"| {result['orders_done_by_mark']}/1" in text and f"| {result['orders_done']}/1" in text
    json.dumps(report, default=str)
