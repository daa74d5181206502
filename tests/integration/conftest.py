"""Shopify's real 2026-07 Admin schema and the twin's SDL, built once per session; and
``no_faults`` for a module that starts a twin of its own (its ``twin`` fixture).

The real schema is ``shared/reference/shopify-admin-schema.graphql`` with ``shared/`` at the
repository root's parent, or wherever ``GIFTSYNC_SHARED`` points."""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import pytest
from graphql import GraphQLSchema, build_schema

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("GIFTSYNC_SHARED") or ROOT.parent / "shared")
REAL_SCHEMA = SHARED / "reference" / "shopify-admin-schema.graphql"
TWIN_SCHEMA = ROOT / "giftsync" / "sandbox" / "shopify" / "schema.graphql"


@lru_cache(maxsize=None)
def load_schema(path: Path) -> GraphQLSchema:
    # assume_valid: the real schema has 4 harmless deprecation inconsistencies (reference §13)
    return build_schema(path.read_text(encoding="utf-8"), assume_valid=True)


@pytest.fixture(scope="session")
def real_schema() -> GraphQLSchema:
    if not REAL_SCHEMA.exists():
        pytest.fail(f"Shopify schema not found at {REAL_SCHEMA} (set GIFTSYNC_SHARED to the shared/ folder)")
    return load_schema(REAL_SCHEMA)


@pytest.fixture(scope="session")
def twin_schema() -> GraphQLSchema:
    if not TWIN_SCHEMA.exists():
        pytest.skip("twin schema not present")
    return load_schema(TWIN_SCHEMA)


@pytest.fixture
def no_faults(twin):
    """The module's ``twin`` without injected faults, before and after the test."""
    twin.faults.clear()
    yield
    twin.faults.clear()
