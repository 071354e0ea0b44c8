"""Ingest one delivery (a folder of feed files) into the ledger, losing nothing.

Every row read ends in exactly one place: accepted into the ledger, counted as a duplicate (a re-sent row with the
same id and content), or quarantined with a reason (one quarantine row per problem, with file, line, column and
value). `read == accepted + duplicate + quarantined` for every feed, every time.

A delivery that cannot be read at all (unknown file, missing required column, wrong delimiter, empty file) is
refused whole with `DeliveryRefused`, and nothing is written. Everything else happens in one database
transaction, so a crash part-way leaves the ledger as it was.

The register's protected characteristics (`contract.MONITORING_ONLY_COLUMNS`) never enter the ledger: each
tenancy's values, from the rows that are its current register version, go to their own store
(`features.protected`), written just before the ledger commits (a delivery that fails after leaves its values there,
the same ones it writes when it is run again). A ledger that still holds them as columns has them moved out first.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa

from features.crash import crash_point
from features.feeds import contract, rules
from features.ledger import TABLES, Ledger
from features.protected import move_from_ledger, open_protected
from features.settings import FeatureSettings, default_protected_url

# DuckDB (0.3 s to import) is imported where a delivery is read: the CLI imports this module for every command.

SUFFIXES = (".csv", ".parquet")

QUARANTINE_COLUMNS = ["delivery_seq", "feed", "file", "line", "column", "value", "reason"]


class DeliveryRefused(ValueError):
    """The delivery cannot be read at all; nothing was written. The message says what to fix."""


@dataclass
class FeedSummary:
    feed: str
    file: str
    read: int = 0
    accepted: int = 0
    duplicate: int = 0
    quarantined: int = 0
    quarantine_file: str | None = None
    ignored_columns: list[str] = field(default_factory=list)

    @property
    def reconciles(self) -> bool:
        return self.read == self.accepted + self.duplicate + self.quarantined


@dataclass
class IngestSummary:
    delivery: str
    delivery_seq: int
    feeds: dict[str, FeedSummary]
    #: The same files were the ledger's last delivery (an ingest run again, e.g. after a crash): nothing new
    #: was recorded; this is that delivery's summary.
    already_ingested: bool = False

    def to_dict(self) -> dict[str, object]:
        return {
            "delivery": self.delivery,
            "delivery_seq": self.delivery_seq,
            "feeds": {name: asdict(summary) for name, summary in self.feeds.items()},
            "already_ingested": self.already_ingested,
        }

    @classmethod
    def recorded(cls, record: dict) -> IngestSummary:
        """The summary a delivery was recorded with (the ledger's deliveries row)."""
        stored = json.loads(record["summary_json"])
        return cls(stored["delivery"], int(record["delivery_seq"]),
                   {name: FeedSummary(**feed) for name, feed in stored["feeds"].items()}, already_ingested=True)


# -- reading ---------------------------------------------------------------------------------------------------


def discover_feeds(delivery_dir: Path) -> dict[str, Path]:
    """Map feed name → file, refusing anything that is not a known feed."""
    if not delivery_dir.is_dir():
        raise DeliveryRefused(f"{delivery_dir} is not a folder: a delivery is a folder of feed files.")
    files = sorted(p for p in delivery_dir.iterdir() if not p.name.startswith("."))
    if not files:
        raise DeliveryRefused(f"{delivery_dir} is empty: expected at least transactions.csv (see docs/feeds.md).")
    found: dict[str, Path] = {}
    for path in files:
        name = path.name.lower()
        suffix = next((s for s in SUFFIXES if name.endswith(s)), None)
        feed = name[: -len(suffix)] if suffix else None
        if feed not in contract.FEEDS:
            raise DeliveryRefused(
                f"unknown feed file {path.name}: a delivery may only hold "
                f"{', '.join(f + '.csv' for f in contract.FEEDS)} (or .parquet). Move other files elsewhere."
            )
        if feed in found:
            raise DeliveryRefused(f"two files for the {feed} feed ({found[feed].name}, {path.name}): keep one.")
        found[feed] = path
    return found


@dataclass(frozen=True)
class Clock:
    """What "today" is for a delivery, and how far past it a date may be (a posting system a day ahead of ours)."""

    today: date
    tolerance_days: int = 1

    @property
    def latest(self) -> pd.Timestamp:
        return pd.Timestamp(self.today) + pd.Timedelta(days=self.tolerance_days)


def clock_for(settings: FeatureSettings) -> Clock:
    """Today as the settings say (`ARREARS_TODAY`, default the system date) and the tolerance past it."""
    return Clock(settings.today or date.today(), settings.future_tolerance_days)


def delivery_fingerprint(files: dict[str, Path], clock: Clock) -> str:
    """What identifies a delivery's content: every file's name and bytes, and the day it is judged against (a
    row quarantined as future-dated may be accepted on a later day)."""
    digest = hashlib.sha256(f"arrears-delivery-1|{clock.today:%Y-%m-%d}".encode())
    for feed in sorted(files):
        digest.update(f"|{feed}|{files[feed].name}|".encode())
        with files[feed].open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


# -- the workspace: where a delivery is read and checked ---------------------------------------------------------


class _Workspace:
    """A DuckDB connection in which a delivery's files are read, typed and checked in SQL, in bounded memory.

    On an embedded ledger it is the ledger's own connection (its tables are joined directly and accepted rows are
    inserted with one statement); on Postgres it is a private in-memory DuckDB, and what the checks need from the
    ledger (its tenancy ids, the stored hashes of the keys delivered) is copied in, accepted rows copied out.
    """

    def __init__(self, ledger: Ledger, memory_limit: str, spill_dir: Path) -> None:
        import duckdb

        self.ledger = ledger
        self.shared = ledger.backend == "duckdb"
        self.con = ledger.duckdb_connection() if self.shared else duckdb.connect()
        self._tables: list[str] = []
        self._restore = self.run("SELECT current_setting('memory_limit')")[0][0]
        self.run(f"SET memory_limit = {rules.lit(memory_limit)}")
        self.run("SET preserve_insertion_order = true")  # row_number() OVER () numbers a file's rows in order
        if not self.shared:
            spill_dir.mkdir(parents=True, exist_ok=True)
            self.run(f"SET temp_directory = {rules.lit(str(spill_dir))}")
            self.run("SET enable_progress_bar = false")

    def temp_table(self, name: str, sql: str) -> str:
        self.run(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}")
        self._tables.append(name)
        return name

    def run(self, sql: str) -> list[tuple]:
        """Run a statement to completion (DuckDB keeps a connection busy until its result is read)."""
        return self.con.execute(sql).fetchall()

    def scalar(self, sql: str) -> int:
        return int(self.run(sql)[0][0] or 0)

    def known_tenancies(self) -> str:
        """A relation of every tenancy id the ledger holds (this delivery's accepted tenancies included)."""
        if self.shared:
            return "(SELECT tenancy_id FROM tenancies)"
        found = self.ledger.query("SELECT DISTINCT tenancy_id FROM tenancies")
        return self._load("_known_tenancies", found.astype({"tenancy_id": "string"}))

    def stored(self, feed: str, keys_sql: str) -> str:
        """A relation of (key…, content_hash) of the ledger rows whose keys are among `keys_sql`'s (from Postgres,
        asked in batches of keys, so a delivery of any size is never held whole in Python)."""
        if self.shared:
            return feed
        keys = self.temp_table(f"_keys_{feed}", keys_sql)
        stored = self.temp_table(f"_stored_{feed}", f"SELECT *, '' AS content_hash FROM {keys} WHERE false")
        for start in range(0, self.scalar(f"SELECT count(*) FROM {keys}"), _BATCH_ROWS):
            batch = self.con.execute(f"SELECT * FROM {keys} WHERE rowid >= {start} AND rowid < "
                                     f"{start + _BATCH_ROWS}").df()
            found = self.ledger.known_hashes(feed, batch)
            if not found.empty:
                self._with_frame(found, lambda frame: self.run(f"INSERT INTO {stored} BY NAME SELECT * FROM {frame}"))
        return stored

    def _load(self, name: str, frame: pd.DataFrame) -> str:
        return self._with_frame(frame, lambda registered: self.temp_table(name, f"SELECT * FROM {registered}"))

    def _with_frame(self, frame: pd.DataFrame, use):
        """`use(name)` with `frame` queryable as `name` in the workspace."""
        self.con.register("_frame", frame)
        try:
            return use("_frame")
        finally:
            self.con.unregister("_frame")

    def insert(self, table: str, columns: list[str], select_sql: str) -> int:
        """Append `select_sql`'s rows (named `columns`) to the ledger's `table`."""
        if self.shared:
            return self.scalar(f"INSERT INTO {table} ({', '.join(columns)}) {select_sql}")
        inserted = 0
        for batch in self.con.execute(select_sql).to_arrow_reader(_BATCH_ROWS):
            frame = batch.to_pandas(types_mapper=_NULLABLE.get)
            frame.columns = columns  # by position: the select's own names may be expressions
            inserted += self.ledger.append(table, frame, columns)
        return inserted

    def close(self) -> None:
        for name in reversed(self._tables):
            self.run(f"DROP TABLE IF EXISTS {name}")
        self.run(f"SET memory_limit = {rules.lit(self._restore)}")
        if not self.shared:
            self.con.close()


#: Rows per batch copied out of the workspace into a Postgres ledger.
_BATCH_ROWS = 250_000
#: Integers and flags stay integers and flags with missing values (not floats) on their way to Postgres.
_NULLABLE = {pa.int64(): pd.Int64Dtype(), pa.int32(): pd.Int32Dtype(), pa.bool_(): pd.BooleanDtype()}


# -- reading ---------------------------------------------------------------------------------------------------


def _csv_header(path: Path) -> list[str]:
    """The header row's names, as read by Python's csv module (quotes, BOM)."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            header = next(csv.reader(handle), None)
    except UnicodeDecodeError as exc:
        raise DeliveryRefused(f"{path.name} cannot be read as UTF-8 CSV ({exc}); re-export it as UTF-8 CSV.") from exc
    if not header:
        raise DeliveryRefused(f"{path.name} has no header row: re-export it with column names.")
    return header


def _source(ws: _Workspace, path: Path) -> tuple[str, list[str], int]:
    """The SQL that reads a feed file as text columns c0, c1, …, its column names, and the line of its first row."""
    if path.suffix.lower() == ".parquet":
        names = [str(row[0]) for row in ws.con.execute(
            f"DESCRIBE SELECT * FROM read_parquet({rules.lit(str(path))})").fetchall()]
        quoted = ['"' + n.replace('"', '""') + '"' for n in names]
        columns = ", ".join(f"CAST({n} AS VARCHAR) AS c{i}" for i, n in enumerate(quoted))
        return f"(SELECT {columns} FROM read_parquet({rules.lit(str(path))}))", names, 1
    names = _csv_header(path)
    columns = "{" + ", ".join(f"'c{i}': 'VARCHAR'" for i in range(len(names))) + "}"
    reader = (f"read_csv({rules.lit(str(path))}, header = true, auto_detect = false, columns = {columns}, "
              "delim = ',', quote = '\"', escape = '\"', null_padding = true, encoding = 'utf-8')")
    return reader, names, 2


def _columns(path: Path, spec: contract.FeedSpec, names: list[str]) -> tuple[dict[str, str], list[str]]:
    """Each contract column's source column (absent ones NULL), and the ignored extra columns."""
    found = [str(n).strip().lower() for n in names]
    missing = [c for c in spec.required if c not in found]
    if missing:
        if len(found) == 1 and any(sep in found[0] for sep in (";", "\t", "|")):
            sep = next(s for s in (";", "\t", "|") if s in found[0])
            raise DeliveryRefused(
                f"{path.name} looks {sep!r}-delimited: export it comma-separated (the contract is CSV with commas)."
            )
        raise DeliveryRefused(
            f"{path.name} lacks required column(s) {', '.join(missing)}; "
            f"the {spec.name} feed needs {', '.join(spec.required)} (see docs/feeds.md)."
        )
    source = {c: f"c{found.index(c)}" if c in found else "CAST(NULL AS VARCHAR)" for c in spec.columns}
    return source, [c for c in found if c not in spec.columns]


# -- typing and checking, in SQL -------------------------------------------------------------------------------


def _entry(column: str, reason_sql: str) -> str:
    return f"{{'column_name': {rules.lit(column)}, 'value': coalesce(r_{column}, ''), 'reason': {reason_sql}}}"


def _problems_sql(feed: str, spec: contract.FeedSpec, has_future: bool) -> str:
    """Every problem of a row as a list of (column, raw value, reason); NULL for a row with none. Domain rules are
    checked only where every column could be read."""
    column_entries = [_entry(c.name, f"e_{c.name}") for c in spec.schema]
    any_column = [f"e_{c.name} IS NOT NULL" for c in spec.schema]
    if has_future:
        column_entries.append(_entry(rules.HAPPENED_ON[feed], "e__future"))
        any_column.append("e__future IS NOT NULL")
    sql = (f"CASE WHEN {' OR '.join(any_column)} THEN "
           f"list_filter([{', '.join(column_entries)}], lambda p: p.reason IS NOT NULL)")
    domain = rules.DOMAIN_RULES.get(feed, ())
    if domain:
        entries = [_entry(column, f"CASE WHEN {fails} THEN {rules.lit(why)} END") for column, fails, why in domain]
        sql += (f" WHEN {' OR '.join(f'({fails})' for _, fails, _ in domain)} THEN "
                f"list_filter([{', '.join(entries)}], lambda p: p.reason IS NOT NULL)")
    return sql + " END"


def _stage_sql(feed: str, spec: contract.FeedSpec, source: str, columns: dict[str, str], clock: Clock,
               width: int) -> str:
    """One pass over the file: raw text → trimmed (where needed) → typed → reasons → the staged row (typed values
    in ledger names, content hash, problems, and the raw text of the key columns where trimming changed it)."""
    raw = ", ".join(f"{columns[c.name]} AS r_{c.name}" for c in spec.schema)
    trimmed = ", ".join(f"{rules.trimmed(c.name)} AS s_{c.name}" for c in spec.schema)
    values = ", ".join(f"{rules.value(c)} AS v_{c.name}" for c in spec.schema)
    reasons = [f"{rules.reason(c)} AS e_{c.name}" for c in spec.schema]
    future = rules.future_reason(feed, f"{clock.latest:%Y-%m-%d}", f"{clock.today:%Y-%m-%d}", clock.tolerance_days)
    if future:
        reasons.append(f"{future} AS e__future")
    by_ledger_name = {c.ledger_name: f"v_{c.name}" for c in spec.schema}
    quoted = sorted({spec.key[0], contract.TENANCY_REFERENCE.get(feed, spec.key[0])})
    final = ["n__raw AS raw_hash", *(f"v_{c.name} AS {c.ledger_name}" for c in spec.schema)]
    final.append(f"{rules.content_hash(spec, by_ledger_name.__getitem__)} AS content_hash")
    final += [f"CASE WHEN r_{c} IS DISTINCT FROM v_{c} THEN r_{c} END AS raw_{c}" for c in quoted]
    final.append(f"{_problems_sql(feed, spec, future is not None)} AS problems")
    return (f"SELECT {', '.join(final)} FROM (SELECT *, {', '.join(reasons)} FROM (SELECT *, {values} FROM "
            f"(SELECT *, {trimmed} FROM (SELECT *, {rules.edge_space(list(spec.columns))} AS t__edge FROM "
            f"(SELECT {_raw_hash(width)} AS n__raw, {raw} FROM {source})))))")


def _raw_hash(width: int) -> str:
    """A fingerprint of a row's text as delivered (every column of the file): how a quarantined row finds its line."""
    return f"hash({', '.join(f'c{i}' for i in range(width))})"


@dataclass
class _Staged:
    feed: str
    path: Path
    table: str
    source: str  #: the SQL that reads the file
    width: int  #: its columns
    first_line: int
    summary: FeedSummary
    protected: tuple[str, ...] = ()  #: the protected characteristics the file carries


def _stage(ws: _Workspace, feed: str, path: Path, clock: Clock) -> _Staged:
    """Read, type and check one feed's rows on their own (no ledger needed) into a workspace table, in parallel (so
    in no particular order: a quarantined row's line is found afterwards, by `_lines`)."""
    import duckdb

    spec = contract.FEEDS[feed]
    if path.stat().st_size == 0:
        raise DeliveryRefused(f"{path.name} is an empty file: re-export it with a header row.")
    try:
        source, names, first_line = _source(ws, path)
        columns, ignored = _columns(path, spec, names)
        table = ws.temp_table(f"_stage_{feed}", _stage_sql(feed, spec, source, columns, clock, len(names)))
    except duckdb.Error as exc:
        detail = str(exc).strip().splitlines()[0]
        raise DeliveryRefused(
            f"{path.name} cannot be read as UTF-8 CSV ({detail}); re-export it as UTF-8 CSV.") from exc
    summary = FeedSummary(feed=feed, file=path.name, read=ws.scalar(f"SELECT count(*) FROM {table}"),
                          ignored_columns=ignored)
    carried = tuple(c for c in contract.MONITORING_ONLY_COLUMNS if c in columns and not columns[c].startswith("CAST"))
    return _Staged(feed, path, table, source, len(names), first_line, summary, carried)


# -- deciding each clean row against the delivery and the ledger -------------------------------------------------

_UNKNOWN = "unknown tenancy_id: no such tenancy in the ledger or this delivery; send its tenancies row first"
_UNKNOWN_CLEARED = ("unknown cleared_tenancy_id: the receipt was cleared to a tenancy that is in neither the ledger "
                    "nor this delivery; send that tenancy's register row first, or correct the tenancy the receipt was "
                    "cleared to at source (leave cleared_tenancy_id and cleared_date blank while it is open)")
_UNKNOWN_REASON = {"tenancy_id": _UNKNOWN, "cleared_tenancy_id": _UNKNOWN_CLEARED}
_VARIANTS = "the same id appears more than once in this delivery with different content; send one corrected row"
_CONFLICT = ("already in the ledger with different content: ledger rows are never overwritten; "
             "correct it at source with a new row (e.g. an adjustment)")


def _resolve(ws: _Workspace, staged: _Staged, seq: int) -> None:
    """Decide each clean row: accepted (inserted), duplicate (counted) or quarantined (with the rows whose columns
    could not be read, written to the quarantine table). Fills the feed's summary."""
    feed, table = staged.feed, staged.table
    drops = ws.temp_table(f"_drop_{feed}", "SELECT CAST(NULL AS BIGINT) AS rid, '' AS kind, '' AS column_name, "
                                           "'' AS reason WHERE false")
    clean = f"(SELECT rowid AS rid, * FROM {table} WHERE problems IS NULL)"
    remaining = f"(SELECT c.* FROM {clean} c ANTI JOIN {drops} d ON d.rid = c.rid)"  # (NOT EXISTS: 100x slower)
    # References to tenancies must resolve to the ledger (this delivery's tenancies are already in it); an optional
    # reference only where it is set.
    reference = contract.TENANCY_REFERENCE.get(feed)
    if reference:
        ws.run(f"INSERT INTO {drops} SELECT rid, 'quarantine', {rules.lit(reference)}, "
               f"{rules.lit(_UNKNOWN_REASON[reference])} FROM {clean} c ANTI JOIN {ws.known_tenancies()} k "
               f"ON k.tenancy_id = c.{reference} WHERE c.{reference} IS NOT NULL")
    _drop_repeats(ws, feed, remaining, drops)
    _drop_stored(ws, feed, remaining, drops)
    columns = [c for c in TABLES[feed] if c != "delivery_seq"]
    staged.summary.accepted = ws.insert(
        feed, [*columns, "delivery_seq"], f"SELECT {', '.join(columns)}, {seq} FROM {remaining}")


def _drop_repeats(ws: _Workspace, feed: str, remaining: str, drops: str) -> None:
    """Within the delivery: identical repeats are duplicates (one is kept: they hold the same content); the same id
    with different content is untrustworthy. Keys seen more than once are found first (usually none)."""
    spec = contract.FEEDS[feed]
    keys = ", ".join(spec.key)
    # The protected characteristics are not in the ledger's hash, but two rows differing in them are still variants.
    variant = "concat_ws(chr(31), content_hash, " + ", ".join(
        f"coalesce({c}, '')" for c in contract.MONITORING_ONLY_COLUMNS) + ")" if feed == "tenancies" else \
        "content_hash"
    repeated = ws.temp_table(f"_repeated_{feed}",
                             f"SELECT {keys} FROM {remaining} GROUP BY {keys} HAVING count(*) > 1")
    if not ws.scalar(f"SELECT count(*) FROM {repeated}"):
        return
    ws.run(f"INSERT INTO {drops} WITH g AS (SELECT {keys}, min({variant}) <> max({variant}) AS variant, "
           f"min(rid) AS first FROM {remaining} SEMI JOIN {repeated} USING ({keys}) GROUP BY {keys}) "
           f"SELECT r.rid, CASE WHEN g.variant THEN 'quarantine' ELSE 'duplicate' END, "
           f"CASE WHEN g.variant THEN '{spec.key[0]}' END, CASE WHEN g.variant THEN {rules.lit(_VARIANTS)} END "
           f"FROM {remaining} r JOIN g USING ({keys}) WHERE g.variant OR r.rid <> g.first")


def _drop_stored(ws: _Workspace, feed: str, remaining: str, drops: str) -> None:
    """Against the ledger: a stored row with the same content makes a duplicate; other content is a conflict,
    except in the tenancy register, where it is a new version."""
    spec = contract.FEEDS[feed]
    stored = ws.stored(feed, f"SELECT DISTINCT {', '.join(spec.key)} FROM {remaining}")
    if not ws.scalar(f"SELECT count(*) FROM {stored}"):
        return
    same = "bool_or(l.content_hash = r.content_hash)"
    on = " AND ".join(f"l.{k} = r.{k}" for k in spec.key)
    ws.run(f"INSERT INTO {drops} SELECT r.rid, CASE WHEN {same} THEN 'duplicate' ELSE 'quarantine' END, "
           f"'{spec.key[0]}', CASE WHEN NOT {same} THEN {rules.lit(_CONFLICT)} END "
           f"FROM {remaining} r JOIN {stored} l ON {on} GROUP BY r.rid" + (f" HAVING {same}" if spec.versioned else ""))


def _record_quarantine(ws: _Workspace, staged: _Staged, drops: str, seq: int) -> None:
    """Count the duplicates and quarantined rows, and write one quarantine row per problem, with its line."""
    feed, table, summary = staged.feed, staged.table, staged.summary
    spec = contract.FEEDS[feed]
    key = spec.key[0]
    summary.duplicate = ws.scalar(f"SELECT count(*) FROM {drops} WHERE kind = 'duplicate'")
    # A dropped row's value: the tenancy it names, or its key as delivered (a key of several columns, joined by /).
    value = f"coalesce(s.raw_{key}, CAST(s.{key} AS VARCHAR))"
    if len(spec.key) > 1:
        value = f"concat_ws(' / ', {value}, {', '.join(f'CAST(s.{k} AS VARCHAR)' for k in spec.key[1:])})"
    reference = contract.TENANCY_REFERENCE.get(feed)
    if reference:
        value = (f"CASE d.column_name WHEN {rules.lit(reference)} THEN coalesce(s.raw_{reference}, s.{reference}) "
                 f"ELSE {value} END")
    problems = (
        f"SELECT rid, raw_hash, p.column_name AS column_name, p.value AS value, p.reason AS reason FROM "
        f"(SELECT rowid AS rid, raw_hash, unnest(problems) AS p FROM {table} WHERE problems IS NOT NULL) "
        f"UNION ALL SELECT d.rid, s.raw_hash, d.column_name, coalesce({value}, ''), "
        f"d.reason FROM {drops} d JOIN (SELECT rowid AS rid, * FROM {table}) s ON s.rid = d.rid "
        "WHERE d.kind = 'quarantine'")
    found = ws.temp_table(f"_quarantine_{feed}", problems)
    summary.quarantined = ws.scalar(f"SELECT count(DISTINCT rid) FROM {found}")
    if summary.quarantined:
        lines = _lines(ws, staged, found)
        ws.insert("quarantine", list(TABLES["quarantine"]),
                  f"SELECT {seq}, {rules.lit(feed)}, {rules.lit(staged.path.name)}, l.line, column_name, value, "
                  f"reason FROM {found} JOIN {lines} l USING (rid) ORDER BY l.line, column_name, reason")


def _lines(ws: _Workspace, staged: _Staged, found: str) -> str:
    """Each quarantined row's line in the file. Numbering rows in file order makes a read serial, so it is done only
    here, for the rows that need it: the file is read again, numbered, and its rows matched to the quarantined ones
    by the fingerprint of their text. Rows with the same text share their fate (quarantine is decided by content),
    so identical rows take their lines in turn."""
    wanted = ws.temp_table(f"_wanted_{staged.feed}", f"SELECT DISTINCT rid, raw_hash FROM {found}")
    numbered = (f"SELECT row_number() OVER () + {staged.first_line - 1} AS line, {_raw_hash(staged.width)} AS h "
                f"FROM {staged.source}")
    lines = ws.temp_table(
        f"_lines_{staged.feed}",
        f"WITH f AS (SELECT line, h, row_number() OVER (PARTITION BY h ORDER BY line) AS k FROM ({numbered}) "
        f"WHERE h IN (SELECT raw_hash FROM {wanted})), "
        f"q AS (SELECT rid, raw_hash, row_number() OVER (PARTITION BY raw_hash ORDER BY rid) AS k FROM {wanted}) "
        "SELECT q.rid, f.line FROM q JOIN f ON f.h = q.raw_hash AND f.k = q.k")
    if ws.scalar(f"SELECT count(*) FROM {lines}") != staged.summary.quarantined:  # a fault, never the data's
        raise AssertionError(f"{staged.feed}: a quarantined row's line could not be found again in {staged.path}")
    return lines


# -- the ingest ------------------------------------------------------------------------------------------------


def ingest_delivery(ledger: Ledger, delivery_dir: Path, quarantine_dir: Path,
                    clock: Clock | None = None, memory_limit: str = "2GB",
                    protected_url: str | None = None) -> IngestSummary:
    """Load one delivery into the ledger. Raises DeliveryRefused (writing nothing) if it cannot be read.

    Postings and events dated after `clock.today` (default: the system date) by more than its tolerance are
    quarantined: the ledger's latest date is "today" for every worklist, and one such row must not move it.
    The files are read and checked by DuckDB in SQL, spilling to disk beyond `memory_limit`.

    Safe to run again: if the same files (judged against the same day) were the ledger's last delivery, e.g. an
    ingest killed after its commit and run again, nothing new is recorded and that delivery's summary is returned
    (`already_ingested`), its quarantine files written if they are missing. A delivery re-sent after others is
    ingested again: its rows are duplicates, and rows quarantined for an unknown tenancy may now be accepted.

    `protected_url`: the protected characteristics' store (default `ARREARS_PROTECTED_URL`, else beside the ledger).
    """
    delivery_dir = Path(delivery_dir)
    clock = clock or Clock(date.today())
    files = discover_feeds(delivery_dir)
    protected_url = protected_url or FeatureSettings().protected_url or default_protected_url(ledger.url)
    move_from_ledger(ledger, protected_url)
    fingerprint = delivery_fingerprint(files, clock)
    last = ledger.latest_delivery()
    if last is not None and last.get("fingerprint") == fingerprint:
        summary = IngestSummary.recorded(last)
        _write_quarantine_files(ledger, summary, quarantine_dir, delivery_dir)
        return summary
    ws = _Workspace(ledger, memory_limit, Path(quarantine_dir).parent / ".ingest_spill")
    try:
        staged = {feed: _stage(ws, feed, files[feed], clock) for feed in contract.LOAD_ORDER if feed in files}
        summary = _load(ledger, ws, staged, delivery_dir, quarantine_dir, fingerprint, protected_url)
    finally:
        ws.close()
    crash_point("ingest:committed")
    _write_quarantine_files(ledger, summary, quarantine_dir, delivery_dir)
    return summary


def _load(ledger: Ledger, ws: _Workspace, staged: dict[str, _Staged], delivery_dir: Path, quarantine_dir: Path,
          fingerprint: str, protected_url: str) -> IngestSummary:
    """Everything the ledger records about one delivery, in one transaction (the protected characteristics, in their
    own store, just before it commits)."""
    with ledger.transaction():
        seq = ledger.next_delivery_seq()
        for feed, stage in staged.items():
            _resolve(ws, stage, seq)
            _record_quarantine(ws, stage, f"_drop_{feed}", seq)
            if not stage.summary.reconciles:  # an internal fault, never a data problem: roll everything back
                raise AssertionError(f"{feed}: counts do not reconcile: {stage.summary}")
            if stage.summary.quarantined:
                stage.summary.quarantine_file = str(_quarantine_path(quarantine_dir, seq, delivery_dir, feed))
        summary = IngestSummary(str(delivery_dir), seq, {f: s.summary for f, s in staged.items()})
        crash_point("ingest:writing")  # rows written, not committed
        if "tenancies" in staged and staged["tenancies"].protected:
            with open_protected(protected_url) as store:
                store.record(_protected_rows(ledger, ws, staged["tenancies"]), seq, staged["tenancies"].protected)
        ledger.insert("deliveries", pd.DataFrame([{
            "delivery_seq": seq, "delivery_id": delivery_dir.name, "source": str(delivery_dir.resolve()),
            "ingested_at": datetime.now(UTC).replace(tzinfo=None),
            "summary_json": json.dumps(summary.to_dict()), "fingerprint": fingerprint,
        }]))
    return summary


def _protected_rows(ledger: Ledger, ws: _Workspace, staged: _Staged) -> pd.DataFrame:
    """The protected characteristics of the delivery's tenancy rows that are now their tenancy's current register
    version (accepted, or a re-sent copy of it): a re-sent older version changes nothing, as in the register."""
    columns = ", ".join(contract.MONITORING_ONLY_COLUMNS)
    rows = ws.con.execute(
        f"SELECT DISTINCT tenancy_id, content_hash, {columns} FROM (SELECT rowid AS rid, * FROM {staged.table} "
        f"WHERE problems IS NULL) s ANTI JOIN (SELECT rid FROM _drop_tenancies WHERE kind = 'quarantine') d "
        "ON d.rid = s.rid").df()
    if rows.empty:
        return rows
    current = ledger.read_for_tenancies("tenancy_register", rows["tenancy_id"].unique().tolist())
    current = current[["tenancy_id", "content_hash"]]
    return rows.merge(current, on=["tenancy_id", "content_hash"]).drop(columns="content_hash")


def _write_quarantine_files(ledger: Ledger, summary: IngestSummary, quarantine_dir: Path, delivery_dir: Path) -> None:
    """The ledger's quarantine table is the record; these files are the copy a person opens, written from it (each
    whole or not at all) wherever one is missing."""
    for feed, feed_summary in summary.feeds.items():
        path = _quarantine_path(quarantine_dir, summary.delivery_seq, delivery_dir, feed)
        if not feed_summary.quarantined or path.exists():
            continue
        frame = ledger.quarantined(summary.delivery_seq, feed).rename(columns={"column_name": "column"})
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        frame[QUARANTINE_COLUMNS].to_csv(partial, index=False, quoting=csv.QUOTE_NONNUMERIC)
        os.replace(partial, path)


def _quarantine_path(quarantine_dir: Path, seq: int, delivery_dir: Path, feed: str) -> Path:
    return Path(quarantine_dir) / f"{seq:05d}_{delivery_dir.name}" / f"{feed}.csv"


def quarantine_reasons(ledger: Ledger) -> pd.DataFrame:
    return ledger.query("SELECT feed, reason, COUNT(*) AS n FROM quarantine GROUP BY feed, reason ORDER BY n DESC")
