"""Back-off and lockout on failed sign-ins and tokens, per address and per principal.

Each wrong credential presented (a bearer token or a sign-in token that is not known, revoked or expired; a JWT that
does not verify; a sign-in the identity provider's groups refuse) counts against the caller's address and, when the
credential names one, against the principal. The first `auth_failures_free` failures of a key cost nothing; each
one after blocks the key for twice as long as the one before (1 s, 2 s, 4 s…) up to `auth_lockout_seconds`, the
lockout. While a key is blocked, every attempt from it — a right token included — is answered 429 with
`Retry-After`, without being checked (nor counted: waiting out the block is what a person does). A key's failures
are forgotten `auth_lockout_seconds` after its last one; a success forgets the principal's (never the address's:
one valid token must not reset an address that is guessing others). A missing credential is a 401, not a failure:
nobody is guessing.

Counts are kept in the memory of the service's worker (one per service: `bentoml serve` runs one), so a restart
forgets them. Behind a reverse proxy, every caller has the proxy's address unless the proxy is named in
`ARREARS_TRUSTED_PROXIES` (then the first address of `X-Forwarded-For` is the caller's).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from serving.settings import ServingSettings


@dataclass
class _Record:
    failures: int = 0
    last: float = 0.0
    blocked_until: float = 0.0


@dataclass
class Limiter:
    free: int = 10
    lockout_seconds: float = 900.0
    clock: Callable[[], float] = time.monotonic
    _records: dict[str, _Record] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_settings(cls, settings: ServingSettings) -> Limiter:
        return cls(free=settings.auth_failures_free, lockout_seconds=settings.auth_lockout_seconds)

    def retry_after(self, *keys: str) -> int:
        """Whole seconds until every one of `keys` may try again (0: now)."""
        now, wait = self.clock(), 0.0
        with self._lock:
            for key in keys:
                record = self._records.get(key)
                if record is not None:
                    wait = max(wait, record.blocked_until - now)
        return math.ceil(wait) if wait > 0 else 0

    def failed(self, *keys: str) -> int:
        """Count a failure against each key; returns the seconds the longest-blocked key now waits."""
        now, wait = self.clock(), 0.0
        with self._lock:
            if len(self._records) > 100_000:  # never let the map grow without bound: drop what is forgotten
                self._forget(now)
            for key in keys:
                record = self._records.setdefault(key, _Record())
                if now - record.last > self.lockout_seconds:
                    record.failures = 0
                record.failures += 1
                record.last = now
                over = record.failures - self.free
                if over > 0:
                    block = min(2.0 ** (over - 1), self.lockout_seconds)
                    record.blocked_until = max(record.blocked_until, now + block)
                    wait = max(wait, record.blocked_until - now)
        return math.ceil(wait)

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._records.pop(key, None)

    def _forget(self, now: float) -> None:
        for key in [k for k, r in self._records.items()
                    if now - r.last > self.lockout_seconds and r.blocked_until <= now]:
            del self._records[key]


def client_address(scope, settings: ServingSettings) -> str:
    """The caller's address: the connection's, or the first of X-Forwarded-For from a trusted proxy."""
    client = (scope.get("client") or ("unknown",))[0]
    if client in settings.trusted_proxies:
        forwarded = dict(scope.get("headers") or []).get(b"x-forwarded-for", b"").decode("latin-1")
        first = forwarded.split(",")[0].strip()
        if first:
            return first
    return client


def address_key(scope, settings: ServingSettings) -> str:
    return "address:" + client_address(scope, settings)


def principal_key(name: str) -> str:
    return "principal:" + name


def too_many(wait: int) -> str:
    return (f"Too many failed sign-ins or tokens from here: try again in {wait} second{'s' if wait != 1 else ''} "
            "(an administrator can check `arrears users list` for the right token)")
