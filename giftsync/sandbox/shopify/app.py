"""The Shopify Admin GraphQL twin: transport, auth, cost/throttle, execution, world-control routes."""
from __future__ import annotations

import functools
import json
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from graphql import (GraphQLError, GraphQLSchema, build_schema, execute, parse)
from graphql.language import FieldNode, FragmentDefinitionNode, InlineFragmentNode, OperationDefinitionNode

from ..twin import Route, TwinApp, TwinRequest, TwinResponse, json_response
from . import giftcards as G
from . import orders as O
from .context import RATE_DOC, Ctx
from .cost import MAX_QUERY_COST, CostCalculator, LeakyBucket
from .seed import apply_seed
from .store import Store
from .validation import parse_error, validate_document, validate_variables
from .values import UTC, fmt_decimal, iso, parse_date, parse_datetime, to_decimal
from .world import World, WorldError

SCHEMA_PATH = Path(__file__).with_name("schema.graphql")
DEFAULT_VERSION = "2026-07"
DEFAULT_TOKEN = "shpat_sandbox"
ALL_SCOPES = ["read_gift_cards", "write_gift_cards", "read_gift_card_transactions", "write_gift_card_transactions",
              "read_orders", "write_orders", "read_customers", "write_customers"]
UNAUTHORIZED = "[API] Invalid API key or access token (unrecognized login or wrong password)"
GRAPHQL_PATH = r"/admin/api/(?P<version>\d{4}-\d{2}|unstable)/graphql\.json"


@functools.lru_cache(maxsize=1)
def load_schema() -> GraphQLSchema:
    schema = build_schema(SCHEMA_PATH.read_text(encoding="utf-8"))
    _wire(schema)
    return schema


def _serialize_datetime(value: Any) -> str:
    return value if isinstance(value, str) else iso(value)


def _serialize_date(value: Any) -> str:
    return value if isinstance(value, str) else value.isoformat()


def _parse_id(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise GraphQLError(f"ID cannot represent value: {value!r}")
    return str(value)


def _scalar(type_, out: Callable[[Any], Any], inp: Callable[[Any], Any]) -> None:
    """Output/input coercion (graphql-core 3.3 names, and the 3.2 ones for older installs)."""
    def coerce_in(value):
        try:
            return inp(value)
        except (ValueError, TypeError, ArithmeticError) as exc:
            raise GraphQLError(f"{type_.name} cannot represent value: {value!r}") from exc
    for attr in ("serialize", "coerce_output_value"):
        setattr(type_, attr, out)
    for attr in ("parse_value", "coerce_input_value"):
        setattr(type_, attr, coerce_in)


QUERY_RESOLVERS = {
    "giftCard": G.resolve_gift_card, "giftCards": G.resolve_gift_cards, "giftCardsCount": G.resolve_gift_cards_count,
    "giftCardConfiguration": G.resolve_configuration, "order": O.resolve_order, "orders": O.resolve_orders,
    "ordersCount": O.resolve_orders_count, "customer": O.resolve_customer,
    "currentAppInstallation": O.resolve_app_installation,
}
MUTATION_RESOLVERS = {
    "giftCardCreate": G.resolve_create, "giftCardUpdate": G.resolve_update,
    "giftCardDeactivate": G.resolve_deactivate, "giftCardCredit": G.resolve_credit, "giftCardDebit": G.resolve_debit,
    "giftCardSendNotificationToCustomer": G.resolve_notify_customer,
    "giftCardSendNotificationToRecipient": G.resolve_notify_recipient,
    "tagsAdd": O.resolve_tags_add, "tagsRemove": O.resolve_tags_remove,
}


def _wire(schema: GraphQLSchema) -> None:
    t = schema.type_map
    _scalar(t["Decimal"], fmt_decimal, lambda v: str(to_decimal(v)))
    _scalar(t["DateTime"], _serialize_datetime, lambda v: iso(parse_datetime(v)))
    _scalar(t["Date"], _serialize_date, lambda v: parse_date(v).isoformat())
    for name in ("GiftCardTransaction", "Node", "DisplayableError"):
        t[name].resolve_type = lambda value, info, type_: getattr(value, "typename", None) or value.get("__typename")
    for fields, resolvers in ((schema.query_type.fields, QUERY_RESOLVERS),
                              (schema.mutation_type.fields, MUTATION_RESOLVERS)):
        for name, resolve in resolvers.items():
            fields[name].resolve = resolve


def _cost(requested: int, actual: int | None, bucket: LeakyBucket) -> dict:
    """The ``extensions.cost`` of an answer."""
    return {"requestedQueryCost": requested, "actualQueryCost": actual, "throttleStatus": bucket.status()}


def field_resolver(source, info, **args):
    name = info.field_name
    value = source.get(name) if isinstance(source, dict) else getattr(source, name, None)
    if callable(value):
        return value(info, **args)
    return value


@functools.lru_cache(maxsize=512)
def parse_cached(query: str):
    return parse(query)


def _pick_operation(document, operation_name: str | None):
    ops = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name:
        for op in ops:
            if op.name and op.name.value == operation_name:
                return op, None
        return None, f'No operation named "{operation_name}"'
    if len(ops) == 1:
        return ops[0], None
    if not ops:
        return None, "No operations in query string"
    return None, "An operation name is required"


def _first_root_field(selection_set, document) -> str | None:
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    for sel in selection_set.selections:
        if isinstance(sel, FieldNode):
            return sel.name.value
        inner = sel.selection_set if isinstance(sel, InlineFragmentNode) else getattr(
            fragments.get(sel.name.value), "selection_set", None)
        if inner is not None:
            found = _first_root_field(inner, document)
            if found:
                return found
    return None


class ShopifyTwin(TwinApp):
    name = "shopify"

    def __init__(self, *, tokens: dict[str, list[str]] | None = None, bucket_size: float = 2000,
                 restore_rate: float = 100, shop_currency: str = "USD", issue_limit: Any = "3000",
                 purchase_limit: Any = "14000", clock: Callable[[], datetime] | None = None, now: str | None = None,
                 default_version: str = DEFAULT_VERSION, bump_updated_at_on_transactions: bool = False,
                 native_delay_seconds: float = 0, seed: dict | None = None) -> None:
        super().__init__()
        self.throttled = 0                  # THROTTLED answers (HTTP 200, so not in the request log's status)
        if clock is None:
            if now is not None:
                fixed = parse_datetime(now)
                clock = lambda: fixed  # noqa: E731
            else:
                clock = lambda: datetime.now(UTC).replace(microsecond=0)  # noqa: E731
        self.clock = clock
        shop = (seed or {}).get("shop") or {}
        self.shop_currency = shop.get("currency", shop_currency) if shop_currency == "USD" else shop_currency
        self.issue_limit = str(to_decimal(shop.get("issueLimit", issue_limit)))
        self.purchase_limit = str(to_decimal(shop.get("purchaseLimit", purchase_limit)))
        self.tokens = {t: set(s) for t, s in (tokens or {DEFAULT_TOKEN: ALL_SCOPES}).items()}
        self.bucket_size = bucket_size
        self.restore_rate = restore_rate
        self.buckets: dict[str, LeakyBucket] = {}
        self.default_version = default_version
        self.bump_updated_at_on_transactions = bump_updated_at_on_transactions
        self.native_delay_seconds = native_delay_seconds
        self.schema = load_schema()
        self.store = Store(self.clock)
        self.world = World(self)
        self._seed = seed
        with self.lock:
            apply_seed(self, seed)
            self.dirty = False

    # -- TwinApp hooks ----------------------------------------------------------------------
    def routes(self) -> list[Route]:
        w = "sandbox.shopify."
        return [
            Route("POST", GRAPHQL_PATH, self.handle_graphql, "graphql"),
            Route("GET", r"/__sandbox/shopify/cards", self._get_cards, w + "cards"),
            Route("POST", r"/__sandbox/shopify/cards", self._post_card, w + "cards.issue"),
            Route("POST", r"/__sandbox/shopify/cards/release", self._post_release, w + "cards.release"),
            Route("POST", r"/__sandbox/shopify/cards/(?P<card>[^/]+)/adjust", self._post_adjust, w + "cards.adjust"),
            Route("POST", r"/__sandbox/shopify/cards/(?P<card>[^/]+)/deactivate", self._post_deactivate,
                  w + "cards.deactivate"),
            Route("GET", r"/__sandbox/shopify/orders", self._get_orders, w + "orders"),
            Route("POST", r"/__sandbox/shopify/orders", self._post_order, w + "orders.purchase"),
            Route("POST", r"/__sandbox/shopify/orders/(?P<order>[^/]+)/payments", self._post_payment,
                  w + "orders.pay"),
            Route("POST", r"/__sandbox/shopify/orders/(?P<order>[^/]+)/refunds", self._post_refund,
                  w + "orders.refund"),
            Route("GET", r"/__sandbox/shopify/customers", self._get_customers, w + "customers"),
            Route("GET", r"/__sandbox/shopify/throttled", self._get_throttled, w + "throttled"),
            Route("POST", r"/__sandbox/shopify/customers", self._post_customer, w + "customers.create"),
            Route("GET", r"/__sandbox/shopify/notifications", self._get_notifications, w + "notifications"),
            Route("POST", r"/__sandbox/shopify/reset", self._post_reset, w + "reset"),
        ]

    def route_key(self, req: TwinRequest) -> str:
        """The first root field of the operation ("giftCardDebit", "giftCards", "tagsAdd" …)."""
        if req.route != "graphql":
            return req.route
        try:
            body = req.json()
            doc = parse_cached(body["query"])
            op, _ = _pick_operation(doc, body.get("operationName"))
            name = _first_root_field(op.selection_set, doc)
            if name:
                return name
        except Exception:  # noqa: BLE001 - any malformed request is just "graphql"
            pass
        return "graphql"

    def gate(self, req: TwinRequest) -> TwinResponse | None:
        if req.route.startswith("sandbox."):
            return None
        token = req.header("x-shopify-access-token")
        if not token or token not in self.tokens:
            return json_response(401, {"errors": UNAUTHORIZED})
        return None

    def fault_response(self, status: int, req: TwinRequest) -> TwinResponse:
        bodies = {402: "Unavailable Shop", 423: "Locked", 429: "Exceeded 2 calls per second for api client. "
                  "Reduce request rates to resume uninterrupted service.", 500: "Internal Server Error",
                  502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
        headers = {"Retry-After": "1"} if status in (429, 503) else None
        return json_response(status, {"errors": bodies.get(status, "Error")}, headers)

    def not_found(self, req: TwinRequest) -> TwinResponse:
        return json_response(404, {"errors": "Not Found"})

    def internal_error(self, req: TwinRequest, exc: BaseException) -> TwinResponse:
        return json_response(500, {"errors": "Internal Server Error"})

    def snapshot(self) -> dict:
        return self.store.snapshot()

    def restore(self, data: dict) -> None:
        self.store.restore(data)

    def reset(self) -> None:
        """Back to the seeded state (empty without a seed)."""
        self.store.reset()
        self.buckets.clear()
        apply_seed(self, self._seed)
        self.dirty = True

    # -- the Admin API ----------------------------------------------------------------------
    def bucket(self, token: str) -> LeakyBucket:
        b = self.buckets.get(token)
        if b is None:
            b = self.buckets[token] = LeakyBucket(self.bucket_size, self.restore_rate)
        return b

    def handle_graphql(self, req: TwinRequest) -> TwinResponse:
        version = req.params.get("version") or self.default_version
        headers = {"X-Shopify-API-Version": version, "X-Request-Id": str(uuid.uuid4())}
        try:
            body = req.json()
        except (ValueError, UnicodeDecodeError):
            return json_response(400, {"errors": "Bad Request: the body is not valid JSON"}, headers)
        if not isinstance(body, dict):
            return json_response(400, {"errors": "Bad Request: the body must be a JSON object"}, headers)
        token = req.header("x-shopify-access-token") or ""
        payload = self.run(body.get("query"), body.get("variables"), body.get("operationName"), token=token,
                           version=version)
        return json_response(200, payload, headers)

    def run(self, query: Any, variables: Any = None, operation_name: str | None = None, *, token: str = DEFAULT_TOKEN,
            version: str = DEFAULT_VERSION) -> dict:
        """Execute one GraphQL request as the endpoint would (callers hold ``self.lock``)."""
        if not isinstance(query, str) or not query.strip():
            return {"errors": [{"message": "No query string was present", "extensions": {"code": "MISSING_QUERY"}}]}
        if variables is None:
            variables = {}
        if isinstance(variables, str):
            try:
                variables = json.loads(variables) if variables.strip() else {}
            except ValueError:
                variables = None
        if not isinstance(variables, dict):
            return {"errors": [{"message": "Variables must be an object", "extensions": {"code": "INVALID_VARIABLE"}}]}
        try:
            document = parse_cached(query)
        except GraphQLError as exc:
            return {"errors": [parse_error(query, exc)]}
        op, problem = _pick_operation(document, operation_name)
        if op is None:
            return {"errors": [{"message": problem, "extensions": {"code": "OPERATION_NOT_FOUND"}}]}
        errors = validate_document(self.schema, document)
        if errors:
            return {"errors": errors}
        errors = validate_variables(self.schema, op, variables)
        if errors:
            return {"errors": errors}
        fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        calc = CostCalculator(self.schema, fragments, variables)
        requested = calc.requested(op)
        bucket = self.bucket(token)
        if requested > MAX_QUERY_COST:
            return {"errors": [{"message": f"Query cost is {requested}, which exceeds the single query max cost "
                                           f"limit ({MAX_QUERY_COST}).\n\nSee {RATE_DOC} for more information on "
                                           "how to\nreduce the cost of your query.",
                                "extensions": {"code": "MAX_COST_EXCEEDED", "cost": requested,
                                               "maxCost": MAX_QUERY_COST, "documentation": RATE_DOC}}],
                    "extensions": {"cost": _cost(requested, None, bucket)}}
        if not bucket.take(requested):
            self.throttled += 1
            return {"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED",
                                                                     "documentation": RATE_DOC}}],
                    "extensions": {"cost": _cost(requested, None, bucket)}}
        hidden_before = sum(1 for c in self.store.data["cards"].values() if c.get("hidden"))
        self.store.release_hidden_cards(count_request=True)
        if hidden_before:
            self.dirty = True
        ctx = Ctx(app=self, scopes=self.tokens.get(token, set(ALL_SCOPES)), version=version)
        result = execute(self.schema, document, context_value=ctx, variable_values=variables,
                         operation_name=operation_name, field_resolver=field_resolver)
        actual = min(requested, calc.actual(op, result.data))
        bucket.refund(requested - actual)
        out: dict[str, Any] = {}
        if result.errors:
            out["errors"] = [self._format_error(e) for e in result.errors]
        out["data"] = result.data
        ext: dict[str, Any] = {"cost": _cost(requested, actual, bucket)}
        if ctx.search:
            ext["search"] = ctx.search
        out["extensions"] = ext
        return out

    @staticmethod
    def _format_error(err: GraphQLError) -> dict:
        f = err.formatted
        if not (err.extensions or {}).get("code"):
            return {"message": "Internal error. Looks like something went wrong on our end.",
                    "locations": f.get("locations", []), "path": f.get("path"),
                    "extensions": {"code": "INTERNAL_SERVER_ERROR"}}
        out = {"message": f["message"], "locations": f.get("locations", [])}
        if f.get("path") is not None:
            out["path"] = f["path"]
        out["extensions"] = f.get("extensions", {})
        return out

    # -- world controls (Python) ---------------------------------------------------------------
    def create_customer(self, **fields) -> dict:
        with self.lock:
            return self.world.create_customer(**fields)

    def purchase(self, body: dict | None = None, **fields) -> dict:
        with self.lock:
            return self.world.purchase({**(body or {}), **fields})

    def pay(self, order: Any, body: dict | None = None, **fields) -> dict:
        with self.lock:
            return self.world.pay(order, {**(body or {}), **fields})

    def refund(self, order: Any, body: dict | None = None, **fields) -> dict:
        with self.lock:
            return self.world.refund(order, {**(body or {}), **fields})

    def adjust(self, card: Any, amount: Any, note: str | None = None) -> dict:
        with self.lock:
            return self.world.adjust(card, {"amount": amount, "note": note})

    def issue_card(self, body: dict | None = None, **fields) -> dict:
        with self.lock:
            return self.world.issue_card({**(body or {}), **fields})

    def release_pending_cards(self) -> list[dict]:
        with self.lock:
            return self.world.release_pending_cards()

    def cards(self, include_codes: bool = False) -> list[dict]:
        with self.lock:
            return self.world.cards(include_codes)

    def orders_list(self) -> list[dict]:
        with self.lock:
            return self.world.orders()

    # -- world controls (HTTP) ---------------------------------------------------------------
    def _world(self, fn: Callable[[], Any], status: int = 200) -> TwinResponse:
        try:
            return json_response(status, fn())
        except WorldError as exc:
            return json_response(exc.status, {"error": str(exc)})
        except (ValueError, TypeError, KeyError) as exc:
            return json_response(400, {"error": f"bad request: {exc}"})

    @staticmethod
    def _body(req: TwinRequest) -> dict:
        if not req.body:
            return {}
        data = req.json()
        if not isinstance(data, dict):
            raise ValueError("body must be a JSON object")
        return data

    def _get_cards(self, req):
        inc = req.arg("include_codes") in ("1", "true", "yes")
        return self._world(lambda: {"cards": self.world.cards(inc)})

    def _post_card(self, req):
        return self._world(lambda: self.world.issue_card(self._body(req)), 201)

    def _post_release(self, req):
        return self._world(lambda: {"released": self.world.release_pending_cards()})

    def _post_adjust(self, req):
        return self._world(lambda: self.world.adjust(req.params["card"], self._body(req)))

    def _post_deactivate(self, req):
        return self._world(lambda: self.world.deactivate_card(req.params["card"]))

    def _get_orders(self, req):
        return self._world(lambda: {"orders": self.world.orders()})

    def _post_order(self, req):
        return self._world(lambda: self.world.purchase(self._body(req)), 201)

    def _post_payment(self, req):
        return self._world(lambda: self.world.pay(req.params["order"], self._body(req)))

    def _post_refund(self, req):
        return self._world(lambda: self.world.refund(req.params["order"], self._body(req)))

    def _get_throttled(self, req):
        return json_response(200, {"throttled": self.throttled})

    def _get_customers(self, req):
        return self._world(lambda: {"customers": self.world.customers()})

    def _post_customer(self, req):
        return self._world(lambda: self.world.create_customer(**self._body(req)), 201)

    def _get_notifications(self, req):
        return self._world(lambda: {"notifications": list(self.store.data["notifications"])})

    def _post_reset(self, req):
        def go():
            self.reset()
            return {"ok": True}
        return self._world(go)


def create_app(seed: dict | None = None, **options: Any) -> ShopifyTwin:
    """Build the Shopify twin (serve it with giftsync.sandbox.twin.TwinServer)."""
    return ShopifyTwin(seed=seed, **options)
