"""The feature store on both profiles: point-in-time training sets, fresh online features, incremental refresh and
Dask parity, against the real stores (local: Parquet/DuckDB + SQLite; production: Postgres + Redis on this machine).
"""

from __future__ import annotations

import time
import uuid
import warnings

import pandas as pd
import pytest
from typer.testing import CliRunner

from arrears.cli import app
from features.settings import load_settings
from serving.settings import get_settings
from simulator import simulate_portfolio, write_portfolio
from tests.conftest import POSTGRES_ADMIN_URL, _postgres_schema_url, write_delivery

runner = CliRunner()
END = pd.Timestamp("2026-10-31")


def ok(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())  # the console wraps long lines


@pytest.fixture(scope="module", params=["local", pytest.param("production", marks=pytest.mark.postgres)])
def portfolio(request, tmp_path_factory):
    """A small simulated portfolio ingested and featurised on one profile."""
    root = tmp_path_factory.mktemp(f"store_{request.param}")
    mp = pytest.MonkeyPatch()
    mp.setenv("ARREARS_HOME", str(root / "home"))
    for name in ("ARREARS_LEDGER_URL", "ARREARS_MLFLOW_TRACKING_URI", "ARREARS_DASK_SCHEDULER"):
        mp.delenv(name, raising=False)
    schema = None
    if request.param == "production":
        url, schema = _postgres_schema_url()
        mp.setenv("ARREARS_FEAST_PROFILE", "production")
        mp.setenv("ARREARS_LEDGER_URL", url)
        mp.setenv("ARREARS_FEAST_POSTGRES_URL", url)
        mp.setenv("ARREARS_REDIS_URL", "redis://127.0.0.1:6379/0")
        mp.setenv("ARREARS_FEAST_PROJECT", f"t_{uuid.uuid4().hex[:10]}")  # its own keys on the shared Redis
    else:
        mp.setenv("ARREARS_FEAST_PROFILE", "local")
    load_settings.cache_clear()
    sim = simulate_portfolio(n_tenancies=150, years=1.0, seed=5, end_date=END.date())
    write_portfolio(sim, root / "delivery")
    ok(["ingest", str(root / "delivery")])
    first = ok(["features"])
    yield {"root": root, "settings": get_settings(), "sim": sim, "profile": request.param, "first": first}
    if request.param == "production":
        from features.store.feast import open_store

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            open_store(get_settings()).teardown()  # remove this project's keys from Redis
        import psycopg

        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as con:
            con.execute(f"DROP SCHEMA {schema} CASCADE")
    mp.undo()
    load_settings.cache_clear()


def _store(settings):
    from features.store.feast import open_store

    return open_store(settings)


def historical(settings, rows: pd.DataFrame) -> pd.DataFrame:
    from features.store.feast import historical_features

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return historical_features(_store(settings), rows, "arrears_risk_v1")


def online(settings, tenancy_id: str, as_of: pd.Timestamp) -> dict:
    store = _store(settings)
    frame = store.get_online_features(features=store.get_feature_service("arrears_risk_v1"),
                                      entity_rows=[{"tenancy_id": tenancy_id, "as_of": as_of.to_pydatetime()}]).to_df()
    return frame.iloc[0].to_dict()


def payment(root, name: str, tenancy_id: str, day: pd.Timestamp, pounds: float):
    tx = pd.DataFrame({"transaction_id": [f"X-{name}"], "tenancy_id": [tenancy_id], "posted_date": [str(day.date())],
                       "type": ["payment"], "amount": [-pounds], "method": ["card"]})
    return write_delivery(root / name, transactions=tx)


def busy_tenancy(settings) -> str:
    from features.store.offline import live_tenancies

    live = live_tenancies(settings)
    return live.sort_values(["balance", "tenancy_id"], ascending=[False, True])["tenancy_id"].iloc[0]


def test_first_build_is_full_and_a_rerun_does_nothing(portfolio) -> None:
    assert "Features: full" in portfolio["first"]
    assert "Features: unchanged" in ok(["features"])
    ok(["ingest", str(portfolio["root"] / "delivery")])  # the same delivery again: every row a duplicate
    assert "Features: unchanged" in ok(["features"])


def test_a_later_payment_never_changes_earlier_training_rows(portfolio) -> None:
    """Leakage: a large payment dated after as_of changes nothing at as_of, and is seen at the next week."""
    from features.store.offline import read_offline

    settings = portfolio["settings"]
    tenancy = busy_tenancy(settings)
    offline = read_offline(settings)
    dates = sorted(offline.loc[offline["tenancy_id"] == tenancy, "event_timestamp"].unique())
    as_of, next_week = pd.Timestamp(dates[-8]), pd.Timestamp(dates[-7])
    rows = pd.DataFrame({"tenancy_id": [tenancy, tenancy], "event_timestamp": [as_of, next_week]})
    before = historical(settings, rows)

    ok(["ingest", str(payment(portfolio["root"], "late", tenancy, as_of.tz_localize(None) + pd.Timedelta(days=1),
                                5_000.0))])
    out = ok(["features"])
    assert "Features: incremental" in out and "recomputed 1 tenancies" in out
    after = historical(settings, rows)

    pd.testing.assert_frame_equal(before.iloc[[0]], after.iloc[[0]])  # as_of: every feature unchanged
    assert after["balance"].iloc[1] == pytest.approx(before["balance"].iloc[1] - 5_000.0)
    assert after["days_since_last_payment"].iloc[1] <= 6


def test_online_features_reflect_a_payment_as_soon_as_it_is_ingested(portfolio) -> None:
    from features.store.offline import live_tenancies

    settings = portfolio["settings"]
    tenancy = busy_tenancy(settings)
    today = pd.Timestamp(live_tenancies(settings)["event_timestamp"].max()).tz_localize(None)
    before = online(settings, tenancy, today)

    started = time.perf_counter()
    out = ok(["ingest", str(payment(portfolio["root"], "today", tenancy, today, 123.45))])
    after = online(settings, tenancy, today)  # no `arrears features` in between
    seconds = time.perf_counter() - started

    assert "Online features refreshed for 1 tenancies" in out
    assert after["balance"] == pytest.approx(before["balance"] - 123.45)
    assert after["days_since_last_payment"] == 0
    assert after["payments_4w"] == before["payments_4w"] + 1
    assert seconds < 60, f"took {seconds:.1f} s"
    # The weekly (training) snapshots are not touched by the push: they catch up at the next `arrears features`.
    assert "Features: incremental" in ok(["features"])


def test_request_date_moves_the_recency_features(portfolio) -> None:
    from features.store.offline import live_tenancies

    settings = portfolio["settings"]
    tenancy = busy_tenancy(settings)
    today = pd.Timestamp(live_tenancies(settings)["event_timestamp"].max()).tz_localize(None)
    now, later = online(settings, tenancy, today), online(settings, tenancy, today + pd.Timedelta(days=3))
    assert later["days_since_last_payment"] == now["days_since_last_payment"] + 3
    assert later["tenancy_age_days"] == now["tenancy_age_days"] + 3
    assert later["balance"] == now["balance"]


def test_a_build_in_small_partitions_gives_the_same_snapshots(portfolio) -> None:
    from features.store.offline import compute_snapshots

    settings = portfolio["settings"]
    weekly, current = compute_snapshots(settings)
    p_weekly, p_current = compute_snapshots(settings, partition_tenancies=7)
    pd.testing.assert_frame_equal(weekly, p_weekly)
    pd.testing.assert_frame_equal(current, p_current)


def test_dask_cluster_gives_the_same_snapshots(portfolio) -> None:
    from features.store.offline import compute_snapshots

    settings = portfolio["settings"]
    weekly, current = compute_snapshots(settings)
    d_weekly, d_current = compute_snapshots(settings, scheduler="local", partition_tenancies=60)  # 3 partitions
    pd.testing.assert_frame_equal(weekly.reset_index(drop=True), d_weekly)
    pd.testing.assert_frame_equal(current.reset_index(drop=True), d_current)


def test_a_build_that_fails_part_way_publishes_nothing(portfolio, monkeypatch) -> None:
    """The real offline writer (Parquet or Postgres): a failure after some partitions leaves the previous snapshots."""
    from features.store import offline as store

    settings = portfolio["settings"]
    before = store.read_offline(settings)
    real = store.iter_snapshots

    def first_partition_then_failure(*args, **kwargs):
        for i, part in enumerate(real(*args, **{**kwargs, "partition_tenancies": 50})):
            if i == 1:
                raise RuntimeError("worker lost")
            yield part

    monkeypatch.setattr(store, "iter_snapshots", first_partition_then_failure)
    with pytest.raises(RuntimeError, match="worker lost"):
        store.build_offline(settings)
    after = store.read_offline(settings)
    pd.testing.assert_frame_equal(before.sort_values(["tenancy_id", "event_timestamp"]).reset_index(drop=True),
                                  after.sort_values(["tenancy_id", "event_timestamp"]).reset_index(drop=True))
