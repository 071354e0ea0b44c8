"""The arrears-risk model: a LightGBM classifier trained through the `arrears_risk_v1` FeatureService.

`train_risk_model` builds the point-in-time training set, fits on early weeks, evaluates on later ones against the
highest-balance-first baseline, logs everything to MLflow and registers the version as `challenger`.
`promote` moves `champion` to the challenger only if its gates pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import lightgbm as lgb
import pandas as pd
import yaml

from features.settings import Settings
from features.store import load_ledger_slice, open_store
from features.transforms import weekly_as_of_dates
from training import registry
from training.dataset import historical_features, service_feature_names, tenancy_split, time_split
from training.evaluate import probability_metrics, ranking_metrics
from training.labels import RiskLabelSpec, arrears_growth_labels

PARAMS_FILE = Path(__file__).resolve().parent / "params" / "arrears_risk.yaml"


def load_params(path: Path = PARAMS_FILE) -> dict:
    return yaml.safe_load(path.read_text())


@dataclass
class RiskTrainingResult:
    run_id: str
    version: str
    metrics: dict[str, float]
    feature_names: list[str]
    test: pd.DataFrame = field(repr=False)
    notes: list[str] = field(default_factory=list)


def read_outcomes(path: Path) -> pd.DataFrame:
    """Bring-your-own labels: a CSV or Parquet of tenancy_id, as_of_date, outcome (0/1)."""
    frame = pd.read_parquet(path) if str(path).endswith(".parquet") else pd.read_csv(path, dtype={"tenancy_id": str})
    missing = {"tenancy_id", "as_of_date", "outcome"} - set(frame.columns)
    if missing:
        raise ValueError(f"{path} lacks column(s) {', '.join(sorted(missing))}: expected tenancy_id, as_of_date, outcome")
    if not frame["outcome"].isin([0, 1]).all():
        raise ValueError(f"{path}: outcome must be 0 or 1")
    return frame


def outcome_labels(outcomes: pd.DataFrame) -> pd.DataFrame:
    stamps = pd.to_datetime(outcomes["as_of_date"], dayfirst=False).dt.tz_localize("UTC")
    return pd.DataFrame({"tenancy_id": outcomes["tenancy_id"].astype(str), "event_timestamp": stamps,
                         "label": outcomes["outcome"].astype(int)})


def build_training_frame(
    settings: Settings, params: dict, outcomes: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, list[str]]:
    if outcomes is not None:
        labels = outcome_labels(outcomes)
    else:
        part = load_ledger_slice(settings)
        tenancies, transactions = part.tenancies, part.transactions
        as_of = weekly_as_of_dates(transactions["posted_date"].min(), transactions["posted_date"].max())
        labels = arrears_growth_labels(tenancies, transactions, as_of, RiskLabelSpec(**params["label"]))
        every = params["sample_every_weeks"]
        sampled = as_of[::-1][::every]  # keep the latest labelled weeks, thin out the past
        labels = labels[labels["event_timestamp"].isin(sampled.tz_localize("UTC"))]
    store = open_store(settings)
    names = service_feature_names(store, params["feature_service"])
    frame = historical_features(store, labels, params["feature_service"])
    return frame, names


def fit_booster(train: pd.DataFrame, valid: pd.DataFrame, names: list[str], lgb_params: dict) -> lgb.Booster:
    params = dict(lgb_params)
    rounds = params.pop("num_boost_round")
    stopping = params.pop("early_stopping_rounds")
    dtrain = lgb.Dataset(train[names], label=train["label"], feature_name=names, free_raw_data=False)
    dvalid = lgb.Dataset(valid[names], label=valid["label"], reference=dtrain)
    return lgb.train(params, dtrain, num_boost_round=rounds, valid_sets=[dvalid],
                     callbacks=[lgb.early_stopping(stopping, verbose=False)])


def evaluate(test: pd.DataFrame, capacity: float) -> dict[str, float]:
    metrics = ranking_metrics(test, "risk_score", capacity=capacity)
    metrics |= probability_metrics(test, "risk_score")
    metrics["precision_at_capacity_balance_baseline"] = ranking_metrics(test, "balance", capacity=capacity)[
        "precision_at_capacity"]
    metrics["auc_balance_baseline"] = ranking_metrics(test, "balance", capacity=capacity)["auc"]
    metrics["base_rate"] = float(test["label"].mean())
    return metrics


def train_risk_model(
    settings: Settings, params: dict | None = None, outcomes: pd.DataFrame | None = None
) -> RiskTrainingResult:
    import mlflow
    from mlflow.models import infer_signature

    params = params or load_params()
    frame, names = build_training_frame(settings, params, outcomes)
    notes = []
    if frame["event_timestamp"].nunique() < 3:
        split = tenancy_split(frame)
        notes.append("all outcomes share one as_of date: validating on held-out tenancies, not later dates, "
                     "so the metrics say nothing about how the model ages")
    else:
        split = time_split(frame, embargo_weeks=params["label"]["horizon_weeks"])
    booster = fit_booster(split.train, split.valid, names, params["lightgbm"])
    test = split.test.copy()
    test["risk_score"] = booster.predict(test[names], num_iteration=booster.best_iteration)
    metrics = evaluate(test, params["capacity"])

    client = registry.configure(settings)
    with mlflow.start_run(run_name="arrears_risk") as run:
        mlflow.log_params({"feature_service": params["feature_service"], "best_iteration": booster.best_iteration,
                           "train_rows": len(split.train), "test_rows": len(split.test),
                           "train_end": str(split.train_end.date()), "test_start": str(split.test_start.date()),
                           **{f"label_{k}": v for k, v in params["label"].items()},
                           **{f"lgb_{k}": v for k, v in params["lightgbm"].items()}})
        mlflow.log_metrics(metrics)
        mlflow.set_tags({"label_source": "outcomes_file" if outcomes is not None else "ledger",
                         "split": "held_out_tenancies" if notes else "time"})
        example = split.train[names].head(5)
        signature = infer_signature(example, booster.predict(example))
        info = mlflow.lightgbm.log_model(booster, name="model", signature=signature, input_example=example,
                                         registered_model_name=registry.RISK_MODEL,
                                         pip_requirements=registry.model_requirements())
        version = str(info.registered_model_version)
        client.set_model_version_tag(registry.RISK_MODEL, version, "feature_service", params["feature_service"])
        client.set_registered_model_alias(registry.RISK_MODEL, registry.CHALLENGER, version)
        reference = save_reference(settings, split.train[names], version)
        mlflow.log_artifact(str(reference), artifact_path="reference")
    return RiskTrainingResult(run.info.run_id, version, metrics, names, test, notes)


def reference_path(settings: Settings, version: str) -> Path:
    return settings.home / "reference" / f"{registry.RISK_MODEL}_v{version}.parquet"


def save_reference(settings: Settings, train_features: pd.DataFrame, version: str, rows: int = 20_000) -> Path:
    """The feature distribution the model learnt from: what drift is measured against."""
    sample = train_features.sample(n=min(rows, len(train_features)), random_state=0)
    path = reference_path(settings, version)
    path.parent.mkdir(parents=True, exist_ok=True)
    sample.to_parquet(path, index=False)
    return path


@dataclass(frozen=True)
class PromotionDecision:
    model: str
    version: str
    promoted: bool
    failed_gates: list[str]
    metrics: dict[str, float]


def promote(settings: Settings, params: dict | None = None) -> PromotionDecision:
    """Move `champion` to the current challenger if its gates pass; otherwise name the failing gates."""
    params = params or load_params()
    client = registry.configure(settings)
    challenger = registry.model_by_alias(settings, registry.RISK_MODEL, registry.CHALLENGER)
    metrics = client.get_run(challenger.run_id).data.metrics
    gates = params["gates"]
    failed = []
    if metrics["auc"] < gates["min_auc"]:
        failed.append(f"auc {metrics['auc']:.3f} is below the floor {gates['min_auc']}")
    lift = metrics["precision_at_capacity"] - metrics["precision_at_capacity_balance_baseline"]
    if lift < gates["min_lift_over_balance_baseline"]:
        failed.append(f"precision_at_capacity does not beat highest-balance-first (lift {lift:+.3f})")
    promoted = not failed
    if promoted:
        client.set_registered_model_alias(registry.RISK_MODEL, registry.CHAMPION, challenger.version)
    client.set_model_version_tag(registry.RISK_MODEL, challenger.version, "promotion",
                                 "promoted" if promoted else "refused: " + "; ".join(failed))
    return PromotionDecision(registry.RISK_MODEL, challenger.version, promoted, failed, dict(metrics))


def load_champion_booster(settings: Settings) -> tuple[lgb.Booster, registry.ModelRef]:
    import mlflow

    ref = registry.model_by_alias(settings, registry.RISK_MODEL, registry.CHAMPION)
    booster = mlflow.lightgbm.load_model(f"models:/{registry.RISK_MODEL}@{registry.CHAMPION}")
    return booster, ref
