"""What the service did to tenants, read for the retrain (`training.treatment`): the contacts it made and the days a
held-out tenancy stood within its patch's capacity.

Contacts are the case actions that reached a tenant or tried to: every released letter (a `contact_attempted` with
its draft) and every contact an officer recorded (`contact_attempted`, `contact_made`), except a release the
sending system reported undelivered. The held-out queue comes from the recorded runs: a held-out ready case whose
place in its own queue was within the run's patch capacity is one the list would have contacted (serving.runs.
experiments ranks held-out cases apart for exactly this), with its experiment's holdout share.
"""

from __future__ import annotations

import pandas as pd

from casework import cases
from casework.store import open_casework
from serving.runs.store import open_runs
from serving.settings import ServingSettings
from training.treatment import Interventions

#: The case actions that are a contact with the tenant.
CONTACT_KINDS = ("contact_attempted", "contact_made")

_SHADOW = ("SELECT w.tenancy_id, r.as_of AS day, a.holdout_share FROM worklist_rows w "
           "JOIN worklist_runs r ON r.run_id = w.run_id "
           "JOIN experiment_assignments a ON a.experiment = w.experiment AND a.tenancy_id = w.tenancy_id "
           "WHERE w.arm = 'holdout' AND w.readiness_state = 'ready' AND w.queue_rank <= r.patch_capacity")


def contacts(settings: ServingSettings) -> pd.DataFrame:
    """(tenancy_id, day) of every contact the service made or recorded."""
    with open_casework(settings) as db:
        recorded = cases.actions(db)
    made = recorded[recorded["kind"].isin(CONTACT_KINDS) & (recorded["settled_as"] != "undelivered")]
    return pd.DataFrame({"tenancy_id": made["tenancy_id"].astype(str).to_numpy(),
                         "day": pd.to_datetime(made["happened_on"]).to_numpy()})


def held_out_within_capacity(settings: ServingSettings) -> pd.DataFrame:
    """(tenancy_id, day, holdout_share) of each run in which a held-out case stood within capacity."""
    with open_runs(settings) as runs:
        shadow = runs.db.query(_SHADOW)
    return shadow.drop_duplicates(["tenancy_id", "day"]).reset_index(drop=True)


def interventions(settings: ServingSettings) -> Interventions:
    """Both, as `training.train.train_risk_model` takes them."""
    return Interventions(contacts(settings), held_out_within_capacity(settings))
