"""Feature logic: pure functions from a slice of the ledger to per-tenancy snapshots as of weekly dates.

Nothing here reads or writes files or databases, and no input is modified. Each function works on any subset of
tenancies (all of a tenancy's rows must be in the same subset), so the same code runs on one process or on each
partition of a Dask dataframe partitioned by tenancy.

"As of date D" means: everything posted on or before D, nothing after. A snapshot's `event_timestamp` is D at
midnight UTC; the training set joins on the same timestamps, so no row can see its own future.

A new feature: describe it in `features.catalogue` (name, group, words), compute it in one of the `_…_features`
functions below, and `docs/features.md`; the Feast views pick it up from the catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.catalogue import ANCHORS, RECENCY_ANCHORS, SNAPSHOT_FEATURES
from features.feeds.contract import (
    BREATHING_SPACE_STARTS,
    OPENING_BALANCE_REFERENCE,
    RECEIPT_TYPES,
    REVERSAL_REFERENCE,
    marked,
    periods_per_year,
    weekly_rent,
)
from features.timeline import (
    DatedRows,
    as_of_day_numbers,
    day_numbers,
    lag,
    latest_day,
    live_at,
    safe_ratio,
    trailing,
    utc,
    week_of,
    weekly_as_of_dates,
)

__all__ = ["ANCHOR_COLUMNS", "FEATURE_COLUMNS", "SNAPSHOT_KEYS", "STORED_FEATURES", "build_snapshots", "recency",
           "settled", "weekly_as_of_dates", "weekly_balances", "weekly_rent_pence"]

FEATURE_COLUMNS: tuple[str, ...] = tuple(f.name for f in SNAPSHOT_FEATURES)
#: Day numbers (days since 1970-01-01) from which the recency features are computed at request time.
ANCHOR_COLUMNS: tuple[str, ...] = tuple(a.name for a in ANCHORS)
SNAPSHOT_KEYS: tuple[str, ...] = ("tenancy_id", "event_timestamp")
#: Features stored in the snapshot views; the recency features are computed from anchors on demand.
STORED_FEATURES: tuple[str, ...] = tuple(name for name in FEATURE_COLUMNS if name not in RECENCY_ANCHORS)

#: A rent period's payment window opens this many days before its charge (at most half the period): a standing
#: order on the 24th for rent due on the 1st pays that rent, early, not the month before's; weekly rent paid on
#: the Friday before a Monday pays that Monday's rent.
EARLY_DAYS = 10
#: Lateness is measured up to this many days; a charge not half-covered by then counts as this late.
LATENESS_CAP_DAYS = 35
#: Weeks over which the settled balance takes its lowest value.
SETTLE_WEEKS = 5


# -- the weekly grid of money movements ---------------------------------------------------------------------------
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
    received: np.ndarray  # pence (positive), payments and benefit credits, less receipts put back (reversals)
    receipts: np.ndarray  # count of payments and benefit credits, less reversals
    last_receipt_day: np.ndarray  # days since epoch of the latest receipt up to each as_of (NaN if none)
    opening: np.ndarray  # pence, opening-balance adjustments (the history carried in, not a change in arrears)

    @property
    def balance(self) -> np.ndarray:
        return np.cumsum(self.net, axis=1)

    @property
    def balance_moved(self) -> np.ndarray:
        """The balance without what was carried in: what the tenant's own account did within the ledger."""
        return np.cumsum(self.net - self.opening, axis=1)


def _week_index(dates: pd.Series, as_of: pd.DatetimeIndex) -> np.ndarray:
    return week_of(dates.values.astype("datetime64[ns]"), as_of.values)


def _in_flow_window(dates: pd.Series, as_of: pd.DatetimeIndex) -> np.ndarray:
    """Week 0 holds the whole history before as_of[0] for the balance, but only its own week for the flows
    (charged, received, counts): a "last 4 weeks" at as_of[0] must not count everything since the ledger began."""
    return (dates > as_of[0] - pd.Timedelta(days=7)).to_numpy()


def weekly_grid(transactions: pd.DataFrame, tenancy_ids: np.ndarray, as_of: pd.DatetimeIndex) -> WeeklyGrid:
    """Bucket transactions (tenancy_id, posted_date, type, amount_pence) into the weekly grid."""
    shape = (len(tenancy_ids), len(as_of))
    tx = transactions[transactions["posted_date"] <= as_of[-1]] if len(as_of) else transactions.iloc[:0]
    row = pd.Index(tenancy_ids).get_indexer(tx["tenancy_id"])
    tx, row = tx[row >= 0], row[row >= 0]
    week = _week_index(tx["posted_date"], as_of)
    amount = tx["amount_pence"].to_numpy(dtype=np.int64).astype(np.float64)
    kind = tx["type"].to_numpy()
    flow = _in_flow_window(tx["posted_date"], as_of) | (week > 0)
    is_charge = np.isin(kind, ("charge", "fee")) & flow
    is_receipt = np.isin(kind, RECEIPT_TYPES)
    is_reversal = marked(tx, REVERSAL_REFERENCE) & (amount > 0)

    def accumulate(values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        out = np.zeros(shape, dtype=np.float64)
        sel = slice(None) if mask is None else mask
        np.add.at(out, (row[sel], week[sel]), values[sel])
        return out

    receipt_days = day_numbers(tx["posted_date"].to_numpy())
    return WeeklyGrid(
        tenancy_ids=np.asarray(tenancy_ids), as_of=as_of, net=accumulate(amount),
        charged=accumulate(amount, is_charge), received=accumulate(-amount, (is_receipt | is_reversal) & flow),
        receipts=accumulate(np.where(is_reversal, -1.0, 1.0), (is_receipt | is_reversal) & flow),
        last_receipt_day=latest_day(shape, row[is_receipt], week[is_receipt], receipt_days[is_receipt]),
        opening=accumulate(amount, marked(tx, OPENING_BALANCE_REFERENCE)),
    )


def settled(balance: np.ndarray, weeks: int = SETTLE_WEEKS) -> np.ndarray:
    """Lowest balance over the trailing `weeks` weekly snapshots: what is still owed after the latest payments.

    It removes the saw-tooth of the payment cycle (rent charged, then paid days later), which would otherwise look
    like arrears appearing and vanishing every month.
    """
    return pd.DataFrame(balance.T).rolling(weeks, min_periods=1).min().to_numpy().T


def weekly_rent_pence(tenancies: pd.DataFrame) -> pd.Series:
    """Rent per week for each tenancy, from its rent amount and frequency."""
    return weekly_rent(tenancies["rent_amount_pence"].astype(float), tenancies["rent_frequency"])


def rent_as_of(tenancies: pd.DataFrame, transactions: pd.DataFrame, order: pd.Index,
               as_of: pd.DatetimeIndex) -> np.ndarray:
    """Weekly rent (pence) of each tenancy at each as_of date: its latest rent charge up to that date.

    The register holds today's rent; using it for past snapshots would show them a rent rise before it happened.
    Before a tenancy's first rent charge the register's rent stands in.
    """
    charges = transactions[(transactions["type"] == "charge") & (transactions["posted_date"] <= as_of[-1])]
    frame = pd.DataFrame({"row": order.get_indexer(charges["tenancy_id"]),
                          "week": _week_index(charges["posted_date"], as_of),
                          "day": charges["posted_date"].to_numpy(), "amount": charges["amount_pence"].to_numpy()})
    frame = frame[frame["row"] >= 0].sort_values(["row", "week", "day"], kind="stable")
    latest = frame.drop_duplicates(["row", "week"], keep="last")
    grid = np.full((len(order), len(as_of)), np.nan)
    grid[latest["row"].to_numpy(), latest["week"].to_numpy()] = latest["amount"].to_numpy(dtype=float)
    grid = pd.DataFrame(grid.T).ffill().to_numpy().T
    register = tenancies.set_index("tenancy_id").loc[order]
    grid = np.where(np.isnan(grid), register["rent_amount_pence"].to_numpy(dtype=float)[:, None], grid)
    return weekly_rent(grid, register["rent_frequency"].to_numpy()[:, None])


# -- rent periods: how much of each charge was paid, and how late -------------------------------------------------
def _next_charge_day(c_row: np.ndarray, c_day: np.ndarray, frequency: np.ndarray) -> np.ndarray:
    """Each charge's next charge day for the same tenancy (charges sorted by row, then day); after a tenancy's last
    charge, one period of its frequency later."""
    nominal = c_day + np.round(365.25 / np.nan_to_num(periods_per_year(frequency), nan=52.0))
    following = np.append(c_day[1:], np.nan)
    same = np.append(c_row[1:] == c_row[:-1], False)
    return np.where(same, following, nominal)


def _carried_in(c_row: np.ndarray, surplus: np.ndarray) -> np.ndarray:
    """Credit carried into each period from earlier ones: a period paid beyond its rent pays ahead the next ones
    (a monthly benefit against weekly rent, a payment made early). Within each tenancy, carry after period k is
    max(0, carry after k-1 + surplus k): the running sum less its lowest point so far."""
    running = pd.Series(surplus).groupby(c_row).cumsum().to_numpy()
    after = running - pd.Series(np.minimum(running, 0.0)).groupby(c_row).cummin().to_numpy()
    before = np.append(0.0, after[:-1])
    return np.where(np.append(True, c_row[1:] != c_row[:-1]), 0.0, before)


def charge_coverage(transactions: pd.DataFrame, order: pd.Index, frequency: np.ndarray) -> pd.DataFrame:
    """For each rent charge: what paid it and how many days until half of it was paid.

    A rent period's window runs from `EARLY_DAYS` (at most half a period) before its charge to the next window
    (a tenancy's first window, from its first receipt);
    what it receives, net of receipts put back (returned direct debits), plus credit carried in from periods paid
    beyond their rent, pays it. So an early payer is on time and a monthly benefit credit pays the weekly rents it
    is for. Returns row (tenancy position in `order`), charge_day, amount, credited (pence paid towards this
    period), window_closes (the day its outcome is known), lateness (days after the charge, capped; 0 when paid
    ahead) and lateness_known (the day the lateness is known): every quantity is used only from the day it is
    known, so snapshots stay point in time. Lateness counts money as it arrived (a later reversal shows in the
    period's credit, not in how late it was). `frequency`: each tenancy's rent frequency, in `order`.
    """
    row = order.get_indexer(transactions["tenancy_id"])
    tx, row = transactions[row >= 0], row[row >= 0]
    day = day_numbers(tx["posted_date"].to_numpy())
    amount = tx["amount_pence"].to_numpy(dtype=np.float64)
    receipt = np.isin(tx["type"].to_numpy(), RECEIPT_TYPES)
    counted = receipt | (marked(tx, REVERSAL_REFERENCE) & (amount > 0))
    received = DatedRows.of(row[counted], day[counted], -amount[counted])  # net of reversals: what paid it
    gross = DatedRows.of(row[receipt], day[receipt], -amount[receipt])  # money as it arrived: how late
    charges = pd.DataFrame({"row": row, "day": day, "amount": amount})[tx["type"].to_numpy() == "charge"]
    charges = charges.sort_values(["row", "day"], kind="stable")
    c_row, c_day, c_amount = (charges[c].to_numpy() for c in ("row", "day", "amount"))
    c_row = c_row.astype(np.int64)
    next_day = _next_charge_day(c_row, c_day, np.asarray(frequency, dtype=object)[c_row])
    lead = np.minimum(EARLY_DAYS, np.floor((next_day - c_day) / 2))
    same_next = np.append(c_row[1:] == c_row[:-1], False)
    closes = np.where(same_next, np.append(c_day[1:] - lead[1:], np.nan), next_day - lead)  # the next window opens
    first = np.append(True, ~same_next[:-1]) if len(c_row) else same_next
    opens = np.where(first, 0.0, c_day - lead)  # a tenancy's first period: whatever it received before counts
    start_total = received.total_before(c_row, opens)
    got = received.total_before(c_row, closes) - start_total
    carry = _carried_in(c_row, got - c_amount)
    credited = np.clip(np.minimum(c_amount, carry + got), 0.0, None)
    need = c_amount / 2.0 - carry
    cover_day = gross.day_total_reaches(c_row, gross.total_before(c_row, opens) + np.maximum(need, 0.0))
    lateness = np.where(need <= 0, 0.0, np.clip(cover_day - c_day, 0.0, LATENESS_CAP_DAYS))
    lateness = np.where(np.isnan(lateness), LATENESS_CAP_DAYS, lateness)  # never half-covered: capped
    return pd.DataFrame({
        "row": c_row, "charge_day": c_day, "amount": c_amount, "credited": credited,
        "window_closes": closes - 1, "lateness": lateness, "lateness_known": c_day + lateness,
    })


def _bucket(shape: tuple[int, int], row: np.ndarray, known_day: np.ndarray, as_of_days: np.ndarray,
            values: np.ndarray) -> np.ndarray:
    """Sum `values` into the week in which each becomes known (dropping those known after the last as_of, or more
    than a week before the first, which no trailing window at as_of[0] reaches)."""
    out = np.zeros(shape)
    week = week_of(known_day, as_of_days)
    ok = (week < shape[1]) & (known_day > as_of_days[0] - 7)
    np.add.at(out, (row[ok], week[ok]), values[ok])
    return out


def _rent_period_features(transactions: pd.DataFrame, order: pd.Index, as_of: pd.DatetimeIndex,
                          shape: tuple[int, int], frequency: np.ndarray) -> dict[str, np.ndarray]:
    """Missed and part-paid rent periods and payment lateness over the last 26 weeks."""
    cover = charge_coverage(transactions, order, frequency)
    as_of_days = as_of_day_numbers(as_of)
    rent_due, got = cover["amount"].to_numpy(), cover["credited"].to_numpy()
    c_row, closes = cover["row"].to_numpy(), cover["window_closes"].to_numpy()
    late, known = cover["lateness"].to_numpy(), cover["lateness_known"].to_numpy()

    def over_26_weeks(known_day: np.ndarray, values: np.ndarray) -> np.ndarray:
        return trailing(_bucket(shape, c_row, known_day, as_of_days, values), 26)

    late_n = over_26_weeks(known, np.ones(len(late)))
    late_mean = safe_ratio(over_26_weeks(known, late), late_n)
    late_var = np.clip(safe_ratio(over_26_weeks(known, late**2), late_n) - late_mean**2, 0, None)
    return {
        "missed_periods_26w": over_26_weeks(closes, (got <= 0).astype(float)),
        "partial_periods_26w": over_26_weeks(closes, ((got > 0) & (got < rent_due)).astype(float)),
        "lateness_mean_26w": late_mean,
        "lateness_sd_26w": np.sqrt(late_var),
    }


# -- feature groups -------------------------------------------------------------------------------------------------
def _balance_features(grid: WeeklyGrid, rent: np.ndarray) -> dict[str, np.ndarray]:
    balance, moved = grid.balance, grid.balance_moved  # changes: the opening balance carried in is no change
    settled_balance, settled_moved = settled(balance), settled(moved)
    arrears_weeks = np.clip(balance, 0, None) / rent
    week_numbers = np.broadcast_to(np.arange(balance.shape[1], dtype=float), balance.shape)
    last_clear = np.fmax.accumulate(np.where(balance <= 0, week_numbers, np.nan), axis=1)
    return {
        "balance": balance / 100.0,
        "arrears_weeks": arrears_weeks,
        "settled_balance": settled_balance / 100.0,
        "settled_arrears_weeks": np.clip(settled_balance, 0, None) / rent,
        "settled_change_4w": (settled_moved - lag(settled_moved, 4)) / 100.0,
        "balance_change_4w": (moved - lag(moved, 4)) / 100.0,
        "balance_change_13w": (moved - lag(moved, 13)) / 100.0,
        "balance_change_26w": (moved - lag(moved, 26)) / 100.0,
        "peak_arrears_weeks_26w": pd.DataFrame(arrears_weeks.T).rolling(26, min_periods=1).max().to_numpy().T,
        "weeks_since_clear": week_numbers - last_clear,
    }


def _received_by_method(transactions: pd.DataFrame, order: pd.Index, as_of: pd.DatetimeIndex,
                        shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """Money received each week in cash, by direct debit, and from benefit (a benefit credit, or a payment made
    by the benefit body)."""
    receipts = transactions[transactions["type"].isin(RECEIPT_TYPES)]
    method = receipts["method"] if "method" in receipts else pd.Series(None, index=receipts.index, dtype=object)
    receipts = receipts[_in_flow_window(receipts["posted_date"], as_of)]
    method = method.loc[receipts.index]
    row, week = order.get_indexer(receipts["tenancy_id"]), _week_index(receipts["posted_date"], as_of)
    amount = -receipts["amount_pence"].to_numpy(dtype=np.float64)
    out = {}
    for name, mask in (("cash", method.eq("cash").to_numpy()),
                       ("direct_debit", method.eq("direct_debit").to_numpy()),
                       ("benefit", (receipts["type"].eq("benefit") | method.eq("benefit_direct")).to_numpy())):
        sel = mask & (row >= 0)
        out[name] = np.zeros(shape)
        np.add.at(out[name], (row[sel], week[sel]), amount[sel])
    return out


def _payment_features(grid: WeeklyGrid, by_method: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    def trailing_ratio(num: np.ndarray, den: np.ndarray, weeks: int) -> np.ndarray:
        return safe_ratio(trailing(num, weeks), trailing(den, weeks))

    features = {f"payments_{w}w": trailing(grid.receipts, w) for w in (4, 13, 26)}
    features |= {f"paid_to_charged_{w}w": trailing_ratio(grid.received, grid.charged, w) for w in (4, 13, 26)}
    return features | {
        "cash_share_26w": trailing_ratio(by_method["cash"], grid.received, 26),
        "direct_debit_share_26w": trailing_ratio(by_method["direct_debit"], grid.received, 26),
        "benefit_share_26w": trailing_ratio(by_method["benefit"], grid.received, 26),
        "benefit_to_rent_13w": trailing_ratio(by_method["benefit"], grid.charged, 13),
    }


#: The event types the circumstance features count.
COUNTED_EVENTS: tuple[str, ...] = ("dispute_opened", "dispute_resolved", *BREATHING_SPACE_STARTS,
                                   "breathing_space_ended", "arrangement_agreed", "arrangement_broken",
                                   "arrangement_completed", "legal_stage")


def _event_counts(events: pd.DataFrame | None, order: pd.Index, as_of: pd.DatetimeIndex) -> dict[str, np.ndarray]:
    """Cumulative count of each counted event type up to each as_of date, and the latest contact day."""
    shape = (len(order), len(as_of))
    counts = {name: np.zeros(shape) for name in COUNTED_EVENTS}
    if events is None or events.empty or not len(as_of):
        return {**counts, "last_contact_day": np.full(shape, np.nan)}
    ev = events[events["event_date"] <= as_of[-1]]
    row = order.get_indexer(ev["tenancy_id"])
    ev, row = ev[row >= 0], row[row >= 0]
    week = _week_index(ev["event_date"], as_of)
    kind = ev["type"].to_numpy()
    for name in COUNTED_EVENTS:
        mask = kind == name
        np.add.at(counts[name], (row[mask], week[mask]), 1.0)
        counts[name] = np.cumsum(counts[name], axis=1)
    contact = kind == "contact_made"
    days = day_numbers(ev["event_date"].to_numpy())
    return {**counts, "last_contact_day": latest_day(shape, row[contact], week[contact], days[contact])}


def _circumstance_features(events: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {
        "dispute_open": (events["dispute_opened"] > events["dispute_resolved"]).astype(float),
        "breathing_space_active": (sum(events[name] for name in BREATHING_SPACE_STARTS)
                                   > events["breathing_space_ended"]).astype(float),
        "arrangement_active": (events["arrangement_agreed"]
                               > events["arrangement_broken"] + events["arrangement_completed"]).astype(float),
        "arrangements_kept": events["arrangement_completed"],
        "arrangements_broken": events["arrangement_broken"],
        "legal_stage": events["legal_stage"],
    }


def _rent_changes(transactions: pd.DataFrame, order: pd.Index) -> tuple[np.ndarray, np.ndarray]:
    """(row, day) of every rent charge whose amount differs from the tenancy's previous rent charge."""
    charges = transactions[transactions["type"] == "charge"]
    frame = pd.DataFrame({"row": order.get_indexer(charges["tenancy_id"]),
                          "day": day_numbers(charges["posted_date"].to_numpy()),
                          "amount": charges["amount_pence"].to_numpy()})
    frame = frame[frame["row"] >= 0].sort_values(["row", "day"], kind="stable")
    previous = frame.groupby("row")["amount"].shift()
    changed = frame[previous.notna() & (frame["amount"] != previous)]
    return changed["row"].to_numpy(), changed["day"].to_numpy()


#: What the features read of each delivered version of a tenancy (`build_snapshots(versions=...)`).
VERSION_COLUMNS: tuple[str, ...] = ("tenancy_id", "delivery_seq", "valid_from", "benefit_type")


def in_force(tenancies: pd.DataFrame, versions: pd.DataFrame | None, column: str, order: pd.Index,
             as_of: pd.DatetimeIndex) -> np.ndarray:
    """A register column as in force at each as_of (tenancy × as_of, object values): the latest-delivered version
    whose `valid_from` is on or before the date (no `valid_from`: in force from the start). Without versions, or
    before any version is in force, the register's (latest) value."""
    latest = tenancies.set_index("tenancy_id")[column].reindex(order).to_numpy(dtype=object) if column in tenancies \
        else np.full(len(order), None, dtype=object)
    out = np.broadcast_to(latest[:, None], (len(order), len(as_of))).copy()
    if versions is None or versions.empty or column not in versions or "delivery_seq" not in versions:
        return out
    v = versions[order.get_indexer(versions["tenancy_id"]) >= 0]
    row = order.get_indexer(v["tenancy_id"])
    valid = pd.to_datetime(v["valid_from"]) if "valid_from" in v else pd.Series(pd.NaT, index=v.index)
    week = np.where(valid.isna(), 0, week_of(valid.to_numpy(dtype="datetime64[ns]"), as_of.values))
    seq = v["delivery_seq"].to_numpy(dtype=np.int64)
    winner = np.full(out.shape, -1, dtype=np.int64)
    inside = week < len(as_of)
    np.maximum.at(winner, (row[inside], week[inside]), seq[inside])
    winner = np.maximum.accumulate(winner, axis=1)
    value = pd.Series(v[column].to_numpy(dtype=object), index=pd.MultiIndex.from_arrays([row, seq]))
    value = value[~value.index.duplicated(keep="last")]
    has = winner >= 0
    r, c = np.nonzero(has)
    out[r, c] = value.reindex(pd.MultiIndex.from_arrays([r, winner[r, c]])).to_numpy(dtype=object)
    return out


def _tenancy_features(tenancies: pd.DataFrame, rent: np.ndarray, benefit: np.ndarray) -> dict[str, np.ndarray]:
    def per_tenancy(values) -> np.ndarray:
        return np.broadcast_to(np.asarray(values, dtype=float)[:, None], rent.shape)

    return {
        "weekly_rent": rent / 100.0,
        "rent_periods_per_year": per_tenancy(periods_per_year(tenancies["rent_frequency"])),
        "on_housing_benefit": (benefit == "housing_benefit").astype(float),
        "on_universal_credit": (benefit == "universal_credit").astype(float),
    }


def _anchors(tenancies: pd.DataFrame, transactions: pd.DataFrame, order: pd.Index, as_of: pd.DatetimeIndex,
             grid: WeeklyGrid, events: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The day numbers the recency features are computed from (`recency`), one per catalogue `Anchor`."""
    change_row, change_day = _rent_changes(transactions, order)
    change_week = _week_index(pd.Series(pd.to_datetime(change_day, unit="D")), as_of)
    start_day = day_numbers(tenancies["start_date"].to_numpy())
    return {
        "last_payment_day": grid.last_receipt_day,
        "last_contact_day": events["last_contact_day"],
        "last_rent_change_day": latest_day(grid.net.shape, change_row, change_week, change_day),
        "start_day": np.broadcast_to(start_day[:, None], grid.net.shape),
    }


def recency(frame: pd.DataFrame, as_of: pd.Series) -> pd.DataFrame:
    """Days-since features from the day-number anchors a snapshot stores, as of each row's date.

    The same function computes them in the snapshot build (as of the snapshot date) and, through the Feast
    on-demand view, at request time (as of the day of the request), so a list served on Thursday says
    "no payment for 11 days", not the 7 days that were true at Sunday's snapshot.
    """
    today = day_numbers(as_of.to_numpy() if hasattr(as_of, "to_numpy") else as_of)
    return pd.DataFrame({name: today - frame[anchor].to_numpy(dtype=np.float64)
                         for name, anchor in RECENCY_ANCHORS.items()}, index=frame.index)


# -- snapshots -------------------------------------------------------------------------------------------------------
def _with_look_back(as_of: pd.DatetimeIndex, transactions: pd.DataFrame) -> pd.DatetimeIndex:
    """Look-back windows (and weeks since clear) need the history before as_of[0]: the grid is extended back to
    the first posting (its first column lies before it: nothing owed yet)."""
    if transactions.empty:
        return as_of
    start = as_of[0].tz_localize(None) if as_of.tz is not None else as_of[0]
    days_before = (start - transactions["posted_date"].min()).days
    if days_before < 0:
        return as_of
    return pd.date_range(end=as_of[0], periods=days_before // 7 + 2, freq="7D").append(as_of[1:])


def snapshot_features(tenancies: pd.DataFrame, transactions: pd.DataFrame, events: pd.DataFrame | None,
                      as_of: pd.DatetimeIndex, versions: pd.DataFrame | None = None) -> dict[str, np.ndarray]:
    """Every stored feature and anchor as a tenancy × as_of array (tenancies sorted by tenancy_id)."""
    order = pd.Index(tenancies["tenancy_id"].to_numpy())
    shape = (len(order), len(as_of))
    grid = weekly_grid(transactions, order.to_numpy(), as_of)
    in_window = transactions[transactions["posted_date"] <= as_of[-1]]
    rent = rent_as_of(tenancies, transactions, order, as_of)
    event_counts = _event_counts(events, order, as_of)
    return {
        **_balance_features(grid, rent),
        **_payment_features(grid, _received_by_method(in_window, order, as_of, shape)),
        **_rent_period_features(in_window, order, as_of, shape, tenancies["rent_frequency"].to_numpy(dtype=object)),
        **_circumstance_features(event_counts),
        **_tenancy_features(tenancies, rent, in_force(tenancies, versions, "benefit_type", order, as_of)),
        **_anchors(tenancies, in_window, order, as_of, grid, event_counts),
    }


def build_snapshots(
    tenancies: pd.DataFrame, transactions: pd.DataFrame, as_of: pd.DatetimeIndex,
    events: pd.DataFrame | None = None, versions: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per-tenancy snapshots for each as_of date at which the tenancy is live.

    tenancies: the tenancy register (tenancy_id, start_date, end_date, rent_amount_pence, rent_frequency, patch,
    optionally benefit_type).
    transactions: ledger rows (tenancy_id, posted_date, type, amount_pence, optionally method).
    events: optional events feed rows (tenancy_id, event_date, type); without it the circumstance features are 0
    and the days since contact unknown.
    versions: optional delivered versions of the register (VERSION_COLUMNS): the benefit flags as in force at
    each date (`in_force`); without them, the register's.
    Returns one row per live (tenancy, as_of) with SNAPSHOT_KEYS, `patch`, FEATURE_COLUMNS and the day-number
    anchors of the recency features (ANCHOR_COLUMNS); money in pounds.
    """
    columns = [*SNAPSHOT_KEYS, "patch", *FEATURE_COLUMNS, *ANCHOR_COLUMNS]
    if tenancies.empty or len(as_of) == 0:
        return pd.DataFrame(columns=columns)
    if len(as_of) > 1 and (np.diff(as_of.values) != np.timedelta64(7, "D")).any():
        raise ValueError("as_of must be consecutive weekly dates (the trailing windows count weeks)")
    grid_as_of = _with_look_back(as_of, transactions)
    tenancies = tenancies.sort_values("tenancy_id")
    features = snapshot_features(tenancies, transactions, events, grid_as_of, versions)
    live = live_at(tenancies, grid_as_of)
    live[:, : len(grid_as_of) - len(as_of)] = False  # the look-back weeks were only for the windows
    t_idx, w_idx = np.nonzero(live)
    out = pd.DataFrame({
        "tenancy_id": tenancies["tenancy_id"].to_numpy()[t_idx],
        "event_timestamp": utc(grid_as_of[w_idx]),
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
