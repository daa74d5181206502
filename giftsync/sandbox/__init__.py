"""Local twins of Airtable, Shopify Admin GraphQL and Klaviyo, and the sandbox console.

Each twin is a :class:`~giftsync.sandbox.twin.TwinApp` built by ``create_app(seed=None,
**options)`` in its own package and served by a :class:`~giftsync.sandbox.twin.TwinServer`.
"""
from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from .twin import TwinServer

TWINS = {
    "airtable": "giftsync.sandbox.airtable",
    "shopify": "giftsync.sandbox.shopify",
    "klaviyo": "giftsync.sandbox.klaviyo",
}


def create_app(name: str, seed: dict | str | Path | None = None, **options: Any):
    """Build the app of twin ``name``; ``seed`` is a dict or the path of a JSON seed file."""
    if name not in TWINS:
        raise ValueError(f"unknown twin {name!r}; expected one of {sorted(TWINS)}")
    if isinstance(seed, (str, Path)):
        seed = json.loads(Path(seed).read_text(encoding="utf-8"))
    module = importlib.import_module(TWINS[name])
    return module.create_app(seed=seed, **options)


def start_twin(name: str, *, port: int = 0, seed: dict | str | Path | None = None,
               state: str | Path | None = None, fault_seed: int | None = None,
               **options: Any) -> TwinServer:
    """Start twin ``name`` in this process on 127.0.0.1; returns the running server (``.url``).

    With ``state`` the twin's data is kept in that file: a restarted twin finds it again
    (the seed is then only applied when the file does not exist yet).
    """
    if state is not None and Path(state).exists():
        seed = None
    server = TwinServer(create_app(name, seed, **options), state_path=str(state) if state else None,
                        seed=fault_seed)
    server.start(port=port)
    return server
