"""Delivery receipts on a real case store (issue 28): a letter that came back was no contact, did not carry its
statement, and puts the case in review until an officer has checked the contact details; a receipt is kept once
however often it is sent; each is in the audit trail, which verifies."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from casework import cases, drafts, receipts
from casework.audit import AuditLog
from casework.store import open_casework
from tests.support import casefacts
from tests.support.homes import isolated_home

DAY = date(2026, 10, 31)
FACTS = drafts.DraftFacts(
    tenancy_id="T1", as_of=str(DAY), readiness_state="ready", protocol_step="statement", policy_version="p",
    run_id="r1", balance=800.0, arrears_weeks=8.0,
    statement=({"date": "26/10/2026", "item": "rent", "amount": "100.00", "balance": "800.00"},))
OK = drafts.ReleaseCheck(0.0, "ready", (), 0, 3)
FEED = [(date(2026, 10, 10), "contact_made")]


@pytest.fixture()
def store(tmp_path):
    with isolated_home(tmp_path / "home"):
        from casework.settings import get_settings

        with open_casework(get_settings()) as db:
            yield db


def judged(db) -> pd.Series:
    judgement, facts = casefacts.judge(db, DAY, FEED, arrears_weeks=8.0)
    return pd.concat([judgement, facts[["attempts_recent", "last_statement"]]])


def released(db) -> str:
    log = AuditLog(db)
    written = drafts.generate(db, log, FACTS, "letter", "en", "officer-1", "officer")
    drafts.approve(db, log, written["draft_id"], "supervisor-1", "supervisor")
    drafts.release(db, log, written["draft_id"], "supervisor-1", "supervisor", OK, DAY)
    return written["draft_id"]


def test_a_returned_letter_is_no_contact_and_the_case_waits_for_its_details_to_be_checked(store) -> None:
    message = released(store)
    sent = judged(store)
    assert (sent["attempts_recent"], pd.Timestamp(sent["last_statement"]).date()) == (1, DAY)
    assert sent["protocol_step"] != "statement"  # the letter carried the statement
    first = receipts.record(store, AuditLog(store), message, "returned", "mail-house", "sender", day=DAY)
    again = receipts.record(store, AuditLog(store), message, "returned", "mail-house", "sender", day=DAY)
    assert not first["repeat"] and again["repeat"]  # kept once
    back = judged(store)
    assert back["attempts_recent"] == 0 and pd.isna(back["last_statement"])  # neither a contact nor a statement
    assert (back["readiness_state"], [rule for rule, _ in back["state_reasons"]]) == (
        "review", ["contact_details_unverified"])
    cases.record_action(store, AuditLog(store), "T1", cases.OfficerAction(kind="contact_details_checked"),
                        "officer-1", "officer", DAY)
    assert judged(store)["readiness_state"] == "ready" and judged(store)["protocol_step"] == "statement"
    trail = AuditLog(store).entries(tenancy_id="T1")
    assert trail["action"].tolist().count("delivery_receipt") == 1
    assert [d["reason"] for d in trail[trail["action"] == "case_returned"]["detail"]] == ["message_returned"]
    assert AuditLog(store).verify().ok


def test_a_sent_receipt_changes_nothing_and_an_unknown_message_is_not_found(store) -> None:
    message = released(store)
    receipts.record(store, AuditLog(store), message, "sent", "mail-house", "sender", day=DAY)
    assert judged(store)["attempts_recent"] == 1 and judged(store)["readiness_state"] == "ready"
    with pytest.raises(LookupError):
        receipts.record(store, AuditLog(store), "no-such-message", "sent", "mail-house", "sender")
    with pytest.raises(ValueError, match="sent, failed, bounced, returned"):
        receipts.record(store, AuditLog(store), message, "lost", "mail-house", "sender")
