"""Readiness: from a tenancy's facts on a date to one state, with every rule that fired and the next action.

Pure and vectorised: `readiness(facts, as_of, policy)` takes one row of facts per tenancy (see
`casework.facts.FACT_COLUMNS`) and returns one row per tenancy. The worklist ranks only `ready` cases; every other
state is a queue a person works differently (docs/policy.md).

Every rule that fires is kept as a reason; the state is the highest in `STATES`' order among the rules that
fired, so a tenancy in a breathing space is `blocked` whatever else is true of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from casework.policy.events import latest_is
from casework.policy.protocol import next_steps
from casework.policy.settings import Policy

#: The readiness states, highest precedence first. `ready` is what is left when no rule fires.
STATES: tuple[str, ...] = ("blocked", "disputed", "ambiguous_balance", "hold", "payment_plan", "recent_payment",
                           "review", "ready")
#: The same states in the order people see them as queues (pages, CLI choices, HTTP schemas): the one to work first,
#: then the ones a person looks at, then the ones nobody may chase.
QUEUES: tuple[str, ...] = ("ready", "hold", "review", "disputed", "recent_payment", "payment_plan", "ambiguous_balance",
                           "blocked")

#: What a person does with a case in each state (the ready state's action is its pre-action protocol step).
STATE_ACTIONS: dict[str, str] = {
    "blocked": "No collection contact or enforcement while the breathing space lasts",
    "disputed": "Resolve the dispute before any arrears contact",
    "ambiguous_balance": "Check the account before anyone is contacted: the balance is not what it seems",
    "hold": "Wait: no arrears contact until the hold ends",
    "payment_plan": "Monitor the arrangement; no other arrears contact",
    "recent_payment": "No contact: the period due has been paid",
    "review": "A person reviews the case before any contact (a vulnerable tenant, or contact details to check)",
}


def _day(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values).dt.strftime("%d %b %Y")


def _whole(values: pd.Series) -> pd.Series:
    return values.round().astype("Int64").astype(str)


def _money(pence: pd.Series) -> pd.Series:
    return "£" + (pence.abs() / 100.0).map("{:,.2f}".format)


@dataclass(frozen=True)
class Derived:
    """What the facts mean on the date (vectorised over tenancies)."""

    facts: pd.DataFrame
    as_of: pd.Timestamp
    policy: Policy

    def days_since(self, column: str) -> pd.Series:
        return (self.as_of - pd.to_datetime(self.facts[column])).dt.days

    @property
    def vulnerable(self) -> pd.Series:
        return self.facts["vulnerable"].fillna(False).astype(bool)

    @property
    def breathing_space_until(self) -> pd.Series:
        """The first day a breathing space is no longer in force (NaT: in force until a notice says otherwise)."""
        f, rules = self.facts, self.policy.breathing_space
        started = pd.to_datetime(f["breathing_space_start"])
        standard = started + pd.Timedelta(days=rules["standard_days"])
        crisis = pd.to_datetime(f["crisis_treatment_ended"]) + pd.Timedelta(days=rules["crisis_extra_days"])
        crisis = crisis.where(pd.to_datetime(f["crisis_treatment_ended"]) >= started)
        until = standard.where(f["breathing_space_kind"] == "standard", crisis)
        ended = pd.to_datetime(f["breathing_space_ended"])
        ended_early = ended.notna() & (ended >= started) & (until.isna() | (ended < until))
        return until.mask(ended_early, ended)

    @property
    def in_breathing_space(self) -> pd.Series:
        started = pd.to_datetime(self.facts["breathing_space_start"])
        until = self.breathing_space_until
        return started.notna() & (started <= self.as_of) & (until.isna() | (self.as_of < until))

    @property
    def recently_paid(self) -> pd.Series:
        """Money in the window covering the period due, that left little owed or went beyond the rent."""
        f, rules = self.facts, self.policy.recent_payment
        covers = f["received_window_pence"] >= rules["covers_share"] * f["rent_period_pence"]
        beyond_rent = f["received_window_pence"] > f["weekly_rent_pence"] * rules["window_days"] / 7.0
        return covers & ((f["arrears_weeks"] < rules["arrears_weeks"]) | beyond_rent)

    @property
    def contact_hold_until(self) -> pd.Series:
        return pd.to_datetime(self.facts["limit_attempt"]) + pd.Timedelta(days=self.policy.contact_limit["days"])

    @property
    def arrangement_active(self) -> pd.Series:
        return latest_is(self.facts, "last_agreed", "last_broken", "last_completed")

    @property
    def arrangement_silent(self) -> pd.Series:
        """An active arrangement with nothing received for too long since it was agreed: not being kept (silence
        before the agreement does not count against it)."""
        agreed = pd.to_datetime(self.facts["last_agreed"])
        silent_since = pd.to_datetime(self.facts["last_receipt"]).where(
            lambda received: received > agreed, agreed)
        return (self.as_of - silent_since).dt.days >= self.policy.payment_plan["silent_days"]


@dataclass(frozen=True)
class Rule:
    name: str
    state: str
    fires: Callable[[Derived], pd.Series]
    says: Callable[[Derived], pd.Series]


def _const(text: str) -> Callable[[Derived], pd.Series]:
    return lambda d: pd.Series(text, index=d.facts.index)


RULES: tuple[Rule, ...] = (
    Rule("breathing_space", "blocked",
         lambda d: d.in_breathing_space & (d.facts["breathing_space_kind"] == "standard"),
         lambda d: "In a breathing space (Debt Respite Scheme) until " + _day(d.breathing_space_until)),
    Rule("mental_health_crisis_moratorium", "blocked",
         lambda d: d.in_breathing_space & (d.facts["breathing_space_kind"] == "mental_health_crisis"),
         lambda d: ("In a mental health crisis breathing space since " + _day(d.facts["breathing_space_start"])
                    + ": it lasts while crisis treatment lasts, plus 30 days")),
    Rule("open_dispute", "disputed", lambda d: latest_is(d.facts, "last_dispute_opened", "last_dispute_resolved"),
         _const("A dispute about the account is open")),
    Rule("credit_balance", "ambiguous_balance",
         lambda d: (d.facts["balance_pence"]
                    < -d.policy.ambiguous_balance["credit_weeks"] * d.facts["weekly_rent_pence"]),
         lambda d: ("The account is " + _money(d.facts["balance_pence"]) + " in credit, more than "
                    + f"{d.policy.ambiguous_balance['credit_weeks']:g} weeks' rent")),
    Rule("unallocated_receipt", "ambiguous_balance", lambda d: d.facts["odd_receipts"] > 0,
         lambda d: (_whole(d.facts["odd_receipts"]) + " receipt(s) in the last "
                    + str(d.policy.ambiguous_balance["receipt_lookback_days"])
                    + " days not allocated to rent, or held like a deposit")),
    Rule("receipt_in_suspense", "ambiguous_balance",
         lambda d: pd.to_numeric(d.facts["suspense_receipts"]).fillna(0) > 0,
         lambda d: (_whole(d.facts["suspense_receipts"]) + " receipt(s) in suspense are most likely this "
                    "tenancy's: allocate or reject them first (the income team's suspense queue)")),
    Rule("unexplained_balance", "ambiguous_balance",
         lambda d: d.facts["reported_gap_pence"].abs() > d.policy.ambiguous_balance["reported_gap_pence"],
         lambda d: ("The housing system reports a balance " + _money(d.facts["reported_gap_pence"])
                    + " different from what the feeds explain")),
    Rule("officer_hold", "hold",
         lambda d: pd.to_datetime(d.facts["officer_hold_until"]).notna()
         & (pd.to_datetime(d.facts["officer_hold_until"]) >= d.as_of),
         lambda d: ("Held by an officer until " + _day(d.facts["officer_hold_until"]) + " ("
                    + d.facts["officer_hold_reason"].fillna("").str.replace("_", " ") + ")")),
    Rule("benefit_claim_pending", "hold", lambda d: latest_is(d.facts, "last_claim_made", "last_claim_decided"),
         _const("A benefit claim is waiting for a decision (pre-action protocol 2.6: do not start proceedings)")),
    Rule("payment_plan_kept", "payment_plan", lambda d: d.arrangement_active & ~d.arrangement_silent,
         lambda d: "A repayment arrangement agreed on " + _day(d.facts["last_agreed"]) + " is being kept"),
    Rule("recent_payment", "recent_payment", lambda d: d.recently_paid,
         lambda d: (_money(d.facts["received_window_pence"]) + " received in the last "
                    + str(d.policy.recent_payment["window_days"]) + " days, covering the period due")),
    Rule("contact_limit", "hold",
         lambda d: d.facts["attempts_recent"] >= d.policy.contact_limit["attempts"],
         lambda d: (_whole(d.facts["attempts_recent"]) + " contact attempts in the last "
                    + str(d.policy.contact_limit["days"]) + " days: no more until " + _day(d.contact_hold_until))),
    Rule("contact_details_unverified", "review",
         lambda d: latest_is(d.facts, "last_undelivered", "last_details_checked"),
         lambda d: ("A message sent on " + _day(d.facts["last_undelivered"]) + " did not reach the tenant (failed or "
                    "returned): check the contact details before anyone writes again")),
    Rule("vulnerable", "review", lambda d: d.vulnerable & pd.to_datetime(d.facts["reviewed_on"]).isna(),
         _const("The tenant is recorded as vulnerable: a person decides how to approach them")),
    # Reasons on a ready case: they fire without changing its state.
    Rule("vulnerable_reviewed", "ready", lambda d: d.vulnerable & pd.to_datetime(d.facts["reviewed_on"]).notna(),
         lambda d: ("Vulnerable tenant: a supervisor cleared the case for contact on " + _day(d.facts["reviewed_on"])
                    + "; drafts use the wording for vulnerable tenants")),
    Rule("arrangement_not_kept", "ready", lambda d: d.arrangement_active & d.arrangement_silent,
         lambda d: ("An arrangement is not being kept: nothing received for "
                    + _whole(d.days_since("last_receipt").clip(upper=d.days_since("last_agreed"))
                             .fillna(d.days_since("last_agreed")))
                    + " days")),
    Rule("arrangement_broken", "ready",
         lambda d: (~d.arrangement_active & (d.days_since("last_broken")
                                             <= d.policy.payment_plan["broken_lookback_days"]).fillna(False)),
         lambda d: "The repayment arrangement was broken on " + _day(d.facts["last_broken"])),
)


def readiness(facts: pd.DataFrame, as_of: pd.Timestamp, policy: Policy) -> pd.DataFrame:
    """One row per tenancy: tenancy_id, readiness_state, state_reasons (list of (rule, text) pairs, every rule that
    fired), hold_until (date or NaT), next_action, protocol_step and policy_version."""
    derived = Derived(facts.reset_index(drop=True), pd.Timestamp(as_of).normalize(), policy)
    rank = {state: i for i, state in enumerate(STATES)}
    best = np.full(len(derived.facts), rank["ready"])
    reasons: list[list[tuple[str, str]]] = [[] for _ in range(len(derived.facts))]
    for rule in RULES:
        fired = derived.facts.index[rule.fires(derived).fillna(False).to_numpy(dtype=bool)]
        if not len(fired):
            continue
        texts = rule.says(derived).loc[fired]
        for i, text in zip(fired, texts, strict=True):
            reasons[i].append((rule.name, str(text)))
        best[fired] = np.minimum(best[fired], rank[rule.state])
    states = np.asarray(STATES, dtype=object)[best]
    steps = next_steps(derived.facts, derived.as_of, policy)
    out = pd.DataFrame({"tenancy_id": derived.facts["tenancy_id"].to_numpy(), "readiness_state": states,
                        "state_reasons": reasons, "policy_version": policy.version})
    out["hold_until"] = _hold_until(derived, states)
    out["protocol_step"] = np.where(states == "ready", steps["step"], None)
    out["next_action"] = np.where(states == "ready", steps["action"], pd.Series(states).map(STATE_ACTIONS))
    return out


def _hold_until(derived: Derived, states: np.ndarray) -> pd.Series:
    until = pd.Series(pd.NaT, index=derived.facts.index, dtype="datetime64[ns]")
    blocked = states == "blocked"
    until[blocked] = derived.breathing_space_until[blocked]
    limited = (states == "hold") & (derived.facts["attempts_recent"] >= derived.policy.contact_limit["attempts"])
    until[limited] = derived.contact_hold_until[limited]
    held = (states == "hold") & pd.to_datetime(derived.facts["officer_hold_until"]).notna().to_numpy()
    until[held] = pd.to_datetime(derived.facts["officer_hold_until"])[held]
    return until
