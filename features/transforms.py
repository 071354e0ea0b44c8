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
from features.feeds.contract import EVENT_TYPES, PERIODS_PER_YEAR, RECEIPT_TYPES

FEATURE_COLUMNS: tuple[str, ...] = tuple(f.name for f in SNAPSHOT_FEATURES)
#: Day numbers (days since 1970-01-01) from which the recency features are computed at request time.
ANCHOR_COLUMNS: tuple[str, ...] = ("last_payment_day", "last_contact_day", "last_rent_change_day", "start_day")
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
    # Week 0 holds the whole history before as_of[0] for the balance, but only its own week for the flows
    # (charged, received, counts): a "last 4 weeks" at as_of[0] must not count everything since the ledger began.
    in_first_week = (tx["posted_date"] > as_of[0] - pd.Timedelta(days=7)).to_numpy() | (week > 0)
    is_charge = np.isin(kind, ("charge", "fee")) & in_first_week
    is_receipt = np.isin(kind, RECEIPT_TYPES)
    is_flow_receipt = is_receipt & in_first_week

    def accumulate(values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        out = np.zeros((n_t, n_w), dtype=np.float64)
        sel = slice(None) if mask is None else mask
        np.add.at(out, (row[sel], week[sel]), values[sel] if mask is not None else values)
        return out

    receipt_day = np.full((n_t, n_w), np.nan)
    if is_receipt.any():
        days = tx["posted_date"].to_numpy(dtype="datetime64[D]").astype(np.int64).astype(np.float64)
        np.fmax.at(receipt_day, (row[is_receipt], week[is_receipt]), days[is_receipt])
        receipt_day = np.fmax.accumulate(receipt_day, axis=1)  # carry the latest receipt forward
    return WeeklyGrid(
        tenancy_ids=np.asarray(tenancy_ids),
        as_of=as_of,
        net=accumulate(amount.astype(np.float64)),
        charged=accumulate(amount.astype(np.float64), is_charge),
        received=accumulate(-amount.astype(np.float64), is_flow_receipt),
        receipts=accumulate(np.ones(len(amount)), is_flow_receipt),
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


def rent_as_of(tenancies: pd.DataFrame, transactions: pd.DataFrame, order: pd.Index,
               as_of: pd.DatetimeIndex) -> np.ndarray:
    """Weekly rent (pence) of each tenancy at each as_of date: its latest rent charge up to that date.

    The register holds today's rent; using it for past snapshots would show them a rent rise before it happened.
    Before a tenancy's first rent charge the register's rent stands in.
    """
    n_t, n_w = len(order), len(as_of)
    charges = transactions[(transactions["type"] == "charge") & (transactions["posted_date"] <= as_of[-1])]
    row = order.get_indexer(charges["tenancy_id"])
    frame = pd.DataFrame({"row": row, "week": _week_index(charges["posted_date"], as_of),
                          "day": charges["posted_date"].to_numpy(), "amount": charges["amount_pence"].to_numpy()})
    frame = frame[frame["row"] >= 0].sort_values(["row", "week", "day"], kind="stable")
    latest = frame.drop_duplicates(["row", "week"], keep="last")
    grid = np.full((n_t, n_w), np.nan)
    grid[latest["row"].to_numpy(), latest["week"].to_numpy()] = latest["amount"].to_numpy(dtype=float)
    grid = pd.DataFrame(grid.T).ffill().to_numpy().T
    register = tenancies.set_index("tenancy_id").loc[order]
    grid = np.where(np.isnan(grid), register["rent_amount_pence"].to_numpy(dtype=float)[:, None], grid)
    return grid * register["rent_frequency"].map(PERIODS_PER_YEAR).to_numpy(dtype=float)[:, None] / 52.0


def _days(values) -> np.ndarray:
    """Dates as float days since 1970-01-01 (NaN for missing), the unit every day arithmetic here uses."""
    days = pd.to_datetime(pd.Series(values)).to_numpy(dtype="datetime64[D]")
    out = days.astype(np.int64).astype(np.float64)
    out[np.isnat(days)] = np.nan
    return out


def _cumulative(values: np.ndarray) -> np.ndarray:
    return np.cumsum(values, axis=1)


def _latest_day(n_t: int, n_w: int, row: np.ndarray, week: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Latest `day` seen up to each week (carried forward), NaN before the first."""
    out = np.full((n_t, n_w), np.nan)
    if len(day):
        np.fmax.at(out, (row, week), day)
        out = np.fmax.accumulate(out, axis=1)
    return out


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.full(np.broadcast(num, den).shape, np.nan), where=den > 0)


#: A rent charge's payment window: receipts within this many days of the charge count towards it.
PAYMENT_WINDOW_DAYS = 14
#: Lateness is measured up to this many days; a charge not half-covered by then counts as this late.
LATENESS_CAP_DAYS = 35


def charge_coverage(transactions: pd.DataFrame, order: pd.Index) -> pd.DataFrame:
    """For each rent charge: what was received within its payment window and how many days until half was paid.

    Receipts on or after the charge date count (a payment made before the rent falls due reduces an earlier
    balance, not this period's). Returns row (tenancy position in `order`), charge_day, amount, received_window,
    window_closes (the day the window's outcome is known), lateness (days, capped) and lateness_known (the day the
    lateness is known): every quantity is only used from the day it is known, so snapshots stay point-in-time.
    """
    row = order.get_indexer(transactions["tenancy_id"])
    keep = row >= 0
    tx = transactions[keep]
    row = row[keep]
    day = _days(tx["posted_date"].to_numpy())
    kind = tx["type"].to_numpy()
    amount = tx["amount_pence"].to_numpy(dtype=np.float64)
    big = 1e6  # > any day number: key = row * big + day orders by tenancy, then date
    receipt = np.isin(kind, RECEIPT_TYPES)
    r_key = row[receipt] * big + day[receipt]
    r_order = np.argsort(r_key, kind="stable")
    r_key = r_key[r_order]
    r_cum = np.cumsum(-amount[receipt][r_order])  # received so far, over all tenancies in key order: monotone
    charge = kind == "charge"
    c_row, c_day, c_amount = row[charge], day[charge], amount[charge]
    c_key = c_row * big + c_day

    def cum_before(keys: np.ndarray, side: str) -> np.ndarray:
        idx = np.searchsorted(r_key, keys, side=side)
        return np.where(idx > 0, r_cum[np.maximum(idx - 1, 0)] if len(r_cum) else 0.0, 0.0)

    before = cum_before(c_key, "left")
    within = cum_before(c_key + PAYMENT_WINDOW_DAYS - 1, "right") - before
    target = before + c_amount / 2.0
    j = np.searchsorted(r_cum, target - 1e-9, side="left") if len(r_cum) else np.zeros(len(c_key), dtype=int)
    found = j < len(r_cum)
    j_safe = np.minimum(j, max(len(r_cum) - 1, 0))
    same = found & (np.floor(r_key[j_safe] / big) == c_row) if len(r_cum) else np.zeros(len(c_key), dtype=bool)
    cover_day = np.where(same, r_key[j_safe] - c_row * big if len(r_cum) else np.nan, np.nan)
    lateness = np.minimum(cover_day - c_day, LATENESS_CAP_DAYS)
    lateness = np.where(np.isnan(lateness), LATENESS_CAP_DAYS, lateness)  # never half-covered: capped
    return pd.DataFrame({
        "row": c_row, "charge_day": c_day, "amount": c_amount, "received_window": within,
        "window_closes": c_day + PAYMENT_WINDOW_DAYS - 1, "lateness": lateness,
        "lateness_known": c_day + lateness,
    })


def _rent_changes(transactions: pd.DataFrame, order: pd.Index) -> tuple[np.ndarray, np.ndarray]:
    """(row, day) of every rent charge whose amount differs from the tenancy's previous rent charge."""
    charges = transactions[transactions["type"] == "charge"]
    row = order.get_indexer(charges["tenancy_id"])
    frame = pd.DataFrame({"row": row, "day": _days(charges["posted_date"].to_numpy()),
                          "amount": charges["amount_pence"].to_numpy()})
    frame = frame[frame["row"] >= 0].sort_values(["row", "day"], kind="stable")
    previous = frame.groupby("row")["amount"].shift()
    changed = frame[previous.notna() & (frame["amount"] != previous)]
    return changed["row"].to_numpy(), changed["day"].to_numpy()


def _event_counts(events: pd.DataFrame | None, order: pd.Index, as_of: pd.DatetimeIndex) -> dict[str, np.ndarray]:
    """Cumulative count of each event type up to each as_of date, and the latest contact day."""
    n_t, n_w = len(order), len(as_of)
    counts = {name: np.zeros((n_t, n_w)) for name in EVENT_TYPES}
    contact = np.full((n_t, n_w), np.nan)
    if events is None or events.empty or n_w == 0:
        return {**counts, "last_contact_day": contact}
    ev = events[events["event_date"] <= as_of[-1]]
    row = order.get_indexer(ev["tenancy_id"])
    keep = row >= 0
    ev, row = ev[keep], row[keep]
    week = _week_index(ev["event_date"], as_of)
    kind = ev["type"].to_numpy()
    for name in EVENT_TYPES:
        mask = kind == name
        np.add.at(counts[name], (row[mask], week[mask]), 1.0)
        counts[name] = _cumulative(counts[name])
    is_contact = kind == "contact_made"
    contact = _latest_day(n_t, n_w, row[is_contact], week[is_contact], _days(ev["event_date"].to_numpy())[is_contact])
    return {**counts, "last_contact_day": contact}


def _bucket(n_t: int, n_w: int, row: np.ndarray, known_day: np.ndarray, as_of_days: np.ndarray,
            values: np.ndarray) -> np.ndarray:
    """Sum `values` into the week in which each becomes known (dropping those known after the last as_of, or more
    than a week before the first, which no trailing window at as_of[0] reaches)."""
    out = np.zeros((n_t, n_w))
    week = np.searchsorted(as_of_days, known_day, side="left")
    ok = (week < n_w) & (known_day > as_of_days[0] - 7)
    np.add.at(out, (row[ok], week[ok]), values[ok])
    return out


def recency(frame: pd.DataFrame, as_of: pd.Series) -> pd.DataFrame:
    """Days-since features from the day-number anchors a snapshot stores, as of each row's date.

    The same function computes them in the snapshot build (as of the snapshot date) and, through the Feast
    on-demand view, at request time (as of the day of the request), so a list served on Thursday says
    "no payment for 11 days", not the 7 days that were true at Sunday's snapshot.
    """
    today = _days(as_of.to_numpy() if hasattr(as_of, "to_numpy") else as_of)
    out = pd.DataFrame(index=frame.index)
    for name, anchor in RECENCY_ANCHORS.items():
        out[name] = today - frame[anchor].to_numpy(dtype=np.float64)
    return out


#: Days-since features and the day-number anchor each is computed from.
RECENCY_ANCHORS: dict[str, str] = {
    "days_since_last_payment": "last_payment_day",
    "days_since_contact": "last_contact_day",
    "days_since_rent_change": "last_rent_change_day",
    "tenancy_age_days": "start_day",
}
#: Features stored in the snapshot views; the recency features are computed from anchors on demand.
STORED_FEATURES: tuple[str, ...] = tuple(name for name in FEATURE_COLUMNS if name not in RECENCY_ANCHORS)


def build_snapshots(
    tenancies: pd.DataFrame, transactions: pd.DataFrame, as_of: pd.DatetimeIndex,
    events: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per-tenancy snapshots for each as_of date at which the tenancy is live.

    tenancies: the tenancy register (tenancy_id, start_date, end_date, rent_amount_pence, rent_frequency, patch,
    optionally benefit_type).
    transactions: ledger rows (tenancy_id, posted_date, type, amount_pence, optionally method).
    events: optional events feed rows (tenancy_id, event_date, type); without it the circumstance features are 0
    and the days since contact unknown.
    Returns one row per live (tenancy, as_of) with SNAPSHOT_KEYS, `patch`, FEATURE_COLUMNS and the day-number
    anchors of the recency features (ANCHOR_COLUMNS); money in pounds.
    """
    columns = [*SNAPSHOT_KEYS, "patch", *FEATURE_COLUMNS, *ANCHOR_COLUMNS]
    if tenancies.empty or len(as_of) == 0:
        return pd.DataFrame(columns=columns)
    if len(as_of) > 1 and (np.diff(as_of.values) != np.timedelta64(7, "D")).any():
        raise ValueError("as_of must be consecutive weekly dates (the trailing windows count weeks)")
    # Look-back windows (and weeks since clear) need the history before as_of[0]: extend the grid back to the first
    # posting, compute, and return only the dates asked for.
    requested = len(as_of)
    if not transactions.empty:
        start = as_of[0].tz_localize(None) if as_of.tz is not None else as_of[0]
        days_before = (start - transactions["posted_date"].min()).days
        back = days_before // 7 + 1  # the first column lies before the first posting: nothing owed yet
        if days_before >= 0:
            as_of = pd.date_range(end=as_of[0], periods=back + 1, freq="7D").append(as_of[1:])
    tenancies = tenancies.sort_values("tenancy_id")
    ids = tenancies["tenancy_id"].to_numpy()
    order = pd.Index(ids)
    n_t, n_w = len(ids), len(as_of)
    grid = weekly_grid(transactions, ids, as_of)
    balance = grid.balance
    settled_balance = settled(balance)
    rent = rent_as_of(tenancies, transactions, order, as_of)
    arrears_weeks = np.clip(balance, 0, None) / rent
    settled_arrears_weeks = np.clip(settled_balance, 0, None) / rent
    as_of_days = as_of.values.astype("datetime64[D]").astype(np.int64).astype(float)

    clear = balance <= 0
    week_numbers = np.broadcast_to(np.arange(n_w, dtype=float), balance.shape)
    last_clear = np.fmax.accumulate(np.where(clear, week_numbers, np.nan), axis=1)
    peak = pd.DataFrame(arrears_weeks.T).rolling(26, min_periods=1).max().to_numpy().T

    # Receipts by method: cash, direct debit and benefit (a benefit credit, or a payment made by the benefit body).
    in_window = transactions[transactions["posted_date"] <= as_of[-1]]
    receipts = in_window[in_window["type"].isin(RECEIPT_TYPES)]
    method = receipts["method"] if "method" in receipts else pd.Series(None, index=receipts.index, dtype=object)
    receipts = receipts[receipts["posted_date"] > as_of[0] - pd.Timedelta(days=7)]  # flows: see weekly_grid
    method = method.loc[receipts.index]
    r_row = order.get_indexer(receipts["tenancy_id"])
    r_week = _week_index(receipts["posted_date"], as_of)
    r_amount = -receipts["amount_pence"].to_numpy(dtype=np.float64)
    by_method = {}
    for name, mask in (("cash", method.eq("cash").to_numpy()),
                       ("direct_debit", method.eq("direct_debit").to_numpy()),
                       ("benefit", (receipts["type"].eq("benefit") | method.eq("benefit_direct")).to_numpy())):
        sel = mask & (r_row >= 0)
        out = np.zeros((n_t, n_w))
        np.add.at(out, (r_row[sel], r_week[sel]), r_amount[sel])
        by_method[name] = out

    cover = charge_coverage(in_window, order)
    rent_due = cover["amount"].to_numpy()
    got = cover["received_window"].to_numpy()
    c_row = cover["row"].to_numpy()
    closes = cover["window_closes"].to_numpy()
    missed = _bucket(n_t, n_w, c_row, closes, as_of_days, (got <= 0).astype(float))
    partial = _bucket(n_t, n_w, c_row, closes, as_of_days, ((got > 0) & (got < rent_due)).astype(float))
    late = cover["lateness"].to_numpy()
    known = cover["lateness_known"].to_numpy()
    late_n = _trailing(_bucket(n_t, n_w, c_row, known, as_of_days, np.ones(len(late))), 26)
    late_sum = _trailing(_bucket(n_t, n_w, c_row, known, as_of_days, late), 26)
    late_sq = _trailing(_bucket(n_t, n_w, c_row, known, as_of_days, late**2), 26)
    late_mean = _safe_ratio(late_sum, late_n)
    late_var = np.clip(_safe_ratio(late_sq, late_n) - late_mean**2, 0, None)

    change_row, change_day = _rent_changes(in_window, order)
    ev = _event_counts(events, order, as_of)
    benefit = tenancies["benefit_type"] if "benefit_type" in tenancies else pd.Series(None, index=tenancies.index)
    start_day = _days(tenancies["start_date"].to_numpy())[:, None]

    def trailing_ratio(num: np.ndarray, den: np.ndarray, weeks: int) -> np.ndarray:
        return _safe_ratio(_trailing(num, weeks), _trailing(den, weeks))

    def full(values) -> np.ndarray:
        return np.broadcast_to(np.asarray(values, dtype=float), balance.shape)

    features = {
        "balance": balance / 100.0,
        "arrears_weeks": arrears_weeks,
        "settled_balance": settled_balance / 100.0,
        "settled_arrears_weeks": settled_arrears_weeks,
        "settled_change_4w": (settled_balance - _lag(settled_balance, 4)) / 100.0,
        "balance_change_4w": (balance - _lag(balance, 4)) / 100.0,
        "balance_change_13w": (balance - _lag(balance, 13)) / 100.0,
        "balance_change_26w": (balance - _lag(balance, 26)) / 100.0,
        "peak_arrears_weeks_26w": peak,
        "weeks_since_clear": week_numbers - last_clear,
        "payments_4w": _trailing(grid.receipts, 4),
        "payments_13w": _trailing(grid.receipts, 13),
        "payments_26w": _trailing(grid.receipts, 26),
        "paid_to_charged_4w": trailing_ratio(grid.received, grid.charged, 4),
        "paid_to_charged_13w": trailing_ratio(grid.received, grid.charged, 13),
        "paid_to_charged_26w": trailing_ratio(grid.received, grid.charged, 26),
        "missed_periods_26w": _trailing(missed, 26),
        "partial_periods_26w": _trailing(partial, 26),
        "lateness_mean_26w": late_mean,
        "lateness_sd_26w": np.sqrt(late_var),
        "cash_share_26w": trailing_ratio(by_method["cash"], grid.received, 26),
        "direct_debit_share_26w": trailing_ratio(by_method["direct_debit"], grid.received, 26),
        "benefit_share_26w": trailing_ratio(by_method["benefit"], grid.received, 26),
        "benefit_to_rent_13w": trailing_ratio(by_method["benefit"], grid.charged, 13),
        "dispute_open": (ev["dispute_opened"] > ev["dispute_resolved"]).astype(float),
        "breathing_space_active": (ev["breathing_space_started"] > ev["breathing_space_ended"]).astype(float),
        "arrangement_active": (ev["arrangement_agreed"]
                               > ev["arrangement_broken"] + ev["arrangement_completed"]).astype(float),
        "arrangements_kept": ev["arrangement_completed"],
        "arrangements_broken": ev["arrangement_broken"],
        "legal_stage": ev["legal_stage"],
        "weekly_rent": rent / 100.0,
        "rent_periods_per_year": full(tenancies["rent_frequency"].map(PERIODS_PER_YEAR).to_numpy()[:, None]),
        "on_housing_benefit": full(benefit.eq("housing_benefit").to_numpy(dtype=float)[:, None]),
        "on_universal_credit": full(benefit.eq("universal_credit").to_numpy(dtype=float)[:, None]),
        # Anchors of the recency features (day numbers), see `recency`.
        "last_payment_day": grid.last_receipt_day,
        "last_contact_day": ev["last_contact_day"],
        "last_rent_change_day": _latest_day(n_t, n_w, change_row, _week_index(
            pd.Series(pd.to_datetime(change_day, unit="D")), as_of), change_day),
        "start_day": full(start_day),
    }
    as_of_d = as_of.values.astype("datetime64[D]")
    end = tenancies["end_date"].to_numpy(dtype="datetime64[D]")
    live = (tenancies["start_date"].to_numpy(dtype="datetime64[D]")[:, None] <= as_of_d) & (
        np.isnat(end)[:, None] | (end[:, None] >= as_of_d)
    )
    live[:, : len(as_of) - requested] = False  # the look-back weeks were only for the windows
    t_idx, w_idx = np.nonzero(live)
    stamps = as_of[w_idx]
    out = pd.DataFrame({
        "tenancy_id": ids[t_idx],
        "event_timestamp": stamps.tz_localize("UTC") if as_of.tz is None else stamps,
        "patch": tenancies["patch"].to_numpy()[t_idx],
    })
    for name in (*STORED_FEATURES, *ANCHOR_COLUMNS):
        out[name] = np.asarray(features[name], dtype=np.float64)[t_idx, w_idx]
    out = pd.concat([out, recency(out, out["event_timestamp"].dt.tz_localize(None))], axis=1)
    return out[columns].reset_index(drop=True)


def weekly_balances(tenancies: pd.DataFrame, transactions: pd.DataFrame, as_of: pd.DatetimeIndex) -> pd.DataFrame:
    """Balance (pence) of every tenancy at every as_of date, live or not: a tenancy × as_of frame. Used for labels."""
    tenancies = tenancies.sort_values("tenancy_id")
    grid = weekly_grid(transactions, tenancies["tenancy_id"].to_numpy(), as_of)
    return pd.DataFrame(grid.balance, index=pd.Index(grid.tenancy_ids, name="tenancy_id"), columns=as_of)
