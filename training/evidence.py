"""Evidence logged with every model version: plots (PNG), tables (CSV) and a model card (Markdown), written to a
folder that the training run then logs to MLflow as artefacts. No tenant identifiers or personal data go into any
of them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score, roc_curve

from training.evaluate import at_capacity, baseline_scores, calibration_table
from training.payment_date import BIN_COLUMNS, person_period

# shap (14 s to import) and matplotlib (1-2 s, its Agg backend chosen before pyplot) are imported when a plot is
# drawn: `training.train` imports this module, and the scheduler imports that for its nightly refresh job too.


def _pyplot():
    """matplotlib without a display (imported on first use: nothing happens at import time)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def roc_plot(test: pd.DataFrame, scores: dict[str, str], path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    for label, column in scores.items():
        fpr, tpr, _ = roc_curve(test["label"], test[column])
        ax.plot(fpr, tpr, label=f"{label} (AUC {roc_auc_score(test['label'], test[column]):.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC on the test weeks")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def calibration_plot(table: pd.DataFrame, path: Path, title: str = "Calibration on the test weeks") -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.plot(table["predicted"], table["observed"], marker="o")
    ax.set(xlabel="predicted probability (bin mean)", ylabel="observed rate", title=title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def lift_plot(test: pd.DataFrame, scores: dict[str, str], path: Path) -> Path:
    """Precision among the top k% each week, for k from 2% to 50%: the model against every baseline."""
    plt = _pyplot()
    shares = np.array([0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5])
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, column in scores.items():
        ax.plot(shares * 100, [at_capacity(test, column, capacity=s)[0] for s in shares], marker="o", label=label)
    ax.axhline(test["label"].mean(), color="grey", linestyle=":", label="base rate")
    ax.set(xlabel="officer capacity: top % of caseload worked each week", ylabel="share whose arrears grew",
           title="Lift versus the baselines")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def shap_summary_plot(booster, features: pd.DataFrame, path: Path, rows: int = 2000) -> Path:
    import shap

    plt = _pyplot()
    sample = features.sample(n=min(rows, len(features)), random_state=0)
    contrib = booster.predict(sample.to_numpy(dtype=float), pred_contrib=True)[:, :-1]
    shap.summary_plot(contrib, sample, show=False, max_display=15)
    fig = plt.gcf()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def forecast_plot(forecast: pd.DataFrame, path: Path, actual: pd.Series | None = None,
                  title: str = "Expected receipts by week") -> Path:
    plt = _pyplot()
    portfolio = forecast[forecast["scope"] == "portfolio"]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.fill_between(portfolio["week"], portfolio["p10"], portfolio["p90"], alpha=0.3, label="P10–P90")
    ax.plot(portfolio["week"], portfolio["p50"], marker="o", label="P50")
    if actual is not None:
        ax.plot(actual.index, actual.values, marker="x", color="black", label="actual")
    ax.set(xlabel="week ahead", ylabel="receipts (£)", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def metrics_table(metrics: dict[str, float], rows: list[tuple[str, str]]) -> str:
    """A Markdown table: model versus each baseline, metric by metric."""
    lines = ["| metric | " + " | ".join(name for name, _ in rows) + " |",
             "|---|" + "---|" * len(rows)]
    for metric in ("auc", "pr_auc", "precision_at_capacity", "captured_at_capacity"):
        cells = []
        for _, suffix in rows:
            value = metrics.get(f"{metric}{suffix}")
            cells.append("" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.3f}")
        lines.append(f"| {metric} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def model_card(path: Path, *, title: str, sections: dict[str, str]) -> Path:
    text = [f"# {title}", ""]
    for heading, body in sections.items():
        text += [f"## {heading}", "", body.strip(), ""]
    path.write_text("\n".join(text))
    return path


def payment_day_plot(test: pd.DataFrame, horizon_days: int, path: Path) -> Path:
    """Histogram of the actual day of payment against the predicted P50, on the test cases that paid."""
    plt = _pyplot()
    seen = test[test["event"] == 1]
    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.arange(0, horizon_days + 2, 2)
    ax.hist(np.clip(seen["duration"], 0, bins[-1]), bins=bins, alpha=0.5, label="actual day of payment")
    ax.hist(np.clip(seen["p50"].replace(np.inf, bins[-1]), 0, bins[-1]), bins=bins, alpha=0.5, label="predicted P50")
    ax.set(xlabel="days after as_of", ylabel="cases", title="Payment day: predicted vs actual (test weeks)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# -- each model's evidence ------------------------------------------------------------------------------------------
RISK_SCORES = {"model": "risk_raw", "highest balance first": "baseline_balance",
               "stage list (>2 weeks, oldest first)": "baseline_rule", "first in, first out": "baseline_fifo"}


def risk_evidence(folder: Path, booster, split, test: pd.DataFrame, names: list[str], metrics: dict,
                  groups: pd.DataFrame, params: dict, notes: list[str]) -> list[Path]:
    """ROC, calibration, lift and SHAP summary plots, group metrics and the model card of a risk-model version."""
    folder.mkdir(parents=True, exist_ok=True)
    scored = test.join(baseline_scores(test).add_prefix("baseline_"))
    paths = [
        roc_plot(scored, RISK_SCORES, folder / "roc.png"),
        calibration_plot(calibration_table(test["label"].to_numpy(), test["risk_score"].to_numpy()),
                         folder / "calibration.png"),
        lift_plot(scored, RISK_SCORES, folder / "lift.png"),
        shap_summary_plot(booster, split.train[names], folder / "shap_summary.png"),
    ]
    if not groups.empty:
        groups.to_csv(folder / "group_metrics.csv", index=False)
        paths.append(folder / "group_metrics.csv")
    return [*paths, model_card(folder / "model_card.md", title="Model card: arrears_risk",
                               sections=risk_card(split, test, names, metrics, groups, params, notes))]


def risk_card(split, test: pd.DataFrame, names: list[str], metrics: dict, groups: pd.DataFrame, params: dict,
              notes: list[str]) -> dict[str, str]:
    label = params["label"]
    table = metrics_table(metrics, [("model", ""), ("highest balance", "_balance_baseline"),
                                    ("stage list", "_rule_baseline"), ("FIFO", "_fifo_baseline")])
    return {
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
        **_ceiling_section(metrics),
        "Groups (monitoring-only attributes, never features)": (
            "See group_metrics.csv." if not groups.empty else "No monitoring-only attributes were supplied."),
        "Known limits": "\n".join(f"- {n}" for n in [
            *notes,
            "Trained on one landlord's history; a change of policy (e.g. a new arrears process) changes the "
            "outcomes it learnt from.",
            "Groups with fewer than 200 rows or 20 cases of each outcome are reported but not judged."]),
    }


def _ceiling_section(metrics: dict) -> dict[str, str]:
    """The model against the ceiling, when a simulator's truth was given (`training.ceiling`)."""
    if "ceiling_auc" not in metrics:
        return {}
    rows = "\n".join(
        f"| {label} | {metrics[key]:.3f} | {metrics[f'ceiling_{key}']:.3f} | {metrics[f'{key}_balance_baseline']:.3f} |"
        for label, key in (("AUC", "auc"), ("precision at capacity", "precision_at_capacity"),
                           ("captured at capacity", "captured_at_capacity")))
    return {"Against the ceiling (simulated portfolio)": (
        "The oracle is the same learner on the same rows, also given the simulator's hidden truth (each tenancy's "
        "propensities and its shock state on the day).\n\n| metric | model | ceiling | highest balance |\n"
        f"|---|---|---|---|\n{rows}\n\nThe model reaches "
        f"{metrics['ceiling_share_of_lift_precision_at_capacity']:.0%} of the lift over highest-balance-first that "
        "the ceiling achieves in precision at capacity, and "
        f"{metrics['ceiling_share_of_lift_captured_at_capacity']:.0%} in arrears growth captured at capacity.")}


def payment_evidence(folder: Path, booster, split, test: pd.DataFrame, names: list[str], metrics: dict,
                     backtest: pd.DataFrame, params: dict) -> list[Path]:
    """The cash backtest, the payment-day histogram, the SHAP summary and the model card of a payment-date version."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    if not backtest.empty:
        backtest.to_csv(folder / "cash_backtest.csv", index=False)
        paths.append(folder / "cash_backtest.csv")
        last = backtest[backtest["origin"] == backtest["origin"].max()].assign(scope="portfolio")
        paths.append(forecast_plot(last, folder / "cash_backtest_latest_origin.png",
                                   actual=last.set_index("week")["actual"],
                                   title=f"Cash forecast from {last['origin'].iloc[0]} vs what came in"))
    horizon = params["label"]["horizon_days"]
    paths.append(payment_day_plot(test, horizon, folder / "payment_day.png"))
    paths.append(shap_summary_plot(booster, person_period(split.train.head(5000), names)[[*names, *BIN_COLUMNS]],
                                   folder / "shap_summary.png"))
    lines = [f"| {k} | {v:.3f} |" for k, v in metrics.items()]
    return [*paths, model_card(folder / "model_card.md", title="Model card: payment_date", sections={
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
            "- Training rows are spread over every weekday (each tenancy on its own), so any serving day is seen.",
            "- The cash forecast covers tenancies live at the forecast date (no new lettings). Its P10–P90 adds a "
            "common weekly factor to the tenants' own uncertainty; the factor's spread is estimated on these "
            "backtest weeks, so their coverage is in-sample (`cash_p10_p90_coverage_tenants_only` is the band "
            "without it); `bench.cash_backtest` judges later origins.",
        ]),
    })]
