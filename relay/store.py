"""The relay's tables, in the case store beside the outbox they follow: per destination the last sequence number it
confirmed (with counts of deliveries, failed attempts and dead letters), the messages dead-lettered, and the alerts
raised. Made the way casework makes its tables (`Database.ensure_tables`), when the relay opens the store."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from casework.settings import CaseworkSettings
from casework.store import open_casework
from features.db import Database

TABLES = {
    "relay_cursors": {"destination": "TEXT", "kind": "TEXT", "seq": "BIGINT", "delivered": "BIGINT",
                      "failed": "BIGINT", "dead_letters": "BIGINT", "updated_at": "TEXT"},
    "relay_dead_letters": {"destination": "TEXT", "draft_id": "TEXT", "seq": "BIGINT", "attempts": "BIGINT",
                           "error": "TEXT", "dead_at": "TEXT"},
    "relay_alerts": {"alert_id": "TEXT", "raised_at": "TEXT", "destination": "TEXT", "kind": "TEXT",
                     "message": "TEXT"},
}
PRIMARY_KEYS = {"relay_cursors": ("destination",), "relay_dead_letters": ("destination", "draft_id"),
                "relay_alerts": ("alert_id",)}
#: The alert a dead letter raises (the relay_alerts table's `kind`; the Prometheus alert of the same name).
DEAD_LETTERING = "RelayDeadLettering"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def ensure_schema(db: Database) -> None:
    db.ensure_tables(TABLES, PRIMARY_KEYS)


@contextmanager
def open_relay_store(settings: CaseworkSettings) -> Iterator[Database]:
    """The case store, with the relay's tables made sure of."""
    with open_casework(settings) as db:
        ensure_schema(db)
        yield db


def cursor(db: Database, destination: str, kind: str) -> int:
    """The last sequence number `destination` confirmed (0: none yet; its row is made)."""
    found = db.query("SELECT seq FROM relay_cursors WHERE destination = ?", [destination])
    if found.empty:
        db.execute("INSERT INTO relay_cursors (destination, kind, seq, delivered, failed, dead_letters, updated_at) "
                   "VALUES (?, ?, 0, 0, 0, 0, ?) ON CONFLICT (destination) DO NOTHING", [destination, kind, _now()])
        return 0
    return int(found["seq"].iloc[0])


def delivered(db: Database, destination: str, seq: int) -> None:
    """`destination` confirmed the message `seq`: the cursor moves to it (never back)."""
    db.execute("UPDATE relay_cursors SET seq = ?, delivered = delivered + 1, updated_at = ? "
               "WHERE destination = ? AND seq < ?", [int(seq), _now(), destination, int(seq)])


def failed(db: Database, destination: str) -> None:
    db.execute("UPDATE relay_cursors SET failed = failed + 1, updated_at = ? WHERE destination = ?",
               [_now(), destination])


def dead_letter(db: Database, destination: str, message: dict, attempts: int, error: str) -> None:
    """Give up on `message` for `destination`: record it and an alert, and move the cursor past it, in one
    transaction."""
    now, seq = _now(), int(message["seq"])
    with db.transaction():
        db.execute("INSERT INTO relay_dead_letters (destination, draft_id, seq, attempts, error, dead_at) "
                   "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (destination, draft_id) DO NOTHING",
                   [destination, message["message_id"], seq, attempts, error[:500], now])
        db.insert("relay_alerts", {"alert_id": uuid.uuid4().hex[:16], "raised_at": now, "destination": destination,
                                   "kind": DEAD_LETTERING,
                                   "message": f"message {message['message_id']} (seq {seq}) dead-lettered for "
                                   f"{destination} after {attempts} attempts: {error[:200]}"})
        db.execute("UPDATE relay_cursors SET seq = ?, dead_letters = dead_letters + 1, updated_at = ? "
                   "WHERE destination = ? AND seq < ?", [seq, now, destination, seq])


def dead_letters(db: Database, destination: str | None = None):
    sql, params = "SELECT * FROM relay_dead_letters", []
    if destination:
        sql, params = sql + " WHERE destination = ?", [destination]
    return db.query(sql + " ORDER BY destination, seq", params)


def alerts(db: Database):
    return db.query("SELECT * FROM relay_alerts ORDER BY raised_at DESC, alert_id")
