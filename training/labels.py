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

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from features.transforms import settled, weekly_balances, weekly_rent_pence


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
    rent_week = weekly_rent_pence(tenancies).to_numpy()[:, None]
    rent_period = tenancies["rent_amount_pence"].to_numpy(dtype=float)[:, None]

    labelled = len(as_of) - h
    future_max = sliding_window_view(balance[:, 1:], h, axis=1).max(axis=2)[:, :labelled]
    now = balance[:, :labelled]
    grows = future_max - now >= spec.growth_periods * rent_period
    crosses = (now / rent_week < spec.threshold_weeks) & (future_max / rent_week >= spec.threshold_weeks)
    label = grows | crosses

    day = as_of[:labelled].values.astype("datetime64[D]")
    start = tenancies["start_date"].to_numpy(dtype="datetime64[D]")[:, None]
    end = tenancies["end_date"].to_numpy(dtype="datetime64[D]")[:, None]
    live = (start <= day[None, :]) & (np.isnat(end) | (end >= day[None, :]))
    t_idx, w_idx = np.nonzero(live)
    stamps = as_of[:labelled]
    stamps = stamps.tz_localize("UTC") if stamps.tz is None else stamps
    return pd.DataFrame({
        "tenancy_id": tenancies["tenancy_id"].to_numpy()[t_idx],
        "event_timestamp": stamps[w_idx],
        "label": label[t_idx, w_idx].astype(np.int8),
    })
