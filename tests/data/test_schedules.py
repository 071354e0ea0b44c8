"""`arrears income reconcile` over a real ledger: the DWP's schedules ingested as a feed, a missing line flagged for
exactly its tenancy, and on a simulated portfolio every injected fault found."""

from __future__ import annotations

import json

import pandas as pd

from features.ledger import open_ledger
from features.schedules import expected_schedule_lines, reconcile
from serving.income.schedules import read_schedule_books
from simulator import simulate_portfolio, write_portfolio
from tests.support.cli import invoke, ok, words
from tests.support.deliveries import write_delivery
from tests.unit.test_schedules import RUNS, books, without


def delivery(folder, lines: pd.DataFrame, postings: pd.DataFrame, register: pd.DataFrame):
    tenancies = register.assign(patch="North", start_date="2023-01-01", end_date="", rent_amount=100.0,
                                rent_frequency="weekly")
    transactions = postings.assign(transaction_id=[f"X{i:04d}" for i in range(len(postings))], type="benefit",
                                   amount=postings["amount_pence"] / 100).drop(columns="amount_pence")
    schedules = lines.assign(amount=lines["amount_pence"] / 100).drop(columns="amount_pence")
    return write_delivery(folder, tenancies=tenancies, transactions=transactions, dwp_schedules=schedules)


def test_the_verb_flags_exactly_the_tenancy_left_off_a_schedule(home, tmp_path) -> None:
    lines, postings, register = books()
    lines = without(lines, settlement_number="HB004", line_reference="HB-T2")
    postings = without(postings, tenancy_id="T2", posted_date=RUNS[3])
    folder = delivery(tmp_path / "d1", lines, postings, register)
    (folder / "dwp_schedules.csv").rename(tmp_path / "dwp_schedules.csv")
    ok("ingest", str(folder))
    refused = invoke("income", "reconcile")
    assert refused.exit_code == 2 and "dwp_schedules.csv" in words(refused)
    (tmp_path / "dwp_schedules.csv").rename(tmp_path / "d2.csv")
    ok("ingest", str(write_delivery(tmp_path / "d2", dwp_schedules=(tmp_path / "d2.csv").read_text())))
    found = json.loads(ok("income", "reconcile", "--json").output)
    assert [(line["tenancy_id"], line["settlement_number"], line["flags"]) for line in found["flagged"]] == [
        ("T2", "HB004", "missing_line")]
    settlement = {s["settlement_number"]: s for s in found["settlements"]}["HB004"]
    assert (settlement["lines"], settlement["missing_lines"], settlement["total_pence"]) == (2, 1, 82000)
    shown = words(ok("income", "reconcile"))
    assert "T2" in shown and "missing_line 1" in shown and "short 0" in shown
    assert words(ok("income", "reconcile", "--flag", "late")).count("T2") == 0
    assert invoke("income", "reconcile", "--flag", "lost").exit_code == 2


def test_every_injected_fault_of_a_simulated_portfolio_is_found(tmp_path) -> None:
    """Short and late lines are flagged exactly where injected (plus late credits cleared from suspense); every
    missing line is found, and what else is flagged missing is a benefit stopped for a while (a benefit shock)."""
    portfolio = simulate_portfolio(800, years=1.5, seed=31)
    write_portfolio(portfolio, tmp_path / "delivery")
    with open_ledger(f"duckdb:///{tmp_path / 'ledger.duckdb'}") as ledger:
        from features.feeds.ingest import Clock, ingest_delivery

        ingest_delivery(ledger, tmp_path / "delivery", tmp_path / "q", Clock(portfolio.window_end))
        books_ = read_schedule_books(ledger)
    reconciled = reconcile(books_.schedules, books_.transactions, books_.tenancies)
    truth = portfolio.ground_truth["dwp_schedules"]
    lines = reconciled.merge(truth[["settlement_number", "line_reference", "fault"]], how="left",
                             on=["settlement_number", "line_reference"])
    for flag in ("short", "late"):
        assert set(lines.loc[lines["fault"] == flag, flag]) == {True}, flag
    suspense = portfolio.ground_truth["suspense"]
    credited_late = set(suspense.loc[suspense["fault"] == "dwp_unreferenced", "tenancy_id"])
    assert lines.loc[lines["late"] & (lines["fault"] != "late"), "tenancy_id"].isin(credited_late).all()
    assert not (lines["short"] & (lines["fault"] != "short")).any() and not lines["unmatched"].any()
    missing = truth[truth["fault"] == "missing"]
    flagged_missing = reconciled[reconciled["missing_line"]]
    assert set(missing["tenancy_id"]) <= set(flagged_missing["tenancy_id"])
    shocked = portfolio.ground_truth["shocks"]
    stopped = set(shocked.loc[shocked["kind"].astype(str) == "benefit_change", "tenancy_id"].astype(str))
    others = set(flagged_missing["tenancy_id"]) - set(missing["tenancy_id"])
    assert len(others - stopped) <= 0.05 * len(set(flagged_missing["tenancy_id"]))
    ahead = expected_schedule_lines(books_.schedules, pd.Timestamp(portfolio.window_end), 13, books_.tenancies,
                                    books_.transactions)
    assert len(ahead) and ahead["p_arrive"].between(0.9, 1.0).all()


def test_the_served_forecast_expects_only_the_lines_known_on_its_day(home, tmp_path) -> None:
    """T1's tenancy ended after the fifth run. A forecast from the fourth run could not know that yet: it expects
    T1's sixth line, as the training backtest judged it would; after the fifth, once the register shows the end,
    T1 expects nothing."""
    from serving.settings import get_settings
    from serving.treasury.forecast import _schedule_lines

    lines, postings, register = books()
    ended = RUNS[4] + pd.Timedelta(days=1)
    folder = delivery(tmp_path / "d1", lines[lines["payment_date"] <= RUNS[4]],
                      postings[postings["posted_date"] <= RUNS[4]], register)
    tenancies = pd.read_csv(folder / "tenancies.csv", dtype=str, keep_default_na=False)
    tenancies.loc[tenancies["tenancy_id"] == "T1", "end_date"] = str(ended.date())
    tenancies.to_csv(folder / "tenancies.csv", index=False)
    ok("ingest", str(folder))
    settings = get_settings()
    before = _schedule_lines(settings, RUNS[3], 8)
    assert list(before.loc[before["tenancy_id"] == "T1", "expected_date"]) == [RUNS[4], RUNS[5]]
    after = _schedule_lines(settings, RUNS[4] + pd.Timedelta(days=2), 8)
    assert "T1" not in set(after["tenancy_id"]) and {"T2", "T3", "T4"} <= set(after["tenancy_id"])
