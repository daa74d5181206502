"""The outcome every form record ends in, as staff read it in Airtable."""
from __future__ import annotations

from enum import Enum


class FormStatus(str, Enum):
    NEW = "New"
    PROCESSING = "Processing"
    DONE = "Done"
    REJECTED = "Rejected"


class RedemptionOutcome(str, Enum):
    REDEEMED = "Redeemed"
    CODE_FORMAT = "Code format incorrect"
    NOT_FOUND = "Code not found"
    INSUFFICIENT = "Insufficient balance"
    DISABLED = "Card disabled or expired"
    INVALID_AMOUNT = "Invalid amount"
    INVALID_STORE = "Store missing or inactive"
    FAILED = "Failed"                      # Shopify refused for another reason; reason says which


class RequestOutcome(str, Enum):
    ISSUED = "Cards issued"
    REJECTED = "Rejected"
    FAILED = "Failed"


class CheckOutcome(str, Enum):
    ANSWERED = "Balance sent"
    NO_MATCH = "No active card matches"    # unknown, disabled, expired or mistyped: one answer
    THROTTLED = "Throttled"
    INVALID_EMAIL = "Email missing or invalid"


# Rejections end the record in Rejected; everything else that is final is Done.
REJECTED_REDEMPTIONS = {o for o in RedemptionOutcome if o is not RedemptionOutcome.REDEEMED}
