"""The feature store on both profiles: point-in-time training sets, fresh online features, incremental refresh and
Dask parity, against the real stores (local: Parquet/DuckDB + SQLite; production: Postgres + Redis on this machine).
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
import warnings

import pandas as pd
import pytest

from serving.settings import get_settings
from simulator import simulate_portfolio, write_portfolio
from tests.support.cli import ok, words
from tests.support.deliveries import write_delivery
from tests.support.homes import isolated_home
from tests.support.postgres import REDIS_URL, create_schema, drop_schema

END = pd.Timestamp("2026-10-31")


def features(*args: str) -> str:
    return words(ok("features", *args))


def _production(home) -> tuple[dict[str, str], str]:
    url, schema = create_schema()
    return {"ARREARS_FEAST_PROFILE": "production", "ARREARS_LEDGER_URL": url, "ARREARS_FEAST_POSTGRES_URL": url,
            "ARREARS_REDIS_URL": REDIS_URL,
            "ARREARS_FEAST_PROJECT": f"t_{uuid.uuid4().hex[:10]}"}, schema  # its own keys on the shared Redis


@pytest.fixture(scope="module", params=["local", pytest.param("production", marks=[pytest.mark.postgres,
                                                                                   pytest.mark.redis])])
def portfolio(request, tmp_path_factory):
    """A small simulated portfolio ingested and featurised on one profile."""
    root = tmp_path_factory.mktemp(f"store_{request.param}")
    variables, schema = _production(root) if request.param == "production" else ({"ARREARS_FEAST_PROFILE": "local"},
                                                                                 None)
    with isolated_home(root / "home", **variables):
        sim = simulate_portfolio(n_tenancies=150, years=1.0, seed=5, end_date=END.date())
        write_portfolio(sim, root / "delivery")
        ok("ingest", str(root / "delivery"))
        first = features()
        yield {"root": root, "settings": get_settings(), "sim": sim, "profile": request.param, "first": first}
        if request.param == "production":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _store(get_settings()).teardown()  # remove this project's keys from Redis
            drop_schema(schema)


def _store(settings):
    from features.store.feast import open_store

    return open_store(settings)


def historical(settings, rows: pd.DataFrame) -> pd.DataFrame:
    from features.store.feast import historical_features

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return historical_features(_store(settings), rows, "arrears_risk_v1")


def online(settings, tenancy_id: str, as_of: pd.Timestamp) -> dict:
    from features.store.feast import online_features

    return online_features(_store(settings), "arrears_risk_v1", [tenancy_id], as_of).iloc[0].to_dict()


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
    assert "Features: unchanged" in features()
    ok("ingest", str(portfolio["root"] / "delivery"))  # the same delivery again: every row a duplicate
    assert "Features: unchanged" in features()


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

    ok("ingest", str(payment(portfolio["root"], "late", tenancy, as_of.tz_localize(None) + pd.Timedelta(days=1),
                             5_000.0)))
    out = features()
    assert "Features: incremental" in out and "recomputed 1 tenancies" in out
    after = historical(settings, rows)

    pd.testing.assert_frame_equal(before.iloc[[0]], after.iloc[[0]])  # as_of: every feature unchanged
    assert after["balance"].iloc[1] == pytest.approx(before["balance"].iloc[1] - 5_000.0)
    assert after["days_since_last_payment"].iloc[1] <= 6


def test_features_as_of_any_day_are_the_ledgers_on_that_day_and_missing_ones_are_counted(portfolio) -> None:
    """A mid-week date gets the snapshot computed from the ledger as of that very day (not the Sunday before's);
    a row that cannot have features is counted with its reason, never returned silently empty."""
    from features.store.exact import exact_snapshots
    from features.store.feast import service_feature_names
    from features.store.offline import ledger_dates, load_ledger_slice, snapshots
    from features.timeline import weekly_as_of_dates

    settings = portfolio["settings"]
    first, last = ledger_dates(settings)
    part = load_ledger_slice(settings)
    wednesday = weekly_as_of_dates(first, last, weekday=2)[-10]
    days = [wednesday, wednesday + pd.Timedelta(days=2)]
    truth = pd.concat([snapshots(part, weekly_as_of_dates(first, day, weekday=day.weekday())).pipe(
        lambda f, day=day: f[f["event_timestamp"] == day.tz_localize("UTC")]) for day in days])
    ids = sorted(set(truth["tenancy_id"]))[:15]
    wanted = truth[truth["tenancy_id"].isin(ids)].sort_values(["event_timestamp", "tenancy_id"], ignore_index=True)
    ended = part.tenancies[pd.to_datetime(part.tenancies["end_date"]) < wednesday]["tenancy_id"].iloc[0]
    odd = pd.DataFrame({"tenancy_id": ["T999999", ids[0], ended],
                        "event_timestamp": [wednesday, last + pd.Timedelta(days=10), wednesday]})
    rows = pd.concat([wanted[["tenancy_id", "event_timestamp"]], odd.assign(
        event_timestamp=pd.to_datetime(odd["event_timestamp"]).dt.tz_localize("UTC"))], ignore_index=True)

    coverage = exact_snapshots(settings, rows)
    assert (coverage.requested, coverage.stored + coverage.computed, len(coverage.missing)) == (len(rows),
                                                                                                len(wanted), 3)
    reasons = dict(zip(coverage.missing["tenancy_id"], coverage.missing["reason"], strict=True))
    assert reasons["T999999"] == "not in the tenancy register"
    assert reasons[ids[0]].startswith("dated after the ledger's latest posting")
    assert reasons[ended].startswith("not live on that date")
    assert "3 of" in coverage.summary() and f"{(last + pd.Timedelta(days=10)):%Y-%m-%d}" in coverage.summary()

    got = historical(settings, wanted[["tenancy_id", "event_timestamp"]])
    names = service_feature_names(_store(settings), "arrears_risk_v1")
    pd.testing.assert_frame_equal(got[names].astype(float), wanted[names].astype(float), check_exact=False)
    again = exact_snapshots(settings, rows)  # safe to re-run: nothing computed twice
    assert (again.stored, again.computed) == (len(wanted), 0)


def test_online_features_reflect_a_payment_as_soon_as_it_is_ingested(portfolio) -> None:
    from features.store.offline import live_tenancies

    settings = portfolio["settings"]
    tenancy = busy_tenancy(settings)
    today = pd.Timestamp(live_tenancies(settings)["event_timestamp"].max()).tz_localize(None)
    before = online(settings, tenancy, today)

    started = time.perf_counter()
    out = words(ok("ingest", str(payment(portfolio["root"], "today", tenancy, today, 123.45))))
    after = online(settings, tenancy, today)  # no `arrears features` in between
    seconds = time.perf_counter() - started

    assert "Online features refreshed for 1 tenancies" in out
    assert after["balance"] == pytest.approx(before["balance"] - 123.45)
    assert after["days_since_last_payment"] == 0
    assert after["payments_4w"] == before["payments_4w"] + 1
    assert seconds < 60, f"took {seconds:.1f} s"
    # The weekly (training) snapshots are not touched by the push: they catch up at the next `arrears features`.
    assert "Features: incremental" in features()


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


def test_opening_the_store_leaves_the_process_environment_alone(portfolio) -> None:
    """Feast gets its configuration (the production database password included) as a RepoConfig: nothing is
    written into this process's environment, where every child process and crash report would see it."""
    before = dict(os.environ)
    store = _store(portfolio["settings"])
    assert dict(os.environ) == before
    assert store.config.project == portfolio["settings"].feast_project


@pytest.mark.parametrize("portfolio", ["local"], indirect=True)  # the same code on both profiles
def test_changing_the_feed_contract_rebuilds_the_features(portfolio, tmp_path, monkeypatch) -> None:
    """The freshness fingerprint covers every file the build depends on: an edit to the feed contract (here, of a
    copy of the feature layer the fingerprint is pointed at) makes the next `arrears features` a full build."""
    from features.store import refresh

    source = tmp_path / "features"
    shutil.copytree(refresh.FEATURE_SOURCE, source, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(refresh, "FEATURE_SOURCE", source)
    features("--full")
    assert "Features: unchanged" in features()
    with open(source / "feeds" / "contract.py", "a") as contract:
        contract.write("\n# a new column would be declared here\n")
    assert "Features: full" in features()
    assert "Features: unchanged" in features()
