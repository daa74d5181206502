"""Profiles: storage, identifier matching, merging (create / update / upsert / from events) and
the JSON:API resource the SDK parses (reference §3.2: every resource carries ``links.self``)."""
from __future__ import annotations

import copy
from datetime import datetime, timezone
from typing import Any

from .ids import ulid
from .validation import ApiError, error_object

STANDARD = ("email", "phone_number", "external_id", "first_name", "last_name", "organization",
            "locale", "title", "image")
HIDDEN_IDENTIFIERS = ("anonymous_id", "_kx")
# identifiers looked up in this order
MATCH_ORDER = ("email", "phone_number", "external_id", "anonymous_id", "_kx")
UNIQUE = ("email", "phone_number", "external_id")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _norm(field: str, value: Any) -> Any:
    return value.strip().lower() if field == "email" and isinstance(value, str) else value


def duplicate_error(profile_id: str) -> ApiError:
    """The 409 body of reference §3.4."""
    return ApiError(409, [error_object(409, "A profile already exists with one of these identifiers.",
                                       code="duplicate_profile", title="Conflict.", pointer="/data/attributes",
                                       links={}, meta={"duplicate_profile_id": profile_id})])


def not_found_error(profile_id: str) -> ApiError:
    return ApiError.one(404, f"A profile with id {profile_id} does not exist.", pointer="/data/")


class ProfileStore:
    def __init__(self) -> None:
        self.profiles: dict[str, dict] = {}

    # -- lookup --------------------------------------------------------------------------
    def find_by(self, field: str, value: Any) -> dict | None:
        if value in (None, ""):
            return None
        want = _norm(field, value)
        for p in self.profiles.values():
            if _norm(field, p.get(field)) == want:
                return p
        return None

    def owners(self, attrs: dict, fields: tuple[str, ...] = UNIQUE) -> dict[str, dict]:
        """identifier field → the profile that already holds attrs[field]."""
        found = {}
        for f in fields:
            p = self.find_by(f, attrs.get(f))
            if p is not None:
                found[f] = p
        return found

    def match(self, profile_id: str | None, attrs: dict) -> dict | None:
        if profile_id and profile_id in self.profiles:
            return self.profiles[profile_id]
        for f in MATCH_ORDER:
            p = self.find_by(f, attrs.get(f))
            if p is not None:
                return p
        return None

    def get(self, profile_id: str) -> dict | None:
        return self.profiles.get(profile_id)

    # -- changes -------------------------------------------------------------------------
    def new(self, attrs: dict, meta: dict | None = None, profile_id: str | None = None) -> dict:
        ts = now_iso()
        p: dict[str, Any] = {"id": profile_id or ulid()}
        for f in STANDARD + HIDDEN_IDENTIFIERS:
            p[f] = None
        p.update({"location": {}, "properties": {}, "created": ts, "updated": ts, "last_event_date": None})
        self.apply(p, attrs, meta, touch=False)
        self.profiles[p["id"]] = p
        return p

    def apply(self, p: dict, attrs: dict, meta: dict | None = None, *, touch: bool = True,
              skip: tuple[str, ...] = ()) -> None:
        """Merge: a present key sets (``null`` clears), a missing key keeps; properties and
        location merge key-wise; then ``meta.patch_properties`` (append / unappend / unset)."""
        for f in STANDARD + HIDDEN_IDENTIFIERS:
            if f in attrs and f not in skip:
                p[f] = attrs[f]
        if "location" in attrs:
            if attrs["location"] is None:
                p["location"] = {}
            else:
                for k, v in attrs["location"].items():
                    if v is None:
                        p["location"].pop(k, None)
                    else:
                        p["location"][k] = v
        if "properties" in attrs:
            if attrs["properties"] is None:
                p["properties"] = {}
            else:
                p["properties"].update(copy.deepcopy(attrs["properties"]))
        patch = (meta or {}).get("patch_properties") or {}
        props = p["properties"]
        for k, v in (patch.get("append") or {}).items():
            current = props.get(k)
            current = [] if current is None else (current if isinstance(current, list) else [current])
            current.extend(v if isinstance(v, list) else [v])
            props[k] = current
        for k, v in (patch.get("unappend") or {}).items():
            if isinstance(props.get(k), list):
                drop = v if isinstance(v, list) else [v]
                props[k] = [x for x in props[k] if x not in drop]
        unset = patch.get("unset")
        for k in ([unset] if isinstance(unset, str) else (unset or [])):
            props.pop(k, None)
        if touch:
            p["updated"] = now_iso()

    def create(self, attrs: dict) -> dict:
        owners = self.owners(attrs)
        if owners:
            raise duplicate_error(next(iter(owners.values()))["id"])
        return self.new(attrs)

    def update(self, profile_id: str, attrs: dict, meta: dict | None) -> dict:
        p = self.profiles.get(profile_id)
        if p is None:
            raise not_found_error(profile_id)
        for f, owner in self.owners(attrs).items():
            if owner["id"] != profile_id:
                raise duplicate_error(owner["id"])
        self.apply(p, attrs, meta)
        return p

    def upsert(self, profile_id: str | None, attrs: dict, meta: dict | None) -> tuple[dict, bool]:
        """profile-import: returns (profile, created)."""
        if profile_id:
            if profile_id not in self.profiles:
                raise not_found_error(profile_id)
            return self.update(profile_id, attrs, meta), False
        owners = self.owners(attrs, UNIQUE + ("_kx",))
        ids = {p["id"] for p in owners.values()}
        if len(ids) > 1:
            first = owners[next(iter(owners))]
            raise duplicate_error(first["id"])
        if ids:
            return self.update(ids.pop(), attrs, meta), False
        return self.new(attrs, meta), True

    def from_event(self, profile_id: str | None, attrs: dict, meta: dict | None) -> dict:
        """An event creates its profile or updates the matched one. Identifiers that already
        belong to *another* profile are not moved (Klaviyo decides such conflicts later)."""
        p = self.match(profile_id, attrs)
        if p is None:
            clash = self.owners(attrs, MATCH_ORDER)
            clean = {k: v for k, v in attrs.items() if k not in clash}
            return self.new(clean, meta)
        skip = tuple(f for f, owner in self.owners(attrs, MATCH_ORDER).items() if owner["id"] != p["id"])
        self.apply(p, attrs, meta, skip=skip)
        return p

    # -- output --------------------------------------------------------------------------
    @staticmethod
    def resource(p: dict, base: str) -> dict:
        attrs = {f: p.get(f) for f in STANDARD}
        attrs.update({"created": p["created"], "updated": p["updated"],
                      "last_event_date": p.get("last_event_date"),
                      "location": copy.deepcopy(p.get("location") or {}),
                      "properties": copy.deepcopy(p.get("properties") or {})})
        return {"type": "profile", "id": p["id"], "attributes": attrs, "relationships": {},
                "links": {"self": f"{base}/api/profiles/{p['id']}/"}}

    def snapshot(self) -> list[dict]:
        return copy.deepcopy(list(self.profiles.values()))

    def restore(self, items: list[dict]) -> None:
        self.profiles = {p["id"]: copy.deepcopy(p) for p in items}
