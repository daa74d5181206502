"""The one place that builds adapters, the clock, the lease and the prongs from Settings.

``build_app(settings)`` wires the real adapters (pyairtable, gql, klaviyo-api) with their
rate budgets; ``build_fakes()`` wires the in-memory fakes of ``giftsync.adapters.fakes``
(tests, demos). Both return an ``App``: the ports, the lease, the prong jobs and
``app.daemon()`` (the scheduler). Nothing else in giftsync constructs an adapter.

Rate budgets, shared by every prong thread (store redemptions first, see runtime/budget.py):

- Airtable: ``GIFTSYNC_AIRTABLE_RATE`` requests/s (default 4) without burst: Airtable allows 5
  per second per base over *every* client, counted in a sliding second, with a 30 s penalty
  past it — a bucket of capacity 1 never puts more than rate + 1 requests in any second.
  One-off commands (``status``, ``unlock``: ``build_app(..., one_off=True)``) use 2/s;
- Shopify: the GraphQL cost bucket — starts at 50 points/s with a 1000-point bucket and
  follows ``extensions.cost.throttleStatus`` once Shopify reports it;
- Klaviyo: ``GIFTSYNC_KLAVIYO_RATE`` events/s (default 40), burst of the same size: create-event
  is limited to 350/s burst and 3,500/min steady (≈58/s) — 40 stays under both.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from .config import PRONGS, Settings
from .domain.codes import CodeHasher
from .ports import CardBook, Clock, GiftCardLedger, Messenger
from .runtime.budget import BACKGROUND, NORMAL, ONLINE, URGENT, RateBudget
from .runtime.clock import SystemClock
from .runtime.lease import Lease
from .runtime.scheduler import Daemon, Notifier, ProngSpec, ShouldContinue, noop_prong

log = logging.getLogger("giftsync.bootstrap")

# Defaults when no Settings are given (build_fakes without settings).
_DEFAULT_LEASE = dict(length=90.0, margin=15.0, settle=2.0)
FAKE_CODE_SECRET = b"giftsync-fake-code-secret-for-tests-only!"


@dataclass
class App:
    settings: Settings | None
    clock: Clock
    book: CardBook
    ledger: GiftCardLedger
    messenger: Messenger
    lease: Lease
    prongs: list[ProngSpec]
    budgets: dict[str, Any] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    renew_interval: float = 15.0
    misfire_grace: float = 30.0
    hasher: CodeHasher | None = None
    orders: Any = None                      # the ShopifyOrders port (the Shopify adapter, or a fake)
    _daemon: Daemon | None = field(default=None, repr=False)

    def prong(self, name: str) -> ProngSpec:
        for p in self.prongs:
            if p.name == name:
                return p
        raise KeyError(name)

    def daemon(self, *, heartbeat: Callable[[], Any] | None = None, notifier: Notifier | None = None) -> Daemon:
        """The scheduler (built once). ``heartbeat`` defaults to systemd's WATCHDOG=1."""
        if self._daemon is None:
            notifier = notifier or Notifier()
            self._daemon = Daemon(
                self.lease, self.prongs, renew_interval=self.renew_interval,
                misfire_grace=self.misfire_grace, stop=self.stop,
                heartbeat=heartbeat if heartbeat is not None else notifier.watchdog,
                book=self.book, clock=self.clock, notifier=notifier)
        return self._daemon

    @property
    def scheduler(self) -> Daemon:
        return self.daemon()

    def close(self) -> None:
        for port in (self.ledger, self.messenger, self.book):
            closer = getattr(port, "close", None)
            if callable(closer):
                try:
                    closer()
                except Exception:  # noqa: BLE001
                    log.debug("close failed", exc_info=True)


# -- budgets ------------------------------------------------------------------------------------

ONE_OFF_AIRTABLE_RATE = 2.0


def make_budgets(settings: Settings | None = None, *, one_off: bool = False) -> dict[str, RateBudget]:
    airtable_rate = settings.airtable_rate if settings else 4.0
    if one_off:
        airtable_rate = min(airtable_rate, ONE_OFF_AIRTABLE_RATE)
    klaviyo_rate = settings.klaviyo_rate if settings else 40.0
    return {
        "airtable": RateBudget("airtable", rate=airtable_rate, capacity=1.0, hold_for_urgent=True),
        "shopify": RateBudget("shopify", rate=50.0, capacity=1000.0),
        "klaviyo": RateBudget("klaviyo", rate=klaviyo_rate, capacity=max(1.0, klaviyo_rate)),
    }


# -- real adapters --------------------------------------------------------------------------------

def build_card_book(settings: Settings, budget: Any = None, clock: Clock | None = None) -> CardBook:
    from .adapters.airtable import AirtableCardBook
    kwargs: dict[str, Any] = {}
    if clock is not None:
        kwargs["monotonic"] = clock.monotonic
    return AirtableCardBook(
        settings.airtable_token.reveal(), settings.airtable_base_id,
        endpoint_url=settings.airtable_api_url,
        timeout=(3.05, settings.http_timeout_seconds),
        budget=budget if budget is not None else make_budgets(settings)["airtable"],
        currency=settings.default_currency, **kwargs)


def build_ledger(settings: Settings, budget: Any = None) -> GiftCardLedger:
    from .adapters.shopify import ShopifyGiftCardLedger
    return ShopifyGiftCardLedger(
        settings.shopify_shop, settings.shopify_access_token.reveal(),
        api_version=settings.shopify_api_version, admin_url=settings.shopify_admin_url,
        timeout=settings.http_timeout_seconds,
        budget=budget if budget is not None else make_budgets(settings)["shopify"])


def build_messenger(settings: Settings, budget: Any = None, clock: Clock | None = None) -> Messenger:
    from .adapters.klaviyo import KlaviyoMessenger
    kwargs: dict[str, Any] = {}
    if clock is not None:
        kwargs["clock"] = clock.now
    return KlaviyoMessenger(
        settings.klaviyo_api_key.reveal(), api_url=settings.klaviyo_api_url,
        timeout=(3.05, settings.http_timeout_seconds),
        budget=budget if budget is not None else make_budgets(settings)["klaviyo"], **kwargs)


def build_lease(settings: Settings | None, book: CardBook, clock: Clock, holder: str | None = None) -> Lease:
    if settings is None:
        return Lease(book, clock, holder=holder, **_DEFAULT_LEASE)
    return Lease(book, clock, holder=holder, length=settings.lease_seconds,
                 margin=settings.lease_margin_seconds, settle=settings.lease_settle_seconds)


# -- prongs -------------------------------------------------------------------------------------

# Chunks of a bulk card request written at once: one chunk's delivery emails overlap another's
# Airtable writes, so Airtable (0.3 requests a card) never waits on Klaviyo.
DAEMON_CARD_WRITERS = 3


def store_options(settings: Settings | None) -> Any:
    from .prongs.options import StoreOptions
    if settings is None:
        return StoreOptions()
    return StoreOptions(
        currency=settings.default_currency,
        max_card_amount=settings.max_card_amount,
        max_quantity=settings.max_quantity,
        redemption_poll_seconds=settings.redemption_poll_seconds,
        check_limit=settings.balance_check_limit,
        check_window_seconds=settings.balance_check_window_seconds,
        admin_email=settings.admin_email,
        order_overlap_seconds=settings.order_overlap_seconds,
        card_writers=DAEMON_CARD_WRITERS,
    )


def _interval(settings: Settings | None, name: str) -> float:
    return settings.interval(name) if settings else 15.0


def build_store_prong(settings: Settings | None, book: CardBook, ledger: GiftCardLedger,
                      messenger: Messenger, clock: Clock, hasher: CodeHasher) -> ProngSpec:
    """The store prong (redemptions, card requests, balance checks), or a no-op placeholder
    while ``giftsync.prongs.store`` does not exist."""
    try:
        from .prongs.store import StoreProng
    except ImportError as exc:
        log.warning("store prong not available; registered as a no-op", extra={"error": str(exc)})
        return noop_prong("store", _interval(settings, "store"))
    current: list[ShouldContinue] = [lambda: False]
    prong = StoreProng(book, ledger, messenger, clock, hasher, store_options(settings),
                       stop=lambda: not current[0]())

    def run(should_continue: ShouldContinue) -> Any:
        current[0] = should_continue        # the stop event and the lease, asked between records
        try:
            return prong.run_once()
        finally:
            current[0] = lambda: False

    # The prong sets URGENT around redemptions and NORMAL around card requests itself.
    spec = ProngSpec("store", run, interval=_interval(settings, "store"), priority=NORMAL)
    poll = prong.ctx.options.redemption_poll_seconds
    if poll > 0:
        # Redemptions every `poll` seconds on a thread of their own, whatever the cycle is doing
        # (see giftsync/prongs/store.py); not recorded in Status (2 requests every 5 s).
        prong.redemptions_have_own_job = True
        if spec.interval > poll:
            # New card requests picked up within `poll` seconds (one list request a short cycle);
            # the rest of the cycle keeps the store interval.
            prong.full_cycle_seconds = spec.interval
            spec.interval = poll
        # Half an interval after the store job: a redemption poll holds the Airtable budget
        # (runtime/budget.urgent_hold), so the store job's card-request list goes between polls.
        spec.companions.append(ProngSpec(
            "store-redemptions", lambda should_continue: prong.poll_redemptions(lambda: not should_continue()),
            interval=poll, priority=URGENT, record_runs=False, first_delay=poll / 2))
    return spec


def online_options(settings: Settings | None) -> Any:
    from .prongs.online import OnlineOptions
    if settings is None:
        return OnlineOptions()
    return OnlineOptions(skus=tuple(settings.gift_card_skus), order_tag=settings.order_tag,
                         redemption_tag=settings.redemption_tag, overlap_seconds=settings.order_overlap_seconds,
                         currency=settings.default_currency)


def _spec(name: str, prong: Any, *, interval: float = 15.0, cron: str | None = None,
          scheduled: bool = True, priority_: int = NORMAL) -> ProngSpec:
    current: list[ShouldContinue] = [lambda: False]
    prong.stop = lambda: not current[0]()

    def run(should_continue: ShouldContinue) -> Any:
        current[0] = should_continue
        try:
            return prong.run_once()
        finally:
            current[0] = lambda: False

    return ProngSpec(name, run, interval=interval, cron=cron, priority=priority_, scheduled=scheduled)


def build_shopify_prongs(settings: Settings | None, book: CardBook, ledger: GiftCardLedger,
                         messenger: Messenger, clock: Clock, hasher: CodeHasher,
                         orders: Any = None) -> list[ProngSpec]:
    """The Shopify purchases and redemptions prongs (the redemptions cycle ends with the
    reconcile walk) and the reconcile prong (the full pass, on ``GIFTSYNC_RECONCILE_SCHEDULE``;
    on demand only when that is "off"). ``orders`` is the ShopifyOrders port (the Shopify
    adapter implements both ports; the fakes need a ``FakeShopifyOrders``)."""
    from .prongs.reconcile import ReconcileProng
    from .prongs.shopify_purchases import ShopifyPurchases
    from .prongs.shopify_redemptions import ShopifyRedemptions
    orders = orders if orders is not None else ledger
    store, online = store_options(settings), online_options(settings)
    purchases = ShopifyPurchases(book, ledger, orders, messenger, clock, hasher, store, online)
    redemptions = ShopifyRedemptions(book, ledger, orders, messenger, clock, hasher, store, online)
    reconcile = ReconcileProng(book, ledger, messenger, clock, hasher, store, online)
    schedule = settings.reconcile_schedule if settings else "30 3 * * *"
    return [_spec("shopify-purchases", purchases, interval=_interval(settings, "shopify-purchases"),
                  priority_=ONLINE),
            _spec("shopify-redemptions", redemptions, interval=_interval(settings, "shopify-redemptions"),
                  priority_=ONLINE),
            _spec("reconcile", reconcile, cron=schedule, scheduled=schedule is not None, priority_=BACKGROUND)]


def build_prongs(settings: Settings | None, book: CardBook, ledger: GiftCardLedger, messenger: Messenger,
                 clock: Clock, hasher: CodeHasher, orders: Any = None) -> list[ProngSpec]:
    prongs = [build_store_prong(settings, book, ledger, messenger, clock, hasher)]
    prongs += build_shopify_prongs(settings, book, ledger, messenger, clock, hasher, orders)
    assert tuple(p.name for p in prongs) == PRONGS
    return prongs


# -- the two entry points --------------------------------------------------------------------------

def build_app(settings: Settings, *, clock: Clock | None = None, holder: str | None = None,
              one_off: bool = False) -> App:
    """The real thing: adapters over the services (or the twins, when their URLs are set).
    ``one_off``: a short command next to a running daemon (a smaller Airtable budget)."""
    clock = clock or SystemClock()
    budgets = make_budgets(settings, one_off=one_off)
    book = build_card_book(settings, budgets["airtable"], clock)
    ledger = build_ledger(settings, budgets["shopify"])
    messenger = build_messenger(settings, budgets["klaviyo"], clock)
    hasher = CodeHasher(settings.code_secret.reveal().encode())
    lease = build_lease(settings, book, clock, holder)
    prongs = build_prongs(settings, book, ledger, messenger, clock, hasher, ledger)
    log.info("app built", extra={
        "airtable": settings.airtable_api_url or "airtable.com", "base": settings.airtable_base_id,
        "shopify": settings.shopify_admin_url or settings.shopify_shop,
        "klaviyo": settings.klaviyo_api_url or "klaviyo.com", "holder": lease.holder_id})
    return App(settings=settings, clock=clock, book=book, ledger=ledger, messenger=messenger, lease=lease,
               prongs=prongs, budgets=budgets, renew_interval=settings.lease_renew_seconds,
               misfire_grace=settings.misfire_grace_seconds, hasher=hasher, orders=ledger)


def build_fakes(settings: Settings | None = None, *, clock: Clock | None = None, holder: str | None = None,
                book: CardBook | None = None, ledger: GiftCardLedger | None = None,
                messenger: Messenger | None = None, orders: Any = None) -> App:
    """The same wiring over the in-memory fakes (``app.book`` is a ``FakeCardBook`` …).
    Any port can be passed in (e.g. a FakeCardBook subclass that fails)."""
    from .adapters.fakes import FakeCardBook, FakeClock, FakeGiftCardLedger, FakeMessenger, FakeShopifyOrders
    clock = clock or FakeClock()
    book = book if book is not None else FakeCardBook(clock)
    ledger = ledger if ledger is not None else FakeGiftCardLedger(clock, currency=(
        settings.default_currency if settings else "USD"))
    messenger = messenger if messenger is not None else FakeMessenger()
    secret = settings.code_secret.reveal().encode() if settings else FAKE_CODE_SECRET
    hasher = CodeHasher(secret)
    if orders is None:
        orders = ledger if hasattr(ledger, "cards_for_order") else FakeShopifyOrders(ledger, clock)
    lease = build_lease(settings, book, clock, holder or "fake:1:0000")
    prongs = build_prongs(settings, book, ledger, messenger, clock, hasher, orders)
    return App(settings=settings, clock=clock, book=book, ledger=ledger, messenger=messenger, lease=lease,
               prongs=prongs, budgets={}, hasher=hasher, orders=orders,
               renew_interval=settings.lease_renew_seconds if settings else 15.0,
               misfire_grace=settings.misfire_grace_seconds if settings else 30.0)


__all__ = ["App", "build_app", "build_fakes", "make_budgets", "build_card_book", "build_ledger",
           "build_messenger", "build_lease", "build_prongs", "store_options", "online_options",
           "BACKGROUND", "NORMAL", "ONLINE", "URGENT"]
