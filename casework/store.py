"""The case store: casework's own database (`casework.settings`), opened with every table it keeps made sure of."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from casework import cases, drafts
from casework.audit import AuditLog
from casework.settings import CaseworkSettings, schema_of
from features.db import Database

#: Databases whose case-store schema this process has made sure of: opening the store is on every casework request,
#: and making sure lists every table's columns.
_READY: set[str] = set()


@contextmanager
def open_casework(settings: CaseworkSettings) -> Iterator[Database]:
    """The case store's database, its schema (Postgres: the one its URL's search path names) and tables made sure
    of."""
    url = settings.casework_database
    with Database(url) as db:
        if url not in _READY or not db.columns_of("audit_log"):  # a store deleted since is made again
            schema = schema_of(url) if db.backend == "postgres" else None
            if schema:
                db.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            AuditLog(db).ensure_schema()
            cases.ensure_schema(db)
            drafts.ensure_schema(db)
            _READY.add(url)
        yield db


@contextmanager
def open_audit(settings: CaseworkSettings) -> Iterator[AuditLog]:
    with open_casework(settings) as db:
        yield AuditLog(db)
