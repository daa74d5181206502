"""filterByFormula: tokenizer, parser and evaluator for the subset giftsync and
pyairtable.formulas produce. Never uses Python ``eval``.

Values inside the evaluator:
  ``None``      blank (empty cell, BLANK())
  ``bool``      TRUE()/FALSE(), comparison results, checkbox cells (unchecked is blank)
  ``int/float`` numbers
  ``str``       text (links are their primary values joined with ", ")
  ``datetime``  aware UTC datetimes (date and dateTime cells, DATETIME_PARSE, NOW())
  ``FormulaValueError`` an error value (#ERROR!): a record whose filter errors is excluded

Errors of the formula itself (syntax, unknown function, wrong argument count, unknown
field) raise :class:`FormulaError`; the app turns them into 422 INVALID_FILTER_BY_FORMULA.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable

INVALID_SYNTAX = "Invalid formula. Please check your formula text."


class FormulaError(ValueError):
    """The formula can't be used at all (422 INVALID_FILTER_BY_FORMULA)."""

    def __init__(self, detail: str = INVALID_SYNTAX) -> None:
        super().__init__(detail)
        self.detail = detail

    @property
    def message(self) -> str:
        return f"The formula for filtering records is invalid: {self.detail}"


class FormulaValueError:
    """An error value (#ERROR!) produced while evaluating one record."""

    def __repr__(self) -> str:
        return "#ERROR!"


ERROR = FormulaValueError()


# -- tokenizer ------------------------------------------------------------------------
@dataclass
class Token:
    kind: str   # num str field ident op lparen rparen comma end
    value: Any
    pos: int


_OPS = ("!=", "<=", ">=", "=", "<", ">", "&", "+", "-", "*", "/")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}
_NUM_RX = re.compile(r"(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_IDENT_RX = re.compile(r"[^\W\d]\w*", re.UNICODE)


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
            continue
        if c in "'\"":
            quote, j, out = c, i + 1, []
            while True:
                if j >= n:
                    raise FormulaError()
                ch = text[j]
                if ch == "\\":
                    if j + 1 >= n:
                        raise FormulaError()
                    nxt = text[j + 1]
                    out.append(_ESCAPES.get(nxt, nxt))
                    j += 2
                    continue
                if ch == quote:
                    break
                out.append(ch)
                j += 1
            tokens.append(Token("str", "".join(out), i))
            i = j + 1
            continue
        if c == "{":
            j, out = i + 1, []
            while True:
                if j >= n:
                    raise FormulaError()
                ch = text[j]
                if ch == "\\" and j + 1 < n and text[j + 1] == "}":
                    out.append("}")
                    j += 2
                    continue
                if ch == "}":
                    break
                out.append(ch)
                j += 1
            name = "".join(out)
            if not name.strip():
                raise FormulaError()
            tokens.append(Token("field", name, i))
            i = j + 1
            continue
        m = _NUM_RX.match(text, i)
        if m and (c.isdigit() or c == "."):
            s = m.group(0)
            tokens.append(Token("num", float(s) if any(x in s for x in ".eE") else int(s), i))
            i = m.end()
            continue
        m = _IDENT_RX.match(text, i)
        if m:
            tokens.append(Token("ident", m.group(0), i))
            i = m.end()
            continue
        for op in _OPS:
            if text.startswith(op, i):
                tokens.append(Token("op", op, i))
                i += len(op)
                break
        else:
            if c == "(":
                tokens.append(Token("lparen", c, i))
            elif c == ")":
                tokens.append(Token("rparen", c, i))
            elif c == ",":
                tokens.append(Token("comma", c, i))
            else:
                raise FormulaError()
            i += 1
    tokens.append(Token("end", None, n))
    return tokens


# -- AST ------------------------------------------------------------------------------
@dataclass
class Lit:
    value: Any


@dataclass
class FieldRef:
    name: str


@dataclass
class Call:
    name: str
    args: list


@dataclass
class BinOp:
    op: str
    left: Any
    right: Any


@dataclass
class Neg:
    operand: Any


_PREC = {"=": 1, "!=": 1, "<": 1, ">": 1, "<=": 1, ">=": 1, "&": 2, "+": 3, "-": 3, "*": 4, "/": 4}


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0

    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def parse(self) -> Any:
        if self.peek().kind == "end":
            return None
        node = self.expr(0)
        if self.peek().kind != "end":
            raise FormulaError()
        return node

    def expr(self, min_prec: int) -> Any:
        left = self.unary()
        while True:
            tok = self.peek()
            if tok.kind != "op" or _PREC[tok.value] < min_prec:
                return left
            self.take()
            right = self.expr(_PREC[tok.value] + 1)
            left = BinOp(tok.value, left, right)

    def unary(self) -> Any:
        tok = self.peek()
        if tok.kind == "op" and tok.value in "-+":
            self.take()
            operand = self.unary()
            return Neg(operand) if tok.value == "-" else operand
        return self.primary()

    def primary(self) -> Any:
        tok = self.take()
        if tok.kind == "num" or tok.kind == "str":
            return Lit(tok.value)
        if tok.kind == "field":
            return FieldRef(tok.value)
        if tok.kind == "lparen":
            node = self.expr(0)
            if self.take().kind != "rparen":
                raise FormulaError()
            return node
        if tok.kind == "ident":
            if self.peek().kind == "lparen":
                self.take()
                args: list = []
                if self.peek().kind == "rparen":
                    self.take()
                else:
                    while True:
                        args.append(self.expr(0))
                        nxt = self.take()
                        if nxt.kind == "rparen":
                            break
                        if nxt.kind != "comma":
                            raise FormulaError()
                name = tok.value.upper()
                spec = FUNCTIONS.get(name)
                if spec is None:
                    raise FormulaError()
                lo, hi = spec[0], spec[1]
                if len(args) < lo or (hi is not None and len(args) > hi):
                    raise FormulaError()
                return Call(name, args)
            return FieldRef(tok.value)   # a bare single-word field name
        raise FormulaError()


def parse(text: str) -> Any:
    """The AST of ``text`` (None for an empty formula); raises FormulaError."""
    if len(text) > 100_000:
        raise FormulaError()
    try:
        return _Parser(text).parse()
    except RecursionError:
        raise FormulaError() from None


def field_refs(node: Any) -> list[str]:
    out: list[str] = []

    def walk(n: Any) -> None:
        if isinstance(n, FieldRef):
            out.append(n.name)
        elif isinstance(n, Call):
            for a in n.args:
                walk(a)
        elif isinstance(n, BinOp):
            walk(n.left)
            walk(n.right)
        elif isinstance(n, Neg):
            walk(n.operand)

    walk(node)
    return out


# -- coercions ------------------------------------------------------------------------
def is_blank(v: Any) -> bool:
    return v is None or v == "" or (isinstance(v, list) and not v)


def truthy(v: Any) -> bool:
    if v is None or v is ERROR or isinstance(v, FormulaValueError):
        return False
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)):
        return not (v == 0 or math.isnan(v))
    if isinstance(v, str):
        return v != ""
    if isinstance(v, list):
        return bool(v)
    return True


def fmt_number(v: float | int) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        if v.is_integer() and abs(v) < 1e16:
            return str(int(v))
        return repr(v)
    return str(v)


def iso(dt: datetime) -> str:
    dt = dt.astimezone(timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def to_text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, (int, float)):
        return fmt_number(v)
    if isinstance(v, datetime):
        return iso(v)
    if isinstance(v, list):
        return ", ".join(to_text(x) for x in v)
    return str(v)


def to_number(v: Any) -> float | int | FormulaValueError:
    if v is None:
        return 0
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (int, float)):
        return v
    if isinstance(v, datetime):
        return v.timestamp()
    if isinstance(v, str):
        s = v.strip()
        if s == "":
            return 0
        try:
            f = float(s.replace(",", ""))
        except ValueError:
            return ERROR
        return int(f) if f.is_integer() and "." not in s and "e" not in s.lower() else f
    return ERROR


_DATE_RX = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_datetime(s: str, fmt: str | None = None) -> datetime | None:
    """ISO 8601 (with or without time / offset / Z) or a moment.js-style format; UTC if naive."""
    s = s.strip()
    if not s:
        return None
    if fmt:
        py = _moment_to_strptime(fmt)
        if py is not None:
            try:
                dt = datetime.strptime(s, py)
            except ValueError:
                dt = None
            if dt is not None:
                return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)
    text = s.replace("z", "Z")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        for f in ("%m/%d/%Y", "%m/%d/%Y %H:%M", "%Y/%m/%d", "%d %B %Y", "%B %d, %Y", "%B %d %Y"):
            try:
                dt = datetime.strptime(s, f)
                break
            except ValueError:
                continue
        else:
            return None
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


_MOMENT = [("YYYY", "%Y"), ("YY", "%y"), ("MMMM", "%B"), ("MMM", "%b"), ("MM", "%m"), ("M", "%m"),
           ("DD", "%d"), ("D", "%d"), ("HH", "%H"), ("H", "%H"), ("hh", "%I"), ("h", "%I"),
           ("mm", "%M"), ("ss", "%S"), ("SSS", "%f"), ("A", "%p"), ("a", "%p"), ("ZZ", "%z"), ("Z", "%z")]


def _moment_to_strptime(fmt: str) -> str | None:
    out, i = [], 0
    while i < len(fmt):
        for tok, py in _MOMENT:
            if fmt.startswith(tok, i):
                out.append(py)
                i += len(tok)
                break
        else:
            ch = fmt[i]
            if ch.isalpha():
                return None
            out.append("%%" if ch == "%" else ch)
            i += 1
    return "".join(out)


def to_datetime(v: Any) -> datetime | None | FormulaValueError:
    if v is None or v == "":
        return None
    if isinstance(v, datetime):
        return v
    if isinstance(v, date):
        return datetime(v.year, v.month, v.day, tzinfo=timezone.utc)
    if isinstance(v, str):
        dt = parse_datetime(v)
        return ERROR if dt is None else dt
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        try:
            return datetime.fromtimestamp(v, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            return ERROR
    return ERROR


# -- comparisons ----------------------------------------------------------------------
def _cmp_pair(a: Any, b: Any) -> tuple[Any, Any] | None:
    """Both sides coerced to one comparable kind, or None when they can't be compared."""
    if a is None and b is None:
        return 0, 0
    if a is None:
        a = "" if isinstance(b, str) else (0 if not isinstance(b, datetime) else None)
    if b is None:
        b = "" if isinstance(a, str) else (0 if not isinstance(a, datetime) else None)
    if a is None or b is None:
        return None
    if isinstance(a, datetime) or isinstance(b, datetime):
        da, db = to_datetime(a), to_datetime(b)
        if isinstance(da, datetime) and isinstance(db, datetime):
            return da, db
        return to_text(a), to_text(b)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a, b
    if isinstance(a, str) and isinstance(b, str):
        return a, b
    # number vs text: numeric when the text is a number, else as text
    na, nb = to_number(a), to_number(b)
    if not isinstance(na, FormulaValueError) and not isinstance(nb, FormulaValueError):
        return na, nb
    return to_text(a), to_text(b)


def compare(op: str, a: Any, b: Any) -> Any:
    if isinstance(a, FormulaValueError) or isinstance(b, FormulaValueError):
        return ERROR
    if op in ("=", "!="):
        if a is None or b is None:
            other = b if a is None else a
            eq = other is None or other == "" or other is False or (isinstance(other, (int, float)) and other == 0)
        else:
            pair = _cmp_pair(a, b)
            eq = pair is not None and pair[0] == pair[1]
        return eq if op == "=" else not eq
    pair = _cmp_pair(a, b)
    if pair is None:
        return False
    x, y = pair
    try:
        if op == "<":
            return x < y
        if op == ">":
            return x > y
        if op == "<=":
            return x <= y
        return x >= y
    except TypeError:
        return ERROR


def _arith(op: str, a: Any, b: Any) -> Any:
    if op == "&":
        if isinstance(a, FormulaValueError) or isinstance(b, FormulaValueError):
            return ERROR
        return to_text(a) + to_text(b)
    if isinstance(a, datetime) and op in "+-" and not isinstance(b, datetime):
        return ERROR
    x, y = to_number(a), to_number(b)
    if isinstance(x, FormulaValueError) or isinstance(y, FormulaValueError):
        return ERROR
    if op == "+":
        r = x + y
    elif op == "-":
        r = x - y
    elif op == "*":
        r = x * y
    else:
        if y == 0:
            return ERROR
        r = x / y
    return r


# -- date helpers ---------------------------------------------------------------------
_UNITS = {
    "milliseconds": "ms", "millisecond": "ms", "ms": "ms",
    "seconds": "s", "second": "s", "s": "s",
    "minutes": "m", "minute": "m", "m": "m",
    "hours": "h", "hour": "h", "h": "h",
    "days": "d", "day": "d", "d": "d",
    "weeks": "w", "week": "w", "w": "w",
    "months": "M", "month": "M", "M": "M",
    "quarters": "Q", "quarter": "Q", "Q": "Q",
    "years": "y", "year": "y", "y": "y",
}
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _unit(v: Any, default: str) -> str | FormulaValueError:
    if v is None:
        return default
    u = _UNITS.get(to_text(v)) or _UNITS.get(to_text(v).lower())
    return ERROR if u is None else u


def _month_diff(a: datetime, b: datetime) -> float:
    # moment.js-like: whole months plus a fraction, truncated by the caller
    months = (a.year - b.year) * 12 + (a.month - b.month)
    anchor = _add_months(b, months)
    if (a - anchor).total_seconds() < 0 and months > 0:
        months -= 1
    elif (a - anchor).total_seconds() > 0 and months < 0:
        months += 1
    return months


def _add_months(d: datetime, n: int) -> datetime:
    total = d.month - 1 + n
    year, month = d.year + total // 12, total % 12 + 1
    import calendar
    day = min(d.day, calendar.monthrange(year, month)[1])
    return d.replace(year=year, month=month, day=day)


def _truncate(d: datetime, unit: str) -> datetime:
    if unit == "ms":
        return d.replace(microsecond=d.microsecond // 1000 * 1000)
    if unit == "s":
        return d.replace(microsecond=0)
    if unit == "m":
        return d.replace(second=0, microsecond=0)
    if unit == "h":
        return d.replace(minute=0, second=0, microsecond=0)
    if unit == "d":
        return d.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "w":
        d = d.replace(hour=0, minute=0, second=0, microsecond=0)
        return d - timedelta(days=(d.weekday() + 1) % 7)   # weeks start on Sunday
    if unit == "M":
        return d.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if unit == "Q":
        return d.replace(month=(d.month - 1) // 3 * 3 + 1, day=1, hour=0, minute=0, second=0, microsecond=0)
    return d.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)


# -- functions ------------------------------------------------------------------------
class Context:
    """What the evaluator needs from the record being filtered."""

    def __init__(self, record_id: str = "", resolve: Callable[[str], Any] | None = None,
                 now: datetime | None = None, created_time: datetime | None = None,
                 modified_time: datetime | None = None) -> None:
        self.record_id = record_id
        self.resolve = resolve or (lambda name: None)
        self.now = now or datetime.now(timezone.utc)
        self.created_time = created_time
        self.modified_time = modified_time


def _f_and(ctx, args):
    vals = [ev(a, ctx) for a in args]
    if any(isinstance(v, FormulaValueError) for v in vals):
        return ERROR
    return all(truthy(v) for v in vals)


def _f_or(ctx, args):
    vals = [ev(a, ctx) for a in args]
    if any(isinstance(v, FormulaValueError) for v in vals):
        return ERROR
    return any(truthy(v) for v in vals)


def _f_xor(ctx, args):
    vals = [ev(a, ctx) for a in args]
    if any(isinstance(v, FormulaValueError) for v in vals):
        return ERROR
    return sum(1 for v in vals if truthy(v)) % 2 == 1


def _f_not(ctx, args):
    v = ev(args[0], ctx)
    return ERROR if isinstance(v, FormulaValueError) else not truthy(v)


def _f_if(ctx, args):
    c = ev(args[0], ctx)
    if isinstance(c, FormulaValueError):
        return ERROR
    if truthy(c):
        return ev(args[1], ctx)
    return ev(args[2], ctx) if len(args) > 2 else None


def _f_switch(ctx, args):
    expr = ev(args[0], ctx)
    rest = args[1:]
    i = 0
    while i + 1 < len(rest):
        if compare("=", expr, ev(rest[i], ctx)) is True:
            return ev(rest[i + 1], ctx)
        i += 2
    return ev(rest[i], ctx) if i < len(rest) else None


def _strict(fn):
    """Evaluate the arguments first; any error argument makes the result an error."""
    def call(ctx, args):
        vals = [ev(a, ctx) for a in args]
        if any(isinstance(v, FormulaValueError) for v in vals):
            return ERROR
        return fn(ctx, *vals)
    return call


def _find(needle, hay, start=None, *, ci=False):
    n, h = to_text(needle), to_text(hay)
    if ci:
        n, h = n.lower(), h.lower()
    s = to_number(start) if start is not None else 1
    if isinstance(s, FormulaValueError):
        return ERROR
    s = max(int(s), 1)
    idx = h.find(n, s - 1)
    return idx + 1 if idx >= 0 else 0


def _search(ctx, needle, hay, start=None):
    r = _find(needle, hay, start, ci=True)
    return None if r == 0 else r


def _date_arg(v):
    d = to_datetime(v)
    return d


def _is_cmp(op):
    def fn(ctx, a, b, unit=None):
        da, db = _date_arg(a), _date_arg(b)
        if isinstance(da, FormulaValueError) or isinstance(db, FormulaValueError):
            return ERROR
        if da is None or db is None:
            return None
        if op == "same":
            u = _unit(unit, "ms")
            if isinstance(u, FormulaValueError):
                return ERROR
            return _truncate(da, u) == _truncate(db, u)
        return da < db if op == "before" else da > db
    return fn


def _datetime_diff(ctx, a, b, unit=None):
    da, db = _date_arg(a), _date_arg(b)
    if isinstance(da, FormulaValueError) or isinstance(db, FormulaValueError):
        return ERROR
    if da is None or db is None:
        return None
    u = _unit(unit, "s")
    if isinstance(u, FormulaValueError):
        return ERROR
    if u in _SECONDS:
        return math.trunc((da - db).total_seconds() / _SECONDS[u] + (1e-9 if da >= db else -1e-9))
    months = _month_diff(da, db)
    if u == "M":
        return int(months)
    if u == "Q":
        return int(months / 3)
    return int(months / 12)


def _dateadd(ctx, d, n, unit):
    dt = _date_arg(d)
    if isinstance(dt, FormulaValueError):
        return ERROR
    if dt is None:
        return None
    num = to_number(n)
    u = _unit(unit, "d")
    if isinstance(num, FormulaValueError) or isinstance(u, FormulaValueError):
        return ERROR
    if u in _SECONDS:
        return dt + timedelta(seconds=num * _SECONDS[u])
    months = int(num) * {"M": 1, "Q": 3, "y": 12}[u]
    return _add_months(dt, months)


def _datetime_parse(ctx, s, fmt=None, locale=None):
    if s is None:
        return None
    if isinstance(s, datetime):
        return s
    dt = parse_datetime(to_text(s), None if fmt is None else to_text(fmt))
    return ERROR if dt is None else dt


def _datetime_format(ctx, d, fmt=None):
    dt = _date_arg(d)
    if isinstance(dt, FormulaValueError):
        return ERROR
    if dt is None:
        return None
    if fmt is None:
        return iso(dt)
    py = _moment_to_strptime(to_text(fmt))
    return iso(dt) if py is None else dt.strftime(py)


def _num1(fn):
    def call(ctx, v, *rest):
        x = to_number(v)
        if isinstance(x, FormulaValueError):
            return ERROR
        return fn(x, *rest)
    return call


def _round(x, places=0):
    p = to_number(places)
    if isinstance(p, FormulaValueError):
        return ERROR
    q = 10 ** int(p)
    r = math.floor(abs(x) * q + 0.5) / q
    r = -r if x < 0 else r
    return int(r) if int(p) <= 0 else r


def _value(ctx, v):
    x = to_number(v if not isinstance(v, str) else re.sub(r"[^0-9.eE+-]", "", v) or "0")
    return x


def _left(ctx, s, n):
    k = to_number(n)
    return ERROR if isinstance(k, FormulaValueError) else to_text(s)[: max(int(k), 0)]


def _right(ctx, s, n):
    k = to_number(n)
    if isinstance(k, FormulaValueError):
        return ERROR
    k = max(int(k), 0)
    return to_text(s)[-k:] if k else ""


def _mid(ctx, s, start, count):
    a, c = to_number(start), to_number(count)
    if isinstance(a, FormulaValueError) or isinstance(c, FormulaValueError):
        return ERROR
    a = max(int(a), 1) - 1
    return to_text(s)[a: a + max(int(c), 0)]


def _substitute(ctx, s, old, new, index=None):
    s, old, new = to_text(s), to_text(old), to_text(new)
    if not old:
        return s
    if index is None:
        return s.replace(old, new)
    k = to_number(index)
    if isinstance(k, FormulaValueError):
        return ERROR
    parts = s.split(old)
    k = int(k)
    if k < 1 or k >= len(parts):
        return s
    return old.join(parts[:k]) + new + old.join(parts[k:])


def _rept(ctx, s, n):
    k = to_number(n)
    if isinstance(k, FormulaValueError):
        return ERROR
    k = int(k)
    if k < 0 or k * len(to_text(s)) > 100_000:
        return ERROR
    return to_text(s) * k


def _iserror(ctx, args):
    return isinstance(ev(args[0], ctx), FormulaValueError)


def _today(ctx):
    n = ctx.now.astimezone(timezone.utc)
    return n.replace(hour=0, minute=0, second=0, microsecond=0)


def _datepart(attr):
    def fn(ctx, d):
        dt = _date_arg(d)
        if isinstance(dt, FormulaValueError):
            return ERROR
        return None if dt is None else getattr(dt, attr)
    return fn


def _datestr(ctx, d):
    dt = _date_arg(d)
    if isinstance(dt, FormulaValueError):
        return ERROR
    return None if dt is None else dt.strftime("%Y-%m-%d")


def _raw(fn):
    fn._raw = True
    return fn


# name -> (min args, max args or None, implementation). "raw" implementations get the
# unevaluated argument nodes (lazy logic); the others get values.
FUNCTIONS: dict[str, tuple[int, int | None, Callable]] = {
    "AND": (1, None, _raw(_f_and)),
    "OR": (1, None, _raw(_f_or)),
    "XOR": (1, None, _raw(_f_xor)),
    "NOT": (1, 1, _raw(_f_not)),
    "IF": (2, 3, _raw(_f_if)),
    "SWITCH": (2, None, _raw(_f_switch)),
    "ISERROR": (1, 1, _raw(_iserror)),
    "TRUE": (0, 0, _strict(lambda ctx: True)),
    "FALSE": (0, 0, _strict(lambda ctx: False)),
    "BLANK": (0, 0, _strict(lambda ctx: None)),
    "ERROR": (0, None, _strict(lambda ctx, *a: ERROR)),
    "RECORD_ID": (0, 0, _strict(lambda ctx: ctx.record_id)),
    "CREATED_TIME": (0, 0, _strict(lambda ctx: ctx.created_time)),
    "LAST_MODIFIED_TIME": (0, None, _strict(lambda ctx, *a: ctx.modified_time or ctx.created_time)),
    "NOW": (0, 0, _strict(lambda ctx: ctx.now)),
    "TODAY": (0, 0, _strict(_today)),
    "LOWER": (1, 1, _strict(lambda ctx, s: to_text(s).lower())),
    "UPPER": (1, 1, _strict(lambda ctx, s: to_text(s).upper())),
    "TRIM": (1, 1, _strict(lambda ctx, s: to_text(s).strip(" "))),
    "LEN": (1, 1, _strict(lambda ctx, s: len(to_text(s)))),
    "FIND": (2, 3, _strict(lambda ctx, n, h, s=None: _find(n, h, s))),
    "SEARCH": (2, 3, _strict(_search)),
    "LEFT": (2, 2, _strict(_left)),
    "RIGHT": (2, 2, _strict(_right)),
    "MID": (3, 3, _strict(_mid)),
    "SUBSTITUTE": (3, 4, _strict(_substitute)),
    "REPT": (2, 2, _strict(_rept)),
    "CONCATENATE": (1, None, _strict(lambda ctx, *a: "".join(to_text(x) for x in a))),
    "T": (1, 1, _strict(lambda ctx, v: v if isinstance(v, str) else "")),
    "VALUE": (1, 1, _strict(_value)),
    "ABS": (1, 1, _strict(_num1(abs))),
    "ROUND": (1, 2, _strict(_num1(_round))),
    "INT": (1, 1, _strict(_num1(lambda x: math.floor(x)))),
    "DATETIME_PARSE": (1, 3, _strict(_datetime_parse)),
    "DATETIME_FORMAT": (1, 2, _strict(_datetime_format)),
    "DATESTR": (1, 1, _strict(_datestr)),
    "IS_BEFORE": (2, 2, _strict(_is_cmp("before"))),
    "IS_AFTER": (2, 2, _strict(_is_cmp("after"))),
    "IS_SAME": (2, 3, _strict(_is_cmp("same"))),
    "DATETIME_DIFF": (2, 3, _strict(_datetime_diff)),
    "DATEADD": (3, 3, _strict(_dateadd)),
    "YEAR": (1, 1, _strict(_datepart("year"))),
    "MONTH": (1, 1, _strict(_datepart("month"))),
    "DAY": (1, 1, _strict(_datepart("day"))),
}


def ev(node: Any, ctx: Context) -> Any:
    if isinstance(node, Lit):
        return node.value
    if isinstance(node, FieldRef):
        return ctx.resolve(node.name)
    if isinstance(node, BinOp):
        a, b = ev(node.left, ctx), ev(node.right, ctx)
        if node.op in _PREC and _PREC[node.op] == 1:
            return compare(node.op, a, b)
        return _arith(node.op, a, b)
    if isinstance(node, Neg):
        x = to_number(ev(node.operand, ctx))
        return ERROR if isinstance(x, FormulaValueError) else -x
    if isinstance(node, Call):
        impl = FUNCTIONS[node.name][2]
        try:
            return impl(ctx, node.args)
        except (ValueError, OverflowError, TypeError, ArithmeticError):
            return ERROR
    return None


def evaluate(node: Any, ctx: Context) -> Any:
    """The formula's value for one record (an error value instead of an exception)."""
    if node is None:
        return True
    try:
        return ev(node, ctx)
    except RecursionError:
        return ERROR


def matches(node: Any, ctx: Context) -> bool:
    """Whether a record is kept by filterByFormula (kept unless 0, false, "", NaN, blank, error)."""
    return truthy(evaluate(node, ctx))


def check_fields(node: Any, known: Callable[[str], bool]) -> None:
    """Raise FormulaError listing unknown field names (lower-cased, like Airtable)."""
    unknown: list[str] = []
    for name in field_refs(node):
        if not known(name) and name.lower() not in unknown:
            unknown.append(name.lower())
    if unknown:
        raise FormulaError("Unknown field names: " + ", ".join(unknown))


def compile_filter(text: str, known: Callable[[str], bool]) -> Any:
    node = parse(text)
    check_fields(node, known)
    return node
