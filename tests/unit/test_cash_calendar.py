"""The cash forecast's calendar and its common factor, on hand-made ledgers and draws whose answers are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.cash import (
    Blend,
    CommonFactor,
    at_current_rent,
    bank_holidays,
    calendar_payers,
    estimate_blend,
    estimate_common_factor,
    month_start_weeks,
    posting_days,
    simulate_calendar,
    simulate_receipts,
    tenancy_baselines,
    week_starts,
    weekly_bands,
)

ORIGIN = pd.Timestamp("2026-12-19")  # a Saturday: forecast weeks run Sunday to Saturday


def _ledger(quiet_on_holidays: bool) -> pd.DataFrame:
    days = pd.date_range("2025-12-01", ORIGIN)
    closed = days.isin(bank_holidays(days[0], days[-1]))
    return pd.DataFrame({"day": days, "amount_pence": np.where(closed & quiet_on_holidays, 0, 10_000)})


def _date(offset: int) -> str:
    return (ORIGIN + pd.Timedelta(days=int(offset))).strftime("%a %d %b")


def test_money_due_on_a_bank_holiday_is_posted_on_the_next_working_day():
    posted = posting_days(_ledger(quiet_on_holidays=True), ORIGIN, 21)
    moved = {_date(k): _date(v) for k, v in enumerate(posted) if k != v}
    # Christmas on a Friday, Boxing Day on the Saturday (observed on Monday 28th), New Year's Day on a Friday.
    assert moved == {"Fri 25 Dec": "Tue 29 Dec", "Sat 26 Dec": "Tue 29 Dec", "Mon 28 Dec": "Tue 29 Dec",
                     "Fri 01 Jan": "Mon 04 Jan"}


def test_a_ledger_that_posts_on_bank_holidays_moves_nothing():
    assert np.array_equal(posting_days(_ledger(quiet_on_holidays=False), ORIGIN, 21), np.arange(22))


def test_a_payment_due_on_christmas_day_counts_in_the_week_it_is_posted():
    posted = posting_days(_ledger(quiet_on_holidays=True), ORIGIN, 14)
    cdf = np.zeros((1, 19))
    cdf[0, 6:] = 1.0  # certain to pay on day 6 (Friday 25 December)
    args = dict(amount=np.array([100.0]), gaps=np.full((1, 1), 28.0), counts=np.ones(1, dtype=int), weeks=2, sims=5)
    assert simulate_receipts(cdf, **args)[:, 0, :].tolist() == [[100.0, 0.0]] * 5
    assert simulate_receipts(cdf, **args, posted=posted)[:, 0, :].tolist() == [[0.0, 100.0]] * 5


def test_month_start_weeks_hold_the_months_first_working_day():
    starts = week_starts(pd.Timestamp("2026-07-25"), 6)  # weeks from Sunday 26 July
    # 1 August 2026 is a Saturday: monthly money lands on Monday 3 August, in the week from 2 August.
    assert month_start_weeks(starts).tolist() == [False, True, False, False, False, True]


def test_the_common_factor_is_recovered_from_backtest_weeks():
    rng = np.random.default_rng(11)
    weeks = week_starts(pd.Timestamp("2025-01-04"), 104)
    month_start = month_start_weeks(weeks)
    sd = np.where(month_start, 0.15, 0.08)
    own = 0.05  # the simulations' own spread of a week's total
    rows = pd.DataFrame({"week_start": weeks, "mean": 100_000.0, "sim_log_sd": own,
                         "actual": 100_000.0 * np.exp(rng.normal(0, np.sqrt(sd ** 2 + own ** 2)))})
    factor = estimate_common_factor(rows)
    assert abs(factor.month_start - 0.15) < 0.04 and abs(factor.other - 0.08) < 0.02
    assert abs(factor.month_start_level) < 0.03 and abs(factor.other_level) < 0.02  # no shortfall: ~no lift
    assert factor.weeks_seen == 104 and CommonFactor.from_tags(factor.tags()) == CommonFactor(
        round(factor.month_start, 5), round(factor.other, 5), 104, round(factor.month_start_level, 5),
        round(factor.other_level, 5))
    draws = factor.draws(weeks[:13], sims=20_000, seed=3)
    assert np.allclose(draws.mean(axis=0), 1.0, atol=0.01)  # the factor moves the band, not the mean
    assert np.allclose(np.log(draws).std(axis=0), np.where(month_start[:13], factor.month_start, factor.other),
                       rtol=0.05)


def test_a_backtest_that_fell_short_lifts_the_forecast_by_its_shortfall_and_bands_around_it():
    """Receipts came in 6% above the simulations' mean week after week (a rent rise the habits had not seen yet):
    the level lifts the mean and the band by that much, and the spread is what moves around it, not the
    shortfall itself. A level within its noise lifts nothing."""
    rng = np.random.default_rng(5)
    weeks = week_starts(pd.Timestamp("2025-01-04"), 60)
    rows = pd.DataFrame({"week_start": weeks, "mean": 100_000.0, "sim_log_sd": 0.02,
                         "actual": 100_000.0 * np.exp(0.06 + rng.normal(0, np.sqrt(0.03**2 + 0.02**2), 60))})
    factor = estimate_common_factor(rows)
    assert abs(factor.other_level - 0.06) < 0.015 and abs(factor.month_start_level - 0.06) < 0.03
    assert abs(factor.other - 0.03) < 0.012  # about the level: the shortfall would have read as 0.067
    totals = np.random.default_rng(1).normal(100_000.0, 2_000.0, (4_000, 13))
    bands = weekly_bands(totals, factor.draws(weeks[:13], 4_000, seed=2), lift=factor.lift(weeks[:13]))
    assert np.allclose(bands["mean"], totals.mean(axis=0) * factor.lift(weeks[:13]))
    assert (bands["p10"] > 100_000.0).mean() > 0.5 and (bands["p90"] > 106_000.0).all()
    wobble = 0.002 + 0.05 * (-1.0) ** np.arange(60)  # a mean of 0.002 against a standard error of 0.0065
    shrunk = estimate_common_factor(rows.assign(actual=100_000.0 * np.exp(wobble)))
    assert shrunk.other_level == 0.0 and shrunk.month_start_level == 0.0 and shrunk.other > 0.04


def test_too_few_weeks_give_no_common_factor():
    rows = pd.DataFrame({"week_start": week_starts(ORIGIN, 5), "mean": 1.0, "actual": 2.0, "sim_log_sd": 0.0})
    assert estimate_common_factor(rows) == CommonFactor() and CommonFactor.from_tags({}) == CommonFactor()


def _paid(tenancy: str, days) -> pd.DataFrame:
    return pd.DataFrame({"tenancy_id": tenancy, "day": pd.DatetimeIndex(days), "amount_pence": 50_000})


def test_a_tenant_paid_on_the_first_of_the_month_is_found_and_paid_on_the_calendar():
    as_of = pd.Timestamp("2026-07-25")  # a Saturday; 1 August 2026 is a Saturday too
    # Paid on the 1st, or the Monday after when the 1st is a weekend (Feb, Mar and Jun 2026 start on a Sunday or
    # Monday), and once two days late (in April): 5 of 6 months on the calendar.
    monthly = ["2026-02-02", "2026-03-02", "2026-04-03", "2026-05-01", "2026-06-01", "2026-07-01"]
    weekly = pd.date_range("2026-02-02", as_of, freq="7D")  # Mondays
    paid = pd.concat([_paid("monthly", monthly), _paid("weekly", weekly)])
    found = calendar_payers(paid, as_of, np.array(["monthly", "weekly"]))
    # Paying about monthly, it may pay up to three days after its day: April's payment counts, two days late.
    assert found.dom.tolist() == [1, 0] and found.share[0] == 1.0 and found.amount[0] == 50_000
    assert sorted(found.late[0][found.late[0] >= 0].tolist()) == [0, 0, 0, 0, 0, 2]
    weeks = simulate_calendar(found, as_of, weeks=6, sims=4_000, seed=1)
    # Week 1 runs Sunday 26 July to Saturday 1 August: the 1st is posted on Monday 3 August (or two days later), in
    # week 2; then Tuesday 1 September (or Thursday 3rd), in week 6. Nothing for the weekly payer (its money is
    # simulated from its gaps).
    assert weeks[:, 1, :].sum() == 0.0 and weeks[:, 0, [0, 2, 3, 4]].sum() == 0.0
    assert np.allclose(weeks[:, 0, [1, 5]].mean(axis=0), 50_000, rtol=0.03)


def test_a_monthly_payer_a_few_days_after_payday_is_paid_on_the_calendar_as_late_as_it_was():
    """Wages on the 25th paid by card a day to three days later: not one day of the month every month, but the
    week it lands in is known; simulated from its gaps instead, its month drifts against the weeks."""
    as_of = pd.Timestamp("2026-07-25")  # a Saturday
    late = ["2026-01-27", "2026-02-26", "2026-03-27", "2026-04-28", "2026-05-26", "2026-06-29"]
    found = calendar_payers(_paid("card", late), as_of, np.array(["card"]))
    assert found.dom[0] in (25, 26) and found.share[0] >= 5 / 6
    days_late = found.late[0][found.late[0] >= 0]
    assert len(days_late) >= 5 and days_late.min() >= 0 and days_late.max() <= 3 and days_late.max() > 0
    weeks = simulate_calendar(found, as_of, weeks=6, sims=4_000, seed=2)
    # Its next days: Monday 27 July to Thursday 30 July (week 1) and Tuesday 25 to Saturday 29 August (week 5).
    assert weeks[:, 0, [1, 2, 3, 5]].sum() == 0.0
    assert np.allclose(weeks[:, 0, [0, 4]].mean(axis=0), 50_000 * found.share[0], rtol=0.03)
    # Paid as often but two weeks apart, the same days late would meet any day of the month: only the day counts.
    fortnightly = pd.date_range("2026-01-27", as_of, freq="14D")
    assert calendar_payers(_paid("fortnightly", fortnightly), as_of, np.array(["fortnightly"])).dom[0] == 0


def test_the_blend_moves_each_week_toward_the_baseline_by_its_weight():
    blend = Blend((1.0, 0.25), origins_seen=8)
    receipts = np.array([[[100.0, 100.0, 100.0]], [[300.0, 300.0, 300.0]]])  # 2 simulations, 1 tenancy, 3 weeks
    blended = blend.apply(receipts, np.array([40.0]))
    # week 1 the simulation; week 2 and after (the last weight carries on) a quarter of it and 3/4 of the baseline
    assert blended[:, 0, :].tolist() == [[100.0, 55.0, 55.0], [300.0, 105.0, 105.0]]
    assert Blend.from_tags(blend.tags()) == blend and Blend.from_tags({}).weight(2).tolist() == [1.0, 1.0]


def test_the_blend_weights_follow_the_backtest_errors():
    rng = np.random.default_rng(5)
    rows = []
    for origin in range(10):
        actual = 1_000.0 * (1 + 0.05 * rng.standard_normal(13))
        base = 1_000.0
        mean = actual.copy()
        mean[:3] = actual[:3] * 1.3  # the simulation runs 30% high in weeks 1-3, exact later
        rows.append(pd.DataFrame({"origin": origin, "week": np.arange(1, 14), "actual": actual, "mean": mean,
                                  "baseline": base}))
    blend = estimate_blend(pd.concat(rows))
    assert blend.origins_seen == 10 and blend.weights[0] < 0.5 and blend.weights[-1] == 1.0
    assert estimate_blend(pd.concat(rows).head(5)) == Blend()


def test_a_tenancys_baseline_is_its_last_four_weeks_average():
    daily = pd.DataFrame({"tenancy_id": ["a", "a", "a", "b"], "amount_pence": [400, 800, 1_000, 200],
                          "day": pd.to_datetime(["2026-06-27", "2026-06-28", "2026-07-25", "2026-07-01"])})
    # the four weeks are the 28 days to 25 July, from 28 June: the 27th is outside (as the bench's baseline)
    assert tenancy_baselines(daily, pd.Timestamp("2026-07-25"), np.array(["a", "b", "c"])).tolist() == [450, 50, 0]


def test_receipts_before_an_april_rise_are_brought_to_the_rent_now_charged():
    """T1's weekly rent rose from £100 to £104.80 in April: what it paid before is read at the new rent (what it
    paid since stays as paid), so its habit keeps paying its rent. T2's first charge was a part week (£40), which
    is no rent rise; T3's rent fell."""
    mondays = pd.date_range("2026-03-02", periods=8, freq="7D")
    charge = {"T1": [10_000] * 5 + [10_480] * 3, "T2": [4_000] + [10_000] * 7, "T3": [10_000] * 5 + [9_000] * 3}
    charges = pd.DataFrame([{"tenancy_id": t, "posted_date": day, "type": "charge", "amount_pence": amount}
                            for t, amounts in charge.items() for day, amount in zip(mondays, amounts, strict=True)])
    daily = pd.DataFrame([{"tenancy_id": t, "day": day + pd.Timedelta(days=1), "amount_pence": 10_000}
                          for t in charge for day in mondays])
    brought = at_current_rent(daily, charges)
    by = brought.groupby("tenancy_id")["amount_pence"].apply(list).to_dict()
    assert by["T1"] == pytest.approx([10_480.0] * 5 + [10_000.0] * 3)
    assert by["T2"] == [10_000] * 8 and by["T3"] == [10_000] * 8
    assert at_current_rent(daily, charges[charges["type"] == "payment"]) is daily
    assert daily["amount_pence"].eq(10_000).all()  # the input is not changed
