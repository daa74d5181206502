"""SandboxWorld: the three twins started together and seeded with one consistent demo world.

Used by ``giftsync sandbox`` (the no-accounts demo), the end-to-end tests, the benchmark and
the crash tests::

    with SandboxWorld(tmp_path, processes=False) as world:
        env = world.daemon_env(interval=0.5)          # what `python -m giftsync run` needs
        daemon = world.start_daemon(interval=0.5)     # or run it yourself with env
        world.airtable_table("Store Redemptions").create({...})
        world.outbox(to=world.stores[0].email)
        daemon.stop()

The twins run in this process (``processes=False``: quick, for tests) or each as its own
``python -m giftsync.sandbox serve`` process (``processes=True``) so that a test can kill one
and start it again on the same port with its state (``world.kill_twin("shopify")``,
``world.restart_twin("shopify")``). Either way the twins keep their state in files under
``root`` and a restarted twin keeps its data and URL.

What the world seeds (giftsync/sandbox/demo_seed.py): the giftsync base built from
config/base_schema.json with three Stores, five mirrored Gift Cards (code hashes computed
with the world's code secret) and a MIRROR receipt for each; the Shopify twin with the same
cards (same codes and balances, one disabled, one Shopify-only card not mirrored yet), four
customers and a catalogue with giftsync gift-card SKUs, a native gift-card product and a few
ordinary products; Klaviyo profiles for the stores and the customers.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import quote

import requests

from ..domain.codes import CodeHasher
from . import start_twin
from . import demo_seed
from .demo_seed import DemoCard, DemoCustomer, DemoProduct, DemoStore

TWIN_NAMES = ("airtable", "shopify", "klaviyo")

# Fixed sandbox credentials: the twins accept exactly these. Never real ones.
AIRTABLE_TOKEN = "patSandboxGiftsync.0123456789abcdef0123456789abcdef"
SHOPIFY_ACCESS_TOKEN = "shpat_sandbox_giftsync_0123456789abcdef"
SHOPIFY_SHOP = "giftsync-sandbox.myshopify.com"
SHOPIFY_API_VERSION = "2026-07"
SHOPIFY_SCOPES = ("read_gift_cards", "write_gift_cards", "read_gift_card_transactions",
                  "write_gift_card_transactions", "read_orders", "write_orders", "read_customers", "write_customers")
KLAVIYO_API_KEY = "pk_sandbox_giftsync_0123456789abcdef"
CODE_SECRET = "giftsync-sandbox-code-secret-NOT-FOR-PRODUCTION-0123456789"
ADMIN_EMAIL = "owner@shops.example.com"


from ..base_schema import load_base_schema as load_schema  # noqa: E402


class _TwinProcess:
    """One twin as a child process (``python -m giftsync.sandbox serve``)."""

    def __init__(self, name: str, *, seed_file: Path, state_file: Path | None, options: dict, log_file: Path) -> None:
        self.name = name
        self.seed_file = seed_file
        self.state_file = state_file
        self.options = options
        self.log_file = log_file
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.url = ""

    def start(self, timeout: float = 20.0) -> str:
        cmd = [sys.executable, "-m", "giftsync.sandbox", "serve", self.name, "--port", str(self.port),
               "--seed", str(self.seed_file)]
        if self.state_file is not None:
            cmd += ["--state", str(self.state_file)]
        for k, v in self.options.items():
            cmd += ["--option", f"{k}={json.dumps(v)}"]
        log = open(self.log_file, "ab")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        log.close()
        line = _readline_with_timeout(self.proc, timeout)
        if not line.startswith("ready "):
            self.kill()
            tail = self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""
            raise RuntimeError(f"twin {self.name} did not start: {line!r}\n{tail}")
        self.url = line.split(None, 1)[1].strip().rstrip("/")
        self.port = int(self.url.rsplit(":", 1)[1])
        # keep draining stdout so the child never blocks on a full pipe
        threading.Thread(target=_drain, args=(self.proc.stdout,), daemon=True).start()
        return self.url

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def kill(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None


def _readline_with_timeout(proc: subprocess.Popen, timeout: float) -> str:
    out: list[str] = []

    def read() -> None:
        out.append(proc.stdout.readline().decode("utf-8", "replace"))

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(timeout)
    return out[0].strip() if out else ""


def _drain(stream: Any) -> None:
    try:
        for _ in iter(stream.readline, b""):
            pass
    except (OSError, ValueError):
        pass


class DaemonProcess:
    """``python -m giftsync run`` as a child process, its output kept (and optionally echoed).

    ``stop()`` sends SIGTERM once (the daemon finishes the record in hand and releases its
    lease) and waits; ``kill()`` is a crash (SIGKILL)."""

    def __init__(self, env: dict[str, str], *, args: Iterable[str] = ("run",), cwd: str | os.PathLike | None = None,
                 echo: Any = None, log_file: str | os.PathLike | None = None, keep_lines: int = 2000) -> None:
        self.cmd = [sys.executable, "-m", "giftsync", *args]
        self.env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.cwd = str(cwd) if cwd else None
        self.echo = echo
        self.log_file = Path(log_file) if log_file else None
        self.lines: deque[str] = deque(maxlen=keep_lines)
        self._lock = threading.Lock()
        self.proc: subprocess.Popen | None = None
        self.started_at = 0.0

    def start(self) -> "DaemonProcess":
        # its own session: a Ctrl-C in the terminal reaches only us; we stop it with one SIGTERM
        self.proc = subprocess.Popen(self.cmd, env=self.env, cwd=self.cwd, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self.started_at = time.time()
        threading.Thread(target=self._pump, name="daemon-output", daemon=True).start()
        return self

    def _pump(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        log = open(self.log_file, "a", encoding="utf-8") if self.log_file else None
        try:
            for raw in iter(self.proc.stdout.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip("\n")
                with self._lock:
                    self.lines.append(line)
                if log:
                    log.write(line + "\n")
                    log.flush()
                if self.echo is not None:
                    try:
                        print(line, file=self.echo, flush=True)
                    except (OSError, ValueError):
                        pass
        except (OSError, ValueError):
            pass
        finally:
            if log:
                log.close()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> list[str]:
        with self._lock:
            return list(self.lines)

    def wait_for_output(self, text: str, timeout: float = 30.0) -> bool:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if any(text in line for line in self.output()):
                return True
            if not self.alive():
                return any(text in line for line in self.output())
            time.sleep(0.1)
        return False

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM once, wait up to ``timeout``, then SIGKILL. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def kill(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        return self.proc.returncode


class SandboxWorld:
    """The three twins, seeded with one consistent demo world. See the module docstring."""

    def __init__(self, root: str | os.PathLike, *, processes: bool = False, code_secret: str = CODE_SECRET,
                 airtable_options: dict | None = None, shopify_options: dict | None = None,
                 klaviyo_options: dict | None = None, schema_path: str | os.PathLike | None = None,
                 ports: dict[str, int] | None = None, persist: bool = True) -> None:
        self.root = Path(root)
        self.persist = persist      # False: no state files (a twin restart then starts from its seed again)
        self.processes = processes
        self.code_secret = code_secret
        self.hasher = CodeHasher(code_secret.encode())
        self.schema = load_schema(schema_path)
        self.demo = demo_seed.build_demo(code_secret, self.schema)
        self.base_id = demo_seed.BASE_ID
        self.airtable_token = AIRTABLE_TOKEN
        self.shopify_access_token = SHOPIFY_ACCESS_TOKEN
        self.shopify_shop = SHOPIFY_SHOP
        self.shopify_api_version = SHOPIFY_API_VERSION
        self.klaviyo_api_key = KLAVIYO_API_KEY
        self.admin_email = ADMIN_EMAIL
        self._options = {
            "airtable": {"token": AIRTABLE_TOKEN, **(airtable_options or {})},
            "shopify": {"tokens": {SHOPIFY_ACCESS_TOKEN: list(SHOPIFY_SCOPES)}, **(shopify_options or {})},
            "klaviyo": {"api_key": KLAVIYO_API_KEY, **(klaviyo_options or {})},
        }
        self._ports = dict(ports or {})
        self._twins: dict[str, Any] = {}
        self._daemons: list[DaemonProcess] = []

    # -- demo data ------------------------------------------------------------------------
    @property
    def stores(self) -> tuple[DemoStore, ...]:
        return self.demo.stores

    @property
    def customers(self) -> tuple[DemoCustomer, ...]:
        return self.demo.customers

    @property
    def cards(self) -> tuple[DemoCard, ...]:
        """Every demo card (whole codes: for the console's demo list and tests only)."""
        return self.demo.cards

    @property
    def mirrored_cards(self) -> tuple[DemoCard, ...]:
        return tuple(c for c in self.demo.cards if c.mirrored)

    @property
    def demo_codes(self) -> list[str]:
        return [c.code for c in self.demo.cards]

    @property
    def catalogue(self) -> tuple[DemoProduct, ...]:
        return self.demo.catalogue

    @property
    def giftsync_skus(self) -> list[str]:
        return [p.sku for p in self.demo.catalogue if p.giftsync]

    def card(self, label_or_index: int | str) -> DemoCard:
        if isinstance(label_or_index, int):
            return self.demo.cards[label_or_index]
        for c in self.demo.cards:
            if c.label == label_or_index or c.code == label_or_index or c.last4 == label_or_index:
                return c
        raise KeyError(label_or_index)

    def store(self, name_or_id: str) -> DemoStore:
        for s in self.demo.stores:
            if name_or_id in (s.name, s.record_id, s.email):
                return s
        raise KeyError(name_or_id)

    def seed(self, name: str) -> dict:
        return {"airtable": self.demo.airtable, "shopify": self.demo.shopify, "klaviyo": self.demo.klaviyo}[name]

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> "SandboxWorld":
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "seeds").mkdir(exist_ok=True)
        for name in TWIN_NAMES:
            seed_file = self.root / "seeds" / f"{name}.json"
            seed_file.write_text(json.dumps(self.seed(name), indent=1, default=str), encoding="utf-8")
        try:
            for name in TWIN_NAMES:
                self._start(name)
        except BaseException:
            self.stop()
            raise
        return self

    def _state_file(self, name: str) -> Path:
        return self.root / f"{name}.state.json"

    def _start(self, name: str) -> None:
        port = self._ports.get(name, 0)
        if self.processes:
            twin = self._twins.get(name)
            if twin is None:
                twin = _TwinProcess(name, seed_file=self.root / "seeds" / f"{name}.json",
                                    state_file=self._state_file(name) if self.persist else None,
                                    options=self._options[name],
                                    log_file=self.root / f"{name}.log")
                twin.port = port
                self._twins[name] = twin
            twin.start()
            self._ports[name] = twin.port
        else:
            server = start_twin(name, port=port, seed=self.seed(name),
                                state=self._state_file(name) if self.persist else None,
                                **self._options[name])
            self._twins[name] = server
            self._ports[name] = server.port

    def stop(self) -> None:
        for d in list(self._daemons):
            d.stop()
        self._daemons.clear()
        for name in reversed(TWIN_NAMES):
            twin = self._twins.get(name)
            if twin is not None:
                twin.stop()
        self._twins.clear()

    def __enter__(self) -> "SandboxWorld":
        if not self._twins:
            self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def twin(self, name: str) -> Any:
        """The running twin: a TwinServer (in-process) or a _TwinProcess (``.pid``, ``.url``)."""
        return self._twins[name]

    def kill_twin(self, name: str) -> None:
        """Crash one twin: SIGKILL for a process, an abrupt stop in-process. Its state file stays."""
        twin = self._twins[name]
        if self.processes:
            twin.kill()
        else:
            twin.stop()

    def stop_twin(self, name: str) -> None:
        self._twins[name].stop()

    def restart_twin(self, name: str, *, hard: bool = False) -> str:
        """Stop (or with ``hard`` kill) one twin and start it again on the same port with its state."""
        if hard:
            self.kill_twin(name)
        else:
            self.stop_twin(name)
        if not self.processes:
            self._twins.pop(name, None)
        deadline = time.time() + 10
        while True:
            try:
                self._start(name)
                break
            except OSError:  # the port may linger for a moment after a kill
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        return self.url(name)

    # -- addresses ------------------------------------------------------------------------
    def url(self, name: str) -> str:
        return self._twins[name].url

    @property
    def airtable_url(self) -> str:
        return self.url("airtable")

    @property
    def shopify_url(self) -> str:
        return self.url("shopify")

    @property
    def klaviyo_url(self) -> str:
        return self.url("klaviyo")

    @property
    def shopify_graphql_url(self) -> str:
        return f"{self.shopify_url}/admin/api/{self.shopify_api_version}/graphql.json"

    # -- the daemon -----------------------------------------------------------------------
    def daemon_env(self, *, interval: float | None = 1.0, lease_seconds: float | None = None,
                   **extra: Any) -> dict[str, str]:
        """Every setting a daemon needs to run against this world (values are strings).

        ``interval`` sets the three prongs' intervals (None = the daemon's defaults); the lease
        is shortened to match. ``extra`` adds or overrides settings by environment name
        (e.g. ``GIFTSYNC_LOG_FORMAT="json"``)."""
        env = {
            "AIRTABLE_TOKEN": self.airtable_token,
            "AIRTABLE_BASE_ID": self.base_id,
            "AIRTABLE_API_URL": self.airtable_url,
            "SHOPIFY_SHOP": self.shopify_shop,
            "SHOPIFY_ACCESS_TOKEN": self.shopify_access_token,
            "SHOPIFY_API_VERSION": self.shopify_api_version,
            "SHOPIFY_ADMIN_URL": self.shopify_url,
            "KLAVIYO_API_KEY": self.klaviyo_api_key,
            "KLAVIYO_API_URL": self.klaviyo_url,
            "GIFTSYNC_CODE_SECRET": self.code_secret,
            "GIFTSYNC_ADMIN_EMAIL": self.admin_email,
            "GIFTSYNC_DEFAULT_CURRENCY": demo_seed.CURRENCY,
            "GIFTSYNC_GIFT_CARD_SKUS": ",".join(self.giftsync_skus),
            "GIFTSYNC_HTTP_TIMEOUT_SECONDS": "10",
        }
        if interval is not None:
            iv = f"{float(interval):g}"
            env.update({
                "GIFTSYNC_STORE_INTERVAL": iv,
                "GIFTSYNC_SHOPIFY_PURCHASES_INTERVAL": iv,
                "GIFTSYNC_SHOPIFY_REDEMPTIONS_INTERVAL": iv,
            })
            lease = lease_seconds if lease_seconds is not None else max(10.0, 8 * float(interval))
            env.update({
                "GIFTSYNC_LEASE_SECONDS": f"{lease:g}",
                "GIFTSYNC_LEASE_RENEW_SECONDS": f"{max(0.5, min(float(interval), lease / 4)):g}",
                "GIFTSYNC_LEASE_MARGIN_SECONDS": f"{lease / 4:g}",
                "GIFTSYNC_LEASE_SETTLE_SECONDS": f"{min(0.5, lease / 10):g}",
            })
        elif lease_seconds is not None:
            env["GIFTSYNC_LEASE_SECONDS"] = f"{lease_seconds:g}"
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def start_daemon(self, *, interval: float | None = 1.0, args: Iterable[str] = ("run",), echo: Any = None,
                     log_file: str | os.PathLike | None = None, **extra: Any) -> DaemonProcess:
        """Start ``python -m giftsync run`` against this world; stopped (SIGTERM) by ``stop()``."""
        env = self.daemon_env(interval=interval, **extra)
        daemon = DaemonProcess(env, args=args, cwd=self.root, echo=echo,
                               log_file=log_file or self.root / "daemon.log").start()
        self._daemons.append(daemon)
        return daemon

    # -- clients --------------------------------------------------------------------------
    def airtable_api(self, **kwargs: Any):
        """A pyairtable ``Api`` pointed at the Airtable twin."""
        from pyairtable import Api
        return Api(self.airtable_token, endpoint_url=self.airtable_url, **kwargs)

    def airtable_table(self, name: str, **kwargs: Any):
        return self.airtable_api(**kwargs).table(self.base_id, name)

    def shopify_graphql(self, query: str, variables: dict | None = None, *, timeout: float = 10) -> dict:
        """POST a GraphQL document to the Shopify twin's Admin API; returns the parsed body."""
        r = requests.post(self.shopify_graphql_url, json={"query": query, "variables": variables or {}},
                          headers={"X-Shopify-Access-Token": self.shopify_access_token}, timeout=timeout)
        r.raise_for_status()
        return r.json()

    def control(self, name: str, method: str, path: str, body: Any = None, *, timeout: float = 10) -> Any:
        """Call a twin's control endpoint (``/__sandbox/...``); returns the parsed JSON."""
        r = requests.request(method, f"{self.url(name)}{path}", json=body, timeout=timeout)
        if r.status_code >= 400:
            raise RuntimeError(f"{name} {method} {path}: HTTP {r.status_code}: {r.text[:500]}")
        return r.json() if r.content else None

    # -- the Shopify world: what customers and admins do online -----------------------------
    def buy_online(self, email: str, lines: list[dict], *, gift_card_payments: list[dict] | None = None,
                   **extra: Any) -> dict:
        """A customer places an order: ``lines`` like ``[{"sku": "GS-CARD-50", "quantity": 1,
        "properties": {"Recipient email": ...}}]``; ``gift_card_payments`` like
        ``[{"code": ..., "amount": "10.00"}]``. Returns the order summary."""
        body = {"email": email, "customer": {"email": email}, "lines": lines, **extra}
        if gift_card_payments:
            body["gift_card_payments"] = gift_card_payments
        return self.control("shopify", "POST", "/__sandbox/shopify/orders", body)

    def pay_online(self, email: str, code: str, amount: Any, *, sku: str = "SCARF-01", quantity: int = 1) -> dict:
        """A customer buys ``sku`` and pays ``amount`` of it with the gift card ``code``."""
        return self.buy_online(email, [{"sku": sku, "quantity": quantity}],
                               gift_card_payments=[{"code": code, "amount": str(amount)}])

    def refund_online(self, order_id: str, card: str, amount: Any, note: str | None = None) -> dict:
        return self.control("shopify", "POST", f"/__sandbox/shopify/orders/{quote(order_id, safe='')}/refunds",
                            {"gift_card": card, "amount": str(amount), "note": note})

    def adjust_balance(self, card: str, amount: Any, note: str | None = None) -> dict:
        """An admin changes a card's balance in the Shopify admin (``amount`` signed; ``card`` a GID or code)."""
        return self.control("shopify", "POST", f"/__sandbox/shopify/cards/{quote(card, safe='')}/adjust",
                            {"amount": str(amount), "note": note})

    def shopify_cards(self) -> list[dict]:
        """Every card in the Shopify twin (masked codes) with its transactions."""
        return self.control("shopify", "GET", "/__sandbox/shopify/cards")["cards"]

    def shopify_card(self, card: str) -> dict:
        return next(c for c in self.shopify_cards() if c["id"] == card)

    def outbox(self, *, to: str | None = None, metric: str | None = None) -> list[dict]:
        params = {k: v for k, v in (("to", to), ("metric", metric)) if v}
        r = requests.get(f"{self.klaviyo_url}/__sandbox/outbox", params=params, timeout=10)
        r.raise_for_status()
        return r.json()["outbox"]

    def profiles(self, *, email: str | None = None) -> list[dict]:
        r = requests.get(f"{self.klaviyo_url}/__sandbox/profiles", params={"email": email} if email else {},
                         timeout=10)
        r.raise_for_status()
        return r.json()["profiles"]

    def wait_for(self, predicate: Any, timeout: float = 30.0, interval: float = 0.2, what: str = "condition") -> Any:
        """Poll ``predicate()`` until it returns something truthy; raises TimeoutError."""
        deadline = time.time() + timeout
        last_exc: BaseException | None = None
        while time.time() < deadline:
            try:
                value = predicate()
                if value:
                    return value
            except Exception as exc:  # noqa: BLE001 - keep polling through transient errors
                last_exc = exc
            time.sleep(interval)
        raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}"
                           + (f" (last error: {last_exc!r})" if last_exc else ""))
