"""One small interface over the two databases we run on: embedded DuckDB (a file) and PostgreSQL (a URL).

The ledger (`features.ledger`) and the Postgres offline store of snapshots (`features.store.offline`) use it; SQL is
written with `?` placeholders and kept to what both understand. Nothing is opened until `connect()`.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pandas as pd


class DatabaseError(RuntimeError):
    """The database cannot be reached or used; the message says what to check."""


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


class Database:
    """A connection to `duckdb:///path` or `postgresql://…`; use it as a context manager."""

    def __init__(self, url: str, read_only: bool = False) -> None:
        self.url, self.read_only = url, read_only
        self._con = None

    @property
    def backend(self) -> str:
        return "postgres" if is_postgres(self.url) else "duckdb"

    def connect(self):
        if self._con is None:
            self._con = self._open_duckdb() if self.backend == "duckdb" else self._open_postgres()
        return self

    def _open_duckdb(self):
        import duckdb

        path = Path(self.url.removeprefix("duckdb:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            con = duckdb.connect(str(path), read_only=self.read_only)
        except duckdb.IOException as exc:
            raise DatabaseError(
                f"Cannot open {path}: {exc}. Another arrears command may be writing to it; wait for it to finish "
                "and try again.") from exc
        con.execute("SET enable_progress_bar = false")  # our CLI shows its own progress
        return con

    def _open_postgres(self):
        import psycopg

        try:
            return psycopg.connect(self.url, autocommit=True)
        except psycopg.OperationalError as exc:
            raise DatabaseError(f"Cannot connect to Postgres at {self.url}: {exc}. Check the URL and that the "
                                "server is running.") from exc

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def __enter__(self):
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- statements ------------------------------------------------------------------------------------------
    def execute(self, sql: str, params: Sequence[object] | None = None) -> None:
        if self.backend == "duckdb":
            self._con.execute(sql, params or [])
            return
        with self._con.cursor() as cur:
            cur.execute(sql.replace("?", "%s"), params or None)

    def query(self, sql: str, params: Sequence[object] | None = None) -> pd.DataFrame:
        if self.backend == "duckdb":
            return self._con.execute(sql, params or []).df()
        with self._con.cursor() as cur:
            cur.execute(sql.replace("?", "%s"), params or None)
            rows = cur.fetchall()
            columns = [d.name for d in cur.description]
        return pd.DataFrame(rows, columns=columns)

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """All-or-nothing: a failure (or a crash) inside leaves the database as it was."""
        if self.backend == "postgres":
            with self._con.transaction():
                yield self
            return
        self._con.execute("BEGIN TRANSACTION")
        try:
            yield self
        except BaseException:
            self._con.execute("ROLLBACK")
            raise
        self._con.execute("COMMIT")

    def view_exists(self, name: str) -> bool:
        schema = "" if self.backend == "duckdb" else " AND table_schema = current_schema()"
        found = self.query(f"SELECT COUNT(*) AS n FROM information_schema.views WHERE table_name = ?{schema}", [name])
        return int(found["n"].iloc[0]) > 0

    # -- bulk data -------------------------------------------------------------------------------------------
    def append(self, table: str, frame: pd.DataFrame, columns: Sequence[str]) -> int:
        """Append `frame`'s `columns` (in that order; missing ones NULL) to `table` in one bulk statement."""
        if frame.empty:
            return 0
        rows = frame.reindex(columns=list(columns))
        if self.backend == "duckdb":
            with self.frame_as_table("_incoming", rows):
                self._con.execute(f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM _incoming")
        else:
            self._copy(table, rows)
        return len(rows)

    def _copy(self, table: str, rows: pd.DataFrame) -> None:
        """Postgres COPY from CSV: dates as ISO days, NULL as \\N (timestamps: format them as text first)."""
        buffer = io.StringIO()
        rows.to_csv(buffer, index=False, header=False, na_rep="\\N", date_format="%Y-%m-%d")
        with self._con.cursor() as cur, cur.copy(
                f"COPY {table} ({', '.join(rows.columns)}) FROM STDIN WITH (FORMAT csv, NULL '\\N')") as copy:
            copy.write(buffer.getvalue())

    @contextmanager
    def frame_as_table(self, name: str, frame: pd.DataFrame, types: dict[str, str] | None = None) -> Iterator[str]:
        """Make `frame` queryable as table `name` inside the block (DuckDB: registered; Postgres: a temporary table
        of the given SQL `types`, filled by COPY)."""
        if self.backend == "duckdb":
            self._con.register(name, frame)
            try:
                yield name
            finally:
                self._con.unregister(name)
            return
        columns = ", ".join(f"{column} {(types or {}).get(column, 'TEXT')}" for column in frame.columns)
        self.execute(f"CREATE TEMP TABLE IF NOT EXISTS {name} ({columns})")
        self.execute(f"TRUNCATE {name}")
        self._copy(name, frame)
        yield name


def open_database(url: str, read_only: bool = False) -> Database:
    return Database(url, read_only).connect()
