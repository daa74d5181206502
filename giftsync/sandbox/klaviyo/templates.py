"""A small Django-like template renderer for the outbox (never ``eval``), and the metric templates.

Supported (the subset Klaviyo flow emails use, reference §8.2):

* variables ``{{ event.Code }}``, nested ``{{ event.Sender.name }}``, list items
  ``{{ event.Items.0.title }}``, ``{{ person.email }}``, ``{{ first_name }}``,
  ``{{ event.extra.note }}`` (the event's ``$extra`` object), literals ``'text'`` / ``3``;
* filters ``default:'x'``, ``default_if_none:'x'``, ``lookup:'Key With Spaces'``, ``upper``,
  ``lower``, ``title``, ``capfirst``, ``length``, ``floatformat[:n]``, ``join:', '``;
* tags ``{% if cond %}…{% elif cond %}…{% else %}…{% endif %}`` (conditions: ``not``,
  ``and``, ``or``, ``== != < <= > >=``, ``in``), ``{% for x in list %}…{% empty %}…{% endfor %}``
  (with ``forloop.counter``), comments ``{# … #}``.

A missing variable renders as an empty string (as in Django and Klaviyo). Bad syntax or an
unknown filter/tag raises :class:`TemplateError` when the template is compiled.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

TEMPLATES_FILE = Path(__file__).with_name("templates.json")


class TemplateError(ValueError):
    pass


_MISSING = object()
_CONSTANTS = {"True": True, "False": False, "None": None}
_TOKEN = re.compile(r"({{.*?}}|{%.*?%}|{#.*?#})", re.S)
_LITERAL_STR = re.compile(r"""^(?:'([^']*)'|"([^"]*)")$""")
_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?$")
_NAME = re.compile(r"^[A-Za-z_$][\w$\-]*(?:\.[\w$\-]+)*$")
# An operand may hold quoted text with spaces (``event|lookup:'Balance After'``), as in Klaviyo.
_EXPR_TOKEN = re.compile(r"""\s*('[^']*'|"[^"]*"|==|!=|<=|>=|<|>|\(|\)|(?:'[^']*'|"[^"]*"|[^\s()<>=!'"])+)""")


# -- values ------------------------------------------------------------------------------

def _resolve_path(context: dict, path: str) -> Any:
    value: Any = context
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part, _MISSING)
        elif isinstance(value, (list, tuple)) and part.lstrip("-").isdigit():
            idx = int(part)
            value = value[idx] if -len(value) <= idx < len(value) else _MISSING
        else:
            return _MISSING
        if value is _MISSING:
            return _MISSING
    return value


def _literal(text: str) -> Any:
    m = _LITERAL_STR.match(text)
    if m:
        return m.group(1) if m.group(1) is not None else m.group(2)
    if _NUMBER.match(text):
        return float(text) if "." in text else int(text)
    return _CONSTANTS.get(text, _MISSING)


def to_text(value: Any) -> str:
    if value is _MISSING or value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def _empty(value: Any) -> bool:
    if value is _MISSING:
        return True
    try:
        return not value  # Django truthiness: None, "", 0, False, [], {} are empty
    except Exception:
        return False


def _floatformat(value: Any, arg: Any) -> Any:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value
    digits = -1 if arg is _MISSING else int(arg)
    if digits < 0:  # Django: one decimal only when needed
        return f"{number:.{-digits}f}" if number != int(number) else str(int(number))
    return f"{number:.{digits}f}"


def _lookup(value: Any, arg: Any) -> Any:
    if isinstance(value, dict):
        return value.get(str(arg), _MISSING)
    if isinstance(value, (list, tuple)):
        try:
            return value[int(arg)]
        except (ValueError, IndexError, TypeError):
            return _MISSING
    return _MISSING


FILTERS: dict[str, Callable[[Any, Any], Any]] = {
    "default": lambda v, a: a if _empty(v) else v,
    "default_if_none": lambda v, a: a if v is None or v is _MISSING else v,
    "lookup": _lookup,
    "upper": lambda v, a: to_text(v).upper(),
    "lower": lambda v, a: to_text(v).lower(),
    "title": lambda v, a: to_text(v).title(),
    "capfirst": lambda v, a: (lambda s: s[:1].upper() + s[1:])(to_text(v)),
    "length": lambda v, a: len(v) if isinstance(v, (str, list, dict)) else 0,
    "floatformat": _floatformat,
    "join": lambda v, a: to_text(a if a is not _MISSING else "").join(to_text(x) for x in v)
    if isinstance(v, (list, tuple)) else v,
}


@dataclass
class _Expr:
    """``base|filter:arg|filter`` compiled."""
    base: str
    filters: list[tuple[str, str | None]]

    @classmethod
    def compile(cls, text: str) -> "_Expr":
        parts = _split_filters(text.strip())
        base = parts[0].strip()
        if not base:
            raise TemplateError(f"empty expression in {text!r}")
        if _literal(base) is _MISSING and not _NAME.match(base):
            raise TemplateError(f"bad variable {base!r}")
        filters: list[tuple[str, str | None]] = []
        for f in parts[1:]:
            name, _, arg = f.partition(":")
            name = name.strip()
            if name not in FILTERS:
                raise TemplateError(f"unknown filter {name!r}")
            arg = arg.strip() if _ else None
            if arg is not None and _literal(arg) is _MISSING and not _NAME.match(arg):
                raise TemplateError(f"bad filter argument {arg!r}")
            filters.append((name, arg))
        return cls(base, filters)

    def eval(self, context: dict) -> Any:
        value = _literal(self.base)
        if value is _MISSING:
            value = _resolve_path(context, self.base)
        for name, arg in self.filters:
            a: Any = _MISSING
            if arg is not None:
                a = _literal(arg)
                if a is _MISSING:
                    a = _resolve_path(context, arg)
            value = FILTERS[name](value, a)
        return value


def _split_filters(text: str) -> list[str]:
    """Split on ``|`` outside quotes."""
    parts, buf, quote = [], [], None
    for ch in text:
        if quote:
            buf.append(ch)
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
            buf.append(ch)
        elif ch == "|":
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    if quote:
        raise TemplateError(f"unterminated string in {text!r}")
    parts.append("".join(buf))
    return parts


# -- conditions --------------------------------------------------------------------------

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
    "in": lambda a, b: a in b, "not in": lambda a, b: a not in b,
}


class _Cond:
    """Recursive-descent parser: or → and → not → comparison → operand."""

    def __init__(self, text: str) -> None:
        self.tokens = [t for t in _EXPR_TOKEN.findall(text) if t.strip()]
        if "".join(self.tokens).replace(" ", "") != re.sub(r"\s+", "", text):
            raise TemplateError(f"bad condition {text!r}")
        self.pos = 0
        self.tree = self._or()
        if self.pos != len(self.tokens):
            raise TemplateError(f"bad condition {text!r}")

    def _peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _take(self) -> str:
        tok = self._peek()
        if tok is None:
            raise TemplateError("condition ends too early")
        self.pos += 1
        return tok

    def _or(self) -> Any:
        node = self._and()
        while self._peek() == "or":
            self._take()
            node = ("or", node, self._and())
        return node

    def _and(self) -> Any:
        node = self._not()
        while self._peek() == "and":
            self._take()
            node = ("and", node, self._not())
        return node

    def _not(self) -> Any:
        if self._peek() == "not":
            self._take()
            return ("not", self._not())
        return self._cmp()

    def _cmp(self) -> Any:
        left = self._operand()
        op = self._peek()
        if op == "not" and self.pos + 1 < len(self.tokens) and self.tokens[self.pos + 1] == "in":
            self.pos += 2
            return ("cmp", "not in", left, self._operand())
        if op in _COMPARE:
            self._take()
            return ("cmp", op, left, self._operand())
        return ("val", left)

    def _operand(self) -> Any:
        tok = self._take()
        if tok == "(":
            node = self._or()
            if self._take() != ")":
                raise TemplateError("missing ')'")
            return ("group", node)
        if tok in ("and", "or", "not", ")") or tok in _COMPARE:
            raise TemplateError(f"unexpected {tok!r} in condition")
        return _Expr.compile(tok)

    def eval(self, context: dict) -> bool:
        return bool(self._eval(self.tree, context))

    def _value(self, operand: Any, context: dict) -> Any:
        if isinstance(operand, tuple):
            return self._eval(operand[1], context)
        v = operand.eval(context)
        return None if v is _MISSING else v

    def _eval(self, node: Any, context: dict) -> Any:
        kind = node[0]
        if kind == "or":
            return self._eval(node[1], context) or self._eval(node[2], context)
        if kind == "and":
            return self._eval(node[1], context) and self._eval(node[2], context)
        if kind == "not":
            return not self._eval(node[1], context)
        if kind == "val":
            return not _empty(self._value(node[1], context))
        if kind == "group":
            return self._eval(node[1], context)
        _, op, left, right = node
        try:
            return _COMPARE[op](self._value(left, context), self._value(right, context))
        except TypeError:  # e.g. None > 0: false, as in Django
            return False


# -- template tree -----------------------------------------------------------------------

@dataclass
class _Node:
    kind: str                       # text | var | if | for
    text: str = ""
    expr: Any = None
    branches: list[tuple[Any, list["_Node"]]] = field(default_factory=list)   # if: (cond|None, body)
    loop_var: str = ""
    body: list["_Node"] = field(default_factory=list)
    empty: list["_Node"] = field(default_factory=list)


class Template:
    def __init__(self, source: str) -> None:
        if not isinstance(source, str):
            raise TemplateError("a template must be a string")
        self.source = source
        tokens = _TOKEN.split(source)
        self._pos = 0
        self._tokens = tokens
        self.nodes, end = self._parse(())
        if end is not None:
            raise TemplateError(f"unexpected {{% {end} %}}")

    def _parse(self, until: tuple[str, ...]) -> tuple[list[_Node], str | None]:
        nodes: list[_Node] = []
        while self._pos < len(self._tokens):
            tok = self._tokens[self._pos]
            self._pos += 1
            if tok.startswith("{{") and tok.endswith("}}"):
                nodes.append(_Node("var", expr=_Expr.compile(tok[2:-2])))
            elif tok.startswith("{#") and tok.endswith("#}"):
                continue
            elif tok.startswith("{%") and tok.endswith("%}"):
                content = tok[2:-2].strip()
                word = content.split(None, 1)[0] if content else ""
                if word in until:
                    return nodes, content
                if word == "if":
                    nodes.append(self._parse_if(content[2:].strip()))
                elif word == "for":
                    nodes.append(self._parse_for(content[3:].strip()))
                else:
                    raise TemplateError(f"unknown or misplaced tag {{% {content} %}}")
            elif tok:
                nodes.append(_Node("text", text=tok))
        if until:
            raise TemplateError(f"missing {{% {until[-1]} %}}")
        return nodes, None

    def _parse_if(self, cond: str) -> _Node:
        node = _Node("if")
        current = _Cond(cond)
        while True:
            body, end = self._parse(("elif", "else", "endif"))
            node.branches.append((current, body))
            assert end is not None
            word = end.split(None, 1)[0]
            if word == "endif":
                return node
            if word == "elif":
                current = _Cond(end[4:].strip())
            else:
                body, end = self._parse(("endif",))
                node.branches.append((None, body))
                return node

    def _parse_for(self, spec: str) -> _Node:
        m = re.match(r"^([A-Za-z_]\w*)\s+in\s+(.+)$", spec)
        if not m:
            raise TemplateError(f"bad for tag {spec!r}")
        node = _Node("for", loop_var=m.group(1), expr=_Expr.compile(m.group(2)))
        node.body, end = self._parse(("empty", "endfor"))
        if end == "empty":
            node.empty, end = self._parse(("endfor",))
        return node

    def render(self, context: dict) -> str:
        out: list[str] = []
        self._render(self.nodes, context, out)
        return "".join(out)

    def _render(self, nodes: list[_Node], context: dict, out: list[str]) -> None:
        for node in nodes:
            if node.kind == "text":
                out.append(node.text)
            elif node.kind == "var":
                out.append(to_text(node.expr.eval(context)))
            elif node.kind == "if":
                for cond, body in node.branches:
                    if cond is None or cond.eval(context):
                        self._render(body, context, out)
                        break
            elif node.kind == "for":
                items = node.expr.eval(context)
                if isinstance(items, dict):
                    items = list(items)
                if not isinstance(items, (list, tuple)) or not items:
                    self._render(node.empty, context, out)
                    continue
                for i, item in enumerate(items):
                    inner = dict(context)
                    inner[node.loop_var] = item
                    inner["forloop"] = {"counter": i + 1, "counter0": i, "first": i == 0,
                                        "last": i == len(items) - 1}
                    self._render(node.body, inner, out)


def render(source: str, context: dict) -> str:
    return Template(source).render(context)


# -- metric templates --------------------------------------------------------------------

@dataclass
class MetricTemplate:
    metric: str
    email: bool
    subject: Template | None
    body: Template | None
    audience: str = ""
    description: str = ""


class TemplateSet:
    """Metric name → what a flow would send. Loaded from templates.json (+ seed/extra templates)."""

    def __init__(self, data: dict | None = None) -> None:
        data = data if data is not None else load_templates_file()
        fallback = data.get("fallback") or {}
        self.fallback_subject = Template(fallback.get("subject", "{{ metric }}"))
        self.fallback_body = Template(fallback.get("body", "{{ properties_text }}"))
        self.metrics: dict[str, MetricTemplate] = {}
        self.sources: dict[str, dict] = {}
        self.update(data.get("metrics") or {})

    def update(self, metrics: dict) -> None:
        if not isinstance(metrics, dict):
            raise TemplateError("templates must be an object: metric name -> template")
        for name, spec in metrics.items():
            if not isinstance(spec, dict):
                raise TemplateError(f"template of {name!r} must be an object")
            email = bool(spec.get("email", True))
            subject = spec.get("subject")
            body = spec.get("body")
            self.metrics[name] = MetricTemplate(
                metric=name, email=email,
                subject=Template(subject) if subject is not None else None,
                body=Template(body) if body is not None else None,
                audience=str(spec.get("audience", "")), description=str(spec.get("description", "")))
            self.sources[name] = dict(spec)

    def get(self, metric: str) -> MetricTemplate | None:
        return self.metrics.get(metric)

    def render(self, tpl: MetricTemplate, context: dict) -> tuple[str, str]:
        subject = (tpl.subject or self.fallback_subject).render(context)
        body = (tpl.body or self.fallback_body).render(context)
        return " ".join(subject.split()), body

    def render_fallback(self, context: dict) -> tuple[str, str]:
        return " ".join(self.fallback_subject.render(context).split()), self.fallback_body.render(context)


def load_templates_file(path: str | Path | None = None) -> dict:
    p = Path(path) if path else TEMPLATES_FILE
    data = json.loads(p.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise TemplateError(f"{p}: expected a JSON object")
    return data
