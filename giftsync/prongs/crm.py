"""The CRM relay: one builder for every "Gift Card Issued" / "Gift Card Redeemed" event, in
a shop or online, and the Receipts row that says what was sent (Klaviyo cannot list what we
sent cheaply, so ``giftsync trace`` reads these rows).

- Issued: on the *purchaser's* profile (else the recipient's), ``value`` + ``value_currency``
  so the purchase counts in the customer's lifetime value; properties: masked card, amount,
  currency, channel, store or order, kind, recipient, source. ``unique_id``
  ``crm:issued:<shopify card id>``. Receipt ``crm:issued:<shopify card id>`` (activity CRM,
  outcome ``Sent`` with the identity, or ``No customer identity`` + an admin alert).
- Redeemed: on the card holder's profile when an identity is known; no receipt (the REDEEM
  receipt is the record), ``unique_id`` given by the caller.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from ..crashpoints import reach
from ..domain.emails import EmailEvent, Metric, valid_email
from ..domain.ledger import Activity, Channel
from ..domain.money import Money
from .context import StoreContext

log = logging.getLogger("giftsync.crm")

SENT = "Sent"
NO_IDENTITY = "No customer identity"


@dataclass(frozen=True)
class Issue:
    """What the relay needs to know about one issued (or activated) card."""
    shopify_id: str
    card_record_id: str | None
    card_masked: str
    amount: Money
    channel: Channel                # Store / Online
    source: str                     # "Card Requests/rec…" or "Order #1001"
    purchaser_email: str = ""
    purchaser_name: str = ""
    recipient_email: str = ""
    recipient_name: str = ""
    store_name: str = ""
    store_record_id: str | None = None
    order: str = ""
    kind: str = "Digital"


def receipt_id(shopify_id: str) -> str:
    return f"crm:issued:{shopify_id}"


def issued_event(issue: Issue) -> EmailEvent | None:
    """The "Gift Card Issued" event, or None when there is no customer identity at all."""
    purchaser = issue.purchaser_email.strip()
    recipient = issue.recipient_email.strip()
    identity = purchaser if valid_email(purchaser) else (recipient if valid_email(recipient) else "")
    if not identity:
        return None
    name = issue.purchaser_name if identity == purchaser else issue.recipient_name
    first, _, rest = (name or "").strip().partition(" ")
    return EmailEvent(
        metric=Metric.GIFT_CARD_ISSUED, email=identity, unique_id=receipt_id(issue.shopify_id),
        properties={"Card": issue.card_masked, "Channel": issue.channel.value, "Store": issue.store_name,
                    "Order": issue.order, "Kind": issue.kind, "Amount": issue.amount.plain(),
                    "Currency": issue.amount.currency, "Recipient Email": recipient,
                    "Recipient Name": issue.recipient_name, "Source": issue.source,
                    "Identity": "purchaser" if identity == purchaser else "recipient"},
        value=issue.amount.amount, value_currency=issue.amount.currency, first_name=first, last_name=rest)


def relay_issued(ctx: StoreContext, issue: Issue, *, point: str, receipt_point: str,
                 receipts: list | None = None) -> bool:
    """Send the issue event and record it in Receipts. True when the event went out.
    ``receipts``: append the CRM receipt there (the caller writes a batch) instead of writing it."""
    def write(rows: list) -> None:
        if receipts is not None:
            receipts.extend(rows)
        else:
            ctx.write_receipts(receipt_point, rows)

    event = issued_event(issue)
    if event is None:
        write([ctx.receipt(
            receipt_id(issue.shopify_id), Activity.CRM, channel=issue.channel, card_record_id=issue.card_record_id,
            card_masked=issue.card_masked, store_record_id=issue.store_record_id, source=issue.source,
            outcome=NO_IDENTITY, correlation_id=issue.shopify_id,
            details="Card issued without purchaser or recipient email: no CRM event sent")])
        ctx.notifier.alert(f"crm:{issue.shopify_id}", "Card issued without a customer identity",
                           f"card={issue.card_masked} source={issue.source} store={issue.store_name} "
                           f"order={issue.order}", source=issue.source)
        return False
    reach(point)
    ok = ctx.notifier.send(event, source=issue.source, store_record_id=issue.store_record_id,
                           card_record_id=issue.card_record_id, card_masked=issue.card_masked)
    if ok:
        write([ctx.receipt(
            receipt_id(issue.shopify_id), Activity.CRM, channel=issue.channel, card_record_id=issue.card_record_id,
            card_masked=issue.card_masked, store_record_id=issue.store_record_id, source=issue.source,
            outcome=SENT, correlation_id=event.unique_id,
            details=f"{Metric.GIFT_CARD_ISSUED.value} sent on the {event.properties['Identity']}'s profile",
            extra={"identity": event.email, "identity_role": event.properties["Identity"],
                   "value": issue.amount.plain(), "currency": issue.amount.currency})])
    return ok


def redeemed_event(*, holder: str, unique_id: str, card_masked: str, amount: Money, balance: Money,
                   channel: Channel, source: str, store_name: str = "", order: str = "") -> EmailEvent | None:
    """The "Gift Card Redeemed" event on the holder's profile, or None without an identity."""
    if not valid_email(holder):
        return None
    return EmailEvent(metric=Metric.GIFT_CARD_REDEEMED, email=holder.strip(), unique_id=unique_id,
                      properties={"Card": card_masked, "Channel": channel.value, "Store": store_name,
                                  "Order": order, "Amount": amount.plain(), "Currency": amount.currency,
                                  "Balance After": balance.plain(), "Source": source},
                      value=amount.amount, value_currency=amount.currency)
