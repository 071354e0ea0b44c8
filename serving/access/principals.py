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
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import pandas as pd

from features.db import Database, open_store
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
#: The roles that see the models and their monitoring.
MODELLING = ("data_scientist", "admin")
#: Admins only.
ADMIN = ("admin",)
#: The landlord's sending system (least privilege: the outbox and delivery receipts, nothing else), and admins.
SENDING = ("sender", "admin")
TABLES = {"principals": {"token_hash": "TEXT", "name": "TEXT", "role": "TEXT", "patches": "TEXT",
                         "created_at": "TEXT", "revoked_at": "TEXT"}}
PRIMARY_KEYS = {"principals": ("token_hash",)}
TOKEN_PREFIX = "arr_"


class Forbidden(PermissionError):
    """The principal may not do this; the message says what it may do instead."""


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


class PrincipalStore:
    """The principals. Use `open_principals(settings)`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def ensure_schema(self) -> None:
        self.db.ensure_tables(TABLES, PRIMARY_KEYS)

    def add(self, name: str, role: str, patches: Sequence[str] = ()) -> str:
        """Add a principal and return its token (shown once: only its hash is kept)."""
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
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.db.transaction():
            if not self.active(name).empty:
                raise ValueError(f"{name!r} already has an active token: `arrears users revoke {name}` first")
            row = {"token_hash": token_hash(token), "name": name, "role": role,
                   "patches": json.dumps(patches) if role in PATCH_ROLES else None,
                   "created_at": datetime.now(UTC).isoformat(timespec="seconds"), "revoked_at": None}
            self.db.append("principals", pd.DataFrame([row]), list(TABLES["principals"]))
        return token

    def active(self, name: str | None = None) -> pd.DataFrame:
        sql, params = "SELECT name, role, patches, created_at FROM principals WHERE revoked_at IS NULL", []
        if name is not None:
            sql, params = sql + " AND name = ?", [name]
        return self.db.query(sql + " ORDER BY name", params)

    def revoke(self, name: str) -> int:
        """Revoke every active token of `name`; returns how many."""
        with self.db.transaction():
            n = len(self.active(name))
            self.db.execute("UPDATE principals SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                            [datetime.now(UTC).isoformat(timespec="seconds"), name])
        return n

    def authenticate(self, token: str) -> Principal | None:
        """The active principal holding `token`, or None."""
        found = self.db.query("SELECT name, role, patches FROM principals WHERE token_hash = ? AND revoked_at IS NULL",
                              [token_hash(token)])
        if found.empty:
            return None
        row = found.iloc[0]
        return Principal(str(row["name"]), str(row["role"]), stored_patches(row["patches"]))


def stored_patches(stored) -> tuple[str, ...] | None:
    """A principal's patches as stored (JSON list; null: every patch)."""
    return tuple(json.loads(stored)) if isinstance(stored, str) else None


def open_principals(settings: ServingSettings) -> AbstractContextManager[PrincipalStore]:
    return open_store(settings.runs_database, PrincipalStore)
