"""The CRM relay: one builder for every "Gift Card Issued" / "Gift Card Redeemed" event, in
a shop or online, and the Receipts row that says what was sent (Klaviyo cannot list what we
sent cheaply, so ``giftsync trace`` reads these rows).

- Issued: on the *purchaser's* profile (else the recipient's), ``value`` + ``value_currency``
  so the purchase counts in the customer's lifetime value; properties: masked card, amount,
  currency, channel, store or order, kind, recipient, source. ``unique_id``
  ``crm:issued:<shopify card id>``. Receipt ``crm:issued:<shopify card id>`` (activity CRM,
  outcome ``Sent`` with the identity, or ``No customer identity`` + an admin alert). Where the
  card's opening row (ISSUE/ACTIVATE) goes in the same receipts write, the CRM row is folded
  into it (``fold_into_openings``: one row per card, half the Receipts requests of a bulk
  request); ``issued_link`` reads either form.
- Redeemed: on the card holder's profile when an identity is known; no receipt (the REDEEM
  receipt is the record), ``unique_id`` given by the caller.
"""
from __future__ import annotations

import logging
import dataclasses
from dataclasses import dataclass

from ..crashpoints import reach
from ..domain.emails import EmailEvent, Metric, valid_email
from ..domain.ledger import Activity, Channel, Receipt
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


CRM_KEY = "crm"                   # the key of a folded CRM outcome in an opening row's ``extra``
_OPENINGS_OF_ISSUE = (Activity.ISSUE, Activity.ACTIVATE)


def fold_into_openings(rows: list[Receipt]) -> list[Receipt]:
    """The receipts of one write with each CRM "issued" row folded into its card's opening row
    (ISSUE/ACTIVATE, same card, same write): the opening row carries the CRM outcome in its
    details and in ``extra["crm"]``; a CRM row without an opening row in ``rows`` stays a row of
    its own (a resumed request whose opening was written before). Order is kept."""
    openings = {r.card_record_id: i for i, r in enumerate(rows)
                if r.activity in _OPENINGS_OF_ISSUE and r.card_record_id}
    out = list(rows)
    folded: set[int] = set()
    for i, row in enumerate(rows):
        if row.activity is not Activity.CRM or row.card_record_id not in openings:
            continue
        j = openings[row.card_record_id]
        opening = out[j]
        crm = {"outcome": row.outcome, "receipt": row.receipt_id, "event": row.correlation_id}
        for key in ("identity", "identity_role"):
            if key in row.extra:
                crm[key] = row.extra[key]
        note = (f"CRM: {row.details}" if row.outcome == SENT
                else f"CRM: {row.outcome} — {row.details}")
        out[j] = dataclasses.replace(opening, details=f"{opening.details}; {note}" if opening.details else note,
                                     extra={**opening.extra, CRM_KEY: crm})
        folded.add(i)
    return [r for i, r in enumerate(out) if i not in folded]


@dataclass(frozen=True)
class IssuedLink:
    """What the receipts say about a card's "Gift Card Issued" event."""
    outcome: str
    identity: str
    identity_role: str
    time: object
    details: str


def issued_link(receipts: list[Receipt], shopify_id: str) -> IssuedLink | None:
    """The CRM link of a card from its receipts: its own CRM row, else the CRM outcome folded
    into its opening row; None when neither is there."""
    for r in receipts:
        if r.receipt_id == receipt_id(shopify_id):
            return IssuedLink(r.outcome, str(r.extra.get("identity", "")), str(r.extra.get("identity_role", "")),
                              r.time, r.details)
    for r in receipts:
        crm = r.extra.get(CRM_KEY) if r.activity in _OPENINGS_OF_ISSUE else None
        if isinstance(crm, dict) and crm.get("receipt") == receipt_id(shopify_id):
            return IssuedLink(str(crm.get("outcome", "")), str(crm.get("identity", "")),
                              str(crm.get("identity_role", "")), r.time, r.details)
    return None
