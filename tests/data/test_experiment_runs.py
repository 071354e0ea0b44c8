"""Experiment arms through real recorded worklist runs (serving.runs.record, serving.runs.experiments) on a small
simulated portfolio with a trained and promoted risk model: no case that is not ready is ever assigned; two runs give
the same arms, keep the first assignment and write one audit event per tenancy, and the chain verifies; held-out
cases take none of a patch's capacity and get no owner, and show the officer why; a held-out case's held-out letter is
refused while its statutory letter is written; an approved reminder is suppressed at release once its case is held
out."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from casework import drafts
from casework.audit import AuditLog
from casework.store import open_audit, open_casework
from serving.access.principals import Principal
from serving.runs import casefile, experiments
from serving.runs.interventions import held_out_within_capacity
from serving.runs.record import record_run
from serving.runs.store import open_runs
from simulator import simulate_portfolio, write_portfolio
from tests.support.cli import ok
from tests.support.homes import isolated_home
from training.registry import configure
from training.train import train_risk_model
from training.treatment import Interventions

END = pd.Timestamp("2026-10-31")
CAPACITY = 5
NEVER_ASSIGNED = ("blocked", "disputed", "review", "hold", "ambiguous_balance", "recent_payment", "payment_plan")
TRIAL = """version: 1
experiments:
  - name: reminders-test
    enabled: true
    start: 2026-06-01
    end: 2026-12-31
    held_out_action: first_reminder
    eligible_states: [ready]
    holdout_share: 0.5
    outcome: {kind: paid_within_days, days: 28}
    minimum_detectable_effect: 0.05
"""
CLI = Principal("cli", "cli")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """A 400-tenancy portfolio ingested, featurised, its risk model trained and promoted, officers for every patch;
    then the experiment enabled and two runs recorded."""
    root = tmp_path_factory.mktemp("experiment_runs")
    config = root / "experiments.yaml"
    config.write_text("version: 1\nexperiments: []\n")
    with isolated_home(root / "home", ARREARS_EXPERIMENTS=str(config), ARREARS_PATCH_CAPACITY=str(CAPACITY),
                       ARREARS_TODAY=str(END.date())):
        write_portfolio(simulate_portfolio(n_tenancies=400, years=2.0, seed=5, end_date=END.date()), root / "feeds")
        for verb in (["ingest", str(root / "feeds")], ["features"], ["train", "--model", "risk"],
                     ["promote", "--model", "arrears_risk"]):
            ok(*verb)
        from serving.settings import get_settings

        settings = get_settings()
        with open_runs(settings) as store:
            patches = sorted(store.rows(store.latest()["run_id"], columns=("patch",))["patch"].unique())
        for patch in patches:
            ok("users", "add", f"officer-{patch}", "--role", "officer", "--patch", patch)
        config.write_text(TRIAL)
        first = record_run(settings, force=True).run
        first_assignments = experiments.assignments(settings)
        second = record_run(settings, force=True).run
        with open_runs(settings) as store:
            rows = {run["run_id"]: store.rows(run["run_id"]) for run in (first, second)}
        yield {"settings": settings, "first": first, "second": second, "rows": rows, "config": config,
               "first_assignments": first_assignments}


def test_no_case_that_is_not_ready_is_ever_assigned(runs) -> None:
    for run_id, rows in runs["rows"].items():
        assert rows["readiness_state"].nunique() >= 4, "the run should hold cases of several states"
        not_ready = rows[rows["readiness_state"] != "ready"]
        assert len(not_ready) and not_ready["arm"].isna().all() and not_ready["experiment"].isna().all(), run_id
        ready = rows[rows["readiness_state"] == "ready"]
        assert ready["experiment"].eq("reminders-test").all() and ready["arm"].isin(experiments.ARMS).all()
    kept = experiments.assignments(runs["settings"], "reminders-test")
    states = pd.concat(runs["rows"].values()).groupby("tenancy_id")["readiness_state"].agg(set)
    assert not any(states[t] & set(NEVER_ASSIGNED) and "ready" not in states[t] for t in kept["tenancy_id"])
    first_rows = runs["rows"][runs["first"]["run_id"]]
    assert set(first_rows.loc[first_rows["readiness_state"] == "ready", "tenancy_id"]) <= set(kept["tenancy_id"])
    assert set(kept["arm"]) == {"treatment", "holdout"}


def test_arms_are_stable_across_runs_and_the_first_assignment_is_kept(runs) -> None:
    first, second = (runs["rows"][runs[k]["run_id"]].set_index("tenancy_id") for k in ("first", "second"))
    both = first.index[first["arm"].notna()].intersection(second.index[second["arm"].notna()])
    assert len(both) > 50
    assert first.loc[both, "arm"].tolist() == second.loc[both, "arm"].tolist()
    kept = experiments.assignments(runs["settings"]).set_index("tenancy_id")
    assert kept.loc[both, "arm"].tolist() == first.loc[both, "arm"].tolist()
    # the first run's assignments were not overwritten by the second: same rows, same run, same day and figures
    before = runs["first_assignments"].set_index("tenancy_id")
    pd.testing.assert_frame_equal(kept.loc[before.index], before)
    assert kept.loc[both, "run_id"].eq(runs["first"]["run_id"]).all()
    assert list(experiments.assignments(runs["settings"]).columns) == [
        "experiment", "tenancy_id", "arm", "draw", "holdout_share", "stratum", "patch", "risk_band", "assigned_on",
        "run_id", "balance_at_assignment", "arrears_weeks_at_assignment", "risk_score"]
    assert kept["assigned_on"].eq(pd.Timestamp(runs["first"]["as_of"]).date()).all()
    assert kept["arm"].tolist() == [experiments.arm_of(experiments.load_experiments(runs["settings"])[0], t)
                                    for t in kept.index]
    assert kept["stratum"].str.fullmatch(r"0\.\d\d-[01]\.\d\d\|\S+").all()


def test_each_first_assignment_is_in_the_audit_trail_once_and_the_chain_verifies(runs) -> None:
    kept = experiments.assignments(runs["settings"])
    with open_audit(runs["settings"]) as log:
        events = log.entries(action="experiment_assigned")
        assert log.verify().ok
    assert len(events) == len(kept)  # two runs, one event each
    assert sorted(events["tenancy_id"]) == sorted(kept["tenancy_id"])
    details = pd.DataFrame(list(events["detail"])).assign(tenancy_id=events["tenancy_id"].to_numpy())
    merged = details.merge(kept, on=["experiment", "tenancy_id"], suffixes=("", "_kept"))
    assert len(merged) == len(kept) and (merged["arm"] == merged["arm_kept"]).all()
    assert (merged["run_id"] == runs["first"]["run_id"]).all()
    record_run(runs["settings"])  # nothing new to record: still no second event
    with open_audit(runs["settings"]) as log:
        assert len(log.entries(action="experiment_assigned")) == len(kept)


def test_held_out_cases_take_no_capacity_get_no_owner_and_say_why(runs) -> None:
    from serving.runs.worklist import Worklister, worklist_frame

    answer = Worklister(runs["settings"]).worklist(top=10_000)
    rows = pd.DataFrame([r.model_dump() for r in answer.rows])
    held, treated = rows[rows["arm"] == "holdout"], rows[rows["arm"] == "treatment"]
    assert len(held) and len(treated)
    ready = runs["rows"][runs["second"]["run_id"]].query("readiness_state == 'ready'")
    for patch, queue in ready.groupby("patch"):
        # every patch still lists as many cases to contact as its capacity allows, held-out ones besides
        assert (treated["patch"] == patch).sum() == min(CAPACITY, (queue["arm"] == "treatment").sum()), patch
    assert held["experiment_note"].eq("no proactive contact this week (experiment reminders-test)").all()
    assert treated["experiment_note"].isna().all() and held["owner"].isna().all()
    assert treated["owner"].notna().any()
    csv = worklist_frame(answer.rows).set_index("tenancy_id")  # what `arrears worklist` writes for the officers
    assert csv.loc[held["tenancy_id"], "experiment_note"].eq(held["experiment_note"].iloc[0]).all()
    case = casefile.case_file(runs["settings"], CLI, str(held["tenancy_id"].iloc[0]))
    assert (case.arm, case.experiment_note) == ("holdout", held["experiment_note"].iloc[0])
    assert case.now is not None and case.now.next_action  # its next statutory step is still there


def test_a_held_out_case_gets_no_reminder_but_its_statutory_letter(runs) -> None:
    rows = runs["rows"][runs["second"]["run_id"]]
    held = rows[(rows["arm"] == "holdout") & (rows["balance"] > 0)]
    refused, written = [], []
    for row in held.itertuples():
        try:
            made = casefile.write_draft(runs["settings"], CLI, str(row.tenancy_id), "letter", "en")
            written.append((row.protocol_step, made.stage))
        except drafts.DraftRefused as exc:
            refused.append((row.protocol_step, str(exc)))
    held_out = [why for _, why in refused if "No proactive contact this week (experiment reminders-test)" in why]
    assert held_out, refused
    assert written and all(stage != "first_reminder" for _, stage in written)
    assert {"pre_action"} <= {stage for _, stage in written}, written  # a statutory letter is still written
    with open_casework(runs["settings"]) as db:
        assert not drafts.drafts(db, statuses=("pending",)).query("stage == 'first_reminder'").shape[0]


FACTS = drafts.DraftFacts(tenancy_id="T1", as_of="2026-10-31", readiness_state="ready", protocol_step="contact",
                          policy_version="p", run_id="r1", balance=400.0, arrears_weeks=4.0)


def test_an_approved_reminder_is_suppressed_at_release_once_its_case_is_held_out(tmp_path) -> None:
    held_out = {"experiment": "reminders-test", "action": "first_reminder",
                "note": "no proactive contact this week (experiment reminders-test)"}
    check = drafts.ReleaseCheck(received_since_draft=0.0, readiness_state="ready", state_reasons=(),
                                contacts_recent=0, contact_limit=3)
    with isolated_home(tmp_path / "home"):
        from casework.settings import get_settings

        with open_casework(get_settings()) as db:
            log = AuditLog(db)
            for tenancy, holdout in (("T1", held_out), ("T2", None)):
                facts = drafts.DraftFacts(**{**FACTS.__dict__, "tenancy_id": tenancy})
                written = drafts.generate(db, log, facts, "letter", "en", "officer-1", "officer")
                drafts.approve(db, log, written["draft_id"], "supervisor-1", "supervisor")
                released = drafts.release(db, log, written["draft_id"], "supervisor-1", "supervisor",
                                          drafts.ReleaseCheck(**{**check.__dict__, "held_out": holdout}),
                                          date(2026, 11, 2))
                expected = ("suppressed", "held_out") if holdout else ("released", None)
                assert (released["status"], (released["reason"] or ":").split(":")[0] or None) == expected
            assert drafts.outbox(db)["tenancy_id"].tolist() == ["T2"]
            suppressed = log.entries(tenancy_id="T1", action="draft_suppressed")["detail"].iloc[0]
            assert suppressed["reason"] == "held_out" and "experiment reminders-test" in suppressed["why"]


def test_the_retrain_reads_the_held_out_queue_within_capacity(runs) -> None:
    """serving.runs.interventions: the days a held-out ready case stood within its patch's capacity, with the
    experiment's share (what stands for the contacted in a treatment-aware retrain)."""
    shadow = held_out_within_capacity(runs["settings"])
    expected = set()
    for run in (runs["first"], runs["second"]):
        rows = runs["rows"][run["run_id"]]
        within = rows[(rows["arm"] == "holdout") & (rows["readiness_state"] == "ready")
                      & (rows["queue_rank"] <= CAPACITY)]
        expected |= {(t, pd.Timestamp(run["as_of"])) for t in within["tenancy_id"]}
    assert expected, "the experiment should hold some ready cases out within capacity"
    assert set(zip(shadow["tenancy_id"], pd.to_datetime(shadow["day"]), strict=True)) == expected
    assert (shadow["holdout_share"] == 0.5).all()


def test_a_treatment_aware_retrain_leaves_out_what_contacts_touched(runs) -> None:
    """train_risk_model with the service's interventions: rows a contact touched are left out of training (counted
    in the run's metrics) and the version says it was trained treatment-aware; the same contacts after every
    label window leave nothing out."""
    settings = runs["settings"]
    with open_runs(settings) as store:
        ready = store.rows(runs["first"]["run_id"], states=["ready"])["tenancy_id"].tolist()[:40]
    # Contacted every fortnight of the year before the run: every labelled row of these tenancies is touched.
    days = pd.date_range(END - pd.Timedelta(days=365), END, freq="14D")
    contacts = pd.DataFrame([(t, d) for t in ready for d in days], columns=["tenancy_id", "day"])
    shadow = pd.DataFrame(columns=["tenancy_id", "day", "holdout_share"])
    trained = train_risk_model(settings, interventions=Interventions(contacts, shadow))
    assert trained.metrics["treatment_rows_left_out"] > 0
    assert trained.metrics["treatment_rows_reweighted"] == 0
    run = configure(settings).get_run(trained.run_id)
    assert run.data.tags["treatment_aware"] == "true"
    later = contacts.assign(day=END + pd.Timedelta(days=1))
    untouched = train_risk_model(settings, interventions=Interventions(later, shadow))
    assert untouched.metrics["treatment_rows_left_out"] == 0
