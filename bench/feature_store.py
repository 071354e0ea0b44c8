"""The feature-store suite: `uv run python -m bench --suite features [--tenancies N ...] [--years Y]`.

Measured per portfolio size, each in a fresh process (peak memory its own), median of `--repeats` runs:

| measure | what is timed | baseline |
|---|---|---|
| `snapshots` | `build_snapshots` over the whole history (the pure function, no I/O) | `naive` |
| `naive` | `bench.naive_features.naive_snapshots`, the simplest correct pandas version, same input | |
| `full_build` | `arrears features --full`: ledger → snapshots → offline store, `feast apply`, online push | |
| `unchanged` | `arrears features` when nothing changed since the last run | `full_build` |
| `one_day` | `arrears features` after ingesting one more day's payments (incremental) | `full_build` |
| `historical` | `get_historical_features` through `arrears_risk_v1` for `--entity-rows` (tenancy, as_of) rows | |

and online lookup latency (p50/p99 over many calls, after a warm-up) for 1 and 100 tenancies through the
`arrears_risk_v1` FeatureService from SQLite (local profile) and from Redis (production profile: Postgres registry
and offline store, on the servers of this machine).
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
import uuid
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg

from bench.naive_features import naive_snapshots
from bench.runner import peak_mb, print_table, spawn, spawn_result, summary
from features.feeds.ingest import ingest_delivery
from features.ledger import open_ledger
from features.settings import load_settings
from features.store.feast import historical_features, open_store
from features.store.offline import live_tenancies, read_offline
from features.store.refresh import refresh
from features.transforms import build_snapshots, weekly_as_of_dates
from serving.settings import get_settings
from simulator import simulate_portfolio, write_portfolio

POSTGRES_URL = os.environ.get("ARREARS_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("ARREARS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def _env(work: Path, profile: str = "local") -> dict[str, str]:
    env = {"ARREARS_HOME": str(work / "home"), "ARREARS_FEAST_PROFILE": profile}
    if profile == "production":
        lines = (work / "production.env").read_text().splitlines()
        env |= dict(line.split("=", 1) for line in lines)
    return env


def _use(env: dict[str, str]) -> None:
    for name in ("ARREARS_LEDGER_URL", "ARREARS_FEAST_POSTGRES_URL", "ARREARS_FEAST_PROJECT"):
        os.environ.pop(name, None)
    os.environ.update(env)
    load_settings.cache_clear()


def simulate_deliveries(work: Path, tenancies: int, years: float) -> int:
    """Simulate the portfolio and write it as one delivery per year of history (how a backfill arrives, and what
    keeps ingestion's memory bounded): the first holds the tenancies, each holds its year's transactions and
    events. Returns the number of deliveries."""
    write_portfolio(simulate_portfolio(n_tenancies=tenancies, years=years, seed=1), work / "whole")
    tx = pd.read_csv(work / "whole" / "transactions.csv", dtype=str, keep_default_na=False)
    events = pd.read_csv(work / "whole" / "events.csv", dtype=str, keep_default_na=False)
    edges = pd.date_range(end=pd.Timestamp(tx["posted_date"].max()) + pd.Timedelta(days=1),
                          periods=max(1, int(round(years))) + 1, freq="365D")
    deliveries = len(edges) - 1

    def between(frame: pd.DataFrame, column: str, lo: pd.Timestamp, hi: pd.Timestamp) -> pd.DataFrame:
        day = pd.to_datetime(frame[column])
        return frame[(day >= lo) & (day < hi)]

    for k in range(deliveries):
        folder = work / f"delivery{k}"
        folder.mkdir()
        lo = pd.Timestamp.min if k == 0 else edges[k]
        between(tx, "posted_date", lo, edges[k + 1]).to_csv(folder / "transactions.csv", index=False)
        between(events, "event_date", lo, edges[k + 1]).to_csv(folder / "events.csv", index=False)
        if k == 0:
            shutil.copy(work / "whole" / "tenancies.csv", folder / "tenancies.csv")
    shutil.rmtree(work / "whole")
    return deliveries


def ingest_one(work: Path, k: int) -> None:
    _use(_env(work))
    with open_ledger(get_settings().ledger) as ledger:
        ingest_delivery(ledger, work / f"delivery{k}", work / "quarantine")
    shutil.rmtree(work / f"delivery{k}")


def prepare(work: Path, repeats: int) -> None:
    """Stage the pure-function inputs, run the first full build, and write one-day deliveries (after
    `simulate_deliveries` and `ingest_one` for each delivery, each in its own process)."""
    _use(_env(work))
    settings = get_settings()
    with open_ledger(settings.ledger) as ledger:
        for table in ("tenancy_register", "transactions", "events"):
            ledger.read_table(table).to_parquet(work / f"{table}.parquet")
    refresh(settings)
    # One day's payments: those of the busiest day of the last week, again, dated the ledger's last day and under
    # new ids (the same week, so the refresh is incremental).
    tx = pd.read_parquet(work / "transactions.parquet")
    recent = tx[(tx["posted_date"] > tx["posted_date"].max() - pd.Timedelta(days=7)) & (tx["type"] == "payment")]
    busiest = recent["posted_date"].value_counts().idxmax()
    last = recent[recent["posted_date"] == busiest].assign(posted_date=tx["posted_date"].max())
    for r in range(repeats):
        day = pd.DataFrame({"transaction_id": "DAY" + str(r) + "-" + last["transaction_id"],
                            "tenancy_id": last["tenancy_id"], "posted_date": last["posted_date"].dt.date.astype(str),
                            "type": "payment", "amount": (last["amount_pence"] / 100).round(2),
                            "method": last["method"]})
        (work / f"day{r}").mkdir()
        day.to_csv(work / f"day{r}" / "transactions.csv", index=False)
    (work / "day_rows.txt").write_text(str(len(last)))


def prepare_production(work: Path) -> None:
    """A production-profile feature store (Postgres registry + offline table, Redis online) on the same ledger."""
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as con:
        con.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in POSTGRES_URL else "?"
    (work / "production.env").write_text("\n".join([
        f"ARREARS_FEAST_POSTGRES_URL={POSTGRES_URL}{sep}options=-csearch_path%3D{schema}",
        f"ARREARS_REDIS_URL={REDIS_URL}", f"ARREARS_FEAST_PROJECT={schema}", f"ARREARS_BENCH_SCHEMA={schema}"]))
    _use(_env(work, "production"))
    refresh(get_settings(), force_full=True)


def cleanup_production(work: Path) -> None:
    if not (work / "production.env").exists():
        return
    env = _env(work, "production")
    _use(env)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        open_store(get_settings()).teardown()
    with psycopg.connect(POSTGRES_URL, autocommit=True) as con:
        con.execute(f"DROP SCHEMA {env['ARREARS_BENCH_SCHEMA']} CASCADE")


def measure(kind: str, work: Path, run: int, entity_rows: int) -> tuple[float, int]:
    """Run one measurement in this (fresh) process; returns (seconds, rows)."""
    warnings.simplefilter("ignore")
    if kind in ("snapshots", "naive"):
        tenancies, tx, events = (pd.read_parquet(work / f"{t}.parquet")
                                 for t in ("tenancy_register", "transactions", "events"))
        as_of = weekly_as_of_dates(tx["posted_date"].min(), tx["posted_date"].max())
        start = time.perf_counter()
        if kind == "snapshots":
            rows = len(build_snapshots(tenancies, tx, as_of, events))
        else:
            rows = len(naive_snapshots(tenancies, tx, as_of, events))
        return time.perf_counter() - start, rows

    _use(_env(work))
    settings = get_settings()
    if kind == "full_build":
        start = time.perf_counter()
        result = refresh(settings, force_full=True)
        return time.perf_counter() - start, result.tenancies
    if kind == "unchanged":
        start = time.perf_counter()
        result = refresh(settings)
        assert result.mode == "unchanged", result
        return time.perf_counter() - start, 0
    if kind == "one_day":
        with open_ledger(settings.ledger) as ledger:
            ingest_delivery(ledger, work / f"day{run}", work / "quarantine")
        start = time.perf_counter()
        result = refresh(settings)
        assert result.mode == "incremental", result
        return time.perf_counter() - start, result.tenancies
    if kind == "historical":
        keys = read_offline(settings, columns=["tenancy_id", "event_timestamp"])
        entity = keys.sample(n=entity_rows, replace=len(keys) < entity_rows, random_state=run)
        store = open_store(settings)
        start = time.perf_counter()
        rows = len(historical_features(store, entity, "arrears_risk_v1"))
        return time.perf_counter() - start, rows
    raise ValueError(kind)


def latency(work: Path, profile: str, calls: int = 300) -> dict[str, float]:
    """p50/p99 milliseconds of online lookups for 1 and 100 tenancies (run in a fresh process)."""
    warnings.simplefilter("ignore")
    _use(_env(work, profile))
    settings = get_settings()
    store = open_store(settings)
    service = store.get_feature_service("arrears_risk_v1")
    live = live_tenancies(settings)
    today = live["event_timestamp"].max().to_pydatetime()
    ids = live["tenancy_id"].to_numpy()
    rng = np.random.default_rng(0)
    out = {}
    for batch in (1, 100):
        times = []
        for i in range(calls + 20):
            rows = [{"tenancy_id": t, "as_of": today} for t in rng.choice(ids, size=batch, replace=len(ids) < batch)]
            start = time.perf_counter()
            store.get_online_features(features=service, entity_rows=rows).to_dict()
            if i >= 20:  # warm-up
                times.append((time.perf_counter() - start) * 1000)
        out[f"p50_{batch}"] = statistics.median(times)
        out[f"p99_{batch}"] = float(np.percentile(times, 99))
    return out


def run_measurement(kind: str, workdir: str, queue, run: int = 0, entity_rows: int = 0) -> None:
    """One measurement in a spawned process (`bench.runner.spawn`): its figures and peak memory on the queue."""
    if kind.startswith("latency_"):
        queue.put({**latency(Path(workdir), kind.removeprefix("latency_")), "peak_mb": peak_mb()})
        return
    seconds, rows = measure(kind, Path(workdir), run, entity_rows)
    queue.put({"seconds": seconds, "rows": rows, "peak_mb": peak_mb()})


def _latencies(work: Path, n: int) -> list[dict]:
    """Online lookup latency from SQLite (the local profile) and Redis (production: Postgres and Redis)."""
    out = []
    try:
        spawn_result(prepare_production, work)
        for profile in ("sqlite", "redis"):
            kind = f"latency_{'local' if profile == 'sqlite' else 'production'}"
            result = spawn(run_measurement, kind, str(work))
            out.append({"tenancies": n, "store": profile, **result})
            print(f"  latency {profile}: {result}", flush=True)
    finally:
        spawn_result(cleanup_production, work)
    return out


def print_latencies(latencies: list[dict]) -> None:
    header = (f"{'tenancies':>9} {'online store':<12} {'p50 1 ms':>9} {'p99 1 ms':>9} {'p50 100 ms':>11} "
              f"{'p99 100 ms':>11}")
    print("\n" + header + "\n" + "-" * len(header))
    for r in latencies:
        print(f"{r['tenancies']:>9,} {r['store']:<12} {r['p50_1']:>9.2f} {r['p99_1']:>9.2f} "
              f"{r['p50_100']:>11.2f} {r['p99_100']:>11.2f}")


def suite(args) -> list[dict]:
    results, latencies = [], []
    for n in args.tenancies:
        with tempfile.TemporaryDirectory(prefix="arrears-bench-fs-") as tmp:
            work = Path(tmp)
            print(f"preparing {n:,} tenancies x {args.years:g} years…", flush=True)
            for k in range(spawn_result(simulate_deliveries, work, n, args.years)):
                spawn_result(ingest_one, work, k)
            spawn_result(prepare, work, args.repeats)
            plan = [("full_build", None), ("unchanged", "full_build"), ("one_day", "full_build"),
                    ("historical", None)]
            if n <= args.naive_max:  # the whole-portfolio pure build and its naive baseline (both in memory)
                plan[:0] = [("snapshots", "naive"), ("naive", None)]
            for kind, baseline in plan:
                repeats = 1 if kind == "naive" else args.repeats
                runs = [spawn(run_measurement, kind, str(work), r, args.entity_rows) for r in range(repeats)]
                results.append(summary(runs) | {"tenancies": n, "measure": kind, "baseline": baseline})
                print(f"  {kind:<11} {results[-1]['seconds']:8.2f} s", flush=True)
            if args.latency:
                latencies += _latencies(work, n)
    print_table(results)
    if latencies:
        print_latencies(latencies)
    return results + latencies
