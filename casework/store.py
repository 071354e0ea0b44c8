"""The case store: casework's own database (`casework.settings`), opened with every table it keeps made sure of."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from casework import cases, drafts, receipts, restrictions
from casework.audit import AuditLog
from casework.settings import CaseworkSettings, schema_of
from features.db import Database, open_store

#: Databases whose case-store schema this process has made sure of: opening the store is on every casework request,
#: and making sure lists every table's columns.
_READY: set[str] = set()


class _CaseStore:
    """The case store's database with every table it keeps (the audit trail's, the cases', the drafts')."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def ensure_schema(self) -> None:
        """The schema (Postgres: the one the URL's search path names) and the tables, once per process."""
        url = self.db.url
        if url in _READY and self.db.columns_of("audit_log"):  # a store deleted since is made again
            return
        schema = schema_of(url) if self.db.backend == "postgres" else None
        if schema:
            self.db.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        AuditLog(self.db).ensure_schema()
        cases.ensure_schema(self.db)
        drafts.ensure_schema(self.db)
        receipts.ensure_schema(self.db)
        restrictions.ensure_schema(self.db)
        _READY.add(url)


@contextmanager
def open_casework(settings: CaseworkSettings) -> Iterator[Database]:
    """The case store's database, its schema and tables made sure of."""
    with open_store(settings.casework_database, _CaseStore) as store:
        yield store.db


@contextmanager
def open_audit(settings: CaseworkSettings) -> Iterator[AuditLog]:
    with open_casework(settings) as db:
        yield AuditLog(db)
