"""Training on outcomes the service's own contacts did not cause: the treatment-aware weights of the retrain.

Once the service is used, officers contact the top of its list and some of those tenants pay because they were
contacted. A retrain that learns from those outcomes learns that high scores pay, and ranks the persuadable low and
the contacted as safe. The risk model is meant to say what happens *without* a contact (who needs one), so each
training row is weighted by how its outcome came about:

* a row whose label window (its date, when the run that listed it was worked, to `horizon_weeks` later) holds a
  contact by the service (a released letter, an officer's recorded contact) is **left out** (weight 0): its outcome
  is treated;
* a row of a tenancy an experiment **held out**, on a date the list *would* have contacted it (its place in the
  held-out queue was within capacity) and untouched in its window, stands for the contacted rows like it that were
  left out: weight 1 / holdout share (its known assignment probability);
* every other row (never listed within capacity, or listed but not contacted in the window) keeps weight 1: whether
  it was contacted depended only on what the model saw, so its untreated outcome is a fair sample given its
  features.

Without interventions every weight is 1 and the retrain is what it was. Pure: frames in, a weight per row out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Interventions:
    """What the service did, as the retrain needs it."""

    #: (tenancy_id, day): each contact the service made (releases, officers' recorded contacts).
    contacts: pd.DataFrame
    #: (tenancy_id, day, holdout_share): each day a held-out tenancy stood within capacity in its queue.
    shadow: pd.DataFrame

    @classmethod
    def none(cls) -> Interventions:
        return cls(pd.DataFrame(columns=["tenancy_id", "day"]),
                   pd.DataFrame(columns=["tenancy_id", "day", "holdout_share"]))


@dataclass(frozen=True)
class WeightSummary:
    rows: int
    left_out: int  #: treated rows (weight 0)
    reweighted: int  #: held-out rows standing for the contacted (weight 1 / share)

    def as_metrics(self) -> dict[str, float]:
        return {"treatment_rows_left_out": float(self.left_out), "treatment_rows_reweighted": float(self.reweighted)}


def _days(values: pd.Series) -> np.ndarray:
    """Calendar days (naive midnight) of dates or timestamps, UTC-aware or not."""
    return pd.to_datetime(values, utc=True).dt.tz_localize(None).dt.normalize().to_numpy()


def _hits(rows: pd.DataFrame, events: pd.DataFrame, horizon_days: int) -> tuple[np.ndarray, np.ndarray]:
    """For each row, whether an event of its tenancy falls in [date, date + horizon], and the largest
    `holdout_share` among them (NaN where none)."""
    hit = np.zeros(len(rows), dtype=bool)
    share = np.full(len(rows), np.nan)
    if events.empty or rows.empty:
        return hit, share
    left = pd.DataFrame({"row": np.arange(len(rows)), "tenancy_id": rows["tenancy_id"].to_numpy(),
                         "start": _days(rows["event_timestamp"])})
    right = events.assign(day=_days(events["day"]))
    joined = left.merge(right, on="tenancy_id")
    # The row's own day counts: a run is dated the day of its snapshot and officers work it that day.
    inside = (joined["day"] >= joined["start"]) & (joined["day"] <= joined["start"] + pd.Timedelta(days=horizon_days))
    joined = joined[inside]
    hit[joined["row"].to_numpy()] = True
    if "holdout_share" in joined:
        found = joined.groupby("row")["holdout_share"].max()
        share[found.index.to_numpy()] = found.to_numpy(dtype=float)
    return hit, share


def treatment_weights(rows: pd.DataFrame, interventions: Interventions, horizon_weeks: int
                      ) -> tuple[np.ndarray, WeightSummary]:
    """A weight per training row (tenancy_id, event_timestamp): 0 treated, 1 / share for a held-out row standing for
    the contacted, else 1 (the module's docstring)."""
    days = 7 * horizon_weeks
    treated, _ = _hits(rows, interventions.contacts, days)
    listed, share = _hits(rows, interventions.shadow, days)
    weights = np.ones(len(rows))
    stands_in = listed & ~treated & (share > 0) & (share < 1)
    weights[stands_in] = 1.0 / share[stands_in]
    weights[treated] = 0.0
    return weights, WeightSummary(len(rows), int(treated.sum()), int(stands_in.sum()))
