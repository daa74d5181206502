"""Every GraphQL document giftsync sends validates against Shopify's real 2026-07 schema.

The documents come from ``giftsync.adapters.shopify.documents.DOCUMENTS``, so a new one is
covered as soon as it is added there. The schema is ``shared/reference/shopify-admin-schema.graphql``
with ``shared/`` at the repository root's parent, or wherever ``GIFTSYNC_SHARED`` points.
"""
from __future__ import annotations

import pytest
from graphql import OperationDefinitionNode, parse, validate

from giftsync.adapters.shopify.documents import DOCUMENTS, MUTATIONS

@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_document_validates_against_the_real_schema(real_schema, name):
    errors = validate(real_schema, parse(DOCUMENTS[name]))
    assert not errors, f"{name}: " + "; ".join(e.message for e in errors)


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_document_is_one_named_operation(name):
    ops = [d for d in parse(DOCUMENTS[name]).definitions if isinstance(d, OperationDefinitionNode)]
    assert len(ops) == 1 and ops[0].name is not None and ops[0].name.value == name
    assert (ops[0].operation.value == "mutation") == (name in MUTATIONS)


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_document_is_served_by_the_twin(twin_schema, name):
    """The twin serves a subset of the real schema: a document outside it would fail there first."""
    errors = validate(twin_schema, parse(DOCUMENTS[name]))
    assert not errors, f"{name}: " + "; ".join(e.message for e in errors)


def test_a_wrong_document_is_caught(real_schema):
    # the validation really looks: giftCard is not a field of GiftCardCreditPayload (reference §5.7)
    bad = "mutation X($id: ID!) { giftCardCredit(id: $id, creditInput: {creditAmount: {amount: 1, currencyCode: USD}}) { giftCard { id } } }"
    assert validate(real_schema, parse(bad))
