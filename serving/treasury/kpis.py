"""Collection KPIs that UK housing finance teams report, by calendar month and patch, from the ledger.

Definitions (`docs/treasury.md` has each with a worked example, checked by tests/unit/test_kpis.py); money in pounds;
a month's figures are as at its last day (or the ledger's last posting date, for a month still running):

- `rent_due`: rent charged in the month (`charge` postings);
- `collected`: money received in the month (payments and benefit credits, less receipts put back by a returned or
  reversed adjustment: `training.labels.daily_receipts`);
- `collection_rate` = collected / rent_due (rent collected as a percentage of rent due, arrears brought forward
  excluded: above 100% when arrears are being paid down);
- `current_arrears`: the positive balances of the tenancies current at the month's end (credits are not netted
  off); `annual_rent_roll`: their rent for a year (rent × periods a year); `current_arrears_pct_of_roll` = the two's
  ratio;
- `former_arrears`: the positive balances of tenancies that had ended by the month's end (not yet written off);
- `written_off`: arrears written off in the month (`write_off` postings, as a positive amount);
- `days_rent_outstanding` = current_arrears / (annual_rent_roll / 365): the days of rent the current arrears are
  worth, a days-sales-outstanding for rent.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.feeds.contract import periods_per_year
from features.ledger import open_ledger
from serving.settings import ServingSettings
from training.labels import daily_receipts

KPI_COLUMNS = ["month", "scope", "rent_due", "collected", "collection_rate", "current_tenancies", "current_arrears",
               "annual_rent_roll", "current_arrears_pct_of_roll", "former_arrears", "written_off",
               "days_rent_outstanding"]


def _month_ends(transactions: pd.DataFrame) -> pd.DatetimeIndex:
    """The last day of every month the ledger spans; the running month ends at the ledger's last posting."""
    posted = pd.to_datetime(transactions["posted_date"])
    ends = pd.date_range(posted.min(), posted.max(), freq="ME")
    last = posted.max().normalize()
    return ends.append(pd.DatetimeIndex([last])) if not len(ends) or ends[-1] < last else ends


def _monthly(frame: pd.DataFrame, column: str, ends: pd.DatetimeIndex) -> pd.DataFrame:
    """(tenancy_id × month end) sums of `column` within each month."""
    month = pd.to_datetime(frame["day"]).dt.to_period("M").dt.to_timestamp("M")
    return frame.assign(month=month).pivot_table(index="tenancy_id", columns="month", values=column, aggfunc="sum",
                                                 fill_value=0).reindex(columns=ends.to_period("M").to_timestamp("M"),
                                                                       fill_value=0)


def collection_kpis(register: pd.DataFrame, transactions: pd.DataFrame) -> pd.DataFrame:
    """Every month's KPIs, for the portfolio and each patch (one row a month and scope; see the module docstring)."""
    ends = _month_ends(transactions)
    months = ends.to_period("M").to_timestamp("M")
    tx = transactions.assign(day=pd.to_datetime(transactions["posted_date"]))
    ids = register["tenancy_id"].to_numpy()

    def per_tenancy(frame: pd.DataFrame, column: str) -> np.ndarray:
        return _monthly(frame, column, ends).reindex(index=ids, fill_value=0).to_numpy(dtype=float) / 100.0

    due = per_tenancy(tx[tx["type"] == "charge"], "amount_pence")
    collected = per_tenancy(daily_receipts(transactions), "amount_pence")
    written = -per_tenancy(tx[tx["type"] == "write_off"], "amount_pence")
    balance = np.cumsum(per_tenancy(tx, "amount_pence"), axis=1)
    start = register["start_date"].to_numpy(dtype="datetime64[D]")[:, None]
    end = register["end_date"].to_numpy(dtype="datetime64[D]")[:, None]
    at = ends.to_numpy(dtype="datetime64[D]")[None, :]
    current = (start <= at) & (np.isnat(end) | (end >= at))
    former = ~np.isnat(end) & (end < at)
    roll = (register["rent_amount_pence"].to_numpy() / 100.0 * periods_per_year(register["rent_frequency"]))[:, None]
    arrears = np.clip(balance, 0, None)
    parts = {"rent_due": due, "collected": collected, "current_tenancies": current.astype(float),
             "current_arrears": arrears * current, "annual_rent_roll": roll * current,
             "former_arrears": arrears * former, "written_off": written}
    patches = register["patch"].astype(str).to_numpy()
    rows = []
    for scope, members in [("portfolio", np.ones(len(ids), bool)), *((p, patches == p) for p in sorted(set(patches)))]:
        sums = {name: value[members].sum(axis=0) for name, value in parts.items()}
        rows.append(pd.DataFrame({"month": months.strftime("%Y-%m"), "scope": scope, **sums}))
    table = pd.concat(rows, ignore_index=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        table["collection_rate"] = table["collected"] / table["rent_due"].where(table["rent_due"] > 0)
        table["current_arrears_pct_of_roll"] = table["current_arrears"] / table["annual_rent_roll"].where(
            table["annual_rent_roll"] > 0)
        table["days_rent_outstanding"] = table["current_arrears"] / (table["annual_rent_roll"] / 365).where(
            table["annual_rent_roll"] > 0)
    return table.assign(current_tenancies=table["current_tenancies"].astype(int))[KPI_COLUMNS]


#: The last KPI table computed per ledger, with the delivery it was computed at: KPIs change only when a delivery
#: lands, and computing them reads every transaction (about a second per 300,000), so a page or an API call between
#: deliveries reuses it.
_COMPUTED: dict[str, tuple[int, pd.DataFrame, pd.Timestamp, set[str]]] = {}


def _all_kpis(settings: ServingSettings) -> tuple[pd.DataFrame, pd.Timestamp, set[str]]:
    """Every month's KPIs for the portfolio and every patch, the ledger's last posting date, and its patches."""
    with open_ledger(settings.ledger, read_only=True) as ledger:
        seq = ledger.last_delivery_seq()
        known = _COMPUTED.get(settings.ledger)
        if known is not None and known[0] == seq:
            return known[1:]
        register, transactions = ledger.read_table("tenancy_register"), ledger.read_table("transactions")
    if transactions.empty:
        raise LookupError("The ledger has no transactions yet: run `arrears ingest DIR` first")
    computed = (collection_kpis(register, transactions), pd.Timestamp(transactions["posted_date"].max()).date(),
                set(register["patch"].astype(str)))
    _COMPUTED[settings.ledger] = (seq, *computed)
    return computed


def kpis_now(settings: ServingSettings, patch: str | None = None, months: int | None = None) -> pd.DataFrame:
    """The KPIs from the ledger as it stands: every month (or the last `months`), the portfolio and every patch (or
    the portfolio and one patch: LookupError for a patch the register does not hold)."""
    table, as_of, patches = _all_kpis(settings)
    if patch is not None and patch not in patches:
        raise LookupError(f"No patch {patch!r} in the tenancy register: the patches are {', '.join(sorted(patches))}")
    if patch is not None:
        table = table[table["scope"].isin(["portfolio", patch])]
    if months is not None:
        table = table[table["month"].isin(sorted(table["month"].unique())[-int(months):])]
    table = table.reset_index(drop=True)
    table.attrs["as_of"] = as_of
    return table
