"""Calculated query cost and the leaky bucket, fitted to the captured Shopify figures.

Requested cost (checked before execution):
  * scalars, enums, ``__typename``: 0; money objects (MoneyV2, MoneyBag) and PageInfo: 0
  * any other object / interface field (plain lists of objects included): 1 + its children
  * ``Count`` fields (giftCardsCount, ordersCount): 10
  * connections: 2 + sum over the selected ``nodes`` / ``edges`` lists of
    ``max(1, ceil(log2(first|last))) * max(1, node cost)`` — this is what the captured numbers
    show (first:2 -> 1, first:5 -> 3, first:10 -> 4 per list), not the linear rule of older docs
  * mutation root fields: 10 + the children of the payload's fields (a payload's own direct
    object fields are free: ``giftCard{customer{id}}`` on a create costs 11)
Actual cost (refund = requested - actual): the same walk over the result, where a field whose
parent was null is not counted, and a connection counts the nodes it returned (an empty
connection counts as 2 + its most expensive list at the requested size, as captured).
"""
from __future__ import annotations

import math
import threading
import time
from typing import Any, Callable

from graphql import (GraphQLObjectType, GraphQLSchema, get_named_type, is_abstract_type, is_leaf_type,
                     value_from_ast)
from graphql.language import FieldNode, FragmentSpreadNode, InlineFragmentNode, OperationDefinitionNode
from graphql.type.introspection import SchemaMetaFieldDef, TypeMetaFieldDef

FREE_TYPES = {"MoneyV2", "MoneyBag", "PageInfo"}
MUTATION_COST = 10
COUNT_COST = 10
MAX_QUERY_COST = 1000


def list_factor(n: int) -> int:
    return max(1, math.ceil(math.log2(n))) if n > 1 else 1


class CostCalculator:
    def __init__(self, schema: GraphQLSchema, fragments: dict, variables: dict | None) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables or {}

    # -- shared helpers --------------------------------------------------------------
    def _fields(self, selection_set, parent_type) -> list[tuple[FieldNode, Any]]:
        """Flattened (field node, type it is looked up on), fragments expanded, first per response key."""
        out: list[tuple[FieldNode, Any]] = []
        seen: set[str] = set()

        def walk(sel_set, on_type, depth=0):
            if sel_set is None or depth > 20:
                return
            for sel in sel_set.selections:
                if isinstance(sel, FieldNode):
                    key = sel.alias.value if sel.alias else sel.name.value
                    if key not in seen:
                        seen.add(key)
                        out.append((sel, on_type))
                elif isinstance(sel, InlineFragmentNode):
                    t = self.schema.get_type(sel.type_condition.name.value) if sel.type_condition else on_type
                    walk(sel.selection_set, t or on_type, depth + 1)
                elif isinstance(sel, FragmentSpreadNode):
                    frag = self.fragments.get(sel.name.value)
                    if frag is not None:
                        t = self.schema.get_type(frag.type_condition.name.value) or on_type
                        walk(frag.selection_set, t, depth + 1)

        walk(selection_set, parent_type)
        return out

    def _field_def(self, parent_type, name: str):
        if name == "__schema":
            return SchemaMetaFieldDef
        if name == "__type":
            return TypeMetaFieldDef
        fields = getattr(parent_type, "fields", None) or {}
        fdef = fields.get(name)
        if fdef is None and is_abstract_type(parent_type):
            for t in self.schema.get_possible_types(parent_type):
                if name in t.fields:
                    return t.fields[name]
        return fdef

    def _arg(self, node: FieldNode, fdef, name: str) -> Any:
        for a in node.arguments or ():
            if a.name.value == name:
                arg_def = fdef.args.get(name)
                if arg_def is None:
                    return None
                return value_from_ast(a.value, arg_def.type, self.variables)
        return None

    def _page_size(self, node: FieldNode, fdef) -> int:
        for name in ("first", "last"):
            v = self._arg(node, fdef, name)
            if isinstance(v, int) and v > 0:
                return v
        return 1

    # -- requested ---------------------------------------------------------------------
    def requested(self, operation: OperationDefinitionNode) -> int:
        root = self.schema.mutation_type if operation.operation.value == "mutation" else self.schema.query_type
        total = 0
        for node, on_type in self._fields(operation.selection_set, root):
            fdef = self._field_def(on_type, node.name.value)
            if fdef is None:
                continue
            if operation.operation.value == "mutation":
                total += MUTATION_COST + self._payload_children(node, fdef, None, actual=False)
            else:
                total += self._field(node, fdef, None, actual=False)
        return total

    def actual(self, operation: OperationDefinitionNode, data: dict | None) -> int:
        if not data:
            return 0
        root = self.schema.mutation_type if operation.operation.value == "mutation" else self.schema.query_type
        total = 0
        for node, on_type in self._fields(operation.selection_set, root):
            key = node.alias.value if node.alias else node.name.value
            if key not in data:
                continue
            fdef = self._field_def(on_type, node.name.value)
            if fdef is None:
                continue
            value = data.get(key)
            if operation.operation.value == "mutation":
                total += MUTATION_COST
                if value is not None:
                    total += self._payload_children(node, fdef, value, actual=True)
            else:
                total += self._field(node, fdef, value, actual=True, present=True)
        return total

    def _payload_children(self, node: FieldNode, fdef, value, *, actual: bool) -> int:
        ptype = get_named_type(fdef.type)
        total = 0
        for child, on_type in self._fields(node.selection_set, ptype):
            cdef = self._field_def(on_type, child.name.value)
            if cdef is None:
                continue
            ctype = get_named_type(cdef.type)
            if is_leaf_type(ctype) or ctype.name in FREE_TYPES:
                continue
            key = child.alias.value if child.alias else child.name.value
            if actual:
                cval = value.get(key) if isinstance(value, dict) else None
                if cval is None:
                    continue
                items = cval if isinstance(cval, list) else [cval]
                total += max((self._children(child, ctype, it, actual=True) for it in items), default=0)
            else:
                total += self._children(child, ctype, None, actual=False)
        return total

    def _children(self, node: FieldNode, type_, value, *, actual: bool) -> int:
        total = 0
        for child, on_type in self._fields(node.selection_set, type_):
            cdef = self._field_def(on_type, child.name.value)
            if cdef is None:
                continue
            if actual:
                key = child.alias.value if child.alias else child.name.value
                if not isinstance(value, dict) or key not in value:
                    continue
                total += self._field(child, cdef, value.get(key), actual=True, present=True)
            else:
                total += self._field(child, cdef, None, actual=False)
        return total

    def _field(self, node: FieldNode, fdef, value, *, actual: bool, present: bool = False) -> int:
        ftype = get_named_type(fdef.type)
        if is_leaf_type(ftype) or ftype.name in FREE_TYPES:
            return 0
        if ftype.name == "Count":
            return COUNT_COST
        if ftype.name.endswith("Connection") and isinstance(ftype, GraphQLObjectType) and "pageInfo" in ftype.fields:
            return self._connection(node, fdef, ftype, value, actual=actual)
        if actual:
            if value is None:
                return 1
            items = value if isinstance(value, list) else [value]
            return 1 + max((self._children(node, ftype, it, actual=True) for it in items), default=0)
        return 1 + self._children(node, ftype, None, actual=False)

    def _connection(self, node: FieldNode, fdef, ctype, value, *, actual: bool) -> int:
        size = self._page_size(node, fdef)
        lists = []   # (kind, node field, node type)
        for child, on_type in self._fields(node.selection_set, ctype):
            name = child.name.value
            if name == "nodes":
                lists.append(("nodes", child, get_named_type(ctype.fields["nodes"].type)))
            elif name == "edges":
                etype = get_named_type(ctype.fields["edges"].type)
                inner = None
                for sub, _ in self._fields(child.selection_set, etype):
                    if sub.name.value == "node":
                        inner = sub
                lists.append(("edges", inner, get_named_type(etype.fields["node"].type)))
        requested = 2 + sum(list_factor(size) * self._node_cost(n, t, None, actual=False) for _, n, t in lists)
        if not actual:
            return requested
        if value is None:
            return 2
        returned = 0
        node_costs = []
        for kind, n, t in lists:
            key_node = next((c for c, _ in self._fields(node.selection_set, ctype) if c.name.value == kind), None)
            key = key_node.alias.value if key_node is not None and key_node.alias else kind
            items = value.get(key) or []
            returned = max(returned, len(items))
            if kind == "edges":
                inner_key = (n.alias.value if n is not None and n.alias else "node")
                items = [it.get(inner_key) if isinstance(it, dict) else None for it in items]
            node_costs.append(max((self._node_cost(n, t, it, actual=True) for it in items), default=1))
        if returned == 0:
            return 2 + max((list_factor(size) * self._node_cost(n, t, None, actual=False) for _, n, t in lists),
                           default=0)
        return 2 + sum(list_factor(returned) * c for c in node_costs)

    def _node_cost(self, node: FieldNode | None, type_, value, *, actual: bool) -> int:
        if node is None:
            return 1
        return max(1, 1 + self._children(node, type_, value, actual=actual))


class LeakyBucket:
    """Points available to a token; refills at ``restore_rate``/s up to ``size``."""

    def __init__(self, size: float, restore_rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = float(size)
        self.rate = float(restore_rate)
        self.clock = clock
        self._available = float(size)
        self._stamp = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self.clock()
        self._available = min(self.size, self._available + (now - self._stamp) * self.rate)
        self._stamp = now

    def available(self) -> float:
        with self._lock:
            self._refill()
            return self._available

    def take(self, cost: int) -> bool:
        with self._lock:
            self._refill()
            if cost > self._available:
                return False
            self._available -= cost
            return True

    def refund(self, points: int) -> None:
        if points <= 0:
            return
        with self._lock:
            self._refill()
            self._available = min(self.size, self._available + points)

    def status(self) -> dict:
        return {"maximumAvailable": int(self.size), "currentlyAvailable": int(self.available()),
                "restoreRate": int(self.rate) if float(self.rate).is_integer() else self.rate}
