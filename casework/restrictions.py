"""Restriction of processing (a tenant's right, docs/privacy.md): a restricted tenancy is not scored into worklists,
gets no drafts and appears in no list until the restriction is lifted. Kept in the case store, one row per
restriction, lifted by stamping it (the history stays for the audit trail's sake)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from features.db import Database, and_in

TABLES = {"privacy_restrictions": {"tenancy_id": "TEXT", "restricted_at": "TEXT", "restricted_by": "TEXT",
                                   "reason": "TEXT", "lifted_at": "TEXT", "lifted_by": "TEXT"}}
PRIMARY_KEYS = {"privacy_restrictions": ("tenancy_id", "restricted_at")}


class Restricted(PermissionError):
    """The tenancy's processing is restricted; the message says so and how to lift it."""


def ensure_schema(db: Database) -> None:
    db.ensure_tables(TABLES, PRIMARY_KEYS)


def restricted(db: Database, tenancy_ids: Iterable[str] | None = None) -> set[str]:
    """The tenancies (of those given, or all) whose processing is restricted now."""
    sql, params = and_in("SELECT DISTINCT tenancy_id FROM privacy_restrictions WHERE lifted_at IS NULL", [],
                         "tenancy_id", None if tenancy_ids is None else list(tenancy_ids))
    return set(db.query(sql, params)["tenancy_id"].astype(str))


def check(db: Database, tenancy_id: str) -> None:
    """Raise Restricted when the tenancy's processing is restricted."""
    if restricted(db, [tenancy_id]):
        raise Restricted(f"Processing of {tenancy_id} is restricted (a data-protection request): no drafts, no "
                         "lists, no scoring until an admin lifts it (`arrears privacy restrict --lift`).")


def restrict(db: Database, tenancy_id: str, actor: str, reason: str) -> bool:
    """Restrict the tenancy (False: it already was)."""
    with db.transaction():
        if restricted(db, [tenancy_id]):
            return False
        db.insert("privacy_restrictions", {"tenancy_id": tenancy_id, "restricted_at": _now(), "restricted_by": actor,
                                           "reason": reason})
    return True


def lift(db: Database, tenancy_id: str, actor: str) -> bool:
    """Lift the tenancy's restriction (False: it had none)."""
    with db.transaction():
        if not restricted(db, [tenancy_id]):
            return False
        db.execute("UPDATE privacy_restrictions SET lifted_at = ?, lifted_by = ? WHERE tenancy_id = ? AND "
                   "lifted_at IS NULL", [_now(), actor, tenancy_id])
    return True


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")
