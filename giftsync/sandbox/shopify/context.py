"""Per-request context shared by the resolvers: the app, granted scopes, search warnings."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graphql import GraphQLError

from .values import gid, split_gid

DOCS_BASE = ""   # Shopify answers with links to its docs site; the twin keeps only the path.
ACCESS_DOC = DOCS_BASE + "/api/usage/access-scopes"
RATE_DOC = DOCS_BASE + "/api/usage/rate-limits"


@dataclass
class Ctx:
    app: Any
    scopes: set[str]
    version: str
    search: list[dict] = field(default_factory=list)

    @property
    def store(self):
        return self.app.store

    @property
    def currency(self) -> str:
        return self.app.shop_currency


def require(info, scope: str, label: str | None = None) -> None:
    ctx: Ctx = info.context
    if scope in ctx.scopes:
        return
    # a write scope implies the matching read scope, as on Shopify
    if scope.startswith("read_") and "write_" + scope[5:] in ctx.scopes:
        return
    name = label or info.field_name
    raise GraphQLError(f"Access denied for {name} field. Required access: `{scope}` access scope.",
                       info.field_nodes, extensions={"code": "ACCESS_DENIED", "documentation": ACCESS_DOC,
                                                     "requiredAccess": f"`{scope}` access scope."})


def resource_not_found(info, value: Any, *, bare: bool = False) -> GraphQLError:
    msg = "invalid id" if bare else f"Invalid id: {value}"
    return GraphQLError(msg, info.field_nodes, extensions={"code": "RESOURCE_NOT_FOUND"})


def bad_request(info, message: str) -> GraphQLError:
    return GraphQLError(message, info.field_nodes, extensions={"code": "BAD_REQUEST"})


def record_from_id(info, value: Any, kind: str, lookup) -> tuple[int, dict | None]:
    """(num, ``lookup(num)``) for a ``kind`` gid; a malformed or wrong-type id raises RESOURCE_NOT_FOUND."""
    parts = split_gid(value)
    if parts is None or parts[0] != kind:
        raise resource_not_found(info, value)
    return parts[1], lookup(parts[1])


class RecordView:
    """A GraphQL view over one store record; ``typename`` names its gid."""
    typename = ""

    def __init__(self, app, rec: dict) -> None:
        self.app = app
        self.rec = rec

    @property
    def id(self):
        return gid(self.typename, self.rec["num"])

    @property
    def legacyResourceId(self):
        return str(self.rec["num"])

    @property
    def createdAt(self):
        return self.rec["createdAt"]

    @property
    def updatedAt(self):
        return self.rec["updatedAt"]
