"""The cash forecast for treasury, pure: receipts per week simulated from the payment-date model's distributions.

Each tenancy's first payment day is drawn from its payment-date distribution (`training.payment_date`), later ones
follow at gaps drawn from its own recent gaps, each for an amount that keeps its recent money per day; many
simulations give each week's P10/P50/P90, portfolio-wide and per patch. The backtest sets forecasts from past
dates against what then came in, beside the last-4-weeks average a finance team would otherwise use.

No I/O here: `training.train` backtests it at training time and `serving.cash_forecast` runs it on today's
features.
"""

from __future__ import annotations

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


def simulate_receipts(cdf: np.ndarray, amount: np.ndarray, gaps: np.ndarray, counts: np.ndarray, weeks: int = 13,
                      sims: int = 300, seed: int = 0, edges: tuple[int, ...] = BIN_EDGES) -> np.ndarray:
    """Receipts (pence) per simulation, tenancy and week: array (sims, tenancies, weeks).

    The first payment day is drawn from the tenancy's payment-date distribution (none within the horizon: draw
    again from the end of the horizon); later ones follow at gaps drawn from the tenancy's own recent gaps; each
    payment is the tenancy's usual amount.
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
        week = np.clip(((np.where(active, when, 1) - 1) // 7).astype(int), 0, weeks - 1)
        s_idx, t_idx = np.nonzero(active)
        np.add.at(out, (s_idx, t_idx, week[active]), amount[t_idx])
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
    return simulate_receipts(cdf, amount, gaps, counts, weeks=weeks, sims=sims, seed=seed)


def weekly_bands(totals: np.ndarray) -> pd.DataFrame:
    """Mean, P10, P50 and P90 of each week's receipts over the simulations: `totals` is (simulations, weeks)."""
    return pd.DataFrame([{"week": w + 1, "mean": totals[:, w].mean(), "p10": np.percentile(totals[:, w], 10),
                          "p50": np.percentile(totals[:, w], 50), "p90": np.percentile(totals[:, w], 90)}
                         for w in range(totals.shape[1])])


def summarise(receipts: np.ndarray, patches: np.ndarray, start: pd.Timestamp) -> pd.DataFrame:
    """Weekly P10/P50/P90 and mean receipts (pounds), portfolio-wide and per patch."""
    scopes = [("portfolio", np.ones(len(patches), dtype=bool))] + [
        (str(p), patches == p) for p in sorted(pd.unique(patches))]
    tables = []
    for scope, members in scopes:
        bands = weekly_bands(receipts[:, members, :].sum(axis=1) / 100.0)
        week_start = [(pd.Timestamp(start) + pd.Timedelta(days=7 * (w - 1) + 1)).date() for w in bands["week"]]
        tables.append(bands.assign(scope=scope, week_start=week_start))
    return pd.concat(tables, ignore_index=True)[["scope", "week", "week_start", "mean", "p10", "p50", "p90"]]


def backtest_origin(receipts: np.ndarray, daily: pd.DataFrame, origin: pd.Timestamp) -> pd.DataFrame:
    """One past forecast date: each week's band beside what the same tenancies then paid, and the baseline (the
    last four weeks' average). Weeks are days (origin + 7(w-1), origin + 7w]; `daily` holds only those tenancies."""
    day = origin.tz_localize(None) if origin.tz is not None else origin
    bands = weekly_bands(receipts.sum(axis=1) / 100.0)
    before = daily[(daily["day"] > day - pd.Timedelta(weeks=4)) & (daily["day"] <= day)]["amount_pence"].sum()
    actual = []
    for w in range(len(bands)):
        lo, hi = day + pd.Timedelta(days=7 * w), day + pd.Timedelta(days=7 * (w + 1))
        actual.append(daily[(daily["day"] > lo) & (daily["day"] <= hi)]["amount_pence"].sum() / 100.0)
    bands = bands.assign(origin=day.date(), actual=actual, baseline=before / 4 / 100.0)
    return bands[["origin", "week", "actual", "mean", "p10", "p50", "p90", "baseline"]]


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
    metrics["cash_backtest_origins"] = float(backtest["origin"].nunique())
    return metrics
