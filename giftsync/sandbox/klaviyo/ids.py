"""Identifiers in Klaviyo's formats: 26-character ULIDs for profiles, events and jobs,
6-character ids for metrics and accounts."""
from __future__ import annotations

import secrets
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_SHORT = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def ulid(now: float | None = None) -> str:
    """A ULID: 48-bit millisecond timestamp + 80 random bits, Crockford base32 (e.g. 01GDDKASAP8TKDDA2GRZDSVP4H)."""
    ms = int((time.time() if now is None else now) * 1000)
    value = (ms << 80) | secrets.randbits(80)
    out = []
    for _ in range(26):
        out.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(out))


def short_id(length: int = 6) -> str:
    """A metric / account style id such as ``Y6Hmxn``."""
    return "".join(secrets.choice(_SHORT) for _ in range(length))
