"""The cash forecast for treasury, pure: receipts per week simulated from the payment-date model's distributions.

Each tenancy's first payment day is drawn from its payment-date distribution (`training.payment_date`), later ones
follow at gaps drawn from its own recent gaps, each for an amount that keeps its recent money per day; a payment
due on a day the bank does not post (the weekdays the ledger shows quiet, and bank holidays when the ledger shows
them quiet) lands on the next day it does. Simulated tenants are independent, but a week's receipts also move
together (a benefit run late, a month's paydays landing in one week or the next, a season): each simulation's week
is scaled by a common factor whose spread (`CommonFactor`, wider in month-start weeks) is estimated at training
time from backtest weeks the model had not seen. Many simulations give each week's P10/P50/P90, portfolio-wide
and per patch. The backtest sets forecasts from past dates against what then came in, beside the last-4-weeks
average a finance team would otherwise use.

No I/O here: `training.train` backtests it at training time and `serving.treasury.forecast` runs it on today's
features.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import holidays
import lightgbm as lgb
import numpy as np
import pandas as pd

from features.feeds.contract import periods_per_year
from training.payment_date import BIN_EDGES, cdf_at_edges, hazards


def period_days(tenancies: pd.DataFrame) -> np.ndarray:
    """Days in each tenancy's rent period."""
    return 365.25 / periods_per_year(tenancies["rent_frequency"])


def tenant_habits(paid_days: pd.DataFrame, receipt_days: pd.DataFrame, as_of: pd.Timestamp,
                  tenancy_ids: np.ndarray, period_days: np.ndarray, started: np.ndarray | None = None,
                  lookback_days: int = 182, max_gaps: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per tenancy, from its last 26 weeks up to as_of: the amount per payment and its recent gaps between payments.

    The gaps are those between its payment days (a tenancy with fewer than two gets its rent period). The amount
    keeps the money right, not the count: the tenancy's receipts per day over the days it was live in the window,
    times its mean gap. Gaps seen only between payments miss the long silences of an irregular payer (before its
    first payment in the window, and since its last), so dividing its money by its payments instead would
    simulate one payment each period for a tenant who paid twice in six months. `started`: tenancy start dates
    (None: every tenancy was live all window).
    """
    day = pd.Timestamp(as_of).tz_localize(None).normalize() if pd.Timestamp(as_of).tz else pd.Timestamp(as_of)
    since = day - pd.Timedelta(days=lookback_days)

    def window(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[(frame["day"] <= day) & (frame["day"] > since)]

    received = window(receipt_days).groupby("tenancy_id")["amount_pence"].sum()
    groups = {t: g for t, g in window(paid_days).groupby("tenancy_id")}
    live_days = np.full(len(tenancy_ids), float(lookback_days))
    if started is not None:
        first = np.maximum(pd.to_datetime(pd.Series(started)).to_numpy(), since.to_datetime64())
        live_days = np.clip((day.to_datetime64() - first) / np.timedelta64(1, "D"), 1.0, lookback_days)
    live_days = np.maximum(live_days, period_days)  # a new tenancy's move-in receipts are not its weekly habit
    amount = np.zeros(len(tenancy_ids))
    gaps = np.zeros((len(tenancy_ids), max_gaps))
    counts = np.ones(len(tenancy_ids), dtype=int)
    gaps[:, 0] = period_days
    for i, tenancy in enumerate(tenancy_ids):
        g = groups.get(tenancy)
        if g is None:
            continue
        d = np.diff(g["day"].to_numpy(dtype="datetime64[D]").astype(np.int64))[-max_gaps:]
        if len(d):
            gaps[i, : len(d)] = d
            counts[i] = len(d)
        amount[i] = received.get(tenancy, 0.0) / live_days[i] * gaps[i, : counts[i]].mean()
    return amount, gaps, counts


#: Bank holidays are days the bank does not post when their receipts (over the last year) were under this share of
#: their weekdays' usual receipts.
QUIET_DAY_SHARE = 0.1
#: Days a payment may wait for a posting day (Christmas and Boxing Day on a Friday and Monday: four).
MAX_ROLL_DAYS = 7


def bank_holidays(first: pd.Timestamp, last: pd.Timestamp) -> pd.DatetimeIndex:
    """England and Wales bank holidays from `first` to `last` (the `holidays` package's calendar)."""
    days = holidays.country_holidays("GB", subdiv="ENG", years=range(first.year, last.year + 1))
    return pd.DatetimeIndex(sorted(pd.Timestamp(d) for d in days if first <= pd.Timestamp(d) <= last))


def _day(as_of: pd.Timestamp) -> pd.Timestamp:
    as_of = pd.Timestamp(as_of)
    return (as_of.tz_localize(None) if as_of.tz is not None else as_of).normalize()


def posting_days(daily: pd.DataFrame, as_of: pd.Timestamp, days: int, lookback_days: int = 364) -> np.ndarray:
    """For each day 0..days after `as_of` (as offsets), the offset of the day money due then is posted: itself, or
    after a bank holiday the next working day, when the ledger's last year (`daily`: day, amount_pence) shows its
    bank holidays quiet (under `QUIET_DAY_SHARE` of their weekdays' usual receipts; a year with none is taken as
    quiet). Weekends are not moved: the payment-date model learnt from posting days and the tenants' gaps are
    between posting days, and moving weekend days as well made the bench's weeks 1-2 worse (WAPE 0.065 to 0.096)."""
    day = _day(as_of)
    since = day - pd.Timedelta(days=lookback_days)
    seen = daily[(daily["day"] > since) & (daily["day"] <= day)].groupby("day")["amount_pence"].sum()
    dates = pd.date_range(since + pd.Timedelta(days=1), day)
    per_day = seen.reindex(dates, fill_value=0).astype(float)
    past = dates.isin(bank_holidays(dates[0], day))
    weekday_mean = per_day[~past].groupby(dates[~past].weekday).mean().reindex(range(7), fill_value=0.0)
    usual = weekday_mean.to_numpy()[dates[past].weekday].sum()
    future = pd.date_range(day, periods=days + 1 + MAX_ROLL_DAYS)
    posted = np.arange(len(future))
    if past.any() and per_day[past].sum() >= QUIET_DAY_SHARE * usual:
        return posted[: days + 1]  # this bank posts on bank holidays
    closed = future.isin(bank_holidays(future[0], future[-1]))
    working = ~closed & (future.weekday < 5)
    for k in np.flatnonzero(closed)[::-1]:  # a bank holiday's money is posted on the next working day
        later = np.flatnonzero(working[k + 1:])
        posted[k] = k + 1 + later[0] if len(later) else k
    return posted[: days + 1]


def month_start_weeks(week_starts) -> np.ndarray:
    """Whether each week (7 days from its start) holds the first working day of a month: the day monthly wages,
    pensions and direct debits mostly land."""
    starts = pd.DatetimeIndex(pd.to_datetime(pd.Series(week_starts)))
    first, last = starts.min() - pd.Timedelta(days=31), starts.max() + pd.Timedelta(days=7)
    closed = bank_holidays(first, last)
    working = pd.bdate_range(first, last)
    working = working[~working.isin(closed)]
    first_working = pd.Series(working).groupby(working.to_period("M")).min().to_numpy(dtype="datetime64[D]")
    begin = starts.to_numpy(dtype="datetime64[D]")
    return np.array([((first_working >= b) & (first_working < b + np.timedelta64(7, "D"))).any() for b in begin])


@dataclass(frozen=True)
class CommonFactor:
    """What moves many tenants' receipts in the same week, beyond each tenant's own uncertainty: the standard
    deviation, on the log scale, of a factor every simulated week is multiplied by (the same for every tenancy and
    patch), in month-start weeks and in the others. Estimated by `estimate_common_factor` from backtest weeks; zero
    (tenants' own uncertainty only) when too few were seen."""

    month_start: float = 0.0
    other: float = 0.0
    weeks_seen: int = 0

    def tags(self) -> dict[str, str]:
        return {"cash_common_factor": json.dumps({"month_start": round(self.month_start, 5),
                                                  "other": round(self.other, 5), "weeks_seen": self.weeks_seen})}

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> CommonFactor:
        return cls(**json.loads(tags["cash_common_factor"])) if "cash_common_factor" in tags else cls()

    def draws(self, week_starts, sims: int, seed: int = 0) -> np.ndarray:
        """Factors (sims, weeks) with mean 1: exp(sd z - sd^2/2), z standard normal, sd by the week's kind."""
        sd = np.where(month_start_weeks(week_starts), self.month_start, self.other)
        z = np.random.default_rng(seed).standard_normal((sims, len(sd)))
        return np.exp(sd[None, :] * z - sd[None, :] ** 2 / 2)


#: Backtest weeks needed in a kind of week (month-start or other) before its own spread is estimated.
MIN_FACTOR_WEEKS = 8


def estimate_common_factor(backtest: pd.DataFrame) -> CommonFactor:
    """The common factor's spread from backtest rows (week_start, actual, mean, sim_log_sd: the simulations' own
    log-scale spread of that week's total): what the weeks' log errors hold beyond the simulations' own spread,
    sqrt(mean(log(actual/mean)^2) - mean(sim_log_sd^2)), for month-start weeks and the others (a kind seen in fewer
    than `MIN_FACTOR_WEEKS` weeks takes the pooled figure). A systematic error counts: the band has to cover it."""
    rows = backtest[(backtest["actual"] > 0) & (backtest["mean"] > 0)]
    if len(rows) < MIN_FACTOR_WEEKS:
        return CommonFactor()
    error = np.log(rows["actual"] / rows["mean"]).to_numpy() ** 2 - rows["sim_log_sd"].to_numpy() ** 2
    kind = month_start_weeks(rows["week_start"])

    def spread(members: np.ndarray) -> float:
        return float(np.sqrt(max(0.0, error[members].mean())))

    pooled = spread(np.ones(len(rows), dtype=bool))
    return CommonFactor(spread(kind) if kind.sum() >= MIN_FACTOR_WEEKS else pooled,
                        spread(~kind) if (~kind).sum() >= MIN_FACTOR_WEEKS else pooled, len(rows))


def simulate_receipts(cdf: np.ndarray, amount: np.ndarray, gaps: np.ndarray, counts: np.ndarray, weeks: int = 13,
                      sims: int = 300, seed: int = 0, edges: tuple[int, ...] = BIN_EDGES,
                      posted: np.ndarray | None = None) -> np.ndarray:
    """Receipts (pence) per simulation, tenancy and week: array (sims, tenancies, weeks).

    The first payment day is drawn from the tenancy's payment-date distribution (none within the horizon: draw
    again from the end of the horizon); later ones follow at gaps drawn from the tenancy's own recent gaps; each
    payment is the tenancy's usual amount, counted in the week of the day it is posted: `posted[d]` for one due on
    day d (`posting_days`; None: the day it is due).
    """
    rng = np.random.default_rng(seed)
    n = len(amount)
    e = np.asarray(edges, dtype=float)
    horizon_days = weeks * 7
    out = np.zeros((sims, n, weeks))

    def first_payment(size: tuple[int, int]) -> np.ndarray:
        u = rng.random(size)
        day = np.empty(size)
        for i in range(n):  # inverse CDF, linear within bins (vectorised over simulations)
            f = cdf[i]
            within = u[:, i] <= f[-1]
            day[within, i] = np.interp(u[within, i], f, e) if f[-1] > 0 else e[-1]
            day[~within, i] = np.nan
        return day

    t = first_payment((sims, n))
    offset = np.zeros((sims, n))
    while True:
        missing = np.isnan(t)
        while missing.any():  # no payment within the model's horizon: draw again from its end, or give up
            offset = np.where(missing, offset + e[-1], offset)
            retry = missing & (offset < horizon_days)
            t = np.where(retry, first_payment((sims, n)), np.where(missing, np.inf, t))
            missing = np.isnan(t)
        when = np.ceil(offset + t)
        active = when <= horizon_days
        if not active.any():
            break
        landed = np.where(active, when, 1).astype(int)
        if posted is not None:
            landed = posted[landed]
        counted = active & (landed <= horizon_days)
        week = np.clip((landed - 1) // 7, 0, weeks - 1)
        s_idx, t_idx = np.nonzero(counted)
        np.add.at(out, (s_idx, t_idx, week[counted]), amount[t_idx])
        pick = (rng.random((sims, n)) * counts[None, :]).astype(int)
        gap = np.maximum(gaps[np.arange(n)[None, :], pick], 1.0)
        offset, t = when, gap
    return out


def forecast_receipts(booster: lgb.Booster, features: pd.DataFrame, tenancies: pd.DataFrame, paid: pd.DataFrame,
                      daily: pd.DataFrame, origin: pd.Timestamp, weeks: int, sims: int, seed: int = 0,
                      habits: dict | None = None) -> np.ndarray:
    """Simulated receipts (sims, tenancies, weeks) for the tenancies in `features`, from `origin`.

    `paid`: qualifying payment days (`training.labels.qualifying_payment_days`); `daily`: money received per day
    (`training.labels.daily_receipts`); `tenancies`: the register (rent frequency). Given a dict as `habits`, it
    is filled with what each tenancy was simulated from: `amount` (pence a payment) and `cdf` (its payment-date
    distribution at the model's bin edges).
    """
    register = tenancies.set_index("tenancy_id").loc[features["tenancy_id"]]
    cdf = cdf_at_edges(hazards(booster, features))
    amount, gaps, counts = tenant_habits(paid, daily, origin, features["tenancy_id"].to_numpy(),
                                         period_days(register.reset_index()), register["start_date"].to_numpy())
    if habits is not None:
        habits.update(amount=amount, cdf=cdf)
    return simulate_receipts(cdf, amount, gaps, counts, weeks=weeks, sims=sims, seed=seed,
                             posted=posting_days(daily, origin, weeks * 7))


def weekly_bands(totals: np.ndarray, scale: np.ndarray | None = None) -> pd.DataFrame:
    """Mean, P10, P50 and P90 of each week's receipts over the simulations: `totals` is (simulations, weeks). The
    percentiles are of `totals * scale` (the common factor, mean 1); the mean is of `totals`, the factor's
    expectation, so means still add up across patches and tenancies exactly."""
    banded = totals if scale is None else totals * scale
    return pd.DataFrame([{"week": w + 1, "mean": totals[:, w].mean(), "p10": np.percentile(banded[:, w], 10),
                          "p50": np.percentile(banded[:, w], 50), "p90": np.percentile(banded[:, w], 90)}
                         for w in range(totals.shape[1])])


def week_starts(start: pd.Timestamp, weeks: int) -> list:
    """The first day of each forecast week: weeks are days (start + 7(w-1), start + 7w]."""
    return [(pd.Timestamp(start) + pd.Timedelta(days=7 * w + 1)).date() for w in range(weeks)]


def summarise(receipts: np.ndarray, patches: np.ndarray, start: pd.Timestamp,
              factor: CommonFactor | None = None, seed: int = 0) -> pd.DataFrame:
    """Weekly P10/P50/P90 and mean receipts (pounds), portfolio-wide and per patch, each simulation's week scaled by
    the same common factor for every patch (`factor`; None: tenants' own uncertainty only)."""
    starts = week_starts(start, receipts.shape[2])
    scale = (factor or CommonFactor()).draws(starts, receipts.shape[0], seed)
    scopes = [("portfolio", np.ones(len(patches), dtype=bool))] + [
        (str(p), patches == p) for p in sorted(pd.unique(patches))]
    tables = []
    for scope, members in scopes:
        bands = weekly_bands(receipts[:, members, :].sum(axis=1) / 100.0, scale)
        tables.append(bands.assign(scope=scope, week_start=starts))
    return pd.concat(tables, ignore_index=True)[["scope", "week", "week_start", "mean", "p10", "p50", "p90"]]


def backtest_origin(totals: np.ndarray, daily: pd.DataFrame, origin: pd.Timestamp,
                    factor: CommonFactor | None = None, seed: int = 0) -> pd.DataFrame:
    """One past forecast date: each week's band (from `totals`, the simulated portfolio's pence (sims, weeks), with
    `factor`) beside what the same tenancies then paid, the baseline (the last four weeks' average) and the
    simulations' own log-scale spread (`sim_log_sd`, for `estimate_common_factor`). Weeks are days
    (origin + 7(w-1), origin + 7w]; `daily` holds only those tenancies."""
    day = _day(origin)
    starts = week_starts(day, totals.shape[1])
    pounds = totals / 100.0
    bands = weekly_bands(pounds, (factor or CommonFactor()).draws(starts, totals.shape[0], seed))
    before = daily[(daily["day"] > day - pd.Timedelta(weeks=4)) & (daily["day"] <= day)]["amount_pence"].sum()
    actual = []
    for w in range(len(bands)):
        lo, hi = day + pd.Timedelta(days=7 * w), day + pd.Timedelta(days=7 * (w + 1))
        actual.append(daily[(daily["day"] > lo) & (daily["day"] <= hi)]["amount_pence"].sum() / 100.0)
    bands = bands.assign(origin=day.date(), week_start=starts, actual=actual, baseline=before / 4 / 100.0,
                         sim_log_sd=np.log(np.maximum(pounds, 1.0)).std(axis=0))
    return bands[["origin", "week", "week_start", "actual", "mean", "p10", "p50", "p90", "baseline", "sim_log_sd"]]


def cash_metrics(backtest: pd.DataFrame) -> dict[str, float]:
    """Weekly WAPE by horizon (model and baseline) and the P10–P90 coverage over all backtest weeks."""
    metrics = {}
    if backtest.empty:
        return metrics
    for w in sorted(backtest["week"].unique()):
        part = backtest[backtest["week"] == w]
        total = part["actual"].abs().sum()
        if total > 0:
            metrics[f"wape_week{w}"] = float((part["actual"] - part["mean"]).abs().sum() / total)
            metrics[f"wape_week{w}_baseline"] = float((part["actual"] - part["baseline"]).abs().sum() / total)
    metrics["cash_p10_p90_coverage"] = float(((backtest["p10"] <= backtest["actual"])
                                              & (backtest["actual"] <= backtest["p90"])).mean())
    month_start = month_start_weeks(backtest["week_start"])
    for name, weeks in (("month_start", month_start), ("other", ~month_start)):
        part = backtest[weeks]
        if len(part):
            metrics[f"cash_p10_p90_coverage_{name}_weeks"] = float(((part["p10"] <= part["actual"])
                                                                     & (part["actual"] <= part["p90"])).mean())
    metrics["cash_backtest_origins"] = float(backtest["origin"].nunique())
    return metrics
