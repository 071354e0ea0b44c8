"""Payment-date model: when will the tenant next pay at least half a rent period? With P10/P50/P90.

A discrete-time survival model: the days after as_of are cut into bins (`BIN_EDGES`), each training row is expanded
into one row per bin it was still waiting in (person-period form), and LightGBM learns the hazard — the chance the
payment comes in that bin given it has not come yet — from the `payment_date_v1` features plus the bin. Rows
censored at the horizon (no payment within 8 weeks) contribute every bin as "not yet", so censoring is used, not
dropped. The survival curve gives the distribution of the payment day and so its quantiles; a quantile beyond the
horizon is reported as `inf` ("not within 8 weeks").

The same distributions, with each tenant's usual amount and gaps between payments, simulate receipts for the cash
forecast (`training.cash`).
"""

from __future__ import annotations

from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd

#: Bin edges in days after as_of: bin j covers days (edges[j], edges[j+1]].
BIN_EDGES: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7, 9, 11, 14, 17, 21, 25, 28, 35, 42, 49, 56)
BIN_COLUMNS: tuple[str, ...] = ("bin_start", "bin_width")
QUANTILES: dict[str, float] = {"p10": 0.1, "p50": 0.5, "p90": 0.9}
#: What the P10–P90 interval should hold: it is calibrated on the validation cases to hold this share.
INTERVAL_TARGET = 0.8


@dataclass(frozen=True)
class Interval:
    """The quantile levels that give the reported P10 and P90. Payment days are whole days and the survival curve is
    coarse at the tail, so the nominal 10%/90% levels hold more than 80% of outcomes; the levels are calibrated on
    the validation cases (never the test cases) so that the interval holds `INTERVAL_TARGET` of them."""

    lower: float = 0.1
    upper: float = 0.9

    def tags(self) -> dict[str, str]:
        return {"interval_lower": repr(self.lower), "interval_upper": repr(self.upper)}

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> Interval:
        return cls(float(tags.get("interval_lower", 0.1)), float(tags.get("interval_upper", 0.9)))


def person_period(frame: pd.DataFrame, names: list[str], edges: tuple[int, ...] = BIN_EDGES) -> pd.DataFrame:
    """One row per (case, bin) while the case is still waiting: features, bin_start, bin_width, y (paid in bin)."""
    parts = []
    duration, event = frame["duration"].to_numpy(), frame["event"].to_numpy().astype(bool)
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        waiting = duration > lo
        observed = waiting & (event | (duration >= hi))  # a case censored inside a bin says nothing about it
        if not observed.any():
            continue
        part = frame.loc[observed, names].copy()
        part["bin_start"], part["bin_width"] = float(lo), float(hi - lo)
        part["y"] = (event[observed] & (duration[observed] <= hi)).astype(np.int8)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def fit(train: pd.DataFrame, valid: pd.DataFrame, names: list[str], params: dict) -> lgb.Booster:
    params = dict(params)
    rounds, stopping = params.pop("num_boost_round"), params.pop("early_stopping_rounds")
    columns = [*names, *BIN_COLUMNS]
    pp_train, pp_valid = person_period(train, names), person_period(valid, names)
    dtrain = lgb.Dataset(pp_train[columns], label=pp_train["y"], feature_name=columns, free_raw_data=False)
    dvalid = lgb.Dataset(pp_valid[columns], label=pp_valid["y"], reference=dtrain)
    return lgb.train(params, dtrain, num_boost_round=rounds, valid_sets=[dvalid],
                     callbacks=[lgb.early_stopping(stopping, verbose=False)])


def hazards(booster: lgb.Booster, features: pd.DataFrame, edges: tuple[int, ...] = BIN_EDGES) -> np.ndarray:
    """Hazard of each case (rows) in each bin (columns)."""
    names = [n for n in booster.feature_name() if n not in BIN_COLUMNS]
    base = features[names].to_numpy(dtype=float)
    n, bins = len(base), len(edges) - 1
    grid = np.repeat(base, bins, axis=0)
    starts = np.tile(np.asarray(edges[:-1], dtype=float), n)
    widths = np.tile(np.diff(np.asarray(edges, dtype=float)), n)
    x = np.column_stack([grid, starts, widths])
    iteration = booster.best_iteration if booster.best_iteration > 0 else None
    return booster.predict(x, num_iteration=iteration).reshape(n, bins)


def cdf_at_edges(h: np.ndarray) -> np.ndarray:
    """P(paid by edges[j]) for every edge (column 0 is 0)."""
    survival = np.cumprod(1.0 - h, axis=1)
    return np.column_stack([np.zeros(len(h)), 1.0 - survival])


def quantile_days(cdf: np.ndarray, q: float, edges: tuple[int, ...] = BIN_EDGES) -> np.ndarray:
    """The day by which the payment has come with probability q (linear within a bin); inf beyond the horizon."""
    e = np.asarray(edges, dtype=float)
    reached = cdf >= q
    j = np.argmax(reached, axis=1)  # first edge where the CDF reaches q
    ok = reached.any(axis=1)
    j = np.maximum(j, 1)
    lo_f, hi_f = cdf[np.arange(len(cdf)), j - 1], cdf[np.arange(len(cdf)), j]
    share = np.divide(q - lo_f, hi_f - lo_f, out=np.ones_like(lo_f), where=hi_f > lo_f)
    day = e[j - 1] + share * (e[j] - e[j - 1])
    return np.where(ok, day, np.inf)


def _quantiles_from_cdf(cdf: np.ndarray, interval: Interval, index: pd.Index) -> pd.DataFrame:
    levels = {"p10": interval.lower, "p50": QUANTILES["p50"], "p90": interval.upper}
    out = pd.DataFrame({name: quantile_days(cdf, q) for name, q in levels.items()}, index=index)
    out["p_within_horizon"] = cdf[:, -1]
    return out


def predict_quantiles(booster: lgb.Booster, features: pd.DataFrame, interval: Interval = Interval()) -> pd.DataFrame:
    """P10 / P50 / P90 days to the next payment (the interval at its calibrated levels) and P(within horizon)."""
    return _quantiles_from_cdf(cdf_at_edges(hazards(booster, features)), interval, features.index)


def interval_coverage(cases: pd.DataFrame, horizon: int) -> float:
    """Share of cases whose outcome is known that fall inside P10–P90 (a censored case: P90 beyond the horizon)."""
    known = cases[(cases["event"] == 1) | (cases["duration"] >= horizon)]  # censored by a move-out: unknown
    inside = np.where(known["event"] == 1,
                      (known["p10"] <= known["duration"]) & (known["duration"] <= known["p90"]),
                      ~np.isfinite(known["p90"]))
    return float(np.mean(inside)) if len(inside) else float("nan")


def calibrate_interval(booster: lgb.Booster, valid: pd.DataFrame, horizon: int,
                       target: float = INTERVAL_TARGET) -> Interval:
    """The symmetric quantile levels whose interval holds `target` of the validation cases (closest on a grid)."""
    cdf = cdf_at_edges(hazards(booster, valid))
    best, gap = Interval(), np.inf
    for lower in np.round(np.arange(0.05, 0.3001, 0.01), 2):
        interval = Interval(float(lower), float(round(1 - lower, 2)))
        cases = valid.join(_quantiles_from_cdf(cdf, interval, valid.index)[["p10", "p90"]])
        miss = abs(interval_coverage(cases, horizon) - target)
        if miss < gap:
            best, gap = interval, miss
    return best


def naive_baseline(paid_days: pd.DataFrame, cases: pd.DataFrame, lookback_days: int = 182,
                   fallback_days: float = 28.0) -> np.ndarray:
    """Each tenant's own habit: the last qualifying payment plus their median gap between payments (last 26 weeks).

    Predicts max(1, last + median gap - as_of) days; `fallback_days` when fewer than two payments are on record.
    """
    by_tenancy = {t: g["day"].to_numpy(dtype="datetime64[D]").astype(np.int64)
                  for t, g in paid_days.groupby("tenancy_id")}
    as_of = cases["event_timestamp"].dt.tz_localize(None).to_numpy(dtype="datetime64[D]").astype(np.int64)
    out = np.full(len(cases), fallback_days)
    for i, (tenancy, day) in enumerate(zip(cases["tenancy_id"].to_numpy(), as_of, strict=True)):
        days = by_tenancy.get(tenancy)
        if days is None:
            continue
        window = days[(days <= day) & (days > day - lookback_days)]
        if len(window) >= 2:
            out[i] = max(1.0, window[-1] + float(np.median(np.diff(window))) - day)
    return out


def payment_metrics(test: pd.DataFrame, horizon: int) -> dict[str, float]:
    """MAE and hit rates of P50 on observed payments; P10–P90 coverage on every case whose outcome is known."""
    seen = test[test["event"] == 1]
    p50 = seen["p50"].where(np.isfinite(seen["p50"]), horizon + 1)
    error = (p50 - seen["duration"]).abs()
    base_error = (seen["naive_days"] - seen["duration"]).abs()
    return {
        "mae_days": float(error.mean()),
        "mae_days_naive_baseline": float(base_error.mean()),
        "within_3_days": float((error <= 3).mean()),
        "within_3_days_naive_baseline": float((base_error <= 3).mean()),
        "within_7_days": float((error <= 7).mean()),
        "within_7_days_naive_baseline": float((base_error <= 7).mean()),
        "p10_p90_coverage": interval_coverage(test, horizon),
        "paid_within_horizon_rate": float(test["event"].mean()),
        "predicted_within_horizon_rate": float(test["p_within_horizon"].mean()),
    }
