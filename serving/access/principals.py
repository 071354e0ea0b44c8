"""Who may use the service, and what each may see: principals with a role (and, for officers and supervisors, their
patches), authenticated by bearer tokens of which only a hash is stored.

| role | works with | sees |
|---|---|---|
| officer | worklists, scores, case files, actions, drafts | its own patches |
| supervisor | the officer's, and reassignment, approval, rejection and release of drafts | its area: its patches |
| data_scientist | models, monitoring, forecasts and KPIs | aggregates |
| treasury | forecasts and KPIs | aggregates |
| admin | everything (the outbox only to admins: the landlord's sending system is one) | everything |

Which roles may call each endpoint or open each page is declared with it (`serving.access.declared`).

A principal given patches sees only those, whatever it asks: a request naming another patch is refused (403), and
one naming none is narrowed to its own. Tokens are made here (`arrears users add`, printed once), kept as their
SHA-256 (a 256-bit random token needs no slow hash), and revoked by name. Names are staff names, never tenants'.
The principals live in the serving database beside the worklist runs (SQLite, or Postgres in production).

Static tokens are for machines (the sending system, the scheduler) and the CLI, so each one ends: it expires
`ARREARS_TOKEN_DAYS` (90) days after it was made unless `add` says otherwise, and is replaced by `rotate`, which
makes a new token for the same principal and lets the old one work for `ARREARS_TOKEN_OVERLAP_HOURS` (24) more
hours, so the machine holding it can be given the new one without a gap (0: the old one stops at once). Each token
records when it was last used, written at most once a minute (`LAST_USED_EVERY`), not on every request. A token
made before tokens expired (no `expires_at`) keeps working until it is rotated or revoked; `arrears users list`
shows it as never expiring. `verify` says why a token is refused (`NotAuthenticated`, `TokenExpired`);
`authenticate` answers None for any refusal.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import pandas as pd
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from features.db import Database, open_store
from features.settings import load_settings
from serving.settings import ServingSettings

ROLES = ("officer", "supervisor", "data_scientist", "treasury", "admin", "sender")
Role = Literal[ROLES]  # type: ignore[valid-type]
#: Roles that see only their patches, and so must be given at least one.
PATCH_ROLES = ("officer", "supervisor")
#: The roles that work cases (their patches' lists, case files, actions, drafts).
CASEWORK = ("officer", "supervisor", "admin")
#: The roles that decide: reassign, approve, reject, release.
SUPERVISING = ("supervisor", "admin")
#: The roles that see aggregates: forecasts and KPIs.
AGGREGATES = ("treasury", "data_scientist", "admin")
#: The roles that work the income: the suspense queue and its matches (cash application: docs/income.md).
INCOME = ("treasury", "admin")
#: The roles that see the models and their monitoring.
MODELLING = ("data_scientist", "admin")
#: Admins only.
ADMIN = ("admin",)
#: The landlord's sending system (least privilege: the outbox and delivery receipts, nothing else), and admins.
SENDING = ("sender", "admin")
#: A database made before tokens expired gets `expires_at`, `last_used_at` and `rotated_at` added, empty for its
#: rows (`Database.ensure_tables`): those tokens never expire until rotated.
TABLES = {"principals": {"token_hash": "TEXT", "name": "TEXT", "role": "TEXT", "patches": "TEXT",
                         "created_at": "TEXT", "revoked_at": "TEXT", "expires_at": "TEXT", "last_used_at": "TEXT",
                         "rotated_at": "TEXT"}}
PRIMARY_KEYS = {"principals": ("token_hash",)}
TOKEN_PREFIX = "arr_"
#: A token's last use is written when the one recorded is at least this old: not a write on every request.
LAST_USED_EVERY = timedelta(minutes=1)


class TokenSettings(BaseSettings):
    """How long tokens live (read from the environment like every layer's settings, `ARREARS_` prefix)."""

    model_config = SettingsConfigDict(env_prefix="ARREARS_", env_file=".env", extra="ignore")
    token_days: int = Field(default=90, gt=0, le=3650, description="Days a new token works (`arrears users add`, "
                            "`rotate`) unless `--expires-in` says otherwise.")
    token_overlap_hours: float = Field(default=24.0, ge=0, description="Hours an old token keeps working after "
                                       "`arrears users rotate` (0: it stops at once).")


def token_settings() -> TokenSettings:
    return load_settings(TokenSettings)


class Forbidden(PermissionError):
    """The principal may not do this; the message says what it may do instead."""


class NotAuthenticated(PermissionError):
    """The token is not known, was revoked or expired; the message says what to do (an HTTP 401)."""


class TokenExpired(NotAuthenticated):
    """The token was valid but has expired: its holder asks an administrator to rotate it."""


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    patches: tuple[str, ...] | None = None  #: None: every patch

    def patch_scope(self, requested: str | None) -> tuple[str, ...] | None:
        """The patches an answer may hold: the one asked for (if this principal sees it), else all it sees (None:
        every patch). Raises Forbidden for a patch it does not see."""
        if requested is not None:
            if self.patches is not None and requested not in self.patches:
                raise Forbidden(f"{self.name} ({self.role}) does not see patch {requested!r}: ask for one of "
                                f"{', '.join(self.patches)}, or leave patch out for all of them")
            return (requested,)
        return self.patches


#: What an open service (ARREARS_AUTH=open, the embedded demo's default) treats every caller as.
OPEN = Principal("anyone (auth open)", "admin")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def stamp(when: datetime) -> str:
    """A time as stored: UTC ISO text to the second (one format, so stored times compare as text)."""
    return when.astimezone(UTC).isoformat(timespec="seconds")


def _now(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC)


class PrincipalStore:
    """The principals. Use `open_principals(settings)`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def ensure_schema(self) -> None:
        self.db.ensure_tables(TABLES, PRIMARY_KEYS)

    def add(self, name: str, role: str, patches: Sequence[str] = (), expires_in_days: int | None = None,
            now: datetime | None = None) -> str:
        """Add a principal and return its token (shown once: only its hash is kept). The token expires after
        `expires_in_days` (default `ARREARS_TOKEN_DAYS`)."""
        name = name.strip()
        if not name or len(name) > 100:
            raise ValueError("A name is 1-100 characters")
        if role not in ROLES:
            raise ValueError(f"Unknown role {role!r}: one of {', '.join(ROLES)}")
        patches = sorted(set(patches))
        if role in PATCH_ROLES and not patches:
            raise ValueError(f"The {role} role sees only its patches: give at least one with --patch")
        if role not in PATCH_ROLES and patches:
            raise ValueError(f"The {role} role sees every patch's aggregates: --patch is for officers and supervisors")
        now = _now(now)
        with self.db.transaction():
            if not self.active(name, now=now).empty:
                raise ValueError(f"{name!r} already has an active token: `arrears users rotate {name}` for a new "
                                 f"one, or `arrears users revoke {name}` first")
            return self._issue(name, role, patches if role in PATCH_ROLES else None, expires_in_days, now)

    def _issue(self, name: str, role: str, patches: Sequence[str] | None, expires_in_days: int | None,
               now: datetime) -> str:
        days = token_settings().token_days if expires_in_days is None else expires_in_days
        if not 0 < days <= 3650:
            raise ValueError("A token lives 1-3650 days (--expires-in)")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = {"token_hash": token_hash(token), "name": name, "role": role,
               "patches": None if patches is None else json.dumps(list(patches)), "created_at": stamp(now),
               "revoked_at": None, "expires_at": stamp(now + timedelta(days=days)), "last_used_at": None,
               "rotated_at": None}
        self.db.append("principals", pd.DataFrame([row]), list(TABLES["principals"]))
        return token

    def tokens(self, name: str | None = None, now: datetime | None = None) -> pd.DataFrame:
        """Every token that works now (a rotated one during its overlap too), newest first within a name; never
        the token or its hash."""
        sql = ("SELECT name, role, patches, created_at, expires_at, last_used_at, rotated_at FROM principals "
               "WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)")
        params: list[object] = [stamp(_now(now))]
        if name is not None:
            sql, params = sql + " AND name = ?", [*params, name]
        return self.db.query(sql + " ORDER BY name, rotated_at IS NOT NULL, created_at DESC", params)

    def active(self, name: str | None = None, now: datetime | None = None) -> pd.DataFrame:
        """The principals with a token that works now, one row each (its newest token's: role, patches, since,
        expires_at), with the last use of any of its tokens and when its previous token stops (`old_until`: a
        rotation's overlap) if it has one."""
        found = self.tokens(name, now)
        columns = ["name", "role", "patches", "created_at", "expires_at", "last_used_at", "old_until"]
        if found.empty:
            return pd.DataFrame(columns=columns)
        rows = []
        for _, mine in found.groupby("name", sort=True):
            newest = mine.iloc[0].to_dict()
            used = mine["last_used_at"].dropna()
            older = mine.iloc[1:]["expires_at"].dropna()
            rows.append({**{k: newest[k] for k in ("name", "role", "patches", "created_at", "expires_at")},
                         "last_used_at": used.max() if len(used) else None,
                         "old_until": older.max() if len(older) else None})
        return pd.DataFrame(rows, columns=columns)

    def has_admin(self, now: datetime | None = None) -> bool:
        """Whether any admin has a token that works now."""
        found = self.tokens(now=now)
        return bool((found["role"] == "admin").any())

    def revoke(self, name: str) -> int:
        """Revoke every token of `name` not yet revoked (a rotation's old one too); returns how many."""
        with self.db.transaction():
            found = self.db.query("SELECT COUNT(*) AS n FROM principals WHERE name = ? AND revoked_at IS NULL", [name])
            self.db.execute("UPDATE principals SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                            [stamp(_now(None)), name])
        return int(found["n"].iloc[0])

    def rotate(self, name: str, overlap_hours: float | None = None, expires_in_days: int | None = None,
               now: datetime | None = None) -> tuple[str, str | None]:
        """A new token for `name` (same role and patches), and when its older tokens stop: after `overlap_hours`
        (default `ARREARS_TOKEN_OVERLAP_HOURS`; 0 revokes them now; never later than they would have expired). An
        expired token can be rotated (that is what its holder asks for); a revoked one cannot. Returns (the new
        token, shown once; when the old ones stop, None for at once)."""
        now = _now(now)
        overlap = token_settings().token_overlap_hours if overlap_hours is None else overlap_hours
        if overlap < 0:
            raise ValueError("The overlap is 0 hours or more")
        with self.db.transaction():
            held = self.db.query("SELECT token_hash, role, patches, expires_at FROM principals "
                                 "WHERE name = ? AND revoked_at IS NULL ORDER BY created_at DESC", [name])
            if held.empty:
                raise LookupError(f"{name!r} has no token to rotate (never added, or revoked): `arrears users add "
                                  f"{name} --role ROLE` makes one")
            newest = held.iloc[0]
            until = None if overlap == 0 else stamp(now + timedelta(hours=overlap))
            for old in held.to_dict("records"):
                if until is None:
                    self.db.execute("UPDATE principals SET revoked_at = ?, rotated_at = ? WHERE token_hash = ?",
                                    [stamp(now), stamp(now), old["token_hash"]])
                    continue
                ends = until if old["expires_at"] is None else min(str(old["expires_at"]), until)
                self.db.execute("UPDATE principals SET expires_at = ?, rotated_at = ? WHERE token_hash = ?",
                                [ends, stamp(now), old["token_hash"]])
            patches = stored_patches(newest["patches"])
            token = self._issue(name, str(newest["role"]), patches, expires_in_days, now)
        return token, until

    def verify(self, token: str, now: datetime | None = None) -> Principal:
        """The principal holding `token`, its use recorded (at most once a `LAST_USED_EVERY`); else
        `TokenExpired` for a token past its expiry, `NotAuthenticated` for one not known or revoked, each saying
        what to do."""
        now = _now(now)
        found = self.db.query("SELECT name, role, patches, expires_at, last_used_at FROM principals "
                              "WHERE token_hash = ? AND revoked_at IS NULL", [token_hash(token)])
        if found.empty:
            raise NotAuthenticated("The token is not known or was revoked: ask an administrator for a new one")
        row = found.iloc[0]
        name, expires = str(row["name"]), row["expires_at"]
        if isinstance(expires, str) and expires <= stamp(now):
            raise TokenExpired(f"The token expired at {expires[:16].replace('T', ' ')} UTC: ask an administrator to "
                               f"rotate it (`arrears users rotate {name}`)")
        used = row["last_used_at"]
        if not isinstance(used, str) or used <= stamp(now - LAST_USED_EVERY):
            # conditional, so two workers seeing the same stale time write once
            self.db.execute("UPDATE principals SET last_used_at = ? WHERE token_hash = ? AND (last_used_at IS NULL "
                            "OR last_used_at <= ?)", [stamp(now), token_hash(token), stamp(now - LAST_USED_EVERY)])
        return Principal(name, str(row["role"]), stored_patches(row["patches"]))

    def authenticate(self, token: str, now: datetime | None = None) -> Principal | None:
        """The principal holding `token` if it works now (its use recorded), else None (`verify` says why)."""
        try:
            return self.verify(token, now)
        except NotAuthenticated:
            return None


def stored_patches(stored) -> tuple[str, ...] | None:
    """A principal's patches as stored (JSON list; null: every patch)."""
    return tuple(json.loads(stored)) if isinstance(stored, str) else None


def open_principals(settings: ServingSettings) -> AbstractContextManager[PrincipalStore]:
    return open_store(settings.runs_database, PrincipalStore)
