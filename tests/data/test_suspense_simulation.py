"""The simulated receipts in suspense and DWP schedules: their truth agrees with the transactions, the rest of the
simulation is drawn exactly as without them, payer names exist only in the suspense feed, and a delivery of them
ingests whole."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from arrears.replay import exported
from features.feeds.ingest import Clock, ingest_delivery
from features.ledger import open_ledger
from simulator import simulate_portfolio, write_portfolio
from simulator.suspense import RECEIPT_FAULTS, SURNAMES, mistyped

END = date(2026, 10, 31)


@pytest.fixture(scope="module")
def pair():
    return (simulate_portfolio(600, years=1.5, seed=5, end_date=END),
            simulate_portfolio(600, years=1.5, seed=5, end_date=END, income=False))


def test_every_fault_is_simulated_and_kept_in_the_truth(pair) -> None:
    portfolio, _ = pair
    receipts = portfolio.ground_truth["suspense"]
    assert set(receipts["fault"]) == {*RECEIPT_FAULTS, "dwp_unreferenced"}
    assert list(receipts["receipt_id"]) == list(portfolio.suspense["receipt_id"])
    lines = portfolio.ground_truth["dwp_schedules"]
    assert set(lines["fault"]) == {"none", "missing", "late", "short"}
    in_feed = set(zip(portfolio.dwp_schedules["settlement_number"], portfolio.dwp_schedules["line_reference"],
                      strict=True))
    truth_keys = list(zip(lines["settlement_number"], lines["line_reference"], strict=True))
    assert {key for key, fault in zip(truth_keys, lines["fault"], strict=True) if fault != "missing"} == in_feed
    assert portfolio.dwp_schedules["tenancy_reference"].isna().mean() == pytest.approx(0.12, abs=0.06)


def test_the_rest_of_the_simulation_is_drawn_as_without_the_income_feeds(pair) -> None:
    """Only the postings the income feeds imply differ: tenants' payments of tenancies with a receipt in suspense,
    and benefit postings of faulted schedule lines (or of DWP credits in suspense)."""
    with_income, without = pair
    pd.testing.assert_frame_equal(with_income.events, without.events)
    a = with_income.transactions.set_index("transaction_id")
    b = without.transactions.set_index("transaction_id")
    common = a.index.intersection(b.index)
    columns = ["tenancy_id", "posted_date", "type", "amount", "reference"]
    differs = (a.loc[common, columns].astype(str) != b.loc[common, columns].astype(str)).any(axis=1).to_numpy()
    changed = pd.concat([b.loc[common[differs]], b.loc[b.index.difference(a.index)],
                         a.loc[a.index.difference(b.index)]]).reset_index()
    changed["tenancy_id"] = changed["tenancy_id"].astype(str)
    receipts = with_income.ground_truth["suspense"]
    lines = with_income.ground_truth["dwp_schedules"]
    faulted = lines[lines["fault"] != "none"]
    faulted_days = set(zip(faulted["tenancy_id"], faulted["settlement_number"].map(
        with_income.dwp_schedules.drop_duplicates("settlement_number").set_index("settlement_number")["payment_date"])
        .fillna(pd.Timestamp.min), strict=True))
    payment = changed["type"].astype(str) == "payment"
    assert changed.loc[payment, "tenancy_id"].isin(set(receipts["tenancy_id"])).all()
    benefit = changed[~payment]
    from_suspense = benefit["tenancy_id"].isin(set(receipts.loc[receipts["fault"] == "dwp_unreferenced", "tenancy_id"]))
    on_faulted_line = np.array([key in faulted_days
                                for key in zip(benefit["tenancy_id"], benefit["posted_date"], strict=True)])
    late_moved = benefit["tenancy_id"].isin(set(lines.loc[lines["fault"] == "late", "tenancy_id"]))
    assert (from_suspense | on_faulted_line | late_moved).all()
    assert (benefit["type"].astype(str) == "benefit").all()
    assert 0 < len(changed) / len(without.transactions) < 0.02


def test_cleared_receipts_reach_their_tenancy_on_the_clearing_day(pair) -> None:
    portfolio, _ = pair
    truth = portfolio.ground_truth["suspense"].set_index("receipt_id")
    feed = portfolio.suspense.set_index("receipt_id")
    tx = portfolio.transactions
    cleared = tx[tx["reference"].astype(str).str.startswith("Suspense ")].copy()
    cleared["receipt_id"] = cleared["reference"].astype(str).str.removeprefix("Suspense ")
    cleared = cleared.set_index("receipt_id")
    done = truth[truth["cleared_date"].notna()]
    assert set(cleared.index) == set(done.index) and cleared.index.is_unique
    assert (cleared.loc[done.index, "tenancy_id"].astype(str) == done["tenancy_id"]).all()
    assert (cleared.loc[done.index, "posted_date"] == done["cleared_date"]).all()
    assert np.allclose(-cleared.loc[done.index, "amount"], feed.loc[done.index, "amount"])
    assert (cleared["allocation"].astype(str) == "rent").all()
    named = feed["cleared_tenancy_id"].dropna()
    assert (named.astype(str).to_numpy() == truth.loc[named.index, "tenancy_id"].to_numpy()).all()
    assert (truth["cleared_date"].isna().to_numpy() == feed["cleared_tenancy_id"].isna().to_numpy()).all()
    assert truth["cleared_date"].isna().any()
    # the housing system's own balance agrees with its ledger, except where the truth says it does not
    balance = tx.groupby("tenancy_id", observed=True)["amount"].sum()
    reported = portfolio.tenancies.set_index("tenancy_id")["reported_balance"]
    gap = (reported - balance.reindex(reported.index).fillna(0.0)).abs() > 0.005
    explained = portfolio.ground_truth["reported_balances"].set_index("tenancy_id")["explained"]
    assert (gap.to_numpy() == ~explained.reindex(reported.index).to_numpy()).all()


def test_schedule_lines_agree_with_the_benefit_postings_but_for_their_faults(pair) -> None:
    portfolio, _ = pair
    tx = portfolio.transactions
    benefit = tx[tx["type"].astype(str) == "benefit"].assign(tenancy_id=lambda f: f["tenancy_id"].astype(str))
    truth = portfolio.ground_truth["dwp_schedules"]
    lines = portfolio.dwp_schedules.merge(truth, on=["settlement_number", "line_reference"])
    in_suspense = set(portfolio.suspense.loc[portfolio.suspense["source"] == "dwp", "reference"].str.split().str[1:]
                      .str.join(" "))
    lines = lines[~(lines["settlement_number"] + " " + lines["line_reference"]).isin(in_suspense)]
    posted = benefit.groupby(["tenancy_id", "posted_date"])["amount"].sum()
    on_day = posted.reindex(pd.MultiIndex.from_frame(lines[["tenancy_id", "payment_date"]])).to_numpy()
    normal = (lines["fault"] == "none").to_numpy()
    assert np.allclose(-on_day[normal], lines.loc[normal, "amount"])
    short = (lines["fault"] == "short").to_numpy()
    assert (-on_day[short] < lines.loc[short, "amount"] - 0.01).all()
    late = lines[lines["fault"] == "late"]
    assert ((late["posted_date"] - late["payment_date"]).dt.days.between(4, 12)).all()
    assert np.isnan(on_day[(lines["fault"] == "late").to_numpy()]).all()
    missing = truth[truth["fault"] == "missing"]
    assert missing["posted_amount"].isna().all() and len(missing) > 0


def test_payer_names_exist_only_in_the_suspense_feed(pair, tmp_path) -> None:
    portfolio, _ = pair
    paths = write_portfolio(portfolio, tmp_path / "delivery")
    payers = portfolio.suspense["payer"].dropna()
    assert payers.str.contains("|".join(SURNAMES)).mean() > 0.8
    for name, path in paths.items():
        if name == "suspense":
            continue
        text = path.read_text()
        assert not any(surname in text for surname in SURNAMES), name


def test_a_mistyped_reference_is_one_slip_away() -> None:
    rng = np.random.default_rng(0)
    typed = [mistyped("T000312", rng) for _ in range(200)]
    assert "T000312" not in typed and all(abs(len(t) - 7) <= 1 for t in typed)
    assert len(set(typed)) > 10


def test_an_export_on_a_day_shows_receipts_as_they_stood(pair) -> None:
    portfolio, _ = pair
    truth = portfolio.ground_truth["suspense"]
    cleared = truth["cleared_date"].dropna()
    cutoff = cleared.sort_values().iloc[len(cleared) // 2]
    on_day = exported(portfolio, cutoff)
    receipts = on_day.suspense.set_index("receipt_id")
    assert (receipts["received_date"] <= cutoff).all() and len(receipts) == (truth["received_date"] <= cutoff).sum()
    later = truth[(truth["cleared_date"] > cutoff) & (truth["received_date"] <= cutoff)]["receipt_id"]
    assert len(later) and receipts.loc[later, "cleared_tenancy_id"].isna().all()
    assert (on_day.dwp_schedules["payment_date"] <= cutoff).all()
    week = exported(portfolio, cutoff + pd.Timedelta(weeks=1), since=cutoff).suspense
    cleared_that_week = truth[truth["receipt_id"].isin(later)
                              & (truth["cleared_date"] <= cutoff + pd.Timedelta(weeks=1))]["receipt_id"]
    assert len(cleared_that_week) and set(cleared_that_week) <= set(week["receipt_id"])
    assert week.set_index("receipt_id").loc[cleared_that_week, "cleared_tenancy_id"].notna().all()
    assert (week["received_date"] <= cutoff + pd.Timedelta(weeks=1)).all()


def test_a_simulated_delivery_ingests_whole(pair, tmp_path) -> None:
    portfolio, _ = pair
    write_portfolio(portfolio, tmp_path / "delivery")
    with open_ledger(f"duckdb:///{tmp_path / 'ledger.duckdb'}") as ledger:
        summary = ingest_delivery(ledger, tmp_path / "delivery", tmp_path / "quarantine", Clock(END))
        current = ledger.read_table("suspense_register")
    for name in ("suspense", "dwp_schedules", "transactions"):
        feed = summary.feeds[name]
        assert feed.reconciles and feed.accepted == feed.read == len(getattr(portfolio, name)), feed
    assert current["cleared_tenancy_id"].notna().sum() == portfolio.suspense["cleared_tenancy_id"].notna().sum()
