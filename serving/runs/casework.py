"""Casework as the service and the worklist run do it, over the stores they share (`casework.cases`,
`casework.drafts`): before a run judges, settle officers' promises against the receipts and read their actions (they
are facts the policy judges); after it records, give each listable ready case an owner among its patch's officers
(the principals with the officer role). A draft is written from the latest run's row and the ledger's facts, and
released only after the case is judged afresh."""

from __future__ import annotations

from dataclasses import replace
from json import loads as json_loads

import pandas as pd

from casework import cases, drafts
from casework.audit import AuditLog
from casework.drafts import ReleaseCheck
from casework.facts import load_facts
from casework.policy import load_policy, readiness
from casework.settings import service_day
from casework.store import open_casework
from features.db import and_in
from features.feeds.contract import RECEIPT_TYPES
from features.ledger import Ledger, open_ledger
from serving.access.principals import open_principals, stored_patches
from serving.income.store import held_by_suspense
from serving.runs import experiments
from serving.runs.store import open_runs
from serving.settings import ServingSettings


def actions_for_run(settings: ServingSettings, ledger: Ledger, as_of: pd.Timestamp) -> tuple[pd.DataFrame, str]:
    """Settle the promises and arrangements open on `as_of`, then every recorded action, and a mark of the case
    store's state that changes whenever an action is recorded or a commitment settled (a run is then recomputed)."""
    with open_casework(settings) as db:
        log = AuditLog(db)
        oldest = db.query("SELECT MIN(happened_on) AS day FROM case_actions WHERE kind IN ('promise_to_pay', "
                          "'arrangement_agreed') AND settled_on IS NULL")["day"].iloc[0]
        if oldest is not None and not pd.isna(oldest):
            received = ledger.query(*and_in(
                "SELECT tenancy_id, posted_date, amount_pence FROM transactions WHERE posted_date >= ? AND "
                "posted_date <= ?", [pd.Timestamp(oldest).date(), pd.Timestamp(as_of).date()], "type", RECEIPT_TYPES))
            received["posted_date"] = pd.to_datetime(received["posted_date"])
            cases.settle_commitments(db, log, received, as_of)
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
    """Owners for the run's listable ready cases (highest risk first) that have none yet; a case an experiment holds
    out gets none (it is not one of the officers' proactive contacts)."""
    held_out = frame["arm"].eq(experiments.HOLDOUT) if "arm" in frame else pd.Series(False, index=frame.index)
    listable = frame[(frame["readiness_state"] == "ready") & (frame["queue_rank"] <= settings.patch_capacity)
                     & ~held_out]
    with open_casework(settings) as db:
        return cases.assign(db, AuditLog(db), listable.sort_values("risk_rank")[["tenancy_id", "patch"]],
                            roster(settings), settings.officer_capacity, str(run["run_id"]))


def latest_row(settings: ServingSettings, tenancy_id: str) -> dict:
    """The tenancy's row in the latest recorded run (its patch, readiness, protocol step and experiment arm), with
    the run's id, policy version and as_of. LookupError when the run does not hold it."""
    with open_runs(settings) as store:
        run = store.latest()
        found = store.rows(run["run_id"], columns=("tenancy_id", "patch", "readiness_state", "state_reasons",
                                                   "protocol_step", "experiment", "arm"), tenancy_ids=[tenancy_id])
    if found.empty:
        raise LookupError("The case is not in the latest worklist run (not live on its date)")
    return found.iloc[0].to_dict() | {"run_id": run["run_id"], "policy_version": run["policy_version"],
                                      "as_of": pd.Timestamp(run["as_of"])}


def draft_from_run(settings: ServingSettings, tenancy_id: str, channel: str | None, language: str | None,
                   actor: str, role: str) -> dict:
    """A draft for a case ready now (judged with every action and release since the run: `judge_now`), from the
    ledger's facts on the latest run's date, by the tenant's preferred channel and in their language (the
    register's) unless others are asked for."""
    case = latest_row(settings, tenancy_id)
    with open_casework(settings) as db:
        recorded = cases.actions(db, [tenancy_id])
        with open_ledger(settings.ledger, read_only=True) as ledger:
            judged, _, _ = judge_now(settings, tenancy_id, recorded, ledger=ledger)
            case |= {name: judged[name] for name in ("readiness_state", "state_reasons", "protocol_step")}
            facts = replace(drafts.facts_for_draft(ledger, case, case["as_of"], recorded),
                            held_out=holdout_of(settings, case))
            register = ledger.read_for_tenancies("tenancy_register", [tenancy_id])
        channel, language = preferences(register, drafts.stage_for(facts), channel, language)
        return drafts.generate(db, AuditLog(db), facts, channel, language, actor, role)


def holdout_of(settings: ServingSettings, case: dict) -> dict | None:
    """The experiment holding the case out (from its row in the latest run, while the experiment is still enabled):
    what a draft and a release check carry, for `casework.drafts` to refuse the held-out stage."""
    if case.get("arm") != experiments.HOLDOUT:
        return None
    found = experiments.held_out(experiments.load_experiments(settings), case.get("experiment"), case.get("arm"))
    return experiments.held_out_detail(found)


def preferences(register: pd.DataFrame, stage: str, channel: str | None, language: str | None) -> tuple[str, str]:
    """The channel and language asked for, else the tenant's in the `register` row: their preferred channel where
    the stage can use it (phone, a visit, or an SMS for a statement: a letter), and their language (none recorded:
    English)."""
    def known(column: str) -> str | None:
        value = register[column].iloc[0] if column in register and len(register) else None
        return None if value is None or pd.isna(value) or not str(value).strip() else str(value).strip().lower()
    preferred, usable = known("preferred_channel"), drafts.content_rules()["stages"][stage]["channels"]
    return (channel or (preferred if preferred in usable else "letter"),
            language or known("language") or drafts.FALLBACK_LANGUAGE)


def judge_now(settings: ServingSettings, tenancy_id: str, recorded: pd.DataFrame,
              not_before: pd.Timestamp | None = None,
              ledger: Ledger | None = None) -> tuple[pd.Series, pd.DataFrame, pd.Timestamp]:
    """The case as the policy judges it now, with the officers' `recorded` actions, the releases and the receipts in
    suspense the matcher holds to be its own (as a run holds them): on the later of the ledger's latest day, the
    service's day and `not_before`. Returns its readiness row, its facts and the day.
    Reads the `ledger` given (a caller that reads more of it opens it once), else opens it."""
    if ledger is None:
        with open_ledger(settings.ledger, read_only=True) as opened:
            return judge_now(settings, tenancy_id, recorded, not_before, opened)
    policy = load_policy()
    latest = ledger.query("SELECT MAX(posted_date) AS day FROM transactions")["day"].iloc[0]
    days = [pd.Timestamp(day) for day in (latest, service_day(settings), not_before) if day is not None]
    as_of = max(days).normalize()
    suspense = held_by_suspense(settings, ledger)  # a receipt in suspense likely its own holds it as the run does
    facts = load_facts(ledger, [tenancy_id], as_of, policy, recorded, suspense[suspense["tenancy_id"] == tenancy_id])
    return readiness(facts, as_of, policy).iloc[0], facts, as_of


def release_check(settings: ServingSettings, draft: dict, recorded: pd.DataFrame) -> ReleaseCheck:
    """The case now, for releasing `draft`: what was received since its as_of, its readiness judged afresh
    (`judge_now`) with the officers' `recorded` actions and the letters released before it (the same day's too),
    every contact in the limit's window, and the experiment holding it out (in the latest run), if any."""
    policy, tenancy_id = load_policy(), str(draft["tenancy_id"])
    written_on = pd.Timestamp(json_loads(draft["facts"])["as_of"])
    with open_ledger(settings.ledger, read_only=True) as ledger:
        judged, facts, _ = judge_now(settings, tenancy_id, recorded, written_on, ledger)
        received = ledger.query(*and_in(
            "SELECT COALESCE(SUM(-amount_pence), 0) AS pence FROM transactions WHERE tenancy_id = ? "
            "AND posted_date > ?",
            [tenancy_id, written_on.date()], "type", RECEIPT_TYPES))["pence"].iloc[0]
    try:
        held_out = holdout_of(settings, latest_row(settings, tenancy_id))
    except LookupError:  # no run yet, or not live in it: no experiment holds it out
        held_out = None
    return replace(drafts.check_of(judged, facts.iloc[0], float(received) / 100, policy.contact_limit),
                   held_out=held_out)


def release_draft(settings: ServingSettings, draft_id: str, actor: str, role: str) -> dict:
    """Release an approved draft to the outbox (a contact on the service's day), or suppress it, as the case stands
    now."""
    with open_casework(settings) as db:
        found = drafts.draft(db, draft_id)
        check = release_check(settings, found, cases.actions(db, [str(found["tenancy_id"])]))
        return drafts.release(db, AuditLog(db), draft_id, actor, role, check, service_day(settings))
