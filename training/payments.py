"""Training the payment-date model and backtesting the cash forecast built on it; registering, gating, promoting.

`train_payment_model` builds (tenancy, as_of) cases with the days until the next payment (right-censored at the
horizon), fetches their features through the `payment_date_v1` FeatureService, fits the discrete-time survival
model on early weeks, judges P10/P50/P90 on later ones against each tenant's own habit, backtests the 13-week cash
forecast on past weeks against a last-4-weeks average, logs all of it to MLflow and registers the model
`payment_date` as `challenger`.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.feeds.contract import periods_per_year
from training.settings import TrainingSettings
from features.store.feast import open_store
from features.store.offline import load_ledger_slice, read_offline
from features.transforms import weekly_as_of_dates
from training import payment_date as pdm
from training import config, registry
from features.store.feast import historical_features, service_feature_names
from training.dataset import time_split
from training.labels import PaymentLabelSpec, daily_receipts, payment_date_labels, qualifying_payment_days

def load_params() -> dict:
    return config.load_params("payment_date")


@dataclass
class PaymentTrainingResult:
    run_id: str
    version: str
    metrics: dict[str, float]
    feature_names: list[str]
    test: pd.DataFrame = field(repr=False)
    backtest: pd.DataFrame = field(repr=False)


def period_days(tenancies: pd.DataFrame) -> np.ndarray:
    return 365.25 / periods_per_year(tenancies["rent_frequency"])


def forecast_from(booster: lgb.Booster, features: pd.DataFrame, tenancies: pd.DataFrame, paid: pd.DataFrame,
                  daily: pd.DataFrame, origin: pd.Timestamp, weeks: int, sims: int, seed: int = 0) -> np.ndarray:
    """Simulated receipts (sims, tenancies, weeks) for the tenancies in `features`, from `origin`."""
    register = tenancies.set_index("tenancy_id").loc[features["tenancy_id"]]
    cdf = pdm.cdf_at_edges(pdm.hazards(booster, features))
    amount, gaps, counts = pdm.tenant_habits(paid, daily, origin, features["tenancy_id"].to_numpy(),
                                             period_days(register.reset_index()))
    return pdm.simulate_receipts(cdf, amount, gaps, counts, weeks=weeks, sims=sims, seed=seed)


def backtest_cash(store, booster: lgb.Booster, names: list[str], settings: TrainingSettings, tenancies: pd.DataFrame,
                  transactions: pd.DataFrame, paid: pd.DataFrame, first_origin: pd.Timestamp,
                  params: dict) -> pd.DataFrame:
    """Forecast from past weekly dates in the test period and set each week against what was then received.

    One row per (origin, week ahead): forecast mean/P10/P50/P90, the last-4-weeks-average baseline, and actual
    receipts of the tenancies live at the origin. Weeks are days (origin + 7(w-1), origin + 7w].
    """
    cash = params["cash"]
    weeks = cash["weeks"]
    offline = read_offline(settings, columns=["tenancy_id", "event_timestamp"])
    last_posting = transactions["posted_date"].max()
    dates = sorted(d for d in offline["event_timestamp"].unique()
                   if pd.Timestamp(d) >= first_origin
                   and pd.Timestamp(d).tz_localize(None) + pd.Timedelta(weeks=weeks) <= last_posting)
    origins = dates[::-1][:: cash["origin_every_weeks"]][: cash["backtest_origins"]][::-1]
    daily = daily_receipts(transactions)
    rows = []
    for k, origin in enumerate(origins):
        origin = pd.Timestamp(origin)
        day = origin.tz_localize(None)
        cases = offline[offline["event_timestamp"] == origin].reset_index(drop=True)
        features = historical_features(store, cases, params["feature_service"])
        sims = forecast_from(booster, features, tenancies, paid, daily, origin, weeks, cash["simulations"], seed=k)
        totals = sims.sum(axis=1) / 100.0  # (sims, weeks), pounds
        mine = daily[daily["tenancy_id"].isin(set(features["tenancy_id"]))]
        before = mine[(mine["day"] > day - pd.Timedelta(weeks=4)) & (mine["day"] <= day)]["amount_pence"].sum()
        for w in range(weeks):
            lo, hi = day + pd.Timedelta(days=7 * w), day + pd.Timedelta(days=7 * (w + 1))
            actual = mine[(mine["day"] > lo) & (mine["day"] <= hi)]["amount_pence"].sum() / 100.0
            rows.append({"origin": day.date(), "week": w + 1, "actual": actual, "mean": totals[:, w].mean(),
                         "p10": np.percentile(totals[:, w], 10), "p50": np.percentile(totals[:, w], 50),
                         "p90": np.percentile(totals[:, w], 90), "baseline": before / 4 / 100.0})
    return pd.DataFrame(rows)


def cash_metrics(backtest: pd.DataFrame) -> dict[str, float]:
    """Weekly WAPE by horizon (model and baseline) and the P10–P90 coverage over all backtest weeks."""
    metrics = {}
    if backtest.empty:
        return metrics
    for w in sorted(backtest["week"].unique()):
        part = backtest[backtest["week"] == w]
        total = part["actual"].abs().sum()
        if total > 0:
            metrics[f"wape_week{w}"] = float((part["actual"] - part["mean"]).abs().sum() / total)
            metrics[f"wape_week{w}_baseline"] = float((part["actual"] - part["baseline"]).abs().sum() / total)
    metrics["cash_p10_p90_coverage"] = float(((backtest["p10"] <= backtest["actual"])
                                              & (backtest["actual"] <= backtest["p90"])).mean())
    metrics["cash_backtest_origins"] = float(backtest["origin"].nunique())
    return metrics


def _evidence(folder: Path, booster, split, test: pd.DataFrame, names: list[str], metrics: dict,
              backtest: pd.DataFrame, params: dict) -> list[Path]:
    from training import report

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    if not backtest.empty:
        backtest.to_csv(folder / "cash_backtest.csv", index=False)
        paths.append(folder / "cash_backtest.csv")
        last = backtest[backtest["origin"] == backtest["origin"].max()].assign(scope="portfolio")
        paths.append(report.forecast_plot(last, folder / "cash_backtest_latest_origin.png",
                                          actual=last.set_index("week")["actual"],
                                          title=f"Cash forecast from {last['origin'].iloc[0]} vs what came in"))
    seen = test[test["event"] == 1]
    plt = report._pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.arange(0, params["label"]["horizon_days"] + 2, 2)
    ax.hist(np.clip(seen["duration"], 0, bins[-1]), bins=bins, alpha=0.5, label="actual day of payment")
    ax.hist(np.clip(seen["p50"].replace(np.inf, bins[-1]), 0, bins[-1]), bins=bins, alpha=0.5, label="predicted P50")
    ax.set(xlabel="days after as_of", ylabel="cases", title="Payment day: predicted vs actual (test weeks)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "payment_day.png", dpi=100)
    plt.close(fig)
    paths.append(folder / "payment_day.png")
    paths.append(report.shap_summary_plot(booster, pdm.person_period(split.train.head(5000), names)[
        [*names, *pdm.BIN_COLUMNS]], folder / "shap_summary.png"))
    horizon = params["label"]["horizon_days"]
    lines = [f"| {k} | {v:.3f} |" for k, v in metrics.items()]
    paths.append(report.model_card(folder / "model_card.md", title="Model card: payment_date", sections={
        "What it predicts": (
            f"Days from as_of until the tenant next pays at least {params['label']['min_period_share']:.0%} of a "
            f"rent period (payments and benefit on one day added up), as P10/P50/P90 from a discrete-time "
            f"survival model; cases with no payment within {horizon} days are censored there, not dropped. "
            "The cash forecast simulates receipts from these distributions with each tenant's usual amount and "
            "gaps between payments."),
        "Data": (f"Training cases {len(split.train):,} (as_of before {split.train_end.date()}); test "
                 f"{len(test):,} (from {split.test_start.date()}); features: `{params['feature_service']}`."),
        "Metrics (test weeks and cash backtest)": "| metric | value |\n|---|---|\n" + "\n".join(lines),
        "Known limits": "\n".join([
            "- MAE and hit rates are on cases that paid within the horizon; coverage also counts censored cases.",
            "- Training snapshots are all Sundays; served on another weekday, the day-of-week pattern is not learnt.",
            "- The cash forecast covers tenancies live at the forecast date (no new lettings) and treats tenants "
            "as independent, so its P10–P90 is narrower than the real uncertainty; the backtest coverage says by "
            "how much.",
        ]),
    }))
    return paths


def build_cases(settings: TrainingSettings, params: dict) -> tuple[pd.DataFrame, list[str], object]:
    part = load_ledger_slice(settings)
    spec = PaymentLabelSpec(**params["label"])
    tx = part.transactions
    as_of = weekly_as_of_dates(tx["posted_date"].min(), tx["posted_date"].max())
    labels = payment_date_labels(part.tenancies, tx, as_of, spec)
    sampled = as_of[::-1][:: params["sample_every_weeks"]]
    labels = labels[labels["event_timestamp"].isin(sampled.tz_localize("UTC"))]
    store = open_store(settings)
    names = service_feature_names(store, params["feature_service"])
    frame = historical_features(store, labels, params["feature_service"])
    return frame, names, (store, part, spec)


def train_payment_model(settings: TrainingSettings, params: dict | None = None) -> PaymentTrainingResult:
    from mlflow.models import infer_signature

    import mlflow

    params = params or load_params()
    frame, names, (store, part, spec) = build_cases(settings, params)
    horizon_weeks = int(np.ceil(spec.horizon_days / 7))
    split = time_split(frame, embargo_weeks=horizon_weeks)
    booster = pdm.fit(split.train, split.valid, names, params["lightgbm"])
    paid = qualifying_payment_days(part.tenancies, part.transactions, spec)
    test = split.test.copy().join(pdm.predict_quantiles(booster, split.test))
    test["naive_days"] = pdm.naive_baseline(paid, test)
    metrics = pdm.payment_metrics(test, spec.horizon_days)
    backtest = backtest_cash(store, booster, names, settings, part.tenancies, part.transactions, paid,
                             split.test_start, params)
    metrics |= cash_metrics(backtest)

    client = registry.configure(settings)
    with mlflow.start_run(run_name="payment_date") as run:
        mlflow.log_params({"feature_service": params["feature_service"], "best_iteration": booster.best_iteration,
                           "train_cases": len(split.train), "test_cases": len(test),
                           "train_end": str(split.train_end.date()), "test_start": str(split.test_start.date()),
                           "bin_edges": ",".join(map(str, pdm.BIN_EDGES)),
                           **{f"label_{k}": v for k, v in params["label"].items()},
                           **{f"cash_{k}": v for k, v in params["cash"].items()},
                           **{f"lgb_{k}": v for k, v in params["lightgbm"].items()}})
        mlflow.log_metrics({k: v for k, v in metrics.items() if np.isfinite(v)})
        with tempfile.TemporaryDirectory() as tmp:
            for path in _evidence(Path(tmp), booster, split, test, names, metrics, backtest, params):
                mlflow.log_artifact(str(path), artifact_path="evidence")
        example = pdm.person_period(split.train.head(5), names)[[*names, *pdm.BIN_COLUMNS]]
        signature = infer_signature(example, booster.predict(example))
        info = mlflow.lightgbm.log_model(booster, name="model", signature=signature, input_example=example,
                                         registered_model_name=registry.PAYMENT_MODEL,
                                         pip_requirements=registry.model_requirements())
        version = str(info.registered_model_version)
        client.set_model_version_tag(registry.PAYMENT_MODEL, version, "feature_service", params["feature_service"])
        client.set_registered_model_alias(registry.PAYMENT_MODEL, registry.CHALLENGER, version)
    return PaymentTrainingResult(run.info.run_id, version, metrics, names, test, backtest)


def payment_gates(metrics: dict[str, float], gates: dict) -> list[str]:
    failed = []
    coverage = metrics["p10_p90_coverage"]
    if not gates["min_coverage"] <= coverage <= gates["max_coverage"]:
        failed.append(f"calibration: P10–P90 holds {coverage:.1%} of outcomes, outside "
                      f"{gates['min_coverage']:.0%}–{gates['max_coverage']:.0%}")
    ratio = metrics["mae_days"] / max(metrics["mae_days_naive_baseline"], 1e-9)
    if ratio > gates["max_mae_ratio_to_baseline"]:
        failed.append(f"baseline: mae_days {metrics['mae_days']:.2f} is not better than the tenant's own habit "
                      f"({metrics['mae_days_naive_baseline']:.2f})")
    return failed


def promote(settings: TrainingSettings, params: dict | None = None):
    from training.risk import decide

    params = params or load_params()
    return decide(settings, registry.PAYMENT_MODEL, lambda metrics: payment_gates(metrics, params["gates"]))


def load_champion(settings: TrainingSettings) -> tuple[lgb.Booster, registry.ModelRef]:
    import mlflow

    ref = registry.model_by_alias(settings, registry.PAYMENT_MODEL, registry.CHAMPION)
    registry.configure(settings)
    return mlflow.lightgbm.load_model(f"models:/{registry.PAYMENT_MODEL}@{registry.CHAMPION}"), ref
