"""End to end through the real parts: simulated feeds → ledger → Feast repo (feast apply, online store) → LightGBM
in the MLflow registry → a real `bentoml serve` process over HTTP → worklist; and `arrears demo` run twice.

The pipeline sees the portfolio only up to a cutoff 9 weeks before the simulation ends, so what really happened
to each ranked tenancy over the next 8 weeks is known, and the ranking can be judged on it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from arrears.cli import app
from features.feeds.ingest import ingest_delivery
from features.ledger import open_ledger
from features.settings import load_settings
from serving.settings import get_settings
from simulator import simulate_portfolio, write_portfolio
from serving.process import fetch_worklist, running_server
from training.labels import RiskLabelSpec, arrears_growth_labels

pytestmark = pytest.mark.e2e
runner = CliRunner()
END = pd.Timestamp("2026-10-31")
CUTOFF = END - pd.Timedelta(weeks=9)


def truncate(portfolio, cutoff: pd.Timestamp):
    """The portfolio as the landlord's system would have exported it on `cutoff`."""
    tenancies = portfolio.tenancies.copy()
    start = pd.to_datetime(tenancies["start_date"])
    end = pd.to_datetime(tenancies["end_date"].replace("", None))
    tenancies = tenancies[start <= cutoff].copy()
    tenancies.loc[end[start <= cutoff] > cutoff, "end_date"] = None  # a future move-out is not yet known
    tx = portfolio.transactions[pd.to_datetime(portfolio.transactions["posted_date"]) <= cutoff]
    events = portfolio.events[pd.to_datetime(portfolio.events["event_date"]) <= cutoff]
    return replace(portfolio, tenancies=tenancies, transactions=tx, events=events)


def ok(args: list[str]):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    home = root / "home"
    mp = pytest.MonkeyPatch()
    mp.setenv("ARREARS_HOME", str(home))
    load_settings.cache_clear()
    full = simulate_portfolio(n_tenancies=800, years=2.0, seed=11, end_date=END.date())
    write_portfolio(truncate(full, CUTOFF), root / "delivery")
    write_portfolio(full, root / "full")

    ok(["ingest", str(root / "delivery")])
    ok(["features"])
    ok(["train"])
    ok(["promote"])
    settings = get_settings()
    with running_server(settings) as url:
        payload = fetch_worklist(url, top=10_000)
        patch = payload["rows"][0]["patch"]
        patch_payload = fetch_worklist(url, top=10_000, patch=patch)
    yield {"root": root, "settings": settings, "payload": payload, "patch": patch, "patch_payload": patch_payload}
    mp.undo()
    load_settings.cache_clear()


def test_worklist_is_sorted_and_every_row_is_explained(pipeline) -> None:
    rows = pipeline["payload"]["rows"]
    assert len(rows) == pipeline["payload"]["population"] > 400
    assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
    scores = [r["risk_score"] for r in rows]
    assert scores == sorted(scores, reverse=True)
    for row in rows:
        assert len(row["reasons"]) == 3 and all(r["text"] for r in row["reasons"])
        total = row["base_value"] + sum(r["contribution"] for r in row["reasons"]) + row["other_contribution"]
        assert total == pytest.approx(row["raw_score"], abs=1e-6)
    assert pipeline["payload"]["as_of"] <= str(CUTOFF.date())


def test_the_cli_worklist_is_the_served_worklist(pipeline) -> None:
    """`arrears worklist` computes the list from the champion and the online features, as POST /worklist does."""
    for top, patch, served in ((10_000, None, pipeline["payload"]), (25, pipeline["patch"], pipeline["patch_payload"])):
        args = ["worklist", "--top", str(top), "--json"] + (["--patch", patch] if patch else [])
        printed = json.loads(ok(args).stdout)
        assert printed["rows"] == served["rows"][:top]
        assert {k: printed[k] for k in ("as_of", "population", "model_version", "unscored")} == \
            {k: served[k] for k in ("as_of", "population", "model_version", "unscored")}


def test_patch_filter_returns_only_that_patch(pipeline) -> None:
    rows = pipeline["patch_payload"]["rows"]
    assert rows and {r["patch"] for r in rows} == {pipeline["patch"]}
    assert len(rows) < len(pipeline["payload"]["rows"])


def test_top_decile_really_did_get_worse_more_often(pipeline, tmp_path) -> None:
    """Judge the served ranking on what happened next in the full simulated portfolio."""
    with open_ledger(f"duckdb:///{tmp_path / 'truth.duckdb'}") as ledger:
        ingest_delivery(ledger, pipeline["root"] / "full", tmp_path / "q")
        tenancies, transactions = ledger.read_table("tenancy_register"), ledger.read_table("transactions")
    as_of = pd.Timestamp(pipeline["payload"]["as_of"])
    # Start 4 weeks early so the settled balance at as_of has its trailing five weeks, as in training.
    # The worklist is as of the ledger's latest posting date, not a Sunday: a weekly grid through that date.
    grid = pd.date_range(as_of - pd.Timedelta(weeks=4), as_of + pd.Timedelta(weeks=8), freq="7D")
    realised = arrears_growth_labels(tenancies, transactions, grid, RiskLabelSpec())
    outcome = realised[realised["event_timestamp"] == as_of.tz_localize("UTC")].set_index("tenancy_id")["label"]
    ranked = [outcome.get(r["tenancy_id"]) for r in pipeline["payload"]["rows"]]
    ranked = pd.Series(ranked, dtype="float").dropna()
    n = len(ranked)
    top_decile, bottom_half = ranked.iloc[: n // 10].mean(), ranked.iloc[n // 2:].mean()
    print(f"realised arrears growth: top decile {top_decile:.3f}, bottom half {bottom_half:.3f}, n={n}")
    assert top_decile >= bottom_half + 0.25 and top_decile >= 2 * bottom_half, (top_decile, bottom_half)


def test_mlflow_finds_the_champion_with_its_feature_service(pipeline) -> None:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=pipeline["settings"].tracking_uri,
                                 registry_uri=pipeline["settings"].tracking_uri)
    version = client.get_model_version_by_alias("arrears_risk", "champion")
    assert version.tags["feature_service"] == "arrears_risk_v1"
    run = client.get_run(version.run_id)
    assert run.data.metrics["auc"] > 0.7
    assert run.data.metrics["precision_at_capacity"] >= run.data.metrics["precision_at_capacity_balance_baseline"]


def test_drift_report_is_written(pipeline) -> None:
    result = ok(["monitor", "drift"])
    html = Path(result.stdout.strip().splitlines()[-1])
    assert html.exists() and html.with_name("feature_drift.json").exists()
    summary = json.loads(html.with_name("feature_drift_summary.json").read_text())
    assert {c["column"] for c in summary["columns"]} >= {"balance", "arrears_weeks", "days_since_last_payment"}


def test_demo_runs_twice_then_worklist_and_info_work(tmp_path) -> None:
    """`arrears demo` as `make demo` runs it (a real subprocess), twice in the same home."""
    env = {"ARREARS_HOME": str(tmp_path / "demo_home"), "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin"}
    arrears = str(Path(sys.executable).with_name("arrears"))
    for attempt in (1, 2):
        done = subprocess.run([arrears, "demo", "--tenancies", "400", "--top", "30"], env=env, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, f"demo run {attempt} failed:\n{done.stdout}\n{done.stderr}"
        assert "worklist (CSV)" in done.stdout and "drift report" in done.stdout
    worklist = subprocess.run([arrears, "worklist", "--top", "20", "--json"], env=env, capture_output=True, text=True)
    assert worklist.returncode == 0, worklist.stderr
    rows = json.loads(worklist.stdout)["rows"]
    assert len(rows) == 20 and rows[0]["rank"] == 1
    info = json.loads(subprocess.run([arrears, "info", "--json"], env=env, capture_output=True, text=True).stdout)
    assert Path(info["reports_dir"], "worklist.csv").exists()
    with open_ledger(info["ledger"]) as ledger:
        assert ledger.counts()["deliveries"] == 2  # the second run re-ingested the same delivery as duplicates
        assert ledger.query("SELECT COUNT(DISTINCT transaction_id) AS n FROM transactions")["n"].iloc[0] == \
            ledger.counts()["transactions"]


def test_training_features_are_the_snapshot_as_of_each_date(pipeline) -> None:
    """Through the FeatureService, a (tenancy, as_of) row gets exactly the snapshot of that date: not a later one
    (leakage) and not an older one (staleness)."""
    from features.store.feast import open_store
    from features.store.offline import snapshot_path
    from features.store.feast import historical_features, service_feature_names

    settings = pipeline["settings"]
    snapshots = pd.read_parquet(snapshot_path(settings))
    sample = snapshots.sample(n=300, random_state=2)[["tenancy_id", "event_timestamp"]]
    store = open_store(settings)
    names = service_feature_names(store, "arrears_risk_v1")
    got = historical_features(store, sample, "arrears_risk_v1").set_index(["tenancy_id", "event_timestamp"])
    want = snapshots.set_index(["tenancy_id", "event_timestamp"]).loc[got.index, names]
    pd.testing.assert_frame_equal(got[names].astype(float), want.astype(float), check_dtype=False)


def test_train_on_bring_your_own_outcomes_at_one_date(pipeline, tmp_path) -> None:
    """Outcomes supplied by the landlord, all at one as_of date: the model trains through the same FeatureService,
    validates on held-out tenancies, and says so."""
    from features.store.offline import snapshot_path

    snapshots = pd.read_parquet(snapshot_path(pipeline["settings"]))
    as_of = sorted(snapshots["event_timestamp"].unique())[-12]
    at_date = snapshots[snapshots["event_timestamp"] == as_of]
    outcomes = pd.DataFrame({"tenancy_id": at_date["tenancy_id"],
                             "as_of_date": pd.Timestamp(as_of).strftime("%Y-%m-%d"),
                             "outcome": (at_date["settled_arrears_weeks"] >= 1).astype(int)})
    path = tmp_path / "outcomes.csv"
    outcomes.to_csv(path, index=False)
    result = ok(["train", "--outcomes", str(path), "--model", "risk"])
    assert "held-out tenancies" in result.output
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=pipeline["settings"].tracking_uri,
                                 registry_uri=pipeline["settings"].tracking_uri)
    challenger = client.get_model_version_by_alias("arrears_risk", "challenger")
    run = client.get_run(challenger.run_id)
    assert run.data.tags["label_source"] == "outcomes_file" and run.data.tags["split"] == "held_out_tenancies"
    assert int(run.data.params["train_rows"]) + int(run.data.params["test_rows"]) < len(outcomes)
    assert run.data.metrics["auc"] > 0.8  # the outcome is a function of the features: easy, but it must be learnt
