"""The Airtable twin: Records API v0 and the Metadata API on loopback (see docs/twins/airtable.md).

    from giftsync.sandbox import start_twin
    from giftsync.sandbox.airtable.seed import base_seed_from_schema, load_base_schema
    twin = start_twin("airtable", seed=base_seed_from_schema(load_base_schema()))
    api = pyairtable.Api("any-token", endpoint_url=twin.url)
"""
from .app import AirtableTwin, create_app
from .seed import DEFAULT_BASE_ID, SeedError, base_seed_from_schema, load_base_schema, load_seed

__all__ = ["AirtableTwin", "create_app", "DEFAULT_BASE_ID", "SeedError", "base_seed_from_schema",
           "load_base_schema", "load_seed"]
