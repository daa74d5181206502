"""Mirroring a card that exists in Shopify but not (or without its hash) in Airtable —
a Shopify-native card met for the first time in a shop or a balance check."""
from __future__ import annotations

import dataclasses
import logging
from datetime import datetime

from ..crashpoints import reach
from ..domain.cards import CardKind, CardSource, MirrorCard, ShopifyCard
from ..domain.ledger import Activity, Channel
from .context import StoreContext

log = logging.getLogger("giftsync.mirror")


def mirror_shopify_card(ctx: StoreContext, shop: ShopifyCard, code: str, *, point: str, source: str,
                        store_record_id: str | None = None, read_at: datetime | None = None) -> MirrorCard:
    """Save the card in Gift Cards with its hash (upsert on Shopify ID); a MIRROR receipt.

    A new mirror opens with ``shop.balance``; ``Opened At`` records when that balance was read
    (``read_at``, by default now): an online payment processed before it is inside the opening
    balance, and its order's receipt carries no amount (docs/adr/0004-online-ledger.md)."""
    now = ctx.clock.now()
    code_hash = ctx.hasher.hash(code)
    existing = ctx.book.card_by_shopify_id(shop.id)
    if existing is not None:
        card = dataclasses.replace(existing, code_hash=code_hash, last4=shop.last4, balance=shop.balance,
                                   status=shop.status_on(now.date()), last_synced=now)
    else:
        card = MirrorCard(record_id=None, shopify_id=shop.id, last4=shop.last4, balance=shop.balance,
                          code_hash=code_hash, initial_value=shop.initial_value, status=shop.status_on(now.date()),
                          kind=CardKind.DIGITAL, source=CardSource.SHOPIFY_NATIVE,
                          purchaser_email=shop.customer_email, order=shop.order_name, expires_on=shop.expires_on,
                          created=shop.created_at or now, last_synced=now, store_record_id=store_record_id,
                          opened_at=min(read_at, now) if read_at is not None else now)
    reach(point)
    saved = ctx.book.save_cards([card])[0]
    ctx.cards.put([saved])
    suffix = ":hash" if existing is not None else ""
    ctx.write_receipts("redeem.receipt" if point.startswith("redeem") else "check.receipt", [ctx.receipt(
        f"mirror:{shop.id}{suffix}", Activity.MIRROR, channel=Channel.SYSTEM, card_record_id=saved.record_id,
        card_masked=saved.masked, balance_after=shop.balance, store_record_id=store_record_id, source=source,
        outcome="Mirrored", correlation_id=shop.id,
        details="Shopify card mirrored with its code hash" + (" (was mirrored without hash)" if existing else ""))])
    log.info("card mirrored card=%s shopify_id=%s source=%s", saved.masked, shop.id, source)
    return saved
