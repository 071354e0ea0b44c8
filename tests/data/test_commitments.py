"""Promises and arrangements settled against the ledger's receipts (casework.cases.settle_commitments), on a real
case store: kept when everything agreed has arrived, missed as soon as less has arrived than what fell due, each
miss returned to the list with its reason in the audit trail."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from casework import cases
from casework.audit import AuditLog
from casework.store import open_casework
from tests.support.homes import isolated_home

AS_OF = pd.Timestamp("2026-10-31")


@pytest.mark.parametrize(("first_due", "every", "count", "passed"), [
    ("2026-11-07", 7, 4, 0), ("2026-10-31", 7, 4, 0), ("2026-10-30", 7, 4, 1), ("2026-10-24", 7, 4, 1),
    ("2026-10-23", 7, 4, 2), ("2026-08-01", 7, 4, 4), ("2026-10-01", 14, 6, 3),
])
def test_instalments_fall_due_on_their_days(first_due, every, count, passed) -> None:
    assert cases.instalments_passed(pd.Timestamp(first_due), every, count, AS_OF) == passed


def test_commitments_are_kept_missed_or_still_running() -> None:
    assert cases.judge_commitment(paid_pence=4000, amount_pence=1000, passed=1, count=4) == "kept"
    assert cases.judge_commitment(paid_pence=2000, amount_pence=1000, passed=2, count=4) is None
    assert cases.judge_commitment(paid_pence=1999, amount_pence=1000, passed=2, count=4) == "missed"
    assert cases.judge_commitment(paid_pence=0, amount_pence=1000, passed=0, count=1) is None


def test_settling_against_receipts_returns_each_miss_with_its_reason(tmp_path) -> None:
    def day(n: int) -> date:
        return (AS_OF + pd.Timedelta(days=n)).date()

    with isolated_home(tmp_path / "home"):
        from casework.settings import get_settings

        with open_casework(get_settings()) as db:
            log = AuditLog(db)
            record = lambda tenancy, **given: cases.record_action(  # noqa: E731
                db, log, tenancy, cases.OfficerAction(**given), "officer-1", "officer")
            record("T1", kind="promise_to_pay", amount=50, happened_on=day(-10), due_on=day(-3))  # paid: kept
            record("T2", kind="promise_to_pay", amount=50, happened_on=day(-10), due_on=day(-3))  # short: missed
            record("T3", kind="arrangement_agreed", amount=20, instalments=6, happened_on=day(-22))  # 3 due, 2 paid
            record("T4", kind="arrangement_agreed", amount=20, instalments=6, happened_on=day(-22))  # 3 due, 3 paid
            record("T5", kind="promise_to_pay", amount=50, happened_on=day(-2), due_on=day(3))  # not due yet
            received = pd.DataFrame({
                "tenancy_id": ["T1", "T2", "T3", "T3", "T4", "T4", "T4", "T1"],
                "posted_date": pd.to_datetime([day(-5), day(-4), day(-14), day(-7), day(-14), day(-7), day(-1),
                                               day(-20)]),  # T1's last receipt predates its promise: not counted
                "amount_pence": [-5000, -4000, -2000, -2000, -2000, -2000, -2000, -9900]})
            settled = cases.settle_commitments(db, log, received, AS_OF)
            again = cases.settle_commitments(db, log, received, AS_OF)  # settled once: nothing more
            actions = cases.actions(db).set_index("tenancy_id")
            returned = log.entries()
    assert settled == {"kept": ["T1"], "missed": ["T2", "T3"]} and again == {"kept": [], "missed": []}
    assert actions["settled_as"].to_dict() == {"T1": "kept", "T2": "missed", "T3": "missed", "T4": None, "T5": None}
    back = returned[returned["action"] == "case_returned"].set_index("tenancy_id")["detail"]
    assert back["T2"]["reason"] == "missed_promise" and back["T2"]["received_pence"] == 4000
    assert back["T3"] | {"action_id": None} == {"reason": "missed_instalment", "action_id": None,
                                                "due_on": str(day(-1)), "expected_pence": 6000,
                                                "received_pence": 4000}
    events = cases.as_events(actions.reset_index())
    assert set(events.loc[events["type"] == "arrangement_broken", "tenancy_id"]) == {"T2", "T3"}
    assert set(events.loc[events["type"] == "arrangement_completed", "tenancy_id"]) == {"T1"}


def test_a_supervisors_clearance_of_a_vulnerable_case_lasts_its_days() -> None:
    recorded = pd.DataFrame({"tenancy_id": ["T1", "T2", "T3"], "kind": ["review_cleared"] * 3,
                             "happened_on": ["2026-10-21", "2026-07-01", "2026-11-05"]})
    cleared = cases.reviews(recorded, AS_OF)
    assert cleared["tenancy_id"].tolist() == ["T1"]  # T2's is over 90 days old, T3's not yet made
    with pytest.raises(ValueError, match="review_cleared's reason is one of approach_agreed"):
        cases.OfficerAction(kind="review_cleared", reason="other")
