"""Shopify's search-query syntax (the ``query:`` argument), parsed and evaluated — never eval'd.

Supported: free text, ``field:value``, comparators ``:<  :>  :<=  :>=``, quoted values
('…' or "…"), backslash escapes, trailing ``*`` prefix match, ``field:*`` existence,
implicit AND (whitespace), explicit ``AND`` / ``OR``, grouping ``( )``, negation with
``-field:value`` or ``NOT``. Terms naming a field the resource does not support are dropped
(the rest still filters) and reported as warnings, like Shopify's ``extensions.search``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

OPS = (">=", "<=", ">", "<")
RANGE_KEYS = {">=": "range_gte", "<=": "range_lte", ">": "range_gt", "<": "range_lt", "=": "match_all"}


@dataclass
class Term:
    field: str | None      # None = free text
    op: str                # "=", ">", ">=", "<", "<="
    value: str
    exists: bool = False   # field:*
    prefix: bool = False   # value*


@dataclass
class Node:
    kind: str              # "and" | "or" | "not" | "term"
    children: list = field(default_factory=list)
    term: Term | None = None


class SearchSyntaxError(ValueError):
    pass


def _tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch in "()":
            tokens.append(ch)
            i += 1
            continue
        buf = []
        quote = None
        while i < n:
            ch = text[i]
            if quote:
                if ch == "\\" and i + 1 < n:
                    buf.append(text[i:i + 2])
                    i += 2
                    continue
                buf.append(ch)
                i += 1
                if ch == quote:
                    quote = None
                continue
            if ch == "\\" and i + 1 < n:
                buf.append(text[i:i + 2])
                i += 2
                continue
            if ch.isspace() or ch in "()":
                break
            if ch in "'\"":
                quote = ch
            buf.append(ch)
            i += 1
        tokens.append("".join(buf))
    return tokens


def _unquote(raw: str) -> tuple[str, bool]:
    """Value text without quotes/escapes, and whether an unescaped trailing * asks for a prefix match."""
    out = []
    prefix = False
    i, n = 0, len(raw)
    quote = None
    while i < n:
        ch = raw[i]
        if ch == "\\" and i + 1 < n:
            out.append(raw[i + 1])
            i += 2
            continue
        if quote:
            if ch == quote:
                quote = None
            else:
                out.append(ch)
            i += 1
            continue
        if ch in "'\"":
            quote = ch
            i += 1
            continue
        if ch == "*" and i == n - 1:
            prefix = True
            i += 1
            continue
        out.append(ch)
        i += 1
    return "".join(out), prefix


def _split_field(token: str) -> tuple[str | None, str]:
    """'field:rest' -> (field, rest) on the first unescaped, unquoted colon; else (None, token)."""
    quote = None
    i = 0
    while i < len(token):
        ch = token[i]
        if ch == "\\":
            i += 2
            continue
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == ":":
            name = token[:i]
            if name and all(c.isalnum() or c in "_." for c in name):
                return name, token[i + 1:]
            return None, token
        i += 1
    return None, token


def _term(token: str) -> Term:
    name, rest = _split_field(token)
    if name is None:
        value, prefix = _unquote(token)
        return Term(None, "=", value, prefix=prefix)
    op = "="
    for candidate in OPS:
        if rest.startswith(candidate):
            op = candidate
            rest = rest[len(candidate):]
            break
    if op == "=" and rest == "*":
        return Term(name.lower(), "=", "", exists=True)
    value, prefix = _unquote(rest)
    return Term(name.lower(), op, value, prefix=prefix)


class _Parser:
    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def parse(self) -> Node | None:
        if not self.tokens:
            return None
        node = self.or_expr()
        while self.peek() is not None:        # stray ')' etc.: keep going, Shopify is lenient
            tok = self.take()
            if tok != ")":
                self.pos -= 1
                node = Node("and", [node, self.or_expr()])
        return node

    def or_expr(self) -> Node:
        parts = [self.and_expr()]
        while self.peek() == "OR":
            self.take()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else Node("or", parts)

    def and_expr(self) -> Node:
        parts = [self.unary()]
        while True:
            tok = self.peek()
            if tok is None or tok in (")", "OR"):
                break
            if tok == "AND":
                self.take()
                if self.peek() is None:
                    break
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else Node("and", parts)

    def unary(self) -> Node:
        tok = self.peek()
        if tok is None:
            raise SearchSyntaxError("unexpected end of query")
        if tok == "NOT":
            self.take()
            return Node("not", [self.unary()])
        if tok == "(":
            self.take()
            inner = self.or_expr() if self.peek() not in (")", None) else Node("and", [])
            if self.peek() == ")":
                self.take()
            return inner
        tok = self.take()
        if tok.startswith("-") and len(tok) > 1:
            return Node("not", [Node("term", term=_term(tok[1:]))])
        return Node("term", term=_term(tok))


def parse(text: str | None) -> Node | None:
    if text is None or not str(text).strip():
        return None
    return _Parser(_tokenize(str(text))).parse()


def to_parsed(node: Node | None) -> Any:
    """The ``parsed`` structure Shopify echoes in ``extensions.search``."""
    if node is None:
        return {}
    if node.kind == "term":
        t = node.term
        out = {"field": t.field or "default"}
        if t.exists:
            out["exists"] = True
        else:
            out[RANGE_KEYS[t.op]] = t.value + ("*" if t.prefix else "")
        return out
    if node.kind == "not":
        return {"not": to_parsed(node.children[0])}
    # Shopify lists AND/OR operands last-first (captured: "id:1 AND updated_at:>=x" -> [updated_at, id])
    return {node.kind: [to_parsed(c) for c in reversed(node.children)]}


Matcher = Callable[[Any, Term], bool]


@dataclass
class SearchResult:
    node: Node | None
    warnings: list[dict]

    def matches(self, record: Any) -> bool:
        return True if self.node is None else _eval(self.node, record, self._fields, self._text) is not False

    _fields: dict = field(default_factory=dict, repr=False)
    _text: Callable | None = field(default=None, repr=False)


def compile_query(text: str | None, fields: dict[str, Matcher], text_matcher: Callable[[Any, Term], bool]) -> SearchResult:
    """Parse ``text`` for a resource with the given field matchers; unknown fields become warnings."""
    try:
        node = parse(text)
    except SearchSyntaxError:
        node = None
    warnings: list[dict] = []
    seen = set()

    def scan(n: Node | None) -> None:
        if n is None:
            return
        if n.kind == "term":
            f = n.term.field
            if f is not None and f not in fields and f not in seen:
                seen.add(f)
                warnings.append({"field": f, "message": "Invalid search field for this query.",
                                 "code": "invalid_field"})
            return
        for c in n.children:
            scan(c)

    scan(node)
    return SearchResult(node, warnings, fields, text_matcher)


def _eval(node: Node, record: Any, fields: dict, text: Callable | None) -> bool | None:
    """True/False, or None when the node is dropped (unknown field)."""
    if node.kind == "term":
        t = node.term
        if t.field is None:
            return True if text is None else bool(text(record, t))
        fn = fields.get(t.field)
        if fn is None:
            return None
        return bool(fn(record, t))
    if node.kind == "not":
        inner = _eval(node.children[0], record, fields, text)
        return None if inner is None else not inner
    results = [r for r in (_eval(c, record, fields, text) for c in node.children) if r is not None]
    if not results:
        return None
    return all(results) if node.kind == "and" else any(results)


# -- helpers for field matchers -----------------------------------------------------------
def compare(actual: Any, op: str, wanted: Any) -> bool:
    if actual is None:
        return False
    try:
        if op == "=":
            return actual == wanted
        if op == ">":
            return actual > wanted
        if op == ">=":
            return actual >= wanted
        if op == "<":
            return actual < wanted
        if op == "<=":
            return actual <= wanted
    except TypeError:
        return False
    return False


def text_equals(actual: str | None, term: Term) -> bool:
    if term.exists:
        return bool(actual)
    if actual is None:
        return False
    a, v = actual.lower(), term.value.lower()
    return a.startswith(v) if term.prefix else a == v
