"""An experiment's arms as the uplift model's training rows, and the training run itself (`arrears uplift train`).

The uplift model (`training.uplift`) learns only from randomised rows. An experiment gives them: each assigned
tenancy, its arm (`treatment`: proactive contact allowed; `holdout`: none), the day of its first assignment and its
holdout share, kept by the runs room (`serving.runs.experiments.assignments`). Here:

* **features** are the FeatureService's (`arrears_risk_v1`), point in time as of the assignment day
  (`training.dataset.point_in_time`), so the model reads what the service reads when it scores a run;
* **the outcome** is the pounds the tenant paid (tenant payments only: a benefit credit no contact can change) in
  the `days` after the assignment day; a row whose window has not closed by the ledger's last posting is left out
  and counted (no outcome is read early);
* **treated** is the arm (intention to treat: a treatment-arm case beyond the week's capacity was not contacted,
  so the model learns what being eligible for a contact achieves), with the known propensity 1 - holdout share.

`train_uplift_from_experiment` fits on 75% of the tenancies, judges the other 25% with `training.uplift.
holdout_metrics` (the gates' inputs) and registers the version as `challenger`; `arrears promote --model
contact_uplift` then decides, through the gates, as for every model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.feeds.contract import TRANSACTION_SIGN
from features.ledger import open_ledger
from training import registry
from training.dataset import point_in_time
from training.settings import TrainingSettings
from training.uplift import UPLIFT_FEATURES, ContactUplift, holdout_metrics, register_uplift

FEATURE_SERVICE = "arrears_risk_v1"
#: Only a tenant's own payments count as collected.
PAID_TYPES = ("payment",)


@dataclass(frozen=True)
class UpliftRows:
    rows: pd.DataFrame  #: features, treated, collected, tenancy_id, event_timestamp
    left_out_open: int  #: rows whose outcome window had not closed
    data_end: pd.Timestamp


def _payments(settings: TrainingSettings) -> tuple[pd.DataFrame, pd.Timestamp]:
    sign = TRANSACTION_SIGN["payment"]
    with open_ledger(settings.ledger, read_only=True) as ledger:
        paid = ledger.query("SELECT tenancy_id, posted_date, amount_pence FROM transactions WHERE type IN "
                            f"({', '.join('?' * len(PAID_TYPES))})", list(PAID_TYPES))
        end = ledger.query("SELECT MAX(posted_date) AS d FROM transactions")["d"].iloc[0]
    paid["pounds"] = sign * paid["amount_pence"].astype(float) / 100.0
    paid["posted_date"] = pd.to_datetime(paid["posted_date"])
    return paid[["tenancy_id", "posted_date", "pounds"]], pd.Timestamp(end).normalize()


def uplift_rows(settings: TrainingSettings, units: pd.DataFrame, days: int = 28) -> UpliftRows:
    """Training rows from an experiment's first assignments (`units`: tenancy_id, arm, assigned_on,
    holdout_share): the features as of each assignment day, `treated` (the arm), `collected` (pounds paid in the
    `days` after it). Rows whose window is still open are left out and counted."""
    paid, data_end = _payments(settings)
    units = units.assign(assigned_on=pd.to_datetime(units["assigned_on"]))
    closed = units["assigned_on"] + pd.Timedelta(days=days) <= data_end
    units = units[closed].reset_index(drop=True)
    if units.empty:
        return UpliftRows(pd.DataFrame(), int((~closed).sum()), data_end)
    window = units[["tenancy_id", "assigned_on"]].merge(paid, on="tenancy_id", how="left")
    inside = (window["posted_date"] > window["assigned_on"]) & (
        window["posted_date"] <= window["assigned_on"] + pd.Timedelta(days=days))
    collected = window[inside].groupby(["tenancy_id", "assigned_on"])["pounds"].sum()
    units["collected"] = [collected.get((t, d), 0.0) for t, d in zip(units["tenancy_id"], units["assigned_on"],
                                                                       strict=True)]
    units["treated"] = (units["arm"] == "treatment").astype(int)
    labels = units.assign(event_timestamp=units["assigned_on"].dt.tz_localize("UTC"))
    data = point_in_time(settings, FEATURE_SERVICE, labels[["tenancy_id", "event_timestamp", "treated", "collected",
                                                            "holdout_share"]])
    missing = [f for f in UPLIFT_FEATURES if f not in data.frame]
    if missing:
        raise ValueError(f"The FeatureService {FEATURE_SERVICE} lacks {', '.join(missing)}, which the uplift model "
                         "reads: add them to the service (features/repo) or change training.uplift.UPLIFT_FEATURES")
    return UpliftRows(data.frame, int((~closed).sum()), data_end)


def train_uplift_from_experiment(settings: TrainingSettings, units: pd.DataFrame, experiment: str, days: int = 28,
                                 capacity: float = 0.15, seed: int = 0) -> tuple[registry.ModelRef, dict]:
    """Fit the uplift model on an experiment's arms, judge it on a quarter of the tenancies, register it as
    `challenger`. Raises ValueError when there are too few rows with a closed outcome window."""
    found = uplift_rows(settings, units, days)
    rows = found.rows
    if len(rows) < 40 or rows["treated"].nunique() < 2:
        raise ValueError(f"{experiment}: {len(rows)} assigned tenancies have a closed {days}-day outcome window "
                         f"({found.left_out_open} still open, the ledger ends {found.data_end.date()}); an uplift "
                         "model needs both arms and at least 40: wait for more of the experiment to mature")
    rng = np.random.default_rng(seed)
    tenancies = rows["tenancy_id"].unique()
    judged = set(rng.choice(tenancies, size=max(len(tenancies) // 4, 1), replace=False))
    held = rows["tenancy_id"].isin(judged).to_numpy()
    propensity = float(1 - rows["holdout_share"].astype(float).mean())
    model = ContactUplift(propensity=propensity).fit(rows.loc[~held, list(UPLIFT_FEATURES)],
                                                     rows.loc[~held, "collected"], rows.loc[~held, "treated"])
    metrics = holdout_metrics(model, rows[held], capacity) | {"training_rows": float((~held).sum()),
                                                             "open_windows_left_out": float(found.left_out_open)}
    ref = register_uplift(settings, model, metrics, params={"experiment": experiment, "outcome_days": days,
                                                            "propensity": propensity, "capacity": capacity},
                          tags={"trained_on": f"experiment {experiment}"})
    return ref, metrics
