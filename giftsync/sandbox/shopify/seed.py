"""Seeding the Shopify twin from a JSON document (see docs/twins/shopify.md for the format).

{
  "shop":      {"currency": "USD", "issueLimit": "3000", "purchaseLimit": "14000"},      (optional)
  "customers": [{"id"?, "email", "firstName", "lastName", "phone"?, "tags"?}],
  "products":  [{"sku", "title", "price", "isGiftCard"?: false, "giftsync"?: true}],
  "giftCards": [{"id"?, "code", "initialValue", "balance"?, "currency"?, "note"?, "expiresOn"?,
                 "enabled"?: true, "source"?: "api_client", "customer"?: email|GID,
                 "createdAt"?, "transactions"?: [{"amount": "-5.00", "note"?, "processedAt"?}]}],
  "orders":    [a purchase body as for POST /__sandbox/shopify/orders, plus "id"?, "name"?, "createdAt"?]
}
Orders are applied after cards, through the same path as the world control, so their gift-card
payments debit the seeded cards.
"""
from __future__ import annotations

from decimal import Decimal

from .values import iso, parse_datetime, split_gid, to_decimal


def apply_seed(app, seed: dict | None) -> None:
    if not seed:
        return
    store = app.store
    world = app.world
    for c in seed.get("customers") or []:
        world.create_customer(email=c.get("email"), firstName=c.get("firstName"), lastName=c.get("lastName"),
                              phone=c.get("phone"), note=c.get("note"), tags=c.get("tags"), id=c.get("id"))
    for p in seed.get("products") or []:
        if not p.get("sku"):
            raise ValueError("seed products need a sku")
        store.data["products"][p["sku"]] = {
            "sku": p["sku"], "title": p.get("title") or p["sku"], "price": str(to_decimal(p["price"])),
            "isGiftCard": bool(p.get("isGiftCard", False)), "giftsync": bool(p.get("giftsync", False)),
            "requiresShipping": bool(p.get("requiresShipping", not p.get("isGiftCard", False)))}
    for g in seed.get("giftCards") or []:
        num = None
        if g.get("id") is not None:
            parts = split_gid(g["id"]) if isinstance(g["id"], str) else None
            num = parts[1] if parts else int(g["id"])
        customer = world._customer_ref(g["customer"]) if g.get("customer") else None
        initial = to_decimal(g.get("initialValue", g.get("balance")))
        created = iso(parse_datetime(g["createdAt"])) if g.get("createdAt") else None
        card = store.add_card(amount=initial, currency=g.get("currency") or app.shop_currency, code=g.get("code"),
                              source=g.get("source", "api_client"), note=g.get("note"),
                              expires_on=g.get("expiresOn"), customer=customer["num"] if customer else None,
                              num=num, created_at=created)
        for t in g.get("transactions") or []:
            amount = to_decimal(t["amount"])
            store.add_card_transaction(card, kind="credit" if amount > 0 else "debit", amount=amount,
                                       note=t.get("note"),
                                       processed_at=iso(parse_datetime(t["processedAt"])) if t.get("processedAt")
                                       else None, bump_updated_at=False)
        if "balance" in g and g.get("initialValue") is not None:
            diff = to_decimal(g["balance"]) - to_decimal(card["balance"])
            if diff != Decimal(0):
                store.add_card_transaction(card, kind="credit" if diff > 0 else "debit", amount=diff,
                                           note="seed balance", bump_updated_at=False)
        if g.get("enabled") is False:
            card["enabled"] = False
            card["deactivatedAt"] = card["updatedAt"]
    for o in seed.get("orders") or []:
        world.purchase(o)
