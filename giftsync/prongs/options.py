"""Settings of the store prong (the runtime builds them from giftsync.config)."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class StoreOptions:
    currency: str = "USD"                    # default currency of amounts typed into forms
    max_card_amount: Decimal = Decimal("1000")
    max_quantity: int = 50
    redemption_poll_seconds: float = 5.0     # redemptions are polled this often (a job of their own in
                                             # the daemon; between cards of a bulk request as well)
    redemption_workers: int = 8              # debits (one card each at a time) and emails in flight
    card_chunk: int = 10                     # cards of a request made, saved and written together
    card_create_workers: int = 8             # giftCardCreate calls in flight (the Shopify budget governs)
    card_writers: int = 1                    # chunks whose Airtable writes and emails run at once (the
                                             # daemon runs DAEMON_CARD_WRITERS, see bootstrap)
    check_limit: int = 5                     # balance checks per email / per code ...
    check_window_seconds: float = 3600.0     # ... within this window
    check_miss_limit: int = 100              # unmatched checks from all addresses together per window
    admin_email: str = ""                    # alerts (EMAIL_FAILED, CRM without identity, failures)
    email_attempts: int = 3                  # sends per email before it counts as failed
    email_backoff_seconds: float = 0.5       # wait before retry k: backoff * 2**(k-1)
    batch_size: int = 100                    # form records read per poll
    order_overlap_seconds: float = 600.0     # a balance difference this recent may still be an online
                                             # order's (docs/adr/0004-online-ledger.md)

    def __post_init__(self) -> None:
        if isinstance(self.max_card_amount, float):
            raise TypeError("max_card_amount must be a Decimal, never a float")
        if self.max_card_amount <= 0 or self.max_quantity < 1 or self.check_limit < 1 or self.check_miss_limit < 1:
            raise ValueError("limits must be positive")
        if self.redemption_workers < 1 or self.card_chunk < 1 or self.card_create_workers < 1 \
                or self.card_writers < 1:
            raise ValueError("workers and chunk sizes must be at least 1")
        if self.email_attempts < 1 or self.email_backoff_seconds < 0 or self.redemption_poll_seconds < 0:
            raise ValueError("email_attempts >= 1, backoff and poll seconds >= 0")
