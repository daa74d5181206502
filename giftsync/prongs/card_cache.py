"""The cards the daemon already knows, by code hash: a bounded, thread-safe LRU that lets a
redemption poll skip the Gift Cards lookup for codes it has met (docs/adr/0006-card-identity-cache.md).

What an entry is trusted for is what never changes once a card is mirrored: its record id,
Shopify ID, last 4 (masked code), currency and code hash. Everything mutable is decided
elsewhere: Shopify refuses a debit on a card deactivated or expired since (its status), the
money is Shopify's answer (never the cached ``balance``), and the holder emails of a CRM event
are at most ``max_age`` old. Only active cards with a record id and a code hash are kept: a
disabled card is always looked up.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from collections import OrderedDict
from typing import Callable, Iterable

from ..domain.cards import CardStatus, MirrorCard

DEFAULT_SIZE = 5_000                 # entries (a few hundred bytes each)
DEFAULT_MAX_AGE = 6 * 3600.0         # seconds: an edit of a holder email in Airtable is met within this


class CardCache:
    """{code hash: (MirrorCard, monotonic time stored)}, least recently used dropped first;
    an entry older than ``max_age`` counts as absent. Cards go in and come out as copies."""

    def __init__(self, size: int = DEFAULT_SIZE, max_age: float = DEFAULT_MAX_AGE,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if size < 0 or max_age < 0:
            raise ValueError("size and max_age must be >= 0")
        self.size = size
        self.max_age = max_age
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[MirrorCard, float]] = OrderedDict()
        self._by_record: dict[str, str] = {}     # card record id → code hash (for drop by record id)

    def get_many(self, code_hashes: Iterable[str]) -> dict[str, MirrorCard]:
        """{hash: card} for the hashes held and not older than ``max_age`` (the rest are absent)."""
        now = self._monotonic()
        out: dict[str, MirrorCard] = {}
        with self._lock:
            for code_hash in code_hashes:
                entry = self._entries.get(code_hash)
                if entry is None:
                    continue
                card, stored = entry
                if now - stored >= self.max_age:
                    self._remove(code_hash)
                    continue
                self._entries.move_to_end(code_hash)
                out[code_hash] = dataclasses.replace(card)
        return out

    def put(self, cards: Iterable[MirrorCard | None]) -> None:
        """Keep the active cards that have a record id and a code hash; a card of another status
        removes its hash's entry (a disabled card is always looked up)."""
        now = self._monotonic()
        with self._lock:
            for card in cards:
                if card is None or not card.code_hash:
                    continue
                self._remove(card.code_hash)
                if not card.record_id or card.status is not CardStatus.ACTIVE or self.size == 0:
                    continue
                self._remove_record(card.record_id)
                self._entries[card.code_hash] = (dataclasses.replace(card), now)
                self._by_record[card.record_id] = card.code_hash
                while len(self._entries) > self.size:
                    self._remove(next(iter(self._entries)))

    def drop(self, *, hashes: Iterable[str] = (), record_ids: Iterable[str | None] = ()) -> None:
        """Forget the entries of these code hashes and of these card record ids."""
        with self._lock:
            for code_hash in hashes:
                self._remove(code_hash)
            for record_id in record_ids:
                if record_id:
                    self._remove_record(record_id)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._by_record.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    # -- with the lock held -------------------------------------------------------------------
    def _remove(self, code_hash: str) -> None:
        entry = self._entries.pop(code_hash, None)
        if entry is not None and self._by_record.get(entry[0].record_id) == code_hash:
            del self._by_record[entry[0].record_id]

    def _remove_record(self, record_id: str) -> None:
        code_hash = self._by_record.pop(record_id, None)
        if code_hash is not None:
            self._entries.pop(code_hash, None)
