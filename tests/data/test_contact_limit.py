"""Every contact counts, whoever makes it: over random sequences of the housing system's contacts, officers' contacts
and letters drafted, approved and released on a real case store, the service never releases a letter into a 7-day
window that already holds the contact limit's attempts, and every release is a contact the next judgement counts.

The judgement is the one the service makes (`casework.facts.circumstance_facts` over the feed's events and the case
store's actions as events, `casework.policy.readiness`, `casework.drafts.check_of`), as `serving.runs.casework`
does it from the ledger.
"""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from casework import cases, drafts
from casework.audit import AuditLog
from casework.policy import load_policy
from casework.store import open_casework
from tests.support import casefacts
from tests.support.homes import isolated_home

POLICY = load_policy()
LIMIT, WINDOW = POLICY.contact_limit["attempts"], POLICY.contact_limit["days"]
START = date(2026, 10, 1)
#: One thing that happens on a day: the feed reports a contact, an officer records one, or a letter is drafted,
#: approved and released (the release perhaps a few days after the draft).
step = st.tuples(st.integers(0, 2), st.sampled_from(["feed_contact", "officer_contact", "letter"]), st.integers(0, 3))


def judge(db, feed: list[date], day: date) -> tuple[pd.Series, pd.Series]:
    """The case on `day`, with the feed's contacts and every action in the case store (releases included)."""
    return casefacts.judge(db, day, [(d, "contact_attempted") for d in feed])


def contacts_in_window(feed: list[date], db, day: date) -> int:
    recorded = cases.actions(db, ["T1"])
    theirs = recorded[recorded["kind"] == "contact_attempted"]["happened_on"].map(date.fromisoformat).tolist()
    return sum(day - timedelta(days=WINDOW) < d <= day for d in [*feed, *theirs])


def letter(db, log, feed: list[date], day: date, release_after: int) -> dict | None:
    """Draft on `day` if the case is ready, approve it, release it `release_after` days later as it stands then."""
    judged, facts = judge(db, feed, day)
    draft_facts = drafts.DraftFacts(
        tenancy_id="T1", as_of=str(day), readiness_state=str(judged["readiness_state"]),
        protocol_step=judged["protocol_step"], policy_version=POLICY.version, run_id="r", balance=600.0,
        arrears_weeks=6.0, reasons=tuple(rule for rule, _ in judged["state_reasons"]))
    try:
        written = drafts.generate(db, log, draft_facts, "letter", "en", "officer-1", "officer")
    except drafts.DraftRefused:
        return None
    drafts.approve(db, log, written["draft_id"], "supervisor-1", "supervisor")
    on = day + timedelta(days=release_after)
    before = contacts_in_window(feed, db, on)
    judged, facts = judge(db, feed, on)
    released = drafts.release(db, log, written["draft_id"], "supervisor-1", "supervisor",
                              drafts.check_of(judged, facts, 0.0, POLICY.contact_limit), on)
    return {"on": on, "status": released["status"], "before": before, "reason": released["reason"]}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(step, min_size=1, max_size=25))
def test_no_release_goes_past_the_contact_limit_and_every_release_is_a_contact(tmp_path_factory, steps) -> None:
    with isolated_home(tmp_path_factory.mktemp("home")):
        from casework.settings import get_settings

        with open_casework(get_settings()) as db:
            log, feed, day, releases = AuditLog(db), [], START, []
            for gap, what, later in steps:
                day += timedelta(days=gap)
                if what == "feed_contact":
                    feed.append(day)
                elif what == "officer_contact":
                    cases.record_action(db, log, "T1", cases.OfficerAction(kind="contact_attempted", channel="phone"),
                                        "officer-1", "officer", day)
                elif (outcome := letter(db, log, feed, day, later)) is not None:
                    day = max(day, outcome["on"])
                    releases.append(outcome)
            for outcome in releases:
                if outcome["status"] == "released":
                    assert outcome["before"] < LIMIT  # the release was at most the limit's last attempt
                else:
                    assert outcome["before"] >= LIMIT or not outcome["reason"].startswith("contact_limit")
            released = [o for o in releases if o["status"] == "released"]
            recorded = cases.actions(db, ["T1"])
            assert (recorded["draft_id"].notna()).sum() == len(released)  # each release is one contact, kept
            for outcome in released:  # and the judgement on its day counts it with everything before it
                _, facts = judge(db, feed, outcome["on"])
                assert facts["attempts_recent"] >= outcome["before"] + 1
            assert AuditLog(db).verify().ok


def test_four_letters_on_one_day_the_fourth_is_held_by_the_contact_limit(tmp_path) -> None:
    """The issue's reproduction: draft, approve and release four times in one day for one tenancy."""
    with isolated_home(tmp_path / "home"):
        from casework.settings import get_settings

        with open_casework(get_settings()) as db:
            log = AuditLog(db)
            outcomes = [letter(db, log, [], START, 0) for _ in range(4)]
    released = [o for o in outcomes if o is not None and o["status"] == "released"]
    assert len(released) == LIMIT
    assert outcomes[LIMIT] is None or outcomes[LIMIT]["status"] == "suppressed"
