"""Table and field names of the base, as the adapter uses them.

config/base_schema.json is the single definition of the base; these constants are the
adapter's view of it, and ``tests/unit/adapters/test_airtable_mapping.py`` checks that
every name in ``USED`` exists there (a renamed field fails a test, not a shop's cycle).
"""
from __future__ import annotations

STORES = "Stores"
CARDS = "Gift Cards"
REDEMPTIONS = "Store Redemptions"
CARD_REQUESTS = "Card Requests"
BALANCE_CHECKS = "Balance Checks"
RECEIPTS = "Receipts"
STATUS = "Status"
ONLINE_ORDERS = "Online Orders"


class StoreF:
    NAME = "Name"
    EMAIL = "Email"
    ACTIVE = "Active"


class CardF:
    CARD = "Card"                  # primary: the masked code
    LAST4 = "Last 4"
    CODE_HASH = "Code Hash"
    SHOPIFY_ID = "Shopify ID"
    BALANCE = "Balance"
    INITIAL_VALUE = "Initial Value"
    CURRENCY = "Currency"
    STATUS = "Status"
    KIND = "Kind"
    SOURCE = "Source"
    RECIPIENT_NAME = "Recipient Name"
    RECIPIENT_EMAIL = "Recipient Email"
    PURCHASER_NAME = "Purchaser Name"
    PURCHASER_EMAIL = "Purchaser Email"
    STORE = "Store"
    ORDER = "Order"
    EXPIRES_ON = "Expires On"
    CREATED = "Created"
    LAST_SYNCED = "Last Synced"
    OPENED_AT = "Opened At"          # when the opening balance was read from Shopify
    SOURCE_RECORD = "Source Record"


class FormF:
    """Fields shared by the three form tables (not every table has every field)."""
    CODE = "Code"
    STORE = "Store"
    AMOUNT = "Amount"
    STAFF = "Staff"
    NOTE = "Note"
    STATUS = "Status"
    OUTCOME = "Outcome"
    REASON = "Reason"
    CARD = "Card"                  # redemptions: the card redeemed
    CARDS = "Cards"                # card requests: the cards issued
    BALANCE_AFTER = "Balance After"
    ATTEMPT = "Attempt"
    PROCESSED_AT = "Processed At"
    NOTIFIED = "Notified"
    QUANTITY = "Quantity"
    KIND = "Kind"
    SERIALS = "Physical Serials"
    RECIPIENT_NAME = "Recipient Name"
    RECIPIENT_EMAIL = "Recipient Email"
    PURCHASER_NAME = "Purchaser Name"
    PURCHASER_EMAIL = "Purchaser Email"
    IS_GIFT = "Is Gift"
    MESSAGE = "Message"
    EMAIL = "Email"


class ReceiptF:
    RECEIPT_ID = "Receipt ID"
    TIME = "Time"
    ACTIVITY = "Activity"
    CARD = "Card"
    CARD_MASKED = "Card (masked)"
    AMOUNT = "Amount"
    BALANCE_AFTER = "Balance After"
    CURRENCY = "Currency"
    CHANNEL = "Channel"
    STORE = "Store"
    SOURCE = "Source"
    OUTCOME = "Outcome"
    CORRELATION_ID = "Correlation ID"
    DETAILS = "Details"


class StatusF:
    NAME = "Name"
    STATE = "State"
    HOLDER = "Holder"
    HEARTBEAT = "Heartbeat"
    LEASE_UNTIL = "Lease Until"
    CURSOR = "Cursor"
    LAST_RUN = "Last Run"
    DETAILS = "Details"


class OrderF:
    ORDER_KEY = "Order Key"
    ORDER = "Order"
    SHOPIFY_ID = "Shopify ID"
    KIND = "Kind"
    STATUS = "Status"
    CARDS = "Cards"
    ATTEMPT = "Attempt"
    PROCESSED_AT = "Processed At"
    DETAILS = "Details"


F = FormF
# Every (table, field) the adapter reads or writes.
USED: dict[str, tuple[str, ...]] = {
    STORES: (StoreF.NAME, StoreF.EMAIL, StoreF.ACTIVE),
    CARDS: tuple(v for k, v in vars(CardF).items() if k.isupper()),
    REDEMPTIONS: (F.CODE, F.STORE, F.AMOUNT, F.STAFF, F.NOTE, F.STATUS, F.OUTCOME, F.REASON, F.CARD,
                  F.BALANCE_AFTER, F.ATTEMPT, F.PROCESSED_AT, F.NOTIFIED),
    CARD_REQUESTS: (F.STORE, F.AMOUNT, F.QUANTITY, F.KIND, F.SERIALS, F.RECIPIENT_NAME, F.RECIPIENT_EMAIL,
                    F.PURCHASER_NAME, F.PURCHASER_EMAIL, F.IS_GIFT, F.MESSAGE, F.STAFF, F.STATUS, F.OUTCOME,
                    F.REASON, F.CARDS, F.ATTEMPT, F.PROCESSED_AT, F.NOTIFIED),
    BALANCE_CHECKS: (F.CODE, F.EMAIL, F.STATUS, F.OUTCOME, F.PROCESSED_AT, F.NOTIFIED),
    RECEIPTS: tuple(v for k, v in vars(ReceiptF).items() if k.isupper()),
    STATUS: tuple(v for k, v in vars(StatusF).items() if k.isupper()),
    ONLINE_ORDERS: tuple(v for k, v in vars(OrderF).items() if k.isupper()),
}
del F
