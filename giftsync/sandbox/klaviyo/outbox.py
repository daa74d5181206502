"""The outbox: for each processed event of a metric with an email template, the email the
flow would send — recipient (the profile's email), subject and body rendered from the
event's properties and the profile."""
from __future__ import annotations

import copy
from typing import Any

from .ids import ulid
from .profiles import STANDARD, now_iso
from .templates import TemplateError, TemplateSet, to_text


def _properties_text(props: dict) -> str:
    lines = []
    for k, v in props.items():
        if k == "$extra":
            continue
        lines.append(f"{k}: {to_text(v)}")
    return "\n".join(lines)


def render_context(metric: str, event: dict, profile: dict) -> dict:
    props = copy.deepcopy(event.get("properties") or {})
    ev = dict(props)
    if isinstance(props.get("$extra"), dict) and "extra" not in ev:
        ev["extra"] = props["$extra"]
    if event.get("value") is not None:
        ev.setdefault("$value", event["value"])
    if event.get("value_currency") is not None:
        ev.setdefault("$value_currency", event["value_currency"])
    if event.get("unique_id") is not None:
        ev.setdefault("$event_id", event["unique_id"])
    person = {f: profile.get(f) for f in STANDARD}
    person.update({"id": profile["id"], "location": profile.get("location") or {}})
    for k, v in (profile.get("properties") or {}).items():
        person.setdefault(k, v)
    ctx: dict[str, Any] = {"event": ev, "person": person, "metric": metric,
                           "properties_text": _properties_text(props)}
    for f in STANDARD:  # {{ first_name }} / {{ email }} as in Klaviyo
        ctx.setdefault(f, profile.get(f))
    return ctx


class Outbox:
    def __init__(self, templates: TemplateSet, *, unknown_metrics: bool = False) -> None:
        self.templates = templates
        self.unknown_metrics = unknown_metrics
        self.items: list[dict] = []

    def deliver(self, event: dict, profile: dict) -> tuple[str | None, str]:
        """Render the email for an accepted event. Returns (outbox id or None, status)."""
        metric = event["metric"]
        tpl = self.templates.get(metric)
        if event.get("backfill"):
            return None, "backfill: flows not triggered"
        if tpl is None and not self.unknown_metrics:
            return None, "no template for this metric"
        if tpl is not None and not tpl.email:
            return None, "metric sends no email"
        to = profile.get("email")
        if not to:
            return None, "profile has no email"
        ctx = render_context(metric, event, profile)
        try:
            if tpl is None:
                subject, body = self.templates.render_fallback(ctx)
            else:
                subject, body = self.templates.render(tpl, ctx)
            error = None
        except (TemplateError, RecursionError) as exc:
            subject, body, error = metric, "", f"template error: {exc}"
        item = {
            "id": ulid(),
            "time": now_iso(),
            "metric": metric,
            "to": to,
            "subject": subject,
            "body": body,
            "unique_id": event.get("unique_id"),
            "properties": copy.deepcopy(event.get("properties") or {}),
            "profile": profile["id"],
            "event": event["id"],
            "audience": tpl.audience if tpl is not None else "",
        }
        if error:
            item["error"] = error
        self.items.append(item)
        return item["id"], "sent"
