"""The cash forecast's calendar and its common factor, on hand-made ledgers and draws whose answers are known."""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.cash import (
    CommonFactor,
    bank_holidays,
    estimate_common_factor,
    month_start_weeks,
    posting_days,
    simulate_receipts,
    week_starts,
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
    assert factor.weeks_seen == 104 and CommonFactor.from_tags(factor.tags()) == CommonFactor(
        round(factor.month_start, 5), round(factor.other, 5), 104)
    draws = factor.draws(weeks[:13], sims=20_000, seed=3)
    assert np.allclose(draws.mean(axis=0), 1.0, atol=0.01)  # the factor moves the band, not the mean
    assert np.allclose(np.log(draws).std(axis=0), np.where(month_start[:13], factor.month_start, factor.other),
                       rtol=0.05)


def test_too_few_weeks_give_no_common_factor():
    rows = pd.DataFrame({"week_start": week_starts(ORIGIN, 5), "mean": 1.0, "actual": 2.0, "sim_log_sd": 0.0})
    assert estimate_common_factor(rows) == CommonFactor() and CommonFactor.from_tags({}) == CommonFactor()
