"""Shared fixtures: a throwaway ARREARS_HOME, ledgers on both backends, and a tiny-delivery writer."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pandas as pd
import pytest

from features.settings import load_settings
from serving.settings import get_settings

POSTGRES_ADMIN_URL = os.environ.get("ARREARS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the whole application at a fresh ARREARS_HOME for one test."""
    path = tmp_path / "home"
    monkeypatch.setenv("ARREARS_HOME", str(path))
    monkeypatch.delenv("ARREARS_LEDGER_URL", raising=False)
    monkeypatch.delenv("ARREARS_MLFLOW_TRACKING_URI", raising=False)
    load_settings.cache_clear()
    yield path
    load_settings.cache_clear()


def _postgres_schema_url() -> tuple[str, str]:
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5) as con:
            con.execute(f"CREATE SCHEMA {schema}")
    except psycopg.OperationalError as exc:  # the production-profile tier needs the real server
        pytest.fail(f"PostgreSQL at {POSTGRES_ADMIN_URL} is not reachable: {exc}")
    sep = "&" if "?" in POSTGRES_ADMIN_URL else "?"
    return f"{POSTGRES_ADMIN_URL}{sep}options=-csearch_path%3D{schema}", schema


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty ledger on each backend: an embedded DuckDB file, and a new schema on the real Postgres."""
    if request.param == "duckdb":
        yield f"duckdb:///{tmp_path / 'ledger.duckdb'}"
        return
    import psycopg

    url, schema = _postgres_schema_url()
    yield url
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as con:
        con.execute(f"DROP SCHEMA {schema} CASCADE")


def write_delivery(folder: Path, **feeds: pd.DataFrame | str) -> Path:
    """Write feeds (a DataFrame, or raw CSV text to reproduce an export fault exactly) into a delivery folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in feeds.items():
        path = folder / (name if "." in name else f"{name}.csv")
        if isinstance(content, str):
            path.write_text(content)
        else:
            content.to_csv(path, index=False)
    return folder
