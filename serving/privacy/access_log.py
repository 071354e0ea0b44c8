"""Who looked: every read of one tenancy's data (the case page, `/case_file`, `/score`, a subject access export)
recorded with the principal's name and role, the tenancy, what was read and when; never a token. Its own table in
the runs database (beside the principals), read by admins only (`arrears privacy access-log`), kept for the
retention schedule's `access_log` period (serving/privacy/retention.yaml)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from contextlib import AbstractContextManager
from datetime import UTC, datetime

import pandas as pd

from features.db import Database, open_store
from serving.settings import ServingSettings

TABLE = "access_log"
TABLES = {TABLE: {"access_id": "TEXT", "at": "TEXT", "principal": "TEXT", "role": "TEXT", "tenancy_id": "TEXT",
                  "what": "TEXT"}}
PRIMARY_KEYS = {TABLE: ("access_id",)}
INDEXES = (f"CREATE INDEX IF NOT EXISTS {TABLE}_tenancy ON {TABLE} (tenancy_id, at)",)
#: What a read can be.
READS = ("case_page", "case_file", "score", "export", "access_log")


class AccessLog:
    """The access log. Use `open_access_log(settings)`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def ensure_schema(self) -> None:
        self.db.ensure_tables(TABLES, PRIMARY_KEYS, INDEXES)

    def record(self, principal: str, role: str, tenancy_ids: Iterable[str], what: str,
               at: datetime | None = None) -> int:
        """One row per tenancy read; how many were written."""
        if what not in READS:
            raise ValueError(f"Unknown read {what!r}: one of {', '.join(READS)}")
        ids = list(dict.fromkeys(str(t) for t in tenancy_ids))
        if not ids:
            return 0
        when = (at or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="microseconds")
        # One statement and one commit, without a DataFrame: `/score` records every read, and a frame's conversion
        # cost 5 ms a request (a commit a row: 230 ms for 1,000 ids).
        values = [value for tenancy_id in ids for value in (uuid.uuid4().hex, when, principal, role, tenancy_id, what)]
        marks = ", ".join(["(?, ?, ?, ?, ?, ?)"] * len(ids))
        self.db.execute(f"INSERT INTO {TABLE} ({', '.join(TABLES[TABLE])}) VALUES {marks}", values)
        return len(ids)

    def entries(self, tenancy_id: str | None = None) -> pd.DataFrame:
        """Reads, oldest first (of one tenancy, or all)."""
        sql, params = f"SELECT at, principal, role, tenancy_id, what FROM {TABLE}", []
        if tenancy_id is not None:
            sql, params = sql + " WHERE tenancy_id = ?", [tenancy_id]
        return self.db.query(sql + " ORDER BY at, access_id", params)


def open_access_log(settings: ServingSettings) -> AbstractContextManager[AccessLog]:
    return open_store(settings.runs_database, AccessLog)


def record_reads(settings: ServingSettings, principal, tenancy_ids: Iterable[str], what: str) -> None:
    """Record that `principal` (anything with a name and a role) read these tenancies' data."""
    ids = list(tenancy_ids)
    if not ids:
        return
    # its schema made sure of once a process: /score records every read
    with open_store(settings.runs_database, AccessLog, once=True) as log:
        log.record(principal.name, principal.role, ids, what)
