"""The case store: casework's own database (`casework.settings`), opened with every table it keeps made sure of."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from casework import cases, drafts
from casework.audit import AuditLog
from casework.settings import CaseworkSettings, schema_of
from features.db import Database


@contextmanager
def open_casework(settings: CaseworkSettings) -> Iterator[Database]:
    """The case store's database, its schema (Postgres: the one its URL's search path names) and tables made sure
    of."""
    with Database(settings.casework_database) as db:
        schema = schema_of(settings.casework_database) if db.backend == "postgres" else None
        if schema:
            db.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        AuditLog(db).ensure_schema()
        cases.ensure_schema(db)
        drafts.ensure_schema(db)
        yield db


@contextmanager
def open_audit(settings: CaseworkSettings) -> Iterator[AuditLog]:
    with open_casework(settings) as db:
        yield AuditLog(db)
