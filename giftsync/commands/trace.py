"""``giftsync trace <code | card id | order>``: the chain of one card, link by link.

    created in Shopify → mirrored in Airtable → CRM event sent (with which identity) → emails sent

and the first link that is missing. Klaviyo cannot cheaply list what giftsync sent, so the
CRM link is read from the ``crm:issued:<shopify id>`` receipt the relay writes (or the CRM
outcome folded into the card's ISSUE/ACTIVATE row, ``crm.issued_link``); the email
link from the Online Orders registry (an order is only Done once its emails were accepted),
from EMAIL_FAILED receipts, and is "n/a" for Shopify-native cards (Shopify emails those).

The argument may be a whole code (never printed: only its masked form), a Gift Cards record
id (``rec…``), a Shopify card id (GID or number), or an order (``#1001`` or its GID). Reads
only; it does not take the lease. Exit 0 when every chain is complete, 1 when a link is
missing or nothing matches.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..domain.cards import CardSource, MirrorCard, ShopifyCard
from ..domain.codes import is_valid_code, last4, mask, normalise_code
from ..domain.ledger import Activity
from ..ports import OrderKind, OrderStatus
from ..prongs import crm
from ..prongs.online import order_key
from . import EXIT_FAILED, EXIT_OK, add_command, make_app, settings_and_logging

OK, MISSING, NA = "ok", "missing", "n/a"
LINKS = ("created in Shopify", "mirrored in Airtable", "CRM event sent", "emails sent")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = add_command(subparsers, "trace", help="show the chain of one card: Shopify → Airtable → CRM → emails",
                    description=(
                        "Follows one card (or every card of an order): created in Shopify, mirrored in "
                        "Airtable, CRM 'Gift Card Issued' event sent (and on whose profile), emails sent; "
                        "names the first link that is missing. REF is a whole code (only its masked form "
                        "is printed), a Gift Cards record id (rec…), a Shopify card id, or an order "
                        "(#1001 or gid://shopify/Order/…). Exit 0 when every chain is complete, 1 otherwise."))
    p.add_argument("ref", metavar="REF", help="code | card id | order")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


# -- finding the cards ---------------------------------------------------------------------------

def _is_record_id(text: str) -> bool:
    return len(text) == 17 and text.startswith("rec") and text.isalnum()


def find(app: Any, ref: str) -> tuple[str, list[tuple[MirrorCard | None, ShopifyCard | None]]]:
    """(what the ref was taken for, [(mirror, shopify card)])."""
    book, ledger = app.book, app.ledger
    text = ref.strip()
    if _is_record_id(text):
        mirror = book.card(text)
        return "card record", [(mirror, ledger.get_card(mirror.shopify_id) if mirror else None)] if mirror else []
    if text.startswith("gid://shopify/GiftCard/") or (text.isdigit() and len(text) >= 6 and not text.startswith("#")):
        gid = text if text.startswith("gid://") else f"gid://shopify/GiftCard/{text}"
        shop = ledger.get_card(gid)
        mirror = book.card_by_shopify_id(gid)
        return "Shopify card", [(mirror, shop)] if (mirror or shop) else []
    if text.startswith("#") or text.startswith("gid://shopify/Order/"):
        return "order", _order_cards(app, text)
    code = normalise_code(text)
    if not is_valid_code(code):
        return "code", []
    mirror = book.card_by_hash(app.hasher.hash(code)) if app.hasher else None
    shop = ledger.get_card(mirror.shopify_id) if mirror else ledger.find_by_code(code)
    if mirror is None and shop is not None:
        mirror = book.card_by_shopify_id(shop.id)
    return "code", [(mirror, shop)] if (mirror or shop) else []


def _order_cards(app: Any, text: str) -> list[tuple[MirrorCard | None, ShopifyCard | None]]:
    book, ledger = app.book, app.ledger
    mirrors: list[MirrorCard] = []
    if text.startswith("gid://"):
        entry = book.order_entry(order_key(OrderKind.PURCHASE, text))
        if entry is not None:
            mirrors = [c for c in (book.card(rid) for rid in entry.card_ids) if c is not None]
            if not mirrors:
                mirrors = book.cards_by_source_record(entry.order_key)
    else:
        mirrors = [c for c in book.iter_cards() if c.order == text]
    return [(m, ledger.get_card(m.shopify_id)) for m in mirrors]


# -- the chain -----------------------------------------------------------------------------------

def chain(app: Any, mirror: MirrorCard | None, shop: ShopifyCard | None) -> dict:
    book = app.book
    links: list[dict] = []
    shopify_id = (shop.id if shop else None) or (mirror.shopify_id if mirror else "")
    masked = mask(shop.last4) if shop else (mirror.masked if mirror else "")
    links.append({"link": LINKS[0], "status": OK if shop else MISSING,
                  "detail": f"{shop.id}, balance {shop.balance}" + ("" if shop.enabled else ", disabled")
                  if shop else "no card with this id in Shopify"})
    receipts = book.receipts_for_card(mirror.record_id) if mirror and mirror.record_id else []
    if mirror is None:
        links.append({"link": LINKS[1], "status": MISSING, "detail": "no Gift Cards row for this card"})
    else:
        same = shop is None or (shop.balance == mirror.balance)
        detail = f"{mirror.record_id}, source {mirror.source.value}, balance {mirror.balance}"
        if not same:
            detail += f" (Shopify says {shop.balance}: the next reconcile pass corrects it)"
        links.append({"link": LINKS[1], "status": OK, "detail": detail})
    issued = crm.issued_link(receipts, shopify_id)
    if issued is None:
        links.append({"link": LINKS[2], "status": MISSING,
                      "detail": "no 'Gift Card Issued' event recorded for this card"})
    elif issued.outcome == crm.SENT:
        who = issued.identity or "?"
        role = issued.identity_role or "purchaser"
        links.append({"link": LINKS[2], "status": OK,
                      "detail": f"'Gift Card Issued' on {who} ({role}), {issued.time:%Y-%m-%d %H:%M}Z"})
    else:
        links.append({"link": LINKS[2], "status": MISSING, "detail": f"{issued.outcome}: {issued.details}"})
    links.append(_emails(app, mirror, receipts))
    first = next((l["link"] for l in links if l["status"] == MISSING), None)
    return {"card": masked, "shopify_id": shopify_id, "record_id": mirror.record_id if mirror else None,
            "order": mirror.order if mirror else "", "chain": links, "first_missing": first}


def _emails(app: Any, mirror: MirrorCard | None, receipts: list) -> dict:
    if mirror is None:
        return {"link": LINKS[3], "status": MISSING, "detail": "unknown: the card is not mirrored"}
    failed = [r for r in receipts if r.activity is Activity.EMAIL_FAILED]
    if mirror.source is CardSource.SHOPIFY_NATIVE:
        return {"link": LINKS[3], "status": NA, "detail": "Shopify emails its own gift cards"}
    if mirror.source_record.startswith("purchase:"):
        entry = app.book.order_entry(mirror.source_record)
        if entry is not None and entry.status in (OrderStatus.DONE, OrderStatus.WAITING):
            return {"link": LINKS[3], "status": OK,
                    "detail": f"delivery (and any purchaser confirmation) accepted; order {entry.order} "
                              f"{entry.status.value}"}
        state = entry.status.value if entry else "not in the registry"
        return {"link": LINKS[3], "status": MISSING,
                "detail": f"order {state}: delivery not confirmed"
                          + (f"; {len(failed)} failed email(s) in Receipts" if failed else "")}
    if failed:
        return {"link": LINKS[3], "status": MISSING,
                "detail": f"{len(failed)} failed email(s) in Receipts, last: {failed[-1].details[:120]}"}
    return {"link": LINKS[3], "status": OK, "detail": "no failed email recorded for this card"}


def trace(app: Any, ref: str) -> dict:
    taken_as, pairs = find(app, ref)
    shown = ref.strip()
    if taken_as == "code":
        code = normalise_code(shown)
        shown = mask(last4(code)) if code else ""
    return {"ref": shown, "taken_as": taken_as, "cards": [chain(app, m, s) for m, s in pairs]}


def render(data: dict) -> str:
    if not data["cards"]:
        return f"No card found for {data['ref']} (taken as {data['taken_as']})."
    lines: list[str] = []
    for card in data["cards"]:
        head = f"Card {card['card']}  {card['shopify_id']}" + (f"  order {card['order']}" if card["order"] else "")
        lines.append(head)
        for link in card["chain"]:
            mark = {"ok": "✔", "missing": "✘", "n/a": "–"}[link["status"]]
            lines.append(f"  {mark} {link['link']:<21} {link['detail']}")
        lines.append(f"  first missing link: {card['first_missing']}" if card["first_missing"]
                     else "  chain complete")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    settings = settings_and_logging(args)
    app = make_app(args, settings, one_off=True)
    try:
        data = trace(app, args.ref)
    finally:
        app.close()
    print(json.dumps(data, indent=2, default=str) if args.json else render(data), file=sys.stdout)
    complete = bool(data["cards"]) and all(c["first_missing"] is None for c in data["cards"])
    return EXIT_OK if complete else EXIT_FAILED
