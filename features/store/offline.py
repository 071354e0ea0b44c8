"""Snapshots from the ledger, partition by partition, into the offline store and the live file.

- **Offline** (training): weekly snapshots of every tenancy, Parquet under `ARREARS_HOME` (local profile) or the
  `tenancy_snapshots` table in Postgres (production profile).
- **Current** (serving): one snapshot per live tenancy as of the ledger's latest posting date, kept in
  `offline/live_tenancies.parquet` (the population a worklist ranks) and pushed online by `features.store.feast`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.db import open_database
from features.ledger import open_ledger
from features.settings import FeatureSettings
from features.transforms import VERSION_COLUMNS, build_snapshots, weekly_as_of_dates

# Dask is imported only when ARREARS_DASK_SCHEDULER asks for it (2 s to import, and most builds run without it).

SNAPSHOT_FILE = "tenancy_snapshots.parquet"
LIVE_FILE = "live_tenancies.parquet"
SNAPSHOT_TABLE = "tenancy_snapshots"
#: Which offline rows are the weekly grid (`arrears features`) and which were computed for a requested date
#: (`features.store.exact`): Feast reads both; the grid's readers (backtests) read only the grid.
KIND_COLUMN, GRID, REQUESTED = "snapshot_kind", "grid", "requested"


class FeatureStageError(RuntimeError):
    """The feature stage cannot run; the message says what to do."""


@dataclass(frozen=True)
class BuildResult:
    rows: int
    tenancies: int
    first_as_of: pd.Timestamp
    last_as_of: pd.Timestamp
    current_as_of: pd.Timestamp


def snapshot_path(settings: FeatureSettings) -> Path:
    return settings.offline_dir / SNAPSHOT_FILE


def live_path(settings: FeatureSettings) -> Path:
    return settings.offline_dir / LIVE_FILE


def atomic_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Write a Parquet file so that readers see the old one or the new one, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)


# -- reading the ledger -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LedgerSlice:
    tenancies: pd.DataFrame
    transactions: pd.DataFrame
    events: pd.DataFrame
    versions: pd.DataFrame | None = None  #: every delivered version of the tenancies (the register in force)
    #: the DWP's schedule lines (`features.schedules`), read with the whole ledger; None without that feed
    schedules: pd.DataFrame | None = None


def load_ledger_slice(settings: FeatureSettings, tenancy_ids: Sequence[str] | None = None,
                      read_only: bool = False) -> LedgerSlice:
    """The inputs of the snapshot build: the tenancy register, transactions and events (of some tenancies); read
    whole, also the DWP's schedule lines when the ledger has them (the cash forecast's backtest expects them)."""
    tables = ("tenancy_register", "transactions", "events", "tenancies")
    schedules = None
    with open_ledger(settings.ledger, read_only=read_only) as ledger:
        if tenancy_ids is None:
            parts = [ledger.read_table(t) for t in tables]
            if ledger.columns_of("dwp_schedules"):
                schedules = ledger.read_table("dwp_schedules")
        else:
            parts = [ledger.read_for_tenancies(t, tenancy_ids) for t in tables]
    parts[3] = parts[3][[c for c in VERSION_COLUMNS if c in parts[3]]]
    if tenancy_ids is None and parts[0].empty:
        raise FeatureStageError("The ledger has no tenancies yet: run `arrears ingest DIR` first.")
    return LedgerSlice(*parts, schedules=schedules if schedules is not None and not schedules.empty else None)


def ledger_dates(settings: FeatureSettings) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and latest posting date in the ledger: the snapshots span them; the latest is 'today' for serving."""
    with open_ledger(settings.ledger) as ledger:
        span = ledger.query("SELECT MIN(posted_date) AS first, MAX(posted_date) AS last FROM transactions")
    if span["first"].isna().iloc[0]:
        raise FeatureStageError("The ledger has no transactions yet: run `arrears ingest DIR` first.")
    return pd.Timestamp(span["first"].iloc[0]), pd.Timestamp(span["last"].iloc[0])


def snapshots(part: LedgerSlice, as_of: pd.DatetimeIndex) -> pd.DataFrame:
    frame = build_snapshots(part.tenancies, part.transactions, as_of, part.events, part.versions)
    # Microseconds, not pandas' nanoseconds: Feast's DuckDB offline store cannot cast TIMESTAMPTZ_NS.
    frame["event_timestamp"] = frame["event_timestamp"].astype("datetime64[us, UTC]")
    return frame


def current_snapshots(part: LedgerSlice, today: pd.Timestamp) -> pd.DataFrame:
    """Snapshots as of `today` (the ledger's latest posting date) of the live tenancies in `part`."""
    return snapshots(part, pd.DatetimeIndex([today.normalize()]))


def sorted_snapshots(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["tenancy_id", "event_timestamp"], kind="stable").reset_index(drop=True)


# -- partitions: one process or a Dask cluster ------------------------------------------------------------------
def tenancy_partitions(tenancy_ids: Sequence[str], n: int) -> list[list[str]]:
    """Split sorted tenancy ids into `n` contiguous partitions (every row of a tenancy lands in one)."""
    ids = sorted(tenancy_ids)
    return [list(chunk) for chunk in np.array_split(np.asarray(ids, dtype=object), max(1, min(n, len(ids))))
            if len(chunk)]


def partition_snapshots(settings: FeatureSettings, tenancy_ids: list[str], as_of: pd.DatetimeIndex,
                        today: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Weekly and current snapshots of one partition, reading only its own rows of the ledger (runs on a worker)."""
    part = load_ledger_slice(settings, tenancy_ids, read_only=True)
    return snapshots(part, as_of), current_snapshots(part, today)


def _dask_client(address: str):
    from dask.distributed import Client, LocalCluster

    if address == "local":
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
        return Client(cluster), cluster
    return Client(address), None


def _on_dask(address: str, settings: FeatureSettings, chunks: list[list[str]], as_of: pd.DatetimeIndex,
             today: pd.Timestamp) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    import dask

    client, cluster = _dask_client(address)
    try:
        futures = client.compute([dask.delayed(partition_snapshots)(settings, chunk, as_of, today)
                                  for chunk in chunks])
        for future in futures:  # in partition order; each is released once written
            weekly, current = future.result()
            future.release()
            yield weekly, current
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def iter_snapshots(settings: FeatureSettings, tenancy_ids: Sequence[str] | None = None,
                   scheduler: str | None = None, partition_tenancies: int | None = None
                   ) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """Yield (weekly, current) snapshots partition by partition, in tenancy order, so memory stays bounded.

    Partitions are contiguous ranges of sorted tenancy ids of `partition_tenancies` (ARREARS_PARTITION_TENANCIES)
    each; every partition reads only its own rows of the ledger. With `scheduler` (or ARREARS_DASK_SCHEDULER) set,
    each partition is a Dask task (`partition_snapshots`); otherwise they run here one after another.
    """
    first, today = ledger_dates(settings)
    as_of = weekly_as_of_dates(first, today)
    scheduler = scheduler or settings.dask_scheduler
    size = partition_tenancies or settings.partition_tenancies
    if tenancy_ids is None:
        with open_ledger(settings.ledger) as ledger:
            tenancy_ids = ledger.query("SELECT DISTINCT tenancy_id FROM tenancies")["tenancy_id"].tolist()
    chunks = tenancy_partitions(tenancy_ids, -(-len(tenancy_ids) // size))
    if scheduler is not None:
        yield from _on_dask(scheduler, settings, chunks, as_of, today)
        return
    for chunk in chunks:
        part = load_ledger_slice(settings, chunk)
        yield snapshots(part, as_of), current_snapshots(part, today)


def compute_snapshots(settings: FeatureSettings, tenancy_ids: Sequence[str] | None = None,
                      scheduler: str | None = None, partition_tenancies: int | None = None
                      ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Weekly snapshots (first posting → latest) and the current snapshot, for all tenancies or some, in memory.

    One process or a Dask cluster (see `iter_snapshots`): both give the same rows.
    """
    parts = list(iter_snapshots(settings, tenancy_ids, scheduler, partition_tenancies))
    if not parts:
        return pd.DataFrame(), pd.DataFrame()
    weekly = pd.concat([p[0] for p in parts], ignore_index=True)
    current = pd.concat([p[1] for p in parts], ignore_index=True)
    return sorted_snapshots(weekly), sorted_snapshots(current)


# -- the offline store ------------------------------------------------------------------------------------------
def _create_table_sql(frame: pd.DataFrame) -> str:
    columns = [f"{name} " + ("TIMESTAMPTZ" if name == "event_timestamp" else "DOUBLE PRECISION"
                              if pd.api.types.is_float_dtype(dtype) else "TEXT")
               for name, dtype in frame.dtypes.items()]
    return f"CREATE TABLE IF NOT EXISTS {SNAPSHOT_TABLE} ({', '.join(columns)})"


class OfflineWriter:
    """Writes weekly snapshots partition by partition: all of them (a full build) or, with `replace_tenancies`,
    just those tenancies' rows. Atomic: readers see the old snapshots until it closes without an error; a build
    that fails part-way publishes nothing (use it as a context manager)."""

    def __init__(self, settings: FeatureSettings, replace_tenancies: Sequence[str] | None = None) -> None:
        self.settings, self.replace = settings, replace_tenancies
        self.rows = 0
        self._db = self._transaction = self._parquet = None
        self._tmp = snapshot_path(settings).with_suffix(".parquet.tmp")

    def write(self, weekly: pd.DataFrame) -> None:
        if weekly.empty:
            return
        if KIND_COLUMN not in weekly:
            weekly = weekly.assign(**{KIND_COLUMN: GRID})
        if self.settings.feast_profile == "production":
            self._write_postgres(weekly)
        else:
            self._write_parquet(weekly)
        self.rows += len(weekly)

    def _write_postgres(self, weekly: pd.DataFrame) -> None:
        if self._db is None:
            self._db = open_database(self.settings.feast_postgres)
            self._transaction = self._db.transaction()
            self._transaction.__enter__()
            if self.replace is None:
                self._db.execute(f"DROP TABLE IF EXISTS {SNAPSHOT_TABLE}")
            self._db.execute(_create_table_sql(weekly))
            self._db.execute(f"CREATE INDEX IF NOT EXISTS {SNAPSHOT_TABLE}_key ON {SNAPSHOT_TABLE} "
                             "(tenancy_id, event_timestamp)")
            if self.replace is not None:
                self._db.execute(f"DELETE FROM {SNAPSHOT_TABLE} WHERE tenancy_id = ANY(?)", [list(self.replace)])
        stamps = weekly["event_timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S+00")
        self._db.append(SNAPSHOT_TABLE, weekly.assign(event_timestamp=stamps), list(weekly.columns))

    def _write_parquet(self, weekly: pd.DataFrame) -> None:
        if self._parquet is None:
            self._tmp.parent.mkdir(parents=True, exist_ok=True)
            schema = pa.Schema.from_pandas(weekly, preserve_index=False)
            self._parquet = pq.ParquetWriter(self._tmp, schema)
            if self.replace is not None and snapshot_path(self.settings).exists():
                old = pq.read_table(snapshot_path(self.settings))
                wanted = pa.array([str(t) for t in self.replace], type=pa.string())
                keep = pc.invert(pc.is_in(old["tenancy_id"], value_set=wanted))
                self._parquet.write_table(old.filter(keep).cast(schema))
        self._parquet.write_table(pa.Table.from_pandas(weekly, schema=self._parquet.schema, preserve_index=False))

    def close(self, failed: BaseException | None = None) -> None:
        """Publish what was written, or (`failed`) throw it away: readers keep the previous snapshots."""
        if self._db is not None:
            self._transaction.__exit__(type(failed) if failed else None, failed, None)  # commit, or roll back
            self._db.close()
        if self._parquet is not None:
            self._parquet.close()
            if failed is None:
                os.replace(self._tmp, snapshot_path(self.settings))
            else:
                self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> OfflineWriter:
        return self

    def __exit__(self, exc_type, exc: BaseException | None, tb) -> None:
        self.close(exc)


def write_offline(settings: FeatureSettings, weekly: pd.DataFrame,
                  replace_tenancies: Sequence[str] | None = None) -> None:
    """Write weekly snapshots: all of them, or (with `replace_tenancies`) replace just those tenancies' rows."""
    with OfflineWriter(settings, replace_tenancies) as writer:
        writer.write(weekly)


def read_offline(settings: FeatureSettings, columns: Sequence[str] | None = None,
                 kinds: Sequence[str] = (GRID,)) -> pd.DataFrame:
    """Offline snapshots (optionally only some columns) from whichever offline store the profile uses: the weekly
    grid by default; `kinds=(GRID, REQUESTED)` adds the rows computed for requested dates."""
    wanted = list(dict.fromkeys([*columns, KIND_COLUMN])) if columns else None
    if settings.feast_profile == "local":
        frame = pd.read_parquet(snapshot_path(settings), columns=wanted)
    else:
        with open_database(settings.feast_postgres) as db:
            frame = db.query(f"SELECT {', '.join(wanted) if wanted else '*'} FROM {SNAPSHOT_TABLE} "
                             "ORDER BY tenancy_id, event_timestamp")
        frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True).astype("datetime64[us, UTC]")
    frame = frame[frame[KIND_COLUMN].isin(list(kinds))]
    if not columns or KIND_COLUMN not in columns:
        frame = frame.drop(columns=KIND_COLUMN)
    return frame.reset_index(drop=True)


def append_offline(settings: FeatureSettings, rows: pd.DataFrame) -> int:
    """Add snapshots to the offline store beside what is there (rows computed for requested dates). Atomic."""
    if rows.empty:
        return 0
    if settings.feast_profile == "production":
        with open_database(settings.feast_postgres) as db, db.transaction():
            stamps = rows["event_timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S+00")
            db.append(SNAPSHOT_TABLE, rows.assign(event_timestamp=stamps), list(rows.columns))
        return len(rows)
    path = snapshot_path(settings)
    old = pq.read_table(path)
    new = pa.Table.from_pandas(rows[old.schema.names], preserve_index=False).cast(old.schema)
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(pa.concat_tables([old, new]), tmp)
    os.replace(tmp, path)
    return len(rows)


def build_offline(settings: FeatureSettings) -> BuildResult:
    """Full build: weekly snapshots of every tenancy (offline store) and the current snapshot (live file), one
    partition of tenancies at a time so that memory stays bounded whatever the portfolio's size."""
    current, tenancies, first, last = [], 0, None, None
    with OfflineWriter(settings) as writer:
        for weekly, now in iter_snapshots(settings):
            if weekly.empty:
                continue
            writer.write(weekly)
            current.append(now)
            tenancies += weekly["tenancy_id"].nunique()
            stamps = weekly["event_timestamp"]
            first = stamps.min() if first is None else min(first, stamps.min())
            last = stamps.max() if last is None else max(last, stamps.max())
    if not current:
        raise FeatureStageError("The ledger has no tenancies yet: run `arrears ingest DIR` first.")
    live = sorted_snapshots(pd.concat(current, ignore_index=True))
    atomic_parquet(live, live_path(settings))
    return BuildResult(writer.rows, tenancies, first, last, live["event_timestamp"].max())


# -- the live file: the population a worklist ranks ----------------------------------------------------------------
def live_tenancies(settings: FeatureSettings) -> pd.DataFrame:
    """Tenancies live at the ledger's latest date, with their current features."""
    path = live_path(settings)
    if not path.exists():
        raise FeatureStageError("No snapshots yet: run `arrears features` first.")
    return pd.read_parquet(path)


def update_live(settings: FeatureSettings, current: pd.DataFrame, touched: Sequence[str]) -> None:
    """Replace the touched tenancies' rows of the live file (a tenancy that has ended drops out)."""
    live = live_tenancies(settings)
    live = live[~live["tenancy_id"].isin(set(touched))]
    if len(current):  # the as-of date of the whole list is the ledger's latest date
        live = live.assign(event_timestamp=current["event_timestamp"].max())
    atomic_parquet(sorted_snapshots(pd.concat([live, current], ignore_index=True)), live_path(settings))
