"""Matured outcomes of a recorded worklist run: what really happened to each tenancy after the run's date.

A run scored every live tenancy as of its `as_of` date. Once the ledger holds the whole label horizon after that
date, the same labels the models were trained on can be computed for exactly that date:

- `matured_risk_labels`: did the arrears grow within the risk label's horizon (`training.labels.arrears_growth_labels`
  with the `RiskLabelSpec` of `training/params/arrears_risk.yaml`, as training builds it);
- `matured_payment_outcomes`: days to the next qualifying payment, censored at the payment horizon
  (`training.labels.payment_date_labels` with the `PaymentLabelSpec` of `training/params/payment_date.yaml`).

Both return None while the horizon has not passed (not matured), never a partial label. The ledger is read once
per call, or once for many runs with `read_outcome_ledger` passed as `ledger`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

import pandas as pd

from features.ledger import open_ledger
from features.settings import FeatureSettings
from features.store.offline import ledger_dates
from features.transforms import SETTLE_WEEKS
from training.config import load_params
from training.labels import PaymentLabelSpec, RiskLabelSpec, arrears_growth_labels, payment_date_labels


@dataclass(frozen=True)
class OutcomeLedger:
    """What outcomes are computed from: the tenancy register (latest version of each) and every transaction."""

    tenancies: pd.DataFrame
    transactions: pd.DataFrame

    @property
    def end(self) -> date:
        """The latest posting date: outcomes are known up to this day."""
        return pd.Timestamp(self.transactions["posted_date"].max()).date()

    def of(self, tenancy_ids: Iterable[str]) -> OutcomeLedger:
        """The rows of some tenancies only (labels are per tenancy, so this changes none of theirs)."""
        wanted = set(tenancy_ids)
        return OutcomeLedger(self.tenancies[self.tenancies["tenancy_id"].isin(wanted)],
                             self.transactions[self.transactions["tenancy_id"].isin(wanted)])


def read_outcome_ledger(settings: FeatureSettings) -> OutcomeLedger:
    """The register and the transactions, read once (pass the result to the functions below for many runs)."""
    with open_ledger(settings.ledger) as ledger:
        return OutcomeLedger(ledger.read_table("tenancy_register"), ledger.read_table("transactions"))


def ledger_end(settings: FeatureSettings) -> date:
    """The ledger's latest posting date."""
    return ledger_dates(settings)[1].date()


def risk_label_spec() -> RiskLabelSpec:
    """The arrears-risk label as training defines it (training/params/arrears_risk.yaml)."""
    return RiskLabelSpec(**load_params("arrears_risk")["label"])


def payment_label_spec() -> PaymentLabelSpec:
    """The payment-date label as training defines it (training/params/payment_date.yaml)."""
    return PaymentLabelSpec(**load_params("payment_date")["label"])


def risk_matured(as_of: date, end: date, spec: RiskLabelSpec) -> bool:
    """Whether the ledger, ending `end`, holds the whole risk horizon after `as_of`."""
    return pd.Timestamp(as_of) + pd.Timedelta(weeks=spec.horizon_weeks) <= pd.Timestamp(end)


def payment_matured(as_of: date, end: date, spec: PaymentLabelSpec) -> bool:
    """Whether the ledger, ending `end`, holds the whole payment horizon after `as_of`."""
    return pd.Timestamp(as_of) + pd.Timedelta(days=spec.horizon_days) <= pd.Timestamp(end)


def label_grid(as_of: date, spec: RiskLabelSpec) -> pd.DatetimeIndex:
    """The weekly grid the label of `as_of` is read from: as_of, +7 days, … +horizon weeks, preceded by the
    `SETTLE_WEEKS - 1` weeks the settled balance at as_of looks back over (as on training's grid, which starts at
    the ledger's first week), so the label is exactly training's for that date on any weekday."""
    start = pd.Timestamp(as_of).normalize()
    return pd.DatetimeIndex([start + pd.Timedelta(weeks=k) for k in range(1 - SETTLE_WEEKS, spec.horizon_weeks + 1)])


def matured_risk_labels(settings: FeatureSettings, as_of: date, tenancy_ids: Iterable[str],
                        ledger: OutcomeLedger | None = None) -> pd.DataFrame | None:
    """(tenancy_id, label) of the given tenancies live at `as_of`: 1 when their arrears grew within the horizon.
    None when the ledger does not yet hold the whole horizon after `as_of`."""
    spec = risk_label_spec()
    ledger = ledger if ledger is not None else read_outcome_ledger(settings)
    if not risk_matured(as_of, ledger.end, spec):
        return None
    part = ledger.of(tenancy_ids)
    if part.tenancies.empty:
        return pd.DataFrame({"tenancy_id": pd.Series(dtype=object), "label": pd.Series(dtype="int8")})
    labels = arrears_growth_labels(part.tenancies, part.transactions, label_grid(as_of, spec), spec)
    at = labels["event_timestamp"].dt.tz_localize(None) == pd.Timestamp(as_of)
    return labels.loc[at, ["tenancy_id", "label"]].reset_index(drop=True)


def matured_payment_outcomes(settings: FeatureSettings, as_of: date, tenancy_ids: Iterable[str],
                             ledger: OutcomeLedger | None = None) -> pd.DataFrame | None:
    """(tenancy_id, duration, event) of the given tenancies live at `as_of`: days to the next qualifying payment
    (event 1) or to the censoring (event 0: none within the horizon, or the tenancy ended first). None when the
    ledger does not yet hold the whole payment horizon after `as_of`."""
    spec = payment_label_spec()
    ledger = ledger if ledger is not None else read_outcome_ledger(settings)
    if not payment_matured(as_of, ledger.end, spec):
        return None
    part = ledger.of(tenancy_ids)
    outcomes = payment_date_labels(part.tenancies, part.transactions,
                                   pd.DatetimeIndex([pd.Timestamp(as_of).normalize()]), spec,
                                   data_end=pd.Timestamp(ledger.end))
    return outcomes[["tenancy_id", "duration", "event"]].reset_index(drop=True)
