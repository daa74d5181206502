"""Sending emails/CRM events with retries and a growing wait; on final failure an
EMAIL_FAILED receipt and an alert to the admin address.

Deterministic ``unique_id``s (Klaviyo drops a second event with the same id):

    redemption:<record>:store          store redemption email
    request:<record>:deliver:<i>       delivery email (whole code) of card i
    request:<record>:activate:<i>      activation notice of physical card i
    request:<record>:store             store confirmation of a card request
    request:<record>:purchaser         purchaser confirmation of a gift
    check:<record>:answer              balance-check answer
    crm:issued:<shopify card id>       CRM "Gift Card Issued" on the purchaser's profile
    crm:redeemed:<record>              CRM "Gift Card Redeemed" on the holder's profile
    alert:<key>                        admin alert
"""
from __future__ import annotations

import logging

from ..domain.codes import mask_text_codes
from ..domain.emails import EmailEvent, Metric, valid_email
from ..domain.ledger import Activity, Channel, Receipt
from ..errors import FatalError, RetriableError
from ..ports import CardBook, Clock, Messenger
from .options import StoreOptions

log = logging.getLogger("giftsync.notify")


class Notifier:
    def __init__(self, messenger: Messenger, book: CardBook, clock: Clock, options: StoreOptions) -> None:
        self.messenger = messenger
        self.book = book
        self.clock = clock
        self.options = options

    def send(self, event: EmailEvent, *, source: str = "", store_record_id: str | None = None,
             card_record_id: str | None = None, card_masked: str | None = None) -> bool:
        """True when the messenger accepted the event. On final failure: an EMAIL_FAILED
        receipt and an admin alert, then False (the caller leaves Notified unticked)."""
        attempts = self.options.email_attempts
        reason = ""
        for attempt in range(1, attempts + 1):
            try:
                self.messenger.send(event)
                log.info("email sent metric=%r uid=%s attempt=%d", event.metric.value, event.unique_id, attempt)
                return True
            except FatalError as exc:
                reason = self._scrub(event, exc.reason)
                break
            except RetriableError as exc:     # incl. AmbiguousError: a resend is deduplicated by unique_id
                reason = self._scrub(event, exc.reason)
                if attempt < attempts:
                    wait = exc.retry_after if exc.retry_after else self.options.email_backoff_seconds * 2 ** (attempt - 1)
                    log.info("email retry metric=%r uid=%s attempt=%d wait=%.2fs reason=%r",
                             event.metric.value, event.unique_id, attempt, wait, reason)
                    self.clock.sleep(wait)
        log.warning("email failed metric=%r uid=%s reason=%r", event.metric.value, event.unique_id, reason)
        details = f"{event.metric.value} to {event.email} failed: {reason}"[:1000]
        try:
            self.book.append_receipts([Receipt(
                receipt_id=f"email-failed:{event.unique_id}", time=self.clock.now(), activity=Activity.EMAIL_FAILED,
                channel=Channel.SYSTEM, card_record_id=card_record_id, card_masked=card_masked,
                store_record_id=store_record_id, source=source, outcome="Email failed",
                correlation_id=event.unique_id, details=details)])
        except Exception as exc:  # noqa: BLE001 — the alert still goes out
            log.warning("EMAIL_FAILED receipt not written uid=%s error=%s", event.unique_id, type(exc).__name__)
        self.alert(f"email-failed:{event.unique_id}", "Email failed", details, source=source)
        return False

    def alert(self, key: str, subject: str, details: str, *, source: str = "") -> bool:
        """One ALERT receipt (the admin watches Receipts) and one alert event to the admin
        address; both best effort and deduplicated by ``key``."""
        admin = self.options.admin_email
        log.warning("alert key=%s subject=%r details=%r", key, subject, details[:300])
        try:
            self.book.append_receipts([Receipt(
                receipt_id=f"alert:{key}", time=self.clock.now(), activity=Activity.ALERT,
                channel=Channel.SYSTEM, source=source, outcome=subject, correlation_id=key,
                details=details[:1000])])
        except Exception as exc:  # noqa: BLE001 — the email still goes out
            log.warning("ALERT receipt not written key=%s error=%s", key, type(exc).__name__)
        if not valid_email(admin):
            return False
        event = EmailEvent(metric=Metric.ALERT, email=admin, unique_id=f"alert:{key}",
                           properties={"Subject": subject, "Details": details, "Source": source,
                                       "Time": self.clock.now().isoformat()})
        for attempt in range(1, self.options.email_attempts + 1):
            try:
                self.messenger.send(event)
                return True
            except FatalError:
                break
            except RetriableError:
                if attempt < self.options.email_attempts:
                    self.clock.sleep(self.options.email_backoff_seconds * 2 ** (attempt - 1))
        log.error("alert could not be sent key=%s", key)
        return False

    @staticmethod
    def _scrub(event: EmailEvent, text: str) -> str:
        code = event.properties.get("Code") if event.carries_code else None
        return mask_text_codes(str(text), [code] if code else [])[:500]
