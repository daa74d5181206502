"""Log lines: text and JSON shapes, and the redaction filter (secrets, whole codes)."""
from __future__ import annotations

import io
import json
import logging
import threading

import pytest

from giftsync.domain.codes import generate_code
from giftsync.runtime import logs


@pytest.fixture
def capture():
    stream = io.StringIO()

    def setup(fmt="text"):
        logs.setup(fmt=fmt, level="DEBUG", stream=stream)
        return stream
    yield setup
    logs.clear_sensitive()
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_giftsync_handler", False):
            root.removeHandler(h)


log = logging.getLogger("giftsync.test.logs")


def test_text_line_has_time_level_thread_logger_message_and_fields(capture):
    stream = capture("text")
    log.info("redeemed %s", "ok", extra=logs.kv(record="recAAAAAAAAAAAAAA", amount="10.00 USD"))
    line = stream.getvalue().strip()
    assert line.count("\n") == 0
    stamp, level, thread, logger, *rest = line.split(" ")
    assert stamp.endswith("Z") and "T" in stamp
    assert level == "INFO" and thread == "[MainThread]" and logger == "giftsync.test.logs:"
    assert "redeemed ok" in line and "record=recAAAAAAAAAAAAAA" in line and 'amount="10.00 USD"' in line


def test_json_line(capture):
    stream = capture("json")

    def worker():
        log.warning("slow", extra={"prong": "store", "n": 3})
    t = threading.Thread(target=worker, name="prong-store_0")
    t.start()
    t.join()
    data = json.loads(stream.getvalue())
    assert data["level"] == "WARNING" and data["thread"] == "prong-store_0"
    assert data["logger"] == "giftsync.test.logs" and data["message"] == "slow"
    assert data["prong"] == "store" and data["n"] == 3 and data["time"].endswith("Z")


def test_a_multiline_message_stays_on_one_line(capture):
    stream = capture("text")
    log.info("a\nb")
    assert stream.getvalue().count("\n") == 1


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_whole_generated_codes_are_masked_everywhere(capture, fmt):
    stream = capture(fmt)
    code = generate_code()
    grouped = "-".join(code[i:i + 4] for i in range(0, 16, 4))
    spaced = " ".join(code[i:i + 4] for i in range(0, 16, 4))
    log.info("code %s / %s / %s / %s", code, grouped, spaced, code.lower(),
             extra={"code": code, "nested": {"codes": [code]}})
    try:
        raise ValueError(f"lookup failed for {code}")
    except ValueError:
        log.exception("boom")
    out = stream.getvalue()
    for form in (code, grouped, spaced, code.lower()):
        assert form not in out
    assert code[-4:] in out            # the masked form keeps the last 4


def test_registered_codes_of_other_lengths_are_masked(capture):
    stream = capture("text")
    serial = "PHYS12345678"            # a physical card's printed serial (12 chars)
    logs.register_sensitive("phys-1234 5678")
    log.info("serial %s typed as %s", serial, serial.lower())
    out = stream.getvalue()
    assert serial not in out and serial.lower() not in out and "5678" in out


def test_configured_secrets_and_token_shapes_are_redacted(capture):
    stream = capture("text")
    logs.register_secret("my-very-secret-value", "KLAVIYO_API_KEY")
    log.info("key my-very-secret-value header Authorization: Bearer abc.def.ghi",
             extra={"headers": {"X-Shopify-Access-Token": "shpat_0123456789abcdef0123456789abcdef"}})
    out = stream.getvalue()
    assert "my-very-secret-value" not in out and "[REDACTED:KLAVIYO_API_KEY]" in out
    assert "abc.def.ghi" not in out
    assert "shpat_0123456789abcdef" not in out


def test_ordinary_identifiers_are_not_mangled(capture):
    stream = capture("text")
    values = ["recAbCdEfGhIjKlMn", "gid://shopify/GiftCard/1234567890", "att-0123456789ab",
              "redemption:recAbCdEfGhIjKlMn:store", "host:1234:deadbeef", "2026-07"]
    log.info(" ".join(values))
    out = stream.getvalue()
    for v in values:
        assert v in out


def test_a_broken_format_string_still_passes_the_filter():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "one %s %s", ("arg",), None)
    assert logs.RedactingFilter().filter(record)
    assert "one" in logs.TextFormatter().format(record)


def test_setup_replaces_its_own_handler_only(capture):
    capture("text")
    capture("json")
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_giftsync_handler", False)]
    assert len(ours) == 1
