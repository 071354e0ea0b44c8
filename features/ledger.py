"""The ledger: the one database every accepted feed row ends up in.

Embedded DuckDB by default (a file under `ARREARS_HOME`), PostgreSQL in the production profile (a
`postgresql://` URL). Both speak the same small interface, and the SQL is kept to what both understand.

Money is stored as integer pence (`amount_pence`) so that a balance is an exact sum, never a float drift.
Tenancies are a versioned register: a re-delivered tenancy whose content changed (a move-out date, a rent change)
is kept as a new version, never overwritten; `tenancy_register` is the latest version of each.
Transactions and events are immutable: the same id with different content is a conflict, decided by ingestion.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

#: Columns of each ledger table, in order, with portable SQL types.
TABLES: dict[str, dict[str, str]] = {
    "deliveries": {
        "delivery_seq": "BIGINT",
        "delivery_id": "TEXT",
        "source": "TEXT",
        "ingested_at": "TIMESTAMP",
        "summary_json": "TEXT",
    },
    "tenancies": {
        "tenancy_id": "TEXT",
        "content_hash": "TEXT",
        "delivery_seq": "BIGINT",
        "patch": "TEXT",
        "start_date": "DATE",
        "end_date": "DATE",
        "rent_amount_pence": "BIGINT",
        "rent_frequency": "TEXT",
        "property_id": "TEXT",
        "tenure_type": "TEXT",
        "benefit_type": "TEXT",
        "payment_method": "TEXT",
        "preferred_channel": "TEXT",
        "language": "TEXT",
        "vulnerable": "BOOLEAN",
        "age_band": "TEXT",
        "sex": "TEXT",
        "ethnicity": "TEXT",
        "disability": "TEXT",
    },
    "transactions": {
        "transaction_id": "TEXT",
        "content_hash": "TEXT",
        "delivery_seq": "BIGINT",
        "tenancy_id": "TEXT",
        "posted_date": "DATE",
        "type": "TEXT",
        "amount_pence": "BIGINT",
        "method": "TEXT",
        "reference": "TEXT",
    },
    "events": {
        "event_id": "TEXT",
        "content_hash": "TEXT",
        "delivery_seq": "BIGINT",
        "tenancy_id": "TEXT",
        "event_date": "DATE",
        "type": "TEXT",
        "amount_pence": "BIGINT",
        "note": "TEXT",
    },
    "quarantine": {
        "delivery_seq": "BIGINT",
        "feed": "TEXT",
        "file": "TEXT",
        "line": "BIGINT",
        "column_name": "TEXT",
        "value": "TEXT",
        "reason": "TEXT",
    },
    "outcomes": {
        "tenancy_id": "TEXT",
        "as_of_date": "DATE",
        "content_hash": "TEXT",
        "delivery_seq": "BIGINT",
        "outcome": "INTEGER",
    },
}

PRIMARY_KEYS: dict[str, tuple[str, ...]] = {
    "deliveries": ("delivery_seq",),
    "tenancies": ("tenancy_id", "content_hash"),
    "transactions": ("transaction_id",),
    "events": ("event_id",),
    "outcomes": ("tenancy_id", "as_of_date"),
    "quarantine": ("delivery_seq", "feed", "line", "column_name", "reason"),
}

#: The identity of a row within its feed (what makes two rows "the same row").
ROW_IDENTITY: dict[str, tuple[str, ...]] = {
    "tenancies": ("tenancy_id",),
    "transactions": ("transaction_id",),
    "events": ("event_id",),
    "outcomes": ("tenancy_id", "as_of_date"),
}

_INDEXES = (
    "CREATE INDEX IF NOT EXISTS transactions_tenancy ON transactions (tenancy_id, posted_date)",
    "CREATE INDEX IF NOT EXISTS events_tenancy ON events (tenancy_id, event_date)",
)

_REGISTER_VIEW = """
CREATE VIEW tenancy_register AS
SELECT t.* FROM tenancies t
JOIN (SELECT tenancy_id, MAX(delivery_seq) AS delivery_seq FROM tenancies GROUP BY tenancy_id) latest
  ON t.tenancy_id = latest.tenancy_id AND t.delivery_seq = latest.delivery_seq
"""


class LedgerError(RuntimeError):
    """The ledger cannot be reached or used; the message says what to check."""


@dataclass
class Ledger:
    """A connection to the ledger database. Use `open_ledger(url)` to get one."""

    url: str
    read_only: bool = False
    _con: object = None

    @property
    def backend(self) -> str:
        return "postgres" if self.url.startswith(("postgresql://", "postgres://")) else "duckdb"

    # -- connection ------------------------------------------------------------------------------------------
    def connect(self) -> Ledger:
        if self._con is not None:
            return self
        if self.backend == "duckdb":
            import duckdb

            path = Path(self.url.removeprefix("duckdb:///"))
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._con = duckdb.connect(str(path), read_only=self.read_only)
                self._con.execute("SET enable_progress_bar = false")  # our CLI shows its own progress
            except duckdb.IOException as exc:
                raise LedgerError(
                    f"Cannot open the ledger {path}: {exc}. Another arrears command may be writing to it; "
                    "wait for it to finish and try again."
                ) from exc
        else:
            import psycopg

            try:
                self._con = psycopg.connect(self.url, autocommit=True)
            except psycopg.OperationalError as exc:
                raise LedgerError(
                    f"Cannot connect to the Postgres ledger at {self.url}: {exc}. "
                    "Check ARREARS_LEDGER_URL and that the server is running."
                ) from exc
        if not self.read_only:
            self._ensure_schema()
        return self

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def __enter__(self) -> Ledger:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ensure_schema(self) -> None:
        for table, columns in TABLES.items():
            cols = ", ".join(f"{name} {sqltype}" for name, sqltype in columns.items())
            pk = ", ".join(PRIMARY_KEYS[table])
            self.execute(f"CREATE TABLE IF NOT EXISTS {table} ({cols}, PRIMARY KEY ({pk}))")
        for statement in _INDEXES:
            self.execute(statement)
        exists = self.query(
            "SELECT COUNT(*) AS n FROM information_schema.views WHERE table_name = 'tenancy_register'"
            if self.backend == "duckdb"
            else "SELECT COUNT(*) AS n FROM information_schema.views WHERE table_name = 'tenancy_register' "
            "AND table_schema = current_schema()"
        )
        if int(exists["n"].iloc[0]) == 0:
            self.execute(_REGISTER_VIEW)

    # -- primitives --------------------------------------------------------------------------------------------
    def execute(self, sql: str, params: Sequence[object] | None = None) -> None:
        if self.backend == "duckdb":
            self._con.execute(sql, params or [])
        else:
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
    def transaction(self) -> Iterator[Ledger]:
        """All-or-nothing: a failure (or a crash) inside leaves the ledger as it was."""
        if self.backend == "duckdb":
            self._con.execute("BEGIN TRANSACTION")
            try:
                yield self
            except BaseException:
                self._con.execute("ROLLBACK")
                raise
            self._con.execute("COMMIT")
        else:
            with self._con.transaction():
                yield self

    def insert(self, table: str, frame: pd.DataFrame) -> int:
        """Append rows (columns named as in TABLES; missing optional columns become NULL)."""
        if frame.empty:
            return 0
        columns = list(TABLES[table])
        rows = frame.reindex(columns=columns)
        if self.backend == "duckdb":
            self._con.register("_incoming", rows)
            try:
                self._con.execute(f"INSERT INTO {table} SELECT * FROM _incoming")
            finally:
                self._con.unregister("_incoming")
        else:
            buffer = io.StringIO()
            rows.to_csv(buffer, index=False, header=False, na_rep="\\N", date_format="%Y-%m-%d")
            buffer.seek(0)
            with self._con.cursor() as cur:
                with cur.copy(
                    f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv, NULL '\\N')"
                ) as copy:
                    copy.write(buffer.read())
        return len(rows)

    def known_hashes(self, table: str, keys: pd.DataFrame) -> pd.DataFrame:
        """The stored content hashes of the rows whose identity columns match `keys` (identity cols + hash)."""
        identity = list(ROW_IDENTITY[table])
        if keys.empty:
            return pd.DataFrame(columns=[*identity, "content_hash"])
        keys = keys[identity].drop_duplicates()
        join = " AND ".join(f"t.{c} = k.{c}" for c in identity)
        select = ", ".join(f"t.{c}" for c in identity)
        if self.backend == "duckdb":
            self._con.register("_keys", keys)
            try:
                return self.query(f"SELECT {select}, t.content_hash FROM {table} t JOIN _keys k ON {join}")
            finally:
                self._con.unregister("_keys")
        types = ", ".join(f"{c} {TABLES[table][c]}" for c in identity)
        self.execute(f"CREATE TEMP TABLE IF NOT EXISTS _keys_{table} ({types})")
        self.execute(f"TRUNCATE _keys_{table}")
        buffer = io.StringIO()
        keys.to_csv(buffer, index=False, header=False, date_format="%Y-%m-%d")
        with self._con.cursor() as cur:
            with cur.copy(f"COPY _keys_{table} ({', '.join(identity)}) FROM STDIN WITH (FORMAT csv)") as copy:
                copy.write(buffer.getvalue())
        return self.query(f"SELECT {select}, t.content_hash FROM {table} t JOIN _keys_{table} k ON {join}")

    def known_tenancy_ids(self, tenancy_ids: pd.Series) -> set[str]:
        found = self.known_hashes("tenancies", pd.DataFrame({"tenancy_id": tenancy_ids.dropna().unique()}))
        return set(found["tenancy_id"])

    def next_delivery_seq(self) -> int:
        return int(self.query("SELECT COALESCE(MAX(delivery_seq), 0) + 1 AS n FROM deliveries")["n"].iloc[0])

    # -- reads used by the feature build ---------------------------------------------------------------------
    def read_table(self, table: str, since_seq: int | None = None) -> pd.DataFrame:
        """A whole table (or the rows of deliveries after `since_seq`), with dates as pandas timestamps."""
        sql = f"SELECT * FROM {table}"
        params: list[object] = []
        if since_seq is not None and table != "tenancy_register":
            sql += " WHERE delivery_seq > ?"
            params.append(since_seq)
        return self._with_dates(table, self.query(sql, params))

    def read_for_tenancies(self, table: str, tenancy_ids: Sequence[str]) -> pd.DataFrame:
        """The rows of `table` (or the `tenancy_register` view) that belong to the given tenancies."""
        ids = pd.DataFrame({"tenancy_id": pd.Series(list(tenancy_ids), dtype=object).drop_duplicates()})
        if self.backend == "duckdb":
            self._con.register("_wanted", ids)
            try:
                frame = self.query(f"SELECT t.* FROM {table} t JOIN _wanted w USING (tenancy_id)")
            finally:
                self._con.unregister("_wanted")
        else:
            frame = self.query(f"SELECT * FROM {table} WHERE tenancy_id = ANY(?)", [ids["tenancy_id"].tolist()])
        return self._with_dates(table, frame)

    def touched_tenancies(self, since_seq: int) -> list[str]:
        """Tenancies with a register, transaction or event row delivered after delivery `since_seq`."""
        found = self.query(
            "SELECT tenancy_id FROM tenancies WHERE delivery_seq > ? UNION "
            "SELECT tenancy_id FROM transactions WHERE delivery_seq > ? UNION "
            "SELECT tenancy_id FROM events WHERE delivery_seq > ?", [since_seq] * 3)
        return sorted(found["tenancy_id"].astype(str))

    @staticmethod
    def _with_dates(table: str, frame: pd.DataFrame) -> pd.DataFrame:
        for column, sqltype in TABLES.get(table if table != "tenancy_register" else "tenancies", {}).items():
            if sqltype == "DATE" and column in frame:
                frame[column] = pd.to_datetime(frame[column])
        return frame

    def balances(self) -> pd.DataFrame:
        """Each tenancy's balance in pence: the signed sum of its accepted transactions."""
        return self.query(
            "SELECT tenancy_id, CAST(SUM(amount_pence) AS BIGINT) AS balance_pence FROM transactions GROUP BY tenancy_id "
            "ORDER BY tenancy_id"
        )

    def counts(self) -> dict[str, int]:
        return {
            table: int(self.query(f"SELECT COUNT(*) AS n FROM {table}")["n"].iloc[0])
            for table in ("tenancies", "transactions", "events", "outcomes", "deliveries")
        }

    def last_delivery_seq(self) -> int:
        return self.next_delivery_seq() - 1


def open_ledger(url: str, read_only: bool = False) -> Ledger:
    """Connect to the ledger. `read_only` lets several processes (Dask workers) read an embedded ledger at once."""
    return Ledger(url, read_only=read_only).connect()
