"""Every point where a flow crosses a process boundary with a write, named in one place.

Prongs call ``reach(name)`` just before each Airtable write, Shopify mutation and Klaviyo
event. Normally that does nothing. The crash tests start the daemon with
``GIFTSYNC_CRASH_AT=<name>`` (optionally ``<name>#<n>`` for the n-th time it is reached) and
the process kills itself with SIGKILL there — no cleanup, exactly like a power cut. Names
must be registered in ``POINTS``: ``reach`` refuses an unknown name, so the list cannot fall
behind the flows (tests/unit/test_crashpoints.py also checks every registered name is used).

The crash matrix (``scripts/crashtest``, giftsync/verify/crashtest.py) also needs "the service
applied the call but the daemon never saw the answer". With ``GIFTSYNC_CRASH_ARM`` set (JSON
``{"url": <twin base URL>, "rule": <fault rule>}``) reaching the point does not kill: it asks
that twin for an ``after`` fault (``hang``, narrowed by route key and ``match``) on the very
next call the point makes, and the runner SIGKILLs the daemon while the twin holds the answer.
"""
from __future__ import annotations

import json
import os
import signal
import threading
import urllib.request

POINTS: dict[str, str] = {
    # store redemption
    "redeem.claim": "Airtable: redemption set to Processing (card linked, code masked)",
    "redeem.debit": "Shopify: giftCardDebit",
    "redeem.receipt": "Airtable: REDEEM receipt",
    "redeem.balance": "Airtable: card balance set from Shopify",
    "redeem.finish": "Airtable: redemption set to Done/Rejected",
    "redeem.email": "Klaviyo: store redemption email",
    "redeem.notified": "Airtable: redemption marked Notified",
    "redeem.mirror": "Airtable: Shopify-native card mirrored before its first store redemption",
    "redeem.crm": "Klaviyo: CRM redemption event on the card holder's profile",
    # card request
    "request.claim": "Airtable: request set to Processing with its nonce",
    "request.create": "Shopify: giftCardCreate (one per card)",
    "request.mirror": "Airtable: new cards saved in Gift Cards",
    "request.deliver": "Klaviyo: delivery / activation email (one per card)",
    "request.crm": "Klaviyo: CRM issue event on the purchaser's profile",
    "request.receipt": "Airtable: ISSUE / ACTIVATE receipts",
    "request.finish": "Airtable: request set to Done with its cards linked",
    "request.email": "Klaviyo: store / purchaser confirmation emails",
    "request.notified": "Airtable: request marked Notified",
    # balance check
    "check.email": "Klaviyo: balance answer",
    "check.finish": "Airtable: check set to Done",
    "check.receipt": "Airtable: CHECK receipt",
    "check.mirror": "Airtable: Shopify-native card mirrored on its first balance check",
    "check.balance": "Airtable: card balance corrected from Shopify during a balance check",
    # Shopify purchases (online orders that sell gift cards)
    "purchase.register": "Airtable: Online Orders row written (Processing, nonce) before any card",
    "purchase.create": "Shopify: giftCardCreate for a giftsync SKU unit",
    "purchase.mirror": "Airtable: online card saved in Gift Cards (giftsync SKU or Shopify-native)",
    "purchase.receipt": "Airtable: the ISSUE receipts of an online order (CRM outcomes folded in)",
    "purchase.deliver": "Klaviyo: delivery email (whole code) of a giftsync SKU card",
    "purchase.crm": "Klaviyo: CRM 'Gift Card Issued' on the purchaser's profile (recorded on the ISSUE row)",
    "purchase.email": "Klaviyo: purchaser confirmation of a gift",
    "purchase.finish": "Airtable: Online Orders row set Done / Waiting / Skipped",
    "purchase.tag": "Shopify: tagsAdd on the order",
    "purchase.cursor": "Airtable: purchases watermark in Status",
    # Shopify redemptions (orders paid with gift cards, refunds to cards)
    "online_redeem.register": "Airtable: Online Orders row written (Processing)",
    "online_redeem.receipt": "Airtable: REDEEM / CREDIT receipt of an order transaction",
    "online_redeem.balance": "Airtable: card balance set from Shopify after an online redemption",
    "online_redeem.crm": "Klaviyo: CRM 'Gift Card Redeemed' on the card holder's profile",
    "online_redeem.finish": "Airtable: Online Orders row set Done",
    "online_redeem.tag": "Shopify: tagsAdd on the order",
    "online_redeem.cursor": "Airtable: redemptions watermark in Status",
    # reconciliation (admin adjustments, drift, status changes)
    "reconcile.receipt": "Airtable: ADJUST receipt",
    "reconcile.balance": "Airtable: card balance set from Shopify",
    "reconcile.status": "Airtable: card Status set from Shopify (disabled / expired)",
    "reconcile.cursor": "Airtable: reconcile watermark / full-pass time in Status",
    # lease
    "lease.take": "Airtable: Status lease written (take-over or start)",
    "lease.renew": "Airtable: Status lease renewed",
    "lease.release": "Airtable: Status set Offline",
}

_counts: dict[str, int] = {}
_lock = threading.Lock()


def reach(name: str) -> None:
    if name not in POINTS:
        raise KeyError(f"crash point {name!r} is not registered in giftsync.crashpoints.POINTS")
    target = os.environ.get("GIFTSYNC_CRASH_AT")
    if not target:
        return
    point, _, nth = target.partition("#")
    if point != name:
        return
    with _lock:
        _counts[name] = _counts.get(name, 0) + 1
        hit = _counts[name] == (int(nth) if nth else 1)
    if not hit:
        return
    arm = os.environ.get("GIFTSYNC_CRASH_ARM")
    if arm:
        spec = json.loads(arm)
        body = json.dumps({"rules": [spec["rule"]]}).encode()
        req = urllib.request.Request(spec["url"].rstrip("/") + "/__sandbox/faults", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()
        return
    os.kill(os.getpid(), signal.SIGKILL)
