"""The monitoring jobs on the served portfolio, run the way the scheduler runs them (`arrears.schedule.run_job`)."""

from __future__ import annotations

import json

import pandas as pd

from arrears.schedule import run_job, schedule_settings
from monitoring.jobs import feature_drift
from tests.support.cli import ok


def test_the_weekly_jobs_run_recorded_and_drift_compares_like_with_like(in_pipeline_home: dict) -> None:
    settings, schedule = schedule_settings()
    records = {name: run_job(settings, schedule, name) for name in ("refresh", "drift", "bias", "performance")}
    assert {name: r["status"] for name, r in records.items()} == dict.fromkeys(records, "succeeded"), records

    refresh = records["refresh"]["outputs"]
    assert refresh["features"] in ("unchanged", "full") and refresh["worklist_run"]  # the prediction log goes on

    drift = records["drift"]["outputs"]
    as_of = pd.Timestamp(drift["as_of"])
    assert all(pd.Timestamp(d).weekday() == as_of.weekday() for d in drift["reference_dates"])
    assert drift["current_rows"] > 500 and drift["reference_rows"] > 3 * drift["current_rows"] * 0.8
    # The same portfolio against the champion's training sample (Sundays, two years) "drifts" by construction;
    # like with like, a portfolio nothing happened to stays under the alert threshold.
    against_training = feature_drift(settings).drifted_share
    assert drift["drifted_share"] <= schedule.thresholds.drift_share < against_training, (drift, against_training)
    assert "feature_drift" not in records["drift"]["alert_kinds"]
    # ... and within each benefit type, payment method and patch; small groups are listed, not judged
    segments = {s["segment"]: s for s in drift["segments"]}
    assert {name.split("=")[0] for name in segments} == {"benefit_type", "payment_method", "patch"}
    assert all(s["can_alert"] == (s["rows"] >= schedule.thresholds.segment_min_rows) for s in segments.values())
    judged = [s for s in segments.values() if s["can_alert"]]
    assert judged and all(open(s["html"]).read() and s["drifted_share"] <= 0.3 for s in judged)
    assert "segment_drift" not in records["drift"]["alert_kinds"]
    summary = json.loads(open(drift["summary"]).read())
    assert summary["score"]["column"] == "risk_score" and summary["score"]["method"].lower().startswith("psi")

    bias = records["bias"]["outputs"]
    page = open(bias["served_html"]).read()
    assert bias["matured_run"] is None  # the ledger ends on the run's day: no outcome has matured
    assert not any(t in page for t in in_pipeline_home["portfolio"].tenancies["tenancy_id"].head(200))

    performance = records["performance"]["outputs"]
    assert performance["matured_runs"] == 0 and 0 < performance["latest_estimated_precision_at_top_k"] < 1
    # refresh recorded the day's cash forecast; none of its weeks has come in yet
    assert refresh["forecast"] and performance["cash_forecasts"] >= 1 and performance["cash_matured_weeks"] == 0

    status = json.loads(ok("monitor", "status", "--json").stdout)
    latest = {job["job"]: job["last_run"]["status"] for job in status["jobs"] if job["last_run"]}
    assert latest == {"refresh": "succeeded", "drift": "succeeded", "bias": "succeeded", "performance": "succeeded"}
