"""The facts the readiness policy judges, for each live tenancy on a date: balances, recent receipts, and what the
events feed says about breathing space, disputes, claims, arrangements, contact and legal steps.

`circumstance_facts` is pure (frames in, one row per tenancy out); `load_facts` reads what it needs from the
ledger, with the aggregation done by the database (a 100,000-tenancy ledger is not read row by row).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from casework.cases import as_events, holds, reviews
from casework.policy.settings import Policy
from features.db import and_in
from features.feeds.contract import BREATHING_SPACE_STARTS, RECEIPT_TYPES, weekly_rent
from features.ledger import Ledger

#: Event types counted (how many) and dated (the latest), with the fact names they give. Whether something is in
#: force (a dispute, a claim, an arrangement) is read from which of its events came last, not from counts: a feed
#: whose history starts after an arrangement was agreed still shows it broken, and that must not cancel a newer one.
COUNTED = {"legal_stage": "legal_stage"}
DATED = {"dispute_opened": "last_dispute_opened", "dispute_resolved": "last_dispute_resolved",
         "benefit_claim_made": "last_claim_made", "benefit_claim_decided": "last_claim_decided",
         "arrangement_agreed": "last_agreed", "arrangement_broken": "last_broken",
         "arrangement_completed": "last_completed", "contact_made": "last_contact",
         "rent_statement_sent": "last_statement", "legal_stage": "last_legal_step",
         "proceedings_warning_sent": "last_warning", "breathing_space_ended": "breathing_space_ended",
         "crisis_treatment_ended": "crisis_treatment_ended", "contact_undelivered": "last_undelivered",
         "contact_details_checked": "last_details_checked"}
CONTACTS = ("contact_made", "contact_attempted")
#: A notice of seeking possession an officer recorded as served (`casework.cases.AS_EVENT`).
OFFICER_NOTICE = "notice_served"
ODD_ALLOCATIONS = ("unallocated", "deposit")
#: Up to this many tenancies, their facts are read with their ids in the query (a case page, a release).
FEW = 200

FACT_COLUMNS: tuple[str, ...] = (
    "tenancy_id", "vulnerable", "rent_period_pence", "weekly_rent_pence", "balance_pence", "arrears_weeks",
    "received_window_pence", "last_receipt", "odd_receipts", "suspense_receipts", "reported_gap_pence",
    "breathing_space_start", "breathing_space_kind", *COUNTED.values(), *DATED.values(), "attempts_recent",
    "limit_attempt", "officer_hold_until", "officer_hold_reason", "reviewed_on")


def _receipt_facts(receipts: pd.DataFrame, as_of: pd.Timestamp, policy: Policy) -> pd.DataFrame:
    window = receipts["posted_date"] > as_of - pd.Timedelta(days=policy.recent_payment["window_days"])
    odd = receipts["allocation"].isin(ODD_ALLOCATIONS) & (
        receipts["posted_date"] > as_of - pd.Timedelta(days=policy.ambiguous_balance["receipt_lookback_days"]))
    by = receipts.assign(window=-receipts["amount_pence"].where(window, 0), odd=odd.astype(int))
    return by.groupby("tenancy_id").agg(received_window_pence=("window", "sum"), last_receipt=("posted_date", "max"),
                                        odd_receipts=("odd", "sum"))


def _breathing_space(events: pd.DataFrame) -> pd.DataFrame:
    """The latest breathing space of each tenancy: when it started and which kind."""
    starts = events[events["type"].isin(BREATHING_SPACE_STARTS)].sort_values("event_date", kind="stable")
    latest = starts.groupby("tenancy_id").tail(1).set_index("tenancy_id")
    kind = np.where(latest["type"] == "breathing_space_started", "standard", "mental_health_crisis")
    return pd.DataFrame({"breathing_space_start": latest["event_date"], "breathing_space_kind": kind},
                        index=latest.index)


def _contact_limit(events: pd.DataFrame, as_of: pd.Timestamp, policy: Policy) -> pd.DataFrame:
    """Contact attempts (reached or not) in the limit's window, and the attempt whose age ends the limit: the
    n-th most recent, n being the limit."""
    limit = policy.contact_limit
    recent = events[events["type"].isin(CONTACTS)
                    & (events["event_date"] > as_of - pd.Timedelta(days=limit["days"]))]
    ordered = recent.sort_values("event_date", ascending=False, kind="stable")
    nth = ordered.groupby("tenancy_id")["event_date"].nth(limit["attempts"] - 1)
    out = recent.groupby("tenancy_id").size().rename("attempts_recent").to_frame()
    return out.join(pd.Series(nth.to_numpy(), index=ordered.loc[nth.index, "tenancy_id"], name="limit_attempt"))


def _event_facts(events: pd.DataFrame, as_of: pd.Timestamp, policy: Policy) -> pd.DataFrame:
    counted = (events[events["type"].isin(COUNTED)].groupby(["tenancy_id", "type"]).size().unstack(fill_value=0)
               .reindex(columns=list(COUNTED), fill_value=0).rename(columns=COUNTED))
    dated = (events[events["type"].isin(DATED)].groupby(["tenancy_id", "type"])["event_date"].max().unstack()
             .reindex(columns=list(DATED)).rename(columns=DATED))
    facts = counted.join(dated, how="outer").join(_breathing_space(events), how="outer").join(
        _contact_limit(events, as_of, policy), how="outer")
    return _officers_notices(facts, events)


def _officers_notices(facts: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """A notice an officer recorded as served (`OFFICER_NOTICE`): at least the notice stage, its period running from
    the latest notice. Not one more legal step: the housing system's feed delivering the same notice later must not
    move the case on to proceedings."""
    served = events[events["type"] == OFFICER_NOTICE].groupby("tenancy_id")["event_date"].max()
    if served.empty:
        return facts
    facts = facts.reindex(facts.index.union(served.index))
    stage = facts["legal_stage"].fillna(0)
    facts["legal_stage"] = stage.where(~facts.index.isin(served.index), stage.clip(lower=1))
    step = pd.to_datetime(facts["last_legal_step"])
    facts["last_legal_step"] = pd.concat([step, served.reindex(facts.index)], axis=1).max(axis=1)
    return facts


def circumstance_facts(register: pd.DataFrame, balances: pd.DataFrame, receipts: pd.DataFrame,
                       events: pd.DataFrame, as_of: pd.Timestamp, policy: Policy,
                       holds: pd.DataFrame | None = None, reviewed: pd.DataFrame | None = None,
                       suspense: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row of facts (FACT_COLUMNS) per tenancy of `register`, as of `as_of`.

    register: tenancy_id, rent_amount_pence, rent_frequency, vulnerable; balances: tenancy_id, balance_pence,
    reported_gap_pence; receipts: tenancy_id, posted_date, amount_pence (negative), allocation, dated within the
    policy's look-back; events: tenancy_id, event_date, type, up to as_of (the feed's and the officers' actions as
    events, `casework.cases.as_events`); holds: tenancy_id, until, reason, the officers' holds in force
    (`casework.cases.holds`); reviewed: tenancy_id, reviewed_on, supervisors' clearances of a vulnerable tenant's
    case for contact (`casework.cases.reviews`); suspense: tenancy_id, receipt_id, received_date, the receipts in
    suspense whose most likely tenancy (income management's matching) this is. Nothing dated after as_of is used.
    """
    as_of = pd.Timestamp(as_of).normalize()
    receipts = receipts[receipts["posted_date"] <= as_of]
    events = events[events["event_date"] <= as_of]
    facts = register.set_index("tenancy_id")[["vulnerable"]].copy()
    facts["rent_period_pence"] = register.set_index("tenancy_id")["rent_amount_pence"].astype(float)
    facts["weekly_rent_pence"] = weekly_rent(facts["rent_period_pence"],
                                             register.set_index("tenancy_id")["rent_frequency"])
    facts = facts.join(balances.set_index("tenancy_id")).join(_receipt_facts(receipts, as_of, policy))
    facts = facts.join(_event_facts(events, as_of, policy))
    held = (holds if holds is not None else pd.DataFrame(columns=["tenancy_id", "until", "reason"])).set_index(
        "tenancy_id").rename(columns={"until": "officer_hold_until", "reason": "officer_hold_reason"})
    facts = facts.join(held[["officer_hold_until", "officer_hold_reason"]])
    cleared = reviewed if reviewed is not None else pd.DataFrame(columns=["tenancy_id", "reviewed_on"])
    facts = facts.join(cleared.set_index("tenancy_id")[["reviewed_on"]])
    waiting = suspense if suspense is not None else pd.DataFrame(columns=["tenancy_id", "received_date"])
    waiting = waiting[pd.to_datetime(waiting["received_date"]) <= as_of]
    facts["suspense_receipts"] = waiting.groupby("tenancy_id").size().reindex(facts.index).fillna(0)
    facts["arrears_weeks"] = facts["balance_pence"].fillna(0).clip(lower=0) / facts["weekly_rent_pence"]
    for column in ("received_window_pence", "odd_receipts", "attempts_recent", "balance_pence", *COUNTED.values()):
        facts[column] = facts[column].fillna(0)
    return facts.reset_index()[list(FACT_COLUMNS)]


# -- reading them from the ledger ----------------------------------------------------------------------------------
def load_facts(ledger: Ledger, tenancy_ids: Sequence[str], as_of: pd.Timestamp, policy: Policy,
               actions: pd.DataFrame | None = None, suspense: pd.DataFrame | None = None) -> pd.DataFrame:
    """The facts of the given tenancies as of `as_of`, read from the ledger, with the officers' recorded `actions`
    (`casework.cases.actions`) and the receipts in `suspense` matched to them (`circumstance_facts`) where given."""
    as_of = pd.Timestamp(as_of).normalize()
    register = ledger.read_for_tenancies("tenancy_register", tenancy_ids)
    since = as_of - pd.Timedelta(days=policy.lookback_days)
    few = list(tenancy_ids) if len(tenancy_ids) <= FEW else None  # one case's facts read one case's rows
    receipts = ledger.query(*and_in(*and_in(
        "SELECT tenancy_id, posted_date, amount_pence, allocation FROM transactions WHERE posted_date > ? "
        "AND posted_date <= ?", [since.date(), as_of.date()], "type", RECEIPT_TYPES), "tenancy_id", few))
    events = ledger.query(*and_in("SELECT tenancy_id, event_date, type FROM events WHERE event_date <= ?",
                                  [as_of.date()], "tenancy_id", few))
    for frame, column in ((receipts, "posted_date"), (events, "event_date")):
        frame[column] = pd.to_datetime(frame[column])
    wanted = set(tenancy_ids)
    held = cleared = None
    if actions is not None and len(actions):
        events = pd.concat([events, as_events(actions)], ignore_index=True)
        held, cleared = holds(actions, as_of), reviews(actions, as_of)
    return circumstance_facts(register, _balances(ledger, as_of, few), receipts[receipts["tenancy_id"].isin(wanted)],
                              events[events["tenancy_id"].isin(wanted)], as_of, policy, held, cleared, suspense)


def _balances(ledger: Ledger, as_of: pd.Timestamp, few: list[str] | None = None) -> pd.DataFrame:
    """Each tenancy's (of `few`, or all) balance on `as_of`, and how far the housing system's reported balance is
    from the ledger's balance on the date it was reported (NaN where none was reported)."""
    sql, params = and_in("SELECT tenancy_id, CAST(SUM(amount_pence) AS BIGINT) AS balance_pence FROM transactions "
                         "WHERE posted_date <= ?", [as_of.date()], "tenancy_id", few)
    balances = ledger.query(sql + " GROUP BY tenancy_id", params)
    sql, params = and_in(
        "SELECT r.tenancy_id, r.reported_balance_pence - COALESCE(SUM(t.amount_pence), 0) AS reported_gap_pence "
        "FROM tenancy_register r LEFT JOIN transactions t ON t.tenancy_id = r.tenancy_id "
        "AND t.posted_date <= r.reported_balance_date WHERE r.reported_balance_pence IS NOT NULL "
        "AND r.reported_balance_date IS NOT NULL", [], "r.tenancy_id", few)
    gaps = ledger.query(sql + " GROUP BY r.tenancy_id, r.reported_balance_pence", params)
    return balances.merge(gaps, on="tenancy_id", how="left")
