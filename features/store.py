"""The feature stage's edges: ledger → offline snapshots → `feast apply` → online store, and keeping them fresh.

The logic lives in `features.transforms`; this module only reads, writes, schedules and calls Feast.

- **Offline** (training): weekly snapshots of every tenancy, Parquet under `ARREARS_HOME` (local profile) or the
  `tenancy_snapshots` table in Postgres (production profile).
- **Current** (serving): one snapshot per live tenancy as of the ledger's latest posting date, pushed to the online
  store and kept in `offline/live_tenancies.parquet` (the population a worklist ranks).
- **Fresh**: after an ingest, only the tenancies the delivery touched are recomputed and pushed
  (`refresh_tenancies`); `refresh` decides between nothing, that, and a full build.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.ledger import open_ledger
from features.settings import FeatureSettings
from features.transforms import build_snapshots, weekly_as_of_dates

SNAPSHOT_FILE = "tenancy_snapshots.parquet"
LIVE_FILE = "live_tenancies.parquet"
MANIFEST_FILE = "manifest.json"
SNAPSHOT_TABLE = "tenancy_snapshots"
PUSH_SOURCE = "tenancy_snapshot_push"


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


def _atomic_parquet(frame: pd.DataFrame, path: Path) -> None:
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


def load_ledger_slice(settings: FeatureSettings, tenancy_ids: Sequence[str] | None = None,
                      read_only: bool = False) -> LedgerSlice:
    """The inputs of the snapshot build: the tenancy register, transactions and events (of some tenancies)."""
    with open_ledger(settings.ledger, read_only=read_only) as ledger:
        if tenancy_ids is None:
            parts = [ledger.read_table(t) for t in ("tenancy_register", "transactions", "events")]
        else:
            parts = [ledger.read_for_tenancies(t, tenancy_ids) for t in ("tenancy_register", "transactions", "events")]
    if tenancy_ids is None and parts[0].empty:
        raise FeatureStageError("The ledger has no tenancies yet: run `arrears ingest DIR` first.")
    return LedgerSlice(*parts)


def ledger_dates(settings: FeatureSettings) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and latest posting date in the ledger: the snapshots span them; the latest is 'today' for serving."""
    with open_ledger(settings.ledger) as ledger:
        span = ledger.query("SELECT MIN(posted_date) AS first, MAX(posted_date) AS last FROM transactions")
    if span["first"].isna().iloc[0]:
        raise FeatureStageError("The ledger has no transactions yet: run `arrears ingest DIR` first.")
    return pd.Timestamp(span["first"].iloc[0]), pd.Timestamp(span["last"].iloc[0])


def _snapshots(part: LedgerSlice, as_of: pd.DatetimeIndex) -> pd.DataFrame:
    frame = build_snapshots(part.tenancies, part.transactions, as_of, part.events)
    # Microseconds, not pandas' nanoseconds: Feast's DuckDB offline store cannot cast TIMESTAMPTZ_NS.
    frame["event_timestamp"] = frame["event_timestamp"].astype("datetime64[us, UTC]")
    return frame


def _current(part: LedgerSlice, today: pd.Timestamp) -> pd.DataFrame:
    """Snapshots as of `today` (the ledger's latest posting date) of the live tenancies in `part`."""
    return _snapshots(part, pd.DatetimeIndex([today.normalize()]))


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
    return _snapshots(part, as_of), _current(part, today)


def _dask_client(address: str):
    from dask.distributed import Client, LocalCluster

    if address == "local":
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
        return Client(cluster), cluster
    return Client(address), None


def iter_snapshots(settings: FeatureSettings, tenancy_ids: Sequence[str] | None = None, scheduler: str | None = None,
                   partition_tenancies: int | None = None):
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
    if scheduler is None:
        for chunk in chunks:
            part = load_ledger_slice(settings, chunk)
            yield _snapshots(part, as_of), _current(part, today)
        return
    import dask

    client, cluster = _dask_client(scheduler)
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


def compute_snapshots(settings: FeatureSettings, tenancy_ids: Sequence[str] | None = None, scheduler: str | None = None,
                      partition_tenancies: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Weekly snapshots (first posting → latest) and the current snapshot, for all tenancies or some, in memory.

    One process or a Dask cluster (see `iter_snapshots`): both give the same rows.
    """
    parts = list(iter_snapshots(settings, tenancy_ids, scheduler, partition_tenancies))
    if not parts:
        return pd.DataFrame(), pd.DataFrame()
    weekly = pd.concat([p[0] for p in parts], ignore_index=True)
    current = pd.concat([p[1] for p in parts], ignore_index=True)
    return _sorted(weekly), _sorted(current)


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["tenancy_id", "event_timestamp"], kind="stable").reset_index(drop=True)


# -- offline store ------------------------------------------------------------------------------------------------
def _pg_connect(settings: FeatureSettings):
    import psycopg

    return psycopg.connect(settings.feast_postgres, autocommit=True)


def _pg_create(cur, frame: pd.DataFrame) -> None:
    columns = []
    for name, dtype in frame.dtypes.items():
        sqltype = ("TIMESTAMPTZ" if name == "event_timestamp" else "DOUBLE PRECISION"
                   if pd.api.types.is_float_dtype(dtype) else "TEXT")
        columns.append(f"{name} {sqltype}")
    cur.execute(f"CREATE TABLE IF NOT EXISTS {SNAPSHOT_TABLE} ({', '.join(columns)})")
    cur.execute(f"CREATE INDEX IF NOT EXISTS {SNAPSHOT_TABLE}_key ON {SNAPSHOT_TABLE} (tenancy_id, event_timestamp)")


def _pg_copy(cur, frame: pd.DataFrame) -> None:
    buffer = io.StringIO()
    out = frame.copy()
    out["event_timestamp"] = out["event_timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S+00")
    out.to_csv(buffer, index=False, header=False, na_rep="\\N")
    with cur.copy(f"COPY {SNAPSHOT_TABLE} ({', '.join(frame.columns)}) FROM STDIN WITH (FORMAT csv, NULL '\\N')") as c:
        c.write(buffer.getvalue())


class OfflineWriter:
    """Writes weekly snapshots partition by partition: all of them (a full build) or, with `replace_tenancies`,
    just those tenancies' rows. Atomic: readers see the old snapshots until it closes without an error; a build
    that fails part-way publishes nothing (use it as a context manager)."""

    def __init__(self, settings: FeatureSettings, replace_tenancies: Sequence[str] | None = None) -> None:
        self.settings, self.replace = settings, replace_tenancies
        self.rows = 0
        self._pg = self._cur = self._tx = self._parquet = None
        self._tmp = snapshot_path(settings).with_suffix(".parquet.tmp")

    def write(self, weekly: pd.DataFrame) -> None:
        if weekly.empty:
            return
        if self.settings.feast_profile == "production":
            self._write_postgres(weekly)
        else:
            self._write_parquet(weekly)
        self.rows += len(weekly)

    def _write_postgres(self, weekly: pd.DataFrame) -> None:
        if self._pg is None:
            self._pg = _pg_connect(self.settings)
            self._tx = self._pg.transaction()
            self._tx.__enter__()
            self._cur = self._pg.cursor()
            if self.replace is None:
                self._cur.execute(f"DROP TABLE IF EXISTS {SNAPSHOT_TABLE}")
            _pg_create(self._cur, weekly)
            if self.replace is not None:
                self._cur.execute(f"DELETE FROM {SNAPSHOT_TABLE} WHERE tenancy_id = ANY(%s)", [list(self.replace)])
        _pg_copy(self._cur, weekly)

    def _write_parquet(self, weekly: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self._parquet is None:
            self._tmp.parent.mkdir(parents=True, exist_ok=True)
            schema = pa.Schema.from_pandas(weekly, preserve_index=False)
            self._parquet = pq.ParquetWriter(self._tmp, schema)
            if self.replace is not None and snapshot_path(self.settings).exists():
                import pyarrow.compute as pc

                old = pq.read_table(snapshot_path(self.settings))
                wanted = pa.array([str(t) for t in self.replace], type=pa.string())
                keep = pc.invert(pc.is_in(old["tenancy_id"], value_set=wanted))
                self._parquet.write_table(old.filter(keep).cast(schema))
        self._parquet.write_table(pa.Table.from_pandas(weekly, schema=self._parquet.schema, preserve_index=False))

    def close(self, failed: BaseException | None = None) -> None:
        """Publish what was written, or (`failed`) throw it away: readers keep the previous snapshots."""
        if self._pg is not None:
            self._cur.close()
            self._tx.__exit__(type(failed) if failed else None, failed, None)  # commit, or roll back
            self._pg.close()
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


def write_offline(settings: FeatureSettings, weekly: pd.DataFrame, replace_tenancies: Sequence[str] | None = None) -> None:
    """Write weekly snapshots: all of them, or (with `replace_tenancies`) replace just those tenancies' rows."""
    with OfflineWriter(settings, replace_tenancies) as writer:
        writer.write(weekly)


def read_offline(settings: FeatureSettings, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Weekly snapshots (optionally only some columns), from whichever offline store the profile uses."""
    if settings.feast_profile == "production":
        with _pg_connect(settings) as con:
            return _pg_read(con, columns)
    return pd.read_parquet(snapshot_path(settings), columns=list(columns) if columns else None)


def _pg_read(con, columns: Sequence[str] | None = None) -> pd.DataFrame:
    with con.cursor() as cur:
        cur.execute(f"SELECT {', '.join(columns) if columns else '*'} FROM {SNAPSHOT_TABLE} "
                    "ORDER BY tenancy_id, event_timestamp")
        rows = cur.fetchall()
        names = [d.name for d in cur.description]
    frame = pd.DataFrame(rows, columns=names)
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True).astype("datetime64[us, UTC]")
    return frame


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
    live = _sorted(pd.concat(current, ignore_index=True))
    _atomic_parquet(live, live_path(settings))
    return BuildResult(writer.rows, tenancies, first, last, live["event_timestamp"].max())


# -- Feast --------------------------------------------------------------------------------------------------------
def feast_variables(settings: FeatureSettings) -> dict[str, str]:
    """The `${VARIABLES}` of the profile's feature_store.yaml and of the repo's declarations."""
    try:
        return settings.feast_variables()
    except ValueError as exc:
        raise FeatureStageError(str(exc)) from exc


def apply_repo(settings: FeatureSettings) -> str:
    """Run the real `feast apply` on the repo, against this home's (or the production) registry."""
    settings.feast_dir.mkdir(parents=True, exist_ok=True)
    feast = Path(sys.executable).with_name("feast")
    command = [str(feast) if feast.exists() else "feast", "-c", str(settings.feature_repo),
               "-f", str(settings.feature_store_yaml), "apply"]
    env = {**os.environ, **settings.child_env(), **feast_variables(settings)}  # the child's, not ours
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise FeatureStageError(f"`feast apply` failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def open_store(settings: FeatureSettings):
    """A FeatureStore on the repo with this profile's configuration, its `${VARIABLES}` filled from settings."""
    from feast import FeatureStore

    if settings.feast_profile == "local" and not (settings.feast_dir / "registry.db").exists():
        raise FeatureStageError("The Feast registry does not exist yet: run `arrears features` first.")
    return FeatureStore(repo_path=str(settings.feature_repo), config=repo_config(settings))


def repo_config(settings: FeatureSettings):
    """The profile's feature_store.yaml as a Feast RepoConfig, its `${VARIABLES}` filled from the settings (Feast
    itself would read them from the process environment, which would then have to hold the database password)."""
    import yaml
    from feast.repo_config import RepoConfig

    variables = feast_variables(settings)

    def fill(match: re.Match) -> str:
        if match.group(1) not in variables:
            raise FeatureStageError(f"{settings.feature_store_yaml.name} uses ${{{match.group(1)}}}, which the "
                                    "settings do not provide")
        return variables[match.group(1)]

    text = re.sub(r"\$\{(ARREARS_\w+)\}", fill, settings.feature_store_yaml.read_text())
    config = RepoConfig(**yaml.safe_load(text))
    config.repo_path = settings.feature_repo
    return config


def push_online(settings: FeatureSettings, current: pd.DataFrame, store=None) -> int:
    """Write current snapshots to the online store through the push source.

    The online row's timestamp is when it was computed, so a newer push always replaces an older one (Redis keeps
    the row with the latest timestamp); the as-of date is kept in the live file.
    """
    from feast.data_source import PushMode

    if current.empty:
        return 0
    store = store or open_store(settings)
    rows = current.assign(patch=current["patch"].astype(str), event_timestamp=pd.Timestamp.now(tz="UTC").floor("us"))
    store.push(PUSH_SOURCE, rows, to=PushMode.ONLINE)
    return len(rows)


def materialize_latest(settings: FeatureSettings) -> pd.Timestamp:
    """Fill the online store with the current snapshot of every live tenancy."""
    current = live_tenancies(settings)
    push_online(settings, current)
    return pd.Timestamp(current["event_timestamp"].max())


def live_tenancies(settings: FeatureSettings) -> pd.DataFrame:
    """The population a worklist ranks: tenancies live at the ledger's latest date, with their current features."""
    path = live_path(settings)
    if not path.exists():
        raise FeatureStageError("No snapshots yet: run `arrears features` first.")
    return pd.read_parquet(path)


# -- freshness ----------------------------------------------------------------------------------------------------
def definitions_fingerprint(settings: FeatureSettings) -> str:
    """What the snapshots depend on besides the ledger: the feature code, the repo and the profile."""
    digest = hashlib.sha256()
    base = Path(__file__).resolve().parent
    for path in sorted([base / "transforms.py", base / "catalogue.py", *settings.feature_repo.glob("*.py"),
                        settings.feature_store_yaml]):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    digest.update(json.dumps(feast_variables(settings), sort_keys=True).encode())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Manifest:
    ledger_seq: int
    fingerprint: str
    last_weekly: str
    current_as_of: str


def manifest_path(settings: FeatureSettings) -> Path:
    return settings.feast_dir / MANIFEST_FILE


def read_manifest(settings: FeatureSettings) -> Manifest | None:
    path = manifest_path(settings)
    if not path.exists():
        return None
    try:
        return Manifest(**json.loads(path.read_text()))
    except (ValueError, TypeError):
        return None


def write_manifest(settings: FeatureSettings, manifest: Manifest) -> None:
    path = manifest_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(manifest), indent=2))
    os.replace(tmp, path)


def _ledger_seq(settings: FeatureSettings) -> int:
    with open_ledger(settings.ledger) as ledger:
        return ledger.last_delivery_seq()


def refresh_tenancies(settings: FeatureSettings, tenancy_ids: Sequence[str], store=None) -> int:
    """Recompute the touched tenancies' current snapshot, push it online and update the live file.

    Called after an ingest, so the online store reflects a payment within seconds; the weekly (training)
    snapshots catch up at the next `arrears features`.
    """
    if not tenancy_ids or not live_path(settings).exists():
        return 0
    _, today = ledger_dates(settings)
    current = _current(load_ledger_slice(settings, tenancy_ids), today)
    pushed = push_online(settings, current, store)
    _update_live(settings, current, tenancy_ids)
    return pushed


def _update_live(settings: FeatureSettings, current: pd.DataFrame, touched: Sequence[str]) -> None:
    """Replace the touched tenancies' rows of the live file (a tenancy that has ended drops out)."""
    live = live_tenancies(settings)
    live = live[~live["tenancy_id"].isin(set(touched))]
    if len(current):  # the as-of date of the whole list is the ledger's latest date
        live = live.assign(event_timestamp=current["event_timestamp"].max())
    _atomic_parquet(_sorted(pd.concat([live, current], ignore_index=True)), live_path(settings))


@dataclass(frozen=True)
class RefreshResult:
    mode: str  # "unchanged", "incremental" or "full"
    tenancies: int
    seconds: float
    detail: str


def refresh(settings: FeatureSettings, force_full: bool = False) -> RefreshResult:
    """Bring offline and online features up to date with the ledger, doing as little as is correct.

    - nothing changed since the last run (same deliveries, same definitions): nothing to do;
    - new deliveries, same weekly dates: recompute only the touched tenancies (offline rows and online rows);
    - a new week, changed definitions or no previous run: full build, `feast apply`, fill the online store.
    """
    started = time.perf_counter()
    seq = _ledger_seq(settings)
    fingerprint = definitions_fingerprint(settings)
    first, today = ledger_dates(settings)
    weeks = weekly_as_of_dates(first, today)
    last_weekly = str(weeks[-1].date()) if len(weeks) else ""
    previous = read_manifest(settings)
    same_shape = (previous is not None and previous.fingerprint == fingerprint
                  and previous.last_weekly == last_weekly and live_path(settings).exists()
                  and (settings.feast_profile == "production" or snapshot_path(settings).exists()))
    if not force_full and same_shape and previous.ledger_seq == seq:
        return RefreshResult("unchanged", 0, time.perf_counter() - started,
                             f"features already reflect delivery {seq}")
    if not force_full and same_shape:
        with open_ledger(settings.ledger) as ledger:
            touched = ledger.touched_tenancies(previous.ledger_seq)
        if not touched:  # e.g. a delivery re-sent: every row a duplicate
            write_manifest(settings, Manifest(seq, fingerprint, last_weekly, str(today.date())))
            return RefreshResult("unchanged", 0, time.perf_counter() - started,
                                 f"deliveries {previous.ledger_seq + 1}–{seq} changed no tenancy")
        weekly, current = compute_snapshots(settings, touched)
        write_offline(settings, weekly, replace_tenancies=touched)
        push_online(settings, current)
        _update_live(settings, current, touched)
        write_manifest(settings, Manifest(seq, fingerprint, last_weekly, str(today.date())))
        return RefreshResult("incremental", len(touched), time.perf_counter() - started,
                             f"recomputed {len(touched):,} tenancies touched by deliveries "
                             f"{previous.ledger_seq + 1}–{seq}")
    result = build_offline(settings)
    apply_repo(settings)
    materialize_latest(settings)
    write_manifest(settings, Manifest(seq, fingerprint, last_weekly, str(today.date())))
    return RefreshResult("full", result.tenancies, time.perf_counter() - started,
                         f"{result.rows:,} weekly snapshots of {result.tenancies:,} tenancies, "
                         f"{result.first_as_of.date()} to {result.last_as_of.date()}; current as of "
                         f"{result.current_as_of.date()}")
