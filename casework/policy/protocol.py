"""The next step for a ready case, following the Pre-Action Protocol for Possession Claims by Social Landlords
(in force from 13 January 2020), Part 2 (claims based on rent arrears), as steps with preconditions.

A step is offered only when its preconditions hold (`PRECONDITIONS`); the most advanced such step is the case's
next step. Serving a notice and issuing a claim are offered for a supervisor to decide, never taken by the system.

- `none`: arrears under a week: no arrears step.
- `contact` (2.1): contact the tenant about the arrears: cause, circumstances, benefit entitlement, repayment.
- `arrangement` (2.2, 2.4, 2.5, 2.8): after contact, agree affordable sums from income and outgoings; offer help
  with benefit claims and direct payment of arrears from benefit; offer money advice (also while a notice runs).
- `statement` (2.3): send a rent statement (rent due and received, the last 13 weeks at least) when none is
  current: it comes before a notice, and before a claim.
- `notice`: consider serving a notice of seeking possession: contacted, statement current, arrears high enough,
  no arrangement being kept, no benefit claim pending (2.6), none in force yet.
- `notice_running`: a notice is served; its period runs.
- `warning` (2.9): after the notice period, write to warn of possession proceedings with a clear time limit.
- `claim` (2.10, 2.11): consider a possession claim (alternative dispute resolution considered), then send an
  up-to-date rent statement and tell the tenant the hearing date at least 10 days before the hearing.
- `court`: proceedings issued: keep the tenant informed, an up-to-date statement before each hearing.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from casework.policy.events import latest_is
from casework.policy.settings import Policy

ACTIONS: dict[str, str] = {
    "none": "No arrears step: keep the account under review",
    "contact": "Contact the tenant about the arrears: the cause, their circumstances, benefits and repayment "
               "(pre-action protocol 2.1)",
    "arrangement": "Agree an affordable arrangement from income and outgoings; offer help with benefits and money "
                   "advice (protocol 2.2-2.5)",
    "statement": "Send a rent statement before any further step (protocol 2.3)",
    "notice": "Supervisor to consider serving a notice of seeking possession (protocol Part 2 followed)",
    "notice_running": "Notice served: keep trying to agree repayment while its period runs (protocol 2.8)",
    "warning": "Write to warn of possession proceedings, with a clear time limit (protocol 2.9)",
    "claim": "Supervisor to consider a possession claim; then send a rent statement and the hearing date at "
             "least 10 days before the hearing (protocol 2.10-2.11)",
    "court": "Proceedings issued: keep the tenant informed; an up-to-date rent statement before each hearing",
}


class Facts:
    """Named views of the facts a step's preconditions read, as of a date."""

    def __init__(self, facts: pd.DataFrame, as_of: pd.Timestamp, policy: Policy) -> None:
        self.f, self.as_of, self.p = facts, as_of, policy.protocol
        self.silent_days = policy.payment_plan["silent_days"]

    def days_since(self, column: str) -> pd.Series:
        return (self.as_of - pd.to_datetime(self.f[column])).dt.days

    def within(self, column: str, days: int) -> pd.Series:
        return (self.days_since(column) <= days).fillna(False)

    @property
    def in_arrears(self) -> pd.Series:
        return self.f["arrears_weeks"] >= self.p["arrears_weeks_to_act"]

    @property
    def contacted(self) -> pd.Series:
        return self.within("last_contact", self.p["contact_within_days"])

    @property
    def statement_current(self) -> pd.Series:
        return self.within("last_statement", self.p["statement_days"])

    @property
    def plan_active(self) -> pd.Series:
        return latest_is(self.f, "last_agreed", "last_broken", "last_completed")

    @property
    def plan_kept(self) -> pd.Series:
        """An arrangement in force with money received recently enough (protocol 2.7/2.9: while it is kept, no
        proceedings)."""
        last = pd.to_datetime(self.f["last_receipt"]).fillna(pd.to_datetime(self.f["last_agreed"]))
        return self.plan_active & ((self.as_of - last).dt.days < self.silent_days).fillna(False)

    @property
    def claim_pending(self) -> pd.Series:
        return latest_is(self.f, "last_claim_made", "last_claim_decided")

    @property
    def notice_due_days(self) -> pd.Series:
        return self.days_since("last_legal_step")

    @property
    def warned_since_notice(self) -> pd.Series:
        return pd.to_datetime(self.f["last_warning"]) >= pd.to_datetime(self.f["last_legal_step"])


def _stage(facts: Facts, stage: int) -> pd.Series:
    return facts.f["legal_stage"] == stage


#: What must be true before each step is offered.
PRECONDITIONS: dict[str, Callable[[Facts], pd.Series]] = {
    "none": lambda x: ~x.in_arrears,
    "contact": lambda x: x.in_arrears & (x.f["legal_stage"] <= 1) & ~x.contacted,
    "arrangement": lambda x: x.in_arrears & (x.f["legal_stage"] <= 1) & x.contacted & ~x.plan_kept,
    "statement": lambda x: x.in_arrears & (x.f["legal_stage"] <= 1) & ~x.statement_current,
    "notice": lambda x: (x.in_arrears & _stage(x, 0) & x.contacted & x.statement_current & ~x.plan_kept
                         & ~x.claim_pending & (x.f["arrears_weeks"] >= x.p["notice_arrears_weeks"])),
    "notice_running": lambda x: _stage(x, 1) & (x.notice_due_days < x.p["notice_period_days"]).fillna(True),
    "warning": lambda x: (_stage(x, 1) & (x.notice_due_days >= x.p["notice_period_days"]).fillna(False)
                          & ~x.warned_since_notice & x.in_arrears & ~x.plan_kept),
    "claim": lambda x: (_stage(x, 1) & x.warned_since_notice
                        & (x.days_since("last_warning") >= x.p["warning_days"]).fillna(False) & x.in_arrears
                        & x.statement_current & ~x.plan_kept & ~x.claim_pending),
    "court": lambda x: x.f["legal_stage"] >= 2,
}

#: Steps from the most advanced down: a case is offered the first whose preconditions hold.
ORDER: tuple[str, ...] = ("court", "claim", "warning", "notice_running", "notice", "contact", "statement",
                          "arrangement", "none")


def next_steps(facts: pd.DataFrame, as_of: pd.Timestamp, policy: Policy) -> pd.DataFrame:
    """The next protocol step of every tenancy (`none` when no step's preconditions hold), and its action."""
    view = Facts(facts, as_of, policy)
    step = np.full(len(facts), "none", dtype=object)
    decided = np.zeros(len(facts), dtype=bool)
    for name in ORDER:
        holds = PRECONDITIONS[name](view).fillna(False).to_numpy(dtype=bool) & ~decided
        step[holds] = name
        decided |= holds
    return pd.DataFrame({"step": step, "action": pd.Series(step).map(ACTIONS).to_numpy()}, index=facts.index)
