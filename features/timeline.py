"""Time on the tenancy × week grid: the snapshot dates and the few array helpers every feature and label uses.

Pure numpy/pandas, no I/O. Day arithmetic uses day numbers (float days since 1970-01-01, NaN for missing); a grid
is tenancies (rows, in tenancy_id order) × weekly as_of dates (columns).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


def weekly_as_of_dates(first: pd.Timestamp, last: pd.Timestamp, weekday: int = 6) -> pd.DatetimeIndex:
    """The snapshot dates: every week on `weekday` (Sunday by default) from `first` to `last` inclusive."""
    first, last = pd.Timestamp(first).normalize(), pd.Timestamp(last).normalize()
    start = first + pd.Timedelta(days=(weekday - first.weekday()) % 7)
    return pd.date_range(start, last, freq="7D")


def day_numbers(values) -> np.ndarray:
    """Dates as float days since 1970-01-01 (NaN for missing), the unit every day arithmetic here uses."""
    days = pd.to_datetime(pd.Series(values)).to_numpy(dtype="datetime64[D]")
    out = days.astype(np.int64).astype(np.float64)
    out[np.isnat(days)] = np.nan
    return out


def week_of(days: np.ndarray, as_of_days: np.ndarray) -> np.ndarray:
    """The grid column each day falls in: column k holds days after as_of[k-1] up to and including as_of[k]
    (a day after the last as_of gets len(as_of))."""
    return np.searchsorted(as_of_days, days, side="left")


def as_of_day_numbers(as_of: pd.DatetimeIndex) -> np.ndarray:
    return as_of.values.astype("datetime64[D]").astype(np.int64).astype(float)


def live_at(tenancies: pd.DataFrame, as_of: pd.DatetimeIndex) -> np.ndarray:
    """(tenancy × as_of) True where the tenancy has started and not yet ended (`end_date` inclusive)."""
    day = as_of.values.astype("datetime64[D]")
    start = tenancies["start_date"].to_numpy(dtype="datetime64[D]")[:, None]
    end = tenancies["end_date"].to_numpy(dtype="datetime64[D]")[:, None]
    return (start <= day[None, :]) & (np.isnat(end) | (end >= day[None, :]))


def utc(stamps: pd.DatetimeIndex) -> pd.DatetimeIndex:
    return stamps.tz_localize("UTC") if stamps.tz is None else stamps


def population(register: pd.DataFrame, days) -> pd.DataFrame:
    """(tenancy_id, event_timestamp) of every tenancy of the register live on each of `days`: the served
    population's rule, for drift's reference days and a forecast from a past day alike."""
    tenancies = register.sort_values("tenancy_id")
    stamps = pd.DatetimeIndex(list(days))
    t_idx, d_idx = np.nonzero(live_at(tenancies, stamps))
    return pd.DataFrame({"tenancy_id": tenancies["tenancy_id"].to_numpy()[t_idx],
                         "event_timestamp": utc(stamps)[d_idx]})


def trailing(values: np.ndarray, weeks: int) -> np.ndarray:
    """Sum over the trailing `weeks` grid columns ending at each column (inclusive)."""
    c = np.cumsum(values, axis=1)
    shifted = np.zeros_like(c)
    shifted[:, weeks:] = c[:, :-weeks] if weeks < c.shape[1] else 0
    return c - shifted


def lag(values: np.ndarray, weeks: int) -> np.ndarray:
    """Each column's value `weeks` columns earlier (0 before the grid starts)."""
    out = np.zeros_like(values)
    if weeks < values.shape[1]:
        out[:, weeks:] = values[:, :-weeks]
    return out


def latest_day(shape: tuple[int, int], row: np.ndarray, week: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Latest `day` seen up to each column (carried forward), NaN before the first."""
    out = np.full(shape, np.nan)
    if len(day):
        np.fmax.at(out, (row, week), day)
        out = np.fmax.accumulate(out, axis=1)
    return out


def safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.full(np.broadcast(num, den).shape, np.nan), where=den > 0)


#: More than any day number: `row * KEY_SPAN + day` orders dated rows by tenancy, then date.
KEY_SPAN = 1e6


@dataclass(frozen=True)
class DatedRows:
    """Dated rows of many tenancies (a receipt, a payment) in one array sorted by tenancy then day, so that
    "this tenancy's next row after day d" or "what it had received by day d" is one searchsorted for every
    question at once, with no loop over tenancies. `totals` is the running total of `values` in that order."""

    keys: np.ndarray
    totals: np.ndarray

    @classmethod
    def of(cls, row: np.ndarray, day: np.ndarray, values: np.ndarray | None = None) -> DatedRows:
        keys = row * KEY_SPAN + day
        order = np.argsort(keys, kind="stable")
        values = np.zeros(len(keys)) if values is None else values
        return cls(keys[order], np.cumsum(values[order]))

    def total_before(self, row: np.ndarray, day: np.ndarray, inclusive: bool = False) -> np.ndarray:
        """Running total of everything before tenancy `row`'s `day` (with `inclusive`, up to and including it).
        The running total spans all tenancies: differences of two calls for the same row are that row's."""
        idx = np.searchsorted(self.keys, row * KEY_SPAN + day, side="right" if inclusive else "left")
        return np.where(idx > 0, self.totals[np.maximum(idx - 1, 0)] if len(self.totals) else 0.0, 0.0)

    def day_total_reaches(self, row: np.ndarray, target: np.ndarray) -> np.ndarray:
        """The day on which the running total first reaches `target`, if that row is still tenancy `row`'s
        (NaN otherwise: the tenancy's own rows never got there)."""
        if not len(self.totals):
            return np.full(len(row), np.nan)
        j = np.searchsorted(self.totals, target - 1e-9, side="left")
        j_safe = np.minimum(j, len(self.totals) - 1)
        same = (j < len(self.totals)) & (np.floor(self.keys[j_safe] / KEY_SPAN) == row)
        return np.where(same, self.keys[j_safe] - row * KEY_SPAN, np.nan)

    def next_after(self, row: np.ndarray, day: np.ndarray) -> np.ndarray:
        """Days from `day` to tenancy `row`'s first row strictly after it (inf when it has none)."""
        query = row * KEY_SPAN + day
        nxt = np.searchsorted(self.keys, query, side="right")
        nxt_key = self.keys[np.minimum(nxt, len(self.keys) - 1)] if len(self.keys) else np.full(len(query), np.inf)
        same = (nxt < len(self.keys)) & (np.floor(nxt_key / KEY_SPAN) == row)
        return np.where(same, nxt_key - query, np.inf)
