"""An experiment measured on a real ledger (a simulated portfolio ingested into DuckDB) with arms kept in the real runs
store: the outcomes and pre-period covariates the report reads are those a plain per-tenancy loop over the ledger's
rows gives, an experiment before its fixed horizon shows accrual and balance only (on the page too), and the CLI's
verbs and the weekly job say the same as the functions."""

from __future__ import annotations

import json
import math
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml
from starlette.testclient import TestClient

from features.feeds.ingest import ingest_delivery
from features.ledger import open_ledger
from monitoring.experiment_reports import experiments_job, measure, plan_experiment, report_path, write_report
from monitoring.experiments import COVARIATES, estimate, plan
from serving.runs.experiments import draw
from serving.runs.store import ASSIGNMENT_COLUMNS, open_runs
from serving.settings import get_settings
from serving.web.app import build_app
from simulator import simulate_portfolio, write_portfolio
from tests.support.cli import invoke, ok
from tests.support.homes import isolated_home
from training.labels import without_reversed

END = date(2026, 10, 31)
FINAL, INTERIM = "paid-final", "change-interim"
EXPERIMENTS = {"version": 1, "experiments": [
    {"name": FINAL, "enabled": False, "start": "2026-05-04", "end": "2026-07-26",
     "held_out_action": "first_reminder", "holdout_share": 0.3, "outcome": {"kind": "paid_within_days", "days": 28},
     "minimum_detectable_effect": 0.05},
    {"name": INTERIM, "enabled": True, "start": "2026-09-07", "end": "2026-12-27",
     "held_out_action": "first_reminder", "holdout_share": 0.3,
     "outcome": {"kind": "arrears_change", "days": 56, "winsorise": 0.01}, "minimum_detectable_effect": 20},
]}


def balances_on(transactions: pd.DataFrame, day: date) -> pd.Series:
    posted = transactions[transactions["posted_date"] <= pd.Timestamp(day)]
    return posted.groupby("tenancy_id")["amount_pence"].sum()


def assign_weekly(transactions: pd.DataFrame, name: str, start: str, end: str, share: float) -> pd.DataFrame:
    """Each Monday from start to last day, the tenancies owing then and not assigned before, each to the arm its
    hash gives (as the runs room does), in a stratum by balance band and patch-like parity."""
    rows, seen = [], set()
    for day in pd.date_range(start, min(pd.Timestamp(end), pd.Timestamp(END)), freq="7D").date:
        owing = balances_on(transactions, day)
        for tenancy_id, pence in owing[owing > 0].items():
            if tenancy_id in seen:
                continue
            seen.add(tenancy_id)
            band = "high" if pence > 50_000 else "low"
            rows.append({"experiment": name, "tenancy_id": tenancy_id, "draw": draw(name, tenancy_id),
                         "arm": "holdout" if draw(name, tenancy_id) < share else "treatment", "holdout_share": share,
                         "stratum": f"{band}|P{int(tenancy_id[-1]) % 2}", "patch": f"P{int(tenancy_id[-1]) % 2}",
                         "risk_band": band, "assigned_on": day, "run_id": f"run-{day}",
                         "balance_at_assignment": pence / 100, "arrears_weeks_at_assignment": pence / 40_000,
                         "risk_score": min(0.99, pence / 200_000)})
    return pd.DataFrame(rows, columns=list(ASSIGNMENT_COLUMNS))


@pytest.fixture(scope="module")
def portfolio(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("experiment")
    (root / "experiments.yaml").write_text(yaml.safe_dump(EXPERIMENTS, sort_keys=False))
    with isolated_home(root / "home", ARREARS_EXPERIMENTS=str(root / "experiments.yaml")):
        settings = get_settings()
        write_portfolio(simulate_portfolio(n_tenancies=500, years=1.5, seed=29, end_date=END), root / "feeds")
        with open_ledger(settings.ledger) as ledger:
            ingest_delivery(ledger, root / "feeds", root / "quarantine")
            transactions = ledger.read_table("transactions")
        arms = {e["name"]: assign_weekly(transactions, e["name"], e["start"], e["end"], e["holdout_share"])
                for e in EXPERIMENTS["experiments"]}
        with open_runs(settings) as store:
            for frame in arms.values():
                store.db.append("experiment_assignments", frame, list(ASSIGNMENT_COLUMNS))
        yield SimpleNamespace(settings=settings, transactions=transactions, arms=arms, root=root)


def oracle_units(transactions: pd.DataFrame, arms: pd.DataFrame, days: int) -> pd.DataFrame:
    """The units as a plain loop over each tenancy's ledger rows computes them: covariates and paid-within-days."""
    kept = without_reversed(transactions)  # the receipts a reversal put back never count as paid
    rows = []
    for unit in arms.itertuples():
        mine, day = transactions[transactions["tenancy_id"] == unit.tenancy_id], pd.Timestamp(unit.assigned_on)
        received = kept[(kept["tenancy_id"] == unit.tenancy_id) & kept["type"].isin(["payment", "benefit"])]

        def owed(until: pd.Timestamp, rows=mine) -> float:
            return rows.loc[rows["posted_date"] <= until, "amount_pence"].sum() / 100

        window = received[(received["posted_date"] > day) & (received["posted_date"] <= day + pd.Timedelta(days=days))]
        before = received[(received["posted_date"] > day - pd.Timedelta(days=28)) & (received["posted_date"] <= day)]
        rows.append({"tenancy_id": unit.tenancy_id, "arm": unit.arm, "stratum": unit.stratum,
                     "pre_balance": owed(day), "pre_change_56d": owed(day) - owed(day - pd.Timedelta(days=56)),
                     "pre_receipts_28d": -before["amount_pence"].sum() / 100, "outcome": float(len(window) > 0)})
    return pd.DataFrame(rows)


def test_a_final_report_reads_outcomes_and_covariates_as_a_plain_loop_over_the_ledger_does(portfolio) -> None:
    with isolated_home(portfolio.settings.home, ARREARS_EXPERIMENTS=str(portfolio.root / "experiments.yaml")):
        report = measure(get_settings(), FINAL)
    assert report.final and report.status.startswith("final: every outcome window closed by 2026-08-23")
    expected = oracle_units(portfolio.transactions, portfolio.arms[FINAL], 28)
    assert len(expected) > 150 and 0 < expected["outcome"].mean() < 1
    found = estimate(expected, "outcome")
    assert report.effect.effect == pytest.approx(found.effect, abs=1e-9)
    assert report.effect.se == pytest.approx(found.se, abs=1e-9)
    assert (report.effect.n_treatment, report.effect.n_holdout) == (found.n_treatment, found.n_holdout)
    means = report.balance.set_index("feature")
    treated = expected[expected["arm"] == "treatment"]
    for covariate in COVARIATES:
        assert means.loc[covariate, "mean_treatment"] == pytest.approx(treated[covariate].mean(), abs=1e-9)
    assert set(report.by_stratum.strata) | set(report.by_stratum.skipped) == set(expected["stratum"])


def test_before_the_horizon_only_accrual_and_balance_are_shown_on_the_page_too(portfolio) -> None:
    with isolated_home(portfolio.settings.home, ARREARS_EXPERIMENTS=str(portfolio.root / "experiments.yaml")):
        settings = get_settings()
        report = measure(settings, INTERIM)
        path = write_report(settings, report)
        assert path == report_path(settings, INTERIM)
        with TestClient(build_app(SimpleNamespace(settings=settings))) as client:
            page = client.get("/experiments")
    assert report.effect is None and report.by_stratum is None
    assert report.status == "interim: effect withheld until 2027-02-21 (fixed horizon)"
    arms = portfolio.arms[INTERIM]["arm"].value_counts()
    total = report.accrual.set_index("stratum").loc["all"]
    assert (total["treatment"], total["holdout"]) == (arms["treatment"], arms["holdout"])
    written = json.loads(path.read_text())
    assert written["effect"] is None and written["final"] is False and written["status"] == report.status
    assert page.status_code == 200
    section = page.text.split(INTERIM, 1)[1]
    assert "interim: effect withheld until 2027-02-21 (fixed horizon)" in section
    assert "Effect (treatment" not in section and "Accrual" in section and "Balance on pre-period" in section


def test_the_page_shows_a_final_effect_with_its_interval_per_stratum(portfolio) -> None:
    with isolated_home(portfolio.settings.home, ARREARS_EXPERIMENTS=str(portfolio.root / "experiments.yaml")):
        settings = get_settings()
        report = measure(settings, FINAL)
        write_report(settings, report)
        with TestClient(build_app(SimpleNamespace(settings=settings))) as client:
            page = client.get("/experiments")
    section = page.text.split(f">{FINAL}", 1)[1].split("<section", 1)[0]
    points = f"{report.effect.effect * 100:+.1f} points"
    assert "Effect (treatment − holdout)" in section and points in section
    assert section.count("<circle") == len(report.by_stratum.strata) + 1  # each stratum and the overall


def test_the_cli_and_the_weekly_job_say_what_the_functions_say(portfolio) -> None:
    with isolated_home(portfolio.settings.home, ARREARS_EXPERIMENTS=str(portfolio.root / "experiments.yaml")):
        settings = get_settings()
        said = json.loads(ok("experiment", "report", FINAL, "--json").output)
        assert said["effect"]["effect"] == pytest.approx(measure(settings, FINAL).effect.effect, abs=1e-12)
        assert said["status"].startswith("final")
        shown = " ".join(ok("experiment", "report", INTERIM).output.split())
        assert "interim: effect withheld until 2027-02-21 (fixed horizon)" in shown and "Effect" not in shown
        job = experiments_job(settings)
        assert job.outputs[INTERIM]["final"] is False and job.outputs[FINAL]["final"] is True
        assert Path(job.outputs[FINAL]["report"]).is_file()
        planned = json.loads(ok("experiment", "plan", FINAL, "--entrants-per-week", "40", "--json").output)
        measured = plan_experiment(settings, FINAL, entrants_per_week=40)
    assert planned["weeks"] == measured.plan.weeks >= 1 and planned["sources"]["entrants_per_week"] == "given"
    assert 0 < planned["sd"] <= 0.5 and 0 <= planned["r_squared"] < 1
    again = plan(0.05, planned["sd"], 0.3, 40, planned["r_squared"])
    assert planned["n_total"] == again.n_total and planned["weeks"] == again.weeks


def test_an_unknown_experiment_is_refused_with_the_names_there_are(portfolio) -> None:
    with isolated_home(portfolio.settings.home, ARREARS_EXPERIMENTS=str(portfolio.root / "experiments.yaml")):
        for verb in ("report", "plan"):
            result = invoke("experiment", verb, "no-such")
            assert result.exit_code == 2
            said = " ".join(result.output.split())
            assert f"No experiment 'no-such' is configured; the experiments file declares {FINAL}, {INTERIM}" in said


def test_entrants_per_week_are_measured_from_the_experiments_own_assignments(portfolio) -> None:
    with isolated_home(portfolio.settings.home, ARREARS_EXPERIMENTS=str(portfolio.root / "experiments.yaml")):
        figures = plan_experiment(get_settings(), FINAL, sd=0.5, r2=0.1)
    arms = portfolio.arms[FINAL]
    first, last = min(arms["assigned_on"]), max(arms["assigned_on"])
    later = int((arms["assigned_on"] > first).sum())
    assert figures.plan.entrants_per_week == pytest.approx(later / ((last - first).days / 7))
    assert figures.plan.already == len(arms)
    n = math.ceil((1.959963984540054 + 0.8416212335729143) ** 2 * 0.25 * 0.9 / (0.3 * 0.7 * 0.05**2))
    assert figures.plan.n_total == n
    assert figures.plan.weeks == max(1, math.ceil(max(n - len(arms), 0) / figures.plan.entrants_per_week))
    assert figures.readable_on == date(2026, 5, 4) + timedelta(weeks=figures.plan.weeks, days=28)
    assert np.isfinite(figures.plan.sd)
