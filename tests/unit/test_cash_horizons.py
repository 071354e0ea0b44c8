"""The horizons treasury plans on: calendar months beside the weeks, an April rent change as a scenario, the
53-week rent year, and the DWP's scheduled lines as known money, on hand-made payments whose answers are known."""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.cash import (
    Blend,
    CommonFactor,
    Horizon,
    charge_mondays,
    rent_year_start_after,
    rent_years,
    scheduled_receipts,
    simulate_receipts,
    summarise,
    summarise_months,
    without_scheduled_benefits,
)

ORIGIN = pd.Timestamp("2027-03-20")  # a Saturday; the rent year 2027/28 starts on Monday 5 April 2027


def _weekly_payer(horizon: Horizon) -> np.ndarray:
    """One tenant certain to pay £100 tomorrow (Sunday 21 March) and every 7 days after: (buckets,) in pence."""
    cdf = np.zeros((1, 19))
    cdf[0, 1:] = 1.0  # pays on day 1
    return simulate_receipts(cdf, np.array([10_000.0]), np.full((1, 1), 7.0), np.ones(1, dtype=int), sims=3,
                             horizon=horizon)[0, 0]


def test_months_count_each_payment_in_its_calendar_month():
    months = _weekly_payer(Horizon.monthly(ORIGIN, 2))
    # the rest of March: Sundays 21 and 28; April: 4, 11, 18, 25; May: 2, 9, 16, 23, 30
    assert months.tolist() == [20_000.0, 40_000.0, 50_000.0]


def test_a_rent_change_applies_from_the_first_monday_of_april():
    assert rent_year_start_after(ORIGIN) == pd.Timestamp("2027-04-05")
    assert rent_year_start_after(pd.Timestamp("2027-04-05")) == pd.Timestamp("2028-04-03")
    weeks = _weekly_payer(Horizon.weekly(4).with_rent_change(ORIGIN, 7.5))
    # Sundays 21 and 28 March and 4 April before it; 11 April after it: £107.50
    assert weeks.tolist() == [10_000.0, 10_000.0, 10_000.0, 10_750.0]
    months = _weekly_payer(Horizon.monthly(ORIGIN, 1).with_rent_change(ORIGIN, -2.0))
    assert months.tolist() == [20_000.0, 10_000.0 + 3 * 9_800.0]
    assert np.array_equal(Horizon.weekly(4).with_rent_change(ORIGIN, 0.0).scale, np.ones(29))


def test_the_blend_scales_the_baseline_by_the_weeks_share_after_the_change():
    horizon = Horizon.weekly(3).with_rent_change(pd.Timestamp("2027-04-01"), 10.0)  # change on day 4 of week 1
    assert np.allclose(horizon.bucket_scale(), [1 + 0.1 * 4 / 7, 1.1, 1.1])
    blended = Blend((0.0,)).apply(np.zeros((1, 1, 3)), np.array([700.0]), horizon.bucket_scale())
    assert np.allclose(blended[0, 0], [740.0, 770.0, 770.0])


def test_a_53_week_rent_year_is_named_and_counted():
    years = rent_years(pd.Timestamp("2030-03-01"), pd.Timestamp("2031-05-01"))
    assert [(y["rent_year"], y["charge_weeks"]) for y in years] == [("2029/30", 52), ("2030/31", 53),
                                                                     ("2031/32", 52)]
    assert years[1]["starts"].isoformat() == "2030-04-01" and years[1]["ends"].isoformat() == "2031-04-06"
    assert [y["charge_weeks"] for y in rent_years(pd.Timestamp("2024-04-01"), pd.Timestamp("2024-04-02"))] == [53]
    assert charge_mondays(pd.period_range("2030-03", "2030-06", freq="M")) == [4, 5, 4, 4]  # April 2030 from Monday 1st


def test_the_monthly_table_counts_its_days_and_charge_mondays():
    horizon = Horizon.monthly(ORIGIN, 2)
    receipts = np.ones((4, 2, 3)) * 100.0  # 4 simulations, 2 tenancies, 3 months, £1 each
    table = summarise_months(receipts, np.array(["A", "B"]), ORIGIN, horizon)
    portfolio = table[table["scope"] == "portfolio"]
    assert portfolio["month"].tolist() == ["2027-03", "2027-04", "2027-05"]
    # the rest of March from Sunday 21st: 11 days, Mondays 22 and 29; April 2027: 30 days, 4 Mondays; May: 5
    assert portfolio["days"].tolist() == [11, 30, 31] and portfolio["charge_mondays"].tolist() == [2, 4, 5]
    assert portfolio["mean"].tolist() == [2.0, 2.0, 2.0] and str(portfolio["month_start"].iloc[0]) == "2027-03-21"
    assert table.groupby("month")["mean"].sum().tolist() == [4.0, 4.0, 4.0]  # patches' means add up


def test_scheduled_lines_are_known_money_on_their_day_and_the_covered_benefit_leaves_the_habits():
    lines = pd.DataFrame({"tenancy_id": ["T1", "T1", None, "T9"], "line_reference": ["a", "a", "b", "c"],
                          "expected_date": pd.to_datetime(["2027-03-22", "2027-04-19", "2027-03-23", "2027-03-22"]),
                          "expected_pence": [40_000.0, 40_000.0, 9_999.0, 5_000.0],
                          "sd_pence": [1_000.0, 1_000.0, 0.0, 0.0]})
    known = scheduled_receipts(lines, np.array(["T0", "T1"]), ORIGIN, 4_000, Horizon.weekly(5), seed=2)
    # T1's lines on Monday 22 March (week 1) and Monday 19 April (week 5); the unattributed line and T9 (not
    # live) are not anyone's here
    assert known[:, 0, :].sum() == 0.0 and known[:, 1, [1, 2, 3]].sum() == 0.0
    assert np.allclose(known[:, 1, [0, 4]].mean(axis=0), 40_000, rtol=0.002)
    assert np.allclose(known[:, 1, [0, 4]].std(axis=0), 1_000, rtol=0.05)
    ledger = pd.DataFrame({"tenancy_id": ["T1", "T1", "T2"], "type": ["benefit", "payment", "benefit"],
                           "amount_pence": [-40_000, -5_000, -30_000]})
    kept = without_scheduled_benefits(ledger, lines)
    assert kept[["tenancy_id", "type"]].values.tolist() == [["T1", "payment"], ["T2", "benefit"]]


def test_the_scheduled_column_is_the_known_lines_share_and_the_band_moves_them_with_the_rest():
    own = np.full((2_000, 2, 1), 100_00.0)  # £100 of tenants' own money a week, each of two tenancies
    known = np.zeros_like(own)
    known[:, 0, 0] = 50_00.0  # £50 scheduled for the first
    factor = CommonFactor(0.2, 0.2, 100)
    table = summarise(own, np.array(["A", "B"]), ORIGIN, factor, seed=1, known=known)
    portfolio = table[table["scope"] == "portfolio"].iloc[0]
    assert portfolio["mean"] == 250.0 and portfolio["scheduled"] == 50.0
    assert table[table["scope"] == "B"]["scheduled"].tolist() == [0.0]
    # the factor was estimated on whole weeks (a late benefit run among what moves them): it scales the £250
    assert abs(portfolio["p50"] - 250 * np.exp(-0.02)) < 2.0
    assert summarise(own, np.array(["A", "B"]), ORIGIN, factor, seed=1)["scheduled"].eq(0.0).all()
