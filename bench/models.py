"""The models suite: `uv run python -m bench --suite models [--training-rows N] [--score-rows N]`.

| measure | what is timed |
|---|---|
| `fit_risk` | LightGBM risk model (training/params/arrears_risk.yaml) on `--training-rows` labelled snapshots |
| `fit_payment` | the payment-date survival model on `--payment-cases` cases (person-period rows = rows shown) |
| `score` | the risk booster scoring `--score-rows` rows (one per tenancy) |
| `score_shap` | the same with exact TreeSHAP reasons for every row (`serving.runs.explain.score_cases`) |
| `worklist_top50` | what the service does: score every row, explain the 50 it lists
  (`serving.runs.worklist.top_cases`) |

Inputs come from one simulated portfolio (`--tenancies`, `--years`): snapshots from `build_snapshots`, labels from
`training.labels`, as in training (the Feast retrieval is measured in the features suite). Rows are sampled with
replacement when the portfolio has fewer.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from pathlib import Path

import lightgbm as lgb
import pandas as pd

from bench.runner import measure as measure_runs
from bench.runner import peak_mb, print_table, spawn_result
from features.catalogue import SNAPSHOT_FEATURES
from features.feeds.ingest import ingest_delivery
from features.ledger import open_ledger
from features.transforms import build_snapshots, weekly_as_of_dates
from serving.runs.explain import score_cases
from serving.runs.worklist import top_cases
from simulator import simulate_portfolio, write_portfolio
from training import payment_date as pdm
from training.config import load_params
from training.labels import arrears_growth_labels, payment_date_labels
from training.risk import fit_booster

PLAN = (("fit_risk", None), ("fit_payment", None), ("score", None), ("score_shap", "score"),
        ("worklist_top50", "score"))


def prepare(work: Path, tenancies: int, years: float, training_rows: int, payment_cases: int,
            score_rows: int) -> None:
    write_portfolio(simulate_portfolio(n_tenancies=tenancies, years=years, seed=2), work / "delivery")
    with open_ledger(f"duckdb:///{work / 'ledger.duckdb'}") as ledger:
        ingest_delivery(ledger, work / "delivery", work / "quarantine")
        register, tx, events = (ledger.read_table(t) for t in ("tenancy_register", "transactions", "events"))
    as_of = weekly_as_of_dates(tx["posted_date"].min(), tx["posted_date"].max())
    snaps = build_snapshots(register, tx, as_of, events)
    keys = ["tenancy_id", "event_timestamp"]
    risk = snaps.merge(arrears_growth_labels(register, tx, as_of), on=keys)
    risk.sample(n=training_rows, replace=len(risk) < training_rows, random_state=0).to_parquet(work / "risk.parquet")
    cases = snaps.merge(payment_date_labels(register, tx, as_of), on=keys)
    cases.sample(n=payment_cases, replace=len(cases) < payment_cases, random_state=0).to_parquet(
        work / "payment.parquet")
    snaps.sample(n=score_rows, replace=len(snaps) < score_rows, random_state=1).to_parquet(work / "score.parquet")


def measure(kind: str, work: Path) -> tuple[float, int]:
    """One measurement in this (fresh) process: (seconds, rows). What it calls was imported with the module, before
    any clock starts."""
    warnings.simplefilter("ignore")
    names = [f.name for f in SNAPSHOT_FEATURES]
    if kind == "fit_risk":
        frame = pd.read_parquet(work / "risk.parquet")
        cut = int(len(frame) * 0.85)
        start = time.perf_counter()
        booster = fit_booster(frame.iloc[:cut], frame.iloc[cut:], names, load_params("arrears_risk")["lightgbm"])
        booster.save_model(str(work / "risk_model.txt"))
        return time.perf_counter() - start, len(frame)
    if kind == "fit_payment":
        frame = pd.read_parquet(work / "payment.parquet")
        cut = int(len(frame) * 0.85)
        start = time.perf_counter()
        pdm.fit(frame.iloc[:cut], frame.iloc[cut:], names, load_params("payment_date")["lightgbm"])
        seconds = time.perf_counter() - start
        return seconds, len(pdm.person_period(frame, names))
    frame = pd.read_parquet(work / "score.parquet")
    booster = lgb.Booster(model_file=str(work / "risk_model.txt"))
    start = time.perf_counter()
    if kind == "score":
        booster.predict(frame[booster.feature_name()].to_numpy(dtype=float), raw_score=True)
    elif kind == "worklist_top50":
        top_cases(frame.assign(tenancy_id=frame["tenancy_id"] + "-" + frame.index.astype(str)), booster, 50)
    else:
        score_cases(frame, booster)
    return time.perf_counter() - start, len(frame)


def run_measurement(kind: str, workdir: str, queue) -> None:
    """One measurement in a spawned process (`bench.runner.spawn`): its figures and peak memory on the queue."""
    seconds, rows = measure(kind, Path(workdir))
    queue.put({"seconds": seconds, "rows": rows, "peak_mb": peak_mb()})


def suite(args) -> list[dict]:
    n = args.tenancies[0]
    results = []
    with tempfile.TemporaryDirectory(prefix="arrears-bench-models-") as tmp:
        work = Path(tmp)
        print(f"preparing {n:,} tenancies x {args.years:g} years, {args.training_rows:,} training rows…", flush=True)
        spawn_result(prepare, work, n, args.years, args.training_rows, args.payment_cases, args.score_rows)
        for kind, baseline in PLAN:
            result = measure_runs(kind, work, args.repeats, run_measurement)
            results.append(result | {"tenancies": n, "measure": kind, "baseline": baseline})
            print(f"  {kind:<11} {result['seconds']:8.2f} s", flush=True)
    print_table(results)
    return results
