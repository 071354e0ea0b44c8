"""A fresh schema on the real PostgreSQL server for each test that needs one, dropped afterwards."""

from __future__ import annotations

import os
import uuid

import pytest

POSTGRES_ADMIN_URL = os.environ.get("ARREARS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("ARREARS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def create_schema(prefix: str = "t") -> tuple[str, str]:
    """A new schema: (a URL whose search_path is that schema, the schema's name)."""
    import psycopg

    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5) as con:
            con.execute(f"CREATE SCHEMA {schema}")
    except psycopg.OperationalError as exc:  # the production-profile tier needs the real server
        pytest.fail(f"PostgreSQL at {POSTGRES_ADMIN_URL} is not reachable: {exc}")
    sep = "&" if "?" in POSTGRES_ADMIN_URL else "?"
    return f"{POSTGRES_ADMIN_URL}{sep}options=-csearch_path%3D{schema}", schema


def drop_schema(schema: str | None) -> None:
    if schema:
        import psycopg

        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as con:
            con.execute(f"DROP SCHEMA {schema} CASCADE")
            con.execute(f"DROP SCHEMA IF EXISTS {schema}_protected CASCADE")  # features.protected's, beside it
