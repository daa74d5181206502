"""Where the Airtable base schema lives: config/base_schema.json, the single definition of the
base that the daemon, ``init-base``, ``doctor``, the fakes and the twins all read.

Looked up in this order: ``$GIFTSYNC_BASE_SCHEMA``; the source tree's config/ (a checkout or an
editable install); ``<prefix>/share/giftsync/`` (where a regular install puts it).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

_SOURCE = Path(__file__).resolve().parents[1] / "config" / "base_schema.json"
_INSTALLED = Path(sys.prefix) / "share" / "giftsync" / "base_schema.json"


def schema_path() -> Path:
    env = os.environ.get("GIFTSYNC_BASE_SCHEMA")
    if env:
        return Path(env)
    return _SOURCE if _SOURCE.exists() else _INSTALLED


def load_base_schema(path: str | os.PathLike | None = None) -> dict:
    """The parsed base schema (``path`` overrides the lookup)."""
    return json.loads(Path(path or schema_path()).read_text(encoding="utf-8"))
