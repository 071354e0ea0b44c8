"""Readiness policy: table-driven scenarios for every rule, and properties that must hold whatever the facts."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from casework.facts import FACT_COLUMNS
from casework.policy import STATES, load_policy, readiness
from casework.policy.protocol import ORDER, PRECONDITIONS, Facts, next_steps

TODAY = pd.Timestamp("2026-10-31")
POLICY = load_policy()


def ago(days: int) -> pd.Timestamp:
    return TODAY - pd.Timedelta(days=days)


def facts(**overrides) -> dict:
    """A tenancy three weeks in arrears, contacted ten days ago, a rent statement sent last month, nothing else."""
    row = {column: None for column in FACT_COLUMNS} | {
        "tenancy_id": "T1", "vulnerable": False, "rent_period_pence": 10_000.0, "weekly_rent_pence": 10_000.0,
        "balance_pence": 30_000.0, "arrears_weeks": 3.0, "received_window_pence": 0.0, "last_receipt": ago(20),
        "odd_receipts": 0, "reported_gap_pence": float("nan"), "attempts_recent": 1, "last_contact": ago(10),
        "last_statement": ago(30), "legal_stage": 0}
    return row | overrides


DATES = ("reviewed_on", "last_receipt", "last_contact", "last_statement", "last_agreed", "last_broken",
         "last_completed", "last_legal_step", "last_warning", "breathing_space_start", "breathing_space_ended",
         "crisis_treatment_ended", "limit_attempt", "last_dispute_opened", "last_dispute_resolved", "last_claim_made",
         "last_claim_decided")


def as_frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    for column in DATES:
        frame[column] = pd.to_datetime(frame[column])
    return frame


def judge(*rows: dict) -> pd.DataFrame:
    return readiness(as_frame(list(rows)), TODAY, POLICY)


SCENARIOS = [
    ("plain arrears after contact", {}, "ready", set()),
    ("standard breathing space, day 10", {"breathing_space_start": ago(10), "breathing_space_kind": "standard"},
     "blocked", {"breathing_space"}),
    ("standard breathing space over after 60 days",
     {"breathing_space_start": ago(70), "breathing_space_kind": "standard"}, "ready", set()),
    ("standard breathing space cancelled early",
     {"breathing_space_start": ago(10), "breathing_space_kind": "standard", "breathing_space_ended": ago(5)},
     "ready", set()),
    ("mental health crisis moratorium, treatment ongoing at day 100",
     {"breathing_space_start": ago(100), "breathing_space_kind": "mental_health_crisis"}, "blocked",
     {"mental_health_crisis_moratorium"}),
    ("crisis treatment ended 20 days ago: 10 days left",
     {"breathing_space_start": ago(100), "breathing_space_kind": "mental_health_crisis",
      "crisis_treatment_ended": ago(20)}, "blocked", {"mental_health_crisis_moratorium"}),
    ("crisis treatment ended 40 days ago: over",
     {"breathing_space_start": ago(100), "breathing_space_kind": "mental_health_crisis",
      "crisis_treatment_ended": ago(40)}, "ready", set()),
    ("breathing space and a dispute: blocked, both said",
     {"breathing_space_start": ago(3), "breathing_space_kind": "standard", "last_dispute_opened": ago(1)}, "blocked",
     {"breathing_space", "open_dispute"}),
    ("open dispute", {"last_dispute_opened": ago(5), "last_dispute_resolved": ago(40)}, "disputed", {"open_dispute"}),
    ("dispute resolved", {"last_dispute_opened": ago(40), "last_dispute_resolved": ago(5)}, "ready", set()),
    ("in credit by five weeks' rent", {"balance_pence": -50_000.0, "arrears_weeks": 0.0}, "ambiguous_balance",
     {"credit_balance"}),
    ("a week ahead: not ambiguous", {"balance_pence": -10_000.0, "arrears_weeks": 0.0}, "ready", set()),
    ("unallocated receipt", {"odd_receipts": 1}, "ambiguous_balance", {"unallocated_receipt"}),
    ("receipt in suspense", {"suspense_receipts": 1}, "ambiguous_balance", {"receipt_in_suspense"}),
    ("housing system reports another balance", {"reported_gap_pence": 5_000.0}, "ambiguous_balance",
     {"unexplained_balance"}),
    ("benefit claim pending", {"last_claim_made": ago(10)}, "hold", {"benefit_claim_pending"}),
    ("benefit claim decided", {"last_claim_made": ago(40), "last_claim_decided": ago(5)}, "ready", set()),
    ("contact limit reached", {"attempts_recent": 3, "limit_attempt": ago(5)}, "hold", {"contact_limit"}),
    ("arrangement being kept", {"last_agreed": ago(30), "last_receipt": ago(5)},
     "payment_plan", {"payment_plan_kept"}),
    ("arrangement silent for 25 days", {"last_agreed": ago(60), "last_receipt": ago(25)},
     "ready", {"arrangement_not_kept"}),
    ("arrangement broken 10 days ago", {"last_agreed": ago(70), "last_broken": ago(10)},
     "ready", {"arrangement_broken"}),
    ("arrangement agreed 2 days ago after 40 silent days: being kept", {"last_agreed": ago(2), "last_receipt": ago(40)},
     "payment_plan", {"payment_plan_kept"}),
    ("arrangement agreed 25 days ago, nothing since", {"last_agreed": ago(25), "last_receipt": ago(40)},
     "ready", {"arrangement_not_kept"}),
    ("held by an officer until next week", {"officer_hold_until": ago(-7), "officer_hold_reason": "hold: hospital"},
     "hold", {"officer_hold"}),
    ("an officer's hold that ended yesterday", {"officer_hold_until": ago(1), "officer_hold_reason": "hold: other"},
     "ready", set()),
    ("a period's rent and some arrears paid this week", {"received_window_pence": 15_000.0, "last_receipt": ago(2)},
     "recent_payment", {"recent_payment"}),
    ("this week's rent paid, three weeks of arrears left", {"received_window_pence": 10_000.0,
                                                             "last_receipt": ago(2)}, "ready", set()),
    ("this week's rent paid, hardly anything owed", {"received_window_pence": 10_000.0, "last_receipt": ago(2),
                                                      "balance_pence": 5_000.0, "arrears_weeks": 0.5},
     "recent_payment", {"recent_payment"}),
    ("part of a period paid this week", {"received_window_pence": 4_000.0, "last_receipt": ago(2),
                                          "arrears_weeks": 0.5}, "ready", set()),
    ("vulnerable", {"vulnerable": True}, "review", {"vulnerable"}),
    ("vulnerable, cleared for contact by a supervisor", {"vulnerable": True, "reviewed_on": ago(10)}, "ready",
     {"vulnerable_reviewed"}),
    ("vulnerable but paid this week", {"vulnerable": True, "received_window_pence": 20_000.0},
     "recent_payment", {"vulnerable", "recent_payment"}),
]


@pytest.mark.parametrize(("name", "overrides", "state", "rules"), SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_each_rule_routes_its_case(name: str, overrides: dict, state: str, rules: set[str]) -> None:
    row = judge(facts(**overrides)).iloc[0]
    assert row["readiness_state"] == state
    assert {rule for rule, _ in row["state_reasons"]} == rules
    assert row["policy_version"] == POLICY.version and row["next_action"]
    assert all(text for _, text in row["state_reasons"])


def test_a_hold_says_until_when() -> None:
    blocked, limited = judge(facts(breathing_space_start=ago(10), breathing_space_kind="standard"),
                             facts(attempts_recent=3, limit_attempt=ago(5))).itertuples()
    assert blocked.hold_until == ago(10) + pd.Timedelta(days=60)
    assert limited.hold_until == ago(5) + pd.Timedelta(days=7)
    assert "until 20 Dec 2026" in dict(blocked.state_reasons)["breathing_space"]


STEPS = [
    ("not yet contacted about the arrears", {"last_contact": ago(200)}, "contact"),
    ("contacted, no current statement", {"last_statement": ago(200), "arrears_weeks": 5.0}, "statement"),
    ("contacted, statement current, arrears of 5 weeks", {"arrears_weeks": 5.0}, "notice"),
    ("contacted, statement current, arrears of 2 weeks", {"arrears_weeks": 2.0}, "arrangement"),
    ("high arrears but a benefit claim pending", {"arrears_weeks": 6.0, "last_claim_made": ago(3)}, "arrangement"),
    ("notice served 10 days ago", {"legal_stage": 1, "last_legal_step": ago(10)}, "notice_running"),
    ("notice period over, no warning", {"legal_stage": 1, "last_legal_step": ago(40)}, "warning"),
    ("warned 20 days ago", {"legal_stage": 1, "last_legal_step": ago(60), "last_warning": ago(20)}, "claim"),
    ("warned 5 days ago: not yet", {"legal_stage": 1, "last_legal_step": ago(60), "last_warning": ago(5)},
     "arrangement"),
    ("claim issued", {"legal_stage": 2, "last_legal_step": ago(30)}, "court"),
    ("no arrears", {"balance_pence": 0.0, "arrears_weeks": 0.0}, "none"),
]


@pytest.mark.parametrize(("name", "overrides", "step"), STEPS, ids=[s[0] for s in STEPS])
def test_the_next_step_follows_the_pre_action_protocol(name: str, overrides: dict, step: str) -> None:
    judged = judge(facts(**overrides)).iloc[0]
    assert next_steps(as_frame([facts(**overrides)]), TODAY, POLICY)["step"].iloc[0] == step
    if judged["readiness_state"] == "ready":  # a case in another state is offered no step
        assert judged["protocol_step"] == step
    else:
        assert judged["protocol_step"] is None


# -- properties -------------------------------------------------------------------------------------------------------
days = st.one_of(st.none(), st.integers(min_value=0, max_value=400))
random_facts = st.fixed_dictionaries({
    "balance_pence": st.floats(-50_000, 500_000), "received_window_pence": st.floats(0, 50_000),
    "odd_receipts": st.integers(0, 2),
    "reported_gap_pence": st.one_of(st.just(float("nan")), st.floats(-10_000, 10_000)),
    "vulnerable": st.booleans(), "attempts_recent": st.integers(0, 6), "limit_attempt": days,
    "last_receipt": days, "last_contact": days, "last_statement": days, "last_agreed": days, "last_broken": days,
    "last_legal_step": days, "last_warning": days, "breathing_space_start": days,
    "breathing_space_kind": st.sampled_from(["standard", "mental_health_crisis"]), "breathing_space_ended": days,
    "crisis_treatment_ended": days, "last_dispute_opened": days, "last_dispute_resolved": days,
    "last_claim_made": days, "last_claim_decided": days, "last_completed": days,
    "legal_stage": st.integers(0, 3),
})


def materialise(drawn: dict) -> dict:
    """Day counts as dates before TODAY; arrears from the balance, as the facts loader derives them."""
    row = facts(**{k: (ago(v) if k in DATES and v is not None else v) for k, v in drawn.items()})
    row["arrears_weeks"] = max(row["balance_pence"], 0.0) / row["weekly_rent_pence"]
    return row


@settings(max_examples=100, deadline=None)
@given(st.lists(random_facts, min_size=1, max_size=8), st.integers(0, 59))
def test_a_tenancy_in_a_breathing_space_is_never_ready_whatever_else(drawn: list[dict], day_in: int) -> None:
    rows = [materialise(d) | {"tenancy_id": f"T{i}", "breathing_space_start": ago(day_in),
                               "breathing_space_kind": "standard", "breathing_space_ended": None}
            for i, d in enumerate(drawn)]
    judged = judge(*rows)
    assert (judged["readiness_state"] == "blocked").all()
    assert judged["protocol_step"].isna().all()  # no step, not even a letter, is offered


@settings(max_examples=100, deadline=None)
@given(st.lists(random_facts, min_size=1, max_size=8))
def test_states_and_steps_always_respect_their_rules(drawn: list[dict]) -> None:
    rows = [materialise(d) | {"tenancy_id": f"T{i}"} for i, d in enumerate(drawn)]
    judged = judge(*rows)
    frame = as_frame(rows)
    assert set(judged["readiness_state"]) <= set(STATES)
    disputed = frame["last_dispute_opened"].notna() & ~(frame["last_dispute_resolved"] >= frame["last_dispute_opened"])
    assert not (judged["readiness_state"][disputed.to_numpy()] == "ready").any()
    steps = next_steps(frame, TODAY, POLICY)["step"]
    view = Facts(frame, TODAY, POLICY)
    for name in ORDER:
        offered = (steps == name).to_numpy()
        if offered.any() and name != "none":
            assert PRECONDITIONS[name](view).fillna(False).to_numpy()[offered].all(), name
    notice = (steps == "notice").to_numpy()
    assert (frame["legal_stage"][notice] == 0).all() and (frame["arrears_weeks"][notice] >= 4).all()
    assert ((TODAY - frame["last_contact"][notice]).dt.days <= 90).all()
    assert ((TODAY - frame["last_statement"][notice]).dt.days <= 91).all()
    claim = (steps == "claim").to_numpy()
    assert (frame["legal_stage"][claim] == 1).all()
    assert ((TODAY - frame["last_warning"][claim]).dt.days >= 14).all()
    assert (frame["last_warning"][claim] >= frame["last_legal_step"][claim]).all()
