"""The benchmark's count of online purchases Done by a fixed mark (from the Airtable twin's log)."""
import json

from giftsync.bench.runner import orders_finished_at, purchases_done


def _row(rid, key, status):
    return {"id": rid, "fields": {"Order Key": key, "Status": status}}


def _entry(t, method, body, path="/v0/app1/Online Orders", status=200):
    return {"time": t, "method": method, "path": path, "status": status, "body": json.dumps(body)}


def test_done_by_mark_counts_only_done_writes_before_the_mark():
    rows = [_row("rec1", "purchase:1", "Done"), _row("rec2", "purchase:2", "Done"),
            _row("rec3", "purchase:3", "Done"), _row("rec4", "purchase:4", "Processing"),
            _row("rec5", "redemption:5", "Done"), _row("rec6", "purchase:6", "Done")]
    log = [
        _entry(10.0, "PATCH", {"records": [{"id": "rec1", "fields": {"Status": "Done"}},
                                           {"id": "rec5", "fields": {"Status": "Done"}}]}),
        _entry(11.0, "PATCH", {"records": [{"id": "rec2", "fields": {"Status": "Processing"}}]}),
        _entry(30.0, "PATCH", {"records": [{"id": "rec2", "fields": {"Status": "Done"}}]}),
        # an upsert names the row by its key, not its id
        _entry(12.0, "PATCH", {"performUpsert": {"fieldsToMergeOn": ["Order Key"]},
                               "records": [{"fields": {"Order Key": "purchase:3", "Status": "Done"}}]}),
        _entry(5.0, "PATCH", {"records": [{"id": "rec6", "fields": {"Status": "Done"}}]}, status=422),
        _entry(6.0, "PATCH", {"records": [{"id": "rec6", "fields": {"Status": "Done"}}]},
               path="/v0/app1/Store Redemptions"),
    ]
    done_at = orders_finished_at(log)
    assert done_at["rec1"] == 10.0 and done_at["rec2"] == 30.0 and done_at["purchase:3"] == 12.0
    assert "rec6" not in done_at                   # refused write, and another table's write
    assert purchases_done(rows) == 4               # Done at the end: purchases only
    assert purchases_done(rows, done_at=done_at, by=20.0) == 2      # rec1, purchase:3
    assert purchases_done(rows, done_at=done_at, by=40.0) == 3      # + rec2; rec6's Done write unseen
    assert purchases_done(rows, done_at=done_at, by=9.0) == 0
