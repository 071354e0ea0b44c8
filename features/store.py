"""The feature stage's edges: ledger → offline snapshots (Parquet) → `feast apply` → online store.

The logic lives in `features.transforms`; this module only reads, writes and calls Feast.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pandas as pd

from features.ledger import open_ledger
from features.settings import Settings
from features.transforms import build_snapshots, weekly_as_of_dates

SNAPSHOT_FILE = "tenancy_snapshots.parquet"
LIVE_FILE = "live_tenancies.parquet"


class FeatureStageError(RuntimeError):
    """The feature stage cannot run; the message says what to do."""


@dataclass(frozen=True)
class BuildResult:
    snapshots: Path
    rows: int
    tenancies: int
    first_as_of: pd.Timestamp
    last_as_of: pd.Timestamp


def snapshot_path(settings: Settings) -> Path:
    return settings.offline_dir / SNAPSHOT_FILE


def live_path(settings: Settings) -> Path:
    return settings.offline_dir / LIVE_FILE


def _atomic_parquet(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def load_ledger_slice(settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The tenancy register and all transactions (the inputs of the snapshot build)."""
    with open_ledger(settings.ledger) as ledger:
        tenancies = ledger.read_table("tenancy_register")
        transactions = ledger.read_table("transactions")
    if tenancies.empty:
        raise FeatureStageError("The ledger has no tenancies yet: run `arrears ingest DIR` first.")
    return tenancies, transactions


def build_offline(settings: Settings, as_of_end: pd.Timestamp | None = None) -> BuildResult:
    """Compute weekly snapshots for every tenancy from its first transaction to the last posting date."""
    tenancies, transactions = load_ledger_slice(settings)
    last = pd.Timestamp(as_of_end) if as_of_end is not None else transactions["posted_date"].max()
    first = transactions["posted_date"].min()  # no snapshot before the first posting: nothing to see
    as_of = weekly_as_of_dates(first, last)
    snapshots = build_snapshots(tenancies, transactions, as_of)
    # Microseconds, not pandas' nanoseconds: Feast's DuckDB offline store cannot cast TIMESTAMPTZ_NS.
    snapshots["event_timestamp"] = snapshots["event_timestamp"].astype("datetime64[us, UTC]")
    _atomic_parquet(snapshots, snapshot_path(settings))
    latest = snapshots["event_timestamp"].max()
    live = snapshots.loc[snapshots["event_timestamp"] == latest, ["tenancy_id", "patch", "event_timestamp"]]
    _atomic_parquet(live, live_path(settings))
    return BuildResult(snapshot_path(settings), len(snapshots), snapshots["tenancy_id"].nunique(),
                       snapshots["event_timestamp"].min(), latest)


def feast_env(settings: Settings) -> dict[str, str]:
    return {**os.environ, **settings.subprocess_env()}


def apply_repo(settings: Settings) -> str:
    """Run the real `feast apply` on the repo, against this home's registry."""
    settings.feast_dir.mkdir(parents=True, exist_ok=True)
    feast = Path(sys.executable).with_name("feast")
    command = [str(feast) if feast.exists() else "feast", "-c", str(settings.feature_repo), "apply"]
    done = subprocess.run(command, env=feast_env(settings), capture_output=True, text=True)
    if done.returncode != 0:
        raise FeatureStageError(f"`feast apply` failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def open_store(settings: Settings):
    """A FeatureStore on the repo, resolving `${ARREARS_HOME}` in feature_store.yaml to this home."""
    from feast import FeatureStore

    os.environ.update(settings.subprocess_env())
    if not (settings.feast_dir / "registry.db").exists():
        raise FeatureStageError("The Feast registry does not exist yet: run `arrears features` first.")
    return FeatureStore(repo_path=str(settings.feature_repo))


def materialize_latest(settings: Settings) -> pd.Timestamp:
    """Load the latest snapshot of every live tenancy into the online store."""
    live = pd.read_parquet(live_path(settings))
    latest = pd.Timestamp(live["event_timestamp"].max())
    store = open_store(settings)
    store.materialize(start_date=(latest - timedelta(days=1)).to_pydatetime(),
                      end_date=(latest + timedelta(seconds=1)).to_pydatetime())
    return latest


def live_tenancies(settings: Settings) -> pd.DataFrame:
    """The population a worklist ranks: tenancies live at the latest snapshot, with their patch."""
    path = live_path(settings)
    if not path.exists():
        raise FeatureStageError("No snapshots yet: run `arrears features` first.")
    return pd.read_parquet(path)
