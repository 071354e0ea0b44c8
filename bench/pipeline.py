"""The pipeline suite (the default): `uv run python -m bench [--tenancies N ...] [--years Y] [--repeats R]`.

Each measurement runs in a fresh process (`bench.runner.run_measurement`), so its peak memory is its own, and is
repeated `--repeats` times; the table gives the median time and the ratio to the baseline measured in the same run:
- `read_csv`: a plain `pandas.read_csv` of every CSV in the delivery (the floor: no validation, no database);
- `ingest` (vs `read_csv`): `ingest_delivery` of the same delivery into a new DuckDB ledger;
- `snapshots`: `build_snapshots` over the whole history;
- `score`: a 300-tree booster scoring every live tenancy; `score_shap` (vs `score`): the same with exact TreeSHAP
  reasons (`serving.runs.explain.score_cases`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import lightgbm as lgb

from bench.runner import measure, print_table, run_measurement, spawn_result
from features.feeds.ingest import ingest_delivery
from features.ledger import open_ledger
from features.transforms import build_snapshots, weekly_as_of_dates
from simulator import simulate_portfolio, write_portfolio

PLAN = (("read_csv", None), ("ingest", "read_csv"), ("snapshots", None), ("score", None), ("score_shap", "score"))


def prepare(work: Path, tenancies: int, years: float) -> None:
    """Simulate a portfolio, write it as a delivery, and stage the inputs of the other measurements."""
    write_portfolio(simulate_portfolio(n_tenancies=tenancies, years=years, seed=1), work / "delivery")
    with open_ledger(f"duckdb:///{work / 'staging.duckdb'}") as ledger:
        ingest_delivery(ledger, work / "delivery", work / "quarantine")
        register, transactions = ledger.read_table("tenancy_register"), ledger.read_table("transactions")
    register.to_parquet(work / "tenancies.parquet")
    transactions.to_parquet(work / "transactions.parquet")
    as_of = weekly_as_of_dates(transactions["posted_date"].min(), transactions["posted_date"].max())
    snaps = build_snapshots(register, transactions, as_of)
    names = [c for c in snaps.columns if c not in ("tenancy_id", "event_timestamp", "patch")]
    train = snaps.sample(n=min(200_000, len(snaps)), random_state=0)
    label = (train["balance_change_4w"] > 0).astype(int)  # any label will do: this measures speed, not skill
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_leaves": 31, "seed": 0},
                        lgb.Dataset(train[names], label=label), num_boost_round=300)
    booster.save_model(str(work / "model.txt"))
    snaps[snaps["event_timestamp"] == snaps["event_timestamp"].max()].to_parquet(work / "latest.parquet")


def suite(args) -> list[dict]:
    results = []
    for n in args.tenancies:
        with tempfile.TemporaryDirectory(prefix="arrears-bench-") as tmp:
            work = Path(tmp)
            print(f"preparing {n:,} tenancies x {args.years:g} years…", flush=True)
            spawn_result(prepare, work, n, args.years)  # in its own process too: the parent stays small
            for kind, baseline in PLAN:
                result = measure(kind, work, args.repeats, run_measurement)
                result |= {"tenancies": n, "measure": kind, "baseline": baseline}
                results.append(result)
                print(f"  {kind:<11} {result['seconds']:8.2f} s", flush=True)
    print_table(results)
    return results
