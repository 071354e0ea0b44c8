"""Training runs: labels → point-in-time training set → fit → evaluate against the baselines → evidence → one MLflow
run → a registered version with the alias `challenger`. Promotion is a separate, explicit step
(`training.promotion`).

- `train_risk_model`: the arrears-risk model (`arrears_risk_v1`), judged against highest-balance-first, the stage
  list and FIFO on the same test weeks, per monitored group (the bias gate's input) and against the current
  champion on the same rows (the regression gate's input).
- `train_payment_model`: the payment-date survival model (`payment_date_v1`), judged against each tenant's own
  habit, and the 13-week cash forecast built on it backtested from past dates against a last-4-weeks average.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.crash import crash_point
from features.schedules import lines_known_on
from features.store.feast import historical_features
from features.store.offline import LedgerSlice, load_ledger_slice, read_offline
from features.transforms import weekly_as_of_dates
from training import cash, evidence, registry
from training import payment_date as pdm
from training.ceiling import Truth, payment_ceiling, risk_ceiling
from training.config import load_params
from training.dataset import (
    TrainingSet,
    coverage_record,
    monitoring_groups,
    on_every_weekday,
    point_in_time,
    tenancy_split,
    thin_weeks,
    time_split,
)
from training.evaluate import bias_metrics, group_metrics, reason_coverage, risk_metrics
from training.labels import (
    PaymentLabelSpec,
    RiskLabelSpec,
    arrears_growth_labels,
    daily_receipts,
    outcome_labels,
    payment_date_labels,
    qualifying_payment_days,
)
from training.risk import WEIGHT, fit_and_calibrate, score
from training.settings import TrainingSettings
from training.treatment import Interventions, treatment_weights

CHAMPION_METRICS = ("auc", "pr_auc", "brier", "precision_at_capacity", "captured_at_capacity")


@dataclass
class TrainingResult:
    run_id: str
    version: str
    metrics: dict[str, float]
    feature_names: list[str]
    test: pd.DataFrame = field(repr=False)
    notes: list[str] = field(default_factory=list)
    groups: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    backtest: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)


# -- one log-and-register for every model ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Registration:
    run_id: str
    version: str


def log_and_register(settings: TrainingSettings, model: str, booster: lgb.Booster, example: pd.DataFrame, *,
                     params: dict, metrics: dict[str, float], tags: dict[str, str], version_tags: dict[str, str],
                     evidence_in: Callable[[Path], list[Path]],
                     after_register: Callable[[str], dict[str, Path]] | None = None) -> Registration:
    """One MLflow run for a trained model: its parameters, finite metrics, tags and evidence; the model logged with
    its signature, input example and pinned requirements, registered as a new version of `model` tagged with
    `version_tags` and given the alias `challenger`. `after_register(version)` names more files to log in the
    same run (artifact folder → file)."""
    # mlflow stays inside, as in training.registry: ruff takes this repository's mlflow/ folder (the local tracking
    # store) for a project package and would file a top-level `import mlflow` among the project's imports.
    from mlflow.models import infer_signature

    import mlflow

    client = registry.configure(settings)
    registry.tidy_interrupted(settings, model)
    with mlflow.start_run(run_name=model) as run:
        mlflow.set_tags(registry.process_tags())
        mlflow.log_params(params)
        mlflow.log_metrics({k: v for k, v in metrics.items() if np.isfinite(v)})
        mlflow.set_tags(tags)
        with tempfile.TemporaryDirectory() as tmp:
            for path in evidence_in(Path(tmp)):
                mlflow.log_artifact(str(path), artifact_path="evidence")
        info = mlflow.lightgbm.log_model(booster, name="model", signature=infer_signature(example, booster.predict(
            example)), input_example=example, registered_model_name=model,
            pip_requirements=registry.model_requirements())
        version = str(info.registered_model_version)
        crash_point("train:registered")
        for key, value in version_tags.items():
            client.set_model_version_tag(model, version, key, value)
        client.set_registered_model_alias(model, registry.CHALLENGER, version)
        crash_point("train:aliased")
        for folder, path in (after_register(version) if after_register else {}).items():
            mlflow.log_artifact(str(path), artifact_path=folder)
    return Registration(run.info.run_id, version)


def _ledger_weeks(part: LedgerSlice) -> pd.DatetimeIndex:
    tx = part.transactions
    return weekly_as_of_dates(tx["posted_date"].min(), tx["posted_date"].max())


def _split_params(split, lightgbm: dict, label: dict) -> dict:
    return {"train_end": str(split.train_end.date()), "test_start": str(split.test_start.date()),
            **{f"label_{k}": v for k, v in label.items()}, **{f"lgb_{k}": v for k, v in lightgbm.items()}}


# -- the arrears-risk model -----------------------------------------------------------------------------------------
def risk_training_set(settings: TrainingSettings, params: dict, outcomes: pd.DataFrame | None = None) -> TrainingSet:
    """Labels from the ledger (arrears growth, thinned to every n-th week) or from your own outcomes, with the
    FeatureService's features as of each label's date."""
    if outcomes is not None:
        labels = outcome_labels(outcomes)
    else:
        part = load_ledger_slice(settings)
        as_of = _ledger_weeks(part)
        spec = RiskLabelSpec(**params["label"])
        labels = on_every_weekday(lambda dates: arrears_growth_labels(part.tenancies, part.transactions, dates,
                                                                      spec), as_of)
        labels = thin_weeks(labels, as_of, params["sample_every_weeks"])
    return point_in_time(settings, params["feature_service"], labels, settings.max_missing_feature_share)


def champion_on_same_window(settings: TrainingSettings, test: pd.DataFrame, feature_service: str,
                            capacity: float) -> dict[str, float]:
    """The current champion's metrics on the challenger's test rows (empty if there is no comparable champion)."""
    try:
        champion = registry.load_champion(settings, registry.RISK_MODEL)
    except registry.NoChampion:
        return {}
    names = champion.booster.feature_name()
    if champion.ref.feature_service != feature_service or not set(names) <= set(test.columns):
        return {}
    scored = test.drop(columns=["risk_raw", "risk_score"]).join(
        score(champion.booster, test, names, champion.calibration))
    metrics = risk_metrics(scored, capacity, rank="risk_raw")
    return {f"champion_{k}_same_window": v for k, v in metrics.items() if k in CHAMPION_METRICS}


def _risk_split(frame: pd.DataFrame, params: dict):
    if frame["event_timestamp"].nunique() < 3:
        note = ("all outcomes share one as_of date: validating on held-out tenancies, not later dates, so the "
                "metrics say nothing about how the model ages")
        return tenancy_split(frame), [note]
    try:
        return time_split(frame, embargo_weeks=params["label"]["horizon_weeks"]), []
    except ValueError as short:  # a short history: the risk model can still learn, on held-out tenancies
        return tenancy_split(frame), [f"{short} Validated on held-out tenancies instead, so the metrics say "
                                      "nothing about how the model ages."]


def reason_shares(booster: lgb.Booster, test: pd.DataFrame, names: list[str], rows: int = 2_000) -> dict[str, float]:
    """How much of each score the worklist's three reasons explain (share of its |SHAP| mass, mean over up to
    `rows` test rows): three officer concepts, as shown, beside the three largest single features."""
    sample = test.sample(min(rows, len(test)), random_state=0) if len(test) else test
    if sample.empty:
        return {}
    contributions = booster.predict(sample[names].astype(float).to_numpy(), pred_contrib=True)[:, :-1]
    shares = reason_coverage(contributions, names, n_reasons=3)
    return {"reason_share_top3_concepts": shares["concepts"], "reason_share_top3_features": shares["features"]}


def _treatment_aware(frame: pd.DataFrame, interventions: Interventions | None, horizon_weeks: int
                     ) -> tuple[pd.DataFrame, dict[str, float]]:
    """The training rows without those the service's contacts touched, the held-out rows standing for them
    weighted (`training.treatment`); unchanged, with no weight column, when nothing was done."""
    if interventions is None:
        return frame, {}
    weights, summary = treatment_weights(frame, interventions, horizon_weeks)
    if summary.left_out == 0 and summary.reweighted == 0:
        return frame, summary.as_metrics()
    return frame.assign(**{WEIGHT: weights})[weights > 0], summary.as_metrics()


def train_risk_model(settings: TrainingSettings, params: dict | None = None,
                     outcomes: pd.DataFrame | None = None, truth: Path | None = None,
                     interventions: Interventions | None = None) -> TrainingResult:
    """Train, evaluate against the baselines (and, given a simulator's `truth` folder, against the ceiling), log
    and register the arrears-risk model as `challenger`. Given the service's `interventions`, it learns only from
    outcomes its contacts did not cause (`training.treatment`); its test rows stay as they came, so the champion is
    compared on the same rows."""
    params = params or load_params("arrears_risk")
    data = risk_training_set(settings, params, outcomes)
    names = data.names
    split, notes = _risk_split(data.frame, params)
    horizon = params["label"]["horizon_weeks"]
    train_rows, treatment = _treatment_aware(split.train, interventions, horizon)
    valid_rows, _ = _treatment_aware(split.valid, interventions, horizon)
    split = replace(split, train=train_rows, valid=valid_rows)
    coverage, coverage_notes = coverage_record(data.coverage)
    notes = coverage_notes + notes
    booster, calibration = fit_and_calibrate(split.train, split.valid, names, params["lightgbm"])
    test = split.test.copy().join(score(booster, split.test, names, calibration))
    metrics = risk_metrics(test, params["capacity"], rank="risk_raw")
    groups_frame = monitoring_groups(settings, test["tenancy_id"])
    groups = group_metrics(test, groups_frame, params["capacity"]) if groups_frame.shape[1] > 1 else pd.DataFrame()
    if not groups.empty:
        metrics |= bias_metrics(groups, metrics["auc"])
    metrics |= champion_on_same_window(settings, test, params["feature_service"], params["capacity"])
    metrics |= reason_shares(booster, test, names) | coverage | treatment
    if truth is not None:
        metrics |= risk_ceiling(Truth(truth), split, test, names, params["lightgbm"], params["capacity"], metrics)
    registered = log_and_register(
        settings, registry.RISK_MODEL, booster, split.train[names].head(5),
        params={"feature_service": params["feature_service"], "best_iteration": booster.best_iteration,
                "train_rows": len(split.train), "test_rows": len(split.test), "capacity": params["capacity"],
                **_split_params(split, params["lightgbm"], params["label"])},
        metrics=metrics,
        tags={"label_source": "outcomes_file" if outcomes is not None else "ledger",
              "split": "held_out_tenancies" if notes else "time", **calibration.tags(),
              "treatment_aware": str(interventions is not None).lower()},
        version_tags={"feature_service": params["feature_service"], **calibration.tags()},
        evidence_in=lambda folder: evidence.risk_evidence(folder, booster, split, test, names, metrics, groups,
                                                          params, notes),
        after_register=lambda version: {"reference": registry.save_reference(settings, split.train[names], version)})
    return TrainingResult(registered.run_id, registered.version, metrics, names, test, notes, groups)


# -- the payment-date model and the cash forecast built on it --------------------------------------------------------
@dataclass(frozen=True)
class CashOrigin:
    """One backtest origin's simulation, as the served forecast would have made it that day."""

    origin: pd.Timestamp
    totals: np.ndarray  #: the tenants' own money simulated for the portfolio (sims, weeks; pence)
    known: np.ndarray  #: the DWP's lines expected then (sims, weeks; pence); zeros without the schedules feed
    actual: pd.DataFrame  #: all the money the origin's tenancies received a day (what the forecast is judged on)
    own: pd.DataFrame  #: the money a day the simulation is of: `actual` less the benefit the lines forecast


def simulate_origin(booster: lgb.Booster, features: pd.DataFrame, part: LedgerSlice, daily: pd.DataFrame,
                    origin: pd.Timestamp, params: dict, seed: int) -> CashOrigin:
    """The forecast from `origin` of the tenancies in `features`, as `serving.treasury.forecast.forecast_now` makes
    it: with the DWP's schedules in the ledger, the lines expected from what was known on the day
    (`features.schedules.lines_known_on`) are known money, and the benefit of the tenancies they cover is taken out
    of the ledger (up to the day) the tenants' habits are simulated from."""
    plan, weeks = params["cash"], params["cash"]["weeks"]
    ids, day = features["tenancy_id"].to_numpy(), pd.Timestamp(origin).tz_localize(None).normalize()
    actual = daily[daily["tenancy_id"].isin(set(ids))]
    lines = None if part.schedules is None else lines_known_on(part.schedules, part.tenancies, part.transactions,
                                                               day, weeks)
    before = part.transactions[pd.to_datetime(part.transactions["posted_date"]) <= day]
    money = cash.OwnMoney.of(before, part.tenancies, lines, PaymentLabelSpec(**params["label"]))
    sims, known = cash.forecast_with_schedules(booster, features, part.tenancies, money, origin, weeks,
                                               plan["simulations"], seed, cash.Horizon.weekly(weeks))
    scheduled = np.zeros((plan["simulations"], weeks)) if known is None else known.sum(axis=1)
    own = money.daily[money.daily["tenancy_id"].isin(set(ids))]
    return CashOrigin(origin, sims.sum(axis=1), scheduled, actual, own)


def blend_rows(seen: CashOrigin) -> pd.DataFrame:
    """An origin's rows as the blend is chosen on: the served forecast blends the simulation with the baseline of
    the tenants' own money and adds the scheduled lines, so the baseline here is that of `own` plus the lines'
    mean (without schedules, the usual last-4-weeks average), against all that came in."""
    rows = cash.backtest_origin(seen.totals + seen.known, seen.actual, seen.origin)
    own = cash.tenancy_baselines(seen.own.assign(tenancy_id="all"), seen.origin, np.array(["all"]))[0] / 100.0
    return rows.assign(baseline=own + seen.known.mean(axis=0) / 100.0)


def backtest_cash(settings: TrainingSettings, store, booster: lgb.Booster, part: LedgerSlice,
                  first_origin: pd.Timestamp, params: dict
                  ) -> tuple[pd.DataFrame, cash.CommonFactor, float, cash.Blend, pd.DataFrame]:
    """Forecast from past weekly dates from `first_origin` on (the first date no training label reaches: the trees
    have seen none of the weeks forecast) and set each week against what was then received.

    Returns one row per (origin, week ahead): forecast mean/P10/P50/P90 (with the DWP's scheduled lines when the
    ledger has the schedules, as served: `simulate_origin`), the last-4-weeks-average baseline, and actual receipts
    of the tenancies live at the origin; the common factor estimated from these weeks (the bands carry it, so their
    coverage is in-sample for its width: `bench.cash_backtest` judges later origins); the coverage the tenants' own
    uncertainty alone would have had; the blend of simulation and baseline by week ahead (`cash.estimate_blend`,
    on these weeks: the rows are blended with it, in-sample); and the simulation's own rows before the blend.
    """
    plan, weeks = params["cash"], params["cash"]["weeks"]
    offline = read_offline(settings, columns=["tenancy_id", "event_timestamp"])
    last_posting = part.transactions["posted_date"].max()
    dates = sorted(d for d in offline["event_timestamp"].unique()
                   if pd.Timestamp(d) >= first_origin
                   and pd.Timestamp(d).tz_localize(None) + pd.Timedelta(weeks=weeks) <= last_posting)
    origins = [pd.Timestamp(o) for o in dates[::-1][:: plan["origin_every_weeks"]][: plan["backtest_origins"]][::-1]]
    if not origins:
        return pd.DataFrame(), cash.CommonFactor(), float("nan"), cash.Blend(), pd.DataFrame()
    daily = daily_receipts(part.transactions)
    cases = offline[offline["event_timestamp"].isin(origins)].reset_index(drop=True)
    every = historical_features(store, cases, params["feature_service"])  # one join: ~5 s a call, whatever its size
    seen = []
    for k, origin in enumerate(origins):
        features = every[every["event_timestamp"] == origin].reset_index(drop=True)
        seen.append(simulate_origin(booster, features, part, daily, origin, params, seed=k))
    alone = pd.concat([cash.backtest_origin(o.totals + o.known, o.actual, o.origin) for o in seen])
    blend = cash.estimate_blend(pd.concat([blend_rows(o) for o in seen]))
    seen = [replace(o, totals=cash.blend_totals(blend, o.totals, o.own, o.origin) + o.known) for o in seen]
    blended = pd.concat([cash.backtest_origin(o.totals, o.actual, o.origin) for o in seen])
    factor = cash.estimate_common_factor(blended)
    rows = [cash.backtest_origin(o.totals, o.actual, o.origin, factor, seed=k) for k, o in enumerate(seen)]
    return (pd.concat(rows, ignore_index=True), factor, cash.cash_metrics(blended)["cash_p10_p90_coverage"], blend,
            alone)


def payment_training_set(settings: TrainingSettings, params: dict,
                         part: LedgerSlice) -> tuple[TrainingSet, PaymentLabelSpec]:
    spec = PaymentLabelSpec(**params["label"])
    as_of = _ledger_weeks(part)
    labels = on_every_weekday(lambda dates: payment_date_labels(part.tenancies, part.transactions, dates, spec),
                              as_of)
    labels = thin_weeks(labels, as_of, params["sample_every_weeks"])
    return point_in_time(settings, params["feature_service"], labels, settings.max_missing_feature_share), spec


def train_payment_model(settings: TrainingSettings, params: dict | None = None,
                        truth: Path | None = None) -> TrainingResult:
    params = params or load_params("payment_date")
    part = load_ledger_slice(settings)
    data, spec = payment_training_set(settings, params, part)
    names = data.names
    split = time_split(data.frame, embargo_weeks=int(np.ceil(spec.horizon_days / 7)))
    booster = pdm.fit(split.train, split.valid, names, params["lightgbm"])
    interval = pdm.calibrate_interval(booster, split.valid, spec.horizon_days)
    paid = qualifying_payment_days(part.tenancies, part.transactions, spec)
    test = split.test.copy().join(pdm.predict_quantiles(booster, split.test, interval))
    test["naive_days"] = pdm.naive_baseline(paid, test)
    metrics = pdm.payment_metrics(test, spec.horizon_days)
    coverage, notes = coverage_record(data.coverage)
    metrics |= coverage
    if truth is not None:
        metrics |= payment_ceiling(Truth(truth), split, test, names, params["lightgbm"], spec.horizon_days)
    backtest, factor, tenants_only, blend, alone = backtest_cash(settings, data.store, booster, part,
                                                                 split.valid_start, params)
    metrics |= cash.cash_metrics(backtest)
    if not backtest.empty:
        metrics |= {"cash_p10_p90_coverage_tenants_only": tenants_only,
                    "cash_common_sd_month_start": factor.month_start, "cash_common_sd_other": factor.other,
                    "cash_common_level_month_start": factor.month_start_level,
                    "cash_common_level_other": factor.other_level}
        metrics |= {f"cash_simulation_only_{k}": v for k, v in cash.cash_metrics(alone).items() if k.startswith("wape")
                    and not k.endswith("baseline")}
        metrics |= {f"cash_blend_weight_week{w + 1}": v for w, v in enumerate(blend.weights)}
    registered = log_and_register(
        settings, registry.PAYMENT_MODEL, booster,
        pdm.person_period(split.train.head(5), names)[[*names, *pdm.BIN_COLUMNS]],
        params={"feature_service": params["feature_service"], "best_iteration": booster.best_iteration,
                "train_cases": len(split.train), "test_cases": len(test),
                "bin_edges": ",".join(map(str, pdm.BIN_EDGES)),
                **{f"cash_{k}": v for k, v in params["cash"].items()},
                **_split_params(split, params["lightgbm"], params["label"])},
        metrics=metrics, tags=interval.tags() | factor.tags() | blend.tags(),
        version_tags={"feature_service": params["feature_service"], **interval.tags(), **factor.tags(),
                      **blend.tags()},
        evidence_in=lambda folder: evidence.payment_evidence(folder, booster, split, test, names, metrics,
                                                             backtest, params))
    return TrainingResult(registered.run_id, registered.version, metrics, names, test, notes, backtest=backtest)

