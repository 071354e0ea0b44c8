"""Labels: what we want the models to predict, computed from the ledger after each as_of date.

Arrears risk (`arrears_growth_labels`): among tenancies live at an as_of date, the label is 1 when, within the
next `horizon_weeks`, the *settled* balance rises by at least `growth_periods` rent periods above its as_of value,
or settled arrears reach `threshold_weeks` weeks of rent having been below that at as_of. Only as_of dates with
the whole horizon observed are labelled (no right-censoring in a binary label).

The settled balance is the lowest weekly balance over the trailing five weeks (`features.transforms`). A raw
balance saw-tooths with the payment cycle: monthly rent charged on the 1st and paid on the 5th shows a whole
month "owed" at a snapshot in between, for a tenant who is never late. Five weeks spans every rent cycle, so
growth in the settled balance is growth in real arrears, not a snapshot falling between charge and payment.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from features.feeds.contract import RECEIPT_TYPES, REVERSAL_REFERENCE, marked, periods_per_year
from features.timeline import DatedRows, live_at, utc
from features.transforms import rent_as_of, settled, weekly_balances


@dataclass(frozen=True)
class RiskLabelSpec:
    horizon_weeks: int = 8
    growth_periods: float = 1.0
    threshold_weeks: float = 4.0


def arrears_growth_labels(
    tenancies: pd.DataFrame,
    transactions: pd.DataFrame,
    as_of: pd.DatetimeIndex,
    spec: RiskLabelSpec = RiskLabelSpec(),
) -> pd.DataFrame:
    """(tenancy_id, event_timestamp, label) for each live tenancy at each fully-observed as_of date."""
    h = spec.horizon_weeks
    if len(as_of) <= h:
        return pd.DataFrame(columns=["tenancy_id", "event_timestamp", "label"])
    tenancies = tenancies.sort_values("tenancy_id")
    balance = settled(weekly_balances(tenancies, transactions, as_of).to_numpy())
    # The rent in force at each as_of (its latest charge), not the register's latest: a rent rise after as_of
    # must not move the threshold a label was judged against.
    order = pd.Index(tenancies["tenancy_id"])
    rent_week = rent_as_of(tenancies, transactions, order, as_of)[:, : len(as_of) - h]
    rent_period = rent_week * 52.0 / periods_per_year(tenancies["rent_frequency"].to_numpy(dtype=object))[:, None]

    labelled = len(as_of) - h
    future_max = sliding_window_view(balance[:, 1:], h, axis=1).max(axis=2)[:, :labelled]
    now = balance[:, :labelled]
    grows = future_max - now >= spec.growth_periods * rent_period
    crosses = (now / rent_week < spec.threshold_weeks) & (future_max / rent_week >= spec.threshold_weeks)
    label = grows | crosses

    t_idx, w_idx = np.nonzero(live_at(tenancies, as_of[:labelled]))
    stamps = utc(as_of[:labelled])
    return pd.DataFrame({
        "tenancy_id": tenancies["tenancy_id"].to_numpy()[t_idx],
        "event_timestamp": stamps[w_idx],
        "label": label[t_idx, w_idx].astype(np.int8),
    })


@dataclass(frozen=True)
class PaymentLabelSpec:
    horizon_days: int = 56
    #: A payment counts when the money received on one day is at least this share of a rent period.
    min_period_share: float = 0.5


def without_reversed(transactions: pd.DataFrame, within_days: int = 14) -> pd.DataFrame:
    """Transactions less the receipts that were put back and their reversals: each reversal (an adjustment whose
    reference says returned/reversed/bounced…) cancels its tenancy's latest receipt of the same amount within
    `within_days` before it. A label looks ahead, so it may know a payment bounced; a feature may not."""
    reversal = marked(transactions, REVERSAL_REFERENCE) & (transactions["amount_pence"].to_numpy() > 0)
    if not reversal.any():
        return transactions
    receipts = transactions[transactions["type"].isin(RECEIPT_TYPES)].assign(_amount=lambda f: -f["amount_pence"])
    backs = transactions[reversal].assign(_amount=lambda f: f["amount_pence"], _back=lambda f: f["posted_date"])
    pairs = receipts.reset_index().merge(backs[["tenancy_id", "_amount", "_back"]].reset_index(names="_rev"),
                                         on=["tenancy_id", "_amount"])
    pairs = pairs[(pairs["posted_date"] <= pairs["_back"])
                  & (pairs["posted_date"] >= pairs["_back"] - pd.Timedelta(days=within_days))]
    pairs = pairs.sort_values("posted_date").drop_duplicates("_rev", keep="last").drop_duplicates("index")
    return transactions.drop(index=[*pairs["index"], *pairs["_rev"]])


def daily_receipts(transactions: pd.DataFrame) -> pd.DataFrame:
    """(tenancy_id, day, amount_pence): money received by each tenancy each day (payments and benefit credits
    added up, as a positive amount), less receipts that were put back."""
    transactions = without_reversed(transactions)
    receipts = transactions[transactions["type"].isin(RECEIPT_TYPES)]
    daily = receipts.groupby(["tenancy_id", "posted_date"], sort=True)["amount_pence"].sum().mul(-1).reset_index()
    return daily.rename(columns={"posted_date": "day"})


def qualifying_payment_days(tenancies: pd.DataFrame, transactions: pd.DataFrame,
                            spec: PaymentLabelSpec = PaymentLabelSpec()) -> pd.DataFrame:
    """(tenancy_id, day, amount_pence): days on which a tenancy received at least `min_period_share` of its rent.

    Payments and benefit credits on the same day are added up (a tenant topping up a benefit credit pays once).
    The rent period is the register's rent amount.
    """
    return qualifying_days_of(tenancies, daily_receipts(transactions), spec)


def qualifying_days_of(tenancies: pd.DataFrame, daily: pd.DataFrame,
                       spec: PaymentLabelSpec = PaymentLabelSpec()) -> pd.DataFrame:
    """`qualifying_payment_days` from money received a day already added up (`daily_receipts`)."""
    rent = tenancies.set_index("tenancy_id")["rent_amount_pence"].astype(float)
    threshold = daily["tenancy_id"].map(rent) * spec.min_period_share
    return daily[daily["amount_pence"] >= threshold].reset_index(drop=True)


def payment_date_labels(tenancies: pd.DataFrame, transactions: pd.DataFrame, as_of: pd.DatetimeIndex,
                        spec: PaymentLabelSpec = PaymentLabelSpec(),
                        data_end: pd.Timestamp | None = None) -> pd.DataFrame:
    """Days from each as_of to the next qualifying payment, right-censored.

    Returns tenancy_id, event_timestamp, duration (days, 1..horizon), event (1 = a payment was seen on day
    `duration`; 0 = censored at `duration`: no payment within the horizon, or the tenancy ended first). Only as_of
    dates whose whole horizon lies within the data (`data_end`, default the last posting) are labelled, so censoring
    means "did not pay", never "we have not looked yet".
    """
    data_end = pd.Timestamp(data_end if data_end is not None else transactions["posted_date"].max())
    as_of = as_of[as_of + pd.Timedelta(days=spec.horizon_days) <= data_end]
    columns = ["tenancy_id", "event_timestamp", "duration", "event"]
    if len(as_of) == 0 or tenancies.empty:
        return pd.DataFrame(columns=columns)
    tenancies = tenancies.sort_values("tenancy_id")
    order = pd.Index(tenancies["tenancy_id"])
    paid = qualifying_payment_days(tenancies, transactions, spec)
    row = order.get_indexer(paid["tenancy_id"])
    paid_days = paid["day"].to_numpy(dtype="datetime64[D]").astype(np.int64)
    payments = DatedRows.of(row[row >= 0], paid_days[row >= 0])

    t_idx, w_idx = np.nonzero(live_at(tenancies, as_of))
    d = as_of.values.astype("datetime64[D]").astype(np.int64)[w_idx]
    gap = payments.next_after(t_idx, d)
    end_day = tenancies["end_date"].to_numpy(dtype="datetime64[D]")[t_idx]
    until_end = np.where(np.isnat(end_day), np.inf, (end_day.astype("datetime64[D]").astype(np.int64) - d))
    limit = np.minimum(spec.horizon_days, until_end)
    event = gap <= limit
    duration = np.where(event, gap, np.maximum(limit, 1))
    return pd.DataFrame({
        "tenancy_id": tenancies["tenancy_id"].to_numpy()[t_idx],
        "event_timestamp": utc(as_of)[w_idx],
        "duration": duration.astype(np.int64),
        "event": event.astype(np.int8),
    })


# -- bring-your-own outcomes ----------------------------------------------------------------------------------------
def read_outcomes(path: Path) -> pd.DataFrame:
    """Bring-your-own labels: a CSV or Parquet of tenancy_id, as_of_date, outcome (0/1)."""
    frame = pd.read_parquet(path) if str(path).endswith(".parquet") else pd.read_csv(path, dtype={"tenancy_id": str})
    missing = {"tenancy_id", "as_of_date", "outcome"} - set(frame.columns)
    if missing:
        raise ValueError(f"{path} lacks column(s) {', '.join(sorted(missing))}: expected tenancy_id, as_of_date, "
                         "outcome")
    if not frame["outcome"].isin([0, 1]).all():
        raise ValueError(f"{path}: outcome must be 0 or 1")
    return frame


def outcome_labels(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Bring-your-own outcomes as risk labels (tenancy_id, event_timestamp, label)."""
    stamps = pd.to_datetime(outcomes["as_of_date"], dayfirst=False).dt.tz_localize("UTC")
    return pd.DataFrame({"tenancy_id": outcomes["tenancy_id"].astype(str), "event_timestamp": stamps,
                         "label": outcomes["outcome"].astype(int)})
