"""Served worklist runs judged on what happened next (monitoring/performance.py, monitoring/outcomes.py).

Pure checks on hand-built runs (perfect scores, random scores, expected AUC, payment coverage), then the shared
pipeline's real run (tests/support/pipeline.py: 800 tenancies, seed 11, the ledger cut 9 weeks before the simulation
ends): against its own ledger the run has not matured and is only estimated; against the full simulated ledger (the
deliveries that came later) it is measured, near the AUC its model's training run logged and above
highest-balance-first on the same rows.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from monitoring.performance import (
    estimated_performance,
    expected_auc,
    payment_coverage,
    performance_history,
    run_performance,
    write_performance_report,
)
from tests.support.treasury import kept_receipts


# -- hand-built runs ----------------------------------------------------------------------------------------------
def hand_built_run(label: np.ndarray, raw_score: np.ndarray, patches: int = 2) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A run's rows (every case ready, ranked by `raw_score` within its patch) and its labels."""
    n = len(label)
    rows = pd.DataFrame({"tenancy_id": [f"T{i:06d}" for i in range(n)], "patch": [f"P{i % patches}" for i in range(n)],
                         "readiness_state": "ready", "raw_score": raw_score,
                         "risk_score": 1 / (1 + np.exp(-raw_score)), "balance": np.arange(n, dtype=float)[::-1]})
    rows = rows.sort_values(["raw_score", "tenancy_id"], ascending=[False, True]).reset_index(drop=True)
    rows["risk_rank"] = np.arange(1, n + 1)
    rows["queue_rank"] = rows.groupby("patch").cumcount() + 1
    labels = pd.DataFrame({"tenancy_id": [f"T{i:06d}" for i in range(n)], "label": label})
    return rows, labels


def test_perfect_scores_give_auc_one_and_lists_of_positives_only() -> None:
    label = np.r_[np.ones(20), np.zeros(80)].astype(int)  # 10 positives in each of the two patches
    rows, labels = hand_built_run(label, np.where(label == 1, 3.0, -3.0) + np.linspace(0, 0.1, 100))
    rows["risk_score"] = rows["tenancy_id"].map(labels.set_index("tenancy_id")["label"]).astype(float)
    m = run_performance(rows, labels, capacity=10)
    assert m["matured"] is True and m["rows"] == 100 and m["positives"] == 20 and m["list_size"] == 20
    assert m["auc"] == 1.0 and m["precision_at_capacity"] == 1.0 and m["captured_at_capacity"] == 1.0
    assert m["precision_at_top_k"] == 1.0 and m["captured_at_top_k"] == 1.0
    assert m["calibration_error"] == 0.0 and m["brier"] == 0.0
    # The balance baseline on the same rows: balance is highest for the first ids, the positives.
    assert m["auc_balance_baseline"] == 1.0 and m["precision_at_top_k_balance_baseline"] == 1.0


def test_random_scores_give_the_base_rate_on_the_list() -> None:
    rng = np.random.default_rng(12)
    label = (rng.random(20_000) < 0.2).astype(int)
    rows, labels = hand_built_run(label, rng.normal(size=20_000))
    m = run_performance(rows, labels, capacity=1_000)  # 2,000 listed: a standard error of about 0.009
    print({k: round(v, 3) for k, v in m.items() if isinstance(v, float)})
    assert m["list_size"] == 2_000
    assert abs(m["auc"] - 0.5) < 0.02
    assert abs(m["precision_at_capacity"] - m["observed_rate"]) < 0.03
    assert abs(m["precision_at_top_k"] - m["observed_rate"]) < 0.03
    assert abs(m["captured_at_capacity"] - 0.1) < 0.02  # a tenth of the cases listed: a tenth of the positives


def test_expected_auc_with_certain_probabilities_is_the_auc() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    score = rng.integers(0, 20, size=500).astype(float)  # ties, counted half
    label = (rng.random(500) < 0.3).astype(int)
    assert expected_auc(score, label) == pytest.approx(roc_auc_score(label, score))
    assert expected_auc(score, np.full(500, 0.3)) == pytest.approx(0.5, abs=0.02)  # scores that say nothing


def test_before_labels_mature_every_figure_is_named_estimated() -> None:
    label = np.r_[np.ones(20), np.zeros(80)].astype(int)
    rows, _ = hand_built_run(label, np.linspace(2, -2, 100))
    e = estimated_performance(rows, capacity=10)
    assert e["matured"] is False and e["rows"] == 100 and e["list_size"] == 20
    assert {k for k in e if k not in ("matured", "rows", "list_size")} == {k for k in e if k.startswith("estimated_")}
    listed = rows[rows["queue_rank"] <= 10]
    assert e["estimated_precision_at_capacity"] == pytest.approx(listed["risk_score"].mean())
    assert e["estimated_positives_at_capacity"] == pytest.approx(listed["risk_score"].sum())
    assert e["estimated_precision_at_top_k"] == pytest.approx(rows["risk_score"].head(20).mean())
    assert e["estimated_positives"] == pytest.approx(rows["risk_score"].sum())


def test_payment_coverage_reads_an_empty_day_as_beyond_the_horizon() -> None:
    rows = pd.DataFrame({"tenancy_id": ["A", "B", "C", "D"], "reasons": [[], [], [], None],
                         "payment_p10": [3.0, 20.0, 3.0, np.nan], "payment_p50": [5.0, 40.0, 7.0, np.nan],
                         "payment_p90": [10.0, np.nan, 10.0, np.nan]})
    outcomes = pd.DataFrame({"tenancy_id": ["A", "B", "C", "D"], "duration": [5, 56, 20, 56], "event": [1, 0, 1, 0]})
    m = payment_coverage(rows, outcomes, horizon_days=56)
    # A paid inside its interval; B paid nothing within the horizon, as its P90 (beyond it) said; C paid too late;
    # D was never predicted (not explained).
    assert m["payment_cases"] == 3 and m["p10_p90_coverage"] == pytest.approx(2 / 3)
    assert m["p50_mae_days"] == pytest.approx((0 + 13) / 2)


def test_a_report_before_any_run_says_so(tmp_path) -> None:
    from monitoring.performance import HISTORY_COLUMNS

    html_path, json_path = write_performance_report(pd.DataFrame(columns=list(HISTORY_COLUMNS)), tmp_path, "none")
    assert "No worklist run has been recorded yet" in html_path.read_text()
    assert json.loads(json_path.read_text()) == []


# -- the shared pipeline's served run ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def later(pipeline: dict, tmp_path_factory) -> dict:
    """The pipeline's settings with the ledger as it stands once the last 9 weeks have been delivered too (the full
    simulated portfolio, in a ledger of its own: the pipeline's is never touched), and both histories."""
    from features.feeds.ingest import ingest_delivery
    from features.ledger import open_ledger

    folder = tmp_path_factory.mktemp("later")
    settings = pipeline["settings"].model_copy(update={"ledger_url": f"duckdb:///{folder / 'ledger.duckdb'}"})
    with open_ledger(settings.ledger) as ledger:
        ingest_delivery(ledger, pipeline["root"] / "full", folder / "quarantine")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {"settings": settings, "now": performance_history(pipeline["settings"]),
                "later": performance_history(settings)}


def served_run(history: pd.DataFrame, pipeline: dict) -> pd.Series:
    return history.set_index("run_id").loc[pipeline["payload"]["run_id"]]


def test_a_run_whose_horizon_has_not_passed_is_only_estimated(pipeline, later) -> None:
    run = served_run(later["now"], pipeline)
    assert not run["matured"] and not run["payment_matured"]
    assert run[["auc", "precision_at_capacity", "precision_at_top_k", "calibration_error"]].isna().all()
    assert run["rows"] == pipeline["everyone"]["population"]
    assert 0.0 < run["estimated_precision_at_capacity"] < 1.0 and run["estimated_positives"] > 0
    assert 0.5 < run["estimated_auc"] < 1.0


def test_matured_labels_are_trainings_labels_on_any_weekday(later) -> None:
    """On a Sunday and on a Thursday, the label of a date is the one training computes on its whole weekly grid."""
    from features.timeline import weekly_as_of_dates
    from monitoring.outcomes import matured_risk_labels, read_outcome_ledger, risk_label_spec
    from training.labels import arrears_growth_labels

    ledger = read_outcome_ledger(later["settings"])
    grid = weekly_as_of_dates(ledger.transactions["posted_date"].min(), ledger.transactions["posted_date"].max())
    for shift in (0, 3):
        shifted = grid - pd.Timedelta(days=shift)
        everyone = arrears_growth_labels(ledger.tenancies, ledger.transactions, shifted, risk_label_spec())
        day = shifted[60]
        want = everyone[everyone["event_timestamp"].dt.tz_localize(None) == day][["tenancy_id", "label"]]
        got = matured_risk_labels(later["settings"], day.date(), ledger.tenancies["tenancy_id"], ledger)
        assert len(got) > 500 and got["label"].sum() > 20
        pd.testing.assert_frame_equal(got.sort_values("tenancy_id", ignore_index=True),
                                      want.sort_values("tenancy_id", ignore_index=True), check_dtype=False)
    assert matured_risk_labels(later["settings"], ledger.end, ["T000001"], ledger) is None  # nothing after it yet


def test_a_matured_run_is_measured_near_its_training_auc_and_above_highest_balance_first(pipeline, later) -> None:
    """Measured on the 8 weeks after the run's date: the AUC is within 3 standard errors (Hanley & McNeil, about
    0.084 here) of the test AUC the model's training run logged (measured: served 0.884, training 0.835, a gap of
    +0.049); the model ranks above highest-balance-first on the same rows."""
    import mlflow
    from training.evaluate import auc_standard_error

    run = served_run(later["later"], pipeline)
    print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in run.items()})
    assert run["matured"] and run["rows_unlabelled"] == 0 and run["rows"] == pipeline["everyone"]["population"]
    client = mlflow.MlflowClient(tracking_uri=pipeline["settings"].tracking_uri,
                                 registry_uri=pipeline["settings"].tracking_uri)
    version = client.get_model_version("arrears_risk", run["model_version"])
    training_auc = client.get_run(version.run_id).data.metrics["auc"]
    assert run["training_auc"] == pytest.approx(training_auc)
    se = auc_standard_error(run["auc"], run["positives"], run["rows"] - run["positives"])
    print(f"served AUC {run['auc']:.3f}, training {training_auc:.3f}, gap {run['auc'] - training_auc:+.3f}, "
          f"3 SE {3 * se:.3f}")
    assert run["auc"] > 0.75 and abs(run["auc"] - training_auc) <= 3 * se
    assert run["auc"] >= run["auc_balance_baseline"] + 0.05
    assert run["precision_at_top_k"] > run["precision_at_top_k_balance_baseline"]
    # Every ready case fits its patch's list (capacity 300): the lists by risk and by balance are the same cases.
    assert run["list_size"] == pipeline["everyone"]["state_counts"]["ready"]
    assert run["precision_at_capacity"] == run["precision_at_capacity_balance_baseline"]
    assert abs(run["mean_predicted"] - run["observed_rate"]) < 0.03 and run["calibration_error"] < 0.05


def test_a_tighter_capacity_lists_the_riskier_ready_cases(pipeline, later) -> None:
    """With 10 cases a patch, the run's lists (by risk) hold more of the cases that got worse than lists drawn by
    balance, and than their base rate; the estimate from the probabilities is near what was measured."""
    from monitoring.outcomes import matured_risk_labels
    from serving.runs.store import open_runs

    with open_runs(pipeline["settings"]) as store:
        rows = store.rows(pipeline["payload"]["run_id"])
    labels = matured_risk_labels(later["settings"], pd.Timestamp(pipeline["payload"]["as_of"]).date(),
                                 rows["tenancy_id"])
    m, e = run_performance(rows, labels, capacity=10), estimated_performance(rows, capacity=10)
    print({k: round(v, 3) for k, v in {**m, **e}.items() if "precision" in k})
    assert m["precision_at_capacity"] >= m["precision_at_capacity_balance_baseline"]
    assert m["precision_at_capacity"] > 2 * m["observed_rate"]
    assert m["precision_at_top_k"] >= m["precision_at_top_k_balance_baseline"] + 0.03
    assert abs(e["estimated_precision_at_capacity"] - m["precision_at_capacity"]) < 0.1


def test_payment_intervals_hold_about_what_training_measured(pipeline, later) -> None:
    import mlflow

    run = served_run(later["later"], pipeline)
    client = mlflow.MlflowClient(tracking_uri=pipeline["settings"].tracking_uri,
                                 registry_uri=pipeline["settings"].tracking_uri)
    version = client.get_model_version("payment_date", run["payment_model_version"])
    trained = client.get_run(version.run_id).data.metrics
    print(f"coverage {run['p10_p90_coverage']:.3f} (training {trained['p10_p90_coverage']:.3f}), "
          f"P50 MAE {run['p50_mae_days']:.2f} days (training {trained['mae_days']:.2f})")
    assert run["payment_matured"] and run["payment_cases_known"] > 500
    assert abs(run["p10_p90_coverage"] - trained["p10_p90_coverage"]) < 0.08
    assert run["p50_mae_days"] < trained["mae_days"] + 1.5


def test_the_report_is_readable_and_names_no_tenancy(pipeline, later, tmp_path) -> None:
    history = pd.concat([later["now"], later["later"]], ignore_index=True)  # as if measured once, then later
    html_path, json_path = write_performance_report(history, tmp_path)
    page = html_path.read_text()
    assert "data:image/png;base64," in page and "matured" in page and "highest balance first" in page.lower()
    assert not any(row["tenancy_id"] in page for row in pipeline["everyone"]["rows"])
    served = [r for r in json.loads(json_path.read_text()) if r["run_id"] == pipeline["payload"]["run_id"]]
    assert [r["matured"] for r in served] == [False, True]
    assert served[0]["auc"] is None and served[1]["auc"] == pytest.approx(served_run(later["later"], pipeline)["auc"])


def plain_receipts(portfolio, as_of: pd.Timestamp, weeks: int) -> pd.DataFrame:
    """Week by week, what the tenancies live on `as_of` received, in plain pandas on the simulated portfolio."""
    t = portfolio.tenancies
    end = pd.to_datetime(t["end_date"])
    live = t[(pd.to_datetime(t["start_date"]) <= as_of) & (end.isna() | (end >= as_of))]
    receipts = kept_receipts(portfolio.transactions[portfolio.transactions["tenancy_id"].isin(live["tenancy_id"])])
    days = (receipts["day"] - as_of).dt.days
    ahead = receipts[(days > 0) & (days <= 7 * weeks)]
    week = (ahead["day"] - as_of).dt.days.sub(1) // 7 + 1
    return ahead.assign(week=week, patch=ahead["tenancy_id"].map(live.set_index("tenancy_id")["patch"]))


def test_recorded_forecasts_are_judged_week_by_week_on_the_receipts_that_came_in(pipeline, later) -> None:
    """The forecast is kept once however often it is asked for; against the pipeline's own ledger no week has
    matured; once the 9 later weeks are delivered, weeks 1-9 have, and their actuals are what a plain pandas count
    on the simulated portfolio gives, for the portfolio and each patch."""
    from monitoring.cash import accuracy_by_horizon, forecast_accuracy
    from serving.treasury.forecast import forecast_now, record_forecast
    from serving.treasury.history import open_forecasts

    forecast = forecast_now(pipeline["settings"], weeks=13)  # the one the service served and recorded, or made now
    # each tenancy's expected payments, for treasury's own models: they add up to the portfolio's forecast
    each = forecast.per_tenancy
    assert len(each) == forecast.tenancies == each["tenancy_id"].nunique()
    total = forecast.table.loc[forecast.table["scope"] == "portfolio", "mean"].sum()
    assert each["expected_receipts"].sum() == pytest.approx(total, abs=0.01 * len(each))
    banded = each.dropna(subset=["next_payment_p90"])
    assert len(banded) > 0.8 * len(each)
    assert ((banded["next_payment_p10"] <= banded["next_payment_p50"])
            & (banded["next_payment_p50"] <= banded["next_payment_p90"])).all()
    first, again = record_forecast(pipeline["settings"], forecast), record_forecast(pipeline["settings"], forecast)
    assert not again[1] and first[0] == again[0]
    with open_forecasts(pipeline["settings"]) as store:
        assert (store.runs()["forecast_id"] == first[0]).sum() == 1 and len(store.weeks([first[0]])) > 13
    now = forecast_accuracy(pipeline["settings"])
    assert not now["matured"].any() and now["actual"].isna().all()

    table = forecast_accuracy(later["settings"])
    mine = table[table["forecast_id"] == first[0]]
    assert sorted(mine.loc[mine["matured"], "week"].unique()) == list(range(1, 10))
    as_of = pd.Timestamp(forecast.as_of).tz_localize(None).normalize()
    plain = plain_receipts(pipeline["portfolio"], as_of, 13)
    portfolio = mine[mine["scope"] == "portfolio"].set_index("week")
    expected = plain.groupby("week")["money"].sum().reindex(range(1, 10), fill_value=0.0)
    np.testing.assert_allclose(portfolio.loc[1:9, "actual"].to_numpy(), expected.to_numpy(), rtol=1e-9, atol=0.005)
    by_patch = plain.groupby(["patch", "week"])["money"].sum()
    patches = mine[(mine["scope"] != "portfolio") & mine["matured"]]
    wanted = [by_patch.get((p, w), 0.0) for p, w in zip(patches["scope"], patches["week"], strict=True)]
    np.testing.assert_allclose(patches["actual"].to_numpy(), wanted, atol=0.005)
    # the portfolio is the sum of its patches, in the band's mean as in what came in
    summed = patches.groupby("week")[["actual", "mean"]].sum()
    np.testing.assert_allclose(summed.to_numpy(), portfolio.loc[1:9, ["actual", "mean"]].to_numpy(), rtol=1e-9)
    by_week = accuracy_by_horizon(mine)
    print(by_week.round(3).to_string())
    assert list(by_week["week"]) == list(range(1, 10)) and (by_week["weeks_judged"] == 1).all()
    assert by_week["wape"].between(0, 1).all() and by_week["p10_p90_coverage"].isin([0.0, 1.0]).all()
