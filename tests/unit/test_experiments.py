"""Experiments as configuration (serving.runs.experiments): the file is refused when it would hold out a protocol
step, vulnerability support, Breathing Space or a dispute, or assign a case that is not ready; arms are a stable
hash; over generated run frames of every readiness state only ready rows inside an enabled window are assigned, a
tenancy keeps its first arm, and held-out cases take none of a patch's capacity; a held-out case's held-out draft is
refused and its statutory letters are not."""

from __future__ import annotations

import copy
from datetime import date

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from casework import drafts
from casework.policy import STATES
from serving.runs import experiments
from serving.runs.experiments import ExperimentConfigError, parse

GOOD = {"version": 1, "experiments": [{
    "name": "reminders-1", "enabled": True, "start": "2026-09-01", "end": "2026-12-31",
    "held_out_action": "first_reminder", "eligible_states": ["ready"], "holdout_share": 0.3,
    "strata": {"by": ["risk_band", "patch"], "risk_band_cuts": [0.3, 0.6]},
    "outcome": {"kind": "paid_within_days", "days": 28}, "minimum_detectable_effect": 0.03}]}


def with_fields(**fields) -> dict:
    document = copy.deepcopy(GOOD)
    document["experiments"][0].update(fields)
    return document


def test_the_shipped_file_is_one_documented_example_and_disabled() -> None:
    shipped = experiments.read_experiments(experiments.DEFAULT_FILE)
    assert len(shipped) == 1 and not shipped[0].enabled
    assert shipped[0].held_out_action in experiments.discretionary_actions() and shipped[0].description


def test_a_good_file_reads_with_its_fields() -> None:
    (trial,) = parse(GOOD)
    assert (trial.name, trial.start, trial.end, trial.holdout_share, trial.risk_band_cuts, trial.strata) == (
        "reminders-1", date(2026, 9, 1), date(2026, 12, 31), 0.3, (0.3, 0.6), ("risk_band", "patch"))
    assert trial.outcome == experiments.Outcome("paid_within_days", 28)
    (change,) = parse(with_fields(outcome={"kind": "arrears_change", "days": 56, "winsorise": 0.01}))
    assert change.outcome == experiments.Outcome("arrears_change", 56, 0.01)


def test_only_discretionary_outreach_stages_may_be_held_out() -> None:
    assert experiments.discretionary_actions() == ("first_reminder", "missed_promise", "broken_arrangement")


@pytest.mark.parametrize(("action", "says"), [
    ("pre_action", "step of the pre-action protocol"), ("warning", "step of the pre-action protocol"),
    ("notice", "step of the pre-action protocol"), ("statement", "step of the pre-action protocol"),
    ("claim", "step of the pre-action protocol"), ("contact", "step of the pre-action protocol"),
    ("vulnerability_support", "vulnerable tenant is never withheld"), ("breathing_space", "Breathing Space"),
    ("dispute", "never experimented on"), ("a_phone_call", "not an outreach stage"),
])
def test_a_protocol_step_or_support_is_refused_as_the_held_out_action(action, says) -> None:
    with pytest.raises(ExperimentConfigError, match=says) as refused:
        parse(with_fields(held_out_action=action))
    assert "first_reminder, missed_promise, broken_arrangement" in str(refused.value)  # what to write instead


@pytest.mark.parametrize("states", [["blocked"], ["disputed"], ["review"], ["hold"], ["ready", "hold"],
                                    ["ready", "review"], ["payment_plan"], [], ["read"]])
def test_states_other_than_ready_are_refused(states) -> None:
    with pytest.raises(ExperimentConfigError, match="may hold only 'ready'.*eligible_states: \\[ready\\]"):
        parse(with_fields(eligible_states=states))


@pytest.mark.parametrize(("fields", "says"), [
    ({"holdout_share": 0}, "strictly between 0 and 1"), ({"holdout_share": 1}, "strictly between 0 and 1"),
    ({"holdout_share": "a fifth"}, "holdout_share"), ({"end": "2026-08-01"}, "before `start`"),
    ({"start": "next week"}, "YYYY-MM-DD"), ({"outcome": {"kind": "happiness"}}, "outcome"),
    ({"outcome": {"kind": "paid_within_days", "days": 0}}, "whole number of days"),
    ({"outcome": {"kind": "arrears_change", "days": 56, "winsorise": 0.6}}, "winsorise"),
    ({"minimum_detectable_effect": 0}, "above 0"), ({"strata": {"risk_band_cuts": [0.6, 0.3]}}, "ascending"),
    ({"strata": {"by": ["age_band"]}}, "strata.by"), ({"colour": "blue"}, "unknown fields"),
    ({"name": "two words"}, "`name` is required"), ({"enabled": "yes"}, "true or false"),
])
def test_a_bad_field_is_refused_saying_what_to_write(fields, says) -> None:
    with pytest.raises(ExperimentConfigError, match=says):
        parse(with_fields(**fields))


def test_the_file_has_a_version_unique_names_and_enabled_experiments_one_at_a_time() -> None:
    with pytest.raises(ExperimentConfigError, match="version: 1"):
        parse({"experiments": GOOD["experiments"]})
    twice = copy.deepcopy(GOOD)
    twice["experiments"].append(dict(twice["experiments"][0], enabled=False))
    with pytest.raises(ExperimentConfigError, match="declared twice"):
        parse(twice)
    overlapping = copy.deepcopy(GOOD)
    overlapping["experiments"].append(dict(overlapping["experiments"][0], name="reminders-2", start="2026-12-01",
                                           end="2027-02-01"))
    with pytest.raises(ExperimentConfigError, match="overlap"):
        parse(overlapping)
    overlapping["experiments"][1]["enabled"] = False  # a disabled one may be declared beside it
    assert len(parse(overlapping)) == 2


def test_the_arm_is_a_stable_hash_with_the_stated_share() -> None:
    (trial,) = parse(GOOD)
    ids = [f"T{n:06d}" for n in range(20_000)]
    draws = np.array([experiments.draw(trial.name, t) for t in ids])
    assert draws.min() >= 0 and draws.max() < 1
    assert experiments.draw("reminders-1", "T000001") == experiments.draw("reminders-1", "T000001")
    assert experiments.draw("reminders-1", "T000001") != experiments.draw("reminders-2", "T000001")
    held = np.mean([experiments.arm_of(trial, t) == "holdout" for t in ids])
    assert abs(held - 0.3) < 0.015  # binomial sd at n=20,000 is 0.0032
    # sha256(b"reminders-1\x1fT000001")[:8] / 2**64, pinned: a change to the hash would reassign every running
    # experiment's tenancies, and must fail here
    assert experiments.draw("reminders-1", "T000001") == pytest.approx(0.09890255574548218, abs=1e-15)


def run_frame(states: list[str], patches: list[str]) -> pd.DataFrame:
    """A run's judged rows in risk order: every readiness state, several patches."""
    n = len(states)
    return pd.DataFrame({"tenancy_id": [f"T{i:05d}" for i in range(n)], "patch": patches,
                         "readiness_state": states, "risk_score": np.linspace(0.99, 0.01, n),
                         "balance": np.linspace(900, -50, n), "arrears_weeks": np.linspace(9, 0, n)})


frames = st.integers(1, 300).flatmap(lambda n: st.tuples(
    st.lists(st.sampled_from(STATES), min_size=n, max_size=n),
    st.lists(st.sampled_from(["North", "South", "East"]), min_size=n, max_size=n)))


@settings(max_examples=60, deadline=None)
@given(frame=frames, share=st.floats(0.05, 0.95), day=st.dates(date(2026, 8, 1), date(2027, 2, 1)))
def test_only_ready_rows_inside_an_enabled_window_are_ever_assigned(frame, share, day) -> None:
    (trial,) = parse(with_fields(holdout_share=share))
    rows = run_frame(*frame)
    before = rows.copy()
    assigned_rows, first = experiments.assign(rows, [trial], pd.Timestamp(day), "run-1")
    pd.testing.assert_frame_equal(rows, before)  # inputs are not changed
    inside = trial.start <= day <= trial.end
    ready = (rows["readiness_state"] == "ready").to_numpy()
    has_arm = assigned_rows["arm"].notna().to_numpy()
    assert (has_arm == (ready & inside)).all()
    assert set(first["tenancy_id"]) == set(rows.loc[ready & inside, "tenancy_id"])
    assert not set(first["tenancy_id"]) & set(rows.loc[~ready, "tenancy_id"])  # never blocked, disputed, review, hold
    assert (assigned_rows.loc[has_arm, "experiment"] == trial.name).all()
    hashed = [experiments.arm_of(trial, t) for t in assigned_rows.loc[has_arm, "tenancy_id"]]
    assert assigned_rows.loc[has_arm, "arm"].tolist() == hashed
    (disabled,) = parse(with_fields(holdout_share=share, enabled=False))
    nothing, none = experiments.assign(rows, [disabled], pd.Timestamp(day), "run-1")
    assert nothing["arm"].isna().all() and none.empty


@settings(max_examples=30, deadline=None)
@given(frame=frames, capacity=st.integers(1, 20))
def test_held_out_cases_take_none_of_a_patchs_capacity(frame, capacity) -> None:
    (trial,) = parse(GOOD)
    rows, _ = experiments.assign(run_frame(*frame), [trial], pd.Timestamp("2026-10-01"), "run-1")
    rows = rows.assign(queue_rank=experiments.queue_ranks(rows))
    ready = rows[rows["readiness_state"] == "ready"]
    for patch, queue in ready.groupby("patch"):
        treatment = queue[queue["arm"] == "treatment"]
        listed = queue[queue["queue_rank"] <= capacity]
        # the patch still gets `capacity` cases to contact (or all it has), held-out ones listed besides
        assert (listed["arm"] == "treatment").sum() == min(capacity, len(treatment)), patch
        assert treatment["queue_rank"].tolist() == list(range(1, len(treatment) + 1))
    others = rows[rows["readiness_state"] != "ready"]
    expected = others.groupby(["readiness_state", "patch"]).cumcount() + 1
    assert others["queue_rank"].tolist() == expected.tolist()


def test_a_tenancy_keeps_its_first_arm_and_its_first_assignment_records_the_pre_period() -> None:
    (trial,) = parse(GOOD)
    rows = run_frame(["ready"] * 40, ["North", "South"] * 20)
    first_rows, first = experiments.assign(rows, [trial], pd.Timestamp("2026-09-07"), "run-1")
    assert first["assigned_on"].eq(date(2026, 9, 7)).all() and first["run_id"].eq("run-1").all()
    assert first["balance_at_assignment"].tolist() == rows["balance"].tolist()
    assert first["stratum"].iloc[0] == "0.60-1.00|North" and first["risk_band"].iloc[-1] == "0.00-0.30"
    # a later edit of the share does not move anyone assigned before; only newcomers get the new share
    (edited,) = parse(with_fields(holdout_share=0.9))
    newcomer = run_frame(["ready"] * 41, ["North", "South"] * 20 + ["East"])
    later_rows, later = experiments.assign(newcomer, [edited], pd.Timestamp("2026-09-14"), "run-2", first)
    assert later_rows["arm"].iloc[:40].tolist() == first_rows["arm"].tolist()
    assert later["tenancy_id"].tolist() == ["T00040"]  # only the newcomer is a first assignment


def test_after_enrolment_the_assigned_keep_their_arms_until_the_last_outcome_window_closes() -> None:
    """A held-out case assigned on the last enrolment day is still held out while its outcome is measured (end +
    28 days here), and nobody new is assigned; after that, no row carries the experiment."""
    (trial,) = parse(GOOD)
    rows = run_frame(["ready"] * 40, ["North", "South"] * 20)
    first_rows, first = experiments.assign(rows, [trial], pd.Timestamp("2026-12-31"), "run-1")
    assert (first_rows["arm"] == "holdout").any()
    newcomer = run_frame(["ready"] * 41, ["North", "South"] * 20 + ["East"])
    during, assigned = experiments.assign(newcomer, [trial], pd.Timestamp("2027-01-28"), "run-2", first)
    assert during["arm"].iloc[:40].tolist() == first_rows["arm"].tolist() and during["arm"].iloc[40] is None
    assert assigned.empty
    after, _ = experiments.assign(newcomer, [trial], pd.Timestamp("2027-01-29"), "run-3", first)
    assert after["arm"].isna().all() and after["experiment"].isna().all()


def test_experiment_fields_say_what_an_officer_reads() -> None:
    held = experiments.experiment_fields({"experiment": "reminders-1", "arm": "holdout"})
    assert held["experiment_note"] == "no proactive contact this week (experiment reminders-1)"
    assert experiments.experiment_fields({"experiment": "reminders-1", "arm": "treatment"})["experiment_note"] is None
    assert experiments.experiment_fields({"experiment": None, "arm": float("nan")}) == {
        "experiment": None, "arm": None, "experiment_note": None}


FACTS = drafts.DraftFacts(tenancy_id="T1", as_of="2026-10-31", readiness_state="ready", protocol_step="contact",
                          policy_version="p", run_id="r1", balance=400.0, arrears_weeks=4.0)


def test_the_held_out_stage_is_refused_and_statutory_letters_are_not() -> None:
    (trial,) = parse(GOOD)
    held = experiments.held_out_detail(experiments.held_out([trial], "reminders-1", "holdout"))
    reminder = drafts.DraftFacts(**{**FACTS.__dict__, "held_out": held})
    assert drafts.stage_for(reminder) == "first_reminder"
    assert "No proactive contact this week (experiment reminders-1)" in drafts.refusal(
        reminder, "first_reminder", "letter")
    assert drafts.refusal(FACTS, "first_reminder", "letter") is None  # the same case, not held out
    for step, stage in (("statement", "pre_action"), ("warning", "warning")):
        statutory = drafts.DraftFacts(**{**reminder.__dict__, "protocol_step": step})
        assert drafts.stage_for(statutory) == stage and drafts.refusal(statutory, stage, "letter") is None
    assert experiments.held_out([trial], "reminders-1", "treatment") is None
    assert experiments.held_out([parse(with_fields(enabled=False))[0]], "reminders-1", "holdout") is None
