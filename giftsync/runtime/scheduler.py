"""The daemon's scheduler: the lease job and one job per prong (APScheduler 3.x).

- A prong may bring ``companions``: further jobs of its own at their own interval, on their
  own threads (the store prong's redemption poll every ``GIFTSYNC_REDEMPTION_POLL_SECONDS``,
  5 s by default, so a customer at the counter never waits for the 15 s cycle or a bulk
  card request); they are not recorded in Status and ``giftsync once`` does not run them
  (the prong's own cycle already includes their work).
- One ``BackgroundScheduler``; every job has its own single-thread executor (thread names
  ``lease_0``, ``prong-store_0``, …), ``max_instances=1`` (a slow prong is never run twice at
  once), ``coalesce=True`` (missed runs collapse into one) and a misfire grace time.
- The lease job renews the lease (or, on standby, tries to take it) every
  ``renew_interval`` seconds, then calls the heartbeat hook (systemd's watchdog).
- A prong job first asks ``lease.may_start_effects()``; the prong itself gets a
  ``should_continue()`` callable to ask between records (the stop event and the lease).
  An exception in a job is logged and never kills the daemon.
- ``run_forever()``: SIGTERM/SIGINT stop scheduling, let the record in hand finish, release
  the lease; a second signal exits at once.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import signal
import socket
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from ..ports import CardBook, Clock, StatusRow
from .budget import BACKGROUND, LEASE, NORMAL, priority
from .lease import Lease

log = logging.getLogger("giftsync.scheduler")

ShouldContinue = Callable[[], bool]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_LEASE_HELD = 3
EXIT_UNAVAILABLE = 75


RECORD_IDLE_SECONDS = 60.0          # Status Last Run of an idle prong: at most once a minute


@dataclass
class ProngSpec:
    """A job: ``run(should_continue)`` does one cycle and checks ``should_continue()`` between
    records. ``installed=False`` registers a no-op placeholder (the prong does not exist yet)."""
    name: str
    run: Callable[[ShouldContinue], Any]
    interval: float = 15.0
    cron: str | None = None                 # a crontab (UTC) instead of an interval
    priority: int = NORMAL
    installed: bool = True
    record_runs: bool = True                # write Last Run on the Status row cursor:<name>
    scheduled: bool = True                  # False: only run on demand (``giftsync once --prong``)
    companions: list["ProngSpec"] = field(default_factory=list)   # further jobs of this prong
    first_delay: float = 0.0                # an interval job's first run this long after the start
                                            # (to stagger jobs of the same interval)


def noop_prong(name: str, interval: float = 15.0) -> ProngSpec:
    return ProngSpec(name=name, run=lambda should_continue: None, interval=interval,
                     installed=False, record_runs=False)


@dataclass
class JobStats:
    runs: int = 0
    failures: int = 0
    skipped_no_lease: int = 0
    skipped_busy: int = 0
    missed: int = 0
    running: bool = False
    last_error: str = ""
    last_result: Any = None


def summary(result: Any) -> str:
    """A cycle's result in a few words: ``redemptions=2 card_requests=1`` (non-zero counters)."""
    if result is None:
        return ""
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        parts = [f"{k}={v}" for k, v in dataclasses.asdict(result).items() if v not in (0, None, "", [], {})]
        return (" " + " ".join(parts)) if parts else ""
    return f": {result}"


class Notifier:
    """systemd's sd_notify over the ``NOTIFY_SOCKET`` datagram socket (no extra packages).
    Does nothing when not started by systemd with Type=notify."""

    def __init__(self, address: str | None = None) -> None:
        self.address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")

    def notify(self, state: str) -> bool:
        if not self.address:
            return False
        address = self.address
        if address.startswith("@"):
            address = "\0" + address[1:]          # abstract namespace
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(address)
                sock.sendall(state.encode())
            return True
        except OSError as exc:
            log.debug("sd_notify failed", extra={"error": str(exc)})
            return False

    def ready(self) -> bool:
        return self.notify("READY=1")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def status(self, text: str) -> bool:
        return self.notify("STATUS=" + text.replace("\n", " "))


class Daemon:
    def __init__(self, lease: Lease, prongs: Iterable[ProngSpec], *, renew_interval: float = 15.0,
                 misfire_grace: float = 30.0, stop: threading.Event | None = None,
                 heartbeat: Callable[[], Any] | None = None, book: CardBook | None = None,
                 clock: Clock | None = None, notifier: Notifier | None = None) -> None:
        self.lease = lease
        self.prongs = list(prongs)
        self.jobs = [j for p in self.prongs for j in [p, *p.companions]]
        names = [p.name for p in self.jobs]
        if len(set(names)) != len(names) or "lease" in names:
            raise ValueError(f"prong names must be unique and not 'lease': {names}")
        self.renew_interval = float(renew_interval)
        self.misfire_grace = misfire_grace
        self.stop_event = stop or threading.Event()
        self.heartbeat = heartbeat
        self.book = book                      # for Last Run rows; None = do not record
        self.clock = clock or lease.clock
        self.notifier = notifier or Notifier("")
        self.stats: dict[str, JobStats] = {p.name: JobStats() for p in self.jobs}
        self.stats["lease"] = JobStats()
        self._scheduler: BackgroundScheduler | None = None
        self._wake = threading.Event()
        self._signals = 0
        self._stopped = threading.Event()
        self._stop_lock = threading.Lock()
        self._was_held = False
        self._recorded: dict[str, float] = {}      # prong → monotonic time of its last Status write
        self._rows: dict[str, StatusRow] = {}      # cursor row → as last written by this process

    # -- what prongs ask ---------------------------------------------------------------------
    def should_continue(self) -> bool:
        return not self.stop_event.is_set() and self.lease.may_start_effects()

    # -- jobs ---------------------------------------------------------------------------------
    def lease_job(self) -> bool:
        stats = self.stats["lease"]
        stats.runs += 1
        held = False
        try:
            with priority(LEASE):
                held = self.lease.tick()
        except Exception as exc:  # noqa: BLE001
            stats.failures += 1
            stats.last_error = type(exc).__name__
            log.exception("lease job failed")
        if held != self._was_held:
            self._was_held = held
            outcome = self.lease.last_outcome
            if held:
                self.notifier.status(f"holding the lease as {self.lease.holder_id}")
            else:
                other = f" by {outcome.other}" if outcome is not None and outcome.other else ""
                self.notifier.status(f"standing by: lease held{other}")
        if self.heartbeat is not None:
            try:
                self.heartbeat()
            except Exception:  # noqa: BLE001
                log.exception("heartbeat hook failed")
        return held

    def run_prong(self, spec: ProngSpec) -> bool:
        """One cycle of ``spec`` (what the job runs; also ``giftsync once``). True unless it raised."""
        stats = self.stats[spec.name]
        if not spec.installed or self.stop_event.is_set():
            return True
        if not self.lease.may_start_effects():
            stats.skipped_no_lease += 1
            log.debug("prong skipped: lease not held", extra={"prong": spec.name})
            return True
        stats.running = True
        stats.runs += 1
        started = self.clock.now()
        ok, result, error = True, None, ""
        try:
            with priority(spec.priority):
                result = spec.run(self.should_continue)
            stats.last_result = result
            errors = getattr(result, "errors", 0)
            if isinstance(errors, int) and errors > 0:     # the cycle went on past failed steps
                ok = False
                stats.failures += 1
                error = stats.last_error = f"{errors} step(s) failed"
        except Exception as exc:  # noqa: BLE001 — a failed cycle never kills the daemon
            ok = False
            stats.failures += 1
            error = type(exc).__name__
            stats.last_error = error
            log.exception("prong cycle failed", extra={"prong": spec.name})
        finally:
            stats.running = False
        if spec.record_runs and self.book is not None and self._due_record(spec.name, result, error):
            self._record_run(spec.name, started, result, error)
        return ok

    def _due_record(self, name: str, result: Any, error: str) -> bool:
        """Status Last Run (one write; a read the first time) on every cycle that did work or
        failed, otherwise at most once every ``RECORD_IDLE_SECONDS`` per prong."""
        now = self.clock.monotonic()
        last = self._recorded.get(name)
        worked = bool(error) or any(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                    for v in getattr(result, "__dict__", {}).values())
        if worked or last is None or now - last >= RECORD_IDLE_SECONDS:
            self._recorded[name] = now
            return True
        return False

    def _record_run(self, name: str, started: datetime, result: Any, error: str) -> None:
        row_name = f"cursor:{name}"
        try:
            with priority(BACKGROUND):
                # Read once, then kept: only this process writes its cursor rows while it holds
                # the lease, so every later Last Run is one write (no read).
                row = self._rows.pop(row_name, None) or self.book.read_status(row_name) or StatusRow(name=row_name)
                row.last_run = started
                row.details = ((f"error: {error}" if error else "ok") + summary(result))[:500]
                self._rows[row_name] = self.book.write_status(row)
        except Exception as exc:  # noqa: BLE001 — read again next time
            log.warning("could not record the prong's last run",
                        extra={"prong": name, "error": type(exc).__name__})

    # -- scheduler ----------------------------------------------------------------------------
    def build_scheduler(self) -> BackgroundScheduler:
        executors = {"lease": ThreadPoolExecutor(1, pool_kwargs={"thread_name_prefix": "lease"})}
        for p in self.jobs:
            executors[p.name] = ThreadPoolExecutor(1, pool_kwargs={"thread_name_prefix": f"prong-{p.name}"})
        scheduler = BackgroundScheduler(
            executors=executors,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": int(max(1, self.misfire_grace))},
            timezone=timezone.utc,
        )
        now = datetime.now(timezone.utc)
        scheduler.add_job(self.lease_job, IntervalTrigger(seconds=self.renew_interval, timezone=timezone.utc),
                          id="lease", name="lease", executor="lease",
                          next_run_time=now + timedelta(seconds=self.renew_interval))
        for p in self.jobs:
            if not p.installed:
                log.info("prong not installed yet; registered as a no-op", extra={"prong": p.name})
            if not p.scheduled:
                log.info("prong runs on demand only (no schedule)", extra={"prong": p.name})
                continue
            if p.cron:   # first run from the trigger
                scheduler.add_job(self.run_prong, CronTrigger.from_crontab(p.cron, timezone=timezone.utc),
                                  args=[p], id=p.name, name=p.name, executor=p.name)
            else:        # first run at once (or after its first_delay)
                scheduler.add_job(self.run_prong, IntervalTrigger(seconds=p.interval, timezone=timezone.utc),
                                  args=[p], id=p.name, name=p.name, executor=p.name,
                                  next_run_time=now + timedelta(seconds=max(0.0, p.first_delay)))
        scheduler.add_listener(self._on_event, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)
        return scheduler

    def _on_event(self, event: JobExecutionEvent) -> None:
        stats = self.stats.get(event.job_id)
        if stats is None:
            return
        if event.code == EVENT_JOB_MAX_INSTANCES:
            stats.skipped_busy += 1
            log.debug("previous run still busy; this run skipped", extra={"prong": event.job_id})
        elif event.code == EVENT_JOB_MISSED:
            stats.missed += 1
            log.info("run missed (misfire grace exceeded)", extra={"prong": event.job_id})

    def start(self, *, first_tick: bool = True) -> bool:
        """Take (or try to take) the lease once, then start scheduling. True when the lease is held."""
        held = self.lease_job() if first_tick else self.lease.held
        self._scheduler = self.build_scheduler()
        self._scheduler.start()
        log.info("scheduler started", extra={
            "holder": self.lease.holder_id, "held": held, "renew_every": self.renew_interval,
            "prongs": ",".join(f"{p.name}/{p.cron or p.interval}" + ("" if p.installed else "(no-op)")
                               for p in self.jobs)})
        return held

    def stop(self, *, release: bool = True) -> None:
        """Stop scheduling, let the record in hand finish, release the lease. Idempotent."""
        with self._stop_lock:
            if self._stopped.is_set():
                return
            self.stop_event.set()
            self._wake.set()
            self.notifier.stopping()
            if self._scheduler is not None and self._scheduler.running:
                busy = [n for n, s in self.stats.items() if s.running]
                log.info("stopping: waiting for the record in hand", extra={"busy": ",".join(busy) or "-"})
                self._scheduler.shutdown(wait=True)
            if release:
                self.lease.release()
            self._stopped.set()
            log.info("stopped")

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    # -- the daemon's main thread --------------------------------------------------------------
    def _on_signal(self, signum: int, frame: Any) -> None:
        self._signals += 1
        if self._signals > 1:
            os.write(2, f"giftsync: second {signal.Signals(signum).name}; exiting at once "
                        f"(the lease will expire on its own)\n".encode())
            os._exit(128 + signum)
        log.info("signal received: stopping cleanly (send it again to exit at once)",
                 extra={"signal": signal.Signals(signum).name})
        self.stop_event.set()
        self._wake.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def run_forever(self, *, wait_for_lease: bool = True, install_signals: bool = True) -> int:
        """The daemon. Returns an exit code: 0 after a clean stop, 3 when the lease is held by
        another process and ``wait_for_lease`` is false, 75 when Airtable cannot be reached then."""
        if install_signals:
            self.install_signal_handlers()
        held = self.lease_job()
        if not held and not wait_for_lease:
            outcome = self.lease.last_outcome
            if outcome is not None and outcome.reason == "error":
                log.error("could not reach the Status table to take the lease")
                return EXIT_UNAVAILABLE
            log.error("lease held by another process; not starting (run without --no-wait to stand by)",
                      extra={"other": outcome.other if outcome is not None else ""})
            return EXIT_LEASE_HELD
        self.start(first_tick=False)
        self.notifier.ready()
        while not self._wake.wait(0.5) and not self.stop_event.is_set():
            pass
        # Shut down on a helper thread so that the main thread stays free for a second signal.
        stopper = threading.Thread(target=self.stop, name="stopper", daemon=True)
        stopper.start()
        while stopper.is_alive():
            stopper.join(0.2)
        return EXIT_OK
