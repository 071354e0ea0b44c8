"""The worklist over HTTP, through a real `bentoml serve` process (the shared pipeline, tests/support/pipeline.py):
sorted, every row explained exactly, filtered by patch, the same as the CLI's, and right about what happened next."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from features.feeds.ingest import ingest_delivery
from features.ledger import open_ledger
from tests.support.cli import ok
from tests.support.pipeline import CUTOFF
from training.labels import RiskLabelSpec, arrears_growth_labels


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


def test_patch_filter_returns_only_that_patch(pipeline) -> None:
    rows = pipeline["patch_payload"]["rows"]
    assert rows and {r["patch"] for r in rows} == {pipeline["patch"]}
    assert len(rows) < len(pipeline["payload"]["rows"])


def test_the_cli_worklist_is_the_served_worklist(in_pipeline_home) -> None:
    """`arrears worklist` computes the list from the champion and the online features, as POST /worklist does."""
    pipeline = in_pipeline_home
    for top, patch, served in ((10_000, None, pipeline["payload"]), (25, pipeline["patch"], pipeline["patch_payload"])):
        printed = json.loads(ok("worklist", "--top", str(top), "--json", *(["--patch", patch] if patch else [])).stdout)
        assert printed["rows"] == served["rows"][:top]
        same = ("as_of", "population", "model_version", "unscored")
        assert {k: printed[k] for k in same} == {k: served[k] for k in same}


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
    ranked = pd.Series([outcome.get(r["tenancy_id"]) for r in pipeline["payload"]["rows"]], dtype="float").dropna()
    n = len(ranked)
    top_decile, bottom_half = ranked.iloc[: n // 10].mean(), ranked.iloc[n // 2:].mean()
    print(f"realised arrears growth: top decile {top_decile:.3f}, bottom half {bottom_half:.3f}, n={n}")
    assert top_decile >= bottom_half + 0.25 and top_decile >= 2 * bottom_half, (top_decile, bottom_half)
