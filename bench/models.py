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

import time
import warnings
from pathlib import Path


def prepare(work: Path, tenancies: int, years: float, training_rows: int, payment_cases: int,
            score_rows: int) -> None:
    from features.feeds.ingest import ingest_delivery
    from features.ledger import open_ledger
    from features.transforms import build_snapshots, weekly_as_of_dates
    from simulator import simulate_portfolio, write_portfolio
    from training.labels import arrears_growth_labels, payment_date_labels

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
    import lightgbm as lgb
    import pandas as pd

    from features.catalogue import SNAPSHOT_FEATURES

    warnings.simplefilter("ignore")
    names = [f.name for f in SNAPSHOT_FEATURES]
    if kind == "fit_risk":
        from training.config import load_params
        from training.risk import fit_booster

        frame = pd.read_parquet(work / "risk.parquet")
        cut = int(len(frame) * 0.85)
        start = time.perf_counter()
        booster = fit_booster(frame.iloc[:cut], frame.iloc[cut:], names, load_params("arrears_risk")["lightgbm"])
        booster.save_model(str(work / "risk_model.txt"))
        return time.perf_counter() - start, len(frame)
    if kind == "fit_payment":
        from training import payment_date as pdm
        from training.config import load_params

        frame = pd.read_parquet(work / "payment.parquet")
        cut = int(len(frame) * 0.85)
        start = time.perf_counter()
        pdm.fit(frame.iloc[:cut], frame.iloc[cut:], names, load_params("payment_date")["lightgbm"])
        seconds = time.perf_counter() - start
        return seconds, len(pdm.person_period(frame, names))
    from serving.runs.explain import score_cases  # imported before the clock starts
    from serving.runs.worklist import top_cases

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
