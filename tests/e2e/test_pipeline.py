"""The pipeline's verbs as a user runs them, on the shared pipeline (tests/support/pipeline.py): the registry holds
the champion with its FeatureService, training rows are the snapshot as of their date, drift is reported, and a
landlord's own outcomes train a model."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from tests.support.cli import ok
from tests.support.pipeline import CUTOFF


def test_mlflow_finds_the_champion_with_its_feature_service(pipeline) -> None:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=pipeline["settings"].tracking_uri,
                                 registry_uri=pipeline["settings"].tracking_uri)
    version = client.get_model_version_by_alias("arrears_risk", "champion")
    assert version.tags["feature_service"] == "arrears_risk_v1"
    run = client.get_run(version.run_id)
    assert run.data.metrics["auc"] > 0.7
    assert run.data.metrics["precision_at_capacity"] >= run.data.metrics["precision_at_capacity_balance_baseline"]


def test_drift_report_is_written(in_pipeline_home) -> None:
    week_before = (CUTOFF - pd.Timedelta(days=7)).date()  # a past served day, judged like with like
    said = ok("monitor", "drift", "--as-of", str(week_before))
    like = Path(said.stdout.strip().splitlines()[-1])  # a long path, printed whole on stdout
    assert like.name == "drift.html" and like.parent.name == str(week_before) and like.exists()
    assert like.with_name("drift_summary.json").exists() and f"As of {week_before}" in said.stderr  # the summary
    html = Path(ok("monitor", "drift", "--against", "training").stdout.strip().splitlines()[-1])
    assert html.exists() and html.with_name("feature_drift.json").exists()
    summary = json.loads(html.with_name("feature_drift_summary.json").read_text())
    assert {c["column"] for c in summary["columns"]} >= {"balance", "arrears_weeks", "days_since_last_payment"}


def test_training_features_are_the_snapshot_as_of_each_date(pipeline) -> None:
    """Through the FeatureService, a (tenancy, as_of) row gets exactly the snapshot of that date: not a later one
    (leakage) and not an older one (staleness)."""
    from features.store.feast import historical_features, open_store, service_feature_names
    from features.store.offline import GRID, REQUESTED, read_offline

    settings = pipeline["settings"]
    snapshots = read_offline(settings, kinds=(GRID, REQUESTED))  # the weekly grid and the days training asked for
    sample = snapshots.sample(n=300, random_state=2)[["tenancy_id", "event_timestamp"]]
    store = open_store(settings)
    names = service_feature_names(store, "arrears_risk_v1")
    got = historical_features(store, sample, "arrears_risk_v1").set_index(["tenancy_id", "event_timestamp"])
    want = snapshots.set_index(["tenancy_id", "event_timestamp"]).loc[got.index, names]
    pd.testing.assert_frame_equal(got[names].astype(float), want.astype(float), check_dtype=False)


def test_train_on_bring_your_own_outcomes_at_one_date(in_pipeline_home, tmp_path) -> None:
    """Outcomes supplied by the landlord, all at one as_of date: the model trains through the same FeatureService,
    validates on held-out tenancies, and says so."""
    from features.store.offline import read_offline

    settings = in_pipeline_home["settings"]
    snapshots = read_offline(settings)  # the weekly grid: every live tenancy on each date
    as_of = sorted(snapshots["event_timestamp"].unique())[-12]
    at_date = snapshots[snapshots["event_timestamp"] == as_of]
    outcomes = pd.DataFrame({"tenancy_id": at_date["tenancy_id"],
                             "as_of_date": pd.Timestamp(as_of).strftime("%Y-%m-%d"),
                             "outcome": (at_date["settled_arrears_weeks"] >= 1).astype(int)})
    path = tmp_path / "outcomes.csv"
    outcomes.to_csv(path, index=False)
    assert "held-out tenancies" in ok("train", "--outcomes", str(path), "--model", "risk").output
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    run = client.get_run(client.get_model_version_by_alias("arrears_risk", "challenger").run_id)
    assert run.data.tags["label_source"] == "outcomes_file" and run.data.tags["split"] == "held_out_tenancies"
    assert int(run.data.params["train_rows"]) + int(run.data.params["test_rows"]) < len(outcomes)
    assert run.data.metrics["auc"] > 0.8  # the outcome is a function of the features: easy, but it must be learnt
