"""Events and metrics: processing an accepted event (profile upsert, metric creation,
``unique_id`` deduplication per (profile, metric, unique_id), outbox) as Klaviyo's
asynchronous pipeline would — here immediately, before the 202 is sent."""
from __future__ import annotations

import copy
from datetime import datetime, timezone
from typing import Any

from .ids import short_id, ulid
from .outbox import Outbox
from .profiles import ProfileStore, now_iso
from .validation import ApiError, invalid

INTEGRATION = {"object": "integration", "id": "0rG4eQ", "key": "api", "name": "API", "category": "API"}


def event_value(event: dict) -> float | int | None:
    """The event's monetary value: ``value``, else a numeric ``$value`` property."""
    if event.get("value") is not None:
        return event["value"]
    v = (event.get("properties") or {}).get("$value")
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


class EventStore:
    def __init__(self, profiles: ProfileStore, outbox: Outbox, *, dedupe_by_time: bool = True) -> None:
        self.profiles = profiles
        self.outbox = outbox
        self.dedupe_by_time = dedupe_by_time
        self.events: list[dict] = []
        self.metrics: dict[str, dict] = {}          # name → metric
        self.seen: dict[tuple[str, str, str], str] = {}   # dedupe key → first event id
        self.jobs: list[dict] = []

    # -- metrics -------------------------------------------------------------------------
    def metric(self, name: str) -> dict:
        m = self.metrics.get(name)
        if m is None:
            ts = now_iso()
            m = {"id": short_id(), "name": name, "created": ts, "updated": ts}
            self.metrics[name] = m
        return m

    @staticmethod
    def metric_resource(m: dict, base: str) -> dict:
        return {"type": "metric", "id": m["id"],
                "attributes": {"name": m["name"], "created": m["created"], "updated": m["updated"],
                               "integration": dict(INTEGRATION)},
                "relationships": {},
                "links": {"self": f"{base}/api/metrics/{m['id']}/"}}

    # -- processing ----------------------------------------------------------------------
    def _dedupe_key(self, profile_id: str, metric_id: str, event: dict, when: datetime) -> tuple[str, str, str] | None:
        if event.get("unique_id") is not None:
            return (profile_id, metric_id, "uid:" + event["unique_id"])
        if self.dedupe_by_time:  # Klaviyo's default key: the event time to the second
            return (profile_id, metric_id, "time:" + when.isoformat())
        return None

    @staticmethod
    def check_bulk_duplicates(events: list[dict]) -> None:
        """A unique_id repeated for the same profile and metric fails the whole bulk request."""
        seen: set[tuple[str, str, str]] = set()
        for ev in events:
            if ev.get("unique_id") is None:
                continue
            prof = ev["profile"]
            ident = prof["id"] or next((f"{k}:{str(v).lower()}" for k, v in prof["attributes"].items()
                                        if k in ("email", "phone_number", "external_id", "anonymous_id", "_kx") and v),
                                       "")
            key = (ident, ev["metric"], ev["unique_id"])
            if key in seen:
                raise invalid(f"Duplicate unique_id '{ev['unique_id']}' for the same profile and metric "
                              "in one request.", ev.get("pointer", "/data") + "/attributes/unique_id")
            seen.add(key)

    def process(self, event: dict, *, source: str, job_id: str | None = None) -> dict:
        now = datetime.now(timezone.utc).replace(microsecond=0)
        when = (event.get("time") or now).astimezone(timezone.utc)
        prof_in = event["profile"]
        profile = self.profiles.from_event(prof_in["id"], prof_in["attributes"], prof_in["meta"])
        metric = self.metric(event["metric"])
        key = self._dedupe_key(profile["id"], metric["id"], event, when)
        first = self.seen.get(key) if key else None
        record: dict[str, Any] = {
            "id": ulid(),
            "received": now_iso(),
            "datetime": when.isoformat(),
            "timestamp": int(when.timestamp()),
            "metric": metric["name"],
            "metric_id": metric["id"],
            "profile": profile["id"],
            "email": profile.get("email"),
            "unique_id": event.get("unique_id"),
            "properties": copy.deepcopy(event["properties"]),
            "value": event.get("value"),
            "value_currency": event.get("value_currency"),
            "backfill": bool(event.get("backfill")),
            "source": source,
            "job": job_id,
            "dropped": first is not None,
            "duplicate_of": first,
            "outbox": None,
            "outbox_status": None,
        }
        if first is None:
            if key:
                self.seen[key] = record["id"]
            last = profile.get("last_event_date")
            if last is None or last < record["datetime"]:
                profile["last_event_date"] = record["datetime"]
            record["outbox"], record["outbox_status"] = self.outbox.deliver(record, profile)
        else:
            record["outbox_status"] = "duplicate: not processed"
        self.events.append(record)
        return record

    # -- output --------------------------------------------------------------------------
    def for_profile(self, profile_id: str, include_dropped: bool = False) -> list[dict]:
        return [e for e in self.events if e["profile"] == profile_id and (include_dropped or not e["dropped"])]

    def event_resource(self, e: dict, base: str) -> dict:
        props = copy.deepcopy(e["properties"])
        if e.get("value") is not None:
            props.setdefault("$value", e["value"])
        if e.get("unique_id") is not None:
            props.setdefault("$event_id", e["unique_id"])
        return {"type": "event", "id": e["id"],
                "attributes": {"timestamp": e["timestamp"], "event_properties": props,
                               "datetime": e["datetime"], "uuid": e["id"]},
                "relationships": {"profile": {"data": {"type": "profile", "id": e["profile"]}},
                                  "metric": {"data": {"type": "metric", "id": e["metric_id"]}}},
                "links": {"self": f"{base}/api/events/{e['id']}/"}}

    def snapshot(self) -> dict:
        return {"events": copy.deepcopy(self.events), "metrics": copy.deepcopy(list(self.metrics.values())),
                "jobs": copy.deepcopy(self.jobs)}

    def restore(self, data: dict) -> None:
        self.events = copy.deepcopy(data.get("events") or [])
        self.metrics = {m["name"]: copy.deepcopy(m) for m in data.get("metrics") or []}
        self.jobs = copy.deepcopy(data.get("jobs") or [])
        self.seen = {}
        for e in self.events:
            if e["dropped"]:
                continue
            if e.get("unique_id") is not None:
                self.seen[(e["profile"], e["metric_id"], "uid:" + e["unique_id"])] = e["id"]
            elif self.dedupe_by_time:
                self.seen[(e["profile"], e["metric_id"], "time:" + e["datetime"])] = e["id"]


__all__ = ["EventStore", "event_value", "ApiError"]
