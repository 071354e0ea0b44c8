"""Feature logic: pure functions from a slice of the ledger to per-tenancy snapshots as of weekly dates.

Nothing here reads or writes files or databases, and no input is modified. Each function works on any subset of
tenancies (all of a tenancy's rows must be in the same subset), so the same code runs on one process or on each
partition of a Dask dataframe partitioned by tenancy.

"As of date D" means: everything posted on or before D, nothing after. A snapshot's `event_timestamp` is D at
midnight UTC; the training set joins on the same timestamps, so no row can see its own future.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.catalogue import SNAPSHOT_FEATURES
from features.feeds.contract import PERIODS_PER_YEAR, RECEIPT_TYPES

FEATURE_COLUMNS: tuple[str, ...] = tuple(f.name for f in SNAPSHOT_FEATURES)
SNAPSHOT_KEYS: tuple[str, ...] = ("tenancy_id", "event_timestamp")


def weekly_as_of_dates(first: pd.Timestamp, last: pd.Timestamp, weekday: int = 6) -> pd.DatetimeIndex:
    """The snapshot dates: every week on `weekday` (Sunday by default) from `first` to `last` inclusive."""
    first, last = pd.Timestamp(first).normalize(), pd.Timestamp(last).normalize()
    start = first + pd.Timedelta(days=(weekday - first.weekday()) % 7)
    return pd.date_range(start, last, freq="7D")


@dataclass(frozen=True)
class WeeklyGrid:
    """Dense tenancy × week arrays of money movements, the basis of every balance feature.

    `week k` holds what was posted after as_of[k-1] and on or before as_of[k]; week 0 also holds everything
    before the first date (the opening balance).
    """

    tenancy_ids: np.ndarray
    as_of: pd.DatetimeIndex
    net: np.ndarray  # pence, all transactions
    charged: np.ndarray  # pence, charges and fees
    received: np.ndarray  # pence (positive), payments and benefit credits
    receipts: np.ndarray  # count of payments and benefit credits
    last_receipt_day: np.ndarray  # days since epoch of the latest receipt up to each as_of (NaN if none)

    @property
    def balance(self) -> np.ndarray:
        return np.cumsum(self.net, axis=1)


def _week_index(dates: pd.Series, as_of: pd.DatetimeIndex) -> np.ndarray:
    return np.searchsorted(as_of.values, dates.values.astype("datetime64[ns]"), side="left")


def weekly_grid(transactions: pd.DataFrame, tenancy_ids: np.ndarray, as_of: pd.DatetimeIndex) -> WeeklyGrid:
    """Bucket transactions (tenancy_id, posted_date, type, amount_pence) into the weekly grid."""
    n_t, n_w = len(tenancy_ids), len(as_of)
    order = pd.Index(tenancy_ids)
    tx = transactions[transactions["posted_date"] <= as_of[-1]] if n_w else transactions.iloc[:0]
    row = order.get_indexer(tx["tenancy_id"])
    keep = row >= 0
    tx, row = tx[keep], row[keep]
    week = _week_index(tx["posted_date"], as_of)
    amount = tx["amount_pence"].to_numpy(dtype=np.int64)
    kind = tx["type"].to_numpy()
    is_charge = np.isin(kind, ("charge", "fee"))
    is_receipt = np.isin(kind, RECEIPT_TYPES)

    def accumulate(values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        out = np.zeros((n_t, n_w), dtype=np.float64)
        sel = slice(None) if mask is None else mask
        np.add.at(out, (row[sel], week[sel]), values[sel] if mask is not None else values)
        return out

    receipt_day = np.full((n_t, n_w), np.nan)
    if is_receipt.any():
        days = tx["posted_date"].to_numpy(dtype="datetime64[D]").astype(np.int64).astype(np.float64)
        np.fmax.at(receipt_day, (row[is_receipt], week[is_receipt]), days[is_receipt])
        receipt_day = pd.DataFrame(receipt_day.T).ffill().to_numpy().T  # carry the latest receipt forward
    return WeeklyGrid(
        tenancy_ids=np.asarray(tenancy_ids),
        as_of=as_of,
        net=accumulate(amount.astype(np.float64)),
        charged=accumulate(amount.astype(np.float64), is_charge),
        received=accumulate(-amount.astype(np.float64), is_receipt),
        receipts=accumulate(np.ones(len(amount)), is_receipt),
        last_receipt_day=receipt_day,
    )


def _trailing(values: np.ndarray, weeks: int) -> np.ndarray:
    """Sum over the trailing `weeks` weeks ending at each column (inclusive)."""
    c = np.cumsum(values, axis=1)
    shifted = np.zeros_like(c)
    shifted[:, weeks:] = c[:, :-weeks] if weeks < c.shape[1] else 0
    return c - shifted


def _lag(values: np.ndarray, weeks: int) -> np.ndarray:
    out = np.zeros_like(values)
    if weeks < values.shape[1]:
        out[:, weeks:] = values[:, :-weeks]
    return out


SETTLE_WEEKS = 5


def settled(balance: np.ndarray, weeks: int = SETTLE_WEEKS) -> np.ndarray:
    """Lowest balance over the trailing `weeks` weekly snapshots: what is still owed after the latest payments.

    It removes the saw-tooth of the payment cycle (rent charged, then paid days later), which would otherwise look
    like arrears appearing and vanishing every month.
    """
    return pd.DataFrame(balance.T).rolling(weeks, min_periods=1).min().to_numpy().T


def weekly_rent_pence(tenancies: pd.DataFrame) -> pd.Series:
    """Rent per week for each tenancy, from its rent amount and frequency."""
    periods = tenancies["rent_frequency"].map(PERIODS_PER_YEAR)
    return tenancies["rent_amount_pence"].astype(float) * periods / 52.0


def build_snapshots(
    tenancies: pd.DataFrame, transactions: pd.DataFrame, as_of: pd.DatetimeIndex
) -> pd.DataFrame:
    """Per-tenancy snapshots for each as_of date at which the tenancy is live.

    tenancies: the tenancy register (tenancy_id, start_date, end_date, rent_amount_pence, rent_frequency, patch).
    transactions: ledger rows (tenancy_id, posted_date, type, amount_pence) for the same tenancies.
    Returns one row per live (tenancy, as_of) with SNAPSHOT_KEYS, `patch` and FEATURE_COLUMNS; money in pounds.
    """
    columns = [*SNAPSHOT_KEYS, "patch", *FEATURE_COLUMNS]
    if tenancies.empty or len(as_of) == 0:
        return pd.DataFrame(columns=columns)
    tenancies = tenancies.sort_values("tenancy_id")
    ids = tenancies["tenancy_id"].to_numpy()
    grid = weekly_grid(transactions, ids, as_of)
    balance = grid.balance
    settled_balance = settled(balance)
    rent = weekly_rent_pence(tenancies).to_numpy()[:, None]
    arrears_weeks = np.clip(balance, 0, None) / rent
    settled_arrears_weeks = np.clip(settled_balance, 0, None) / rent
    as_of_day = as_of.values.astype("datetime64[D]").astype(np.int64)[None, :].astype(float)

    clear = balance <= 0
    week_numbers = np.broadcast_to(np.arange(len(as_of), dtype=float), balance.shape)
    last_clear = pd.DataFrame(np.where(clear, week_numbers, np.nan).T).ffill().to_numpy().T
    charged_13 = _trailing(grid.charged, 13)
    peak = pd.DataFrame(arrears_weeks.T).rolling(26, min_periods=1).max().to_numpy().T

    start_day = tenancies["start_date"].to_numpy(dtype="datetime64[D]").astype(np.int64)[:, None].astype(float)
    features = {
        "balance": balance / 100.0,
        "arrears_weeks": arrears_weeks,
        "settled_balance": settled_balance / 100.0,
        "settled_arrears_weeks": settled_arrears_weeks,
        "settled_change_4w": (settled_balance - _lag(settled_balance, 4)) / 100.0,
        "days_since_last_payment": as_of_day - grid.last_receipt_day,
        "balance_change_4w": (balance - _lag(balance, 4)) / 100.0,
        "balance_change_13w": (balance - _lag(balance, 13)) / 100.0,
        "paid_to_charged_13w": np.divide(_trailing(grid.received, 13), charged_13,
                                         out=np.full(balance.shape, np.nan), where=charged_13 > 0),
        "payments_13w": _trailing(grid.receipts, 13),
        "peak_arrears_weeks_26w": peak,
        "weeks_since_clear": week_numbers - last_clear,
        "tenancy_age_days": as_of_day - start_day,
        "weekly_rent": np.broadcast_to(rent / 100.0, balance.shape),
    }
    end = tenancies["end_date"].to_numpy(dtype="datetime64[D]")
    live = (tenancies["start_date"].to_numpy(dtype="datetime64[D]")[:, None] <= as_of.values.astype("datetime64[D]")) & (
        np.isnat(end)[:, None] | (end[:, None] >= as_of.values.astype("datetime64[D]"))
    )
    t_idx, w_idx = np.nonzero(live)
    out = pd.DataFrame({
        "tenancy_id": ids[t_idx],
        "event_timestamp": as_of[w_idx].tz_localize("UTC") if as_of.tz is None else as_of[w_idx],
        "patch": tenancies["patch"].to_numpy()[t_idx],
    })
    for name in FEATURE_COLUMNS:
        out[name] = np.asarray(features[name], dtype=np.float64)[t_idx, w_idx]
    return out[columns].reset_index(drop=True)


def weekly_balances(tenancies: pd.DataFrame, transactions: pd.DataFrame, as_of: pd.DatetimeIndex) -> pd.DataFrame:
    """Balance (pence) of every tenancy at every as_of date, live or not: a tenancy × as_of frame. Used for labels."""
    tenancies = tenancies.sort_values("tenancy_id")
    grid = weekly_grid(transactions, tenancies["tenancy_id"].to_numpy(), as_of)
    return pd.DataFrame(grid.balance, index=pd.Index(grid.tenancy_ids, name="tenancy_id"), columns=as_of)
