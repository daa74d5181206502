"""Gift-card codes: generation, derivation, normalisation, validation, masking, keyed hash."""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import unicodedata

# No 0/O, 1/I/L: nothing a customer can misread off a card or an email.
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 16
MIN_LEN, MAX_LEN = 8, 20          # what Shopify accepts
MASK_PREFIX = "•••• •••• •••• "
_VALID = re.compile(r"^[A-Z0-9]{%d,%d}$" % (MIN_LEN, MAX_LEN))
# Separators people type between groups: ASCII and Unicode spaces and dashes.
_SEPARATORS = {"-", "_", "\u2010", "\u2011", "\u2012", "\u2013", "\u2014", "\u2212"}


def generate_code(length: int = CODE_LENGTH) -> str:
    """A fresh random code from the unambiguous alphabet (``secrets``)."""
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def derive_code(secret: bytes, nonce: str, index: int, length: int = CODE_LENGTH) -> str:
    """The code of card ``index`` of an issuance whose random ``nonce`` was claimed first.

    Deterministic for (secret, nonce, index) so that an issuance interrupted by a crash
    recomputes the same code and finds the card it may already have created, instead of
    creating a second one. See docs/adr/0002-card-codes.md.
    """
    out: list[str] = []
    counter = 0
    while len(out) < length:
        block = hmac.new(secret, f"giftsync-issue:{nonce}:{index}:{counter}".encode(), hashlib.sha256).digest()
        for byte in block:
            if byte < 248:  # 248 = 8 * 31: rejection sampling keeps every symbol equally likely
                out.append(ALPHABET[byte % len(ALPHABET)])
                if len(out) == length:
                    break
        counter += 1
    return "".join(out)


def normalise_code(raw: object) -> str:
    """What staff or customers typed → upper case with spaces and dashes removed.

    Never maps look-alike characters: anything that is not ASCII letters/digits afterwards
    is left in place so that validation refuses it.
    """
    if raw is None:
        return ""
    text = str(raw)
    kept = [ch for ch in text if not (ch.isspace() or ch in _SEPARATORS or unicodedata.category(ch) == "Cf")]
    return "".join(kept).upper()


def is_valid_code(code: str) -> bool:
    return bool(_VALID.match(code)) and code.isascii()


def last4(code: str) -> str:
    return code[-4:].upper()


def mask(last_four: str) -> str:
    return MASK_PREFIX + last_four.upper()


def mask_text_codes(text: str, codes: list[str]) -> str:
    """Replace every occurrence of the given whole codes in ``text`` by their masked form."""
    for code in codes:
        if code:
            text = re.sub(re.escape(code), mask(last4(code)), text, flags=re.IGNORECASE)
    return text


class CodeHasher:
    """Keyed hash (HMAC-SHA256) of a normalised code — what Airtable stores instead of the code."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the code secret must be at least 16 bytes")
        self._secret = secret

    def hash(self, code: str) -> str:
        return hmac.new(self._secret, normalise_code(code).encode(), hashlib.sha256).hexdigest()

    def derive(self, nonce: str, index: int) -> str:
        return derive_code(self._secret, nonce, index)
