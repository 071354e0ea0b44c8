"""Summary figures for checking a (clean) simulated portfolio looks like a real rent ledger.

`summarise(portfolio)` returns a flat dict:

* ``live_tenancies``: tenancies without an end date at the window end;
* ``share_positive_balance``: share of live tenancies owing anything at the window end;
* ``share_4_weeks``: share of live tenancies owing at least four weeks of rent;
* ``median_lateness_days``: the median, over rent charges in the window that were cleared, of the days from
  the charge to the receipt that cleared it (first-in first-out: receipts clear the oldest debt first; 0 when
  paid on the day or in advance), ``share_charges_cleared_late`` and ``median_lateness_when_late_days`` for
  the charges cleared after their due date, and ``share_charges_uncleared`` for those still unpaid at the end;
* ``auc_balance_13w``, ``auc_days_since_receipt_13w``: how well the balance (in weeks of rent) and the days
  since the last receipt, 13 weeks before the window end, rank tenancies that end up owing 4+ weeks (area under
  the ROC curve among tenancies live throughout); ``auc_balance_13w_new`` the same among those owing under a
  week at the time, where most of what happens next is shocks;
* counts of transactions and events by type.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from features.feeds.contract import weekly_rent as contract_weekly_rent


def weekly_rent(tenancies: pd.DataFrame) -> pd.Series:
    """Rent per week for each tenancy (indexed by tenancy_id), by the contract's one weekly-rent rule."""
    rent = contract_weekly_rent(tenancies["rent_amount"].astype(float).to_numpy(),
                                tenancies["rent_frequency"].astype(str).to_numpy())
    return pd.Series(rent, index=tenancies["tenancy_id"].astype(str).to_numpy())


def balances(transactions: pd.DataFrame, as_of=None) -> pd.Series:
    """Balance per tenancy_id (positive = owes) from the transactions posted on or before ``as_of``."""
    tx = transactions
    if as_of is not None:
        tx = tx[tx["posted_date"] <= pd.Timestamp(as_of)]
    codes, uniques = pd.factorize(tx["tenancy_id"].astype(str), sort=False)
    sums = np.bincount(codes, weights=np.rint(tx["amount"].to_numpy() * 100), minlength=len(uniques)) / 100.0
    return pd.Series(np.round(sums, 2), index=np.asarray(uniques, dtype=object))


def auc(score: np.ndarray, label: np.ndarray) -> float:
    """Area under the ROC curve (ties count half); NaN without both classes."""
    score = np.asarray(score, dtype=float)
    label = np.asarray(label, dtype=bool)
    pos, neg = label.sum(), (~label).sum()
    if pos == 0 or neg == 0:
        return float("nan")
    ranks = pd.Series(score).rank(method="average").to_numpy()
    return float((ranks[label].sum() - pos * (pos + 1) / 2) / (pos * neg))


def fifo_lateness(transactions: pd.DataFrame) -> tuple[np.ndarray, int]:
    """Days from each rent charge to the receipt that cleared it (first in, first out), and how many charges
    were still uncleared at the end. Credits are every negative amount; debits every positive one."""
    tx = transactions
    codes, _ = pd.factorize(tx["tenancy_id"].astype(str), sort=False)
    day = tx["posted_date"].to_numpy().astype("datetime64[D]").astype(np.int64)
    pence = np.rint(tx["amount"].to_numpy() * 100).astype(np.int64)
    is_charge = (tx["type"].astype(str) == "charge").to_numpy()
    order = np.lexsort((pence < 0, day, codes))  # debits before credits on the same day
    codes, day, pence, is_charge = codes[order], day[order], pence[order], is_charge[order]
    debit = np.where(pence > 0, pence, 0)
    credit = np.where(pence < 0, -pence, 0)
    start = np.concatenate([[True], codes[1:] != codes[:-1]])
    group_id = np.cumsum(start) - 1
    first = np.flatnonzero(start)

    def group_cumsum(values: np.ndarray) -> np.ndarray:
        """Running totals of ``values`` restarting at each tenancy."""
        running = np.cumsum(values)
        before = np.concatenate([[0], running[first[1:] - 1]]) if len(first) else np.zeros(0, np.int64)
        return running - before[group_id]

    cum_debit = group_cumsum(debit)
    cum_credit = group_cumsum(credit)
    big = np.int64(10**12)
    credit_rows = np.flatnonzero(credit > 0)
    credit_key = codes[credit_rows].astype(np.int64) * big + cum_credit[credit_rows]
    charge_rows = np.flatnonzero(is_charge)
    target = codes[charge_rows].astype(np.int64) * big + cum_debit[charge_rows]
    clearing = np.searchsorted(credit_key, target, side="left")  # first credit whose running total covers it
    ok = clearing < len(credit_rows)
    clearing = np.minimum(clearing, max(len(credit_rows) - 1, 0))
    ok &= codes[credit_rows[clearing]] == codes[charge_rows] if len(credit_rows) else np.zeros(len(charge_rows), bool)
    late = np.maximum(day[credit_rows[clearing[ok]]] - day[charge_rows[ok]], 0)
    return late, int((~ok).sum())


def summarise(portfolio, horizon_days: int = 91) -> dict[str, float]:
    """The summary figures of a clean portfolio (see the module docstring); predictability is measured
    ``horizon_days`` before the window end."""
    ten = portfolio.tenancies
    tx = portfolio.transactions
    end = pd.Timestamp(portfolio.window_end)
    as_of = end - timedelta(days=horizon_days)
    ids = ten["tenancy_id"].astype(str)
    wk = weekly_rent(ten)
    live = ten["end_date"].isna().to_numpy()
    bal_end = balances(tx).reindex(ids).fillna(0.0).to_numpy()
    weeks_end = bal_end / wk.reindex(ids).to_numpy()
    out: dict[str, float] = {
        "tenancies": float(len(ten)),
        "live_tenancies": float(live.sum()),
        "share_positive_balance": float((bal_end[live] > 0).mean()),
        "share_4_weeks": float((weeks_end[live] >= 4).mean()),
        "share_8_weeks": float((weeks_end[live] >= 8).mean()),
        "mean_balance_live": float(bal_end[live].mean()),
    }
    late, uncleared = fifo_lateness(tx[tx["posted_date"] >= pd.Timestamp(portfolio.window_start)])
    n_charges = int((tx["type"].astype(str) == "charge").sum())
    out["median_lateness_days"] = float(np.median(late)) if len(late) else float("nan")
    out["mean_lateness_days"] = float(np.mean(late)) if len(late) else float("nan")
    out["share_charges_cleared_late"] = float((late > 0).mean()) if len(late) else float("nan")
    out["median_lateness_when_late_days"] = float(np.median(late[late > 0])) if (late > 0).any() else float("nan")
    out["share_charges_uncleared"] = uncleared / max(n_charges, 1)

    # Predictability: the state 13 weeks before the end vs owing 4+ weeks at the end.
    started = (ten["start_date"] <= as_of - timedelta(days=28)).to_numpy()
    cohort = live & started
    bal_then = balances(tx, as_of).reindex(ids).fillna(0.0).to_numpy()
    weeks_then = bal_then / wk.reindex(ids).to_numpy()
    receipts = tx[tx["type"].astype(str).isin(["payment", "benefit"]) & (tx["posted_date"] <= as_of)]
    last = receipts.groupby(receipts["tenancy_id"].astype(str))["posted_date"].max().reindex(ids)
    since = (as_of - last).dt.days.fillna(365).to_numpy()
    label = weeks_end >= 4
    out["auc_balance_13w"] = auc(weeks_then[cohort], label[cohort])
    out["auc_days_since_receipt_13w"] = auc(since[cohort], label[cohort])
    new = cohort & (weeks_then < 1)
    out["auc_balance_13w_new"] = auc(weeks_then[new], label[new])
    out["share_4_weeks_from_new"] = float(label[new].mean()) if new.any() else float("nan")
    for name, count in tx["type"].astype(str).value_counts().sort_index().items():
        out[f"transactions_{name}"] = float(count)
    for name, count in portfolio.events["type"].astype(str).value_counts().sort_index().items():
        out[f"events_{name}"] = float(count)
    return out
