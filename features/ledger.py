"""The ledger: the one database every accepted feed row ends up in.

Embedded DuckDB by default (a file under `ARREARS_HOME`), PostgreSQL in the production profile (a
`postgresql://` URL), both through `features.db.Database`.

The feed tables are derived from the feed contract (`features.feeds.contract`): each column's ledger name and SQL
type come from its `Column`, so a new feed column needs no edit here. Money is stored as integer pence
(`amount_pence`) so that a balance is an exact sum, never a float drift. Tenancies are a versioned register: a
re-delivered tenancy whose content changed (a move-out date, a rent change) is kept as a new version, never
overwritten; `tenancy_register` is the latest version of each (receipts in suspense likewise: `suspense_register`,
each receipt open or as cleared). Transactions and events are immutable: the same id
with different content is a conflict, decided by ingestion. The register's protected characteristics
(`MONITORING_ONLY_COLUMNS`) are never ledger columns: they are kept apart (`features.protected`).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from features.db import Database
from features.feeds.contract import FEEDS, MONITORING_ONLY_COLUMNS, FeedSpec
from features.feeds.rules import content_hash


def feed_table(spec: FeedSpec) -> dict[str, str]:
    """A feed's ledger table: its key, the row's content hash and delivery, then every other column (SQL types)
    except the protected characteristics, which are kept apart (`features.protected`)."""
    columns = {c.ledger_name: c.sql_type for c in spec.schema if c.name not in MONITORING_ONLY_COLUMNS}
    table = {name: columns[name] for name in spec.key}
    table |= {"content_hash": "TEXT", "delivery_seq": "BIGINT"}
    return table | {name: sql for name, sql in columns.items() if name not in table}


#: Columns of each ledger table, in order, with portable SQL types.
TABLES: dict[str, dict[str, str]] = {
    "deliveries": {"delivery_seq": "BIGINT", "delivery_id": "TEXT", "source": "TEXT", "ingested_at": "TIMESTAMP",
                   "summary_json": "TEXT", "fingerprint": "TEXT"},
    **{name: feed_table(spec) for name, spec in FEEDS.items()},
    "quarantine": {"delivery_seq": "BIGINT", "feed": "TEXT", "file": "TEXT", "line": "BIGINT", "column_name": "TEXT",
                   "value": "TEXT", "reason": "TEXT"},
    "ledger_meta": {"name": "TEXT", "value": "TEXT"},
}

PRIMARY_KEYS: dict[str, tuple[str, ...]] = {
    "deliveries": ("delivery_seq",),
    **{name: (*spec.key, "content_hash") if spec.versioned else spec.key for name, spec in FEEDS.items()},
    "quarantine": ("delivery_seq", "feed", "line", "column_name", "reason"),
    "ledger_meta": ("name",),
}

#: How rows' content hashes are computed (`features.feeds.rules.content_hash`); a ledger holding an older format
#: has its hashes recomputed from its rows when it is first opened for writing. Format 1 hashed in pandas; format 3
#: leaves the protected characteristics out (a digest over them and the register's other columns would tell them to
#: anyone who can read the register and try the few values each has).
HASH_FORMAT = "3"

#: The identity of a row within its feed (what makes two rows "the same row").
ROW_IDENTITY: dict[str, tuple[str, ...]] = {name: spec.key for name, spec in FEEDS.items()}

_INDEXES = (
    "CREATE INDEX IF NOT EXISTS transactions_tenancy ON transactions (tenancy_id, posted_date)",
    "CREATE INDEX IF NOT EXISTS events_tenancy ON events (tenancy_id, event_date)",
)


def current_view(view: str, spec: FeedSpec) -> str:
    """The SQL creating `view`: the latest-delivered version of each row of a versioned feed."""
    key = ", ".join(spec.key)
    on = " AND ".join(f"t.{k} = latest.{k}" for k in (*spec.key, "delivery_seq"))
    return (f"CREATE VIEW {view} AS\nSELECT t.* FROM {spec.name} t\n"
            f"JOIN (SELECT {key}, MAX(delivery_seq) AS delivery_seq FROM {spec.name} GROUP BY {key}) latest\n"
            f"  ON {on}\n")


#: The current version of each versioned feed's rows: the tenancy register (each tenancy as last delivered) and the
#: receipts in suspense as last delivered (open, or cleared to a tenancy). View name → feed.
CURRENT_VIEWS: dict[str, str] = {"tenancy_register": "tenancies", "suspense_register": "suspense"}
_VIEW_SQL = {view: current_view(view, FEEDS[feed]) for view, feed in CURRENT_VIEWS.items()}
_REGISTER_VIEW = _VIEW_SQL["tenancy_register"]

class Ledger(Database):
    """The ledger database. Use `open_ledger(url)` to get one; its tables are created on first write access."""

    def connect(self) -> Ledger:
        fresh = self._con is None
        super().connect()
        if fresh and not self.read_only:
            self._ensure_schema()
        return self

    def _ensure_schema(self) -> None:
        """Create the tables, or bring a ledger made by an earlier contract version up to this one: columns the
        contract added since are appended (empty for the rows already there), and the register view follows."""
        new = not self.columns_of("deliveries")
        added = False
        for table, columns in TABLES.items():
            cols = ", ".join(f"{name} {sqltype}" for name, sqltype in columns.items())
            self.execute(f"CREATE TABLE IF NOT EXISTS {table} ({cols}{self._key_clause(table)})")
            for name in [c for c in columns if c not in self.columns_of(table)]:
                self.execute(f"ALTER TABLE {table} ADD COLUMN {name} {columns[name]}")
                added = True
        if self.backend != "duckdb":
            for statement in _INDEXES:
                self.execute(statement)
        for view, sql in _VIEW_SQL.items():
            if added and self.view_exists(view):
                self.execute(f"DROP VIEW {view}")
            if not self.view_exists(view):
                self.execute(sql)
        if new:
            self.execute("INSERT INTO ledger_meta VALUES ('hash_format', ?)", [HASH_FORMAT])
        elif self._meta("hash_format") != HASH_FORMAT:
            self._rehash()

    def _key_clause(self, table: str) -> str:
        """Feed tables' keys are enforced by ingestion (it checks every key against the delivery and the ledger);
        on DuckDB they carry no index, which would make a large append about three times slower (bench/)."""
        if self.backend == "duckdb" and table in FEEDS:
            return ""
        return f", PRIMARY KEY ({', '.join(PRIMARY_KEYS[table])})"

    def _meta(self, name: str) -> str | None:
        found = self.query("SELECT value FROM ledger_meta WHERE name = ?", [name])
        return None if found.empty else str(found["value"].iloc[0])

    def _rehash(self) -> None:
        """Recompute every row's content hash in this format, from the row itself (the ledger stores exactly the
        typed values a hash is computed from), so re-sent rows are still recognised. On DuckDB each feed table is
        rebuilt (which also drops the keys' indexes a ledger made before carried)."""
        with self.transaction():
            for view in _VIEW_SQL:
                self.execute(f"DROP VIEW IF EXISTS {view}")
            if self.backend == "duckdb":
                for index in ("transactions_tenancy", "events_tenancy"):
                    self.execute(f"DROP INDEX IF EXISTS {index}")
            for name, spec in FEEDS.items():
                if spec.versioned:  # versions that differed only in what the hash no longer reads: the latest stays
                    key = ", ".join(spec.key)
                    self.execute(f"DELETE FROM {name} WHERE ({key}, delivery_seq) IN (SELECT {key}, delivery_seq FROM "
                                 f"(SELECT {key}, delivery_seq, row_number() OVER (PARTITION BY {key}, "
                                 f"{content_hash(spec)} ORDER BY delivery_seq DESC) AS k FROM {name}) v WHERE k > 1)")
                if self.backend == "duckdb":
                    self.execute(f"CREATE TABLE _rehashed AS SELECT * REPLACE ({content_hash(spec)} AS content_hash) "
                                 f"FROM {name}")
                    self.execute(f"DROP TABLE {name}")
                    self.execute(f"ALTER TABLE _rehashed RENAME TO {name}")
                else:
                    self.execute(f"UPDATE {name} SET content_hash = {content_hash(spec)}")
            for sql in _VIEW_SQL.values():
                self.execute(sql)
            self.execute("DELETE FROM ledger_meta WHERE name = 'hash_format'")
            self.execute("INSERT INTO ledger_meta VALUES ('hash_format', ?)", [HASH_FORMAT])

    def protected_columns(self) -> list[str]:
        """The protected characteristics a ledger made before they were kept apart still holds as register columns
        (`features.protected.move_from_ledger` moves them out)."""
        held = self.columns_of("tenancies")
        return [c for c in MONITORING_ONLY_COLUMNS if c in held]

    def drop_protected_columns(self) -> None:
        """Drop those columns (on DuckDB the table is rebuilt without them), the register view following."""
        held = self.protected_columns()
        if not held:
            return
        with self.transaction():
            self.execute("DROP VIEW IF EXISTS tenancy_register")
            if self.backend == "duckdb":
                self.execute(f"CREATE TABLE _kept AS SELECT * EXCLUDE ({', '.join(held)}) FROM tenancies")
                self.execute("DROP TABLE tenancies")
                self.execute("ALTER TABLE _kept RENAME TO tenancies")
            else:
                for column in held:
                    self.execute(f"ALTER TABLE tenancies DROP COLUMN {column}")
            self.execute(_REGISTER_VIEW)

    def duckdb_connection(self):
        """The DuckDB connection itself, for ingestion's SQL over a whole delivery (embedded ledgers only)."""
        if self.backend != "duckdb":
            raise TypeError(f"a {self.backend} ledger has no DuckDB connection")
        return self.connect()._con

    def insert(self, table: str, frame: pd.DataFrame) -> int:
        """Append rows (columns named as in TABLES; missing optional columns become NULL)."""
        return self.append(table, frame, list(TABLES[table]))

    # -- what ingestion asks -------------------------------------------------------------------------------------
    def known_hashes(self, table: str, keys: pd.DataFrame) -> pd.DataFrame:
        """The stored content hashes of the rows whose identity columns match `keys` (identity cols + hash)."""
        identity = list(ROW_IDENTITY[table])
        if keys.empty:
            return pd.DataFrame(columns=[*identity, "content_hash"])
        keys = keys[identity].drop_duplicates()
        join = " AND ".join(f"t.{c} = k.{c}" for c in identity)
        select = ", ".join(f"t.{c}" for c in identity)
        with self.frame_as_table(f"_keys_{table}", keys, TABLES[table]) as wanted:
            return self.query(f"SELECT {select}, t.content_hash FROM {table} t JOIN {wanted} k ON {join}")

    def known_tenancy_ids(self, tenancy_ids: pd.Series) -> set[str]:
        found = self.known_hashes("tenancies", pd.DataFrame({"tenancy_id": tenancy_ids.dropna().unique()}))
        return set(found["tenancy_id"])

    def latest_delivery(self) -> dict | None:
        """The last delivery recorded (seq, id, summary_json, fingerprint), or None."""
        found = self.query("SELECT * FROM deliveries ORDER BY delivery_seq DESC LIMIT 1")
        return None if found.empty else found.iloc[0].to_dict()

    def quarantined(self, delivery_seq: int, feed: str) -> pd.DataFrame:
        """One delivery's quarantine rows of one feed, by line."""
        return self.query("SELECT delivery_seq, feed, file, line, column_name, value, reason FROM quarantine "
                          "WHERE delivery_seq = ? AND feed = ? ORDER BY line, column_name, reason",
                          [delivery_seq, feed])

    def next_delivery_seq(self) -> int:
        return int(self.query("SELECT COALESCE(MAX(delivery_seq), 0) + 1 AS n FROM deliveries")["n"].iloc[0])

    def last_delivery_seq(self) -> int:
        return self.next_delivery_seq() - 1

    # -- what the feature build reads --------------------------------------------------------------------------
    def read_table(self, table: str, since_seq: int | None = None) -> pd.DataFrame:
        """A whole table (or the rows of deliveries after `since_seq`), with dates as pandas timestamps."""
        sql = f"SELECT * FROM {table}"
        params: list[object] = []
        if since_seq is not None and table not in CURRENT_VIEWS:
            sql += " WHERE delivery_seq > ?"
            params.append(since_seq)
        return self._with_dates(table, self.query(sql, params))

    def read_for_tenancies(self, table: str, tenancy_ids: Sequence[str]) -> pd.DataFrame:
        """The rows of `table` (or the `tenancy_register` view) that belong to the given tenancies."""
        ids = pd.Series(list(tenancy_ids), dtype=object).drop_duplicates()
        if self.backend == "postgres":
            return self._with_dates(table, self.query(f"SELECT * FROM {table} WHERE tenancy_id = ANY(?)",
                                                      [ids.tolist()]))
        with self.frame_as_table("_wanted", pd.DataFrame({"tenancy_id": ids})) as wanted:
            return self._with_dates(table, self.query(f"SELECT t.* FROM {table} t JOIN {wanted} w USING (tenancy_id)"))

    def touched_tenancies(self, since_seq: int) -> list[str]:
        """Tenancies with a register, transaction or event row delivered after delivery `since_seq`."""
        found = self.query(
            "SELECT tenancy_id FROM tenancies WHERE delivery_seq > ? UNION "
            "SELECT tenancy_id FROM transactions WHERE delivery_seq > ? UNION "
            "SELECT tenancy_id FROM events WHERE delivery_seq > ?", [since_seq] * 3)
        return sorted(found["tenancy_id"].astype(str))

    @staticmethod
    def _with_dates(table: str, frame: pd.DataFrame) -> pd.DataFrame:
        for column, sqltype in TABLES.get(CURRENT_VIEWS.get(table, table), {}).items():
            if sqltype == "DATE" and column in frame:
                frame[column] = pd.to_datetime(frame[column])
        return frame

    def balances(self) -> pd.DataFrame:
        """Each tenancy's balance in pence: the signed sum of its accepted transactions."""
        return self.query(
            "SELECT tenancy_id, CAST(SUM(amount_pence) AS BIGINT) AS balance_pence FROM transactions "
            "GROUP BY tenancy_id ORDER BY tenancy_id")

    def counts(self) -> dict[str, int]:
        return {
            table: int(self.query(f"SELECT COUNT(*) AS n FROM {table}")["n"].iloc[0])
            for table in ("tenancies", "transactions", "events", "outcomes", "deliveries")
        }


def open_ledger(url: str, read_only: bool = False) -> Ledger:
    """Connect to the ledger. `read_only` lets several processes (Dask workers) read an embedded ledger at once."""
    return Ledger(url, read_only=read_only).connect()


def register_attributes(url: str, tenancy_ids: Sequence[str], columns: Sequence[str]) -> pd.DataFrame:
    """tenancy_id and those of `columns` the tenancy register holds with any value, for the given tenancies. The
    groups bias checks cut by come through `features.protected.monitoring_attributes`, which adds the protected
    characteristics (never register columns). Never a model's input."""
    with open_ledger(url, read_only=True) as ledger:
        register = ledger.read_table("tenancy_register")
    present = [c for c in columns if c in register and register[c].notna().any()]
    return register.loc[register["tenancy_id"].isin(set(tenancy_ids)), ["tenancy_id", *present]]
