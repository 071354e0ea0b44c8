"""The pre-action protocol's own steps, recorded by officers on a real case store, are judged by the policy at once:
a rent statement moves the case on from `statement`, a notice served starts its period (`notice_running`) and the
housing system delivering the same notice later does not count it twice, a dispute holds the case until resolved,
help with a benefit claim holds it while the claim is decided, and an arrangement above what the income and
expenditure assessment found affordable is refused."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest

from casework import cases
from casework.audit import AuditLog
from casework.policy import load_policy
from casework.store import open_casework
from tests.support import casefacts
from tests.support.homes import isolated_home

POLICY = load_policy()
TODAY = date(2026, 10, 31)
#: The housing system's feed: contact made three weeks ago (eight weeks' arrears, no statement yet).
FEED = [(TODAY - timedelta(days=21), "contact_made")]


@pytest.fixture()
def store(tmp_path):
    with isolated_home(tmp_path / "home"):
        from casework.settings import get_settings

        with open_casework(get_settings()) as db:
            yield db


def judged(db, feed=FEED, day: date = TODAY) -> pd.Series:
    """The case on `day` as the service judges it: the feed's events and the case store's actions as events."""
    return casefacts.judge(db, day, feed, arrears_weeks=8.0)[0]


def act(db, kind: str, day: date = TODAY, role: str = "officer", **given) -> dict:
    return cases.record_action(db, AuditLog(db), "T1", cases.OfficerAction(kind=kind, **given), f"{role}-1", role,
                               day)


def test_a_statement_then_a_notice_move_the_case_along_the_protocol_at_once(store) -> None:
    assert judged(store)["protocol_step"] == "statement"
    act(store, "rent_statement_sent", channel="letter")
    assert (judged(store)["readiness_state"], judged(store)["protocol_step"]) == ("ready", "notice")
    act(store, "notice_served", role="supervisor")
    assert judged(store)["protocol_step"] == "notice_running"
    # the housing system delivers the same notice a day later: still the notice's period, not proceedings
    later = [*FEED, (TODAY, "legal_stage")]
    assert judged(store, later, TODAY + timedelta(days=1))["protocol_step"] == "notice_running"
    after = TODAY + timedelta(days=POLICY.protocol["notice_period_days"] + 1)
    assert judged(store, later, after)["protocol_step"] == "warning"
    act(store, "warning_sent", after, channel="letter")
    assert judged(store, later, after)["protocol_step"] != "warning"  # warned: not offered again
    assert AuditLog(store).verify().ok


def test_a_dispute_holds_the_case_until_it_is_resolved(store) -> None:
    act(store, "dispute_opened", reason="payment_missing")
    assert judged(store)["readiness_state"] == "disputed"
    act(store, "dispute_resolved", TODAY + timedelta(days=1), reason="balance_corrected")
    assert judged(store, day=TODAY + timedelta(days=1))["readiness_state"] == "ready"


def test_help_with_a_benefit_claim_holds_the_case_while_the_claim_is_decided(store) -> None:
    act(store, "benefit_claim_help")
    now = judged(store)
    assert now["readiness_state"] == "hold"
    assert [rule for rule, _ in now["state_reasons"]] == ["benefit_claim_pending"]


def test_an_arrangement_above_the_affordable_amount_is_refused(store) -> None:
    act(store, "income_expenditure", amount=20.0)
    with pytest.raises(cases.Unaffordable, match=r"£30\.00 a week.*£20\.00 a week affordable"):
        act(store, "arrangement_agreed", amount=30.0, instalments=10)
    with pytest.raises(cases.Unaffordable):
        act(store, "arrangement_agreed", amount=50.0, instalments=10, every_days=14)  # £25 a week
    act(store, "arrangement_agreed", amount=40.0, instalments=10, every_days=14)  # £20 a week: affordable
    assert judged(store)["readiness_state"] == "payment_plan"
