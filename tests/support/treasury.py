"""Treasury's figures recomputed in plain pandas, one obvious step at a time, to check `serving.treasury.kpis` and
`monitoring.cash` against: nothing here is imported from the code under test."""

from __future__ import annotations

import pandas as pd

REVERSAL = "return|revers|bounce|unpaid|recalled|chargeback"


def kept_receipts(transactions: pd.DataFrame) -> pd.DataFrame:
    """Payments and benefit credits (`money`: pounds received, positive; `day`), less each one that a later
    returned/reversed adjustment of the same tenancy and amount put back within 14 days (its latest such receipt).
    `transactions`: tenancy_id, transaction_id, posted_date, type, amount (pounds, signed), reference."""
    tx = transactions.assign(day=pd.to_datetime(transactions["posted_date"]))
    receipts = tx[tx["type"].isin(["payment", "benefit"])].assign(money=lambda f: -f["amount"])
    backs = tx[(tx["type"] == "adjustment") & (tx["amount"] > 0)
               & tx["reference"].astype("string").fillna("").str.contains(REVERSAL, case=False)]
    put_back: set[str] = set()
    for back in backs.sort_values("day").itertuples():
        same = receipts[(receipts["tenancy_id"] == back.tenancy_id)
                        & (receipts["money"].round(2) == round(back.amount, 2)) & (receipts["day"] <= back.day)
                        & (receipts["day"] >= back.day - pd.Timedelta(days=14))
                        & ~receipts["transaction_id"].isin(put_back)]
        if len(same):
            put_back.add(same.sort_values("day")["transaction_id"].iloc[-1])
    return receipts[~receipts["transaction_id"].isin(put_back)]


def plain_kpis(register: pd.DataFrame, transactions: pd.DataFrame) -> pd.DataFrame:
    """The KPIs of docs/treasury.md month by month for the portfolio, with a loop and boolean masks."""
    tx = transactions.assign(day=pd.to_datetime(transactions["posted_date"]))
    kept = kept_receipts(transactions)
    last = tx["day"].max()
    rows = []
    for month in pd.period_range(tx["day"].min(), last, freq="M"):
        first_day, end = month.start_time, min(month.end_time.normalize(), last)
        in_month = (tx["day"] >= first_day) & (tx["day"] <= end)
        balance = tx[tx["day"] <= end].groupby("tenancy_id")["amount"].sum()
        rows_of = register.set_index("tenancy_id")
        started = rows_of["start_date"] <= end
        ended = rows_of["end_date"].notna() & (rows_of["end_date"] < end)
        current, former = rows_of.index[started & ~ended], rows_of.index[ended]
        owed = balance.clip(lower=0)
        roll = sum(rows_of.loc[t, "rent"] * {"weekly": 52, "fortnightly": 26, "four_weekly": 13, "monthly": 12}[
            rows_of.loc[t, "rent_frequency"]] for t in current)
        arrears = owed.reindex(current, fill_value=0).sum()
        rows.append({"month": str(month), "rent_due": tx.loc[in_month & (tx["type"] == "charge"), "amount"].sum(),
                     "collected": kept.loc[(kept["day"] >= first_day) & (kept["day"] <= end), "money"].sum(),
                     "current_tenancies": len(current), "current_arrears": arrears, "annual_rent_roll": roll,
                     "former_arrears": owed.reindex(former, fill_value=0).sum(),
                     "written_off": -tx.loc[in_month & (tx["type"] == "write_off"), "amount"].sum(),
                     "days_rent_outstanding": arrears / (roll / 365)})
    return pd.DataFrame(rows)
