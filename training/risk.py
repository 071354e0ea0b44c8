"""The arrears-risk model: a LightGBM classifier trained through the `arrears_risk_v1` FeatureService.

`train_risk_model` builds the point-in-time training set, fits on early weeks, evaluates on later ones against the
highest-balance-first baseline, logs everything to MLflow and registers the version as `challenger`.
`promote` moves `champion` to the challenger only if its gates pass.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from training.settings import TrainingSettings
from features.store.feast import open_store
from features.store.offline import load_ledger_slice
from features.transforms import weekly_as_of_dates
from training import config, registry
from features.store.feast import historical_features, service_feature_names
from training.dataset import tenancy_split, time_split
from training.evaluate import baseline_scores, calibration_table, group_metrics, risk_metrics
from training.labels import RiskLabelSpec, arrears_growth_labels

def load_params() -> dict:
    return config.load_params("arrears_risk")


@dataclass
class RiskTrainingResult:
    run_id: str
    version: str
    metrics: dict[str, float]
    feature_names: list[str]
    test: pd.DataFrame = field(repr=False)
    notes: list[str] = field(default_factory=list)
    groups: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)


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
    settings: TrainingSettings, params: dict, outcomes: pd.DataFrame | None = None
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


@dataclass(frozen=True)
class Calibration:
    """Platt scaling of the raw score: probability = 1 / (1 + exp(-(slope * raw + intercept))).

    Fitted on the validation weeks (never the test weeks). Strictly increasing, so it changes no ranking and the
    SHAP reasons (which explain the raw score) stay exact.
    """

    slope: float = 1.0
    intercept: float = 0.0

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(self.slope * np.asarray(raw, dtype=float) + self.intercept)))

    @classmethod
    def fit(cls, raw: np.ndarray, label: np.ndarray) -> Calibration:
        from sklearn.linear_model import LogisticRegression

        if len(np.unique(label)) < 2:
            return cls()
        model = LogisticRegression(C=1e6).fit(np.asarray(raw, dtype=float).reshape(-1, 1), label)
        return cls(float(model.coef_[0, 0]), float(model.intercept_[0]))

    def tags(self) -> dict[str, str]:
        return {"calibration_slope": repr(self.slope), "calibration_intercept": repr(self.intercept)}

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> Calibration:
        return cls(float(tags.get("calibration_slope", 1.0)), float(tags.get("calibration_intercept", 0.0)))


def score(booster: lgb.Booster, frame: pd.DataFrame, names: list[str], calibration: Calibration) -> pd.DataFrame:
    """Raw score (ranks the list) and calibrated probability (what an officer reads) for each row."""
    raw = booster.predict(frame[names].to_numpy(dtype=float), raw_score=True,
                          num_iteration=booster.best_iteration if booster.best_iteration > 0 else None)
    return pd.DataFrame({"risk_raw": raw, "risk_score": calibration(raw)}, index=frame.index)


def evaluate(test: pd.DataFrame, capacity: float) -> dict[str, float]:
    """Model versus every ranking baseline on the same test rows (ranking on the raw score)."""
    return risk_metrics(test, capacity, rank="risk_raw")


def monitoring_groups(settings: TrainingSettings, tenancy_ids: pd.Series) -> pd.DataFrame:
    """The monitoring-only attributes of the tenancies (never features): the bias gate's input. May be empty."""
    from features.feeds.contract import MONITORING_ONLY_COLUMNS
    from features.ledger import open_ledger

    with open_ledger(settings.ledger) as ledger:
        register = ledger.read_table("tenancy_register")
    present = [c for c in MONITORING_ONLY_COLUMNS if c in register and register[c].notna().any()]
    return register.loc[register["tenancy_id"].isin(set(tenancy_ids)), ["tenancy_id", *present]]


def bias_metrics(groups: pd.DataFrame, overall_auc: float) -> dict[str, float]:
    """The worst gaps across judged groups, as measured and as surely as the group's size allows.

    `bias_max_auc_gap`: how far the worst group's AUC is below the overall AUC. `..._lower_bound` subtracts 1.96
    standard errors (Hanley & McNeil, on tenancies rather than repeated weekly rows): the gap we are 97.5% sure of.
    Likewise for calibration: mean predicted risk versus the group's observed rate.
    """
    judged = groups[groups["judged"]]
    if judged.empty:
        return {"bias_groups_judged": 0.0}
    auc_gap = overall_auc - judged["auc"]
    calibration_gap = (judged["mean_risk"] - judged["base_rate"]).abs()
    return {
        "bias_groups_judged": float(len(judged)),
        "bias_max_auc_gap": float(auc_gap.max()),
        "bias_max_auc_gap_lower_bound": float((auc_gap - 1.96 * judged["auc_se"]).max()),
        "bias_max_calibration_gap": float(calibration_gap.max()),
        "bias_max_calibration_gap_lower_bound": float((calibration_gap - 1.96 * judged["base_rate_se"]).max()),
    }


def champion_on_same_window(settings: TrainingSettings, test: pd.DataFrame, feature_service: str,
                            capacity: float) -> dict[str, float]:
    """The current champion's metrics on the challenger's test rows (empty if there is no comparable champion)."""
    try:
        booster, ref, calibration = load_champion_booster(settings)
    except registry.NoChampion:
        return {}
    if ref.feature_service != feature_service:
        return {}
    names = booster.feature_name()
    if not set(names) <= set(test.columns):
        return {}
    scored = test.drop(columns=["risk_raw", "risk_score"]).join(score(booster, test, names, calibration))
    metrics = evaluate(scored, capacity)
    return {f"champion_{k}_same_window": v for k, v in metrics.items()
            if k in ("auc", "pr_auc", "brier", "precision_at_capacity", "captured_at_capacity")}


def _evidence(folder: Path, booster: lgb.Booster, split, test: pd.DataFrame, names: list[str], metrics: dict,
              groups: pd.DataFrame, params: dict, notes: list[str]) -> list[Path]:
    from training import report

    folder.mkdir(parents=True, exist_ok=True)
    scored = test.join(baseline_scores(test).add_prefix("baseline_"))
    scores = {"model": "risk_raw", "highest balance first": "baseline_balance",
              "stage list (>2 weeks, oldest first)": "baseline_rule", "first in, first out": "baseline_fifo"}
    paths = [
        report.roc_plot(scored, scores, folder / "roc.png"),
        report.calibration_plot(calibration_table(test["label"].to_numpy(), test["risk_score"].to_numpy()),
                                folder / "calibration.png"),
        report.lift_plot(scored, scores, folder / "lift.png"),
        report.shap_summary_plot(booster, split.train[names], folder / "shap_summary.png"),
    ]
    if not groups.empty:
        groups.to_csv(folder / "group_metrics.csv", index=False)
        paths.append(folder / "group_metrics.csv")
    label = params["label"]
    table = report.metrics_table(metrics, [("model", ""), ("highest balance", "_balance_baseline"),
                                           ("stage list", "_rule_baseline"), ("FIFO", "_fifo_baseline")])
    paths.append(report.model_card(folder / "model_card.md", title="Model card: arrears_risk", sections={
        "What it predicts": (
            f"The probability that a live tenancy's arrears grow by at least {label['growth_periods']:g} rent "
            f"period(s), or reach {label['threshold_weeks']:g} weeks of rent, within the next "
            f"{label['horizon_weeks']} weeks (settled balance: the lowest of the last five weekly balances). "
            "Ranked by the raw score; the probability is Platt-calibrated on the validation weeks."),
        "Data": (
            f"Training rows: {len(split.train):,} (as_of before {split.train_end.date()}); validation "
            f"{len(split.valid):,}; test {len(test):,} (as_of from {split.test_start.date()}). Features: the "
            f"`{params['feature_service']}` FeatureService ({len(names)} features), point in time."),
        "Model versus the baselines (test weeks)": (
            f"Officer capacity: the top {params['capacity']:.0%} of the caseload each week.\n\n{table}\n\n"
            f"Brier {metrics['brier']:.4f}, calibration error {metrics['calibration_error']:.4f}, base rate "
            f"{metrics['base_rate']:.3f}."),
        "Groups (monitoring-only attributes, never features)": (
            "See group_metrics.csv." if not groups.empty else "No monitoring-only attributes were supplied."),
        "Known limits": "\n".join(f"- {n}" for n in [
            *notes,
            "Trained on one landlord's history; a change of policy (e.g. a new arrears process) changes the "
            "outcomes it learnt from.",
            "Tenancies whose payments arrive before the rent falls due can show missed periods (see docs/features.md).",
            "Groups with fewer than 200 rows or 20 cases of each outcome are reported but not judged."]),
    }))
    return paths


def train_risk_model(
    settings: TrainingSettings, params: dict | None = None, outcomes: pd.DataFrame | None = None
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
    valid_raw = score(booster, split.valid, names, Calibration())["risk_raw"]
    calibration = Calibration.fit(valid_raw.to_numpy(), split.valid["label"].to_numpy())
    test = split.test.copy().join(score(booster, split.test, names, calibration))
    metrics = evaluate(test, params["capacity"])
    groups_frame = monitoring_groups(settings, test["tenancy_id"])
    groups = group_metrics(test, groups_frame, params["capacity"]) if groups_frame.shape[1] > 1 else pd.DataFrame()
    if not groups.empty:
        metrics |= bias_metrics(groups, metrics["auc"])
    metrics |= champion_on_same_window(settings, test, params["feature_service"], params["capacity"])

    client = registry.configure(settings)
    with mlflow.start_run(run_name="arrears_risk") as run:
        mlflow.log_params({"feature_service": params["feature_service"], "best_iteration": booster.best_iteration,
                           "train_rows": len(split.train), "test_rows": len(split.test),
                           "train_end": str(split.train_end.date()), "test_start": str(split.test_start.date()),
                           "capacity": params["capacity"],
                           **{f"label_{k}": v for k, v in params["label"].items()},
                           **{f"lgb_{k}": v for k, v in params["lightgbm"].items()}})
        mlflow.log_metrics({k: v for k, v in metrics.items() if np.isfinite(v)})
        mlflow.set_tags({"label_source": "outcomes_file" if outcomes is not None else "ledger",
                         "split": "held_out_tenancies" if notes else "time", **calibration.tags()})
        with tempfile.TemporaryDirectory() as tmp:
            for path in _evidence(Path(tmp), booster, split, test, names, metrics, groups, params, notes):
                mlflow.log_artifact(str(path), artifact_path="evidence")
        example = split.train[names].head(5)
        signature = infer_signature(example, booster.predict(example))
        info = mlflow.lightgbm.log_model(booster, name="model", signature=signature, input_example=example,
                                         registered_model_name=registry.RISK_MODEL,
                                         pip_requirements=registry.model_requirements())
        version = str(info.registered_model_version)
        for key, value in {"feature_service": params["feature_service"], **calibration.tags()}.items():
            client.set_model_version_tag(registry.RISK_MODEL, version, key, value)
        client.set_registered_model_alias(registry.RISK_MODEL, registry.CHALLENGER, version)
        reference = save_reference(settings, split.train[names], version)
        mlflow.log_artifact(str(reference), artifact_path="reference")
    return RiskTrainingResult(run.info.run_id, version, metrics, names, test, notes, groups)


def reference_path(settings: TrainingSettings, version: str) -> Path:
    return settings.reference_dir / f"{registry.RISK_MODEL}_v{version}.parquet"


def save_reference(settings: TrainingSettings, train_features: pd.DataFrame, version: str, rows: int = 20_000) -> Path:
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


def risk_gates(metrics: dict[str, float], gates: dict) -> list[str]:
    """The gates a risk-model version must pass; each failure is named with its figures."""
    failed = []
    if metrics["auc"] < gates["min_auc"]:
        failed.append(f"quality floor: auc {metrics['auc']:.3f} is below {gates['min_auc']}")
    for baseline in ("balance", "rule"):
        lift = metrics["precision_at_capacity"] - metrics[f"precision_at_capacity_{baseline}_baseline"]
        if lift < gates["min_lift_over_baselines"]:
            failed.append(f"baseline: precision_at_capacity does not beat the {baseline} baseline (lift {lift:+.3f})")
    if "champion_auc_same_window" in metrics:
        drop = metrics["champion_auc_same_window"] - metrics["auc"]
        if drop > gates["max_auc_regression"]:
            failed.append(f"regression: auc {metrics['auc']:.3f} is {drop:.3f} below the champion's "
                          f"{metrics['champion_auc_same_window']:.3f} on the same test weeks")
    # Bias: a gap counts when we are sure of it (its lower bound, given the group's size) and it is material.
    if metrics.get("bias_max_auc_gap_lower_bound", 0.0) > gates["max_group_auc_gap"]:
        failed.append(f"bias: a monitored group's auc is at least {metrics['bias_max_auc_gap_lower_bound']:.3f} "
                      f"below the overall auc (limit {gates['max_group_auc_gap']}); see evidence/group_metrics.csv")
    if metrics.get("bias_max_calibration_gap_lower_bound", 0.0) > gates["max_group_calibration_gap"]:
        failed.append(f"bias: a monitored group's mean predicted risk is at least "
                      f"{metrics['bias_max_calibration_gap_lower_bound']:.3f} from its observed rate (limit "
                      f"{gates['max_group_calibration_gap']}); see evidence/group_metrics.csv")
    return failed


def decide(settings: TrainingSettings, model: str, gate_check) -> PromotionDecision:
    """Move `champion` of `model` to its challenger if `gate_check(metrics)` names no failure; record the decision
    (a tag on the version and a run in the `promotions` experiment) either way."""
    import mlflow

    client = registry.configure(settings)
    challenger = registry.model_by_alias(settings, model, registry.CHALLENGER)
    metrics = client.get_run(challenger.run_id).data.metrics
    failed = gate_check(metrics)
    promoted = not failed
    previous = None
    try:
        previous = registry.model_by_alias(settings, model, registry.CHAMPION).version
    except registry.NoChampion:
        pass
    if promoted:
        client.set_registered_model_alias(model, registry.CHAMPION, challenger.version)
    client.set_model_version_tag(model, challenger.version, "promotion",
                                 "promoted" if promoted else "refused: " + "; ".join(failed))
    registry.record_promotion(settings, model, challenger.version, previous, promoted, failed)
    mlflow.set_experiment(registry.EXPERIMENT)
    return PromotionDecision(model, challenger.version, promoted, failed, dict(metrics))


def promote(settings: TrainingSettings, params: dict | None = None) -> PromotionDecision:
    """Move the risk model's `champion` to the current challenger if its gates pass; otherwise name the failures."""
    params = params or load_params()
    return decide(settings, registry.RISK_MODEL, lambda metrics: risk_gates(metrics, params["gates"]))


def load_champion_booster(settings: TrainingSettings) -> tuple[lgb.Booster, registry.ModelRef, Calibration]:
    import mlflow

    ref = registry.model_by_alias(settings, registry.RISK_MODEL, registry.CHAMPION)
    booster = mlflow.lightgbm.load_model(f"models:/{registry.RISK_MODEL}@{registry.CHAMPION}")
    return booster, ref, Calibration.from_tags(ref.tags)
