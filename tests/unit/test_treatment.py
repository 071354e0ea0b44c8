"""The treatment-aware weights of the retrain (`training.treatment`), worked by hand on a few rows."""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.treatment import Interventions, treatment_weights


def _rows() -> pd.DataFrame:
    return pd.DataFrame({
        "tenancy_id": ["T1", "T1", "T2", "T3", "T4", "T5"],
        "event_timestamp": pd.to_datetime(["2026-03-01", "2026-05-03", "2026-03-01", "2026-03-01", "2026-03-01",
                                           "2026-03-01"], utc=True),
    })


def test_touched_rows_go_held_out_rows_stand_for_them_and_the_rest_stay() -> None:
    contacts = pd.DataFrame({"tenancy_id": ["T1", "T2", "T5"],
                             "day": pd.to_datetime(["2026-03-04", "2026-04-27", "2026-03-01"])})
    shadow = pd.DataFrame({"tenancy_id": ["T3", "T4"], "day": pd.to_datetime(["2026-03-10", "2026-06-01"]),
                           "holdout_share": [0.2, 0.2]})
    weights, summary = treatment_weights(_rows(), Interventions(contacts, shadow), horizon_weeks=8)
    # T1's March row: contacted three days in (left out); its May row: the contact is long before (kept).
    # T2: contacted on day 57, one day past an 8-week window (kept). T3: held out and within capacity inside its
    # window (1 / 0.2). T4: within capacity only after its window (1). T5: contacted on the row's own day, the day
    # the run that listed it was worked (left out).
    np.testing.assert_allclose(weights, [0.0, 1.0, 1.0, 5.0, 1.0, 0.0])
    assert (summary.rows, summary.left_out, summary.reweighted) == (6, 2, 1)


def test_nothing_done_changes_nothing() -> None:
    weights, summary = treatment_weights(_rows(), Interventions.none(), horizon_weeks=8)
    assert (weights == 1).all() and summary.left_out == summary.reweighted == 0


def test_a_contact_outweighs_standing_in() -> None:
    contacts = pd.DataFrame({"tenancy_id": ["T3"], "day": pd.to_datetime(["2026-03-20"])})
    shadow = pd.DataFrame({"tenancy_id": ["T3"], "day": pd.to_datetime(["2026-03-10"]), "holdout_share": [0.25]})
    weights, _ = treatment_weights(_rows(), Interventions(contacts, shadow), horizon_weeks=8)
    assert weights[3] == 0.0
