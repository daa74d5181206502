"""Logging: one line per event, as text or JSON lines, with secrets and whole codes redacted.

Text::

    2026-01-05T09:00:00.123Z INFO [prong-store] giftsync.prongs.store: redeemed record=rec… amount=10.00

JSON (``--log-format json``): ``{"time", "level", "thread", "logger", "message", ...fields}``.

Fields are whatever the caller passes in ``extra=`` (``log.info("redeemed", extra={"record": rid})``)
or with ``kv(...)``. The ``RedactingFilter`` sits on the handler, so every record from every
logger passes through it: configured secrets, token-looking strings, 16-character runs of the
code alphabet (with or without group separators) and any code registered with
``register_sensitive()`` are replaced before formatting — belt and braces on top of never
logging them in the first place.
"""
from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Any, Iterable, TextIO

from ..domain.codes import ALPHABET, MAX_LEN, MIN_LEN, last4, mask

_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None)).keys()) | {
    "message", "asctime", "taskName"}
_REDACTED_MARK = "_giftsync_redacted"

# -- what counts as sensitive ------------------------------------------------------------------

_C = re.escape(ALPHABET) + re.escape(ALPHABET.lower())
# 16 characters of the code alphabet, alone or in groups of four joined by a space or a dash.
_CODE_RUN = re.compile(
    rf"(?<![A-Za-z0-9])(?:[{_C}]{{16}}|[{_C}]{{4}}(?:[ \-][{_C}]{{4}}){{3}})(?![A-Za-z0-9])")
# Token shapes of the services (in case one reaches a log line without being configured).
_TOKEN_SHAPES = [
    re.compile(r"\bpat[A-Za-z0-9]{14}\.[A-Fa-f0-9]{32,}\b"),        # Airtable personal access token
    re.compile(r"\bshp(?:at|ca|pa|ss)_[A-Fa-f0-9]{16,}\b"),       # Shopify access tokens
    re.compile(r"\bpk_[A-Za-z0-9]{20,}\b"),                        # Klaviyo private key
    re.compile(r"(?i)(\b(?:bearer|klaviyo-api-key)\s+)[^\s,'\"]+"),
    re.compile(r"(?i)(x-shopify-access-token['\"]?\s*[:=]\s*['\"]?)[^\s,'\"]+"),
]

_MAX_REGISTERED = 20000


class _Registry:
    """Secrets and codes this process knows to be sensitive."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: dict[str, str] = {}              # value -> label
        self._codes: OrderedDict[str, None] = OrderedDict()
        self._pattern: re.Pattern[str] | None = None
        self._dirty = False

    def add_secret(self, value: str, label: str = "secret") -> None:
        if value and len(value) >= 4:
            with self._lock:
                self._secrets[value] = label
                self._dirty = True

    def add_code(self, code: str) -> None:
        code = re.sub(r"[\s\-]", "", code or "").upper()
        if not (MIN_LEN <= len(code) <= MAX_LEN):
            return
        with self._lock:
            if code in self._codes:
                self._codes.move_to_end(code)
                return
            self._codes[code] = None
            while len(self._codes) > _MAX_REGISTERED:
                self._codes.popitem(last=False)
            self._dirty = True

    def clear(self) -> None:
        with self._lock:
            self._secrets.clear()
            self._codes.clear()
            self._pattern = None
            self._dirty = False

    def pattern(self) -> tuple[re.Pattern[str] | None, dict[str, str]]:
        with self._lock:
            if self._dirty:
                items = sorted(list(self._secrets) + list(self._codes), key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(i) for i in items), re.IGNORECASE) if items else None
                self._dirty = False
            return self._pattern, dict(self._secrets)


_registry = _Registry()


def register_secret(value: str, label: str = "secret") -> None:
    """Never let ``value`` reach a log line (shown as ``[REDACTED:label]``)."""
    _registry.add_secret(value, label)


def register_sensitive(code: str) -> None:
    """A whole card code (8–20 characters) this process handles: shown masked if ever logged."""
    _registry.add_code(code)


def clear_sensitive() -> None:
    """Forget everything registered (tests)."""
    _registry.clear()


def redact(text: str) -> str:
    """``text`` with every secret, token-looking string and whole code replaced."""
    if not text:
        return text
    pattern, secrets_by_value = _registry.pattern()
    if pattern is not None:
        lowered = {k.lower(): v for k, v in secrets_by_value.items()}

        def _sub(m: re.Match[str]) -> str:
            found = m.group(0)
            label = secrets_by_value.get(found) or lowered.get(found.lower())
            return f"[REDACTED:{label}]" if label else _masked(found)
        text = pattern.sub(_sub, text)
    for shape in _TOKEN_SHAPES:
        if shape.groups:
            text = shape.sub(lambda m: m.group(1) + "[REDACTED]", text)
        else:
            text = shape.sub("[REDACTED]", text)
    return _CODE_RUN.sub(lambda m: _masked(m.group(0)), text)


def _masked(code: str) -> str:
    return mask(last4(re.sub(r"[\s\-]", "", code)))


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_redact_value(v) for v in value]
    return redact(str(value))


class RedactingFilter(logging.Filter):
    """Rewrites the record in place (message, fields, exception text) before any formatter."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, _REDACTED_MARK, False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 — a bad format string must not hide the event
            message = f"{record.msg!r} {record.args!r}"
        record.msg = redact(message)
        record.args = None
        for key in fields_of(record):
            setattr(record, key, _redact_value(getattr(record, key)))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        setattr(record, _REDACTED_MARK, True)
        return True


# -- formatting --------------------------------------------------------------------------------

def kv(**fields: Any) -> dict[str, Any]:
    """``log.info("msg", extra=kv(record=rid, amount=a))`` — the fields printed as key=value."""
    return fields


def fields_of(record: logging.LogRecord) -> list[str]:
    return [k for k in record.__dict__ if k not in _STANDARD_ATTRS and not k.startswith("_")]


def _time(record: logging.LogRecord) -> str:
    when = datetime.fromtimestamp(record.created, tz=timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(record.msecs):03d}Z"


_BARE = re.compile(r"^[^\s=\"']+$")


def _text_value(value: Any) -> str:
    if isinstance(value, (dict, list, tuple)):
        value = json.dumps(value, default=str, ensure_ascii=False)
    text = str(value)
    return text if _BARE.match(text) else json.dumps(text, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage().replace("\n", "\\n")
        parts = [_time(record), record.levelname, f"[{record.threadName}]", f"{record.name}:", message]
        parts += [f"{k}={_text_value(getattr(record, k))}" for k in fields_of(record)]
        line = " ".join(parts)
        exc = record.exc_text or (self.formatException(record.exc_info) if record.exc_info else "")
        if exc:
            line += " exc=" + json.dumps(exc, ensure_ascii=False)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": _time(record),
            "level": record.levelname,
            "thread": record.threadName,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in fields_of(record):
            value = getattr(record, key)
            out[key if key not in out else f"field_{key}"] = value
        exc = record.exc_text or (self.formatException(record.exc_info) if record.exc_info else "")
        if exc:
            out["exc"] = exc
        return json.dumps(out, default=str, ensure_ascii=False)


_HANDLER_MARK = "_giftsync_handler"


def setup(*, fmt: str = "text", level: str | int = "INFO", secrets: Iterable[str] = (),
          stream: TextIO | None = None) -> logging.Handler:
    """Configure the root logger: one handler (replacing a previous giftsync handler)."""
    for value in secrets:
        register_secret(value)
    if fmt not in ("text", "json"):
        raise ValueError(f"unknown log format {fmt!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RedactingFilter())
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, _HANDLER_MARK, False):
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())
    # Libraries may set their own loggers' levels later (klaviyo-api sets urllib3's to WARNING):
    # the handler keeps to the level asked for whatever they do.
    handler.setLevel(root.level)
    # Chatty libraries: their request lines may carry URLs with record ids; keep them quiet.
    for noisy in ("urllib3", "gql", "requests"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    # APScheduler's "skipped: maximum number of running instances" / "missed" warnings would
    # repeat every interval while a long request runs; the scheduler reports them itself.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    logging.captureWarnings(True)
    return handler


def register_settings_secrets(settings: Any) -> None:
    """Register every secret of ``giftsync.config.Settings`` by its environment name."""
    from ..config import Settings
    from dataclasses import fields
    if not isinstance(settings, Settings):
        return
    for f in fields(settings):
        if f.metadata.get("secret"):
            value = getattr(settings, f.name)
            if value:
                register_secret(value.reveal(), f.metadata["env"])
