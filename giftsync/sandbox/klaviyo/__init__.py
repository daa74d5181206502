"""Local twin of Klaviyo's API (events, bulk events, profiles, metrics, accounts) with an outbox
of the emails its flows would send. See docs/twins/klaviyo.md.

    from giftsync.sandbox import start_twin
    twin = start_twin("klaviyo", tiers={"events.create": [2, 100]})
    KlaviyoAPI("pk_test", test_host=twin.url)
"""
from __future__ import annotations

from typing import Any

from .app import CURRENT_REVISION, KlaviyoTwin
from .templates import Template, TemplateError, TemplateSet, render

__all__ = ["create_app", "KlaviyoTwin", "CURRENT_REVISION", "Template", "TemplateError", "TemplateSet", "render"]


def create_app(seed: dict | None = None, **options: Any) -> KlaviyoTwin:
    """Build the Klaviyo twin. Options (all keyword):

    api_key: str | None = None         the one accepted private key; None = any key starting "pk_"
    scopes: list[str] | None = None    scopes of that key (None = all); a missing scope gives 403
    access_token: str | None = None    an OAuth token accepted as "Authorization: Bearer <token>"
    rate_limit: bool = True            enforce the per-operation burst/steady windows
    tiers: dict | None = None          route key -> "XS".."XL" | [burst, steady] | {"burst", "steady"}
    revision_check: bool = True        require a valid "revision" header
    min_revision: str = "2024-10-15"   older revisions get 404 "No valid revisions found for method"
    templates: dict | None = None      extra metric templates (merged over templates.json)
    templates_path: str | None = None  another templates file instead of the packaged one
    outbox_unknown_metrics: bool = False  metrics without a template send the fallback email
    bulk_job_body: bool = False        202 from bulk create carries a job resource (real: empty)
    dedupe_by_time: bool = True        events without unique_id dedupe on time-to-the-second
    account: dict | None = None        fields of the account GET /api/accounts returns
    """
    return KlaviyoTwin(seed, **options)
