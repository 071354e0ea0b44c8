"""The training backtest forecasts each origin as the served forecast would have that day: with the DWP's schedules
in the ledger, the lines expected from what was known on the day are known money, the covered tenants' benefit is
not also simulated from their habits, and what is judged is still all the money that came in. Lines paid (and end
dates reached) after the origin change nothing. On hand-built books (`tests.unit.test_schedules.books`), with the
tenants' habits simulated by a stand-in that forecasts each tenancy's last four weeks' average."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from features.schedules import lines_known_on
from features.store.offline import LedgerSlice
from tests.unit.test_schedules import AMOUNT, books
from training import cash
from training import train as training

ORIGIN = pd.Timestamp("2024-04-20", tz="UTC")  # after the fourth Housing Benefit run (1 April), before the fifth
DAY = ORIGIN.tz_localize(None)
PARAMS = {"cash": {"weeks": 13, "simulations": 20}, "label": {"horizon_days": 56, "min_period_share": 0.5}}
CARD = 1_000  # every tenant also pays £10 by card every Monday
#: the lines expected after the origin within 13 weeks: Housing Benefit on 29 April, 27 May and 24 June (T1-T3),
#: Universal Credit on 15 May, 15 June and 15 July (T4); every line so far came in full
EXPECTED = 3 * (AMOUNT["T1"] + AMOUNT["T2"] + AMOUNT["T3"]) + 3 * AMOUNT["T4"]


def ledger() -> LedgerSlice:
    """T1-T4 as in `books`, and T5 with benefit of its own that no schedule names."""
    lines, postings, register = books()
    t5 = pd.DataFrame({"tenancy_id": "T5", "posted_date": pd.date_range("2024-01-03", "2024-07-31", freq="14D"),
                       "amount_pence": -30_000})
    mondays = pd.date_range("2024-01-01", "2024-07-29", freq="W-MON")
    card = pd.DataFrame([{"tenancy_id": t, "posted_date": d, "amount_pence": -CARD, "type": "payment"}
                         for t in ("T1", "T2", "T3", "T4", "T5") for d in mondays])
    transactions = pd.concat([pd.concat([postings, t5]).assign(type="benefit"), card], ignore_index=True)
    transactions = transactions.assign(reference="", posted_date=pd.to_datetime(transactions["posted_date"]))
    register = pd.concat([register, pd.DataFrame({"tenancy_id": ["T5"], "end_date": [pd.NaT],
                                                  "benefit_type": ["housing_benefit"]})], ignore_index=True)
    register = register.assign(start_date=pd.Timestamp("2023-01-01"), rent_amount_pence=40_000,
                               rent_frequency="four_weekly")
    return LedgerSlice(register, transactions, pd.DataFrame(), schedules=lines)


@pytest.fixture
def habits(monkeypatch) -> list[pd.DataFrame]:
    """Stands in for the tenants' habits (the payment-date model): each tenancy pays its last four weeks' average
    every week; records the daily receipts it was given."""
    given: list[pd.DataFrame] = []

    def last_four_weeks(booster, features, tenancies, paid, daily, origin, weeks, sims, seed=0, **_):
        given.append(daily)
        average = cash.tenancy_baselines(daily, origin, features["tenancy_id"].to_numpy())
        return np.broadcast_to(average[None, :, None], (sims, len(features), weeks)).copy()

    monkeypatch.setattr(cash, "forecast_receipts", last_four_weeks)
    return given


def simulate(part: LedgerSlice):
    from training.labels import daily_receipts

    features = pd.DataFrame({"tenancy_id": ["T1", "T2", "T3", "T4", "T5"]})
    return training.simulate_origin(None, features, part, daily_receipts(part.transactions), ORIGIN,
                                    PARAMS, seed=0)


def test_the_backtest_adds_the_lines_expected_on_the_day_and_leaves_the_covered_benefit_out(habits) -> None:
    part = ledger()
    without, within = simulate(replace(part, schedules=None)), simulate(part)
    assert not without.known.any()
    assert np.allclose(within.known.sum(axis=1), EXPECTED)  # every draw: these lines never fell short
    week = within.known.mean(axis=0)  # weeks are (Saturday, Saturday]: 29 April in week 2, 15 May in week 4
    assert week[0] == 0 and week[1] == AMOUNT["T1"] + AMOUNT["T2"] + AMOUNT["T3"] and week[3] == AMOUNT["T4"]
    benefit_t5 = 30_000 * 2 / 4  # T5's two benefit credits in the last four weeks, a week
    assert np.allclose(without.totals, 5 * CARD + benefit_t5 + sum(AMOUNT[t] for t in ("T1", "T2", "T3")) / 4
                       + AMOUNT["T4"] / 4)
    assert np.allclose(within.totals, 5 * CARD + benefit_t5)  # T1-T4's benefit comes from the lines alone
    covered = habits[-1][habits[-1]["tenancy_id"].isin(["T1", "T2", "T3", "T4"])]
    assert (covered["amount_pence"] == CARD).all() and covered["day"].max() <= DAY
    pd.testing.assert_frame_equal(within.actual, without.actual)  # judged on all the money that came in
    rows = training.blend_rows(within)
    assert np.allclose(rows["baseline"], (5 * CARD + benefit_t5) / 100 + within.known.mean(axis=0) / 100)
    assert np.allclose(rows["mean"], (within.totals + within.known).mean(axis=0) / 100)


def test_lines_and_end_dates_after_the_origin_change_nothing(habits) -> None:
    part = ledger()
    known = part.schedules[pd.to_datetime(part.schedules["payment_date"]) <= DAY]
    after = pd.to_datetime(part.schedules["payment_date"]) > DAY
    later = part.schedules.assign(amount_pence=part.schedules["amount_pence"].where(~after, 3 * AMOUNT["T1"]))
    ends = part.tenancies.assign(end_date=np.where(part.tenancies["tenancy_id"] == "T2", pd.Timestamp("2024-05-01"),
                                                   part.tenancies["end_date"]))
    told_later = simulate(replace(part, schedules=later, tenancies=ends))
    on_the_day = simulate(replace(part, schedules=known))
    assert np.array_equal(told_later.known, on_the_day.known) and np.array_equal(told_later.totals,
                                                                                 on_the_day.totals)
    assert np.allclose(on_the_day.known.sum(axis=1), EXPECTED)
    expected = lines_known_on(later, ends, part.transactions, ORIGIN, 13)
    assert set(expected["tenancy_id"]) == {"T1", "T2", "T3", "T4"}
    assert (pd.to_datetime(expected["expected_date"]) > DAY).all()
    assert lines_known_on(later, ends, part.transactions, "2023-12-31", 13) is None  # no line paid yet
