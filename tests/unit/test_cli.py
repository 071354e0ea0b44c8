"""The `arrears` command: every verb explains itself, and errors say what to do next."""

from __future__ import annotations

import json

import pytest

from tests.support.cli import invoke
from tests.support.deliveries import TENANCIES, TRANSACTIONS, write_delivery

VERBS = [["simulate"], ["ingest"], ["features"], ["features", "build"], ["features", "apply"],
         ["features", "materialize"], ["train"], ["promote"], ["serve"], ["worklist"], ["monitor", "drift"],
         ["demo"], ["info"], ["experiment", "plan"], ["experiment", "report"]]


@pytest.mark.parametrize("verb", VERBS, ids=[" ".join(v) for v in VERBS])
def test_every_verb_has_help(verb: list[str]) -> None:
    result = invoke(*verb, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output and len(result.output.splitlines()) > 4


def test_info_json_names_where_state_lives(home) -> None:
    result = invoke("info", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    for key in ("home", "ledger", "feature_repo", "mlflow_tracking_uri", "reports_dir"):
        assert key in info
    assert info["home"] == str(home.resolve())
    assert info["ledger"].endswith("ledger.duckdb") and str(home) in info["mlflow_tracking_uri"]


def test_ingest_json_summary_and_refusal(home, tmp_path) -> None:
    good = write_delivery(tmp_path / "good", tenancies=TENANCIES, transactions=TRANSACTIONS)
    result = invoke("ingest", str(good), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["feeds"]["transactions"] == {**summary["feeds"]["transactions"], "read": 4, "accepted": 4,
                                                "duplicate": 0, "quarantined": 0}
    bad = write_delivery(tmp_path / "bad", tenancies=TENANCIES.replace(",", ";"))
    result = invoke("ingest", str(bad))
    assert result.exit_code == 2
    assert "nothing was written" in result.output and "comma-separated" in result.output


def test_worklist_before_any_run_says_what_to_do(home) -> None:
    result = invoke("worklist", "--top", "5")
    assert result.exit_code == 2 and "arrears demo" in result.output


def test_features_before_ingest_says_what_to_do(home) -> None:
    result = invoke("features", "build")
    assert result.exit_code == 2 and "arrears ingest" in result.output
