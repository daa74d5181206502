"""Fault injection for the twins.

A rule matches calls by route key (``"*"`` = any) and fires either *before* the twin
handles the call (nothing is applied) or *after* (the effect is applied, then the client
sees the fault) — the second kind is what makes a blind retry dangerous.

Kinds:
  ``status``  answer with ``status`` (429, 500, 502, 503) and the service's own error body
  ``hang``    hold the connection for ``delay`` seconds (past the client's timeout), then drop it
  ``reset``   close the connection with a TCP reset
  ``latency`` sleep ``delay`` + uniform(0, ``jitter``) seconds, then carry on (never stops matching)

A rule fires with ``probability`` (drawn from the plan's seeded generator) and at most
``count`` times (None = unlimited) — ``count=2, probability=1`` is a scripted sequence.
``match`` (optional) narrows a rule to calls whose ``"METHOD path\nbody"`` (path decoded)
contains a match of that regular expression — e.g. one Airtable table, or the lease row —
so a crash test can fault exactly one write among many calls with the same route key.
"""
from __future__ import annotations

import random
import re
import threading
from dataclasses import asdict, dataclass, field

KINDS = ("status", "hang", "reset", "latency")
PHASES = ("before", "after")


@dataclass
class FaultRule:
    kind: str
    route: str = "*"
    when: str = "before"
    probability: float = 1.0
    count: int | None = None
    status: int = 503
    delay: float = 0.0
    jitter: float = 0.0
    match: str | None = None
    fired: int = field(default=0)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {KINDS}")
        if self.when not in PHASES:
            raise ValueError(f"unknown fault phase {self.when!r}; expected one of {PHASES}")
        if not 0.0 <= float(self.probability) <= 1.0:
            raise ValueError("probability must be between 0 and 1")
        if self.kind == "hang" and not self.delay:
            self.delay = 30.0
        if self.kind == "latency":
            self.when = "before"
        self._rx = re.compile(self.match) if self.match else None

    @classmethod
    def from_dict(cls, data: dict) -> "FaultRule":
        allowed = {"kind", "route", "when", "probability", "count", "status", "delay", "jitter", "match"}
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown fault rule fields: {sorted(unknown)}")
        return cls(**data)

    def matches(self, route: str, phase: str, text: str | None = None) -> bool:
        if self.when != phase:
            return False
        if self.count is not None and self.fired >= self.count:
            return False
        if self.route not in ("*", route):
            return False
        return self._rx is None or (text is not None and self._rx.search(text) is not None)

    def to_dict(self) -> dict:
        d = asdict(self)
        if d.get("match") is None:
            d.pop("match", None)
        return d


@dataclass
class Decision:
    """What the server must do for one call at one phase."""
    sleep: float = 0.0
    fault: FaultRule | None = None


class FaultPlan:
    """Thread-safe list of rules plus counters of what was injected."""

    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self.seed = seed
        self._rng = random.Random(seed)
        self.injected: dict[str, int] = {}

    def reseed(self, seed: int | None) -> None:
        with self._lock:
            self.seed = seed
            self._rng = random.Random(seed)

    def add(self, rule: FaultRule | dict) -> FaultRule:
        if isinstance(rule, dict):
            rule = FaultRule.from_dict(rule)
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def rules(self) -> list[dict]:
        with self._lock:
            return [r.to_dict() for r in self._rules]

    def counters(self) -> dict[str, int]:
        with self._lock:
            return dict(self.injected)

    def decide(self, route: str, phase: str, text: str | None = None) -> Decision:
        """``text``: the call as ``"METHOD path\nbody"``, for rules with a ``match``."""
        decision = Decision()
        with self._lock:
            for rule in self._rules:
                if not rule.matches(route, phase, text):
                    continue
                if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                    continue
                if rule.kind == "latency":
                    decision.sleep += rule.delay + (self._rng.uniform(0, rule.jitter) if rule.jitter else 0.0)
                    rule.fired += 1
                    continue
                rule.fired += 1
                label = f"{rule.kind}:{rule.status}" if rule.kind == "status" else rule.kind
                key = f"{label}/{phase}"
                self.injected[key] = self.injected.get(key, 0) + 1
                decision.fault = rule
                break
        return decision
