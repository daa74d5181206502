"""What a crash-test run does to the world: one scenario per flow, named by the crash point's
prefix, so that every point of ``giftsync.crashpoints.POINTS`` is reached by one of them.

``prepare(world)`` puts the inputs in place before the daemon starts (form records, orders);
``during(world, daemon)`` acts while it runs (an admin adjustment after the first reconcile
walk, a clean stop for ``lease.release``) and must return as soon as the daemon is gone.
``AFTER_FAULTS`` says, per point, which twin call the point makes next — the call the twin
applies and then hangs on in the "after" half of the matrix.
"""
from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..crashpoints import POINTS

# point → (twin, route key, regex over "METHOD path\nbody") of the call the point guards.
_AT = "airtable"
AFTER_FAULTS: dict[str, tuple[str, str, str | None]] = {
    "redeem.claim": (_AT, "records.update", r"/Store Redemptions\n"),
    "redeem.debit": ("shopify", "giftCardDebit", None),
    "redeem.receipt": (_AT, "records.upsert", r"/Receipts\n"),
    "redeem.balance": (_AT, "records.update", r"/Gift Cards\n"),
    "redeem.finish": (_AT, "records.update", r"/Store Redemptions\n"),
    "redeem.email": ("klaviyo", "events.create", r"Store Redemption Processed"),
    "redeem.notified": (_AT, "records.update", r"/Store Redemptions\n"),
    "redeem.mirror": (_AT, "records.upsert", r"/Gift Cards\n"),
    "redeem.crm": ("klaviyo", "events.create", r"Gift Card Redeemed"),
    "request.claim": (_AT, "records.update", r"/Card Requests\n"),
    "request.create": ("shopify", "giftCardCreate", None),
    "request.mirror": (_AT, "records.upsert", r"/Gift Cards\n"),
    "request.deliver": ("klaviyo", "events.create", r"Gift Card (Delivered|Activated)"),
    "request.crm": ("klaviyo", "events.create", r"Gift Card Issued"),
    "request.receipt": (_AT, "records.upsert", r"/Receipts\n"),
    "request.finish": (_AT, "records.update", r"/Card Requests\n"),
    "request.email": ("klaviyo", "events.create", r"Store Card Request Processed|Gift Card Purchase Confirmed"),
    "request.notified": (_AT, "records.update", r"/Card Requests\n"),
    "check.email": ("klaviyo", "events.create", r"Balance Check Answered"),
    "check.finish": (_AT, "records.update", r"/Balance Checks\n"),
    "check.receipt": (_AT, "records.upsert", r"/Receipts\n"),
    "check.mirror": (_AT, "records.upsert", r"/Gift Cards\n"),
    # the drift is settled by the reconciler's rule: its first write is an ADJUST receipt or the balance
    "check.balance": (_AT, "*", r"^(PATCH|POST|PUT) [^\n]*/(Receipts|Gift Cards)\n"),
    "purchase.register": (_AT, "records.upsert", r"/Online Orders\n"),
    "purchase.create": ("shopify", "giftCardCreate", None),
    "purchase.mirror": (_AT, "records.upsert", r"/Gift Cards\n"),
    "purchase.receipt": (_AT, "records.upsert", r"/Receipts\n"),
    "purchase.deliver": ("klaviyo", "events.create", r"Gift Card Delivered"),
    "purchase.crm": ("klaviyo", "events.create", r"Gift Card Issued"),
    "purchase.email": ("klaviyo", "events.create", r"Gift Card Purchase Confirmed"),
    "purchase.finish": (_AT, "records.upsert", r"/Online Orders\n"),
    "purchase.tag": ("shopify", "tagsAdd", None),
    "purchase.cursor": (_AT, "records.upsert", r"(?s)/Status\n.*watermark:shopify-purchases"),
    "online_redeem.register": (_AT, "records.upsert", r"/Online Orders\n"),
    "online_redeem.receipt": (_AT, "records.upsert", r"/Receipts\n"),
    "online_redeem.balance": (_AT, "records.update", r"/Gift Cards\n"),
    "online_redeem.crm": ("klaviyo", "events.create", r"Gift Card Redeemed"),
    "online_redeem.finish": (_AT, "records.upsert", r"/Online Orders\n"),
    "online_redeem.tag": ("shopify", "tagsAdd", None),
    "online_redeem.cursor": (_AT, "records.upsert", r"(?s)/Status\n.*watermark:shopify-redemptions"),
    "reconcile.receipt": (_AT, "records.upsert", r"/Receipts\n"),
    "reconcile.balance": (_AT, "records.update", r"/Gift Cards\n"),
    "reconcile.status": (_AT, "records.upsert", r"/Gift Cards\n"),
    "reconcile.cursor": (_AT, "records.upsert", r"(?s)/Status\n.*watermark:reconcile"),
    "lease.take": (_AT, "records.upsert", r"(?s)/Status\n.*\"lease\""),
    "lease.renew": (_AT, "records.upsert", r"(?s)/Status\n.*\"lease\""),
    "lease.release": (_AT, "records.upsert", r"(?s)/Status\n.*\"lease\""),
}


def after_rule(point: str, delay: float = 60.0) -> tuple[str, dict]:
    twin, route, match = AFTER_FAULTS[point]
    rule = {"kind": "hang", "route": route, "when": "after", "count": 1, "delay": delay}
    if match:
        rule["match"] = match
    return twin, rule


# -- inputs -------------------------------------------------------------------------------------

def redemption(world: Any, code: str, amount: Any, *, store: int = 0, staff: str = "crashtest") -> str:
    rec = world.airtable_table("Store Redemptions").create(
        {"Code": code, "Amount": amount, "Store": [world.stores[store].record_id], "Staff": staff})
    return rec["id"]


def card_request(world: Any, *, kind: str = "Digital", quantity: int = 1, amount: Any = 25, store: int = 0,
                 recipient: str = "", purchaser: str = "", gift: bool = False, serials: str = "",
                 name: str = "crashtest") -> str:
    fields = {"Request": name, "Store": [world.stores[store].record_id], "Amount": amount, "Quantity": quantity,
              "Kind": kind, "Recipient Name": "Rita Recipient" if recipient else "", "Recipient Email": recipient,
              "Purchaser Name": "Paul Purchaser" if purchaser else "", "Purchaser Email": purchaser,
              "Is Gift": gift, "Physical Serials": serials, "Staff": "crashtest"}
    return world.airtable_table("Card Requests").create({k: v for k, v in fields.items() if v not in ("", None)})["id"]


def balance_check(world: Any, code: str, email: str) -> str:
    return world.airtable_table("Balance Checks").create({"Code": code, "Email": email})["id"]


def status_row(world: Any, name: str) -> dict | None:
    from pyairtable.formulas import match
    return world.airtable_table("Status").first(formula=match({"Name": name}))


def wait_while_alive(daemon: Any, predicate: Callable[[], Any], timeout: float = 30.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline and daemon.alive():
        try:
            if predicate():
                return True
        except Exception:  # noqa: BLE001 — keep polling
            pass
        time.sleep(0.1)
    return False


def lease_taken(daemon: Any) -> bool:
    return any("lease taken" in line for line in daemon.output())


# -- scenarios ----------------------------------------------------------------------------------

@dataclass
class Scenario:
    name: str
    prepare: Callable[[Any], list[str]]                       # returns whole codes it typed (for leak scans)
    during: Callable[[Any, Any], None] = lambda world, daemon: None
    shopify_options: dict = field(default_factory=dict)     # twin options this scenario needs


def _store(world: Any) -> list[str]:
    held = world.card(0)                  # mirrored, with a recipient (CRM relay on the holder)
    native = world.card(5)                # in Shopify only: mirrored on its first redemption
    redemption(world, held.code.lower()[:4] + "-" + held.code[4:], 12.5)
    redemption(world, native.code, 5)
    redemption(world, world.card(2).code, 999)          # insufficient funds: rejected with the balance
    return [held.code, native.code, world.card(2).code]


def _requests(world: Any) -> list[str]:
    serial = "PHYS" + "7" * 8 + "A1B2"
    card_request(world, kind="Digital", quantity=2, amount=30, recipient="rita@example.com",
                 purchaser="paul@example.com", gift=True)
    card_request(world, kind="Physical", quantity=1, amount=20, serials=serial, recipient="pat@example.com")
    return [serial]


def _checks(world: Any) -> list[str]:
    drift = world.card(3)
    world.adjust_balance(drift.shopify_id, "-10.00", "till correction")   # Airtable does not know yet
    balance_check(world, drift.code, "katherine@example.com")
    balance_check(world, world.card(5).code, "ada@example.com")            # Shopify-only: mirrored
    balance_check(world, "ZZZZ9999ZZZZ9999", "nobody@example.com")          # unknown: uniform answer
    return [drift.code, world.card(5).code, "ZZZZ9999ZZZZ9999"]


def _purchase(world: Any) -> list[str]:
    world.buy_online(world.customers[0].email, [
        {"sku": world.giftsync_skus[0], "quantity": 2,
         "properties": {"Recipient email": world.customers[1].email, "Recipient name": "Grace Hopper",
                        "Message": "Happy birthday"}},
        {"sku": "SHOP-GIFT-CARD", "quantity": 1}])
    return []


def _online_redeem(world: Any) -> list[str]:
    card = world.card(1)
    order = world.pay_online(world.customers[1].email, card.code, "7.25")
    world.refund_online(order["id"], card.shopify_id, "2.00", "returned item")
    return [card.code]


def _reconcile(world: Any) -> list[str]:
    redemption(world, world.card(3).code, 4)
    return [world.card(3).code]


def _reconcile_during(world: Any, daemon: Any) -> None:
    # the first walk only sets the watermark: change things in Shopify after it
    if wait_while_alive(daemon, lambda: status_row(world, "watermark:reconcile"), 30):
        world.adjust_balance(world.card(0).shopify_id, "-7.50", "admin correction")
        world.control("shopify", "POST", f"/__sandbox/shopify/cards/{world.card(2).code}/deactivate")


def _lease(world: Any) -> list[str]:
    redemption(world, world.card(3).code, 3)
    balance_check(world, world.card(0).code, "ada@example.com")
    return [world.card(3).code, world.card(0).code]


def _release_during(world: Any, daemon: Any) -> None:
    # a clean stop after some work: SIGTERM writes Offline (lease.release)
    if wait_while_alive(daemon, lambda: any("store cycle" in line for line in daemon.output()), 30):
        if daemon.alive():
            daemon.proc.send_signal(signal.SIGTERM)


SCENARIOS: dict[str, Scenario] = {
    "redeem": Scenario("store redemption", _store),
    "request": Scenario("card request (digital gift ×2, physical)", _requests),
    "check": Scenario("balance check (drift, Shopify-only card, unknown code)", _checks,
                      shopify_options={"bump_updated_at_on_transactions": True}),
    "purchase": Scenario("online purchase (giftsync SKU ×2 to a recipient, native card)", _purchase),
    "online_redeem": Scenario("online redemption and refund", _online_redeem),
    # Shopify is not known to move a card's updatedAt on a balance change; the twin can do either.
    # The cheap walk only sees cards whose updatedAt moved (the nightly full pass sees all), so this
    # scenario runs the variant where it moves, to reach the walk's adjustment points.
    "reconcile": Scenario("reconciliation (admin adjustment, deactivation)", _reconcile, _reconcile_during,
                          shopify_options={"bump_updated_at_on_transactions": True}),
    "lease": Scenario("lease take / renew with a redemption", _lease),
    "lease.release": Scenario("clean stop after a redemption", _lease, _release_during),
}


def scenario_for(point: str) -> Scenario | None:
    if point in SCENARIOS:
        return SCENARIOS[point]
    return SCENARIOS.get(point.split(".", 1)[0])


def unmapped_points() -> list[str]:
    """Points the matrix cannot run: no scenario or no 'after' target (a failure, reported)."""
    return [p for p in POINTS if scenario_for(p) is None or p not in AFTER_FAULTS]
