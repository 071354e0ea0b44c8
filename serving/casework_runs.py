"""What a worklist run does with casework (`casework.cases`): before judging, settle officers' promises against the
receipts and read their actions (they are facts the policy judges); after recording, give each listable ready case
an owner among its patch's officers (the principals with the officer role)."""

from __future__ import annotations

import pandas as pd

from casework import cases
from casework.audit import AuditLog
from casework.store import open_casework
from features.feeds.contract import RECEIPT_TYPES
from features.ledger import Ledger
from serving.access import open_principals, stored_patches
from serving.settings import ServingSettings


def actions_for_run(settings: ServingSettings, ledger: Ledger, as_of: pd.Timestamp) -> tuple[pd.DataFrame, str]:
    """Settle the promises open on `as_of`, then every recorded action, and a mark of the case store's state that
    changes whenever an action is recorded or a promise settled (a run is recomputed when it does)."""
    with open_casework(settings) as db:
        log = AuditLog(db)
        oldest = db.query("SELECT MIN(happened_on) AS day FROM case_actions WHERE kind = 'promise_to_pay' "
                          "AND settled_on IS NULL")["day"].iloc[0]
        if oldest is not None and not pd.isna(oldest):
            received = ledger.query(
                "SELECT tenancy_id, posted_date, amount_pence FROM transactions WHERE posted_date >= ? AND "
                f"posted_date <= ? AND type IN ({', '.join('?' * len(RECEIPT_TYPES))})",
                [pd.Timestamp(oldest).date(), pd.Timestamp(as_of).date(), *RECEIPT_TYPES])
            received["posted_date"] = pd.to_datetime(received["posted_date"])
            cases.settle_promises(db, log, received, as_of)
        recorded = cases.actions(db)
    settled = int(recorded["settled_on"].notna().sum())
    mark = f"{len(recorded)}:{recorded['recorded_at'].max() if len(recorded) else ''}:{settled}"
    return recorded, mark


def roster(settings: ServingSettings) -> dict[str, list[str]]:
    """Each patch's officers: the active principals with the officer role."""
    with open_principals(settings) as store:
        active = store.active()
    officers: dict[str, list[str]] = {}
    for row in active[active["role"] == "officer"].to_dict("records"):
        for patch in stored_patches(row["patches"]) or ():
            officers.setdefault(patch, []).append(str(row["name"]))
    return officers


def assign_owners(settings: ServingSettings, run: dict, frame: pd.DataFrame) -> pd.DataFrame:
    """Owners for the run's listable ready cases (highest risk first) that have none yet."""
    listable = frame[(frame["readiness_state"] == "ready") & (frame["queue_rank"] <= settings.patch_capacity)]
    with open_casework(settings) as db:
        return cases.assign(db, AuditLog(db), listable.sort_values("risk_rank")[["tenancy_id", "patch"]],
                            roster(settings), settings.officer_capacity, str(run["run_id"]))
