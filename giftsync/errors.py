"""How adapters report failures of outside services, so prongs can decide without knowing HTTP.

- ``RetriableError``: nothing happened (429, throttled, connection refused, a 5xx on a read);
  try again later, with backoff.
- ``AmbiguousError``: a *mutation* may or may not have been applied (timeout after sending,
  reset, 5xx). Never resend blindly: read back first (docs/adr/0001-money-protocol.md).
- ``FatalError``: the request is wrong or not allowed (4xx validation, auth); retrying will
  not help. ``service`` and ``reason`` say what to fix.
"""
from __future__ import annotations


class ServiceError(Exception):
    def __init__(self, service: str, reason: str, *, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(f"{service}: {reason}")
        self.service = service
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


class RetriableError(ServiceError):
    pass


class AmbiguousError(RetriableError):
    pass


class FatalError(ServiceError):
    pass


class ConfigError(Exception):
    """A missing or malformed setting; the message names it (never its secret value)."""
