"""Every GraphQL document giftsync sends to Shopify (Admin API 2026-07), one named constant each.

``DOCUMENTS`` lists them all: tests/integration/test_graphql_documents.py validates each
against the saved real schema, so a document added here is checked automatically.
Costs are our estimates of Shopify's *requested* cost (reference/shopify.md §2.2–2.3) for the
page sizes the adapter uses; the budget is then corrected from ``throttleStatus``.
"""
from __future__ import annotations

# The card as giftsync reads it everywhere (~4 points: card, customer, email, order).
GIFT_CARD_FIELDS = """
fragment GiftCardFields on GiftCard {
  id
  lastCharacters
  enabled
  deactivatedAt
  expiresOn
  note
  createdAt
  updatedAt
  initialValue { amount currencyCode }
  balance { amount currencyCode }
  customer { id defaultEmailAddress { emailAddress } }
  order { id name }
}
"""

TRANSACTION_FIELDS = """
fragment TransactionFields on GiftCardTransaction {
  __typename
  id
  note
  processedAt
  amount { amount currencyCode }
}
"""

ORDER_FIELDS = """
fragment OrderFields on Order {
  id
  name
  email
  createdAt
  updatedAt
  displayFinancialStatus
  tags
  paymentGatewayNames
  customer { id firstName lastName defaultEmailAddress { emailAddress } }
  lineItems(first: 50) {
    nodes {
      id name sku quantity isGiftCard
      originalUnitPriceSet { shopMoney { amount currencyCode } }
      customAttributes { key value }
    }
    pageInfo { hasNextPage endCursor }
  }
  transactions(first: 20) {
    id kind status gateway receiptJson processedAt
    amountSet { shopMoney { amount currencyCode } }
  }
}
"""

GET_GIFT_CARD = """
query GetGiftCard($id: ID!) {
  giftCard(id: $id) { ...GiftCardFields }
}
""" + GIFT_CARD_FIELDS

FIND_GIFT_CARDS = """
query FindGiftCards($query: String!, $first: Int!) {
  giftCards(first: $first, query: $query) {
    nodes { ...GiftCardFields }
  }
}
""" + GIFT_CARD_FIELDS

GIFT_CARDS_BY_UPDATED = """
query GiftCardsByUpdated($first: Int!, $after: String) {
  giftCards(first: $first, after: $after, sortKey: UPDATED_AT, reverse: true) {
    nodes { ...GiftCardFields }
    pageInfo { hasNextPage endCursor }
  }
}
""" + GIFT_CARD_FIELDS

GIFT_CARDS_FOR_ORDER = """
query GiftCardsForOrder($query: String!, $first: Int!, $after: String) {
  giftCards(first: $first, after: $after, sortKey: CREATED_AT, query: $query) {
    nodes { ...GiftCardFields lineItem { id } }
    pageInfo { hasNextPage endCursor }
  }
}
""" + GIFT_CARD_FIELDS

GIFT_CARD_TRANSACTIONS = """
query GiftCardTransactions($id: ID!, $last: Int!) {
  giftCard(id: $id) {
    id
    transactions(last: $last) { nodes { ...TransactionFields } }
  }
}
""" + TRANSACTION_FIELDS

CREATE_GIFT_CARD = """
mutation CreateGiftCard($input: GiftCardCreateInput!) {
  giftCardCreate(input: $input) {
    giftCard { ...GiftCardFields }
    userErrors { field code message }
  }
}
""" + GIFT_CARD_FIELDS

DEBIT_GIFT_CARD = """
mutation DebitGiftCard($id: ID!, $input: GiftCardDebitInput!) {
  giftCardDebit(id: $id, debitInput: $input) {
    giftCardDebitTransaction {
      ...TransactionFields
      giftCard { id balance { amount currencyCode } }
    }
    userErrors { field code message }
  }
}
""" + TRANSACTION_FIELDS

CREDIT_GIFT_CARD = """
mutation CreditGiftCard($id: ID!, $input: GiftCardCreditInput!) {
  giftCardCredit(id: $id, creditInput: $input) {
    giftCardCreditTransaction {
      ...TransactionFields
      giftCard { id balance { amount currencyCode } }
    }
    userErrors { field code message }
  }
}
""" + TRANSACTION_FIELDS

ORDERS = """
query Orders($query: String!, $first: Int!, $after: String) {
  orders(first: $first, after: $after, sortKey: UPDATED_AT, query: $query) {
    nodes { ...OrderFields }
    pageInfo { hasNextPage endCursor }
  }
}
""" + ORDER_FIELDS

GET_ORDER = """
query GetOrder($id: ID!) {
  order(id: $id) { ...OrderFields }
}
""" + ORDER_FIELDS

ORDER_LINE_ITEMS = """
query OrderLineItems($id: ID!, $after: String) {
  order(id: $id) {
    id
    lineItems(first: 100, after: $after) {
      nodes {
        id name sku quantity isGiftCard
        originalUnitPriceSet { shopMoney { amount currencyCode } }
        customAttributes { key value }
      }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""

TAGS_ADD = """
mutation TagsAdd($id: ID!, $tags: [String!]!) {
  tagsAdd(id: $id, tags: $tags) {
    node { id ... on Order { tags } }
    userErrors { field message }
  }
}
"""

ACCESS_SCOPES = """
query AccessScopes {
  currentAppInstallation { accessScopes { handle } }
}
"""

# name -> document; the documents test iterates over this.
DOCUMENTS: dict[str, str] = {
    "GetGiftCard": GET_GIFT_CARD,
    "FindGiftCards": FIND_GIFT_CARDS,
    "GiftCardsByUpdated": GIFT_CARDS_BY_UPDATED,
    "GiftCardsForOrder": GIFT_CARDS_FOR_ORDER,
    "GiftCardTransactions": GIFT_CARD_TRANSACTIONS,
    "CreateGiftCard": CREATE_GIFT_CARD,
    "DebitGiftCard": DEBIT_GIFT_CARD,
    "CreditGiftCard": CREDIT_GIFT_CARD,
    "Orders": ORDERS,
    "GetOrder": GET_ORDER,
    "OrderLineItems": ORDER_LINE_ITEMS,
    "TagsAdd": TAGS_ADD,
    "AccessScopes": ACCESS_SCOPES,
}

MUTATIONS = frozenset({"CreateGiftCard", "DebitGiftCard", "CreditGiftCard", "TagsAdd"})

CARD_COST = 4          # card + customer + email address + order (money is free)
ORDER_COST = 1 + 1 + (2 + 50) + 20   # order, customer, lineItems(first: 50), transactions(first: 20)


def estimated_cost(name: str, *, first: int = 1) -> int:
    """Our estimate of the requested cost of document ``name`` (``first`` = page size)."""
    if name in ("GetGiftCard",):
        return 1 + CARD_COST
    if name in ("FindGiftCards", "GiftCardsByUpdated", "GiftCardsForOrder"):
        return 2 + first * (CARD_COST + (1 if name == "GiftCardsForOrder" else 0))
    if name == "GiftCardTransactions":
        return 1 + 2 + first
    if name in ("CreateGiftCard",):
        return 10 + CARD_COST
    if name in ("DebitGiftCard", "CreditGiftCard"):
        return 11
    if name == "TagsAdd":
        return 10
    if name == "Orders":
        return 2 + first * ORDER_COST
    if name == "GetOrder":
        return ORDER_COST
    if name == "OrderLineItems":
        return 1 + 2 + 100
    if name == "AccessScopes":
        return 2
    return 10
