"""One small interface over the databases we run on: embedded DuckDB and SQLite (files) and PostgreSQL (a URL).

The ledger (`features.ledger`: DuckDB or Postgres), the Postgres offline store of snapshots
(`features.store.offline`) and the recorded worklist runs (`serving.runs.store`: SQLite or Postgres, because the
service reads them while a batch job writes) use it. SQL is written with `?` placeholders and kept to what all
understand. Nothing is opened until `connect()`.

Two helpers say once what the stores built on it repeat: `and_in` narrows a query to rows whose column is one of
some values (`AND column IN (?, …)`), and `open_store` opens a database, makes sure of a store's schema and yields
the store.
"""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol, TypeVar

import pandas as pd

# DuckDB (0.3 s to import) and psycopg (0.5 s) are imported when a database of their kind is opened: every command
# and the service import this module, and a process uses one or two of the three backends.


class DatabaseError(RuntimeError):
    """The database cannot be reached or used; the message says what to check."""


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def _marks(count: int) -> str:
    """`?, ?, ?`: `count` parameters of a statement."""
    return ", ".join("?" * count)


def and_in(sql: str, params: Sequence[object], column: str,
           values: Iterable[object] | str | None) -> tuple[str, list]:
    """`sql` (ending in a WHERE condition) and its `params`, narrowed to rows whose `column` is one of `values`:
    None narrows nothing, no values leave no row, a string is one value."""
    if values is None:
        return sql, list(params)
    values = [values] if isinstance(values, str) else list(values)
    if not values:
        return f"{sql} AND 1 = 0", list(params)
    return f"{sql} AND {column} IN ({_marks(len(values))})", [*params, *values]


class Database:
    """A connection to `duckdb:///path` or `postgresql://…`; use it as a context manager."""

    def __init__(self, url: str, read_only: bool = False) -> None:
        self.url, self.read_only = url, read_only
        self._con = None

    @property
    def backend(self) -> str:
        if is_postgres(self.url):
            return "postgres"
        return "sqlite" if self.url.startswith("sqlite:///") else "duckdb"

    def connect(self):
        if self._con is None:
            opener = {"duckdb": self._open_duckdb, "sqlite": self._open_sqlite, "postgres": self._open_postgres}
            self._con = opener[self.backend]()
        return self

    def _open_sqlite(self):
        path = Path(self.url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
        con.execute("PRAGMA journal_mode=WAL")  # readers (the service) never wait for the writer (a batch job)
        return con

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
        try:
            con.execute("SET enable_progress_bar = false")  # our CLI shows its own progress
        except duckdb.InvalidInputException:  # inside Jupyter without ipywidgets, DuckDB refuses the setting
            pass
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
        if self.backend in ("duckdb", "sqlite"):
            self._con.execute(sql, params or [])
            return
        with self._con.cursor() as cur:
            cur.execute(sql.replace("?", "%s"), params or None)

    def insert(self, table: str, row: dict[str, object]) -> None:
        """One row (column → value) into `table`."""
        self.execute(f"INSERT INTO {table} ({', '.join(row)}) VALUES ({_marks(len(row))})", list(row.values()))

    def query(self, sql: str, params: Sequence[object] | None = None) -> pd.DataFrame:
        if self.backend == "duckdb":
            return self._con.execute(sql, params or []).df()
        if self.backend == "sqlite":
            cursor = self._con.execute(sql, params or [])
            return pd.DataFrame(cursor.fetchall(), columns=[d[0] for d in cursor.description])
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
        self._con.execute("BEGIN IMMEDIATE" if self.backend == "sqlite" else "BEGIN TRANSACTION")
        try:
            yield self
        except BaseException:
            self._con.execute("ROLLBACK")
            raise
        self._con.execute("COMMIT")

    def ensure_tables(self, tables: dict[str, dict[str, str]], primary_keys: dict[str, Sequence[str]],
                      indexes: Sequence[str] = ()) -> None:
        """Create each table (column → SQL type) with its primary key, and the index statements, if missing; a
        table made by an earlier version gets the columns added since (empty for its rows)."""
        for table, columns in tables.items():
            cols = ", ".join(f"{name} {sqltype}" for name, sqltype in columns.items())
            self.execute(f"CREATE TABLE IF NOT EXISTS {table} ({cols}, PRIMARY KEY ({', '.join(primary_keys[table])}))")
            for name in [c for c in columns if c not in self.columns_of(table)]:
                # IF NOT EXISTS where the database has it: two processes upgrading one old table at once both pass
                # the check above, and the second's plain ADD COLUMN would fail (SQLite's writes are serialised)
                guard = "" if self.backend == "sqlite" else "IF NOT EXISTS "
                self.execute(f"ALTER TABLE {table} ADD COLUMN {guard}{name} {columns[name]}")
        for statement in indexes:
            self.execute(statement)

    def columns_of(self, table: str) -> list[str]:
        if self.backend == "sqlite":
            return self.query(f"SELECT name AS column_name FROM pragma_table_info('{table}')")["column_name"].tolist()
        schema = "" if self.backend == "duckdb" else " AND table_schema = current_schema()"
        found = self.query(f"SELECT column_name FROM information_schema.columns WHERE table_name = ?{schema}",
                           [table])
        return found["column_name"].tolist()

    def view_exists(self, name: str) -> bool:
        if self.backend == "sqlite":
            found = self.query("SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'view' AND name = ?", [name])
            return int(found["n"].iloc[0]) > 0
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
        elif self.backend == "sqlite":
            self._con.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({_marks(len(columns))})",
                                  _sqlite_rows(rows))
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
        """Make `frame` queryable as table `name` inside the block (DuckDB: registered; Postgres and SQLite: a
        temporary table of the given SQL `types`, emptied and filled)."""
        if self.backend == "duckdb":
            self._con.register(name, frame)
            try:
                yield name
            finally:
                self._con.unregister(name)
            return
        columns = ", ".join(f"{column} {(types or {}).get(column, 'TEXT')}" for column in frame.columns)
        self.execute(f"CREATE TEMP TABLE IF NOT EXISTS {name} ({columns})")
        self.execute(f"DELETE FROM {name}")
        self.append(name, frame, list(frame.columns))
        yield name


def _sqlite_rows(frame: pd.DataFrame) -> list[tuple]:
    """Rows as Python values SQLite stores: None for missing, ISO text for dates and timestamps."""
    out = pd.DataFrame(index=frame.index)
    for column in frame.columns:
        series = frame[column]
        if pd.api.types.is_datetime64_any_dtype(series):
            series = series.dt.strftime("%Y-%m-%dT%H:%M:%S").where(series.notna(), None)
        out[column] = series.astype(object).where(series.notna(), None)
    return list(out.itertuples(index=False, name=None))


def open_database(url: str, read_only: bool = False) -> Database:
    return Database(url, read_only).connect()


class Store(Protocol):
    """What `open_store` yields: something kept in one database that can make sure of its own tables."""

    def ensure_schema(self) -> None: ...


S = TypeVar("S", bound=Store)


#: (database, store) pairs whose schema this process has made sure of, for `open_store(..., once=True)`.
_SCHEMAS_MADE: set[tuple[str, str]] = set()


@contextmanager
def open_store(url: str, store: Callable[[Database], S], once: bool = False) -> Iterator[S]:
    """Open the database at `url` for the block and yield `store(db)`, its schema made sure of first: every time,
    or with `once` the first time in this process (for a store opened on every request: the door's sessions, the
    access log; the check is a few statements each time)."""
    key = (url, getattr(store, "__qualname__", repr(store)))
    with Database(url) as db:
        made = store(db)
        if not once or key not in _SCHEMAS_MADE:
            made.ensure_schema()
            _SCHEMAS_MADE.add(key)
        yield made
