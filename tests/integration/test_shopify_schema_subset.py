"""The Shopify twin's SDL is a strict subset of Shopify's real 2026-07 Admin schema.

Every type, field, argument, enum value and input field the twin serves exists in
``shared/reference/shopify-admin-schema.graphql`` with the same type (and the same default for
arguments), so a client that works against the twin cannot be using anything Shopify lacks.
``shared/`` is the repository root's parent, or wherever ``GIFTSYNC_SHARED`` points.
"""
from __future__ import annotations

from graphql import (GraphQLEnumType, GraphQLInputObjectType, GraphQLInterfaceType, GraphQLObjectType,
                     GraphQLScalarType, GraphQLSchema, GraphQLUnionType)


def _own_types(schema: GraphQLSchema):
    return sorted((n, t) for n, t in schema.type_map.items() if not n.startswith("__"))


def test_root_types_have_shopify_names(twin_schema, real_schema):
    assert twin_schema.query_type.name == real_schema.query_type.name == "QueryRoot"
    assert twin_schema.mutation_type.name == real_schema.mutation_type.name == "Mutation"


def test_every_type_exists_with_the_same_kind(twin_schema, real_schema):
    problems = []
    for name, t in _own_types(twin_schema):
        other = real_schema.type_map.get(name)
        if other is None:
            problems.append(f"type {name} missing")
        elif type(other) is not type(t):
            problems.append(f"type {name}: {type(t).__name__} here, {type(other).__name__} in Shopify")
    assert not problems, problems


def test_every_field_and_argument_matches(twin_schema, real_schema):
    problems = []
    checked = 0
    for name, t in _own_types(twin_schema):
        if not isinstance(t, (GraphQLObjectType, GraphQLInterfaceType)):
            continue
        other = real_schema.type_map[name]
        for fname, field in t.fields.items():
            ofield = other.fields.get(fname)
            if ofield is None:
                problems.append(f"{name}.{fname} missing")
                continue
            checked += 1
            if str(field.type) != str(ofield.type):
                problems.append(f"{name}.{fname}: {field.type} here, {ofield.type} in Shopify")
            for aname, arg in field.args.items():
                oarg = ofield.args.get(aname)
                if oarg is None:
                    problems.append(f"{name}.{fname}({aname}) missing")
                elif str(arg.type) != str(oarg.type):
                    problems.append(f"{name}.{fname}({aname}): {arg.type} here, {oarg.type} in Shopify")
                elif arg.default_value != oarg.default_value:
                    problems.append(f"{name}.{fname}({aname}) default {arg.default_value!r} "
                                    f"vs {oarg.default_value!r}")
            # a required argument of Shopify's must not be missing here
            for aname, oarg in ofield.args.items():
                if aname not in field.args and str(oarg.type).endswith("!") and oarg.default_value is None:
                    problems.append(f"{name}.{fname}: required argument {aname} not served")
        for iface in t.interfaces:
            if iface.name not in {i.name for i in other.interfaces}:
                problems.append(f"{name} implements {iface.name} here only")
    assert checked > 100
    assert not problems, problems


def test_every_input_field_and_enum_value_matches(twin_schema, real_schema):
    problems = []
    for name, t in _own_types(twin_schema):
        other = real_schema.type_map[name]
        if isinstance(t, GraphQLInputObjectType):
            for fname, field in t.fields.items():
                ofield = other.fields.get(fname)
                if ofield is None:
                    problems.append(f"input {name}.{fname} missing")
                elif str(field.type) != str(ofield.type):
                    problems.append(f"input {name}.{fname}: {field.type} here, {ofield.type} in Shopify")
            for fname, ofield in other.fields.items():
                if fname not in t.fields and str(ofield.type).endswith("!"):
                    problems.append(f"input {name}: required field {fname} not served")
        elif isinstance(t, GraphQLEnumType):
            missing = set(t.values) - set(other.values)
            if missing:
                problems.append(f"enum {name}: {sorted(missing)} not in Shopify")
        elif isinstance(t, GraphQLUnionType):
            missing = {m.name for m in t.types} - {m.name for m in other.types}
            if missing:
                problems.append(f"union {name}: {sorted(missing)} not in Shopify")
        else:
            assert isinstance(t, (GraphQLScalarType, GraphQLObjectType, GraphQLInterfaceType))
    assert not problems, problems


def test_the_twin_serves_what_giftsync_needs(twin_schema):
    q, m = twin_schema.query_type.fields, twin_schema.mutation_type.fields
    for name in ("giftCard", "giftCards", "giftCardsCount", "order", "orders", "currentAppInstallation"):
        assert name in q
    for name in ("giftCardCreate", "giftCardUpdate", "giftCardDeactivate", "giftCardCredit", "giftCardDebit",
                 "tagsAdd", "tagsRemove"):
        assert name in m
    assert "initialAmount" in twin_schema.type_map["GiftCardCreateInput"].fields
