from __future__ import annotations

import pytest

from giftsync.domain.codes import (ALPHABET, CODE_LENGTH, CodeHasher, derive_code, generate_code, is_valid_code,
                                   last4, mask, mask_text_codes, normalise_code)

SECRET = b"0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("raw,expected", [
    ("abcd efgh jkmn pqrs", "ABCDEFGHJKMNPQRS"), ("ABCD-EFGH-JKMN-PQRS", "ABCDEFGHJKMNPQRS"),
    ("  abcd\u2013efgh\u00a0jkmn\tpqrs\n", "ABCDEFGHJKMNPQRS"), ("ab\u200bcd", "ABCD"), (None, ""), (12345678, "12345678"),
])
def test_normalise(raw, expected):
    assert normalise_code(raw) == expected


@pytest.mark.parametrize("code,ok", [
    ("ABCDEFGH", True), ("A" * 20, True), ("ABCDEFG", False), ("A" * 21, False), ("ABCD!EFGH", False),
    ("ÄBCDEFGH", False), ("ＡＢＣＤＥＦＧＨ", False), ("", False), ("abcdefgh", False), ("ABCD EFGH", False),
])
def test_validate(code, ok):
    assert is_valid_code(code) is ok


def test_generate_uses_the_alphabet():
    codes = {generate_code() for _ in range(200)}
    assert len(codes) == 200
    assert all(len(c) == CODE_LENGTH and set(c) <= set(ALPHABET) and is_valid_code(c) for c in codes)
    assert not set("01OIL") & set(ALPHABET)


def test_derive_is_deterministic_and_distinct():
    a = derive_code(SECRET, "nonce", 0)
    assert a == derive_code(SECRET, "nonce", 0) and len(a) == CODE_LENGTH and set(a) <= set(ALPHABET)
    assert a != derive_code(SECRET, "nonce", 1)
    assert a != derive_code(SECRET, "other", 0)
    assert a != derive_code(b"another-secret-of-32-bytes-xxxxx", "nonce", 0)
    assert CodeHasher(SECRET).derive("nonce", 0) == a
    many = {derive_code(SECRET, "n", i) for i in range(500)}
    assert len(many) == 500


def test_mask_and_hash():
    assert last4("abcdefghjkmnpqrs") == "PQRS"
    assert mask("pqrs") == "•••• •••• •••• PQRS"
    assert mask_text_codes("code ABCDEFGHJKMNPQRS and abcdefghjkmnpqrs", ["ABCDEFGHJKMNPQRS"]).count("PQRS") == 2
    assert "ABCDEFGHJKMN" not in mask_text_codes("x ABCDEFGHJKMNPQRS", ["ABCDEFGHJKMNPQRS"])
    h = CodeHasher(SECRET)
    assert h.hash("abcd-efgh-jkmn-pqrs") == h.hash("ABCDEFGHJKMNPQRS")
    assert h.hash("ABCDEFGHJKMNPQRS") != CodeHasher(b"x" * 32).hash("ABCDEFGHJKMNPQRS")
    assert "ABCDEFGHJKMNPQRS" not in h.hash("ABCDEFGHJKMNPQRS").upper()
    with pytest.raises(ValueError):
        CodeHasher(b"short")
